#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (coverage, ASan+UBSan)
# and runs each for FUZZ_TIME seconds (default 60), two at a time. Fails
# when a target finds a crash, a leak, a sanitizer report, a timeout or an
# out-of-memory; the input that did it is kept in
# <build>/fuzz-out/<target>/ (crash-*, leak-*, timeout-*, oom-*) with the
# run's log next to it. Seeds: fuzz/corpus/<target> (read only); what a run
# adds goes to <build>/fuzz-out/<target>/corpus and seeds the next run.
#
# The build directory is FUZZ_BUILD_DIR (default build-fuzz, build type
# Fuzz). A clang Asan build (scripts/build.sh Asan with clang++-14
# installed) compiles the same instrumentation, so CI fuzzes from
# build-asan: FUZZ_BUILD_DIR=build-asan.
#
#   scripts/fuzz.sh                   # every target, 60 s each
#   FUZZ_TIME=600 scripts/fuzz.sh fuzz_expr fuzz_http
#   FUZZ_NO_BUILD=1 scripts/fuzz.sh   # run what is built
#   FUZZ_BUILD_DIR=build-asan FUZZ_NO_BUILD=1 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD_DIR:-build-fuzz}
fuzz_time=${FUZZ_TIME:-60}
all_targets=(fuzz_pipeline fuzz_expr fuzz_config fuzz_json_record fuzz_http)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
  command -v clang++-14 >/dev/null || { echo "fuzz.sh: clang++-14 is missing (scripts/install-deps.sh)" >&2; exit 1; }
  # A directory that is configured already (e.g. a clang build-asan) keeps
  # its configuration.
  if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Fuzz \
      -DDATAFLOW_FUZZ=ON -DDATAFLOW_BUILD_TESTS=OFF -DDATAFLOW_BUILD_BENCH=OFF >/dev/null
  fi
  cmake --build "$build" --target "${targets[@]}" -j2
fi
for t in "${targets[@]}"; do
  [ -x "$build/bin/$t" ] || {
    echo "fuzz.sh: $build/bin/$t is not built (a clang Asan or Fuzz build builds it)" >&2
    exit 1
  }
done

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

# One target: its own corpus first (libFuzzer adds to the first directory).
run_target() {  # target
  local target=$1 name=${1#fuzz_}
  local out=$build/fuzz-out/$target
  mkdir -p "$out/corpus"
  local dict=()
  [ -f "fuzz/$name.dict" ] && dict=(-dict="fuzz/$name.dict")
  # The outer timeout bounds a target that hangs outside an input
  # (libFuzzer's -timeout covers one input).
  timeout --kill-after=30 $((fuzz_time + 120)) "$build/bin/$target" \
    -max_total_time="$fuzz_time" -timeout=30 -rss_limit_mb=2560 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$out/" "${dict[@]}" \
    "$out/corpus" "fuzz/corpus/$name" >"$out/log.txt" 2>&1
}

summary() {  # target status
  local log=$build/fuzz-out/$1/log.txt
  local execs cov
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || true)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1 || true)
  echo "fuzz.sh: $1: $2 (${execs:-?} executions, ${cov:-no coverage line})"
}

failed=()
pending=("${targets[@]}")
while [ ${#pending[@]} -gt 0 ]; do
  batch=("${pending[@]:0:2}")
  pending=("${pending[@]:2}")
  pids=()
  for t in "${batch[@]}"; do
    echo "fuzz.sh: running $t for ${fuzz_time}s"
    run_target "$t" &
    pids+=($!)
  done
  for i in "${!batch[@]}"; do
    t=${batch[$i]}
    if wait "${pids[$i]}"; then
      summary "$t" "passed"
    else
      summary "$t" "FAILED"
      failed+=("$t")
      tail -n 60 "$build/fuzz-out/$t/log.txt" >&2
      ls "$build/fuzz-out/$t/" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' >&2 || true
    fi
  done
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]} (inputs and logs in $build/fuzz-out/)" >&2
  exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets ran ${fuzz_time}s without a finding"

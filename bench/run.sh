#!/usr/bin/env bash
# Runs the micro-benchmarks and prints rows/s of DataFlow with 1 and 2
# workers next to the hand-written loop, measured in this same run.
#   bench/run.sh [ROWS]        (default 100000000)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-100000000}
scripts/build.sh Release --target dataflow bench_gen_filter_map >/dev/null

base=$(build/bin/bench_gen_filter_map "$rows")
base_rps=$(sed -n 's/.*rows_per_s=\([0-9]*\).*/\1/p' <<<"$base")
echo "$base"
for workers in 1 2; do
  summary=$(BENCH_ROWS=$rows build/bin/dataflow exec bench/pipelines/gen_filter_map.yaml \
              --no-progress --workers "$workers" 2>&1 >/dev/null | grep finished)
  secs=$(sed -n 's/.* in \([0-9.]*\)s:.*/\1/p' <<<"$summary")
  rps=$(awk -v r="$rows" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')
  ratio=$(awk -v a="$rps" -v b="$base_rps" 'BEGIN { printf "%.2f", a / b }')
  echo "dataflow workers=$workers rows=$rows seconds=$secs rows_per_s=$rps ratio_vs_handwritten=$ratio"
done

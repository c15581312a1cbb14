#!/usr/bin/env bash
# Self-healing soak (issue 6): runs bench/pipelines/soak.yaml once without
# faults and once with faults of every restartable class injected at random
# (a fresh seed each run, printed), then checks that the committed outputs
# are equal row for row and prints how many restarts healed the run.
#   bench/soak.sh [ROWS] [RATE]      (defaults: 2000000 rows at 200000 rows/s)
# DATAFLOW_BIN=path uses that binary instead of building build/bin/dataflow.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-2000000}
rate=${2:-200000}
if [ -z "${DATAFLOW_BIN:-}" ]; then scripts/build.sh Release --target dataflow >/dev/null; fi
bin=${DATAFLOW_BIN:-$PWD/build/bin/dataflow}
work=$(mktemp -d /tmp/df-bench-soak.XXXXXX)
trap 'rm -rf "$work"' EXIT
seed=${SOAK_SEED:-$RANDOM}

run() {  # name faults
  (cd "$work" && BENCH_ROWS=$rows BENCH_RATE=$rate BENCH_OUT=$1 DATAFLOW_FAULTS=$2 \
    "$bin" exec "$OLDPWD/bench/pipelines/soak.yaml" --no-progress --workers 2 \
    --state-dir "state-$1" 2>"$work/$1.log") || { tail -5 "$work/$1.log"; exit 1; }
}
sorted() { cat "$work/$1"/part-* | sort; }

run clean ""
faults="totals:process:exception:rate=0.002:times=0:seed=$seed"
faults+=";events:produce:unavailable:rate=0.001:times=0:seed=$((seed + 1))"
faults+=";out:process:io:rate=0.002:times=0:seed=$((seed + 2))"
faults+=";totals:process:bad_alloc:rate=0.0005:times=0:seed=$((seed + 3))"
run faulty "$faults"
restarts=$(grep -c '"action":"restart"' "$work/faulty.log" || true)
if cmp -s <(sorted clean) <(sorted faulty); then
  echo "soak: rows=$rows seed=$seed restarts=$restarts output_rows=$(sorted clean | wc -l) equal=yes"
else
  echo "soak: rows=$rows seed=$seed restarts=$restarts equal=NO" >&2
  exit 1
fi

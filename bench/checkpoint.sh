#!/usr/bin/env bash
# Checkpoint costs, measured in one run (issue 4):
#  1. throughput of a keyed pipeline (BENCH_KEYS=1M keys) with a checkpoint
#     every second vs. without checkpoints: the ratio;
#  2. checkpoint duration p50/p99 and incremental bytes per checkpoint;
#  3. recovery time from local disk for about 1 GB of state.
#   bench/checkpoint.sh [ROWS] [BIG_STATE_SECONDS]
# BUILD_DIR=dir uses (and builds dataflow in) that Release build directory
# instead of build/.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-10000000}
big_secs=${2:-60}
if [ -n "${BUILD_DIR:-}" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD_DIR" --target dataflow -j2 >/dev/null
  bin=$BUILD_DIR/bin/dataflow
else
  scripts/build.sh Release --target dataflow >/dev/null
  bin=build/bin/dataflow
fi
work=$(mktemp -d /tmp/df-bench-ckpt.XXXXXX)
trap 'rm -rf "$work"' EXIT

secs_of() { sed -n 's/.* in \([0-9.]*\)s:.*/\1/p' "$1"; }

# 1. Throughput, checkpoints off vs every second (same state backend).
BENCH_ROWS=$rows $bin exec bench/pipelines/keyed_state.yaml --no-progress --workers 2 \
  2>"$work/off.log"
BENCH_ROWS=$rows $bin exec bench/pipelines/keyed_state.yaml --no-progress --workers 2 \
  --state-dir "$work/state" 2>"$work/on.log"
off=$(secs_of "$work/off.log")
on=$(secs_of "$work/on.log")
echo "keyed_state: rows=$rows keys=${BENCH_KEYS:-1000000} no_checkpoints_s=$off checkpoints_1s_s=$on" \
     "throughput_ratio=$(awk -v a="$off" -v b="$on" 'BEGIN { printf "%.2f", a / b }')"

# 2. Durations and incremental bytes of the periodic checkpoints of that run.
$bin checkpoints list --pipeline bench-keyed-state --state-dir "$work/state" --json >"$work/list.json"
python3 - "$work/list.json" <<'PY'
import json, sys
cps = [c for c in json.load(open(sys.argv[1])) if c.get("kind") == "periodic"]
if not cps:
    print("checkpoints: none completed"); sys.exit(0)
d = sorted(c["duration_ms"] for c in cps)
inc = sorted(c["incremental_bytes"] for c in cps)
pct = lambda xs, p: xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
print(f"checkpoints: n={len(cps)} duration_ms_p50={pct(d, 50)} duration_ms_p99={pct(d, 99)} "
      f"incremental_bytes_p50={pct(inc, 50)} incremental_bytes_max={inc[-1]} "
      f"size_bytes_last={max(cps, key=lambda c: c['id'])['size_bytes']}")
PY

# 3. Recovery of ~1 GB: build the state, stop with SIGTERM (final checkpoint),
#    then time the restore of the next run (printed by exec) and stop it.
$bin exec bench/pipelines/big_state.yaml --no-progress --workers 2 --state-dir "$work/big" \
  2>"$work/big1.log" &
pid=$!
sleep "$big_secs"
kill -TERM $pid
wait $pid || true
size=$(du -sb "$work/big/bench-big-state/shared" | cut -f1)
$bin exec bench/pipelines/big_state.yaml --no-progress --workers 2 --state-dir "$work/big" \
  2>"$work/big2.log" &
pid=$!
for _ in $(seq 1 600); do
  grep -q "state restored in" "$work/big2.log" 2>/dev/null && break
  sleep 0.1
done
kill -TERM $pid
wait $pid || true
restore=$(sed -n 's/.*state restored in \([0-9.]*\)s.*/\1/p' "$work/big2.log")
echo "recovery: state_bytes=$size restore_seconds=$restore"

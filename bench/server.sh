#!/usr/bin/env bash
# The server under HTTP load (issue: the server): starts `dataflow run` on
# free ports of 127.0.0.1, submits two unbounded pipelines (generator ->
# filter -> blackhole, as fast as they go), measures their throughput for
# DURATION seconds alone, then again while `wrk` loads GET /api/v1/pipelines
# and GET /health, and prints requests/s, p99 latency and the pipelines'
# rows/s before and during the load (the ratio is the cost of the load).
#   bench/server.sh [DURATION=10] [CONNECTIONS=16]
# BENCH_BUILD_DIR=DIR uses DIR/bin/dataflow (default build/, built Release).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-16}
bin=${BENCH_BUILD_DIR:-build}
[ "$bin" = build ] && scripts/build.sh Release --target dataflow >/dev/null
dataflow=$bin/bin/dataflow
command -v wrk >/dev/null || { echo "bench/server.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }

dir=$(mktemp -d /tmp/dataflow-bench-server.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(port); metrics=$(port); health=$(port)
cat >"$dir/config.yaml" <<EOF
server: {host: 127.0.0.1, port: $api, data_dir: $dir/data, shutdown_grace_period: 20s}
runtime: {workers: 1}
monitoring:
  metrics: {host: 127.0.0.1, port: $metrics}
  health: {host: 127.0.0.1, port: $health}
  logging: {level: warn, format: json, output: $dir/server.log}
EOF
"$dataflow" run --config "$dir/config.yaml" 2>"$dir/server.err" &
server=$!
cleanup() { kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$health/health/ready" >/dev/null && break
  sleep 0.1
done

for name in load-a load-b; do
  curl -sf -XPOST -H 'Content-Type: application/yaml' "http://127.0.0.1:$api/api/v1/pipelines?start=true" \
    --data-binary @- >/dev/null <<EOF
name: $name
sources:
  - {id: gen, type: generator, fields: {id: "i", price: "rand() * 100"}}
transforms:
  - {id: big, type: filter, input: gen, where: "price > 50"}
sinks:
  - {id: out, type: blackhole, input: big}
EOF
done

processed() {  # sum of dataflow_events_processed_total over both pipelines
  curl -sf "http://127.0.0.1:$metrics/metrics" |
    awk '/^dataflow_events_processed_total/ { s += $2 } END { printf "%.0f", s }'
}
rate_over() {  # rows/s over $duration seconds, while "$@" runs (or sleeps)
  local a b
  a=$(processed)
  "$@"
  b=$(processed)
  awk -v a="$a" -v b="$b" -v d="$duration" 'BEGIN { printf "%.0f", (b - a) / d }'
}
load() {  # load URL OUT: wrk on URL for $duration seconds, its report to OUT
  wrk -t2 -c"$connections" -d"${duration}s" --latency "$1" >"$2"
}
sleep 2  # past start-up
alone=$(rate_over sleep "$duration")
echo "pipelines alone: $alone rows/s"
for path in /api/v1/pipelines /health; do
  p=$api; [ "$path" = /health ] && p=$health
  out="$dir/wrk-$(tr / _ <<<"$path").txt"
  during=$(rate_over load "http://127.0.0.1:$p$path" "$out")
  rps=$(awk '/Requests\/sec/ { print $2 }' "$out")
  p99=$(awk '$1 == "99%" { print $2 }' "$out")
  ratio=$(awk -v a="$alone" -v b="$during" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')
  echo "GET $path: $rps requests/s, p99 $p99 ($connections connections); pipelines during: $during rows/s (x$ratio of alone)"
done

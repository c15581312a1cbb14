#!/usr/bin/env bash
# The server's HTTP side under load while pipelines run (issues 7 and 8):
# starts `dataflow run` on free ports of 127.0.0.1 with two unbounded
# generator pipelines, measures their rows/s alone (from /metrics), then
#   1. wrk -t2 -c32 against GET /api/v1/pipelines, then GET /health;
#   2. a hostile run: wrk sending 64 KiB headers (http_load_big_headers.lua)
#      against /api/v1/pipelines while a slowloris loop holds connections
#      open sending one header byte at a time, and a plain wrk on /health
#      beside them measures what honest clients still get;
# and prints requests/s, p99 and the pipelines' rows/s during each run as a
# ratio to alone.
#   bench/http_load.sh [DURATION=20] [CONNECTIONS=32] [SLOW_CLIENTS=64]
# BENCH_BUILD_DIR=DIR uses DIR/bin/dataflow (default build/, built Release).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20}
connections=${2:-32}
slow_clients=${3:-64}
bin=${BENCH_BUILD_DIR:-build}
[ "$bin" = build ] && scripts/build.sh Release --target dataflow >/dev/null
dataflow=$bin/bin/dataflow
command -v wrk >/dev/null || { echo "bench/http_load.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }

dir=$(mktemp -d /tmp/dataflow-http-load.XXXXXX)
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
slow_pids=()
cleanup() {
  for p in "${slow_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null || true
  rm -rf "$dir"
}
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
ratio() { awk -v a="$alone" -v b="$1" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }'; }
report() {  # report LABEL WRK_OUTPUT ROWS_PER_S
  local rps p99 errors
  rps=$(awk '/Requests\/sec/ { print $2 }' "$2")
  p99=$(awk '$1 == "99%" { print $2 }' "$2")
  errors=$(awk '/Non-2xx or 3xx responses/ { print $5 } /Socket errors/ { print }' "$2" | tr '\n' ' ')
  echo "$1: $rps requests/s, p99 $p99${errors:+ ($errors)}; pipelines during: $3 rows/s (x$(ratio "$3") of alone)"
}

# One slow client: a request line, then one header byte every second,
# never ending the headers (the server's header timeout must cut it).
slowloris() {
  python3 - "$api" <<'EOF' &
import socket, sys, time
port = int(sys.argv[1])
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /api/v1/pipelines HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        while True:
            time.sleep(1)
            s.sendall(b"a")
    except OSError:
        time.sleep(0.1)  # cut by the server: come back
EOF
  slow_pids+=($!)
}

sleep 2  # past start-up
alone=$(rate_over sleep "$duration")
echo "pipelines alone: $alone rows/s (2 generator pipelines, 1 worker)"

for path in /api/v1/pipelines /health; do
  p=$api; [ "$path" = /health ] && p=$health
  out="$dir/wrk-$(tr / _ <<<"$path").txt"
  during=$(rate_over load "http://127.0.0.1:$p$path" "$out")
  report "GET $path, $connections connections" "$out" "$during"
done

# Hostile: oversized headers and slow clients against the API port, honest
# clients on /health meanwhile.
for _ in $(seq "$slow_clients"); do slowloris; done
hostile() {
  wrk -t1 -c8 -d"${duration}s" --latency -s bench/http_load_big_headers.lua \
    "http://127.0.0.1:$api/api/v1/pipelines" >"$dir/wrk-big.txt" &
  local big=$!
  wrk -t1 -c"$connections" -d"${duration}s" --latency "http://127.0.0.1:$health/health" \
    >"$dir/wrk-honest.txt"
  wait "$big" || true
}
during=$(rate_over hostile)
report "64 KiB headers to the API (8 connections, answered 431)" "$dir/wrk-big.txt" "$during"
report "GET /health beside them and $slow_clients slowloris clients" "$dir/wrk-honest.txt" "$during"
for p in "${slow_pids[@]}"; do kill "$p" 2>/dev/null || true; done
slow_pids=()
curl -sf -o /dev/null "http://127.0.0.1:$api/api/v1/pipelines" && echo "API answers after the hostile run"

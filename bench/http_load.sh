#!/usr/bin/env bash
# The server's HTTP side under load while pipelines run (issues 7 and 8):
# starts `dataflow run` on free ports of 127.0.0.1 with two unbounded
# generator pipelines, then
#   1. (unless PLAIN=0) wrk -t2 -cCONNECTIONS against GET /api/v1/pipelines,
#      then GET /health, each beside the pipelines;
#   2. ROUNDS rounds of: the pipelines alone for DURATION seconds, then a
#      flood for DURATION seconds: wrk sending 64 KiB headers
#      (http_load_big_headers.lua, answered 431) against the API,
#      SLOW_CLIENTS slowloris connections from one bench_slowloris process,
#      and an honest client probing GET /health 10 times a second;
# and prints requests/s, latencies, the pipelines' rows/s during each run as
# a ratio to alone (from /metrics; alone and flood interleaved, so the
# machine's other load moves both), and where the CPU went during each
# flood: the server's HTTP threads (named df-http), the rest of the server
# (the pipelines), each load generator, and the whole machine.
#   bench/http_load.sh [DURATION=20] [CONNECTIONS=32] [SLOW_CLIENTS=64] [ROUNDS=3]
# BENCH_BUILD_DIR=DIR uses DIR/bin/dataflow and DIR/bin/bench_slowloris
# (default build/, built Release).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20}
connections=${2:-32}
slow_clients=${3:-64}
rounds=${4:-3}
bin=${BENCH_BUILD_DIR:-build}
[ "$bin" = build ] && scripts/build.sh Release --target dataflow bench_slowloris >/dev/null
dataflow=$bin/bin/dataflow
slowloris=$bin/bin/bench_slowloris
command -v wrk >/dev/null || { echo "bench/http_load.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }
[ -x "$slowloris" ] || { echo "bench/http_load.sh: $slowloris is missing (build target bench_slowloris)" >&2; exit 1; }

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
cleanup() {
  kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$health/health/ready" >/dev/null && break
  sleep 0.1
done

# The HTTP io threads: the threads called df-http before any pipeline
# starts (a thread a handler starts inherits the name, so pipelines' threads
# are called df-http too).
http_tids=()
for t in /proc/"$server"/task/*; do
  [ "$(cat "$t/comm")" = df-http ] && http_tids+=("${t##*/}")
done
# IO_NICE=N sets the io threads' nice value (the server's own is
# HttpServerOptions::io_nice, 10; going below it needs root), to compare.
[ -n "${IO_NICE:-}" ] && renice -n "$IO_NICE" -p "${http_tids[@]}" >/dev/null
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
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }'; }
wrk_summary() {  # requests/s, p99 and errors of a wrk --latency report
  local rps p99 errors
  rps=$(awk '/Requests\/sec/ { print $2 }' "$1")
  p99=$(awk '$1 == "99%" { print $2 }' "$1")
  errors=$(awk '/Non-2xx or 3xx responses/ { print $5 } /Socket errors/ { print }' "$1" | tr '\n' ' ')
  echo "$rps requests/s, p99 $p99${errors:+ ($errors)}"
}

# CPU accounting, in clock ticks: a process (all its threads), the server's
# threads by name, the machine's busy time (every process, others' too).
hz=$(getconf CLK_TCK)
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
thread_ticks() {  # the HTTP io threads' ticks
  local t sum=0
  for t in "${http_tids[@]}"; do
    sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$server/task/$t/stat")))
  done
  echo "$sum"
}
# The machine's busy and total ticks (all CPUs, every process).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
busy_share() {  # busy_share "BUSY0 TOTAL0" "BUSY1 TOTAL1": the machine's busy % between
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
    printf "%.0f%%", (y[2] > x[2] ? 100 * (y[1] - x[1]) / (y[2] - x[2]) : 0) }'
}
seconds() { awk -v t="$1" -v hz="$hz" 'BEGIN { printf "%.1f", t / hz }'; }
# A load generator's CPU: run under /usr/bin/time, user+system seconds to FILE.
timed() {  # timed FILE COMMAND...
  local out=$1
  shift
  /usr/bin/time -f '%U %S' -o "$out" "$@"
}
cpu_of() { awk '{ printf "%.1f", $1 + $2 }' "$1"; }

# The honest client: one curl process, GET /health ten times a second for
# $duration seconds on a new connection each time (Connection: close), each
# capped at 2 s, its CPU to $dir/cpu-probe; probe_summary says how many were
# answered, the median and the slowest.
probe_health() {
  timed "$dir/cpu-probe" curl -s -o /dev/null --rate 10/s -m 2 -H 'Connection: close' \
    -w '%{http_code} %{time_total}\n' "http://127.0.0.1:$health/health?probe=[1-$((duration * 10))]"
}
probe_summary() {
  sort -k2 -g "$1" | awk '$1 == 200 { ok++ } { t[NR] = $2 } END {
    printf "%d/%d answered 200, median %.1f ms, slowest %.1f ms",
      ok, NR, 1000 * t[int((NR + 1) / 2)], 1000 * t[NR] }'
}

sleep 2  # past start-up
load() {  # load URL OUT: wrk on URL for $duration seconds, its report to OUT
  wrk -t2 -c"$connections" -d"${duration}s" --latency "$1" >"$2"
}
if [ "${PLAIN:-1}" != 0 ]; then
  alone=$(rate_over sleep "$duration")
  echo "pipelines alone: $alone rows/s (2 generator pipelines, 1 worker)"
  for path in /api/v1/pipelines /health; do
    p=$api; [ "$path" = /health ] && p=$health
    out="$dir/wrk-$(tr / _ <<<"$path").txt"
    during=$(rate_over load "http://127.0.0.1:$p$path" "$out")
    echo "GET $path, $connections connections: $(wrk_summary "$out"); pipelines during: $during rows/s (x$(ratio "$alone" "$during") of alone)"
  done
fi

# The flood: oversized headers and slow clients against the API port, an
# honest client on /health meanwhile.
flood() {
  timed "$dir/cpu-big" wrk -t1 -c8 -d"${duration}s" --latency -s bench/http_load_big_headers.lua \
    "http://127.0.0.1:$api/api/v1/pipelines" >"$dir/wrk-big.txt" &
  local big=$!
  timed "$dir/cpu-slow" "$slowloris" "$api" "$slow_clients" "$duration" >"$dir/slowloris.txt" &
  local slow=$!
  probe_health >"$dir/probe.txt" || true
  wait "$big" "$slow" || true
}
echo "the server's ${#http_tids[@]} HTTP io threads run at nice $(for t in "${http_tids[@]}"; do awk '{ print $19 }' "/proc/$server/task/$t/stat"; done | tr '\n' ' ')"
echo "flood: wrk -t1 -c8 with 64 KiB headers on the API, $slow_clients slowloris clients, /health probed 10/s; ${duration}s each phase"
for round in $(seq "$rounds"); do
  s0=$(proc_ticks "$server"); m0=$(machine_ticks)
  alone=$(rate_over sleep "$duration")
  s1=$(proc_ticks "$server"); m1=$(machine_ticks); h1=$(thread_ticks)
  during=$(rate_over flood)
  s2=$(proc_ticks "$server"); m2=$(machine_ticks); h2=$(thread_ticks)
  echo "round $round: pipelines alone $alone rows/s, during the flood $during rows/s (x$(ratio "$alone" "$during"))"
  echo "  64 KiB headers: $(wrk_summary "$dir/wrk-big.txt")"
  echo "  $(cat "$dir/slowloris.txt")"
  echo "  GET /health: $(probe_summary "$dir/probe.txt")"
  echo "  CPU s alone: server $(seconds $((s1 - s0))), machine busy $(busy_share "$m0" "$m1") ($(nproc) cores)"
  echo "  CPU s flood: server $(seconds $((s2 - s1))) (${#http_tids[@]} HTTP threads $(seconds $((h2 - h1))), pipelines and the rest $(seconds $((s2 - s1 - (h2 - h1))))), wrk $(cpu_of "$dir/cpu-big"), slowloris $(cpu_of "$dir/cpu-slow"), /health probe $(cpu_of "$dir/cpu-probe"); machine busy $(busy_share "$m1" "$m2")"
done
curl -sf -o /dev/null "http://127.0.0.1:$api/api/v1/pipelines" && echo "API answers after the flood"

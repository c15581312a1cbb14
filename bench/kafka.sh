#!/usr/bin/env bash
# Kafka throughput (issue 5), both sides in this same run on one librdkafka
# mock cluster (tests/support/kafka/kafka_mock, 3 brokers on 127.0.0.1):
#  (a) `kcat -C -e | kcat -P` moving MESSAGES JSON messages (~200 bytes) from
#      bench-in to bench-kcat;
#  (b) `dataflow exec bench/pipelines/kafka_json_filter.yaml` (Kafka -> JSON
#      decode -> filter -> Kafka, bounded source) from bench-in to bench-df.
# Prints messages/s, peak RSS and CPU seconds (user + system) of each, the
# mock brokers' CPU seconds while each side ran (broker_cpu_s), the
# ratio (b)/(a) and dataflow's final consumer lag; checks that each side wrote
# all MESSAGES messages (sum of the output end offsets). On a shared machine
# the CPU seconds show what the wall time cannot: the work each side did.
#   bench/kafka.sh [MESSAGES]        (default 10000000)
# BENCH_BUILD_DIR=DIR builds (Release) into DIR and runs from there instead
# of build/ (as bench/run.sh); BENCH_NO_BUILD=1 runs DIR/bin as it is (e.g. an
# older dataflow to compare); BENCH_PIPELINE=FILE runs another pipeline (same
# variables); BENCH_KEEP_LOG=FILE keeps dataflow's stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000000}
build=${BENCH_BUILD_DIR:-build}
targets=(dataflow kafka_mock bench_kafka_produce)
if [ -n "${BENCH_NO_BUILD:-}" ]; then
  :
elif [ "$build" = build ]; then
  scripts/build.sh Release --target "${targets[@]}" >/dev/null
else
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null
fi
bin=$build/bin
work=$(mktemp -d /tmp/df-bench-kafka.XXXXXX)
mock_pid=""
cleanup() {
  [ -z "$mock_pid" ] || { kill "$mock_pid" 2>/dev/null; wait "$mock_pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

# The mock keeps only about 5 MB per partition (older messages are dropped),
# so the input gets one partition per 12k messages (~2.4 MB).
partitions=$(( (n + 11999) / 12000 ))
[ "$partitions" -ge 4 ] || partitions=4
"$bin/kafka_mock" --topic "bench-in:$partitions" --topic "bench-kcat:$partitions" \
  --topic "bench-df:$partitions" >"$work/mock.out" 2>"$work/mock.err" </dev/null &
mock_pid=$!
for _ in $(seq 1 100); do
  [ -s "$work/mock.out" ] && break
  sleep 0.1
done
brokers=$(head -n1 "$work/mock.out")
[ -n "$brokers" ] || { echo "kafka.sh: kafka_mock did not start: $(cat "$work/mock.err")" >&2; exit 1; }

now() { date +%s.%N; }
# Sum of the end offsets of every partition of topic $1: the messages written.
written() {
  local args=() p
  for ((p = 0; p < partitions; p++)); do args+=(-t "$1:$p:-1"); done
  kcat -b "$brokers" -Q "${args[@]}" | awk '{ s += $NF } END { print s + 0 }'
}
check_written() {
  local got
  got=$(written "$1")
  [ "$got" -eq "$n" ] || { echo "kafka.sh: $1 holds $got messages, expected $n" >&2; exit 1; }
}
# /usr/bin/time -f "%M %U %S" output: peak RSS in MiB, CPU seconds.
mib() { awk '{ printf "%.0f", $1 / 1024 }' "$1"; }
cpu() { awk '{ s += $2 + $3 } END { printf "%.1f", s }' "$@"; }
# CPU seconds the mock brokers spent so far (utime + stime of their process):
# the broker's share of each side's work.
mock_ticks() { awk '{ print $14 + $15 }' "/proc/$mock_pid/stat"; }
mock_cpu() { awk -v a="$1" -v b="$(mock_ticks)" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (b - a) / hz }'; }

"$bin/bench_kafka_produce" "$brokers" bench-in "$partitions" "$n"

# (a) the kcat pipe; peak RSS of each side.
m0=$(mock_ticks)
t0=$(now)
/usr/bin/time -f "%M %U %S" -o "$work/kcat-c.rss" kcat -b "$brokers" -C -t bench-in -o beginning -e -q |
  /usr/bin/time -f "%M %U %S" -o "$work/kcat-p.rss" kcat -b "$brokers" -P -t bench-kcat
t1=$(now)
check_written bench-kcat
kcat_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
kcat_rps=$(awk -v n="$n" -v s="$kcat_s" 'BEGIN { printf "%.0f", n / s }')
echo "kcat pipe: messages=$n partitions=$partitions seconds=$kcat_s messages_per_s=$kcat_rps" \
     "peak_rss_mb_consumer=$(mib "$work/kcat-c.rss") peak_rss_mb_producer=$(mib "$work/kcat-p.rss")" \
     "cpu_s=$(cpu "$work/kcat-c.rss" "$work/kcat-p.rss")" "broker_cpu_s=$(mock_cpu "$m0")"

# (b) dataflow, wall time of the whole process (start-up and group join included).
m0=$(mock_ticks)
t0=$(now)
BENCH_KAFKA_BROKERS=$brokers /usr/bin/time -f "%M %U %S" -o "$work/df.rss" \
  "$bin/dataflow" exec "${BENCH_PIPELINE:-bench/pipelines/kafka_json_filter.yaml}" --no-progress --workers 2 \
  2>"$work/df.log" || { echo "kafka.sh: dataflow failed:" >&2; cat "$work/df.log" >&2; exit 1; }
t1=$(now)
check_written bench-df
sed -n -e 's/^dataflow: pipeline/dataflow (engine summary):/p' \
  -e 's/^dataflow: consumer lag/dataflow (engine summary): consumer lag/p' "$work/df.log"
[ -z "${BENCH_KEEP_LOG:-}" ] || cp "$work/df.log" "$BENCH_KEEP_LOG"
df_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
df_rps=$(awk -v n="$n" -v s="$df_s" 'BEGIN { printf "%.0f", n / s }')
echo "dataflow: messages=$n seconds=$df_s messages_per_s=$df_rps peak_rss_mb=$(mib "$work/df.rss")" \
     "cpu_s=$(cpu "$work/df.rss")" "broker_cpu_s=$(mock_cpu "$m0")" \
     "ratio_vs_kcat=$(awk -v a="$df_rps" -v b="$kcat_rps" 'BEGIN { printf "%.2f", a / b }')"

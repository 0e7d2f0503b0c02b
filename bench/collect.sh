#!/usr/bin/env bash
# Benchmark of collect (release build):
#  1. footprint: RSS and CPU share of the collect process over DURATION
#     seconds (default 300) at its 10 s interval with every input enabled,
#     against real InfluxDB, MariaDB, nginx and php-fpm started for the run;
#  2. cost per point: collect's write path for 100,000 points to a real
#     InfluxDB, beside a plain Python writer doing the same in the same run.
# Telegraf cannot be installed here; bench/README.md compares on paper.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-300}
SAMPLE=10

cargo build --release -q -p collect --bin collect --example benchbed --example writecost
bin=target/release/collect
bed_bin=target/release/examples/benchbed

work=$(mktemp -d)
bed=""
pid=""
cleanup() {
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" || true; fi
	exec 3>&- 2>/dev/null || true
	if [[ -n $bed ]]; then wait "$bed" || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

# The bed keeps its servers up until its stdin (this fifo) closes.
mkfifo "$work/hold"
"$bed_bin" <"$work/hold" >"$work/bed.out" 2>"$work/bed.err" &
bed=$!
exec 3>"$work/hold"
for _ in $(seq 1 600); do
	grep -q '^INFLUX ' "$work/bed.out" && break
	kill -0 "$bed" || { cat "$work/bed.err"; exit 1; }
	sleep 0.2
done
config=$(sed -n 's/^CONFIG //p' "$work/bed.out")
influx=$(sed -n 's/^INFLUX //p' "$work/bed.out")
[[ -n $config && -n $influx ]] || { echo "bench bed did not start" >&2; cat "$work/bed.err" >&2; exit 1; }

"$bin" --config "$config" 2>"$work/collect.log" &
pid=$!

# utime + stime, in clock ticks (fields 14 and 15; the command name in
# field 2 has no spaces here).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

start_ticks=$(cpu_ticks "$pid")
max_rss=0 sum_rss=0 n=0 max_anon=0
for _ in $(seq 1 $((DURATION / SAMPLE))); do
	sleep "$SAMPLE"
	kill -0 "$pid" || { echo "collect exited" >&2; cat "$work/collect.log" >&2; exit 1; }
	rss=$(status_kib "$pid" VmRSS)
	anon=$(status_kib "$pid" RssAnon)
	((rss > max_rss)) && max_rss=$rss
	((anon > max_anon)) && max_anon=$anon
	sum_rss=$((sum_rss + rss)) n=$((n + 1))
done
end_ticks=$(cpu_ticks "$pid")
kill "$pid"
wait "$pid" || true
pid=""

q() {
	curl -sS -G "$influx/query" --data-urlencode db=metrics --data-urlencode "q=$1" |
		jq -r '.results[0].series[0].values[0][1] // 0'
}
rounds=$(q "SELECT count(buffer_size) FROM internal_collect")
written=$(q "SELECT last(metrics_written) FROM internal_collect")
gathered=$(q "SELECT last(metrics_gathered) FROM internal_collect")
dropped=$(q "SELECT last(metrics_dropped) FROM internal_collect")
errors=$(q "SELECT last(input_errors) FROM internal_collect")
measurements=$(curl -sS -G "$influx/query" --data-urlencode db=metrics \
	--data-urlencode 'q=SHOW MEASUREMENTS' | jq -r '[.results[0].series[0].values[][0]] | join(" ")')
exec 3>&-
wait "$bed" || true
bed=""

cpu_ms=$(((end_ticks - start_ticks) * 1000 / hz))
share=$(awk -v ms="$cpu_ms" -v s="$DURATION" 'BEGIN {printf "%.3f", ms / 10 / s}')
avg_rss=$((sum_rss / n))
per_round=$(awk -v g="$gathered" -v r="$rounds" 'BEGIN {printf "%.0f", (r > 0 ? g / r : 0)}')

echo "== footprint: ${DURATION} s at a 10 s interval, every input enabled"
echo "measurements: $measurements"
echo "rounds stored: $rounds, points per round: $per_round, written: $written, dropped: $dropped, input errors: $errors"
echo "RSS: max ${max_rss} KiB, mean ${avg_rss} KiB (RssAnon max ${max_anon} KiB)"
echo "CPU: ${cpu_ms} ms over ${DURATION} s = ${share}% of one core"
awk -v r="$max_rss" -v s="$share" 'BEGIN {
	printf "targets: RSS <= 10240 KiB: %s; CPU < 0.2%%: %s\n",
		(r <= 10240 ? "met" : "MISSED"), (s < 0.2 ? "met" : "MISSED")
}'

echo "== cost per point: 100,000 points to InfluxDB"
target/release/examples/writecost | grep '^RESULT'

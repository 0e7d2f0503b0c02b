#!/usr/bin/env bash
# Benchmark of collect beside two real peers installed from Debian:
#  1. footprint: collect (release, glibc), collect (release, static musl),
#     collectd 5.12 and prometheus-node-exporter 1.5 run at the same time on
#     this host for DURATION seconds (default 300) at a 10 s interval, against
#     real InfluxDB, MariaDB, nginx and php-fpm started for the run
#     (crates/collect/examples/benchbed.rs). Each agent's RSS and PSS are
#     sampled every 10 s, its CPU (utime + stime) taken over its whole life,
#     and the points each one got into InfluxDB in that time are counted
#     there, per round and per CPU time:
#       - collect glibc: the bed's config (every input) -> database metrics;
#       - collect musl: the same config -> database metrics_musl;
#       - collectd: cpu, memory, interface, df, processes, nginx, mysql ->
#         network plugin -> InfluxDB's collectd listener -> database collectd;
#       - node_exporter: cpu, meminfo, netdev, filesystem, processes,
#         textfile; scraped by a third collect (glibc, prometheus input only)
#         -> database node. That scraper's cost is shown on its own line and
#         not charged to node_exporter.
#  2. cost per point: collect's write path for 100,000 points to a real
#     InfluxDB, beside a plain Python writer doing the same in the same run.
# Needs root (PSS of other processes), collectd-core, prometheus-node-exporter,
# jq, curl, python3, and the x86_64-unknown-linux-musl Rust target.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-300}
SAMPLE=10
# Agents in report order; "scraper" is the collect that scrapes node_exporter.
AGENTS=(glibc musl collectd node_exporter scraper)

work=""
bed=""
declare -A pid=() rss_sum=() rss_max=() pss_sum=() pss_max=() ticks=()

die() {
	echo "collect.sh: $*" >&2
	exit 1
}

cleanup() {
	local name p
	for name in "${!pid[@]}"; do
		p=${pid[$name]}
		if kill -0 "$p" 2>/dev/null; then
			kill "$p" 2>/dev/null || true
			wait "$p" 2>/dev/null || true
		fi
	done
	exec 3>&- 2>/dev/null || true
	if [[ -n $bed ]]; then
		# The bed stops its servers once its stdin closes; give it 60 s.
		timeout 60 tail --pid="$bed" -f /dev/null || kill "$bed" 2>/dev/null || true
		wait "$bed" 2>/dev/null || true
	fi
	if [[ -n $work ]]; then rm -rf "$work"; fi
}

check_tools() {
	local t
	for t in collectd prometheus-node-exporter jq curl python3 awk; do
		command -v "$t" >/dev/null || die "$t is not installed"
	done
	[[ -r /usr/share/collectd/types.db ]] || die "no /usr/share/collectd/types.db (collectd-core)"
	((DURATION >= 30 && DURATION % SAMPLE == 0)) || die "DURATION must be a multiple of $SAMPLE, at least 30"
}

build() {
	cargo build --release -q -p collect --bin collect --example benchbed --example writecost
	cargo build --release -q --target x86_64-unknown-linux-musl -p collect --bin collect
	glibc_bin=target/release/collect
	musl_bin=target/x86_64-unknown-linux-musl/release/collect
	bed_bin=target/release/examples/benchbed
}

# A free loopback port: free_port tcp|udp
free_port() {
	python3 - "$1" <<-'EOF'
		import socket, sys
		kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
		s = socket.socket(socket.AF_INET, kind)
		s.bind(("127.0.0.1", 0))
		print(s.getsockname()[1])
	EOF
}

# Starts the bed. InfluxDB 1.x takes config overrides from the environment:
# the INFLUXDB_COLLECTD_0_* variables turn on its collectd listener (UDP,
# Debian's types.db, database collectd), no change to the bed's config file.
start_bed() {
	collectd_port=$(free_port udp)
	mkfifo "$work/hold"
	INFLUXDB_COLLECTD_0_ENABLED=true \
		INFLUXDB_COLLECTD_0_BIND_ADDRESS="127.0.0.1:$collectd_port" \
		INFLUXDB_COLLECTD_0_DATABASE=collectd \
		INFLUXDB_COLLECTD_0_TYPESDB=/usr/share/collectd/types.db \
		INFLUXDB_COLLECTD_0_BATCH_TIMEOUT=1s \
		"$bed_bin" <"$work/hold" >"$work/bed.out" 2>"$work/bed.err" &
	bed=$!
	# The bed keeps its servers up until its stdin (this fifo) closes.
	exec 3>"$work/hold"
	local _
	for _ in $(seq 1 600); do
		grep -q '^INFLUX ' "$work/bed.out" && break
		kill -0 "$bed" 2>/dev/null || { cat "$work/bed.err" >&2; die "bench bed exited"; }
		sleep 0.2
	done
	config=$(sed -n 's/^CONFIG //p' "$work/bed.out")
	influx=$(sed -n 's/^INFLUX //p' "$work/bed.out")
	[[ -n $config && -n $influx ]] || { cat "$work/bed.err" >&2; die "bench bed did not start"; }
}

# The value of KEY in [SECTION] of collect's config, quotes removed.
toml_get() {
	awk -v s="[$1]" -v k="$2" '
		/^\[/ { in_s = ($0 == s); next }
		in_s && $1 == k { sub(/^[^=]*= */, ""); gsub(/"/, ""); print; exit }
	' "$config"
}

write_configs() {
	# collect musl: the bed's config, its own database.
	sed '/^\[output\]$/a database = "metrics_musl"' "$config" >"$work/musl.toml"
	grep -q '^database = "metrics_musl"$' "$work/musl.toml" || die "no [output] in $config"

	node_port=$(free_port tcp)
	cat >"$work/scraper.toml" <<-EOF
		interval = "10s"
		service = "bench"
		pod = "bench-node"
		[output]
		url = "$influx"
		username = ""
		database = "node"
		[inputs.cgroup]
		enabled = false
		[inputs.net]
		enabled = false
		[inputs.internal]
		enabled = false
		[inputs.prometheus]
		urls = ["http://127.0.0.1:$node_port/metrics"]
	EOF

	local nginx_url mysql_port mysql_user mysql_password
	nginx_url=$(toml_get inputs.nginx url)
	mysql_port=$(toml_get inputs.mysql port)
	mysql_user=$(toml_get inputs.mysql user)
	mysql_user=${mysql_user:-collect}
	mysql_password=$(head -n 1 "$(toml_get inputs.mysql password_file)")
	[[ -n $nginx_url && -n $mysql_port && -n $mysql_password ]] || die "bed config lacks nginx or mysql"
	mkdir -p "$work/collectd" "$work/textfile"
	# The same inputs as collect's where collectd has a plugin: CPU and
	# memory of the host (collect: its cgroup, here the v1 root), network
	# interfaces but lo, usage of /, the four programs, nginx stub_status,
	# MariaDB's status. collectd's processes plugin matches a name against
	# the process name and a ProcessMatch regex against the command line.
	cat >"$work/collectd.conf" <<-EOF
		Hostname "bench"
		FQDNLookup false
		BaseDir "$work/collectd"
		PIDFile "$work/collectd/collectd.pid"
		PluginDir "/usr/lib/collectd"
		TypesDB "/usr/share/collectd/types.db"
		Interval 10
		LoadPlugin logfile
		<Plugin logfile>
		  LogLevel "info"
		  File STDERR
		</Plugin>
		LoadPlugin cpu
		<Plugin cpu>
		  ReportByCpu false
		  ReportByState true
		</Plugin>
		LoadPlugin memory
		LoadPlugin interface
		<Plugin interface>
		  Interface "lo"
		  IgnoreSelected true
		</Plugin>
		LoadPlugin df
		<Plugin df>
		  MountPoint "/"
		  IgnoreSelected false
		</Plugin>
		LoadPlugin processes
		<Plugin processes>
		  ProcessMatch "nginx" "nginx"
		  ProcessMatch "php-fpm" "php-fpm: "
		  Process "mariadbd"
		  Process "influxd"
		</Plugin>
		LoadPlugin nginx
		<Plugin nginx>
		  URL "$nginx_url"
		</Plugin>
		LoadPlugin mysql
		<Plugin mysql>
		  <Database "bench">
		    Host "127.0.0.1"
		    Port $mysql_port
		    User "$mysql_user"
		    Password "$mysql_password"
		  </Database>
		</Plugin>
		LoadPlugin network
		<Plugin network>
		  Server "127.0.0.1" "$collectd_port"
		</Plugin>
	EOF
	collectd -t -C "$work/collectd.conf" || die "collectd rejects its config"
}

start_agents() {
	t0=$(date +%s)
	"$glibc_bin" --config "$config" 2>"$work/glibc.log" &
	pid[glibc]=$!
	"$musl_bin" --config "$work/musl.toml" 2>"$work/musl.log" &
	pid[musl]=$!
	collectd -f -C "$work/collectd.conf" >"$work/collectd.log" 2>&1 &
	pid[collectd]=$!
	# Only collectors with a counterpart in collect (processes: node_exporter
	# has no per-program collector, only the host's process counts).
	prometheus-node-exporter \
		--web.listen-address="127.0.0.1:$node_port" \
		--collector.disable-defaults \
		--collector.cpu --collector.meminfo --collector.netdev \
		--collector.filesystem --collector.processes --collector.textfile \
		--collector.textfile.directory="$work/textfile" \
		--collector.netdev.device-exclude='^lo$' \
		--collector.filesystem.mount-points-exclude='^/.+' \
		>"$work/node_exporter.log" 2>&1 &
	pid[node_exporter]=$!
	"$glibc_bin" --config "$work/scraper.toml" 2>"$work/scraper.log" &
	pid[scraper]=$!
}

# utime + stime, in clock ticks (fields 14 and 15 counted after the command
# name, which may hold spaces).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
pss_kib() { awk '$1 == "Pss:" {print $2}' "/proc/$1/smaps_rollup"; }

sample_all() {
	local name p rss pss
	for name in "${AGENTS[@]}"; do
		p=${pid[$name]}
		kill -0 "$p" 2>/dev/null || { cat "$work/$name.log" >&2; die "$name exited"; }
		rss=$(status_kib "$p" VmRSS)
		pss=$(pss_kib "$p")
		rss_sum[$name]=$((${rss_sum[$name]:-0} + rss))
		pss_sum[$name]=$((${pss_sum[$name]:-0} + pss))
		if ((rss > ${rss_max[$name]:-0})); then rss_max[$name]=$rss; fi
		if ((pss > ${pss_max[$name]:-0})); then pss_max[$name]=$pss; fi
	done
}

run_agents() {
	local _ name p
	start_agents
	for _ in $(seq 1 $((DURATION / SAMPLE))); do
		sleep "$SAMPLE"
		sample_all
	done
	t1=$(date +%s)
	# The processes started at t0: their CPU so far is their CPU over the run.
	for name in "${AGENTS[@]}"; do ticks[$name]=$(cpu_ticks "${pid[$name]}"); done
	for name in "${AGENTS[@]}"; do
		p=${pid[$name]}
		kill "$p"
		wait "$p" || true
		unset "pid[$name]"
	done
	# InfluxDB's collectd listener writes in batches (1 s timeout here).
	sleep 3
}

q() {
	curl -sS -m 30 -G "$influx/query" --data-urlencode "db=$1" --data-urlencode "q=$2"
}
q1() { q "$1" "$2" | jq -r '.results[0].series[0].values[0][1] // 0'; }

# "points values rounds" stored in database $1 between t0 and t1: per
# series, the points are the count of its most frequent field; values are
# all fields; rounds are the most points of any one series (a series gets
# one point a round).
count_db() {
	q "$1" "SELECT count(*) FROM /.*/ WHERE time >= ${t0}s AND time < ${t1}s GROUP BY *" |
		jq -r '[.results[0].series // [] | .[] | .values[0][1:] | map(select(. != null))]
			| "\(map(max // 0) | add // 0) \(map(add // 0) | add // 0) \(map(max // 0) | max // 0)"'
}

report_agent() {
	local name=$1 label=$2 db=$3 hz n points values rounds ms
	hz=$(getconf CLK_TCK)
	n=$((DURATION / SAMPLE))
	ms=$((ticks[$name] * 1000 / hz))
	# The scraper's points are node_exporter's row (-1: not its own).
	if [[ -n $db ]]; then
		read -r points values rounds < <(count_db "$db")
	else
		points=-1 values=-1 rounds=1
	fi
	awk -v l="$label" -v rs="${rss_sum[$name]}" -v rm="${rss_max[$name]}" \
		-v ps="${pss_sum[$name]}" -v pm="${pss_max[$name]}" -v n="$n" -v ms="$ms" \
		-v s="$((t1 - t0))" -v p="$points" -v v="$values" -v r="$rounds" 'BEGIN {
		printf "| %s | %d / %d | %d / %d | %d ms (%.3f%%) | %s | %s | %s | %s |\n",
			l, rs / n, rm, ps / n, pm, ms, ms / 10 / s,
			(p < 0 ? "(above)" : sprintf("%.1f (%d rounds)", p / r, r)), (v < 0 ? "(above)" : sprintf("%.1f", v / r)),
			(p > 0 ? sprintf("%.1f", ms * 1000 / p) : "-"),
			(v > 0 ? sprintf("%.2f", ms * 1000 / v) : "-")
	}'
	printf '%s %s %s %s %s\n' "$name" "${rss_max[$name]}" "$((rss_sum[$name] / n))" "$ms" "$points" >>"$work/figures"
}

report() {
	echo "== footprint: ${DURATION} s ($((t1 - t0)) s measured), all agents at once, 10 s interval"
	echo "collect glibc measurements: $(q metrics 'SHOW MEASUREMENTS' | jq -r '[.results[0].series[0].values[][0]] | join(" ")')"
	echo "collect glibc internal: written $(q1 metrics 'SELECT last(metrics_written) FROM internal_collect'), dropped $(q1 metrics 'SELECT last(metrics_dropped) FROM internal_collect'), input errors $(q1 metrics 'SELECT last(input_errors) FROM internal_collect')"
	echo "collect musl internal: written $(q1 metrics_musl 'SELECT last(metrics_written) FROM internal_collect'), dropped $(q1 metrics_musl 'SELECT last(metrics_dropped) FROM internal_collect'), input errors $(q1 metrics_musl 'SELECT last(input_errors) FROM internal_collect')"
	echo "collectd measurements: $(q collectd 'SHOW MEASUREMENTS' | jq -r '[.results[0].series[0].values[][0]] | join(" ")')"
	echo "node measurements: $(q node 'SHOW MEASUREMENTS' | jq -r '[.results[0].series[0].values[][0]] | join(" ")'), fields: $(q node 'SHOW FIELD KEYS' | jq -r '[.results[0].series[0].values[][0]] | length')"
	echo
	echo "| agent | RSS KiB mean / max | PSS KiB mean / max | CPU over run (% of one core) | points / round | values / round | CPU µs / point | CPU µs / value |"
	echo "|---|---|---|---|---|---|---|---|"
	: >"$work/figures"
	report_agent glibc "collect (glibc)" metrics
	report_agent musl "collect (musl, static)" metrics_musl
	report_agent collectd "collectd 5.12" collectd
	report_agent node_exporter "node_exporter 1.5 (points as scraped)" node
	report_agent scraper "collect (glibc) scraping node_exporter" ""
	echo
	# Goal: musl at or below collectd on RSS and on CPU per point, below
	# node_exporter on both (RSS compared as the mean).
	awk '{rss[$1] = $3; cpu[$1] = $4; pts[$1] = $5}
		function per(a) { return pts[a] > 0 ? cpu[a] / pts[a] : 1e30 }
		function v(ok) { return ok ? "met" : "MISSED" }
		END {
			printf "goal: musl RSS <= collectd: %s; musl CPU/point <= collectd: %s; ", v(rss["musl"] <= rss["collectd"]), v(per("musl") <= per("collectd"))
			printf "musl RSS < node_exporter: %s; musl CPU/point < node_exporter: %s\n", v(rss["musl"] < rss["node_exporter"]), v(per("musl") < per("node_exporter"))
		}' "$work/figures"
	if grep -qiE 'error|fail' "$work/collectd.log"; then
		echo "collectd log (errors):"
		grep -iE 'error|fail' "$work/collectd.log" | head -n 10
	fi
}

write_cost() {
	echo "== cost per point: 100,000 points to InfluxDB"
	timeout 600 target/release/examples/writecost | grep '^RESULT'
}

main() {
	check_tools
	build
	work=$(mktemp -d)
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	start_bed
	write_configs
	run_agents
	report
	exec 3>&-
	timeout 60 tail --pid="$bed" -f /dev/null || true
	wait "$bed" || true
	bed=""
	write_cost
}

main "$@"

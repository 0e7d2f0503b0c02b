#!/usr/bin/env bash
# supervise beside Debian's supervisord and tini, in one run on this machine.
#
#   bench/supervise.sh            (about 2 minutes; needs supervisord, tini, python3)
#   IDLE_SECONDS=10 CRASH_RUNS=3 bench/supervise.sh   (a quicker look)
#
# Each supervisor runs the same three children (`sleep 1001`, `sleep 1002`,
# `sleep 1003`). Measured:
#   - idle RSS of the supervisor process alone (VmRSS; children not counted),
#     after a 3 s settle;
#   - CPU time (utime + stime from /proc/PID/stat) over IDLE_SECONDS of idle,
#     all three supervisors idling side by side;
#   - (supervise-musl: the static musl build the images ship, when the
#     x86_64-unknown-linux-musl target is installed)
#   - crash-to-exit: SIGKILL one child, time until the supervisor process has
#     exited (median of CRASH_RUNS runs, one supervisor at a time).
# supervisord restarts or ignores dead children rather than exiting, so it
# runs its children with autorestart=false plus the usual "die with the
# container" event listener, which sends supervisord SIGTERM on
# PROCESS_STATE_EXITED; tini runs `bash -c '... & wait -n'` (tini exits when
# its one child does). See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IDLE_SECONDS=${IDLE_SECONDS:-60}
CRASH_RUNS=${CRASH_RUNS:-5}

for tool in supervisord tini python3 bash; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

echo "building supervise (release)..." >&2
cargo build --release --quiet -p supervise --manifest-path "$ROOT/Cargo.toml"
SUPERVISE_BIN="$ROOT/target/release/supervise"
# The images ship the static musl build: measured too when the target is there.
MUSL_BIN=""
if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  cargo build --release --quiet -p supervise --target x86_64-unknown-linux-musl --manifest-path "$ROOT/Cargo.toml"
  MUSL_BIN="$ROOT/target/x86_64-unknown-linux-musl/release/supervise"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cat > "$WORK/supervise.toml" <<EOF
[health]
listen = "127.0.0.1:0"

[stop]
grace_seconds = 10

[[program]]
name = "c1"
command = ["sleep", "1001"]

[[program]]
name = "c2"
command = ["sleep", "1002"]

[[program]]
name = "c3"
command = ["sleep", "1003"]
EOF

cat > "$WORK/supervisord.conf" <<EOF
[supervisord]
nodaemon=true
user=root
logfile=$WORK/supervisord.log
pidfile=$WORK/supervisord.pid
childlogdir=$WORK

[program:c1]
command=sleep 1001
autorestart=false
startsecs=0

[program:c2]
command=sleep 1002
autorestart=false
startsecs=0

[program:c3]
command=sleep 1003
autorestart=false
startsecs=0

[eventlistener:die-with-container]
command=python3 $WORK/listener.py
events=PROCESS_STATE_EXITED
EOF

# The event listener protocol: READY, read one event, act, RESULT.
cat > "$WORK/listener.py" <<'EOF'
import os, signal, sys
while True:
    sys.stdout.write("READY\n"); sys.stdout.flush()
    header = dict(f.split(":", 1) for f in sys.stdin.readline().split())
    sys.stdin.read(int(header["len"]))
    os.kill(os.getppid(), signal.SIGTERM)
    sys.stdout.write("RESULT 2\nOK"); sys.stdout.flush()
EOF

python3 - "$WORK" "$SUPERVISE_BIN" "$IDLE_SECONDS" "$CRASH_RUNS" "$MUSL_BIN" <<'EOF'
import os, signal, statistics, subprocess, sys, time

work, supervise_bin, idle_seconds, crash_runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
musl_bin = sys.argv[5]
TICK = os.sysconf("SC_CLK_TCK")
COMMANDS = {
    "supervise": [supervise_bin, "--config", f"{work}/supervise.toml"],
    "supervisord": ["supervisord", "-n", "-c", f"{work}/supervisord.conf"],
    "tini": ["tini", "-s", "--", "bash", "-c", "sleep 1001 & sleep 1002 & sleep 1003 & wait -n"],
}
if musl_bin:
    COMMANDS["supervise-musl"] = [musl_bin, "--config", f"{work}/supervise.toml"]

def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return fields  # fields[0] = state, [1] = ppid, [11] = utime, [12] = stime

def sleeps_under(root):
    """Pids of the `sleep 100N` processes descending from root."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent[int(entry)] = int(stat(entry)[1])
            except (OSError, IndexError):
                pass
    found = []
    for pid in parent:
        p = pid
        while p in parent and p != root and p > 1:
            p = parent[p]
        if p == root:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv[0] == b"sleep" and argv[1].startswith(b"100"):
                found.append(pid)
    return found

def start(name):
    proc = subprocess.Popen(COMMANDS[name], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    deadline = time.monotonic() + 20
    while len(sleeps_under(proc.pid)) < 3:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"{name} did not start its three children")
        time.sleep(0.05)
    return proc

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def cpu_ticks(pid):
    s = stat(pid)
    return int(s[11]) + int(s[12])

def stop(proc, leftovers):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

# Idle: all three side by side.
procs = {name: start(name) for name in COMMANDS}
children = {name: sleeps_under(p.pid) for name, p in procs.items()}
time.sleep(3)
rss = {name: rss_kib(p.pid) for name, p in procs.items()}
before = {name: cpu_ticks(p.pid) for name, p in procs.items()}
time.sleep(idle_seconds)
cpu_ms = {name: (cpu_ticks(p.pid) - before[name]) * 1000 / TICK for name, p in procs.items()}
for name, p in procs.items():
    stop(p, children[name])

# Crash-to-exit: one supervisor at a time.
crash_ms = {}
for name in COMMANDS:
    runs = []
    for _ in range(crash_runs):
        proc = start(name)
        kids = sleeps_under(proc.pid)
        time.sleep(1)
        t0 = time.monotonic()
        os.kill(kids[0], signal.SIGKILL)
        try:
            proc.wait(timeout=30)
            runs.append((time.monotonic() - t0) * 1000)
        except subprocess.TimeoutExpired:
            runs.append(float("inf"))
        stop(proc, kids)
    crash_ms[name] = statistics.median(runs)

print(f"idle {idle_seconds} s, crash-to-exit median of {crash_runs} runs; "
      f"RSS = the supervisor process alone")
print(f"{'':14} {'RSS KiB':>9} {'CPU ms/' + str(idle_seconds) + 's':>13} {'crash->exit ms':>15}")
for name in COMMANDS:
    print(f"{name:14} {rss[name]:>9} {cpu_ms[name]:>13.0f} {crash_ms[name]:>15.1f}")
s = "supervise"
print()
print(f"RSS: supervisord / supervise = {rss['supervisord'] / rss[s]:.1f}x, "
      f"tini / supervise = {rss['tini'] / rss[s]:.2f}x")
print(f"crash->exit: supervisord / supervise = {crash_ms['supervisord'] / crash_ms[s]:.0f}x, "
      f"tini / supervise = {crash_ms['tini'] / crash_ms[s]:.2f}x")
ok_rss = rss[s] <= 6 * 1024 and rss[s] * 3 < rss["supervisord"]
ok_crash = crash_ms[s] < 100
print(f"targets: RSS <= 6 MiB and < supervisord/3: {'met' if ok_rss else 'MISSED'}; "
      f"crash->exit < 100 ms: {'met' if ok_crash else 'MISSED'}")
EOF

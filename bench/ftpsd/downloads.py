#!/usr/bin/env python3
"""Runs N curl downloads at once against one server and measures the server.

Each client is one `curl -o /dev/null -w '%{size_download}'` of one URL;
every one must bring the expected number of bytes. Around the run, the
server's CPU time is read from /proc/PID/stat for its whole process tree:
utime + stime of every live process in it, plus cutime + cstime of the root
(children it has reaped, such as vsftpd's session processes). While the
clients run, the VmRSS of every process of the tree is summed every 0.1 s;
the peak of that sum is reported.

Prints one line of key=value pairs: bytes, seconds (wall time from the first
client's start to the last one's end), mbps (10^6 bytes a second), cpu_s
(the server's CPU seconds over the run), cpu_s_per_gib, peak_rss_kib.
"""

import argparse
import os
import subprocess
import sys
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")


def processes():
    """pid -> (ppid, utime + stime, cutime + cstime) of every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid = int(fields[1])
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        table[int(name)] = (ppid, utime + stime, cutime + cstime)
    return table


def tree(root, table):
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def cpu_ticks(root):
    table = processes()
    if root not in table:
        sys.exit(f"server process {root} is gone")
    return sum(table[p][1] for p in tree(root, table)) + table[root][2]


def rss_kib(root):
    total = 0
    for pid in tree(root, processes()):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pid", type=int, required=True, help="the server's root process")
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--expect", type=int, required=True, help="bytes each client must get")
    p.add_argument("--url", required=True, help="URL; {n} is replaced by the client's number")
    p.add_argument("curl_args", nargs="*", help="more curl arguments (after --)")
    a = p.parse_args()

    time.sleep(0.3)  # let the server reap what came before
    before = cpu_ticks(a.pid)
    peak = rss_kib(a.pid)
    start = time.monotonic()
    clients = [
        subprocess.Popen(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", *a.curl_args,
             a.url.replace("{n}", str(n))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(1, a.clients + 1)
    ]
    # Each client's end is taken by a thread waiting for it, so the wall time
    # does not depend on the sampling below.
    ends = [0.0] * len(clients)

    def wait(i):
        clients[i].wait()
        ends[i] = time.monotonic()

    waiters = [threading.Thread(target=wait, args=(i,)) for i in range(len(clients))]
    for w in waiters:
        w.start()
    while any(w.is_alive() for w in waiters):
        peak = max(peak, rss_kib(a.pid))
        time.sleep(0.1)
    end = max(ends)
    time.sleep(0.3)  # vsftpd's session processes exit and are reaped
    after = cpu_ticks(a.pid)

    total, failed = 0, []
    for n, c in enumerate(clients, 1):
        out, err = c.communicate()
        got = int(out or b"0")
        total += got
        if c.returncode != 0 or got != a.expect:
            failed.append(f"client {n}: exit {c.returncode}, {got} bytes: {err.decode().strip()}")
    if failed:
        sys.exit("\n".join(failed))
    seconds = end - start
    cpu = (after - before) / TICK
    print(
        f"bytes={total} seconds={seconds:.3f} mbps={total / seconds / 1e6:.1f} "
        f"cpu_s={cpu:.2f} cpu_s_per_gib={cpu / (total / 2**30):.3f} peak_rss_kib={peak}"
    )


if __name__ == "__main__":
    main()

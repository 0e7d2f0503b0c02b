#!/usr/bin/env python3
"""Sums up bench/ftpsd.sh's runs: the results file, then the servers in order.

The results file has one line of key=value pairs per measurement
(run=, server=, test=single|concurrent, mbps=, cpu_s_per_gib=,
peak_rss_kib=, ...) and one line per ftpsd build with its VmHWM
(server=, vmhwm_kib=).

Prints, per server and test, the median MB/s and CPU seconds per GiB over
the runs, the peak RSS of any run and each run's MB/s; then, for each ftpsd
build, its ratios against nginx and vsftpd. A ratio is taken within each run
(the servers of one run ran minutes apart, so they saw about the same load
from the rest of the machine) and the median of those per-run ratios is
reported, with each run's ratio beside it.
"""

import statistics
import sys

GOALS = {"single": 0.95, "concurrent": 0.9}


def main():
    path, servers = sys.argv[1], sys.argv[2:]
    rows, hwm = [], {}
    with open(path) as f:
        for line in f:
            kv = dict(item.split("=", 1) for item in line.split())
            if "test" in kv:
                rows.append(kv)
            else:
                hwm[kv["server"]] = int(kv["vmhwm_kib"])

    def pick(server, test):
        return [r for r in rows if r["server"] == server and r["test"] == test]

    def med(server, test, key):
        return statistics.median(float(r[key]) for r in pick(server, test))

    def value(server, test, run, key):
        (row,) = (r for r in pick(server, test) if r["run"] == run)
        return float(row[key])

    runs = sorted({r["run"] for r in rows}, key=int)
    print(f"{'server':<16} {'test':<11} {'MB/s':>8} {'CPU s/GiB':>10} {'peak RSS MiB':>13}"
          f"   (medians of {len(runs)} runs; MB/s of each run)")
    for s in servers:
        for t in GOALS:
            peak = max(int(r["peak_rss_kib"]) for r in pick(s, t))
            each = " / ".join(r["mbps"] for r in sorted(pick(s, t), key=lambda r: int(r["run"])))
            print(f"{s:<16} {t:<11} {med(s, t, 'mbps'):>8.1f} {med(s, t, 'cpu_s_per_gib'):>10.3f}"
                  f" {peak / 1024:>13.1f}   {each}")
    for s, kib in hwm.items():
        print(f"{s}: VmHWM over the whole run {kib / 1024:.1f} MiB")
    print()

    def ratios(server, peer, test, key):
        each = [value(server, test, run, key) / value(peer, test, run, key) for run in runs]
        return statistics.median(each), " / ".join(f"{x:.2f}" for x in each)

    for s in servers:
        if not s.startswith("ftpsd"):
            continue
        for t, goal in GOALS.items():
            r_n, each_n = ratios(s, "nginx", t, "mbps")
            r_v, each_v = ratios(s, "vsftpd", t, "mbps")
            c_n, _ = ratios(s, "nginx", t, "cpu_s_per_gib")
            c_v, _ = ratios(s, "vsftpd", t, "cpu_s_per_gib")
            print(f"{s} {t:<10}: {r_n:.2f}x nginx's MB/s ({each_n}; goal >= {goal}: "
                  f"{'met' if r_n >= goal else 'NOT met'}), {r_v:.2f}x vsftpd's ({each_v}); "
                  f"CPU per GiB {c_n:.2f}x nginx's, {c_v:.2f}x vsftpd's")
    # The providers against each other, run by run.
    ftpsds = [s for s in servers if s.startswith("ftpsd")]
    for other in ftpsds[1:]:
        for t in GOALS:
            r, each = ratios(other, ftpsds[0], t, "mbps")
            c, _ = ratios(other, ftpsds[0], t, "cpu_s_per_gib")
            print(f"{other} / {ftpsds[0]} {t:<10}: MB/s {r:.2f}x ({each}), CPU per GiB {c:.2f}x")


if __name__ == "__main__":
    main()

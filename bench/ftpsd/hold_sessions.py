#!/usr/bin/env python3
"""Opens N logged-in FTPS sessions (AUTH TLS, PBSZ 0, PROT P) and, while all
are idle, sums the memory of a process tree: the server's master PID and all
its descendants (vsftpd forks per session). Prints one line:
`sessions=N processes=P rss_kib=R pss_kib=S`."""
import argparse
import ftplib
import os
import ssl
import sys
import time


def children_map():
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(root):
    kids = children_map()
    todo, seen = [root], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(kids.get(pid, []))
    return seen


def memory(pid):
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--pid", type=int, required=True, help="server master PID")
    args = p.parse_args()
    ctx = ssl.create_default_context(cafile=args.cafile)
    sessions = []
    for _ in range(args.sessions):
        f = ftplib.FTP_TLS(context=ctx, timeout=60)
        f.connect("127.0.0.1", args.port)
        f.login(args.user, args.password)
        f.prot_p()
        f.voidcmd("NOOP")
        sessions.append(f)
    time.sleep(2)  # let every session settle into idle
    for f in sessions:
        f.voidcmd("NOOP")  # all still alive
    pids = tree(args.pid)
    rss = pss = 0
    for pid in pids:
        r, s = memory(pid)
        rss += r
        pss += s
    print(f"sessions={len(sessions)} processes={len(pids)} rss_kib={rss} pss_kib={pss}")
    for f in sessions:
        try:
            f.quit()
        except (ftplib.Error, OSError):
            f.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

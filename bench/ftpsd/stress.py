#!/usr/bin/env python3
"""The stress proof of bench/ftpsd-stress.sh: SESSIONS client sessions against
one ftpsd, PARALLEL at a time, mixing lftp, curl and Python's ftplib.

Every session is one client process (lftp, curl) or thread (ftplib) that logs
in, uploads a file of its own (its own name, size and random bytes), lists
the directory and downloads the file again. Checked for every session: each
step's own result (lftp's exit status, with no retries; each curl transfer's
own exit code and reply read from --write-out, since with --next curl's exit
status is the last transfer's; ftplib's replies and that every data
connection resumed the session), the listing (the file's name, and in a long
listing its size), the downloaded bytes against the uploaded ones (sha256),
and the file on the server's disk. A session fails on the first thing that
is not as expected; nothing is retried.

Prints one line per failure, a summary per client and a last line
"N passed, M failed"; exits 1 if any session failed.
"""

import argparse
import concurrent.futures
import ftplib
import hashlib
import io
import os
import random
import ssl
import subprocess
import sys
import threading
import time

# Sizes cycle through: empty, tiny, a TLS record and a bit, a download chunk
# (32 KiB) and a bit, two exactly, an upload chunk (256 KiB) and a bit, a few
# MiB: every boundary of the server's chunks and 16 KiB records gets crossed.
SIZES = [0, 1, 1000, 16 * 1024 + 3, 32 * 1024 + 1, 65536, 256 * 1024 + 1, 1 << 20, 3 * (1 << 20) + 17]
CLIENTS = ["lftp", "curl", "ftplib"]


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """Resumes the control connection's TLS session on every data connection."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.reused = []

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
            self.reused.append(conn.session_reused)
        return conn, size


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def run(cmd, timeout):
    return subprocess.run(cmd, capture_output=True, timeout=timeout)


def listed(listing, name, size, long_format):
    for line in listing.splitlines():
        fields = line.split()
        if fields and fields[-1] == name:
            # A long listing is ls's: mode, links, owner, group, size, date (3), name.
            return not long_format or (len(fields) == 9 and fields[4] == str(size))
    return False


def session_lftp(a, n, user, password, name, local, out):
    script = (
        f"set ssl:ca-file {a.cafile}; set ssl:verify-certificate true; set ftp:ssl-force true; "
        "set ftp:ssl-protect-data true; set ftp:passive-mode true; set net:max-retries 1; "
        "set net:timeout 30; set cmd:fail-exit true; set xfer:clobber true; "
        f"open -u {user},{password} ftp://localhost:{a.port}; "
        f"put {local} -o {name}; cls -l --sort=name; get {name} -o {out}; quit"
    )
    p = run(["lftp", "-c", script], a.timeout)
    check(p.returncode == 0, f"lftp exit {p.returncode}: {p.stderr.decode(errors='replace').strip()[-300:]}")
    return p.stdout.decode(errors="replace"), True


def session_curl(a, n, user, password, name, local, out):
    base = f"ftp://127.0.0.1:{a.port}"
    common = [
        "-sS", "--ssl-reqd", "--cacert", a.cafile, "-u", f"{user}:{password}", "--max-time", str(a.timeout),
        "--write-out", "%{stderr}curl transfer: exit=%{exitcode} reply=%{response_code} %{url_effective}\n",
    ]
    listing = f"{a.workdir}/list-{n}.txt"
    cmd = ["curl", *common, "-T", local, f"{base}/{name}",
           "--next", *common, "-o", listing, f"{base}/",
           "--next", *common, "-o", out, f"{base}/{name}"]
    p = run(cmd, a.timeout + 10)
    lines = [l for l in p.stderr.decode(errors="replace").splitlines() if l.startswith("curl transfer:")]
    check(len(lines) == 3, f"curl reported {len(lines)} transfers, not 3: {p.stderr.decode(errors='replace')[-400:]}")
    for line in lines:
        check(" exit=0 " in line and " reply=226 " in line, f"curl transfer failed: {line}")
    with open(listing) as f:
        text = f.read()
    os.unlink(listing)
    return text, True


def session_ftplib(a, n, user, password, name, local, out):
    ctx = ssl.create_default_context(cafile=a.cafile)
    f = ReusingFTP_TLS(context=ctx, timeout=a.timeout)
    try:
        f.connect("127.0.0.1", a.port)
        f.login(user, password)
        f.prot_p()
        with open(local, "rb") as data:
            reply = f.storbinary(f"STOR {name}", data)
        check(reply.startswith("226"), f"STOR answered {reply!r}")
        lines = []
        reply = f.retrlines("LIST", lines.append)
        check(reply.startswith("226"), f"LIST answered {reply!r}")
        got = io.BytesIO()
        reply = f.retrbinary(f"RETR {name}", got.write)
        check(reply.startswith("226"), f"RETR answered {reply!r}")
        with open(out, "wb") as o:
            o.write(got.getvalue())
        check(all(f.reused) and len(f.reused) == 3, f"data connections resumed: {f.reused}")
        f.quit()
    finally:
        f.close()
    return "\n".join(lines), True


RUNNERS = {"lftp": session_lftp, "curl": session_curl, "ftplib": session_ftplib}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def one_session(a, n):
    client = CLIENTS[n % len(CLIENTS)]
    # Each client runs as every account in turn (not one account per client).
    user, password = a.users[(n // len(CLIENTS)) % len(a.users)]
    size = SIZES[(n // len(CLIENTS)) % len(SIZES)]
    name = f"s{n:05d}-{client}.bin"
    local = f"{a.workdir}/up-{n}.bin"
    out = f"{a.workdir}/down-{n}.bin"
    with open(local, "wb") as f:
        f.write(random.randbytes(size))
    try:
        listing, long_format = RUNNERS[client](a, n, user, password, name, local, out)
        check(listed(listing, name, size, long_format), f"{name} ({size} B) not in the listing:\n{listing[-500:]}")
        check(os.path.exists(out), "nothing downloaded")
        want = sha256(local)
        check(sha256(out) == want, f"downloaded {os.path.getsize(out)} B differ from the {size} B uploaded")
        on_disk = os.path.join(a.data_root, user, name)
        check(sha256(on_disk) == want, "the file on the server's disk differs")
        return client, None
    except Failed as e:
        return client, f"session {n} ({client}, {user}, {size} B): {e}"
    except Exception as e:  # noqa: BLE001 - a client error is a failed session
        return client, f"session {n} ({client}, {user}, {size} B): {type(e).__name__}: {e}"
    finally:
        for path in (local, out):
            if os.path.exists(path):
                os.unlink(path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--data-root", dest="data_root", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--user", action="append", required=True, help="name:password, repeatable")
    p.add_argument("--sessions", type=int, default=1000)
    p.add_argument("--parallel", type=int, default=50)
    p.add_argument("--timeout", type=int, default=120)
    a = p.parse_args()
    a.users = [tuple(u.split(":", 1)) for u in a.user]
    random.seed(os.urandom(16))

    started = time.monotonic()
    passed = {c: 0 for c in CLIENTS}
    failed = {c: 0 for c in CLIENTS}
    lock = threading.Lock()
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.parallel) as pool:
        for client, error in pool.map(lambda n: one_session(a, n), range(a.sessions)):
            with lock:
                if error:
                    failed[client] += 1
                    print("FAILED:", error, flush=True)
                else:
                    passed[client] += 1
    elapsed = time.monotonic() - started
    for c in CLIENTS:
        print(f"{c:<7} {passed[c]:>5} passed {failed[c]:>4} failed")
    total_failed = sum(failed.values())
    print(f"{a.sessions} sessions, {a.parallel} at a time, in {elapsed:.1f} s")
    print(f"{sum(passed.values())} passed, {total_failed} failed")
    sys.exit(1 if total_failed else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""FTPS client scenarios for ftpsd's integration tests (Python ftplib.FTP_TLS).

Each scenario checks its own expectations, prints what it saw, and exits 1 on
the first failed expectation.
"""
import argparse
import ftplib
import hashlib
import io
import os
import socket
import ssl
import sys
import threading
import time


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS that resumes the control connection's TLS session on every
    data connection (as FileZilla does) and records whether the server
    accepted the resumption."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.reused = []
        # The session data connections resume: this connection's own unless
        # set (to another connection's of the same context, as rclone's
        # shared session cache does).
        self.data_session = None

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            session = self.data_session or self.sock.session
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
            self.reused.append(conn.session_reused)
        return conn, size



def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def expect_refused(what, fn, *a, **kw):
    try:
        result = fn(*a, **kw)
    except (ftplib.error_perm, ftplib.error_temp, ftplib.error_reply, ssl.SSLError, OSError) as e:
        print(f"refused as expected: {what}: {str(e).strip()[:90]}")
        return str(e)
    fail(f"{what} was allowed: {str(result)[:200]!r}")


def context(args):
    return ssl.create_default_context(cafile=args.cafile)


def connect(args, cls=ReusingFTP_TLS, ctx=None):
    f = cls(context=ctx or context(args), timeout=args.timeout)
    f.connect(args.host, args.port)
    return f


def login(args, user=None, password=None, cls=ReusingFTP_TLS, ctx=None):
    f = connect(args, cls, ctx)
    f.login(user or args.user, password or args.password)
    f.prot_p()
    return f


def upload(f, name, data, rest=None):
    f.storbinary(f"STOR {name}", io.BytesIO(data), rest=rest)


def download(f, name, rest=None):
    out = io.BytesIO()
    f.retrbinary(f"RETR {name}", out.write, rest=rest)
    return out.getvalue()


def scenario_workflow(args):
    # Wrong password, then a login without TLS: both refused.
    expect_refused("wrong password", connect(args).login, args.user, "wrong-password")
    plain = ftplib.FTP(timeout=30)
    plain.connect("127.0.0.1", args.port)
    reply = expect_refused("plaintext login", plain.login, args.user, args.password)
    if not reply.startswith(("530", "534")):
        fail(f"plaintext login got {reply!r}")
    plain.close()

    f = login(args)
    f.mkd("dir1")
    data = os.urandom(1 << 20)
    upload(f, "dir1/a.bin", data)
    if "a.bin" not in " ".join(f.nlst("dir1")):
        fail("uploaded file not listed")
    listing = []
    f.retrlines("LIST dir1", listing.append)
    if not any("a.bin" in line for line in listing):
        fail(f"LIST lacks a.bin: {listing}")
    if download(f, "dir1/a.bin") != data:
        fail("download differs from upload")
    f.rename("dir1/a.bin", "dir1/b.bin")
    if f.size("dir1/b.bin") != len(data):
        fail("renamed file has the wrong size")
    expect_refused("old name after rename", f.size, "dir1/a.bin")
    f.delete("dir1/b.bin")
    expect_refused("deleted file", download, f, "dir1/b.bin")
    f.rmd("dir1")

    # An upload cut off mid-way, then resumed with REST at the size the server has.
    big = os.urandom(3 << 20)
    conn = f.transfercmd("STOR resume.bin")
    conn.sendall(big[: 1 << 20])
    conn.close()  # abrupt: no TLS close_notify, like a dropped connection
    try:
        f.voidresp()
    except ftplib.Error as e:
        print("interrupted upload reply:", str(e).strip())
    have = f.size("resume.bin")
    if not 0 < have <= 1 << 20:
        fail(f"partial upload size {have}")
    upload(f, "resume.bin", big[have:], rest=have)
    if f.size("resume.bin") != len(big):
        fail("resumed upload has the wrong size")
    # A download resumed from an offset.
    offset = 1234567
    if download(f, "resume.bin", rest=offset) != big[offset:]:
        fail("resumed download differs")
    if download(f, "resume.bin") != big:
        fail("resumed upload differs")
    print(f"resume: upload resumed at {have}, download at {offset}")

    if not f.reused or not all(f.reused):
        fail(f"data connections did not resume the TLS session: {f.reused}")
    print(f"TLS {f.sock.version()}: {len(f.reused)} data connections, all resumed the control session")
    f.quit()

    # Plaintext data: PROT C (or no PROT at all) must not move any data.
    f = connect(args)
    f.login(args.user, args.password)
    try:
        f.prot_c()
        print("PROT C accepted; the transfer must still be refused")
    except ftplib.Error as e:
        print("PROT C refused:", str(e).strip())
    expect_refused("plaintext LIST after PROT C", f.nlst)
    f.close()
    f = connect(args)
    f.login(args.user, args.password)  # no PROT P
    expect_refused("plaintext RETR without PROT P", download, f, "resume.bin")
    f.close()
    # After PROT P, a data connection that skips the TLS handshake gets nothing.
    f = login(args)
    conn, _ = ftplib.FTP.ntransfercmd(f, "RETR resume.bin")
    conn.settimeout(30)
    conn.sendall(b"not a TLS client hello\r\n")
    leaked = conn.recv(65536)
    conn.close()
    if leaked and not leaked.startswith(b"\x15"):  # a TLS alert is fine
        fail(f"plaintext data connection received {len(leaked)} bytes")
    print(f"plaintext data connection refused ({len(leaked)} bytes, a TLS alert at most)")
    f.close()
    f = login(args)
    if download(f, "resume.bin") != big:
        fail("server unusable after a failed data handshake")
    f.quit()
    print("OK")


def scenario_tls12(args):
    ctx = context(args)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    f = ReusingFTP_TLS(context=ctx, timeout=30)
    f.connect("127.0.0.1", args.port)
    f.login(args.user, args.password)
    f.prot_p()
    upload(f, "t12.txt", b"tls 1.2")
    if download(f, "t12.txt") != b"tls 1.2" or f.sock.version() != "TLSv1.2":
        fail("TLS 1.2 round trip")
    f.nlst()
    if not all(f.reused) or len(f.reused) != 3:
        fail(f"TLS 1.2 data connections did not resume: {f.reused}")
    print(f"TLS 1.2: {len(f.reused)} data connections resumed")
    # Older versions are refused outright.
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(args.cafile)
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        old.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    g = ftplib.FTP_TLS(context=old, timeout=30)
    g.connect("127.0.0.1", args.port)
    expect_refused("TLS 1.1", g.auth)
    print("OK")


def scenario_traversal(args):
    # Each attempt gets its own session: after a refused transfer ftplib's
    # reply stream is out of step (the data connection fails before the 550).
    attempts = [
        ("RETR ../bob/secret.txt", lambda f: download(f, "../bob/secret.txt")),
        ("RETR /../bob/secret.txt", lambda f: download(f, "/../bob/secret.txt")),
        ("RETR ../../../../etc/passwd", lambda f: download(f, "../../../../etc/passwd")),
        ("RETR /etc/passwd", lambda f: download(f, "/etc/passwd")),
        ("RETR etc_link/passwd", lambda f: download(f, "etc_link/passwd")),
        ("RETR bob_abs/secret.txt", lambda f: download(f, "bob_abs/secret.txt")),
        ("RETR bob_rel/secret.txt", lambda f: download(f, "bob_rel/secret.txt")),
        ("RETR out_link/outside.txt", lambda f: download(f, "out_link/outside.txt")),
        ("LIST etc_link", lambda f: f.nlst("etc_link")),
        ("LIST bob_abs", lambda f: f.nlst("bob_abs")),
        ("LIST ../bob", lambda f: f.nlst("../bob")),
        ("CWD bob_rel", lambda f: f.cwd("bob_rel")),
        ("CWD out_link", lambda f: f.cwd("out_link")),
        ("STOR ../bob/evil.txt", lambda f: upload(f, "../bob/evil.txt", b"evil")),
        ("STOR bob_abs/evil.txt", lambda f: upload(f, "bob_abs/evil.txt", b"evil")),
        ("STOR out_link/evil.txt", lambda f: upload(f, "out_link/evil.txt", b"evil")),
        ("STOR out_file_link", lambda f: upload(f, "out_file_link", b"evil")),
        ("RETR out_file_link", lambda f: download(f, "out_file_link")),
        ("MKD ../escape", lambda f: f.mkd("../escape")),
        ("MKD out_link/escape", lambda f: f.mkd("out_link/escape")),
        ("RNFR hello.txt RNTO ../bob/stolen.txt", lambda f: f.rename("hello.txt", "../bob/stolen.txt")),
        ("RNFR hello.txt RNTO out_link/stolen.txt", lambda f: f.rename("hello.txt", "out_link/stolen.txt")),
        ("DELE bob_abs/secret.txt", lambda f: f.delete("bob_abs/secret.txt")),
        ("DELE ../bob/secret.txt", lambda f: f.delete("../bob/secret.txt")),
    ]
    for what, attempt in attempts:
        f = login(args)
        try:
            result = attempt(f)
        except (ftplib.Error, ssl.SSLError, OSError) as e:
            print(f"refused: {what}: {str(e).strip()[:80]}")
            continue
        # A listing that succeeded must not show anything from outside.
        if what.startswith("LIST") and not any(n for n in result if "secret" in n or "passwd" in n):
            print(f"empty/inside listing: {what}: {result}")
            continue
        fail(f"{what} succeeded: {str(result)[:200]!r}")
    # `..` at the top stays at the top.
    f = login(args)
    f.cwd("/")
    f.cwd("..")
    if f.pwd() != "/":
        fail(f"CWD .. left the root: {f.pwd()}")
    names = f.nlst()
    if "bob" in names or "secret.txt" in names:
        fail(f"root listing shows other users: {names}")
    if download(f, "hello.txt") != b"hello\n":
        fail("own file unreadable")
    print("OK")


def scenario_lockout(args):
    n = args.failures
    for i in range(n):
        expect_refused(f"wrong password {i + 1}", connect(args).login, args.user, "wrong")
    reply = expect_refused("right password while locked out", connect(args).login, args.user, args.password)
    if not reply.startswith("530"):
        fail(f"lockout reply {reply!r}")
    print("OK")


def scenario_idle(args):
    f = login(args)
    f.sock.settimeout(60)
    # The server's idle clock restarts when it receives this NOOP, which is
    # after `start`: a disconnect before start + timeout would be too early.
    start = time.monotonic()
    f.voidcmd("NOOP")
    try:
        line = f.getline()
    except (OSError, EOFError) as e:
        line = f"<{e}>"
    waited = time.monotonic() - start
    print(f"after {waited:.1f}s idle the server sent {line!r}")
    if waited < args.idle_seconds:
        fail(f"disconnected after {waited:.2f}s, before the {args.idle_seconds}s idle timeout")
    try:
        f.voidcmd("NOOP")
    except (ftplib.Error, OSError, EOFError) as e:
        print("NOOP after timeout fails:", e)
        print("OK")
        return
    fail("session still usable after the idle timeout")


def scenario_faildelay(args):
    f = connect(args)
    f.auth()
    f.sendcmd(f"USER {args.user}")
    start = time.monotonic()
    reply = expect_refused("wrong password", f.sendcmd, "PASS wrong-password")
    waited = time.monotonic() - start
    print(f"wrong password answered {reply.strip()!r} after {waited * 1000:.0f} ms")
    if not reply.startswith("530"):
        fail(f"wrong password got {reply!r}")
    if waited * 1000 < args.delay_ms:
        fail(f"failure answered after {waited * 1000:.0f} ms, before the {args.delay_ms} ms delay")
    print("OK")


def scenario_lockout_expiry(args):
    n = args.failures
    for i in range(n - 1):
        expect_refused(f"wrong password {i + 1}", connect(args).login, args.user, "wrong")
    f = connect(args)
    f.auth()
    f.sendcmd(f"USER {args.user}")
    # The lockout starts when the server receives this PASS, after `start`.
    start = time.monotonic()
    expect_refused(f"wrong password {n}", f.sendcmd, "PASS wrong")
    f.close()
    expect_refused("right password while locked out", connect(args).login, args.user, args.password)
    deadline = start + args.lockout_seconds + 20
    while True:
        g = connect(args)
        try:
            g.login(args.user, args.password)
        except ftplib.error_perm:
            g.close()
            if time.monotonic() > deadline:
                fail("the lockout did not expire")
            time.sleep(0.1)
            continue
        waited = time.monotonic() - start
        g.quit()
        break
    print(f"login accepted again {waited:.1f}s after the lockout began")
    if waited < args.lockout_seconds:
        fail(f"lockout ended after {waited:.2f}s, before {args.lockout_seconds}s")
    print("OK")


def scenario_many(args):
    n = args.clients
    barrier = threading.Barrier(n, timeout=60)
    errors = []

    def client(i):
        try:
            f = login(args)
            barrier.wait()  # all n logged in at the same time
            data = os.urandom(256 * 1024 + i)
            upload(f, f"client-{i}.bin", data)
            if download(f, f"client-{i}.bin") != data:
                raise RuntimeError("content differs")
            f.quit()
        except Exception as e:  # noqa: BLE001 - report every client's failure
            errors.append(f"client {i}: {e!r}")
            barrier.abort()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        fail("; ".join(errors[:5]))
    print(f"{n} concurrent clients OK")
    print("OK")


def scenario_bigfile(args):
    path = args.file
    f = login(args)
    with open(path, "rb") as src:
        f.storbinary("STOR big.bin", src, blocksize=1 << 20)
    h = hashlib.sha256()
    size = 0

    def take(chunk):
        nonlocal size
        h.update(chunk)
        size += len(chunk)

    f.retrbinary("RETR big.bin", take, blocksize=1 << 20)
    print("sha256", h.hexdigest(), "bytes", size)
    f.quit()
    print("OK")


def scenario_missing_paths(args):
    """A transfer of a path that is not there gets a plain 550, with no
    preliminary reply; one that is there still gets 150 and 226. Paths are
    resolved from the current directory as libunftp resolves them."""
    f = login(args)
    f.mkd("sub")
    upload(f, "sub/file.txt", b"in sub\n")
    upload(f, "top.txt", b"top\n")

    def first_reply(command):
        f.sendcmd("EPSV")
        f.putcmd(command)
        return f.getmultiline()

    def refused(command):
        reply = first_reply(command)
        print(f"  {command!r}: {reply.strip()}")
        if not reply.startswith("550"):
            fail(f"{command!r} was answered {reply!r}, not a plain 550")

    for command in [
        "RETR missing.txt",
        "RETR sub",  # a directory is no file to download
        "RETR sub/missing.txt",
        "RETR ../outside.txt",
        "LIST missing",
        "LIST -a missing",
        "LIST -la missing",
        "LIST top.txt",  # a file is no directory to list
        "NLST missing",
        "MLSD missing",
        "MLSD sub/missing",
    ]:
        refused(command)
    f.cwd("sub")
    refused("RETR top.txt")  # there, but not from sub
    refused("LIST -la sub")
    if download(f, "file.txt") != b"in sub\n":
        fail("RETR relative to the current directory")
    names = []
    f.retrlines("LIST -la", names.append)
    if not any("file.txt" in n for n in names):
        fail(f"LIST -la in sub: {names}")
    if "file.txt" not in f.nlst():
        fail("NLST in sub")
    if "file.txt" not in [name for name, _ in f.mlsd()]:
        fail("MLSD in sub")
    f.cwd("..")
    refused("RETR file.txt")
    f.sendcmd("CDUP")
    if download(f, "/sub/file.txt") != b"in sub\n" or download(f, "top.txt") != b"top\n":
        fail("RETR after CWD .. and CDUP")
    names = []
    f.retrlines("LIST -la sub", names.append)
    if not any("file.txt" in n for n in names):
        fail(f"LIST -la sub: {names}")
    if f.pwd() != "/":
        fail(f"PWD after the checks: {f.pwd()}")
    f.quit()
    print("OK")


# Extension commands (the IANA registry's, RFC 2389 FEAT names) and a
# harmless way to try each: FEAT must list exactly those the server accepts.
EXTENSIONS = {
    "ADAT": "ADAT AAAA",
    "AUTH TLS": "AUTH TLS",
    "AVBL": "AVBL",
    "CCC": "CCC",
    "CLNT": "CLNT test",
    "CONF": "CONF AAAA",
    "CSID": "CSID Name=test;",
    "DSIZ": "DSIZ",
    "ENC": "ENC AAAA",
    "EPRT": "EPRT |1|127.0.0.1|9|",
    "EPSV": "EPSV",
    "HASH": "HASH probe.txt",
    "HOST": "HOST localhost",
    "LANG": "LANG en",
    "LPSV": "LPSV",
    "MD5": "MD5 probe.txt",
    "MDTM": "MDTM probe.txt",
    "MFCT": "MFCT 20200101000000 probe.txt",
    "MFF": "MFF Modify=20200101000000; probe.txt",
    "MFMT": "MFMT 20200101000000 probe.txt",
    "MIC": "MIC AAAA",
    "MLSD": None,  # a transfer: tried with ftplib's mlsd()
    "MLST": "MLST probe.txt",
    "PBSZ": "PBSZ 0",
    "PROT": "PROT P",
    "RANG": "RANG 0 1",
    "REST STREAM": "REST 0",
    "RMDA": "RMDA nothing",
    "SITE MD5": "SITE MD5 probe.txt",
    "SIZE": "SIZE probe.txt",
    "THMB": "THMB JPEG probe.txt",
    "TVFS": "CWD /",  # no command of its own; listed only if paths are Unix-like
    "UTF8": "OPTS UTF8 ON",
    "XCRC": "XCRC probe.txt",
    "XMD5": "XMD5 probe.txt",
    "XSHA1": "XSHA1 probe.txt",
}
# Replies that mean "not implemented here" (CCC's 534: refused by policy).
NOT_IMPLEMENTED = ("500", "502", "504", "534")


def scenario_features(args):
    f = login(args)
    upload(f, "probe.txt", b"probe\n")
    lines = f.sendcmd("FEAT").splitlines()
    listed = {line.strip() for line in lines[1:-1]}
    unknown = {name for name in listed if name not in EXTENSIONS}
    if unknown:
        fail(f"FEAT lists extensions this test cannot try: {unknown}")
    accepted = set()
    for name, command in EXTENSIONS.items():
        try:
            if command is None:
                list(f.mlsd())
                reply = "226"
            else:
                reply = f.sendcmd(command)
        except ftplib.error_perm as e:
            reply = str(e)
        except ftplib.Error as e:
            reply = str(e)
        code = reply[:3]
        known = code not in NOT_IMPLEMENTED
        print(f"  {'listed  ' if name in listed else 'unlisted'} {name}: {reply.strip()[:60]}")
        if known and name != "TVFS":
            accepted.add(name)
    # TVFS has no command; ftpsd's paths are Unix-like but it does not say so.
    if "TVFS" in listed:
        accepted.add("TVFS")
    if accepted != listed:
        fail(f"accepted but not listed: {sorted(accepted - listed)}; listed but refused: {sorted(listed - accepted)}")
    print(f"  FEAT lists exactly the {len(listed)} extensions the server accepts")
    f.quit()
    print("OK")


def arguments():
    """The options every scenario script shares; each adds its own."""
    p = argparse.ArgumentParser()
    p.add_argument("scenario")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--timeout", type=float, default=30, help="ftplib's timeout of a client connection")
    p.add_argument("--failures", type=int, default=3)
    p.add_argument("--delay-ms", type=float, default=0)
    p.add_argument("--file")
    return p


def run(parser, scenarios):
    """Runs the scenario named on the command line from `scenarios` (a module's globals())."""
    args = parser.parse_args()
    socket.setdefaulttimeout(60)
    scenarios[f"scenario_{args.scenario}"](args)


def main():
    p = arguments()
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--idle-seconds", type=float, default=0)
    p.add_argument("--lockout-seconds", type=float, default=0)
    run(p, globals())


if __name__ == "__main__":
    main()

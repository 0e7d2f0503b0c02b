#!/usr/bin/env python3
"""What ftpsd refuses, and how fast, seen by clients on one address (as every
client is behind the cluster's load balancer): the login policy, data
connections bound to their session, a reply for every transfer, limits on
connections that do not log in, and a full disk.

    protections.py SCENARIO --port P --cafile CA --user U --password PW [...]

crates/ftpsd/tests/protections.rs runs them against ftpsd on loopback, the
stack test (tests/stack/checks.py) through the load balancer's address.
Each scenario prints what it saw and "OK" last; it exits 1 at the first
failed expectation. Raw sockets where a stock client cannot misbehave as
needed; ftplib (resuming the control session, as FileZilla does) otherwise.
"""
import ftplib
import io
import re
import select
import socket
import ssl
import struct
import sys
import threading
import time

from ftps_client import arguments, connect, context, download, fail, login, run, upload


def try_login(args, user, password):
    """The final reply to a login, and how long it took."""
    f = connect(args)
    start = time.monotonic()
    try:
        f.login(user, password)
        reply = "230"
    except ftplib.Error as e:
        reply = str(e)
    took = time.monotonic() - start
    f.close()
    return reply, took


def pasv_port(f):
    reply = f.sendcmd("EPSV")
    return int(re.search(r"\(\|\|\|(\d+)\|\)", reply).group(1))


def transfer_reply(f, command, wait=30):
    """Sends a transfer command without opening its data connection; returns
    the preliminary and the final reply, and when the final one came."""
    f.sock.settimeout(wait)
    f.putcmd(command)
    start = time.monotonic()
    first = f.getmultiline()
    final = first if not first.startswith("1") else f.getmultiline()
    return first, final, time.monotonic() - start


def usable(f, args):
    """The session still works: NOOP, and a listing over a resumed data connection."""
    f.sock.settimeout(30)
    if not f.voidcmd("NOOP").startswith("200"):
        fail("NOOP after the failure")
    names = f.nlst()
    print(f"  session still usable: NOOP, NLST -> {names}")
    return names


# --- 1. the login policy -------------------------------------------------------


def scenario_cross_account(args):
    """Failures of one account (and of unknown names) lock out no other account."""
    for i in range(args.failures + 2):
        reply, _ = try_login(args, args.other_user, "wrong")
        print(f"  {args.other_user} wrong password {i + 1}: {reply.strip()[:60]}")
        reply, _ = try_login(args, f"nobody-{i}", "wrong")
    reply, took = try_login(args, args.user, args.password)
    if reply != "230":
        fail(f"{args.user}'s right password failed after {args.other_user}'s failures: {reply}")
    print(f"  {args.user} logs in ({took:.2f} s) although {args.other_user} is locked out")
    reply, _ = try_login(args, args.other_user, args.other_password)
    if not reply.startswith("530"):
        fail(f"{args.other_user}'s right password was accepted while locked out: {reply}")
    print(f"  {args.other_user}'s right password refused while the account is locked: {reply.strip()[:60]}")
    print("OK")


def scenario_shared_source(args):
    """Behind a load balancer every client has one address: failures under
    many names from it (more than max_failures) lock nobody else out."""
    for i in range(args.failures):
        reply, took = try_login(args, f"guess-{i}", "wrong")
        print(f"  guess-{i}: {reply.strip()[:40]} after {took:.1f} s")
    reply, took = try_login(args, args.user, args.password)
    if reply != "230":
        fail(f"{args.user}'s right password failed after {args.failures} failures of other names: {reply}")
    print(f"  {args.user} logs in after {args.failures} failures of other names from the same address")
    print("OK")


def scenario_source_lockout(args):
    """With per_source on, failures under many names lock the address out."""
    for i in range(args.failures):
        try_login(args, f"guess-{i}", "wrong")
    reply, _ = try_login(args, args.user, args.password)
    if not reply.startswith("530"):
        fail(f"a right password from a locked-out address was accepted: {reply}")
    print(f"  {args.failures} failures under {args.failures} names locked the address: {reply.strip()[:60]}")
    print("OK")


def scenario_delay_grows(args):
    """Each failure in a row of one account waits twice as long as the one before."""
    base = args.delay_ms / 1000
    for i in range(1, args.failures):
        reply, took = try_login(args, args.user, f"wrong-{i}")
        least = base * 2 ** (i - 1)
        print(f"  failure {i}: {reply.strip()[:40]!r} after {took:.2f} s (at least {least:.2f} s)")
        if not reply.startswith("530"):
            fail(f"wrong password got {reply}")
        if took < least:
            fail(f"failure {i} answered after {took:.2f} s, before {least:.2f} s")
    print("OK")


# --- 2. data connections bound to their session -----------------------------------------


def scenario_no_reuse_gets_522(args):
    """Stock ftplib does not resume the session on its data connections."""
    f = login(args, cls=ftplib.FTP_TLS)
    start = time.monotonic()
    try:
        f.nlst()
        fail("a data connection that did not resume the session was accepted")
    except ftplib.error_perm as e:
        took = time.monotonic() - start
        if not str(e).startswith("522"):
            fail(f"refused with {e}, not 522")
        print(f"  stock ftplib: {str(e).strip()} after {took:.2f} s")
    f.sock.settimeout(30)
    if not f.voidcmd("NOOP").startswith("200"):
        fail("NOOP after the 522")
    f.quit()
    g = login(args)
    usable(g, args)
    g.quit()
    print("OK")


def scenario_sibling_session(args):
    """Two control connections of one user, one client session cache (as
    rclone has): a data connection resuming the other connection's session
    is the user's, also after that connection closed."""
    ctx = context(args)
    first = login(args, ctx=ctx)
    second = login(args, ctx=ctx)
    upload(second, args.file, b"the user's data\n" * 4096)
    second.data_session = first.sock.session
    second.reused.clear()
    data = download(second, args.file)
    names = second.nlst()
    if data != b"the user's data\n" * 4096 or args.file not in names:
        fail(f"a data connection resuming the sibling's session: {len(data)} bytes, {names}")
    print(f"  resuming the other connection's session: RETR {len(data)} bytes, NLST {names}")
    sibling = first.sock.session
    first.quit()
    second.data_session = sibling
    upload(second, "after.txt", b"written after the sibling closed\n")
    if download(second, "after.txt") != b"written after the sibling closed\n":
        fail("the closed sibling's session no longer binds")
    if not second.reused or not all(second.reused):
        fail(f"the data connections did not resume: {second.reused}")
    print(f"  after the sibling closed: {len(second.reused)} data connections resumed its session")
    second.quit()
    print("OK")


def scenario_other_users_session(args):
    """A data connection resuming another user's session (one client
    context, as a shared client cache would offer it) is refused with 522:
    nothing read, nothing written."""
    ctx = context(args)
    owner = login(args, ctx=ctx)
    other = login(args, args.other_user, args.other_password, ctx=ctx)
    for command in (f"RETR {args.file}", f"STOR {args.file}", "NLST"):
        port = pasv_port(owner)
        got = []

        def data():
            s = socket.create_connection((args.host, port), timeout=10)
            try:
                t = ctx.wrap_socket(s, server_hostname=args.host, session=other.sock.session)
                if command.startswith("STOR"):
                    t.sendall(b"written with the other user's session\n" * 1000)
                while chunk := t.recv(65536):
                    got.append(chunk)
            except (ssl.SSLError, OSError) as e:
                print(f"  data connection ended: {e}")

        sender = threading.Thread(target=data)
        sender.start()
        first, final, took = transfer_reply(owner, command)
        sender.join()
        read = sum(len(c) for c in got)
        print(f"  {command} with the other user's session: {first.strip()[:60]!r} then {final.strip()[:60]!r}, {read} bytes read")
        if not final.startswith("522"):
            fail(f"{command}: {final!r}, not 522")
        if read:
            fail(f"{command}: {read} bytes read over the other user's session")
    owner.data_session = None
    usable(owner, args)
    owner.quit()
    other.quit()
    print("OK")


def intruder(args, port, payload=None):
    """Another client (same address, its own TLS session) on someone's passive port:
    returns what it could read."""
    s = socket.create_connection((args.host, port), timeout=10)
    try:
        t = context(args).wrap_socket(s, server_hostname=args.host)
    except (ssl.SSLError, OSError) as e:
        print(f"  intruder's handshake failed: {e}")
        return b""
    got = b""
    try:
        if payload:
            t.sendall(payload)
        while True:
            chunk = t.recv(65536)
            if not chunk:
                break
            got += chunk
    except (ssl.SSLError, OSError) as e:
        print(f"  intruder's connection ended: {e}")
    return got


def scenario_intruder_download(args):
    f = login(args)
    if args.file not in f.nlst():
        f.storbinary(f"STOR {args.file}", io.BytesIO(b"the owner's data\n" * 65536))
    port = pasv_port(f)
    stolen = []
    thief = threading.Thread(target=lambda: stolen.append(intruder(args, port)))
    thief.start()
    time.sleep(0.2)  # the intruder is first on the port
    first, final, took = transfer_reply(f, f"RETR {args.file}")
    thief.join()
    print(f"  owner's RETR: {first.strip()[:50]!r} then {final.strip()[:70]!r} after {took:.2f} s")
    if stolen[0]:
        fail(f"the intruder read {len(stolen[0])} bytes of the owner's download")
    if not final.startswith("522"):
        fail(f"the owner got {final!r}, not 522")
    data = io.BytesIO()
    f.retrbinary(f"RETR {args.file}", data.write)
    print(f"  the owner's next download over a resumed connection: {len(data.getvalue())} bytes")
    f.quit()
    print("OK")


def scenario_intruder_upload(args):
    f = login(args)
    port = pasv_port(f)
    thief = threading.Thread(target=intruder, args=(args, port, b"written by the intruder\n" * 1000))
    thief.start()
    time.sleep(0.2)
    first, final, took = transfer_reply(f, f"STOR {args.file}")
    thief.join()
    print(f"  owner's STOR: {first.strip()[:50]!r} then {final.strip()[:70]!r} after {took:.2f} s")
    if not final.startswith("522"):
        fail(f"the owner got {final!r}, not 522")
    usable(f, args)
    f.quit()
    print("OK")


# --- 3. every transfer ends with a reply ------------------------------------------------------


def scenario_failed_handshake(args):
    """Plain text, junk, silence, or no connection at all: each answered with 425."""
    f = login(args)
    cases = [
        ("plain text", b"hello, no TLS here\r\n", 3),
        ("junk", bytes(range(256)) * 4, 3),
        ("silence", None, args.handshake_timeout + 5),
    ]
    for what, sent, bound in cases:
        port = pasv_port(f)
        s = socket.create_connection((args.host, port), timeout=10)
        if sent:
            s.sendall(sent)
        first, final, took = transfer_reply(f, "NLST", wait=bound + 10)
        s.close()
        print(f"  {what}: {first.strip()[:40]!r} then {final.strip()[:60]!r} after {took:.2f} s")
        if not final.startswith("425"):
            fail(f"{what}: final reply {final!r}, not 425")
        if took > bound:
            fail(f"{what}: answered after {took:.2f} s, later than {bound} s")
        if what == "silence" and took < args.handshake_timeout - 1:
            fail(f"silence answered after {took:.2f} s, before the {args.handshake_timeout} s handshake timeout")
        usable(f, args)
    port = pasv_port(f)
    first, final, took = transfer_reply(f, "NLST", wait=args.connect_timeout + 20)
    print(f"  no connection: {first.strip()[:40]!r} then {final.strip()[:60]!r} after {took:.2f} s")
    if not final.startswith("425"):
        fail(f"no connection: final reply {final!r}, not 425")
    if took > args.connect_timeout + 5:
        fail(f"no connection: answered after {took:.2f} s, long after the {args.connect_timeout} s connect timeout")
    usable(f, args)
    f.quit()
    print("OK")


def scenario_cut_download(args):
    """A download that did not all reach the client gets no 226: the client
    stops reading, waits on stdin until the test has seen libunftp finish
    sending, checks that no reply came, then resets the data connection and
    must get 426."""
    f = login(args)
    port = pasv_port(f)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(30)
    s.connect((args.host, port))
    f.putcmd(f"RETR {args.file}")
    t = f.context.wrap_socket(s, server_hostname=args.host, session=f.sock.session)
    first = f.getmultiline()
    if not first.startswith("150"):
        fail(f"RETR answered {first!r}")
    read = 0
    while read < 65536:
        read += len(t.recv(65536 - read))
    print(f"  read {read} bytes, then stopped reading", flush=True)
    print("STOPPED", flush=True)
    sys.stdin.readline()
    readable, _, _ = select.select([f.sock], [], [], 1.0)
    if readable or f.sock.pending():
        early = f.getmultiline()
        fail(f"a reply came while the data had not all reached the client: {early!r}")
    print("  no reply while the client holds data it has not read")
    t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    t.close()  # a reset: what the client had not read is lost
    f.sock.settimeout(30)
    final = f.getmultiline()
    print(f"  after the reset: {final.strip()!r}")
    if not final.startswith("426"):
        fail(f"got {final!r}, not 426")
    usable(f, args)
    f.quit()
    print("OK")


# --- 4. connections that do not log in ------------------------------------------------------------


def raw_control(args):
    s = socket.create_connection((args.host, args.port), timeout=60)
    greeting = s.recv(1024)
    if not greeting.startswith(b"220"):
        fail(f"greeting {greeting!r}")
    return s


def read_reply(s, timeout):
    s.settimeout(timeout)
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = s.recv(1024)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return data.decode(errors="replace")


def scenario_login_deadline(args):
    s = raw_control(args)
    start = time.monotonic()
    s.sendall(b"NOOP\r\n")
    if not read_reply(s, 10).startswith("200"):
        fail("NOOP before login")
    reply = read_reply(s, args.login_timeout + 20)
    took = time.monotonic() - start
    print(f"  not logging in: {reply.strip()!r} after {took:.1f} s")
    if not reply.startswith("421"):
        fail(f"no 421 at the login deadline: {reply!r}")
    if took < args.login_timeout - 0.5:
        fail(f"closed after {took:.1f} s, before the {args.login_timeout} s deadline")
    print("OK")


def scenario_unauthenticated_limit(args):
    """max_unauthenticated idle connections held open: a user still logs in,
    the oldest idle one is closed with 421, logged-in sessions are capped."""
    held = [raw_control(args) for _ in range(args.limit)]
    f = login(args)
    names = usable(f, args)
    print(f"  {args.limit} connections not logged in held open; a user logged in and listed {len(names)} names")
    evicted = read_reply(held[0], 10)
    print(f"  the oldest idle connection got {evicted.strip()!r}")
    if not evicted.startswith("421"):
        fail(f"the oldest idle connection got {evicted!r}, not 421")
    for s in held[1:]:
        s.sendall(b"NOOP\r\n")
        if not read_reply(s, 10).startswith("200"):
            fail("a newer idle connection was closed too")
    sessions = [f]
    while len(sessions) < args.max_sessions:
        sessions.append(login(args))
    try:
        login(args)
        fail(f"login {args.max_sessions + 1} was accepted over max_sessions")
    except ftplib.error_temp as e:
        print(f"  login {args.max_sessions + 1} over max_sessions: {str(e).strip()}")
        if not str(e).startswith("421"):
            fail(f"got {e}, not 421")
    for g in sessions:
        g.quit()
    print("OK")


# --- 5. a full disk -----------------------------------------------------------------------------------


def upload_refused(f, name, data):
    """STOR that the server must refuse midway: the final reply."""
    conn = f.transfercmd(f"STOR {name}")
    try:
        conn.sendall(data)
        conn.unwrap()
    except (ssl.SSLError, OSError) as e:
        print(f"  the server closed the data connection of {name}: {e}")
    conn.close()
    try:
        reply = f.voidresp()
        fail(f"STOR {name} succeeded: {reply}")
    except (ftplib.error_temp, ftplib.error_perm) as e:
        return str(e)


def scenario_disk_full(args):
    f = login(args)
    big = b"x" * (args.mib << 20)
    for name in ("new.bin", args.file):
        reply = upload_refused(f, name, big)
        print(f"  STOR {name} ({args.mib} MiB into a smaller volume): {reply.strip()}")
        if not reply.startswith(("452", "552")):
            fail(f"got {reply!r}, not 452/552")
    names = usable(f, args)
    if "new.bin" in names:
        fail(f"the failed upload left new.bin behind: {names}")
    f.quit()
    print("OK")


def main():
    p = arguments()
    p.add_argument("--other-user", default="bob")
    p.add_argument("--other-password", default="")
    p.add_argument("--handshake-timeout", type=float, default=5)
    p.add_argument("--connect-timeout", type=float, default=9)
    p.add_argument("--login-timeout", type=float, default=30)
    p.add_argument("--limit", type=int, default=4)
    p.add_argument("--max-sessions", type=int, default=2)
    p.add_argument("--mib", type=int, default=8)
    p.set_defaults(file="kept.bin", timeout=60)
    run(p, globals())


if __name__ == "__main__":
    main()

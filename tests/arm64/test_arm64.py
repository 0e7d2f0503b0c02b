"""The workspace's aarch64 binaries, run under qemu-user on this x86 machine.

The images are built for linux/arm64 too (docker/build takes the musl target
of the machine it runs on), but no arm64 machine is here; so `tests/run.sh
arm64` builds the four binaries for aarch64-unknown-linux-musl and this file
runs them as they are, each under `qemu-aarch64-static`, against the same
real peers the x86 tests use. It checks that:

- they are static aarch64 executables (ELF machine 183, no interpreter);
- each one's `--help` runs, and `check-config` accepts every image's own
  supervise.toml, collect.toml and ftpsd.toml (the ftps template rendered);
- supervise keeps its documented contract (crates/supervise/src/lib.rs):
  start order by `after` and readiness, a oneshot gating its dependents, a
  service's end stopping the rest in reverse start order with exit 1 and no
  restart of its own, SIGTERM giving exit 0, a failed oneshot or an unknown
  `after` stopping it, its restarts file counted;
- collect writes to a real InfluxDB (Debian's influxd, with authentication,
  on loopback) and its points arrive, tagged;
- ftpsd serves an lftp upload and download over explicit TLS (a throw-away
  CA, a users file from `ftpsd hash-password` fed on stdin), byte for byte.

Programs that supervise starts are the host's (`sh`, `sleep`): qemu-user
runs the aarch64 binary itself, and its children are exec'd by the kernel.
Everything listens on 127.0.0.1; passwords go through files and stdin only.
ARM64_BIN_DIR names the directory of the binaries (tests/run.sh sets it).
"""

import json
import os
import pathlib
import random
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = "aarch64-unknown-linux-musl"
BIN_DIR = pathlib.Path(
    os.environ.get("ARM64_BIN_DIR")
    or pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / TARGET / "release"
)
BINARIES = ["supervise", "ftpsd", "collect", "bootstrap"]
QEMU = shutil.which("qemu-aarch64-static")


def arm64(name, *args):
    """The command line running the aarch64 binary `name` under qemu."""
    assert QEMU, "qemu-aarch64-static is not installed (Debian qemu-user-static)"
    path = BIN_DIR / name
    assert path.is_file(), f"{path} is missing: build with --target {TARGET}"
    return [QEMU, str(path), *map(str, args)]


def run(cmd, timeout=60, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def wait_for(what, cond, timeout=30.0, interval=0.05):
    """Polls `cond` until it returns something truthy, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port():
    """A loopback port the kernel hands out as free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_range(n):
    """The first of `n` consecutive free loopback ports, below the ephemeral
    range (as testbed::free_port_range), at a random start."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral = int(f.read().split()[0])
    for _ in range(200):
        first = random.randrange(10_000, ephemeral - n)
        socks = []
        try:
            for port in range(first, first + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f"no {n} consecutive free ports below {ephemeral}")


def secret_file(path, value):
    """Writes a secret (mode 0600) and returns its path."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return path


class Daemon:
    """An aarch64 daemon under qemu, its output in files, in its own session
    so that a failed test still takes its whole process group down."""

    def __init__(self, tmp, name, *args, env=None):
        self.out_path = tmp / f"{name}.out"
        self.err_path = tmp / f"{name}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                arm64(name, *args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )

    def log(self):
        return self.out_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")

    def running(self):
        return self.proc.poll() is None

    def wait(self, timeout=30):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout} s; its log:\n{self.log()}") from None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def close(self):
        if self.running():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def daemons():
    started = []

    def start(*args, **kw):
        d = Daemon(*args, **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.close()


def alive(pid):
    """Whether `pid` is a process that has not ended (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------- binaries


def elf_facts(path):
    """(64-bit little-endian?, e_machine, has PT_INTERP) of an ELF file."""
    with open(path, "rb") as f:
        head = f.read(64)
        assert head[:4] == b"\x7fELF", f"{path} is not ELF"
        machine = struct.unpack_from("<H", head, 18)[0]
        phoff = struct.unpack_from("<Q", head, 32)[0]
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    types = [struct.unpack_from("<I", table, i * phentsize)[0] for i in range(phnum)]
    return head[4:6] == b"\x02\x01", machine, 3 in types  # PT_INTERP = 3


@pytest.mark.parametrize("name", BINARIES)
def test_binary_is_static_aarch64(name):
    path = BIN_DIR / name
    assert path.is_file(), f"{path} is missing"
    le64, machine, interp = elf_facts(path)
    assert le64 and machine == 183, f"{path}: not a 64-bit little-endian aarch64 ELF (machine {machine})"
    assert not interp, f"{path} names a dynamic loader: not static"


HELP = {
    "supervise": ["PID 1 of a container", "check-config", "--config"],
    "ftpsd": ["FTPS server", "hash-password", "--check-config"],
    "collect": ["metrics agent", "--check-config", "--config"],
    "bootstrap": ["One-shot seeding", "mysql", "influxdb", "wordpress", "wordpress-content", "grafana"],
}


@pytest.mark.parametrize("name", BINARIES)
def test_help(name):
    r = run(arm64(name, "--help"))
    assert r.returncode == 0, r.stderr
    for word in HELP[name]:
        assert word in r.stdout, f"{name} --help lacks {word!r}:\n{r.stdout}"


# ---------------------------------------------------------------- configs


SUPERVISE_CONFIGS = sorted(ROOT.glob("docker/*/supervise.toml"))
COLLECT_CONFIGS = sorted(ROOT.glob("docker/*/rootfs/etc/collect.toml"))
FTPSD_TEMPLATE = ROOT / "docker/ftps/rootfs/etc/templates/ftpsd.toml"


def test_every_image_has_configs():
    images = {p.name for p in (ROOT / "docker").iterdir() if (p / "Dockerfile").exists()} - {"build"}
    assert {p.parent.name for p in SUPERVISE_CONFIGS} == images
    assert {p.parts[-4] for p in COLLECT_CONFIGS} == images
    assert FTPSD_TEMPLATE.is_file()


@pytest.mark.parametrize("config", SUPERVISE_CONFIGS, ids=lambda p: p.parent.name)
def test_supervise_check_config(config):
    r = run(arm64("supervise", "check-config", config))
    assert r.returncode == 0, r.stderr
    programs = len(re.findall(r"^\[\[program\]\]", config.read_text(), re.M))
    assert f": ok: {programs} program(s), start order " in r.stdout, r.stdout


def test_supervise_check_config_refuses_a_cycle(tmp_path):
    config = tmp_path / "cycle.toml"
    config.write_text(
        '[[program]]\nname = "a"\ncommand = ["true"]\nafter = ["b"]\n\n'
        '[[program]]\nname = "b"\ncommand = ["true"]\nafter = ["a"]\n'
    )
    r = run(arm64("supervise", "check-config", config))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "supervise | error:" in r.stderr and "cycle" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throw-away CA and a certificate for localhost / 127.0.0.1 (openssl)."""
    d = tmp_path_factory.mktemp("pki")

    def openssl(*args):
        r = run(["openssl", *args], cwd=d)
        assert r.returncode == 0, r.stderr

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=arm64 test CA")
    openssl("req", *ec, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=localhost")
    (d / "ext").write_text(
        "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n"
    )
    openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "ext", "-out", "tls.crt")
    return d


@pytest.mark.parametrize("config", COLLECT_CONFIGS, ids=lambda p: p.parts[-4])
def test_collect_check_config(config, tmp_path, pki):
    # collect reads an input's ca_file while it checks the config; the
    # image's path is the mounted Secret's, which this host does not have.
    text = config.read_text().replace("/run/secrets/ft-tls/ca.crt", str(pki / "ca.crt"))
    copy = tmp_path / "collect.toml"
    copy.write_text(text)
    r = run(arm64("collect", "--config", copy, "--check-config"))
    assert r.returncode == 0, r.stderr
    assert f"{copy}: config OK" in r.stdout, r.stdout


def test_collect_check_config_refuses_a_bad_value(tmp_path):
    copy = tmp_path / "collect.toml"
    copy.write_text('interval = "10ms"\n')
    r = run(arm64("collect", "--config", copy, "--check-config"))
    assert r.returncode != 0 and "interval" in r.stderr, (r.stdout, r.stderr)


def render_ftpsd(tmp, pki, users, port=21, metrics_port=9902, passive=(30000, 30019)):
    """The ftps image's ftpsd.toml as supervise renders it, with this test's
    ports, files and address in place of the pod's; each replaced text must
    be there exactly once, so a changed template fails here, not silently."""
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    text = FTPSD_TEMPLATE.read_text()
    for old, new in [
        ('listen = "0.0.0.0:21"', f'listen = "127.0.0.1:{port}"'),
        ('metrics_listen = "0.0.0.0:9902"', f'metrics_listen = "127.0.0.1:{metrics_port}"'),
        ('"/var/lib/ftps"', f'"{data}"'),
        ('"/run/private/ftpsd/users"', f'"{users}"'),
        ('"/run/private/ftpsd/tls.crt"', f'"{pki / "tls.crt"}"'),
        ('"/run/private/ftpsd/tls.key"', f'"{pki / "tls.key"}"'),
        ("port_min = 30000", f"port_min = {passive[0]}"),
        ("port_max = 30019", f"port_max = {passive[1]}"),
        ("${LB_IP}", "127.0.0.1"),
    ]:
        assert text.count(old) == 1, f"{FTPSD_TEMPLATE} no longer has {old!r} once"
        text = text.replace(old, new)
    config = tmp / "ftpsd.toml"
    config.write_text(text)
    return config, data


@pytest.fixture(scope="module")
def ftps_user(tmp_path_factory):
    """(name, password file, users file) with the hash made by the aarch64
    `ftpsd hash-password`, the password on its stdin."""
    d = tmp_path_factory.mktemp("ftps-user")
    password = secret_file(d / "password", secrets.token_urlsafe(18))
    with open(password) as stdin:
        r = subprocess.run(arm64("ftpsd", "hash-password"), stdin=stdin, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    digest = r.stdout.strip()
    assert re.fullmatch(r"\$pbkdf2-sha256\$i=100000\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+", digest), digest
    users = d / "users"
    users.write_text(f"# arm64 test\nalice:{digest}\n")
    users.chmod(0o600)
    return "alice", password, users


def test_ftpsd_check_config(tmp_path, pki, ftps_user):
    config, _ = render_ftpsd(tmp_path, pki, ftps_user[2])
    r = run(arm64("ftpsd", "--config", config, "--check-config"))
    assert r.returncode == 0, r.stderr
    assert f"{config}: configuration OK" in r.stdout, r.stdout


# ---------------------------------------------------------------- supervise


class Supervise:
    """supervise (aarch64, under qemu) on a config in `tmp`, its health
    endpoint on a free port; `{dir}` in `body` stands for `tmp`."""

    def __init__(self, start, tmp, body, env=None):
        self.port = free_port()
        self.config = tmp / "supervise.toml"
        self.config.write_text(
            f'[health]\nlisten = "127.0.0.1:{self.port}"\n\n[stop]\ngrace_seconds = 5\n\n'
            + body.replace("{dir}", str(tmp))
        )
        self.daemon = start(tmp, "supervise", "--config", self.config, env=env)

    def get(self, path):
        """(status, body) of the health endpoint, None while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)
        except OSError:
            return None

    def program(self, body, name):
        return next(p for p in body["programs"] if p["name"] == name)


# Declared out of order: the start order must come from `after` and readiness.
ORDERED = """
[[program]]
name = "last"
command = ["sh", "-c", "echo last >> {dir}/order; exec sleep 300"]
after = ["init"]

[[program]]
name = "init"
kind = "oneshot"
command = ["sh", "-c", "echo init >> {dir}/order"]
after = ["second"]

[[program]]
name = "second"
command = ["sh", "-c", "echo second >> {dir}/order; touch {dir}/second.ready; exec sleep 300"]
after = ["first"]
ready = { command = ["test", "-e", "{dir}/second.ready"] }

[[program]]
name = "first"
command = ["sh", "-c", "echo first >> {dir}/order; sleep 0.3; touch {dir}/first.ready; exec sleep 300"]
ready = { command = ["test", "-e", "{dir}/first.ready"] }
"""


def test_supervise_orders_then_a_crash_stops_all_and_exits_1(tmp_path, daemons):
    sv = Supervise(daemons, tmp_path, ORDERED)
    ready = wait_for("/readyz 200", lambda: (r := sv.get("/readyz")) and r[0] == 200 and r[1])
    order = tmp_path / "order"
    assert order.read_text().split() == ["first", "second", "init", "last"], sv.daemon.log()
    assert sv.program(ready, "init")["state"] == "completed"
    pids = {}
    for name in ["first", "second", "last"]:
        p = sv.program(ready, name)
        assert p["state"] == "running" and p["ready"], ready
        pids[name] = p["pid"]
        assert alive(pids[name])

    os.kill(pids["second"], signal.SIGKILL)
    assert sv.daemon.wait(30) == 1, sv.daemon.log()
    log = sv.daemon.log()
    assert f"second (service, pid {pids['second']}) was killed by signal SIGKILL after " in log, log
    stop_last = log.find(f"stopping last (pid {pids['last']}) with SIGTERM")
    stop_first = log.find(f"stopping first (pid {pids['first']}) with SIGTERM")
    assert 0 <= stop_last < stop_first, f"not stopped in reverse start order:\n{log}"
    assert "exiting with status 1" in log, log
    assert not alive(pids["first"]) and not alive(pids["last"])
    # supervise restarts nothing itself (Kubernetes restarts the container).
    assert order.read_text().split() == ["first", "second", "init", "last"], log


def test_supervise_sigterm_exits_0_and_counts_its_starts(tmp_path, daemons):
    body = '[[program]]\nname = "app"\ncommand = ["sleep", "300"]\n'
    env = {"SUPERVISE_RESTARTS_FILE": str(tmp_path / "restarts")}
    for start in range(2):
        sv = Supervise(daemons, tmp_path, body, env=env)
        code, health = wait_for(
            "app running",
            lambda: (r := sv.get("/healthz")) and r[0] == 200 and sv.program(r[1], "app")["state"] == "running" and r,
        )
        assert health["healthy"] and health["restarts"] == start, health
        pid = sv.program(health, "app")["pid"]
        sv.daemon.signal(signal.SIGTERM)
        assert sv.daemon.wait(30) == 0, sv.daemon.log()
        assert "received SIGTERM: stopping" in sv.daemon.log()
        assert not alive(pid)
    assert (tmp_path / "restarts").read_text().strip() == "2"


def test_supervise_failed_oneshot_exits_1_and_starts_nothing_after(tmp_path, daemons):
    sv = Supervise(daemons, tmp_path, """
[[program]]
name = "init"
kind = "oneshot"
command = ["sh", "-c", "exit 3"]

[[program]]
name = "app"
command = ["sh", "-c", "touch {dir}/app.started; exec sleep 300"]
after = ["init"]
""")
    assert sv.daemon.wait(30) == 1, sv.daemon.log()
    assert re.search(r"init \(oneshot, pid \d+\) exited with status 3 after ", sv.daemon.log()), sv.daemon.log()
    assert not (tmp_path / "app.started").exists()


def test_supervise_bad_config_exits_2_with_nothing_started(tmp_path, daemons):
    sv = Supervise(daemons, tmp_path, """
[[program]]
name = "app"
command = ["sh", "-c", "touch {dir}/app.started; exec sleep 300"]
after = ["nobody"]
""")
    assert sv.daemon.wait(30) == 2, sv.daemon.log()
    assert "nobody" in sv.daemon.log()
    assert not (tmp_path / "app.started").exists()


# ---------------------------------------------------------------- collect


@pytest.fixture(scope="module")
def influxdb(tmp_path_factory):
    """Debian's influxd, authentication on, in a temporary directory on
    loopback (as testbed::Influxdb), with database `metrics`, an admin and a
    WRITE-only user `collect`; yields (url, admin auth, collect's password file)."""
    d = tmp_path_factory.mktemp("influxdb")
    http_port, rpc_port = free_port(), free_port()
    (d / "influxdb.conf").write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc_port}"\n'
        f'[meta]\n  dir = "{d}/meta"\n'
        f'[data]\n  dir = "{d}/data"\n  wal-dir = "{d}/wal"\n  query-log-enabled = false\n'
        f'[http]\n  bind-address = "127.0.0.1:{http_port}"\n  log-enabled = false\n  auth-enabled = true\n'
        "[monitor]\n  store-enabled = false\n"
    )
    url = f"http://127.0.0.1:{http_port}"
    with open(d / "influxd.log", "wb") as log:
        proc = subprocess.Popen(["influxd", "-config", d / "influxdb.conf"], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True)
    try:
        def up():
            assert proc.poll() is None, (d / "influxd.log").read_text()
            try:
                return requests.get(f"{url}/ping", timeout=2).status_code == 204
            except requests.ConnectionError:
                return False

        wait_for("influxd to answer /ping", up, timeout=60)
        admin = ("admin", secrets.token_hex(16))
        collect_password = secrets.token_hex(16)

        def query(q, auth=admin):
            r = requests.post(f"{url}/query", data={"q": q}, auth=auth, timeout=10)
            assert r.status_code == 200 and "error" not in r.text, r.text

        query(f"CREATE USER admin WITH PASSWORD '{admin[1]}' WITH ALL PRIVILEGES", auth=None)
        query("CREATE DATABASE metrics")
        query(f"CREATE USER collect WITH PASSWORD '{collect_password}'")
        query("GRANT WRITE ON metrics TO collect")
        yield url, admin, secret_file(d / "collect-password", collect_password)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def influx_rows(influxdb, q):
    """Rows of a query on `metrics` as dicts (empty while there are none)."""
    url, admin, _ = influxdb
    r = requests.get(f"{url}/query", params={"db": "metrics", "q": q}, auth=admin, timeout=10)
    r.raise_for_status()
    result = r.json()["results"][0]
    assert "error" not in result, result
    return [dict(zip(s["columns"], v)) | s.get("tags", {}) for s in result.get("series", []) for v in s["values"]]


def test_collect_writes_to_influxdb(tmp_path, daemons, influxdb, request):
    url, admin, password_file = influxdb
    config = tmp_path / "collect.toml"
    # The host's cgroup layout is not a container's (the x86 tests cover
    # that input); `lo` is this test's only interface for sure.
    config.write_text(f"""
interval = "1s"
service = "arm64-test"
pod = "qemu"

[output]
url = "{url}"
database = "metrics"
username = "collect"
password_file = "{password_file}"
retry_initial = "200ms"
retry_max = "1s"

[inputs.cgroup]
enabled = false

[inputs.net]
include_lo = true

[inputs.disk]
paths = ["{tmp_path}"]

[inputs.procstat]
programs = ["collect", {{ name = "sleeper", pid_file = "{tmp_path}/sleeper.pid" }}]

[inputs.influxdb]
url = "{url}/debug/vars"
""")
    # Another process for procstat to find by its pid file.
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    request.addfinalizer(lambda: (sleeper.kill(), sleeper.wait()))
    (tmp_path / "sleeper.pid").write_text(f"{sleeper.pid}\n")
    collect = daemons(tmp_path, "collect", "--config", config)
    wanted = {"internal_collect", "net", "disk", "procstat", "influxdb_httpd"}

    def arrived():
        assert collect.running(), collect.log()
        names = {r["name"] for r in influx_rows(influxdb, "SHOW MEASUREMENTS")}
        # metrics_written counts what InfluxDB acknowledged in earlier rounds.
        written = influx_rows(influxdb, "SELECT last(metrics_written) FROM internal_collect")
        return wanted <= names and written and written[0]["last"] > 0

    try:
        wait_for(f"{sorted(wanted)} in InfluxDB", arrived, timeout=60, interval=0.5)
    except AssertionError as e:
        names = sorted(r["name"] for r in influx_rows(influxdb, "SHOW MEASUREMENTS"))
        raise AssertionError(f"{e}; InfluxDB has {names}; collect's log:\n{collect.log()}") from None
    tags = {r["value"] for r in influx_rows(influxdb, 'SHOW TAG VALUES WITH KEY = "service"')}
    assert tags == {"arm64-test"}, tags
    pods = {r["value"] for r in influx_rows(influxdb, 'SHOW TAG VALUES WITH KEY = "pod"')}
    assert pods == {"qemu"}, pods
    for name, pid in [("collect", collect.proc.pid), ("sleeper", sleeper.pid)]:
        proc = influx_rows(influxdb, "SELECT last(pid) AS pid, last(memory_rss) AS rss FROM procstat "
                                     f"WHERE process_name = '{name}'")
        assert proc and proc[0]["pid"] == pid and proc[0]["rss"] > 0, (name, pid, proc)
    disk = influx_rows(influxdb, f"SELECT last(total) FROM disk WHERE path = '{tmp_path}'")
    assert disk and disk[0]["last"] > 0, disk
    lo = influx_rows(influxdb, "SELECT last(bytes_recv) FROM net WHERE interface = 'lo'")
    assert lo and lo[0]["last"] > 0, lo
    errors = influx_rows(influxdb, "SELECT max(write_errors) FROM internal_collect")
    assert errors[0]["max"] == 0, errors

    collect.signal(signal.SIGTERM)
    assert collect.wait(30) == 0, collect.log()
    assert "stopping: flushing" in collect.log(), collect.log()


# ---------------------------------------------------------------- ftpsd


def lftp(tmp, name, port, user, password, pki, commands):
    """lftp with TLS required and the test CA; its script, which holds the
    password, is a private file (no secret on a command line)."""
    script = tmp / f"{name}.lftp"
    fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            f"debug 5\nset ssl:ca-file {pki / 'ca.crt'}\nset ssl:verify-certificate true\n"
            "set ftp:ssl-force true\nset ftp:ssl-protect-data true\nset ftp:passive-mode true\n"
            "set net:max-retries 1\nset net:timeout 30\nset cmd:fail-exit true\n"
            f"open -u {user},{password} ftp://localhost:{port}\n{commands}\nquit\n"
        )
    return run(["lftp", "-f", script], timeout=180)


def test_ftpsd_lftp_upload_and_download_over_tls(tmp_path, daemons, pki, ftps_user):
    user, password_file, users = ftps_user
    password = password_file.read_text().strip()
    port, metrics_port = free_port(), free_port()
    first = free_port_range(4)
    config, data = render_ftpsd(tmp_path, pki, users, port, metrics_port, (first, first + 3))
    ftpsd = daemons(tmp_path, "ftpsd", "--config", config)

    def listening():
        assert ftpsd.running(), ftpsd.log()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return True
        except OSError:
            return False

    wait_for("ftpsd to listen", listening)
    payload = os.urandom(3 * 1024 * 1024 + 17)
    local = tmp_path / "local"
    local.mkdir()
    (local / "up.bin").write_bytes(payload)
    r = lftp(tmp_path, "transfer", port, user, password, pki,
             f"put {local}/up.bin -o up.bin\nget up.bin -o {local}/down.bin")
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\nftpsd:\n{ftpsd.log()}"
    for sent in ["---> AUTH TLS", "---> PROT P", "---> STOR up.bin", "---> RETR up.bin"]:
        assert sent in r.stderr, f"lftp did not send {sent!r}:\n{r.stderr}"
    assert (data / user / "up.bin").read_bytes() == payload, "the upload differs"
    assert (local / "down.bin").read_bytes() == payload, "the download differs"

    r = lftp(tmp_path, "refused", port, user, password + "x", pki, "ls")
    assert r.returncode != 0 and "530" in r.stderr, f"a wrong password was not refused:\n{r.stderr}"

    metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
    assert metrics.status_code == 200 and "ftpsd_" in metrics.text, metrics.text[:500]

    ftpsd.signal(signal.SIGTERM)
    assert ftpsd.wait(30) == 0, ftpsd.log()

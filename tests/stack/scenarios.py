"""The stack test's scenarios that need the kubelet: programs killed, a pod
hung, the network cut, Secrets read as each user, every pod probing every
other, and a backup restored over wiped volumes. The checks a user makes
from ft-client are in checks.py; both register in phases.py.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path

import network_policy
from cluster import NODE_IP, NS_PREFIX, PODS, ROOT, SECRETS_DIR, WORK, PodSpec, cluster
from kubelet import Kubelet, host_pid, in_pod, wait_observed
from network import endpoints, ns_exec, reach, sh
from phases import RECHECK, client, phase
from report import log
from sandbox import provision_volume

def probe_ports(svc: str) -> list[int]:
    """The ports of a pod to try: its container ports, and 9902; of a run of
    consecutive ports (the passive range), its two ends."""
    ports = sorted(set(cluster().pods[svc].container_ports) | {9902})
    return [p for p in ports if not (p - 1 in ports and p + 1 in ports)]


@phase("network-policy", host=True)
def check_network_policies(kubelet: Kubelet) -> bool:
    """Phase network-policy: every pod tries every port of every other pod.

    What answers (open, or closed: reached but nothing listens) must be
    exactly what the NetworkPolicies admit (network_policy.allowed, read
    from the rendered objects), and the contract must hold: MySQL only from
    WordPress and phpMyAdmin, InfluxDB from every pod's collector, nobody's
    9901 or 9902 from another pod; the node reaches every pod's 9901.
    """
    running = list(kubelet.pods)
    pods = endpoints()
    policies = cluster().network_policies
    failed: list[str] = []
    columns = [(dst, port) for dst in running for port in probe_ports(dst)]
    seen: dict[tuple[str, str, int], str] = {}
    for src in running:
        targets = [(pods[dst].ip, port) for dst, port in columns if dst != src]
        states = reach(f"{NS_PREFIX}{src}", targets)
        for dst, port in columns:
            if dst == src:
                continue
            state = states[f"{pods[dst].ip}:{port}"]
            seen[(src, dst, port)] = state
            expected = network_policy.allowed(policies, pods[src], pods[dst], port, NODE_IP)
            if (state in ("open", "closed")) != expected:
                failed.append(f"{src} -> {dst}:{port} is {state}, the policies {'admit' if expected else 'deny'} it")
    node = reach(f"{NS_PREFIX}node", [(pods[s].ip, 9901) for s in running])
    for svc in running:
        if node[f"{pods[svc].ip}:9901"] != "open":
            failed.append(f"node -> {svc}:9901 is {node[f'{pods[svc].ip}:9901']}: the probes cannot pass")
    # The contract, on what was seen.
    def reached_from(dst: str, port: int) -> set[str]:
        return {s for (s, d, p), st in seen.items() if d == dst and p == port and st == "open"}
    if "mysql" in running:
        want = {"wordpress", "phpmyadmin"} & set(running)
        if reached_from("mysql", 3306) != want:
            failed.append(f"mysql:3306 answers {sorted(reached_from('mysql', 3306))}, not {sorted(want)}")
    if "influxdb" in running:
        want = set(running) - {"influxdb"}
        if reached_from("influxdb", 8086) != want:
            failed.append(f"influxdb:8086 answers {sorted(reached_from('influxdb', 8086))}, not {sorted(want)}")
    for (src, dst, port), state in seen.items():
        if port in (9901, 9902) and state != "filtered":
            failed.append(f"{src} -> {dst}:{port} is {state}")
    # The matrix: o open, c closed (admitted, nothing listens), . filtered.
    mark = {"open": "o", "closed": "c", "filtered": "."}
    header = [f"{d}:{p}" for d, p in columns]
    print("network policy matrix (rows: from; o open, c admitted but closed, . filtered):")
    print(" " * 12 + " ".join(f"{h:>16}" for h in header))
    for src in running:
        cells = ["-" if d == src else mark.get(seen[(src, d, p)], "?") for d, p in columns]
        print(f"{src:>12}" + " ".join(f"{c:>16}" for c in cells))
    print(f"{'node':>12}" + " ".join(
        f"{(mark.get(node.get(f'{pods[d].ip}:{p}', ''), ' ') if p == 9901 else ' '):>16}" for d, p in columns))
    for f in failed:
        log(f"FAIL network policy: {f}")
    if not failed:
        log(f"PASS network policy: {len(seen)} pod-to-pod connections as the policies say, "
            f"the node reaches every pod's 9901")
    return not failed


# Secret files anyone may read: the certificates (public by nature).
PUBLIC_SECRET_FILES = {"ca.crt", "ca.crl", "tls.crt"}


# Users of a pod besides its programs': those nginx workers and php-fpm pools
# switch to themselves, and the nginx pod's SSH login.
OTHER_USERS = {"nginx": ["nginx", "ft"], "wordpress": ["nginx", "php"], "phpmyadmin": ["nginx", "php"]}


def secret_readers(spec: PodSpec) -> tuple[list[str], dict[str, str]]:
    """The non-root users of a pod's programs, and the private copies its
    supervise.toml renders: target -> owner."""
    config = tomllib.loads((ROOT / "docker" / spec.service / "supervise.toml").read_text())
    users = sorted({p["user"] for p in config.get("program", []) if p.get("user")} | set(OTHER_USERS.get(spec.service, [])))
    copies = {t["target"]: t["owner"].split(":")[0] for t in config.get("template", []) if t.get("owner")}
    return users, copies


@phase("secret-access", host=True)
def check_secret_access(kubelet: Kubelet) -> bool:
    """Phase secret-access: as each program's user in each pod, read every
    mounted Secret file and every private copy; what is readable must be the
    public certificates and the copies the user owns, nothing else."""
    failed = []
    for svc, pod in kubelet.pods.items():
        users, copies = secret_readers(pod.spec)
        listing = in_pod(pod, "sh", "-c", "ls -d /run/secrets/*/* /run/private/*/* 2>/dev/null").stdout.split()
        if not listing:
            failed.append(f"{svc}: no secret files found")
            continue
        for user in users:
            script = 'for f in "$@"; do head -c1 "$f" >/dev/null 2>&1 && echo "$f"; done'
            out = in_pod(pod, "sh", "-c", script, "read", *listing, user=user)
            readable = set(out.stdout.split())
            expected = {f for f in listing if f.rsplit("/", 1)[1] in PUBLIC_SECRET_FILES and f.startswith("/run/secrets/")}
            expected |= {f for f in listing if copies.get(f) == user}
            shown = ", ".join(sorted(readable)) or "nothing"
            if readable != expected:
                failed.append(f"{svc}: {user} reads {shown}; expected {', '.join(sorted(expected)) or 'nothing'}")
            else:
                log(f"PASS secret access {svc}/{user}: reads {shown}")
    for f in failed:
        log(f"FAIL secret access: {f}")
    return not failed


OUTAGE_SECONDS = 60


@phase("influx-outage", host=True)
def influx_outage(kubelet: Kubelet) -> bool:
    """Phase influx-outage: every other pod is cut off from influxdb:8086 for
    a minute (a filter in the influxdb pod's network, while everything keeps
    running), then the filter goes; checks.py's outage phase then proves
    each pod's points of that minute arrived, each once."""
    if "influxdb" not in kubelet.pods:
        return True
    ns = f"{NS_PREFIX}influxdb"
    cut = ("table inet outage {\n  chain input {\n"
           "    type filter hook input priority filter - 10; policy accept;\n"
           '    iifname != "lo" tcp dport 8086 drop\n  }\n}\n')
    ns_exec(ns, "nft", "-f", "-", input=cut)
    start = time.time()
    log(f"influxdb:8086 cut off from every other pod for {OUTAGE_SECONDS} s")
    time.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for a condition
    ns_exec(ns, "nft", "delete", "table", "inet", "outage")
    end = time.time()
    log("influxdb:8086 reachable again")
    (WORK / "outage.json").write_text(json.dumps({"start": start, "end": end}))
    return client("outage")


# What `./setup.sh backup` must bring back, read in the pods.
MYSQL_STATE = ("CHECKSUM TABLE wordpress.wp_posts, wordpress.wp_postmeta, wordpress.wp_users, wordpress.wp_usermeta; "
               "SELECT post_title FROM wordpress.wp_posts WHERE post_status = 'publish' ORDER BY ID; "
               "SELECT user_login FROM wordpress.wp_users ORDER BY ID")


# A tree on a volume: names, modes, owners, sizes, and each file's sha256
# (busybox's find and stat, as in the pods).
TREE_STATE = ("cd {dir} && find . -mindepth 1 -path ./.uploads -prune -o -exec stat -c '%n %a %u:%g %s' {{}} + | sort"
              " && find . -path ./.uploads -prune -o -type f -exec sha256sum {{}} + | sort")
# The trees of the volumes that hold files (the FTPS users' files without
# ftpsd's staging folder, WordPress's content, Grafana's data directory).
TREES = {"ftps": "/var/lib/ftps", "wordpress": "/var/lib/wordpress", "grafana": "/var/lib/grafana"}


def influx_in_pod(kubelet: Kubelet, *options: str) -> subprocess.CompletedProcess:
    """The influx CLI in the influxdb pod, as admin, with these options."""
    return in_pod(kubelet.pods["influxdb"], "sh", "-c",
                  'INFLUX_PASSWORD=$(cat /run/secrets/ft-influxdb/admin-password)'
                  ' influx -host 127.0.0.1 -port 8086 -username admin "$@"', "influx", *options)


def data_state(kubelet: Kubelet, before: int) -> dict[str, str]:
    """The data of the five volumes: MySQL's WordPress tables (checksums and
    published posts), InfluxDB's points older than `before` (epoch seconds,
    per measurement), and the trees of TREES."""
    mysql = in_pod(kubelet.pods["mysql"], "mariadb", "-N", "-B", "-e", MYSQL_STATE)
    influx = influx_in_pod(kubelet, "-database", "metrics", "-format", "csv",
                           "-execute", f"SELECT count(*) FROM /.*/ WHERE time < {before}s")
    state = {"mysql": mysql.stdout + mysql.stderr, "influxdb": influx.stdout + influx.stderr}
    for service, directory in TREES.items():
        tree = in_pod(kubelet.pods[service], "sh", "-c", TREE_STATE.format(dir=directory))
        state[service] = tree.stdout + tree.stderr
    return state


def setup_sh(kubelet: Kubelet, *args: str) -> subprocess.CompletedProcess:
    """`./setup.sh <args>` with kubectl answered by these pods (tests/stack/kubectl.py)."""
    pods = WORK / "kubectl-pods.json"
    pods.with_name(pods.name + ".restarts").unlink(missing_ok=True)
    pods.write_text(json.dumps({"pids": {s: p.init_pid() for s, p in kubelet.pods.items()},
                                "probes": str(kubelet.probe_file), "starts": str(kubelet.starts_file)}))
    bin_dir = WORK / "kubectl-bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "kubectl").exists():
        (bin_dir / "kubectl").symlink_to(ROOT / "tests/stack/kubectl.py")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STACK_KUBECTL_PODS": str(pods),
           "SECRETS_DIR": str(SECRETS_DIR), "FT_BACKUP_PASSPHRASE": "stack test passphrase", "ROLLOUT_TIMEOUT": "60"}
    started = time.monotonic()
    r = subprocess.run(["bash", str(ROOT / "setup.sh"), *args], env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=600)
    log(f"./setup.sh {' '.join(args)}: exit {r.returncode} after {time.monotonic() - started:.1f} s")
    for line in r.stderr.splitlines():
        if line.startswith("influxdb: "):  # how the merge of the points went
            log(f"  {line}")
    return r


def wipe_volumes(kubelet: Kubelet, services: list[str]) -> None:
    """Every volume of these pods lost, as with `kubectl delete pvc` and a new
    claim: the container killed, its volumes emptied, then started afresh."""
    starts = {s: kubelet.pods[s].started_wall for s in services}
    for s in services:
        pod = kubelet.pods[s]
        with pod.lock:  # no restart until the volume is new
            if pod.proc and pod.proc.poll() is None:
                pod.proc.kill()
                pod.proc.wait()
            for claim in pod.manifest.claims.values():
                shutil.rmtree(WORK / "volumes" / claim)
                provision_volume(WORK / "volumes" / claim)
    deadline = time.monotonic() + 60
    while any(kubelet.pods[s].started_wall == starts[s] for s in services):
        if time.monotonic() > deadline:
            raise TimeoutError("pods not restarted after their volumes were wiped")
        time.sleep(0.2)
    kubelet.wait_ready(services, 180)


def promise_more_points(archive: Path, out: Path) -> None:
    """`archive` with its InfluxDB part claiming one point more than it holds,
    its checksums made to match: an archive whose points cannot all arrive."""
    with tempfile.TemporaryDirectory() as tmp:
        parts, influx = Path(tmp) / "parts", Path(tmp) / "influxdb"
        with tarfile.open(archive) as t:
            t.extractall(parts, filter="data")
        with tarfile.open(parts / "influxdb.tar") as t:
            t.extractall(influx, filter="data")
        words = (influx / "points").read_text().split()  # before <epoch> points <n>
        words[3] = str(int(words[3]) + 1)
        (influx / "points").write_text(" ".join(words) + "\n")
        with tarfile.open(parts / "influxdb.tar", "w") as t:
            t.add(influx, arcname=".")
        names = sorted(p.name for p in parts.iterdir() if p.name != "SHA256SUMS")
        sums = sh("sha256sum", "--", *names, cwd=parts, capture=True).stdout
        (parts / "SHA256SUMS").write_text(sums)
        sh("tar", "-C", str(parts), "-czf", str(out), ".")


@phase("backup-restore", host=True)
def backup_and_restore(kubelet: Kubelet) -> bool:
    """Phase backup-restore: `./setup.sh backup` of the running stack, every
    volume wiped, a truncated archive refused with nothing changed, `./setup.sh
    restore` twice, and the data as it was before the backup each time (the
    WordPress user persist-write added in wp-admin logs in again); then an
    archive whose InfluxDB part cannot deliver the points it counts fails."""
    failed: list[str] = []

    def check(ok: bool, what: str, detail: str = "") -> None:
        log(f"{'PASS' if ok else 'FAIL'} backup-restore: {what}" + ("" if ok else f"\n{detail}"))
        if not ok:
            failed.append(what)

    holders = ["mysql", "influxdb", *TREES]
    # Points older than half a minute are in InfluxDB, none still in a
    # collector's buffer (they write every 10 s).
    mark = int(time.time()) - 30
    deadline = time.monotonic() + 90
    while (before := data_state(kubelet, mark))["influxdb"].count("\n") <= 3 and time.monotonic() < deadline:
        time.sleep(5)
        mark = int(time.time()) - 30
    added = json.loads((WORK / "persist.json.wordpress-user").read_text())["login"]
    kept_by_grafana = json.loads((WORK / "persist-grafana.json").read_text())["path"]
    uploaded = json.loads((WORK / "browser.json").read_text())["image_path"]
    check(re.search(rf"^{added}$", before["mysql"], re.M) is not None
          and re.search(r"^[0-9a-f]{64}  ", before["ftps"], re.M) is not None
          and before["influxdb"].count("\n") > 3
          and uploaded.split("/wp-content/", 1)[1] in before["wordpress"]
          and kept_by_grafana.rsplit("/", 1)[1] in before["grafana"],
          "the data to keep is there (a WordPress user, FTPS files, points, the image uploaded in the "
          "browser, the file in Grafana's data directory)", json.dumps(before, indent=1)[:3000])
    archive = WORK / "backup" / "ft_services-stack.tar.gz"
    shutil.rmtree(archive.parent, ignore_errors=True)
    r = setup_sh(kubelet, "backup", str(archive))
    check(r.returncode == 0 and archive.exists(), f"backup written ({archive.stat().st_size if archive.exists() else 0} bytes)",
          r.stdout + r.stderr)
    if failed:
        return False
    wipe_volumes(kubelet, holders)
    wiped = data_state(kubelet, mark)
    check(all(wiped[k] != before[k] for k in holders), "every volume wiped", json.dumps(wiped, indent=1)[:2000])
    truncated = archive.with_name("truncated.tar.gz")
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    r = setup_sh(kubelet, "restore", str(truncated))
    check(r.returncode != 0 and "truncated or corrupt" in r.stderr, "a truncated archive refused", r.stdout + r.stderr)
    check(data_state(kubelet, mark) == wiped, "nothing changed by the refused restore")
    for attempt in ("restore", "restore again"):
        r = setup_sh(kubelet, "restore", str(archive))
        check(r.returncode == 0, f"{attempt}: exit 0", r.stdout + r.stderr)
        after = data_state(kubelet, mark)
        check(client("persist-wordpress-user"), f"{attempt}: {added}, added in wp-admin before the backup, logs in")
        check(client("browser-verify"), f"{attempt}: the post's image, uploaded in the browser, shown byte for byte")
        for part in holders:
            check(after[part] == before[part], f"{attempt}: {part} as before the backup",
                  "".join(difflib.unified_diff(before[part].splitlines(True), after[part].splitlines(True),
                                               "before the backup", f"after {attempt}"))[:2500]
                  + f"\n./setup.sh restore said:\n{r.stderr[-1500:]}")
    # The restore must not claim points it could not merge: it fails, says
    # so, and keeps metrics_restore; what was merged stays.
    short = archive.with_name("short-of-points.tar.gz")
    promise_more_points(archive, short)
    r = setup_sh(kubelet, "restore", str(short))
    check(r.returncode != 0 and "did not all arrive; metrics_restore is kept" in r.stderr,
          "an archive short of its InfluxDB points: the restore fails and says so", r.stdout + r.stderr)
    databases = influx_in_pod(kubelet, "-execute", "SHOW DATABASES")
    check(re.search(r"^metrics_restore$", databases.stdout, re.M) is not None, "metrics_restore kept for a look",
          databases.stdout + databases.stderr)
    after = data_state(kubelet, mark)
    check(after == before, "the data as before the backup after the failed restore")
    return not failed


@phase("kill", host=True)
def kill_and_recover(kubelet: Kubelet, service: str, program: str) -> bool:
    """kill -9 one program of a pod: supervise must exit non-zero, the pod restart."""
    pod = kubelet.pods[service]
    report = wait_observed(kubelet, service, time.time()).get("programs", [])
    ns_pid = next((p.get("pid") for p in report if p["name"] == program), None)
    pid = host_pid(pod, ns_pid) if ns_pid else None
    if not pid:
        log(f"FAIL kill {service}/{program}: not running (supervise reports pid {ns_pid})")
        return False
    starts = pod.starts
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while pod.starts == starts and time.monotonic() < deadline:
        time.sleep(0.2)
    if pod.starts == starts:
        log(f"FAIL kill -9 {service}/{program}: the pod did not restart")
        return False
    exit_code = pod.exits[-1] if pod.exits else None
    try:
        kubelet.wait_ready([service], 180)
    except TimeoutError as e:
        log(f"FAIL kill -9 {service}/{program}: {e}")
        return False
    if exit_code == 0:
        log(f"FAIL kill -9 {service}/{program}: supervise exited 0")
        return False
    # supervise counts its starts in the pod's emptyDir: restarts-to-date.
    restarts = wait_observed(kubelet, service, time.time()).get("restarts")
    if restarts != pod.starts - 1:
        log(f"FAIL kill -9 {service}/{program}: /healthz reports {restarts} restarts, the pod has had {pod.starts - 1}")
        return False
    log(f"PASS kill -9 {service}/{program} (pid {pid}): supervise exited {exit_code}, pod restarted and ready")
    needs = {"phpmyadmin": {"phpmyadmin", "nginx", "mysql"}, "persist-mysql": {"wordpress"}}
    return client(*(c for c in RECHECK[service] if needs.get(c, set()) <= set(kubelet.pods)))


@phase("hang", host=True)
def hang_and_recover(kubelet: Kubelet, service: str) -> bool:
    """SIGSTOP the pod's supervise: its liveness probe must fail failureThreshold
    times, and the kubelet kill the container (SIGTERM, which a stopped
    process ignores, then SIGKILL after the grace period) and restart it."""
    pod = kubelet.pods[service]
    pid, starts = pod.init_pid(), pod.starts
    if not pid:
        log(f"FAIL liveness {service}: no supervise")
        return False
    m = pod.manifest
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    budget = (m.liveness.failure_threshold + 1) * (m.liveness.period + m.liveness.timeout) + m.grace_seconds + 10
    while pod.starts == starts and time.monotonic() < stopped + budget:
        time.sleep(0.2)
    if pod.starts == starts:
        log(f"FAIL liveness {service}: a hung supervise was not restarted within {budget:.0f} s")
        return False
    took = time.monotonic() - stopped
    # It must not have been killed before failureThreshold probes could fail.
    earliest = (m.liveness.failure_threshold - 1) * m.liveness.period
    if took < earliest:
        log(f"FAIL liveness {service}: killed after {took:.0f} s, before {m.liveness.failure_threshold} probes could fail")
        return False
    try:
        kubelet.wait_ready([service], 120)
    except TimeoutError as e:
        log(f"FAIL liveness {service}: {e}")
        return False
    log(f"PASS liveness {service}: hung supervise failed {m.liveness.failure_threshold} probes "
        f"(every {m.liveness.period:g} s), killed after {took:.0f} s and restarted")
    return client(*RECHECK[service])


def long_running_programs(spec: PodSpec) -> list[str]:
    """The services (not oneshots) of the image's supervise.toml that run here."""
    config = tomllib.loads((ROOT / "docker" / spec.service / "supervise.toml").read_text())
    return [p["name"] for p in config.get("program", [])
            if p.get("kind", "service") == "service" and p["name"] not in spec.absent_programs]


@phase("kill-all", host=True)
def kill_every_program(kubelet: Kubelet) -> bool:
    """Phase kill-all: each long-running program of each pod in turn.

    The list comes from the images' supervise.toml files; supervise must
    report exactly those as running services, and each is killed once.
    """
    failed = []
    expected_total = 0
    killed = 0
    order = ["mysql", "influxdb"] + [s for s in kubelet.pods if s not in ("mysql", "influxdb")]
    for service in (s for s in order if s in kubelet.pods):
        programs = long_running_programs(PODS[service])
        expected_total += len(programs)
        report = wait_observed(kubelet, service, time.time()).get("programs", [])
        reported = sorted(p["name"] for p in report if p.get("kind") == "service")
        if reported != sorted(programs):
            log(f"FAIL kill-all {service}: supervise reports services {reported}, supervise.toml has {sorted(programs)}")
            failed.append(f"kill:{service}")
        for program in programs:
            killed += 1
            if not kill_and_recover(kubelet, service, program):
                failed.append(f"kill:{service}/{program}")
    log(f"{'PASS' if killed == expected_total and not failed else 'FAIL'} kill-all: {killed} programs killed, "
        f"{expected_total} long-running programs in the pods' supervise.toml files")
    return not failed


# --- what each pod's root holds -----------------------------------------------------

# Host programs a pod must not see: its root is its image's layers only.
NOT_IN_ANY_IMAGE = ["/usr/bin/python3", "/usr/bin/apt-get", "/usr/bin/dpkg", "/usr/bin/bash",
                    "/usr/bin/perl", "/work", "/root/.cargo"]
# What PHP has built in on Alpine 3.22 (aports' php8x APKBUILD: the
# extensions not built shared), as `php -m` names them; every other module
# must come from an apk package of the image.
PHP_CORE = {"core", "date", "filter", "hash", "json", "libxml", "pcre", "random", "reflection", "spl",
            "standard", "zlib"}


@phase("images", host=True)
def pods_hold_their_images_only(kubelet: Kubelet) -> bool:
    """In every pod: /bin/sh and the core tools are busybox, nothing of the
    host is there, and PHP loads exactly the extensions its image installs,
    from the image's ini files."""
    import rootfs  # the image recipes (apk closure) as the builder read them
    failed = []
    for svc, pod in kubelet.pods.items():
        shell = in_pod(pod, "readlink", "-f", "/bin/sh").stdout.strip()
        if shell != "/usr/bin/busybox":
            failed.append(f"{svc}: /bin/sh is {shell or 'missing'}, not busybox")
        present = in_pod(pod, "sh", "-c", 'for p in "$@"; do [ -e "$p" ] && echo "$p"; done', "check",
                         *NOT_IN_ANY_IMAGE).stdout.split()
        if present:
            failed.append(f"{svc}: holds {', '.join(present)}")
        recipe = rootfs.recipe(svc)
        for series in sorted({rootfs.php_extension(p)[0] for p in recipe.apk if rootfs.php_extension(p)}):
            fpm = f"php-fpm{series}"
            modules = in_pod(pod, fpm, "-m")
            loaded = {m.strip().lower() for m in modules.stdout.splitlines()
                      if m.strip() and not m.startswith("[")}
            # php-fpm -m lists its own SAPI module too, cgi-fcgi.
            wanted = PHP_CORE | {"cgi-fcgi"} | {ext for p in recipe.apk if (e := rootfs.php_extension(p))
                                                for ext in [("zend opcache" if e[1] == "opcache" else e[1])]}
            if loaded != wanted:
                failed.append(f"{svc}: {fpm} -m has {sorted(loaded - wanted)} beyond the image's and lacks "
                              f"{sorted(wanted - loaded)} ({modules.stderr.strip()[:300]})")
            info = in_pod(pod, "sh", "-c", f"{fpm} -i | sed -n 's/^Loaded Configuration File => //p'"
                                           " | xargs readlink -f").stdout.strip()
            if info != f"/etc/php{series}/php.ini":
                failed.append(f"{svc}: {fpm} reads {info or 'no php.ini'}, not /etc/php{series}/php.ini")
            if not failed:
                log(f"PASS images {svc}: {fpm} loads {len(loaded)} modules, exactly the image's, "
                    f"with /etc/php{series}/php.ini")
        if not any(f.startswith(f"{svc}:") for f in failed):
            log(f"PASS images {svc}: busybox /bin/sh, nothing of the host")
    for f in failed:
        log(f"FAIL images: {f}")
    return not failed


# --- what users make survives a restart ---------------------------------------------------

GRAFANA_KEPT = "/var/lib/grafana/ft-stack-kept.txt"


def restart_container(kubelet: Kubelet, service: str, timeout: float = 180) -> bool:
    """The pod's container killed (SIGKILL, as on a node's crash of it), the
    kubelet starting it again; True once the new one is ready."""
    pod = kubelet.pods[service]
    starts = pod.starts
    pod.kill()
    deadline = time.monotonic() + 60
    while pod.starts == starts and time.monotonic() < deadline:
        time.sleep(0.2)
    if pod.starts == starts:
        return False
    try:
        kubelet.wait_ready([service], timeout)
    except TimeoutError:
        return False
    return True


@phase("persist-grafana", host=True)
def grafana_data_survives_a_restart(kubelet: Kubelet) -> bool:
    """Grafana's data directory is its volume: a file Grafana's user writes
    there is there after the container is killed and started again
    (grafana-server cannot run here; its database lives in that directory)."""
    import secrets
    pod = kubelet.pods["grafana"]
    token = secrets.token_hex(8)
    wrote = in_pod(pod, "sh", "-c", f"echo {token} > {GRAFANA_KEPT}", user="grafana")
    if wrote.returncode != 0:
        log(f"FAIL persist grafana: user grafana cannot write {GRAFANA_KEPT}: {wrote.stderr.strip()}")
        return False
    if not restart_container(kubelet, "grafana"):
        log("FAIL persist grafana: the pod did not come back")
        return False
    kept = in_pod(pod, "cat", GRAFANA_KEPT)
    if kept.stdout.strip() != token:
        log(f"FAIL persist grafana: after a restart {GRAFANA_KEPT} holds {kept.stdout.strip()!r} {kept.stderr.strip()}")
        return False
    (WORK / "persist-grafana.json").write_text(json.dumps({"path": GRAFANA_KEPT, "token": token}))
    log(f"PASS persist grafana: {GRAFANA_KEPT}, written as grafana, kept across a restart of the container")
    return True


@phase("wordpress-content", host=True)
def uploaded_image_survives_crashes(kubelet: Kubelet) -> bool:
    """The image the author uploaded in the browser is still served byte for
    byte, and shown in the post, after php-fpm is killed and after the whole
    container is."""
    if not (kill_and_recover(kubelet, "wordpress", "php-fpm") and client("browser-verify")):
        return False
    if not restart_container(kubelet, "wordpress"):
        log("FAIL wordpress content: the pod did not come back after its container was killed")
        return False
    if not client("browser-verify"):
        return False
    log("PASS wordpress content: the uploaded image and its post after php-fpm's crash and the container's")
    return True

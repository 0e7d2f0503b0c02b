#!/usr/bin/env python3
"""The stack test: every image's processes, one network namespace per pod.

Run by tests/stack/run.sh (which builds the binaries and the secrets first) as
    stack.py run        set up, start every pod, run the checks, clean up
    stack.py cleanup    remove whatever a killed run left behind

The cluster stand-in, all in network namespaces named ft-*:
    ft-hub        a bridge, br0, joining every other namespace by a veth pair
    ft-<service>  one pod each, at a fixed address on 10.77.0.0/24
    ft-lb         the MetalLB address: nftables DNAT of every Service port
                  to its pod (and masquerade, so replies come back through it)
    ft-node       the pods' node: the kubelet's probes come from here, and
                  NetworkPolicy always admits it
    ft-client     where every check runs: the user's machine
No namespace has a default route, so nothing can leave the bridge, and the
host's own namespace never sends to it (it has no route there either: checked).

This process plays kubelet: it starts each pod (tests/stack/pod.sh under
unshare), restarts it whenever its supervise exits, and kills it when the
liveness probe (GET :9901/healthz, made from ft-node like a node's probe)
fails three times in a row; readiness is GET :9901/readyz.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import network_policy
from manifests import Cluster, Pod as PodManifest
from network_policy import Endpoint
from sandbox import PodCgroup, lay_out_secret_volume, provision_volume

ROOT = Path(__file__).resolve().parents[2]
WORK = Path(os.environ.get("STACK_WORK", ROOT / "tests/.work/stack"))
TARGET_DIR = Path(
    os.environ.get("TARGET_DIR", ROOT / "target/x86_64-unknown-linux-musl/release")
)
SECRETS_DIR = Path(os.environ.get("SECRETS_DIR", WORK / "secrets"))
SUBNET = "10.77.0"
LB_IP = f"{SUBNET}.100"
CLIENT_IP = f"{SUBNET}.200"
NODE_IP = f"{SUBNET}.250"
NS_PREFIX = "ft-"


@dataclass
class PodSpec:
    """What the manifests cannot say about a pod of this test."""

    service: str
    ip: str
    users: list[str] = field(default_factory=list)  # Alpine users Debian lacks
    # Programs of the image's supervise.toml that cannot run here.
    absent_programs: list[str] = field(default_factory=list)


# Each pod's address on the test network, and the users of its image that
# Debian's packages do not create. Volumes, Secrets, environment, sandbox and
# probes come from the rendered manifests (manifests.py).
PODS = {
    p.service: p
    for p in [
        PodSpec("mysql", f"{SUBNET}.11"),
        PodSpec("influxdb", f"{SUBNET}.12", users=["influxdb"]),
        PodSpec("phpmyadmin", f"{SUBNET}.13", users=["nginx", "php"]),
        PodSpec("wordpress", f"{SUBNET}.14", users=["nginx", "php"]),
        PodSpec("nginx", f"{SUBNET}.15", users=["nginx", "ft:/home/ft:/bin/sh"]),
        PodSpec("ftps", f"{SUBNET}.16", users=["ftps"]),
        PodSpec("grafana", f"{SUBNET}.17", users=["grafana"], absent_programs=["grafana"]),
    ]
}

# The rendered manifests; set by run() before any pod starts.
CLUSTER: Cluster | None = None


def cluster() -> Cluster:
    global CLUSTER
    if CLUSTER is None:
        WORK.mkdir(parents=True, exist_ok=True)
        CLUSTER = Cluster.render(LB_IP, WORK)
    return CLUSTER


# Each failure's message, printed again at the end so that the last lines of
# a run (all a CI summary may keep) say what failed and why.
FAILURES: list[str] = []


def log(msg: str) -> None:
    line = f"[stack {time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    if msg.startswith(("FAIL", "error:")):
        FAILURES.append(line)


def sh(*args: str, check: bool = True, capture: bool = False, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(args), check=check, text=True, capture_output=capture, **kw
    )


def ns_exec(ns: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *args, **kw)


def namespaces() -> list[str]:
    out = sh("ip", "netns", "list", capture=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(NS_PREFIX)]


# --- network -----------------------------------------------------------------


def attach(ns: str, ip: str, index: int) -> None:
    """A veth pair from the hub's bridge into namespace `ns`, address `ip`/24."""
    hub = f"{NS_PREFIX}hub"
    sh("ip", "netns", "add", ns)
    ns_exec(ns, "ip", "link", "set", "lo", "up")
    # Created inside the hub so that no interface ever appears on the host.
    ns_exec(hub, "ip", "link", "add", f"p{index}", "type", "veth", "peer", "name", "eth0")
    ns_exec(hub, "ip", "link", "set", "eth0", "netns", ns)
    ns_exec(hub, "ip", "link", "set", f"p{index}", "master", "br0", "up")
    ns_exec(ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
    ns_exec(ns, "ip", "link", "set", "eth0", "up")


def port_ranges(ports: list[int]) -> list[str]:
    """nft's notation of a set of ports: consecutive ones as ranges."""
    out, ports = [], sorted(ports)
    start = prev = ports[0]
    for p in ports[1:] + [None]:
        if p is not None and p == prev + 1:
            prev = p
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if p is not None:
            start = prev = p
    return out


def lb_ruleset() -> str:
    """kube-proxy for the LoadBalancer Services (externalTrafficPolicy Cluster).

    Every Service port of the load balancer's address is DNATed to its pod,
    and the source is masqueraded to the address: as behind MetalLB with the
    Cluster policy, every client reaches a pod from one address.
    """
    by_service: dict[str, list[int]] = {}
    for sp in cluster().load_balancer_ports:
        if sp.port != sp.target_port:
            raise SystemExit(f"{sp.service}: port {sp.port} -> {sp.target_port}: not supported here")
        by_service.setdefault(sp.service, []).append(sp.port)
    rules = [
        f"    ip daddr {LB_IP} tcp dport {{ {', '.join(port_ranges(ports))} }} dnat to {PODS[svc].ip}"
        for svc, ports in by_service.items()
    ]
    return (
        "table ip lb {\n"
        "  chain prerouting {\n"
        "    type nat hook prerouting priority dstnat;\n"
        + "\n".join(rules)
        + "\n  }\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat;\n"
        f"    ip saddr != {LB_IP} ct status dnat masquerade\n"
        "  }\n"
        "}\n"
    )


def setup_network() -> None:
    hub = f"{NS_PREFIX}hub"
    sh("ip", "netns", "add", hub)
    ns_exec(hub, "ip", "link", "set", "lo", "up")
    ns_exec(hub, "ip", "link", "add", "br0", "type", "bridge")
    ns_exec(hub, "ip", "link", "set", "br0", "up")
    members = [(f"{NS_PREFIX}{svc}", spec.ip) for svc, spec in PODS.items()]
    members += [(f"{NS_PREFIX}lb", LB_IP), (f"{NS_PREFIX}client", CLIENT_IP),
                (f"{NS_PREFIX}node", NODE_IP)]
    for index, (ns, ip) in enumerate(members):
        attach(ns, ip, index)
    lb = f"{NS_PREFIX}lb"
    ns_exec(lb, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    # Replies leave by the interface they came in on: no redirects.
    ns_exec(lb, "sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0")
    ns_exec(lb, "sysctl", "-qw", "net.ipv4.conf.eth0.send_redirects=0")
    ns_exec(lb, "nft", "-f", "-", input=lb_ruleset())
    enforce_network_policies()
    hosts = "127.0.0.1 localhost\n" + "".join(
        f"{spec.ip} {svc}\n" for svc, spec in PODS.items()
    )
    (WORK / "hosts").write_text(hosts)
    check_routes()


def endpoints() -> dict[str, Endpoint]:
    """Every pod of the test as a NetworkPolicy sees it: address, labels, named ports."""
    return {svc: Endpoint(svc, spec.ip, cluster().pods[svc].labels, cluster().pods[svc].ports)
            for svc, spec in PODS.items()}


def enforce_network_policies() -> None:
    """The CNI's part: each pod's ingress filtered by the rendered NetworkPolicies."""
    pods = endpoints()
    for svc, pod in pods.items():
        rules = network_policy.ruleset(cluster().network_policies, pod, list(pods.values()), NODE_IP)
        (WORK / f"policy-{svc}.nft").write_text(rules)
        ns_exec(f"{NS_PREFIX}{svc}", "nft", "-f", "-", input=rules)


def check_routes() -> None:
    """Only the namespaces are on the test network, and it leads nowhere else.

    The host has no address or route on 10.77.0.0/24 (nothing here ever sends
    to it from the host), no namespace has a default route, and every one
    reaches the load balancer directly on its bridge port.
    """
    host_addrs = sh("ip", "-o", "addr", "show", capture=True).stdout
    host_routes = sh("ip", "-o", "route", "show", f"{SUBNET}.0/24", capture=True).stdout
    if f" {SUBNET}." in host_addrs or host_routes.strip():
        raise SystemExit(f"the host is on the test network {SUBNET}.0/24: {host_routes}")
    for ns in [f"{NS_PREFIX}client", f"{NS_PREFIX}node", *(f"{NS_PREFIX}{s}" for s in PODS)]:
        routes = ns_exec(ns, "ip", "-o", "route", "show", capture=True).stdout
        if "default" in routes:
            raise SystemExit(f"{ns} has a default route: {routes}")
        got = ns_exec(ns, "ip", "-o", "route", "get", LB_IP, capture=True).stdout
        if "dev eth0" not in got:
            raise SystemExit(f"{ns} does not reach {LB_IP} on the bridge: {got}")


# --- pods ----------------------------------------------------------------------


def dockerfile_env(service: str) -> list[str]:
    """The ENV instructions of docker/<service>/Dockerfile, as VAR=value."""
    text = (ROOT / "docker" / service / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    env = []
    for line in text.splitlines():
        m = re.match(r"\s*ENV\s+(.*)", line)
        if m:
            env += [w for w in m.group(1).split() if "=" in w]
    return [e.replace("$PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") for e in env]


def supervise_config(spec: PodSpec, dest: Path) -> Path:
    """The image's supervise.toml, minus the programs that cannot run here."""
    src = ROOT / "docker" / spec.service / "supervise.toml"
    if not spec.absent_programs:
        return src
    text = src.read_text()
    # Drop the whole [[program]] block of each absent program, textually, so
    # the rest of the file stays exactly the image's.
    blocks = re.split(r"(?m)^(?=\[\[?\w)", text)
    kept = []
    for block in blocks:
        m = re.search(r'(?m)^name\s*=\s*"([^"]+)"', block)
        if block.startswith("[[program]]") and m and m.group(1) in spec.absent_programs:
            continue
        for absent in spec.absent_programs:
            block = re.sub(rf'(?m)^(after\s*=\s*\[.*?)"{absent}",?\s*', r"\1", block)
        kept.append(block)
    dest.write_text("".join(kept))
    tomllib.loads(dest.read_text())  # still TOML; supervise checks the rest
    return dest


class Pod:
    """One pod and its kubelet: start, restart on exit, liveness kills."""

    def __init__(self, spec: PodSpec):
        self.spec = spec
        self.ns = f"{NS_PREFIX}{spec.service}"
        self.dir = WORK / "pods" / spec.service
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.exits: list[int] = []
        self.stopping = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.loop, name=spec.service, daemon=True)
        self.started_at = 0.0
        self.started_wall = 0.0
        self.on_start = lambda: None  # set by the Kubelet: tells the prober
        self.cgroup = PodCgroup(f"{NS_PREFIX}stack-{spec.service}")

    @property
    def manifest(self) -> PodManifest:
        """What k8s/<service>/deployment.yaml asks of the node, as rendered."""
        return cluster().pods[self.spec.service]

    def env(self) -> dict[str, str]:
        m = self.manifest
        volumes = []
        for path, claim in m.claims.items():
            volumes.append(f"{path}={provision_volume(WORK / 'volumes' / claim)}")
        # An emptyDir lives as long as the pod, across its container's restarts.
        for path in m.empty_dirs:
            vol = self.dir / "empty-dirs" / path.strip("/").replace("/", "_")
            if not vol.exists():
                vol.mkdir(parents=True)
                vol.chmod(0o777)  # the kubelet's emptyDir mode
            volumes.append(f"{path}={vol}")
        secret_volumes = []
        for sv in m.secret_volumes:
            staged = self.dir / "secret-volumes" / sv.name
            mode, gid = lay_out_secret_volume(sv, SECRETS_DIR / sv.secret, staged, m.fs_group)
            secret_volumes.append(f"{sv.mount_path}={staged}={mode:o}={gid}")
        container_env = [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"HOSTNAME={m.env['POD_NAME']}",
            *dockerfile_env(self.spec.service),
            *(f"{k}={v}" for k, v in m.env.items()),
        ]
        env_file = self.dir / "env"
        env_file.write_text("".join(f"{e}\n" for e in container_env))
        return {
            "PATH": os.environ["PATH"],
            "ROOT": str(ROOT),
            "POD_DIR": str(self.dir),
            "POD_NAME": m.env["POD_NAME"],
            "TARGET_DIR": str(TARGET_DIR),
            "HOSTS_FILE": str(WORK / "hosts"),
            "POD_SECRET_VOLUMES": " ".join(secret_volumes),
            "POD_VOLUMES": " ".join(volumes),
            "POD_USERS": " ".join(self.spec.users),
            "POD_CONFIG": str(supervise_config(self.spec, self.dir / "supervise.toml")),
            "POD_ENV_FILE": str(env_file),
            "POD_CGROUPS": self.cgroup.mounts(),
            "POD_NO_NEW_PRIVS": "1" if m.no_new_privs else "",
            "POD_CAPABILITIES": ",".join(f"+{c.lower()}" for c in m.capabilities)
            if m.capabilities is not None else "",
        }

    def start(self) -> None:
        with self.lock:
            if self.stopping:
                return
            # The pod's sysctls (all of them network ones, so per namespace).
            for name, value in self.manifest.sysctls.items():
                ns_exec(self.ns, "sysctl", "-qw", f"{name}={value}")
            self.starts += 1
            self.started_at = time.monotonic()
            self.started_wall = time.time()
            self.on_start()
            self.cgroup.create(self.manifest)
            out = open(self.log_path, "a")
            out.write(f"--- start {self.starts} at {time.strftime('%H:%M:%S')}\n")
            out.flush()
            self.proc = subprocess.Popen(
                [
                    "ip", "netns", "exec", self.ns,
                    "unshare", "--mount", "--pid", "--uts", "--cgroup", "--fork", "--kill-child",
                    "--propagation", "private",
                    "bash", str(ROOT / "tests/stack/pod.sh"), self.spec.service,
                ],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=self.cgroup.join,
            )
            out.close()

    def loop(self) -> None:
        while not self.stopping:
            self.start()
            proc = self.proc
            if proc is None:
                return
            rc = proc.wait()
            self.cgroup.remove()
            with self.lock:
                self.exits.append(rc)
            if self.stopping:
                return
            log(f"{self.spec.service}: pod exited ({rc}), restarting")
            # CrashLoopBackOff, shortened.
            time.sleep(1 if time.monotonic() - self.started_at > 20 else 3)

    def kill(self, grace: float = 0) -> None:
        """The container is killed: SIGTERM to its PID 1 first when there is a
        grace period (as the kubelet does after a failed liveness probe), then
        SIGKILL to unshare, which takes the PID namespace down."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        pid = self.init_pid()
        if grace and pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(grace)
                return
            except subprocess.TimeoutExpired:
                pass
        with self.lock:
            if proc.poll() is None:
                proc.kill()

    def init_pid(self) -> int | None:
        """Host pid of the pod's PID 1 (supervise), the child of unshare."""
        if not self.proc or self.proc.poll() is not None:
            return None
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def stop(self, grace: float = 15.0) -> None:
        """Like a pod deletion: SIGTERM to PID 1, SIGKILL after the grace period."""
        self.stopping = True
        pid = self.init_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.proc:
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def pids_named(self, comm: str) -> list[int]:
        out = sh("ip", "netns", "pids", self.ns, capture=True, check=False).stdout.split()
        found = []
        for pid in out:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                    found.append(int(pid))
            except OSError:
                pass
        return sorted(found)


class Kubelet:
    """All pods, plus the prober running in ft-node (probe.py)."""

    def __init__(self, services: list[str]):
        self.pods = {s: Pod(PODS[s]) for s in services}
        self.probe_file = WORK / "probes.json"
        self.starts_file = WORK / "starts.json"
        self.starts_file.write_text("{}")
        self.starts_lock = threading.Lock()
        for pod in self.pods.values():
            pod.on_start = self.record_starts
        self.prober: subprocess.Popen | None = None
        self.stopping = False
        self.watch = threading.Thread(target=self.liveness, daemon=True)

    def record_starts(self) -> None:
        with self.starts_lock:
            starts = {s: p.started_wall for s, p in self.pods.items() if p.starts}
            tmp = self.starts_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(starts))
            tmp.replace(self.starts_file)

    def start(self, order: list[list[str]]) -> None:
        targets = {
            s: {"ip": PODS[s].ip, "liveness": p.manifest.liveness.as_dict(),
                "readiness": p.manifest.readiness.as_dict()}
            for s, p in self.pods.items()
        }
        self.prober = subprocess.Popen(
            [
                "ip", "netns", "exec", f"{NS_PREFIX}node",
                sys.executable, str(ROOT / "tests/stack/probe.py"),
                str(self.probe_file), str(self.starts_file), json.dumps(targets),
            ],
            stdin=subprocess.DEVNULL,
        )
        self.watch.start()
        for group in order:
            for s in group:
                self.pods[s].thread.start()
            self.wait_ready(group, 180)

    def read_probes(self) -> dict[str, dict]:
        try:
            return json.loads(self.probe_file.read_text())
        except (OSError, ValueError):
            return {}

    def probe_state(self, service: str) -> dict:
        """The prober's state of the pod's current container (empty before its first probe)."""
        st = self.read_probes().get(service, {})
        return st if st.get("start") == self.pods[service].started_wall else {}

    def observed(self, service: str) -> dict:
        """supervise's own report (programs, restarts) of the pod's current container."""
        return self.probe_state(service).get("observed", {})

    def liveness(self) -> None:
        """Kills a container whose liveness probe failed failureThreshold times in a row."""
        killed: dict[str, float] = {}  # service -> start of the container killed
        while not self.stopping:
            time.sleep(0.5)
            for name, pod in self.pods.items():
                probe = pod.manifest.liveness
                if killed.get(name) == pod.started_wall:
                    continue
                if self.probe_state(name).get("live_failures", 0) >= probe.failure_threshold:
                    log(f"{name}: liveness probe failed {probe.failure_threshold} times, killing the container")
                    killed[name] = pod.started_wall
                    threading.Thread(target=pod.kill, args=(pod.manifest.grace_seconds,), daemon=True).start()

    def ready(self, service: str) -> bool:
        """Ready by the latest readiness probe of the current container."""
        return bool(self.probe_state(service).get("ready"))

    def wait_ready(self, services: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.ready(s) for s in services):
                return
            time.sleep(0.5)
        raise TimeoutError(f"pods not ready after {timeout:.0f} s: "
                           + ", ".join(s for s in services if not self.ready(s)))

    def stop(self) -> None:
        self.stopping = True
        threads = [threading.Thread(target=p.stop) for p in self.pods.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self.prober:
            self.prober.terminate()
            self.prober.wait()


# --- cleanup -------------------------------------------------------------------


def cleanup() -> None:
    """Kill every process in an ft-* namespace, delete the namespaces."""
    for ns in namespaces():
        pids = sh("ip", "netns", "pids", ns, capture=True, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    deadline = time.monotonic() + 10
    for ns in namespaces():
        while sh("ip", "netns", "pids", ns, capture=True, check=False).stdout.split():
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        sh("ip", "netns", "del", ns, check=False)


# --- checks ----------------------------------------------------------------------


def client(*args: str, timeout: float = 300) -> bool:
    """Run checks.py in the client namespace; True when every check passed."""
    # A user's plain environment: no proxies, no CA bundles but the system's.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "LB_IP": LB_IP,
        "SECRETS_DIR": str(SECRETS_DIR),
        "STACK_WORK": str(WORK),
        "STACK_SERVICES": " ".join(SERVICES_RUNNING),
        "POD_IPS": json.dumps({s: p.ip for s, p in PODS.items()}),
    }
    with subprocess.Popen(
        ["ip", "netns", "exec", f"{NS_PREFIX}client", sys.executable,
         str(ROOT / "tests/stack/checks.py"), *args],
        env=env, stdout=subprocess.PIPE, text=True,
    ) as checks:
        assert checks.stdout is not None
        deadline = threading.Timer(timeout, checks.kill)  # a hung check ends the phase
        deadline.start()
        for line in checks.stdout:
            print(line, end="", flush=True)
            if line.startswith("FAIL"):
                FAILURES.append(line.rstrip("\n"))
        deadline.cancel()
        rc = checks.wait()
    if rc == -signal.SIGKILL:
        log(f"FAIL checks {' '.join(args)}: still running after {timeout:.0f} s, killed")
    return rc == 0


SERVICES_RUNNING: list[str] = []


def run(services: list[str], phases: list[str]) -> int:
    started = time.monotonic()
    SERVICES_RUNNING[:] = services
    cleanup()
    if (WORK / "pods").exists():
        shutil.rmtree(WORK / "pods")
    if (WORK / "volumes").exists():
        shutil.rmtree(WORK / "volumes")
    WORK.mkdir(parents=True, exist_ok=True)
    log(f"manifests: kubectl kustomize k8s (LB_IP={LB_IP}), {len(cluster().objects)} objects")
    setup_network()
    kubelet = Kubelet(services)
    failed: list[str] = []
    try:
        order = [[s for s in ("mysql", "influxdb") if s in services],
                 [s for s in services if s not in ("mysql", "influxdb")]]
        log("starting pods: " + ", ".join(services))
        kubelet.start([g for g in order if g])
        log(f"all pods ready after {time.monotonic() - started:.0f} s")
        report_memory(kubelet, "ready")
        for phase in phases:
            log(f"checks: {phase}")
            if phase == "kill-all":
                failed += kill_every_program(kubelet)
            elif phase == "network-policy":
                failed += check_network_policies(services)
            elif phase == "secret-access":
                failed += check_secret_access(kubelet)
            elif phase == "influx-outage":
                failed += influx_outage(services)
            elif phase == "backup-restore":
                failed += backup_and_restore(kubelet)
            elif phase.startswith("hang:"):  # hang:<service>
                if not hang_and_recover(kubelet, phase.split(":", 1)[1]):
                    failed.append(phase)
            elif phase.startswith("kill:"):  # kill:<service>:<program>
                _, service, program = phase.split(":", 2)
                if not kill_and_recover(kubelet, service, program):
                    failed.append(phase)
            elif not client(phase):
                failed.append(phase)
        report_memory(kubelet, "after the checks")
    except Exception as e:  # reported, then cleaned up like a failure
        log(f"error: {e}")
        failed.append("setup")
    finally:
        if failed:
            for pod in kubelet.pods.values():
                print(f"\n===== last lines of pod {pod.spec.service} (starts: {pod.starts}, exits: {pod.exits})")
                try:
                    print("\n".join(pod.log_path.read_text().splitlines()[-40:]))
                except OSError:
                    pass
        kubelet.stop()
        cleanup()
    if FAILURES:
        print("\n===== the failures of this run, as logged above")
        print("\n".join(f[:3000] for f in FAILURES))
    log(f"stack test took {time.monotonic() - started:.0f} s; failed: {failed or 'none'}")
    return 1 if failed else 0


def report_memory(kubelet: Kubelet, when: str) -> None:
    """Each pod's memory (its cgroup's, as the kubelet counts it) beside its
    manifest's request and limit, and the total; also kept in memory.json."""
    mib = lambda b: f"{b / 2**20:.0f}"  # noqa: E731
    rows, total = {}, {"usage": 0, "working_set": 0, "peak": 0, "pss": 0}
    log(f"memory {when} (MiB): pod, working set, usage, peak, PSS, request, limit")
    for name, pod in kubelet.pods.items():
        m = pod.cgroup.memory()
        rows[name] = m | {"request": pod.manifest.memory_request, "limit": pod.manifest.memory_limit}
        total = {k: total[k] + m[k] for k in total}
        log(f"  {name:<11} {mib(m['working_set']):>5} {mib(m['usage']):>5} {mib(m['peak']):>5} {mib(m['pss']):>5}"
            f" {mib(pod.manifest.memory_request or 0):>5} {mib(pod.manifest.memory_limit or 0):>5}")
    log(f"  {'total':<11} {mib(total['working_set']):>5} {mib(total['usage']):>5} {mib(total['peak']):>5}"
        f" {mib(total['pss']):>5}")
    path = WORK / "memory.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    report[when] = rows | {"total": total}
    path.write_text(json.dumps(report, indent=1))


def probe_ports(svc: str) -> list[int]:
    """The ports of a pod to try: its container ports, and 9902; of a run of
    consecutive ports (the passive range), its two ends."""
    ports = sorted(set(cluster().pods[svc].container_ports) | {9902})
    return [p for p in ports if not (p - 1 in ports and p + 1 in ports)]


def reach(namespace: str, targets: list[tuple[str, int]]) -> dict[str, str]:
    out = ns_exec(namespace, sys.executable, str(ROOT / "tests/stack/reach.py"), json.dumps(targets),
                  capture=True).stdout
    return json.loads(out)


def check_network_policies(running: list[str]) -> list[str]:
    """Phase network-policy: every pod tries every port of every other pod.

    What answers (open, or closed: reached but nothing listens) must be
    exactly what the NetworkPolicies admit (network_policy.allowed, read
    from the rendered objects), and the contract must hold: MySQL only from
    WordPress and phpMyAdmin, InfluxDB from every pod's collector, nobody's
    9901 or 9902 from another pod; the node reaches every pod's 9901.
    """
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
    return ["network-policy"] if failed else []


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


def in_pod(pod: Pod, *command: str) -> subprocess.CompletedProcess:
    """A command inside the running pod: its mount, PID, UTS and network namespaces."""
    pid = pod.init_pid()
    if not pid:
        raise RuntimeError(f"{pod.spec.service} is not running")
    return sh("nsenter", "-t", str(pid), "-m", "-p", "-u", "-n", "--", *command, capture=True, check=False)


def check_secret_access(kubelet: Kubelet) -> list[str]:
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
            gid = in_pod(pod, "id", "-g", user).stdout.strip()
            out = in_pod(pod, "setpriv", f"--reuid={user}", f"--regid={gid}", "--init-groups", "--",
                         "sh", "-c", script, "read", *listing)
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
    return ["secret-access"] if failed else []


OUTAGE_SECONDS = 60


def influx_outage(services: list[str]) -> list[str]:
    """Phase influx-outage: every other pod is cut off from influxdb:8086 for
    a minute (a filter in the influxdb pod's network, while everything keeps
    running), then the filter goes; checks.py's outage phase then proves
    each pod's points of that minute arrived, each once."""
    if "influxdb" not in services:
        return []
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
    return [] if client("outage") else ["influx-outage"]


def host_pid(pod: Pod, ns_pid: int) -> int | None:
    """The host pid of the process that is `ns_pid` in the pod's PID namespace."""
    init = pod.init_pid()
    out = sh("ip", "netns", "pids", pod.ns, capture=True, check=False).stdout.split()
    for pid in out:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        m = re.search(r"^NSpid:\s+(\d+)\s+(\d+)\s*$", status, re.M)
        if m and int(m.group(2)) == ns_pid and init and int(m.group(1)) != init:
            # Same PID namespace as the pod's init: its parent chain reaches init.
            return int(m.group(1))
    return None


# --- backup and restore ------------------------------------------------------------

# What `./setup.sh backup` must bring back, read in the pods.
MYSQL_STATE = ("CHECKSUM TABLE wordpress.wp_posts, wordpress.wp_postmeta, wordpress.wp_users, wordpress.wp_usermeta; "
               "SELECT post_title FROM wordpress.wp_posts WHERE post_status = 'publish' ORDER BY ID; "
               "SELECT user_login FROM wordpress.wp_users ORDER BY ID")
FTPS_STATE = ("cd /var/lib/ftps && find . -mindepth 1 -path ./.uploads -prune -o -printf '%P %m %U:%G %s\\n' | sort"
              " && find . -path ./.uploads -prune -o -type f -exec sha256sum {} + | sort")


def influx_in_pod(kubelet: Kubelet, *options: str) -> subprocess.CompletedProcess:
    """The influx CLI in the influxdb pod, as admin, with these options."""
    return in_pod(kubelet.pods["influxdb"], "sh", "-c",
                  'influx -host 127.0.0.1 -port 8086 -username admin'
                  ' -password "$(cat /run/secrets/ft-influxdb/admin-password)" "$@"', "influx", *options)


def data_state(kubelet: Kubelet, before: int) -> dict[str, str]:
    """The data of the three volumes: MySQL's WordPress tables (checksums and
    published posts), InfluxDB's points older than `before` (epoch seconds,
    per measurement), the FTPS tree (names, modes, owners, sizes, sha256)."""
    mysql = in_pod(kubelet.pods["mysql"], "mariadb", "-N", "-B", "-e", MYSQL_STATE)
    influx = influx_in_pod(kubelet, "-database", "metrics", "-format", "csv",
                           "-execute", f"SELECT count(*) FROM /.*/ WHERE time < {before}s")
    ftps = in_pod(kubelet.pods["ftps"], "sh", "-c", FTPS_STATE)
    return {"mysql": mysql.stdout + mysql.stderr, "influxdb": influx.stdout + influx.stderr,
            "ftps": ftps.stdout + ftps.stderr}


def setup_sh(kubelet: Kubelet, *args: str) -> subprocess.CompletedProcess:
    """`./setup.sh <args>` with kubectl answered by these pods (tests/stack/kubectl.py)."""
    pods = WORK / "kubectl-pods.json"
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


def backup_and_restore(kubelet: Kubelet) -> list[str]:
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

    holders = ["mysql", "influxdb", "ftps"]
    # Points older than half a minute are in InfluxDB, none still in a
    # collector's buffer (they write every 10 s).
    mark = int(time.time()) - 30
    deadline = time.monotonic() + 90
    while (before := data_state(kubelet, mark))["influxdb"].count("\n") <= 3 and time.monotonic() < deadline:
        time.sleep(5)
        mark = int(time.time()) - 30
    added = json.loads((WORK / "persist.json.wordpress-user").read_text())["login"]
    check(re.search(rf"^{added}$", before["mysql"], re.M) is not None
          and re.search(r"^[0-9a-f]{64}  ", before["ftps"], re.M) is not None
          and before["influxdb"].count("\n") > 3,
          "the data to keep is there", json.dumps(before, indent=1)[:2000])
    archive = WORK / "backup" / "ft_services-stack.tar.gz"
    shutil.rmtree(archive.parent, ignore_errors=True)
    r = setup_sh(kubelet, "backup", str(archive))
    check(r.returncode == 0 and archive.exists(), f"backup written ({archive.stat().st_size if archive.exists() else 0} bytes)",
          r.stdout + r.stderr)
    if failed:
        return ["backup-restore"]
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
    return ["backup-restore"] if failed else []


# The checks to make again after a pod restarted.
RECHECK = {
    "nginx": ["web", "ssh"],
    "wordpress": ["wordpress"],
    "phpmyadmin": ["phpmyadmin"],
    "mysql": ["persist-mysql", "phpmyadmin"],
    "influxdb": ["persist-influxdb"],
    "ftps": ["ftps", "persist-ftps"],
    "grafana": ["grafana"],
}


def wait_observed(kubelet: Kubelet, service: str, after: float, timeout: float = 10) -> dict:
    """supervise's report of the current container, made after `after` (epoch)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = kubelet.observed(service)
        if seen.get("at", 0) > after:
            return seen
        time.sleep(0.2)
    return {}


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


def kill_every_program(kubelet: Kubelet) -> list[str]:
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
    return failed


# The checks in order: the user-facing ones, then kill -9 of every program of
# every pod (each followed by that pod's checks and, for the volumes, the data
# written before), a hung pod caught by its liveness probe, and every check
# again.
USER_CHECKS = ["web", "ssh", "wordpress", "phpmyadmin", "ftps", "metrics", "grafana"]
ALL_PHASES: list[str] = [*USER_CHECKS, "network-policy", "secret-access", "ftps-lb", "tls-scan",
                         "influx-outage", "persist-write", "kill-all", "hang:phpmyadmin", "backup-restore",
                         *USER_CHECKS]


def main() -> int:
    if os.geteuid() != 0:
        print("the stack test needs root (network namespaces, mounts)", file=sys.stderr)
        return 2
    # Stopped from outside: unwind, so that run()'s cleanup happens.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cmd = sys.argv[1] if len(sys.argv) > 1 else "run"
    if cmd == "cleanup":
        cleanup()
        return 0
    services = os.environ.get("STACK_PODS", " ".join(PODS)).split()
    phases = os.environ.get("STACK_PHASES", " ".join(ALL_PHASES)).split()
    return run(services, phases)


if __name__ == "__main__":
    sys.exit(main())

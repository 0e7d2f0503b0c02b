"""The kubelet and the container runtime of the stack test.

Each Pod starts its container (pod.sh in fresh mount, PID, UTS and cgroup
namespaces inside the pod's network namespace, on its image's root
filesystem), restarts it whenever its supervise exits (a shortened
CrashLoopBackOff), and kills it when its liveness probe fails
failureThreshold times (probe.py runs the probes from ft-node with the
manifest's timing; readiness is the latest readiness probe).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

from cluster import NS_PREFIX, PODS, ROOT, SECRETS_DIR, WORK, PodSpec, cluster
from manifests import Pod as PodManifest
from network import ns_exec, sh
import rootfs
from report import log
from sandbox import PodCgroup, lay_out_secret_volume, provision_volume

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


def supervise_config(spec: PodSpec, dest: Path) -> Path | None:
    """The image's supervise.toml minus the programs that cannot run here,
    or None when all of them can (the image's own file is used)."""
    src = ROOT / "docker" / spec.service / "supervise.toml"
    if not spec.absent_programs:
        return None
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
        config = supervise_config(self.spec, self.dir / "supervise.toml")
        return {
            "PATH": os.environ["PATH"],
            "POD_DIR": str(self.dir),
            "POD_NAME": m.env["POD_NAME"],
            "POD_LAYERS": ":".join(str(p) for p in rootfs.layers(self.spec.service)),
            "HOSTS_FILE": str(WORK / "hosts"),
            "POD_SECRET_VOLUMES": " ".join(secret_volumes),
            "POD_VOLUMES": " ".join(volumes),
            "POD_CONFIG": str(config) if config else "",
            "POD_ENV_FILE": str(env_file),
            "POD_CGROUPS": self.cgroup.mounts(),
            "POD_NO_NEW_PRIVS": "1" if m.no_new_privs else "",
            # drop ALL + add: the bounding set; none said: the runtime's default.
            "POD_CAPABILITIES": ",".join(c.lower() for c in m.capabilities)
            if m.capabilities is not None else "runtime-default",
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
                    "bash", str(ROOT / "tests/stack/pod.sh"),
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
            try:
                self.start()
            except Exception as e:  # the kubelet reports a pod it cannot start
                log(f"error: {self.spec.service}: cannot start the pod: {e}")
                return
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

    def start(self, order: list[list[str]], ready_within: float | None = 180) -> None:
        """Starts the prober, then each group of pods, waiting for a group to
        be ready before the next (unless `ready_within` is None)."""
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
            if ready_within is not None:
                self.wait_ready(group, ready_within)

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


def in_pod(pod: Pod, *command: str, user: str | None = None) -> subprocess.CompletedProcess:
    """A command of the pod's, run in it as `kubectl exec` does (its root,
    PID, UTS and network namespaces; as `user`, with that user's groups)."""
    pid = pod.init_pid()
    if not pid:
        raise RuntimeError(f"{pod.spec.service} is not running")
    return sh("nsenter", "-t", str(pid), "-p", "-u", "-n", "--", *enter_command(pid, *command, user=user),
              capture=True, check=False)


def enter_command(pid: int, *command: str, user: str | None = None) -> list[str]:
    """enter.py's command line that runs `command` in the root of the pod whose PID 1 is `pid`."""
    return [sys.executable, str(ROOT / "tests/stack/enter.py"), "exec", str(pid),
            *(["--user", user] if user else []), "--", *command]


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


def wait_observed(kubelet: Kubelet, service: str, after: float, timeout: float = 10) -> dict:
    """supervise's report of the current container, made after `after` (epoch)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = kubelet.observed(service)
        if seen.get("at", 0) > after:
            return seen
        time.sleep(0.2)
    return {}


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

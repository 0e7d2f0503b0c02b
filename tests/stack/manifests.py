"""The rendered manifests, read as the cluster's parts read them.

The stack test stands in for the kubelet (volumes, environment, sandbox,
probes), kube-proxy (the load balancer's ports) and the CNI (NetworkPolicy).
Everything they act on comes from here: `kubectl kustomize` over a copy of
k8s/ whose lb.env holds the stack's address, exactly what setup.sh applies,
so nothing of k8s/ is restated by the test.

    cluster = Cluster.render(lb_ip, work_dir)
    cluster.pods["nginx"].secret_volumes, .claims, .liveness, ...
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

# What the API server fills in when a manifest leaves it out.
DEFAULT_SECRET_MODE = 0o644
PROBE_DEFAULTS = {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1,
                  "failureThreshold": 3, "successThreshold": 1}


@dataclass(frozen=True)
class Probe:
    """An httpGet probe with its timing."""

    path: str
    port: int
    initial_delay: float
    period: float
    timeout: float
    failure_threshold: int

    def as_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass(frozen=True)
class SecretItem:
    key: str
    path: str  # relative to the volume
    mode: int


@dataclass(frozen=True)
class SecretVolume:
    """A `secret` volume and where the container mounts it."""

    name: str
    secret: str
    mount_path: str
    # Every key of the Secret when the volume lists no items.
    items: tuple[SecretItem, ...] | None
    default_mode: int

    def files(self, keys: list[str]) -> list[SecretItem]:
        """What the kubelet writes, given the keys the Secret holds."""
        if self.items is None:
            return [SecretItem(k, k, self.default_mode) for k in sorted(keys)]
        missing = [i.key for i in self.items if i.key not in keys]
        if missing:
            # The kubelet refuses to start the pod: the volume cannot be set up.
            raise KeyError(f"Secret {self.secret} has no key {', '.join(missing)}")
        return list(self.items)


@dataclass
class Pod:
    """What one Deployment's pod template asks of its node."""

    service: str
    labels: dict[str, str]
    env: dict[str, str]
    secret_volumes: list[SecretVolume]
    claims: dict[str, str]  # mount path -> PersistentVolumeClaim name
    empty_dirs: list[str]  # mount paths
    sysctls: dict[str, str]
    fs_group: int | None
    no_new_privs: bool
    capabilities: list[str] | None  # with drop ALL: exactly these; None: the runtime's default
    liveness: Probe
    readiness: Probe
    grace_seconds: float  # terminationGracePeriodSeconds
    cpu_limit: float | None  # cores
    memory_limit: int | None  # bytes
    memory_request: int | None  # bytes
    cpu_request: float | None
    ports: dict[str, int] = field(default_factory=dict)  # container port name -> number
    container_ports: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ServicePort:
    service: str  # the Service's name, also its pod's service
    port: int
    target_port: int


@dataclass
class Cluster:
    objects: list[dict]
    pods: dict[str, Pod]
    load_balancer_ports: list[ServicePort]
    cluster_ports: list[ServicePort]
    network_policies: list[dict]

    @classmethod
    def render(cls, lb_ip: str, work: Path) -> "Cluster":
        """`kubectl kustomize` of k8s/ with lb.env set to `lb_ip`, as setup.sh applies it."""
        copy = work / "k8s"
        if copy.exists():
            shutil.rmtree(copy)
        shutil.copytree(ROOT / "k8s", copy)
        (copy / "lb.env").write_text(f"LB_IP={lb_ip}\n")
        out = subprocess.run(["kubectl", "kustomize", str(copy)], check=True,
                             capture_output=True, text=True).stdout
        (work / "rendered.yaml").write_text(out)
        return cls.parse([d for d in yaml.safe_load_all(out) if d])

    @classmethod
    def parse(cls, objects: list[dict]) -> "Cluster":
        config_maps = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
        pods = {}
        for d in (o for o in objects if o["kind"] == "Deployment"):
            pod = parse_pod(d, config_maps)
            pods[pod.service] = pod
        lb, internal = [], []
        for svc in (o for o in objects if o["kind"] == "Service"):
            name = svc["metadata"]["name"]
            target = lb if svc["spec"].get("type") == "LoadBalancer" else internal
            for p in svc["spec"]["ports"]:
                target_port = p.get("targetPort", p["port"])
                if isinstance(target_port, str):
                    target_port = pods[name].ports[target_port]
                target.append(ServicePort(name, p["port"], target_port))
        policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
        return cls(objects, pods, lb, internal, policies)


def cpu(quantity: str | int | None) -> float | None:
    """A CPU quantity ("500m", "1") in cores."""
    if quantity is None:
        return None
    q = str(quantity)
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def memory(quantity: str | int | None) -> int | None:
    """A memory quantity ("256Mi", "1G", "1000") in bytes."""
    if quantity is None:
        return None
    q = str(quantity)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    for suffix, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if q.endswith(suffix):
            return int(float(q[: -len(suffix)]) * factor)
    return int(q)


def probe(spec: dict, ports: dict[str, int]) -> Probe:
    get = spec["httpGet"]
    port = get["port"]
    full = {**PROBE_DEFAULTS, **spec}
    return Probe(
        path=get["path"],
        port=ports[port] if isinstance(port, str) else int(port),
        initial_delay=full["initialDelaySeconds"],
        period=full["periodSeconds"],
        timeout=full["timeoutSeconds"],
        failure_threshold=full["failureThreshold"],
    )


def parse_pod(deployment: dict, config_maps: dict[str, dict]) -> Pod:
    template = deployment["spec"]["template"]
    spec = template["spec"]
    (container,) = spec["containers"]
    name = deployment["metadata"]["name"]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    pod_name = f"{name}-0"

    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
            continue
        source = e["valueFrom"]
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[e["name"]] = config_maps[ref["name"]][ref["key"]]
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[e["name"]] = pod_name
        elif m := re.fullmatch(r"metadata\.labels\['([^']+)'\]", source.get("fieldRef", {}).get("fieldPath", "")):
            env[e["name"]] = template["metadata"]["labels"][m.group(1)]
        else:
            raise ValueError(f"{name}: env {e['name']}: unsupported source {source}")

    secrets, claims, empty_dirs = [], {}, []
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "secret" in volume:
            s = volume["secret"]
            default_mode = s.get("defaultMode", DEFAULT_SECRET_MODE)
            items = None
            if "items" in s:
                items = tuple(SecretItem(i["key"], i["path"], i.get("mode", default_mode)) for i in s["items"])
            secrets.append(SecretVolume(mount["name"], s["secretName"], mount["mountPath"], items, default_mode))
        elif "persistentVolumeClaim" in volume:
            claims[mount["mountPath"]] = volume["persistentVolumeClaim"]["claimName"]
        elif "emptyDir" in volume:
            empty_dirs.append(mount["mountPath"])
        else:
            raise ValueError(f"{name}: volume {mount['name']}: unsupported kind")

    limits = container.get("resources", {}).get("limits", {})
    requests = container.get("resources", {}).get("requests", {})
    pod_security = spec.get("securityContext", {})
    security = container.get("securityContext", {})
    caps = security.get("capabilities", {})
    return Pod(
        service=name,
        labels=template["metadata"].get("labels", {}),
        env=env,
        secret_volumes=secrets,
        claims=claims,
        empty_dirs=empty_dirs,
        sysctls={s["name"]: str(s["value"]) for s in pod_security.get("sysctls", [])},
        fs_group=pod_security.get("fsGroup"),
        no_new_privs=security.get("allowPrivilegeEscalation") is False,
        capabilities=caps.get("add", []) if "ALL" in caps.get("drop", []) else None,
        liveness=probe(container["livenessProbe"], ports),
        readiness=probe(container["readinessProbe"], ports),
        grace_seconds=spec.get("terminationGracePeriodSeconds", 30),
        container_ports=[p["containerPort"] for p in container.get("ports", [])],
        cpu_limit=cpu(limits.get("cpu")),
        memory_limit=memory(limits.get("memory")),
        memory_request=memory(requests.get("memory")),
        cpu_request=cpu(requests.get("cpu")),
        ports=ports,
    )

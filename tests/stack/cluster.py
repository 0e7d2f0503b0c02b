"""The cluster under test: its pods, their addresses, and the rendered manifests.

Everything the kubelet, kube-proxy and the CNI stand-ins act on comes from
`kubectl kustomize` of k8s/ (manifests.py); what the manifests cannot say
(where a pod sits on the test network, which of its programs cannot run
here) is PODS below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from manifests import Cluster

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
    # Programs of the image's supervise.toml that cannot run here.
    absent_programs: list[str] = field(default_factory=list)


# Each pod's address on the test network. Volumes, Secrets, environment,
# sandbox and probes come from the rendered manifests (manifests.py), the
# pod's files from its image's root filesystem (rootfs.py).
PODS = {
    p.service: p
    for p in [
        PodSpec("mysql", f"{SUBNET}.11"),
        PodSpec("influxdb", f"{SUBNET}.12"),
        PodSpec("phpmyadmin", f"{SUBNET}.13"),
        PodSpec("wordpress", f"{SUBNET}.14"),
        PodSpec("nginx", f"{SUBNET}.15"),
        PodSpec("ftps", f"{SUBNET}.16"),
        PodSpec("grafana", f"{SUBNET}.17", absent_programs=["grafana"]),
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

"""The network of the stack test, in namespaces named ft-*, and the host's
commands that build it.

    ft-hub        a bridge, br0, joining every other namespace by a veth pair
    ft-<service>  one pod each, at its address on 10.77.0.0/24 (cluster.PODS)
    ft-lb         the MetalLB address: nftables DNAT of every Service port
                  to its pod (and masquerade, so replies come back through it)
    ft-node       the pods' node: the kubelet's probes come from here, and
                  NetworkPolicy always admits it
    ft-client     where every check runs: the user's machine

No namespace has a default route, so nothing can leave the bridge, and the
host's own namespace never sends to it (it has no route there either:
checked before any traffic). Each pod's ingress is filtered by the rendered
NetworkPolicies (network_policy.py), as a policy-enforcing CNI does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import network_policy
from cluster import (CLIENT_IP, LB_IP, NODE_IP, NS_PREFIX, PODS, ROOT, SUBNET, WORK,
                     cluster)
from network_policy import Endpoint

def sh(*args: str, check: bool = True, capture: bool = False, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(args), check=check, text=True, capture_output=capture, **kw
    )


def ns_exec(ns: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *args, **kw)


def namespaces() -> list[str]:
    out = sh("ip", "netns", "list", capture=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(NS_PREFIX)]


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


def reach(namespace: str, targets: list[tuple[str, int]]) -> dict[str, str]:
    out = ns_exec(namespace, sys.executable, str(ROOT / "tests/stack/reach.py"), json.dumps(targets),
                  capture=True).stdout
    return json.loads(out)


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

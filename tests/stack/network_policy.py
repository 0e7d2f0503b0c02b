"""NetworkPolicy as a CNI enforces it, for the stack test's pods.

Two readings of the same rendered objects:
- `allowed()` evaluates Kubernetes' semantics for one connection (the
  expectation of the reachability matrix);
- `ruleset()` translates the policies into each pod's nftables input chain
  (what the test's network enforces).

Semantics (networking.k8s.io/v1, ingress only, which is all k8s/ uses): a
pod selected by any policy with policyType Ingress is isolated; then a
connection is admitted when some rule of some policy selecting it matches
both the destination port (number, named port or a range with endPort; TCP
when no protocol is given) and the source (no `from`: anyone; podSelector:
pods of the namespace with those labels; ipBlock: the CIDR minus `except`).
Traffic from the pod's node is always admitted (the kubelet's probes), as
are replies and the pod's own loopback.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    """A source or destination: a pod (with labels) or another address."""

    name: str
    ip: str
    labels: dict | None = None  # None: not a pod of the namespace
    ports: dict | None = None  # a pod's named container ports


def selects(selector: dict, labels: dict | None) -> bool:
    if labels is None:
        return False
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def ingress_policies(policies: list[dict], pod: Endpoint) -> list[dict]:
    """The policies that isolate `pod` for ingress."""
    out = []
    for policy in policies:
        spec = policy["spec"]
        types = spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))
        if "Ingress" in types and selects(spec.get("podSelector", {}), pod.labels):
            out.append(policy)
    return out


def port_ranges(rule: dict, pod: Endpoint) -> list[tuple[int, int]] | None:
    """The TCP ports a rule admits on `pod`; None for every port."""
    if not rule.get("ports"):
        return None
    out = []
    for p in rule["ports"]:
        if p.get("protocol", "TCP") != "TCP":
            continue
        if "port" not in p:
            return None  # every port of the protocol
        port = p["port"]
        if isinstance(port, str):
            if port not in (pod.ports or {}):
                continue  # a named port the pod does not have admits nothing
            port = pod.ports[port]
        out.append((port, p.get("endPort", port)))
    return out


def peer_admits(peer: dict, source: Endpoint) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        addr = ipaddress.ip_address(source.ip)
        return addr in ipaddress.ip_network(block["cidr"]) and not any(
            addr in ipaddress.ip_network(e) for e in block.get("except", []))
    if "namespaceSelector" in peer:
        raise ValueError("namespaceSelector: the stack has one namespace; not supported here")
    return selects(peer.get("podSelector", {}), source.labels)


def allowed(policies: list[dict], source: Endpoint, dest: Endpoint, port: int, node_ip: str) -> bool:
    """Whether a TCP connection from `source` to `dest`:`port` is admitted."""
    if source.ip == node_ip:
        return True
    isolating = ingress_policies(policies, dest)
    if not isolating:
        return True
    for policy in isolating:
        for rule in policy["spec"].get("ingress", []):
            ranges = port_ranges(rule, dest)
            if ranges is not None and not any(lo <= port <= hi for lo, hi in ranges):
                continue
            peers = rule.get("from")
            if not peers or any(peer_admits(peer, source) for peer in peers):
                return True
    return False


def ruleset(policies: list[dict], pod: Endpoint, pods: list[Endpoint], node_ip: str) -> str:
    """The nftables table enforcing the policies on `pod`'s ingress, in its namespace."""
    isolating = ingress_policies(policies, pod)
    lines = [
        "table inet netpol {",
        "  chain input {",
        f"    type filter hook input priority filter; policy {'drop' if isolating else 'accept'};",
        "    ct state established,related accept",
        '    iifname "lo" accept',
        f"    ip saddr {node_ip} accept",
    ]
    for policy in isolating:
        name = policy["metadata"]["name"]
        for rule in policy["spec"].get("ingress", []):
            ranges = port_ranges(rule, pod)
            if ranges == []:
                continue
            dport = "" if ranges is None else "tcp dport { " + ", ".join(
                str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges) + " } "
            peers = rule.get("from")
            if not peers:
                sources = [""]
            else:
                sources = []
                for peer in peers:
                    if "ipBlock" in peer:
                        block = peer["ipBlock"]
                        excl = "".join(f"ip saddr != {e} " for e in block.get("except", []))
                        sources.append(f"ip saddr {block['cidr']} {excl}")
                    else:
                        ips = [p.ip for p in pods if peer_admits(peer, p)]
                        if ips:
                            sources.append("ip saddr { " + ", ".join(ips) + " } ")
            for source in sources:
                proto = "meta l4proto tcp " if not dport else ""
                lines.append(f"    {source}{proto}{dport}accept comment \"{name}\"")
    lines += ["  }", "}", ""]
    return "\n".join(lines)

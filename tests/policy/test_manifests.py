"""Policy test: the rendered k8s/ manifests against docs/contract.md.

Reads the output of tests/policy/manifests.sh: RENDERED_DIR holds
`kubectl kustomize k8s` as stack.yaml plus the MetalLB files; SECRETS_DIR
holds throw-away secrets from `setup.sh secrets`, whose values must appear
nowhere in what is rendered.
"""

import ipaddress
import os
import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
RENDERED = pathlib.Path(os.environ.get("RENDERED_DIR", "tests/.work/policy/rendered"))
SECRETS = pathlib.Path(os.environ.get("SECRETS_DIR", "tests/.work/policy/secrets"))
NAMESPACE = "ft-services"

PASSIVE = list(range(30000, 30020))
# service -> (Service type, ports)
CONTRACT = {
    "nginx": ("LoadBalancer", [80, 443, 22]),
    "wordpress": ("LoadBalancer", [5050]),
    "phpmyadmin": ("LoadBalancer", [5000]),
    "grafana": ("LoadBalancer", [3000]),
    "ftps": ("LoadBalancer", [21] + PASSIVE),
    "mysql": ("ClusterIP", [3306]),
    "influxdb": ("ClusterIP", [8086]),
}
# service -> data directory on its PersistentVolumeClaim
VOLUMES = {"mysql": "/var/lib/mysql", "influxdb": "/var/lib/influxdb", "ftps": "/var/lib/ftps"}
# supervise's restarts file lives on this emptyDir (crates/supervise/src/restarts.rs)
SUPERVISE_STATE = "supervise-state"
SUPERVISE_STATE_DIR = "/run/supervise"
# Secret -> services mounting it (contract's "used by"; every pod's collector
# also reads its InfluxDB password)
SECRET_USERS = {
    "ft-tls": {"nginx", "wordpress", "phpmyadmin", "grafana", "ftps"},
    "ft-mysql": {"mysql", "wordpress"},
    "ft-phpmyadmin": {"phpmyadmin"},
    "ft-influxdb": set(CONTRACT),
    "ft-wordpress": {"wordpress"},
    "ft-ftps": {"ftps"},
    "ft-ssh": {"nginx"},
    "ft-grafana": {"grafana"},
}
# Capabilities every container may have (supervise switching users), and the
# extra ones a service needs.
BASE_CAPS = {"CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID"}
EXTRA_CAPS = {"nginx": {"NET_BIND_SERVICE", "SYS_CHROOT"}, "ftps": {"NET_BIND_SERVICE"}}


def load(name):
    with open(RENDERED / name, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


@pytest.fixture(scope="module")
def stack():
    return load("stack.yaml")


def of_kind(objs, kind):
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def container(deployment):
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deployment["metadata"]["name"]
    return containers[0]


def lb_ips(stack):
    """Every address a LoadBalancer Service asks for, by either mechanism."""
    ips = set()
    for svc in of_kind(stack, "Service").values():
        if svc["spec"]["type"] != "LoadBalancer":
            continue
        ann = svc["metadata"].get("annotations", {})
        ips.add(svc["spec"].get("loadBalancerIP"))
        ips.add(ann.get("metallb.universe.tf/loadBalancerIPs"))
        ips.add(ann.get("metallb.io/loadBalancerIPs"))
    return ips


def test_every_object_lives_in_the_stack_namespace(stack):
    for o in stack:
        if o["kind"] == "Namespace":
            assert o["metadata"]["name"] == NAMESPACE
        else:
            assert o["metadata"].get("namespace") == NAMESPACE, o["metadata"]["name"]
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ft-services"


def test_services_have_exactly_the_contract_types_and_ports(stack):
    services = of_kind(stack, "Service")
    assert set(services) == set(CONTRACT)
    for name, (kind, ports) in CONTRACT.items():
        spec = services[name]["spec"]
        assert spec["type"] == kind, name
        assert [p["port"] for p in spec["ports"]] == ports, name
        for p in spec["ports"]:
            assert p["targetPort"] == p["port"] and p.get("protocol", "TCP") == "TCP"
            assert "nodePort" not in p
        assert spec["selector"] == {"app.kubernetes.io/name": name}


def test_no_nodeport_ingress_or_secret_object(stack):
    kinds = {o["kind"] for o in stack}
    assert "Ingress" not in kinds
    assert "Secret" not in kinds, "Secrets come from setup.sh, never from k8s/"
    assert all(o["spec"]["type"] != "NodePort" for o in of_kind(stack, "Service").values())


def test_every_loadbalancer_shares_one_requested_address(stack):
    ips = lb_ips(stack)
    assert len(ips) == 1 and None not in ips, ips
    (ip,) = ips
    ipaddress.IPv4Address(ip)
    env = of_kind(stack, "ConfigMap")
    (cm,) = [c for n, c in env.items() if n.startswith("ft-env")]
    assert cm["data"]["LB_IP"] == ip
    for svc in of_kind(stack, "Service").values():
        ann = svc["metadata"].get("annotations", {})
        if svc["spec"]["type"] == "LoadBalancer":
            assert ann["metallb.universe.tf/allow-shared-ip"] == "ft-services"
            assert ann["metallb.io/allow-shared-ip"] == "ft-services"
        else:
            assert "loadBalancerIP" not in svc["spec"] and not ann


def test_metallb_pools_hold_exactly_the_shared_address(stack):
    (ip,) = lb_ips(stack)
    (legacy,) = load("legacy.yaml")
    assert (legacy["kind"], legacy["metadata"]["name"]) == ("ConfigMap", "config")
    assert legacy["metadata"]["namespace"] == "metallb-system"
    config = yaml.safe_load(legacy["data"]["config"])
    (pool,) = config["address-pools"]
    assert pool["protocol"] == "layer2" and pool["addresses"] == [f"{ip}/32"]
    current = {o["kind"]: o for o in load("pool.yaml")}
    assert set(current) == {"IPAddressPool", "L2Advertisement"}
    assert all(o["apiVersion"] == "metallb.io/v1beta1" for o in current.values())
    assert all(o["metadata"]["namespace"] == "metallb-system" for o in current.values())
    assert current["IPAddressPool"]["spec"]["addresses"] == [f"{ip}/32"]
    name = current["IPAddressPool"]["metadata"]["name"]
    assert current["L2Advertisement"]["spec"]["ipAddressPools"] == [name]


def test_one_deployment_per_service_with_its_image(stack):
    deployments = of_kind(stack, "Deployment")
    assert set(deployments) == set(CONTRACT)
    for name, d in deployments.items():
        assert d["spec"]["replicas"] == 1
        assert d["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}
        assert d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == name
        c = container(d)
        assert c["image"] == f"{name}:ft-services"
        assert c["imagePullPolicy"] == "Never"


def test_container_ports_match_the_service_plus_health(stack):
    for name, d in of_kind(stack, "Deployment").items():
        ports = [p["containerPort"] for p in container(d)["ports"]]
        assert ports == CONTRACT[name][1] + [9901], name


def test_probes_ask_supervise(stack):
    for name, d in of_kind(stack, "Deployment").items():
        c = container(d)
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = c[probe]["httpGet"]
            port = get["port"]
            if isinstance(port, str):
                port = {p["name"]: p["containerPort"] for p in c["ports"]}[port]
            assert (get["path"], port) == (path, 9901), (name, probe)


def test_environment_of_every_pod(stack):
    for name, d in of_kind(stack, "Deployment").items():
        env = {e["name"]: e for e in container(d)["env"]}
        # SERVICE is the pod's name label, which is the service's name.
        assert env["SERVICE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['app.kubernetes.io/name']"
        assert d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == name
        assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        ref = env["LB_IP"]["valueFrom"]["configMapKeyRef"]
        assert ref["name"].startswith("ft-env") and ref["key"] == "LB_IP"


def test_volumes_and_update_strategy(stack):
    claims = of_kind(stack, "PersistentVolumeClaim")
    assert set(claims) == set(VOLUMES)
    for name, d in of_kind(stack, "Deployment").items():
        spec = d["spec"]["template"]["spec"]
        pvcs = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes", []) if "persistentVolumeClaim" in v}
        mounts = {m["name"]: m["mountPath"] for m in container(d)["volumeMounts"]}
        if name in VOLUMES:
            assert list(pvcs.values()) == [name]
            (vol,) = pvcs
            assert mounts[vol] == VOLUMES[name]
            # Two pods must never hold the same ReadWriteOnce volume.
            assert d["spec"]["strategy"]["type"] == "Recreate"
            assert claims[name]["spec"]["accessModes"] == ["ReadWriteOnce"]
        else:
            assert not pvcs
        assert not [v for v in spec.get("volumes", []) if "hostPath" in v]
        # The one scratch volume is supervise's restart count (next test).
        assert [v["name"] for v in spec["volumes"] if "emptyDir" in v] == [SUPERVISE_STATE], name


def test_every_pod_counts_supervise_restarts_on_an_emptydir(stack):
    """supervise's restarts file outlives the container but not the pod."""
    for name, d in of_kind(stack, "Deployment").items():
        spec = d["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes[SUPERVISE_STATE]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Mi"}, name
        mounts = [m for m in container(d)["volumeMounts"] if m["name"] == SUPERVISE_STATE]
        assert mounts == [{"name": SUPERVISE_STATE, "mountPath": SUPERVISE_STATE_DIR}], name
        env = {e["name"]: e for e in container(d)["env"]}
        assert env["SUPERVISE_RESTARTS_FILE"] == {
            "name": "SUPERVISE_RESTARTS_FILE",
            "value": f"{SUPERVISE_STATE_DIR}/restarts",
        }, name


def test_secrets_mounted_read_only_where_the_contract_says(stack):
    for name, d in of_kind(stack, "Deployment").items():
        spec = d["spec"]["template"]["spec"]
        secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        mounts = {m["name"]: m for m in container(d)["volumeMounts"]}
        expected = {s for s, users in SECRET_USERS.items() if name in users}
        assert set(secrets.values()) == expected, name
        for vol, secret in secrets.items():
            assert mounts[vol]["mountPath"] == f"/run/secrets/{secret}"
            assert mounts[vol]["readOnly"] is True
        for e in container(d)["env"]:
            assert "secretKeyRef" not in e.get("valueFrom", {}), "secrets are files, not environment"


# Secret files anyone in a pod may read: the certificates.
PUBLIC_KEYS = {"ca.crt", "ca.crl", "tls.crt"}


def test_secret_files_are_root_only_but_the_certificates(stack):
    """0400 (root): a program that needs a secret gets supervise's copy for its user."""
    for name, d in of_kind(stack, "Deployment").items():
        for v in d["spec"]["template"]["spec"]["volumes"]:
            if "secret" not in v:
                continue
            s = v["secret"]
            assert s.get("defaultMode") == 0o400, (name, v["name"])
            for item in s.get("items", []):
                want = 0o444 if item["key"] in PUBLIC_KEYS else 0o400
                assert item.get("mode", s["defaultMode"]) == want, (name, v["name"], item)
        assert "fsGroup" not in d["spec"]["template"]["spec"].get("securityContext", {}), name


def test_restrictive_security_context(stack):
    for name, d in of_kind(stack, "Deployment").items():
        pod = d["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["enableServiceLinks"] is False
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(key)
        sc = container(d)["securityContext"]
        assert sc["privileged"] is False
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert set(sc["capabilities"]["add"]) == BASE_CAPS | EXTRA_CAPS.get(name, set()), name


def test_the_kubelet_waits_for_supervise_to_stop(stack):
    """terminationGracePeriodSeconds outlasts supervise's own stop
    ([stop] grace_seconds of the image's supervise.toml), or a pod deletion
    would SIGKILL programs still flushing (InnoDB)."""
    import tomllib

    for name, d in of_kind(stack, "Deployment").items():
        config = tomllib.loads((ROOT / "docker" / name / "supervise.toml").read_text())
        grace = config.get("stop", {}).get("grace_seconds", 10)
        kubelet = d["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        assert kubelet > grace, (name, kubelet, grace)


def test_resources_requested_and_limited(stack):
    for name, d in of_kind(stack, "Deployment").items():
        res = container(d)["resources"]
        for part in ("requests", "limits"):
            assert set(res[part]) == {"cpu", "memory"}, (name, part)


def policies_admitting(stack, target, port):
    """NetworkPolicy ingress rules that let traffic to `port` of pod `target` in."""
    rules = []
    for np in of_kind(stack, "NetworkPolicy").values():
        sel = np["spec"]["podSelector"].get("matchLabels", {})
        labels = {"app.kubernetes.io/name": target, "app.kubernetes.io/part-of": "ft-services"}
        if any(labels.get(k) != v for k, v in sel.items()):
            continue
        for rule in np["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports is None or any(
                p["port"] == port or p["port"] <= port <= p.get("endPort", p["port"]) for p in ports
            ):
                rules.append(rule)
    return rules


def sources(rules):
    """Service names a set of rules admits; '*' for anyone."""
    names = set()
    for rule in rules:
        if "from" not in rule:
            return {"*"}
        for peer in rule["from"]:
            labels = peer.get("podSelector", {}).get("matchLabels", {})
            assert set(peer) == {"podSelector"}, "only pods of the stack"
            if labels.get("app.kubernetes.io/part-of") == "ft-services":
                names.add("any-stack-pod")
            else:
                names.add(labels["app.kubernetes.io/name"])
    return names


def test_network_policies(stack):
    policies = of_kind(stack, "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and not deny.get("ingress")
    assert sources(policies_admitting(stack, "mysql", 3306)) == {"wordpress", "phpmyadmin"}
    # Every pod's collector writes to InfluxDB; Grafana reads it.
    assert sources(policies_admitting(stack, "influxdb", 8086)) == {"any-stack-pod"}
    for name, (kind, ports) in CONTRACT.items():
        # the kubelet's probes come from the node, which policies always admit
        assert not policies_admitting(stack, name, 9901), name
        if kind == "LoadBalancer":
            for port in ports:
                assert sources(policies_admitting(stack, name, port)) == {"*"}, (name, port)
        # nothing else is admitted anywhere
        assert not policies_admitting(stack, name, 9902)


def secret_values():
    """Every secret value setup.sh generated, and each line of the multi-line ones."""
    values = set()
    for path in SECRETS.rglob("*"):
        # the address and host key fingerprint files are not secret
        if not path.is_file() or path.name in ("tls-address", "known_hosts"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        values.add(text)
        for line in text.splitlines():
            for part in [line, *line.split(":")]:
                part = part.strip()
                if len(part) >= 12 and not part.startswith("-----") and " " not in part:
                    values.add(part)
    return {v for v in values if len(v) >= 12}


def test_no_generated_secret_appears_in_rendered_output():
    values = secret_values()
    # the throw-away secrets exist, so this test can fail
    assert len(values) > 20, sorted(values)
    for path in RENDERED.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "PRIVATE KEY" not in text
        leaked = [v for v in values if v in text]
        assert not leaked, (path.name, len(leaked))

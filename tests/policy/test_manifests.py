"""Policy test: the rendered k8s/ manifests against docs/contract.md.

Reads the output of tests/policy/manifests.sh: RENDERED_DIR holds
`kubectl kustomize k8s` as stack.yaml plus the MetalLB files; SECRETS_DIR
holds throw-away secrets from `setup.sh secrets`, whose values must appear
nowhere in what is rendered.
"""

import ipaddress
import os
import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
RENDERED = pathlib.Path(os.environ.get("RENDERED_DIR", "tests/.work/policy/rendered"))
SECRETS = pathlib.Path(os.environ.get("SECRETS_DIR", "tests/.work/policy/secrets"))
NAMESPACE = "ft-services"

# The manifests own the services, their ports and volumes, what each pod
# mounts and its probes (docs/contract.md, "Who owns what"); this test checks
# them against the rules of the stack, and the files that must hold a copy
# of one of those facts (setup.sh's lists, the images' configs) against them.

# Never behind the load balancer: the databases.
INTERNAL = {"mysql", "influxdb"}
# Data directories, on a PersistentVolumeClaim each.
PERSISTENT = {"mysql", "influxdb", "ftps", "wordpress", "grafana"}
# supervise's restarts file lives on this emptyDir (crates/supervise/src/restarts.rs)
SUPERVISE_STATE = "supervise-state"
SUPERVISE_STATE_DIR = "/run/supervise"
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


def service_ports(stack, name):
    return [p["port"] for p in of_kind(stack, "Service")[name]["spec"]["ports"]]


def test_one_service_per_deployment_public_but_the_databases(stack):
    services = of_kind(stack, "Service")
    assert set(services) == set(of_kind(stack, "Deployment"))
    assert INTERNAL <= set(services)
    for name, svc in services.items():
        spec = svc["spec"]
        assert spec["type"] == ("ClusterIP" if name in INTERNAL else "LoadBalancer"), name
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
        assert ports == service_ports(stack, name) + [9901], name


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
    assert set(claims) == PERSISTENT
    for name, d in of_kind(stack, "Deployment").items():
        spec = d["spec"]["template"]["spec"]
        pvcs = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes", []) if "persistentVolumeClaim" in v}
        mounts = {m["name"]: m["mountPath"] for m in container(d)["volumeMounts"]}
        if name in PERSISTENT:
            assert list(pvcs.values()) == [name]
            (vol,) = pvcs
            assert mounts[vol].startswith("/var/lib/"), mounts[vol]
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


def mounted_secret_files(d):
    """(secret, key) of every Secret file the Deployment's pod mounts."""
    spec = d["spec"]["template"]["spec"]
    files = set()
    for v in spec["volumes"]:
        if "secret" not in v:
            continue
        name = v["secret"]["secretName"]
        items = v["secret"].get("items")
        keys = [i["key"] for i in items] if items else generated_keys(name)
        files |= {(name, k) for k in keys}
    return files


def generated_keys(secret):
    return sorted(p.name for p in (SECRETS / secret).iterdir())


def generated_secrets():
    return {p.name for p in SECRETS.iterdir() if p.is_dir() and p.name != "local"}


def test_secrets_are_mounted_read_only_as_files(stack):
    for name, d in of_kind(stack, "Deployment").items():
        spec = d["spec"]["template"]["spec"]
        secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        mounts = {m["name"]: m for m in container(d)["volumeMounts"]}
        for vol, secret in secrets.items():
            assert mounts[vol]["mountPath"] == f"/run/secrets/{secret}"
            assert mounts[vol]["readOnly"] is True
        for e in container(d)["env"]:
            assert "secretKeyRef" not in e.get("valueFrom", {}), "secrets are files, not environment"


def test_every_mounted_secret_is_generated_and_every_generated_one_mounted(stack):
    """setup.sh owns the Secrets it generates; the manifests what each pod mounts."""
    mounted = set()
    for name, d in of_kind(stack, "Deployment").items():
        for secret, key in mounted_secret_files(d):
            assert key in generated_keys(secret), f"{name} mounts {secret}/{key}, which setup.sh does not make"
            mounted.add(secret)
    assert mounted == generated_secrets()


SECRET_PATH = re.compile(r"/run/secrets/(ft-[a-z]+)/([A-Za-z0-9_.-]+)")


def test_every_secret_an_image_reads_is_mounted_in_its_pod(stack):
    """Each /run/secrets/<secret>/<key> an image's files name (supervise.toml,
    rootfs/) must be mounted in that service's pod."""
    for name, d in of_kind(stack, "Deployment").items():
        mounted = mounted_secret_files(d)
        image = ROOT / "docker" / name
        files = [image / "supervise.toml", *(p for p in (image / "rootfs").rglob("*") if p.is_file())]
        for f in files:
            for secret, key in SECRET_PATH.findall(f.read_text(errors="replace")):
                assert (secret, key) in mounted, f"{f.relative_to(ROOT)} reads {secret}/{key}, not mounted in the {name} pod"


def setup_sh_list(name):
    m = re.search(rf"^{name}=\(([^)]*)\)", (ROOT / "setup.sh").read_text(), re.M)
    return m.group(1).split()


def test_setup_sh_lists_follow_the_manifests(stack):
    """setup.sh's copies: SERVICES (one Deployment each) and SECRETS (what it generates, all mounted)."""
    assert set(setup_sh_list("SERVICES")) == set(of_kind(stack, "Deployment")), "setup.sh SERVICES"
    assert set(setup_sh_list("SECRETS")) == generated_secrets(), "setup.sh SECRETS"


def test_image_files_follow_the_services(stack):
    """The images' copies of the Services' ports: EXPOSE, and ftpsd's passive range."""
    for name, d in of_kind(stack, "Deployment").items():
        ports = sorted(p["containerPort"] for p in container(d)["ports"])
        text = (ROOT / "docker" / name / "Dockerfile").read_text()
        exposed = set()
        for word in re.search(r"^EXPOSE (.*)$", text, re.M).group(1).split():
            lo, _, hi = word.partition("-")
            exposed |= set(range(int(lo), int(hi or lo) + 1))
        assert exposed >= set(ports), f"docker/{name}/Dockerfile EXPOSE misses {sorted(set(ports) - exposed)}"
    passive = [p for p in service_ports(stack, "ftps") if p != 21]
    config = (ROOT / "docker/ftps/rootfs/etc/templates/ftpsd.toml").read_text()
    low = int(re.search(r"^port_min = (\d+)", config, re.M).group(1))
    high = int(re.search(r"^port_max = (\d+)", config, re.M).group(1))
    assert list(range(low, high + 1)) == passive, "docker/ftps/rootfs/etc/templates/ftpsd.toml [passive]"
    # ftpsd's defaults are the cluster's, so that an empty config works
    source = (ROOT / "crates/ftpsd/src/config.rs").read_text()
    low = int(re.search(r"port_min: (\d+),", source).group(1))
    high = int(re.search(r"port_max: (\d+),", source).group(1))
    assert list(range(low, high + 1)) == passive, "crates/ftpsd/src/config.rs PassiveConfig::default"


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
    for name, svc in of_kind(stack, "Service").items():
        # the kubelet's probes come from the node, which policies always admit
        assert not policies_admitting(stack, name, 9901), name
        if svc["spec"]["type"] == "LoadBalancer":
            for port in service_ports(stack, name):
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


# --- what each program writes (docs/contract.md) ------------------------------------

# The data paths the images' configs name, per image: (file, how to find it).
CONFIG_DATA_PATHS = {
    "mysql": [("etc/my.cnf.d/ft-server.cnf", r"^datadir\s*=\s*(\S+)")],
    "influxdb": [("etc/influxdb.conf", r'^\s*(?:dir|wal-dir)\s*=\s*"([^"]+)"')],
    "grafana": [("etc/grafana.ini", r"^(?:data|plugins)\s*=\s*(\S+)")],
    "ftps": [("etc/templates/ftpsd.toml", r'^data_root\s*=\s*"([^"]+)"')],
    "wordpress": [("usr/share/webapps/wordpress/wp-config.php", r"define\('WP_CONTENT_DIR',\s*'([^']+)'\)")],
}


def written_paths():
    """docs/contract.md's inventory: (image, path, lives on) rows."""
    text = (ROOT / "docs/contract.md").read_text()
    section = text.split("## What each program writes", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("image", "---"):
            for path in re.findall(r"`([^`]+)`", cells[1]):
                rows.append((cells[0], path, cells[2]))
    return rows


def test_the_inventory_of_written_paths_matches_the_volumes(stack):
    rows = written_paths()
    assert rows, "docs/contract.md has no inventory of written paths"
    volumes = {(image, path): lives for image, path, lives in rows if lives.startswith("volume")}
    for name, d in of_kind(stack, "Deployment").items():
        spec = d["spec"]["template"]["spec"]
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
        empty = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for mount in container(d)["volumeMounts"]:
            if mount["name"] in claims:
                lives = volumes.get((name, mount["mountPath"])) or volumes.get((name, mount["mountPath"] + "/wp-content"))
                assert lives == f"volume `{claims[mount['name']]}`", (
                    f"{name}: {mount['mountPath']} (claim {claims[mount['name']]}) is not in docs/contract.md's inventory as that volume")
            elif mount["name"] in empty:
                assert ("every image", mount["mountPath"], f"emptyDir `{mount['name']}`") in rows, (
                    f"{name}: emptyDir {mount['mountPath']} not in docs/contract.md's inventory")
        listed = {path for (image, path) in volumes if image == name}
        mounted = {m["mountPath"] for m in container(d)["volumeMounts"] if m["name"] in claims}
        for path in listed:
            assert any(path == m or path.startswith(m + "/") for m in mounted), (
                f"docs/contract.md: {name}'s {path} is on no volume of its Deployment")


@pytest.mark.parametrize("image", sorted(CONFIG_DATA_PATHS))
def test_the_configs_data_paths_are_on_the_listed_volumes(image):
    volumes = [path for i, path, lives in written_paths() if i == image and lives.startswith("volume")]
    for file, pattern in CONFIG_DATA_PATHS[image]:
        text = (ROOT / "docker" / image / "rootfs" / file).read_text()
        found = re.findall(pattern, text, re.M)
        assert found, f"docker/{image}/rootfs/{file}: no data path found"
        for path in found:
            assert any(path == v or path.startswith(v + "/") for v in volumes), (
                f"docker/{image}/rootfs/{file}: {path} is on no volume of docs/contract.md's inventory ({volumes})")

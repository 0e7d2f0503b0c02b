"""Flow test of setup.sh with fake minikube, docker and kubectl.

setup.sh runs for real (real bash, openssl, ssh-keygen, coreutils) in a
temporary copy of the repository whose docker/ and crates/ are small stubs;
only the three cluster tools are the fake in fakes/fake.py, which records
every call. The real kubectl renders what setup.sh applied, offline.

The host is played too: `uname` is the fake's (Linux x86_64 unless a test
says otherwise), so the same runs play Linux on arm64 and macOS on Intel and
Apple Silicon, with the macOS tools a test installs (vfkit, vmnet-helper,
QEMU, hyperkit: empty stand-ins, setup.sh only looks for them; brew: the
fake, whose prefix may hold socket_vmnet's socket) and minikube's Docker
reporting the node's architecture.
"""

import base64
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import tarfile

import pytest
import yaml

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
FAKE = HERE / "fakes" / "fake.py"
CLUSTER_TOOLS = ["minikube", "docker", "kubectl"]
LOCAL_TOOLS = ["openssl", "ssh-keygen", "python3"]
# Tools of the host played: never the real ones of this machine.
HOST_TOOLS = ["uname", "brew", "vfkit", "vmnet-helper", "qemu-system-aarch64", "qemu-system-x86_64", "hyperkit"]
MAC_ARM = {"FAKE_UNAME_S": "Darwin", "FAKE_UNAME_M": "arm64", "FAKE_UNAME_R": "24.6.0", "FAKE_NODE_ARCH": "arm64"}
MAC_INTEL = {"FAKE_UNAME_S": "Darwin", "FAKE_UNAME_M": "x86_64", "FAKE_UNAME_R": "24.6.0", "FAKE_NODE_ARCH": "amd64"}
NODE_IP = "192.168.58.2"
LB_IP = "192.168.58.240"
REAL_KUBECTL = shutil.which("kubectl")


def _manifests():
    out = subprocess.run([REAL_KUBECTL, "kustomize", str(REPO / "k8s")], check=True, capture_output=True, text=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


# What the manifests own: the services (one Deployment each) and the Secrets the pods mount.
_DEPLOYMENTS = [d for d in _manifests() if d["kind"] == "Deployment"]
SERVICES = sorted(d["metadata"]["name"] for d in _DEPLOYMENTS)
SECRETS = sorted({v["secret"]["secretName"] for d in _DEPLOYMENTS
                  for v in d["spec"]["template"]["spec"]["volumes"] if "secret" in v})


@pytest.fixture(scope="session")
def sysbin(tmp_path_factory):
    """Every command of the normal PATH except the ones a test provides or hides."""
    out = tmp_path_factory.mktemp("sysbin")
    hidden = set(CLUSTER_TOOLS + LOCAL_TOOLS + HOST_TOOLS)
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
        if not os.path.isdir(d):
            continue
        for entry in os.scandir(d):
            target = out / entry.name
            if entry.name in hidden or target.exists() or target.is_symlink():
                continue
            if os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    return out


@pytest.fixture()
def repo(tmp_path):
    """A repository copy: the real setup.sh, setup/ and k8s/, stub image sources."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy2(REPO / "setup.sh", root / "setup.sh")
    shutil.copytree(REPO / "k8s", root / "k8s")
    shutil.copytree(REPO / "setup", root / "setup")
    (root / "Cargo.toml").write_text("[workspace]\nmembers = ['crates/*']\n")
    (root / "Cargo.lock").write_text("version = 4\n")
    (root / "crates/supervise/src").mkdir(parents=True)
    (root / "crates/supervise/src/lib.rs").write_text("//! stub\n")
    for name in ["build"] + SERVICES:
        (root / "docker" / name).mkdir(parents=True)
        (root / "docker" / name / "Dockerfile").write_text(f"FROM scratch\n# {name}\n")
    return root


class Run:
    def __init__(self, proc, state):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        log = state / "calls.jsonl"
        self.calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        local = state / "local-calls.log"
        self.local_command_lines = local.read_text().splitlines() if local.exists() else []

    def of(self, tool):
        return [c for c in self.calls if c["tool"] == tool]

    def builds(self):
        return [c["args"][c["args"].index("-t") + 1] for c in self.of("docker") if c["args"][:1] == ["build"]]

    def platforms(self):
        """The --platform of every docker build."""
        return {c["args"][c["args"].index("--platform") + 1] if "--platform" in c["args"] else None
                for c in self.of("docker") if c["args"][:1] == ["build"]}

    def starts(self):
        return [c["args"] for c in self.of("minikube") if c["args"][:1] == ["start"]]


def run(repo, sysbin, *args, missing=(), env=None, timeout=120, host_tools=(), openssl_version=None):
    toolbin = repo.parent / "toolbin"
    shutil.rmtree(toolbin, ignore_errors=True)
    toolbin.mkdir()
    for tool in CLUSTER_TOOLS + [t for t in host_tools if t == "brew"]:
        if tool not in missing:
            (toolbin / tool).symlink_to(FAKE)
    # the host played (a shell script: it must answer when python3 is missing)
    (toolbin / "uname").write_text(
        "#!/bin/sh\n"
        "[ $# -eq 0 ] && set -- -s\n"
        "for a; do case $a in\n"
        "  -s) set -- \"$@\" \"${FAKE_UNAME_S:-Linux}\" ;;\n"
        "  -m) set -- \"$@\" \"${FAKE_UNAME_M:-x86_64}\" ;;\n"
        "  -r) set -- \"$@\" \"${FAKE_UNAME_R:-6.1.0-fake-amd64}\" ;;\n"
        "  *) echo \"fake uname: unexpected $a\" >&2; exit 99 ;;\n"
        "esac; shift; done\n"
        "echo \"$*\"\n")
    (toolbin / "uname").chmod(0o755)
    for tool in host_tools:
        if tool != "brew":
            (toolbin / tool).write_text("#!/bin/sh\nexit 0\n")
            (toolbin / tool).chmod(0o755)
    # The real local tools, behind a shim that records each command line.
    for tool in LOCAL_TOOLS:
        if tool not in missing:
            shim = toolbin / tool
            # macOS's own openssl is LibreSSL: a test may make `openssl version` say so
            version = (f'[ "$1" = version ] && {{ echo "{openssl_version}"; exit 0; }}\n'
                       if tool == "openssl" and openssl_version else "")
            shim.write_text(
                "#!/bin/sh\n"
                f"printf '%s\\n' \"{tool} $*\" >> \"$FAKE_STATE/local-calls.log\"\n"
                + version +
                f"exec {shutil.which(tool)} \"$@\"\n")
            shim.chmod(0o755)
    state = repo.parent / "fake-state"
    full_env = {
        "PATH": f"{toolbin}:{sysbin}",
        "FAKE_REAL_KUBECTL": REAL_KUBECTL,
        "HOME": str(repo.parent),
        "FAKE_STATE": str(state),
        "FAKE_NODE_IP": NODE_IP,
        "LANG": "C.UTF-8",
    }
    full_env.update(env or {})
    # The log is per run; the fake's other state (cluster, images) persists.
    state.mkdir(parents=True, exist_ok=True)
    (state / "calls.jsonl").unlink(missing_ok=True)
    (state / "local-calls.log").unlink(missing_ok=True)
    proc = subprocess.run(
        ["bash", str(repo / "setup.sh"), *args],
        cwd=repo, env=full_env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    return Run(proc, state)


def snapshot(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def rendered_apply(repo, n):
    """What the n-th `kubectl apply -k` of a run would have created."""
    out = subprocess.run([REAL_KUBECTL, "kustomize", str(repo.parent / "fake-state" / f"applied-k-{n}")],
                         check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def pod_annotations(objs):
    return {o["metadata"]["name"]: o["spec"]["template"]["metadata"].get("annotations", {})
            for o in objs if o["kind"] == "Deployment"}


def test_fresh_up_builds_configures_applies_and_prints_urls(repo, sysbin):
    r = run(repo, sysbin, "up", env={"FAKE_NOT_READY_POLLS": "1"})
    assert r.rc == 0, r.err
    mk = [c["args"] for c in r.of("minikube")]
    # a CNI that enforces the NetworkPolicies, and the output says they are
    assert ["start", "--driver=docker", "--cni=calico"] in mk
    assert "network policies          enforced by calico-node" in r.out
    assert ["addons", "enable", "metallb"] in mk and ["addons", "enable", "dashboard"] in mk
    # builder first, then every service; all into minikube's Docker, for its node's platform
    assert "host: linux amd64; minikube driver docker" in r.out
    assert r.platforms() == {"linux/amd64"} and "images for linux/amd64, minikube's node" in r.out
    assert r.builds()[0] == "ft-build:latest"
    assert sorted(r.builds()[1:]) == [f"{s}:ft-services" for s in SERVICES]
    for c in r.of("docker"):
        if c["args"][:1] == ["build"]:
            assert c["docker_host"] == f"tcp://{NODE_IP}:2376"
            assert c["cwd"] == str(repo) and c["args"][-1] == "."
    # MetalLB: the old-style ConfigMap with exactly the one address; no CRDs here
    applied = [c["stdin"] for c in r.of("kubectl") if "stdin" in c]
    (legacy,) = [yaml.safe_load(s) for s in applied if "metallb-system" in s]
    assert yaml.safe_load(legacy["data"]["config"])["address-pools"][0]["addresses"] == [f"{LB_IP}/32"]
    assert not any("IPAddressPool" in s for s in applied)
    # every Secret of the contract, from the generated files
    secrets = [yaml.safe_load(s)["metadata"]["name"] for s in applied if "kind: Secret" in s]
    assert sorted(secrets) == SECRETS
    # the stack with the real address everywhere
    objs = rendered_apply(repo, 0)
    services = [o for o in objs if o["kind"] == "Service" and o["spec"]["type"] == "LoadBalancer"]
    assert len(services) == 5
    for s in services:
        assert s["spec"]["loadBalancerIP"] == LB_IP
        assert s["metadata"]["annotations"]["metallb.universe.tf/loadBalancerIPs"] == LB_IP
    (cm,) = [o for o in objs if o["kind"] == "ConfigMap"]
    assert cm["data"]["LB_IP"] == LB_IP
    assert all(a["ft-services/image-inputs"] for a in pod_annotations(objs).values())
    # the progress line, the URLs with the one address, the dashboard, credentials
    assert "waiting for nginx" in r.out and "rollout: 7/7 ready" in r.out
    for url in [f"https://{LB_IP}/", f"https://{LB_IP}:5050/", f"https://{LB_IP}:5000/",
                f"https://{LB_IP}:3000/", f"ftps://{LB_IP}:21", f"ssh ft@{LB_IP}"]:
        assert url in r.out
    assert "http://127.0.0.1:38123/api/v1/namespaces/kubernetes-dashboard" in r.out
    assert "./setup.sh credentials" in r.out and ".secrets/" in r.out
    for name in SECRETS:
        assert any((repo / ".secrets" / name).iterdir()), name


def test_second_up_is_idempotent(repo, sysbin):
    first = run(repo, sysbin, "up")
    assert first.rc == 0, first.err
    secrets_before = snapshot(repo / ".secrets" / "ft-tls") | snapshot(repo / ".secrets" / "ft-mysql")
    all_before = {k: v for k, v in snapshot(repo / ".secrets").items() if not k.startswith("local/dashboard")}
    second = run(repo, sysbin, "up")
    assert second.rc == 0, second.err
    assert second.builds() == []
    assert "is up to date" in second.out
    assert not [c for c in second.of("minikube") if c["args"][:1] == ["start"]]
    after = {k: v for k, v in snapshot(repo / ".secrets").items() if not k.startswith("local/dashboard")}
    assert after == all_before and secrets_before
    # same manifests, same annotations: nothing rolls
    assert rendered_apply(repo, 0) == rendered_apply(repo, 1)


def test_a_changed_input_rebuilds_what_depends_on_it(repo, sysbin):
    assert run(repo, sysbin, "up").rc == 0
    (repo / "docker/grafana/Dockerfile").write_text("FROM scratch\n# grafana, changed\n")
    r = run(repo, sysbin, "up")
    assert r.rc == 0, r.err
    assert r.builds() == ["grafana:ft-services"]
    before, after = pod_annotations(rendered_apply(repo, 0)), pod_annotations(rendered_apply(repo, 1))
    assert [s for s in SERVICES if before[s] != after[s]] == ["grafana"]
    # the workspace feeds the builder, which every image copies from
    (repo / "crates/supervise/src/lib.rs").write_text("//! changed\n")
    r = run(repo, sysbin, "up")
    assert r.rc == 0, r.err
    assert r.builds()[0] == "ft-build:latest"
    assert sorted(r.builds()[1:]) == [f"{s}:ft-services" for s in SERVICES]


def test_current_metallb_gets_the_pool_resources(repo, sysbin):
    r = run(repo, sysbin, "up", env={"FAKE_METALLB_CRDS": "1"})
    assert r.rc == 0, r.err
    (pool,) = [c["stdin"] for c in r.of("kubectl") if "IPAddressPool" in c.get("stdin", "")]
    docs = {d["kind"]: d for d in yaml.safe_load_all(pool)}
    assert docs["IPAddressPool"]["spec"]["addresses"] == [f"{LB_IP}/32"]
    assert "L2Advertisement" in docs


def test_lb_ip_from_the_environment_wins(repo, sysbin):
    r = run(repo, sysbin, "up", env={"LB_IP": "192.168.58.77"})
    assert r.rc == 0, r.err
    assert ["ip"] not in [c["args"] for c in r.of("minikube")]
    assert "https://192.168.58.77:5050/" in r.out
    cert = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                           str(repo / ".secrets/ft-tls/tls.crt")], capture_output=True, text=True, check=True)
    assert "IP Address:192.168.58.77" in cert.stdout


def test_status_shows_each_service_address_and_health(repo, sysbin):
    assert run(repo, sysbin, "up").rc == 0
    r = run(repo, sysbin, "status")
    assert r.rc == 0, r.err
    lines = {line.split()[0]: line for line in r.out.splitlines()[1:]}
    assert set(lines) == set(SERVICES)
    assert f"{LB_IP}:80,443,22" in lines["nginx"]
    # a long port list shown as its first port, then its range
    ftps = [p["port"] for d in _manifests() if d["kind"] == "Service" and d["metadata"]["name"] == "ftps"
            for p in d["spec"]["ports"]]
    assert f"{LB_IP}:{ftps[0]},{ftps[1]}-{ftps[-1]}" in lines["ftps"]
    assert "ClusterIP" in lines["mysql"] and ":3306" in lines["mysql"]
    assert all("ready 1/1 (healthy)" in line for line in lines.values())
    r = run(repo, sysbin, "status", env={"FAKE_NEVER_READY": "1"})
    assert "NOT READY" in r.out


def test_down_keeps_volumes_and_purge_removes_them(repo, sysbin):
    assert run(repo, sysbin, "up").rc == 0
    r = run(repo, sysbin, "down")
    assert r.rc == 0, r.err
    deletes = [c["args"] for c in r.of("kubectl") if "delete" in c["args"]]
    assert deletes and not any("namespace" in a or "pvc" in " ".join(a) or "persistentvolumeclaim" in " ".join(a)
                               for a in deletes)
    assert any("deployment,service,networkpolicy,configmap" in a for a in deletes)
    r = run(repo, sysbin, "down", "--purge")
    assert r.rc == 0, r.err
    assert ["delete", "namespace", "ft-services", "--ignore-not-found", "--wait=true"] in [c["args"] for c in r.of("kubectl")]
    # the secrets stay for the next `up`
    assert (repo / ".secrets/ft-mysql/root-password").exists()


@pytest.mark.parametrize("tool", CLUSTER_TOOLS + LOCAL_TOOLS)
def test_each_missing_prerequisite_has_its_own_error(repo, sysbin, tool):
    r = run(repo, sysbin, "up", missing=(tool,))
    assert r.rc != 0
    assert f"{tool} is not installed" in r.err
    others = [t for t in CLUSTER_TOOLS + LOCAL_TOOLS if t != tool]
    assert not any(f"{t} is not installed" in r.err for t in others)
    assert r.calls == [], "nothing is started before the checks pass"
    assert not (repo / ".secrets").exists()


def test_docker_engine_not_running(repo, sysbin):
    r = run(repo, sysbin, "up", env={"FAKE_DOCKER_DOWN": "1"})
    assert r.rc != 0
    assert "Docker Engine is not running" in r.err
    assert not [c for c in r.of("minikube") if c["args"][:1] == ["start"]]


def test_rollout_timeout_fails_with_the_waiting_services(repo, sysbin):
    r = run(repo, sysbin, "up", env={"FAKE_NEVER_READY": "1", "ROLLOUT_TIMEOUT": "1"})
    assert r.rc != 0
    assert "not ready after 1s" in r.err and "ftps" in r.err


def test_secrets_command_needs_no_cluster(repo, sysbin, tmp_path):
    target = tmp_path / "elsewhere"
    r = run(repo, sysbin, "secrets", env={"SECRETS_DIR": str(target)})
    assert r.rc != 0 and "LB_IP" in r.err
    r = run(repo, sysbin, "secrets", env={"SECRETS_DIR": str(target), "LB_IP": "10.20.30.40"})
    assert r.rc == 0, r.err
    assert r.calls == []
    keys = {name: sorted(p.name for p in (target / name).iterdir()) for name in SECRETS}
    assert keys == {
        "ft-tls": ["ca.crl", "ca.crt", "tls.crt", "tls.key"],
        "ft-mysql": ["collect-password", "phpmyadmin-password", "root-password", "wordpress-password"],
        "ft-influxdb": ["admin-password", "collect-password", "grafana-password"],
        "ft-wordpress": ["admin-password", "users"],
        "ft-phpmyadmin": ["blowfish-secret"],
        "ft-ftps": ["users"],
        "ft-ssh": ["authorized_keys", "password-hash", "ssh_host_ed25519_key"],
        "ft-grafana": ["admin-password"],
    }
    # the certificate: signed by the CA, for the address and the Service names
    subprocess.run(["openssl", "verify", "-CAfile", target / "ft-tls/ca.crt", target / "ft-tls/tls.crt"], check=True,
                   capture_output=True)
    san = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", target / "ft-tls/tls.crt"],
                         capture_output=True, text=True, check=True).stdout
    assert "IP Address:10.20.30.40" in san and "DNS:mysql.ft-services.svc" in san
    # the CA's revocation list, signed by it, where the certificate says it is
    subprocess.run(["openssl", "crl", "-noout", "-CAfile", target / "ft-tls/ca.crt", "-in", target / "ft-tls/ca.crl"],
                   check=True, capture_output=True)
    cdp = subprocess.run(["openssl", "x509", "-noout", "-ext", "crlDistributionPoints", "-in", target / "ft-tls/tls.crt"],
                         capture_output=True, text=True, check=True).stdout
    assert "URI:http://10.20.30.40/ca.crl" in cdp
    # WordPress users: login:role:email:password, the admin's password is admin-password
    users = [line.split(":") for line in (target / "ft-wordpress/users").read_text().splitlines()
             if not line.startswith("#")]
    assert {u[1] for u in users} >= {"editor", "author", "contributor", "subscriber"}
    # the administrator has one source: admin-password
    assert "admin" not in {u[0] for u in users}
    assert len((target / "ft-wordpress/admin-password").read_text()) >= 16
    # FTPS: ftpsd's PBKDF2 hash of the password kept in local/
    (line,) = [x for x in (target / "ft-ftps/users").read_text().splitlines() if not x.startswith("#")]
    name, phc = line.split(":", 1)
    _, scheme, iterations, salt, key = phc.split("$")
    unb64 = lambda s: base64.b64decode(s + "=" * (-len(s) % 4))  # noqa: E731
    password = (target / "local/ftps-password").read_text()
    assert (name, scheme) == ("ft", "pbkdf2-sha256")
    assert hashlib.pbkdf2_hmac("sha256", password.encode(), unb64(salt), int(iterations[2:])) == unb64(key)
    # SSH: the login key and the crypt(3) SHA-512 hash of the password
    assert (target / "ft-ssh/authorized_keys").read_text() == (target / "local/id_ed25519.pub").read_text()
    assert (target / "ft-ssh/password-hash").read_text().startswith("$6$")
    salt6 = (target / "ft-ssh/password-hash").read_text().split("$")[2]
    again = subprocess.run(["openssl", "passwd", "-6", "-salt", salt6, "-stdin"],
                           input=(target / "local/ssh-password").read_text(), capture_output=True, text=True)
    assert again.stdout.strip() == (target / "ft-ssh/password-hash").read_text()
    assert oct((target / "ft-mysql/root-password").stat().st_mode & 0o777) == "0o600"
    # phpMyAdmin's cookie key: 32 random bytes, hex
    blowfish = (target / "ft-phpmyadmin/blowfish-secret").read_text()
    assert len(bytes.fromhex(blowfish)) == 32
    # a users file of an earlier setup.sh, which listed the administrator, loses that line only
    users_file = target / "ft-wordpress/users"
    kept = users_file.read_text()
    users_file.write_text("admin:administrator:admin@x.test:old-password\n" + kept)
    assert run(repo, sysbin, "secrets", env={"SECRETS_DIR": str(target), "LB_IP": "10.20.30.40"}).rc == 0
    assert users_file.read_text() == kept
    # a second run keeps every file
    before = snapshot(target)
    assert run(repo, sysbin, "secrets", env={"SECRETS_DIR": str(target), "LB_IP": "10.20.30.40"}).rc == 0
    assert snapshot(target) == before


def test_credentials_prints_the_logins(repo, sysbin):
    r = run(repo, sysbin, "credentials")
    assert r.rc != 0 and "no secrets" in r.err
    assert run(repo, sysbin, "secrets", env={"SECRETS_DIR": str(repo / ".secrets"), "LB_IP": LB_IP}).rc == 0
    r = run(repo, sysbin, "credentials")
    assert r.rc == 0, r.err
    assert (repo / ".secrets/ft-grafana/admin-password").read_text() in r.out
    assert (repo / ".secrets/local/ftps-password").read_text() in r.out
    assert "editor:editor:" in r.out and f"https://{LB_IP}:5050/" in r.out


def test_unknown_command_shows_usage(repo, sysbin):
    r = run(repo, sysbin, "frobnicate")
    assert r.rc != 0 and "./setup.sh status" in r.err


def test_a_running_cluster_without_a_policy_cni_is_told_so(repo, sysbin):
    run(repo, sysbin, "up")  # the fake cluster exists now
    r = run(repo, sysbin, "up", env={"FAKE_CNI": "kindnet"})
    assert r.rc == 0, r.err
    assert not [c for c in r.of("minikube") if c["args"][:1] == ["start"]]
    assert "does not enforce NetworkPolicy" in r.err
    assert "minikube delete && ./setup.sh" in r.err and "--cni=calico" in r.err
    assert "network policies          NOT enforced" in r.out
    assert "enforced by" not in r.out


def secret_values(secrets_dir):
    """Every generated secret, and each line and colon-separated part of the multi-line ones."""
    values = set()
    for path in secrets_dir.rglob("*"):
        if not path.is_file() or path.name in ("tls-address", "known_hosts", "dashboard.log"):
            continue
        text = path.read_text(errors="replace").strip()
        for line in [text, *text.splitlines()]:
            for part in [line, *line.split(":")]:
                part = part.strip()
                if len(part) >= 12 and not part.startswith("-----") and " " not in part:
                    values.add(part)
    return values


def test_no_generated_secret_on_any_command_line(repo, sysbin):
    r = run(repo, sysbin, "up")
    assert r.rc == 0, r.err
    values = secret_values(repo / ".secrets")
    assert len(values) > 20, sorted(values)  # the secrets exist, so this test can fail
    lines = r.local_command_lines + [" ".join([c["tool"], *c["args"]]) for c in r.calls]
    assert any(line.startswith("python3 ") for line in lines), "the FTPS hash was not made"
    assert any(line.startswith("openssl ") for line in lines)
    leaked = sorted({v for v in values for line in lines if v in line})
    assert not leaked, f"{len(leaked)} secret(s) on command lines"


# --- backup and restore ----------------------------------------------------------

PARTS = {"mysql": "mysql.sql", "influxdb": "influxdb.tar", "ftps": "ftps.tar", "wordpress": "wordpress.tar",
         "grafana": "grafana.tar"}
PASSPHRASE = {"FT_BACKUP_PASSPHRASE": "correct horse battery staple"}


def archive_members(path):
    with tarfile.open(path) as t:
        return {m.name.removeprefix("./"): (t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()}


def execs(r):
    return [c for c in r.of("kubectl") if "exec" in c["args"]]


def test_backup_takes_every_part_from_its_pod_and_checksums_it(repo, sysbin, tmp_path):
    assert run(repo, sysbin, "up").rc == 0
    out = tmp_path / "site.tar.gz"
    r = run(repo, sysbin, "backup", str(out), env=PASSPHRASE)
    assert r.rc == 0, r.err
    files = archive_members(out)
    assert {n for n, b in files.items() if b is not None} == {"MANIFEST", "SHA256SUMS", "secrets.tar.enc", *PARTS.values()}
    for svc, part in PARTS.items():
        assert files[part] == f"{svc} data of the fake pod\n".encode()
    # the checksums, checked by sha256sum itself
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    with tarfile.open(out) as t:
        t.extractall(unpacked, filter="data")
    subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=unpacked, check=True, capture_output=True)
    manifest = files["MANIFEST"].decode()
    assert "format ft_services-backup 1" in manifest and f"address {LB_IP}" in manifest
    assert f"part mysql.sql {len(files['mysql.sql'])}" in manifest
    assert "\nmariadb unknown\n" in manifest  # the fake dump names no server version
    # the secrets: openssl opens them with the passphrase, and they are the folder's
    plain = subprocess.run(["openssl", "enc", "-d", "-aes-256-cbc", "-pbkdf2", "-iter", "600000",
                            "-pass", "env:FT_BACKUP_PASSPHRASE", "-in", unpacked / "secrets.tar.enc"],
                           env={**os.environ, **PASSPHRASE}, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(plain)) as t:
        names = {m.name.removeprefix("./") for m in t.getmembers() if m.isfile()}
    assert "ft-mysql/root-password" in names and "local/ca.key" in names
    assert not any(n.startswith("local/dashboard") for n in names)
    # one exec a part, into the Deployment's container: the image's own
    # ft-data (the stack test runs those scripts in the pods)
    calls = execs(r)
    assert [c["args"] for c in calls] == [
        ["-n", "ft-services", "exec", f"deploy/{s}", "-c", s, "--", "ft-data", "backup"] for s in PARTS]
    for svc in PARTS:
        assert (REPO / "docker" / svc / "rootfs/usr/local/bin/ft-data").stat().st_mode & 0o111
    assert "backup written" in r.out


def test_backup_without_passphrase_leaves_the_secrets_out_and_says_so(repo, sysbin, tmp_path):
    assert run(repo, sysbin, "up").rc == 0
    out = tmp_path / "no-secrets.tar.gz"
    r = run(repo, sysbin, "backup", str(out))
    assert r.rc == 0, r.err
    assert "secrets are left out" in r.err
    assert "secrets.tar.enc" not in archive_members(out)


def test_backup_fails_whole_when_the_stack_is_down_or_a_part_fails(repo, sysbin, tmp_path):
    out = tmp_path / "b.tar.gz"
    r = run(repo, sysbin, "backup", str(out), env=PASSPHRASE)
    assert r.rc != 0 and "not up" in r.err
    assert run(repo, sysbin, "up").rc == 0
    r = run(repo, sysbin, "backup", str(out), env={**PASSPHRASE, "FAKE_EXEC_FAILS": "influxdb"})
    assert r.rc != 0 and "backup of influxdb failed" in r.err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("b.")) == []


def test_restore_checks_first_then_feeds_each_part_to_its_pod(repo, sysbin, tmp_path):
    assert run(repo, sysbin, "up").rc == 0
    out = tmp_path / "site.tar.gz"
    assert run(repo, sysbin, "backup", str(out), env=PASSPHRASE).rc == 0
    for _ in range(2):  # the same archive twice: the same commands, the same result
        r = run(repo, sysbin, "restore", str(out), env=PASSPHRASE)
        assert r.rc == 0, r.err
        calls = execs(r)
        assert [c["args"] for c in calls] == [
            ["-n", "ft-services", "exec", "-i", f"deploy/{s}", "-c", s, "--", "ft-data", "restore"] for s in PARTS]
        assert [c["stdin"] for c in calls] == [f"{s} data of the fake pod\n" for s in PARTS]
        assert "secrets (unchanged)" in r.out
        # Grafana opens its database once: its pod restarts after its part, the others do not.
        kubectl = r.of("kubectl")
        restarts = [c["args"] for c in kubectl if "restart" in c["args"]]
        assert restarts == [["-n", "ft-services", "rollout", "restart", "deployment/grafana"]], restarts
        last_exec = max(i for i, c in enumerate(kubectl) if "exec" in c["args"])
        assert next(i for i, c in enumerate(kubectl) if "restart" in c["args"]) > last_exec


def test_restore_refuses_a_truncated_or_altered_archive_before_touching_anything(repo, sysbin, tmp_path):
    assert run(repo, sysbin, "up").rc == 0
    out = tmp_path / "site.tar.gz"
    assert run(repo, sysbin, "backup", str(out), env=PASSPHRASE).rc == 0
    data = out.read_bytes()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(data[: len(data) // 2])
    r = run(repo, sysbin, "restore", str(truncated), env=PASSPHRASE)
    assert r.rc != 0 and "truncated or corrupt" in r.err
    assert execs(r) == []
    # a part changed after the backup: its checksum no longer matches
    unpacked = tmp_path / "u"
    unpacked.mkdir()
    with tarfile.open(out) as t:
        t.extractall(unpacked, filter="data")
    (unpacked / "mysql.sql").write_text("DROP DATABASE wordpress;\n")
    altered = tmp_path / "altered.tar.gz"
    subprocess.run(["tar", "-C", unpacked, "-czf", altered, "."], check=True)
    r = run(repo, sysbin, "restore", str(altered), env=PASSPHRASE)
    assert r.rc != 0 and "does not match its checksum" in r.err
    assert execs(r) == []
    # a wrong passphrase: the secrets do not open, nothing is restored
    r = run(repo, sysbin, "restore", str(out), env={"FT_BACKUP_PASSPHRASE": "wrong"})
    assert r.rc != 0 and "do not decrypt" in r.err
    assert execs(r) == []


def test_restore_puts_back_the_secrets_of_the_archive(repo, sysbin, tmp_path):
    assert run(repo, sysbin, "up").rc == 0
    out = tmp_path / "site.tar.gz"
    assert run(repo, sysbin, "backup", str(out), env=PASSPHRASE).rc == 0
    before = snapshot(repo / ".secrets")
    (repo / ".secrets/ft-mysql/root-password").write_text("changed since the backup")
    r = run(repo, sysbin, "restore", str(out), env=PASSPHRASE)
    assert r.rc == 0, r.err
    after = {k: v for k, v in snapshot(repo / ".secrets").items() if not k.startswith("local/dashboard")}
    assert after == {k: v for k, v in before.items() if not k.startswith("local/dashboard")}
    aside = [p for p in repo.iterdir() if p.name.startswith(".secrets.replaced-")]
    assert len(aside) == 1 and (aside[0] / "ft-mysql/root-password").read_text() == "changed since the backup"
    kc = [c["args"] for c in r.of("kubectl")]
    restart = kc.index(["-n", "ft-services", "rollout", "restart", "deployment"])
    first_exec = next(i for i, a in enumerate(kc) if "exec" in a)
    assert restart < first_exec  # the pods read the restored Secrets before the data goes back


# --- hosts: Linux arm64, macOS on Intel and Apple Silicon, Windows ----------------


def lb_urls(out, ip):
    return all(u in out for u in [f"https://{ip}/", f"https://{ip}:5050/", f"ftps://{ip}:21", f"ssh ft@{ip}"])


def socket_at(path):
    """A unix socket file at path, like the one socket_vmnet serves."""
    import socket
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    return sock


def test_linux_arm64_builds_every_image_for_the_arm64_node(repo, sysbin):
    r = run(repo, sysbin, "up", env={"FAKE_UNAME_M": "aarch64", "FAKE_NODE_ARCH": "arm64"})
    assert r.rc == 0, r.err
    assert "host: linux arm64; minikube driver docker" in r.out
    assert r.starts() == [["start", "--driver=docker", "--cni=calico"]]
    assert r.builds()[0] == "ft-build:latest" and len(r.builds()) == 1 + len(SERVICES)
    assert r.platforms() == {"linux/arm64"}
    assert lb_urls(r.out, LB_IP)
    # the same cluster moved to amd64 images: the platform is an input, everything is rebuilt
    again = run(repo, sysbin, "up", env={"FAKE_UNAME_M": "aarch64", "FAKE_NODE_ARCH": "amd64"})
    assert again.rc == 0, again.err
    assert len(again.builds()) == 1 + len(SERVICES) and again.platforms() == {"linux/amd64"}


def test_a_node_of_another_architecture_is_refused(repo, sysbin):
    r = run(repo, sysbin, "up", env={"FAKE_NODE_ARCH": "s390x"})
    assert r.rc != 0
    assert "reports the architecture 's390x'" in r.err and "linux/amd64 and linux/arm64" in r.err
    assert r.builds() == []


def test_macos_apple_silicon_starts_vfkit_on_vmnet_shared(repo, sysbin):
    r = run(repo, sysbin, "up", env={**MAC_ARM, "FAKE_NODE_IP": "192.168.64.2"},
            host_tools=("vfkit", "vmnet-helper"))
    assert r.rc == 0, r.err
    assert "host: macos arm64; minikube driver vfkit, network vmnet-shared" in r.out
    assert r.starts() == [["start", "--driver=vfkit", "--network=vmnet-shared", "--cni=calico"]]
    # a VM driver: no Docker Engine on the Mac is asked for, minikube's is used
    assert ["info"] not in [c["args"] for c in r.of("docker")]
    assert {c["docker_host"] for c in r.of("docker") if c["args"][:1] == ["build"]} == {"tcp://192.168.64.2:2376"}
    assert r.platforms() == {"linux/arm64"}
    # the address: the node's vmnet subnet, host 240, everywhere
    assert lb_urls(r.out, "192.168.64.240")
    (cm,) = [o for o in rendered_apply(repo, 0) if o["kind"] == "ConfigMap"]
    assert cm["data"]["LB_IP"] == "192.168.64.240"
    # a second run finds it running on vmnet-shared and starts nothing
    again = run(repo, sysbin, "up", env={**MAC_ARM, "FAKE_NODE_IP": "192.168.64.2"},
                host_tools=("vfkit", "vmnet-helper"))
    assert again.rc == 0, again.err
    assert again.starts() == [] and again.builds() == []
    assert ["profile", "list", "--output", "json"] in [c["args"] for c in again.of("minikube")]


def test_macos_apple_silicon_without_vfkit_takes_qemu_on_socket_vmnet(repo, sysbin, tmp_path):
    prefix = tmp_path / "homebrew"
    sock = socket_at(prefix / "var/run/socket_vmnet")
    try:
        r = run(repo, sysbin, "up", env={**MAC_ARM, "FAKE_NODE_IP": "192.168.105.2", "FAKE_BREW_PREFIX": str(prefix)},
                host_tools=("brew", "qemu-system-aarch64"))
    finally:
        sock.close()
    assert r.rc == 0, r.err
    assert "host: macos arm64; minikube driver qemu, network socket_vmnet" in r.out
    assert r.starts() == [["start", "--driver=qemu", "--network=socket_vmnet", "--cni=calico"]]
    assert r.platforms() == {"linux/arm64"}
    assert lb_urls(r.out, "192.168.105.240")


def test_macos_qemu_without_socket_vmnet_says_what_to_install(repo, sysbin, tmp_path):
    r = run(repo, sysbin, "up", env={**MAC_ARM, "MINIKUBE_DRIVER": "qemu", "FAKE_BREW_PREFIX": str(tmp_path / "hb")},
            host_tools=("brew", "qemu-system-aarch64"))
    assert r.rc == 2
    assert f"socket_vmnet is not running (no socket {tmp_path / 'hb'}/var/run/socket_vmnet)" in r.err
    assert "brew install qemu socket_vmnet" in r.err and "services start socket_vmnet" in r.err
    assert r.starts() == []


def test_macos_intel_takes_vfkit_and_builds_amd64(repo, sysbin):
    r = run(repo, sysbin, "up", env={**MAC_INTEL, "FAKE_NODE_IP": "192.168.64.5"},
            host_tools=("vfkit", "vmnet-helper", "hyperkit"))
    assert r.rc == 0, r.err
    assert r.starts() == [["start", "--driver=vfkit", "--network=vmnet-shared", "--cni=calico"]]
    assert r.platforms() == {"linux/amd64"}
    assert lb_urls(r.out, "192.168.64.240")


def test_macos_intel_hyperkit_when_asked(repo, sysbin):
    r = run(repo, sysbin, "up", env={**MAC_INTEL, "FAKE_NODE_IP": "192.168.64.3", "MINIKUBE_DRIVER": "hyperkit"},
            host_tools=("hyperkit",))
    assert r.rc == 0, r.err
    assert r.starts() == [["start", "--driver=hyperkit", "--cni=calico"]]
    assert "deprecated the hyperkit driver" in r.err
    assert r.platforms() == {"linux/amd64"} and lb_urls(r.out, "192.168.64.240")


def test_macos_apple_silicon_refuses_hyperkit(repo, sysbin):
    r = run(repo, sysbin, "up", env={**MAC_ARM, "MINIKUBE_DRIVER": "hyperkit"}, host_tools=("hyperkit",))
    assert r.rc == 2 and "hyperkit runs on Intel Macs only" in r.err
    assert r.calls == []


@pytest.mark.parametrize("host", [MAC_ARM, MAC_INTEL], ids=["apple-silicon", "intel"])
def test_macos_refuses_the_docker_driver_and_says_why(repo, sysbin, host):
    r = run(repo, sysbin, "up", env={**host, "MINIKUBE_DRIVER": "docker"}, host_tools=("vfkit", "vmnet-helper"))
    assert r.rc == 2
    assert "the docker driver cannot serve this stack on macOS" in r.err
    assert "inside Docker Desktop's Linux VM, on a network the Mac has no route to" in r.err
    assert "the MetalLB address every service answers on would answer nothing on this Mac" in r.err
    assert "MINIKUBE_DRIVER=vfkit ./setup.sh" in r.err and "minikube delete" in r.err
    assert r.calls == [], "nothing is started before the driver is accepted"
    assert not (repo / ".secrets").exists()


def test_macos_refuses_a_running_cluster_on_the_docker_driver(repo, sysbin):
    state = repo.parent / "fake-state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "running").write_text("start --driver=docker --cni=calico")  # made before, with Docker Desktop
    r = run(repo, sysbin, "up", env=MAC_ARM, host_tools=("vfkit", "vmnet-helper"))
    assert r.rc == 2
    assert "the running minikube uses the docker driver" in r.err and "minikube delete && ./setup.sh" in r.err
    assert r.starts() == [] and r.builds() == []


def test_macos_with_no_reachable_driver_says_what_to_install(repo, sysbin):
    r = run(repo, sysbin, "up", env=MAC_ARM)
    assert r.rc == 2
    assert "no minikube driver whose node the Mac can reach is installed" in r.err
    assert "brew install vfkit" in r.err and "vmnet-helper" in r.err and "brew install qemu socket_vmnet" in r.err
    assert r.calls == []


def test_macos_vfkit_without_vmnet_helper_says_what_to_install(repo, sysbin):
    r = run(repo, sysbin, "up", env=MAC_ARM, host_tools=("vfkit",))
    assert r.rc == 2
    assert "vmnet-helper is not installed" in r.err and "brew install vmnet-helper" in r.err
    assert r.calls == []


def test_macos_openssl_must_be_openssl_3(repo, sysbin):
    r = run(repo, sysbin, "up", env={**MAC_ARM, "FAKE_NODE_IP": "192.168.64.2"}, host_tools=("vfkit", "vmnet-helper"),
            openssl_version="LibreSSL 3.3.6")
    assert r.rc == 2
    assert "openssl is LibreSSL 3.3.6, not OpenSSL 3: brew install openssl@3" in r.err
    assert not (repo / ".secrets/ft-tls/tls.crt").exists()


def test_windows_is_not_supported(repo, sysbin):
    r = run(repo, sysbin, "up", env={"FAKE_UNAME_S": "MINGW64_NT-10.0-22631"})
    assert r.rc == 2
    assert "Windows is not supported" in r.err and "WSL2" in r.err
    assert r.calls == []


def test_an_unsupported_architecture_is_refused(repo, sysbin):
    r = run(repo, sysbin, "up", env={"FAKE_UNAME_M": "riscv64"})
    assert r.rc == 2 and "unsupported architecture riscv64" in r.err
    assert r.calls == []

#!/usr/bin/env python3
"""Stand-in for `minikube`, `docker`, `kubectl` and `brew` in the setup.sh
flow test (`uname` is a shell script of the test's, answering from the same
FAKE_UNAME_* knobs).

Installed under each of those names (symlinks); which one it is comes from
argv[0]. Every call is appended to $FAKE_STATE/calls.jsonl (tool,
args, the DOCKER_HOST it saw, stdin when read) and the fake keeps just enough
state in $FAKE_STATE to answer like a fresh machine the first time and like a
running cluster afterwards. It never touches the network.

Knobs (environment): FAKE_UNAME_S, FAKE_UNAME_M, FAKE_UNAME_R (uname -s, -m,
-r: the host played; Linux x86_64 by default), FAKE_BREW_PREFIX (brew
--prefix), FAKE_NODE_ARCH (the node's architecture, as minikube's Docker
reports it: amd64 by default), FAKE_NODE_IP (minikube ip), FAKE_DOCKER_DOWN=1 (docker
info fails), FAKE_METALLB_CRDS=1 (the metallb.io CRDs exist),
FAKE_NOT_READY_POLLS=N (deployments report not ready N times), FAKE_NEVER_READY=1,
FAKE_CNI=name (a running cluster's CNI, for one started before this test:
its DaemonSet in kube-system; a cluster the fake starts has the --cni it
was given), FAKE_RUNNING_DRIVER="driver network" (the profile of a cluster
started before this test; one the fake starts has its --driver and --network),
FAKE_EXEC_FAILS=deployment (`kubectl exec` into it fails).
`kubectl exec` without -i prints "<deployment> data of the fake pod".
"""

import json
import os
import pathlib
import shutil
import sys

STATE = pathlib.Path(os.environ["FAKE_STATE"])


def applied_services():
    """(name, type, ports) of every Service of the last `kubectl apply -k`,
    rendered by the real kubectl: the manifests own them."""
    import subprocess

    import yaml

    applied = sorted(STATE.glob("applied-k-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    out = subprocess.run([os.environ["FAKE_REAL_KUBECTL"], "kustomize", str(applied[-1])],
                         check=True, capture_output=True, text=True).stdout
    return [(o["metadata"]["name"], o["spec"]["type"], " ".join(str(p["port"]) for p in o["spec"]["ports"]))
            for o in yaml.safe_load_all(out) if o and o["kind"] == "Service"]


def record(tool, args, stdin=None):
    STATE.mkdir(parents=True, exist_ok=True)
    entry = {"tool": tool, "args": args, "docker_host": os.environ.get("DOCKER_HOST"), "cwd": os.getcwd()}
    if stdin is not None:
        entry["stdin"] = stdin
    with open(STATE / "calls.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def counter(name):
    path = STATE / name
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    return n


def node_ip():
    return os.environ.get("FAKE_NODE_IP", "192.168.58.2")


def minikube(args):
    record("minikube", args)
    running = (STATE / "running").exists()
    if args[:1] == ["status"]:
        print("Running Running" if running else "Nonexistent Nonexistent")
        return 0 if running else 85
    if args[:1] == ["start"]:
        (STATE / "running").write_text(" ".join(args))
        return 0
    if args[:2] == ["addons", "enable"]:
        return 0 if running else 1
    if args == ["ip"]:
        print(node_ip())
        return 0
    if args[:1] == ["docker-env"]:
        print(f'export DOCKER_HOST="tcp://{node_ip()}:2376"')
        print('export DOCKER_TLS_VERIFY="1"')
        return 0
    if args[:2] == ["profile", "list"]:
        # minikube's JSON: the cluster's config holds its driver and network
        started = (STATE / "running").read_text().split() if running else []
        flag = lambda name: next((a.split("=", 1)[1] for a in started if a.startswith(f"--{name}=")), "")  # noqa: E731
        driver, network = flag("driver"), flag("network")
        if os.environ.get("FAKE_RUNNING_DRIVER"):
            driver, _, network = os.environ["FAKE_RUNNING_DRIVER"].partition(" ")
        profile = {"Name": "minikube", "Status": "OK" if running else "Stopped", "Active": True,
                   "Config": {"Name": "minikube", "Driver": driver, "Network": network, "Memory": 4000}}
        print(json.dumps({"invalid": [], "valid": [profile] if started or driver else []}))
        return 0
    if args == ["dashboard", "--url"]:
        print("http://127.0.0.1:38123/api/v1/namespaces/kubernetes-dashboard/services/http:kubernetes-dashboard:/proxy/")
        return 0
    print(f"fake minikube: unexpected {args}", file=sys.stderr)
    return 99


def docker(args):
    record("docker", args)
    images = STATE / "images"
    images.mkdir(parents=True, exist_ok=True)
    if args == ["info"]:
        if os.environ.get("FAKE_DOCKER_DOWN"):
            print("Cannot connect to the Docker daemon", file=sys.stderr)
            return 1
        return 0
    if args == ["version", "--format", "{{.Server.Arch}}"]:
        print(os.environ.get("FAKE_NODE_ARCH", "amd64"))
        return 0
    if args[:2] == ["image", "inspect"]:
        image = args[-1]
        path = images / image.replace("/", "_")
        if not path.exists():
            print(f"Error: No such image: {image}", file=sys.stderr)
            return 1
        print(path.read_text())
        return 0
    if args[:1] == ["build"]:
        label = args[args.index("--label") + 1].split("=", 1)[1]
        tag = args[args.index("-t") + 1]
        dockerfile = args[args.index("-f") + 1]
        if not os.path.isfile(dockerfile) or args[-1] != ".":
            print(f"fake docker: no {dockerfile} in {os.getcwd()}", file=sys.stderr)
            return 1
        (images / tag.replace("/", "_")).write_text(label)
        return 0
    print(f"fake docker: unexpected {args}", file=sys.stderr)
    return 99


def kubectl(args):
    stdin = None
    if args[-2:] == ["-f", "-"] or ("exec" in args and "-i" in args):
        stdin = sys.stdin.read()
    record("kubectl", args, stdin)
    if not (STATE / "running").exists():
        print("The connection to the server was refused", file=sys.stderr)
        return 1
    words = [a for a in args if not a.startswith("-")]
    if args[:1] == ["apply"] and "-k" in args:
        n = counter("applied-k")
        shutil.copytree(args[args.index("-k") + 1], STATE / f"applied-k-{n}")
        (STATE / "stack").write_text("applied")
        return 0
    if args[:1] == ["apply"]:
        return 0
    if words[:2] == ["get", "crd"]:
        return 0 if os.environ.get("FAKE_METALLB_CRDS") else 1
    if "get" in words and "daemonsets" in words:
        started = (STATE / "running").read_text()
        cni = os.environ.get("FAKE_CNI") or next(
            (a.split("=", 1)[1] for a in started.split() if a.startswith("--cni=")), "kindnet")
        names = {"calico": "calico-node", "cilium": "cilium"}.get(cni, cni)
        print(f"kube-proxy {names}")
        return 0
    if "rollout" in words:
        return 0
    if "exec" in words:
        target = next(a for a in args if a.startswith("deploy/")).split("/", 1)[1]
        if target == os.environ.get("FAKE_EXEC_FAILS") or not (STATE / "stack").exists():
            print(f'error: unable to upgrade connection: container not found ("{target}")', file=sys.stderr)
            return 1
        if "-i" not in args:
            sys.stdout.write(f"{target} data of the fake pod\n")
        return 0
    if "create" in words and "secret" in words:
        name = words[words.index("generic") + 1]
        source = pathlib.Path([a for a in args if a.startswith("--from-file=")][0].split("=", 1)[1])
        keys = sorted(p.name for p in source.iterdir())
        print(f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: ft-services\n"
              f"# keys: {' '.join(keys)}")
        return 0
    deployed = (STATE / "stack").exists()
    if "get" in words and "deployments" in words:
        if not deployed:
            return 0
        jsonpath = [a for a in args if a.startswith("jsonpath=") or a.startswith("-ojsonpath=")] or args[-1:]
        ready = 1
        if os.environ.get("FAKE_NEVER_READY"):
            ready = 0
        elif counter("deployment-polls") < int(os.environ.get("FAKE_NOT_READY_POLLS", "0")):
            ready = 0
        for svc, _, _ in applied_services():
            if "observedGeneration" in jsonpath[0]:
                print(f"{svc} 2 2 1 1 {ready or ''} {ready or ''}".rstrip())
            else:
                print(f"{svc} 1 {ready or ''}".rstrip())
        return 0
    if "get" in words and "services" in words:
        if not deployed:
            return 0
        lb_ip = node_ip().rsplit(".", 1)[0] + ".240"
        for n, (svc, kind, ports) in enumerate(applied_services()):
            external = lb_ip if kind == "LoadBalancer" else ""
            print(f"{svc}|{kind}|{external}|10.96.0.{10 + n}|{ports}")
        return 0
    if "get" in words and "pods" in words:
        print("NAME READY STATUS")
        return 0
    if "delete" in words:
        if "namespace" in words or "deployment,service,networkpolicy,configmap" in words:
            (STATE / "stack").unlink(missing_ok=True)
        return 0
    print(f"fake kubectl: unexpected {args}", file=sys.stderr)
    return 99


def brew(args):
    record("brew", args)
    if args == ["--prefix"]:
        print(os.environ["FAKE_BREW_PREFIX"])
        return 0
    print(f"fake brew: unexpected {args}", file=sys.stderr)
    return 99


def main():
    tool = os.path.basename(sys.argv[0])
    return {"minikube": minikube, "docker": docker, "kubectl": kubectl, "brew": brew}[tool](sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""`kubectl` for `./setup.sh backup` and `restore` in the stack test.

The stack test's pods stand in for the cluster's; this answers the calls
those two commands make, as the API server and the kubelet would, and
refuses any other:

- `get deployments -o jsonpath=...`: each pod of $STACK_KUBECTL_PODS as a
  Deployment of one replica, ready when its readiness probe says so;
- `rollout restart deployment/<name>`: the pod's container is stopped
  (SIGTERM to its PID 1) and the kubelet starts it again; until the new
  container is ready, `get deployments` reports the Deployment not rolled
  out, as the API server would for its new pod;
- `exec [-i] deploy/<name> -c <name> -- <command...>`: the pod's command in
  its root (enter.py), PID, UTS and network namespaces as root, with the
  container's PATH, stdin passed through with -i (else empty), its exit
  status returned.

$STACK_KUBECTL_PODS is a JSON file written by the stack test: the host pid
of each pod's PID 1, and the prober's files that say whether the pod's
current container is ready: {"pids": {"<service>": pid, ...}, "probes":
path, "starts": path}.
"""

import json
import os
import signal
import sys
import time



def refuse(args: list[str]) -> int:
    print(f"stack kubectl: not something setup.sh's backup or restore does: {args}", file=sys.stderr)
    return 99


def main(args: list[str]) -> int:
    cluster = json.load(open(os.environ["STACK_KUBECTL_PODS"]))
    pods = cluster["pids"]
    restarts_file = os.environ["STACK_KUBECTL_PODS"] + ".restarts"
    restarted = json.load(open(restarts_file)) if os.path.exists(restarts_file) else {}
    if args[:2] != ["-n", "ft-services"]:
        return refuse(args)
    verb = args[2:]
    if verb[:2] == ["rollout", "restart"] and len(verb) == 3 and verb[2].startswith("deployment/"):
        name = verb[2].split("/", 1)[1]
        if name not in pods:
            print(f'Error from server (NotFound): deployments.apps "{name}" not found', file=sys.stderr)
            return 1
        restarted[name] = time.time()
        with open(restarts_file, "w") as f:
            json.dump(restarted, f)
        os.kill(pods[name], signal.SIGTERM)
        print(f"deployment.apps/{name} restarted")
        return 0
    if verb[:2] == ["get", "deployments"]:
        jsonpath = verb[-1]
        probes = json.load(open(cluster["probes"]))
        starts = json.load(open(cluster["starts"]))
        for name in pods:
            state = probes.get(name, {})
            ready = "1" if state.get("ready") and state.get("start") == starts.get(name) else ""
            if starts.get(name, 0) <= restarted.get(name, 0):
                ready = ""  # its new pod has not started yet
            if "observedGeneration" in jsonpath:  # name generation observed replicas updated ready available
                print(f"{name} 1 1 1 1 {ready} {ready}")
            else:  # name replicas ready
                print(f"{name} 1 {ready}")
        return 0
    if verb[:1] == ["exec"] and "--" in verb:
        options, command = verb[1:verb.index("--")], verb[verb.index("--") + 1:]
        stdin = "-i" in options
        target = [o for o in options if o.startswith("deploy/")]
        if not target or not command:
            return refuse(args)
        name = target[0].split("/", 1)[1]
        if name not in pods:
            print(f'Error from server (NotFound): deployments.apps "{name}" not found', file=sys.stderr)
            return 1
        if not stdin:
            fd = os.open(os.devnull, os.O_RDONLY)
            os.dup2(fd, 0)
        env = {"PATH": os.environ["PATH"], "HOME": "/root", "LANG": "C.UTF-8"}
        pid = str(pods[name])
        enter = [sys.executable, os.path.join(os.path.dirname(os.path.realpath(__file__)), "enter.py"),
                 "exec", pid, "--", *command]
        os.execvpe("nsenter", ["nsenter", "-t", pid, "-p", "-u", "-n", "--", *enter], env)
    return refuse(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

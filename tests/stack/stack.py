#!/usr/bin/env python3
"""The stack test: every image's processes, each pod on its image's own root
filesystem, one network namespace per pod.

Run by tests/stack/run.sh (which builds the binaries, the secrets and the
images' root filesystems first) as
    stack.py run        set up, start every pod, run the phases, clean up
    stack.py mutations  each pod alone from its image without a package it
                        needs (MUTATIONS): each must fail
    stack.py cleanup    remove whatever a killed run left behind

The platform: cluster.py (pods, addresses, rendered manifests), network.py
(namespaces, load balancer, NetworkPolicies), rootfs.py (each image's root
filesystem), kubelet.py (container starts, restarts, probes), sandbox.py
(volumes, Secret volumes, cgroups). The scenarios: checks.py (what a user
does, from ft-client) and scenarios.py (what needs the kubelet), both
registered in phases.py, which also holds their order.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import phases
import scenarios  # noqa: F401  (registers the host phases)
from cluster import LB_IP, PODS, WORK, cluster
from kubelet import Kubelet, report_memory
from network import cleanup, setup_network
from report import FAILURES, log

def run(services: list[str], order: list[str]) -> int:
    started = time.monotonic()
    phases.SERVICES_RUNNING[:] = services
    cleanup()
    for stale in ("pods", "volumes"):
        shutil.rmtree(WORK / stale, ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    log(f"manifests: kubectl kustomize k8s (LB_IP={LB_IP}), {len(cluster().objects)} objects")
    setup_network()
    kubelet = Kubelet(services)
    failed: list[str] = []
    try:
        groups = [[s for s in ("mysql", "influxdb") if s in services],
                  [s for s in services if s not in ("mysql", "influxdb")]]
        log("starting pods: " + ", ".join(services))
        kubelet.start([g for g in groups if g])
        log(f"all pods ready after {time.monotonic() - started:.0f} s")
        report_memory(kubelet, "ready")
        for spec in order:
            log(f"checks: {spec}")
            if not phases.run(spec, kubelet):
                failed.append(spec)
        report_memory(kubelet, "after the checks")
    except Exception as e:  # reported, then cleaned up like a failure
        log(f"error: {e}")
        failed.append("setup")
    finally:
        if failed:
            for pod in kubelet.pods.values():
                print(f"\n===== last lines of pod {pod.spec.service} (starts: {pod.starts}, exits: {pod.exits})")
                try:
                    print("\n".join(pod.log_path.read_text().splitlines()[-40:]))
                except OSError:
                    pass
        kubelet.stop()
        cleanup()
    if FAILURES:
        print("\n===== the failures of this run, as logged above")
        print("\n".join(f[:3000] for f in FAILURES))
    log(f"stack test took {time.monotonic() - started:.0f} s; failed: {failed or 'none'}")
    return 1 if failed else 0


# The mutation test: for one package each pod needs, the image as if that
# package (or release archive) were deleted from its Dockerfile must fail,
# in its build or in its pod, which must then exit before it is ready.
MUTATIONS = {
    "nginx": "openssh-server",
    "wordpress": "php84-fpm",
    "phpmyadmin": "php83-fpm",
    "mysql": "mariadb",
    "influxdb": "influxdb",
    "ftps": "libcap-setcap",
    "grafana": "grafana",
}


def mutations(services: list[str]) -> int:
    """Each pod of MUTATIONS alone, from its image without that package."""
    started = time.monotonic()
    cleanup()
    shutil.rmtree(WORK / "pods", ignore_errors=True)
    setup_network()
    failed = []
    try:
        for service in services:
            package = MUTATIONS[service]
            what = f"{service} without {package}"
            build = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable,
                                    str(Path(__file__).with_name("rootfs.py")), "build", "--without", package,
                                    service], capture_output=True, text=True)
            if build.returncode != 0:
                reason = (build.stderr.strip().splitlines() or ["?"])[-1]
                log(f"PASS mutation {what}: the image does not build ({reason})")
                continue
            kubelet = Kubelet([service])
            pod = kubelet.pods[service]
            try:
                kubelet.start([[service]], ready_within=None)
                deadline = time.monotonic() + 90
                while not pod.exits and not kubelet.ready(service) and time.monotonic() < deadline:
                    time.sleep(0.2)
                if pod.exits and pod.exits[0] != 0 and not kubelet.ready(service):
                    lines = pod.log_path.read_text().splitlines()
                    cause = next((ln for ln in lines if "failed" in ln or "cannot" in ln or "error" in ln.lower()),
                                 lines[-1] if lines else "")
                    log(f"PASS mutation {what}: the pod exits {pod.exits[0]} before it is ready: {cause.strip()[:200]}")
                else:
                    state = "ready" if kubelet.ready(service) else f"neither ready nor exited (exits {pod.exits})"
                    log(f"FAIL mutation {what}: the pod is {state}: the stack test would not notice")
                    failed.append(what)
            finally:
                kubelet.stop()
            cleanup_pod_dirs = WORK / "pods" / service
            shutil.rmtree(cleanup_pod_dirs, ignore_errors=True)
    finally:
        cleanup()
    log(f"mutations took {time.monotonic() - started:.0f} s; failed: {failed or 'none'}")
    return 1 if failed else 0


def main() -> int:
    if os.geteuid() != 0:
        print("the stack test needs root (network namespaces, mounts)", file=sys.stderr)
        return 2
    # Stopped from outside: unwind, so that run()'s cleanup happens.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cmd = sys.argv[1] if len(sys.argv) > 1 else "run"
    if cmd == "cleanup":
        cleanup()
        return 0
    if cmd == "mutations":
        return mutations(os.environ.get("STACK_PODS", " ".join(MUTATIONS)).split())
    services = os.environ.get("STACK_PODS", " ".join(PODS)).split()
    order = os.environ.get("STACK_PHASES", " ".join(phases.ALL_PHASES)).split()
    return run(services, order)


if __name__ == "__main__":
    sys.exit(main())

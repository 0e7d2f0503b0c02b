"""The one registry of the stack test's phases, and the order they run in.

A phase is a named group of checks, registered with @phase:
- in checks.py, the checks a user makes from ft-client (HTTP, lftp, ssh,
  a browser ...): functions without arguments, run by `checks.py PHASE` in
  the client namespace;
- in scenarios.py, what needs the kubelet (kill a program, hang a pod,
  cut the network, back up and restore): functions of (kubelet, *args),
  `@phase(name, host=True)`, run by stack.py; `name:arg:arg` passes args.

Each check logs PASS or FAIL with what it saw and returns whether it passed
(client checks raise instead).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable

from cluster import LB_IP, NS_PREFIX, PODS, ROOT, SECRETS_DIR, WORK
from report import FAILURES, log


@dataclass
class Phase:
    name: str
    host: bool
    checks: list[Callable] = field(default_factory=list)


REGISTRY: dict[str, Phase] = {}


def phase(name: str, *, host: bool = False):
    """Registers the decorated check under phase `name`."""
    def register(fn):
        entry = REGISTRY.setdefault(name, Phase(name, host))
        if entry.host != host:
            raise ValueError(f"phase {name}: host and client checks mixed")
        entry.checks.append(fn)
        return fn
    return register


SERVICES_RUNNING: list[str] = []


def client(*args: str, timeout: float = 300) -> bool:
    """Run checks.py in the client namespace; True when every check passed."""
    # A user's plain environment: no proxies, no CA bundles but the system's.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "LB_IP": LB_IP,
        "SECRETS_DIR": str(SECRETS_DIR),
        "STACK_WORK": str(WORK),
        "STACK_SERVICES": " ".join(SERVICES_RUNNING),
        "POD_IPS": json.dumps({s: p.ip for s, p in PODS.items()}),
    }
    with subprocess.Popen(
        ["ip", "netns", "exec", f"{NS_PREFIX}client", sys.executable,
         str(ROOT / "tests/stack/checks.py"), *args],
        env=env, stdout=subprocess.PIPE, text=True,
    ) as checks:
        assert checks.stdout is not None
        deadline = threading.Timer(timeout, checks.kill)  # a hung check ends the phase
        deadline.start()
        for line in checks.stdout:
            print(line, end="", flush=True)
            if line.startswith("FAIL"):
                FAILURES.append(line.rstrip("\n"))
        deadline.cancel()
        rc = checks.wait()
    if rc == -signal.SIGKILL:
        log(f"FAIL checks {' '.join(args)}: still running after {timeout:.0f} s, killed")
    return rc == 0


def run(spec: str, kubelet) -> bool:
    """Runs phase `spec` (`name` or `name:arg:...`): a host phase here, any
    other in ft-client."""
    name, *args = spec.split(":")
    entry = REGISTRY.get(name)
    if entry is None or not entry.host:
        return client(spec)
    return all([check(kubelet, *args) for check in entry.checks])


# The checks to make again after a pod restarted.
RECHECK = {
    "nginx": ["web", "ssh"],
    "wordpress": ["wordpress"],
    "phpmyadmin": ["phpmyadmin"],
    "mysql": ["persist-mysql", "phpmyadmin"],
    "influxdb": ["persist-influxdb"],
    "ftps": ["ftps", "persist-ftps"],
    "grafana": ["grafana"],
}


# The checks in order: the user-facing ones, then kill -9 of every program of
# every pod (each followed by that pod's checks and, for the volumes, the data
# written before), a hung pod caught by its liveness probe, and every check
# again.
USER_CHECKS = ["web", "ssh", "wordpress", "phpmyadmin", "ftps", "metrics", "grafana"]


ALL_PHASES: list[str] = [*USER_CHECKS, "images", "browser-front", "browser-wordpress", "browser-phpmyadmin",
                         "ssh-metrics", "network-policy", "secret-access", "ftps-lb", "tls-scan",
                         "influx-outage", "persist-write", "persist-grafana", "wordpress-content", "kill-all",
                         "hang:phpmyadmin", "backup-restore", *USER_CHECKS, "browser-verify"]

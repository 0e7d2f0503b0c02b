#!/usr/bin/env python3
"""The probes of the stack test's kubelet, run inside ft-client.

    probe.py STATE_FILE STARTS_FILE '{"service": {"ip": ..., "liveness": {...}, "readiness": {...}}}'

Each pod's liveness and readiness probes run as the kubelet runs them, with
the timing of the rendered manifest (manifests.Probe): the first one
`initial_delay` seconds after the container's start (read from STARTS_FILE,
{"service": epoch}, written by stack.py), then every `period` seconds, each
an HTTP GET to the pod's address that fails after `timeout` seconds or on a
status outside 200-399. Readiness is its latest result; liveness counts
consecutive failures since the start (stack.py kills the container at the
manifest's failureThreshold).

Besides, every second, the test's own look at supervise's report
(GET /healthz: its programs and restarts), which is no probe.

STATE_FILE, replaced atomically every 0.2 s:
    {"service": {"start": epoch, "ready": bool, "ready_at": epoch,
                 "live_failures": n, "live_at": epoch,
                 "observed": {"at": epoch, "healthy": bool, "restarts": n, "programs": [...]}}}
Runs until terminated.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def get(url: str, timeout: float) -> tuple[bool, dict]:
    """(status 2xx/3xx, the JSON body) of GET url."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 400, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            return False, json.loads(e.read() or b"{}")
        except ValueError:
            return False, {}
    except (urllib.error.URLError, OSError, ValueError):
        return False, {}


class Target:
    def __init__(self, name: str, spec: dict):
        self.name = name
        self.ip = spec["ip"]
        self.liveness = spec["liveness"]
        self.readiness = spec["readiness"]
        self.start = 0.0
        self.state: dict = {}
        self.next_live = self.next_ready = self.next_look = float("inf")

    def restart(self, start: float) -> None:
        self.start = start
        self.state = {"start": start, "ready": False, "ready_at": 0.0, "live_failures": 0,
                      "live_at": 0.0, "observed": {}}
        self.next_live = start + self.liveness["initial_delay"]
        self.next_ready = start + self.readiness["initial_delay"]
        self.next_look = start

    def url(self, probe: dict) -> str:
        return f"http://{self.ip}:{probe['port']}{probe['path']}"

    def tick(self, now: float, pool: ThreadPoolExecutor) -> None:
        """Starts every probe that is due (each in its own thread, like the kubelet's workers)."""
        if now >= self.next_live:
            self.next_live = now + self.liveness["period"]
            pool.submit(self.run_liveness, self.start)
        if now >= self.next_ready:
            self.next_ready = now + self.readiness["period"]
            pool.submit(self.run_readiness, self.start)
        if now >= self.next_look:
            self.next_look = now + 1
            pool.submit(self.look, self.start)

    def run_liveness(self, start: float) -> None:
        ok, _ = get(self.url(self.liveness), self.liveness["timeout"])
        if start == self.start:  # not a probe of an earlier container
            self.state["live_failures"] = 0 if ok else self.state["live_failures"] + 1
            self.state["live_at"] = time.time()

    def run_readiness(self, start: float) -> None:
        ok, _ = get(self.url(self.readiness), self.readiness["timeout"])
        if start == self.start:
            self.state["ready"] = ok
            self.state["ready_at"] = time.time()

    def look(self, start: float) -> None:
        at = time.time()
        healthy, report = get(f"http://{self.ip}:{self.liveness['port']}/healthz", 1)
        if start == self.start:
            self.state["observed"] = {"at": at, "healthy": healthy, "restarts": report.get("restarts"),
                                      "programs": report.get("programs", [])}


def main() -> None:
    state_file, starts_file = sys.argv[1], sys.argv[2]
    targets = {name: Target(name, spec) for name, spec in json.loads(sys.argv[3]).items()}
    with ThreadPoolExecutor(max_workers=4 * len(targets)) as pool:
        while True:
            try:
                with open(starts_file) as f:
                    starts = json.load(f)
            except (OSError, ValueError):
                starts = {}
            now = time.time()
            for name, t in targets.items():
                if name in starts and starts[name] != t.start:
                    t.restart(starts[name])
                t.tick(now, pool)
            state = {name: dict(t.state) for name, t in targets.items() if t.state}
            tmp = f"{state_file}.tmp"
            with open(tmp, "w") as out:
                json.dump(state, out)
            os.replace(tmp, state_file)
            time.sleep(0.2)


if __name__ == "__main__":
    main()

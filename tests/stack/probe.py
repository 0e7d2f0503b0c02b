#!/usr/bin/env python3
"""The probes of the stack test's kubelet, run inside ft-client.

    probe.py STATE_FILE '{"service": "ip", ...}'

Every second, GET http://<pod ip>:9901/healthz and /readyz of every pod (as a
node's kubelet does over the pod network), and write the results to
STATE_FILE as {"service": {"healthz": bool, "readyz": bool, "at": epoch,
"programs": [supervise's view of each program]}}, replaced atomically. Runs until terminated.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request


def probe(url: str) -> tuple[bool, dict]:
    """(status 2xx/3xx, the JSON body) of GET url."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return 200 <= resp.status < 400, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            return False, json.loads(e.read() or b"{}")
        except ValueError:
            return False, {}
    except (urllib.error.URLError, OSError, ValueError):
        return False, {}


def main() -> None:
    state_file = sys.argv[1]
    targets = json.loads(sys.argv[2])
    while True:
        state = {}
        for service, ip in targets.items():
            at = time.time()
            healthz, report = probe(f"http://{ip}:9901/healthz")
            readyz, _ = probe(f"http://{ip}:9901/readyz")
            state[service] = {
                "healthz": healthz,
                "readyz": readyz,
                "at": at,
                "restarts": report.get("restarts"),
                "programs": report.get("programs", []),
            }
        tmp = f"{state_file}.tmp"
        with open(tmp, "w") as out:
            json.dump(state, out)
        os.replace(tmp, state_file)
        time.sleep(1)


if __name__ == "__main__":
    main()

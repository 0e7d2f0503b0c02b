#!/usr/bin/env python3
"""The probes of the stack test's kubelet, run inside ft-client.

    probe.py STATE_FILE '{"service": "ip", ...}'

Every second, GET http://<pod ip>:9901/healthz and /readyz of every pod (as a
node's kubelet does over the pod network), and write the results to
STATE_FILE as {"service": {"healthz": bool, "readyz": bool, "at": epoch}},
replaced atomically. Runs until terminated.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request


def ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return 200 <= resp.status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main() -> None:
    state_file = sys.argv[1]
    targets = json.loads(sys.argv[2])
    while True:
        state = {}
        for service, ip in targets.items():
            at = time.time()
            state[service] = {
                "healthz": ok(f"http://{ip}:9901/healthz"),
                "readyz": ok(f"http://{ip}:9901/readyz"),
                "at": at,
            }
        tmp = f"{state_file}.tmp"
        with open(tmp, "w") as out:
            json.dump(state, out)
        os.replace(tmp, state_file)
        time.sleep(1)


if __name__ == "__main__":
    main()

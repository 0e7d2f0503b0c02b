#!/usr/bin/env python3
"""The driver and network of the running minikube cluster.

    minikube profile list --output json | python3 setup/minikube_profile.py

Prints "DRIVER NETWORK" of the active profile (else the one named
"minikube"), as minikube's profile records them; prints nothing when
minikube's answer is not the JSON it documents, or names no such profile.
"""

import json
import sys


def main() -> int:
    try:
        profiles = json.load(sys.stdin).get("valid") or []
    except (ValueError, AttributeError):
        return 0
    chosen = [p for p in profiles if p.get("Active")] or [p for p in profiles if p.get("Name") == "minikube"]
    if chosen:
        config = chosen[0].get("Config") or {}
        print(config.get("Driver", ""), config.get("Network", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

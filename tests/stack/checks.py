#!/usr/bin/env python3
"""The stack test's checks, made from ft-client as a user would.

    checks.py PHASE...

Each phase is a group of checks (see PHASES); each prints PASS or FAIL with
what it saw. Exit status 0 when every check passed.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

LB = os.environ["LB_IP"]
SECRETS = os.environ["SECRETS_DIR"]
WORK = os.environ["STACK_WORK"]

PHASES: dict[str, list] = {}


def phase(name: str):
    def register(fn):
        PHASES.setdefault(name, []).append(fn)
        return fn
    return register


def main() -> int:
    failed = 0
    for name in sys.argv[1:]:
        for check in PHASES[name]:
            started = time.monotonic()
            try:
                detail = check()
                print(f"PASS  {check.__name__} ({time.monotonic() - started:.1f} s) {detail or ''}", flush=True)
            except Exception as e:  # a failed check is reported, the others still run
                failed += 1
                print(f"FAIL  {check.__name__}: {e}", flush=True)
                traceback.print_exc()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

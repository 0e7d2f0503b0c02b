"""What a run of the stack test says: timestamped lines, and every failure
again at the end (a CI summary may keep only the last lines)."""

from __future__ import annotations

import time

# Each failure's message, printed again at the end so that the last lines of
# a run (all a CI summary may keep) say what failed and why.
FAILURES: list[str] = []


def log(msg: str) -> None:
    line = f"[stack {time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    if msg.startswith(("FAIL", "error:")):
        FAILURES.append(line)

#!/usr/bin/env python3
"""Which TCP ports answer, from the network namespace this runs in.

    reach.py '[["10.77.0.11", 3306], ...]'

Tries every connection at once and prints a JSON object {"ip:port": state}
with state "open" (connected), "closed" (refused: the packet got there and
nothing listens) or "filtered" (no answer within the timeout: dropped on
the way, as a NetworkPolicy does).
"""

import errno
import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

TIMEOUT = 1.5


def state(target: list) -> str:
    ip, port = target
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    try:
        s.connect((ip, port))
        return "open"
    except ConnectionRefusedError:
        return "closed"
    except (socket.timeout, TimeoutError):
        return "filtered"
    except OSError as e:
        return "filtered" if e.errno in (errno.ETIMEDOUT, errno.EHOSTUNREACH) else f"error {e.errno}"
    finally:
        s.close()


def main() -> None:
    targets = json.loads(sys.argv[1])
    with ThreadPoolExecutor(max_workers=len(targets) or 1) as pool:
        states = list(pool.map(state, targets))
    print(json.dumps({f"{ip}:{port}": s for (ip, port), s in zip(targets, states)}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""ftpsd's users-file hash of the password read on stdin.

    python3 setup/ftps_hash.py ITERATIONS < password-file

Prints `$pbkdf2-sha256$i=N$<salt>$<key>`, standard base64 without padding,
the format crates/ftpsd/src/users.rs reads. The password comes through
stdin: a secret on a command line is visible to every user in `ps`.
"""

import base64
import hashlib
import os
import sys


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def main() -> int:
    iterations = int(sys.argv[1])
    password = sys.stdin.buffer.read()
    salt = os.urandom(16)
    key = hashlib.pbkdf2_hmac("sha256", password, salt, iterations, 32)
    sys.stdout.write(f"$pbkdf2-sha256$i={iterations}${b64(salt)}${b64(key)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reading the images' Dockerfiles, for the tests that cannot build them:
the policy test of what a build fetches (tests/policy/test_images.py) and
the stack test's image builder (tests/stack/rootfs.py)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(keyword, arguments) of each instruction, continuation lines joined."""
    out, current = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, args = current.partition(" ")
        out.append((keyword.upper(), args.strip()))
        current = ""
    return out


def final_stage(path: Path) -> list[tuple[str, str]]:
    """The instructions of the last stage (the image itself), after its FROM."""
    every = instructions(path)
    last = max(i for i, (keyword, _) in enumerate(every) if keyword == "FROM")
    return every[last + 1:]


def commands(run: str) -> list[str]:
    """The simple commands of a RUN line, split at && || ; and |."""
    return [c.strip() for c in re.split(r"&&|\|\||;|\|", run) if c.strip()]


def dockerfile(service: str) -> Path:
    return DOCKER / service / "Dockerfile"

"""Policy test of docker/: what a build would fetch, and the copies images share.

No image can be built here, so this checks what a build depends on:
- every `apk add` names a package of docker/apk-packages.txt, the list of
  packages checked against the Alpine release's own index;
- every image starts FROM that release (or the local builder stage);
- every file fetched at build time (wget/curl) is pinned: its URL is built
  from ARGs with literal defaults, and the same RUN checks a sha1/sha256
  sum, also an ARG, before anything is unpacked;
- each Dockerfile copies its own rootfs/ and supervise.toml, so the image
  and the stack test read the same files;
- a file several images carry (SHARED) is the same in each.
"""

import pathlib
import re
import shlex

import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from dockerfiles import DOCKER, commands, instructions  # noqa: E402
ALPINE = "alpine:3.22"
DOCKERFILES = sorted(DOCKER.glob("*/Dockerfile"))


def package_rows():
    """docker/apk-packages.txt: name -> (repository, stand-in, note)."""
    rows = {}
    for line in (DOCKER / "apk-packages.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        body, _, note = line.partition("  #")
        words = body.split()
        rows[words[0]] = (words[1], words[3], note.strip())
    return rows


def listed_packages():
    """The Alpine packages an image may apk add (archives are not packages)."""
    return {name for name, (repo, _, _) in package_rows().items() if repo != "archive"}


def test_every_package_has_a_stand_in_or_says_why_not():
    for name, (repo, standin, note) in package_rows().items():
        assert repo in ("main", "community", "archive"), f"{name}: repository {repo}"
        assert standin != "-" or note, f"{name}: no stand-in and no reason after '#'"


def test_there_are_dockerfiles():
    assert len(DOCKERFILES) == 8, DOCKERFILES


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_apk_installs_only_listed_packages(path):
    allowed = listed_packages()
    for keyword, args in instructions(path):
        if keyword != "RUN":
            continue
        for cmd in commands(args):
            if cmd.startswith("apk add"):
                words = shlex.split(cmd)
                names = [w for w in words[2:] if not w.startswith("-")]
                unknown = [n for n in names if n not in allowed]
                assert not unknown, f"{path}: not in docker/apk-packages.txt: {unknown}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_images_start_from_the_checked_release(path):
    froms = [args.split()[0] for keyword, args in instructions(path) if keyword == "FROM"]
    assert froms[-1] == ALPINE, f"{path}: final stage FROM {froms[-1]}"
    assert all(f in (ALPINE, "ft-build:latest") for f in froms), froms


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_download_is_pinned_and_checksum_verified(path):
    args = {}
    for keyword, rest in instructions(path):
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
            continue
        if keyword != "RUN":
            continue
        cmds = commands(rest)
        fetches = [i for i, c in enumerate(cmds) if re.match(r"(wget|curl)\b", c)]
        for i in fetches:
            url = re.search(r'"?(https://[^" ]+)"?', cmds[i])
            assert url, f"{path}: download without an https URL: {cmds[i]}"
            for var in re.findall(r"\$\{(\w+)\}", url.group(1)):
                assert args.get(var), f"{path}: {var} in {url.group(1)} is not an ARG with a default"
            checks = [c for c in cmds[i + 1:] if re.match(r"sha(1|256|512)sum -c", c)]
            assert checks, f"{path}: {url.group(1)} is not checked by a sha*sum -c in the same RUN"
            digest_vars = [v for c in cmds[i + 1:i + 3] for v in re.findall(r"\$\{(\w+)\}", c)]
            digests = [args.get(v, "") for v in digest_vars]
            assert any(re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{128}", d) for d in digests), (
                f"{path}: the checksum of {url.group(1)} is not a pinned ARG")
            unpack = [j for j, c in enumerate(cmds) if c.startswith("tar ")]
            check_at = min(j for j, c in enumerate(cmds) if c in checks)
            assert all(j > check_at for j in unpack), f"{path}: unpacked before the checksum is checked"


@pytest.mark.parametrize("path", [p for p in DOCKERFILES if p.parent.name != "build"], ids=lambda p: p.parent.name)
def test_each_image_copies_its_own_rootfs_and_supervise_config(path):
    name = path.parent.name
    copies = [args for keyword, args in instructions(path) if keyword == "COPY"]
    assert f"docker/{name}/rootfs/ /" in copies, copies
    assert f"docker/{name}/supervise.toml /etc/supervise.toml" in copies, copies
    entry = [args for keyword, args in instructions(path) if keyword == "ENTRYPOINT"]
    assert entry == ['["/usr/local/bin/supervise"]'], entry


# Files several images carry: each image builds from its own folder, so each
# has its own copy; the first image named holds the one to edit.
SHARED = {
    "etc/nginx/ft_tls.conf": ["nginx", "wordpress", "phpmyadmin"],
    "etc/nginx/ft_fastcgi_params": ["wordpress", "phpmyadmin"],
    "usr/local/lib/ft-data/volume.sh": ["ftps", "wordpress", "grafana"],
}


@pytest.mark.parametrize("path", sorted(SHARED))
def test_shared_files_are_the_same_in_every_image(path):
    owner, *copies = SHARED[path]
    original = (DOCKER / owner / "rootfs" / path).read_bytes()
    stale = [f"docker/{c}/rootfs/{path}" for c in copies if (DOCKER / c / "rootfs" / path).read_bytes() != original]
    assert not stale, f"differ from docker/{owner}/rootfs/{path}: {stale}"

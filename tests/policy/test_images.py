"""Policy test of docker/: what a build would fetch, and the copies images share.

No image can be built here, so this checks what a build depends on:
- every `apk add` names a package of docker/apk-packages.txt, the list of
  packages checked against the Alpine release's own index;
- every image starts FROM that release (or the local builder stage);
- every file fetched at build time (wget/curl) is pinned: its URL is built
  from ARGs with literal defaults (and, for a per-machine archive, the name
  the RUN's `case "$(uname -m)"` picks for each machine), and the same RUN
  checks a sha1/sha256 sum, an ARG with a literal default for each machine,
  before anything is unpacked;
- the Dockerfiles build for whichever platform they are asked to (linux/amd64
  or linux/arm64): no architecture is named outside such a per-machine
  selection, which covers both machines and refuses any other;
- docker/apk-packages.txt records the package indexes, of both machines, its
  names were checked in;
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


# The platforms the images are built for: Docker's name for each, and the
# machine name `uname -m` gives in a build for it (the one Alpine's package
# index uses).
PLATFORMS = {"amd64": "x86_64", "arm64": "aarch64"}
ARCH_NAME = re.compile(r"\b(x86_64|x86-64|amd64|aarch64|arm64|armv[5-8]\w*|armhf|i[3-6]86|riscv64|s390x|ppc64le)\b")
MACHINE_CASE = re.compile(r'case\s+"\$\(uname -m\)"\s+in\s+(.*?)\besac\b', re.S)
HEX_DIGEST = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{128}")


def machine_arms(run: str) -> dict[str, str]:
    """The arms of a RUN's `case "$(uname -m)" in ... esac`: pattern -> body."""
    match = MACHINE_CASE.search(run)
    if not match:
        return {}
    return {m.group(1): m.group(2).strip()
            for m in re.finditer(r"(\S+?)\)\s*(.*?);;", match.group(1), re.S)}


def arm_values(body: str) -> dict[str, str]:
    """The shell variables an arm sets: name -> value as written, quotes off."""
    return {m.group(1): m.group(2).strip('"') for m in re.finditer(r"(\w+)=(\"[^\"]*\"|\S+)", body)}


def build_args(path):
    """ARG name -> literal default ("" when it has none)."""
    args = {}
    for keyword, rest in instructions(path):
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_download_is_pinned_and_checksum_verified(path):
    args = build_args(path)
    for keyword, rest in instructions(path):
        if keyword != "RUN":
            continue
        cmds = commands(rest)
        arms = machine_arms(rest)
        per_machine = {machine: arm_values(arms.get(machine, "")) for machine in PLATFORMS.values()}
        fetches = [i for i, c in enumerate(cmds) if re.match(r"(wget|curl)\b", c)]
        for i in fetches:
            url = re.search(r'"?(https://[^" ]+)"?', cmds[i])
            assert url, f"{path}: download without an https URL: {cmds[i]}"
            machine_vars = []
            for var in re.findall(r"\$\{(\w+)\}", url.group(1)):
                if args.get(var):
                    continue
                assert all(values.get(var) for values in per_machine.values()), (
                    f"{path}: {var} in {url.group(1)} is neither an ARG with a default nor set for every machine "
                    f"({', '.join(PLATFORMS.values())}) by a case \"$(uname -m)\"")
                machine_vars.append(var)
            if machine_vars:
                # one archive per machine, and nothing for any other machine
                assert "*" in arms and re.search(r"exit [1-9]", arms["*"]), (
                    f"{path}: the per-machine download of {url.group(1)} does not refuse other machines")
            checks = [c for c in cmds[i + 1:] if re.match(r"sha(1|256|512)sum -c", c)]
            assert checks, f"{path}: {url.group(1)} is not checked by a sha*sum -c in the same RUN"
            digest_vars = [v for c in cmds[i + 1:i + 3] for v in re.findall(r"\$\{(\w+)\}", c)]
            assert digest_vars, f"{path}: the checksum of {url.group(1)} is not a variable"
            for machine, values in per_machine.items():
                digests = []
                for var in digest_vars:
                    source = values.get(var, "${" + var + "}") if machine_vars else "${" + var + "}"
                    arg = re.fullmatch(r"\$\{(\w+)\}", source)
                    digests.append(args.get(arg.group(1), "") if arg else source)
                assert any(HEX_DIGEST.fullmatch(d) for d in digests), (
                    f"{path}: the checksum of {url.group(1)} on {machine} is not a pinned ARG")
            unpack = [j for j, c in enumerate(cmds) if c.startswith("tar ")]
            check_at = min(j for j, c in enumerate(cmds) if c in checks)
            assert all(j > check_at for j in unpack), f"{path}: unpacked before the checksum is checked"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_no_architecture_is_named_outside_a_per_machine_selection(path):
    """The same Dockerfile builds for linux/amd64 and linux/arm64: a machine
    or architecture name may appear only as a pattern or value of a
    `case "$(uname -m)"` that has an arm for both machines and refuses any
    other (ARG names such as X_SHA256_ARM64 are not words of their own)."""
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            assert "--platform" not in rest, f"{path}: FROM {rest}: the stage must run on the platform asked for"
        text = rest
        for match in MACHINE_CASE.finditer(rest):
            arms = machine_arms(match.group(0))
            assert set(PLATFORMS.values()) <= set(arms), f"{path}: {match.group(0)[:80]}... lacks a machine"
            assert "*" in arms and re.search(r"exit [1-9]", arms["*"]), f"{path}: other machines are not refused"
            text = text.replace(match.group(0), "")
        named = ARCH_NAME.findall(text)
        assert not named, f"{path}: {keyword} names {named} outside a case \"$(uname -m)\": {rest[:120]}"


def test_the_builder_takes_its_rust_target_from_the_machine():
    text = " ".join(rest for keyword, rest in instructions(DOCKER / "build" / "Dockerfile") if keyword == "RUN")
    arms = machine_arms(text)
    assert set(PLATFORMS.values()) <= set(arms), arms
    # the target is the machine's own musl target, recorded for the build RUN
    assert 'target="$(uname -m)-unknown-linux-musl"' in text and "cargo build --release --locked --target \"${target}\"" in text
    # and it agrees with BuildKit's TARGETARCH when that is set
    assert "ARG TARGETARCH" in (DOCKER / "build" / "Dockerfile").read_text()
    assert set(re.findall(r"platform=(\w+)", text)) == set(PLATFORMS)


INDEX_LINE = re.compile(r"^# index: alpine/v3\.22/(main|community)/(\w+)/APKINDEX @ ([0-9a-f]{40})$")


def test_the_package_list_records_the_indexes_of_both_machines():
    """Each name was looked up in the 3.22 index of each repository for each
    machine; the header says which index files (and which stored versions)."""
    checked = {(m.group(1), m.group(2)) for line in (DOCKER / "apk-packages.txt").read_text().splitlines()
               if (m := INDEX_LINE.match(line))}
    repos = {repo for repo, _, _ in package_rows().values() if repo != "archive"}
    assert checked >= {(repo, machine) for repo in repos for machine in PLATFORMS.values()}, checked


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

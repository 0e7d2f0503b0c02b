#!/usr/bin/env python3
"""Each image's root filesystem: the stack test's `docker build`.

    rootfs.py build [SERVICE...]    (as root, in a private mount namespace:
                                    `unshare --mount --propagation private`)
    rootfs.py build --without PACKAGE SERVICE
                                    the image as if PACKAGE (an apk package or
                                    a release archive) had been deleted from
                                    its Dockerfile: the mutation test's

An Alpine image cannot be built here, so each is built from its Dockerfile
on Debian 13 (trixie) instead, in three overlay layers that a pod's root
file system stacks (pod.sh), lowest first:

1. base: `mmdebstrap --variant=minbase` of trixie, with busybox. Cached.
2. packages, one per image: every `apk add` of its Dockerfile (and what
   those packages need) replaced by its Debian stand-in
   (docker/apk-packages.txt), made to look like the Alpine package
   (tests/stack/standins.txt); then busybox is /bin/sh and the core tools,
   as on Alpine: the executables of Debian's core-tool packages are removed
   and busybox's applets linked in their place. Cached, keyed by the base,
   the package list, the stand-ins and this file.
3. image: the rest of the Dockerfile's final stage, run for real on top:
   RUN (by busybox sh, with an `apk` that checks its packages are there; a
   RUN that downloads a release archive is replaced by the archive's
   stand-in), COPY of the image's rootfs/ and supervise.toml, COPY --from the
   builder stage of the static musl binaries (target/, built by run.sh).
   Made anew at every run, in the work directory.

Nothing of the host's /usr reaches a pod: its root is these layers only.
The caches live in tests/.cache/stack/ (git-ignored); a base or package
layer whose key changed is built again and the old one removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dockerfiles import DOCKER, dockerfile, final_stage  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("STACK_CACHE", ROOT / "tests/.cache/stack"))
WORK = Path(os.environ.get("STACK_WORK", ROOT / "tests/.work/stack"))
TARGET_DIR = Path(os.environ.get("TARGET_DIR", ROOT / "target/x86_64-unknown-linux-musl/release"))
MIRROR = os.environ.get("STACK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("STACK_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
SUITE = "trixie"
SOURCES = [f"deb {MIRROR} {SUITE} main", f"deb {MIRROR} {SUITE}-updates main",
           f"deb {SECURITY_MIRROR} {SUITE}-security main"]
# Documentation is no part of a pod.
DPKG_EXCLUDES = ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*",
                 "/usr/share/lintian/*"]
SERVICES = ["mysql", "influxdb", "phpmyadmin", "wordpress", "nginx", "ftps", "grafana"]
# Debian's packages whose programs busybox provides on Alpine: their
# executables are removed, busybox's applets take their place.
CORE_TOOLS = ["dash", "bash", "coreutils", "grep", "sed", "findutils", "tar", "gzip", "diffutils",
              "util-linux", "mount", "bsdutils", "procps", "hostname", "debianutils", "mawk", "login", "passwd",
              "adduser", "perl-base"]
# Package management is not part of a running image: apt and dpkg go too.
PACKAGING = ["apt", "dpkg", "debconf"]


def log(msg: str) -> None:
    print(f"[rootfs {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=True, text=True, **kw)


# --- what the images install, and its stand-ins ------------------------------------


@dataclass
class Package:
    """A row of docker/apk-packages.txt."""

    name: str
    repository: str
    alpine: str
    standins: list[str]
    debian: str
    images: list[str]


def packages() -> dict[str, Package]:
    rows = {}
    for line in (DOCKER / "apk-packages.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        words = line.split("  #", 1)[0].split()
        name, repo, alpine, standins, debian, *images = words
        rows[name] = Package(name, repo, alpine, [] if standins == "-" else standins.split("+"),
                             debian, images)
    return rows


@dataclass
class Standin:
    """What tests/stack/standins.txt says of one apk package."""

    needs: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    builtin: bool = False


def standins() -> dict[str, Standin]:
    out: dict[str, Standin] = {}
    for line in (ROOT / "tests/stack/standins.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, action, *rest = line.split(None, 2)
        entry = out.setdefault(name, Standin())
        args = rest[0] if rest else ""
        if action == "needs":
            entry.needs += args.split()
        elif action == "link":
            path, target = args.split()
            entry.links.append((path, target))
        elif action == "run":
            entry.runs.append(args)
        elif action == "builtin":
            entry.builtin = True
        else:
            raise SystemExit(f"standins.txt: unknown action {action!r}: {line}")
    return out


def php_extension(name: str) -> tuple[str, str] | None:
    """(`83`, `mysqli`) of an Alpine PHP extension package, else None."""
    m = re.fullmatch(r"php(\d\d)-([a-z0-9_]+)", name)
    if not m or m.group(2) in ("fpm", "cli", "common", "cgi", "dev", "pear"):
        return None
    return m.group(1), m.group(2)


@dataclass
class Recipe:
    """An image as its Dockerfile says: the apk packages (with what they
    need), the release archives it downloads, the instructions that follow."""

    service: str
    apk: list[str]
    archives: list[str]
    steps: list[tuple[str, str]]

    def debian_packages(self, rows: dict[str, Package]) -> list[str]:
        names = {s for p in self.apk + self.archives for s in rows[p].standins}
        return sorted(names | {"busybox"})


def deleted(steps: list[tuple[str, str]], name: str, rows: dict[str, Package]) -> list[tuple[str, str]]:
    """The Dockerfile's steps with a package deleted from its `apk add`, or
    the RUN that downloads the archive `name` deleted."""
    out, found = [], False
    for keyword, args in steps:
        if keyword == "RUN" and download_archive(args, rows) == name:
            found = True
            continue
        if keyword == "RUN":
            edited = re.sub(r"(apk add [^&;|]*)", lambda m: re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", "", m.group(1)), args)
            found |= edited != args
            args = edited
        out.append((keyword, args))
    if not found:
        raise SystemExit(f"{name} is neither installed nor downloaded by this Dockerfile")
    return out


def download_archive(run: str, rows: dict[str, Package]) -> str | None:
    """The archive row a RUN downloads (its URL names `<name>-<version>`), if any."""
    url = re.search(r"https://\S+", run)
    if not url or not re.search(r"\b(wget|curl)\b", run):
        return None
    for name, row in rows.items():
        if row.repository == "archive" and re.search(rf"/{re.escape(name)}-", url.group(0)):
            return name
    raise SystemExit(f"a download with no stand-in in docker/apk-packages.txt: {url.group(0)}")


def recipe(service: str, without: str | None = None) -> Recipe:
    """The image as its Dockerfile says; `without`: as if that package (or
    release archive) had been deleted from the Dockerfile."""
    rows, extras = packages(), standins()
    apk: list[str] = []
    archives: list[str] = []
    steps = final_stage(dockerfile(service))
    if without:
        steps = deleted(steps, without, rows)
    for keyword, args in steps:
        if keyword != "RUN":
            continue
        archive = download_archive(args, rows)
        if archive:
            archives.append(archive)
        for m in re.finditer(r"apk add ([^&;|]*)", args):
            apk += [w for w in shlex.split(m.group(1)) if not w.startswith("-")]
    unknown = [p for p in apk if p not in rows or rows[p].repository == "archive"]
    if unknown:
        raise SystemExit(f"docker/{service}/Dockerfile: apk add of packages not in docker/apk-packages.txt: {unknown}")
    # What apk brings along, as far as it matters here.
    closure, todo = [], list(apk)
    while todo:
        name = todo.pop(0)
        if name in closure:
            continue
        closure.append(name)
        todo += extras.get(name, Standin()).needs
    return Recipe(service, closure, archives, steps)


# --- layers ---------------------------------------------------------------------------


def digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def mirror_release() -> str:
    """The Release files' dates of the suites on the mirror: new package
    versions there make new layers."""
    dates = []
    for source in SOURCES:
        _, url, suite, _ = source.split()
        with urllib.request.urlopen(f"{url}/dists/{suite}/InRelease", timeout=60) as r:
            head = r.read(4096).decode(errors="replace")
        m = re.search(r"^Date: (.+)$", head, re.M)
        if not m:
            raise SystemExit(f"no Date in {url}/dists/{suite}/InRelease")
        dates.append(f"{suite} {m.group(1).strip()}")
    return ", ".join(dates)


def fresh(path: Path, prefix: str) -> bool:
    """Whether `path` is a completed layer; removes its stale siblings
    (`<prefix>-<key>`, other keys)."""
    for old in path.parent.glob(f"{prefix}-*"):
        if re.fullmatch(rf"{re.escape(prefix)}-[0-9a-f]{{16}}(\.partial)?", old.name) \
                and old != path and old.name != path.name + ".partial":
            shutil.rmtree(old, ignore_errors=True)
    return (path / ".complete").exists()


def base_layer(release: str) -> Path:
    layer = CACHE / f"base-{digest(SOURCES, DPKG_EXCLUDES, 'minbase+busybox', release)}"
    if fresh(layer, "base"):
        return layer
    log(f"base: mmdebstrap --variant=minbase {SUITE} (Debian release of {release})")
    partial = layer.with_name(layer.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    started = time.monotonic()
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    sh("mmdebstrap", "--variant=minbase", "--include=busybox", "--quiet",
       *(f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES),
       # The package lists stay for the package layers; downloads are kept apart.
       "--skip=cleanup/apt/lists,cleanup/apt/cache",
       f"--setup-hook=mkdir -p \"$1/var/cache/apt/archives\" && mount --bind {debs} \"$1/var/cache/apt/archives\"",
       "--customize-hook=umount \"$1/var/cache/apt/archives\"",
       SUITE, str(partial), *SOURCES)
    (partial / ".complete").write_text(f"{SUITE} {release}\n")
    partial.rename(layer)
    log(f"base: {time.monotonic() - started:.0f} s")
    return layer


# Alpine's busybox makes users and groups and sets passwords (Dockerfiles
# run adduser/addgroup; the nginx image sets ft's password with chpasswd -e);
# Debian builds it without those applets. The pods get Debian's busybox
# source (1.37.0, as Alpine 3.22's), built with Debian's configuration and
# these applets on, with busybox's default id ranges (Debian's are 0).
BUSYBOX_CONFIG = {
    **{name: "y" for name in ["ADDUSER", "ADDGROUP", "DELUSER", "DELGROUP", "CHPASSWD",
                              "FEATURE_ADDUSER_TO_GROUP", "FEATURE_DEL_USER_FROM_GROUP",
                              "FEATURE_CHECK_NAMES", "USE_BB_PWD_GRP", "USE_BB_SHADOW"]},
    "LAST_ID": "60000", "FIRST_SYSTEM_ID": "100", "LAST_SYSTEM_ID": "999",
    "FEATURE_DEFAULT_PASSWD_ALGO": '"sha512"',
    # Debian's package tools, which Alpine's busybox has not.
    **{name: "n" for name in ["DPKG", "DPKG_DEB", "RPM", "RPM2CPIO"]},
}


def busybox(base: Path) -> Path:
    """busybox built from Debian's source with Alpine's user applets (cached)."""
    out = CACHE / f"busybox-{digest(base.name, BUSYBOX_CONFIG)}"
    if fresh(out, "busybox"):
        return out / "busybox"
    started = time.monotonic()
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    src = partial / "src"
    with Overlay(partial / "upper", [base], partial / "scratch") as root:
        (root / "etc/apt/sources.list.d/sources.list").write_text(
            "".join(s.replace("deb ", "deb-src ", 1) + "\n" for s in SOURCES))
        in_root(root, "mkdir -p /build && cd /build && apt-get update -qq"
                      " && apt-get source --download-only -qq busybox >/dev/null")
        shutil.copytree(root / "build", src)
    orig = next(src.glob("busybox_*.orig.tar.*"))
    debian = next(src.glob("busybox_*.debian.tar.*"))
    sh("tar", "-xf", str(orig), "-C", str(src))
    tree = next(p for p in src.iterdir() if p.is_dir() and p.name.startswith("busybox-"))
    sh("tar", "-xf", str(debian), "-C", str(tree))
    config = (tree / "debian/config/pkg/deb").read_text()
    for name, value in BUSYBOX_CONFIG.items():
        config = re.sub(rf"^(# )?CONFIG_{name}( is not set|=.*)$", "", config, flags=re.M)
        config += f"# CONFIG_{name} is not set\n" if value == "n" else f"CONFIG_{name}={value}\n"
    (tree / ".config").write_text(config)
    sh("bash", "-c", "yes '' | make -s oldconfig >/dev/null && make -s -j\"$(nproc)\" busybox >/dev/null",
       cwd=tree)
    shutil.copy2(tree / "busybox", partial / "busybox")
    shutil.rmtree(partial / "upper")
    shutil.rmtree(src)
    (partial / ".complete").write_text(f"{orig.name}\n")
    partial.rename(out)
    log(f"busybox with Alpine's user applets: {time.monotonic() - started:.0f} s")
    return out / "busybox"


class Overlay:
    """A writable view of lower layers; writes land in `upper`."""

    def __init__(self, upper: Path, lowers: list[Path], scratch: Path):
        self.upper, self.lowers = upper, lowers
        self.work = scratch / "work"
        self.merged = scratch / "merged"

    def __enter__(self) -> Path:
        for d in (self.upper, self.work, self.merged):
            d.mkdir(parents=True, exist_ok=True)
        lowers = ":".join(str(p) for p in self.lowers)
        sh("mount", "-t", "overlay", "overlay", "-o",
           f"lowerdir={lowers},upperdir={self.upper},workdir={self.work}", str(self.merged))
        for name in ("proc", "dev"):
            (self.merged / name).mkdir(exist_ok=True)
        sh("mount", "-t", "proc", "proc", str(self.merged / "proc"))
        sh("mount", "--rbind", "/dev", str(self.merged / "dev"))
        return self.merged

    def __exit__(self, *_exc) -> None:
        sh("umount", "--recursive", "--lazy", str(self.merged))
        shutil.rmtree(self.work, ignore_errors=True)


def in_root(root: Path, script: str, env: dict[str, str] | None = None,
            shell: list[str] | None = None) -> None:
    """`script` run by the root filesystem's shell (`/bin/sh -ec`, or a
    Dockerfile's SHELL), chrooted there."""
    base_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    sh("chroot", str(root), *(shell or ["/bin/sh", "-ec"]), script, env={**base_env, **(env or {})})


def package_layer(r: Recipe, base: Path, release: str, busybox_binary: Path, variant: str = "") -> Path:
    rows, extras = packages(), standins()
    debs = r.debian_packages(rows)
    key = digest(base.name, busybox_binary.parent.name, release, debs, r.apk, r.archives,
                 {p: extras.get(p, Standin()).__dict__ for p in r.apk + r.archives},
                 Path(__file__).read_text())
    name = f"packages-{r.service}{variant}"
    layer = CACHE / f"{name}-{key}"
    if fresh(layer, name):
        return layer
    partial = layer.with_name(layer.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    started = time.monotonic()
    log(f"{r.service}: stand-ins of {' '.join(r.apk + r.archives) or 'nothing'}: {' '.join(debs)}")
    with Overlay(partial, [base], CACHE / f"scratch-{r.service}") as root:
        (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")  # no service starts
        (root / "usr/sbin/policy-rc.d").chmod(0o755)
        (root / "etc/dpkg/dpkg.cfg.d/stack-excludes").write_text(
            "".join(f"path-exclude={p}\n" for p in DPKG_EXCLUDES))
        archives = root / "var/cache/apt/archives"
        sh("mount", "--bind", str(CACHE / "debs"), str(archives))
        try:
            in_root(root, "apt-get install -y -qq --no-install-recommends " + " ".join(debs) + " >/dev/null")
        finally:
            sh("umount", str(archives))
        versions = installed_versions(root, debs)
        check_versions(r, rows, versions)
        (root / "usr/sbin/policy-rc.d").unlink()
        for name in r.apk + r.archives:
            extra = extras.get(name, Standin())
            for path, target in extra.links:
                link = root / path.lstrip("/")
                if link.is_symlink() or link.is_file():
                    link.unlink()
                elif link.is_dir():
                    shutil.rmtree(link)
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(target)
        busybox_core_tools(root, busybox_binary)
        for name in r.apk + r.archives:
            for command in extras.get(name, Standin()).runs:
                in_root(root, command)
            ext = php_extension(name)
            if ext and not extras.get(name, Standin()).builtin:
                write_php_ini(root, name, ext, r.apk)
        (root / "etc/apk").mkdir(parents=True, exist_ok=True)
        (root / "etc/apk/world").write_text("".join(f"{p}\n" for p in sorted(r.apk)))
        (root / "etc/ft-stack-versions.json").write_text(json.dumps(versions, indent=1))
        for junk in ("var/lib/apt/lists", "var/cache/apt", "var/log", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(root / junk, ignore_errors=True)
            (root / junk).mkdir(parents=True, exist_ok=True)
    (partial / ".complete").write_text(" ".join(debs) + "\n")
    partial.rename(layer)
    log(f"{r.service}: packages layer in {time.monotonic() - started:.0f} s")
    return layer


def installed_versions(root: Path, debs: list[str]) -> dict[str, str]:
    out = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f=${Package} ${Version}\n", *debs],
                         check=True, capture_output=True, text=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def upstream(version: str) -> str:
    """Debian's upstream version: no epoch, no revision."""
    return version.split(":", 1)[-1].rsplit("-", 1)[0]


def check_versions(r: Recipe, rows: dict[str, Package], versions: dict[str, str]) -> None:
    """Each stand-in is at the version docker/apk-packages.txt records."""
    wrong = []
    for name in r.apk + r.archives:
        for deb in rows[name].standins[:1]:  # the stand-in itself; the others only keep things out
            if not upstream(versions.get(deb, "")).startswith(rows[name].debian):
                wrong.append(f"{deb} {versions.get(deb)} (docker/apk-packages.txt says {rows[name].debian})")
    if wrong:
        raise SystemExit(f"{r.service}: stand-ins not at their recorded versions: {', '.join(wrong)}")


def busybox_core_tools(root: Path, binary: Path) -> None:
    """/bin/sh and the core tools are busybox's, as on Alpine."""
    shutil.copy2(binary, root / "usr/bin/busybox")
    listed = subprocess.run(["chroot", str(root), "dpkg-query", "-L", *CORE_TOOLS, *PACKAGING],
                            capture_output=True, text=True).stdout  # absent packages: no list, fine
    for path in listed.splitlines():
        if re.match(r"^/(usr/)?s?bin/.", path):
            target = root / path.lstrip("/")
            if target.is_file() or target.is_symlink():
                target.unlink()
    # Links left dangling by that (alternatives such as awk, which, pager).
    for directory in ("usr/bin", "usr/sbin"):
        for entry in (root / directory).iterdir():
            if entry.is_symlink() and not resolves_in(root, entry):
                entry.unlink()
    in_root(root, "/usr/bin/busybox --install -s", shell=["/usr/bin/busybox", "sh", "-ec"])


def resolves_in(root: Path, link: Path) -> bool:
    """Whether a link inside `root` leads to something there (absolute
    targets taken relative to `root`, not to the host)."""
    path = "/" + str(link.relative_to(root))
    for _ in range(20):
        host = root / path.lstrip("/")
        if not host.is_symlink():
            return host.exists()
        target = os.readlink(host)
        path = target if target.startswith("/") else os.path.normpath(os.path.join(os.path.dirname(path), target))
    return False


def write_php_ini(root: Path, name: str, ext: tuple[str, str], apk: list[str]) -> None:
    """Alpine's conf.d file for a PHP extension package (aports' php8x APKBUILD:
    NN_EXT.ini, NN the number of phpNN-* packages it depends on)."""
    series, extension = ext
    needs = [n for n in standins().get(name, Standin()).needs if php_extension(n)]
    directive = "zend_extension" if extension == "opcache" else "extension"
    conf_d = root / f"etc/php{series}/conf.d"
    conf_d.mkdir(parents=True, exist_ok=True)
    (conf_d / f"{len(needs):02d}_{extension}.ini").write_text(f"{directive}={extension}\n")


APK_SHIM = """#!/bin/sh
# The stack test's apk, for an image build: the packages were installed by
# their stand-ins (/etc/apk/world); `apk add` checks that they are.
[ "$1" = add ] || { echo "apk $*: not something an image build does here" >&2; exit 1; }
shift
for p in "$@"; do
  case $p in -*) continue ;; esac
  grep -qx "$p" /etc/apk/world || { echo "apk add $p: not installed by its stand-in" >&2; exit 1; }
done
"""


def image_layer(r: Recipe, lowers: list[Path]) -> Path:
    """The Dockerfile's final stage on top of the packages: RUN, COPY, ARG, SHELL."""
    layer = WORK / "images" / r.service / "layer"
    shutil.rmtree(layer.parent, ignore_errors=True)
    rows = packages()
    shell = ["/bin/sh", "-c"]
    args: dict[str, str] = {}
    with Overlay(layer, lowers, layer.parent) as root:
        (root / "sbin").mkdir(exist_ok=True)
        apk = root / "sbin/apk"
        apk.write_text(APK_SHIM)
        apk.chmod(0o755)
        for keyword, rest in r.steps:
            if keyword == "ARG":
                name, _, default = rest.partition("=")
                args[name] = default
            elif keyword == "SHELL":
                shell = json.loads(rest)
            elif keyword == "RUN":
                archive = download_archive(rest, rows)
                if archive:
                    log(f"{r.service}: RUN downloading the {archive} archive: its stand-in "
                        f"({'+'.join(rows[archive].standins)} {rows[archive].debian}) is in place")
                    continue
                in_root(root, rest, env=args, shell=shell)
            elif keyword == "COPY":
                copy(root, rest)
        apk.unlink()
    return layer


def copy(root: Path, rest: str) -> None:
    """COPY [--from=build] SRC... DEST, from the repository (the build
    context) or, for the builder stage, from the musl binaries of target/."""
    words = rest.split()
    from_build = words[0] == "--from=build"
    if from_build:
        words = words[1:]
    *sources, dest = words
    target = root / dest.lstrip("/")
    for source in sources:
        src = TARGET_DIR / Path(source).name if from_build else ROOT / source
        if not src.exists():
            raise SystemExit(f"COPY {source}: {src} does not exist (run.sh builds the binaries first)")
        if src.is_dir():
            # Docker copies the directory's contents, owned by root, modes kept.
            shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
            for path in src.rglob("*"):
                os.lchown(target / path.relative_to(src), 0, 0)
        else:
            out = target / src.name if dest.endswith("/") else target
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out)
            os.chown(out, 0, 0)


def layers(service: str) -> list[Path]:
    """The pod's lower layers, topmost first (as overlayfs's lowerdir lists them)."""
    return [Path(p) for p in (WORK / "images" / service / "layers").read_text().split(":")]


def build(services: list[str], without: str | None = None) -> None:
    started = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    release = mirror_release()
    base = base_layer(release)
    busybox_binary = busybox(base)
    for service in services:
        r = recipe(service, without)
        variant = f"-without-{without}" if without else ""
        packages_layer = package_layer(r, base, release, busybox_binary, variant)
        image = image_layer(r, [packages_layer, base])
        lowers = [image, packages_layer, base]
        (WORK / "images" / service / "layers").write_text(":".join(str(p) for p in lowers))
    log(f"root filesystems of {', '.join(services)} ready in {time.monotonic() - started:.0f} s")


def main() -> int:
    args = sys.argv[1:]
    if args[:1] != ["build"]:
        print(__doc__, file=sys.stderr)
        return 2
    without = None
    if args[1:2] == ["--without"]:
        without = args[2]
        args = args[2:]
    build(args[1:] or SERVICES, without)
    return 0


if __name__ == "__main__":
    sys.exit(main())

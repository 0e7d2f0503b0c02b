"""What the kubelet and the container runtime give a container, here.

- Volumes: a PersistentVolumeClaim's directory as minikube's provisioner
  makes it, a Secret volume laid out as the kubelet's atomic writer does.
- The pod's cgroup, with the manifest's CPU and memory limits, which the
  container sees as its own (a cgroup namespace), as under Docker.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from manifests import Pod as PodManifest, SecretVolume

CGROUP_ROOT = Path("/sys/fs/cgroup")
# The v1 controllers a container's figures come from (collect's cgroup input).
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "blkio", "pids")


def provision_volume(vol: Path) -> Path:
    """The directory behind a PersistentVolumeClaim, kept across pod restarts.

    minikube's storage provisioner (k8s.io/minikube-hostpath) makes a new
    volume a directory owned by root with mode 0777, and hostPath volumes
    ignore fsGroup: a pod finds its fresh volume exactly so.
    """
    if not vol.exists():
        vol.mkdir(parents=True)
        os.chown(vol, 0, 0)
        vol.chmod(0o777)
    return vol


def lay_out_secret_volume(volume: SecretVolume, secret_dir: Path, dest: Path,
                          fs_group: int | None) -> tuple[int, int]:
    """Writes a Secret volume's contents to `dest` as the kubelet's atomic writer does.

    `..<UTC time>.<random>/` (mode 0755) holds each file with its item's mode
    (or the volume's defaultMode), `..data` links to it, and each top-level
    name links to `..data/<name>`; everything owned by root. With an fsGroup,
    the kubelet then gives every file and directory that group, adds group
    read to files and setgid + group/other search to directories. Returns
    the mode and group of the volume's root: a tmpfs (1777) before that.
    pod.sh mounts a tmpfs with them and copies `dest` into it.
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    keys = sorted(p.name for p in secret_dir.iterdir() if p.is_file())
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + str(int.from_bytes(os.urandom(4), "big"))
    data = dest / stamp
    data.mkdir()
    data.chmod(0o755)
    top_level = set()
    for item in volume.files(keys):
        target = data / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((secret_dir / item.key).read_bytes())
        target.chmod(item.mode)
        top_level.add(item.path.split("/")[0])
    (dest / "..data").symlink_to(stamp)
    for name in sorted(top_level):
        (dest / name).symlink_to(f"..data/{name}")
    root_mode, gid = 0o1777, 0
    if fs_group is not None:
        gid = fs_group
        root_mode |= 0o2000 | 0o110
        for path in [dest, *dest.rglob("*")]:
            os.lchown(path, -1, fs_group)
            if path.is_symlink() or path == dest:
                continue
            mode = path.stat().st_mode & 0o7777
            path.chmod(mode | (0o2000 | 0o550 if path.is_dir() else 0o440))
    return root_mode, gid


class PodCgroup:
    """The pod's cgroup: one directory per v1 hierarchy, or one in v2.

    Made before each container start (and removed after it), limited as the
    kubelet limits a container: memory limit, CPU quota per 100 ms period,
    CPU shares (v1) or weight (v2) from the request. `join()` is run in the
    child before it execs `unshare --cgroup`, so that the container's cgroup
    namespace is rooted at this cgroup; pod.sh mounts the hierarchies named
    by `mounts()` at /sys/fs/cgroup inside the container.
    """

    def __init__(self, name: str):
        self.name = name
        self.v2 = (CGROUP_ROOT / "cgroup.controllers").exists()
        self.hierarchies: dict[str, Path] = {}  # mount options -> hierarchy root
        if self.v2:
            self.hierarchies["cgroup2"] = CGROUP_ROOT
        else:
            for line in Path("/proc/self/mounts").read_text().splitlines():
                _dev, mountpoint, fstype, options, *_ = line.split()
                if fstype != "cgroup":
                    continue
                controllers = [o for o in options.split(",") if o in V1_CONTROLLERS]
                if controllers:
                    self.hierarchies[",".join(controllers)] = Path(mountpoint)
        self.dirs = [root / name for root in self.hierarchies.values()]
        self.peak = 0  # bytes: the highest memory use of any container of the pod so far

    def create(self, pod: PodManifest) -> None:
        self.remove()
        for d in self.dirs:
            d.mkdir()
        if pod.memory_limit:
            self.write("memory.max" if self.v2 else "memory.limit_in_bytes", str(pod.memory_limit))
        if pod.cpu_limit:
            quota = int(pod.cpu_limit * 100_000)
            if self.v2:
                self.write("cpu.max", f"{quota} 100000")
            else:
                self.write("cpu.cfs_period_us", "100000")
                self.write("cpu.cfs_quota_us", str(quota))
        if pod.cpu_request and not self.v2:
            self.write("cpu.shares", str(max(2, int(pod.cpu_request * 1024))))

    def write(self, file: str, value: str) -> None:
        for d in self.dirs:
            if (d / file).exists():
                (d / file).write_text(value)
                return
        raise FileNotFoundError(f"no {file} in {self.dirs}")

    def join(self) -> None:
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def mounts(self) -> str:
        """For pod.sh: "options ..." of each hierarchy to mount ("cgroup2" for v2)."""
        return " ".join(self.hierarchies)

    def read(self, file: str) -> str | None:
        for d in self.dirs:
            if (d / file).exists():
                return (d / file).read_text()
        return None

    def memory(self) -> dict[str, int]:
        """The container's memory in bytes, as the kubelet and a person see it:
        `usage` (the cgroup's charge, page cache included), `working_set`
        (usage less inactive file pages: what the kubelet evicts by and
        `kubectl top` shows), `peak` (highest usage of any container of the
        pod so far) and `pss` (its processes' proportional set size)."""
        v2 = self.v2
        usage = int(self.read("memory.current" if v2 else "memory.usage_in_bytes") or 0)
        stat = dict(line.split() for line in (self.read("memory.stat") or "").splitlines())
        inactive = int(stat.get("inactive_file" if v2 else "total_inactive_file", 0))
        peak = int(self.read("memory.peak" if v2 else "memory.max_usage_in_bytes") or usage)
        self.peak = max(self.peak, peak)
        pss = 0
        for pid in (self.read("cgroup.procs") or "").split():
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:  # exited meanwhile
                continue
            pss += next(int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:"))
        return {"usage": usage, "working_set": max(0, usage - inactive), "peak": self.peak, "pss": pss}

    def remove(self, timeout: float = 10) -> None:
        """Removes the directories once the container's last process has left them."""
        if all(d.exists() for d in self.dirs):
            self.memory()  # keeps this container's peak
        deadline = time.monotonic() + timeout
        for d in self.dirs:
            while d.exists():
                try:
                    d.rmdir()
                except OSError:  # EBUSY: a dying process is still a member
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

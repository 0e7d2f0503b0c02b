#!/usr/bin/env python3
"""Into a pod's root filesystem: the last step of a container start, and the
way in for `kubectl exec`.

    enter.py start NEWROOT              from pod.sh: pivot_root into NEWROOT,
                                        apply the container's privileges and
                                        exec its PID 1 (the image's ENTRYPOINT)
    enter.py exec PID [--user USER] [--] COMMAND...
                                        run COMMAND in the running pod whose
                                        PID 1 has host pid PID (the caller
                                        runs it under `nsenter -t PID -p -u -n`)

After `start`, nothing of the host's file system is left in the container's
mount namespace: the old root is detached. Only this interpreter, loaded
before, still runs host code; it execs the pod's own binary. `exec`
chroots to the pod's root (/proc/PID/root) so that COMMAND is the pod's
program, as `kubectl exec` runs the container's.

The privileges, from the environment pod.sh passes on: POD_NO_NEW_PRIVS
(allowPrivilegeEscalation: false) sets no_new_privs; POD_CAPABILITIES
("chown,kill,..." or empty for the runtime's default) is what stays in the
bounding set (capabilities drop ALL + add); POD_ENV_FILE holds the
container's environment, one VAR=value a line.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import pwd
import sys

LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}[platform.machine()]
MNT_DETACH = 2
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
ENTRYPOINT = "/usr/local/bin/supervise"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The capabilities Docker and containerd give a container by default.
RUNTIME_DEFAULT = {"chown", "dac_override", "fowner", "fsetid", "kill", "setgid", "setuid",
                   "setpcap", "net_bind_service", "net_raw", "sys_chroot", "mknod", "audit_write",
                   "setfcap"}
CAPABILITIES = ["chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid",
                "setuid", "setpcap", "linux_immutable", "net_bind_service", "net_broadcast",
                "net_admin", "net_raw", "ipc_lock", "ipc_owner", "sys_module", "sys_rawio",
                "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
                "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write",
                "audit_control", "setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
                "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore"]


def check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def pivot_into(new_root: str) -> None:
    """pivot_root(".", ".") on NEWROOT, then the old root detached from under it."""
    os.chdir(new_root)
    check(LIBC.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    check(LIBC.umount2(b".", MNT_DETACH), "detach the host's root")
    os.chdir("/")


def restrict(no_new_privs: bool, kept: set[str]) -> None:
    for number, name in enumerate(CAPABILITIES):
        # EINVAL: past this kernel's last capability, nothing to drop.
        if name not in kept and LIBC.prctl(PR_CAPBSET_DROP, number, 0, 0, 0) != 0 \
                and ctypes.get_errno() != 22:
            check(-1, f"drop capability {name}")
    if no_new_privs:
        check(LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def container_env(path: str) -> dict[str, str]:
    with open(path) as f:
        return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)


def start(new_root: str) -> None:
    env = container_env(os.environ["POD_ENV_FILE"])
    added = os.environ.get("POD_CAPABILITIES", "")
    kept = {c.strip().lower() for c in added.split(",") if c.strip()} if added else RUNTIME_DEFAULT
    no_new_privs = bool(os.environ.get("POD_NO_NEW_PRIVS"))
    pivot_into(new_root)
    restrict(no_new_privs, kept)
    os.execve(ENTRYPOINT, [ENTRYPOINT], env)


def exec_in(pid: str, user: str | None, command: list[str]) -> None:
    # The pod's root through its PID 1 (setns into its mount namespace would
    # leave no way back to this interpreter's files).
    os.chroot(f"/proc/{pid}/root")
    os.chdir("/")
    os.environ["PATH"] = CONTAINER_PATH
    if user:
        entry = pwd.getpwnam(user)  # the pod's /etc/passwd, after the chroot
        os.setgroups(os.getgrouplist(user, entry.pw_gid))
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
        os.environ.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)
    os.execvp(command[0], command)


def main() -> None:
    if sys.argv[1] == "start":
        start(sys.argv[2])
    elif sys.argv[1] == "exec":
        args = sys.argv[2:]
        pid, user = args.pop(0), None
        if args[:1] == ["--user"]:
            user = args[1]
            args = args[2:]
        if args[:1] == ["--"]:
            args = args[1:]
        exec_in(pid, user, args)
    else:
        raise SystemExit(f"usage: {sys.argv[0]} start NEWROOT | exec PID [--user USER] -- COMMAND...")


if __name__ == "__main__":
    main()

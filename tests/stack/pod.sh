#!/usr/bin/env bash
# One start of one pod of the stack test: the container runtime's part.
#
# kubelet.py runs it as
#   ip netns exec ft-<svc> unshare --mount --pid --uts --cgroup --fork --kill-child \
#     --propagation private bash tests/stack/pod.sh
# so it is PID 1 of a fresh PID namespace with a private copy of the host's
# mounts, inside the pod's network namespace. It builds the container's root
# there and hands over to enter.py, which pivots into it and execs the
# image's ENTRYPOINT (supervise) with the container's privileges. Every mount
# dies with the namespace; the host's file system is never written except
# under $POD_DIR.
#
# The container's root, as a container runtime makes it:
#   /                      overlay of the image's layers (POD_LAYERS, built by
#                          rootfs.py) with a writable layer that is new on
#                          every start ($POD_DIR/scratch)
#   /proc, /sys            the pod's own procfs; sysfs read-only
#   /sys/fs/cgroup         the pod's cgroup (kubelet.py made it, with the
#                          manifest's limits), read-only, as under Docker
#   /dev                   a small tmpfs with the usual devices, devpts, shm
#   /etc/hosts, /etc/hostname   the kubelet's files (the Services' names)
#   secret volumes         the manifest's, laid out as the kubelet does
#                          (sandbox.py), read-only tmpfs at their mountPath
#   volumes                PersistentVolumeClaims and emptyDirs, bind mounts
#
# Environment (from kubelet.py): POD_DIR, POD_NAME, POD_LAYERS (lower layers,
# topmost first, ":"-separated), HOSTS_FILE, POD_SECRET_VOLUMES
# ("path=staged-dir=mode=gid ..."), POD_VOLUMES ("path=dir ..."), POD_CGROUPS
# (the cgroup hierarchies to mount), POD_CONFIG (a supervise.toml to put in
# place of the image's, or empty), and for enter.py POD_ENV_FILE,
# POD_NO_NEW_PRIVS and POD_CAPABILITIES.
set -euo pipefail

root=$POD_DIR/root
scratch=$POD_DIR/scratch

rm -rf "$scratch"
mkdir -p "$scratch/upper" "$scratch/work" "$root"
mount -t overlay overlay \
  -o "lowerdir=$POD_LAYERS,upperdir=$scratch/upper,workdir=$scratch/work" "$root"

mount -t proc proc "$root/proc"
mount -t sysfs -o ro sysfs "$root/sys"
for options in $POD_CGROUPS; do
  if [[ $options == cgroup2 ]]; then
    mount -t cgroup2 -o ro cgroup2 "$root/sys/fs/cgroup"
    continue
  fi
  mountpoint -q "$root/sys/fs/cgroup" || mount -t tmpfs -o mode=0755 cgroup "$root/sys/fs/cgroup"
  mkdir -p "$root/sys/fs/cgroup/$options"
  mount -t cgroup -o "ro,$options" cgroup "$root/sys/fs/cgroup/$options"
  if [[ $options == *,* ]]; then # e.g. cpu,cpuacct: each name links to it
    for controller in ${options//,/ }; do ln -s "$options" "$root/sys/fs/cgroup/$controller"; done
  fi
done
if [[ -n $POD_CGROUPS && $POD_CGROUPS != cgroup2 ]]; then mount -o remount,ro "$root/sys/fs/cgroup"; fi

mount -t tmpfs -o mode=0755,nosuid tmpfs "$root/dev"
for dev in null zero full random urandom tty; do
  touch "$root/dev/$dev"
  mount --bind "/dev/$dev" "$root/dev/$dev"
done
mkdir "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"

# The kubelet's files, bind-mounted as it does.
for file in hosts hostname; do
  [[ -e $root/etc/$file ]] || touch "$root/etc/$file"
done
mount --bind "$HOSTS_FILE" "$root/etc/hosts"
printf '%s\n' "$POD_NAME" >"$POD_DIR/hostname"
mount --bind "$POD_DIR/hostname" "$root/etc/hostname"
hostname "$POD_NAME" # its own UTS namespace, like a pod
if [[ -n $POD_CONFIG ]]; then mount --bind "$POD_CONFIG" "$root/etc/supervise.toml"; fi

# Secret volumes as the kubelet makes them: a tmpfs (mode 1777, or the
# fsGroup's variant) holding the atomic writer's layout that kubelet.py staged
# (..<time>/ with each file's mode, ..data, one link per name), read-only.
for spec in $POD_SECRET_VOLUMES; do
  IFS='=' read -r path staged mode gid <<<"$spec"
  mkdir -p "$root$path"
  mount -t tmpfs -o "mode=$mode,gid=$gid,size=1m" tmpfs "$root$path"
  cp -a "$staged/." "$root$path/"
  chown "0:$gid" "$root$path" # cp -a gave it the staging directory's
  chmod "$mode" "$root$path"
  mount -o remount,ro,bind "$root$path"
done
for spec in $POD_VOLUMES; do
  path=${spec%%=*}
  mkdir -p "$root$path"
  mount --bind "${spec#*=}" "$root$path"
done

exec python3 "$(dirname "$0")/enter.py" start "$root"

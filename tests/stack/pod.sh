#!/usr/bin/env bash
# One start of one pod of the stack test, the stand-in for a container start.
#
# stack.py runs it as
#   ip netns exec ft-<svc> unshare --mount --pid --uts --cgroup --fork --kill-child \
#     --propagation private bash tests/stack/pod.sh <svc>
# so it is PID 1 of a fresh PID namespace with a private copy of the host's
# mounts, inside the pod's network namespace. It builds the container's view
# of the file system there, then execs the image's own PID 1, supervise, with
# the image's /etc/supervise.toml. Every mount it makes dies with the
# namespace; the host's file system is never written except under $POD_DIR.
#
# The container's file system:
#   /etc /usr /var /home /srv  overlays: the image's docker/<svc>/rootfs/
#                          files above the host's directories; writes go to
#                          a scratch directory that is new on every start
#                          (a container's writable layer)
#   /run, /tmp             fresh tmpfs
#   secret volumes         the manifest's, laid out as the kubelet does
#                          (stack.py), read-only tmpfs at their mountPath
#   volumes                persistent directories bind-mounted (the PVCs)
#   path map               tests/stack/pathmap.txt (Alpine path -> Debian path)
#   users                  the image's users absent on Debian (POD_USERS),
#                          created in the overlay's /etc/passwd
#
# Environment (from stack.py): ROOT, POD_DIR, POD_NAME, TARGET_DIR,
# HOSTS_FILE, POD_SECRET_VOLUMES ("path=staged-dir=mode=gid ..."), POD_VOLUMES
# ("path=dir ..."), POD_CGROUPS (the cgroup hierarchies to mount), POD_USERS ("name[:home:shell] ..."), POD_CONFIG (the
# supervise.toml to install), POD_ENV_FILE (the container's environment, one
# VAR=value a line), POD_NO_NEW_PRIVS (non-empty: the manifest forbids
# privilege escalation) and POD_CAPABILITIES (the manifest's added
# capabilities, "+chown,+kill,...").
set -euo pipefail

svc=$1

# The repository and the test's files may live under a directory that the
# container's view replaces (/tmp) or overlays (/var, /home, ...). Keep the
# host's view of each of them under a private tmpfs first, build the view
# from there, and bind them back at their own paths once it is built, so a
# volume or a secret is always the host's real directory.
host_paths=("$ROOT" "$TARGET_DIR" "$POD_DIR" "$(dirname "$HOSTS_FILE")")
for spec in $POD_VOLUMES; do host_paths+=("${spec#*=}"); done
mount -t tmpfs -o mode=0755 tmpfs /run
host=/run/.host
mkdir "$host"
mount -t tmpfs -o mode=0700 tmpfs "$host"
for path in "${host_paths[@]}"; do
  mkdir -p "$host$path"
  mount --bind "$path" "$host$path"
done

# A copy of the image's rootfs/ on the private tmpfs: overlayfs refuses a
# lower layer that lies inside another one (ELOOP), which the checkout's
# own rootfs/ would be under /var or /usr.
rootfs=$host/image-rootfs
cp -a "$host$ROOT/docker/$svc/rootfs" "$rootfs"
scratch=$host$POD_DIR/scratch

rm -rf "$scratch"
mkdir -p "$scratch"

overlay() { # overlay MOUNTPOINT LOWER... : writable overlay of the lower dirs
  local target=$1 name
  shift
  name=$(printf '%s' "$target" | tr '/' '_')
  mkdir -p "$scratch/up$name" "$scratch/work$name"
  local IFS=:
  mount -t overlay overlay \
    -o "lowerdir=$*,upperdir=$scratch/up$name,workdir=$scratch/work$name" "$target"
}

# The image's files above the host's system directories.
for top in /etc /usr /var /home /srv; do
  if [[ -d $rootfs$top ]]; then overlay "$top" "$rootfs$top" "$top"; else overlay "$top" "$top"; fi
done
mount -t tmpfs -o mode=1777 tmpfs /tmp
for path in "${host_paths[@]}"; do
  mkdir -p "$path"
  mount --bind "$host$path" "$path"
done
umount --lazy "$host" # detaches every bind below it too
rmdir "$host"
rootfs=$ROOT/docker/$svc/rootfs
for top in /run /tmp; do
  if [[ -d $rootfs$top ]]; then cp -a "$rootfs$top/." "$top/"; fi
done

# Names resolve as they do in the cluster (the Services' names).
cp "$HOSTS_FILE" /etc/hosts
cp "$POD_CONFIG" /etc/supervise.toml

# The path map.
while read -r alpine debian; do
  [[ -z $alpine || $alpine == \#* ]] && continue
  debian=${debian//@TARGET@/$TARGET_DIR}
  [[ -e $debian ]] || continue # a binary this pod does not use, or not built
  if [[ -d $debian ]]; then
    mkdir -p "$alpine"
    if [[ -d $rootfs$alpine ]]; then overlay "$alpine" "$rootfs$alpine" "$debian"; else overlay "$alpine" "$debian"; fi
  else
    # A bind mount, not a symbolic link: the pod's users reach the file
    # through the image's path even when the checkout's parents are private.
    mkdir -p "$(dirname "$alpine")"
    rm -f "$alpine"
    touch "$alpine"
    mount --bind "$debian" "$alpine"
  fi
done < "$ROOT/tests/stack/pathmap.txt"

# File capabilities the Dockerfile sets (`setcap CAPS PATH`), on a copy.
while read -r caps path; do
  mountpoint -q "$path" || continue
  cp "$path" "$POD_DIR/scratch/setcap-copy"
  umount "$path"
  cp --remove-destination "$POD_DIR/scratch/setcap-copy" "$path"
  setcap "$caps" "$path"
done < <(sed -n 's/.*setcap \([^ ]*\) \(\/[^ ]*\).*/\1 \2/p' "$ROOT/docker/$svc/Dockerfile")

# Debian's sshd keeps its privilege separation directory in /run (Alpine's
# is /var/empty, part of the image).
mkdir -p /run/sshd

# The image's users that Debian's packages do not create.
for spec in $POD_USERS; do
  IFS=: read -r name home shell <<< "$spec"
  getent group "$name" >/dev/null || groupadd --system "$name"
  if ! getent passwd "$name" >/dev/null; then
    useradd --system --gid "$name" --home-dir "${home:-/nonexistent}" \
      --shell "${shell:-/usr/sbin/nologin}" ${home:+--create-home} "$name"
  fi
done

# Secret volumes as the kubelet makes them: a tmpfs (mode 1777, or the
# fsGroup's variant) holding the atomic writer's layout that stack.py staged
# (..<time>/ with each file's mode, ..data, one link per name), read-only.
for spec in $POD_SECRET_VOLUMES; do
  IFS='=' read -r path staged mode gid <<< "$spec"
  mkdir -p "$path"
  mount -t tmpfs -o "mode=$mode,gid=$gid,size=1m" tmpfs "$path"
  cp -a "$staged/." "$path/"
  chown "0:$gid" "$path" # cp -a gave it the staging directory's
  chmod "$mode" "$path"
  mount -o remount,ro,bind "$path"
done
for spec in $POD_VOLUMES; do
  path=${spec%%=*}
  mkdir -p "$path"
  mount --bind "${spec#*=}" "$path"
done

mount -t proc proc /proc
# The pod's cgroup (stack.py made it, with the manifest's limits, and rooted
# this cgroup namespace there), read-only at /sys/fs/cgroup as under Docker.
for options in $POD_CGROUPS; do
  if [[ $options == cgroup2 ]]; then
    mount -t cgroup2 -o ro cgroup2 /sys/fs/cgroup
    continue
  fi
  mountpoint -q /sys/fs/cgroup || mount -t tmpfs -o mode=0755 cgroup /sys/fs/cgroup
  mkdir -p "/sys/fs/cgroup/$options"
  mount -t cgroup -o "ro,$options" cgroup "/sys/fs/cgroup/$options"
  if [[ $options == *,* ]]; then # e.g. cpu,cpuacct: each name links to it
    for controller in ${options//,/ }; do ln -s "$options" "/sys/fs/cgroup/$controller"; done
  fi
done
hostname "$POD_NAME" # its own UTS namespace, like a pod

mapfile -t container_env < "$POD_ENV_FILE"
cd /
# allowPrivilegeEscalation: false in the manifest is no_new_privs: no setuid
# bit or file capability takes effect in the container.
# capabilities drop ALL + add [...] is the bounding set of the container.
privs=()
[[ -n $POD_NO_NEW_PRIVS ]] && privs+=(--no-new-privs)
[[ -n $POD_CAPABILITIES ]] && privs+=(--bounding-set "-all,$POD_CAPABILITIES")
((${#privs[@]})) && privs=(setpriv "${privs[@]}")
exec "${privs[@]}" env -i "${container_env[@]}" /usr/local/bin/supervise

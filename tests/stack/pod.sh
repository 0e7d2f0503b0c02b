#!/usr/bin/env bash
# One start of one pod of the stack test, the stand-in for a container start.
#
# stack.py runs it as
#   ip netns exec ft-<svc> unshare --mount --pid --uts --fork --kill-child \
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
#   /run/secrets/<secret>  the pod's secrets, read-only, mode 0444
#   volumes                persistent directories bind-mounted (the PVCs)
#   path map               tests/stack/pathmap.txt (Alpine path -> Debian path)
#   users                  the image's users absent on Debian (POD_USERS),
#                          created in the overlay's /etc/passwd
#
# Environment (from stack.py): ROOT, POD_DIR, POD_NAME, TARGET_DIR,
# HOSTS_FILE, SECRETS_DIR, POD_SECRETS ("secret[:key,key] ..."), POD_VOLUMES
# ("path=dir ..."), POD_USERS ("name[:home:shell] ..."), POD_CONFIG (the
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
host_paths=("$ROOT" "$TARGET_DIR" "$POD_DIR" "$SECRETS_DIR" "$(dirname "$HOSTS_FILE")")
for spec in $POD_VOLUMES; do host_paths+=("${spec#*=}"); done
mount -t tmpfs -o mode=0755 tmpfs /run
host=/run/.host
mkdir "$host"
mount -t tmpfs -o mode=0700 tmpfs "$host"
for path in "${host_paths[@]}"; do
  mkdir -p "$host$path"
  mount --bind "$path" "$host$path"
done

rootfs=$host$ROOT/docker/$svc/rootfs
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
    mkdir -p "$(dirname "$alpine")"
    ln -sfn "$debian" "$alpine"
  fi
done < "$ROOT/tests/stack/pathmap.txt"

# File capabilities the Dockerfile sets (`setcap CAPS PATH`), on a copy.
while read -r caps path; do
  [[ -L $path ]] || continue
  cp --remove-destination "$(readlink -f "$path")" "$path"
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

# Secrets and volumes.
# As the kubelet materialises a Secret volume: read-only, files mode 0444
# (the manifests' defaultMode), only the listed keys when items are given.
for spec in $POD_SECRETS; do
  secret=${spec%%:*}
  mkdir -p "/run/secrets/$secret"
  mount -t tmpfs -o mode=0755,size=1m tmpfs "/run/secrets/$secret"
  if [[ $spec == *:* ]]; then
    IFS=, read -r -a keys <<< "${spec#*:}"
  else
    mapfile -t keys < <(ls "$SECRETS_DIR/$secret")
  fi
  for key in "${keys[@]}"; do
    install -m 0444 "$SECRETS_DIR/$secret/$key" "/run/secrets/$secret/$key"
  done
  mount -o remount,ro "/run/secrets/$secret"
done
for spec in $POD_VOLUMES; do
  path=${spec%%=*}
  mkdir -p "$path"
  mount --bind "${spec#*=}" "$path"
done

mount -t proc proc /proc
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

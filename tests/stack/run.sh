#!/usr/bin/env bash
# The stack test: every image's processes on this host, one network namespace
# per pod (see tests/stack/stack.py and README.md, "The stack test").
#
#   tests/stack/run.sh
#
# Builds the images' static musl binaries, makes throw-away secrets with
# setup.sh (into the work directory), builds each image's root filesystem
# from Debian 13 stand-ins (rootfs.py), runs the pods and the checks, and removes every namespace, process, mount and temporary
# file it made, also when it fails or is interrupted. Needs root.
# STACK_PODS / STACK_PHASES (space-separated) narrow a run while debugging.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$ROOT/tests/.work/stack
TARGET=x86_64-unknown-linux-musl
export STACK_WORK=$WORK
export TARGET_DIR=$ROOT/target/$TARGET/release
export SECRETS_DIR=$WORK/secrets
LB_IP=10.77.0.100 # stack.py's load-balancer address

started=$SECONDS
stack_pid=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  if [[ -n $stack_pid ]]; then # interrupted: stack.py stops its pods itself
    kill -TERM "$stack_pid" 2>/dev/null || true
    wait "$stack_pid" 2>/dev/null || true
  fi
  python3 "$ROOT/tests/stack/stack.py" cleanup || true
  [[ -n ${STACK_KEEP:-} ]] || rm -rf "$WORK" # STACK_KEEP=1 keeps the pods' logs
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$ROOT"
if [[ -z ${STACK_SKIP_BUILD:-} ]]; then # set it to reuse binaries while debugging
  echo "==> building the images' binaries (release, $TARGET)"
  CC_x86_64_unknown_linux_musl=musl-gcc \
    cargo build --release --locked --target "$TARGET" --workspace --bins
fi

echo "==> every image's supervise.toml (grafana's is only partly run here)"
for config in docker/*/supervise.toml; do
  "$TARGET_DIR/supervise" check-config "$config"
done

echo "==> secrets (./setup.sh secrets, for $LB_IP)"
mkdir -p "$WORK"
LB_IP=$LB_IP ./setup.sh secrets

echo "==> the images' root filesystems (tests/stack/rootfs.py; cached in tests/.cache/stack)"
# shellcheck disable=SC2086 # STACK_PODS is a list of names
unshare --mount --propagation private python3 "$ROOT/tests/stack/rootfs.py" build ${STACK_PODS:-}

# In the background, so that a signal reaches the traps at once.
stack() {
  python3 "$ROOT/tests/stack/stack.py" "$1" &
  stack_pid=$!
  local status=0
  wait "$stack_pid" || status=$?
  stack_pid=
  return "$status"
}
status=0
stack run || status=$?
if [[ -z ${STACK_PHASES:-} ]]; then # a narrowed run is a debugging run
  echo "==> mutations: each pod from its image without a package it needs"
  stack mutations || status=$?
fi
echo "==> stack test: $((SECONDS - started)) s in all (build included)"
exit "$status"

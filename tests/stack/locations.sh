#!/usr/bin/env bash
# The stack test wherever a checkout lives: runs the nginx pod (overlaid /var
# with the image's own var/, collect as nobody, sshd) and its checks from
# the same checkout bind-mounted at other places, each in a private mount
# namespace so that nothing outside sees it:
#   - under /var/tmp, parent mode 0755 (an overlaid /var: overlayfs refuses
#     nested lower layers, so pod.sh copies the image's rootfs/ first);
#   - under /var/tmp, parent mode 0700 (the pods' users cannot walk the
#     checkout's path, so pod.sh bind-mounts the binaries into the image's
#     paths instead of linking them).
#
#   tests/stack/locations.sh      (after tests/stack/run.sh built the binaries)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# run_from PARENT_MODE: the nginx pod's checks from a checkout under /var/tmp.
run_from() {
  local mode=$1 parent
  parent=$(mktemp -d /var/tmp/ft-location.XXXXXX)
  chmod "$mode" "$parent"
  mkdir "$parent/checkout"
  echo "==> stack test from $parent/checkout (parent mode $mode)"
  local status=0
  # shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
  unshare --mount --propagation private bash -c '
    set -euo pipefail
    mount --bind "$1" "$2"
    STACK_SKIP_BUILD=1 STACK_PODS=nginx STACK_PHASES="web ssh" "$2/tests/stack/run.sh"
  ' run_from "$ROOT" "$parent/checkout" || status=$?
  rmdir "$parent/checkout" "$parent"
  return "$status"
}

main() {
  local failed=0
  run_from 0755 || failed=1
  run_from 0700 || failed=1
  ((failed == 0))
}

main "$@"

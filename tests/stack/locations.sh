#!/usr/bin/env bash
# The stack test wherever a checkout lives: the nginx pod and its checks run
# again from the same checkout bind-mounted under /var/tmp, in a private
# mount namespace so that nothing outside sees it, once with a parent of mode
# 0755 and once of 0700 (the pods' users cannot walk that path): a pod's root
# is built from layers under the checkout, and its volumes and secrets are
# bind-mounted from there.
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

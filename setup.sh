#!/usr/bin/env bash
# Brings the ft_services stack up on minikube, and down again.
#
#   ./setup.sh [up]            start minikube if needed, enable MetalLB and the
#                              dashboard, build the images, generate secrets
#                              (once), apply k8s/, wait for every rollout, print
#                              the URLs
#   ./setup.sh down [--purge]  remove the stack; the volumes (MySQL, InfluxDB,
#                              FTPS data) are kept unless --purge
#   ./setup.sh status          each service: type, address:ports, readiness
#   ./setup.sh credentials     the logins, read from the secrets folder
#   ./setup.sh secrets         only generate the secret files (idempotent: what
#                              exists is kept) for the address LB_IP; no cluster
#                              needed, only openssl and ssh-keygen
#   ./setup.sh backup [FILE]   one archive of the running stack's data: MySQL
#                              dump, InfluxDB backup, FTPS files, the secrets
#                              (encrypted; left out without a passphrase);
#                              default backups/ft_services-<UTC time>.tar.gz
#   ./setup.sh restore FILE    checks FILE whole, then puts its data back into
#                              the running stack (the secrets too, given the
#                              passphrase) and waits for every rollout
#
# Hosts: Linux (x86_64, arm64) and macOS (Intel, Apple Silicon); the images
# are built for the node's architecture, linux/amd64 or linux/arm64. Windows
# is refused (see the README).
#
# Environment:
#   MINIKUBE_DRIVER   minikube driver when minikube has to be started. Linux:
#                     docker by default. macOS: one whose node network the Mac
#                     can reach, so that the MetalLB address answers there:
#                     vfkit (network vmnet-shared), qemu (network socket_vmnet)
#                     or, on Intel, hyperkit; by default the first of these
#                     that is installed. The docker driver is refused on macOS.
#   LB_IP             the one MetalLB address of every LoadBalancer Service;
#                     default: minikube's network with host number 240
#                     (192.168.49.2 -> 192.168.49.240); required by `secrets`
#   SECRETS_DIR       where secrets are generated and kept (.secrets, git-ignored)
#   ROLLOUT_TIMEOUT   seconds to wait for every Deployment to be ready (600)
#   FT_BACKUP_PASSPHRASE  encrypts the secrets in a backup (asked on a
#                     terminal when unset)
#
# Secrets layout: SECRETS_DIR/<secret>/<key> for each Kubernetes Secret of
# docs/contract.md (ft-tls, ft-mysql, ...), applied as-is; SECRETS_DIR/local/
# holds what never goes into the cluster: the CA key, the SSH login key and the
# plain passwords whose Secrets carry only hashes.
set -euo pipefail

# Associative arrays and negative indexes: macOS's bash 3.2 lacks them.
if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 3))); then
  echo "error: bash 4.3 or later is needed (this is $BASH_VERSION)" >&2
  [[ $(uname -s) == Darwin ]] &&
    echo "macOS ships bash 3.2: brew install bash, with Homebrew's bin first in PATH (or run: \"\$(brew --prefix)/bin/bash\" ./setup.sh)" >&2
  exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SECRETS_DIR=${SECRETS_DIR:-$ROOT/.secrets}
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-600}
MINIKUBE_DRIVER=${MINIKUBE_DRIVER:-}
# minikube's --network for the driver (macOS drivers), empty for none.
MINIKUBE_NETWORK=""

NAMESPACE=ft-services
# Images are tagged with this fixed tag and never pulled.
IMAGE_TAG=ft-services
BUILDER_IMAGE=ft-build:latest
SERVICES=(nginx wordpress phpmyadmin mysql influxdb grafana ftps)
SECRETS=(ft-tls ft-mysql ft-influxdb ft-wordpress ft-phpmyadmin ft-ftps ft-ssh ft-grafana)
# The address committed in k8s/lb.env and k8s/metallb/*.yaml; replaced by the
# real one in the copy that is applied.
PLACEHOLDER_IP=192.168.49.240
# Host number of the MetalLB address inside minikube's network: far above the
# addresses the docker driver hands to nodes (.2, .3, ...) and its gateway (.1).
LB_HOST_NUMBER=240
# Label on every image: hash of the files it is built from.
INPUTS_LABEL=org.ft-services.inputs
FTPS_ITERATIONS=100000

say() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# A prerequisite of this machine is missing or unsupported: nothing was started.
refuse() {
  printf 'error: %s\n' "$1" >&2
  shift
  (($#)) && printf '  %s\n' "$@" >&2
  exit 2
}

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

# --- prerequisites ----------------------------------------------------------

# Prints one message per missing tool and fails if any is missing.
require() {
  local missing=0 tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 && continue
    missing=1
    case $tool in
      minikube) echo "error: minikube is not installed: install minikube (a local Kubernetes) and run ./setup.sh again" >&2 ;;
      docker) echo "error: docker is not installed: install the Docker CLI (and Docker Engine for the docker driver)" >&2 ;;
      kubectl) echo "error: kubectl is not installed: install kubectl, the Kubernetes command-line client" >&2 ;;
      openssl) echo "error: openssl is not installed: it generates the TLS certificates and passwords (OpenSSL 3)" >&2 ;;
      ssh-keygen) echo "error: ssh-keygen is not installed: it generates the SSH keys (package openssh-client)" >&2 ;;
      python3) echo "error: python3 is not installed: it hashes the FTPS password (PBKDF2) without putting it on a command line" >&2 ;;
      *) echo "error: $tool is not installed" >&2 ;;
    esac
  done
  ((missing == 0)) || exit 2
}

require_docker_engine() {
  [[ $MINIKUBE_DRIVER == docker ]] || return 0
  docker info >/dev/null 2>&1 \
    || { echo "error: Docker Engine is not running (or not reachable by this user): minikube's docker driver needs it" >&2; exit 2; }
}

# The secrets need OpenSSL 3 (e.g. `openssl passwd -6` for the SSH password
# hash): macOS's own openssl is LibreSSL, which has neither.
require_openssl3() {
  local version
  version=$(openssl version 2>/dev/null || true)
  [[ $version =~ ^OpenSSL\ ([3-9]|[1-9][0-9])\. ]] && return 0
  if [[ $(uname -s) == Darwin ]]; then
    refuse "openssl is ${version:-not working}, not OpenSSL 3: brew install openssl@3, then put \"\$(brew --prefix openssl@3)/bin\" first in PATH"
  fi
  refuse "openssl is ${version:-not working}: OpenSSL 3 is needed (Debian/Ubuntu: apt install openssl)"
}

# --- host -------------------------------------------------------------------

# HOST_OS (linux or macos) and HOST_ARCH (amd64 or arm64) of this machine.
# Windows and other systems or architectures are refused before anything starts.
detect_host() {
  local kernel machine
  kernel=$(uname -s)
  machine=$(uname -m)
  case $kernel in
    Linux) HOST_OS=linux ;;
    Darwin) HOST_OS=macos ;;
    MINGW* | MSYS* | CYGWIN* | Windows*)
      refuse "Windows is not supported: setup.sh is a bash script for Linux and macOS (Git Bash, MSYS2 and Cygwin lack parts of what it runs and are not tested), and no minikube driver on Windows was checked to give the browser a route to the stack's MetalLB address." \
        "use a Linux or macOS machine; inside WSL2 setup.sh runs as on Linux, but the address answers only inside WSL2, not in Windows' browser." ;;
    *) refuse "unsupported system $kernel: setup.sh runs on Linux and macOS" ;;
  esac
  case $machine in
    x86_64 | amd64) HOST_ARCH=amd64 ;;
    arm64 | aarch64) HOST_ARCH=arm64 ;;
    *) refuse "unsupported architecture $machine: the images are built for linux/amd64 and linux/arm64 nodes, which minikube runs on x86_64 and arm64 machines" ;;
  esac
  if [[ $HOST_OS == linux && $(uname -r) == *[Mm]icrosoft* ]]; then
    warn "this Linux is WSL2: the stack's address will answer inside WSL2, not in Windows' browser"
  fi
}

# Homebrew's prefix (where socket_vmnet puts its socket), or its default.
brew_prefix() {
  if command -v brew >/dev/null 2>&1; then
    brew --prefix
  elif [[ $HOST_ARCH == arm64 ]]; then
    echo /opt/homebrew
  else
    echo /usr/local
  fi
}

# QEMU's system emulator for this Mac.
qemu_binary() {
  if [[ $HOST_ARCH == arm64 ]]; then echo qemu-system-aarch64; else echo qemu-system-x86_64; fi
}

MACOS_DRIVERS="vfkit (network vmnet-shared), qemu (network socket_vmnet) or, on an Intel Mac, hyperkit"
VFKIT_INSTALL="brew install vfkit (minikube 1.36 or later, macOS 14 or later)"
VMNET_HELPER_INSTALL="install vmnet-helper as minikube's vfkit page says: on macOS 26 or later brew tap nirs/vmnet-helper && brew install vmnet-helper; on macOS 15 or earlier its install script (releases of github.com/minikube-machine/vmnet-helper), which puts it in /opt/vmnet-helper with a sudoers rule"
QEMU_INSTALL="brew install qemu socket_vmnet, then start socket_vmnet as root: sudo \"\$(command -v brew)\" services start socket_vmnet"

# The driver and network minikube is started with. On macOS the node must
# be on a network the Mac reaches: the LoadBalancer Services answer on one
# MetalLB address of the node's subnet, which MetalLB announces by ARP on
# the node's interface. vfkit with vmnet-shared (vmnet-helper), qemu with
# socket_vmnet and hyperkit put the node on a vmnet bridge of the Mac; the
# docker driver puts it in Docker Desktop's VM, behind NAT.
choose_driver() {
  if [[ $HOST_OS == linux ]]; then
    MINIKUBE_DRIVER=${MINIKUBE_DRIVER:-docker}
    return 0
  fi
  local driver=$MINIKUBE_DRIVER
  if [[ -z $driver ]]; then
    if command -v vfkit >/dev/null 2>&1; then
      driver=vfkit
    elif command -v "$(qemu_binary)" >/dev/null 2>&1; then
      driver=qemu
    elif [[ $HOST_ARCH == amd64 ]] && command -v hyperkit >/dev/null 2>&1; then
      driver=hyperkit
    else
      refuse "no minikube driver whose node the Mac can reach is installed; setup.sh uses $MACOS_DRIVERS." \
        "for vfkit: $VFKIT_INSTALL, and $VMNET_HELPER_INSTALL" \
        "or for qemu: $QEMU_INSTALL"
    fi
  fi
  case $driver in
    docker | podman)
      refuse "the $driver driver cannot serve this stack on macOS: minikube's node then runs inside ${driver^} Desktop's Linux VM, on a network the Mac has no route to, so the MetalLB address every service answers on would answer nothing on this Mac." \
        "start minikube with a driver whose node network the Mac reaches: $MACOS_DRIVERS; e.g. MINIKUBE_DRIVER=vfkit ./setup.sh ($VFKIT_INSTALL, and $VMNET_HELPER_INSTALL), or leave MINIKUBE_DRIVER unset to take the first one installed. A cluster made with the $driver driver goes first: minikube delete" ;;
    vfkit)
      command -v vfkit >/dev/null 2>&1 || refuse "vfkit is not installed: $VFKIT_INSTALL"
      [[ -x /opt/vmnet-helper/bin/vmnet-helper ]] || command -v vmnet-helper >/dev/null 2>&1 ||
        refuse "vmnet-helper is not installed: vfkit's vmnet-shared network, the one the Mac reaches the node on, needs it: $VMNET_HELPER_INSTALL"
      MINIKUBE_NETWORK=vmnet-shared ;;
    qemu | qemu2)
      driver=qemu
      command -v "$(qemu_binary)" >/dev/null 2>&1 || refuse "QEMU ($(qemu_binary)) is not installed: $QEMU_INSTALL"
      local prefix
      prefix=$(brew_prefix)
      [[ -S $prefix/var/run/socket_vmnet || -S /var/run/socket_vmnet ]] ||
        refuse "socket_vmnet is not running (no socket $prefix/var/run/socket_vmnet): qemu's socket_vmnet network, the one the Mac reaches the node on, needs it: $QEMU_INSTALL"
      MINIKUBE_NETWORK=socket_vmnet ;;
    hyperkit)
      [[ $HOST_ARCH == amd64 ]] || refuse "hyperkit runs on Intel Macs only; on Apple Silicon use vfkit or qemu ($MACOS_DRIVERS)"
      command -v hyperkit >/dev/null 2>&1 || refuse "hyperkit is not installed: brew install hyperkit (minikube deprecated it: vfkit is the way forward)"
      warn "minikube deprecated the hyperkit driver: vfkit (network vmnet-shared) replaces it on Intel Macs too" ;;
    *)
      refuse "the $driver driver is not supported by setup.sh on macOS: it starts minikube only with $MACOS_DRIVERS, whose node network the Mac reaches" ;;
  esac
  MINIKUBE_DRIVER=$driver
}

# --- secrets ----------------------------------------------------------------

random_password() {
  local raw
  raw=$(openssl rand -base64 33)
  raw=${raw//[^A-Za-z0-9]/}
  printf '%s' "${raw:0:24}"
}

# Writes stdin to $1 unless it exists: generated values are never replaced.
keep_or_write() {
  local file=$1
  if [[ -s $file ]]; then
    cat >/dev/null
  else
    cat >"$file.tmp" && mv "$file.tmp" "$file"
  fi
}

password_file() {
  [[ -s $1 ]] || random_password | keep_or_write "$1"
}

# ftpsd's users-file hash of the password in file $1:
# $pbkdf2-sha256$i=N$<salt>$<key>, standard base64 without padding (see
# crates/ftpsd/src/users.rs). The password goes through stdin: a secret on a
# command line is visible to every user in `ps`.
ftps_hash() {
  python3 "$ROOT/setup/ftps_hash.py" "$FTPS_ITERATIONS" <"$1"
}

# The CA's certificate revocation list (empty: nothing is revoked), served
# by the nginx front at http://LB_IP/ca.crl, where the server certificate
# says it is; valid as long as the certificate.
generate_crl() {
  local dir=$SECRETS_DIR/ft-tls db=$SECRETS_DIR/local/ca-db
  mkdir -p "$db"
  [[ -f $db/index.txt ]] || : >"$db/index.txt"
  [[ -s $db/crlnumber ]] || echo 01 >"$db/crlnumber"
  cat >"$db/ca.cnf" <<EOF
[ca]
default_ca = ft
[ft]
database = $db/index.txt
crlnumber = $db/crlnumber
default_md = sha256
default_crl_days = 397
EOF
  openssl ca -gencrl -config "$db/ca.cnf" -keyfile "$SECRETS_DIR/local/ca.key" -cert "$dir/ca.crt" \
    -out "$dir/ca.crl.tmp" 2>/dev/null
  mv "$dir/ca.crl.tmp" "$dir/ca.crl"
}

# CA (kept in local/) and one server certificate for the address and every
# Service name; the certificate is made again when the address changes.
generate_tls() {
  local ip=$1 dir=$SECRETS_DIR/ft-tls local=$SECRETS_DIR/local
  if [[ ! -s $local/ca.key || ! -s $dir/ca.crt ]]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$local/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$local/ca.key" -sha256 -days 3650 -subj "/O=ft_services/CN=ft_services CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$dir/ca.crt"
    rm -f "$dir/tls.crt"
  fi
  if [[ -s $dir/tls.crt && -s $dir/tls.key && -s $dir/ca.crl && "$(cat "$local/tls-address" 2>/dev/null)" == "$ip" ]] &&
    openssl x509 -in "$dir/tls.crt" -noout -ext crlDistributionPoints 2>/dev/null | grep -q "http://$ip/ca.crl"; then
    return 0
  fi
  local san="IP:$ip,IP:127.0.0.1,DNS:localhost" svc
  for svc in "${SERVICES[@]}"; do
    san+=",DNS:$svc,DNS:$svc.$NAMESPACE,DNS:$svc.$NAMESPACE.svc,DNS:$svc.$NAMESPACE.svc.cluster.local"
  done
  local tmp
  tmp=$(mktemp -d)
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/tls.key" 2>/dev/null
  openssl req -new -key "$tmp/tls.key" -subj "/O=ft_services/CN=$ip" -out "$tmp/tls.csr"
  printf '%s\n' "subjectAltName=$san" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
    "crlDistributionPoints=URI:http://$ip/ca.crl" >"$tmp/ext"
  openssl x509 -req -in "$tmp/tls.csr" -CA "$dir/ca.crt" -CAkey "$local/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 397 -sha256 -extfile "$tmp/ext" -out "$tmp/tls.crt" 2>/dev/null
  mv "$tmp/tls.key" "$dir/tls.key"
  mv "$tmp/tls.crt" "$dir/tls.crt"
  generate_crl
  printf '%s\n' "$ip" >"$local/tls-address"
  rm -rf "$tmp"
}

generate_ssh() {
  local ip=$1 dir=$SECRETS_DIR/ft-ssh local=$SECRETS_DIR/local
  if [[ ! -s $local/id_ed25519 ]]; then
    rm -f "$local/id_ed25519.pub"
    ssh-keygen -q -t ed25519 -N '' -C "ft@ft_services" -f "$local/id_ed25519"
  fi
  cp "$local/id_ed25519.pub" "$dir/authorized_keys"
  if [[ ! -s $dir/ssh_host_ed25519_key ]]; then
    rm -f "$local/ssh_host_ed25519_key.pub"
    ssh-keygen -q -t ed25519 -N '' -C "nginx" -f "$local/ssh_host_ed25519_key"
    mv "$local/ssh_host_ed25519_key" "$dir/ssh_host_ed25519_key"
  fi
  # Lets `ssh -o UserKnownHostsFile=...` check the host key from the first login.
  printf '%s %s\n' "$ip" "$(cut -d' ' -f1,2 "$local/ssh_host_ed25519_key.pub")" >"$local/known_hosts"
  password_file "$local/ssh-password"
  [[ -s $dir/password-hash ]] || openssl passwd -6 -stdin <"$local/ssh-password" | tr -d '\n' | keep_or_write "$dir/password-hash"
}

# The site's users but its administrator, `admin`, whose password is
# admin-password alone. A users file of an earlier setup.sh that lists the
# administrator loses that line.
generate_wordpress_users() {
  local dir=$SECRETS_DIR/ft-wordpress
  password_file "$dir/admin-password"
  if [[ -s $dir/users ]]; then
    if grep -q '^admin:' "$dir/users"; then
      grep -v '^admin:' "$dir/users" >"$dir/users.tmp" && mv "$dir/users.tmp" "$dir/users"
    fi
    return 0
  fi
  {
    echo "# login:role:email:password (generated by setup.sh; the administrator,"
    echo "# admin, has ft-wordpress/admin-password)"
    local user
    for user in editor author contributor subscriber; do
      printf '%s:%s:%s@ft-services.test:%s\n' "$user" "$user" "$user" "$(random_password)"
    done
  } | keep_or_write "$dir/users"
}

generate_ftps_users() {
  local dir=$SECRETS_DIR/ft-ftps local=$SECRETS_DIR/local
  password_file "$local/ftps-password"
  [[ -s $dir/users ]] && return 0
  {
    echo "# name:hash (generated by setup.sh; the password is in local/ftps-password)"
    printf 'ft:%s\n' "$(ftps_hash "$local/ftps-password")"
  } | keep_or_write "$dir/users"
}

# Every secret file of docs/contract.md; existing ones are kept.
generate_secrets() {
  local ip=$1 name
  require openssl ssh-keygen python3
  require_openssl3
  [[ $ip =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "LB_IP must be an IPv4 address, got '$ip'"
  (
    umask 077
    mkdir -p "$SECRETS_DIR/local"
    for name in "${SECRETS[@]}"; do mkdir -p "$SECRETS_DIR/$name"; done
    for name in root wordpress phpmyadmin collect; do password_file "$SECRETS_DIR/ft-mysql/$name-password"; done
    for name in admin collect grafana; do password_file "$SECRETS_DIR/ft-influxdb/$name-password"; done
    password_file "$SECRETS_DIR/ft-grafana/admin-password"
    # phpMyAdmin's cookie encryption key: 32 random bytes, hex.
    [[ -s $SECRETS_DIR/ft-phpmyadmin/blowfish-secret ]] ||
      openssl rand -hex 32 | tr -d '\n' | keep_or_write "$SECRETS_DIR/ft-phpmyadmin/blowfish-secret"
    generate_tls "$ip"
    generate_ssh "$ip"
    generate_wordpress_users
    generate_ftps_users
  )
}

# --- cluster ----------------------------------------------------------------

minikube_running() {
  [[ "$(minikube status --format '{{.Host}} {{.APIServer}}' 2>/dev/null || true)" == "Running Running" ]]
}

# minikube's default networking does not enforce NetworkPolicy; Calico does.
CNI=calico
# DaemonSets of the CNIs that enforce NetworkPolicy.
POLICY_ENGINES=(calico-node cilium kube-router weave-net antrea-agent)

# "DRIVER NETWORK" of the running cluster, as minikube's profile records them
# (the active profile, else "minikube"); empty when minikube does not say.
running_cluster_driver() {
  minikube profile list --output json 2>/dev/null | python3 "$ROOT/setup/minikube_profile.py" || true
}

# On macOS a cluster started earlier must sit on a network the Mac reaches.
check_running_cluster() {
  [[ $HOST_OS == macos ]] || return 0
  local driver="" network=""
  read -r driver network < <(running_cluster_driver) || true
  case $driver/$network in
    vfkit/vmnet-shared | qemu/socket_vmnet | qemu2/socket_vmnet | hyperkit/*) return 0 ;;
    /*) warn "cannot tell which driver the running minikube uses: its services answer on this Mac only with $MACOS_DRIVERS" ;;
    *) refuse "the running minikube uses the $driver driver${network:+ with network $network}: the Mac cannot reach that node's network, so the MetalLB address would answer nothing here." \
      "recreate it with $MACOS_DRIVERS: minikube delete && ./setup.sh" ;;
  esac
}

start_minikube() {
  if minikube_running; then
    say "minikube is running"
    check_running_cluster
  else
    local args=(--driver="$MINIKUBE_DRIVER")
    [[ -n $MINIKUBE_NETWORK ]] && args+=(--network="$MINIKUBE_NETWORK")
    args+=(--cni="$CNI")
    say "starting minikube (driver $MINIKUBE_DRIVER${MINIKUBE_NETWORK:+, network $MINIKUBE_NETWORK}, CNI $CNI)"
    minikube start "${args[@]}"
  fi
  say "enabling the metallb and dashboard add-ons"
  minikube addons enable metallb >/dev/null
  minikube addons enable dashboard >/dev/null
}

# Prints the CNI that enforces NetworkPolicy in this cluster, if any.
policy_engine() {
  local daemonsets name
  daemonsets=$(kubectl -n kube-system get daemonsets -o jsonpath='{.items[*].metadata.name}' 2>/dev/null || true)
  for name in "${POLICY_ENGINES[@]}"; do
    if [[ " $daemonsets " == *" $name "* ]]; then
      printf '%s' "$name"
      return 0
    fi
  done
  return 1
}

# Says whether the NetworkPolicies of k8s/ will be enforced: a cluster
# started without a policy-enforcing CNI applies them and ignores them.
check_network_policies() {
  local engine
  if engine=$(policy_engine); then
    say "network policies are enforced ($engine)"
    NETWORK_POLICIES="enforced by $engine"
  else
    warn "this cluster's network plugin does not enforce NetworkPolicy: every pod can reach MySQL, InfluxDB and every metrics port."
    warn "to fix it, recreate the cluster with a CNI that does: minikube delete && ./setup.sh (starts minikube with --cni=$CNI)"
    NETWORK_POLICIES="NOT enforced (see the warning above)"
  fi
}
NETWORK_POLICIES="unknown"

# The MetalLB address: LB_IP, or minikube's network with host number 240.
choose_lb_ip() {
  if [[ -n ${LB_IP:-} ]]; then
    printf '%s' "$LB_IP"
    return
  fi
  local node
  node=$(minikube ip)
  [[ $node =~ ^([0-9]+\.[0-9]+\.[0-9]+)\.([0-9]+)$ ]] || die "unexpected 'minikube ip': $node"
  if [[ ${BASH_REMATCH[2]} == "$LB_HOST_NUMBER" ]]; then
    die "minikube's node has the address $node: set LB_IP to another free address of its network"
  fi
  printf '%s.%s' "${BASH_REMATCH[1]}" "$LB_HOST_NUMBER"
}

# A pool of exactly one address, in both MetalLB configuration styles.
configure_metallb() {
  local ip=$1
  say "MetalLB: pool of one address, $ip"
  sed "s/${PLACEHOLDER_IP//./\\.}/$ip/g" "$ROOT/k8s/metallb/legacy.yaml" | kubectl apply -f - >/dev/null
  if kubectl get crd ipaddresspools.metallb.io >/dev/null 2>&1; then
    # The resources are checked by MetalLB's webhook: its controller must run.
    kubectl -n metallb-system rollout status deployment/controller --timeout=180s >/dev/null
    sed "s/${PLACEHOLDER_IP//./\\.}/$ip/g" "$ROOT/k8s/metallb/pool.yaml" | kubectl apply -f - >/dev/null
  fi
}

# --- images -----------------------------------------------------------------

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi
}

# Hash of the named files and folders (paths and contents) under ROOT, plus
# any extra words; what an image is built from.
inputs_hash() {
  local extra=$1
  shift
  {
    printf '%s\n' "$extra"
    (cd "$ROOT" && find "$@" -type f ! -path '*/target/*' -print0 | LC_ALL=C sort -z | xargs -0 cat -- | sha256)
    (cd "$ROOT" && find "$@" -type f ! -path '*/target/*' | LC_ALL=C sort)
  } | sha256 | cut -c1-16
}

# The platform of minikube's node, which runs the images: the architecture
# of the Docker Engine they are built into.
node_platform() {
  local arch
  arch=$(docker version --format '{{.Server.Arch}}' 2>/dev/null || true)
  case $arch in
    amd64 | x86_64) echo linux/amd64 ;;
    arm64 | aarch64) echo linux/arm64 ;;
    *) die "minikube's Docker reports the architecture '${arch}': the images are built for linux/amd64 and linux/arm64 nodes only" ;;
  esac
}
NODE_PLATFORM=""

# Builds an image for NODE_PLATFORM unless one with the same inputs label exists.
build_image() {
  local image=$1 dockerfile=$2 hash=$3 current
  [[ -f $ROOT/$dockerfile ]] || die "$dockerfile not found"
  current=$(docker image inspect -f "{{ index .Config.Labels \"$INPUTS_LABEL\" }}" "$image" 2>/dev/null || true)
  if [[ $current == "$hash" ]]; then
    say "image $image is up to date"
    return
  fi
  say "building $image"
  (cd "$ROOT" && docker build --platform "$NODE_PLATFORM" --label "$INPUTS_LABEL=$hash" -t "$image" -f "$dockerfile" .)
}

# Builds the builder, then every service image, into minikube's Docker.
# Sets IMAGE_HASHES[service] for the pod annotations.
declare -A IMAGE_HASHES=()
build_images() {
  local docker_env svc builder_hash
  docker_env=$(minikube docker-env --shell bash)
  eval "$docker_env"
  NODE_PLATFORM=$(node_platform)
  say "images for $NODE_PLATFORM, minikube's node"
  # The platform is an input: images of another architecture are rebuilt.
  builder_hash=$(inputs_hash "builder $NODE_PLATFORM" Cargo.toml Cargo.lock crates docker/build)
  build_image "$BUILDER_IMAGE" docker/build/Dockerfile "$builder_hash"
  for svc in "${SERVICES[@]}"; do
    IMAGE_HASHES[$svc]=$(inputs_hash "$builder_hash" "docker/$svc")
    build_image "$svc:$IMAGE_TAG" "docker/$svc/Dockerfile" "${IMAGE_HASHES[$svc]}"
  done
}

# --- apply ------------------------------------------------------------------

apply_secrets() {
  local name
  for name in "${SECRETS[@]}"; do
    kubectl -n "$NAMESPACE" create secret generic "$name" --from-file="$SECRETS_DIR/$name" --dry-run=client -o yaml \
      | kubectl apply -f - >/dev/null
  done
}

# Applies a copy of k8s/ with the real address, and pod annotations that
# change (and so roll the pod) exactly when its image or the secrets change.
apply_stack() {
  local ip=$1 work svc secrets_hash
  work=$(mktemp -d)
  cp -R "$ROOT/k8s" "$work/k8s"
  printf 'LB_IP=%s\n' "$ip" >"$work/k8s/lb.env"
  secrets_hash=$(inputs_hash "" "${SECRETS[@]/#/${SECRETS_DIR#"$ROOT"/}/}")
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources: [k8s]"
    echo "patches:"
    for svc in "${SERVICES[@]}"; do
      cat <<EOF
- patch: |-
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: $svc, namespace: $NAMESPACE}
    spec:
      template:
        metadata:
          annotations:
            ft-services/image-inputs: "${IMAGE_HASHES[$svc]}"
            ft-services/secrets: "$secrets_hash"
EOF
    done
  } >"$work/kustomization.yaml"
  say "applying k8s/ (namespace $NAMESPACE)"
  kubectl apply -f "$ROOT/k8s/namespace.yaml" >/dev/null
  apply_secrets
  local rc=0
  kubectl apply -k "$work" >/dev/null || rc=$?
  rm -rf "$work"
  ((rc == 0)) || die "kubectl apply -k failed"
}

# One progress line until every Deployment is rolled out and ready.
wait_for_rollout() {
  local deadline=$((SECONDS + ROLLOUT_TIMEOUT)) line name gen observed want updated ready available
  local waiting last="" svc
  local -A done_=()
  while :; do
    done_=()
    while IFS=' ' read -r name gen observed want updated ready available; do
      [[ -n $name ]] || continue
      if [[ ${observed:-0} -ge $gen && ${updated:-0} -eq $want && ${ready:-0} -eq $want && ${available:-0} -eq $want ]]; then
        done_[$name]=1
      fi
    done < <(kubectl -n "$NAMESPACE" get deployments -o \
      jsonpath='{range .items[*]}{.metadata.name} {.metadata.generation} {.status.observedGeneration} {.spec.replicas} {.status.updatedReplicas} {.status.readyReplicas} {.status.availableReplicas}{"\n"}{end}')
    waiting=()
    for svc in "${SERVICES[@]}"; do
      [[ -n ${done_[$svc]:-} ]] || waiting+=("$svc")
    done
    line="rollout: $((${#SERVICES[@]} - ${#waiting[@]}))/${#SERVICES[@]} ready"
    ((${#waiting[@]})) && line+=", waiting for ${waiting[*]}"
    if [[ -t 1 ]]; then
      printf '\r\033[K%s (%ds)' "$line" "$((ROLLOUT_TIMEOUT - deadline + SECONDS))"
    elif [[ $line != "$last" ]]; then
      printf '%s\n' "$line"
    fi
    last=$line
    ((${#waiting[@]})) || break
    if ((SECONDS >= deadline)); then
      [[ -t 1 ]] && echo
      kubectl -n "$NAMESPACE" get pods >&2 || true
      die "not ready after ${ROLLOUT_TIMEOUT}s: ${waiting[*]} (see kubectl -n $NAMESPACE describe pod)"
    fi
    sleep 2
  done
  [[ -t 1 ]] && echo
  return 0
}

# --- backup and restore -----------------------------------------------------

# The parts of a backup, each made and put back in its pod by the image's own
# `ft-data backup` (to stdout) and `ft-data restore` (from stdin), run with
# kubectl exec as the container's root (docker/<service>/rootfs/usr/local/bin/ft-data;
# what each part holds is in docs/contract.md). A restore is only given a
# part whose checksum was verified.
BACKUP_PARTS=(mysql influxdb ftps wordpress grafana)
declare -A BACKUP_FILE=([mysql]=mysql.sql [influxdb]=influxdb.tar [ftps]=ftps.tar
  [wordpress]=wordpress.tar [grafana]=grafana.tar)
# Pods restarted after their part is back: Grafana opens its database once.
RESTART_AFTER_RESTORE=(grafana)
BACKUP_FORMAT="ft_services-backup 1"
# How the secrets part is encrypted, both ways (OpenSSL, key from the passphrase).
SECRETS_CIPHER=(-aes-256-cbc -pbkdf2 -iter 600000)

# The passphrase that encrypts the secrets in an archive: FT_BACKUP_PASSPHRASE,
# or asked on the terminal; empty when neither.
backup_passphrase() {
  if [[ -n ${FT_BACKUP_PASSPHRASE:-} ]]; then
    return 0
  fi
  if [[ -t 0 ]]; then
    local again
    read -r -s -p "passphrase for the secrets (empty: leave them out): " FT_BACKUP_PASSPHRASE && echo >&2
    if [[ -n $FT_BACKUP_PASSPHRASE && ${1:-} == confirm ]]; then
      read -r -s -p "again: " again && echo >&2
      [[ $again == "$FT_BACKUP_PASSPHRASE" ]] || die "the passphrases differ"
    fi
  fi
  export FT_BACKUP_PASSPHRASE=${FT_BACKUP_PASSPHRASE:-}
}

progress() {
  if [[ -t 1 ]]; then printf '\r\033[K==> %s' "$*"; else printf '==> %s\n' "$*"; fi
}

# Each Deployment as "name replicas ready" (ready empty while none is).
deployment_readiness() {
  kubectl -n "$NAMESPACE" get deployments -o \
    jsonpath='{range .items[*]}{.metadata.name} {.spec.replicas} {.status.readyReplicas}{"\n"}{end}'
}

# Fails unless every Deployment holding data has a ready pod.
require_stack_up() {
  local name want ready down=()
  local -A seen=()
  while IFS=' ' read -r name want ready; do
    [[ -n $name && ${ready:-0} -ge 1 ]] && seen[$name]=1
  done < <(deployment_readiness 2>/dev/null || true)
  for name in "${BACKUP_PARTS[@]}"; do
    [[ -n ${seen[$name]:-} ]] || down+=("$name")
  done
  ((${#down[@]} == 0)) || die "the stack is not up (no ready pod for: ${down[*]}): ./setup.sh up first"
}

# Runs `ft-data $2` in the pod of Deployment $1 (more kubectl exec options after).
pod_data() {
  local svc=$1 action=$2
  shift 2
  kubectl -n "$NAMESPACE" exec "$@" "deploy/$svc" -c "$svc" -- ft-data "$action"
}

cmd_backup() {
  require kubectl openssl sha256sum tar gzip
  local file=${1:-$ROOT/backups/ft_services-$(date -u +%Y%m%dT%H%M%SZ).tar.gz}
  [[ $file == *.tar.gz ]] || die "a backup file name ends in .tar.gz: $file"
  require_stack_up
  backup_passphrase confirm
  mkdir -p "$(dirname "$file")"
  local work part svc
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # the folder is known now
  trap "rm -rf '$work' '$file.partial'" EXIT
  mkdir "$work/parts"
  for svc in "${BACKUP_PARTS[@]}"; do
    part=${BACKUP_FILE[$svc]}
    progress "backup: $part from the $svc pod"
    pod_data "$svc" backup >"$work/parts/$part" \
      || { echo >&2; die "backup of $svc failed (kubectl exec into deploy/$svc): no archive written"; }
  done
  if [[ -n $FT_BACKUP_PASSPHRASE ]]; then
    progress "backup: secrets (encrypted)"
    # not the dashboard proxy's pid and log: they belong to this machine
    tar -C "$SECRETS_DIR" --exclude='./local/dashboard.*' -cf - . \
      | openssl enc "${SECRETS_CIPHER[@]}" -salt -pass env:FT_BACKUP_PASSPHRASE >"$work/parts/secrets.tar.enc"
  else
    [[ -t 1 ]] && echo
    warn "no passphrase (FT_BACKUP_PASSPHRASE): the secrets are left out; keep $SECRETS_DIR yourself, or the restored stack cannot be logged into with the old passwords"
  fi
  {
    echo "format $BACKUP_FORMAT"
    echo "created $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "address $(cat "$SECRETS_DIR/local/tls-address" 2>/dev/null || echo unknown)"
    echo "source $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
    local server
    server=$(sed -n '1,20s/^-- Server version[[:space:]]*//p' "$work/parts/mysql.sql" | head -1)
    echo "mariadb ${server:-unknown}"
    (cd "$work/parts" && for part in *; do echo "part $part $(wc -c <"$part")"; done)
  } >"$work/parts/MANIFEST"
  (cd "$work/parts" && sha256sum -- * >SHA256SUMS)
  progress "backup: writing $file"
  tar -C "$work/parts" -czf "$file.partial" .
  mv "$file.partial" "$file"
  [[ -t 1 ]] && echo
  say "backup written: $file ($(wc -c <"$file") bytes)"
  sed -n 's/^part \([^ ]*\) \(.*\)/  \1: \2 bytes/p' "$work/parts/MANIFEST"
  trap - EXIT
  rm -rf "$work"
}

# Unpacks archive $1 into folder $2 and checks it whole; dies before
# anything is touched when it is truncated, corrupt or not a backup.
verify_backup() {
  local file=$1 dir=$2
  [[ -f $file ]] || die "no such backup file: $file"
  tar -C "$dir" -xzf "$file" 2>/dev/null || die "$file is not a complete backup archive (truncated or corrupt): nothing restored"
  [[ -f $dir/MANIFEST && -f $dir/SHA256SUMS ]] || die "$file has no MANIFEST or SHA256SUMS: not an ft_services backup"
  grep -qx "format $BACKUP_FORMAT" "$dir/MANIFEST" || die "$file is not a backup of format '$BACKUP_FORMAT': nothing restored"
  (cd "$dir" && sha256sum --quiet --strict -c SHA256SUMS >/dev/null 2>&1) \
    || die "$file: a part does not match its checksum: nothing restored"
  local svc
  for svc in "${BACKUP_PARTS[@]}"; do
    [[ -f $dir/${BACKUP_FILE[$svc]} ]] || die "$file has no ${BACKUP_FILE[$svc]}: nothing restored"
  done
}

# Installs the archive's secrets when they differ from the current ones, the
# current folder kept aside; applies them and restarts the pods to read them.
restore_secrets() {
  local dir=$1 new
  if [[ ! -f $dir/secrets.tar.enc ]]; then
    warn "the archive holds no secrets: the current ones ($SECRETS_DIR) stay"
    return 0
  fi
  if [[ -z $FT_BACKUP_PASSPHRASE ]]; then
    warn "no passphrase (FT_BACKUP_PASSPHRASE): the archive's secrets are not restored, the current ones stay"
    return 0
  fi
  new=$dir/secrets
  mkdir -m 700 "$new"
  openssl enc -d "${SECRETS_CIPHER[@]}" -pass env:FT_BACKUP_PASSPHRASE <"$dir/secrets.tar.enc" 2>/dev/null \
    | tar -C "$new" -xf - 2>/dev/null \
    || die "the secrets do not decrypt with this passphrase: nothing restored"
  if [[ -d $SECRETS_DIR ]] && diff -r -x 'dashboard.*' "$new" "$SECRETS_DIR" >/dev/null 2>&1; then
    RESTORED+=("secrets (unchanged)")
    return 0
  fi
  if [[ -d $SECRETS_DIR ]]; then
    local aside
    aside=$SECRETS_DIR.replaced-$(date -u +%Y%m%dT%H%M%SZ)
    mv "$SECRETS_DIR" "$aside"
    warn "the secrets before this restore are kept in $aside"
  fi
  mv "$new" "$SECRETS_DIR"
  apply_secrets
  kubectl -n "$NAMESPACE" rollout restart deployment >/dev/null
  wait_for_rollout
  RESTORED+=("secrets")
}

cmd_restore() {
  require kubectl openssl sha256sum tar gzip
  (($# == 1)) || die "usage: ./setup.sh restore FILE"
  local file=$1 work svc part
  work=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  progress "restore: checking $file"
  verify_backup "$file" "$work"
  [[ -t 1 ]] && echo
  require_stack_up
  [[ -f $work/secrets.tar.enc ]] && backup_passphrase
  RESTORED=()
  restore_secrets "$work"
  for svc in "${BACKUP_PARTS[@]}"; do
    part=${BACKUP_FILE[$svc]}
    progress "restore: $part into the $svc pod"
    pod_data "$svc" restore -i <"$work/$part" \
      || { echo >&2; die "restore of $part into $svc failed (the parts before it are restored: ${RESTORED[*]:-none})"; }
    RESTORED+=("$svc ($(wc -c <"$work/$part") bytes)")
  done
  for svc in "${RESTART_AFTER_RESTORE[@]}"; do
    kubectl -n "$NAMESPACE" rollout restart "deployment/$svc" >/dev/null
  done
  [[ -t 1 ]] && echo
  wait_for_rollout
  say "restored from $file ($(sed -n 's/^created //p' "$work/MANIFEST")): ${RESTORED[*]}"
}

# `minikube dashboard --url` keeps running (it is the proxy the URL points
# to): start it in the background once and read the URL from its output.
dashboard_url() {
  local log=$SECRETS_DIR/local/dashboard.log pidfile=$SECRETS_DIR/local/dashboard.pid pid url=""
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
    nohup minikube dashboard --url >"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
  fi
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    url=$(grep -Eo 'https?://[^ ]+' "$log" 2>/dev/null | tail -n1 || true)
    [[ -n $url ]] && break
    sleep 1
  done
  printf '%s' "${url:-not ready yet: run 'minikube dashboard'}"
}

print_urls() {
  local ip=$1 rel=${SECRETS_DIR#"$ROOT"/}
  cat <<EOF

ft_services is up on $ip
  https://$ip/              nginx (http://$ip/ redirects to it)
  https://$ip:5050/         WordPress
  https://$ip:5000/         phpMyAdmin (also https://$ip/phpmyadmin)
  https://$ip:3000/         Grafana
  ftps://$ip:21             FTPS (explicit TLS, passive mode)
  ssh ft@$ip                SSH (key $rel/local/id_ed25519)
  dashboard                 $(dashboard_url)
  network policies          $NETWORK_POLICIES

TLS certificates are signed by $rel/ft-tls/ca.crt.
Logins: ./setup.sh credentials (files in $rel/)
EOF
}

cmd_up() {
  detect_host
  choose_driver
  say "host: $HOST_OS $HOST_ARCH; minikube driver $MINIKUBE_DRIVER${MINIKUBE_NETWORK:+, network $MINIKUBE_NETWORK}"
  require minikube docker kubectl openssl ssh-keygen python3
  require_docker_engine
  start_minikube
  check_network_policies
  local ip
  ip=$(choose_lb_ip)
  say "secrets in $SECRETS_DIR"
  generate_secrets "$ip"
  configure_metallb "$ip"
  build_images
  apply_stack "$ip"
  wait_for_rollout
  print_urls "$ip"
}

cmd_down() {
  local purge=0
  case ${1:-} in
    --purge) purge=1 ;;
    "") ;;
    *) die "unknown option for down: $1" ;;
  esac
  require minikube kubectl
  local pid
  pid=$(cat "$SECRETS_DIR/local/dashboard.pid" 2>/dev/null || true)
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
  rm -f "$SECRETS_DIR/local/dashboard.pid"
  if ! minikube_running; then
    say "minikube is not running: nothing to remove"
    return 0
  fi
  if ((purge)); then
    say "removing the stack and its volumes (namespace $NAMESPACE)"
    kubectl delete namespace "$NAMESPACE" --ignore-not-found --wait=true
  else
    say "removing the stack (volumes kept; ./setup.sh down --purge removes them)"
    kubectl -n "$NAMESPACE" delete deployment,service,networkpolicy,configmap \
      -l app.kubernetes.io/part-of=ft-services --ignore-not-found --wait=true
    kubectl -n "$NAMESPACE" delete secret "${SECRETS[@]}" --ignore-not-found
  fi
}

cmd_status() {
  require minikube kubectl
  minikube_running || die "minikube is not running (./setup.sh up starts it)"
  local -A ready=() want=()
  local name replicas readyn type lbip clusterip ports
  while IFS=' ' read -r name replicas readyn; do
    [[ -n $name ]] || continue
    want[$name]=$replicas
    ready[$name]=${readyn:-0}
  done < <(deployment_readiness)
  printf '%-11s %-13s %-28s %s\n' SERVICE TYPE ADDRESS HEALTH
  # '|' separated: a tab would merge the empty LoadBalancer address of a ClusterIP Service
  while IFS='|' read -r name type lbip clusterip ports; do
    [[ -n $name ]] || continue
    local -a list
    read -r -a list <<<"$ports"
    local shown=${list[0]}
    ((${#list[@]} > 3)) && shown="${list[0]},${list[1]}-${list[-1]}"
    ((${#list[@]} > 1 && ${#list[@]} <= 3)) && shown=$(IFS=,; echo "${list[*]}")
    local addr=$clusterip
    [[ $type == LoadBalancer ]] && addr=${lbip:-pending}
    local health="not deployed"
    if [[ -n ${want[$name]:-} ]]; then
      health="ready ${ready[$name]}/${want[$name]}"
      if [[ ${ready[$name]} -ge ${want[$name]} && ${want[$name]} -gt 0 ]]; then
        health+=" (healthy)"
      else
        health+=" (NOT READY)"
      fi
    fi
    printf '%-11s %-13s %-28s %s\n' "$name" "$type" "$addr:$shown" "$health"
  done < <(kubectl -n "$NAMESPACE" get services -o \
    jsonpath='{range .items[*]}{.metadata.name}{"|"}{.spec.type}{"|"}{.status.loadBalancer.ingress[0].ip}{"|"}{.spec.clusterIP}{"|"}{.spec.ports[*].port}{"\n"}{end}')
}

cmd_credentials() {
  local s=$SECRETS_DIR
  [[ -s $s/ft-mysql/root-password ]] || die "no secrets in $s yet: run ./setup.sh first"
  local ip
  ip=$(cat "$s/local/tls-address" 2>/dev/null || echo "LB_IP")
  cat <<EOF
WordPress  https://$ip:5050/wp-login.php   (login:role:email:password)
$(grep -v '^#' "$s/ft-wordpress/users" | sed 's/^/  /')
phpMyAdmin https://$ip:5000/   user phpmyadmin   password $(cat "$s/ft-mysql/phpmyadmin-password")
MySQL      root                password $(cat "$s/ft-mysql/root-password")
           wordpress           password $(cat "$s/ft-mysql/wordpress-password")
Grafana    https://$ip:3000/   user admin        password $(cat "$s/ft-grafana/admin-password")
InfluxDB   admin               password $(cat "$s/ft-influxdb/admin-password")
FTPS       ftps://$ip:21       user ft           password $(cat "$s/local/ftps-password")
SSH        ssh -i $s/local/id_ed25519 -o UserKnownHostsFile=$s/local/known_hosts ft@$ip
           (password login: $(cat "$s/local/ssh-password"))
CA         $s/ft-tls/ca.crt
EOF
}

cmd_secrets() {
  [[ -n ${LB_IP:-} ]] || die "./setup.sh secrets needs LB_IP (the address the certificate is for)"
  generate_secrets "$LB_IP"
  echo "secrets for $LB_IP in $SECRETS_DIR"
}

main() {
  local cmd=${1:-up}
  (($#)) && shift
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    credentials) cmd_credentials "$@" ;;
    secrets) cmd_secrets "$@" ;;
    backup) cmd_backup "$@" ;;
    restore) cmd_restore "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 64 ;;
  esac
}

main "$@"

#!/usr/bin/env bash
# ftpsd beside nginx (HTTPS, one worker per core) and Debian's vsftpd (FTPS),
# all on 127.0.0.1 with the same certificate, the same files and the same
# client (curl), TLS forced on every connection:
#
# At the ceiling, three interleaved runs (each run: every server in turn, the
# order rotated from run to run):
#   - one 512 MiB download (curl -o /dev/null);
#   - 50 curls at once, each downloading its own 64 MiB file (hard links of
#     one random file: the same page-cache pages for every server);
#   for each: MB/s (bytes / wall time of the clients), the server's CPU
#   seconds per GiB (utime + stime of its whole process tree from
#   /proc/PID/stat, reaped children included) and the peak of its processes'
#   summed VmRSS (sampled every 0.1 s; ftpsd's VmHWM too).
#   Each ftpsd build of FTPSD_PROVIDERS (rustls crypto provider: ring,
#   aws-lc-rs, aws-lc-rs-small) is one server.
# Then, once, the earlier measures against vsftpd: 512 MiB upload, sessions/s
# for login + LIST + quit (20 curls in parallel), memory of 200 idle sessions.
#
# Prints every run, the medians, and the ratios ftpsd/nginx and ftpsd/vsftpd
# (each taken within a run, the median of those reported;
# bench/ftpsd/summary.py).
# Needs root (it creates, and removes again, a local user for vsftpd's PAM
# login), nginx, vsftpd, curl, python3, and for the musl build (BUILD=musl,
# as the images ship it; BUILD=glibc for the host's) the
# x86_64-unknown-linux-musl target with musl-gcc.
#
#   bench/ftpsd.sh   (RUNS=3 SIZE_MIB=512 CLIENTS=50 CLIENT_MIB=64
#                     FTPSD_PROVIDERS="ring aws-lc-rs" BUILD=musl EXTRAS=1
#                     SESSIONS=400 PARALLEL=20 IDLE=200 by default)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Where cargo builds: $CARGO_TARGET_DIR if set (cargo honours it too).
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RUNS=${RUNS:-3}
SIZE_MIB=${SIZE_MIB:-512}
CLIENTS=${CLIENTS:-50}
CLIENT_MIB=${CLIENT_MIB:-64}
FTPSD_PROVIDERS=${FTPSD_PROVIDERS:-ring aws-lc-rs}
BUILD=${BUILD:-musl}
EXTRAS=${EXTRAS:-1}
SESSIONS=${SESSIONS:-400}
PARALLEL=${PARALLEL:-20}
IDLE=${IDLE:-200}
USER_NAME=ftbench$$
PASSWORD=bench-$RANDOM-$RANDOM

TMP=$(mktemp -d /var/tmp/ftpsd-bench.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  pkill -u "$USER_NAME" 2>/dev/null || true
  userdel "$USER_NAME" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
  local port=$1
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on $port" >&2
  return 1
}

# One ftpsd binary per rustls crypto provider: release profile, $BUILD libc.
declare -A FTPSD_BIN
for provider in $FTPSD_PROVIDERS; do
  echo "== building ftpsd (release, $BUILD, rustls provider $provider)"
  # The release profile's opt-level "s" makes aws-lc-sys build AWS-LC small
  # (OPENSSL_SMALL, no AVX-512 assembly): "aws-lc-rs" is built full size
  # (AWS_LC_SYS_SMALL=0), "aws-lc-rs-small" as the profile has it.
  case $provider in
    ring) features=(--no-default-features --features ring) build_env=() ;;
    aws-lc-rs) features=(--no-default-features --features aws-lc-rs) build_env=(AWS_LC_SYS_SMALL=0) ;;
    aws-lc-rs-small) features=(--no-default-features --features aws-lc-rs) build_env=() ;;
    *) echo "unknown provider $provider" >&2; exit 2 ;;
  esac
  if [ "$BUILD" = musl ]; then
    (cd "$ROOT" && env "${build_env[@]}" CC_x86_64_unknown_linux_musl=musl-gcc \
      cargo build --release -q -p ftpsd --target x86_64-unknown-linux-musl "${features[@]}")
    cp "$TARGET_DIR/x86_64-unknown-linux-musl/release/ftpsd" "$TMP/ftpsd-$provider"
  else
    (cd "$ROOT" && env "${build_env[@]}" cargo build --release -q -p ftpsd "${features[@]}")
    cp "$TARGET_DIR/release/ftpsd" "$TMP/ftpsd-$provider"
  fi
  FTPSD_BIN[$provider]=$TMP/ftpsd-$provider
done
FIRST_PROVIDER=${FTPSD_PROVIDERS%% *}
FTPSD=${FTPSD_BIN[$FIRST_PROVIDER]}

echo "== certificate, user, files"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/ca.key" -out "$TMP/ca.crt" -days 1 \
  -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$TMP/tls.key" -out "$TMP/tls.csr" -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$TMP/ext.cnf"
openssl x509 -req -in "$TMP/tls.csr" -CA "$TMP/ca.crt" -CAkey "$TMP/ca.key" -CAcreateserial \
  -out "$TMP/tls.crt" -days 1 -extfile "$TMP/ext.cnf" 2>/dev/null
chmod 644 "$TMP/tls.key"

VHOME=$TMP/vsftpd-home
FHOME=$TMP/ftpsd-data/$USER_NAME
useradd -M -d "$VHOME" -s /bin/sh "$USER_NAME"
echo "$USER_NAME:$PASSWORD" | chpasswd
mkdir -p "$VHOME" "$FHOME" "$TMP/empty" "$TMP/www"
# The big file and one file per concurrent client (hard links of one file):
# every server reads the same page-cache pages.
dd if=/dev/urandom of="$TMP/www/big.bin" bs=1M count="$SIZE_MIB" status=none
dd if=/dev/urandom of="$TMP/www/c-1.bin" bs=1M count="$CLIENT_MIB" status=none
for i in $(seq 2 "$CLIENTS"); do ln "$TMP/www/c-1.bin" "$TMP/www/c-$i.bin"; done
for f in "$TMP"/www/*.bin; do
  ln "$f" "$VHOME/${f##*/}"
  ln "$f" "$FHOME/${f##*/}"
done
chmod 755 "$TMP/www"
chmod 644 "$TMP"/www/*.bin
chown -R "$USER_NAME" "$VHOME" "$TMP/ftpsd-data"
cat "$TMP/www/big.bin" "$TMP/www/c-1.bin" >/dev/null

echo "== starting nginx, vsftpd and ftpsd"
VPORT=$(free_port)
cat >"$TMP/vsftpd.conf" <<CONF
listen=YES
listen_address=127.0.0.1
listen_port=$VPORT
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
chroot_local_user=YES
allow_writeable_chroot=YES
secure_chroot_dir=$TMP/empty
pam_service_name=vsftpd
ssl_enable=YES
force_local_logins_ssl=YES
force_local_data_ssl=YES
ssl_tlsv1=YES
ssl_sslv2=NO
ssl_sslv3=NO
ssl_ciphers=HIGH
require_ssl_reuse=YES
rsa_cert_file=$TMP/tls.crt
rsa_private_key_file=$TMP/tls.key
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=41000
pasv_max_port=41999
max_clients=0
max_per_ip=0
idle_session_timeout=600
xferlog_enable=NO
seccomp_sandbox=NO
CONF
vsftpd "$TMP/vsftpd.conf" &
PIDS+=($!)
VPID=$!

printf '%s:%s\n' "$USER_NAME" "$(printf '%s' "$PASSWORD" | "$FTPSD" hash-password)" >"$TMP/users"
declare -A FTPSD_PORT FTPSD_PID
# start_ftpsd NAME BINARY PASSIVE_BASE [more TOML]
start_ftpsd() {
  local name=$1 bin=$2 base=$3 extra=${4:-} port
  port=$(free_port)
  cat >"$TMP/ftpsd-$name.toml" <<CONF
listen = "127.0.0.1:$port"
metrics_listen = "127.0.0.1:$(free_port)"
data_root = "$TMP/ftpsd-data"
users_file = "$TMP/users"
max_sessions = 1000
[tls]
cert = "$TMP/tls.crt"
key = "$TMP/tls.key"
[passive]
port_min = $base
port_max = $((base + 999))
address = "127.0.0.1"
$extra
CONF
  RUST_LOG=warn "$bin" --config "$TMP/ftpsd-$name.toml" 2>"$TMP/ftpsd-$name.log" &
  PIDS+=($!)
  FTPSD_PID[$name]=$!
  FTPSD_PORT[$name]=$port
  wait_port "$port"
}
base=42000
for provider in $FTPSD_PROVIDERS; do
  start_ftpsd "$provider" "${FTPSD_BIN[$provider]}" "$base"
  base=$((base + 1000))
done
# nginx serving the same files over HTTPS with the same certificate, one
# worker per core.
HPORT=$(free_port)
cat >"$TMP/nginx.conf" <<CONF
worker_processes $(nproc);
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$HPORT ssl;
    ssl_certificate $TMP/tls.crt;
    ssl_certificate_key $TMP/tls.key;
    ssl_protocols TLSv1.3;
    root $TMP/www;
  }
}
CONF
nginx -c "$TMP/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
HPID=$!
wait_port "$VPORT"
wait_port "$HPORT"

CURL_FTPS=(--ssl-reqd --cacert "$TMP/ca.crt" -u "$USER_NAME:$PASSWORD")

# server_url SERVER FILE / server_pid SERVER
server_url() {
  case $1 in
    nginx) echo "https://127.0.0.1:$HPORT/$2" ;;
    vsftpd) echo "ftp://127.0.0.1:$VPORT/$2" ;;
    ftpsd-*) echo "ftp://127.0.0.1:${FTPSD_PORT[${1#ftpsd-}]}/$2" ;;
  esac
}
server_pid() {
  case $1 in
    nginx) echo "$HPID" ;;
    vsftpd) echo "$VPID" ;;
    ftpsd-*) echo "${FTPSD_PID[${1#ftpsd-}]}" ;;
  esac
}

# measure SERVER CLIENTS FILE EXPECTED_BYTES: one line of key=value.
measure() {
  local server=$1 clients=$2 file=$3 expect=$4
  local args=(--cacert "$TMP/ca.crt")
  if [ "$server" != nginx ]; then
    args=("${CURL_FTPS[@]}")
    # One login first, not measured: ftpsd has verified the password before.
    curl -sS "${args[@]}" --list-only -o /dev/null "$(server_url "$server" "")"
  fi
  python3 "$ROOT/bench/ftpsd/downloads.py" --pid "$(server_pid "$server")" --clients "$clients" \
    --expect "$expect" --url "$(server_url "$server" "$file")" -- "${args[@]}"
}

SERVERS=(nginx vsftpd)
for provider in $FTPSD_PROVIDERS; do SERVERS+=("ftpsd-$provider"); done
RESULTS=$TMP/results
: >"$RESULTS"
for run in $(seq 1 "$RUNS"); do
  # The order of the servers rotates from run to run.
  n=${#SERVERS[@]}
  order=()
  for i in $(seq 0 $((n - 1))); do order+=("${SERVERS[$(((i + run - 1) % n))]}"); done
  for server in "${order[@]}"; do
    echo "== run $run: $server"
    single=$(measure "$server" 1 big.bin "$((SIZE_MIB * 1048576))")
    echo "   one ${SIZE_MIB} MiB download:  $single"
    echo "run=$run server=$server test=single $single" >>"$RESULTS"
    many=$(measure "$server" "$CLIENTS" 'c-{n}.bin' "$((CLIENT_MIB * 1048576))")
    echo "   $CLIENTS x ${CLIENT_MIB} MiB at once: $many"
    echo "run=$run server=$server test=concurrent $many" >>"$RESULTS"
  done
done
for provider in $FTPSD_PROVIDERS; do
  echo "server=ftpsd-$provider vmhwm_kib=$(awk '/^VmHWM/ { print $2 }' "/proc/${FTPSD_PID[$provider]}/status")" >>"$RESULTS"
done

echo
# shellcheck source=/dev/null
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
echo "nginx $(nginx -v 2>&1 | cut -d/ -f2) ($(nproc) workers), vsftpd $(dpkg-query -W -f='${Version}' vsftpd), curl $(curl --version | head -1 | cut -d' ' -f2), ftpsd $BUILD build of $(cd "$ROOT" && git rev-parse --short HEAD), $(date -u +%Y-%m-%d)"
python3 "$ROOT/bench/ftpsd/summary.py" "$RESULTS" "${SERVERS[@]}"

if [ "$EXTRAS" != 1 ]; then exit 0; fi

# --- Once: upload, sessions/s, idle memory, ftpsd of the first provider -----
FPORT=${FTPSD_PORT[$FIRST_PROVIDER]}
FPID=${FTPSD_PID[$FIRST_PROVIDER]}
# A second ftpsd that runs PBKDF2 on every login (no verified-password cache).
start_ftpsd nocache "$FTPSD" 48000 $'[login]\nverified_cache_seconds = 0'
NPORT=${FTPSD_PORT[nocache]}

# Best of 2 uploads, in MB/s (10^6 bytes per second, as curl reports).
upload() {
  local port=$1 best=0 speed run
  for run in 1 2; do
    speed=$(curl -sS "${CURL_FTPS[@]}" -T "$TMP/www/big.bin" -w '%{speed_upload}' "ftp://127.0.0.1:$port/up-$run.bin")
    best=$(python3 -c "print(max($best, $speed))")
  done
  python3 -c "print(round($best / 1e6, 1))"
}

# Seconds for one login + LIST + quit, alone (median of 5).
session_latency() {
  local port=$1
  for _ in 1 2 3 4 5; do
    curl -sS "${CURL_FTPS[@]}" --list-only -o /dev/null -w '%{time_total}\n' "ftp://127.0.0.1:$port/"
  done | sort -n | sed -n 3p
}

sessions_per_second() {
  local port=$1 start end
  start=$(date +%s.%N)
  seq "$SESSIONS" | xargs -P "$PARALLEL" -I{} \
    curl -sS "${CURL_FTPS[@]}" --list-only -o /dev/null "ftp://127.0.0.1:$port/"
  end=$(date +%s.%N)
  python3 -c "print(round($SESSIONS / ($end - $start), 1))"
}

idle_memory() {
  local port=$1 pid=$2
  python3 "$ROOT/bench/ftpsd/hold_sessions.py" --port "$port" --cafile "$TMP/ca.crt" \
    --user "$USER_NAME" --password "$PASSWORD" --sessions "$IDLE" --pid "$pid"
}

ratio() { python3 -c "print(round($1 / $2, 2))"; }

echo
echo "== upload ${SIZE_MIB} MiB (ftpsd-$FIRST_PROVIDER)"
V_UP=$(upload "$VPORT")
F_UP=$(upload "$FPORT")
cmp "$TMP/www/big.bin" "$FHOME/up-2.bin"
cmp "$TMP/www/big.bin" "$VHOME/up-2.bin"
echo "== $SESSIONS sessions (login + LIST + quit), $PARALLEL in parallel"
V_SPS=$(sessions_per_second "$VPORT")
F_SPS=$(sessions_per_second "$FPORT")
N_SPS=$(sessions_per_second "$NPORT")
V_LAT=$(session_latency "$VPORT")
F_LAT=$(session_latency "$FPORT")
echo "== $IDLE idle logged-in sessions"
V_MEM=$(idle_memory "$VPORT" "$VPID")
F_MEM=$(idle_memory "$FPORT" "$FPID")
V_PSS=$(sed -E 's/.*pss_kib=([0-9]+).*/\1/' <<<"$V_MEM")
F_PSS=$(sed -E 's/.*pss_kib=([0-9]+).*/\1/' <<<"$F_MEM")

printf '%-38s %12s %12s %8s\n' "measure" "vsftpd" "ftpsd" "ratio"
printf '%-38s %12s %12s %8s\n' "upload ${SIZE_MIB} MiB (MB/s, best of 2)" "$V_UP" "$F_UP" "$(ratio "$F_UP" "$V_UP")"
printf '%-38s %12s %12s %8s\n' "sessions/s ($PARALLEL parallel)" "$V_SPS" "$F_SPS" "$(ratio "$F_SPS" "$V_SPS")"
printf '%-38s %12s %12s %8s\n' "  same, PBKDF2 on every login" "$V_SPS" "$N_SPS" "$(ratio "$N_SPS" "$V_SPS")"
printf '%-38s %12s %12s %8s\n' "one session alone (s, median of 5)" "$V_LAT" "$F_LAT" "$(ratio "$F_LAT" "$V_LAT")"
printf '%-38s %12s %12s %8s\n' "memory, $IDLE idle sessions (PSS KiB)" "$V_PSS" "$F_PSS" "$(ratio "$F_PSS" "$V_PSS")"
echo "vsftpd: $V_MEM"
echo "ftpsd:  $F_MEM"

#!/usr/bin/env bash
# ftpsd against Debian's vsftpd, both FTPS-only (TLS forced on control and
# data), side by side on 127.0.0.1 with the same certificate, files and client:
#   - 1 GiB download and upload throughput over TLS (curl, best of 2 runs);
#   - sessions/s for login + LIST + quit over TLS, 20 curl clients in parallel;
#   - memory of 200 idle logged-in sessions, every process of the server counted;
#   - 50 clients at once, each downloading a 64 MiB file: aggregate MB/s of
#     ftpsd, vsftpd and nginx serving the same file over HTTPS to the same
#     curl (this machine's ceiling for TLS bulk transfer), and ftpsd's peak
#     RSS during the run (a fresh ftpsd, so VmHWM is this run's).
# Prints each figure and the ratio ftpsd/vsftpd (and ftpsd/nginx). Needs root
# (it creates, and removes again, a local user for vsftpd's PAM login).
#
#   bench/ftpsd.sh   (SIZE_MIB=1024 SESSIONS=400 IDLE=200 CLIENTS=50 CLIENT_MIB=64 by default)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MIB=${SIZE_MIB:-1024}
SESSIONS=${SESSIONS:-400}
PARALLEL=${PARALLEL:-20}
IDLE=${IDLE:-200}
CLIENTS=${CLIENTS:-50}
CLIENT_MIB=${CLIENT_MIB:-64}
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

echo "== building ftpsd (release)"
(cd "$ROOT" && cargo build --release -q -p ftpsd)
FTPSD=$ROOT/target/release/ftpsd

echo "== certificate, user, files"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/ca.key" -out "$TMP/ca.crt" -days 1 \
  -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$TMP/tls.key" -out "$TMP/tls.csr" -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$TMP/ext.cnf"
openssl x509 -req -in "$TMP/tls.csr" -CA "$TMP/ca.crt" -CAkey "$TMP/ca.key" -CAcreateserial \
  -out "$TMP/tls.crt" -days 1 -extfile "$TMP/ext.cnf" 2>/dev/null
chmod 644 "$TMP/tls.key"

VHOME=$TMP/vsftpd-home
useradd -M -d "$VHOME" -s /bin/sh "$USER_NAME"
echo "$USER_NAME:$PASSWORD" | chpasswd
mkdir -p "$VHOME" "$TMP/ftpsd-data/$USER_NAME" "$TMP/empty"
dd if=/dev/urandom of="$TMP/big.bin" bs=1M count="$SIZE_MIB" status=none
cp "$TMP/big.bin" "$VHOME/big.bin"
cp "$TMP/big.bin" "$TMP/ftpsd-data/$USER_NAME/big.bin"
# One file per concurrent client (hard links: the same pages for every server).
mkdir -p "$TMP/www"
dd if=/dev/urandom of="$TMP/www/c-1.bin" bs=1M count="$CLIENT_MIB" status=none
for i in $(seq 2 "$CLIENTS"); do ln "$TMP/www/c-1.bin" "$TMP/www/c-$i.bin"; done
for i in $(seq 1 "$CLIENTS"); do
  ln "$TMP/www/c-1.bin" "$VHOME/c-$i.bin"
  ln "$TMP/www/c-1.bin" "$TMP/ftpsd-data/$USER_NAME/c-$i.bin"
done
chmod 755 "$TMP/www"
chmod 644 "$TMP/www/c-1.bin"
chown -R "$USER_NAME" "$VHOME" "$TMP/ftpsd-data/$USER_NAME"

echo "== starting vsftpd and ftpsd"
VPORT=$(free_port)
FPORT=$(free_port)
MPORT=$(free_port)
cat >"$TMP/vsftpd.conf" <<EOF
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
EOF
vsftpd "$TMP/vsftpd.conf" &
PIDS+=($!)
VPID=$!

printf '%s:%s\n' "$USER_NAME" "$(printf '%s' "$PASSWORD" | "$FTPSD" hash-password)" >"$TMP/users"
cat >"$TMP/ftpsd.toml" <<EOF
listen = "127.0.0.1:$FPORT"
metrics_listen = "127.0.0.1:$MPORT"
data_root = "$TMP/ftpsd-data"
users_file = "$TMP/users"
max_sessions = 1000
[tls]
cert = "$TMP/tls.crt"
key = "$TMP/tls.key"
[passive]
port_min = 42000
port_max = 42999
address = "127.0.0.1"
EOF
RUST_LOG=warn "$FTPSD" --config "$TMP/ftpsd.toml" 2>"$TMP/ftpsd.log" &
PIDS+=($!)
FPID=$!
# A second ftpsd that runs PBKDF2 on every login (no verified-password cache).
NPORT=$(free_port)
sed -e "s/127.0.0.1:$FPORT/127.0.0.1:$NPORT/" -e "s/127.0.0.1:$MPORT/127.0.0.1:$(free_port)/" \
  -e 's/port_min = 42000/port_min = 43000/' -e 's/port_max = 42999/port_max = 43999/' \
  "$TMP/ftpsd.toml" >"$TMP/ftpsd-nocache.toml"
printf '[login]\nverified_cache_seconds = 0\n' >>"$TMP/ftpsd-nocache.toml"
RUST_LOG=warn "$FTPSD" --config "$TMP/ftpsd-nocache.toml" 2>"$TMP/ftpsd-nocache.log" &
PIDS+=($!)
# A third ftpsd, fresh, for the concurrent downloads: its VmHWM is their peak RSS.
CPORT=$(free_port)
sed -e "s/127.0.0.1:$FPORT/127.0.0.1:$CPORT/" -e "s/127.0.0.1:$MPORT/127.0.0.1:$(free_port)/" \
  -e 's/port_min = 42000/port_min = 44000/' -e 's/port_max = 42999/port_max = 44999/' \
  "$TMP/ftpsd.toml" >"$TMP/ftpsd-concurrent.toml"
RUST_LOG=warn "$FTPSD" --config "$TMP/ftpsd-concurrent.toml" 2>"$TMP/ftpsd-concurrent.log" &
PIDS+=($!)
CPID=$!
# nginx serving the same files over HTTPS with the same certificate.
HPORT=$(free_port)
cat >"$TMP/nginx.conf" <<EOF
worker_processes auto;
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
EOF
nginx -c "$TMP/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
wait_port "$VPORT"
wait_port "$FPORT"
wait_port "$NPORT"
wait_port "$CPORT"
wait_port "$HPORT"

curl_ftps() { curl -sS --ssl-reqd --cacert "$TMP/ca.crt" -u "$USER_NAME:$PASSWORD" "$@"; }

# Best of 2 runs, in MB/s (10^6 bytes per second, as curl reports).
throughput() {
  local port=$1 direction=$2 best=0 speed run
  for run in 1 2; do
    if [ "$direction" = down ]; then
      speed=$(curl_ftps -o /dev/null -w '%{speed_download}' "ftp://127.0.0.1:$port/big.bin")
    else
      speed=$(curl_ftps -T "$TMP/big.bin" -w '%{speed_upload}' "ftp://127.0.0.1:$port/up-$run.bin")
    fi
    best=$(python3 -c "print(max($best, $speed))")
  done
  python3 -c "print(round($best / 1e6, 1))"
}

# Seconds for one login + LIST + quit, alone (median of 5).
session_latency() {
  local port=$1
  for _ in 1 2 3 4 5; do
    curl -sS --ssl-reqd --cacert "$TMP/ca.crt" -u "$USER_NAME:$PASSWORD" --list-only -o /dev/null \
      -w '%{time_total}\n' "ftp://127.0.0.1:$port/"
  done | sort -n | sed -n 3p
}

sessions_per_second() {
  local port=$1 start end
  start=$(date +%s.%N)
  seq "$SESSIONS" | xargs -P "$PARALLEL" -I{} \
    curl -sS --ssl-reqd --cacert "$TMP/ca.crt" -u "$USER_NAME:$PASSWORD" --list-only -o /dev/null \
    "ftp://127.0.0.1:$port/"
  end=$(date +%s.%N)
  python3 -c "print(round($SESSIONS / ($end - $start), 1))"
}

idle_memory() {
  local port=$1 pid=$2
  python3 "$ROOT/bench/ftpsd/hold_sessions.py" --port "$port" --cafile "$TMP/ca.crt" \
    --user "$USER_NAME" --password "$PASSWORD" --sessions "$IDLE" --pid "$pid"
}

ratio() { python3 -c "print(round($1 / $2, 2))"; }

# Aggregate MB/s of CLIENTS curls at once, each fetching its own file PREFIX<n>.bin;
# fails unless every one got the whole file.
concurrent_downloads() {
  local prefix=$1 start end total
  start=$(date +%s.%N)
  total=$(seq "$CLIENTS" | xargs -P "$CLIENTS" -I{} \
    curl -sS --ssl-reqd --cacert "$TMP/ca.crt" -u "$USER_NAME:$PASSWORD" -o /dev/null \
    -w '%{size_download}\n' "${prefix}{}.bin" | awk '{ s += $1 } END { print s }')
  end=$(date +%s.%N)
  if [ "$total" != "$((CLIENTS * CLIENT_MIB * 1048576))" ]; then
    echo "only $total bytes arrived from ${prefix}*" >&2
    return 1
  fi
  python3 -c "print(round($total / ($end - $start) / 1e6, 1))"
}

echo "== download ${SIZE_MIB} MiB"
V_DOWN=$(throughput "$VPORT" down)
F_DOWN=$(throughput "$FPORT" down)
echo "== upload ${SIZE_MIB} MiB"
V_UP=$(throughput "$VPORT" up)
F_UP=$(throughput "$FPORT" up)
cmp "$TMP/big.bin" "$TMP/ftpsd-data/$USER_NAME/up-2.bin"
cmp "$TMP/big.bin" "$VHOME/up-2.bin"
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

echo "== $CLIENTS clients at once, ${CLIENT_MIB} MiB each"
H_CONC=$(concurrent_downloads "https://127.0.0.1:$HPORT/c-")
V_CONC=$(concurrent_downloads "ftp://127.0.0.1:$VPORT/c-")
F_CONC=$(concurrent_downloads "ftp://127.0.0.1:$CPORT/c-")
F_PEAK=$(awk '/^VmHWM/ { print $2 }' "/proc/$CPID/status")

echo
# shellcheck source=/dev/null
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(. /etc/os-release && echo "$PRETTY_NAME")"
echo "vsftpd $(dpkg-query -W -f='${Version}' vsftpd), curl $(curl --version | head -1 | cut -d' ' -f2)"
printf '%-34s %12s %12s %8s\n' "measure" "vsftpd" "ftpsd" "ratio"
printf '%-34s %12s %12s %8s\n' "download ${SIZE_MIB} MiB (MB/s)" "$V_DOWN" "$F_DOWN" "$(ratio "$F_DOWN" "$V_DOWN")"
printf '%-34s %12s %12s %8s\n' "upload ${SIZE_MIB} MiB (MB/s)" "$V_UP" "$F_UP" "$(ratio "$F_UP" "$V_UP")"
printf '%-34s %12s %12s %8s\n' "sessions/s ($PARALLEL parallel)" "$V_SPS" "$F_SPS" "$(ratio "$F_SPS" "$V_SPS")"
printf '%-34s %12s %12s %8s\n' "  same, PBKDF2 on every login" "$V_SPS" "$N_SPS" "$(ratio "$N_SPS" "$V_SPS")"
printf '%-34s %12s %12s %8s\n' "one session alone (s, median of 5)" "$V_LAT" "$F_LAT" "$(ratio "$F_LAT" "$V_LAT")"
printf '%-34s %12s %12s %8s\n' "memory, $IDLE idle sessions (PSS KiB)" "$V_PSS" "$F_PSS" "$(ratio "$F_PSS" "$V_PSS")"
printf '%-34s %12s %12s %8s\n' "$CLIENTS x ${CLIENT_MIB} MiB at once (MB/s)" "$V_CONC" "$F_CONC" "$(ratio "$F_CONC" "$V_CONC")"
printf '%-34s %12s %12s %8s\n' "  nginx HTTPS, same files (MB/s)" "$H_CONC" "$F_CONC" "$(ratio "$F_CONC" "$H_CONC")"
echo "ftpsd peak RSS during the $CLIENTS downloads: $((F_PEAK / 1024)) MiB"
echo "vsftpd: $V_MEM"
echo "ftpsd:  $F_MEM"
echo "targets: throughput >= 1.0, sessions/s >= 1.0, memory <= 0.5; $CLIENTS clients >= 0.9 of nginx, peak RSS < 64 MiB"

#!/usr/bin/env bash
# The stress proof of ftpsd: SESSIONS sessions (1000), PARALLEL at a time
# (50), mixing lftp, curl and Python's ftplib (a third each, in turn), three
# accounts. Each session logs in, uploads a file of its own, lists the
# directory and downloads the file; every byte, every listing, every
# transfer's own result and the file on the server's disk are checked
# (bench/ftpsd/stress.py). Ends with "N passed, M failed" and exits 1 on any
# failure. Loopback only; no root needed.
#
#   bench/ftpsd-stress.sh   (SESSIONS=1000 PARALLEL=50 BUILD=glibc|musl)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Where cargo builds: $CARGO_TARGET_DIR if set (cargo honours it too).
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SESSIONS=${SESSIONS:-1000}
PARALLEL=${PARALLEL:-50}
BUILD=${BUILD:-glibc}

TMP=$(mktemp -d /var/tmp/ftpsd-stress.XXXXXX)
SERVER=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  if [ -n "$SERVER" ]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== building ftpsd (release, $BUILD)"
if [ "$BUILD" = musl ]; then
  (cd "$ROOT" && CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release -q -p ftpsd \
    --target x86_64-unknown-linux-musl)
  FTPSD=$TARGET_DIR/x86_64-unknown-linux-musl/release/ftpsd
else
  (cd "$ROOT" && cargo build --release -q -p ftpsd)
  FTPSD=$TARGET_DIR/release/ftpsd
fi

echo "== certificate, accounts, config"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/ca.key" -out "$TMP/ca.crt" -days 1 \
  -subj "/CN=stress CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$TMP/tls.key" -out "$TMP/tls.csr" -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$TMP/ext.cnf"
openssl x509 -req -in "$TMP/tls.csr" -CA "$TMP/ca.crt" -CAkey "$TMP/ca.key" -CAcreateserial \
  -out "$TMP/tls.crt" -days 1 -extfile "$TMP/ext.cnf" 2>/dev/null
USERS=()
: >"$TMP/users"
for name in ada grace linus; do
  password=$name-$RANDOM$RANDOM
  printf '%s:%s\n' "$name" "$(printf '%s' "$password" | "$FTPSD" hash-password)" >>"$TMP/users"
  USERS+=(--user "$name:$password")
done
mkdir -p "$TMP/data" "$TMP/work"
PORT=$(free_port)
PASV=$(python3 -c 'import random; print(random.randrange(20000, 30000, 1000))')
cat >"$TMP/ftpsd.toml" <<CONF
listen = "127.0.0.1:$PORT"
metrics_listen = "127.0.0.1:$(free_port)"
data_root = "$TMP/data"
users_file = "$TMP/users"
[tls]
cert = "$TMP/tls.crt"
key = "$TMP/tls.key"
[passive]
port_min = $PASV
port_max = $((PASV + 999))
address = "127.0.0.1"
CONF
RUST_LOG=info,libunftp=warn "$FTPSD" --config "$TMP/ftpsd.toml" 2>"$TMP/ftpsd.log" &
SERVER=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  sleep 0.1
done

echo "== $SESSIONS sessions, $PARALLEL at a time ($(lftp --version | head -1 | cut -d' ' -f1-4), curl $(curl --version | head -1 | cut -d' ' -f2), Python $(python3 -c 'import platform; print(platform.python_version())'))"
status=0
python3 "$ROOT/bench/ftpsd/stress.py" --port "$PORT" --cafile "$TMP/ca.crt" --data-root "$TMP/data" \
  --workdir "$TMP/work" --sessions "$SESSIONS" --parallel "$PARALLEL" "${USERS[@]}" || status=$?
echo "server: $(grep -c ' WARN ' "$TMP/ftpsd.log" || true) warnings, $(grep -c ' ERROR ' "$TMP/ftpsd.log" || true) errors in its log; peak RSS $(awk '/^VmHWM/ { print $2 }' "/proc/$SERVER/status") KiB"
grep -E ' (WARN|ERROR) ' "$TMP/ftpsd.log" | sed -E 's/^[^ ]+ //' | sort | uniq -c | sort -rn | head -10 || true
kill -0 "$SERVER" || { echo "ftpsd died" >&2; exit 1; }
exit "$status"

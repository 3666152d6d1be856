#!/usr/bin/env bash
# Runs a command against a fresh duet server on a free loopback port with a
# temporary data dir, then stops the server. The command sees DUET_URL and
# DUET_PID. Usage: scripts/with-server.sh <command...>
set -euo pipefail
BIN="${DUET_BIN:-target/release/duet}"
DATA="$(mktemp -d)"
LOG="$DATA/server.log"
DUET_ADDR=127.0.0.1:0 DUET_DATA_DIR="$DATA" RUST_LOG="${RUST_LOG:-duet=warn}" "$BIN" >"$LOG.out" 2>"$LOG" &
PID=$!
cleanup() {
  kill -TERM "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$LOG.out" 2>/dev/null | head -n1 || true)
  [ -n "$URL" ] && break
  kill -0 "$PID" 2>/dev/null || { echo "duet exited before listening:"; cat "$LOG"; exit 1; }
  sleep 0.1
done
[ -n "${URL:-}" ] || { echo "duet did not start within 10 s"; cat "$LOG"; exit 1; }
export DUET_URL="$URL" DUET_PID="$PID"
"$@"

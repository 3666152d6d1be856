#!/usr/bin/env bash
# Load runs of every scenario, each against a fresh server (bounded in time;
# loopback only). `SCALE=full` runs the sizes of docs/BENCHMARKS.md and the
# fan-out sweep behind its chart; the default is a short run of each.
# Reports go to stdout; JSON lines also to $OUT (default target/bench.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p duet-load
L=target/release/duet-load
OUT="${OUT:-target/bench.jsonl}"
: >"$OUT"
ulimit -n 20000 2>/dev/null || true
REPORT="$(mktemp)"
trap 'rm -f "$REPORT"' EXIT
# Prints the last run's report and appends its JSON line to $OUT.
keep() {
  grep -v '^{' "$REPORT" || true
  grep '^{' "$REPORT" >>"$OUT" || true
}
run() {
  scripts/with-server.sh bash -c "$L --url \"\$DUET_URL\" --server-pid \"\$DUET_PID\" --max-duration 170s --json $*" >"$REPORT" || true
  keep
}
# reconnect-storm starts (and restarts) the server itself, on a free port
# with a data dir that survives the restart.
storm() {
  local data port
  data="$(mktemp -d)"
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  $L --url "http://127.0.0.1:$port" --max-duration 170s --json reconnect-storm "$@" \
    --server-cmd "DUET_ADDR=127.0.0.1:$port DUET_DATA_DIR=$data RUST_LOG=duet=warn exec ${DUET_BIN:-target/release/duet}" \
    >"$REPORT" || true
  rm -rf "$data"
  keep
}
if [ "${SCALE:-short}" = full ]; then
  run connections --sockets 10000 --room-size 4 --idle 20s
  run connections --sockets 19500 --room-size 4 --idle 20s
  for rate in 2 5 10; do
    run fanout --rooms 1000 --room-size 4 --rate "$rate" --duration 20s
  done
  for rate in 2 5 10; do
    run fanout --rooms 1000 --room-size 4 --rate "$rate" --duration 20s --yjs
  done
  # Near saturation a busy spell of this shared machine moves the p99 by
  # several times: JSON and Yjs take turns, $REPEAT times each, and
  # bench-table.py gives the medians and the Yjs/JSON ratio of each pair.
  for _ in $(seq "${REPEAT:-3}"); do
    run fanout --rooms 1000 --room-size 4 --rate 20 --duration 20s
    run fanout --rooms 1000 --room-size 4 --rate 20 --duration 20s --yjs
  done
  # The durable-ack target: 10 000 edits/s (rooms of 2, one delivery each).
  run fanout --rooms 1000 --room-size 2 --rate 10 --duration 20s
  run bigroom --members 1000 --rate 10 --duration 20s
  run churn --rooms 200 --rate 2 --duration 20s
  run churn --rooms 200 --rate 10 --duration 20s
  storm --sockets 10000 --room-size 4
  storm --sockets 19500 --room-size 4
  python3 scripts/chart.py "$OUT" >docs/fanout-latency.svg
  echo "chart: docs/fanout-latency.svg"
else
  run connections --sockets 2000 --room-size 4 --idle 5s
  run fanout --rooms 200 --room-size 4 --rate 5 --duration 5s
  run fanout --rooms 200 --room-size 4 --rate 5 --duration 5s --yjs
  run bigroom --members 200 --rate 10 --duration 5s
  run churn --rooms 50 --rate 5 --duration 5s
  storm --sockets 2000 --room-size 4
fi
echo "reports: $OUT"

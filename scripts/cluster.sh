#!/usr/bin/env bash
# A Duet cluster on this machine: a throwaway Postgres and Redis
# (scripts/services.sh) and N `duet` nodes on loopback ports, all sharing
# DATABASE_URL, DUET_REDIS_URL and DUET_SECRET, each with its own DUET_ADDR,
# DUET_NODE_NAME and data dir. Ctrl-C stops everything and removes every
# temp dir. `make cluster` runs it after building.
#
#   scripts/cluster.sh                  until Ctrl-C (a node may be killed meanwhile)
#   scripts/cluster.sh run -- <cmd...>  run a command against the cluster, then stop;
#                                       it sees DUET_CLUSTER_URLS and DUET_CLUSTER_PIDS
#                                       (comma lists, node order), DUET_CLUSTER_DATABASE_URL,
#                                       DUET_CLUSTER_REDIS_URL
#
# CLUSTER_NODES (default 3); CLUSTER_PORT: node i listens on CLUSTER_PORT + i - 1
# (default 4001; 0 = any free ports); DUET_BIN (default target/release/duet);
# CLUSTER_BUS=0: no DUET_REDIS_URL (one node on Postgres alone, the baseline
# of scripts/cluster-bench.sh).
# Inside `make test` (DUET_TEST_SERVICES_DIR set) it uses the suite's Postgres
# and Redis with a fresh database. Exit code 3: the binary has no cluster
# support (it refuses a postgres:// DATABASE_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
SERVICES="$ROOT/scripts/services.sh"
BIN="${DUET_BIN:-$ROOT/target/release/duet}"
NODES="${CLUSTER_NODES:-3}"
BASE_PORT="${CLUSTER_PORT:-4001}"
# Seconds a node may take to listen, and the cluster to see all its nodes.
START_SECS=20
# Exit code when the binary refuses Postgres (no cluster support yet).
NO_CLUSTER=3

say() { echo "cluster: $*" >&2; }

[ -x "$BIN" ] || { say "no binary at $BIN: run 'make build' (or 'make cluster')"; exit 1; }

DIR="$(mktemp -d "${TMPDIR:-/tmp}/duet-cluster.XXXXXX")"
OWN_SERVICES=""
PIDS=()
URLS=()

teardown() {
  local pid i
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  # A node drains its sockets on SIGTERM; give it a moment, then SIGKILL.
  for i in $(seq 1 100); do
    local any=""
    for pid in "${PIDS[@]}"; do
      kill -0 "$pid" 2>/dev/null && any=1
    done
    [ -z "$any" ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$OWN_SERVICES" ]; then
    "$SERVICES" stop "$OWN_SERVICES" || true
  fi
  rm -rf "$DIR"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Postgres and Redis --------------------------------------------------------
if [ -n "${DUET_TEST_SERVICES_DIR:-}" ] && [ -f "$DUET_TEST_SERVICES_DIR/env" ]; then
  eval "$("$SERVICES" env "$DUET_TEST_SERVICES_DIR")"
else
  eval "$("$SERVICES" start --owner $$)"
  OWN_SERVICES="$DUET_TEST_SERVICES_DIR"
fi
DATABASE="$("$SERVICES" createdb "duet_cluster_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')")"
REDIS="$DUET_TEST_REDIS_URL"
SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"

# --- the nodes -----------------------------------------------------------------
port_busy() {
  local hex
  hex=$(printf ':%04X' "$1")
  awk -v p="$hex" 'NR > 1 && substr($2, length($2) - 4) == p && $4 == "0A" { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# GET a path on 127.0.0.1:port; prints the body (empty when unreachable).
http_get() {
  local line body="" in_body=""
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 0
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$2" "$1" >&3
  while IFS= read -r -t 3 line <&3 || [ -n "$line" ]; do
    line="${line%$'\r'}"
    if [ -n "$in_body" ]; then body+="$line"; elif [ -z "$line" ]; then in_body=1; fi
  done
  exec 3<&- 3>&-
  printf '%s' "$body"
}

start_node() {
  local i="$1" port=0 out
  if [ "$BASE_PORT" != 0 ]; then
    port=$((BASE_PORT + i - 1))
    if port_busy "$port"; then
      say "port $port is in use; choose others with CLUSTER_PORT=5001 (or CLUSTER_PORT=0 for any free ports)"
      exit 1
    fi
  fi
  mkdir -p "$DIR/node$i"
  out="$DIR/node$i.log"
  local bus="$REDIS"
  [ "${CLUSTER_BUS:-1}" = 0 ] && bus=""
  DATABASE_URL="$DATABASE" DUET_REDIS_URL="$bus" DUET_SECRET="$SECRET" \
    DUET_ADDR="127.0.0.1:$port" DUET_NODE_NAME="node$i" DUET_DATA_DIR="$DIR/node$i" \
    RUST_LOG="${RUST_LOG:-duet=info}" "$BIN" >"$out" 2>&1 &
  PIDS+=("$!")
}

# Waits until node i prints its address; exits with the reason if it dies.
await_node() {
  local i="$1"
  local pid="${PIDS[$((i - 1))]}" out="$DIR/node$i.log" url="" _
  for _ in $(seq 1 $((START_SECS * 10))); do
    url="$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$out" 2>/dev/null | head -n1 | sed 's/listening on //' || true)"
    [ -n "$url" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      if grep -q "must be an SQLite URL" "$out"; then
        say "$BIN refuses DATABASE_URL=postgres://: this build has no cluster support yet"
        grep "^duet:" "$out" | tail -n 3 >&2 || true
        exit "$NO_CLUSTER"
      fi
      say "node$i exited before listening:"
      tail -n 20 "$out" >&2
      exit 1
    fi
    sleep 0.1
  done
  [ -n "$url" ] || { say "node$i did not listen within $START_SECS s"; tail -n 20 "$out" >&2; exit 1; }
  URLS+=("$url")
}

for i in $(seq 1 "$NODES"); do start_node "$i"; done
for i in $(seq 1 "$NODES"); do await_node "$i"; done

# Every node should see all of them (`/healthz` "nodes"); older builds say nothing.
seen=""
for _ in $(seq 1 $((START_SECS * 10))); do
  seen=""
  for url in "${URLS[@]}"; do
    n="$(http_get "${url##*:}" /healthz | grep -o '"nodes": *[0-9]*' | grep -o '[0-9]*$' || true)"
    seen+="${n:-?} "
  done
  [ "$seen" = "$(printf "$NODES %.0s" $(seq 1 "$NODES"))" ] && break
  case "$seen" in *"?"*) break ;; esac
  sleep 0.1
done

join() { local IFS=,; echo "$*"; }
export DUET_CLUSTER_URLS DUET_CLUSTER_PIDS DUET_CLUSTER_DATABASE_URL DUET_CLUSTER_REDIS_URL
DUET_CLUSTER_URLS="$(join "${URLS[@]}")"
DUET_CLUSTER_PIDS="$(join "${PIDS[@]}")"
DUET_CLUSTER_DATABASE_URL="$DATABASE"
DUET_CLUSTER_REDIS_URL="$REDIS"

if [ "${1:-}" = run ]; then
  shift
  [ "${1:-}" = "--" ] && shift
  # In the background, so that a signal to this script reaches it too.
  "$@" <&0 &
  child=$!
  trap 'kill -INT "$child" 2>/dev/null; wait "$child"; exit 130' INT
  trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM
  rc=0
  wait "$child" || rc=$?
  exit "$rc"
fi

echo
echo "Duet cluster: $NODES nodes (Postgres ${DATABASE##*@}, Redis ${REDIS#redis://}); nodes seen by each: $seen"
for i in $(seq 1 "$NODES"); do
  printf '  node%s  %s   pid %s   log %s\n' "$i" "${URLS[$((i - 1))]}" "${PIDS[$((i - 1))]}" "$DIR/node$i.log"
done
echo
echo "Open a room on one node and the same room (/challenges/<id>) on another."
echo "Load:  target/release/duet-load --url $DUET_CLUSTER_URLS --server-pid $DUET_CLUSTER_PIDS fanout --rooms 100"
echo "Kill a node (kill -9 <pid>) to watch the others drop its members. Ctrl-C stops everything."

# Wait until Ctrl-C; report nodes that exit meanwhile.
running=("${PIDS[@]}")
while [ ${#running[@]} -gt 0 ]; do
  done_pid=""
  rc=0
  wait -n -p done_pid "${running[@]}" || rc=$?
  [ -n "$done_pid" ] || continue
  for i in "${!PIDS[@]}"; do
    [ "${PIDS[$i]}" = "$done_pid" ] && say "node$((i + 1)) (pid $done_pid) exited with code $rc"
  done
  next=()
  for pid in "${running[@]}"; do [ "$pid" != "$done_pid" ] && next+=("$pid"); done
  running=("${next[@]}")
done
say "every node has exited"

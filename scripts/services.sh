#!/usr/bin/env bash
# Throwaway Postgres and Redis on free loopback ports, in a temp dir, for the
# tests (`make test` starts them once for the whole run) and `make cluster`.
#
#   scripts/services.sh run -- <command...>   start, run the command with the
#                                             DUET_TEST_* variables, stop (always)
#   eval "$(scripts/services.sh start [--owner PID])"   start; prints `export` lines
#   scripts/services.sh stop [DIR]            stop and remove (default $DUET_TEST_SERVICES_DIR)
#   scripts/services.sh createdb [NAME]       a fresh database; prints its URL
#   scripts/services.sh pg-stop [fast|immediate|smart] | pg-start
#   scripts/services.sh redis-stop [TERM|KILL] | redis-start | redis-pause | redis-resume
#                                             faults for the tests, on $DUET_TEST_SERVICES_DIR;
#                                             a no-op when already so (redis-start also resumes)
#   scripts/services.sh reap                  stop leftovers of runs whose owner is gone
#
# Postgres: initdb in the temp dir, superuser `duet` with a random password
# (scram over TCP on 127.0.0.1), unix socket in the temp dir, fsync and
# synchronous_commit on (an acknowledged commit is durable). Postgres refuses
# to run as root, so as root it runs as the `postgres` system user. Redis:
# no persistence (`save ""`, `appendonly no`), bound to 127.0.0.1.
# Debian's `postgresql` and `redis-server` are installed with apt-get when
# missing and we are root; otherwise the script says what to install.
# DUET_PG_BIN overrides the directory of initdb/pg_ctl/postgres/psql,
# DUET_REDIS_SERVER the redis-server binary.
# shellcheck disable=SC2031 # PG_BIN and PGDATA are set by load_state in each branch
set -euo pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
PREFIX="${TMPDIR:-/tmp}/duet-services."
# The database every run creates for the tests (an admin connection for
# CREATE DATABASE, or a database of its own for a single test).
TEST_DB=duet_test
# Postgres superuser of the throwaway cluster.
PG_ROLE=duet
# Seconds to wait for a server to start or stop before giving up.
WAIT_SECS=30
# Tries with a new port when another process took the one we picked.
PORT_TRIES=5

say() { echo "services: $*" >&2; }
die() { echo "services: error: $*" >&2; exit 1; }

# --- finding and installing the servers -------------------------------------

pg_bin() {
  if [ -n "${DUET_PG_BIN:-}" ]; then
    [ -x "$DUET_PG_BIN/pg_ctl" ] && echo "$DUET_PG_BIN" && return 0
    return 1
  fi
  local d
  # Debian keeps each major version in /usr/lib/postgresql/<major>/bin: newest first.
  for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
      echo "$d"
      return 0
    fi
  done
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return 0
  fi
  return 1
}

redis_bin() {
  local r="${DUET_REDIS_SERVER:-}"
  [ -z "$r" ] && [ -x /usr/bin/redis-server ] && r=/usr/bin/redis-server
  [ -z "$r" ] && r="$(command -v redis-server 2>/dev/null || true)"
  [ -n "$r" ] && [ -x "$r" ] && echo "$r"
}

psql_bin() {
  local b="$1"
  if [ -x "$b/psql" ]; then echo "$b/psql"; else command -v psql; fi
}

ensure_installed() {
  local missing=()
  pg_bin >/dev/null || missing+=(postgresql)
  redis_bin >/dev/null || missing+=(redis-server)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "${missing[*]} not found: installing Debian's ${missing[*]} (apt-get)..."
    export DEBIAN_FRONTEND=noninteractive
    # The packages would start system-wide servers on the default ports;
    # the tests run their own, so keep the package scripts from starting any.
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    apt-get update -qq >&2 || true
    apt-get install -y -qq "${missing[@]}" >/dev/null || true
    [ -n "$made_policy" ] && rm -f "$policy"
    pg_bin >/dev/null && redis_bin >/dev/null && return 0
  fi
  echo "error: the tests need PostgreSQL and Redis servers (${missing[*]} missing)." >&2
  echo "       Install them with: sudo apt-get install postgresql redis-server   (Debian/Ubuntu)" >&2
  echo "       or set DUET_PG_BIN to a directory holding initdb, pg_ctl, postgres and psql," >&2
  echo "       and DUET_REDIS_SERVER to a redis-server binary." >&2
  exit 1
}

# --- helpers -----------------------------------------------------------------

is_root() { [ "$(id -u)" = 0 ]; }

# Runs a command as the OS user that owns the Postgres cluster (postgres when
# we are root), from a directory that user can read.
as_pg() {
  local cwd="$1"
  shift
  if is_root; then
    if command -v runuser >/dev/null 2>&1; then
      (cd "$cwd" && runuser -u postgres -- "$@")
    else
      (cd "$cwd" && su -s /bin/sh postgres -c "$(printf '%q ' "$@")")
    fi
  else
    (cd "$cwd" && "$@")
  fi
}

# A live process (a zombie is not: exited processes daemons leave behind
# stay zombies until the machine's init reaps them, which may take seconds).
alive() {
  local stat
  [ -n "${1:-}" ] && stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "${stat:0:1}" != Z ]
}

# True if any TCP socket (any state, v4 or v6) is bound to port $1.
port_busy() {
  local hex
  hex=$(printf ':%04X' "$1")
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
    awk -v p="$hex" 'NR > 1 && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }'
}

# A free port below the ephemeral range, so that no outgoing connection
# (the load tool opens tens of thousands) can take it meanwhile.
free_port() {
  local lo=20000 hi=32000 first p _
  if read -r first _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null && [ "$first" -gt $((lo + 1000)) ]; then
    hi=$((first - 1))
  fi
  for _ in $(seq 1 500); do
    p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo)))
    if ! port_busy "$p"; then
      echo "$p"
      return 0
    fi
  done
  die "no free port between $lo and $hi"
}

redis_ping() {
  local reply=""
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  IFS= read -r -t 2 reply <&3 || true
  exec 3<&- 3>&-
  [ "${reply%$'\r'}" = "+PONG" ]
}

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# Reads the settings a state dir was started with.
load_state() {
  local dir="$1"
  [ -f "$dir/state" ] || die "$dir is not a services dir (no state file); is DUET_TEST_SERVICES_DIR stale?"
  # shellcheck disable=SC1091
  . "$dir/state"
}

# --- Postgres ----------------------------------------------------------------

# `pg_ctl status`: 0 when the server of the data dir runs.
pg_running() {
  as_pg "$1" "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1
}

pg_start() {
  local dir="$1"
  as_pg "$dir" "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PG_DIR/log" -w -t "$WAIT_SECS" start >/dev/null
}

start_postgres() {
  local dir="$1" try
  PG_BIN="$(pg_bin)"
  PSQL="$(psql_bin "$PG_BIN")"
  PG_DIR="$dir/pg"
  PGDATA="$PG_DIR/data"
  PG_PASSWORD="$(random_hex 16)"
  mkdir -p "$PG_DIR"
  chmod 700 "$PG_DIR"
  printf '%s\n' "$PG_PASSWORD" >"$PG_DIR/pwfile"
  if is_root; then
    getent passwd postgres >/dev/null || die "running as root, but there is no 'postgres' user to run Postgres as (Postgres refuses root); install Debian's postgresql package or run as another user"
    chown -R postgres: "$PG_DIR"
  fi
  # --no-sync: only initdb's own files skip the flush; the server runs with
  # fsync on, so every commit it acknowledges is durable.
  if ! as_pg "$dir" "$PG_BIN/initdb" -D "$PGDATA" -U "$PG_ROLE" --pwfile="$PG_DIR/pwfile" \
    --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --no-locale --no-sync \
    >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    die "initdb failed"
  fi
  rm -f "$PG_DIR/pwfile"
  cat >>"$PGDATA/postgresql.conf" <<EOF

# --- duet throwaway instance (scripts/services.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
# Tests open many pools at once (several nodes per test, tests in parallel).
max_connections = 300
fsync = on
synchronous_commit = on
full_page_writes = on
EOF
  for try in $(seq 1 "$PORT_TRIES"); do
    PG_PORT="$(free_port)"
    echo "port = $PG_PORT" >>"$PGDATA/postgresql.conf"
    if pg_start "$dir"; then
      return 0
    fi
    if grep -q "could not bind\|could not create any TCP/IP sockets\|already in use" "$PG_DIR/log" 2>/dev/null && [ "$try" -lt "$PORT_TRIES" ]; then
      say "Postgres port $PG_PORT was taken meanwhile; trying another"
      continue
    fi
    tail -n 20 "$PG_DIR/log" >&2 || true
    die "Postgres did not start (log: $PG_DIR/log)"
  done
}

pg_admin_url() { echo "postgres://$PG_ROLE:$PG_PASSWORD@127.0.0.1:$PG_PORT/${1:-$TEST_DB}"; }

create_database() {
  local name="$1"
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$(pg_admin_url postgres)" \
    -c "CREATE DATABASE \"$name\" TEMPLATE template0" >/dev/null
}

stop_postgres() {
  local dir="$1" pid="" p
  [ -n "${PGDATA:-}" ] && [ -d "$PGDATA" ] || return 0
  [ -f "$PGDATA/postmaster.pid" ] && pid="$(head -n1 "$PGDATA/postmaster.pid" 2>/dev/null || true)"
  if alive "$pid"; then
    kill -CONT "$pid" 2>/dev/null || true
    as_pg "$dir" "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 15 stop >/dev/null 2>&1 ||
      as_pg "$dir" "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 10 stop >/dev/null 2>&1 ||
      kill -KILL "$pid" 2>/dev/null || true
  fi
  # Anything still working in the data dir (backends of a killed postmaster).
  for p in /proc/[0-9]*; do
    if [ "$(readlink "$p/cwd" 2>/dev/null)" = "$PGDATA" ]; then
      kill -KILL "${p#/proc/}" 2>/dev/null || true
    fi
  done
}

# --- Redis -------------------------------------------------------------------

redis_pid() {
  local pid
  pid="$(cat "$REDIS_DIR/redis.pid" 2>/dev/null || true)"
  if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "redis-server.*:$REDIS_PORT"; then
    echo "$pid"
  fi
}

# Starts Redis from its config (a no-op, but a SIGCONT, when it runs).
redis_start() {
  local i pid
  pid="$(redis_pid)"
  if [ -n "$pid" ]; then
    kill -CONT "$pid" 2>/dev/null || true
    return 0
  fi
  rm -f "$REDIS_DIR/redis.pid"
  "$REDIS_SERVER" "$REDIS_DIR/redis.conf" >/dev/null
  for i in $(seq 1 $((WAIT_SECS * 10))); do
    redis_ping "$REDIS_PORT" && return 0
    # daemonized: the child is gone when the port was taken
    if [ "$i" -gt 5 ] && [ -z "$(redis_pid)" ]; then
      return 1
    fi
    sleep 0.1
  done
  return 1
}

start_redis() {
  local dir="$1" try
  REDIS_SERVER="$(redis_bin)"
  REDIS_DIR="$dir/redis"
  mkdir -p "$REDIS_DIR"
  for try in $(seq 1 "$PORT_TRIES"); do
    REDIS_PORT="$(free_port)"
    cat >"$REDIS_DIR/redis.conf" <<EOF
# duet throwaway instance (scripts/services.sh): no persistence at all
port $REDIS_PORT
bind 127.0.0.1
save ""
appendonly no
daemonize yes
pidfile $REDIS_DIR/redis.pid
logfile $REDIS_DIR/redis.log
dir $REDIS_DIR
EOF
    if redis_start; then
      return 0
    fi
    if grep -q "Address already in use" "$REDIS_DIR/redis.log" 2>/dev/null && [ "$try" -lt "$PORT_TRIES" ]; then
      say "Redis port $REDIS_PORT was taken meanwhile; trying another"
      continue
    fi
    tail -n 20 "$REDIS_DIR/redis.log" >&2 || true
    die "Redis did not start (log: $REDIS_DIR/redis.log)"
  done
}

redis_stop() {
  local sig="${1:-TERM}" pid i
  pid="$(redis_pid)"
  alive "$pid" || return 0
  kill -CONT "$pid" 2>/dev/null || true
  kill "-$sig" "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    alive "$pid" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.1
}

# --- the state dir -----------------------------------------------------------

write_state() {
  local dir="$1"
  cat >"$dir/state" <<EOF
PG_BIN='$PG_BIN'
PSQL='$PSQL'
PG_DIR='$PG_DIR'
PGDATA='$PGDATA'
PG_PORT='$PG_PORT'
PG_PASSWORD='$PG_PASSWORD'
REDIS_SERVER='$REDIS_SERVER'
REDIS_DIR='$REDIS_DIR'
REDIS_PORT='$REDIS_PORT'
EOF
  chmod 600 "$dir/state"
  local pg_user=""
  is_root && pg_user=postgres
  cat >"$dir/env" <<EOF
export DUET_TEST_SERVICES_DIR='$dir'
export DUET_TEST_SERVICES='$SELF'
export DUET_TEST_POSTGRES_URL='$(pg_admin_url)'
export DUET_TEST_REDIS_URL='redis://127.0.0.1:$REDIS_PORT'
export DUET_TEST_PG_BIN='$PG_BIN'
export DUET_TEST_PG_CTL='$PG_BIN/pg_ctl'
export DUET_TEST_PSQL='$PSQL'
export DUET_TEST_PGDATA='$PGDATA'
export DUET_TEST_PG_USER='$pg_user'
export DUET_TEST_PG_PORT='$PG_PORT'
export DUET_TEST_REDIS_PORT='$REDIS_PORT'
export DUET_TEST_REDIS_SERVER='$REDIS_SERVER'
export DUET_TEST_REDIS_CONF='$REDIS_DIR/redis.conf'
EOF
  chmod 600 "$dir/env"
}

# Stops whatever a state dir started and removes it.
teardown() {
  local dir="$1"
  [ -d "$dir" ] || return 0
  case "$dir" in "$PREFIX"*) ;; *) die "refusing to remove $dir: not a ${PREFIX}* dir" ;; esac
  if [ -f "$dir/state" ]; then
    (
      load_state "$dir"
      redis_stop TERM
      stop_postgres "$dir"
    )
  else
    # A start that died before writing its state: look for what it began.
    # shellcheck disable=SC2030
    (
      PG_BIN="$(pg_bin || true)"
      PGDATA="$dir/pg/data"
      stop_postgres "$dir"
    )
  fi
  rm -rf "$dir"
}

# Leftovers of runs whose owner process is gone (a `make test` killed with
# SIGKILL): their servers are stopped and their dirs removed. Dirs of live
# owners (someone else's run on this machine) and of `start` without
# --owner are left alone.
reap_stale() {
  local dir owner
  for dir in "$PREFIX"*; do
    if [ ! -d "$dir" ] || [ ! -O "$dir" ]; then
      continue
    fi
    owner="$(cat "$dir/owner" 2>/dev/null || true)"
    if [ -z "$owner" ]; then
      # No owner file at all: a start killed in its first instant.
      [ -n "$(find "$dir" -maxdepth 0 -mmin +10 2>/dev/null)" ] || continue
    elif [ "$owner" = none ] || alive "$owner"; then
      continue
    fi
    say "removing the leftovers of an earlier run: $dir"
    teardown "$dir" || true
  done
}

cmd_start() {
  local owner="${DUET_SERVICES_OWNER:-none}"
  while [ $# -gt 0 ]; do
    case "$1" in
      --owner) owner="$2"; shift 2 ;;
      *) die "start: unknown option $1" ;;
    esac
  done
  reap_stale
  ensure_installed
  local dir
  dir="$(mktemp -d "${PREFIX}XXXXXX")"
  echo "$owner" >"$dir/owner"
  # The postgres user must reach its own dir inside.
  chmod 755 "$dir"
  STARTING="$dir"
  trap 'teardown "$STARTING"' EXIT
  start_postgres "$dir"
  start_redis "$dir"
  write_state "$dir"
  create_database "$TEST_DB"
  trap - EXIT
  say "Postgres on 127.0.0.1:$PG_PORT, Redis on 127.0.0.1:$REDIS_PORT ($dir)"
  cat "$dir/env"
}

services_dir() {
  local dir="${1:-${DUET_TEST_SERVICES_DIR:-}}"
  [ -n "$dir" ] || die "no services dir: give it or set DUET_TEST_SERVICES_DIR"
  echo "$dir"
}

cmd_run() {
  [ "${1:-}" = "--" ] && shift
  [ $# -gt 0 ] || die "run: no command"
  local env_text
  env_text="$(DUET_SERVICES_OWNER=$$ cmd_start)" || exit 1
  eval "$env_text"
  trap 'teardown "$DUET_TEST_SERVICES_DIR"' EXIT
  # The command runs in the background so that a signal to this script
  # reaches it too (and is not held until it ends); stdin stays its own.
  "$@" <&0 &
  CHILD=$!
  trap 'forward INT 130' INT
  trap 'forward TERM 143' TERM
  local rc=0
  wait "$CHILD" || rc=$?
  exit "$rc"
}

# Passes a signal on to the command of `run`, waits for it, exits.
forward() {
  kill "-$1" "$CHILD" 2>/dev/null || true
  wait "$CHILD" 2>/dev/null || true
  exit "$2"
}

main() {
  local cmd="${1:-}"
  [ $# -gt 0 ] && shift
  local dir
  case "$cmd" in
    start) cmd_start "$@" ;;
    run) cmd_run "$@" ;;
    stop) teardown "$(services_dir "${1:-}")" ;;
    reap) reap_stale ;;
    env) cat "$(services_dir "${1:-}")/env" ;;
    createdb)
      dir="$(services_dir "")"
      load_state "$dir"
      local name="${1:-duet_$(random_hex 6)}"
      create_database "$name"
      pg_admin_url "$name"
      ;;
    pg-stop)
      dir="$(services_dir "")"
      load_state "$dir"
      pg_running "$dir" || exit 0
      as_pg "$dir" "$PG_BIN/pg_ctl" -D "$PGDATA" -m "${1:-fast}" -w -t "$WAIT_SECS" stop >/dev/null
      ;;
    pg-start)
      dir="$(services_dir "")"
      load_state "$dir"
      pg_running "$dir" && exit 0
      pg_start "$dir"
      ;;
    redis-stop)
      dir="$(services_dir "")"
      load_state "$dir"
      redis_stop "${1:-TERM}"
      ;;
    redis-start)
      dir="$(services_dir "")"
      load_state "$dir"
      redis_start || die "Redis did not start again on port $REDIS_PORT (log: $REDIS_DIR/redis.log)"
      ;;
    redis-pause | redis-resume)
      dir="$(services_dir "")"
      load_state "$dir"
      local pid
      pid="$(redis_pid)"
      [ -n "$pid" ] || die "Redis is not running"
      if [ "$cmd" = redis-pause ]; then kill -STOP "$pid"; else kill -CONT "$pid"; fi
      ;;
    *)
      sed -n '2,/^set -euo/p' "$SELF" | sed '$d' | sed 's/^# \{0,1\}//' >&2
      exit 2
      ;;
  esac
}

main "$@"

#!/usr/bin/env bash
# Make sure PostgreSQL and Redis are reachable for the test suite, starting them if we can.
# Order: services already on the default ports; local server binaries (a throwaway data dir in
# a temp folder, or the machine's own cluster if one is installed but stopped);
# `docker compose up -d postgres redis` if Docker works. Otherwise: a clear message, exit 1.
set -u
PGHOST=${PGHOST:-127.0.0.1}; PGPORT=${PGPORT:-5432}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}; REDIS_PORT=${REDIS_PORT:-6379}

pg_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null || (exec 3<>"/dev/tcp/$PGHOST/$PGPORT") 2>/dev/null; }
redis_up() {
  if command -v redis-cli >/dev/null; then redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG
  else (exec 3<>"/dev/tcp/$REDIS_HOST/$REDIS_PORT") 2>/dev/null; fi
}
wait_for() { for _ in $(seq 1 30); do "$1" && return 0; sleep 1; done; return 1; }

start_pg() {
  if ls /etc/postgresql/*/main >/dev/null 2>&1 && command -v pg_ctlcluster >/dev/null; then
    echo "starting the installed PostgreSQL cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start && return 0
  fi
  local bindir; bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -n "$bindir" ] && [ "$(id -u)" != 0 ]; then
    local data; data=$(mktemp -d)/pg
    echo "starting a throwaway PostgreSQL in $data"
    "$bindir/initdb" -q -A trust -D "$data" && "$bindir/pg_ctl" -s -D "$data" -o "-p $PGPORT -k /tmp" -l "$data.log" start && return 0
  fi
  return 1
}
start_redis() {
  command -v redis-server >/dev/null || return 1
  echo "starting redis-server"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no >/dev/null
}
try_docker() {
  command -v docker >/dev/null && docker info >/dev/null 2>&1 || return 1
  echo "starting postgres and redis with docker compose"
  docker compose up -d postgres redis
}

pg_up || start_pg || try_docker || true
wait_for pg_up || { echo "ERROR: PostgreSQL is not reachable on $PGHOST:$PGPORT and could not be started. Install it (Debian: apt install postgresql) or Docker, or start it yourself." >&2; exit 1; }
redis_up || start_redis || try_docker || true
wait_for redis_up || { echo "ERROR: Redis is not reachable on $REDIS_HOST:$REDIS_PORT and could not be started. Install it (Debian: apt install redis-server) or Docker, or start it yourself." >&2; exit 1; }
echo "services ok: postgres $PGHOST:$PGPORT, redis $REDIS_HOST:$REDIS_PORT"

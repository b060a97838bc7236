#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for integration tests: loopback only, a
# port chosen by the caller, every file under DIR, stopped by pid.
#   pg.sh start DIR PORT     initdb on first use, start, create database "gatherd"
#   pg.sh stop DIR           fast shutdown (DIR kept: start again later)
#   pg.sh destroy DIR        stop if running, remove DIR
# PostgreSQL refuses to run as root: as root the server runs as "postgres".
set -euo pipefail
cmd=$1 dir=$2
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$PGBIN/initdb" ] || { echo "pg.sh: PostgreSQL server binaries not found (apt-get install postgresql-15)" >&2; exit 1; }
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case $cmd in
start)
  port=$3
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_owner "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  fi
  as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
    { tail -20 "$dir/server.log" >&2; exit 1; }
  psql="psql -h 127.0.0.1 -p $port -U postgres -X -q -v ON_ERROR_STOP=1"
  $psql -tc "SELECT 1 FROM pg_database WHERE datname = 'gatherd'" | grep -q 1 ||
    $psql -c "CREATE DATABASE gatherd" >/dev/null
  head -1 "$dir/data/postmaster.pid"
  ;;
stop)
  [ -f "$dir/data/postmaster.pid" ] || exit 0
  as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
  ;;
destroy)
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*) echo "usage: pg.sh start DIR PORT | stop DIR | destroy DIR" >&2; exit 2 ;;
esac

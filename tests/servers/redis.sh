#!/usr/bin/env bash
# A throwaway redis-server for integration tests and benchmarks: loopback
# only, no persistence, everything under DIR, stopped by pid.
#   redis.sh start DIR PORT [UNUSED]   start; DIR/redis.conf, when present, is
#                                      included last (ACL users, requirepass,
#                                      appendonly ...)
#   redis.sh stop DIR                  stop (DIR kept: start again later)
#   redis.sh destroy DIR               stop if running, remove DIR
# Prints the server's pid after a start.
set -euo pipefail
cmd=$1 dir=$2
command -v redis-server >/dev/null || { echo "redis.sh: redis-server not found (apt-get install redis-server)" >&2; exit 1; }
stop() {
  [ -f "$dir/redis.pid" ] || return 0
  local pid
  pid=$(cat "$dir/redis.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/redis.pid"
}
case $cmd in
start)
  port=$3
  mkdir -p "$dir"
  # No persistence, loopback only; DIR/redis.conf, when present, is included
  # last and so may change any of it (e.g. appendonly yes for a restart test).
  cat >"$dir/server.conf" <<CONF
save ""
appendonly no
bind 127.0.0.1
port $port
dir $dir
pidfile $dir/redis.pid
logfile $dir/redis.log
daemonize yes
unixsocket $dir/redis.sock
unixsocketperm 700
CONF
  [ -f "$dir/redis.conf" ] && echo "include $dir/redis.conf" >>"$dir/server.conf"
  redis-server "$dir/server.conf"
  # Up when it answers: PONG, or NOAUTH when a password is required.
  up() { redis-cli -p "$port" ping 2>&1 | grep -qE 'PONG|NOAUTH'; }
  for _ in $(seq 1 100); do up && break; sleep 0.05; done
  up || { tail -20 "$dir/redis.log" >&2; exit 1; }
  for _ in $(seq 1 50); do [ -s "$dir/redis.pid" ] && break; sleep 0.05; done
  cat "$dir/redis.pid"
  ;;
stop) stop ;;
destroy) stop; rm -rf "$dir" ;;
*) echo "usage: redis.sh start DIR PORT [UNUSED] | stop DIR | destroy DIR" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# The Modbus TCP test server (tests/servers/modbus_server.c, built by meson;
# its path comes in GATHERD_MODBUS_SERVER): loopback only, everything under
# DIR, stopped by pid. A test may write DIR/modbus.conf (see the server's
# header) and DIR/addresses before the start.
#   modbus.sh start DIR PORT [RPC_PORT] [ADDRESSES]   start, wait until it listens
#   modbus.sh stop DIR                               stop (DIR kept: start again later)
#   modbus.sh destroy DIR                            stop if running, remove DIR
set -euo pipefail
cmd=$1 dir=$2
stop() {
  [ -f "$dir/server.pid" ] || return 0
  local pid
  pid=$(cat "$dir/server.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/server.pid" "$dir/ready"
}
case $cmd in
start)
  port=$3 addresses=${5:-}
  # How many loopback addresses to listen on: argument 5, or DIR/addresses
  # (written by a test before the start), or just 127.0.0.1.
  [ -n "$addresses" ] || addresses=$(cat "$dir/addresses" 2>/dev/null || echo 1)
  bin=${GATHERD_MODBUS_SERVER:-}
  [ -x "$bin" ] || { echo "modbus.sh: GATHERD_MODBUS_SERVER is not set to the built modbus_server" >&2; exit 1; }
  mkdir -p "$dir"
  rm -f "$dir/ready"
  "$bin" --dir "$dir" --port "$port" --addresses "$addresses" >>"$dir/server.log" 2>&1 &
  echo $! >"$dir/server.pid"
  for _ in $(seq 1 100); do
    [ -f "$dir/ready" ] && break
    kill -0 "$(cat "$dir/server.pid")" 2>/dev/null || break
    sleep 0.05
  done
  [ -f "$dir/ready" ] || { cat "$dir/server.log" >&2; stop; exit 1; }
  cat "$dir/server.pid"
  ;;
stop) stop ;;
destroy) stop; rm -rf "$dir" ;;
*) echo "usage: modbus.sh start DIR PORT [RPC_PORT] [ADDRESSES] | stop DIR | destroy DIR" >&2; exit 2 ;;
esac

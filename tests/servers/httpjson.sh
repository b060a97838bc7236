#!/usr/bin/env bash
# A scripted JSON HTTP server (httpjson.py, Python 3 stdlib) for the
# http_poll integration tests: loopback only, everything under DIR, stopped
# by pid. Documents are served from DIR/docs; DIR/tls/server.pem and
# server.key make it HTTPS (DIR/tls/client-ca.pem: client certificates required).
#   httpjson.sh start DIR PORT RPC_PORT   start (RPC_PORT unused); exit 0 once it answers
#   httpjson.sh stop DIR                  stop (DIR kept)
#   httpjson.sh destroy DIR               stop if running, remove DIR
set -euo pipefail
cmd=$1 dir=$2
here=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "httpjson.sh: python3 not found" >&2; exit 1; }
stop() {
  [ -f "$dir/httpjson.pid" ] || return 0
  local pid
  pid=$(cat "$dir/httpjson.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/httpjson.pid"
}
# Listening (a TCP connect: the server may want TLS and a client certificate).
answers() {
  python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
PY
}
case $cmd in
start)
  port=$3
  mkdir -p "$dir/docs"
  python3 "$here/httpjson.py" "$dir" "$port" >>"$dir/server.log" 2>&1 &
  echo $! >"$dir/httpjson.pid"
  for _ in $(seq 1 100); do
    answers "$port" && break
    kill -0 "$(cat "$dir/httpjson.pid")" 2>/dev/null || break
    sleep 0.1
  done
  answers "$port" || { tail -20 "$dir/server.log" >&2; stop; exit 1; }
  cat "$dir/httpjson.pid"
  ;;
stop) stop ;;
destroy) stop; rm -rf "$dir" ;;
*) echo "usage: httpjson.sh start DIR PORT RPC_PORT | stop DIR | destroy DIR" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A throwaway S3-compatible server (npm s3rver, installed by s3rver-install.sh)
# for integration tests: loopback only, every file under DIR, stopped by pid.
# Bucket "gatherd" exists from the start; credentials S3RVER / S3RVER.
#   s3rver.sh start DIR PORT [UNUSED]   start, wait until it answers
#   s3rver.sh stop DIR                  stop (DIR kept: start again later)
#   s3rver.sh destroy DIR               stop if running, remove DIR
set -euo pipefail
cmd=$1 dir=$2
here=$(cd "$(dirname "$0")" && pwd)
bin=${GATHERD_S3RVER:-$here/.s3rver/node_modules/.bin/s3rver}
stop() {
  [ -f "$dir/s3rver.pid" ] || return 0
  local pid
  pid=$(cat "$dir/s3rver.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/s3rver.pid"
}
case $cmd in
start)
  port=$3
  [ -x "$bin" ] || { echo "s3rver.sh: $bin not found (run tests/servers/s3rver-install.sh)" >&2; exit 1; }
  command -v node >/dev/null || { echo "s3rver.sh: node not found (apt-get install nodejs npm)" >&2; exit 1; }
  mkdir -p "$dir/data"
  "$bin" -d "$dir/data" -a 127.0.0.1 -p "$port" --configure-bucket gatherd \
    >>"$dir/s3rver.log" 2>&1 &
  echo $! >"$dir/s3rver.pid"
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    kill -0 "$(cat "$dir/s3rver.pid")" 2>/dev/null || break
    sleep 0.1
  done
  curl -s -o /dev/null "http://127.0.0.1:$port/" || { tail -20 "$dir/s3rver.log" >&2; stop; exit 1; }
  cat "$dir/s3rver.pid"
  ;;
stop) stop ;;
destroy) stop; rm -rf "$dir" ;;
*) echo "usage: s3rver.sh start DIR PORT [RPC_PORT] | stop DIR | destroy DIR" >&2; exit 2 ;;
esac

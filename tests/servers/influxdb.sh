#!/usr/bin/env bash
# A throwaway InfluxDB 1.x server (Debian's influxdb package) for integration
# tests: loopback only, every directory under DIR, stopped by pid.
#   influxdb.sh start DIR HTTP_PORT RPC_PORT   start, create database "gatherd"
#   influxdb.sh stop DIR                       stop (DIR kept: start again later)
#   influxdb.sh destroy DIR                    stop if running, remove DIR
set -euo pipefail
cmd=$1 dir=$2
command -v influxd >/dev/null || { echo "influxdb.sh: influxd not found (apt-get install influxdb)" >&2; exit 1; }
stop() {
  [ -f "$dir/influxd.pid" ] || return 0
  local pid
  pid=$(cat "$dir/influxd.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/influxd.pid"
}
case $cmd in
start)
  port=$3 rpc=$4
  mkdir -p "$dir"
  influxd config 2>/dev/null | sed \
    -e "s#/var/lib/influxdb#$dir#g" \
    -e "s#^reporting-disabled = .*#reporting-disabled = true#" \
    -e "s#^bind-address = .*#bind-address = \"127.0.0.1:$rpc\"#" \
    -e "s#^  bind-address = \":8086\"#  bind-address = \"127.0.0.1:$port\"#" \
    -e "s#/var/run/influxdb.sock#$dir/influxdb.sock#" \
    -e "s#^  log-enabled = true#  log-enabled = false#" >"$dir/influxdb.conf"
  influxd run -config "$dir/influxdb.conf" -pidfile "$dir/influxd.pid" >>"$dir/influxd.log" 2>&1 &
  for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$port/ping" >/dev/null && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$port/ping" >/dev/null || { tail -20 "$dir/influxd.log" >&2; exit 1; }
  curl -sf -XPOST "http://127.0.0.1:$port/query" --data-urlencode "q=CREATE DATABASE gatherd" >/dev/null
  for _ in $(seq 1 50); do [ -s "$dir/influxd.pid" ] && break; sleep 0.1; done
  cat "$dir/influxd.pid"
  ;;
stop) stop ;;
destroy) stop; rm -rf "$dir" ;;
*) echo "usage: influxdb.sh start DIR HTTP_PORT RPC_PORT | stop DIR | destroy DIR" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A throwaway mosquitto broker for integration tests: loopback only, no
# persistence, everything under DIR, stopped by pid.
#   mosquitto.sh start DIR PORT [UNUSED]   start; anonymous clients allowed
#                                          unless DIR/passwd exists (made
#                                          with mosquitto_passwd before the
#                                          first start), then only its users;
#                                          TLS when DIR/server.crt and
#                                          DIR/server.key exist; with
#                                          DIR/ca.crt too, clients must show
#                                          a certificate signed by it
#   mosquitto.sh stop DIR                  stop (DIR kept: start again later)
#   mosquitto.sh destroy DIR               stop if running, remove DIR
# Prints the broker's pid after a start.
set -euo pipefail
cmd=$1 dir=$2
broker=/usr/sbin/mosquitto
[ -x "$broker" ] || broker=$(command -v mosquitto || true)
[ -n "$broker" ] || { echo "mosquitto.sh: mosquitto not found (apt-get install mosquitto mosquitto-clients)" >&2; exit 1; }
stop() {
  [ -f "$dir/mosquitto.pid" ] || return 0
  local pid
  pid=$(cat "$dir/mosquitto.pid")
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/mosquitto.pid"
}
case $cmd in
start)
  port=$3
  mkdir -p "$dir"
  {
    echo "listener $port 127.0.0.1"
    echo "persistence false"
    echo "pid_file $dir/mosquitto.pid"
    echo "log_dest file $dir/mosquitto.log"
    echo "log_type error"
    echo "log_type warning"
    echo "log_type notice"
    echo "log_type information"
    echo "connection_messages true"
    # Root would otherwise switch to the mosquitto user, who cannot write DIR.
    [ "$(id -u)" = 0 ] && echo "user root"
    if [ -f "$dir/server.crt" ] && [ -f "$dir/server.key" ]; then
      echo "certfile $dir/server.crt"
      echo "keyfile $dir/server.key"
      if [ -f "$dir/ca.crt" ]; then
        echo "cafile $dir/ca.crt"
        echo "require_certificate true"
      fi
    fi
    if [ -f "$dir/passwd" ]; then
      echo "allow_anonymous false"
      echo "password_file $dir/passwd"
    else
      echo "allow_anonymous true"
    fi
  } >"$dir/mosquitto.conf"
  "$broker" -c "$dir/mosquitto.conf" -d
  # Up when a TCP connect to the port succeeds.
  up() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
  for _ in $(seq 1 100); do up && break; sleep 0.05; done
  up || { tail -20 "$dir/mosquitto.log" >&2; exit 1; }
  for _ in $(seq 1 50); do [ -s "$dir/mosquitto.pid" ] && break; sleep 0.05; done
  cat "$dir/mosquitto.pid"; echo
  ;;
stop) stop ;;
destroy) stop; rm -rf "$dir" ;;
*) echo "usage: mosquitto.sh start DIR PORT [UNUSED] | stop DIR | destroy DIR" >&2; exit 2 ;;
esac

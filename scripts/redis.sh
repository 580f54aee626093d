#!/usr/bin/env bash
# Start/stop a throwaway redis-server (Debian's `redis-server` package) for the tests.
#   eval "$(scripts/redis.sh start)"   # prints: export WARDEN_TEST_REDIS_URL=redis://127.0.0.1:PORT
#   scripts/redis.sh stop
# The server listens on a free loopback port, keeps its files in a temp dir, persists
# nothing, and is stopped (and the dir removed) by `stop`.
set -euo pipefail
state="${TMPDIR:-/tmp}/warden-redis.$(id -u).state"

start() {
  command -v redis-server >/dev/null || { echo "redis-server not installed (apt-get install redis-server)" >&2; exit 2; }
  if [ -f "$state" ]; then stop >/dev/null 2>&1 || true; fi
  dir=$(mktemp -d "${TMPDIR:-/tmp}/warden-redis.XXXXXX")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
  for _ in $(seq 1 100); do
    if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
      printf '%s %s\n' "$dir" "$port" > "$state"
      echo "export WARDEN_TEST_REDIS_URL=redis://127.0.0.1:$port"
      return 0
    fi
    sleep 0.1
  done
  echo "redis-server did not start; log:" >&2
  cat "$dir/redis.log" >&2 || true
  exit 1
}

stop() {
  [ -f "$state" ] || { echo "no redis started by this script" >&2; return 0; }
  read -r dir port < "$state"
  if [ -f "$dir/redis.pid" ]; then
    pid=$(cat "$dir/redis.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$dir" "$state"
  echo "redis on port $port stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

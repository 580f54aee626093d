#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL server for the test suite.
#
#   eval "$(scripts/pg.sh start)"   # prints: export WARDEN_TEST_POSTGRES_URL=postgres://…
#   cargo test …                    # tests read WARDEN_TEST_POSTGRES_URL
#   scripts/pg.sh stop
#
# The cluster lives in a temporary directory ($WARDEN_PG_DIR, default /tmp/warden-pg-$UID),
# listens on 127.0.0.1 on a free port with trust authentication, and is deleted by `stop`.
# Needs the PostgreSQL server binaries (Debian: apt-get install -y postgresql). When run
# as root, the server runs as the `postgres` OS user (PostgreSQL refuses to run as root).
set -eu

DIR=${WARDEN_PG_DIR:-${TMPDIR:-/tmp}/warden-pg-$(id -u)}

find_bindir() {
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/pg_ctl" ]; then
        pg_config --bindir
        return
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return
        fi
    done
    if command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return
    fi
    echo "pg.sh: PostgreSQL server binaries not found (Debian: apt-get install -y postgresql)" >&2
    exit 2
}

as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null && return
    # Fallback without Python: first port in a quiet range nobody listens on.
    p=55432
    while (echo >/dev/tcp/127.0.0.1/$p) >/dev/null 2>&1; do p=$((p + 1)); done
    echo $p
}

case "${1:-}" in
start)
    BIN=$(find_bindir)
    if [ -f "$DIR/port" ] && as_pg "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
        PORT=$(cat "$DIR/port")
        echo "pg.sh: already running on port $PORT" >&2
    else
        rm -rf "$DIR"
        mkdir -p "$DIR"
        if [ "$(id -u)" = 0 ]; then chown postgres "$DIR"; fi
        as_pg "$BIN/initdb" -D "$DIR/data" -U warden -A trust --no-sync -E UTF8 >"$DIR/initdb.log" 2>&1 || {
            cat "$DIR/initdb.log" >&2
            exit 2
        }
        PORT=$(free_port)
        as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 \
            -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2 || {
            cat "$DIR/server.log" >&2
            exit 2
        }
        echo "$PORT" >"$DIR/port"
        as_pg "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U warden warden_test
    fi
    echo "export WARDEN_TEST_POSTGRES_URL=postgres://warden@127.0.0.1:$PORT/warden_test"
    ;;
stop)
    BIN=$(find_bindir)
    if [ -d "$DIR/data" ]; then
        as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >&2 || true
    fi
    rm -rf "$DIR"
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac

# Helpers for the PostgreSQL suites (users_http.bats, users_outage.bats,
# migrate.bats); load after helpers (and queue.bash when Redis is needed).
# A real, private PostgreSQL (scripts/postgres) in a dir under TEST_TMP,
# reached over its unix socket; the build's bin/migrate applies sql/.
#
#   GW_BIN   the build's bin/ (set by tests/run; default: the checkout's)

: "${GW_BIN:=$REPO/bin}"
export GW_BIN

# start_pg [--bare]: start it, wait for the app database, apply the
# migrations (not with --bare). Exports PG_DIR DATABASE_URL.
start_pg() {
    PG_DIR=$(mktemp -d "$TEST_TMP/pg.XXXXXX")
    DATABASE_URL="postgresql:///app?host=$PG_DIR/run&user=postgres"
    export PG_DIR DATABASE_URL
    pg_launch || return 1
    [ "${1:-}" = --bare ] && return 0
    if ! MIGRATIONS_DIR=$REPO/sql "$GW_BIN/migrate" >"$PG_DIR/migrate.out" 2>&1; then
        echo "migrate failed:" >&2
        cat "$PG_DIR/migrate.out" >&2
        return 1
    fi
}

# pg_launch: (re)start the server on PG_DIR; wait until `app` is there.
pg_launch() {
    rm -f "$PG_DIR/run/app.ready"
    PG_DIR=$PG_DIR "$REPO/scripts/postgres" >>"$PG_DIR/postgres.out" 2>&1 3>&- </dev/null &
    if ! retry 300 0.05 test -f "$PG_DIR/run/app.ready"; then
        echo "postgres did not start:" >&2
        cat "$PG_DIR/postgres.out" "$PG_DIR/postgres.log" >&2
        return 1
    fi
}

# pg_pid: the postmaster's pid (scripts/postgres runs it under runuser).
pg_pid() { head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null; }

# psql_app SQL...: run SQL on the app database, unaligned tuples only.
# The server's own psql, not Debian's /usr/bin/psql: that is a Perl wrapper
# (pg_wrapper) that costs ~45 ms of CPU a call before psql's own ~13.
PSQL=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/psql
[ -x "$PSQL" ] || PSQL=psql
psql_app() { "$PSQL" -X -q -tA -v ON_ERROR_STOP=1 "$DATABASE_URL" "$@"; }

# stop_pg: fast shutdown (SIGINT to the postmaster: open sessions are ended,
# the data is consistent), wait until it is gone.
stop_pg() {
    [ -n "${PG_DIR:-}" ] || return 0
    local pid
    pid=$(pg_pid)
    [ -n "$pid" ] || return 0
    kill -INT "$pid" 2>/dev/null || return 0
    retry 200 0.05 eval "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null
    retry 100 0.05 eval "! test -S '$PG_DIR/run/.s.PGSQL.5432'"
}

restart_pg() {
    stop_pg
    pg_launch
}

# pg_freeze / pg_thaw: SIGSTOP / SIGCONT the postmaster and every backend
# (a server that accepts connections but never answers). runuser, the
# postmaster's parent, stops itself when its child stops (as su does) and
# is woken too: stopped, it would never reap the postmaster, and would keep
# the pipes it inherited from bats open (a failed test's bats then hangs).
pg_freeze() {
    local pid
    pid=$(pg_pid)
    kill -STOP "$pid" $(pgrep -P "$pid")
}
pg_thaw() {
    local pid parent
    pid=$(pg_pid)
    parent=$(ps -o ppid= -p "$pid" | tr -d ' ')
    [ "$(ps -o comm= -p "$parent" 2>/dev/null)" = runuser ] || parent=
    kill -CONT "$pid" $(pgrep -P "$pid") $parent
}

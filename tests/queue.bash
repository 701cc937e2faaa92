# Helpers for the task-queue suites (tests/tasks_http.bats, queue_runner.bats,
# celery_interop.bats); load after helpers. Everything is real and private to
# the test: a redis-server (scripts/redis) in a dir under TEST_TMP, the
# queue-runner of the build under test, lighttpd through start_gateway, and
# Debian's Celery (only /usr/bin/python3 has it).
#
#   GW_BIN   the build's bin/ (set by tests/run; default: the checkout's)

: "${GW_BIN:=$REPO/bin}"
export GW_BIN
PY=/usr/bin/python3
CELERY_DIR=$REPO/tests/celery

# start_redis: a private redis on a unix socket and a free TCP port, with a
# password of its own (scripts/redis's requirepass, the file
# $REDIS_DIR/password). Exports REDIS_DIR REDIS_PORT REDIS_SOCK REDIS_URL
# (ours: unix://:<password>@<socket>) CELERY_URL (Python's:
# redis://:<password>@127.0.0.1:<port>/0) REDIS_PID. The pid is also kept in
# $REDIS_DIR/test.pid so a test can stop a redis that setup_file started.
# The password itself is exported under no other name: rcli and redis_tcp_url
# read the file.
start_redis() {
    REDIS_DIR=$(mktemp -d "$TEST_TMP/redis.XXXXXX")
    REDIS_SOCK=$REDIS_DIR/redis.sock
    (umask 077 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' >"$REDIS_DIR/password")
    REDIS_URL=unix://:$(redis_password)@$REDIS_SOCK
    local _try
    for _try in 1 2 3; do # another program may take the port before redis binds it
        REDIS_PORT=$(free_port)
        CELERY_URL=$(redis_tcp_url 0)
        export REDIS_DIR REDIS_PORT REDIS_SOCK REDIS_URL CELERY_URL
        redis_launch 2>"$REDIS_DIR/launch.err" && return 0
        grep -q 'Address already in use' "$REDIS_DIR/launch.err" || break
    done
    cat "$REDIS_DIR/launch.err" >&2
    return 1
}

# redis_launch: (re)start redis-server on REDIS_DIR/REDIS_PORT, wait for PING.
redis_launch() {
    REDIS_DIR=$REDIS_DIR REDIS_PORT=$REDIS_PORT REDIS_PASSWORD_FILE=$REDIS_DIR/password \
        "$REPO/scripts/redis" \
        >>"$REDIS_DIR/redis.out" 2>&1 3>&- </dev/null &
    REDIS_PID=$!
    export REDIS_PID
    echo "$REDIS_PID" >"$REDIS_DIR/test.pid"
    if ! retry 100 0.05 redis_up; then
        echo "redis did not start:" >&2
        cat "$REDIS_DIR/redis.out" "$REDIS_DIR/redis.log" >&2
        return 1
    fi
}

redis_up() { [ "$(rcli ping 2>/dev/null)" = PONG ]; }

# rcli ARGS...: redis-cli on the test's redis, with its password (redis-cli
# reads REDISCLI_AUTH: never on a command line)
rcli() { REDISCLI_AUTH=$(redis_password) redis-cli -s "$REDIS_SOCK" "$@"; }

# redis_password: the test redis's password
redis_password() { printf '%s' "$(<"$REDIS_DIR/password")"; }

# redis_tcp_url DB: the test redis over TCP with its password, in the form
# our programs, redis-py, kombu and Celery all read
redis_tcp_url() { printf 'redis://:%s@127.0.0.1:%s/%s' "$(redis_password)" "$REDIS_PORT" "$1"; }

# gone PID: the process has exited (a zombie counts: its parent may be
# another bats process that has not reaped it yet)
gone() {
    ! kill -0 "$1" 2>/dev/null || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

# stop_redis: SHUTDOWN (AOF written), SIGKILL if it does not go.
stop_redis() {
    [ -n "${REDIS_DIR:-}" ] && [ -f "$REDIS_DIR/test.pid" ] || return 0
    local pid
    pid=$(cat "$REDIS_DIR/test.pid")
    rcli shutdown >/dev/null 2>&1 || true
    retry 100 0.05 gone "$pid" || kill -KILL "$pid" 2>/dev/null
    retry 100 0.05 gone "$pid"
    wait "$pid" 2>/dev/null || true
    rm -f "$REDIS_DIR/test.pid"
}

# restart_redis: stop it and start it again on the same dir, port and socket
# (its AOF brings the data back).
restart_redis() {
    stop_redis
    redis_launch
}

# start_runner [ARGS...]: start the queue-runner under test (env as set by the
# caller, e.g. `RUNNER_LEASE=3 start_runner -c 1`), log in a dir of its own
# under TEST_TMP, and wait for its `ready` line. Exports RUNNER_PID and
# RUNNER_LOG; every runner started is remembered for queue_teardown.
start_runner() {
    local dir
    dir=$(mktemp -d "$TEST_TMP/runner.XXXXXX")
    RUNNER_LOG=$dir/runner.log
    REDIS_URL=$REDIS_URL "$GW_BIN/queue-runner" "$@" >"$RUNNER_LOG" 2>&1 3>&- </dev/null &
    RUNNER_PID=$!
    export RUNNER_PID RUNNER_LOG
    RUNNER_PIDS+=("$RUNNER_PID")
    RUNNER_DIRS+=("$dir")
    local i
    for i in $(seq 1 200); do
        grep -qE ' - INFO - .*ready|"level":"INFO",.*"message":"ready: ' "$RUNNER_LOG" && return 0
        if ! kill -0 "$RUNNER_PID" 2>/dev/null; then
            echo "queue-runner exited before ready:" >&2
            cat "$RUNNER_LOG" >&2
            return 1
        fi
        sleep 0.05
    done
    echo "queue-runner not ready after 10 s:" >&2
    cat "$RUNNER_LOG" >&2
    return 1
}

# runner_children PID: the worker processes of a runner
runner_children() { pgrep -P "$1" 2>/dev/null || true; }

# stop_runner [PID]: SIGTERM (the runner drains), wait for it and its
# workers, and fail unless it exited 0.
stop_runner() {
    local pid=${1:-$RUNNER_PID} kids rc
    kids=$(runner_children "$pid")
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    for k in $kids; do
        retry 100 0.1 gone "$k" || { echo "worker $k outlived its runner $pid" >&2; return 1; }
    done
    if [ "$rc" != 0 ]; then
        echo "queue-runner $pid exited $rc:" >&2
        tail -n 30 "$(runner_log_of "$pid")" >&2
        return 1
    fi
}

runner_log_of() {
    local i
    for i in "${!RUNNER_PIDS[@]}"; do
        if [ "${RUNNER_PIDS[$i]}" = "$1" ]; then echo "${RUNNER_DIRS[$i]}/runner.log"; fi
    done
}

# leftover_runners: pids of queue-runner processes (supervisors and workers)
# of this test's build talking to this test's redis.
leftover_runners() {
    local p
    for p in $(pids_of_exe "$GW_BIN/queue-runner"); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxF "REDIS_URL=$REDIS_URL"; then
            echo "$p"
        fi
    done
    return 0
}

# start_celery_worker [ARGS...]: a real Python Celery worker (tests/celery/
# tasks.py) on CELERY_URL; waits for its "ready." line. Exports CELERY_PID.
start_celery_worker() {
    local dir
    dir=$(mktemp -d "$TEST_TMP/celery.XXXXXX")
    CELERY_LOG=$dir/celery-worker.log
    (cd "$CELERY_DIR" && PYTHONPATH=$CELERY_DIR exec "$PY" -m celery -A tasks worker \
        --pool=solo -c 1 -n "pyworker-$$@%h" --without-gossip --without-mingle \
        --without-heartbeat --loglevel=INFO "$@") >"$CELERY_LOG" 2>&1 3>&- </dev/null &
    CELERY_PID=$!
    export CELERY_PID CELERY_LOG
    if ! retry 300 0.1 grep -q 'ready\.' "$CELERY_LOG"; then
        echo "celery worker did not start:" >&2
        cat "$CELERY_LOG" >&2
        return 1
    fi
}

stop_celery_worker() {
    [ -n "${CELERY_PID:-}" ] || return 0
    kill -TERM "$CELERY_PID" 2>/dev/null
    retry 100 0.1 gone "$CELERY_PID" || kill -KILL "$CELERY_PID" 2>/dev/null
    wait "$CELERY_PID" 2>/dev/null || true
    CELERY_PID=
}

# stop_runners: stop every runner the test started that is still alive
# (SIGTERM, then SIGKILL), kill any of this test's queue-runner processes
# still left (orphaned workers: a failure), then fail on any sanitizer or
# crash report in the runners' logs. On failure, the logs' tails are printed
# (bats shows them only for failed tests).
stop_runners() {
    local p rc=0
    for p in "${RUNNER_PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || continue
        kill -TERM "$p" 2>/dev/null
        retry 100 0.1 gone "$p" || kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null || true
    done
    if [ -n "${REDIS_URL:-}" ]; then
        for p in $(leftover_runners); do
            echo "stop_runners: killing leftover queue-runner process $p" >&2
            kill -KILL "$p" 2>/dev/null
            rc=1
        done
    fi
    for p in "${RUNNER_DIRS[@]}"; do
        check_logs "$p" || rc=1
    done
    if [ "$rc" != 0 ] || [ -z "${BATS_TEST_COMPLETED:-}" ]; then
        for p in "${RUNNER_DIRS[@]}"; do
            echo "--- $p/runner.log (tail)" >&2
            tail -n 15 "$p/runner.log" >&2
        done
    fi
    RUNNER_PIDS=()
    RUNNER_DIRS=()
    return "$rc"
}

# stop_route_gateway: stop_gateway, then fail (and SIGKILL them) if route
# processes of this gateway outlive lighttpd.
stop_route_gateway() {
    [ -n "${GW_PID:-}" ] || return 0
    local pids p rc=0
    pids=$(route_pids)
    stop_gateway || rc=1
    for p in $pids; do
        # lighttpd signals its backends as it stops but does not wait for
        # them: on a loaded host one may take a few seconds to be reaped
        retry 50 0.1 gone "$p" && continue
        echo "route process $p ($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)) outlived lighttpd; killing it" >&2
        kill -KILL "$p" 2>/dev/null
        rc=1
    done
    return "$rc"
}

# queue_teardown: stop everything a test started: a Celery worker, runners,
# the gateway, redis; fail on crash reports in their logs.
queue_teardown() {
    local rc=0
    stop_celery_worker
    stop_runners || rc=1
    stop_route_gateway || rc=1
    stop_redis
    return "$rc"
}

# api METHOD PATH [curl args...]: `http` (helpers.bash) with a time limit,
# so a hung route fails the test instead of the run
api() { http "$@" -m "${API_TIMEOUT:-15}"; }
RUNNER_PIDS=()
RUNNER_DIRS=()

# jget JSON EXPR: evaluate a Python expression over the parsed JSON `j`;
# strings print raw, everything else as compact JSON (like jq -r -c).
# Paths and lists of paths go to build/tests/jget first (tests/jget.c: the
# same answers without python3's ~35 ms start, thousands of times a run);
# its exit 3 hands the rest to Python. (jq 1.6 starts no faster.)
JGET=${JGET:-$REPO/build/tests/jget}
jget() {
    if [ -x "$JGET" ]; then
        local rc=0
        "$JGET" "$1" "$2" || rc=$? # not a bare call: bats's errexit
        [ "$rc" = 3 ] || return "$rc"
    fi
    "$PY" -c 'import json, sys
j = json.loads(sys.argv[1])
r = eval(sys.argv[2])
print(r if isinstance(r, str) else json.dumps(r, separators=(",", ":")))' "$1" "$2"
}

# meta ID: the stored celery-task-meta JSON (empty if none)
meta() { rcli get "celery-task-meta-$1"; }

# meta_status ID: its status, or "none"
meta_status() {
    local m
    m=$(meta "$1")
    if [ -z "$m" ]; then echo none; else jget "$m" 'j["status"]'; fi
}

# status_is ID STATUS: for retry loops
status_is() { [ "$(meta_status "$1")" = "$2" ]; }

# taskctl ARGS...: the build's taskctl on the test's redis
taskctl() { REDIS_URL=$REDIS_URL "$GW_BIN/taskctl" "$@"; }

# inflight_count: number of messages held in all qrun:inflight:* lists
inflight_count() {
    local n=0 k
    for k in $(rcli --scan --pattern 'qrun:inflight:*'); do
        n=$((n + $(rcli llen "$k")))
    done
    echo "$n"
}

UUID_RE='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'

# submit TASK BODY: POST /api/tasks/TASK; sets ID (and status/body/headers)
submit() {
    api POST "/api/tasks/$1" -H 'Content-Type: application/json' --data-binary "$2"
    ID=
    if [[ $body =~ \"id\":\"([^\"]*)\" ]]; then ID=${BASH_REMATCH[1]}; fi
}

# wait_status ID STATUS [TRIES]: poll the stored meta (0.1 s steps)
wait_status() { retry "${3:-100}" 0.1 status_is "$1" "$2"; }

# succeeded_lines LOG ID: how many times the runner logged the task's success
succeeded_lines() { grep -c "Task tasks\.[a-z]*\[$2\] succeeded in" "$1" || true; }

# result ID: the stored result, as JSON
result() { jget "$(meta "$1")" 'j["result"]'; }

now_ms() { date +%s%3N; }

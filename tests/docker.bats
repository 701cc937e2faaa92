#!/usr/bin/env bats
# The Dockerfile and docker-compose.yml, as far as a machine without a
# container engine can check them:
#   - `docker-compose config` (Debian's docker-compose 1.29) accepts the file,
#     and refuses it, saying why, without POSTGRES_PASSWORD;
#   - the image's build stage, run here: its COPYs (through .dockerignore)
#     into a fresh directory, its make commands there, installing into a temp
#     DESTDIR, the tree the runtime stage copies;
#   - everything the Dockerfile and the compose file name exists (in the
#     repo, the installed tree, a package the runtime stage installs, or the
#     upstream image) and agrees (ports, addresses, URLs, users, volumes),
#     every command is exec form (tests/docker_check.py);
#   - the runtime stage's processes as the compose file starts them: each
#     service's command and healthcheck from `docker-compose config`, with its
#     environment (the image's ENV, then the service's; only the addresses of
#     Redis, PostgreSQL and the port are this test's), from the installed
#     tree, as a user that is not root, as the leader of its own session like
#     a container's PID 1: the pid started must be the program itself
#     (lighttpd, the runner), and its stop signal must stop it gracefully.
# Both builds' suites run at once: a temp dir of its own, free ports. The
# installed tree is the normal build (the image's), in either run.

load helpers
load queue
load pg

CHECK=(/usr/bin/python3 "$REPO/tests/docker_check.py")
# the image's user, here: a user that is not root and owns nothing of ours
AS_USER=(setpriv --reuid=nobody --regid=nogroup --clear-groups)

# compose_config [VAR=value ...]: `docker-compose config` of the repo's
# file in an environment of exactly these settings (and no .env file: a
# developer's own must not change the answer)
compose_config() {
    : >"$DOCKER_TMP/empty.env"
    env -i PATH="$PATH" HOME="$HOME" "$@" docker-compose --env-file "$DOCKER_TMP/empty.env" \
        --project-directory "$REPO" -f "$REPO/docker-compose.yml" config
}

setup_file() {
    DOCKER_TMP=$(mktemp -d /tmp/apistack-docker.XXXXXX)
    # the runtime tests' user must reach the installed tree and the sockets
    chmod 755 "$DOCKER_TMP"
    ROOT=$DOCKER_TMP/out
    CONFIG=$DOCKER_TMP/compose.yml
    PGPASS=pw$$x$RANDOM
    export DOCKER_TMP ROOT CONFIG PGPASS

    # the build stage: its context, its make commands
    mkdir -p "$DOCKER_TMP/ctx"
    if ! "${CHECK[@]}" context "$REPO" "$DOCKER_TMP/ctx" "$ROOT" >"$DOCKER_TMP/build.sh" \
        2>"$DOCKER_TMP/context.err"; then
        echo "the build stage's COPYs:" >&2
        cat "$DOCKER_TMP/build.sh" "$DOCKER_TMP/context.err" >&2
        return 1
    fi
    (cd "$DOCKER_TMP/ctx" && find . -type f | sort) >"$DOCKER_TMP/context.files"
    if ! (cd "$DOCKER_TMP/ctx" && env -u ASAN_OPTIONS sh -e "$DOCKER_TMP/build.sh") \
        >"$DOCKER_TMP/build.log" 2>&1; then
        echo "the build stage's make commands failed:" >&2
        tail -n 30 "$DOCKER_TMP/build.log" >&2
        return 1
    fi
    compose_config POSTGRES_PASSWORD="$PGPASS" >"$CONFIG"
    WORKDIR=$("${CHECK[@]}" get "$REPO" "$CONFIG" workdir)
    COMPOSE_PORT=$("${CHECK[@]}" get "$REPO" "$CONFIG" gw_port)
    export WORKDIR COMPOSE_PORT

    # Redis over TCP; PostgreSQL's socket opened to the test's user (trust
    # authentication: this temp dir only)
    TEST_TMP=$DOCKER_TMP start_redis
    TEST_TMP=$DOCKER_TMP start_pg --bare
    chmod 711 "$PG_DIR" "$PG_DIR/run"
    chmod 777 "$PG_DIR/run/.s.PGSQL.5432"
}

teardown_file() {
    kill_leftovers
    stop_pg
    stop_redis
    rm -rf "$DOCKER_TMP"
}

# leftover_pids: processes still running a program of this run's installed
# tree, or lighttpd on its config (a route program lighttpd left behind, a
# runner's worker, a lighttpd the command did not exec)
leftover_pids() {
    local p cmd
    for p in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
        [[ $cmd == *"$ROOT/"* ]] && echo "${p#/proc/}"
    done
    return 0
}

kill_leftovers() {
    local p
    for p in $(leftover_pids); do
        echo "leftover process $p ($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)): killed" >&2
        kill -KILL "$p" 2>/dev/null
    done
}

SVC_PIDS=()

teardown() {
    local p rc=0
    # a service still running: stopped as docker stop would (its stop
    # signal), then killed
    for p in ${SVC_PIDS[@]+"${SVC_PIDS[@]}"}; do
        gone "$p" && continue
        kill -TERM "$p" 2>/dev/null
        retry 50 0.1 gone "$p" || kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null || true
    done
    if ! retry 30 0.1 eval '[ -z "$(leftover_pids)" ]'; then
        kill_leftovers
        rc=1
    fi
    stop_runners || rc=1
    if [ "$rc" != 0 ] || [ -z "${BATS_TEST_COMPLETED:-}" ]; then
        for p in "$DOCKER_TMP"/*.out "$DOCKER_TMP"/state-*/log/*.log; do
            [ -f "$p" ] || continue
            echo "--- $p" >&2
            tail -n 20 "$p" >&2
        done
    fi
    return "$rc"
}

# service_env NAME [VAR=value ...]: SVC_ENV, the environment NAME's container
# gets (the image's ENV, then the service's), then the overrides given
service_env() {
    local name=$1
    shift
    mapfile -d '' SVC_ENV < <("${CHECK[@]}" env "$REPO" "$CONFIG" "$name" "$ROOT")
    [ "${#SVC_ENV[@]}" -gt 0 ] || return 1
    SVC_ENV+=("$@")
}

# start_service NAME [VAR=value ...]: the service's command, run as its
# container would: that environment, WORKDIR, not root, leading a session
# of its own, exec all the way (SVC_PID is the program's pid). Output in
# $DOCKER_TMP/NAME.out.
start_service() {
    local name=$1 cmd
    shift
    service_env "$name" "$@"
    mapfile -d '' cmd < <("${CHECK[@]}" argv "$CONFIG" "$name" command "$ROOT")
    (cd "$ROOT$WORKDIR" && exec setsid "${AS_USER[@]}" env -i "${SVC_ENV[@]}" "${cmd[@]}") \
        >"$DOCKER_TMP/$name.out" 2>&1 3>&- </dev/null &
    SVC_PID=$!
    SVC_PIDS+=("$SVC_PID")
}

# healthcheck NAME [VAR=value ...]: the service's healthcheck as docker runs
# it in the container (its environment, its user); the gateway's URL on
# this test's port (GW_PORT among the overrides)
healthcheck() {
    local name=$1 hc a port=$COMPOSE_PORT
    shift
    service_env "$name" "$@"
    for a in "$@"; do [[ $a == GW_PORT=* ]] && port=${a#GW_PORT=}; done
    mapfile -d '' hc < <("${CHECK[@]}" argv "$CONFIG" "$name" healthcheck "$ROOT")
    hc=("${hc[@]//127.0.0.1:$COMPOSE_PORT\//127.0.0.1:$port/}")
    (cd "$ROOT$WORKDIR" && "${AS_USER[@]}" env -i "${SVC_ENV[@]}" "${hc[@]}")
}

# state_dir NAME: a GW_STATE like the image's (owned by the user, 0750)
state_dir() {
    local d=$DOCKER_TMP/state-$1
    install -d -o nobody -g nogroup -m 0750 "$d" "$d/metrics"
    echo "$d"
}

# the process facts a container's PID 1 must have
session_of() { ps -o sid= -p "$1" | tr -d ' '; }
uid_of() { awk '/^Uid:/ { print $2 }' "/proc/$1/status"; }
exe_of() { readlink "/proc/$1/exe"; }

# tool NAME ARGS...: a program of the installed tree (the normal build)
tool() { env -u ASAN_OPTIONS "$ROOT$LIBDIR/bin/$1" "${@:2}"; }
LIBDIR=/usr/local/lib/apistack

# run_service NAME [VAR=value ...]: a one-shot service's command in the
# foreground, as its container runs it (migrate)
run_service() {
    local name=$1 cmd
    shift
    service_env "$name" "$@"
    mapfile -d '' cmd < <("${CHECK[@]}" argv "$CONFIG" "$name" command "$ROOT")
    (cd "$ROOT$WORKDIR" && "${AS_USER[@]}" env -i "${SVC_ENV[@]}" "${cmd[@]}")
}

run_migrate() { run_service migrate DATABASE_URL="$DATABASE_URL"; }

# ---- the files ------------------------------------------------------------

@test "docker-compose config passes with POSTGRES_PASSWORD set and refuses, saying so, without it" {
    run -0 --separate-stderr compose_config POSTGRES_PASSWORD="$PGPASS"
    [[ $output == *"DATABASE_URL: postgresql://apistack:$PGPASS@postgres:5432/apistack"* ]]
    [[ $output == *"POSTGRES_PASSWORD: $PGPASS"* ]]
    run -1 --separate-stderr compose_config
    [[ $stderr == *"POSTGRES_PASSWORD is not set: put POSTGRES_PASSWORD="*" in .env"* ]]
    # the keys come from the environment only: empty unless given
    run -0 grep -cE "^ +(TOKEN|FERNET)_KEYS: ''$" "$CONFIG"
    assert_output 2
    run -0 compose_config POSTGRES_PASSWORD="$PGPASS" TOKEN_KEYS=k1:abc FERNET_KEYS=def
    [[ $output == *"TOKEN_KEYS: k1:abc"* && $output == *"FERNET_KEYS: def"* ]]
    # and no secret is written in the file: every password or key is ${...}
    run -1 grep -nE '^ *[A-Z_]*(PASSWORD|_KEYS): *("[^$]|[^"$ ])|://[^:/@]+:[^$@/]+@' \
        "$REPO/docker-compose.yml"
}

@test "the image's build stage, run here: its COPYs through .dockerignore build and install the tree it ships" {
    # setup_file ran it; what came out is the contract's layout
    run -0 grep -c '^make' "$DOCKER_TMP/build.sh"
    local f
    for f in bin/queue-runner bin/qrunctl bin/migrate bin/taskctl cgi-bin/hello cgi-bin/tasks \
        cgi-bin/auth scripts/gateway lighttpd.conf lighttpd-routes.conf www/index.html \
        sql/001_users.sql; do
        [ -e "$ROOT$LIBDIR/$f" ] || { echo "not installed: $f" >&2; return 1; }
    done
    # the sources came from the context; nothing of the checkout's state,
    # builds or tests did
    run -0 grep -c '^\./lib/.*\.c$' "$DOCKER_TMP/context.files"
    run -1 grep -E '^\./(var|build|bin|cgi-bin|tests|bench|\.git)/|^\./\.env$|\.o$' \
        "$DOCKER_TMP/context.files"
}

@test "Dockerfile: Debian 12 stages, the build's packages, the libraries' packages, exec form, not root, one port" {
    "${CHECK[@]}" dockerfile "$REPO" "$ROOT"
}

@test "docker-compose.yml: every program, file and port it names exists and agrees with the image" {
    "${CHECK[@]}" compose "$REPO" "$CONFIG" "$ROOT"
    # the Prometheus configuration it mounts is one Prometheus takes
    promtool check config "$REPO/deploy/docker/prometheus.yml"
}

# ---- the runtime stage, without an engine ----------------------------------

@test "migrate: the service's command, not as root, applies every migration once" {
    run -0 run_migrate
    local n
    n=$(ls "$ROOT$LIBDIR/sql/"[0-9]*.sql | wc -l)
    [ "$n" -gt 0 ]
    run -0 psql_app -c 'SELECT count(*) FROM schema_migrations'
    assert_output "$n"
    run -0 run_migrate
    run -0 psql_app -c 'SELECT count(*) FROM schema_migrations'
    assert_output "$n"
}

@test "gateway: its command is lighttpd as PID 1 of its session, not root, healthy; SIGINT answers the long poll in flight" {
    run_migrate >/dev/null
    local port state base
    port=$(free_port)
    state=$(state_dir gateway)
    local over=(GW_PORT="$port" GW_STATE="$state" METRICS_DIR="$state/metrics"
        REDIS_URL="$(redis_tcp_url 0)" DATABASE_URL="$DATABASE_URL")
    base=http://127.0.0.1:$port
    start_service gateway "${over[@]}"
    retry 100 0.1 healthcheck gateway "${over[@]}"
    # exec form all the way: the pid started is lighttpd's, leading its session
    assert_equal "$(exe_of "$SVC_PID")" "$(command -v lighttpd)"
    assert_equal "$(session_of "$SVC_PID")" "$SVC_PID"
    assert_equal "$(uid_of "$SVC_PID")" "$(id -u nobody)"
    # its settings reach the routes: ready once a runner beats (the
    # migrations from the installed sql/); /metrics for loopback
    REDIS_URL=$(redis_tcp_url 0) start_runner -c 1
    retry 50 0.1 answers_code "$base/api/ready" 200
    run -0 curl -s -o /dev/null -w '%{http_code}' -m 5 "$base/metrics"
    assert_output 200
    # its log is the container's (GW_LOG=stderr in the image): lighttpd's
    # start and each route program's request lines are on its stderr
    run -0 curl -s -D - -o /dev/null -m 5 "$base/api/hello/docker"
    [[ $output =~ X-Request-Id:\ ([0-9a-f]{32}) ]]
    local rid=${BASH_REMATCH[1]}
    retry 50 0.1 grep -q "hello - INFO - GET /api/hello/docker 200 .* request_id=$rid" \
        "$DOCKER_TMP/gateway.out"
    grep -q '(server.c.[0-9]*) server started' "$DOCKER_TMP/gateway.out"
    [ ! -e "$state/log/routes.log" ]
    [ ! -e "$state/log/error.log" ]
    # the development keys it made (TOKEN_KEYS is empty in the compose file),
    # in its state, the user's only
    [ -s "$state/secrets/token-keys" ]
    assert_equal "$(stat -c '%U %a' "$state/secrets")" "nobody 700"
    local auth id
    auth="Authorization: Bearer $(TOKEN_KEYS=$(cat "$state/secrets/token-keys") tool tokenctl issue --sub 0 --scope admin --ttl 600)"
    run -0 curl -s -m 5 -H "$auth" -H 'Content-Type: application/json' -d '{"args":[1.5]}' \
        "$base/api/tasks/sleep"
    [[ $output =~ \"id\":\"([^\"]+)\" ]]
    id=${BASH_REMATCH[1]}
    # a long poll in flight (lighttpd has its connection) when SIGINT comes
    curl -s -m 10 -H "$auth" -o "$DOCKER_TMP/poll.body" -w '%{http_code}' \
        "$base/api/tasks/$id?wait=10" >"$DOCKER_TMP/poll.code" 2>&1 3>&- &
    local poll=$! t0
    retry 50 0.05 eval "ss -Htn state established '( sport = :$port )' | grep -q ."
    sleep 0.3
    # still waiting: the task (1.5 s) has not finished
    kill -0 "$poll"
    t0=$(now_ms)
    kill -INT "$SVC_PID"
    # it stops taking connections, answers the one in flight, then exits 0
    retry 50 0.1 eval "! curl -s -o /dev/null -m 1 '$base/api/health'"
    wait "$poll"
    assert_equal "$(cat "$DOCKER_TMP/poll.code")" 200
    run -0 cat "$DOCKER_TMP/poll.body"
    [[ $output == *'"status":"SUCCESS"'* ]]
    local rc=0
    wait "$SVC_PID" || rc=$?
    assert_equal "$rc" 0
    [ $(($(now_ms) - t0)) -lt 5000 ]
    run ! healthcheck gateway "${over[@]}"
    # its route programs went with it
    retry 50 0.1 eval "! pgrep -f '^$ROOT$LIBDIR/cgi-bin/' >/dev/null"
    check_logs "$state"
}

answers_code() {
    [ "$(curl -s -o /dev/null -w '%{http_code}' -m 2 "$1")" = "$2" ]
}

@test "queue-runner: its command is the runner as PID 1 of its session, not root; healthy while it beats; SIGTERM drains" {
    local url state
    url=$(redis_tcp_url 1)
    state=$(state_dir runner)
    local over=(REDIS_URL="$url" METRICS_DIR="$state/metrics")
    # no runner here yet: unhealthy
    run -1 healthcheck queue-runner "${over[@]}"
    start_service queue-runner "${over[@]}"
    retry 100 0.1 healthcheck queue-runner "${over[@]}"
    assert_equal "$(exe_of "$SVC_PID")" "$ROOT$LIBDIR/bin/queue-runner"
    assert_equal "$(session_of "$SVC_PID")" "$SVC_PID"
    assert_equal "$(uid_of "$SVC_PID")" "$(id -u nobody)"
    run -0 env REDIS_URL="$url" "$ROOT$LIBDIR/bin/taskctl" call add 4 4 --timeout 10
    assert_output 8
    # its workers record into the shared METRICS_DIR
    compgen -G "$state/metrics/queue-runner.*" >/dev/null
    # drain: the task running finishes, one queued after SIGTERM stays queued
    local id late t0 drain
    drain=$("${CHECK[@]}" get "$REPO" "$CONFIG" drain)
    id=$(REDIS_URL=$url tool taskctl send sleep 1.5)
    retry 100 0.05 eval "rcli -n 1 get celery-task-meta-$id | grep -q STARTED"
    t0=$(now_ms)
    kill -TERM "$SVC_PID"
    sleep 0.2
    late=$(REDIS_URL=$url tool taskctl send add 1 2)
    local rc=0
    wait "$SVC_PID" || rc=$?
    assert_equal "$rc" 0
    [ $(($(now_ms) - t0)) -lt $((drain * 1000)) ]
    run -0 jget "$(rcli -n 1 get "celery-task-meta-$id")" 'j["status"]'
    assert_output SUCCESS
    run -0 rcli -n 1 llen celery
    assert_output 1
    run -0 rcli -n 1 lrange celery 0 -1
    [[ $output == *"$late"* ]]
    run -1 healthcheck queue-runner "${over[@]}"
}

@test "qrunctl alive: 0 for a runner of this host beating within RUNNER_LEASE, 1 otherwise; usage 2" {
    REDIS_URL=$(redis_tcp_url 2)
    export REDIS_URL
    run -1 "$GW_BIN/qrunctl" alive
    assert_output "alive: no runner on $(hostname) with a heartbeat in the last 10s"
    start_runner -c 1
    run -0 "$GW_BIN/qrunctl" alive
    [[ $output =~ ^alive:\ runner@$(hostname):$RUNNER_PID:[0-9a-f]{8},\ heartbeat\ [0-9.]+s\ ago$ ]]
    # another host (a container of its own) does not count this host's runner
    run -1 unshare --uts sh -c 'hostname "other-$1" && exec "$2" alive' sh "$$" "$GW_BIN/qrunctl"
    assert_output "alive: no runner on other-$$ with a heartbeat in the last 10s"
    stop_runner
    run -1 "$GW_BIN/qrunctl" alive
    # a heartbeat 20 s old: dead for the default lease, alive for a longer one
    local id now
    id="runner@$(hostname):1:deadbeef"
    now=$(now_ms)
    rcli -n 2 zadd qrun:runners $((now - 20000)) "$id" >/dev/null
    rcli -n 2 hset "qrun:runner:$id" host "$(hostname)" pid 1 >/dev/null
    run -1 "$GW_BIN/qrunctl" alive
    run -0 "$GW_BIN/qrunctl" alive --max-age 30
    RUNNER_LEASE=30 run -0 "$GW_BIN/qrunctl" alive
    # usage, and Redis unreachable
    local args
    for args in "alive --max-age 0" "alive --max-age" "alive extra" "alive --max-age 5 --max-age 6"; do
        # shellcheck disable=SC2086
        run -2 --separate-stderr "$GW_BIN/qrunctl" $args
        [[ $stderr == *"qrunctl alive [--max-age S]"* ]]
    done
    REDIS_URL=redis://127.0.0.1:1/0 run -1 --separate-stderr "$GW_BIN/qrunctl" alive
    [[ $stderr == *"qrunctl - ERROR - alive: Redis: "* ]]
    assert_output ""
}

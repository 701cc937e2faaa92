#!/usr/bin/env bats
# `make run` (scripts/run) as a developer starts it, on a state dir and
# ports of its own: where its secrets live and who gets them (doc/secrets.md),
# its Redis (a password, loopback only), the Python Celery URL it prints,
# and its logs (no secret in them, mode 0640). One stack for the file.

load helpers
load queue

setup_file() {
    RUN_STATE=$(mktemp -d "$TEST_TMP/run.XXXXXX")
    RUN_PORT=$(free_port)
    RUN_REDIS_PORT=$(free_port)
    export RUN_STATE RUN_PORT RUN_REDIS_PORT
    # as a developer's shell would have them: secrets in the environment
    # must still reach the gateway only
    PORT=$RUN_PORT GW_TLS_PORT=0 REDIS_PORT=$RUN_REDIS_PORT GW_STATE=$RUN_STATE \
        "$REPO/scripts/run" >"$RUN_STATE.out" 2>&1 3>&- </dev/null &
    RUN_PID=$!
    export RUN_PID
    if ! retry 600 0.1 grep -q '^run: ready at ' "$RUN_STATE.out"; then
        cat "$RUN_STATE.out" >&2
        return 1
    fi
}

teardown_file() {
    [ -n "${RUN_PID:-}" ] || return 0
    kill -TERM "$RUN_PID" 2>/dev/null
    retry 200 0.1 gone "$RUN_PID" || kill -KILL "$RUN_PID" 2>/dev/null
    wait "$RUN_PID" 2>/dev/null || true
    check_logs "$RUN_STATE"
}

# secret_values: every secret of the stack, one a line
secret_values() {
    cat "$RUN_STATE/secrets/redis-password" "$RUN_STATE/secrets/database-url" \
        "$RUN_STATE/secrets/fernet-keys"
    echo
    cut -d: -f2 "$RUN_STATE/secrets/token-keys"
}

# lighttpd_pids: the master (the gateway's pid) and its workers
lighttpd_pids() {
    local p
    for p in $(pgrep -f "^lighttpd -D -f $REPO/lighttpd.conf"); do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "GW_STATE=$RUN_STATE" && echo "$p"
    done
    return 0
}

# route_env PROGRAM: the environment of one of make run's PROGRAM processes
route_env() {
    local p
    for p in $(pgrep -f "^$GW_CGI_BIN/$1\$"); do
        if tr '\0' '\n' <"/proc/$p/environ" | grep -q "^METRICS_DIR=$RUN_STATE/"; then
            tr '\0' '\n' <"/proc/$p/environ"
            return 0
        fi
    done
    return 1
}

@test "make run's secrets are files under var/secrets, 0600 in a 0700 directory" {
    run -0 stat -c '%a' "$RUN_STATE/secrets"
    assert_output 700
    local f
    for f in redis-password redis-url database-url token-keys fernet-keys admin-password; do
        run -0 stat -c '%a' "$RUN_STATE/secrets/$f"
        assert_equal "$f: $output" "$f: 600"
    done
    run -0 cat "$RUN_STATE/secrets/redis-url"
    assert_output "unix://:$(cat "$RUN_STATE/secrets/redis-password")@$RUN_STATE/redis/redis.sock"
}

@test "no secret is in the environment of lighttpd's master or workers" {
    run -0 lighttpd_pids
    local pids=$output p
    # the master and GW_WORKERS (nproc) workers
    assert_equal "$(wc -w <<<"$pids")" "$(($(nproc) + 1))"
    for p in $pids; do
        run -0 tr '\0' '\n' <"/proc/$p/environ"
        refute_line --regexp '^(REDIS_URL|DATABASE_URL|TOKEN_KEYS|FERNET_KEYS)(_FILE)?='
        refute_line --partial "$(cat "$RUN_STATE/secrets/redis-password")"
        run -1 grep -c -F -f <(secret_values) "/proc/$p/environ"
        assert_output 0
    done
}

@test "each route program gets the paths of the secrets it reads, and no other" {
    local s=$RUN_STATE/secrets/routes
    run -0 route_env auth
    assert_line "TOKEN_KEYS_FILE=$s/TOKEN_KEYS"
    assert_line "REDIS_URL_FILE=$s/REDIS_URL"
    refute_line --regexp '^(DATABASE_URL|FERNET_KEYS)'
    run -0 route_env users
    assert_line "DATABASE_URL_FILE=$s/DATABASE_URL"
    assert_line "FERNET_KEYS_FILE=$s/FERNET_KEYS"
    refute_line --regexp '^TOKEN_KEYS'
    run -0 route_env tasks
    assert_line "REDIS_URL_FILE=$s/REDIS_URL"
    refute_line --regexp '^(DATABASE_URL|TOKEN_KEYS|FERNET_KEYS)'
    run -0 route_env hello
    refute_line --regexp '^(REDIS_URL|DATABASE_URL|TOKEN_KEYS|FERNET_KEYS)'
    # and the values are no one's environment
    run -0 route_env users
    run -1 grep -c -F -f <(secret_values) <<<"$output"
    assert_output 0
}

@test "the queue runner gets Redis only: no DATABASE_URL, no keys" {
    local p found=0
    for p in $(pgrep -f "^$REPO/bin/queue-runner|^bin/queue-runner"); do
        tr '\0' '\n' <"/proc/$p/environ" | grep -qx "GW_STATE=$RUN_STATE" || continue
        found=1
        run -0 tr '\0' '\n' <"/proc/$p/environ"
        assert_line "REDIS_URL_FILE=$RUN_STATE/secrets/redis-url"
        refute_line --regexp '^(DATABASE_URL|TOKEN_KEYS|FERNET_KEYS)'
    done
    assert_equal "$found" 1
}

@test "make run's Redis: refused without the password, on loopback only; the Celery URL it prints works" {
    run -0 env -u REDISCLI_AUTH redis-cli -s "$RUN_STATE/redis/redis.sock" ping
    assert_output --partial NOAUTH
    run -0 env -u REDISCLI_AUTH redis-cli -h 127.0.0.1 -p "$RUN_REDIS_PORT" ping
    assert_output --partial NOAUTH
    run -0 ss -Hltn "sport = :$RUN_REDIS_PORT"
    assert_equal "${#lines[@]}" 1
    assert_output --regexp "127\.0\.0\.1:$RUN_REDIS_PORT "
    # the URL as printed, its $(cat ...) run by a shell as the developer's
    # would, handed to Python's Celery: our runner runs the task
    local printed url
    printed=$(grep -A1 'Python Celery: broker and backend' "$RUN_STATE.out" | tail -n 1)
    url=$(eval "printf '%s' $printed")
    [[ $url == redis://:*@127.0.0.1:$RUN_REDIS_PORT/0 ]] || fail "printed: $printed"
    run -0 env CELERY_URL="$url" "$PY" -c 'import os
from celery import Celery
app = Celery(broker=os.environ["CELERY_URL"], backend=os.environ["CELERY_URL"])
print(app.send_task("tasks.add", (20, 22)).get(timeout=10))'
    assert_output 42
    # and the taskctl line it prints
    run -0 env REDIS_URL_FILE="$RUN_STATE/secrets/redis-url" "$GW_BIN/taskctl" call add 4 4
    assert_output 8
}

@test "secrets in query strings reach no log; every log is 0640" {
    local tag=q-$$-$RANDOM
    run -0 curl -s -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$RUN_PORT/api/hello/world?password=$tag-pw&access_token=$tag-tok"
    assert_output 200
    run -0 curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RUN_PORT/nope?api_key=$tag-key"
    assert_output 404
    kill -HUP "$(lighttpd_pids | head -n 1)" # lighttpd writes its access log out
    retry 50 0.1 grep -q 'nope?api_key=\*\*\*' "$RUN_STATE/log/access.log"
    run grep -rF -- "$tag" "$RUN_STATE/log" "$RUN_STATE/redis/redis.log" "$RUN_STATE/pg/postgres.log"
    assert_failure 1
    local f
    for f in "$RUN_STATE"/log/{access,error,routes,runner}.log "$RUN_STATE/redis/redis.log" \
        "$RUN_STATE/pg/postgres.log"; do
        run -0 stat -c '%a' "$f"
        assert_equal "$f: $output" "$f: 640"
    done
}

#!/usr/bin/env bats
# /api/health (liveness: nothing but the process) and /api/ready (readiness:
# Redis, PostgreSQL, migrations, a runner's heartbeat) through the real
# gateway, with a real Redis, PostgreSQL and queue runner, each private to
# this suite, failed one at a time.

load helpers
load queue
load pg

# /api/health and /api/ready are public routes: probes (a load balancer, a
# kubelet) call them without a token, and so does this suite (`http` sends
# none). A token would be checked by the authorizer first, whose own Redis
# round trip (up to its 250 ms timeout with Redis stuck) would then count in
# the latencies measured here.
NOAUTH=1

setup_file() {
    start_redis
    start_pg
    # a short lease for the route, so a dead runner shows within seconds
    start_gateway RUNNER_LEASE=2
    export BASE GW_STATE GW_PID
}

teardown_file() {
    stop_route_gateway
    stop_pg
    stop_redis
}

# Every test starts from everything up: Redis, PostgreSQL, one runner (with
# the route's lease, so a runner started after a dead one reaps it at once)
# and /api/ready answering 200.
setup() {
    redis_up || redis_launch
    [ -S "$PG_DIR/run/.s.PGSQL.5432" ] || pg_launch
    RUNNER_LEASE=2 start_runner -c 1
    retry 100 0.1 ready_is 200
}

teardown() {
    # a test that failed while a server was frozen must not leave it so
    [ -z "$(pg_pid)" ] || pg_thaw 2>/dev/null || true
    [ ! -f "$REDIS_DIR/test.pid" ] || kill -CONT "$(cat "$REDIS_DIR/test.pid")" 2>/dev/null || true
    local rc=0
    stop_runners || rc=1
    if [ -n "${OWN_GW:-}" ]; then # a gateway of the test's own
        stop_route_gateway || rc=1
    fi
    return "$rc"
}

# ready_is STATUS: GET /api/ready (bounded) answers STATUS; for retry loops.
ready_is() {
    http GET /api/ready -m 5
    [ "$status" = "$1" ]
}

# timed_ready: GET /api/ready; sets $status $body $headers and $ms, the time
# it took.
timed_ready() {
    local t0
    t0=$(date +%s%N)
    http GET /api/ready -m 10
    ms=$((($(date +%s%N) - t0) / 1000000))
}

# alive_is N: /api/ready counts N live runners
alive_is() {
    http GET /api/ready -m 5
    [ "$(jget "$body" 'j["checks"]["runner"].get("alive")')" = "$1" ]
}

# states: "redis=ok postgres=ok ..." from the last $body
states() {
    jget "$body" '" ".join(k + "=" + v["status"] for k, v in j["checks"].items())'
}

# check NAME: that check's object from the last $body
check() { jget "$body" "j['checks']['$1']"; }

# the migrations in DIR, as bin/migrate counts them, comma-separated
migrations_in() {
    (cd "$1" && ls | grep -E '^[0-9]{3,9}_[A-Za-z0-9_]+\.sql$' | paste -sd, -)
}

@test "health: 200 while Redis and PostgreSQL are nowhere, and ready says why at once" {
    OWN_GW=1
    start_gateway REDIS_URL="unix://$BATS_TEST_TMPDIR/no-redis.sock" \
        DATABASE_URL="postgresql:///app?host=$BATS_TEST_TMPDIR/no-pg&user=postgres"
    http GET /api/health -m 5
    assert_equal "$status" 200
    assert_equal "$body" '{"status":"ok"}'
    [[ $headers == *"content-type: application/json"* ]]
    [[ $headers == *"cache-control: no-store"* ]]
    timed_ready
    assert_equal "$status" 503
    echo "ready with nothing reachable: ${ms} ms" >&3
    [ "$ms" -lt 1000 ]
    assert_equal "$(jget "$body" 'j["status"]')" "not ready"
    assert_equal "$(jget "$body" 'j["detail"]')" "redis, postgres, migrations, runner"
    assert_equal "$(check redis)" '{"status":"fail","detail":"connection refused"}'
    assert_equal "$(check postgres)" '{"status":"fail","detail":"connection refused"}'
    assert_equal "$(check migrations)" '{"status":"fail","detail":"not checked: PostgreSQL unavailable"}'
    assert_equal "$(check runner)" '{"status":"fail","detail":"not checked: Redis unavailable"}'
    # no socket path or server message reaches the client
    [[ $body != *"$BATS_TEST_TMPDIR"* ]]
    # still alive after all that
    http GET /api/health -m 5
    assert_equal "$status" 200
}

@test "health: HEAD is 200 with the GET's Content-Length; other methods 405; sub-paths 404" {
    run curl -s -I -m 5 "$BASE/api/health"
    assert_success
    assert_line --partial 'HTTP/1.1 200'
    assert_line --partial 'Content-Length: 15'
    for m in POST PUT PATCH DELETE OPTIONS; do
        http "$m" /api/health -d '' -m 5
        assert_equal "$m $status" "$m 405"
        assert_equal "$body" '{"detail":"Method Not Allowed"}'
        [[ $headers == *"allow: get, head"* ]]
    done
    for p in /api/health/ /api/health/x /api/health/x/y /api/healthz; do
        http GET "$p" -m 5
        assert_equal "$p $status" "$p 404"
        assert_equal "$body" '{"detail":"Not Found"}'
    done
}

@test "ready: 200 with Redis, PostgreSQL migrated and runners heartbeating" {
    http GET /api/ready -m 5
    assert_equal "$status" 200
    assert_equal "$(jget "$body" 'sorted(j)')" '["checks","status"]'
    assert_equal "$(jget "$body" 'j["status"]')" ready
    assert_equal "$(states)" "redis=ok postgres=ok migrations=ok runner=ok"
    assert_equal "$(check redis)" '{"status":"ok"}'
    assert_equal "$(check postgres)" '{"status":"ok"}'
    n=$(migrations_in "$REPO/sql" | tr ',' '\n' | wc -l)
    assert_equal "$(check migrations)" "{\"status\":\"ok\",\"applied\":$n}"
    assert_equal "$(jget "$body" 'j["checks"]["runner"]["alive"]')" 1
    age=$(jget "$body" 'j["checks"]["runner"]["heartbeat_age_ms"]')
    [ "$age" -ge 0 ] && [ "$age" -le 2000 ] || fail "heartbeat_age_ms $age"
    [[ $headers == *"cache-control: no-store"* ]]
    # alive counts every runner within the lease
    RUNNER_LEASE=2 start_runner -c 1
    http GET /api/ready -m 5
    assert_equal "$status" 200
    assert_equal "$(jget "$body" 'j["checks"]["runner"]["alive"]')" 2
    run curl -s -I -m 5 "$BASE/api/ready"
    assert_line --partial 'HTTP/1.1 200'
}

@test "ready: other methods 405; sub-paths 404" {
    for m in POST PUT PATCH DELETE OPTIONS; do
        http "$m" /api/ready -d '' -m 5
        assert_equal "$m $status" "$m 405"
        [[ $headers == *"allow: get, head"* ]]
    done
    for p in /api/ready/ /api/ready/x /api/readyz; do
        http GET "$p" -m 5
        assert_equal "$p $status" "$p 404"
        assert_equal "$body" '{"detail":"Not Found"}'
    done
}

@test "ready: Redis stopped is a quick 503 (redis failing, runner unknown), logged once; then 200" {
    stop_redis
    timed_ready
    assert_equal "$status" 503
    [ "$ms" -lt 1000 ]
    assert_equal "$(jget "$body" 'j["detail"]')" "redis, runner"
    assert_equal "$(states)" "redis=fail postgres=ok migrations=ok runner=fail"
    assert_equal "$(check redis)" '{"status":"fail","detail":"connection refused"}'
    assert_equal "$(check runner)" '{"status":"fail","detail":"not checked: Redis unavailable"}'
    http GET /api/ready -m 5
    assert_equal "$status" 503
    # one WARNING for the change, not one per request
    run grep -c 'ready - WARNING - not ready: redis: connection refused; runner' \
        "$GW_STATE/log/routes.log"
    assert_output 1
    redis_launch
    retry 100 0.1 ready_is 200
    assert_equal "$(states)" "redis=ok postgres=ok migrations=ok runner=ok"
    grep -q 'ready - INFO - ready again' "$GW_STATE/log/routes.log"
}

@test "ready: Redis stuck (SIGSTOP) is a 503 within its 500 ms timeout; then 200" {
    pid=$(cat "$REDIS_DIR/test.pid")
    kill -STOP "$pid"
    timed_ready
    first=$ms
    s1=$status b1=$body
    timed_ready # the next one reconnects: bounded as well
    kill -CONT "$pid"
    echo "stuck: ${first} ms, then ${ms} ms" >&3
    for b in "$b1" "$body"; do
        body=$b
        assert_equal "$(states)" "redis=fail postgres=ok migrations=ok runner=fail"
        assert_equal "$(check redis)" '{"status":"fail","detail":"timed out"}'
    done
    assert_equal "$s1 $status" "503 503"
    [ "$first" -ge 450 ] && [ "$first" -lt 1000 ] || fail "first took $first ms"
    [ "$ms" -ge 450 ] && [ "$ms" -lt 1000 ] || fail "the next took $ms ms"
    retry 100 0.1 ready_is 200
}

@test "ready: PostgreSQL stopped is a quick 503 (postgres failing, migrations unknown); then 200" {
    stop_pg
    timed_ready
    assert_equal "$status" 503
    [ "$ms" -lt 1000 ]
    assert_equal "$(jget "$body" 'j["detail"]')" "postgres, migrations"
    assert_equal "$(states)" "redis=ok postgres=fail migrations=fail runner=ok"
    assert_equal "$(check postgres)" '{"status":"fail","detail":"connection refused"}'
    assert_equal "$(check migrations)" '{"status":"fail","detail":"not checked: PostgreSQL unavailable"}'
    pg_launch
    retry 100 0.1 ready_is 200
}

@test "ready: Redis and PostgreSQL restarted: the very next request sees them up" {
    restart_redis
    restart_pg
    http GET /api/ready -m 5
    # (the runner may need a moment to beat again after the Redis restart)
    assert_equal "$(check redis)" '{"status":"ok"}'
    assert_equal "$(check postgres)" '{"status":"ok"}'
    assert_equal "$(jget "$body" 'j["checks"]["migrations"]["status"]')" ok
    retry 50 0.1 ready_is 200
}

@test "ready: PostgreSQL stuck (SIGSTOP) is a 503 within DB_TIMEOUT_MS, request after request; then 200" {
    pg_freeze
    timed_ready
    first=$ms
    s1=$status b1=$body
    timed_ready # the next one reconnects: bounded as well
    pg_thaw
    echo "stuck: ${first} ms, then ${ms} ms (DB_TIMEOUT_MS 1000)" >&3
    for b in "$b1" "$body"; do
        body=$b
        assert_equal "$(states)" "redis=ok postgres=fail migrations=fail runner=ok"
        assert_equal "$(check postgres)" '{"status":"fail","detail":"timed out"}'
    done
    assert_equal "$s1 $status" "503 503"
    [ "$first" -ge 900 ] && [ "$first" -lt 3000 ] || fail "first took $first ms"
    [ "$ms" -lt 3000 ]
    retry 100 0.1 ready_is 200
}

@test "ready: a pending migration is a 503 naming its files; applied, 200" {
    mig=$BATS_TEST_TMPDIR/sql
    mkdir "$mig"
    cp "$REPO"/sql/*.sql "$mig/"
    # in order of version, not of name: 0998, 999, 1000
    printf 'ALTER TABLE health_pending ADD COLUMN c int;\n' >"$mig/1000_last.sql"
    printf 'ALTER TABLE health_pending ADD COLUMN b int;\n' >"$mig/999_pending.sql"
    printf 'CREATE TABLE health_pending (a int);\n' >"$mig/0998_first.sql"
    printf 'SELECT 1;\n' >"$mig/999-not-a-migration.sql"
    OWN_GW=1
    start_gateway RUNNER_LEASE=2 MIGRATIONS_DIR="$mig"
    http GET /api/ready -m 5
    assert_equal "$status" 503
    assert_equal "$(jget "$body" 'j["detail"]')" migrations
    assert_equal "$(states)" "redis=ok postgres=ok migrations=fail runner=ok"
    assert_equal "$(check migrations)" \
        '{"status":"fail","detail":"3 pending: 0998_first.sql, 999_pending.sql, 1000_last.sql","pending":["0998_first.sql","999_pending.sql","1000_last.sql"]}'
    run "$GW_BIN/migrate" --dir "$mig"
    assert_success
    http GET /api/ready -m 5
    assert_equal "$status" 200
    n=$(migrations_in "$mig" | tr ',' '\n' | wc -l)
    assert_equal "$(check migrations)" "{\"status\":\"ok\",\"applied\":$n}"
}

@test "ready: a database migrate never ran on (no schema_migrations) has every migration pending" {
    psql -X -q "postgresql:///postgres?host=$PG_DIR/run&user=postgres" \
        -c 'DROP DATABASE IF EXISTS bare WITH (FORCE)' -c 'CREATE DATABASE bare'
    bare="postgresql:///bare?host=$PG_DIR/run&user=postgres"
    OWN_GW=1
    start_gateway RUNNER_LEASE=2 DATABASE_URL="$bare"
    http GET /api/ready -m 5
    assert_equal "$status" 503
    assert_equal "$(states)" "redis=ok postgres=ok migrations=fail runner=ok"
    files=$(migrations_in "$REPO/sql")
    n=$(echo "$files" | tr ',' '\n' | wc -l)
    assert_equal "$(jget "$body" '",".join(j["checks"]["migrations"]["pending"])')" "$files"
    [[ $(jget "$body" 'j["checks"]["migrations"]["detail"]') == "$n pending: 001_users.sql"* ]]
    run env DATABASE_URL="$bare" MIGRATIONS_DIR="$REPO/sql" "$GW_BIN/migrate"
    assert_success
    http GET /api/ready -m 5
    assert_equal "$status" 200
}

@test "ready: no runner (the last one stopped) is a 503; a runner started, 200" {
    stop_runner
    http GET /api/ready -m 5
    assert_equal "$status" 503
    assert_equal "$(jget "$body" 'j["detail"]')" runner
    assert_equal "$(states)" "redis=ok postgres=ok migrations=ok runner=fail"
    assert_equal "$(check runner)" \
        '{"status":"fail","detail":"no runner heartbeat in the last 2 s","alive":0}'
    RUNNER_LEASE=2 start_runner -c 1
    http GET /api/ready -m 5
    assert_equal "$status" 200
    assert_equal "$(jget "$body" 'j["checks"]["runner"]["alive"]')" 1
}

@test "ready: runners killed (no goodbye) count until their lease is over, then 503; then 200" {
    first=$RUNNER_PID
    RUNNER_LEASE=2 start_runner -c 1
    second=$RUNNER_PID
    kill -KILL "$first"
    wait "$first" 2>/dev/null || true
    # the other one still beats
    retry 50 0.1 alive_is 1
    http GET /api/ready -m 5
    assert_equal "$status" 200
    kill -KILL "$second"
    wait "$second" 2>/dev/null || true
    # within the lease it still counts; past it, 503
    http GET /api/ready -m 5
    assert_equal "$status" 200
    retry 50 0.1 ready_is 503
    assert_equal "$(jget "$body" 'j["detail"]')" runner
    assert_equal "$(states)" "redis=ok postgres=ok migrations=ok runner=fail"
    [[ $(check runner) =~ ^\{\"status\":\"fail\",\"detail\":\"latest\ heartbeat\ [3-9]\ s\ ago\",\"alive\":0\}$ ]]
    RUNNER_LEASE=2 start_runner -c 1
    retry 30 0.1 ready_is 200
    assert_equal "$(jget "$body" 'j["checks"]["runner"]["alive"]')" 1
}

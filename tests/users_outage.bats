#!/usr/bin/env bats
# /api/users when its parts fail: PostgreSQL stopped, restarted under load,
# or stuck; Redis gone; and the cache staying coherent with concurrent
# writes. Real lighttpd, PostgreSQL and Redis, each private to this suite.

load helpers
load queue
load pg

setup_file() {
    start_redis
    start_pg
    # a short DB timeout so a stuck server is noticed within the test's
    # patience; every test registers from 127.0.0.1
    start_gateway DB_TIMEOUT_MS=700 REGISTER_PER_ADDR=1000000
    export BASE GW_STATE GW_PID
}

teardown_file() {
    stop_gateway
    stop_pg
    stop_redis
}

setup() {
    # the tests stop things; each starts with everything up
    [ -S "$PG_DIR/run/.s.PGSQL.5432" ] || pg_launch
    redis_up || redis_launch
    retry 100 0.1 eval '[ "$(curl -s -o /dev/null -w "%{http_code}" -H "$AUTH" "$BASE/api/users?limit=1")" = 200 ]'
}

# new_user NAME: create a user, print its id
new_user() {
    curl -s -X POST "$BASE/api/users" \
        -d "{\"username\":\"$1\",\"email\":\"$1@example.com\",\"password\":\"password1\"}" |
        /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

# code METHOD PATH [curl args]: the status only, within 5 s (with the admin
# token, as `http` sends it)
code() {
    local m=$1 p=$2
    shift 2
    curl -s -o /dev/null -m 5 -w '%{http_code}' -X "$m" -H "$AUTH" "$@" "$BASE$p"
}

@test "PostgreSQL down: quick 503s with Retry-After, then recovery without restarting lighttpd" {
    id=$(new_user down$RANDOM)
    pids=$(route_pids users | sort)
    stop_pg
    # an id never read (not in the cache) must go to the database
    start=$(date +%s%N)
    http GET /api/users/$((id + 100000))
    elapsed=$((($(date +%s%N) - start) / 1000000))
    assert_equal "$status" 503
    assert_equal "$body" '{"detail":"Database unavailable, try again shortly"}'
    [[ $headers == *"retry-after: 1"* ]]
    echo "503 in ${elapsed} ms" >&3
    [ "$elapsed" -lt 1000 ]
    assert_equal "$(code POST /api/users -d '{"username":"nodb","email":"n@x.io","password":"password1"}')" 503
    assert_equal "$(code GET '/api/users?limit=5')" 503
    assert_equal "$(code DELETE /api/users/$id)" 503
    pg_launch
    retry 50 0.1 eval '[ "$(code GET /api/users/$id)" = 200 ]'
    assert_equal "$(code GET '/api/users?limit=5')" 200
    # the same route processes served throughout: nothing crashed or respawned
    assert_equal "$(route_pids users | sort)" "$pids"
    grep -q 'PostgreSQL unavailable' "$GW_STATE/log/routes.log"
    grep -q 'PostgreSQL reachable again' "$GW_STATE/log/routes.log"
}

@test "PostgreSQL restarted while requests flow: only 200s and 503s, then all 200s" {
    for i in 1 2 3 4 5; do ids+=" $(new_user flow${i}x$RANDOM)"; done
    cfg=$BATS_TEST_TMPDIR/flow.cfg
    : >"$cfg"
    for n in $(seq 1 200); do
        [ "$n" = 1 ] || echo next
        # the list is never cached: every request reaches PostgreSQL
        echo "url = \"$BASE/api/users?limit=2&after=$((n % 4))\""
        echo "header = \"$AUTH\""
        echo 'output = "/dev/null"'
        echo 'write-out = "%{http_code}\\n"'
        echo 'max-time = 10'
    done >>"$cfg"
    stop=$BATS_TEST_TMPDIR/stop
    (while [ ! -e "$stop" ]; do
        curl -s --no-progress-meter -Z --parallel-max 4 -K "$cfg"
    done >"$BATS_TEST_TMPDIR/flow.codes") 3>&- &
    load=$!
    sleep 0.5
    restart_pg
    sleep 0.3
    stop_pg
    sleep 0.5 # down for a while: requests meanwhile must be quick 503s
    pg_launch
    sleep 0.5
    touch "$stop"
    wait "$load"
    sort "$BATS_TEST_TMPDIR/flow.codes" | uniq -c >&3
    # no 5xx but 503, no 000 (a hang or a dropped connection)
    run grep -vxE '200|503' "$BATS_TEST_TMPDIR/flow.codes"
    assert_failure
    [ "$(grep -cx 200 "$BATS_TEST_TMPDIR/flow.codes")" -gt 100 ]
    # recovered: every process answers from the database again, once each
    # has waited out its reconnect backoff (at most 1 s, lib/db.c)
    retry 50 0.1 eval '[ "$(code GET "/api/users?limit=1")" = 200 ]'
    sleep 1.2
    for n in $(seq 1 40); do
        assert_equal "$(code GET "/api/users?limit=1&after=$n")" 200
    done
}

@test "PostgreSQL stuck (SIGSTOP): 503 after DB_TIMEOUT_MS, never a hang; recovers on SIGCONT" {
    id=$(new_user stuck$RANDOM)
    pg_freeze
    start=$(date +%s%N)
    c=$(code GET "/api/users?limit=1")
    elapsed=$((($(date +%s%N) - start) / 1000000))
    pg_thaw
    echo "stuck: $c in ${elapsed} ms (timeout 700 ms)" >&3
    assert_equal "$c" 503
    [ "$elapsed" -ge 600 ] && [ "$elapsed" -lt 3000 ] || fail "503 after $elapsed ms"
    retry 50 0.1 eval '[ "$(code GET /api/users/$id)" = 200 ]'
    grep -q 'query timed out' "$GW_STATE/log/routes.log"
}

@test "Redis down: reads and registration go on; updates wait for the cache (503), lose nothing" {
    id=$(new_user redisdown$RANDOM)
    http GET /api/users/$id
    http GET /api/users/$id
    [[ $headers == *"x-cache: hit"* ]]
    stop_redis
    for _ in 1 2 3 4 5 6; do
        http GET /api/users/$id
        assert_equal "$status" 200
        [[ $headers == *"x-cache: miss"* ]]
    done
    # a new id has nothing cached: creating needs no cache
    assert_equal "$(code POST /api/users -d '{"username":"noredis'$RANDOM'","email":"nr'$RANDOM'@x.io","password":"password1"}')" 201
    # an update must reach the cache before the database, or not happen
    http PATCH /api/users/$id -d '{"full_name":"Written without Redis"}'
    assert_equal "$status" 503
    assert_equal "$body" '{"detail":"Cache unavailable, try again shortly"}'
    [[ $headers == *"retry-after: 1"* ]]
    assert_equal "$(code DELETE /api/users/$id)" 503
    assert_equal "$(psql_app -c "SELECT coalesce(full_name, '-') FROM users WHERE id = $id")" -
    redis_launch
    retry 30 0.2 eval '[ "$(code PATCH /api/users/$id -d "{\"full_name\":\"After Redis\"}")" = 200 ]'
    for _ in 1 2 3; do
        http GET /api/users/$id
        [[ $body == *'"full_name":"After Redis"'* ]]
    done
    [[ $headers == *"x-cache: hit"* ]]
    grep -q 'cache unavailable' "$GW_STATE/log/routes.log"
}

@test "Redis down with the cache off: a password or email change and a delete are refused (503) and change nothing; other fields change" {
    local main_base=$BASE main_pid=$GW_PID main_state=$GW_STATE
    start_gateway GW_PROCS=1 USER_CACHE_TTL=0 REGISTER_PER_ADDR=1000000
    local name=nocache$RANDOM
    id=$(new_user "$name")
    hash=$(psql_app -c "SELECT password_hash || token_gen FROM users WHERE id = $id")
    stop_redis
    # an admin's change needs no current password: it reaches the revocation
    http PATCH /api/users/$id -d '{"password":"another password"}'
    assert_equal "$status" 503
    assert_equal "$body" '{"detail":"Revocation unavailable, try again shortly"}'
    [[ $headers == *"retry-after: 1"* ]]
    http PATCH /api/users/$id -d '{"email":"elsewhere@example.com"}'
    assert_equal "$status" 503
    http DELETE /api/users/$id
    assert_equal "$status" 503
    assert_equal "$body" '{"detail":"Revocation unavailable, try again shortly"}'
    assert_equal "$(psql_app -c "SELECT password_hash || token_gen FROM users WHERE id = $id")" "$hash"
    assert_equal "$(psql_app -c "SELECT email FROM users WHERE id = $id")" "$name@example.com"
    # the owner's own change cannot even check its current password
    local own
    own=$(token "$id")
    NOAUTH=1 http PATCH /api/users/me -H "Authorization: Bearer $own" -d '{"password":"another password","current_password":"password1"}'
    assert_equal "$status" 503
    assert_equal "$body" '{"detail":"Password check unavailable, try again shortly"}'
    # a change that revokes nothing needs no Redis with the cache off
    http PATCH /api/users/$id -d '{"full_name":"Still Here"}'
    assert_equal "$status" 200
    redis_launch
    stop_gateway
    BASE=$main_base GW_PID=$main_pid GW_STATE=$main_state
}

@test "a write that fails after marking the cache leaves no stale entry" {
    id=$(new_user failwrite$RANDOM)
    other=$(new_user failother$RANDOM)
    http GET /api/users/$id
    http GET /api/users/$id
    [[ $headers == *"x-cache: hit"* ]]
    # 409: the mark stays until its TTL, so reads go to the database meanwhile
    name=$(psql_app -c "SELECT username FROM users WHERE id = $other")
    http PATCH /api/users/$id -d "{\"username\":\"$name\"}"
    assert_equal "$status" 409
    http GET /api/users/$id
    assert_equal "$status" 200
    [[ $headers == *"x-cache: miss"* ]]
    # and the next successful write puts its version in place
    http PATCH /api/users/$id -d '{"full_name":"Second try"}'
    assert_equal "$status" 200
    http GET /api/users/$id
    [[ $headers == *"x-cache: hit"* ]]
    [[ $body == *'"full_name":"Second try"'* ]]
}

@test "cache coherence: after each PATCH returns, no GET sees the old row, under concurrent readers" {
    id=$(new_user coherent$RANDOM)
    stop=$BATS_TEST_TMPDIR/stop
    # readers: fill the cache from the database as fast as they can, racing
    # the writer (a reader that read the row before a write must not put
    # that old row back after the write's own cache update)
    for r in 1 2 3 4; do
        (while [ ! -e "$stop" ]; do curl -s -o /dev/null -H "$AUTH" "$BASE/api/users/$id"; done) 3>&- &
        readers+=" $!"
    done
    stale=0
    for i in $(seq 1 60); do
        http PATCH /api/users/$id -d "{\"full_name\":\"v$i\"}"
        assert_equal "$status" 200
        for _ in 1 2 3; do
            http GET /api/users/$id
            [[ $body == *"\"full_name\":\"v$i\""* ]] || { stale=$((stale + 1)); echo "after v$i: $body"; }
        done
    done
    touch "$stop"
    wait $readers
    assert_equal "$stale" 0
    # and the cache holds the last version
    http GET /api/users/$id
    [[ $headers == *"x-cache: hit"* ]]
    [[ $body == *'"full_name":"v60"'* ]]
}

@test "cache coherence: a deleted user stays deleted under concurrent readers" {
    stop=$BATS_TEST_TMPDIR/stop
    for n in 1 2 3 4 5 6 7 8; do
        id=$(new_user gone${n}x$RANDOM)
        rm -f "$stop"
        readers=
        for r in 1 2 3; do
            (while [ ! -e "$stop" ]; do curl -s -o /dev/null -H "$AUTH" "$BASE/api/users/$id"; done) 3>&- &
            readers+=" $!"
        done
        sleep 0.1
        assert_equal "$(code DELETE /api/users/$id)" 204
        for _ in 1 2 3 4 5; do
            assert_equal "$(code GET /api/users/$id)" 404
        done
        touch "$stop"
        wait $readers
        assert_equal "$(code GET /api/users/$id)" 404
    done
}

@test "cache coherence: concurrent PATCHes from many clients leave the cache at the database's row" {
    id=$(new_user writers$RANDOM)
    for w in 1 2 3 4; do
        (for i in $(seq 1 25); do
            curl -s -o /dev/null -X PATCH -H "$AUTH" "$BASE/api/users/$id" -d "{\"full_name\":\"w$w-$i\"}"
            curl -s -o /dev/null -H "$AUTH" "$BASE/api/users/$id"
        done) 3>&- &
        writers+=" $!"
    done
    wait $writers
    db=$(psql_app -c "SELECT full_name FROM users WHERE id = $id")
    [[ $db == w?-25 ]] # some writer's last write won
    for _ in 1 2 3 4 5 6; do
        http GET /api/users/$id
        [[ $body == *"\"full_name\":\"$db\""* ]] || { echo "cache: $body, database: $db"; false; }
    done
    [[ $headers == *"x-cache: hit"* ]]
}

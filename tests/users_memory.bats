#!/usr/bin/env bats
# The users route process keeps one PostgreSQL and one Redis connection for
# its life: after a warm-up, thousands more requests of every kind (cache
# hits and misses, pages, updates, conflicts, bad input) leave its resident
# memory where it was.

load helpers
load queue
load pg

setup() {
    start_redis
    start_pg
    # seed rows directly (the API's password hashing is slow by design)
    # (their name keys are stand-ins, unique as the real ones would be)
    psql_app -c "INSERT INTO users (username, username_key, username_skeleton, email, password_hash)
                 SELECT 'mem' || i, 'mem' || i, 'mem' || i, 'mem' || i || '@example.com', '\$y\$x'
                 FROM generate_series(1, 200) i"
    # ASan's quarantine would hold freed memory on purpose: off, as in
    # route_memory.bats. USER_CACHE_TTL=1: entries expire during the run, so
    # both hits and misses are exercised.
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=0:malloc_context_size=0" \
        start_gateway GW_PROCS=1 USER_CACHE_TTL=1
    ROUTE_PID=$(route_pids users)
    [ -n "$ROUTE_PID" ]
}

teardown() {
    stop_gateway
    stop_pg
    stop_redis
}

load_mix() {
    local n=$1 cfg="$BATS_TEST_TMPDIR/curl.cfg"
    : >"$cfg"
    for i in $(seq 1 "$n"); do
        [ "$i" = 1 ] || echo 'next'
        case $((i % 8)) in
        0 | 1 | 2) echo "url = \"$BASE/api/users/$((i % 200 + 1))\"" ;;
        3) echo "url = \"$BASE/api/users?limit=$((i % 50 + 1))&after=$((i % 150))\"" ;;
        4) printf 'url = "%s"\nrequest = "PATCH"\ndata = "{\\"full_name\\":\\"n%s\\"}"\n' \
            "$BASE/api/users/$((i % 200 + 1))" "$i" ;;
        5) echo "url = \"$BASE/api/users/$((i + 100000))\"" ;; # 404
        6) echo "url = \"$BASE/api/users/x$i\"" ;;             # 422
        7) printf 'url = "%s"\nrequest = "PATCH"\ndata = "{\\"email\\":\\"mem1@example.com\\"}"\n' \
            "$BASE/api/users/$((i % 199 + 2))" ;; # 409
        esac
        echo "header = \"$AUTH\"" # the admin token: the list and any user's PATCH
        echo 'output = "/dev/null"'
        echo 'write-out = "%{http_code}\\n"'
    done >>"$cfg"
    curl_batch "$cfg"
}

assert_mix() { # 200s 404s 422s 409s
    run cat "$BATS_TEST_TMPDIR/codes"
    assert_line --regexp "^ *$1 200$"
    assert_line --regexp "^ *$2 404$"
    assert_line --regexp "^ *$3 422$"
    assert_line --regexp "^ *$4 409$"
}

@test "the users route's memory does not grow with requests" {
    load_mix 4000
    assert_mix 2500 500 500 500
    local before after
    before=$(rss_kb "$ROUTE_PID")
    load_mix 4000
    assert_mix 2500 500 500 500
    after=$(rss_kb "$ROUTE_PID")
    echo "VmRSS before ${before} kB, after ${after} kB" >&3
    [ "$ROUTE_PID" = "$(route_pids users)" ]
    # 256 kB over 4000 requests: a leak of 64 bytes a request fails here
    [ $((after - before)) -le 256 ]
}

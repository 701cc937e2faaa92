#!/usr/bin/env bats
# What the gateway answers when a route program misbehaves or is gone, and
# that it recovers by itself. Each test has its own lighttpd with one process
# per route, so the test knows which process it is hurting.

load helpers

setup() {
    start_gateway GW_PROCS=1 GW_BACKEND_TIMEOUT=1
    ROUTE_PID=$(route_pids hello)
    [ -n "$ROUTE_PID" ]
}

teardown() {
    if [ -n "${ROUTE_PID:-}" ]; then kill -CONT "$ROUTE_PID" 2>/dev/null; fi
    stop_gateway
}

@test "a route program killed with SIGKILL is respawned and serves again" {
    kill -KILL "$ROUTE_PID"
    retry 50 0.1 gateway_answers
    local new
    new=$(route_pids hello)
    [ -n "$new" ] && [ "$new" != "$ROUTE_PID" ] || fail "hello not respawned: '$new' (was $ROUTE_PID)"
    http GET /api/hello/again
    assert_equal "$status" 200
}

@test "SIGTERM makes a route program exit 0; lighttpd respawns it" {
    kill -TERM "$ROUTE_PID"
    retry 50 0.1 eval '[ -n "$(route_pids hello)" ] && [ "$(route_pids hello)" != "$ROUTE_PID" ]'
    retry 50 0.1 grep -q 'child exited: 0' "$GW_STATE/log/error.log"
    http GET /api/hello/again
    assert_equal "$status" 200
}

@test "a wedged route program gives JSON 504 after the backend timeout, not a hang" {
    kill -STOP "$ROUTE_PID"
    SECONDS=0
    http GET /api/hello/stuck -m 20
    assert_equal "$status" 504
    assert_equal "$body" '{"detail":"Gateway Timeout"}'
    [ "$SECONDS" -lt 10 ]
    kill -CONT "$ROUTE_PID"
    retry 50 0.1 gateway_answers
}

@test "a route program that dies mid-request gives JSON 500, and is respawned" {
    kill -STOP "$ROUTE_PID"
    # the request reaches the stopped process; then it dies before answering
    curl -s -o "$BATS_TEST_TMPDIR/body" -w '%{http_code}' -m 20 "$BASE/api/hello/doomed" \
        >"$BATS_TEST_TMPDIR/code" &
    local curl_pid=$!
    sleep 0.5
    kill -KILL "$ROUTE_PID"
    wait "$curl_pid"
    assert_equal "$(cat "$BATS_TEST_TMPDIR/code")" 500
    assert_equal "$(cat "$BATS_TEST_TMPDIR/body")" '{"detail":"Internal Server Error"}'
    retry 50 0.1 gateway_answers
}

@test "a route whose socket is gone is JSON 503" {
    rm -f "$GW_STATE"/sock/hello.sock*
    http GET /api/hello/nobody -m 20
    assert_equal "$status" 503
    assert_equal "$body" '{"detail":"Service Unavailable"}'
}

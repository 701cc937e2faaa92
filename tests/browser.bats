#!/usr/bin/env bats
# The browser pages (issue 9) in a real headless Chromium (Debian's), driven
# over the DevTools protocol by tests/browser/cdp.py, against the real stack:
# lighttpd with the build's route programs, a private PostgreSQL (a user
# registered through POST /api/users signs in), a private Redis and the
# build's queue-runner. /docs/ reads /openapi.json and its "Try it" calls
# answer, public and protected; the dashboard shows a demo task reaching
# SUCCESS and re-runs a failed one. Any console error, uncaught exception,
# CSP violation or blocked load in the page fails the test. Screenshots of
# every step are kept in build/test-artifacts/browser/<build>/ (named
# <test>-<NN>-<step>.png; their paths are printed).

load helpers
load queue
load pg

CDP=$REPO/tests/browser/cdp.py

setup_file() {
    # one directory per build: tests/run runs both builds' suites at once
    local build=normal
    [[ $GW_CGI_BIN == */build/asan/* ]] && build=asan
    ARTIFACTS=$REPO/build/test-artifacts/browser/$build
    mkdir -p "$ARTIFACTS"
    rm -f "$ARTIFACTS"/*.png
    export ARTIFACTS
    start_redis
    start_pg
    start_gateway GW_PROCS=2
    # a user of our own, signed in through the pages' login form
    BUSER=browser$$
    BPASS=browser-pass-$$
    export BUSER BPASS
    local code
    code=$(curl -s -o "$BATS_FILE_TMPDIR/user.json" -w '%{http_code}' -m 15 -X POST \
        -H 'Content-Type: application/json' "$BASE/api/users" \
        --data-binary "{\"username\":\"$BUSER\",\"email\":\"$BUSER@example.com\",\"password\":\"$BPASS\"}")
    [ "$code" = 201 ] || { echo "POST /api/users: $code $(cat "$BATS_FILE_TMPDIR/user.json")" >&2; return 1; }
}

teardown_file() {
    stop_route_gateway
    stop_pg
    stop_redis
}

teardown() {
    stop_runners
}

# browse SCENARIO ARGS...: run cdp.py SCENARIO BASE USER PASS ARTIFACTS
# [ARGS], screenshots named after the test; shows its output (with the
# screenshot paths) in the TAP stream, and fails as it does.
browse() {
    local scenario=$1
    shift
    run env SHOT_PREFIX="$SHOT" TMPDIR="$BATS_TEST_TMPDIR" timeout 120 "$PY" "$CDP" "$scenario" "$BASE" "$BUSER" "$BPASS" "$ARTIFACTS" "$@"
    local line
    while IFS= read -r line; do
        echo "# $line" >&3
    done <<<"$output"
    [ "$status" = 0 ] || {
        echo "--- cdp.py $scenario exited $status (its output is above)"
        echo "--- gateway error.log (tail)"
        tail -n 20 "$GW_STATE/log/error.log"
        return 1
    }
}

# res KEY: a "result: KEY=VALUE" line of the last browse
res() { sed -n "s/^result: $1=//p" <<<"$output" | tail -n 1; }

@test "static pages: /, /docs/, their scripts and /openapi.json are served as what they are, under the CSP" {
    local path type
    for path in / /docs/ /openapi.json; do
        NOAUTH=1 api GET "$path"
        assert_equal "$status" 200
        assert_regex "$headers" "content-security-policy: default-src 'self'"
    done
    NOAUTH=1 api GET /docs/
    assert_regex "$headers" $'content-type: text/html'
    NOAUTH=1 api GET /
    assert_regex "$headers" $'content-type: text/html'
    NOAUTH=1 api GET /openapi.json
    assert_regex "$headers" $'content-type: application/json'
    "$PY" -c 'import json, sys; s = json.load(sys.stdin); assert s["openapi"].startswith("3.1"), s["openapi"]' <<<"$body"
    for path in /auth.js /docs/docs.js /dashboard.js; do
        NOAUTH=1 api GET "$path"
        assert_equal "$status" 200
        assert_regex "$headers" $'content-type: (text|application)/javascript'
    done
}

@test "docs: the page loads the spec, signs in, and Try it answers on a public and a protected route" {
    SHOT=docs
    browse docs
    [ "$(res operations)" -gt 10 ]
    assert_equal "$(res hello_status)" 200
    assert_equal "$(res me_status)" 200
}

@test "dashboard: a demo task submitted from the page reaches SUCCESS, the celery queue and the runner are shown" {
    SHOT=dashboard
    start_runner -c 1
    browse dashboard
    local id
    id=$(res task_id)
    [[ $id =~ $UUID_RE ]] || { echo "task id: '$id'"; return 1; }
    # the page showed it on its way (PENDING or STARTED) before SUCCESS
    assert_regex "$(res statuses_seen)" '^(PENDING|STARTED).*,SUCCESS$' 
    # the task the page submitted is tasks.add(2, 3), and it did run
    api GET "/api/tasks/$id"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" 'j["task"]')" tasks.add
    assert_equal "$(jget "$body" 'j["status"]')" SUCCESS
    assert_equal "$(jget "$body" 'j["result"]')" 5
}

@test "dashboard: a failed task is listed, and its re-run button queues it again" {
    SHOT=failed
    start_runner -c 1
    # the signed-in user's own task: a user's failed list shows only theirs
    local token
    token=$(curl -s -m 15 "$BASE/api/token" -d grant_type=password --data-urlencode "username=$BUSER" \
        --data-urlencode "password=$BPASS" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
    AUTH="Authorization: Bearer $token" api POST /api/tasks/fail -H 'Content-Type: application/json' \
        --data-binary '{"args":["browser boom"]}'
    assert_equal "$status" 202
    ID=$(jget "$body" 'j["id"]')
    retry 100 0.1 status_is "$ID" FAILURE
    browse failed "$ID"
    assert_equal "$(res retry_status)" 202
    # the runner ran it twice: the first time, and again after the re-run
    local n
    n=$(grep -c "Task tasks\.fail\[$ID\] failed" "$RUNNER_LOG" || true)
    assert_equal "$n" 2
}

@test "dashboard: a route's row counts its requests exactly, with a rate while they come and 0.00 once they stop, as /metrics has them" {
    SHOT=routes
    local n=30
    browse routes /api/hello "$n"
    assert_equal "$(res codes)" "{\"200\": $n}"
    assert_equal "$(res total_after)" "$(($(res total_before) + n))"
    assert_equal "$(res total_idle)" "$(res total_after)"
    # each refresh that saw some shows a rate over its period (2 s or a bit
    # more, never less): together over 0 and at most n / 2 per second
    local rates sum
    rates=$(res rates)
    assert_regex "$rates" '^[0-9]+\.[0-9]{2}(,[0-9]+\.[0-9]{2})*$'
    refute_regex ",$rates," ',0\.00,'
    sum=$(awk -v r="$rates" 'BEGIN { k = split(r, a, ","); for (i = 1; i <= k; i++) s += a[i]; print s }')
    assert awk -v s="$sum" -v n="$n" 'BEGIN { exit !(s <= n / 2 + 0.05 && s >= n / 10) }'
    assert_equal "$(res idle_when_counted)" false
    assert_regex "$(res p50)" '^[0-9.]+ (ms|s)$'
    # greetings are no errors
    assert_equal "$(res errors_after)" "$(res errors_before)"
    # the page's count is the server's: every series of the route in /metrics
    local shown
    shown=$(res total_idle)
    run -0 curl -s -m 10 "$BASE/metrics"
    assert_equal "$(awk '/^http_requests_total\{.*route="\/api\/hello"/ { s += $2 } END { print s }' <<<"$output")" \
        "$shown"
}

#!/usr/bin/env bats
# /api/hello through the real gateway: lighttpd with lighttpd.conf as shipped,
# the route programs under test, a free port, state in a temp dir. Each bad
# input has its documented answer here (README, "Bad input").
#
# The authorizer runs before every /api/ request; `http` sends an admin
# token. A private Redis lets it check tokens on protected paths (/api/nope/x
# and other unknown services): without one it cannot load the revoked-token
# list and would answer 503 before lighttpd's 404.

load helpers
load queue

setup_file() {
    start_redis
    start_gateway
}

teardown_file() {
    stop_gateway
    stop_redis
}

greeting() { printf '{"message":"Hello, %s!"}' "$1"; }

@test "GET /api/hello/world is the seed's greeting, as JSON" {
    http GET /api/hello/world
    assert_equal "$status" 200
    assert_equal "$body" '{"message":"Hello, world!"}'
    [[ $headers == *"content-type: application/json"* ]]
    [[ $headers == *"content-length: 27"* ]]
}

@test "names in unicode and emoji come back as raw UTF-8, not escaped" {
    http GET '/api/hello/J%C3%B6rg%20%F0%9F%98%80'
    assert_equal "$status" 200
    assert_equal "$body" "$(greeting 'Jörg 😀')"
}

@test "a name with spaces, quotes and backslashes is JSON-escaped" {
    http GET '/api/hello/a%20%22b%22%20c%5Cd'
    assert_equal "$status" 200
    assert_equal "$body" '{"message":"Hello, a \"b\" c\\d!"}'
}

@test "an encoded slash is part of the name" {
    http GET '/api/hello/a%2Fb'
    assert_equal "$status" 200
    assert_equal "$body" "$(greeting 'a/b')"
}

@test "control characters in the path are refused by lighttpd with a JSON 400" {
    for c in %0A %01 %1F %7F; do
        http GET "/api/hello/a${c}b"
        assert_equal "$c:$status" "$c:400"
        assert_equal "$body" '{"detail":"Bad Request"}'
    done
}

@test "invalid UTF-8 in the path is a JSON 400, from lighttpd or from lib/" {
    # lighttpd refuses bytes that never start UTF-8 ...
    for s in %FF %C0%80; do
        http GET "/api/hello/$s"
        assert_equal "$s:$status" "$s:400"
        assert_equal "$body" '{"detail":"Bad Request"}'
    done
    # ... and passes surrogates and truncated sequences, which lib/ refuses
    for s in %ED%A0%80 %E2%82 %F4%90%80%80; do
        http GET "/api/hello/$s"
        assert_equal "$s:$status" "$s:400"
        assert_equal "$body" '{"detail":"Invalid UTF-8 in path"}'
    done
}

@test "a stray percent sign is taken literally (lighttpd re-encodes it)" {
    http GET '/api/hello/100%ZZ'
    assert_equal "$status" 200
    assert_equal "$body" "$(greeting '100%ZZ')"
}

@test "a 10 KB name is over the 8 KiB request-header limit: JSON 431" {
    local name
    name=$(head -c 10240 /dev/zero | tr '\0' n)
    http GET "/api/hello/$name"
    assert_equal "$status" 431
    assert_equal "$body" '{"detail":"Request Header Fields Too Large"}'
}

@test "a 7 KB name fits and is greeted in full" {
    local name
    name=$(head -c 7000 /dev/zero | tr '\0' n)
    http GET "/api/hello/$name"
    assert_equal "$status" 200
    assert_equal "$body" "$(greeting "$name")"
}

@test "an empty name, no name, and a trailing slash are 404" {
    for p in /api/hello/ /api/hello /api/hello/world/ /api/hello/a/b; do
        http GET "$p"
        assert_equal "$p:$status" "$p:404"
        assert_equal "$body" '{"detail":"Not Found"}'
    done
}

@test "a query string is ignored" {
    http GET '/api/hello/world?x=1&y=two+words&z'
    assert_equal "$status" 200
    assert_equal "$body" "$(greeting world)"
}

@test "HEAD answers the GET headers without a body" {
    run -0 curl -s --head -o /dev/null -D - -w 'downloaded=%{size_download}\n' "$BASE/api/hello/world"
    assert_line --index 0 --partial "200 OK"
    assert_line --partial "Content-Length: 27"
    assert_line --partial "Content-Type: application/json"
    assert_line "downloaded=0"
}

@test "OPTIONS, POST, PUT, PATCH, DELETE are 405 with Allow" {
    for m in OPTIONS POST PUT PATCH DELETE; do
        http "$m" /api/hello/world --data-binary '{}'
        assert_equal "$m:$status" "$m:405"
        assert_equal "$body" '{"detail":"Method Not Allowed"}'
        [[ $headers == *"allow: get, head"* ]]
    done
}

@test "a POST without Content-Length is lighttpd's JSON 411" {
    http POST /api/hello/world
    assert_equal "$status" 411
    assert_equal "$body" '{"detail":"Length Required"}'
}

@test "an unknown method is lighttpd's JSON 501" {
    http FOO /api/hello/world
    assert_equal "$status" 501
    assert_equal "$body" '{"detail":"Not Implemented"}'
}

@test "unknown services and near-miss prefixes are JSON 404" {
    for p in /api/nope/x /api/helloworld /api/helloworld/x /api/ /nope.json; do
        http GET "$p"
        assert_equal "$p:$status" "$p:404"
        assert_equal "$body" '{"detail":"Not Found"}'
        [[ $headers == *"content-type: application/json"* ]]
    done
}

@test "the error documents themselves are not served" {
    http GET /errors/404.html
    assert_equal "$status" 403
    assert_equal "$body" '{"detail":"Forbidden"}'
}

@test "dot segments are resolved before routing" {
    http GET '/api/x/../hello/dots'
    assert_equal "$status" 200
    assert_equal "$body" "$(greeting dots)"
}

@test "a body over the 1 MiB request limit is lighttpd's JSON 413" {
    head -c 2000000 /dev/zero >"$BATS_TEST_TMPDIR/big"
    http POST /api/hello/world --data-binary "@$BATS_TEST_TMPDIR/big"
    assert_equal "$status" 413
    assert_equal "$body" '{"detail":"Request Entity Too Large"}'
}

@test "a body within the limit on a GET-only route is 405, and the route survives" {
    head -c 100000 /dev/zero >"$BATS_TEST_TMPDIR/body"
    http POST /api/hello/world --data-binary "@$BATS_TEST_TMPDIR/body"
    assert_equal "$status" 405
    http GET /api/hello/world
    assert_equal "$status" 200
}

@test "request headers over 8 KiB are lighttpd's JSON 431" {
    http GET /api/hello/world -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' a)"
    assert_equal "$status" 431
    assert_equal "$body" '{"detail":"Request Header Fields Too Large"}'
}

@test "a malformed request line is lighttpd's JSON 400" {
    local port=${BASE##*:}
    exec 5<>"/dev/tcp/127.0.0.1/$port"
    printf 'GET /api/hello/x HTTP/1.1 extra\r\nHost: x\r\n\r\n' >&5
    run timeout 5 cat <&5
    exec 5<&-
    assert_line --index 0 --regexp '^HTTP/1\.[01] 400 Bad Request'
    assert_line --partial 'Content-Type: application/json'
    assert_output --partial '{"detail":"Bad Request"}'
}

@test "a sane X-Request-Id is echoed; a bad one is replaced by a generated id" {
    http GET /api/hello/world -H 'X-Request-Id: trace-42.a_b'
    [[ $headers == *"x-request-id: trace-42.a_b"* ]]
    http GET /api/hello/world -H 'X-Request-Id: has spaces'
    [[ $headers =~ x-request-id:\ [0-9a-f]{32} ]]
    http GET /api/hello/world -H "X-Request-Id: $(head -c 65 /dev/zero | tr '\0' a)"
    [[ $headers =~ x-request-id:\ [0-9a-f]{32} ]]
}

@test "each request is one INFO line in the route log (and one from the authorizer) and one access-log line, joined by the request id" {
    http GET /api/hello/logged -H 'X-Request-Id: log-check-1'
    assert_equal "$status" 200
    retry 20 0.1 grep -q ' - hello - .*request_id=log-check-1' "$GW_STATE/log/routes.log"
    # the authorizer (program "auth") logs the same request under the same id
    run grep 'request_id=log-check-1' "$GW_STATE/log/routes.log"
    assert_equal "${#lines[@]}" 2
    run grep ' - auth - .*request_id=log-check-1' "$GW_STATE/log/routes.log"
    assert_output --regexp '^[0-9-]{10} [0-9:]{8},[0-9]{3} - auth - INFO - GET /api/hello/logged 200 [0-9.]+ms request_id=log-check-1$'
    run grep -v ' - auth - ' <(grep 'request_id=log-check-1' "$GW_STATE/log/routes.log")
    assert_equal "${#lines[@]}" 1
    assert_output --regexp '^[0-9-]{10} [0-9:]{8},[0-9]{3} - hello - INFO - GET /api/hello/logged 200 [0-9.]+ms request_id=log-check-1$'
    # lighttpd buffers the access log; SIGHUP (log rotation) flushes it
    kill -HUP "$GW_PID"
    retry 50 0.1 grep -q 'log-check-1' "$GW_STATE/log/access.log"
    run grep 'log-check-1' "$GW_STATE/log/access.log"
    assert_output --partial '"GET /api/hello/logged HTTP/1.1" 200 '
}

@test "responses carry no version banner and nosniff" {
    http GET /api/hello/world
    [[ $headers != *"server:"* ]]
    [[ $headers == *"x-content-type-options: nosniff"* ]]
    http GET /api/nope
    [[ $headers != *"server:"* ]]
}

#!/usr/bin/env bats
# The hello route binary run as plain CGI (what mod_cgi does, and what the
# same binary does outside FastCGI): response shape, lib's limits and errors,
# settings and the log line.

load helpers

body_of() { sed '1,/^$/d' <<<"$output"; }

@test "CGI: GET /api/hello/world answers the seed's greeting with headers" {
    run -0 --separate-stderr cgi hello GET /api/hello/world
    assert_line --index 0 "Status: 200 OK"
    assert_line "Content-Type: application/json"
    assert_line "Content-Length: 27"
    assert_line --regexp '^X-Request-Id: [0-9a-f]{32}$'
    assert_equal "$(body_of)" '{"message":"Hello, world!"}'
}

@test "CGI: the request is logged as one INFO line in the seed's format" {
    run -0 --separate-stderr cgi hello GET /api/hello/world
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ ${stderr_lines[0]} =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3}\ -\ hello\ -\ INFO\ -\ GET\ /api/hello/world\ 200\ [0-9.]+ms\ request_id=[0-9a-f]{32}$ ]]
}

@test "CGI: LOG_LEVEL=WARNING silences the per-request line" {
    CGI_ENV="LOG_LEVEL=WARNING" run -0 --separate-stderr cgi hello GET /api/hello/world
    assert_equal "$stderr" ""
    assert_line --index 0 "Status: 200 OK"
}

@test "CGI: a bad setting stops the program at start with a clear message" {
    run -1 env -i LOG_LEVEL=LOUD "$GW_CGI_BIN/hello"
    assert_output --regexp "hello - ERROR - conf: LOG_LEVEL: expected one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"
    run -1 env -i MAX_BODY_BYTES=12k "$GW_CGI_BIN/hello"
    assert_output --partial "conf: MAX_BODY_BYTES: expected an integer in 0..1073741824, got '12k'"
}

@test "CGI: a body over MAX_BODY_BYTES is 413 before the handler runs" {
    CGI_ENV="MAX_BODY_BYTES=4" run -0 --separate-stderr cgi hello POST /api/hello/x 12345
    assert_line --index 0 "Status: 413 Request Entity Too Large"
    assert_equal "$(body_of)" '{"detail":"Request Entity Too Large"}'
}

@test "CGI: a body within MAX_BODY_BYTES reaches the route (405 for hello)" {
    CGI_ENV="MAX_BODY_BYTES=5" run -0 --separate-stderr cgi hello POST /api/hello/x 12345
    assert_line --index 0 "Status: 405 Method Not Allowed"
    assert_line "Allow: GET, HEAD"
}

@test "CGI: a non-numeric Content-Length is 400" {
    run -0 --separate-stderr bash -c "printf abc | env -i REQUEST_METHOD=POST REQUEST_URI=/api/hello/x CONTENT_LENGTH=3x '$GW_CGI_BIN/hello' | tr -d '\r'"
    assert_line --index 0 "Status: 400 Bad Request"
    assert_output --partial '{"detail":"Invalid Content-Length"}'
}

@test "CGI: a body shorter than its Content-Length is 400" {
    run -0 --separate-stderr bash -c "printf abc | env -i REQUEST_METHOD=POST REQUEST_URI=/api/hello/x CONTENT_LENGTH=10 '$GW_CGI_BIN/hello' | tr -d '\r'"
    assert_line --index 0 "Status: 400 Bad Request"
    assert_output --partial '{"detail":"Incomplete request body"}'
}

@test "CGI: invalid percent-encoding in the path is 400 (lighttpd re-encodes it first)" {
    run -0 --separate-stderr cgi hello GET '/api/hello/%ZZ'
    assert_line --index 0 "Status: 400 Bad Request"
    assert_equal "$(body_of)" '{"detail":"Invalid percent-encoding in path"}'
}

@test "CGI: invalid UTF-8 and NUL bytes in the path are 400" {
    run -0 --separate-stderr cgi hello GET '/api/hello/%C0%80'
    assert_equal "$(body_of)" '{"detail":"Invalid UTF-8 in path"}'
    run -0 --separate-stderr cgi hello GET '/api/hello/a%00b'
    assert_equal "$(body_of)" '{"detail":"Invalid NUL byte in path"}'
}

@test "CGI: invalid encoding in the query string is 400" {
    run -0 --separate-stderr cgi hello GET '/api/hello/x?a=%FF'
    assert_line --index 0 "Status: 400 Bad Request"
    assert_equal "$(body_of)" '{"detail":"Invalid UTF-8 in query string"}'
}

@test "CGI: ROUTE_PREFIX mounts the route elsewhere" {
    CGI_ENV="ROUTE_PREFIX=/v2/greet" run -0 --separate-stderr cgi hello GET /v2/greet/bob
    assert_equal "$(body_of)" '{"message":"Hello, bob!"}'
    CGI_ENV="ROUTE_PREFIX=/v2/greet" run -0 --separate-stderr cgi hello GET /api/hello/bob
    assert_line --index 0 "Status: 404 Not Found"
}

@test "CGI: a sane X-Request-Id is echoed, a forged one is replaced" {
    CGI_ENV="HTTP_X_REQUEST_ID=abc-123_x.y" run -0 --separate-stderr cgi hello GET /api/hello/x
    assert_line "X-Request-Id: abc-123_x.y"
    CGI_ENV="HTTP_X_REQUEST_ID=a;b" run -0 --separate-stderr cgi hello GET /api/hello/x
    assert_line --regexp '^X-Request-Id: [0-9a-f]{32}$'
}

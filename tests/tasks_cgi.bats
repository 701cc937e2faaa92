#!/usr/bin/env bats
# cgi-bin/tasks run as plain CGI (hosts that allow only CGI, mod_cgi): the
# same answers; a ?wait there polls the result every 50 ms in its own
# process instead of parking in the event loop. The caller is who the
# authorizer names (AUTH_SUB, AUTH_SCOPE), as lib/serve.c's CGI authorizer
# mode hands them on.

load helpers
load queue

setup() {
    start_redis
}

teardown() {
    queue_teardown
}

@test "tasks as plain CGI: submit, then a ?wait answered when the task finishes" {
    start_runner -c 1
    CGI_ENV="REDIS_URL=$REDIS_URL AUTH_SUB=0 AUTH_SCOPE=admin" run cgi tasks POST /api/tasks/sleep '{"args":[0.5]}'
    assert_success
    assert_line "Status: 202 Accepted"
    local id
    id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$output")
    [[ $id =~ $UUID_RE ]]
    assert_line "Location: /api/tasks/$id"

    # the CGI process polls while the task sleeps, and answers once it is done
    local t0=$SECONDS
    CGI_ENV="REDIS_URL=$REDIS_URL AUTH_SUB=0 AUTH_SCOPE=admin" run cgi tasks GET "/api/tasks/$id?wait=10"
    assert_success
    assert_line "Status: 200 OK"
    assert_output --partial '"status":"SUCCESS","result":0.5'
    [ $((SECONDS - t0)) -lt 5 ]
}

@test "tasks as plain CGI: bad input gets the same JSON errors" {
    CGI_ENV="REDIS_URL=$REDIS_URL AUTH_SUB=0 AUTH_SCOPE=admin" run cgi tasks POST /api/tasks/nope '{}'
    assert_line "Status: 404 Not Found"
    CGI_ENV="REDIS_URL=$REDIS_URL AUTH_SUB=0 AUTH_SCOPE=admin" run cgi tasks POST /api/tasks/add '{"args":[1]}'
    assert_line "Status: 422 Unprocessable Entity"
    assert_output --partial '"type":"missing_argument"'
    CGI_ENV="REDIS_URL=$REDIS_URL AUTH_SUB=0 AUTH_SCOPE=admin" run cgi tasks GET "/api/tasks/nobody?wait=0.2"
    assert_line "Status: 404 Not Found"
    CGI_ENV="REDIS_URL=unix:///nonexistent/redis.sock AUTH_SUB=0 AUTH_SCOPE=admin" run cgi tasks GET "/api/tasks/x"
    assert_line "Status: 503 Service Unavailable"
}

#!/usr/bin/env bats
# /api/tasks with many untrusted users (registration is public, so every
# user is a stranger): queue names that cannot reach the stack's own keys,
# writes that never answer 202 unless they landed, tasks only their owner
# (and admins) can see or touch, demo tasks for admins only, limits every
# task has, and per-user quotas. Each test reproduces a finding of issue 17
# against the real gateway, Redis and runner.

load helpers
load queue

setup() {
    start_redis
}

teardown() {
    queue_teardown
}

# as USER CMD...: run an `api`/`submit` call with USER's bearer token
# (A, B: ordinary users 101 and 102; ADMIN: the gateway's admin token)
as() {
    local who=$1
    shift
    case $who in
    A) AUTH="Authorization: Bearer $TOKEN_A" "$@" ;;
    B) AUTH="Authorization: Bearer $TOKEN_B" "$@" ;;
    ADMIN) "$@" ;;
    esac
}

# users: tokens for two ordinary users, A (sub 101) and B (sub 102)
users() {
    TOKEN_A=$(token 101)
    TOKEN_B=$(token 102)
}

# keys_snapshot: every key in Redis with its type, sorted (what a refused
# write must leave as it was), but the per-second rate counters: they
# expire on their own, and on a loaded host one can between two snapshots
keys_snapshot() {
    local k
    for k in $(rcli --scan | grep -v '^qrun:rate:' | sort); do
        printf '%s %s\n' "$k" "$(rcli type "$k")"
    done
}

@test "queue names Redis holds for something else are refused, and the revocation list stays a sorted set" {
    start_gateway GW_PROCS=1
    users
    # the gateway's revocation list, as a revoke makes it
    rcli zadd revoked 1 "9999999999 some-jti" >/dev/null
    local q
    for q in revoked unacked unacked_index _kombu.binding.celery celery-task-meta-x \
        celery-taskset-meta-x chord-unlock-x x.reply.celery.pidbox; do
        as A submit add "{\"args\":[1,1],\"queue\":\"$q\"}"
        [ "$status" = 422 ] || { echo "queue $q: $status $body"; false; }
        assert_equal "$(first_loc)" '["body","queue"]'
    done
    assert_equal "$(rcli type revoked)" zset
    assert_equal "$(rcli zcard revoked)" 1
    assert_equal "$(rcli type unacked)" none
    assert_equal "$(rcli type _kombu.binding.celery)" none
    assert_equal "$(rcli --scan --pattern 'celery-task-meta-*')" ""
    # and a runner refuses to consume one
    run -2 timeout 10 env REDIS_URL="$REDIS_URL" "$GW_BIN/queue-runner" -c 1 -Q celery,revoked
    assert_output --partial "-Q: expected"
}

first_loc() { jget "$body" 'j["detail"][0]["loc"]'; }

@test "a queue no runner consumes and TASK_QUEUES does not list is 422; a runner's -Q or the setting serves it" {
    start_gateway GW_PROCS=1 TASK_QUEUES=celery,listed
    users
    as A submit add '{"args":[1,1],"queue":"nobody-reads-this"}'
    assert_equal "$status" 422
    assert_equal "$(jget "$body" 'j["detail"][0]["type"]')" enum
    assert_equal "$(rcli exists nobody-reads-this)" 0
    assert_equal "$(rcli sismember qrun:queues nobody-reads-this)" 0
    as A submit add '{"args":[1,1],"queue":"listed"}'
    assert_equal "$status" 202
    start_runner -c 1 -Q reports
    as A submit add '{"args":[2,2],"queue":"reports"}'
    assert_equal "$status" 202
    wait_status "$ID" SUCCESS
}

@test "a write that does not land is 503, never 202: a queue key of another type, and a full Redis" {
    start_gateway GW_PROCS=1 TASK_QUEUES=celery,clash
    users
    # someone made the queue's key a hash: nothing of the submit is written
    rcli hset clash f v >/dev/null
    local before
    before=$(keys_snapshot)
    as A submit add '{"args":[1,1],"queue":"clash"}'
    assert_equal "$status" 503
    assert_equal "$(keys_snapshot)" "$before"

    # Redis full (maxmemory, noeviction): 503 "full", and nothing lost
    as A submit add '{"args":[2,2]}'
    assert_equal "$status" 202
    local queued=$ID
    rcli config set maxmemory 1 >/dev/null
    before=$(keys_snapshot)
    as A submit add '{"args":[3,3]}'
    assert_equal "$status" 503
    assert_equal "$(jget "$body" 'j["detail"]')" "Task queue full, try again later"
    [[ $headers == *"retry-after: 5"* ]]
    as ADMIN submit add '{"args":[3,3]}'
    assert_equal "$status" 503
    assert_equal "$(keys_snapshot)" "$before"
    # the runners may still drain what is queued, which frees memory
    start_runner -c 1
    wait_status "$queued" SUCCESS
    assert_equal "$(result "$queued")" 4
    rcli config set maxmemory 0 >/dev/null
    as A submit add '{"args":[5,5]}'
    assert_equal "$status" 202
    wait_status "$ID" SUCCESS
}

@test "user B gets 404 reading, waiting on, revoking, terminating and re-running user A's task" {
    start_gateway GW_PROCS=1
    users
    as A submit fail '{"args":["A secret: 42"]}'
    assert_equal "$status" 202
    local failed=$ID
    as A submit add '{"args":[40,2]}'
    local pending=$ID
    for path in "/api/tasks/$pending" "/api/tasks/$pending?wait=1" "/api/tasks/$failed"; do
        as B api GET "$path"
        assert_equal "$status" 404
        assert_equal "$body" '{"detail":"Task not found"}'
    done
    as B api DELETE "/api/tasks/$pending"
    assert_equal "$status" 404
    as B api DELETE "/api/tasks/$pending?terminate=true"
    assert_equal "$status" 404
    assert_equal "$(meta_status "$pending")" PENDING
    assert_equal "$(rcli exists "qrun:revoked:$pending")" 0

    start_runner -c 1
    wait_status "$failed" FAILURE
    wait_status "$pending" SUCCESS
    as B api GET "/api/tasks/$pending"
    assert_equal "$status" 404
    as B api POST "/api/tasks/$failed/retry" -d ''
    assert_equal "$status" 404
    # B's failed list does not show it; A's does; the admin's shows it with its owner
    as B api GET '/api/tasks?status=FAILURE'
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[j["total"], j["items"]]')" '[0,[]]'
    as A api GET '/api/tasks?status=FAILURE'
    assert_equal "$(jget "$body" '[j["total"], [[i["id"], i["owner"], i["error"]] for i in j["items"]]]')" \
        "[1,[[\"$failed\",\"101\",\"ValueError: A secret: 42\"]]]"
    as ADMIN api GET '/api/tasks?status=FAILURE&owner=102'
    assert_equal "$(jget "$body" 'j["total"]')" 0
    as ADMIN api GET '/api/tasks?status=FAILURE&owner=101'
    assert_equal "$(jget "$body" '[i["id"] for i in j["items"]]')" "[\"$failed\"]"

    # A reads, waits on and re-runs their own; the admin reads anyone's
    as A api GET "/api/tasks/$pending?wait=1"
    assert_equal "$(jget "$body" '[j["status"], j["result"]]')" '["SUCCESS",42]'
    as ADMIN api GET "/api/tasks/$pending"
    assert_equal "$status" 200
    as A api POST "/api/tasks/$failed/retry" -d ''
    assert_equal "$status" 202
    wait_status "$failed" FAILURE
    # the stored metas name the owner, Celery's keys first
    assert_equal "$(jget "$(meta "$pending")" 'list(j)[-1] + "=" + j["owner"]')" owner=101
}

@test "a task that is running: B cannot terminate it; A can" {
    start_gateway GW_PROCS=1 TASK_QUEUES=celery
    users
    start_runner -c 1
    # A may not run tasks.sleep (admins only), so the admin starts one for A
    # the way a Python client would submit on A's behalf: headers.owner
    "$PY" - "$CELERY_URL" <<'PY'
import sys
from celery import Celery
app = Celery("t", broker=sys.argv[1], backend=sys.argv[1])
r = app.send_task("tasks.sleep", args=[30], task_id="owned-by-101", headers={"owner": "101"})
PY
    retry 100 0.1 status_is owned-by-101 STARTED
    as B api DELETE "/api/tasks/owned-by-101?terminate=true"
    assert_equal "$status" 404
    assert_equal "$(meta_status owned-by-101)" STARTED
    as A api DELETE "/api/tasks/owned-by-101?terminate=true"
    assert_equal "$status" 202
    wait_status owned-by-101 REVOKED
    assert_equal "$(jget "$(meta owned-by-101)" 'j["owner"]')" 101
}

@test "a task Python put in Redis has no owner: 404 for users, readable by admins" {
    start_gateway GW_PROCS=1
    users
    start_runner -c 1
    run -0 taskctl call add 2 3 --timeout 10
    local id
    id=$(rcli --scan --pattern 'celery-task-meta-*' | head -n 1)
    id=${id#celery-task-meta-}
    as A api GET "/api/tasks/$id"
    assert_equal "$status" 404
    as A api DELETE "/api/tasks/$id"
    assert_equal "$status" 404
    as ADMIN api GET "/api/tasks/$id"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" 'j["result"]')" 5
}

@test "an HTTP task a Python Celery worker runs stays its owner's (the owner record outlives the meta's owner)" {
    start_gateway GW_PROCS=1
    users
    as A submit add '{"args":[20,22]}'
    local id=$ID
    start_celery_worker -Q celery
    wait_status "$id" SUCCESS
    # the Python worker's meta has no owner; qrun:owner:<id> keeps it
    assert_equal "$(jget "$(meta "$id")" '"owner" in j')" false
    assert_equal "$(rcli get "qrun:owner:$id")" 101
    [ "$(rcli ttl "qrun:owner:$id")" -gt 0 ]
    as A api GET "/api/tasks/$id"
    assert_equal "$(jget "$body" 'j["result"]')" 42
    as B api GET "/api/tasks/$id"
    assert_equal "$status" 404
}

@test "the demos that hold, crash or retry a worker are for admins: 403 for a user, 202 for an admin" {
    start_gateway GW_PROCS=1
    users
    local t
    for t in sleep alloc crash flaky tasks.sleep; do
        as A submit "$t" '{"args":[1]}'
        [ "$status" = 403 ] || { echo "$t: $status $body"; false; }
        assert_equal "$(jget "$body" 'j["detail"]')" "Not enough permissions: tasks.${t#tasks.} needs the admin scope"
    done
    assert_equal "$(rcli --scan --pattern 'celery-task-meta-*')" ""
    assert_equal "$(rcli llen celery)" 0
    as ADMIN submit sleep '{"args":[0]}'
    assert_equal "$status" 202
    as A submit add '{"args":[1,2]}'
    assert_equal "$status" 202
}

@test "every task has a time and memory limit by default; a task over its time limit ends TimeLimitExceeded" {
    start_gateway GW_PROCS=1
    start_runner -c 1
    # the defaults, with nothing set
    grep -q 'time_limit=300s memory_limit=512MB' "$RUNNER_LOG"
    stop_runner
    TASK_TIME_LIMIT=1 start_runner -c 1
    as ADMIN submit sleep '{"args":[5]}'
    wait_status "$ID" FAILURE 60
    assert_equal "$(jget "$(meta "$ID")" 'j["result"]["exc_type"]')" TimeLimitExceeded
}

@test "a submit may ask for a shorter time limit, never a longer one than the task's" {
    start_gateway GW_PROCS=1 TASK_TIME_LIMIT=60
    start_runner -c 1
    as ADMIN submit sleep '{"args":[1],"time_limit":61}'
    assert_equal "$status" 422
    assert_equal "$(first_loc)" '["body","time_limit"]'
    as ADMIN submit sleep '{"args":[1],"time_limit":5,"soft_time_limit":6}'
    assert_equal "$status" 422
    assert_equal "$(first_loc)" '["body","soft_time_limit"]'
    as ADMIN submit sleep '{"args":[1],"time_limit":0}'
    assert_equal "$status" 422
    as ADMIN submit sleep '{"args":[10],"time_limit":1}'
    assert_equal "$status" 202
    wait_status "$ID" FAILURE 60
    assert_equal "$(jget "$(meta "$ID")" 'j["result"]["exc_type"]')" TimeLimitExceeded
}

@test "per-user quotas: submits per second and tasks at once give 429 with Retry-After; admins are not limited" {
    start_gateway GW_PROCS=1 TASK_USER_RATE=1000 TASK_USER_ACTIVE=3
    users
    local i
    for i in 1 2 3; do
        as A submit add "{\"args\":[$i,0]}"
        assert_equal "$status" 202
    done
    as A submit add '{"args":[4,0]}'
    assert_equal "$status" 429
    assert_equal "$(jget "$body" 'j["detail"]')" "Too many tasks queued or running: at most 3 at once"
    [[ $headers == *"retry-after: 1"* ]]
    # another user, and the admin, are not held by A's tasks
    as B submit add '{"args":[1,1]}'
    assert_equal "$status" 202
    for i in 1 2 3 4; do
        as ADMIN submit add '{"args":[1,1]}'
        assert_equal "$status" 202
    done
    # once they have run, A may submit again; what A holds has a TTL
    start_runner -c 1
    retry 100 0.1 eval '[ "$(rcli llen celery)" = 0 ]'
    retry 100 0.1 eval '[ "$(rcli zcard qrun:active:101)" = 0 ]'
    stop_runner
    as A submit add '{"args":[5,0]}'
    assert_equal "$status" 202
    assert_equal "$(rcli zcard qrun:active:101)" 1
    [ "$(rcli pttl qrun:active:101)" -gt 0 ]
}

@test "per-user rate: over TASK_USER_RATE submits in a second is 429; the refused ones write nothing" {
    start_gateway GW_PROCS=1 TASK_USER_RATE=3 TASK_USER_ACTIVE=0
    users
    local codes=() i
    for i in 1 2 3 4 5 6 7 8; do
        as A submit add '{"args":[1,1]}'
        codes+=("$status")
        if [ "$status" = 429 ]; then
            assert_equal "$(jget "$body" 'j["detail"]')" "Too many task submissions: at most 3 per second"
        fi
    done
    # curl takes well under a second per request here: some were refused,
    # and never more than 3 a second went through
    [[ " ${codes[*]} " == *" 429 "* ]]
    local n
    n=$(rcli --scan --pattern 'celery-task-meta-*' | wc -l)
    [ "$n" -ge 3 ]
    [ "$n" = "$(rcli llen celery)" ]
    [ "$n" = "$(printf '%s\n' "${codes[@]}" | grep -c 202)" ]
}

@test "arguments over TASK_MAX_ARGS_BYTES are 413 with the size, for users and admins alike" {
    start_gateway GW_PROCS=1 TASK_MAX_ARGS_BYTES=1000
    users
    local big
    big=$(printf 'x%.0s' $(seq 1 1000))
    as A submit fail "{\"args\":[\"$big\"]}"
    assert_equal "$status" 413
    assert_equal "$(jget "$body" 'j["detail"]')" "Task arguments too large: 1009 bytes (limit 1000)"
    as ADMIN submit fail "{\"args\":[\"$big\"]}"
    assert_equal "$status" 413
    assert_equal "$(rcli llen celery)" 0
    as A submit fail "{\"args\":[\"${big:0:900}\"]}"
    assert_equal "$status" 202
}

@test "without the authorizer's caller (a program run as plain CGI with no token) the route is 401" {
    CGI_ENV="REDIS_URL=$REDIS_URL" run cgi tasks POST /api/tasks/add '{"args":[1,1]}'
    assert_line "Status: 401 Unauthorized"
    assert_equal "$(rcli llen celery)" 0
    CGI_ENV="REDIS_URL=$REDIS_URL AUTH_SUB=a/b" run cgi tasks POST /api/tasks/add '{"args":[1,1]}'
    assert_line "Status: 403 Forbidden"
}

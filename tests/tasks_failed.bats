#!/usr/bin/env bats
# Failed tasks (issue 4, queue part 2): every final FAILURE (after its
# retries) is kept in qrun:failed:<queue> (ids by failure time) with its
# message in qrun:failedmsg:<id> (TTL FAILED_AGE), bounded by FAILED_MAX and
# FAILED_AGE; GET /api/tasks?status=FAILURE lists them newest first, paged;
# POST /api/tasks/{id}/retry queues one again. Each test has its own redis,
# runners and gateway; teardown stops them and fails on sanitizer reports.

load helpers
load queue

setup() {
    start_redis
}

teardown() {
    queue_teardown
}

# failed_list [QUERY]: GET /api/tasks?status=FAILURE[&QUERY], must be 200
failed_list() {
    api GET "/api/tasks?status=FAILURE${1:+&$1}"
    [ "$status" = 200 ] || { echo "GET /api/tasks?status=FAILURE&$1: $status $body"; return 1; }
}

# ids_of: the ids of the listed items, space-separated
ids_of() { jget "$body" '" ".join(i["id"] for i in j["items"])'; }

# fail_one MESSAGE: send tasks.fail(MESSAGE), wait for its FAILURE; sets ID
fail_one() {
    run -0 taskctl send fail "$1"
    ID=$output
    wait_status "$ID" FAILURE 100
}

# failures ID: how many times any runner of the test logged the task's failure
failures() {
    local n=0 d c
    for d in "${RUNNER_DIRS[@]}"; do
        c=$(grep -c "Task tasks\.[a-z]*\[$1\] failed" "$d/runner.log" || true)
        n=$((n + c))
    done
    echo "$n"
}

@test "failed tasks are listed newest first, with total, limit and offset paging" {
    start_gateway GW_PROCS=1
    TASK_RETRY_BACKOFF_MS=20 start_runner -c 1
    local -a ids
    local m
    for m in a b c d; do
        fail_one "boom $m"
        ids+=("$ID")
    done
    # one that fails after its 3 retries is listed once
    run -0 taskctl send flaky 100
    local flaky=$output
    wait_status "$flaky" FAILURE 100
    ids+=("$flaky")
    # a success is not listed
    run -0 taskctl call add 1 1 --timeout 10
    local newest_first="${ids[4]} ${ids[3]} ${ids[2]} ${ids[1]} ${ids[0]}"

    failed_list
    assert_equal "$(jget "$body" '[j["total"], j["limit"], j["offset"], len(j["items"])]')" '[5,50,0,5]'
    assert_equal "$(ids_of)" "$newest_first"
    assert_equal "$(jget "$body" 'all(sorted(i) == ["date_done", "error", "failed_at", "id", "owner", "queue", "status", "task"] for i in j["items"])')" true
    assert_equal "$(jget "$body" '[[i["task"], i["queue"], i["status"], i["error"]] for i in j["items"][:2]]')" \
        '[["tasks.flaky","celery","FAILURE","ValueError: flaky: attempt 4 of 101 failed"],["tasks.fail","celery","FAILURE","ValueError: boom d"]]'
    # failed_at newest first; date_done ISO
    assert_equal "$(jget "$body" '[i["failed_at"] for i in j["items"]] == sorted([i["failed_at"] for i in j["items"]], reverse=True)')" true
    [[ $(jget "$body" 'j["items"][4]["date_done"]') =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T ]]

    failed_list "limit=2"
    assert_equal "$(jget "$body" '[j["total"], j["limit"], j["offset"]]')" '[5,2,0]'
    assert_equal "$(ids_of)" "${ids[4]} ${ids[3]}"
    failed_list "limit=2&offset=2"
    assert_equal "$(jget "$body" '[j["total"], j["limit"], j["offset"]]')" '[5,2,2]'
    assert_equal "$(ids_of)" "${ids[2]} ${ids[1]}"
    failed_list "offset=4&limit=2"
    assert_equal "$(ids_of)" "${ids[0]}"
    failed_list "offset=5"
    assert_equal "$(jget "$body" '[j["total"], j["items"]]')" '[5,[]]'
    failed_list "limit=200&offset=0"
    assert_equal "$(ids_of)" "$newest_first"
}

@test "?queue= lists one queue's failures" {
    start_gateway GW_PROCS=1
    start_runner -c 1 -Q celery,q2
    fail_one "on celery"
    local one=$ID
    submit fail '{"args":["on q2"],"queue":"q2"}'
    assert_equal "$status" 202
    local two=$ID
    wait_status "$two" FAILURE 100
    failed_list "queue=q2"
    assert_equal "$(jget "$body" '[j["total"], [[i["id"], i["queue"], i["error"]] for i in j["items"]]]')" \
        "[1,[[\"$two\",\"q2\",\"ValueError: on q2\"]]]"
    failed_list "queue=celery"
    assert_equal "$(jget "$body" '[j["total"], [i["id"] for i in j["items"]]]')" "[1,[\"$one\"]]"
    failed_list
    assert_equal "$(jget "$body" 'j["total"]')" 2
    assert_equal "$(ids_of)" "$two $one"
    failed_list "queue=nope"
    assert_equal "$(jget "$body" '[j["total"], j["items"]]')" '[0,[]]'
}

@test "a missing or other status, a bad limit or offset: 422 with the loc" {
    start_gateway GW_PROCS=1
    api GET /api/tasks
    assert_equal "$status" 422
    assert_equal "$(jget "$body" 'j["detail"][0]["loc"]')" '["query","status"]'
    local q
    for q in status=SUCCESS status=failure status=PENDING status=; do
        api GET "/api/tasks?$q"
        [ "$status" = 422 ] || { echo "$q: $status $body"; false; }
        assert_equal "$(jget "$body" 'j["detail"][0]["loc"]')" '["query","status"]'
    done
    for q in limit=0 limit=201 limit=abc limit=-1 limit=1.5 limit=; do
        api GET "/api/tasks?status=FAILURE&$q"
        [ "$status" = 422 ] || { echo "$q: $status $body"; false; }
        assert_equal "$(jget "$body" 'j["detail"][0]["loc"]')" '["query","limit"]'
    done
    for q in offset=-1 offset=abc offset=1.5; do
        api GET "/api/tasks?status=FAILURE&$q"
        [ "$status" = 422 ] || { echo "$q: $status $body"; false; }
        assert_equal "$(jget "$body" 'j["detail"][0]["loc"]')" '["query","offset"]'
    done
    failed_list "limit=1&offset=0"
    assert_equal "$body" '{"items":[],"total":0,"limit":1,"offset":0}'
}

@test "POST /api/tasks/{id}/retry queues a failed task again: off the list until it fails again, then on it once" {
    start_gateway GW_PROCS=1
    start_runner -c 1
    fail_one again
    local id=$ID
    failed_list
    assert_equal "$(ids_of)" "$id"
    stop_runner

    api POST "/api/tasks/$id/retry" --data ""
    assert_equal "$status" 202
    assert_equal "$body" "{\"id\":\"$id\",\"task\":\"tasks.fail\",\"status\":\"PENDING\"}"
    [[ $headers == *"location: /api/tasks/$id"* ]]
    # queued again, PENDING, off the failed list
    assert_equal "$(rcli llen celery)" 1
    assert_equal "$(jget "$(rcli lindex celery 0)" '[j["headers"]["id"], j["headers"]["retries"]]')" "[\"$id\",0]"
    api GET "/api/tasks/$id"
    assert_equal "$(jget "$body" 'j["status"]')" PENDING
    failed_list
    assert_equal "$(jget "$body" '[j["total"], j["items"]]')" '[0,[]]'
    # not failed now: a second retry is 404
    api POST "/api/tasks/$id/retry" --data ""
    assert_equal "$status" 404
    assert_equal "$body" '{"detail":"No failed task with this id"}'

    start_runner -c 1
    wait_status "$id" FAILURE 100
    assert_equal "$(result "$id")" '{"exc_type":"ValueError","exc_message":["again"],"exc_module":"builtins"}'
    failed_list
    assert_equal "$(ids_of)" "$id"
    assert_equal "$(rcli zcard qrun:failed:celery)" 1
    assert_equal "$(failures "$id")" 2
}

@test "a task that failed with no retries allowed succeeds when re-run by a runner that retries" {
    start_gateway GW_PROCS=1
    TASK_MAX_RETRIES=0 start_runner -c 1
    run -0 taskctl send flaky 1
    local id=$output
    wait_status "$id" FAILURE 100
    assert_equal "$(jget "$(meta "$id")" 'j["result"]["exc_message"]')" '["flaky: attempt 1 of 2 failed"]'
    failed_list
    assert_equal "$(ids_of)" "$id"
    stop_runner

    TASK_MAX_RETRIES=3 TASK_RETRY_BACKOFF_MS=50 start_runner -c 1
    api POST "/api/tasks/$id/retry" --data ""
    assert_equal "$status" 202
    assert_equal "$(jget "$body" '[j["id"], j["task"], j["status"]]')" "[\"$id\",\"tasks.flaky\",\"PENDING\"]"
    wait_status "$id" SUCCESS 100
    assert_equal "$(result "$id")" 1
    failed_list
    assert_equal "$(jget "$body" '[j["total"], j["items"]]')" '[0,[]]'
    assert_equal "$(rcli zcard qrun:failed:celery)" 0
}

@test "retry of an id that is not in a failed list: 404" {
    start_gateway GW_PROCS=1
    start_runner -c 1
    api POST "/api/tasks/$(cat /proc/sys/kernel/random/uuid)/retry" --data ""
    assert_equal "$status" 404
    assert_equal "$body" '{"detail":"No failed task with this id"}'
    submit add '{"args":[1,2]}'
    local ok=$ID
    wait_status "$ok" SUCCESS
    api POST "/api/tasks/$ok/retry" --data ""
    assert_equal "$status" 404
    assert_equal "$body" '{"detail":"No failed task with this id"}'
    assert_equal "$(result "$ok")" 3
    assert_equal "$(rcli llen celery)" 0
}

@test "the failed list is bounded: FAILED_MAX=5 keeps the 5 newest of 8; every kept message has a TTL" {
    start_gateway GW_PROCS=1 FAILED_MAX=5 FAILED_AGE=1000
    FAILED_MAX=5 FAILED_AGE=1000 start_runner -c 1
    local -a ids
    local i
    for i in 1 2 3 4 5 6 7 8; do
        fail_one "number $i"
        ids+=("$ID")
    done
    assert_equal "$(rcli zcard qrun:failed:celery)" 5
    failed_list
    assert_equal "$(jget "$body" 'j["total"]')" 5
    assert_equal "$(ids_of)" "${ids[7]} ${ids[6]} ${ids[5]} ${ids[4]} ${ids[3]}"
    # the trimmed ones cannot be re-run
    api POST "/api/tasks/${ids[0]}/retry" --data ""
    assert_equal "$status" 404
    local k ttl n=0
    for k in $(rcli --scan --pattern 'qrun:failedmsg:*'); do
        ttl=$(rcli ttl "$k")
        [ "$ttl" -gt 0 ] && [ "$ttl" -le 1000 ] || { echo "$k: ttl $ttl"; false; }
        n=$((n + 1))
    done
    [ "$n" -ge 5 ]
    for i in 3 4 5 6 7; do
        [ "$(rcli ttl "qrun:failedmsg:${ids[$i]}")" -gt 990 ]
    done
}

@test "the failed list is bounded in age: entries older than FAILED_AGE are dropped when the next one is added" {
    start_gateway GW_PROCS=1 FAILED_AGE=60
    FAILED_AGE=60 start_runner -c 1
    fail_one old1
    local old1=$ID
    fail_one old2
    local old2=$ID
    [ "$(rcli ttl "qrun:failedmsg:$old2")" -le 60 ]
    # as if they had failed 61 s ago (the score is the failure time in ms)
    local past=$(($(now_ms) - 61000))
    assert_equal "$(rcli zadd qrun:failed:celery XX CH "$past" "$old1" "$past" "$old2")" 2
    # ... and old1's message expired with it (TTL = FAILED_AGE); old2's
    # lingers (a shorter FAILED_AGE elsewhere): the list decides, not it
    assert_equal "$(rcli del "qrun:failedmsg:$old1")" 1
    # the list no longer shows them
    failed_list
    assert_equal "$(jget "$body" '[j["total"], j["items"]]')" '[0,[]]'
    fail_one new
    local new=$ID
    failed_list
    assert_equal "$(jget "$body" '[j["total"], [i["id"] for i in j["items"]]]')" "[1,[\"$new\"]]"
    # and the ZSET itself was trimmed by the add
    assert_equal "$(rcli zrange qrun:failed:celery 0 -1)" "$new"
    api POST "/api/tasks/$old1/retry" --data ""
    assert_equal "$status" 404
    api POST "/api/tasks/$old2/retry" --data ""
    assert_equal "$status" 404
    assert_equal "$(rcli llen celery)" 0
}

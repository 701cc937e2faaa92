#!/usr/bin/env bats
# Revoke (issue 4, queue part 2): DELETE /api/tasks/{id}[?terminate=true],
# stored in Redis (qrun:revoked:<id>, with a TTL) so it holds with no runner
# online, and Celery's revoke broadcast on /0.celery.pidbox both ways: a
# Python app.control.revoke() is honoured by our runner, our DELETE by a real
# Python Celery worker. Each test has its own redis, runners and gateway;
# teardown stops them all and fails on sanitizer reports in their logs.

load helpers
load queue

setup() {
    start_redis
}

teardown() {
    queue_teardown
}

# succeeded ID: how many times any runner of the test logged the task's success
succeeded() {
    local n=0 d c
    for d in "${RUNNER_DIRS[@]}"; do
        c=$(grep -c "Task tasks\.[a-z]*\[$1\] succeeded in" "$d/runner.log" || true)
        n=$((n + c))
    done
    echo "$n"
}

# pyq ARGS...: tests/celery/queue_client.py (the Celery client) on CELERY_URL
pyq() {
    (cd "$CELERY_DIR" && PYTHONPATH=$CELERY_DIR exec "$PY" queue_client.py "$@")
}

# pidbox_listeners: subscribers of Celery's broadcast channel (by name or pattern)
pidbox_listeners() {
    local s p
    s=$(rcli pubsub numsub /0.celery.pidbox | sed -n 2p)
    p=$(rcli pubsub numpat)
    echo $((s + p))
}

REVOKED_META='{"exc_type":"TaskRevokedError","exc_message":["revoked"],"exc_module":"celery.exceptions"}'

# terminated ID: REVOKED, the reason saying it was terminated
terminated() {
    [ "$(meta_status "$1")" = REVOKED ] &&
        [ "$(jget "$(meta "$1")" '"terminated" in str(j["result"]["exc_message"])')" = true ]
}

@test "DELETE of a queued task with no runner online: 202 REVOKED; GET shows it; a runner started later never runs it" {
    start_gateway GW_PROCS=1 RESULT_EXPIRES=600
    submit add '{"args":[1,2]}'
    assert_equal "$status" 202
    local id=$ID
    api DELETE "/api/tasks/$id"
    assert_equal "$status" 202
    assert_equal "$body" "{\"id\":\"$id\",\"status\":\"REVOKED\",\"terminate\":false}"
    api GET "/api/tasks/$id"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[j["id"], j["status"], j["result"]]')" \
        "[\"$id\",\"REVOKED\",$REVOKED_META]"
    [[ $(jget "$body" 'j["error"]') == TaskRevokedError* ]]
    # stored in Redis with a TTL (RESULT_EXPIRES)
    [ -n "$(rcli get "qrun:revoked:$id")" ]
    local ttl
    ttl=$(rcli ttl "qrun:revoked:$id")
    [ "$ttl" -gt 590 ] && [ "$ttl" -le 600 ] || false

    submit add '{"args":[2,3]}'
    local after=$ID
    start_runner -c 1
    wait_status "$after" SUCCESS
    assert_equal "$(meta_status "$id")" REVOKED
    assert_equal "$(result "$id")" "$REVOKED_META"
    assert_equal "$(succeeded "$id")" 0
    assert_equal "$(rcli llen celery)" 0
    assert_equal "$(inflight_count)" 0
}

@test "DELETE twice: 202 both times; an id nobody knows is revoked too" {
    start_gateway GW_PROCS=1
    submit add '{"args":[1,2]}'
    local id=$ID
    api DELETE "/api/tasks/$id"
    assert_equal "$status" 202
    api DELETE "/api/tasks/$id"
    assert_equal "$status" 202
    assert_equal "$body" "{\"id\":\"$id\",\"status\":\"REVOKED\",\"terminate\":false}"
    assert_equal "$(meta_status "$id")" REVOKED
    # a Python producer stores no PENDING: its ids are revocable before any meta
    local unknown
    unknown=$(cat /proc/sys/kernel/random/uuid)
    api DELETE "/api/tasks/$unknown?terminate=false"
    assert_equal "$status" 202
    assert_equal "$body" "{\"id\":\"$unknown\",\"status\":\"REVOKED\",\"terminate\":false}"
    [ -n "$(rcli get "qrun:revoked:$unknown")" ]
    [ "$(rcli ttl "qrun:revoked:$unknown")" -gt 0 ]
}

@test "DELETE of a delayed (countdown) task: it never runs once due" {
    start_gateway GW_PROCS=1
    start_runner -c 1
    submit add '{"args":[1,2],"countdown":1}'
    assert_equal "$status" 202
    local id=$ID
    submit add '{"args":[3,4],"countdown":1.5}'
    local after=$ID
    api DELETE "/api/tasks/$id"
    assert_equal "$status" 202
    wait_status "$after" SUCCESS 60
    assert_equal "$(meta_status "$id")" REVOKED
    assert_equal "$(succeeded "$id")" 0
    assert_equal "$(rcli zcard qrun:scheduled:celery)" 0
    assert_equal "$(rcli llen celery)" 0
    assert_equal "$(inflight_count)" 0
}

@test "DELETE ?terminate=true of a running tasks.sleep(30): REVOKED terminated in a couple of seconds; the worker replaced; the runner serves on" {
    start_gateway GW_PROCS=1
    start_runner -c 1
    submit sleep '{"args":[30]}'
    local id=$ID worker
    wait_status "$id" STARTED 50
    worker=$(jget "$(meta "$id")" 'j["result"]["pid"]')
    assert_equal "$(ps -o ppid= -p "$worker" | tr -d ' ')" "$RUNNER_PID"
    SECONDS=0
    api DELETE "/api/tasks/$id?terminate=true"
    assert_equal "$status" 202
    assert_equal "$(jget "$body" '[j["id"], j["terminate"]]')" "[\"$id\",true]"
    retry 30 0.1 terminated "$id" || { meta "$id"; false; }
    retry 30 0.1 gone "$worker"
    [ "$SECONDS" -le 3 ]
    api GET "/api/tasks/$id"
    assert_equal "$(jget "$body" 'j["status"]')" REVOKED
    [[ $(jget "$body" 'j["error"]') == *terminated* ]]
    # a new worker, and it serves
    local now
    retry 30 0.1 eval '[ -n "$(runner_children "$RUNNER_PID")" ]'
    now=$(runner_children "$RUNNER_PID")
    [[ " $now " != *" $worker "* ]]
    kill -0 "$RUNNER_PID"
    run -0 taskctl call add 20 22 --timeout 10
    assert_output 42
    assert_equal "$(succeeded "$id")" 0
    assert_equal "$(meta_status "$id")" REVOKED
    assert_equal "$(inflight_count)" 0
    assert_equal "$(rcli llen celery)" 0
}

@test "DELETE without terminate of a running task: 202 STARTED; it runs to its end (Celery's revoke), a redelivery would be dropped" {
    start_gateway GW_PROCS=1
    start_runner -c 1
    submit sleep '{"args":[1]}'
    local id=$ID
    wait_status "$id" STARTED 50
    api DELETE "/api/tasks/$id"
    assert_equal "$status" 202
    assert_equal "$(jget "$body" '[j["status"], j["terminate"]]')" '["STARTED",false]'
    # the revoke is recorded for any later delivery of this id
    assert_equal "$(rcli get "qrun:revoked:$id")" 1
    wait_status "$id" SUCCESS 50
    assert_equal "$(succeeded "$id")" 1
    api DELETE "/api/tasks/$id"
    assert_equal "$status" 409
}

@test "DELETE of a finished task: 409, its result untouched" {
    start_gateway GW_PROCS=1
    start_runner -c 1
    submit add '{"args":[1,2]}'
    local ok=$ID
    submit fail '{"args":["boom"]}'
    local bad=$ID
    wait_status "$ok" SUCCESS
    wait_status "$bad" FAILURE
    local before
    before=$(meta "$ok")
    api DELETE "/api/tasks/$ok"
    assert_equal "$status" 409
    assert_equal "$body" '{"detail":"Task already finished: SUCCESS"}'
    assert_equal "$(meta "$ok")" "$before"
    api DELETE "/api/tasks/$bad?terminate=true"
    assert_equal "$status" 409
    assert_equal "$body" '{"detail":"Task already finished: FAILURE"}'
    assert_equal "$(meta_status "$bad")" FAILURE
    assert_equal "$(rcli exists "qrun:revoked:$ok")" 0
}

@test "a bad terminate value is 422 with its loc" {
    start_gateway GW_PROCS=1
    submit add '{"args":[1,2]}'
    local id=$ID v
    for v in yes 2 abc maybe; do
        api DELETE "/api/tasks/$id?terminate=$v"
        assert_equal "$status" 422
        assert_equal "$(jget "$body" 'j["detail"][0]["loc"]')" '["query","terminate"]'
    done
    # nothing was revoked by them
    assert_equal "$(meta_status "$id")" PENDING
    assert_equal "$(rcli exists "qrun:revoked:$id")" 0
}

@test "Celery's app.control.revoke(id) reaches our runner, and holds for a runner started later" {
    # our runner listens on the broadcast channel, but does not consume q2
    start_runner -c 1 -Q q1
    retry 100 0.1 eval '[ "$(pidbox_listeners)" -ge 1 ]'
    run -0 --separate-stderr pyq send_q q2 2 3
    local id=$output
    assert_equal "$(rcli llen q2)" 1
    run -0 --separate-stderr pyq revoke "$id"
    # stored by our runner, so it outlives the broadcast
    retry 50 0.1 eval '[ "$(rcli exists "qrun:revoked:$id")" = 1 ]'
    [ "$(rcli ttl "qrun:revoked:$id")" -gt 0 ]

    start_runner -c 1 -Q q2
    run -0 --separate-stderr pyq send_q q2 1 1
    local after=$output
    wait_status "$after" SUCCESS
    wait_status "$id" REVOKED 20
    assert_equal "$(result "$id")" "$REVOKED_META"
    assert_equal "$(succeeded "$id")" 0
    assert_equal "$(rcli llen q2)" 0
    assert_equal "$(inflight_count)" 0
}

@test "Celery's app.control.revoke(id, terminate=True) stops the task running on our runner" {
    start_runner -c 1
    retry 100 0.1 eval '[ "$(pidbox_listeners)" -ge 1 ]'
    run -0 --separate-stderr pyq send_sleep 30
    local id=$output worker
    wait_status "$id" STARTED 50
    worker=$(jget "$(meta "$id")" 'j["result"]["pid"]')
    SECONDS=0
    run -0 --separate-stderr pyq revoke "$id" terminate
    retry 30 0.1 terminated "$id" || { meta "$id"; false; }
    retry 30 0.1 gone "$worker"
    [ "$SECONDS" -le 4 ]
    run -0 taskctl call add 1 1 --timeout 10
    assert_output 2
    assert_equal "$(succeeded "$id")" 0
}

@test "our DELETE is honoured by a real Python Celery worker: Discarding revoked task" {
    start_gateway GW_PROCS=1
    start_celery_worker
    retry 100 0.1 eval '[ "$(pidbox_listeners)" -ge 1 ]'
    # a task the Python worker holds (received, waiting for its eta) is
    # revoked by DELETE. (Its solo pool reads broadcasts only between tasks,
    # so the worker is idle meanwhile, as a prefork worker's main process is.)
    run -0 --separate-stderr pyq send_countdown 3 1 2
    local id=$output
    retry 50 0.1 grep -qF "Task tasks.add[$id] received" "$CELERY_LOG"
    api DELETE "/api/tasks/$id"
    assert_equal "$status" 202
    retry 50 0.1 grep -qF "Tasks flagged as revoked: $id" "$CELERY_LOG" || { cat "$CELERY_LOG"; false; }
    retry 80 0.1 grep -qF "Discarding revoked task: tasks.add[$id]" "$CELERY_LOG" || { cat "$CELERY_LOG"; false; }
    run -1 grep -F "Task tasks.add[$id] succeeded" "$CELERY_LOG"
    assert_equal "$(meta_status "$id")" REVOKED
    assert_equal "$(rcli llen celery)" 0
    # and it serves on
    submit add '{"args":[2,2]}'
    wait_status "$ID" SUCCESS 50
    assert_equal "$(result "$ID")" 4
}

@test "a revoke outlives a wait longer than RESULT_EXPIRES: the delayed task still never runs" {
    # results (and revokes) live 2 s here; the task waits 4 s
    start_gateway GW_PROCS=1 RESULT_EXPIRES=2
    RESULT_EXPIRES=2 start_runner -c 1
    submit add '{"args":[1,2],"countdown":4}'
    local id=$ID
    [ "$(rcli pttl "qrun:eta:$id")" -gt 3000 ]
    api DELETE "/api/tasks/$id"
    assert_equal "$status" 202
    # the revoke lasts until the eta, plus RESULT_EXPIRES
    [ "$(rcli ttl "qrun:revoked:$id")" -ge 5 ]
    submit add '{"args":[3,4],"countdown":4.5}'
    local after=$ID
    wait_status "$after" SUCCESS 100
    assert_equal "$(succeeded "$id")" 0
    run -0 grep -c "Discarding revoked task: tasks.add\[$id\]" "$RUNNER_LOG"
    assert_output 1
    assert_equal "$(rcli zcard qrun:scheduled:celery)" 0
    assert_equal "$(inflight_count)" 0
}

#!/usr/bin/env bats
# Our queue and real Celery (Debian's, /usr/bin/python3) on one redis: the
# unmodified Celery client gets results and exceptions from our runner, and a
# real Python Celery worker runs what our HTTP route and taskctl submit. The
# Celery app is tests/celery/tasks.py, the same registry as the runner's.

load helpers
load queue

setup() {
    start_redis
}

teardown() {
    queue_teardown
}

# pyclient ARGS...: tests/celery/client.py (the Celery client) on CELERY_URL
pyclient() {
    (cd "$CELERY_DIR" && PYTHONPATH=$CELERY_DIR exec "$PY" client.py "$@")
}

@test "unmodified add.delay(4, 4).get(timeout=10) is 8, computed by our runner" {
    start_runner -c 1
    run -0 --separate-stderr pyclient add 4 4
    [[ $output =~ ^([0-9a-f-]{36})\ 8$ ]]
    local id=${BASH_REMATCH[1]}
    run -0 grep -cF "Task tasks.add[$id] succeeded in " "$RUNNER_LOG"
    assert_output 1
}

@test "a FAILURE stored by our runner raises ValueError in Celery's .get()" {
    start_runner -c 1
    run -0 --separate-stderr pyclient fail boom
    [[ $output =~ ^[0-9a-f-]{36}\ builtins\.ValueError\ \[\'boom\'\]\ False$ ]]
}

@test "an unknown task run by our runner raises celery.exceptions.NotRegistered in .get()" {
    start_runner -c 1
    run -0 --separate-stderr pyclient unknown tasks.nope
    [[ $output =~ ^[0-9a-f-]{36}\ celery\.exceptions\.NotRegistered\ \[\'tasks\.nope\'\]\ True$ ]]
}

@test "a task the Celery client pushes is 404 over HTTP until our runner claims it, then its result" {
    start_gateway GW_PROCS=1
    run -0 --separate-stderr pyclient send 20 22
    [[ $output =~ $UUID_RE ]]
    local id=$output
    api GET "/api/tasks/$id"
    assert_equal "$status" 404
    assert_equal "$body" '{"detail":"Task not found"}'
    start_runner -c 1
    api GET "/api/tasks/$id?wait=10"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[j["id"], j["task"], j["status"], j["result"]]')" \
        "[\"$id\",\"tasks.add\",\"SUCCESS\",42]"
}

@test "POST /api/tasks/add is run by a real Python Celery worker; GET ?wait=10 reads its result" {
    start_gateway GW_PROCS=1
    start_celery_worker
    api POST /api/tasks/add -H 'Content-Type: application/json' --data-binary '{"args":[4,4]}'
    assert_equal "$status" 202
    local id
    id=$(jget "$body" 'j["id"]')
    api GET "/api/tasks/$id?wait=10"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[j["id"], j["status"], j["result"]]')" "[\"$id\",\"SUCCESS\",8]"
    [[ $(jget "$body" 'j["date_done"]') =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T ]]
    run -0 grep -cF "Task tasks.add[$id] succeeded in " "$CELERY_LOG"
    assert_output 1

    # and its FAILURE, as Python stores it (with a traceback), reads the same way
    api POST /api/tasks/fail -H 'Content-Type: application/json' --data-binary '{"args":["boom"]}'
    assert_equal "$status" 202
    id=$(jget "$body" 'j["id"]')
    api GET "/api/tasks/$id?wait=10"
    assert_equal "$(jget "$body" '[j["status"], j["result"], j["error"]]')" \
        '["FAILURE",{"exc_type":"ValueError","exc_message":["boom"],"exc_module":"builtins"},"ValueError: boom"]'
    # no runner of ours took part
    assert_equal "${#RUNNER_PIDS[@]}" 0
}

@test "taskctl call is run by a real Python Celery worker" {
    start_celery_worker
    run -0 --separate-stderr taskctl call add 20 22
    assert_output 42
    run -0 --separate-stderr taskctl call xsum '[1,2,3]'
    assert_output 6
    run -1 --separate-stderr taskctl call fail boom
    assert_equal "$stderr" "ValueError: boom"
    run -0 grep -c 'Task tasks.add\[.*\] succeeded in ' "$CELERY_LOG"
    assert_output 1
}

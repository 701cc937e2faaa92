#!/usr/bin/env bats
# bin/queue-runner and bin/taskctl on a private redis: results, failures,
# states, volume, and what happens to tasks when workers, the runner or Redis
# die or are stopped. Each test has its own redis and runners, stopped in
# teardown (which also fails on sanitizer reports in the runner logs).

load helpers
load queue

setup() {
    start_redis
}

teardown() {
    queue_teardown
}

# results FILE: tests/celery/results.py over enqueue.py's ids
results() { "$PY" "$CELERY_DIR/results.py" "$1"; }

# all_done FILE N: every one of the N enqueued tasks is SUCCESS and right
all_done() { [ "$(results "$1")" = "success=$2 wrong=0 missing=0 other=0" ]; }

# push_raw TEXT: LPUSH a raw message onto `celery`
push_raw() { rcli lpush celery "$1" >/dev/null; }

# unbounded_keys: keys without a TTL that are not a bounded kind (spec:
# queue lists, the qrun:runners zset, qrun:inflight lists)
unbounded_keys() {
    local k keys
    keys=$(rcli --scan) || return 1
    sort -u <<<"$keys" | while IFS= read -r k; do
        [ "$(rcli ttl "$k")" -gt 0 ] && continue
        case "$k:$(rcli type "$k")" in
        # queue lists and their scheduled sets hold work; the queue-name set
        # and the failed lists are bounded by count (FAILED_MAX) and age
        celery:list | $'celery\x06\x16'[369]:list | qrun:runners:zset | qrun:inflight:*:list) ;;
        qrun:queues:set | qrun:scheduled:*:zset | qrun:failed:*:zset) ;;
        *) echo "$k ($(rcli type "$k"), ttl $(rcli ttl "$k"))" ;;
        esac
    done
}

@test "taskctl call add 4 4 prints 8, run by the runner" {
    start_runner -c 1
    run -0 --separate-stderr taskctl call add 4 4
    assert_output 8
    run -0 taskctl call xsum '[1,2,3.5]'
    assert_output 6.5
    run -0 taskctl call mul 6 7
    assert_output 42
    run -0 grep -cE 'queue-runner - INFO - Task tasks\.add\[[0-9a-f-]{36}\] succeeded in [0-9.]+s: 8 request_id=[0-9a-f-]{36}$' "$RUNNER_LOG"
    assert_output 1
}

@test "a float result is JSON as Python writes it: 0.1, not 0.10000000000000001" {
    start_runner -c 1
    run -0 taskctl call sleep 0.1
    assert_output 0.1
    run -0 taskctl send xsum '[0.05,0.05]'
    local id=$output
    wait_status "$id" SUCCESS
    # what the runner stored: Python's json (Celery's serializer) writes the
    # shortest repr that reads back the same double
    [[ $(meta "$id") =~ \"result\":\ ?0\.1[,}] ]]
}

@test "taskctl send prints the id; taskctl status shows the stored meta, PENDING first" {
    run -0 taskctl send add 1 2
    [[ $output =~ $UUID_RE ]]
    local id=$output
    run -0 taskctl status "$id"
    assert_equal "$(jget "$output" '[j["status"], j["task_id"], j["name"], j["result"], j["date_done"]]')" \
        "[\"PENDING\",\"$id\",\"tasks.add\",null,null]"

    RESULT_EXPIRES=600 start_runner -c 1
    wait_status "$id" SUCCESS
    run -0 taskctl status "$id"
    assert_equal "$(jget "$output" '[j["status"], j["task_id"], j["name"], j["result"], j["traceback"], j["children"]]')" \
        "[\"SUCCESS\",\"$id\",\"tasks.add\",3,null,[]]"
    [[ $(jget "$output" 'j["date_done"]') =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+$ ]]
    local ttl
    ttl=$(rcli ttl "celery-task-meta-$id")
    [ "$ttl" -gt 590 ] && [ "$ttl" -le 600 ] || fail "result ttl $ttl"

    run -1 taskctl status "$(cat /proc/sys/kernel/random/uuid)"
}

@test "an unknown task is FAILURE NotRegistered, as Celery stores it" {
    start_runner -c 1
    run -1 --separate-stderr taskctl call tasks.nope 1
    [[ $stderr == *NotRegistered* ]]
    assert_output ""
    run -0 taskctl send tasks.nope
    local id=$output
    wait_status "$id" FAILURE
    assert_equal "$(jget "$(meta "$id")" 'j["result"]')" \
        '{"exc_type":"NotRegistered","exc_message":["tasks.nope"],"exc_module":"celery.exceptions"}'
}

@test "tasks.fail is FAILURE ValueError; a wrong arity is TypeError" {
    start_runner -c 1
    run -1 --separate-stderr taskctl call fail boom
    assert_output ""
    assert_equal "$stderr" "ValueError: boom"
    run -0 taskctl send fail 'it broke'
    local id=$output
    wait_status "$id" FAILURE
    assert_equal "$(jget "$(meta "$id")" '[j["status"], j["result"], j["task_id"], j["name"]]')" \
        "[\"FAILURE\",{\"exc_type\":\"ValueError\",\"exc_message\":[\"it broke\"],\"exc_module\":\"builtins\"},\"$id\",\"tasks.fail\"]"
    run -0 grep -F "Task tasks.fail[$id] failed: ValueError('it broke')" "$RUNNER_LOG"

    run -1 --separate-stderr taskctl call add 1
    [[ $stderr == TypeError* ]]
    run -1 --separate-stderr taskctl call add 1 2 3
    [[ $stderr == TypeError* ]]
    run -1 --separate-stderr taskctl call add '"a"' 1
    [[ $stderr == TypeError* ]]
}

@test "taskctl call with no runner times out: exit 2, after --timeout" {
    SECONDS=0
    run -2 --separate-stderr taskctl call add 1 1 --timeout 1
    [ "$SECONDS" -lt 4 ]
    assert_output ""
    [ -n "$stderr" ]
    # the task is still queued for a runner to come
    assert_equal "$(rcli llen celery)" 1
}

@test "STARTED is stored while a task runs, with the worker's pid" {
    start_runner -c 1
    run -0 taskctl send sleep 1.5
    local id=$output
    wait_status "$id" STARTED
    local m pid
    m=$(meta "$id")
    pid=$(jget "$m" 'j["result"]["pid"]')
    assert_equal "$(ps -o ppid= -p "$pid" | tr -d ' ')" "$RUNNER_PID"
    assert_equal "$(jget "$m" '[j["task_id"], j["name"], j["date_done"], isinstance(j["result"]["hostname"], str)]')" \
        "[\"$id\",\"tasks.sleep\",null,true]"
    wait_status "$id" SUCCESS 50
    assert_equal "$(jget "$(meta "$id")" 'j["result"]')" 1.5
}

@test "10,000 tasks: 10,000 distinct results, all SUCCESS and right, nothing left behind" {
    local ids="$BATS_TEST_TMPDIR/ids"
    "$PY" "$CELERY_DIR/enqueue.py" 10000 "$ids"
    assert_equal "$(rcli llen celery)" 10000
    SECONDS=0
    start_runner -c 4
    retry 120 0.5 all_done "$ids" 10000 || { results "$ids"; false; }
    echo "# 10,000 tasks in ${SECONDS}s" >&3
    assert_equal "$(rcli --scan --pattern 'celery-task-meta-*' | sort -u | wc -l)" 10000
    assert_equal "$(rcli llen celery)" 0
    assert_equal "$(inflight_count)" 0
    # each ran once
    assert_equal "$(grep -c '] succeeded in ' "$RUNNER_LOG")" 10000
}

@test "a worker killed with SIGKILL mid-task: the task runs again and has one result" {
    start_runner -c 1
    run -0 taskctl send sleep 2
    local id=$output
    wait_status "$id" STARTED
    local worker
    worker=$(jget "$(meta "$id")" 'j["result"]["pid"]')
    assert_equal "$(ps -o ppid= -p "$worker" | tr -d ' ')" "$RUNNER_PID"
    SECONDS=0
    kill -KILL "$worker"
    wait_status "$id" SUCCESS 80
    [ "$SECONDS" -lt 7 ]
    assert_equal "$(jget "$(meta "$id")" 'j["result"]')" 2
    kill -0 "$RUNNER_PID"
    # a new worker took its place
    local now
    now=$(runner_children "$RUNNER_PID")
    [ -n "$now" ] && [[ " $now " != *" $worker "* ]] || fail "worker $worker not replaced: '$now'"
    assert_equal "$(succeeded_lines "$RUNNER_LOG" "$id")" 1
    assert_equal "$(rcli --scan --pattern "celery-task-meta-$id" | sort -u | wc -l)" 1
    assert_equal "$(rcli llen celery)" 0
    assert_equal "$(inflight_count)" 0
}

@test "the runner killed with SIGKILL mid-task: its workers die, a new runner re-runs the task after the lease" {
    RUNNER_LEASE=3 start_runner -c 1
    local first=$RUNNER_PID kids
    run -0 taskctl send sleep 2
    local id=$output
    wait_status "$id" STARTED
    kids=$(runner_children "$first")
    [ -n "$kids" ]
    kill -KILL "$first"
    SECONDS=0
    wait "$first" || true
    for k in $kids; do retry 50 0.1 gone "$k"; done
    # the task is held by the dead runner, not lost
    assert_equal "$(inflight_count)" 1
    assert_equal "$(meta_status "$id")" STARTED

    RUNNER_LEASE=3 start_runner -c 1
    wait_status "$id" SUCCESS 150
    # lease (3 s) + sweep (1 s) + the task (2 s) + slack
    [ "$SECONDS" -lt 10 ]
    assert_equal "$(jget "$(meta "$id")" 'j["result"]')" 2
    assert_equal "$(succeeded_lines "$RUNNER_LOG" "$id")" 1
    assert_equal "$(inflight_count)" 0
    assert_equal "$(rcli llen celery)" 0
    # the dead runner is reaped from the registry
    retry 50 0.1 eval '[ "$(rcli zcard qrun:runners)" = 1 ]'
}

@test "SIGTERM: the running task finishes, queued tasks stay queued, exit 0" {
    start_runner -c 1
    run -0 taskctl send sleep 1.5
    local id=$output i
    wait_status "$id" STARTED
    local -a queued
    for i in 1 2 3 4 5; do
        run -0 taskctl send add "$i" "$i"
        queued+=("$output")
    done
    kill -TERM "$RUNNER_PID"
    local rc=0
    wait "$RUNNER_PID" || rc=$?
    assert_equal "$rc" 0
    assert_equal "$(meta_status "$id")" SUCCESS
    assert_equal "$(jget "$(meta "$id")" 'j["result"]')" 1.5
    assert_equal "$(rcli llen celery)" 5
    assert_equal "$(inflight_count)" 0
    for i in "${queued[@]}"; do
        assert_equal "$(meta_status "$i")" PENDING
    done
    # they are intact: the next runner runs them
    start_runner -c 1
    for i in 1 2 3 4 5; do
        wait_status "${queued[$((i - 1))]}" SUCCESS
        assert_equal "$(jget "$(meta "${queued[$((i - 1))]}")" 'j["result"]')" $((2 * i))
    done
}

@test "Redis restarted under load: the runner resumes by itself and every task completes" {
    local ids="$BATS_TEST_TMPDIR/ids"
    start_runner -c 2
    local runner=$RUNNER_PID
    "$PY" "$CELERY_DIR/enqueue.py" 200 "$ids" sleep:0.02
    # tasks are flowing
    retry 100 0.05 eval '[ "$(rcli --scan --pattern "celery-task-meta-*" | wc -l)" -ge 20 ]'
    [ "$(rcli llen celery)" -gt 0 ]
    restart_redis
    "$PY" "$CELERY_DIR/enqueue.py" 50 "$ids"
    retry 150 0.2 all_done "$ids" 250 || { results "$ids"; false; }
    kill -0 "$runner"
    assert_equal "$RUNNER_PID" "$runner"
    assert_equal "$(rcli llen celery)" 0
    assert_equal "$(inflight_count)" 0
    run -0 grep -c ' - WARNING - ' "$RUNNER_LOG"
}

@test "-Q: the runner consumes the queues it is given, and only those" {
    local ids="$BATS_TEST_TMPDIR/ids" other="$BATS_TEST_TMPDIR/other"
    "$PY" "$CELERY_DIR/enqueue.py" 3 "$ids"
    "$PY" "$CELERY_DIR/enqueue.py" 3 "$other" mix other
    start_runner -c 1 -Q other
    retry 100 0.1 all_done "$other" 3
    assert_equal "$(results "$ids")" "success=0 wrong=0 missing=3 other=0"
    assert_equal "$(rcli llen celery)" 3
    assert_equal "$(rcli llen other)" 0
}

@test "unreadable messages do not stop the runner; one with an id ends as FAILURE" {
    start_runner -c 1
    local id
    id=$(cat /proc/sys/kernel/random/uuid)
    push_raw 'not json at all'
    push_raw '{"body":"W10=","headers":{}}'
    # text/plain is not Celery's JSON serializer: refused, as Python's worker
    # refuses it, but the id is known so the client is told
    push_raw "$("$PY" -c 'import json, sys; sys.path.insert(0, sys.argv[1]); import enqueue
m = json.loads(enqueue.message("tasks.add", [1, 2], sys.argv[2]))
m["content-type"] = "text/plain"
print(json.dumps(m))' "$CELERY_DIR" "$id")"
    run -0 taskctl call add 2 2
    assert_output 4
    wait_status "$id" FAILURE
    assert_equal "$(jget "$(meta "$id")" 'j["result"]["exc_type"]')" ContentDisallowed
    kill -0 "$RUNNER_PID"
    assert_equal "$(rcli llen celery)" 0
    assert_equal "$(inflight_count)" 0
}

@test "every key the queue leaves has a TTL, or is a queue list, the runner set or an in-flight list" {
    start_runner -c 2
    run -0 taskctl call add 1 2
    run -1 taskctl call fail x
    run -1 taskctl call tasks.nope
    run -0 taskctl call sleep 0.1
    run -0 taskctl send add 5 5
    local sent=$output
    wait_status "$sent" SUCCESS
    # the runner is registered, with its pid
    local rid
    rid=$(rcli zrange qrun:runners 0 -1)
    assert_equal "$(rcli hget "qrun:runner:$rid" pid)" "$RUNNER_PID"
    run -0 unbounded_keys
    assert_output ""
    stop_runner
    run -0 unbounded_keys
    assert_output ""
    # and a few things are left to check against
    [ "$(rcli dbsize)" -ge 5 ]
}

@test "a bad setting stops the runner at once with a clear message" {
    run -1 timeout 10 env REDIS_URL="$REDIS_URL" RUNNER_LEASE=abc "$GW_BIN/queue-runner"
    assert_output --partial RUNNER_LEASE
    assert_output --partial abc

    run -2 timeout 10 env REDIS_URL="$REDIS_URL" "$GW_BIN/queue-runner" -c 0
    [[ $output =~ (-c|concurrency) ]]

    run -1 timeout 10 env -u REDIS_URL "$GW_BIN/queue-runner"
    assert_output --partial REDIS_URL

    run -1 timeout 10 env REDIS_URL=http://127.0.0.1/ "$GW_BIN/queue-runner"
    assert_output --partial REDIS_URL

    run -1 timeout 10 env REDIS_URL="$REDIS_URL" RUNNER_DRAIN=-1 "$GW_BIN/queue-runner"
    assert_output --partial RUNNER_DRAIN

    run -2 timeout 10 env REDIS_URL="$REDIS_URL" "$GW_BIN/queue-runner" --bogus
    assert_output --partial usage
    # none of them registered as a runner
    assert_equal "$(rcli zcard qrun:runners)" 0
}

@test "a dead runner's claims go back in their order: the oldest claim runs first again" {
    local ids="$BATS_TEST_TMPDIR/ids"
    # three claims of a runner that died long ago, as claims leave them:
    # each pushed on the left of its in-flight list, the oldest rightmost
    "$PY" "$CELERY_DIR/enqueue.py" 3 "$ids"
    for _ in 1 2 3; do
        rcli lmove celery "qrun:inflight:dead@host:1:x:0" right left >/dev/null
    done
    rcli zadd qrun:runners 1 "dead@host:1:x" >/dev/null
    rcli hset "qrun:runner:dead@host:1:x" concurrency 1 >/dev/null
    start_runner -c 1
    retry 100 0.1 all_done "$ids" 3
    run -0 rcli zscore qrun:runners "dead@host:1:x"
    assert_output "" # forgotten
    [ "$(rcli exists "qrun:runner:dead@host:1:x")" = 0 ]
    # the run order in the log is the claim order (enqueue.py's order)
    run bash -c "grep -o 'Task tasks\.[a-z]*\[[^]]*\] succeeded' '$RUNNER_LOG' | sed 's/.*\[\(.*\)\].*/\1/'"
    [ "$output" = "$(cut -d' ' -f1 "$ids")" ]
}

@test "a claimed message whose routing key names one of our keys, or a key of another type, goes back to celery" {
    local ids="$BATS_TEST_TMPDIR/ids" ids2="$BATS_TEST_TMPDIR/ids2"
    local inflight="qrun:inflight:dead@host:2:y:0"
    # routing key = the in-flight list itself: put back there, a requeue
    # would never end (Redis stuck in the script)
    "$PY" "$CELERY_DIR/enqueue.py" 1 "$ids" mix "$inflight"
    # routing key = a key that is a string by the time it is put back
    "$PY" "$CELERY_DIR/enqueue.py" 1 "$ids2" mix not-a-list
    rcli lmove not-a-list "$inflight" right left >/dev/null
    rcli set not-a-list x >/dev/null
    [ "$(rcli llen "$inflight")" = 2 ]
    rcli zadd qrun:runners 1 "dead@host:2:y" >/dev/null
    rcli hset "qrun:runner:dead@host:2:y" concurrency 1 >/dev/null
    start_runner -c 1
    retry 100 0.1 all_done "$ids" 1
    retry 100 0.1 all_done "$ids2" 1
    [ "$(rcli llen "$inflight")" = 0 ]
    [ "$(rcli get not-a-list)" = x ]
    [ "$(rcli ping)" = PONG ] # Redis is not stuck in a script
}

#!/usr/bin/env bats
# Time and memory limits, and crashing tasks (issue 4, queue part 2): the
# runner's supervisor enforces TASK_TIME_LIMIT (SIGKILL: FAILURE
# TimeLimitExceeded), TASK_SOFT_TIME_LIMIT (the task is interrupted:
# SoftTimeLimitExceeded), a message's own headers.timelimit [hard, soft]
# (Celery's apply_async(time_limit=, soft_time_limit=)), TASK_MAX_MEMORY_MB
# (MemoryError), and a worker that crashes mid-task fails that task once
# (WorkerLostError) instead of losing it or re-running it forever. Each test
# has its own redis and runners; teardown stops them and fails on sanitizer
# reports. (A worker killed from outside still re-runs its task:
# queue_runner.bats.)

load helpers
load queue

setup() {
    start_redis
}

teardown() {
    queue_teardown
}

pyq() {
    (cd "$CELERY_DIR" && PYTHONPATH=$CELERY_DIR exec "$PY" queue_client.py "$@")
}

# worker_of ID: the pid of the worker running the task (its STARTED meta)
worker_of() { jget "$(meta "$1")" 'j["result"]["pid"]'; }

# in_failed ID: the task is in the failed list of queue celery
in_failed() { [ -n "$(rcli zscore qrun:failed:celery "$1")" ]; }

# a new worker took the place of $1 under runner $RUNNER_PID
replaced() {
    local now
    now=$(runner_children "$RUNNER_PID")
    [ -n "$now" ] && [[ " $now " != *" $1 "* ]]
}

@test "TASK_TIME_LIMIT=2: tasks.sleep(30) is FAILURE TimeLimitExceeded after 2 s; the worker is replaced and the next task runs" {
    TASK_TIME_LIMIT=2 start_runner -c 1
    run -0 taskctl send sleep 30
    local id=$output worker t0 t1
    wait_status "$id" STARTED 50
    t0=$(now_ms)
    worker=$(worker_of "$id")
    wait_status "$id" FAILURE 60
    t1=$(now_ms)
    [ $((t1 - t0)) -ge 1500 ] && [ $((t1 - t0)) -lt 4000 ] || { echo "FAILURE after $((t1 - t0)) ms"; false; }
    assert_equal "$(jget "$(meta "$id")" '[j["result"]["exc_type"], j["result"]["exc_module"]]')" \
        '["TimeLimitExceeded","billiard.exceptions"]'
    retry 30 0.1 gone "$worker"
    retry 30 0.1 replaced "$worker"
    run -0 taskctl call add 2 2 --timeout 10
    assert_output 4
    kill -0 "$RUNNER_PID"
    in_failed "$id"
    assert_equal "$(inflight_count)" 0
    assert_equal "$(rcli llen celery)" 0
    # one failure, no re-run
    run -1 grep -F "Task tasks.sleep[$id] succeeded" "$RUNNER_LOG"
}

@test "TASK_SOFT_TIME_LIMIT=1 with TASK_TIME_LIMIT=5: tasks.sleep(30) is FAILURE SoftTimeLimitExceeded after 1 s" {
    TASK_SOFT_TIME_LIMIT=1 TASK_TIME_LIMIT=5 start_runner -c 1
    run -0 taskctl send sleep 30
    local id=$output t0 t1
    wait_status "$id" STARTED 50
    t0=$(now_ms)
    wait_status "$id" FAILURE 60
    t1=$(now_ms)
    [ $((t1 - t0)) -ge 600 ] && [ $((t1 - t0)) -lt 3000 ] || { echo "FAILURE after $((t1 - t0)) ms"; false; }
    assert_equal "$(jget "$(meta "$id")" '[j["result"]["exc_type"], j["result"]["exc_module"]]')" \
        '["SoftTimeLimitExceeded","billiard.exceptions"]'
    run -0 taskctl call add 3 4 --timeout 10
    assert_output 7
    in_failed "$id"
    assert_equal "$(inflight_count)" 0
    # a task within the limits is not touched
    run -0 taskctl call sleep 0.5 --timeout 10
    assert_output 0.5
}

@test "a message's headers.timelimit from Celery's apply_async(time_limit=, soft_time_limit=) wins over the runner's limit" {
    TASK_TIME_LIMIT=60 start_runner -c 1
    run -0 --separate-stderr pyq timelimit 30 2 0
    [[ $output =~ ^([0-9a-f-]{36})\ billiard\.exceptions\.TimeLimitExceeded\ ([0-9.]+)$ ]] ||
        { echo "$output $stderr"; false; }
    local id=${BASH_REMATCH[1]} took=${BASH_REMATCH[2]}
    run -0 awk -v t="$took" 'BEGIN { exit !(t >= 1.8 && t < 5) }'
    assert_equal "$(jget "$(meta "$id")" 'j["result"]["exc_type"]')" TimeLimitExceeded

    run -0 --separate-stderr pyq timelimit 30 10 1
    [[ $output =~ ^([0-9a-f-]{36})\ billiard\.exceptions\.SoftTimeLimitExceeded\ ([0-9.]+)$ ]] ||
        { echo "$output $stderr"; false; }
    took=${BASH_REMATCH[2]}
    run -0 awk -v t="$took" 'BEGIN { exit !(t >= 0.8 && t < 4) }'
    run -0 taskctl call add 1 1 --timeout 10
    assert_output 2
}

@test "TASK_MAX_MEMORY_MB=64: tasks.alloc(512) is FAILURE MemoryError naming the limit; the runner serves on, tasks.alloc(8) succeeds" {
    TASK_MAX_MEMORY_MB=64 start_runner -c 1
    run -0 taskctl send alloc 512
    local id=$output
    wait_status "$id" FAILURE 150
    assert_equal "$(jget "$(meta "$id")" '[j["result"]["exc_type"], j["result"]["exc_module"]]')" \
        '["MemoryError","builtins"]'
    [[ $(jget "$(meta "$id")" 'str(j["result"]["exc_message"])') == *64* ]] || { meta "$id"; false; }
    in_failed "$id"
    kill -0 "$RUNNER_PID"
    run -0 taskctl send alloc 8
    local small=$output
    wait_status "$small" SUCCESS 100
    assert_equal "$(result "$small")" 8
    assert_equal "$(inflight_count)" 0
    assert_equal "$(rcli llen celery)" 0
}

@test "tasks.crash(): FAILURE WorkerLostError naming the signal, once: never re-run, the runner serves on" {
    start_runner -c 1
    run -0 taskctl send crash
    local id=$output
    wait_status "$id" FAILURE 100
    assert_equal "$(jget "$(meta "$id")" '[j["result"]["exc_type"], j["result"]["exc_module"]]')" \
        '["WorkerLostError","billiard.exceptions"]'
    local msg
    msg=$(jget "$(meta "$id")" 'j["result"]["exc_message"][0]')
    [[ $msg =~ ^Worker\ exited\ prematurely:\ signal\ [0-9]+\ \(SIG[A-Z0-9]+\)$ ]] || { echo "$msg"; false; }
    local done1
    done1=$(jget "$(meta "$id")" 'j["date_done"]')
    # a task queued after it runs; had the crash gone back to the queue it
    # would have run (and crashed) first
    run -0 taskctl call add 5 5 --timeout 10
    assert_output 10
    run -0 taskctl call add 6 6 --timeout 10
    assert_output 12
    assert_equal "$(meta_status "$id")" FAILURE
    assert_equal "$(jget "$(meta "$id")" 'j["date_done"]')" "$done1"
    # one worker lost, not a loop of them
    run -0 grep -cE 'worker [0-9]+ \(pid [0-9]+\) (killed by signal|exited with)' "$RUNNER_LOG"
    assert_output 1
    in_failed "$id"
    kill -0 "$RUNNER_PID"
    assert_equal "$(inflight_count)" 0
    assert_equal "$(rcli llen celery)" 0
}

#!/usr/bin/env bats
# Leases (issue 4, item 5): the runner's supervisor, not the busy task, keeps
# the lease on running tasks alive; a runner that stops beating (frozen or
# killed) has its tasks run again by another runner after RUNNER_LEASE + the
# 1 s reap period; and a result that arrives on a lease that has expired is
# dropped and logged, never stored a second time.

load helpers
load queue

setup() {
    start_redis
}

teardown() {
    # a frozen runner must be thawed before it can be stopped
    local p
    for p in "${RUNNER_PIDS[@]}"; do
        kill -CONT "$p" $(runner_children "$p") 2>/dev/null || true
    done
    if [ -n "${SUB_PID:-}" ]; then kill "$SUB_PID" 2>/dev/null; fi
    queue_teardown
}

# publications ID FILE: record every result published for the task into
# FILE (redis-cli SUBSCRIBE, one line per field), in the background: SUB_PID
publications() {
    rcli subscribe "celery-task-meta-$1" >"$2" 2>&1 &
    SUB_PID=$!
    retry 50 0.1 grep -q subscribe "$2"
}

@test "a task busy for 4 leases is not taken from its live runner: the supervisor beats for it" {
    RUNNER_LEASE=2 start_runner -c 1
    local a=$RUNNER_LOG
    RUNNER_LEASE=2 start_runner -c 1 -n other
    local b=$RUNNER_LOG
    run -0 taskctl send sleep 8
    local id=$output
    wait_status "$id" SUCCESS 150
    # run once, by one of them; nobody was reaped meanwhile
    assert_equal "$(($(succeeded_lines "$a" "$id") + $(succeeded_lines "$b" "$id")))" 1
    run grep -h 'no heartbeat\|given up as dead' "$a" "$b"
    assert_output ''
    assert_equal "$(rcli zcard qrun:runners)" 2
}

@test "a frozen runner loses its lease: another runs the task; its late result is dropped, logged, never stored twice" {
    RUNNER_LEASE=2 start_runner -c 1
    local frozen=$RUNNER_PID frozen_log=$RUNNER_LOG kids
    run -0 taskctl send sleep 3
    local id=$output
    wait_status "$id" STARTED
    publications "$id" "$TEST_TMP/pub.$id"
    kids=$(runner_children "$frozen")
    kill -STOP "$frozen" $kids
    SECONDS=0
    RUNNER_LEASE=2 start_runner -c 1 -n rescuer
    local rescuer_log=$RUNNER_LOG
    wait_status "$id" SUCCESS 150
    # lease (2 s) + reap period (1 s) + the task (3 s) + slack
    [ "$SECONDS" -lt 9 ]
    assert_equal "$(succeeded_lines "$rescuer_log" "$id")" 1
    # thaw: the frozen worker finishes too, but its claim was handed over
    kill -CONT "$frozen" $kids
    retry 100 0.1 grep -q "celery-task-meta-$id: claim lost" "$frozen_log"
    retry 50 0.1 grep -q 'had been given up as dead' "$frozen_log"
    # one SUCCESS was published (and stored), not two
    sleep 0.5
    assert_equal "$(grep -c '"status":"SUCCESS"' "$TEST_TMP/pub.$id")" 1
    assert_equal "$(meta_status "$id")" SUCCESS
    assert_equal "$(inflight_count)" 0
    assert_equal "$(rcli llen celery)" 0
}

@test "kill -9 of a runner: its claimed-but-not-started batch and its running task all run again, once each" {
    # runner A claims a batch of short tasks behind a long one on one worker
    RUNNER_LEASE=2 start_runner -c 1
    local a=$RUNNER_PID kids ids=() i
    run -0 taskctl send sleep 2
    ids+=("$output")
    for i in 1 2 3 4 5; do
        run -0 taskctl send add "$i" "$i"
        ids+=("$output")
    done
    wait_status "${ids[0]}" STARTED
    kids=$(runner_children "$a")
    kill -KILL "$a" $kids
    SECONDS=0
    RUNNER_LEASE=2 start_runner -c 2 -n b
    for i in "${ids[@]}"; do wait_status "$i" SUCCESS 150; done
    [ "$SECONDS" -lt 8 ]
    for i in "${ids[@]}"; do
        assert_equal "$(succeeded_lines "$RUNNER_LOG" "$i")" 1
    done
    assert_equal "$(inflight_count)" 0
}

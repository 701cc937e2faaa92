#!/usr/bin/env bats
# The queue's long-lived processes must not grow per request or per task:
# after a warm-up, thousands more leave their resident memory where it was.
# (route_memory.bats does the same for the libfcgi route programs.)

load helpers
load queue

setup() {
    # ASan's quarantine holds freed memory on purpose, and its stack depot
    # keeps every new allocation stack it sees (an event loop keeps finding
    # new ones): both off, so the sanitizer build is measured like the other
    export ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=0:malloc_context_size=0"
    start_redis
}

teardown() {
    queue_teardown
}

# tasks_mix N: N requests to /api/tasks of every kind, 8 at a time: submits,
# reads of a finished task, waits that park and time out, 404s, 422s, 405s;
# each with the token the authorizer wants
tasks_mix() {
    local n=$1 cfg="$BATS_TEST_TMPDIR/curl.cfg"
    : >"$cfg"
    for i in $(seq 1 "$n"); do
        [ "$i" = 1 ] || echo 'next'
        case $((i % 6)) in
        0) printf 'url = "%s"\nrequest = "POST"\ndata = "{\\"args\\":[%d,1]}"\n' "$BASE/api/tasks/add" "$i" ;;
        1) echo "url = \"$BASE/api/tasks/$DONE_ID?wait=5\"" ;;
        2) echo "url = \"$BASE/api/tasks/parked-$((i % 3))?wait=0.05\"" ;;
        3) echo "url = \"$BASE/api/tasks/nobody-$i\"" ;;
        4) printf 'url = "%s"\nrequest = "POST"\ndata = "{\\"args\\":[1],\\"x\\":%d}"\n' "$BASE/api/tasks/add" "$i" ;;
        5) printf 'url = "%s"\nrequest = "PUT"\n' "$BASE/api/tasks/x$i" ;;
        esac
        echo "header = \"$AUTH\""
        echo 'output = "/dev/null"'
        echo 'write-out = "%{http_code}\\n"'
    done >>"$cfg"
    curl_batch "$cfg"
}

assert_tasks_mix() { # per kind: n/6 each; 200 = the finished read + the parked waits
    local k=$(($1 / 6))
    run cat "$BATS_TEST_TMPDIR/codes"
    assert_line --regexp "^ *$k 202$"
    assert_line --regexp "^ *$((2 * k)) 200$"
    assert_line --regexp "^ *$k 404$"
    assert_line --regexp "^ *$k 422$"
    assert_line --regexp "^ *$k 405$"
}

@test "the tasks route's memory does not grow with requests, parked waits included" {
    start_gateway GW_PROCS=1
    start_runner -c 1
    local pid
    pid=$(route_pids tasks)
    [ -n "$pid" ]
    DONE_ID=$(taskctl send add 2 2)
    retry 50 0.1 status_is "$DONE_ID" SUCCESS
    # tasks that stay PENDING: a ?wait on them parks, subscribes, times out
    for i in 0 1 2; do
        rcli set "celery-task-meta-parked-$i" \
            "{\"status\":\"PENDING\",\"result\":null,\"task_id\":\"parked-$i\",\"name\":\"tasks.add\"}" \
            EX 600 >/dev/null
    done
    # warm-up: buffers reach their largest size; ASan's allocator takes
    # longer to settle, and then wanders by a couple of hundred kB
    for _ in 1 2 3; do
        tasks_mix 3000
        assert_tasks_mix 3000
    done
    local before after
    before=$(rss_kb "$pid")
    for _ in 1 2; do
        tasks_mix 3000
        assert_tasks_mix 3000
    done
    after=$(rss_kb "$pid")
    echo "tasks route VmRSS before ${before} kB, after ${after} kB" >&3
    [ "$pid" = "$(route_pids tasks)" ] # the same process served them all
    # 256 kB over 6000 requests (44 bytes a request); 640 in the sanitizer
    # build, where LeakSanitizer at exit catches the unreachable leaks anyway
    local limit=256
    [[ $GW_CGI_BIN != */asan/* ]] || limit=640
    [ $((after - before)) -le $limit ]
}

@test "a runner worker's memory does not grow with tasks" {
    start_runner -c 1
    local worker ids="$BATS_TEST_TMPDIR/ids" warm="$BATS_TEST_TMPDIR/warm-ids"
    worker=$(runner_children "$RUNNER_PID")
    [ -n "$worker" ]
    "$PY" "$CELERY_DIR/enqueue.py" 10000 "$warm" # ASan's allocator settles late
    retry 300 0.1 eval '[ "$(rcli llen celery)" = 0 ] && [ "$(inflight_count)" = 0 ]'
    local before after
    before=$(rss_kb "$worker")
    "$PY" "$CELERY_DIR/enqueue.py" 10000 "$ids"
    retry 300 0.1 eval '[ "$(rcli llen celery)" = 0 ] && [ "$(inflight_count)" = 0 ]'
    retry 50 0.1 all_done "$ids" 10000
    after=$(rss_kb "$worker")
    echo "runner worker VmRSS before ${before} kB, after ${after} kB" >&3
    [ "$worker" = "$(runner_children "$RUNNER_PID")" ] # no respawn in between
    local limit=256 # 26 bytes a task; more slack for ASan's allocator
    [[ $GW_BIN != */asan/* ]] || limit=640
    [ $((after - before)) -le $limit ]
}

# results FILE: tests/celery/results.py over enqueue.py's ids
all_done() { [ "$("$PY" "$CELERY_DIR/results.py" "$1")" = "success=$2 wrong=0 missing=0 other=0" ]; }

#!/usr/bin/env bats
# cron/ (keepalive, sweep, purge, beat, the crontab as shipped) and
# bin/qrunctl behind them, on a private redis with real queue-runners. Each
# test has its own redis and state dir (GW_STATE); teardown stops the runners
# keepalive started, then fails on any other queue-runner of the test still
# alive (a double start) and on sanitizer reports in the runner logs.

load helpers
load queue

T0=1764201600    # 2025-11-27T00:00:00Z, a midnight
T=$((T0 + 3600)) # 01:00, on every minute and hour boundary
D=86400

setup() {
    start_redis
    GW_STATE=$BATS_TEST_TMPDIR/state
    RUNNER_ARGS="-c 1"
    CRON=$REPO/cron
    export GW_STATE RUNNER_ARGS
    mkdir -p "$GW_STATE"
}

teardown() {
    local rc=0 p
    # runners keepalive started (their pids, as its pid file said)
    for p in $(sort -u "$BATS_TEST_TMPDIR/kept" 2>/dev/null); do
        stop_kept "$p" || rc=1
    done
    for p in $(cat "$BATS_TEST_TMPDIR/others" 2>/dev/null); do
        kill "$p" 2>/dev/null || true
    done
    [ ! -d "$GW_STATE/log" ] || check_logs "$GW_STATE/log" || rc=1
    if [ "$rc" != 0 ] || [ -z "${BATS_TEST_COMPLETED:-}" ]; then
        tail -n 20 "$GW_STATE/log/runner.log" >&2 2>/dev/null || true
    fi
    queue_teardown || rc=1
    return "$rc"
}

# keepalive: cron/keepalive (fd 3 closed: the runner it starts outlives it),
# remembering the runner it leaves behind for teardown
keepalive() {
    local rc=0
    "$CRON/keepalive" 3>&- || rc=$?
    cat "$GW_STATE/run/queue-runner.pid" >>"$BATS_TEST_TMPDIR/kept" 2>/dev/null || true
    return "$rc"
}

kept_pid() { cat "$GW_STATE/run/queue-runner.pid"; }

# stop_kept PID: SIGTERM a runner keepalive started (not our child: poll),
# SIGKILL if it does not go; fail in that case
stop_kept() {
    local exe
    exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 0
    [ "${exe% (deleted)}" = "$GW_BIN/queue-runner" ] || return 0
    kill -TERM "$1" 2>/dev/null || return 0
    retry 150 0.1 gone "$1" && return 0
    echo "queue-runner $1 did not stop on SIGTERM" >&2
    kill -KILL "$1" 2>/dev/null
    return 1
}

# runners: this test's live queue-runner processes (leftover_runners, also
# when the binary was rebuilt under them: "(deleted)"); supervisors: those
# of them whose parent is no queue-runner (the rest are workers)
runners() { leftover_runners; }

supervisors() {
    local p pp exe
    for p in $(runners); do
        pp=$(awk '/^PPid:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
        [ -n "$pp" ] || continue
        exe=$(readlink "/proc/$pp/exe" 2>/dev/null) || exe=
        [ "${exe% (deleted)}" = "$GW_BIN/queue-runner" ] || echo "$p"
    done
}

# wait_status ID STATUS: poll the stored meta (0.1 s steps, 10 s)

no_runner_left() { [ -z "$(runners)" ]; }

# at_once N DIR CMD...: run N copies of CMD released at the same moment
# (each waits for DIR/go, created once all are waiting); copy i's output in
# DIR/out.i and exit status in DIR/rc.i. Returns when all are done.
at_once() {
    local n=$1 dir=$2 i pids=()
    shift 2
    mkdir -p "$dir"
    for i in $(seq 1 "$n"); do
        (
            touch "$dir/ready.$i"
            while [ ! -e "$dir/go" ]; do sleep 0.001; done
            rc=0
            "$@" >"$dir/out.$i" 2>&1 || rc=$?
            echo "$rc" >"$dir/rc.$i"
        ) 3>&- &
        pids+=($!)
    done
    retry 1000 0.005 eval "[ \$(ls '$dir' | grep -c '^ready\.') = $n ]"
    touch "$dir/go"
    wait "${pids[@]}"
}

# schedule TEXT: write TEXT to a schedule file and point BEAT_SCHEDULE at it
schedule() {
    BEAT_SCHEDULE=$BATS_TEST_TMPDIR/schedule
    export BEAT_SCHEDULE
    printf '%s\n' "$1" >"$BEAT_SCHEDULE"
}

beat() { "$CRON/beat" "$@"; }
qrunctl() { "$GW_BIN/qrunctl" "$@"; }

# msg_get LIST INDEX EXPR: EXPR (jget) over the message at INDEX of LIST,
# with `b` its decoded body [args, kwargs, embed]
msg_get() {
    jget "$(rcli lindex "$1" "$2")" \
        "(lambda b: $3)(json.loads(__import__('base64').b64decode(j['body'])))"
}

# fresh_msg X Y: a real Celery message of tasks.add(X, Y) as taskctl sends it,
# taken back off the queue (for fake in-flight and scheduled entries), in
# MSG, and its task id in MSG_ID
fresh_msg() {
    local id
    id=$(taskctl send add "$1" "$2")
    MSG=$(rcli rpop celery)
    MSG_ID=$id
}

# ---- keepalive ----------------------------------------------------------

@test "keepalive starts one queue-runner, records its pid, and tasks run" {
    run -0 keepalive
    assert_output --regexp '^keepalive: started queue-runner \(pid [0-9]+\)$'
    local pid
    pid=$(kept_pid)
    assert_output "keepalive: started queue-runner (pid $pid)"
    assert_equal "$(readlink "/proc/$pid/exe" | sed 's/ (deleted)$//')" "$GW_BIN/queue-runner"
    assert_equal "$(supervisors)" "$pid"
    run -0 taskctl call add 4 4 --timeout 30
    assert_output 8
    # detached: a session of its own, and its log under the state dir
    assert_equal "$(ps -o sid= -p "$pid" | tr -d ' ')" "$pid"
    run -0 grep -c 'ready: .*concurrency=1 ' "$GW_STATE/log/runner.log"
    assert_output 1
}

@test "a second keepalive finds the runner alive and starts no other" {
    keepalive >/dev/null
    local pid
    pid=$(kept_pid)
    for _ in 1 2 3; do
        run -0 keepalive
        assert_output "keepalive: queue-runner is running (pid $pid)"
    done
    assert_equal "$(kept_pid)" "$pid"
    assert_equal "$(supervisors)" "$pid"
    assert_equal "$(rcli zcard qrun:runners)" 1
}

@test "keepalives started at the same moment start one runner between them" {
    local round i started pid
    for round in 1 2 3 4 5; do
        at_once 4 "$BATS_TEST_TMPDIR/round$round" keepalive
        started=0
        for i in 1 2 3 4; do
            assert_equal "$(cat "$BATS_TEST_TMPDIR/round$round/rc.$i")" 0
            if grep -q '^keepalive: started queue-runner' "$BATS_TEST_TMPDIR/round$round/out.$i"; then
                started=$((started + 1))
            fi
        done
        pid=$(kept_pid)
        assert_equal "$started" 1
        run -0 grep -h '^keepalive:' "$BATS_TEST_TMPDIR/round$round"/out.*
        assert_output --partial "keepalive: queue-runner is running (pid $pid)"
        assert_equal "$(supervisors)" "$pid"
        # the next round starts from no runner again
        stop_kept "$pid"
        retry 100 0.1 no_runner_left
    done
}

@test "keepalive starts a new runner when its runner was killed or its pid file is stale" {
    keepalive >/dev/null
    local old new other
    old=$(kept_pid)
    kill -KILL "$old"
    retry 100 0.1 gone "$old"
    retry 100 0.1 no_runner_left # its workers follow it
    run -0 keepalive
    new=$(kept_pid)
    assert_output "keepalive: started queue-runner (pid $new; pid $old was not running)"
    [ "$new" != "$old" ]
    assert_equal "$(supervisors)" "$new"
    run -0 taskctl call add 2 3 --timeout 30
    assert_output 5

    # a pid file naming a live process that is no queue-runner (a pid the
    # kernel gave to another program) does not count
    stop_kept "$new"
    retry 100 0.1 no_runner_left
    sleep 300 3>&- &
    other=$!
    echo "$other" >"$BATS_TEST_TMPDIR/others"
    echo "$other" >"$GW_STATE/run/queue-runner.pid"
    run -0 keepalive
    new=$(kept_pid)
    assert_output "keepalive: started queue-runner (pid $new; pid $other was not running)"
    kill "$other"
    wait "$other" 2>/dev/null || true
    assert_equal "$(supervisors)" "$new"

    # nor does junk
    stop_kept "$new"
    retry 100 0.1 no_runner_left
    echo 'not a pid' >"$GW_STATE/run/queue-runner.pid"
    run -0 keepalive
    assert_output "keepalive: started queue-runner (pid $(kept_pid))"
    assert_equal "$(supervisors)" "$(kept_pid)"
}

@test "keepalive exits 1 and says why when no runner can start" {
    REDIS_URL=ftp://nowhere run -1 --separate-stderr keepalive
    assert_output ""
    [[ $stderr == *"keepalive: queue-runner (pid "*") exited at once; the end of $GW_STATE/log/runner.log:"* ]]
    [[ $stderr == *"conf: REDIS_URL: "* ]]
    GW_BIN=$BATS_TEST_TMPDIR/nobin run -1 --separate-stderr keepalive
    assert_equal "$stderr" "keepalive: $BATS_TEST_TMPDIR/nobin/queue-runner is not there (make all?)"
    assert_equal "$(supervisors)" ""
}

# ---- sweep --------------------------------------------------------------

@test "sweep puts back a dead runner's in-flight task and promotes due delayed messages" {
    local now dead=deadhost:4242:dead live=livehost:4343:live
    local m1 id1 m2 id2 m3 m4 id4
    fresh_msg 1 2; m1=$MSG id1=$MSG_ID
    fresh_msg 3 4; m2=$MSG id2=$MSG_ID
    fresh_msg 5 6; m3=$MSG
    fresh_msg 7 8; m4=$MSG id4=$MSG_ID
    now=$(now_ms)
    # a runner dead for a minute, holding m1; a live one holding m3
    rcli zadd qrun:runners $((now - 60000)) "$dead" >/dev/null
    rcli hset "qrun:runner:$dead" host deadhost pid 4242 queues celery concurrency 1 >/dev/null
    rcli lpush "qrun:inflight:$dead:0" "$m1" >/dev/null
    rcli zadd qrun:runners "$now" "$live" >/dev/null
    rcli hset "qrun:runner:$live" host livehost pid 4343 queues celery concurrency 1 >/dev/null
    rcli lpush "qrun:inflight:$live:0" "$m3" >/dev/null
    # m2 was due a second ago, m4 is due in an hour
    rcli sadd qrun:queues celery >/dev/null
    rcli zadd qrun:scheduled:celery $((now - 1000)) "$m2" >/dev/null
    rcli zadd qrun:scheduled:celery $((now + 3600000)) "$m4" >/dev/null

    run -0 --separate-stderr "$CRON/sweep"
    assert_line --index 0 "reap: 1 task(s) put back (lease 10s)"
    assert_line --index 1 "promote: 1 due message(s) moved to their queues"
    [[ $stderr == *"qrunctl - WARNING - reap: put back 1 task(s) of runner(s) with no heartbeat for 10s"* ]]
    assert_equal "$(rcli llen celery)" 2
    run -0 rcli lrange celery 0 -1
    assert_line "$m1"
    assert_line "$m2"
    assert_equal "$(rcli exists "qrun:inflight:$dead:0" "qrun:runner:$dead")" 0
    run -0 rcli zscore qrun:runners "$dead"
    assert_output ""
    # the live runner keeps its task; the future message waits
    assert_equal "$(rcli lrange "qrun:inflight:$live:0" 0 -1)" "$m3"
    [ -n "$(rcli zscore qrun:runners "$live")" ]
    assert_equal "$(rcli zrange qrun:scheduled:celery 0 -1)" "$m4"

    run -0 --separate-stderr "$CRON/sweep"
    assert_output $'reap: 0 task(s) put back (lease 10s)\npromote: 0 due message(s) moved to their queues'

    # the lease is a setting: the live runner, silent for 5 s, is reaped by
    # a 3 s lease only
    rcli zadd qrun:runners $(($(now_ms) - 5000)) "$live" >/dev/null
    run -0 --separate-stderr "$CRON/sweep"
    assert_line --index 0 "reap: 0 task(s) put back (lease 10s)"
    RUNNER_LEASE=3 run -0 --separate-stderr "$CRON/sweep"
    assert_line --index 0 "reap: 1 task(s) put back (lease 3s)"
    run -0 --separate-stderr "$CRON/sweep" --lease 2
    assert_line --index 0 "reap: 0 task(s) put back (lease 2s)"
    assert_equal "$(rcli llen celery)" 3

    # what sweep put back is a task like any other
    start_runner -c 1
    wait_status "$id1" SUCCESS
    wait_status "$id2" SUCCESS
    assert_equal "$(jget "$(meta "$id1")" 'j["result"]')" 3
    assert_equal "$(jget "$(meta "$id2")" 'j["result"]')" 7
    assert_equal "$(meta_status "$id4")" PENDING
}

@test "sweep fails when Redis is unreachable, and says so" {
    REDIS_URL=unix://$BATS_TEST_TMPDIR/none.sock run -1 --separate-stderr "$CRON/sweep"
    assert_output ""
    [[ $stderr == *"qrunctl - ERROR - reap: Redis: "* ]]
    [[ $stderr == *"qrunctl - ERROR - promote: Redis: "* ]]
}

# ---- purge --------------------------------------------------------------

@test "purge trims the failed lists by count and by age" {
    local now i
    now=$(now_ms)
    rcli sadd qrun:queues celery other >/dev/null
    # f1 (100 s old) .. f5 (500 s old) and one 8 days old on celery; 2 on other
    for i in 1 2 3 4 5; do
        rcli zadd qrun:failed:celery $((now - i * 100000)) "f$i" >/dev/null
        rcli set "qrun:failedmsg:f$i" "message $i" ex 604800 >/dev/null
    done
    rcli zadd qrun:failed:celery $((now - 8 * D * 1000)) fold >/dev/null
    rcli zadd qrun:failed:other "$now" o1 $((now - 1000)) o2 >/dev/null

    FAILED_MAX=3 run -0 "$CRON/purge"
    assert_output "purge: 3 failed entries removed (max-age 604800s, max-count 3)"
    assert_equal "$(rcli zrange qrun:failed:celery 0 -1 | tr '\n' ' ')" "f3 f2 f1 "
    assert_equal "$(rcli zcard qrun:failed:other)" 2
    # the messages of the entries cut by count go with them
    assert_equal "$(rcli exists qrun:failedmsg:f4 qrun:failedmsg:f5)" 0
    assert_equal "$(rcli exists qrun:failedmsg:f1 qrun:failedmsg:f3)" 2

    # by hand, for this run only
    run -0 "$CRON/purge" --max-age 250 --max-count 10
    assert_output "purge: 1 failed entry removed (max-age 250s, max-count 10)"
    assert_equal "$(rcli zrange qrun:failed:celery 0 -1 | tr '\n' ' ')" "f2 f1 "
    FAILED_AGE=150 run -0 "$CRON/purge"
    assert_output "purge: 1 failed entry removed (max-age 150s, max-count 10000)"
    assert_equal "$(rcli zrange qrun:failed:celery 0 -1)" f1
    run -0 "$CRON/purge"
    assert_output "purge: 0 failed entries removed (max-age 604800s, max-count 10000)"
    assert_equal "$(rcli zcard qrun:failed:other)" 2

    run -2 --separate-stderr "$CRON/purge" --max-count many
    [[ $stderr == *"--max-count: expected an integer"* ]]
    FAILED_MAX=-1 run -1 --separate-stderr "$CRON/purge"
    [[ $stderr == *"conf: FAILED_MAX: expected an integer"* ]]
    assert_equal "$(rcli zrange qrun:failed:celery 0 -1)" f1
}

# ---- beat ---------------------------------------------------------------

@test "beat enqueues each due entry once per slot, with its args, kwargs, queue and priority" {
    schedule '# two entries
every1  every 1m  tasks.add  [4, 4]
mulkw   every 5m  tasks.mul  [6]  {"y": 7}  queue=other priority=9'
    local band=$'other\x06\x169'
    RESULT_EXPIRES=900 run -0 --separate-stderr beat --now "$T"
    assert_output "beat: 2 entries: 2 sent, 0 already sent, 0 not due, 0 failed"
    assert_equal "$(rcli llen celery)" 1
    assert_equal "$(rcli llen "$band")" 1
    assert_equal "$(msg_get celery 0 'j["headers"]["task"]')" tasks.add
    assert_equal "$(msg_get celery 0 'b[:2]')" '[[4,4],{}]'
    assert_equal "$(msg_get "$band" 0 'j["headers"]["task"]')" tasks.mul
    assert_equal "$(msg_get "$band" 0 'b[:2]')" '[[6],{"y":7}]'
    assert_equal "$(msg_get "$band" 0 '[j["properties"]["priority"], j["properties"]["delivery_info"]["routing_key"]]')" '[9,"other"]'
    # known from the moment it is queued: PENDING, for RESULT_EXPIRES
    local id ttl
    id=$(msg_get celery 0 'j["headers"]["id"]')
    [[ $id =~ $UUID_RE ]]
    assert_equal "$(meta_status "$id")" PENDING
    [[ $stderr == *"qrunctl - INFO - beat: every1: sent tasks.add[$id] to celery (slot $T)"* ]]
    ttl=$(rcli ttl "celery-task-meta-$id")
    [ "$ttl" -gt 890 ] && [ "$ttl" -le 900 ] || fail "result ttl $ttl"
    # the slots taken, for as long as they can be due on any host
    ttl=$(rcli ttl "qrun:beat:every1:$T")
    [ "$ttl" -gt 650 ] && [ "$ttl" -le 660 ] || fail "every1 slot ttl $ttl"
    ttl=$(rcli ttl "qrun:beat:mulkw:$T")
    [ "$ttl" -gt 890 ] && [ "$ttl" -le 900 ] || fail "mulkw slot ttl $ttl"
    [ "$(rcli sismember qrun:queues other)" = 1 ]

    # the same slot again, to its last second: nothing more
    run -0 --separate-stderr beat --now "$T"
    assert_output "beat: 2 entries: 0 sent, 2 already sent, 0 not due, 0 failed"
    run -0 --separate-stderr beat --now $((T + 59))
    assert_output "beat: 2 entries: 0 sent, 2 already sent, 0 not due, 0 failed"
    # the next minute: every1's next slot, mulkw's is still the same
    run -0 --separate-stderr beat --now $((T + 60))
    assert_output "beat: 2 entries: 1 sent, 1 already sent, 0 not due, 0 failed"
    run -0 --separate-stderr beat --now $((T + 300))
    assert_output "beat: 2 entries: 2 sent, 0 already sent, 0 not due, 0 failed"
    assert_equal "$(rcli llen celery)" 3
    assert_equal "$(rcli llen "$band")" 2

    # they are tasks like any other
    start_runner -c 1 -Q celery,other
    retry 200 0.1 eval "[ \"\$(grep -c 'succeeded in' '$RUNNER_LOG')\" = 5 ]"
    assert_equal "$(grep -c 'Task tasks.add\[.*\] succeeded in .*: 8' "$RUNNER_LOG")" 3
    assert_equal "$(grep -c 'Task tasks.mul\[.*\] succeeded in .*: 42' "$RUNNER_LOG")" 2
}

@test "two hosts' beat started at the same moment enqueue each slot exactly once" {
    schedule 'twice  every 1m  tasks.add  [1, 1]
hourly every 1h  tasks.add  [2, 2]'
    local i k now sent taken out
    for i in $(seq 1 30); do
        now=$((T + i * 60))
        at_once 2 "$BATS_TEST_TMPDIR/slot$i" beat --now "$now"
        sent=0 taken=0
        for k in 1 2; do
            out=$(cat "$BATS_TEST_TMPDIR/slot$i/out.$k")
            assert_equal "$(cat "$BATS_TEST_TMPDIR/slot$i/rc.$k")" 0
            if [[ $out == *"beat: 2 entries: 1 sent, 1 already sent,"* ]]; then sent=$((sent + 1)); fi
            if [[ $out == *"beat: 2 entries: 0 sent, 2 already sent,"* ]]; then taken=$((taken + 1)); fi
        done
        # one host sent `twice`, the other found it taken (`hourly`: taken
        # since the first slot), and one message is on the queue per slot
        if [ "$i" = 1 ]; then
            assert_equal "$(rcli llen celery)" 2
        else
            assert_equal "$sent $taken" "1 1"
            assert_equal "$(rcli llen celery)" $((i + 1))
        fi
        assert_equal "$(rcli exists "qrun:beat:twice:$now")" 1
    done
    # 30 slots of `twice`, one of `hourly`, all different tasks
    assert_equal "$(rcli lrange celery 0 -1 | grep -c '"task": *"tasks.add"')" 31
    assert_equal "$(rcli keys 'celery-task-meta-*' | wc -l)" 31
    assert_equal "$(rcli keys 'qrun:beat:twice:*' | wc -l)" 30
}

@test "an at entry is enqueued once per time, by the first run in its window" {
    schedule 'report  at 14:00,02:30  tasks.xsum  [[1, 2, 3]]
late    at 23:50        tasks.add   [2, 2]  window=30m'
    local t0230=$((T0 + 2 * 3600 + 1800)) t1400=$((T0 + 14 * 3600)) t2350=$((T0 + 23 * 3600 + 3000))
    run -0 --separate-stderr beat --now $((t0230 - 1))
    assert_output "beat: 2 entries: 0 sent, 0 already sent, 2 not due, 0 failed"
    assert_equal "$(rcli llen celery)" 0
    # cron missed 02:30 .. 02:40: the first run after it enqueues it
    run -0 --separate-stderr beat --now $((t0230 + 11 * 60))
    assert_output "beat: 2 entries: 1 sent, 0 already sent, 1 not due, 0 failed"
    assert_equal "$(msg_get celery 0 'j["headers"]["task"]')" tasks.xsum
    assert_equal "$(rcli exists "qrun:beat:report:$t0230")" 1
    # every later run in its hour: taken; after it: not due
    local now
    for now in $t0230 $((t0230 + 60)) $((t0230 + 1799)) $((t0230 + 3599)); do
        run -0 --separate-stderr beat --now "$now"
        assert_output "beat: 2 entries: 0 sent, 1 already sent, 1 not due, 0 failed"
    done
    run -0 --separate-stderr beat --now $((t0230 + 3600))
    assert_output "beat: 2 entries: 0 sent, 0 already sent, 2 not due, 0 failed"
    assert_equal "$(rcli llen celery)" 1
    # 14:00, then 23:50 whose 30 min window runs past midnight
    run -0 --separate-stderr beat --now $((t1400 + 30))
    assert_output "beat: 2 entries: 1 sent, 0 already sent, 1 not due, 0 failed"
    run -0 --separate-stderr beat --now $((T0 + D + 10 * 60))
    assert_output "beat: 2 entries: 1 sent, 0 already sent, 1 not due, 0 failed"
    assert_equal "$(rcli exists "qrun:beat:late:$t2350")" 1
    run -0 --separate-stderr beat --now $((T0 + D + 19 * 60))
    assert_output "beat: 2 entries: 0 sent, 1 already sent, 1 not due, 0 failed"
    run -0 --separate-stderr beat --now $((T0 + D + 20 * 60))
    assert_output "beat: 2 entries: 0 sent, 0 already sent, 2 not due, 0 failed"
    # the next day's 02:30 is a new slot
    run -0 --separate-stderr beat --now $((t0230 + D))
    assert_output "beat: 2 entries: 1 sent, 0 already sent, 1 not due, 0 failed"
    assert_equal "$(rcli llen celery)" 4
    assert_equal "$(rcli keys 'qrun:beat:*' | sort | tr '\n' ' ')" \
        "qrun:beat:late:$t2350 qrun:beat:report:$t0230 qrun:beat:report:$t1400 qrun:beat:report:$((t0230 + D)) "
}

@test "a bad schedule is refused whole, with its file:line, and nothing is enqueued" {
    local bad f=$BATS_TEST_TMPDIR/schedule
    while IFS='|' read -r bad want; do
        schedule "good  every 1m  tasks.add  [1, 1]
# a comment
$bad
also  every 1m  tasks.add  [2, 2]"
        run -1 --separate-stderr beat --now "$T"
        assert_output ""
        if [[ $stderr != *"qrunctl - ERROR - beat: $f:3: $want"*"; nothing enqueued" ]]; then
            echo "line: $bad" >&2
            echo "stderr: $stderr" >&2
            echo "want: $f:3: $want" >&2
            false
        fi
    done <<'EOF'
oops every 5x tasks.add [1]|every: expected a period such as 30s, 5m, 2h or 1d (1s..31d), got '5x'
oops every 5m tasks.add [1,|args: bad JSON at column 27: ']' expected near end of file
oops every 5m tasks.add 4 4|expected ARGS, a JSON array such as [4, 4], after the task name
oops every 5m tasks..add [1]|task: expected a dotted name
oops at 25:00 tasks.add [1]|at: expected times HH:MM[,HH:MM...] (UTC, 00:00..23:59), got '25:00'
oops every 5m tasks.add [1] priority=10|priority: expected an integer in 0..9, got '10'
oops every 5m tasks.add [1] queue=a/b|queue: expected 1..100 of [A-Za-z0-9._-], got 'a/b'
oops every 5m tasks.add [1] retries=3|unknown option 'retries=3'
good every 5m tasks.add [1]|name 'good' is already used on line 1
oops hourly tasks.add [1]|expected 'every' or 'at' after the name, got 'hourly'
EOF
    assert_equal "$(rcli dbsize)" 0 # no message, meta or slot key

    BEAT_SCHEDULE=$BATS_TEST_TMPDIR/absent run -1 --separate-stderr beat
    [[ $stderr == *"beat: $BATS_TEST_TMPDIR/absent: No such file or directory; nothing enqueued"* ]]
    # with no BEAT_SCHEDULE, a host without cron/schedule has nothing to do
    mkdir -p "$BATS_TEST_TMPDIR/root/cron"
    GW_ROOT=$BATS_TEST_TMPDIR/root run -0 env -u BEAT_SCHEDULE "$CRON/beat"
    assert_output "beat: no $BATS_TEST_TMPDIR/root/cron/schedule: nothing scheduled (cron/schedule.example shows the format)"
    printf 'one every 1m tasks.add [1, 1]\n' >"$BATS_TEST_TMPDIR/root/cron/schedule"
    GW_ROOT=$BATS_TEST_TMPDIR/root run -0 --separate-stderr env -u BEAT_SCHEDULE "$CRON/beat" --now "$T"
    assert_output "beat: 1 entry: 1 sent, 0 already sent, 0 not due, 0 failed"
    assert_equal "$(rcli llen celery)" 1
}

@test "cron/schedule.example is a valid schedule" {
    BEAT_SCHEDULE=$CRON/schedule.example run -0 --separate-stderr beat --now $((T0 + 2 * 3600 + 1800))
    assert_output "beat: 4 entries: 3 sent, 0 already sent, 1 not due, 0 failed"
    assert_equal "$(rcli llen celery)" 2
    assert_equal "$(rcli llen reports)" 1
}

# ---- qrunctl and the crontab ---------------------------------------------

@test "qrunctl: usage errors exit 2, a missing or unreachable Redis 1" {
    local args
    for args in "" "nope" "reap extra" "reap --lease" "reap --lease 1" "reap --lease 2 --lease 3" \
        "promote now" "purge --max-age 0" "purge --max-count" "beat" "beat --now 5" \
        "beat f --now -1" "beat f --now x" "beat f --later 5"; do
        # shellcheck disable=SC2086
        run -2 --separate-stderr qrunctl $args
        [[ $stderr == *"usage: qrunctl reap [--lease S]"* ]]
    done
    run -1 --separate-stderr env -u REDIS_URL "$GW_BIN/qrunctl" promote
    [[ $stderr == *"qrunctl - ERROR - conf: REDIS_URL is required" ]]
    REDIS_URL=unix://$BATS_TEST_TMPDIR/none.sock run -1 --separate-stderr qrunctl reap
    [[ $stderr == *"qrunctl - ERROR - reap: Redis: "* ]]
    assert_output ""
    RUNNER_LEASE=1 run -1 --separate-stderr qrunctl reap
    [[ $stderr == *"conf: RUNNER_LEASE: expected an integer in 2..3600, got '1'" ]]
    run -0 qrunctl reap --lease 2
    assert_output "reap: 0 task(s) put back (lease 2s)"
}

@test "the crontab's lines run as shipped: every minute keepalive, sweep and beat; purge hourly" {
    run -0 grep -E '^[^#[:space:]]+=' "$CRON/crontab"
    assert_equal "$(printf '%s\n' "${lines[@]}" | cut -d= -f1 | tr '\n' ' ')" "GW_ROOT GW_STATE REDIS_URL_FILE SHELL "
    run -0 grep -E '^[0-9*]' "$CRON/crontab"
    assert_equal "${#lines[@]}" 4
    assert_equal "$(printf '%s\n' "${lines[@]}" | awk '{ print $1, $2, $3, $4, $5, $6 }')" \
        '* * * * * $GW_ROOT/cron/keepalive
* * * * * $GW_ROOT/cron/sweep
* * * * * $GW_ROOT/cron/beat
17 * * * * $GW_ROOT/cron/purge'

    # each command as cron runs it (sh -c, the crontab's variables set)
    schedule 'tick  every 1m  tasks.add  [20, 22]'
    mkdir -p "$GW_STATE/log"
    local line cmd
    for line in "${lines[@]}"; do
        cmd=$(awk '{ for (i = 6; i <= NF; i++) printf "%s ", $i }' <<<"$line")
        GW_ROOT=$REPO SHELL=/bin/sh sh -c "$cmd" 3>&-
    done
    cat "$GW_STATE/run/queue-runner.pid" >>"$BATS_TEST_TMPDIR/kept"
    run -0 cat "$GW_STATE/log/cron.log"
    assert_line "keepalive: started queue-runner ($(sed 's/^/pid /' "$GW_STATE/run/queue-runner.pid"))"
    assert_line "reap: 0 task(s) put back (lease 10s)"
    assert_line "promote: 0 due message(s) moved to their queues"
    assert_line "beat: 1 entry: 1 sent, 0 already sent, 0 not due, 0 failed"
    assert_line "purge: 0 failed entries removed (max-age 604800s, max-count 10000)"
    # the runner it started runs what beat sent
    retry 100 0.1 grep -q 'Task tasks.add\[.*\] succeeded in .*: 42' "$GW_STATE/log/runner.log"
}

@test "keepalive's runner and its workers hold Redis's URL and no other secret, whatever the settings file gave" {
    # as cron runs it from a settings file with every secret of the stack,
    # as values and as files
    local d=$BATS_TEST_TMPDIR/secrets
    mkdir -p "$d"
    echo 'k1:c2VjcmV0LXRva2VuLWtleS1vZi10aGUtdGVzdA' >"$d/tk"
    echo 'postgresql:///app?password=pg-secret' >"$d/db"
    echo 'dGhpcy1pcy1hLWZlcm5ldC1rZXktb2YtMzItYnl0ZXM=' >"$d/fk"
    run -0 env -i PATH="$PATH" GW_BIN="$GW_BIN" GW_STATE="$GW_STATE" RUNNER_ARGS="-c 2" \
        REDIS_URL="$REDIS_URL" DATABASE_URL="$(cat "$d/db")" TOKEN_KEYS="$(cat "$d/tk")" \
        FERNET_KEYS="$(cat "$d/fk")" DATABASE_URL_FILE="$d/db" TOKEN_KEYS_FILE="$d/tk" \
        FERNET_KEYS_FILE="$d/fk" "$CRON/keepalive" 3>&-
    kept_pid >>"$BATS_TEST_TMPDIR/kept"
    assert_output --regexp '^keepalive: started queue-runner'
    # the supervisor and its two workers
    retry 50 0.1 eval '[ "$(runners | wc -l)" = 3 ]'
    local p
    for p in $(runners); do
        assert_equal "$p: $(secret_env "$p")" "$p: REDIS_URL=$REDIS_URL"
    done
}

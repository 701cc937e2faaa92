#!/usr/bin/env bats
# Retries, countdown/eta/expires, priorities and named queues (issue 4,
# queue part 2), on a private redis with the real queue-runner, lighttpd and
# Python Celery (client and worker). Each test has its own redis, and its own
# runners and gateway when it needs them; teardown stops them all and fails
# on sanitizer reports in their logs.
#
# The contract is notes/issue4-design.md: delayed and retry messages wait in
# the ZSET qrun:scheduled:<queue> (member: the raw Celery message, score: its
# eta in ms) until a runner's supervisor promotes them (every 250 ms); a
# retry message is Celery's (same id, retries+1, eta, new delivery_tag,
# parent_id = id); backoff = random(0, min(cap, base * 2^retries)).

load helpers
load queue

setup() {
    start_redis
}

teardown() {
    local rc=0
    stop_watch
    queue_teardown || rc=1
    return "$rc"
}

# wait_until_ms T: until the clock passes T (ms since epoch)
wait_until_ms() { while [ "$(now_ms)" -lt "$1" ]; do sleep 0.05; done; }

# iso_ms ISO: an ISO-8601 time (offset, Z, or naive = UTC) in ms since epoch
iso_ms() {
    "$PY" -c 'import sys, datetime as d
t = d.datetime.fromisoformat(sys.argv[1].replace("Z", "+00:00"))
if t.tzinfo is None:
    t = t.replace(tzinfo=d.timezone.utc)
print(round(t.timestamp() * 1000))' "$1"
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

# result ID: the stored result, as compact JSON

# start_watch QUEUE: record every message that enters qrun:scheduled:QUEUE
# (tests/celery/watch_scheduled.py) into $WATCH_OUT, one JSON line each
start_watch() {
    WATCH_OUT=$BATS_TEST_TMPDIR/scheduled.jsonl
    WATCH_STOP=$BATS_TEST_TMPDIR/scheduled.stop
    REDIS_SOCK=$REDIS_SOCK "$PY" "$CELERY_DIR/watch_scheduled.py" "$1" "$WATCH_OUT" "$WATCH_STOP" 120 \
        >"$BATS_TEST_TMPDIR/watch.out" 2>&1 3>&- </dev/null &
    WATCH_PID=$!
    retry 100 0.05 test -e "$WATCH_OUT.ready"
}

stop_watch() {
    [ -n "${WATCH_PID:-}" ] || return 0
    touch "$WATCH_STOP"
    retry 50 0.1 gone "$WATCH_PID" || kill "$WATCH_PID" 2>/dev/null
    wait "$WATCH_PID" 2>/dev/null || true
    WATCH_PID=
}

nothing_left() {
    assert_equal "$(rcli zcard qrun:scheduled:celery)" 0
    assert_equal "$(rcli llen celery)" 0
    assert_equal "$(inflight_count)" 0
}

@test "tasks.flaky(2) by POST: RETRY with the error while it waits, then SUCCESS with 2" {
    start_gateway GW_PROCS=1
    submit flaky '{"args":[2]}'
    assert_equal "$status" 202
    local id=$ID
    # the runner's only worker is busy with this one while the retry waits,
    # so RETRY lasts long enough to be seen whatever the jitter
    submit sleep '{"args":[2]}'
    local busy=$ID
    TASK_RETRY_BACKOFF_MS=100 start_runner -c 1
    wait_status "$id" RETRY 100
    api GET "/api/tasks/$id"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[j["id"], j["task"], j["status"], j["date_done"]]')" \
        "[\"$id\",\"tasks.flaky\",\"RETRY\",null]"
    [[ $(jget "$body" 'j["error"]') =~ ^ValueError:\ flaky:\ attempt\ [12]\ of\ 3\ failed$ ]]
    assert_equal "$(jget "$body" 'j["result"]["exc_type"]')" ValueError
    assert_equal "$(jget "$body" '"retries" not in j or j["retries"] in (0, 1, 2)')" true
    assert_equal "$(meta_status "$busy")" STARTED

    api GET "/api/tasks/$id?wait=15"
    retry 100 0.1 status_is "$id" SUCCESS
    api GET "/api/tasks/$id"
    assert_equal "$(jget "$body" '[j["status"], j["result"], "error" in j]')" '["SUCCESS",2,false]'
    assert_equal "$(succeeded "$id")" 1
    wait_status "$busy" SUCCESS
    nothing_left
}

@test "tasks.flaky(100) ends FAILURE with the last error after the default 3 retries; TASK_MAX_RETRIES changes it" {
    start_gateway GW_PROCS=1
    TASK_RETRY_BACKOFF_MS=100 start_runner -c 1
    submit flaky '{"args":[100]}'
    assert_equal "$status" 202
    local id=$ID
    wait_status "$id" FAILURE 100
    # the 4th attempt's error: 3 retries, and the last error kept
    assert_equal "$(result "$id")" \
        '{"exc_type":"ValueError","exc_message":["flaky: attempt 4 of 101 failed"],"exc_module":"builtins"}'
    api GET "/api/tasks/$id"
    assert_equal "$(jget "$body" '[j["status"], j["error"]]')" \
        '["FAILURE","ValueError: flaky: attempt 4 of 101 failed"]'
    assert_equal "$(jget "$body" '"retries" not in j or j["retries"] == 3')" true
    # the message kept for a re-run is the last one: retries 3
    local m
    m=$(rcli get "qrun:failedmsg:$id")
    assert_equal "$(jget "$m" '[j["headers"]["id"], j["headers"]["retries"]]')" "[\"$id\",3]"
    assert_equal "$(succeeded "$id")" 0
    nothing_left
    stop_runner

    TASK_MAX_RETRIES=0 start_runner -c 1
    submit flaky '{"args":[100]}'
    wait_status "$ID" FAILURE 50
    assert_equal "$(jget "$(meta "$ID")" 'j["result"]["exc_message"]')" '["flaky: attempt 1 of 101 failed"]'
    stop_runner
    TASK_MAX_RETRIES=1 TASK_RETRY_BACKOFF_MS=50 start_runner -c 1
    submit flaky '{"args":[1]}'
    wait_status "$ID" SUCCESS 50
    assert_equal "$(result "$ID")" 1
}

@test "the retry message is Celery's: same id, retries+1, an eta (its ZSET score), a new delivery_tag, parent_id = id" {
    run -0 taskctl send flaky 2
    local id=$output orig
    orig=$(rcli lindex celery 0)
    assert_equal "$(jget "$orig" 'j["headers"]["id"]')" "$id"
    start_watch celery
    TASK_RETRY_BACKOFF_MS=2500 TASK_RETRY_BACKOFF_MAX_MS=2500 start_runner -c 1
    wait_status "$id" SUCCESS 120
    assert_equal "$(result "$id")" 2
    stop_watch
    # both retry messages were seen waiting in qrun:scheduled:celery
    "$PY" - "$WATCH_OUT" "$id" "$orig" <<'EOF'
import base64, datetime, json, re, sys
path, tid, orig = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
rows = [json.loads(l) for l in open(path)]
def fail(why):
    print(why, json.dumps(rows, indent=1), file=sys.stderr)
    sys.exit(1)
if len(rows) != 2:
    fail(f"want 2 retry messages, saw {len(rows)}")
tags = {orig["properties"]["delivery_tag"]}
future = 0
for want, row in zip((1, 2), sorted(rows, key=lambda r: json.loads(r["msg"])["headers"]["retries"])):
    m = json.loads(row["msg"])
    h, p = m["headers"], m["properties"]
    got = (h["id"], h["task"], h["retries"], h["root_id"], h["parent_id"], p["correlation_id"],
           p["delivery_info"]["routing_key"], p.get("priority"), m["content-type"], p["body_encoding"])
    if got != (tid, "tasks.flaky", want, tid, tid, tid, "celery", 0, "application/json", "base64"):
        fail(f"retry message {want}: {got}")
    body = json.loads(base64.b64decode(m["body"]))
    if body[0] != [2] or body[1] != {} or not isinstance(body[2], dict):
        fail(f"body changed: {body}")
    if p["delivery_tag"] in tags:
        fail(f"delivery_tag reused: {p['delivery_tag']}")
    tags.add(p["delivery_tag"])
    eta = h["eta"]
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(\+00:00|Z)", eta or ""):
        fail(f"eta not ISO-8601 UTC: {eta!r}")
    eta_ms = datetime.datetime.fromisoformat(eta.replace("Z", "+00:00")).timestamp() * 1000
    if abs(eta_ms - row["score"]) > 1:
        fail(f"score {row['score']} is not the eta {eta} ({eta_ms})")
    # scheduled at most the cap ahead; promoted at most a tick (250 ms) late
    if not (row["seen_ms"] - 300 <= eta_ms <= row["seen_ms"] + 2500 + 5):
        fail(f"eta {eta_ms} out of range for a message seen at {row['seen_ms']}")
    future += eta_ms > row["seen_ms"]
if future == 0:
    fail("no retry message had its eta in the future")
EOF
    assert_equal "$(succeeded "$id")" 1
    nothing_left
}

@test "the backoff grows with full jitter and is bounded by TASK_RETRY_BACKOFF_MAX_MS" {
    local -a ids
    local i
    for i in $(seq 1 16); do
        run -0 taskctl send flaky 3
        ids+=("$output")
    done
    start_watch celery
    TASK_RETRY_BACKOFF_MS=150 TASK_RETRY_BACKOFF_MAX_MS=450 start_runner -c 2
    for i in "${ids[@]}"; do
        wait_status "$i" SUCCESS 150
        assert_equal "$(result "$i")" 3
    done
    stop_watch
    # delay estimate = eta - when first seen (<= the real delay); bounds:
    # retry 1: 150, retry 2: 300, retry 3: min(450, 600) = 450
    "$PY" - "$WATCH_OUT" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {1: [], 2: [], 3: []}
for r in rows:
    m = json.loads(r["msg"])
    by[m["headers"]["retries"]].append(r["score"] - r["seen_ms"])
print({k: sorted(round(d) for d in v) for k, v in by.items()}, file=sys.stderr)
bound = {1: 150, 2: 300, 3: 450}
for k, v in by.items():
    assert len(v) >= 13, f"retry {k}: only {len(v)} of 16 messages seen"
    assert max(v) <= bound[k] + 2, f"retry {k}: a delay over its bound {bound[k]}: {max(v)}"
    assert min(v) >= -300, f"retry {k}: a message seen {-min(v)} ms after its eta"
# growth: the second retries wait longer than the first could; on average
# the third wait longer than the first
assert max(by[2]) > bound[1], f"no second retry waited over {bound[1]} ms"
assert statistics.mean(by[3]) > statistics.mean(by[1]), "no growth from retry 1 to retry 3"
# jitter: not one fixed delay
assert max(by[1]) - min(by[1]) > 30 and max(by[3]) - min(by[3]) > 60, "no jitter"
EOF
    nothing_left
}

@test "kill -9 of the runner during a retry backoff loses nothing: a new runner finishes the task" {
    RUNNER_LEASE=2 TASK_RETRY_BACKOFF_MS=4000 TASK_RETRY_BACKOFF_MAX_MS=4000 start_runner -c 1
    local first=$RUNNER_PID kids
    run -0 taskctl send flaky 1
    local id=$output
    wait_status "$id" RETRY 100
    kids=$(runner_children "$first")
    kill -KILL "$first"
    wait "$first" || true
    for k in $kids; do retry 50 0.1 gone "$k"; done
    # the retry message is held by Redis: scheduled (or, if it came due
    # already, queued or in the dead runner's in-flight list)
    assert_equal $(($(rcli zcard qrun:scheduled:celery) + $(rcli llen celery) + $(inflight_count))) 1
    assert_equal "$(meta_status "$id")" RETRY

    SECONDS=0
    RUNNER_LEASE=2 TASK_RETRY_BACKOFF_MS=4000 TASK_RETRY_BACKOFF_MAX_MS=4000 start_runner -c 1
    wait_status "$id" SUCCESS 120
    # backoff (4 s at most) + lease (2 s) + sweep + slack
    [ "$SECONDS" -lt 10 ]
    assert_equal "$(result "$id")" 1
    assert_equal "$(succeeded "$id")" 1
    nothing_left
}

@test "countdown on POST: 202 with the eta; the task waits in qrun:scheduled:celery, not queued nor in flight, then runs once" {
    start_gateway GW_PROCS=1
    start_runner -c 1
    local t0 t1
    t0=$(now_ms)
    submit add '{"args":[2,3],"countdown":2}'
    t1=$(now_ms)
    assert_equal "$status" 202
    local id=$ID eta eta_ms
    assert_equal "$(jget "$body" '[sorted(j), j["id"], j["task"], j["status"]]')" \
        "[[\"eta\",\"id\",\"status\",\"task\"],\"$id\",\"tasks.add\",\"PENDING\"]"
    [[ $headers == *"location: /api/tasks/$id"* ]]
    eta=$(jget "$body" 'j["eta"]')
    [[ $eta =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(\+00:00|Z)$ ]]
    eta_ms=$(iso_ms "$eta")
    [ "$eta_ms" -ge $((t0 + 2000 - 2)) ] && [ "$eta_ms" -le $((t1 + 2000 + 2)) ] || false
    # in the ZSET, score = eta, the message carrying headers.eta
    local member score
    member=$(rcli zrange qrun:scheduled:celery 0 -1)
    score=$(rcli zscore qrun:scheduled:celery "$member")
    [ $((${score%.*} - eta_ms)) -ge -1 ] && [ $((${score%.*} - eta_ms)) -le 1 ] || false
    assert_equal "$(jget "$member" 'j["headers"]["id"]')" "$id"
    assert_equal "$(iso_ms "$(jget "$member" 'j["headers"]["eta"]')")" "$eta_ms"
    local check
    for check in 1 2; do
        assert_equal "$(rcli zcard qrun:scheduled:celery)" 1
        assert_equal "$(rcli llen celery)" 0
        assert_equal "$(inflight_count)" 0
        assert_equal "$(meta_status "$id")" PENDING
        # and again once a second of the countdown has gone by, the runner on
        wait_until_ms $((t0 + 1000))
    done
    wait_status "$id" SUCCESS 60
    assert_equal "$(result "$id")" 5
    local done_ms
    done_ms=$(iso_ms "$(jget "$(meta "$id")" 'j["date_done"]')")
    [ "$done_ms" -ge $((eta_ms - 1)) ] || { echo "done at $done_ms, before its eta $eta_ms"; false; }
    assert_equal "$(succeeded "$id")" 1
    nothing_left
}

@test "eta on POST as ISO-8601 (Z, an offset, naive = UTC): answered in UTC, run at that time" {
    start_gateway GW_PROCS=1
    local z off naive
    read -r z off naive < <("$PY" -c 'import datetime as d
t = d.datetime.now(d.timezone.utc).replace(microsecond=0) + d.timedelta(seconds=3)
print(t.strftime("%Y-%m-%dT%H:%M:%SZ"),
      t.astimezone(d.timezone(d.timedelta(hours=2))).isoformat(),
      t.replace(tzinfo=None).isoformat())')
    local want
    want=$(iso_ms "$z")
    local -a ids
    local e
    for e in "$z" "$off" "$naive"; do
        submit add "{\"args\":[1,2],\"eta\":\"$e\"}"
        assert_equal "$status" 202
        ids+=("$ID")
        assert_equal "$(iso_ms "$(jget "$body" 'j["eta"]')")" "$want"
        [[ $(jget "$body" 'j["eta"]') =~ (\+00:00|Z)$ ]]
    done
    assert_equal "$(rcli zcount qrun:scheduled:celery "$want" "$want")" 3
    start_runner -c 1
    for e in "${ids[@]}"; do
        wait_status "$e" SUCCESS 80
        [ "$(iso_ms "$(jget "$(meta "$e")" 'j["date_done"]')")" -ge $((want - 1)) ]
        assert_equal "$(succeeded "$e")" 1
    done
    nothing_left
}

@test "a countdown longer than the lease runs exactly once, across a runner killed and another started" {
    start_gateway GW_PROCS=1
    RUNNER_LEASE=2 start_runner -c 1
    local first=$RUNNER_PID t0
    t0=$(now_ms)
    # one from Celery's client (claimed, then moved to the ZSET by the
    # runner), one by POST (straight into the ZSET)
    run -0 --separate-stderr pyq send_countdown 6 4 5
    local py=$output
    submit add '{"args":[1,1],"countdown":6}'
    assert_equal "$status" 202
    local web=$ID
    retry 50 0.1 eval '[ "$(rcli zcard qrun:scheduled:celery)" = 2 ]'
    assert_equal "$(rcli llen celery)" 0
    assert_equal "$(inflight_count)" 0
    # more than a lease goes by with the runner alive and holding nothing
    wait_until_ms $((t0 + 3000))
    assert_equal "$(rcli zcard qrun:scheduled:celery)" 2
    assert_equal "$(inflight_count)" 0
    kill -KILL "$first"
    wait "$first" || true
    RUNNER_LEASE=2 start_runner -c 1
    wait_status "$py" SUCCESS 150
    wait_status "$web" SUCCESS 50
    assert_equal "$(result "$py")" 9
    assert_equal "$(result "$web")" 2
    local d
    for d in "$py" "$web"; do
        [ "$(iso_ms "$(jget "$(meta "$d")" 'j["date_done"]')")" -ge $((t0 + 6000 - 5)) ]
        assert_equal "$(succeeded "$d")" 1
    done
    nothing_left
}

@test "expires: a task past its expires is REVOKED \"expired\" and never run" {
    start_gateway GW_PROCS=1
    local t0
    t0=$(now_ms)
    submit add '{"args":[1,1],"expires":1}'
    assert_equal "$status" 202
    local short=$ID
    # expires before it comes due
    submit add '{"args":[1,2],"countdown":2,"expires":1}'
    assert_equal "$status" 202
    local delayed=$ID
    # Celery's client, an expires in the past
    run -0 --separate-stderr pyq send_expired 1 3
    local py=$output
    wait_until_ms $((t0 + 1300))
    start_runner -c 1
    local i
    for i in "$short" "$py" "$delayed"; do
        wait_status "$i" REVOKED 60
        assert_equal "$(result "$i")" \
            '{"exc_type":"TaskRevokedError","exc_message":["expired"],"exc_module":"celery.exceptions"}'
        assert_equal "$(succeeded "$i")" 0
    done
    api GET "/api/tasks/$short"
    assert_equal "$(jget "$body" 'j["status"]')" REVOKED
    [[ $(jget "$body" 'j.get("error", "")') == *expired* ]]
    # an expires far enough away does not stop it
    submit add '{"args":[2,2],"expires":60}'
    wait_status "$ID" SUCCESS
    assert_equal "$(result "$ID")" 4
    nothing_left
}

@test "bad countdown, eta, expires, queue or priority: 422 with the loc; countdown with eta: 422; nothing queued" {
    local long
    long=$(printf 'q%.0s' $(seq 1 101))
    # queues no runner consumes are served when TASK_QUEUES names them
    start_gateway GW_PROCS=1 TASK_QUEUES="celery,a.B_c-1,${long:1}"
    local c field value
    for c in 'countdown|-1' 'countdown|31536001' 'countdown|"5"' 'countdown|true' 'countdown|[]' \
        'eta|"not a date"' 'eta|5' 'eta|"2026-13-01T00:00:00Z"' 'eta|""' 'eta|true' \
        'expires|0' 'expires|-5' 'expires|31536001' 'expires|"yesterday"' 'expires|true' 'expires|[]' \
        'queue|""' 'queue|"a b"' "queue|\"$long\"" 'queue|5' 'queue|"q/2"' 'queue|"caf\u00e9"' \
        'priority|-1' 'priority|10' 'priority|1.5' 'priority|"5"' 'priority|true'; do
        field=${c%%|*} value=${c#*|}
        submit add "{\"args\":[1,2],\"$field\":$value}"
        [ "$status" = 422 ] || { echo "$field=$value: $status $body"; false; }
        assert_equal "$(jget "$body" 'j["detail"][0]["loc"]')" "[\"body\",\"$field\"]"
        [ -n "$(jget "$body" 'j["detail"][0]["msg"]')" ]
    done
    submit add '{"args":[1,2],"countdown":5,"eta":"2030-01-01T00:00:00Z"}'
    assert_equal "$status" 422
    assert_equal "$(jget "$body" 'j["detail"][0]["loc"][0]')" body
    # none of them queued or scheduled anything, nor stored a PENDING
    assert_equal "$(rcli --scan --pattern 'qrun:scheduled:*')" ""
    assert_equal "$(rcli --scan --pattern 'celery-task-meta-*')" ""
    assert_equal "$(rcli llen celery)" 0

    # the edges are fine: a 1-year countdown, a 100-character queue, priority 9
    local t0
    t0=$(now_ms)
    submit add '{"args":[1,2],"countdown":31536000}'
    assert_equal "$status" 202
    local eta_ms
    eta_ms=$(iso_ms "$(jget "$body" 'j["eta"]')")
    [ $((eta_ms - t0 - 31536000000)) -ge -2 ] && [ $((eta_ms - t0 - 31536000000)) -le 2000 ] || false
    assert_equal "$(rcli zcard qrun:scheduled:celery)" 1
    long=${long:1}
    submit add "{\"args\":[1,2],\"queue\":\"$long\",\"priority\":9}"
    assert_equal "$status" 202
    assert_equal "$(rcli llen "$long"$'\x06\x16'9)" 1
    submit add '{"args":[1,2],"queue":"a.B_c-1","priority":0}'
    assert_equal "$status" 202
    assert_equal "$(rcli llen a.B_c-1)" 1
}

@test "priorities: priority 0 runs before 5, and 5 before 9, whatever the order they were queued in" {
    start_gateway GW_PROCS=1
    local -a p9 p5 p0
    local i
    for i in 1 2 3; do
        submit add "{\"args\":[$i,900],\"priority\":9}"
        assert_equal "$status" 202
        p9+=("$ID")
    done
    submit add '{"args":[1,500],"priority":5}'
    p5+=("$ID")
    for i in 1 2 3; do
        submit add "{\"args\":[$i,0],\"priority\":0}"
        assert_equal "$status" 202
        p0+=("$ID")
    done
    # Celery's Redis bands: 0 -> celery, 5 -> celery\x06\x163, 9 -> celery\x06\x169
    assert_equal "$(rcli llen celery)" 3
    assert_equal "$(rcli llen $'celery\x06\x163')" 1
    assert_equal "$(rcli llen $'celery\x06\x169')" 3
    start_runner -c 1
    for i in "${p9[@]}"; do wait_status "$i" SUCCESS; done
    for i in "${p0[@]}" "${p5[@]}"; do assert_equal "$(meta_status "$i")" SUCCESS; done
    local order want
    order=$(grep -o 'Task tasks\.add\[[^]]*\] succeeded' "$RUNNER_LOG" | sed 's/.*\[\(.*\)\].*/\1/' | tr '\n' ' ')
    want="${p0[*]} ${p5[*]} ${p9[*]} "
    assert_equal "$order" "$want"
}

@test "named queues: a task for q2 is run only by a runner on q2; -Q q1,q2 consumes both" {
    # q1: served because a live runner consumes it; q2: because it is listed
    start_gateway GW_PROCS=1 TASK_QUEUES=celery,q2
    start_runner -c 1 -Q q1
    submit add '{"args":[2,2],"queue":"q2"}'
    assert_equal "$status" 202
    local x=$ID
    submit add '{"args":[1,1],"queue":"q1"}'
    local y=$ID
    wait_status "$y" SUCCESS
    # the q1 task, queued after it, ran; the q2 one waits for its runner
    assert_equal "$(meta_status "$x")" PENDING
    assert_equal "$(rcli llen q2)" 1
    assert_equal "$(rcli sismember qrun:queues q2)" 1
    assert_equal "$(jget "$(rcli lindex q2 0)" 'j["properties"]["delivery_info"]["routing_key"]')" q2
    start_runner -c 1 -Q q2
    wait_status "$x" SUCCESS
    assert_equal "$(result "$x")" 4
    stop_runners

    start_runner -c 1 -Q q1,q2
    submit add '{"args":[3,3],"queue":"q1"}'
    local a=$ID
    submit add '{"args":[4,4],"queue":"q2"}'
    local b=$ID
    submit add '{"args":[5,5]}'
    local c=$ID
    wait_status "$a" SUCCESS
    wait_status "$b" SUCCESS
    assert_equal "$(result "$b")" 8
    # not its queue: celery
    assert_equal "$(meta_status "$c")" PENDING
    assert_equal "$(rcli llen celery)" 1
}

@test "Celery's apply_async(countdown=2) is run by our runner once, not before its eta, and .get() returns" {
    start_runner -c 1
    run -0 --separate-stderr pyq countdown 2 4 5
    [[ $output =~ ^([0-9a-f-]{36})\ 9\ ([0-9.]+)\ ([0-9.]+)$ ]] || { echo "$output $stderr"; false; }
    local id=${BASH_REMATCH[1]} sent=${BASH_REMATCH[2]} got=${BASH_REMATCH[3]}
    local done_ms
    done_ms=$(iso_ms "$(jget "$(meta "$id")" 'j["date_done"]')")
    local sent_ms=${sent/./}
    [ "$done_ms" -ge $((sent_ms + 2000 - 5)) ] || { echo "ran at $done_ms, sent at $sent_ms"; false; }
    run -0 awk -v a="$got" -v b="$sent" 'BEGIN { exit !(a - b >= 1.99 && a - b < 8) }'
    assert_equal "$(succeeded "$id")" 1
    nothing_left
}

@test "a Celery client sees RETRY during our backoff, and .get() raises the last ValueError once retries are exhausted" {
    TASK_RETRY_BACKOFF_MS=600 start_runner -c 1
    run -0 --separate-stderr pyq retry_state 100
    [[ $output =~ ^([0-9a-f-]{36})\ ([A-Z,]+)\ builtins\.ValueError\ \[\'flaky:\ attempt\ 4\ of\ 101\ failed\'\]$ ]] ||
        { echo "$output $stderr"; false; }
    local id=${BASH_REMATCH[1]} states=${BASH_REMATCH[2]}
    [[ ,$states, == *,RETRY,* ]] || { echo "states seen: $states"; false; }
    [[ $states == *,FAILURE ]]
    assert_equal "$(meta_status "$id")" FAILURE
}

@test "a retry message our runner scheduled is run by a real Python Celery worker" {
    run -0 taskctl send flaky 1
    local id=$output
    # the runner's only worker is busy with this while the retry comes due
    run -0 taskctl send sleep 4
    local busy=$output
    TASK_RETRY_BACKOFF_MS=1000 start_runner -c 1
    wait_status "$id" RETRY 100
    wait_status "$busy" STARTED 50
    # promoted back to the queue (the ZSET empty), waiting for a free worker
    retry 50 0.1 eval '[ "$(rcli zcard qrun:scheduled:celery)" = 0 ] && [ "$(rcli llen celery)" = 1 ]'
    assert_equal "$(jget "$(rcli lindex celery 0)" '[j["headers"]["id"], j["headers"]["retries"]]')" "[\"$id\",1]"
    # SIGTERM: the runner finishes the sleep and leaves the retry queued
    stop_runner
    assert_equal "$(meta_status "$busy")" SUCCESS
    assert_equal "$(meta_status "$id")" RETRY
    assert_equal "$(rcli llen celery)" 1
    assert_equal "$(succeeded "$id")" 0

    start_celery_worker
    wait_status "$id" SUCCESS 100
    assert_equal "$(result "$id")" 1
    run -0 grep -cF "Task tasks.flaky[$id] succeeded in " "$CELERY_LOG"
    assert_output 1
    nothing_left
}

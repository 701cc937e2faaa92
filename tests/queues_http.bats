#!/usr/bin/env bats
# GET /api/queues (fcgi/queues.c, lib/qstat.c) through the real gateway: a
# private Redis, lighttpd as shipped (with its authorizer), and the
# queue-runner of the build under test. One redis and one gateway for the
# file, both with RUNNER_LEASE=3 so a dead runner drops out quickly; every
# test starts from an empty Redis and leaves no runner behind.

load helpers
load queue

LEASE=3

setup_file() {
    start_redis
    # (no ASan quarantine: the memory test measures the sanitizer build too)
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=0" start_gateway GW_PROCS=2 RUNNER_LEASE=$LEASE
}

teardown_file() {
    stop_route_gateway
    stop_redis
}

setup() {
    redis_up || redis_launch # a test may have stopped it
    rcli flushall >/dev/null
}

teardown() {
    stop_runners
}

# queues: GET /api/queues, must be 200 JSON; the body in $body
queues() {
    api GET /api/queues
    if [ "$status" != 200 ]; then
        echo "GET /api/queues: $status $body" >&2
        return 1
    fi
    [[ $headers == *"content-type: application/json"* ]]
}

# qf QUEUE FIELD: that field of that queue in $body ("absent" if not listed)
qf() {
    jget "$body" "next((q[\"$2\"] if q[\"$2\"] is not None else 'null'
        for q in j['queues'] if q['name'] == '$1'), 'absent')"
}

# names: the listed queue names, comma-separated, in order
names() { jget "$body" '",".join(q["name"] for q in j["queues"])'; }

# queue_is QUEUE FIELD VALUE: GET, then the field has that value (for retry)
queue_is() { queues && [ "$(qf "$1" "$2")" = "$3" ]; }

# push QUEUE PRIORITY N [TASK [ARGS-JSON]]: LPUSH N Celery messages for
# QUEUE, as kombu does, onto the list of their priority band
push() {
    "$PY" - "$CELERY_DIR" "$@" <<'PY'
import json, os, sys, uuid
sys.path.insert(0, sys.argv[1])
import enqueue, redis
queue, prio, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
task = sys.argv[5] if len(sys.argv) > 5 else "tasks.add"
args = json.loads(sys.argv[6]) if len(sys.argv) > 6 else [1, 2]
band = 0 if prio < 3 else 3 if prio < 6 else 6 if prio < 9 else 9
key = queue if band == 0 else queue + "\x06\x16" + str(band)
r = redis.Redis(unix_socket_path=os.environ["REDIS_SOCK"], password=open(os.environ["REDIS_DIR"] + "/password").read().strip())
for _ in range(n):
    m = json.loads(enqueue.message(task, args, str(uuid.uuid4()), queue))
    m["properties"]["priority"] = prio
    r.lpush(key, json.dumps(m))
PY
}

# gt A B: A > B, as numbers
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 > b + 0) }'; }


@test "an empty system: celery alone, nothing waiting, no runners" {
    queues
    assert_equal "$body" '{"queues":[{"name":"celery","depth":0,"oldest_age_seconds":null,"in_flight":0,"scheduled":0,"failed":0}],"runners":[]}'
    # HEAD: the same status and headers, no body
    run -0 curl -s -m 5 -I -H "$AUTH" "$BASE/api/queues"
    assert_line --index 0 --regexp '^HTTP/1.1 200 OK'
    assert_line --partial 'Content-Type: application/json'
    refute_line --partial '"queues"'
}

@test "depth sums the four priority bands; known queues are listed, sorted by name" {
    push pq 0 1
    push pq 4 2
    push pq 7 3
    push pq 9 4
    push celery 9 1
    rcli sadd qrun:queues pq zeta alpha >/dev/null
    # the real producer: POST /api/tasks puts one more on celery
    api POST /api/tasks/add -H 'Content-Type: application/json' -d '{"args":[1,2]}'
    assert_equal "$status" 202
    queues
    assert_equal "$(names)" "alpha,celery,pq,zeta"
    assert_equal "$(qf pq depth)" 10
    assert_equal "$(qf celery depth)" 2
    assert_equal "$(qf alpha depth)" 0
    assert_equal "$(qf alpha oldest_age_seconds)" null
    assert_equal "$(qf zeta in_flight)" 0
    # a list under a band of a queue nobody knows is not a queue of ours
    push ghost 9 1
    queues
    assert_equal "$(qf ghost depth)" absent
}

@test "the oldest waiting message's age grows, survives the others, and is null once drained" {
    push celery 0 1
    queues
    local a0 a1
    a0=$(qf celery oldest_age_seconds)
    gt 1 "$a0"
    sleep 1.5
    push celery 0 2 # newer messages do not make the line younger
    push celery 6 1 # nor does one in another band
    queues
    assert_equal "$(qf celery depth)" 4
    a1=$(qf celery oldest_age_seconds)
    echo "oldest age: $a0 -> $a1" >&3
    gt "$a1" 1.4
    gt 10 "$a1"
    # a runner drains the queue: empty again, no age, no bookkeeping left
    RUNNER_LEASE=$LEASE start_runner -c 1
    retry 100 0.1 queue_is celery depth 0
    assert_equal "$(qf celery oldest_age_seconds)" null
    assert_equal "$(rcli exists qrun:seen:celery)" 0
    # the next message starts young
    stop_runners
    push celery 0 1
    queues
    gt 1 "$(qf celery oldest_age_seconds)"
}

@test "in-flight messages are counted per queue while a runner is busy with them" {
    RUNNER_LEASE=$LEASE start_runner -c 4 -Q busy,celery
    push busy 0 2 tasks.sleep '[4]'
    push busy 9 1 tasks.sleep '[4]'
    api POST /api/tasks/sleep -H 'Content-Type: application/json' -d '{"args":[4]}'
    assert_equal "$status" 202
    # every message claimed (the runner may take them in any order)
    retry 50 0.1 eval 'queue_is busy in_flight 3 && [ "$(qf celery in_flight)" = 1 ]'
    assert_equal "$(qf busy depth)" 0
    assert_equal "$(qf celery depth)" 0
    # the same as what Redis holds
    assert_equal "$(inflight_count)" 4
    # done: nothing in flight
    retry 100 0.1 eval 'queue_is busy in_flight 0 && [ "$(qf celery in_flight)" = 0 ]'
    assert_equal "$(inflight_count)" 0
}

@test "scheduled and failed counts per queue" {
    local now later
    now=$(now_ms)
    later=$((now + 3600000)) # an hour ahead: no promotion while the test runs
    rcli sadd qrun:queues s1 >/dev/null
    rcli zadd qrun:scheduled:s1 "$later" m1 "$((later + 1))" m2 >/dev/null
    rcli zadd qrun:failed:s1 "$now" id1 "$now" id2 "$now" id3 >/dev/null
    rcli zadd qrun:failed:celery "$now" id4 >/dev/null
    # entries for a queue nobody names are not listed
    rcli zadd qrun:scheduled:s2 "$later" m3 >/dev/null
    queues
    assert_equal "$(names)" "celery,s1"
    assert_equal "$(qf s1 scheduled)" 2
    assert_equal "$(qf s1 failed)" 3
    assert_equal "$(qf s1 depth)" 0
    assert_equal "$(qf celery scheduled)" 0
    assert_equal "$(qf celery failed)" 1
}

@test "live runners with their queues and concurrency; a killed one and a stale one are not listed" {
    RUNNER_LEASE=$LEASE start_runner -c 2 -Q qa,qb -n alpha
    local a=$RUNNER_PID
    RUNNER_LEASE=$LEASE start_runner -c 1 -n beta
    local b=$RUNNER_PID
    # a runner whose last heartbeat is older than the lease
    local old=$(($(now_ms) - (LEASE + 5) * 1000))
    rcli zadd qrun:runners "$old" ghost@nowhere:1:x >/dev/null
    rcli hset qrun:runner:ghost@nowhere:1:x host nowhere pid 1 queues qg concurrency 3 started "$old" >/dev/null
    queues
    assert_equal "$(jget "$body" 'len(j["runners"])')" 2
    assert_equal "$(jget "$body" '[[r["id"].split("@")[0], r["host"], r["pid"], r["queues"], r["concurrency"]] for r in j["runners"]]')" \
        "[[\"alpha\",\"$(hostname)\",$a,[\"qa\",\"qb\"],2],[\"beta\",\"$(hostname)\",$b,[\"celery\"],1]]"
    assert_equal "$(jget "$body" 'all(0 <= r["heartbeat_age_seconds"] < 3 for r in j["runners"])')" true
    # started: ISO-8601 UTC, within the last minute
    assert_equal "$(jget "$body" 'all(0 <= __import__("time").time() -
        __import__("datetime").datetime.fromisoformat(r["started"]).timestamp() < 60
        for r in j["runners"])')" true
    [[ $(jget "$body" 'j["runners"][0]["started"]') =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}\+00:00$ ]]
    # their queues are listed; the stale runner's is not
    assert_equal "$(names)" "celery,qa,qb"

    # kill -9: no more heartbeats, gone from the list once the lease is over
    kill -KILL "$a"
    retry 100 0.1 eval 'queues && [ "$(jget "$body" "[r[\"pid\"] for r in j[\"runners\"]]")" = "[$b]" ]'
}

@test "without a valid token: 401" {
    NOAUTH=1 api GET /api/queues
    assert_equal "$status" 401
    [[ $headers == *"www-authenticate: bearer"* ]]
    NOAUTH=1 api GET /api/queues -H 'Authorization: Bearer not.a.token'
    assert_equal "$status" 401
}

@test "methods other than GET and HEAD: 405 with Allow" {
    local m
    for m in POST PUT DELETE PATCH; do
        api "$m" /api/queues -d ''
        assert_equal "$status" 405
        [[ $headers == *"allow: get, head"* ]] # (http lower-cases the headers)
        assert_equal "$body" '{"detail":"Method Not Allowed"}'
    done
}

@test "anything below /api/queues, or next to it: 404" {
    local p
    for p in /api/queues/ /api/queues/celery /api/queues/x/y /api/queuesx; do
        api GET "$p"
        assert_equal "$status" 404
        assert_equal "$body" '{"detail":"Not Found"}'
    done
}

@test "at most 100 queues, the first by name, marked truncated" {
    rcli sadd qrun:queues $(printf 'q%03d ' $(seq 1 150)) >/dev/null
    queues
    assert_equal "$(jget "$body" 'len(j["queues"])')" 100
    assert_equal "$(jget "$body" 'j["queues"][0]["name"] + " " + j["queues"][-1]["name"]')" "celery q099"
    assert_equal "$(jget "$body" 'j.get("truncated")')" true
}

@test "Redis down: 503 with a JSON detail, at once; back: 200 again" {
    push celery 0 2
    queues
    stop_redis
    local t0=$SECONDS
    api GET /api/queues
    assert_equal "$status" 503
    assert_equal "$body" '{"detail":"Task queue unavailable, try again shortly"}'
    [[ $headers == *"content-type: application/json"* ]]
    [ $((SECONDS - t0)) -le 3 ]
    redis_launch
    retry 50 0.2 queue_is celery depth 2
}

# many N: N GETs of /api/queues, 8 at a time (curl_batch counts the statuses)
many() {
    local cfg="$BATS_TEST_TMPDIR/curl.cfg" i
    for i in $(seq 1 "$1"); do
        [ "$i" = 1 ] || echo next
        echo "url = \"$BASE/api/queues\""
        echo "header = \"$AUTH\""
        echo 'output = "/dev/null"'
        echo 'write-out = "%{http_code}\\n"'
    done >"$cfg"
    curl_batch "$cfg"
    run cat "$BATS_TEST_TMPDIR/codes"
    assert_output --regexp "^ *$1 200$"
}

# rss_sum: resident kB of this gateway's queues processes, summed
rss_sum() {
    local p n=0
    for p in $(route_pids queues); do n=$((n + $(rss_kb "$p"))); done
    echo "$n"
}

@test "the route processes' memory does not grow with requests" {
    RUNNER_LEASE=$LEASE start_runner -c 2 -Q m1,m2,m3
    push m1 0 3
    push m2 9 2
    rcli sadd qrun:queues $(printf 'k%02d ' $(seq 1 20)) >/dev/null
    rcli zadd qrun:failed:k01 1 x >/dev/null
    local pids before after
    pids=$(route_pids queues | sort)
    # warm-up: buffers at their largest, the allocator settled (the
    # sanitizer build's RSS still moves by a few hundred kB in the first round)
    many 1500
    many 1500
    before=$(rss_sum)
    many 1500
    after=$(rss_sum)
    echo "VmRSS of the queues processes: before ${before} kB, after ${after} kB" >&3
    assert_equal "$(route_pids queues | sort)" "$pids" # the same processes served them all
    # 2 x 256 kB over 1500 requests: a leak of 350 bytes a request fails here
    [ $((after - before)) -le 512 ]
}

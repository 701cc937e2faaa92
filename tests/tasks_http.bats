#!/usr/bin/env bats
# /api/tasks through the real gateway: submit, poll, wait; every documented
# bad input; many parked waiters that must not block other requests; Redis
# going away and coming back under a running lighttpd. One redis and one
# gateway (GW_PROCS=2) for the file; each test starts its own runner when it
# needs one, and leaves none behind.

load helpers
load queue

setup_file() {
    start_redis
    start_gateway GW_PROCS=2
}

teardown_file() {
    stop_route_gateway
    stop_redis
}

teardown() {
    stop_runners
}

# fast CODE CURL-ARGS...: the request (with the token) answers CODE in under 1 s
fast() {
    local want=$1 got
    shift
    got=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -m 5 -H "$AUTH" "$@")
    [[ $got == "$want "* ]] && awk -v t="${got#* }" 'BEGIN { exit !(t < 1) }' && return 0
    echo "$*: $got (want $want in under 1 s)"
    return 1
}

# assert_422: status 422, and detail is a non-empty list of FastAPI-shaped
# errors {"loc":[...],"msg":"...","type":"..."}
assert_422() {
    assert_equal "$status" 422
    assert_equal "$(jget "$body" 'len(j["detail"]) > 0 and all(
        isinstance(e["loc"], list) and len(e["loc"]) > 0 and e["loc"][0] == "body" or e["loc"][:1] == ["query"]
        for e in j["detail"]) and all(
        isinstance(e["msg"], str) and e["msg"] and isinstance(e["type"], str) and e["type"]
        for e in j["detail"])')" true
}

# connections_to PORT: established TCP connections accepted on 127.0.0.1:PORT
# (from /proc: no iproute2 needed)
connections_to() {
    awk -v p="$(printf ':%04X' "$1")" '$2 ~ p"$" && $4 == "01"' /proc/net/tcp | wc -l
}

# first_loc: the loc of the first validation error, as compact JSON
first_loc() { jget "$body" 'j["detail"][0]["loc"]'; }

@test "POST /api/tasks/add: 202, PENDING, an id and its Location; the runner's result by GET" {
    submit add '{"args":[4,4]}'
    assert_equal "$status" 202
    [[ $ID =~ $UUID_RE ]]
    assert_equal "$body" "{\"id\":\"$ID\",\"task\":\"tasks.add\",\"status\":\"PENDING\"}"
    [[ $headers == *"location: /api/tasks/$ID"* ]]
    [[ $headers == *"content-type: application/json"* ]]

    # no runner yet: the id is known and PENDING
    api GET "/api/tasks/$ID"
    assert_equal "$status" 200
    assert_equal "$body" "{\"id\":\"$ID\",\"task\":\"tasks.add\",\"status\":\"PENDING\",\"result\":null,\"date_done\":null}"

    start_runner -c 1
    api GET "/api/tasks/$ID?wait=10"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[j["id"], j["task"], j["status"], j["result"]]')" \
        "[\"$ID\",\"tasks.add\",\"SUCCESS\",8]"
    [[ $(jget "$body" 'j["date_done"]') =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+$ ]]
}

@test "the full name tasks.add works too, with kwargs; mul, xsum and an empty body" {
    start_runner -c 2
    submit tasks.add '{"kwargs":{"x":1.5,"y":2}}'
    assert_equal "$status" 202
    assert_equal "$(jget "$body" 'j["task"]')" tasks.add
    local add=$ID
    submit mul '{"args":[6],"kwargs":{"y":7}}'
    assert_equal "$status" 202
    local mul=$ID
    submit xsum '{"args":[[1,2,3,4]]}'
    assert_equal "$status" 202
    local xsum=$ID
    # an empty body is "no args", so for add a missing argument
    api POST /api/tasks/add --data-binary ''
    assert_422

    api GET "/api/tasks/$add?wait=10"
    assert_equal "$(jget "$body" '[j["status"], j["result"]]')" '["SUCCESS",3.5]'
    api GET "/api/tasks/$mul?wait=10"
    assert_equal "$(jget "$body" '[j["task"], j["status"], j["result"]]')" '["tasks.mul","SUCCESS",42]'
    api GET "/api/tasks/$xsum?wait=10"
    assert_equal "$(jget "$body" '[j["task"], j["status"], j["result"]]')" '["tasks.xsum","SUCCESS",10]'
}

@test "?wait=10 answers as soon as the task is done, not after 10 s" {
    start_runner -c 1
    submit sleep '{"args":[0.3]}'
    assert_equal "$status" 202
    local t
    t=$(curl -s -o "$BATS_TEST_TMPDIR/out" -w '%{time_total}' -m 15 -H "$AUTH" "$BASE/api/tasks/$ID?wait=10")
    assert_equal "$(jget "$(cat "$BATS_TEST_TMPDIR/out")" '[j["status"], j["result"]]')" '["SUCCESS",0.3]'
    # the task itself takes 0.3 s; the answer comes right after it
    run -0 awk -v t="$t" 'BEGIN { exit !(t >= 0.1 && t < 2.5) }'
}

@test "with no runner, ?wait=N answers the not-ready state after N seconds" {
    submit add '{"args":[1,1]}'
    assert_equal "$status" 202
    local t
    t=$(curl -s -o "$BATS_TEST_TMPDIR/out" -w '%{time_total}' -m 10 -H "$AUTH" "$BASE/api/tasks/$ID?wait=1.5")
    assert_equal "$(cat "$BATS_TEST_TMPDIR/out")" \
        "{\"id\":\"$ID\",\"task\":\"tasks.add\",\"status\":\"PENDING\",\"result\":null,\"date_done\":null}"
    run -0 awk -v t="$t" 'BEGIN { exit !(t >= 1.4 && t < 3.5) }'
    # wait=0 does not wait
    t=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -m 10 -H "$AUTH" "$BASE/api/tasks/$ID?wait=0")
    assert_equal "${t%% *}" 200
    t=${t#* }
    run -0 awk -v t="$t" 'BEGIN { exit !(t < 0.5) }'
}

@test "a parked long poll costs no CPU while it waits" {
    submit add '{"args":[2,2]}'
    assert_equal "$status" 202
    # once woken by its subscription's confirmation, a waiter parks again on
    # the same subscription: no unsubscribe/subscribe round trips
    local before after p
    before=0
    for p in $(route_pids tasks); do before=$((before + $(awk '{ print $14 + $15 }' /proc/$p/stat))); done
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 10 -H "$AUTH" "$BASE/api/tasks/$ID?wait=2")
    after=0
    for p in $(route_pids tasks); do after=$((after + $(awk '{ print $14 + $15 }' /proc/$p/stat))); done
    echo "tasks processes: $((after - before)) CPU ticks over a 2 s park" >&3
    assert_equal "$code" 200 # it did park (a refusal would not)
    # a busy loop took ~100 ticks here (2 s at half a core)
    [ $((after - before)) -le 10 ]
}

@test "200 parked waiters do not delay other requests, and all get their result once a runner runs" {
    local n=200 cfg="$BATS_TEST_TMPDIR/waiters.cfg" i
    local -a ids
    : >"$cfg"
    for i in $(seq 1 $n); do
        submit add "{\"args\":[$i,$i]}"
        assert_equal "$status" 202
        ids[i]=$ID
        [ "$i" = 1 ] || echo next >>"$cfg" # options are per URL after it
        printf 'url = "%s"\nheader = "%s"\noutput = "%s"\n' \
            "$BASE/api/tasks/$ID?wait=25" "$AUTH" "$BATS_TEST_TMPDIR/w.$i" >>"$cfg"
    done
    curl -s -Z --parallel-max $n --parallel-immediate -m 40 -K "$cfg" \
        >"$BATS_TEST_TMPDIR/waiters.out" 2>&1 3>&- &
    local curl_pid=$!
    # all 200 connections are open (and waiting: no runner)
    retry 100 0.1 eval '[ "$(connections_to "${BASE##*:}")" -ge $n ]'

    # meanwhile: other requests to the same route answer fast
    local slow=0
    for i in $(seq 1 10); do
        fast 202 --data-binary '{"args":[2,3]}' "$BASE/api/tasks/add" || slow=1
        fast 200 "$BASE/api/tasks/${ids[$i]}" || slow=1
        fast 200 "$BASE/api/tasks/${ids[$i]}?wait=0" || slow=1
        fast 404 "$BASE/api/tasks/nope-$i" || slow=1
    done
    assert_equal "$slow" 0
    # the waiters were still waiting all along
    assert_equal "$(cat "$BATS_TEST_TMPDIR"/w.* 2>/dev/null | wc -c)" 0

    SECONDS=0
    start_runner -c 2
    wait "$curl_pid"
    [ "$SECONDS" -lt 20 ]
    for i in $(seq 1 $n); do
        echo "${ids[$i]} $((2 * i)) $BATS_TEST_TMPDIR/w.$i"
    done >"$BATS_TEST_TMPDIR/expected"
    # every waiter got its own task's SUCCESS and result
    local bad
    bad=$("$PY" -c 'import json, sys
bad = 0
for line in open(sys.argv[1]):
    tid, want, path = line.split()
    try:
        j = json.load(open(path))
        ok = (j["id"], j["status"], j["result"]) == (tid, "SUCCESS", int(want))
    except Exception:
        ok = False
    if not ok:
        bad += 1
        print("bad waiter:", line.strip(), file=sys.stderr)
print(bad)' "$BATS_TEST_TMPDIR/expected")
    assert_equal "$bad" 0
}

@test "an unknown task is 404" {
    submit nope '{"args":[]}'
    assert_equal "$status" 404
    run -0 jget "$body" 'isinstance(j["detail"], str) and len(j["detail"]) > 0'
    assert_output true
    submit tasks.nope '{}'
    assert_equal "$status" 404
    submit celery.add '{"args":[1,2]}'
    assert_equal "$status" 404
}

@test "args that do not fit the task's signature are FastAPI 422s, with the loc" {
    local before
    before=$(rcli llen celery)
    # missing argument
    submit add '{"args":[1]}'
    assert_422
    run -0 jget "$body" 'j["detail"][0]["loc"][0] == "body" and ("y" in j["detail"][0]["loc"] or "args" in j["detail"][0]["loc"])'
    assert_output true
    # too many
    submit add '{"args":[1,2,3]}'
    assert_422
    run -0 jget "$body" 'j["detail"][0]["loc"][:2] == ["body", "args"]'
    assert_output true
    # an unknown keyword argument
    submit add '{"args":[1,2],"kwargs":{"z":3}}'
    assert_422
    run -0 jget "$body" 'j["detail"][0]["loc"][0] == "body" and "z" in j["detail"][0]["loc"]'
    assert_output true
    # the same argument twice, by position and by name
    submit add '{"args":[1,2],"kwargs":{"x":3}}'
    assert_422
    # nothing was queued for any of them
    assert_equal "$(rcli llen celery)" "$before"
}

@test "bodies that are not a {args, kwargs} object are 422 with the loc" {
    local before
    before=$(rcli llen celery)
    submit add '{"args":[1,'
    assert_422
    assert_equal "$(jget "$body" 'j["detail"][0]["loc"][0]')" body
    submit add '[1,2]'
    assert_422
    submit add '"x"'
    assert_422
    submit add 'null'
    assert_422
    submit add '{"args":5}'
    assert_422
    assert_equal "$(first_loc)" '["body","args"]'
    submit add '{"args":[1,2],"kwargs":[]}'
    assert_422
    assert_equal "$(first_loc)" '["body","kwargs"]'
    submit add '{"args":[1,2],"queue_name":"x"}'
    assert_422
    assert_equal "$(first_loc)" '["body","queue_name"]'
    # none of these queued anything
    assert_equal "$(rcli llen celery)" "$before"
}

@test "a body over 1 MiB is 413" {
    head -c 1100000 /dev/zero | tr '\0' 1 | sed 's/^/{"args":[[/; s/$/]]}/' >"$BATS_TEST_TMPDIR/big"
    api POST /api/tasks/xsum -H 'Content-Type: application/json' --data-binary "@$BATS_TEST_TMPDIR/big"
    assert_equal "$status" 413
    assert_equal "$body" '{"detail":"Request Entity Too Large"}'
}

@test "PUT and PATCH are 405 with an Allow header; so is anything but POST on /retry" {
    local m
    for m in PUT PATCH; do
        api "$m" /api/tasks/add --data-binary '{"args":[1,2]}'
        assert_equal "$status" 405
        assert_equal "$body" '{"detail":"Method Not Allowed"}'
        [[ $(grep '^allow:' <<<"$headers") == *"post, delete"* ]]
        api "$m" "/api/tasks/$(cat /proc/sys/kernel/random/uuid)"
        assert_equal "$status" 405
        [[ $(grep '^allow:' <<<"$headers") == *get* ]]
    done
    for m in GET PUT DELETE; do
        api "$m" "/api/tasks/$(cat /proc/sys/kernel/random/uuid)/retry"
        assert_equal "$status" 405
        [[ $(grep '^allow:' <<<"$headers") == 'allow: post'* ]]
    done
    api POST /api/tasks --data-binary ''
    assert_equal "$status" 405
    api GET "/api/tasks/$(cat /proc/sys/kernel/random/uuid)/other"
    assert_equal "$status" 404
}

@test "an unknown id is 404 Task not found, with or without wait" {
    local id
    id=$(cat /proc/sys/kernel/random/uuid)
    api GET "/api/tasks/$id"
    assert_equal "$status" 404
    assert_equal "$body" '{"detail":"Task not found"}'
    api GET "/api/tasks/$id?wait=1"
    assert_equal "$status" 404
    assert_equal "$body" '{"detail":"Task not found"}'
    # a key of that name that holds no result (another type) is not a task
    rcli rpush "celery-task-meta-not-a-result" x >/dev/null
    api GET "/api/tasks/not-a-result"
    assert_equal "$status" 404
    assert_equal "$body" '{"detail":"Task not found"}'
}

@test "a bad wait is 422: not a number, negative, over 30" {
    submit add '{"args":[1,2]}'
    assert_equal "$status" 202
    local w
    for w in abc -1 31 30.5 1e999; do
        api GET "/api/tasks/$ID?wait=$w"
        assert_422
        [[ $(first_loc) == *'"wait"'* ]] || { echo "wait=$w: $body"; false; }
    done
    # the limits themselves are fine
    api GET "/api/tasks/$ID?wait=0"
    assert_equal "$status" 200
    api GET "/api/tasks/$ID?wait=0.2"
    assert_equal "$status" 200
}

@test "a FAILURE shows the exception and an error line" {
    start_runner -c 1
    submit fail '{"args":["boom"]}'
    assert_equal "$status" 202
    api GET "/api/tasks/$ID?wait=10"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[j["task"], j["status"], j["result"], j["error"]]')" \
        '["tasks.fail","FAILURE",{"exc_type":"ValueError","exc_message":["boom"],"exc_module":"builtins"},"ValueError: boom"]'
    # a type error at run time (Python's add("a", 1) raises TypeError)
    submit add '{"args":["a",1]}'
    assert_equal "$status" 202
    api GET "/api/tasks/$ID?wait=10"
    assert_equal "$(jget "$body" '[j["status"], j["result"]["exc_type"], j["error"].split(":")[0]]')" \
        '["FAILURE","TypeError","TypeError"]'
}

# last in the file: it takes redis away from the shared gateway
@test "Redis down: 503 at once; lighttpd keeps running and the route recovers when Redis is back" {
    submit add '{"args":[20,22]}'
    assert_equal "$status" 202
    local old=$ID
    stop_redis
    # the 503s are the route's: the authorizer, having read the revoked list
    # before, goes on letting the token through (its own 503 would say
    # "Authorization unavailable")
    local t busy='{"detail":"Task queue unavailable, try again shortly"}'
    t=$(curl -s -o "$BATS_TEST_TMPDIR/out" -w '%{http_code} %{time_total}' -m 3 -H "$AUTH" \
        --data-binary '{"args":[1,2]}' "$BASE/api/tasks/add")
    [[ $t == "503 "* ]]
    run -0 jget "$(cat "$BATS_TEST_TMPDIR/out")" 'isinstance(j["detail"], str)'
    assert_equal "$(cat "$BATS_TEST_TMPDIR/out")" "$busy"
    t=$(curl -s -o "$BATS_TEST_TMPDIR/out" -w '%{http_code} %{time_total}' -m 3 -H "$AUTH" "$BASE/api/tasks/$old")
    [[ $t == "503 "* ]]
    assert_equal "$(cat "$BATS_TEST_TMPDIR/out")" "$busy"
    t=$(curl -s -o "$BATS_TEST_TMPDIR/out" -w '%{http_code} %{time_total}' -m 3 -H "$AUTH" "$BASE/api/tasks/$old?wait=5")
    [[ $t == "503 "* ]]
    assert_equal "$(cat "$BATS_TEST_TMPDIR/out")" "$busy"
    awk -v t="${t#* }" 'BEGIN { exit !(t < 2) }'
    local gw=$GW_PID
    redis_launch
    # the same lighttpd and route processes serve again
    retry 50 0.2 eval '[ "$(curl -s -o /dev/null -w "%{http_code}" -m 3 -H "$AUTH" --data-binary "{\"args\":[1,2]}" "$BASE/api/tasks/add")" = 202 ]'
    api GET "/api/tasks/$old"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" 'j["status"]')" PENDING
    start_runner -c 1
    api GET "/api/tasks/$old?wait=10"
    assert_equal "$(jget "$body" '[j["status"], j["result"]]')" '["SUCCESS",42]'
    assert_equal "$GW_PID" "$gw"
    kill -0 "$GW_PID"
}

#!/usr/bin/env bats
# Scale-out across hosts (README, "Scale-out"): gateways and runners on
# several hosts sharing one Redis, and route programs on another host than
# their gateway. The hosts are this machine's own: network namespaces on a
# private bridge (tests/netns.bash), each with its own address; programs
# reach each other over TCP only, as they would between machines.
#
#   host C: Redis (on C's address), the gateway (scripts/gateway)
#   hosts A and B: a queue runner each; or route programs under spawn-fcgi
#
# Requests to the gateways go from host C (`curl` below): this machine's own
# namespace has no route to the hosts.

load helpers
load queue
load netns

setup() {
    # one signing key for every gateway of the test, as a cluster shares it
    TOKEN_KEYS="k1:$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    export TOKEN_KEYS
    hosts_up
    host_redis
}

teardown() {
    local rc=0 p
    if [ -n "${GW2_PID:-}" ]; then GW_PID=$GW2_PID GW_STATE=$GW2_STATE stop_route_gateway || rc=1; fi
    for p in "${FCGI_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
        retry 100 0.05 gone "$p" || kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null || true
    done
    queue_teardown || rc=1
    for p in "${FCGI_DIRS[@]}"; do check_logs "$p" || rc=1; done
    hosts_down
    return "$rc"
}
FCGI_PIDS=()
FCGI_DIRS=()

# helpers.bash's http (and so api, submit) and answers call curl: from host C
curl() { in_ns "$NS_C" curl "$@"; }

# submit_all N FILE: POST N tasks to the gateway, 8 at a time over one curl:
# task i is tasks.add(i, i) for even i, tasks.sleep(0.05) for odd i. Their
# ids, in order, go to FILE; fails unless all N got 202.
submit_all() {
    local n=$1 out=$2 dir=$BATS_TEST_TMPDIR/submit i task args
    mkdir -p "$dir"
    for i in $(seq 1 "$n"); do
        if [ $((i % 2)) = 0 ]; then task=add args="[$i,$i]"; else task=sleep args='[0.05]'; fi
        [ "$i" = 1 ] || echo next
        printf 'url = "%s/api/tasks/%s"\nrequest = "POST"\nheader = "%s"\n' "$BASE" "$task" "$AUTH"
        printf 'header = "Content-Type: application/json"\ndata = "{\\"args\\":%s}"\n' "$args"
        printf 'output = "%s/%s"\nwrite-out = "%%{http_code}\\n"\n' "$dir" "$i"
    done >"$dir/curl.cfg"
    curl_batch "$dir/curl.cfg" # helpers.bash; curl here is host C's
    grep -qE "^ *$n 202\$" "$BATS_TEST_TMPDIR/codes" || { cat "$BATS_TEST_TMPDIR/codes" >&2; return 1; }
    for i in $(seq 1 "$n"); do
        grep -o '"id":"[^"]*"' "$dir/$i" | cut -d'"' -f4
    done >"$out"
    [ "$(grep -cE "${UUID_RE:1:-1}" "$out")" = "$n" ]
}

# succeeded_count IDS_FILE: how many of the tasks have a stored SUCCESS
succeeded_count() {
    # shellcheck disable=SC2046
    rcli mget $(sed 's/^/celery-task-meta-/' "$1") | grep -c '"status": *"SUCCESS"' || true
}

# inflight_of NAME: the messages held in the in-flight lists of the runner
# named NAME (one per line: their task ids)
inflight_of() {
    local k
    for k in $(rcli --scan --pattern "qrun:inflight:$1@*"); do
        rcli lrange "$k" 0 -1
    done | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p'
}

@test "runners on two hosts share the queue; a runner host killed mid-load loses no task: the other runs what it held, within the lease" {
    local n=300 ids=$BATS_TEST_TMPDIR/ids
    host_gateway C
    # the load, over HTTP; the runners start once half of it is queued, so
    # the queue stays deep however fast each side is, and consume the rest
    # as it comes
    submit_all "$n" "$ids" &
    local submitter=$!
    retry 300 0.05 eval '[ "$(rcli llen celery)" -ge 150 ]'
    RUNNER_LEASE=2 host_runner A hostA -c 2
    local log_a=$RUNNER_LOG
    RUNNER_LEASE=2 host_runner B hostB -c 2
    local log_b=$RUNNER_LOG
    # mid-load: host A is working (it has run tasks, many are still queued)
    retry 300 0.05 eval '[ "$(grep -c " succeeded in " "$log_a")" -ge 20 ]'
    [ "$(rcli llen celery)" -gt 50 ]
    # host A dies. Frozen first, so that what it holds can be listed: a
    # result it sent before freezing lands meanwhile (then it holds no
    # more that task); then SIGKILL of every process on the host.
    # shellcheck disable=SC2046
    kill -STOP $(host_pids A)
    sleep 0.3
    inflight_of hostA >"$BATS_TEST_TMPDIR/held"
    kill_host A
    SECONDS=0
    local held
    held=$(wc -l <"$BATS_TEST_TMPDIR/held")
    [ "$held" -ge 1 ]
    echo "host A killed holding $held task(s), $(rcli llen celery) queued" >&3
    wait "$submitter"
    [ "$(wc -l <"$ids")" = "$n" ]

    # what A held runs on B within the lease (2 s) + the reap period (1 s)
    # + a margin for the tasks queued ahead (they go back to the front)
    local id
    for id in $(cat "$BATS_TEST_TMPDIR/held"); do
        retry 150 0.05 status_is "$id" SUCCESS
    done
    [ "$SECONDS" -le 6 ]
    grep -q "put back $held task(s) of runner(s) with no heartbeat for 2s" "$log_b"
    # and every task ends SUCCESS: B alone needs about 4 s for all 300
    # (150 x 50 ms on 2 workers), A had done some; then the lease
    local total=$n # (retry has an n of its own)
    retry 300 0.1 eval '[ "$(succeeded_count "$ids")" = "$total" ]'
    echo "all $n SUCCESS ${SECONDS}s after host A died" >&3
    [ "$SECONDS" -le 15 ]

    # exactly once: a task B took from A ran on B once; any other task
    # ran once on A or B; none ran on B twice
    local i=0 a b bad=0
    while read -r id; do
        i=$((i + 1))
        a=$(succeeded_lines "$log_a" "$id") b=$(succeeded_lines "$log_b" "$id")
        if grep -qx "$id" "$BATS_TEST_TMPDIR/held"; then
            [ "$b" = 1 ] || { echo "held by A, ran $b times on B: $id" >&2; bad=1; }
        elif [ $((a + b)) != 1 ]; then
            echo "task $i ($id) ran $a times on A, $b on B" >&2
            bad=1
        fi
    done <"$ids"
    [ "$bad" = 0 ]
    # both hosts did work before the kill
    [ "$(grep -c ' succeeded in ' "$log_a")" -ge 20 ]
    [ "$(grep -c ' succeeded in ' "$log_b")" -ge 20 ]
    # nothing left anywhere
    assert_equal "$(inflight_count)" 0
    assert_equal "$(rcli llen celery)" 0

    # every result, read back over HTTP through the gateway
    local dir=$BATS_TEST_TMPDIR/get
    mkdir -p "$dir"
    i=0
    while read -r id; do
        i=$((i + 1))
        [ "$i" = 1 ] || echo next
        printf 'url = "%s/api/tasks/%s"\nheader = "%s"\noutput = "%s/%s"\n' "$BASE" "$id" "$AUTH" "$dir" "$i"
    done <"$ids" >"$dir/curl.cfg"
    curl -s --no-progress-meter -Z --parallel-max 8 -K "$dir/curl.cfg"
    run -0 "$PY" - "$dir" "$n" <<'PY'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
bad = 0
for i in range(1, n + 1):
    j = json.load(open(f"{d}/{i}"))
    want = 2 * i if i % 2 == 0 else None
    if j["status"] != "SUCCESS" or (want is not None and j["result"] != want):
        print(f"task {i}: {j}")
        bad += 1
print(f"{n - bad} of {n} SUCCESS with the right result")
PY
    assert_output "$n of $n SUCCESS with the right result"
}

# fcgi_on H PROGRAM PORT [VAR=value...]: run cgi-bin/PROGRAM of the build
# under test on host H, on H's address and PORT, under spawn-fcgi (-n: in
# the foreground, so its pid is the program's, and its log is ours), with
# only the settings given. Sets FCGI_PID FCGI_LOG.
fcgi_on() {
    local h=$1 prog=$2 port=$3 ip=IP_$1 dir
    shift 3
    dir=$(mktemp -d "$TEST_TMP/fcgi.XXXXXX")
    FCGI_LOG=$dir/$prog.log
    spawn_on "$h" env -i PATH="$PATH" ASAN_OPTIONS="${ASAN_OPTIONS:-}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}" "$@" \
        spawn-fcgi -n -a "${!ip}" -p "$port" -- "$GW_CGI_BIN/$prog" >"$FCGI_LOG" 2>&1 3>&- </dev/null
    FCGI_PID=$SPAWNED
    FCGI_PIDS+=("$FCGI_PID")
    FCGI_DIRS+=("$dir")
    retry 100 0.05 eval "on $h ss -Hltn 'sport = :$port' | grep -q LISTEN" ||
        { cat "$FCGI_LOG" >&2; return 1; }
}

@test "route programs on another host: the gateway reaches them over TCP (GW_REMOTE_ROUTES); FCGI_WEB_SERVER_ADDRS turns other hosts away" {
    RUNNER_LEASE=2 host_runner A hostA -c 1
    # host B runs hello and tasks (the event-driven one), for C's gateway only
    fcgi_on B hello 9001 FCGI_WEB_SERVER_ADDRS="$IP_C"
    local hello=$FCGI_PID hello_log=$FCGI_LOG
    fcgi_on B tasks 9002 FCGI_WEB_SERVER_ADDRS="$IP_C" REDIS_URL="$REDIS_URL"
    local tasks_log=$FCGI_LOG
    host_gateway C GW_REMOTE_ROUTES="hello=$IP_B:9001,tasks=$IP_B:9002"
    # lighttpd spawned neither: only the other routes run on C
    assert_equal "$(route_pids hello)" ''
    assert_equal "$(route_pids tasks)" ''
    [ -n "$(route_pids users)" ]

    # a request through C is answered by the program on B: its log has the
    # request's id
    api GET /api/hello/world
    assert_equal "$status" 200
    assert_equal "$body" '{"message":"Hello, world!"}'
    local rid
    rid=$(sed -n 's/^x-request-id: //p' <<<"$headers")
    [ -n "$rid" ]
    retry 50 0.1 grep -q "GET /api/hello/world 200 .*request_id=$rid" "$hello_log"
    # the task route on B: submit, long-poll for the result (runner on A)
    submit add '{"args":[20,22]}'
    assert_equal "$status" 202
    rid=$(sed -n 's/^x-request-id: //p' <<<"$headers")
    retry 50 0.1 grep -q "POST /api/tasks/add 202 .*request_id=$rid" "$tasks_log"
    api GET "/api/tasks/$ID?wait=10"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" 'j["status"]')" SUCCESS
    assert_equal "$(jget "$body" 'j["result"]')" 42

    # FCGI_WEB_SERVER_ADDRS: the program answers C, and shuts the door on A
    run -0 fcgi_request C "$IP_B" 9001 /api/hello/world
    assert_line 'Status: 200 OK'
    assert_line '{"message":"Hello, world!"}'
    run -0 fcgi_request A "$IP_B" 9001 /api/hello/world
    assert_output 'closed without an answer'
    # the event-driven tasks program (lib/aserve.c) reads the list too
    run -0 fcgi_request C "$IP_B" 9002 "/api/tasks/$ID"
    assert_line 'Status: 200 OK'
    run -0 fcgi_request A "$IP_B" 9002 "/api/tasks/$ID"
    assert_output 'closed without an answer'
    # so a gateway on A, pointed at it, is cut off: lighttpd answers 500
    # and logs the reset (a program that is down gives 503, below)
    GW2_STATE=$GW_STATE GW2_PID=$GW_PID
    local base_c=$BASE
    host_gateway A GW_REMOTE_ROUTES="hello=$IP_B:9001"
    api GET /api/hello/world
    assert_equal "$status" 500
    grep -q "response not received, request sent: .* on socket: tcp:$IP_B:9001" "$GW_STATE/log/error.log"
    stop_route_gateway
    GW_PID=$GW2_PID GW_STATE=$GW2_STATE BASE=$base_c GW2_PID=

    # the program on B stops: C's gateway answers 503, as for a local one
    kill -TERM "$hello"
    retry 100 0.05 gone "$hello"
    api GET /api/hello/world
    assert_equal "$status" 503
    assert_equal "$(jget "$body" 'j["detail"]')" 'Service Unavailable'
}

@test "two gateways on two hosts share Redis and the signing keys: a token works on both, a revoke on one holds on the other, a task sent to one is read on the other" {
    RUNNER_LEASE=2 host_runner B hostB -c 1
    host_gateway A
    local gw_a=$GW_PID state_a=$GW_STATE base_a=$BASE
    host_gateway C
    GW2_PID=$gw_a GW2_STATE=$state_a
    local base_c=$BASE
    # one token (issued with the cluster's keys), good on both; both see
    # the same queue and its one runner, on host B
    local tok
    tok=$(token 7 admin)
    NOAUTH=1 BASE=$base_a api GET /api/queues -H "Authorization: Bearer $tok"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[r["id"].split("@")[0] for r in j["runners"]]')" '["hostB"]'
    NOAUTH=1 BASE=$base_c api GET /api/queues -H "Authorization: Bearer $tok"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[r["id"].split("@")[0] for r in j["runners"]]')" '["hostB"]'
    # a task submitted on A, read (long-polled) on C
    BASE=$base_a submit add '{"args":[2,3]}'
    assert_equal "$status" 202
    BASE=$base_c api GET "/api/tasks/$ID?wait=10"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" 'j["result"]')" 5
    # revoked on A: refused on C within REVOKE_SYNC_MS (1 s)
    NOAUTH=1 BASE=$base_a api POST /api/token/revoke --data-urlencode "token=$tok"
    assert_equal "$status" 200
    SECONDS=0
    retry 40 0.1 eval 'NOAUTH=1 BASE=$base_c api GET /api/queues -H "Authorization: Bearer $tok"; [ "$status" = 401 ]'
    [ "$SECONDS" -le 3 ]
    assert_equal "$(jget "$body" 'j["detail"]')" 'Token revoked'
}

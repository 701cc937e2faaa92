#!/usr/bin/env bats
# GET /metrics (cgi-bin/metrics, lib/metrics.c) and lighttpd's mod_status
# pages, through the real stack: lighttpd with every route, a private Redis
# and PostgreSQL, the queue-runner of the build under test, Debian's promtool
# and a real Prometheus scraping the gateway with the repo's prometheus.yml.
# Counts must be exact across the FastCGI processes of a route and the
# runner's workers, and survive a process being killed and replaced.
#
# PostgreSQL is started once for the file; every test has its own Redis and
# its own gateway (a new GW_STATE, so METRICS_DIR starts empty).

load helpers
load queue
load pg

setup_file() {
    start_pg
}

teardown_file() {
    stop_pg
}

setup() {
    # a test may have stopped PostgreSQL; each starts with it up
    [ -S "$PG_DIR/run/.s.PGSQL.5432" ] || pg_launch
    start_redis
    PROM_PID=
}

teardown() {
    local rc=0
    if [ -n "${PROM_PID:-}" ]; then
        kill -TERM "$PROM_PID" 2>/dev/null
        retry 100 0.1 gone "$PROM_PID" || kill -KILL "$PROM_PID" 2>/dev/null
        wait "$PROM_PID" 2>/dev/null || true
        if [ -z "${BATS_TEST_COMPLETED:-}" ]; then
            echo "--- prometheus log (tail)" >&2
            tail -n 20 "$PROM_DIR/prometheus.log" >&2
        fi
        PROM_PID=
    fi
    queue_teardown || rc=1
    return "$rc"
}

# scrape: GET /metrics (must be 200, Prometheus text) into $M
scrape() {
    M=$BATS_TEST_TMPDIR/metrics
    local code
    code=$(curl -s -m 10 -o "$M" -D "$M.head" -w '%{http_code}' "$BASE/metrics")
    if [ "$code" != 200 ]; then
        echo "GET /metrics: $code" >&2
        cat "$M" >&2
        return 1
    fi
    grep -qi '^content-type: text/plain; version=0.0.4' "$M.head"
}

# val SERIES: the value of one series (name{labels} exactly as written) in
# the last scrape; empty if it is not there
val() { awk -v s="$1" '$1 == s { print $2 }' "$M"; }

# assert_val SERIES EXPECTED
assert_val() {
    local got
    got=$(val "$1")
    [ "$got" = "$2" ] && return 0
    echo "$1: got '${got}', want '$2'" >&2
    return 1
}

# gt A B: A > B, as numbers
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 > b + 0) }'; }

# scraped_is SERIES EXPECTED: scrape, then the series has that value (for retry)
scraped_is() { scrape && [ "$(val "$1")" = "$2" ]; }

# batch FILE URL COUNT [curl options...]: append COUNT requests to a curl -K
# config for curl_batch
batch() {
    local cfg=$1 url=$2 n=$3 i opt sep=
    shift 3
    [ -s "$cfg" ] && sep=next
    for i in $(seq 1 "$n"); do
        [ -n "$sep" ] && echo "$sep"
        sep=next
        echo "url = \"$url\""
        for opt in "$@"; do echo "$opt"; done
        echo 'output = "/dev/null"'
        echo 'write-out = "%{http_code}\\n"'
        echo 'max-time = 10'
    done >>"$cfg"
}

# codes_are "N CODE" ...: curl_batch's counts were exactly these
codes_are() {
    local want got
    want=$(printf '%s\n' "$@" | sort)
    got=$(awk '{ print $1, $2 }' "$BATS_TEST_TMPDIR/codes" | sort)
    [ "$got" = "$want" ] && return 0
    echo "statuses: got [$got], want [$want]" >&2
    return 1
}

# submit TASK BODY: POST /api/tasks/TASK, must be 202; appends the id to IDS
submit() {
    api POST "/api/tasks/$1" -H 'Content-Type: application/json' --data-binary "$2"
    assert_equal "$status" 202
    [[ $body =~ \"id\":\"([^\"]*)\" ]]
    IDS+=("${BASH_REMATCH[1]}")
}

# finished ID STATE: GET /api/tasks/ID?wait=5 reports STATE
finished() {
    api GET "/api/tasks/$1?wait=5"
    [ "$status" = 200 ] && [ "$(jget "$body" 'j["status"]')" = "$2" ]
}

# host_ipv4: this host's first non-loopback IPv4 address (empty if none)
host_ipv4() {
    local ip
    for ip in $(hostname -I 2>/dev/null); do
        if [[ $ip =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] && [[ $ip != 127.* ]]; then
            echo "$ip"
            return 0
        fi
    done
    awk '/32 host LOCAL/ { print ip } { ip = $2 }' /proc/net/fib_trie 2>/dev/null |
        grep -v '^127\.' | head -n 1
}

# code_from IP URL: the status of GET URL from source address IP
code_from() { curl -s -o /dev/null -m 5 -w '%{http_code}' --interface "$1" "$2"; }

@test "promtool check metrics passes after mixed traffic; every metric family is there" {
    start_gateway
    METRICS_DIR=$GW_STATE/metrics start_runner -c 2
    local cfg=$BATS_TEST_TMPDIR/mix.cfg
    batch "$cfg" "$BASE/api/hello/mix" 20
    batch "$cfg" "$BASE/api/hello/" 5
    batch "$cfg" "$BASE/api/hello/mix" 3 'request = "DELETE"'
    batch "$cfg" "$BASE/api/hello/head" 4 'head'
    curl_batch "$cfg"
    codes_are "24 200" "5 404" "3 405"
    IDS=()
    submit add '{"args":[1,2]}'
    submit fail '{"args":["boom"]}'
    finished "${IDS[0]}" SUCCESS
    finished "${IDS[1]}" FAILURE
    api POST /api/users -d "{\"username\":\"mx$RANDOM\",\"email\":\"mx$RANDOM@example.com\",\"password\":\"password1\"}"
    assert_equal "$status" 201
    local uid
    uid=$(jget "$body" 'j["id"]')
    api GET "/api/users/$uid"
    assert_equal "$status" 200
    api GET /api/users/999999999
    assert_equal "$status" 404

    scrape
    run -0 promtool check metrics <"$M"
    assert_output ""

    local fam
    for fam in http_requests_total:counter http_request_duration_seconds:histogram \
        http_requests_in_flight:gauge tasks_total:counter task_runtime_seconds:histogram \
        tasks_running:gauge tasks_in_flight:gauge tasks_failed_total:counter \
        tasks_retried_total:counter queue_depth:gauge queue_oldest_age_seconds:gauge \
        runners_alive:gauge redis_errors_total:counter postgres_errors_total:counter \
        process_start_time_seconds:gauge redis_up:gauge; do
        grep -qx "# TYPE ${fam%%:*} ${fam#*:}" "$M" || {
            echo "missing: # TYPE ${fam%%:*} ${fam#*:}" >&2
            return 1
        }
        grep -q "^${fam%%:*}[{_ ]" "$M" || {
            echo "no samples of ${fam%%:*}" >&2
            return 1
        }
    done
    assert_val 'http_requests_total{route="/api/hello",method="GET",status="404"}' 5
    assert_val 'http_requests_total{route="/api/hello",method="DELETE",status="405"}' 3
    assert_val 'http_requests_total{route="/api/hello",method="HEAD",status="200"}' 4
    assert_val 'http_requests_total{route="/api/tasks",method="POST",status="202"}' 2
    assert_val 'http_requests_total{route="/api/users",method="POST",status="201"}' 1
    assert_val 'http_requests_total{route="/api/users",method="GET",status="404"}' 1
    assert_val 'tasks_total{task="tasks.add",state="SUCCESS"}' 1
    assert_val 'tasks_total{task="tasks.fail",state="FAILURE"}' 1
    assert_val 'redis_up' 1
    assert_val 'runners_alive' 1
    assert_val 'queue_depth{queue="celery"}' 0
    # one start time per program, each a live process's, within this test
    local now p t
    now=$(date +%s)
    for p in auth hello users tasks metrics queue-runner; do
        t=$(val "process_start_time_seconds{program=\"$p\"}")
        [ -n "$t" ] || { echo "no process_start_time_seconds for $p" >&2; return 1; }
        gt "$t" $((now - 120))
        gt $((now + 1)) "$t"
    done
    # in flight: only the scrape itself
    assert_val 'http_requests_in_flight{route="/api/hello"}' 0
    assert_val 'http_requests_in_flight{route="/metrics"}' 1
    assert_val 'tasks_running' 0
    assert_val 'tasks_in_flight' 0
}

@test "2000 requests over 4 route processes: counted exactly once each" {
    # one lighttpd worker: its /server-statistics sees every request
    start_gateway GW_PROCS=4 GW_WORKERS=1
    [ "$(route_pids hello | wc -l)" = 4 ]
    scrape
    local base200 base
    base200=$(val 'http_requests_total{route="/api/hello",method="GET",status="200"}')
    base=$(val 'http_request_duration_seconds_count{route="/api/hello"}')
    : "${base200:=0}" "${base:=0}"
    local cfg=$BATS_TEST_TMPDIR/load.cfg
    batch "$cfg" "$BASE/api/hello/x" 2000
    batch "$cfg" "$BASE/api/hello/a/b" 37
    batch "$cfg" "$BASE/api/hello/x" 23 'request = "PUT"' 'data = "{}"'
    curl_batch "$cfg"
    codes_are "2000 200" "37 404" "23 405"

    scrape
    assert_val 'http_requests_total{route="/api/hello",method="GET",status="200"}' $((base200 + 2000))
    assert_val 'http_requests_total{route="/api/hello",method="GET",status="404"}' 37
    assert_val 'http_requests_total{route="/api/hello",method="PUT",status="405"}' 23
    assert_val 'http_request_duration_seconds_count{route="/api/hello"}' $((base + 2060))
    assert_val 'http_request_duration_seconds_bucket{route="/api/hello",le="+Inf"}' $((base + 2060))
    # the 4 processes each served some of them (lighttpd's own count per
    # backend process), and lighttpd forwarded exactly what we counted
    run -0 curl -s -m 5 "$BASE/server-statistics"
    local stats=$output i n sum=0
    for i in 0 1 2 3; do
        n=$(awk -v k="gw.backend.hello.$i.connected:" '$1 == k { print $2 }' <<<"$stats")
        echo "hello.$i served $n" >&3
        [ "${n:-0}" -gt 0 ]
        sum=$((sum + n))
    done
    assert_equal "$sum" $((base + 2060))
    [ "$(find "$GW_STATE/metrics" -name 'hello.*' | wc -l)" = 4 ]
}

@test "a route process killed and respawned: counts neither lost nor doubled" {
    start_gateway GW_PROCS=2
    local pids
    pids=$(route_pids hello | sort)
    [ "$(wc -l <<<"$pids")" = 2 ]
    scrape
    local base
    base=$(val 'http_requests_total{route="/api/hello",method="GET",status="200"}')
    local cfg=$BATS_TEST_TMPDIR/n1.cfg
    batch "$cfg" "$BASE/api/hello/one" 300
    curl_batch "$cfg"
    codes_are "300 200"
    scrape
    assert_val 'http_requests_total{route="/api/hello",method="GET",status="200"}' $((base + 300))

    local t0
    t0=$(val 'process_start_time_seconds{program="hello"}')
    [ -n "$t0" ]

    # both processes die in turn (whichever served the 300, its counts must stay)
    local p before after
    sleep 0.1 # a later start time for the new processes
    for p in $pids; do
        kill -KILL "$p"
        retry 100 0.05 eval '[ "$(route_pids hello | wc -l)" = 2 ] && ! route_pids hello | grep -qx "$p"'
    done
    [ -z "$(comm -12 <(route_pids hello | sort) <(echo "$pids"))" ]
    scrape
    assert_val 'http_requests_total{route="/api/hello",method="GET",status="200"}' $((base + 300))
    assert_val 'http_request_duration_seconds_count{route="/api/hello"}' $((base + 300))
    assert_val 'http_requests_in_flight{route="/api/hello"}' 0
    # the start time is the newest live process's
    gt "$(val 'process_start_time_seconds{program="hello"}')" "$t0"

    cfg=$BATS_TEST_TMPDIR/n2.cfg
    batch "$cfg" "$BASE/api/hello/two" 200
    batch "$cfg" "$BASE/api/hello/" 10
    curl_batch "$cfg"
    codes_are "200 200" "10 404"
    scrape
    assert_val 'http_requests_total{route="/api/hello",method="GET",status="200"}' $((base + 500))
    assert_val 'http_requests_total{route="/api/hello",method="GET",status="404"}' 10
    assert_val 'http_request_duration_seconds_count{route="/api/hello"}' $((base + 510))

    # killed while idle: nothing changes, a scrape later or after a respawn
    before=$(grep -E '^http_request(s_total|_duration_seconds_(count|bucket))\{route="/api/hello"' "$M")
    p=$(route_pids hello | head -n 1)
    kill -KILL "$p"
    retry 100 0.05 eval '[ "$(route_pids hello | wc -l)" = 2 ] && ! route_pids hello | grep -qx "$p"'
    scrape
    after=$(grep -E '^http_request(s_total|_duration_seconds_(count|bucket))\{route="/api/hello"' "$M")
    assert_equal "$after" "$before"
    scrape
    after=$(grep -E '^http_request(s_total|_duration_seconds_(count|bucket))\{route="/api/hello"' "$M")
    assert_equal "$after" "$before"
}

@test "queue-runner workers: task counts exact, kept when workers are killed and replaced" {
    start_gateway
    METRICS_DIR=$GW_STATE/metrics start_runner -c 2
    local workers
    workers=$(runner_children "$RUNNER_PID" | sort)
    [ "$(wc -l <<<"$workers")" = 2 ]
    IDS=()
    local i
    for i in $(seq 1 12); do submit add "{\"args\":[$i,1]}"; done
    for i in 1 2 3 4 5; do submit fail '{"args":["boom"]}'; done
    for i in $(seq 0 11); do finished "${IDS[$i]}" SUCCESS; done
    for i in $(seq 12 16); do finished "${IDS[$i]}" FAILURE; done

    scrape
    assert_val 'tasks_total{task="tasks.add",state="SUCCESS"}' 12
    assert_val 'tasks_total{task="tasks.add",state="FAILURE"}' 0
    assert_val 'tasks_total{task="tasks.fail",state="FAILURE"}' 5
    assert_val 'tasks_total{task="tasks.fail",state="SUCCESS"}' 0
    assert_val 'tasks_failed_total' 5
    assert_val 'tasks_retried_total' 0
    assert_val 'task_runtime_seconds_count{task="tasks.add"}' 12
    assert_val 'task_runtime_seconds_bucket{task="tasks.add",le="+Inf"}' 12
    assert_val 'task_runtime_seconds_count{task="tasks.fail"}' 5
    assert_val 'tasks_running' 0
    assert_val 'tasks_in_flight' 0
    assert_val 'runners_alive' 1
    # the tasks route: every submit and every (long-polled) read counted once
    assert_val 'http_requests_total{route="/api/tasks",method="POST",status="202"}' 17
    assert_val 'http_requests_total{route="/api/tasks",method="GET",status="200"}' 17

    # both workers (so whichever ran the tasks) die; the supervisor replaces them
    local w
    for w in $workers; do kill -KILL "$w"; done
    retry 100 0.1 eval '[ "$(runner_children "$RUNNER_PID" | wc -l)" = 2 ] &&
        [ -z "$(comm -12 <(runner_children "$RUNNER_PID" | sort) <(echo "$workers"))" ]'
    scrape
    assert_val 'tasks_total{task="tasks.add",state="SUCCESS"}' 12
    assert_val 'tasks_total{task="tasks.fail",state="FAILURE"}' 5
    assert_val 'tasks_failed_total' 5
    assert_val 'task_runtime_seconds_count{task="tasks.add"}' 12
    assert_val 'tasks_running' 0

    # the new workers add to them
    IDS=()
    for i in 1 2 3; do submit add "{\"args\":[$i,$i]}"; done
    submit fail '{"args":["boom"]}'
    for i in 0 1 2; do finished "${IDS[$i]}" SUCCESS; done
    finished "${IDS[3]}" FAILURE
    scrape
    assert_val 'tasks_total{task="tasks.add",state="SUCCESS"}' 15
    assert_val 'tasks_total{task="tasks.fail",state="FAILURE"}' 6
    assert_val 'tasks_failed_total' 6
    assert_val 'task_runtime_seconds_count{task="tasks.add"}' 15
    assert_val 'task_runtime_seconds_count{task="tasks.fail"}' 6
    assert_val 'runners_alive' 1

    # a worker killed in the middle of a task: that run is not counted; the
    # task, put back and run again, is counted once
    submit sleep '{"args":[1.5]}'
    local sid=${IDS[4]} wpid
    retry 50 0.1 status_is "$sid" STARTED
    wpid=$(jget "$(meta "$sid")" 'j["result"]["pid"]')
    retry 50 0.1 scraped_is tasks_running 1
    assert_val tasks_in_flight 1
    kill -KILL "$wpid"
    finished "$sid" SUCCESS
    scrape
    assert_val 'tasks_total{task="tasks.sleep",state="SUCCESS"}' 1
    assert_val 'tasks_total{task="tasks.sleep",state="FAILURE"}' 0
    assert_val 'task_runtime_seconds_count{task="tasks.sleep"}' 1
    assert_val 'tasks_total{task="tasks.add",state="SUCCESS"}' 15
    assert_val tasks_running 0
    assert_val tasks_in_flight 0
    assert_val tasks_failed_total 6

    # the runner stopped: not alive any more, its workers' counts stay
    stop_runner
    scrape
    assert_val runners_alive 0
    assert_val 'tasks_total{task="tasks.add",state="SUCCESS"}' 15
    assert_val 'tasks_total{task="tasks.sleep",state="SUCCESS"}' 1
    assert_val tasks_failed_total 6
}

@test "messages the runner cannot run: FAILURE under task=\"unregistered\", never SUCCESS" {
    start_gateway
    METRICS_DIR=$GW_STATE/metrics start_runner -c 1
    local bad
    bad=$(cat /proc/sys/kernel/random/uuid)
    # a message that is not even JSON (no id: nothing to store), one whose
    # body cannot be decoded (ContentDisallowed), an unknown task
    # (NotRegistered); one worker takes them in this order
    rcli lpush celery 'not json at all' >/dev/null
    rcli lpush celery "{\"body\":\"x\",\"headers\":{\"id\":\"$bad\",\"task\":\"tasks.add\"},\"properties\":{\"delivery_tag\":\"$bad\",\"body_encoding\":\"base64\"},\"content-type\":\"application/json\"}" >/dev/null
    run -0 taskctl send tasks.nope 1
    local nope=$output
    retry 100 0.1 status_is "$bad" FAILURE
    retry 100 0.1 status_is "$nope" FAILURE
    grep -q 'rejected message (no id)' "$RUNNER_LOG"
    scrape
    assert_val 'tasks_total{task="tasks.add",state="FAILURE"}' 0
    assert_val 'tasks_total{task="tasks.add",state="SUCCESS"}' 0
    # nothing succeeded: a message thrown away is no successful task
    assert_val 'tasks_total{task="unregistered",state="SUCCESS"}' 0
    local failed
    failed=$(val 'tasks_total{task="unregistered",state="FAILURE"}')
    [ "$failed" -ge 2 ]
    [ "$failed" -le 3 ]
    assert_val tasks_failed_total "$failed"
    assert_val 'task_runtime_seconds_count{task="unregistered"}' "$failed"
}

@test "queue depth and oldest age per queue; parked long polls in flight; a runner drains it" {
    start_gateway
    IDS=()
    local i
    for i in 1 2 3 4 5 6 7; do submit add "{\"args\":[$i,0]}"; done
    # a client waiting for the first result: a request in flight
    curl -s -m 20 -o "$BATS_TEST_TMPDIR/waited" -H "$AUTH" "$BASE/api/tasks/${IDS[0]}?wait=15" &
    local waiter=$!
    retry 50 0.1 scraped_is 'http_requests_in_flight{route="/api/tasks"}' 1
    assert_val 'queue_depth{queue="celery"}' 7
    assert_val 'runners_alive' 0
    assert_val 'tasks_in_flight' 0
    [ -z "$(val 'queue_depth{queue="mx"}')" ]

    # a runner of another queue: that queue is listed too, ours still waits
    METRICS_DIR=$GW_STATE/metrics start_runner -c 1 -Q mx
    retry 50 0.1 scraped_is 'runners_alive' 1
    assert_val 'queue_depth{queue="mx"}' 0
    assert_val 'queue_depth{queue="celery"}' 7
    sleep 2
    scrape
    assert_val 'queue_depth{queue="celery"}' 7
    local age
    age=$(val 'queue_oldest_age_seconds{queue="celery"}')
    echo "oldest age after 2 s: $age" >&3
    gt "$age" 1.5
    gt 30 "$age"
    assert_val 'queue_oldest_age_seconds{queue="mx"}' 0.000
    assert_val 'http_requests_in_flight{route="/api/tasks"}' 1

    METRICS_DIR=$GW_STATE/metrics start_runner -c 2
    retry 50 0.2 scraped_is 'tasks_total{task="tasks.add",state="SUCCESS"}' 7
    assert_val 'queue_depth{queue="celery"}' 0
    assert_val 'queue_oldest_age_seconds{queue="celery"}' 0.000
    assert_val 'runners_alive' 2
    wait "$waiter"
    assert_equal "$(jget "$(cat "$BATS_TEST_TMPDIR/waited")" 'j["status"]')" SUCCESS
    scrape
    assert_val 'http_requests_in_flight{route="/api/tasks"}' 0
    # the parked request was answered and counted once
    assert_val 'http_requests_total{route="/api/tasks",method="GET",status="200"}' 1
}

@test "Redis and PostgreSQL errors are counted; redis_up 0 while Redis is down" {
    start_gateway
    api POST /api/users -d "{\"username\":\"err$RANDOM\",\"email\":\"err$RANDOM@example.com\",\"password\":\"password1\"}"
    assert_equal "$status" 201
    scrape
    local r0 p0
    r0=$(val 'redis_errors_total{program="tasks"}')
    p0=$(val 'postgres_errors_total{program="users"}')
    : "${r0:=0}" "${p0:=0}"
    assert_val redis_up 1

    stop_redis
    api POST /api/tasks/add -H 'Content-Type: application/json' -d '{"args":[1,1]}'
    assert_equal "$status" 503
    scrape
    local r1
    r1=$(val 'redis_errors_total{program="tasks"}')
    echo "redis_errors_total{program=tasks}: $r0 -> $r1" >&3
    gt "$r1" "$r0"
    assert_val redis_up 0
    run -0 promtool check metrics <"$M"
    # back: the scraper reconnects by itself
    redis_launch
    retry 50 0.2 scraped_is redis_up 1
    assert_val 'queue_depth{queue="celery"}' 0

    stop_pg
    api GET /api/users/987654321
    assert_equal "$status" 503
    scrape
    local p1
    p1=$(val 'postgres_errors_total{program="users"}')
    echo "postgres_errors_total{program=users}: $p0 -> $p1" >&3
    gt "$p1" "$p0"
}

@test "/metrics and the status pages: loopback and GW_METRICS_ALLOW only (403 otherwise)" {
    local ip
    ip=$(host_ipv4)
    [ -n "$ip" ] || skip "this host has no non-loopback IPv4 address to be a remote client from"
    # listening on every address: 127.0.0.1 is loopback, $ip is not
    start_gateway GW_BIND=0.0.0.0
    local port=${BASE##*:} path
    for path in /metrics /server-status /server-statistics; do
        assert_equal "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$BASE$path")" 200
        assert_equal "$(code_from 127.0.0.1 "http://127.0.0.1:$port$path")" 200
        assert_equal "$(code_from 127.0.0.2 "http://127.0.0.1:$port$path")" 200 # all of 127/8
        assert_equal "$(code_from "$ip" "http://$ip:$port$path")" 403
        assert_equal "$(code_from "$ip" "http://$ip:$port$path?x=1")" 403
        assert_equal "$(code_from "$ip" "http://$ip:$port$path/")" 403
    done
    assert_equal "$(code_from "$ip" "http://$ip:$port/api/hello/far")" 200
    run -0 curl -s -m 5 --interface "$ip" "http://$ip:$port/metrics"
    assert_output '{"detail":"Forbidden"}'
    # no header makes a remote client local
    assert_equal "$(curl -s -o /dev/null -m 5 -w '%{http_code}' --interface "$ip" \
        -H 'X-Forwarded-For: 127.0.0.1' -H 'X-Real-IP: 127.0.0.1' "http://$ip:$port/metrics")" 403
    # nor does another spelling of the path
    for path in //metrics /./metrics /api/../metrics /%6detrics /server-status%2F; do
        assert_equal "$(curl -s -o /dev/null -m 5 -w '%{http_code}' --path-as-is \
            --interface "$ip" "http://$ip:$port$path")" 403
    done
    stop_route_gateway

    start_gateway GW_BIND=0.0.0.0 GW_METRICS_ALLOW="$ip/32"
    port=${BASE##*:}
    for path in /metrics /server-status /server-statistics; do
        assert_equal "$(code_from "$ip" "http://$ip:$port$path")" 200
        assert_equal "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$BASE$path")" 200
    done
    assert_equal "$(code_from "$ip" "http://$ip:$port/api/hello/far")" 200
    run -0 curl -s -m 5 --interface "$ip" "http://$ip:$port/metrics"
    [[ $output == *'# TYPE http_requests_total counter'* ]]
}

@test "/server-statistics lists lighttpd's FastCGI backends; /server-status answers" {
    start_gateway GW_PROCS=2 GW_WORKERS=1
    curl -s -m 5 -o /dev/null "$BASE/api/hello/stats"
    run -0 curl -s -m 5 "$BASE/server-statistics"
    local b
    for b in auth hello users tasks metrics health ready; do
        assert_line --regexp "^gw\.backend\.$b\.0\.(connected|load|died): [0-9]+$"
    done
    assert_line --regexp '^gw\.backend\.hello\.1\.connected: [0-9]+$'
    refute_line --regexp '^gw\.backend\.hello\.2\.'
    # the greeting above went through one of the hello backends
    local served
    served=$(awk -F': ' '/^gw\.backend\.hello\.[01]\.connected:/ { s += $2 } END { print s + 0 }' <<<"$output")
    [ "$served" -ge 1 ]
    run -0 curl -s -m 5 "$BASE/server-status?auto"
    assert_line --regexp '^Total Accesses: [0-9]+$'
}

@test "a real Prometheus scrapes the stack with the repo's prometheus.yml" {
    command -v prometheus >/dev/null || skip "prometheus is not installed (scripts/deps test)"
    start_gateway
    METRICS_DIR=$GW_STATE/metrics start_runner -c 2
    PROM_DIR=$(mktemp -d "$TEST_TMP/prom.XXXXXX")
    local target=${BASE#http://} pport
    sed -e "s/127\.0\.0\.1:8080/$target/" -e 's/^\(  *scrape_interval:\).*/\1 1s/' \
        "$REPO/prometheus.yml" >"$PROM_DIR/prometheus.yml"
    grep -qF "\"$target\"" "$PROM_DIR/prometheus.yml"
    grep -q 'scrape_interval: 1s' "$PROM_DIR/prometheus.yml"
    run -0 promtool check config "$PROM_DIR/prometheus.yml"
    for _ in 1 2 3; do
        pport=$(free_port)
        prometheus --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
            --web.listen-address="127.0.0.1:$pport" >"$PROM_DIR/prometheus.log" 2>&1 3>&- </dev/null &
        PROM_PID=$!
        PROM=http://127.0.0.1:$pport
        retry 100 0.1 curl -sf -o /dev/null "$PROM/-/ready" && break
        kill "$PROM_PID" 2>/dev/null
        wait "$PROM_PID" 2>/dev/null
        PROM_PID=
    done
    [ -n "$PROM_PID" ]
    retry 100 0.2 target_up

    # what Prometheus has before the traffic
    retry 50 0.2 prom_has 'sum(http_requests_total{route="/api/hello"})'
    local v0
    v0=$(prom_value 'sum(http_requests_total{route="/api/hello"})')
    local cfg=$BATS_TEST_TMPDIR/prom.cfg
    batch "$cfg" "$BASE/api/hello/prom" 40
    batch "$cfg" "$BASE/api/hello/" 10
    curl_batch "$cfg"
    codes_are "40 200" "10 404"
    IDS=()
    submit add '{"args":[20,22]}'
    submit add '{"args":[1,1]}'
    submit fail '{"args":["boom"]}'
    finished "${IDS[0]}" SUCCESS
    finished "${IDS[1]}" SUCCESS
    finished "${IDS[2]}" FAILURE

    retry 100 0.2 prom_is 'sum(http_requests_total{route="/api/hello"})' $((v0 + 50))
    retry 100 0.2 prom_is 'http_requests_total{route="/api/hello",status="404"}' 10
    retry 100 0.2 prom_is 'sum(tasks_total{task="tasks.add",state="SUCCESS"})' 2
    retry 100 0.2 prom_is 'tasks_failed_total' 1
    retry 100 0.2 prom_is 'runners_alive' 1
    prom_is 'up{job="gateway"}' 1
    echo "Prometheus saw /api/hello go from $v0 to $((v0 + 50))" >&3
}

# target_up: Prometheus's only target is the gateway, and it is up
target_up() {
    curl -s -m 2 "$PROM/api/v1/targets" | "$PY" -c '
import json, sys
t = json.load(sys.stdin)["data"]["activeTargets"]
sys.exit(not (len(t) == 1 and t[0]["health"] == "up" and t[0]["scrapeUrl"] == sys.argv[1]))' \
        "$BASE/metrics"
}

# prom_value QUERY: the value of an instant query with exactly one result
prom_value() {
    curl -s -m 2 -G "$PROM/api/v1/query" --data-urlencode "query=$1" | "$PY" -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
if len(r) != 1:
    sys.exit(1)
v = float(r[0]["value"][1])
print(int(v) if v == int(v) else v)'
}

prom_has() { prom_value "$1" >/dev/null; }
prom_is() { [ "$(prom_value "$1")" = "$2" ]; }

@test "tasks the supervisor ends (time limit, crash, terminate) are counted once, by task and state" {
    start_gateway
    METRICS_DIR=$GW_STATE/metrics TASK_TIME_LIMIT=2 start_runner -c 2
    IDS=()
    submit sleep '{"args":[10]}'
    submit crash '{}'
    finished "${IDS[0]}" FAILURE
    finished "${IDS[1]}" FAILURE
    # terminated well before its time limit
    submit sleep '{"args":[10]}'
    retry 50 0.1 status_is "${IDS[2]}" STARTED
    api DELETE "/api/tasks/${IDS[2]}?terminate=true"
    assert_equal "$status" 202
    finished "${IDS[2]}" REVOKED
    retry 50 0.1 scraped_is 'tasks_total{task="tasks.sleep",state="REVOKED"}' 1
    assert_val 'tasks_total{task="tasks.sleep",state="FAILURE"}' 1
    assert_val 'tasks_total{task="tasks.crash",state="FAILURE"}' 1
    assert_val 'tasks_total{task="tasks.sleep",state="SUCCESS"}' 0
    assert_val 'tasks_failed_total' 2
    assert_val 'task_runtime_seconds_count{task="tasks.sleep"}' 2
    assert_val tasks_running 0
    assert_val runners_alive 1
}

@test "METRICS_DIR stays bounded: 200 crashed workers leave only live processes' files and the folded totals; counts exact" {
    start_gateway
    METRICS_DIR=$GW_STATE/metrics start_runner -c 2
    local i
    for i in $(seq 1 200); do
        taskctl send crash >/dev/null
    done
    retry 600 0.1 eval '[ "$(val_now "tasks_total{task=\"tasks.crash\",state=\"FAILURE\"}")" = 200 ]'
    # every crash replaced a worker: the dead ones' files were folded away
    local files
    files=$(ls "$GW_STATE/metrics" | wc -l)
    [ "$files" -le 20 ] || { ls "$GW_STATE/metrics"; false; }
    [ "$(ls "$GW_STATE/metrics" | grep -c '^queue-runner\.')" -le 3 ]
    assert_equal "$(ls "$GW_STATE/metrics" | grep -c '^folded\.queue-runner\.')" 1
    # the totals are exact, and stay so over further scrapes
    scrape
    assert_val 'tasks_failed_total' 200
    scrape
    assert_val 'tasks_total{task="tasks.crash",state="FAILURE"}' 200
    assert_val tasks_running 0
}

# val_now NAME: scrape, then the value of NAME (empty if absent)
val_now() { scrape >/dev/null 2>&1 && val "$1"; }

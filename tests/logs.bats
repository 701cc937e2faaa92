#!/usr/bin/env bats
# Logs of the whole stack, read back from the files the real programs wrote:
# lighttpd (access.log), the route programs (routes.log), the queue runner,
# PostgreSQL and Redis. Every line a request causes carries its request id,
# in routes.log and (with the duration) in access.log; LOG_FORMAT=json gives
# one JSON object per line whatever bytes came in; and after a full run no
# log holds a password, token, cookie or the password of a REDIS_URL or
# DATABASE_URL. One PostgreSQL for the file; each test has its own Redis,
# gateway and runners.

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
    start_redis
}

teardown() {
    queue_teardown
}

# ID_RE: what lib/http.c accepts as a request id (and generates)
ID_RE='[A-Za-z0-9._-]{1,64}'

# flush_access_log: lighttpd buffers its access log; SIGHUP (log rotation)
# writes it out. Waits until the line with request id $1 is there.
flush_access_log() {
    kill -HUP "$GW_PID"
    retry 50 0.1 grep -q -- "$1" "$GW_STATE/log/access.log"
}

# start_json_runner [ARGS...]: start_runner, for LOG_FORMAT=json (whose
# "ready" line start_runner does not recognise). Same bookkeeping, so
# queue_teardown stops it.
start_json_runner() {
    local dir
    dir=$(mktemp -d "$TEST_TMP/runner.XXXXXX")
    RUNNER_LOG=$dir/runner.log
    LOG_FORMAT=json REDIS_URL=$REDIS_URL "$GW_BIN/queue-runner" "$@" >"$RUNNER_LOG" 2>&1 3>&- </dev/null &
    RUNNER_PID=$!
    export RUNNER_PID RUNNER_LOG
    RUNNER_PIDS+=("$RUNNER_PID")
    RUNNER_DIRS+=("$dir")
    if ! retry 200 0.05 grep -q '"level":"INFO",.*"message":"ready: ' "$RUNNER_LOG"; then
        echo "queue-runner (LOG_FORMAT=json) not ready:" >&2
        cat "$RUNNER_LOG" >&2
        return 1
    fi
}

# start_failing_runner LOG REDIS_URL: a runner on a Redis it cannot use; waits
# until it has said so ("...; retrying"), leaves it to queue_teardown.
start_failing_runner() {
    REDIS_URL=$2 "$GW_BIN/queue-runner" -c 1 >"$1" 2>&1 3>&- </dev/null &
    RUNNER_PIDS+=("$!")
    retry 100 0.1 grep -q 'retrying' "$1" || { cat "$1" >&2; return 1; }
}

# raw_get PATH-BYTES [HEADER-LINE]: one HTTP/1.0 request written byte for
# byte (curl would encode what a hostile client sends as it is), with $AUTH
# (as `http` sends it) unless NOAUTH=1; prints the status code.
raw_get() {
    local auth=${AUTH-}
    [ "${NOAUTH:-0}" = 1 ] && auth=
    "$PY" - "${BASE#http://}" "$1" "${2-}" "$auth" <<'EOF'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
path = sys.argv[2].encode("utf-8", "surrogateescape")
extra = b"".join(h.encode("utf-8", "surrogateescape") + b"\r\n" for h in sys.argv[3:] if h)
s = socket.create_connection((host, int(port)), timeout=10)
s.sendall(b"GET " + path + b" HTTP/1.0\r\n" + extra + b"\r\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.split(b" ", 2)[1].decode())
EOF
}

# json_lines FILE KIND: every line of FILE is one JSON object (and there is
# at least one). KIND app: strict UTF-8, exactly time (UTC ISO 8601 with
# ms), level, logger, message and optionally request_id; a request's line
# ("METHOD /target STATUS N.NNNms") has a request_id. KIND access: lighttpd's
# JSON, whose strings carry non-UTF-8 bytes of a bad request line as they
# came (so they are read with surrogateescape), with a numeric duration_us
# and a request_id.
json_lines() {
    "$PY" - "$1" "$2" <<'EOF'
import json, re, sys
path, kind = sys.argv[1], sys.argv[2]
bad = n = 0
request_line = re.compile(r"^[A-Z]+ /\S* [0-9]{3} [0-9.]+ms$")
with open(path, "rb") as f:
    for raw in f:
        n += 1
        try:
            if not raw.endswith(b"\n"):
                raise ValueError("no newline at the end")
            text = raw[:-1].decode("utf-8", "surrogateescape" if kind == "access" else "strict")
            o = json.loads(text)
            if not isinstance(o, dict):
                raise ValueError("not an object")
            if kind == "app":
                keys = list(o)
                if keys[:4] != ["time", "level", "logger", "message"] or keys[4:] not in ([], ["request_id"]):
                    raise ValueError("members %r" % keys)
                if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", o["time"]):
                    raise ValueError("time %r" % o["time"])
                if o["level"] not in ("DEBUG", "INFO", "WARNING", "ERROR"):
                    raise ValueError("level %r" % o["level"])
                if request_line.match(o["message"]) and not o.get("request_id"):
                    raise ValueError("a request's line without request_id")
            else:
                if not isinstance(o.get("duration_us"), int) or not isinstance(o.get("status"), int):
                    raise ValueError("duration_us/status not numbers")
                if not isinstance(o.get("request_id"), str) or not o["request_id"]:
                    raise ValueError("no request_id")
        except Exception as e:
            bad += 1
            print("%s:%d: %s: %r" % (path, n, e, raw), file=sys.stderr)
if n == 0:
    print("%s: no lines" % path, file=sys.stderr)
    bad += 1
sys.exit(1 if bad else 0)
EOF
}

@test "every line the routes log for a request ends with its id; the access log has the id and the duration" {
    start_gateway GW_PROCS=1
    start_runner -c 1
    local id
    api GET /api/hello/world -H 'X-Request-Id: logs-a-hello'
    assert_equal "$status" 200
    api GET /api/nope/x -H 'X-Request-Id: logs-a-404'
    api POST /api/users -H 'X-Request-Id: logs-a-user' -H 'Content-Type: application/json' \
        --data-binary "{\"username\":\"logs_a_$$\",\"email\":\"logs_a_$$@example.com\",\"password\":\"pw-logs-a-$$\"}"
    assert_equal "$status" 201
    id=$(jget "$body" 'j["id"]')
    api GET "/api/users/$id" -H 'X-Request-Id: logs-a-user-get'
    assert_equal "$status" 200
    api POST /api/users -H 'Content-Type: application/json' --data-binary '{"username":"x"}'
    assert_equal "$status" 422
    api POST /api/tasks/add -H 'X-Request-Id: logs-a-task' -H 'Content-Type: application/json' \
        --data-binary '{"args":[4,4]}'
    assert_equal "$status" 202
    id=$(jget "$body" 'j["id"]')
    api GET "/api/tasks/$id?wait=10" -H 'X-Request-Id: logs-a-wait'
    assert_equal "$(jget "$body" 'j["result"]')" 8

    # every line ends with a request id (a healthy stack at INFO logs only
    # requests); the ones we chose are there, once per request from the
    # route that answered it and once from the authorizer (program "auth")
    # that ran before it, under the same id
    retry 20 0.1 grep -q ' - tasks - .*request_id=logs-a-wait$' "$GW_STATE/log/routes.log"
    run grep -Ev " request_id=$ID_RE\$" "$GW_STATE/log/routes.log"
    assert_output ''
    local rid
    for rid in logs-a-hello logs-a-404 logs-a-user logs-a-user-get logs-a-task logs-a-wait; do
        run grep -c " - auth - INFO - [A-Z]* /[^ ]* 200 [0-9.]*ms request_id=$rid\$" "$GW_STATE/log/routes.log"
        assert_output 1
    done
    for rid in logs-a-hello logs-a-user logs-a-user-get logs-a-task logs-a-wait; do
        run grep -c " request_id=$rid\$" "$GW_STATE/log/routes.log"
        assert_output 2
    done
    # lighttpd's own 404 has no route behind it: the authorizer's line only
    run grep -c " request_id=logs-a-404\$" "$GW_STATE/log/routes.log"
    assert_output 1
    run grep ' - users - .* request_id=logs-a-user$' "$GW_STATE/log/routes.log"
    assert_output --regexp '^[0-9-]{10} [0-9:]{8},[0-9]{3} - users - INFO - POST /api/users 201 [0-9.]+ms request_id=logs-a-user$'
    run grep ' - tasks - .* request_id=logs-a-wait$' "$GW_STATE/log/routes.log"
    assert_output --regexp " - tasks - INFO - GET /api/tasks/$id\\?wait=10 200 [0-9.]+ms request_id=logs-a-wait\$"

    # access.log: the same id last, after the duration in microseconds
    flush_access_log logs-a-wait
    for rid in logs-a-hello logs-a-user logs-a-task logs-a-wait; do
        run grep -E " [0-9]{3} [0-9]+ [0-9]+ \"[^\"]*\" $rid\$" "$GW_STATE/log/access.log"
        assert_equal "${#lines[@]}" 1
    done
    run grep ' logs-a-wait$' "$GW_STATE/log/access.log"
    assert_output --regexp "\"GET /api/tasks/$id\\?wait=10 HTTP/1.1\" 200 [0-9]+ [0-9]+ \"curl/[^\"]*\" logs-a-wait\$"
    # lighttpd's own 404 has no route behind it: "-"
    run grep '"GET /api/nope/x HTTP/1.1" 404 ' "$GW_STATE/log/access.log"
    assert_output --regexp ' -$'
}

@test "a warning logged while a request is handled carries that request's id" {
    # PostgreSQL and Redis both unreachable: the users route warns from
    # inside the handler, the tasks route (lib/aserve.c) too. Redis goes
    # away after the start: the authorizer must have read the revoked-token
    # list once to let a token through while Redis is down (it answers 503
    # otherwise, before any route). REVOKE_SYNC_MS=0: it tries Redis again
    # on every request, so its own warning comes with each of them.
    start_gateway GW_PROCS=1 DATABASE_URL="postgresql:///app?host=$BATS_TEST_TMPDIR/nopg&user=postgres" \
        REVOKE_SYNC_MS=0
    api GET /api/nope -H 'X-Request-Id: logs-b-warm'
    assert_equal "$status" 404
    stop_redis
    api GET /api/users/1 -H 'X-Request-Id: logs-b-pg'
    assert_equal "$status" 503
    assert_equal "$body" '{"detail":"Database unavailable, try again shortly"}'
    api POST /api/tasks/add -H 'X-Request-Id: logs-b-redis' -H 'Content-Type: application/json' \
        --data-binary '{"args":[4,4]}'
    assert_equal "$status" 503
    assert_equal "$body" '{"detail":"Task queue unavailable, try again shortly"}'

    retry 20 0.1 grep -q ' - tasks - .*request_id=logs-b-redis$' "$GW_STATE/log/routes.log"
    run grep ' - WARNING - PostgreSQL unavailable: ' "$GW_STATE/log/routes.log"
    assert_output --regexp ' request_id=logs-b-pg$'
    run grep ' - users - WARNING - cache unavailable' "$GW_STATE/log/routes.log"
    assert_output --regexp ' request_id=logs-b-pg$'
    run grep ' - tasks - WARNING - Redis: ' "$GW_STATE/log/routes.log"
    assert_output --regexp ' request_id=logs-b-redis$'
    run grep ' - auth - WARNING - revoked tokens: Redis: ' "$GW_STATE/log/routes.log"
    assert_equal "${#lines[@]}" 2
    assert_line --index 0 --regexp ' request_id=logs-b-pg$'
    assert_line --index 1 --regexp ' request_id=logs-b-redis$'
    run grep -c ' - users - .* request_id=logs-b-pg$' "$GW_STATE/log/routes.log"
    assert_output 3 # cache, PostgreSQL, the request's own line
    run grep -c ' - auth - .* request_id=logs-b-pg$' "$GW_STATE/log/routes.log"
    assert_output 2 # its warning, its own line
    # only the tasks route's pub/sub connection, which no request owns,
    # logs without one
    run grep -Ev " request_id=$ID_RE\$" "$GW_STATE/log/routes.log"
    refute_output --regexp '^.* - (auth|hello|users|tasks) - [A-Z]+ - (GET|POST|PostgreSQL|cache|Redis: |revoked)'
}

@test "LOG_FORMAT=json: routes.log, the runner's log and access.log hold only JSON lines, hostile input included" {
    start_gateway GW_PROCS=1 LOG_FORMAT=json LOG_LEVEL=DEBUG
    LOG_LEVEL=DEBUG start_json_runner -c 1
    local id
    api GET /api/hello/world -H 'X-Request-Id: logs-c-hello'
    assert_equal "$status" 200
    api POST /api/users -H 'Content-Type: application/json' \
        --data-binary "{\"username\":\"logs_c_$$\",\"email\":\"logs_c_$$@example.com\",\"password\":\"pw-logs-c-$$\"}"
    assert_equal "$status" 201
    api POST /api/tasks/add -H 'Content-Type: application/json' --data-binary '{"args":[4,4]}'
    assert_equal "$status" 202
    id=$(jget "$body" 'j["id"]')
    api GET "/api/tasks/$id?wait=10" -H 'X-Request-Id: logs-c-wait'
    assert_equal "$(jget "$body" 'j["result"]')" 8
    # hostile bytes in the path, raw: quotes, backslashes, control bytes,
    # bytes that are not UTF-8, percent-encoded ones; and a hostile id
    raw_get '/api/hello/a"b\c'
    raw_get $'/api/hello/\x01\x1b[31m\x7f'
    raw_get $'/api/hello/\xff\xfe\xc3'
    raw_get '/api/hello/%22%5C%00%01%0A%ff'
    raw_get '/api/tasks/%22%5C%C3%A9x?wait=0' 'X-Request-Id: logs-c-tasks'
    raw_get '/api/users/1%22%7D%7B' 'X-Request-Id: a"b\c'
    raw_get '/api/users/1' $'X-Request-Id: a\x01b'
    raw_get '/api/hello/x?q="\' 'X-Request-Id: logs-c-last'
    # a message for the runner whose task name holds quotes, a backslash,
    # control characters and non-ASCII text, and one that is not UTF-8
    rcli lpush celery "$("$PY" -c 'import json, sys; sys.path.insert(0, sys.argv[1]); import enqueue
print(enqueue.message("tasks.\"q\\b\x01\n\x1b[31m\u00e9", [1, 2], sys.argv[2]))' \
        "$CELERY_DIR" "$(cat /proc/sys/kernel/random/uuid)")" >/dev/null
    rcli lpush celery $'{"body":"\xff\xfe","headers":{"id":"\x01"}}' >/dev/null
    retry 50 0.1 grep -q 'unregistered task' "$RUNNER_LOG"
    run -0 taskctl call add 2 2 # after both: the runner went on

    retry 20 0.1 grep -q '"request_id":"logs-c-last"' "$GW_STATE/log/routes.log"
    stop_runners
    stop_route_gateway # its DEBUG "stopping" lines too, and access.log written out

    json_lines "$GW_STATE/log/routes.log" app
    json_lines "$RUNNER_LOG" app
    json_lines "$GW_STATE/log/access.log" access
    # the hostile task name arrived whole, escaped, not cut into lines
    run "$PY" -c 'import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    m = json.loads(line)["message"]
    if "unregistered task" in m:
        print("\"q\\b\x01\n\x1b[31m\u00e9" in m)' "$RUNNER_LOG"
    assert_output True
    # request lines: message without the id, which is a member of its own
    run grep -c '"logger":"hello","message":"GET /api/hello/world 200 [0-9.]*ms","request_id":"logs-c-hello"}$' \
        "$GW_STATE/log/routes.log"
    assert_output 1
    run grep -c '"logger":"tasks","message":"GET /api/tasks/[^"]*?wait=10 200 [0-9.]*ms","request_id":"logs-c-wait"}$' \
        "$GW_STATE/log/routes.log"
    assert_output 1
    # and the authorizer's line for the same request, under the same id
    run grep -c '"logger":"auth","message":"GET /api/tasks/[^"]*?wait=10 200 [0-9.]*ms","request_id":"logs-c-wait"}$' \
        "$GW_STATE/log/routes.log"
    assert_output 1
    run grep -c '"request_id":"logs-c-wait"}$' "$GW_STATE/log/routes.log"
    assert_output 2
    run grep -c '"request_id":"logs-c-wait"}$' "$GW_STATE/log/access.log"
    assert_output 1
    # what lighttpd let through reached the routes, and was logged as sent
    grep -q '"logger":"tasks","message":"GET /api/tasks/%22%5C%C3%A9x?wait=0 [0-9]* [0-9.]*ms","request_id":"logs-c-tasks"}$' \
        "$GW_STATE/log/routes.log"
    grep -q '"logger":"users","message":"GET /api/users/1%22%7D%7B [0-9]* ' "$GW_STATE/log/routes.log"
}

@test "after a full run no log holds a password, token, cookie or a URL's password" {
    # recognisable secrets, unique to this run
    local tag="$$-$RANDOM" rpw pgpw pw1 pw2 pw3 pw4 pw5 token badtoken cookie wrongpw usertoken qpw qtok qkey
    rpw="rpw-$tag-R3dis" pgpw="pgpw-$tag-P0stgres" wrongpw="wrongpw-$tag-W"
    pw1="pw1-$tag-Alpha" pw2="pw2-$tag-Bravo" pw3="pw3-$tag-Charlie" pw4="pw4-$tag-Delta"
    pw5="pw5-$tag-Echo"
    badtoken="tok-$tag-Bearer" cookie="ck-$tag-Cookie"
    qpw="qpw-$tag-Query" qtok="qtok-$tag-Query" qkey="qkey-$tag-Query"
    local logs=$BATS_TEST_TMPDIR/logs
    mkdir -p "$logs"

    # Redis with a password of this test's (the helpers read it from the
    # file, so they and queue_teardown keep working), reached over TCP;
    # PostgreSQL trusts local connections, so the URL's password is carried,
    # never used
    rcli config set requirepass "$rpw" >/dev/null
    printf '%s' "$rpw" >"$REDIS_DIR/password"
    REDIS_URL="redis://:$rpw@127.0.0.1:$REDIS_PORT/0"
    local dburl="postgresql://postgres:$pgpw@/app?host=$PG_DIR/run"
    export REDIS_URL
    start_gateway GW_PROCS=1 LOG_LEVEL=DEBUG REDIS_URL="$REDIS_URL" DATABASE_URL="$dburl"
    LOG_LEVEL=DEBUG start_runner -c 1
    # the authorizer lets only valid tokens through: the bearer token is a
    # real one (an admin's, unique to this run by its jti), sent by hand
    # below instead of by `http`; a forged one goes to a public route and
    # to a protected one (401 both). The signing key is a secret as well.
    token=$(token 0 admin)
    [ -n "$token" ]
    local secrets=("$rpw" "$pgpw" "$wrongpw" "$pw1" "$pw2" "$pw3" "$pw4" "$token" "$badtoken" "$cookie"
        "${GW_TOKEN_KEYS#*:}" "$qpw" "$qtok" "$qkey")
    local NOAUTH=1

    local auth=(-H "Authorization: Bearer $token" -H "Cookie: session=$cookie; csrftoken=$token")
    local json=(-H 'Content-Type: application/json')
    local u="logs_d_$$" id id2 tid
    api POST /api/users "${auth[@]}" "${json[@]}" \
        --data-binary "{\"username\":\"$u\",\"email\":\"$u@example.com\",\"password\":\"$pw1\"}"
    assert_equal "$status" 201
    id=$(jget "$body" 'j["id"]')
    api POST /api/users "${auth[@]}" "${json[@]}" \
        --data-binary "{\"username\":\"${u}2\",\"email\":\"${u}2@example.com\",\"password\":\"$pw2\"}"
    assert_equal "$status" 201
    id2=$(jget "$body" 'j["id"]')
    api PATCH "/api/users/$id" "${auth[@]}" "${json[@]}" --data-binary "{\"password\":\"$pw3\"}"
    assert_equal "$status" 200
    api GET "/api/users/$id" "${auth[@]}"
    assert_equal "$status" 200
    api GET "/api/users/$id" "${auth[@]}"
    assert_equal "$status" 200
    # the owner's own change, with current_password: a wrong one, then its own
    api POST /api/token --data-urlencode grant_type=password --data-urlencode "username=$u" \
        --data-urlencode "password=$pw3"
    assert_equal "$status" 200
    usertoken=$(jget "$body" 'j["access_token"]')
    api PATCH /api/users/me -H "Authorization: Bearer $usertoken" "${json[@]}" \
        --data-binary "{\"password\":\"$pw5\",\"current_password\":\"$wrongpw\"}"
    assert_equal "$status" 403
    api PATCH /api/users/me -H "Authorization: Bearer $usertoken" "${json[@]}" \
        --data-binary "{\"password\":\"$pw5\",\"current_password\":\"$pw3\"}"
    assert_equal "$status" 200
    secrets+=("$pw5" "$usertoken")
    # a conflict and a validation error with a password in the body
    api POST /api/users "${auth[@]}" "${json[@]}" \
        --data-binary "{\"username\":\"$u\",\"email\":\"x$u@example.com\",\"password\":\"$pw4\"}"
    assert_equal "$status" 409
    api POST /api/users "${auth[@]}" "${json[@]}" \
        --data-binary "{\"username\":\"x\",\"email\":\"bad\",\"password\":\"$pw4\"}"
    assert_equal "$status" 422
    api DELETE "/api/users/$id2" "${auth[@]}"
    assert_equal "$status" 204
    api POST /api/tasks/add "${auth[@]}" "${json[@]}" --data-binary '{"args":[4,4]}'
    assert_equal "$status" 202
    tid=$(jget "$body" 'j["id"]')
    api GET "/api/tasks/$tid?wait=10" "${auth[@]}"
    assert_equal "$(jget "$body" 'j["result"]')" 8
    api GET /api/hello/world "${auth[@]}"
    api GET /api/ready "${auth[@]}"
    api GET /api/hello/world -H "Authorization: Bearer $badtoken" -H "Cookie: session=$cookie; csrftoken=$badtoken"
    assert_equal "$status" 401
    api GET "/api/users/$id" -H "Authorization: Bearer $badtoken"
    assert_equal "$status" 401
    run -0 taskctl call add 4 4
    assert_output 8
    # secrets in query strings: a route's, one refused by the authorizer,
    # one lighttpd answers itself (404), one over its header limit (431)
    api GET "/api/hello/world?password=$qpw&access_token=$qtok" "${auth[@]}"
    assert_equal "$status" 200
    api GET "/api/users/$id?access_token=$qtok&api_key=$qkey"
    assert_equal "$status" 401
    api GET "/nope.json?password=$qpw&access_token=$qtok"
    assert_equal "$status" 404
    api GET "/api/hello/world?password=$qpw&x=$(head -c 9000 /dev/zero | tr '\0' x)"
    assert_equal "$status" 431

    # the tools, and programs that cannot use their URLs, with the secrets
    DATABASE_URL=$dburl MIGRATIONS_DIR=$REPO/sql "$GW_BIN/migrate" >"$logs/migrate.log" 2>&1
    REDIS_URL="redis://:$wrongpw@127.0.0.1:$REDIS_PORT/0" timeout 20 "$GW_BIN/taskctl" call add 1 1 \
        >"$logs/taskctl-wrong.log" 2>&1 || true
    start_failing_runner "$logs/runner-wrongpw.log" "redis://:$wrongpw@127.0.0.1:$REDIS_PORT/0"
    start_failing_runner "$logs/runner-down.log" "redis://:$rpw@127.0.0.1:$(free_port)/0"
    CGI_ENV="DATABASE_URL=postgresql://postgres:$pgpw@/app?host=$BATS_TEST_TMPDIR/nopg REDIS_URL=redis://:$rpw@127.0.0.1:$(free_port)/0" \
        cgi users GET /api/users/1 2>"$logs/users-cgi.log" >/dev/null
    CGI_ENV="REDIS_URL=redis://:$rpw@127.0.0.1:$(free_port)/0" \
        cgi tasks GET /api/tasks/00000000-0000-0000-0000-000000000000 2>"$logs/tasks-cgi.log" >/dev/null

    # the failing runners said why, without the URL (it holds the password)
    grep -q "queue-runner - WARNING - Redis: .*; retrying" "$logs/runner-down.log"
    local rdirs=("${RUNNER_DIRS[@]}")
    stop_runners
    stop_route_gateway

    # every log of every program: none holds a secret
    local files=() f s found=0
    while IFS= read -r f; do files+=("$f"); done < <(
        find "$GW_STATE" "$PG_DIR" "$REDIS_DIR" "$logs" "${rdirs[@]}" \
            -type f \( -name '*.log' -o -name '*.out' \) 2>/dev/null | sort -u)
    [ "${#files[@]}" -ge 8 ] || fail "too few logs found: ${files[*]}"
    for s in "${secrets[@]}"; do
        if grep -aF -- "$s" "${files[@]}" >&2; then
            echo "^ secret '$s' in the logs" >&2
            found=1
        fi
    done
    [ "$found" = 0 ]
    # (and the run did log: requests, tasks, a PATCH, the queries' requests
    # with their secrets masked, in routes.log and in access.log alike)
    grep -q " - users - INFO - PATCH /api/users/$id 200 " "$GW_STATE/log/routes.log"
    grep -q "Task tasks.add\[$tid\] succeeded" "$RUNNER_LOG"
    grep -q ' - hello - INFO - GET /api/hello/world?password=\*\*\*&access_token=\*\*\* 200 ' \
        "$GW_STATE/log/routes.log"
    grep -q '"GET /api/hello/world?password=\*\*\*&access_token=\*\*\* HTTP/1.1" 200 ' "$GW_STATE/log/access.log"
    grep -q '"GET /nope.json?password=\*\*\*&access_token=\*\*\* HTTP/1.1" 404 ' "$GW_STATE/log/access.log"
    grep -q '"GET /api/users/[0-9]*?access_token=\*\*\*&api_key=\*\*\* HTTP/1.1" 401 ' "$GW_STATE/log/access.log"
    # every log the stack's programs made is their owner's and group's only
    for f in "$GW_STATE"/log/{access,error,routes}.log "$REDIS_DIR/redis.log" "$PG_DIR/postgres.log"; do
        run -0 stat -c '%a' "$f"
        assert_equal "$f: $output" "$f: 640"
    done
}

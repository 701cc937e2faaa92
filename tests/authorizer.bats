#!/usr/bin/env bats
# The gateway's authorizer (fcgi/auth.c) as lighttpd runs it: which paths
# are public, decided on the path lighttpd routes by (never the raw one),
# the request id shared with the route, CORS preflights and the allow-list,
# and Redis outages. Token cases are in auth.bats.

load helpers
load queue

setup_file() {
    start_redis
    start_gateway GW_PROCS=1 CORS_ORIGINS="https://app.example.com, http://localhost:3000"
}

teardown_file() {
    stop_gateway
    stop_redis
}

code() { curl -s -o /dev/null -w '%{http_code}' -m 10 "$@"; }

# other_gateway [VAR=value ...]: a second gateway for one test, in place of
# the file's until other_gateway_done (variables set in a test do not
# outlive it, so each test that uses one stops it itself)
other_gateway() {
    MAIN=("$BASE" "$GW_PID" "$GW_STATE" "$AUTH")
    start_gateway GW_PROCS=1 "$@"
}
other_gateway_done() {
    stop_gateway
    BASE=${MAIN[0]} GW_PID=${MAIN[1]} GW_STATE=${MAIN[2]} AUTH=${MAIN[3]}
}

@test "public routes need no token; every other /api/ path does, unknown ones included" {
    assert_equal "$(code "$BASE/api/hello/x")" 200
    assert_equal "$(code "$BASE/api/health")" 200
    assert_equal "$(code -X POST -d '' "$BASE/api/token")" 400
    for p in /api/users/1 /api/users /api/users/me /api/tasks/x /api/nope /api/ /api/helloworld-not; do
        echo "$p"
        [ "$p" = /api/helloworld-not ] && continue # the hello program's prefix: public, its 404
        assert_equal "$(code "$BASE$p")" 401
    done
    assert_equal "$(code "$BASE/api/helloworld-not")" 404
    assert_equal "$(code -H "$AUTH" "$BASE/api/nope")" 404
}

@test "the decision is made on the normalised path: dot segments and encoded letters cannot reach a protected route as public" {
    for p in /api/hello/../users/1 /api/hello/./../tasks/x /api/health/../users /api/%75sers/1 \
        /api/hello/%2e%2e/users/1 /api/token/../users/me; do
        echo "$p"
        got=$(code --path-as-is "$BASE$p")
        assert_equal "$got" 401
    done
    # POST /api/users is public only for the collection itself
    assert_equal "$(code --path-as-is -X POST -H 'Content-Type: application/json' -d '{}' \
        "$BASE/api/users/1/..")" 422 # public: the users route itself answers (fields missing)
    assert_equal "$(code -X POST -d '{}' "$BASE/api/users/1")" 401
}

@test "the route logs the same request id as the authorizer, and answers it" {
    curl -s -m 10 -D "$BATS_TEST_TMPDIR/h" -o /dev/null -H "$AUTH" "$BASE/api/tasks/no-such-task"
    id=$(tr -d '\r' <"$BATS_TEST_TMPDIR/h" | awk -F': ' 'tolower($1) == "x-request-id" { print $2 }')
    [ ${#id} = 32 ]
    retry 20 0.1 eval "grep -q ' - tasks - .*request_id=$id\$' '$GW_STATE/log/routes.log'"
    grep -q " - auth - .*request_id=$id\$" "$GW_STATE/log/routes.log"
    # and a client's own id is kept by both
    curl -s -m 10 -o /dev/null -H "$AUTH" -H 'X-Request-Id: my-id-123' "$BASE/api/tasks/none"
    retry 20 0.1 eval "grep -q ' - tasks - .*request_id=my-id-123\$' '$GW_STATE/log/routes.log'"
    grep -q " - auth - .*request_id=my-id-123\$" "$GW_STATE/log/routes.log"
}

@test "CORS preflight from an allowed origin: 204 with the CORS headers, no token needed" {
    http OPTIONS /api/users/1 -H 'Origin: https://app.example.com' \
        -H 'Access-Control-Request-Method: PATCH' -H 'Access-Control-Request-Headers: authorization'
    assert_equal "$status" 204
    assert_equal "$body" ""
    grep -qx 'access-control-allow-origin: https://app.example.com' <<<"$headers"
    grep -qx 'access-control-allow-methods: get, post, patch, delete' <<<"$headers"
    grep -q '^access-control-allow-headers: .*authorization' <<<"$headers"
    grep -qx 'access-control-max-age: 600' <<<"$headers"
    grep -qx 'vary: origin' <<<"$headers"
    NOAUTH=1 http OPTIONS /api/tasks/x -H 'Origin: http://localhost:3000' -H 'Access-Control-Request-Method: GET'
    assert_equal "$status" 204
    grep -qx 'access-control-allow-origin: http://localhost:3000' <<<"$headers"
}

@test "CORS preflight from any other origin: 403, no CORS headers" {
    for o in https://evil.example.com https://app.example.com.evil.com http://app.example.com null; do
        NOAUTH=1 http OPTIONS /api/users/1 -H "Origin: $o" -H 'Access-Control-Request-Method: GET'
        echo "$o"
        assert_equal "$status" 403
        assert_equal "$body" '{"detail":"Origin not allowed"}'
        refute grep -q '^access-control-' <<<"$headers"
    done
}

@test "responses to an allowed origin carry Access-Control-Allow-Origin, refusals too; others get none" {
    http GET /api/hello/x -H 'Origin: https://app.example.com'
    assert_equal "$status" 200
    grep -qx 'access-control-allow-origin: https://app.example.com' <<<"$headers"
    grep -qx 'vary: origin' <<<"$headers"
    grep -q '^access-control-expose-headers: .*x-request-id' <<<"$headers"
    http GET /api/tasks/x -H 'Origin: https://app.example.com'
    assert_equal "$status" 404
    grep -qx 'access-control-allow-origin: https://app.example.com' <<<"$headers"
    NOAUTH=1 http GET /api/tasks/x -H 'Origin: https://app.example.com'
    assert_equal "$status" 401
    grep -qx 'access-control-allow-origin: https://app.example.com' <<<"$headers"
    http GET /api/hello/x -H 'Origin: https://evil.example.com'
    assert_equal "$status" 200
    refute grep -q '^access-control-' <<<"$headers"
    # a client cannot hand the route an origin (or an identity) itself
    http GET /api/hello/x -H 'Cors-Origin: https://evil.example.com' -H 'Variable-CORS_ORIGIN: x'
    refute grep -q '^access-control-' <<<"$headers"
}

@test "CORS_ORIGINS unset: no cross-origin access at all" {
    other_gateway
    NOAUTH=1 http OPTIONS /api/hello/x -H 'Origin: https://app.example.com' -H 'Access-Control-Request-Method: GET'
    assert_equal "$status" 403
    http GET /api/hello/x -H 'Origin: https://app.example.com'
    assert_equal "$status" 200
    refute grep -q '^access-control-' <<<"$headers"
    other_gateway_done
}

@test "a fresh authorizer that never reached Redis refuses tokens with 503, and public routes still work" {
    other_gateway REDIS_URL="unix://$BATS_TEST_TMPDIR/no-redis.sock"
    http GET /api/tasks/x
    assert_equal "$status" 503
    assert_equal "$body" '{"detail":"Authorization unavailable, try again shortly"}'
    grep -qx 'retry-after: 1' <<<"$headers"
    http GET /api/hello/x
    assert_equal "$status" 200
    other_gateway_done
}

@test "Redis down: tokens still checked with the list already loaded; a revoke needs Redis (503)" {
    assert_equal "$(code -H "$AUTH" "$BASE/api/tasks/x")" 404 # the list is loaded
    stop_redis
    sleep 1.2 # past REVOKE_SYNC_MS: the next check tries Redis and keeps its copy
    assert_equal "$(code -H "$AUTH" "$BASE/api/tasks/x")" 503 # the tasks route needs Redis itself
    grep -q ' - auth - WARNING - revoked tokens: Redis' "$GW_STATE/log/routes.log"
    NOAUTH=1 http GET /api/users/1
    assert_equal "$status" 401
    http POST /api/token/revoke --data-urlencode "token=${AUTH#*Bearer }"
    assert_equal "$status" 503
    # (Redis stays down: this is the file's last test)
}

@test "secrets reach only the programs that use them: TOKEN_KEYS the token route and the authorizer, FERNET_KEYS users" {
    other_gateway TOKEN_KEYS="k1:$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')" \
        FERNET_KEYS="$(head -c 32 /dev/urandom | base64 | tr '+/' '-_')"
    local prog pid seen=0
    for prog in auth hello users token health ready metrics tasks; do
        for pid in $(route_pids "$prog"); do
            env=$(tr '\0' '\n' <"/proc/$pid/environ")
            echo "$prog $pid"
            seen=$((seen + 1))
            # as files (doc/secrets.md): the value is no one's environment
            refute grep -q '^\(TOKEN_KEYS\|FERNET_KEYS\|DATABASE_URL\|REDIS_URL\)=' <<<"$env"
            case $prog in
            auth | token) grep -qx "TOKEN_KEYS_FILE=$GW_STATE/secrets/routes/TOKEN_KEYS" <<<"$env" ;;
            *) refute grep -q '^TOKEN_KEYS_FILE=' <<<"$env" ;;
            esac
            if [ "$prog" = users ]; then grep -q '^FERNET_KEYS_FILE=' <<<"$env"; else refute grep -q '^FERNET_KEYS_FILE=' <<<"$env"; fi
            case $prog in
            users | token | ready) grep -q '^DATABASE_URL_FILE=' <<<"$env" ;;
            *) refute grep -q '^DATABASE_URL_FILE=' <<<"$env" ;;
            esac
            case $prog in
            hello | health) refute grep -q '^REDIS_URL_FILE=' <<<"$env" ;;
            *) grep -q '^REDIS_URL_FILE=' <<<"$env" ;;
            esac
            refute grep -q '^GW_\(BIND\|PORT\|PROCS\)=' <<<"$env"
        done
    done
    [ "$seen" -ge 8 ]
    other_gateway_done
}

@test "every setting a route program reads is in that route's bin-copy-environment (or, a secret, its bin-environment's files) in lighttpd-routes.conf" {
    run -0 /usr/bin/python3 - "$REPO" <<'PY'
import os, re, sys
repo = sys.argv[1]
conf = open(os.path.join(repo, "lighttpd-routes.conf")).read()
common = re.search(r'var\.env = \(([^)]*)\)', conf).group(1)
common = set(re.findall(r'"([A-Z_]+)"', common))
def reads(path):
    src = open(path).read()
    return set(re.findall(r'\{"([A-Z_]+)", CONF_', src)) | set(re.findall(r'getenv\("([A-Z_]+)"\)', src))
lib = reads(os.path.join(repo, "lib/serve.c")) | reads(os.path.join(repo, "lib/log.c")) | \
      reads(os.path.join(repo, "lib/metrics.c"))
lib.discard("ROUTE_PREFIX")  # set per route with bin-environment
files = dict(re.findall(r'var\.(gw_f_[a-z]+) *= \( "([A-Z_]+)_FILE" =>', conf))
missing = []
routes = 0
for f in sorted(os.listdir(os.path.join(repo, "fcgi"))):
    name = f[:-2]
    m = re.search(r'"%s" => var\.gw_be_%s \+ \(\n(?:\s*"mode"[^\n]*\n)?\s*"bin-copy-environment" => ([^\n]*)\n\s*"bin-environment" => ([^\n]*)' % (name, name), conf)
    if not m:
        missing.append("%s: no bin-copy-environment" % name)
        continue
    routes += 1
    listed = set(re.findall(r'"([A-Z_]+)"', m.group(1))) | (common if "var.env" in m.group(1) else set())
    # secrets, handed as NAME_FILE through var.gw_f_* in bin-environment
    listed |= {files[v] for v in re.findall(r'var\.(gw_f_[a-z]+)', m.group(2))}
    for v in sorted((reads(os.path.join(repo, "fcgi", f)) | lib) - listed):
        missing.append("%s reads %s" % (name, v))
print("\n".join(missing) or "ok %d routes" % routes)
sys.exit(1 if missing else 0)
PY
    assert_output --regexp '^ok [0-9]+ routes$'
}

# redis_back: Redis again, if a test before stopped it (the outage test
# leaves it down), for the tests after it that need it
redis_back() { redis_up || redis_launch; }

# cors_lines: the last answer's CORS headers (and Vary), sorted, one a line
cors_lines() { grep -E '^(access-control-[a-z-]+|vary):' <<<"$headers" | sort; }

@test "CORS on every route's answers: an allowed origin gets exactly that origin once, with Vary; another origin no CORS header" {
    redis_back
    local allowed='https://app.example.com' expose want req method path auth kind
    expose='access-control-expose-headers: x-request-id, location, link, retry-after, x-cache'
    # method path token? who-answers: the route, or the authorizer (a refusal)
    for req in 'GET /api/hello/x - route' 'GET /api/health - route' 'GET /api/ready - route' \
        'POST /api/token - route' 'POST /api/users - route' 'GET /api/users/1 token route' \
        'GET /api/tasks/x token route' 'GET /api/queues token route' \
        'GET /api/users/1 - authorizer' 'GET /api/nope - authorizer' 'GET /api/queues bad authorizer'; do
        read -r method path auth kind <<<"$req"
        local args=(-H "Origin: $allowed")
        [ "$method" = POST ] && args+=(-H 'Content-Type: application/json' -d '{}')
        [ "$auth" = bad ] && args+=(-H 'Authorization: Bearer a.b.c')
        NOAUTH=1
        [ "$auth" = token ] && NOAUTH=0
        NOAUTH=$NOAUTH http "$method" "$path" "${args[@]}"
        echo "$req: $status"
        if [ "$kind" = route ]; then
            want=$(printf '%s\n' "access-control-allow-origin: $allowed" "$expose" 'vary: origin' | sort)
            assert_not_equal "$req: $status" "$req: 401"
        else
            want=$(printf '%s\n' "access-control-allow-origin: $allowed" 'vary: origin')
            assert_equal "$req: $status" "$req: 401"
        fi
        assert_equal "$req: $(cors_lines)" "$req: $want"
        # another origin, or none: not one CORS header
        for o in https://evil.example.com https://app.example.com/ HTTPS://APP.EXAMPLE.COM ''; do
            args[1]="Origin: $o"
            NOAUTH=$NOAUTH http "$method" "$path" "${args[@]}"
            assert_equal "$req from '$o': $(grep '^access-control-' <<<"$headers")" "$req from '$o': "
        done
    done
}

@test "CORS preflights on every route: 204 with exactly the CORS headers for an allowed origin, 403 with none for another" {
    local path want o
    for path in /api/hello/x /api/health /api/ready /api/token /api/token/revoke /api/users /api/users/me \
        /api/tasks/add /api/tasks/x /api/queues /api/nope; do
        for o in https://app.example.com http://localhost:3000; do
            NOAUTH=1 http OPTIONS "$path" -H "Origin: $o" -H 'Access-Control-Request-Method: POST' \
                -H 'Access-Control-Request-Headers: authorization, content-type'
            assert_equal "$path $o: $status" "$path $o: 204"
            want=$(printf '%s\n' 'access-control-allow-headers: authorization, content-type, x-request-id' \
                'access-control-allow-methods: get, post, patch, delete' "access-control-allow-origin: $o" \
                'access-control-max-age: 600' 'vary: origin' | sort)
            assert_equal "$path $o: $(cors_lines)" "$path $o: $want"
            assert_equal "$path $o: $body" "$path $o: "
        done
        for o in https://evil.example.com http://localhost:3001 null; do
            NOAUTH=1 http OPTIONS "$path" -H "Origin: $o" -H 'Access-Control-Request-Method: GET'
            assert_equal "$path $o: $status" "$path $o: 403"
            assert_equal "$path $o: $(grep '^access-control-' <<<"$headers")" "$path $o: "
        done
    done
}

@test "CORS_ORIGINS=*: any origin is answered with its own origin (never a literal *), preflights and responses" {
    other_gateway CORS_ORIGINS='*'
    local o
    for o in https://evil.example.com http://localhost:9999; do
        NOAUTH=1 http OPTIONS /api/users/1 -H "Origin: $o" -H 'Access-Control-Request-Method: GET'
        assert_equal "$status" 204
        run -0 grep '^access-control-allow-origin:' <<<"$headers"
        assert_output "access-control-allow-origin: $o"
        http GET /api/hello/x -H "Origin: $o"
        assert_equal "$status" 200
        run -0 grep '^access-control-allow-origin:' <<<"$headers"
        assert_output "access-control-allow-origin: $o"
    done
    # no Origin: still no CORS header
    http GET /api/hello/x
    assert_equal "$(grep '^access-control-' <<<"$headers")" ""
    other_gateway_done
}

@test "every program's environment holds exactly the secrets it needs: lighttpd its TLS key's path, each route the paths of its own" {
    redis_back
    # what the harness itself exports (earlier gateways' keys and token,
    # Redis's URL for Celery) is no program's business here
    unset CELERY_URL GW_TOKEN_KEYS AUTH
    local tk fk
    tk="k2:$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='),k1:$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    fk=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_')
    other_gateway TOKEN_KEYS="$tk" FERNET_KEYS="$fk" DATABASE_URL="postgresql:///app?host=/nowhere&password=pg-secret-$$"
    local s=$GW_STATE/secrets/routes prog want pid n=0
    local redis="REDIS_URL_FILE=$s/REDIS_URL" db="DATABASE_URL_FILE=$s/DATABASE_URL"
    local tok="TOKEN_KEYS_FILE=$s/TOKEN_KEYS" fer="FERNET_KEYS_FILE=$s/FERNET_KEYS"
    # every route program built, each with what doc/secrets.md says it reads
    for prog in "$GW_CGI_BIN"/*; do
        prog=${prog##*/}
        case $prog in
        auth) want=("$redis" "$tok") ;;
        token) want=("$db" "$redis" "$tok") ;;
        users) want=("$db" "$fer" "$redis") ;;
        ready) want=("$db" "$redis") ;;
        tasks | queues | metrics) want=("$redis") ;;
        hello | health) want=() ;;
        *) fail "$prog: no expected secrets in this test" ;;
        esac
        local pids
        pids=$(route_pids "$prog")
        assert_not_equal "$prog: $pids" "$prog: "
        for pid in $pids; do
            assert_equal "$prog $pid: $(secret_env "$pid")" \
                "$prog $pid: $(printf '%s\n' "${want[@]}" | sort | sed '/^$/d')"
            n=$((n + 1))
        done
    done
    [ "$n" -ge 9 ] || fail "only $n route processes"
    # the files hold the values given
    assert_equal "$(cat "$s/TOKEN_KEYS")" "$tk"
    assert_equal "$(cat "$s/FERNET_KEYS")" "$fk"
    # lighttpd's master and its workers: the path of the TLS key it serves
    # with, none of the routes' secrets, neither a name nor a value
    local workers=0
    for pid in "$GW_PID" $(pgrep -P "$GW_PID" -x lighttpd); do
        assert_equal "lighttpd $pid: $(secret_env "$pid")" "lighttpd $pid: GW_TLS_KEY=$GW_STATE/tls/key.pem"
        [ "$pid" = "$GW_PID" ] || workers=$((workers + 1))
    done
    assert_not_equal "$workers" 0
    # and no value is anyone's environment
    for pid in "$GW_PID" $(pgrep -P "$GW_PID"); do
        assert_equal "$pid: $(tr '\0' '\n' <"/proc/$pid/environ" | grep -c -F -e "${tk#k2:}" -e "$fk" -e "pg-secret-$$" -e "$(redis_password)")" "$pid: 0"
    done
    other_gateway_done
}

# restart_gateway VAR=value...: stop the test's gateway and start it again
# on its state dir and port with these settings, as an operator restarts
# it after changing them
restart_gateway() {
    local port=${BASE##*:}
    stop_gateway
    env GW_STATE="$GW_STATE" GW_PORT="$port" GW_TLS_PORT=0 GW_CGI_BIN="$GW_CGI_BIN" GW_PROCS=1 "$@" \
        "$REPO/scripts/gateway" >>"$GW_STATE/gateway.out" 2>&1 3>&- </dev/null &
    GW_PID=$!
    retry 50 0.1 gateway_answers || { cat "$GW_STATE/gateway.out" "$GW_STATE/log/error.log" >&2; return 1; }
}

# newkey: a signing key, 32 random bytes in URL-safe base64
newkey() { head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='; }

# kid_of TOKEN: the kid in the token's header
kid_of() {
    /usr/bin/python3 -c 'import base64, json, sys; h = sys.argv[1].split(".")[0]; print(json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))["kid"])' "$1"
}

@test "key rotation through the gateway: a token of the previous key is accepted while the keyring holds it, refused (401) once it is removed" {
    redis_back
    local old="old1:$(newkey)" new="new2:$(newkey)" t_old t_new
    other_gateway GW_TLS_PORT=0 TOKEN_KEYS="$old"
    t_old=$(TOKEN_KEYS=$old "$GW_BIN/tokenctl" issue --sub 7 --scope tasks --ttl 600)
    assert_equal "$(kid_of "$t_old")" old1
    NOAUTH=1 http GET /api/tasks/x -H "Authorization: Bearer $t_old"
    assert_equal "$status" 404 # past the authorizer: the route's own answer

    # a new key goes first; the old one stays to verify
    restart_gateway TOKEN_KEYS="$new,$old"
    NOAUTH=1 http GET /api/tasks/x -H "Authorization: Bearer $t_old"
    assert_equal "$status" 404
    t_new=$(TOKEN_KEYS="$new,$old" "$GW_BIN/tokenctl" issue --sub 7 --scope tasks --ttl 600)
    assert_equal "$(kid_of "$t_new")" new2
    NOAUTH=1 http GET /api/tasks/x -H "Authorization: Bearer $t_new"
    assert_equal "$status" 404

    # the old key removed: its tokens are refused, the new key's are not
    restart_gateway TOKEN_KEYS="$new"
    NOAUTH=1 http GET /api/tasks/x -H "Authorization: Bearer $t_old"
    assert_equal "$status" 401
    assert_equal "$body" '{"detail":"Invalid token"}'
    assert_regex "$headers" 'www-authenticate: bearer realm="api", error="invalid_token"'
    NOAUTH=1 http GET /api/tasks/x -H "Authorization: Bearer $t_new"
    assert_equal "$status" 404
    # a token of the removed key's kid signed with the new key is no way back in
    t_old=$(TOKEN_KEYS="old1:${new#new2:}" "$GW_BIN/tokenctl" issue --sub 7 --scope tasks --ttl 600)
    NOAUTH=1 http GET /api/tasks/x -H "Authorization: Bearer $t_old"
    assert_equal "$status" 401
    other_gateway_done
}

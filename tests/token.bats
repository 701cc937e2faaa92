#!/usr/bin/env bats
# POST /api/token: the OAuth2 password grant (RFC 6749 §4.3) against real
# users in PostgreSQL, attempts limited in Redis.

load helpers
load queue
load pg

setup_file() {
    start_redis
    start_pg
    # a short progressive delay: 3 free failures, then waits of 1 s, 2 s, 2 s ...
    start_gateway LOGIN_FREE_FAILURES=3 LOGIN_DELAY_MAX=2 LOGIN_PER_ADDR=1000
    export BASE GW_STATE GW_PID
    curl -s -o /dev/null -X POST "$BASE/api/users" \
        -d '{"username":"alice","email":"alice@example.com","password":"wonderland"}'
    psql_app -c "UPDATE users SET scopes = '{users,tasks}' WHERE username = 'alice'"
}

teardown_file() {
    stop_gateway
    stop_pg
    stop_redis
}

setup() {
    # a fresh attempt window for every test
    rcli --scan --pattern 'login:*' | xargs -r env REDISCLI_AUTH="$(redis_password)" redis-cli -s "$REDIS_SOCK" del >/dev/null
}

login() { # FORM [curl args...]: POST it as a form
    local form=$1
    shift
    http POST /api/token -H 'Content-Type: application/x-www-form-urlencoded' --data-raw "$form" "$@"
}

# retry_after: the Retry-After of the last answer (empty if none)
retry_after() { sed -n 's/^retry-after: \([0-9]*\)$/\1/p' <<<"$headers"; }

# waits_out FORM [curl args...]: send FORM until it is not a 429 (the wait
# is over); the answer is in status/body/headers
waits_out() {
    local f=$1 extra=("${@:2}")
    retry 60 0.1 eval 'login "$f" "${extra[@]}"; [ "$status" != 429 ]'
}

# b64url_json PART: the JSON of a token part
part_json() {
    /usr/bin/python3 -c 'import base64,sys; p=sys.argv[1]; print(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)).decode())' "$1"
}

@test "the password grant answers a bearer JWT with the user's id and scopes, never cached" {
    login 'grant_type=password&username=alice&password=wonderland'
    assert_equal "$status" 200
    [[ $headers == *"cache-control: no-store"* ]]
    [[ $body == *'"token_type":"bearer"'* ]]
    [[ $body == *'"expires_in":900'* ]]
    [[ $body == *'"scope":"users tasks"'* ]]
    token=$(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' <<<"$body")
    IFS=. read -r h p s <<<"$token"
    [ -n "$s" ]
    header=$(part_json "$h")
    payload=$(part_json "$p")
    [[ $header == *'"alg":"HS256"'* ]]
    [[ $header == *'"kid":"dev1"'* ]]
    id=$(psql_app -c "SELECT id FROM users WHERE username = 'alice'")
    [[ $payload == *"\"sub\":\"$id\""* ]]
    /usr/bin/python3 -c 'import json,sys; c=json.loads(sys.argv[1]); assert c["exp"]-c["iat"]==900 and len(c["jti"])==36' "$payload"
    # the user name is case-insensitive; a narrower scope may be asked for
    login 'grant_type=password&username=ALICE&password=wonderland&scope=tasks'
    assert_equal "$status" 200
    [[ $body == *'"scope":"tasks"'* ]]
}

@test "RFC 6749 §5.2 errors: invalid_request, unsupported_grant_type, invalid_grant, invalid_scope" {
    login 'grant_type=password&username=alice&password=nope'
    assert_equal "$status" 400
    assert_equal "$body" '{"error":"invalid_grant","error_description":"Incorrect username or password"}'
    login 'grant_type=password&username=nobody&password=wonderland'
    assert_equal "$body" '{"error":"invalid_grant","error_description":"Incorrect username or password"}'
    login 'grant_type=client_credentials'
    [[ $body == '{"error":"unsupported_grant_type",'* ]]
    login 'username=alice&password=wonderland'
    [[ $body == '{"error":"invalid_request",'* ]]
    login 'grant_type=password&username=alice'
    [[ $body == '{"error":"invalid_request",'* ]]
    login 'grant_type=password&grant_type=password&username=alice&password=wonderland'
    [[ $body == '{"error":"invalid_request",'* ]]
    login 'grant_type=password&username=alice&password=%ZZ'
    [[ $body == '{"error":"invalid_request",'* ]]
    login 'grant_type=password&username=alice&password=wonderland&scope=admin'
    [[ $body == '{"error":"invalid_scope",'* ]]
    http POST /api/token -H 'Content-Type: application/json' -d '{"grant_type":"password"}'
    assert_equal "$status" 400
    [[ $body == '{"error":"invalid_request",'* ]]
    http GET /api/token
    assert_equal "$status" 405
    # SQL and unicode in the user name are just names nobody has
    login "grant_type=password&username=%27%20OR%20%271%27%3D%271&password=x"
    [[ $body == '{"error":"invalid_grant",'* ]]
    login "grant_type=password&username=J%C3%B6rg%F0%9F%98%80&password=x"
    [[ $body == '{"error":"invalid_grant",'* ]]
}

@test "a name's failures from one address make it wait, doubling up to LOGIN_DELAY_MAX: 429 with Retry-After, the right password too" {
    local i
    for i in 1 2 3; do
        login "grant_type=password&username=alice&password=guess$i"
        assert_equal "$status" 400
    done
    # the fourth failure is past the free ones: the next attempt waits 1 s
    login 'grant_type=password&username=alice&password=guess4'
    assert_equal "$status" 400
    login 'grant_type=password&username=alice&password=wonderland'
    assert_equal "$status" 429
    assert_equal "$body" '{"detail":"Too many login attempts, try again later"}'
    assert_equal "$(retry_after)" 1
    [[ $body != *access_token* ]]
    # after the wait one more try; failed, it doubles the wait
    waits_out 'grant_type=password&username=alice&password=guess5'
    assert_equal "$status" 400
    login 'grant_type=password&username=alice&password=wonderland'
    assert_equal "$status" 429
    assert_equal "$(retry_after)" 2
    # ... up to LOGIN_DELAY_MAX (2 s here)
    waits_out 'grant_type=password&username=alice&password=guess6'
    assert_equal "$status" 400
    login 'grant_type=password&username=alice&password=wonderland'
    assert_equal "$(retry_after)" 2
    # the right password after the wait: a token, and the pair starts over
    waits_out 'grant_type=password&username=alice&password=wonderland'
    assert_equal "$status" 200
    for i in 1 2 3 4; do
        login "grant_type=password&username=alice&password=again$i"
        assert_equal "$i:$status" "$i:400"
    done
    login 'grant_type=password&username=alice&password=wonderland'
    assert_equal "$status" 429
}

@test "failures from another address never lock a user out: 11 wrong passwords from 127.0.0.1, alice logs in from 127.0.0.2" {
    local i
    for i in $(seq 1 11); do
        login "grant_type=password&username=alice&password=guess$i"
    done
    # one more failure once the current wait is over: 127.0.0.1 now waits 2 s
    waits_out 'grant_type=password&username=alice&password=guess12'
    assert_equal "$status" 400
    login 'grant_type=password&username=alice&password=wonderland' --interface 127.0.0.2
    assert_equal "$status" 200
    [[ $body == *access_token* ]]
    # the address that guessed still waits, the right password included
    login 'grant_type=password&username=alice&password=wonderland'
    assert_equal "$status" 429
    # another name from the guessing address is not held up either
    login 'grant_type=password&username=bob&password=guess'
    assert_equal "$status" 400
}

@test "one address trying many names: 429 with Retry-After once over LOGIN_PER_ADDR in LOGIN_WINDOW; other addresses log in" {
    local main_base=$BASE main_pid=$GW_PID main_state=$GW_STATE i
    start_gateway GW_PROCS=1 LOGIN_PER_ADDR=8 LOGIN_WINDOW=30
    for i in $(seq 1 8); do
        login "grant_type=password&username=spray$i&password=guess" --interface 127.0.0.3
        assert_equal "$i:$status" "$i:400"
    done
    login 'grant_type=password&username=spray9&password=guess' --interface 127.0.0.3
    assert_equal "$status" 429
    assert_equal "$body" '{"detail":"Too many login attempts, try again later"}'
    local ra
    ra=$(retry_after)
    [ -n "$ra" ] || fail "no Retry-After: $headers"
    [ "$ra" -ge 1 ] || fail "Retry-After: $ra"
    [ "$ra" -le 30 ] || fail "Retry-After: $ra"
    # any name, the right password included, from that address
    login 'grant_type=password&username=alice&password=wonderland' --interface 127.0.0.3
    assert_equal "$status" 429
    login 'grant_type=password&username=alice&password=wonderland'
    assert_equal "$status" 200
    stop_gateway
    BASE=$main_base GW_PID=$main_pid GW_STATE=$main_state
}

@test "names are compared normalised: ALICE and a fullwidth ａｌｉｃｅ are alice, and share her waits" {
    login 'grant_type=password&username=ALICE&password=wonderland'
    assert_equal "$status" 200
    login "grant_type=password&username=$(printf '%s' 'ａｌｉｃｅ' | "$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.stdin.read()))')&password=wonderland"
    assert_equal "$status" 200
    # a Cyrillic а is another name: nobody's
    login "grant_type=password&username=%D0%B0lice&password=wonderland"
    assert_equal "$status" 400
    local i
    for i in 1 2 3 4; do
        login "grant_type=password&username=Alice&password=guess$i"
    done
    login 'grant_type=password&username=ALICE&password=wonderland'
    assert_equal "$status" 429
}

@test "Redis or PostgreSQL down: 503, never a token" {
    stop_redis
    login 'grant_type=password&username=alice&password=wonderland'
    assert_equal "$status" 503
    redis_launch
    stop_pg
    login 'grant_type=password&username=alice&password=wonderland'
    assert_equal "$status" 503
    pg_launch
    retry 50 0.1 eval "login 'grant_type=password&username=alice&password=wonderland'; [ \"\$status\" = 200 ]"
}

@test "no password or token in any log" {
    login 'grant_type=password&username=alice&password=wonderland'
    token=$(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' <<<"$body")
    run grep -rlF -e wonderland -e "$token" -e "$(cat "$GW_STATE/secrets/token-keys" | cut -d: -f2)" "$GW_STATE/log"
    assert_failure
}

@test "revoke (RFC 7009): our token is denied until its expiry; anything else is ignored with 200" {
    login 'grant_type=password&username=alice&password=wonderland'
    token=$(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' <<<"$body")
    payload=$(part_json "$(cut -d. -f2 <<<"$token")")
    jti=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["jti"])' "$payload")
    http POST /api/token/revoke --data-urlencode "token=$token"
    assert_equal "$status" 200
    assert_equal "$body" '{}'
    exp=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["exp"])' "$payload")
    # on the revoked list until its expiry (lib/denylist.h) ...
    run -0 rcli zrange revoked 0 -1
    assert_line "$exp $jti"
    # ... which the gateway's authorizer reads within REVOKE_SYNC_MS (1 s)
    other=$(token 1)
    retry 30 0.1 eval 'NOAUTH=1 http GET /api/users/me -H "Authorization: Bearer $token"; [ "$status" = 401 ]'
    assert_equal "$body" '{"detail":"Token revoked"}'
    NOAUTH=1 http GET /api/tasks/nope -H "Authorization: Bearer $other"
    assert_equal "$status" 404
    http POST /api/token/revoke --data-urlencode "token=garbage.x.y"
    assert_equal "$status" 200
    http POST /api/token/revoke -d 'nothing=here'
    assert_equal "$status" 400
    [[ $body == '{"error":"invalid_request",'* ]]
    http GET /api/token/revoke
    assert_equal "$status" 405
}

@test "the per-address cap counts successes too, and starts over when LOGIN_WINDOW ends" {
    local main_base=$BASE main_pid=$GW_PID main_state=$GW_STATE i
    start_gateway GW_PROCS=1 LOGIN_PER_ADDR=3 LOGIN_WINDOW=3
    # three attempts in the window, two of them right: the fourth is refused
    login 'grant_type=password&username=alice&password=wonderland' --interface 127.0.0.4
    assert_equal "$status" 200
    login 'grant_type=password&username=nobody&password=guess' --interface 127.0.0.4
    assert_equal "$status" 400
    login 'grant_type=password&username=alice&password=wonderland' --interface 127.0.0.4
    assert_equal "$status" 200
    login 'grant_type=password&username=alice&password=wonderland' --interface 127.0.0.4
    assert_equal "$status" 429
    local ra
    ra=$(retry_after)
    assert_regex "$ra" '^[123]$'
    # once the window is over (within its 3 s), a new one: three more
    local t0=$SECONDS
    waits_out 'grant_type=password&username=alice&password=wonderland' --interface 127.0.0.4
    assert_equal "$status" 200
    assert [ $((SECONDS - t0)) -le 4 ]
    for i in 2 3; do
        login 'grant_type=password&username=alice&password=wonderland' --interface 127.0.0.4
        assert_equal "$i: $status" "$i: 200"
    done
    login 'grant_type=password&username=alice&password=wonderland' --interface 127.0.0.4
    assert_equal "$status" 429
    stop_gateway
    BASE=$main_base GW_PID=$main_pid GW_STATE=$main_state
}

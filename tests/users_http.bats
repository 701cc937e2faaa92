#!/usr/bin/env bats
# /api/users through the real gateway: lighttpd, the users route program of
# the build under test, a private PostgreSQL with the migrations applied and
# a private Redis for the read cache. No mocks. Every documented answer:
# create, read (with the cache), list pages, update, delete, conflicts, every
# validation error in FastAPI's shape; the password only ever stored hashed;
# SQL-injection strings and Unicode stored verbatim. One stack for the file;
# each test makes users of its own (names carry the test's number).

load helpers
load queue
load pg

# jget prints Python strings: make that UTF-8 whatever the locale
export PYTHONIOENCODING=utf-8 PGCLIENTENCODING=UTF8

setup_file() {
    start_redis
    start_pg
    # every test registers and logs in from 127.0.0.1: the per-address
    # limits high (they have tests of their own)
    start_gateway GW_PROCS=2 REGISTER_PER_ADDR=1000000 LOGIN_PER_ADDR=1000000
}

teardown_file() {
    stop_route_gateway
    stop_pg
    stop_redis
}

setup() {
    N=$BATS_TEST_NUMBER
    ROUTES_MARK=$(wc -l <"$GW_STATE/log/routes.log")
}

# After every test: no answer of the users route was a 5xx and it logged no
# error (whatever the input, never a 500). A test that started a second
# gateway (USER_CACHE_TTL=0) has it stopped and checked, and the file's back.
teardown() {
    local rc=0
    if [ -n "${MAIN_GW_PID:-}" ]; then
        route_errors "$GW_STATE/log/routes.log" 0 || rc=1
        stop_route_gateway || rc=1
        BASE=$MAIN_BASE GW_PID=$MAIN_GW_PID GW_STATE=$MAIN_GW_STATE
        MAIN_GW_PID=
    fi
    route_errors "$GW_STATE/log/routes.log" "${ROUTES_MARK:-0}" || rc=1
    return "$rc"
}

# route_errors LOG FROM: fail, showing them, if the lines of LOG after line
# FROM hold a 5xx answer or an ERROR of the users route
route_errors() {
    local bad
    bad=$(tail -n "+$(($2 + 1))" "$1" |
        grep -E ' - users - (ERROR|CRITICAL) - | 5[0-9][0-9] [0-9.]+ms request_id=') || return 0
    echo "users route errors in $1:" >&2
    echo "$bad" >&2
    return 1
}

USER_KEYS='["id","username","email","full_name","phone","scopes","created_at","updated_at"]'
INT_MSG='Input should be a valid integer, unable to parse string as an integer'

# sql SQL: one statement on the app database, unaligned tuples
sql() { psql_app -c "$1"; }

# obj KEY VALUE ...: a JSON object of those string members, any text quoted
# (tests/jget.c's --obj; Python when a value is not UTF-8)
obj() {
    if [ -x "$JGET" ]; then
        local rc=0
        "$JGET" --obj "$@" || rc=$? # not a bare call: bats's errexit
        [ "$rc" = 3 ] || return "$rc"
    fi
    "$PY" -c 'import json, sys
a = sys.argv[1:]
print(json.dumps(dict(zip(a[::2], a[1::2])), ensure_ascii=False))' "$@"
}

# id_of JSON: the "id" a user answer starts with (empty if none)
id_of() { if [[ $1 =~ ^\{\"id\":([0-9]+), ]]; then echo "${BASH_REMATCH[1]}"; fi; }

# post BODY [curl args...]: POST /api/users; sets ID (and status/body/headers)
post() {
    local b=$1
    shift
    api POST /api/users -H 'Content-Type: application/json' --data-binary "$b" "$@"
    ID=$(id_of "$body")
}

# patch ID BODY
patch() { api PATCH "/api/users/$1" -H 'Content-Type: application/json' --data-binary "$2"; }

# new_user TAG [MORE-JSON-MEMBERS]: create u<N>_TAG (email u<N>_TAG@example.com,
# password pw-u<N>_TAG-secret); must be a 201. Sets ID NAME EMAIL USER (the answer).
new_user() {
    NAME="u${N}_$1"
    EMAIL="$NAME@example.com"
    post "{\"username\":\"$NAME\",\"email\":\"$EMAIL\",\"password\":\"pw-$NAME-secret\"${2:+,$2}}"
    assert_equal "$status" 201
    [ -n "$ID" ]
    USER=$body
}

# has_header "name: value": that exact (lower-cased) header line was answered
has_header() { grep -qxF -- "$1" <<<"$headers" || fail "no header '$1' in: $headers"; }
no_header() { ! grep -q "^$1:" <<<"$headers" || fail "unexpected $1 header in: $headers"; }

# assert_no_secret: the answer holds neither a password nor a hash
assert_no_secret() {
    [[ $body != *'"password'* ]] || fail "password field in answer: $body"
    [[ $body != *'$y$'* ]] || fail "password hash in answer: $body"
}

# assert_user: $body is one user: exactly the public keys, in order
assert_user() {
    assert_equal "$(jget "$body" 'list(j)')" "$USER_KEYS"
    assert_no_secret
}

# assert_422 LOC TYPE [MSG-PREFIX]: a FastAPI-shaped 422 holding one error
# {"loc":LOC,"msg":...,"type":TYPE} (LOC as compact JSON), msg starting with
# MSG-PREFIX (one Python run: these are in many loops)
assert_422() {
    assert_equal "$status" 422
    has_header 'content-type: application/json'
    assert_equal "$("$PY" -c 'import json, sys
j = json.loads(sys.argv[1])
e = j["detail"][0]
print(json.dumps([list(j), len(j["detail"]), sorted(e), e["loc"], e["type"], bool(e["msg"]),
                  e["msg"].startswith(sys.argv[2]) or e["msg"]], separators=(",", ":"),
                 ensure_ascii=False))' "$body" "${3-}")" \
        "[[\"detail\"],1,[\"loc\",\"msg\",\"type\"],$1,\"$2\",true,true]"
}

# assert_404: the route's own "User not found"
assert_404() {
    assert_equal "$status" 404
    assert_equal "$body" '{"detail":"User not found"}'
}

# head_req PATH: a HEAD request (curl --head, as tests/gateway.bats does); sets
# status, headers and BODY_BYTES (body bytes received)
head_req() {
    local out="$BATS_TEST_TMPDIR/head" got
    got=$(curl -s -m 15 --head -H "$AUTH" -D "$out.head" -o /dev/null \
        -w '%{http_code} %{size_download}' "$BASE$1")
    status=${got% *}
    BODY_BYTES=${got#* }
    headers=$(tr -d '\r' <"$out.head" | tr 'A-Z' 'a-z')
}

# crypt_ok PASSWORD HASH: True if HASH is a crypt(3) hash of PASSWORD
crypt_ok() {
    "$PY" -W ignore -c 'import crypt, sys
print(crypt.crypt(sys.argv[1], sys.argv[2]) == sys.argv[2])' "$1" "$2"
}

# user_count: rows in the users table (fails if the table is gone)
user_count() { sql 'SELECT count(*) FROM users'; }

# ---------------------------------------------------------------- create, read

@test "POST creates a user: 201, Location, the public fields only; GET returns the same" {
    post "$(obj username "ann_$N" email "Ann_$N@Example.com" password 'correct horse' \
        full_name 'Ann Smith' phone '+14155550123')"
    assert_equal "$status" 201
    [ -n "$ID" ]
    has_header "location: /api/users/$ID"
    has_header 'content-type: application/json'
    assert_user
    assert_equal "$(jget "$body" '[j["username"], j["email"], j["full_name"], j["phone"],
        j["scopes"], j["created_at"] == j["updated_at"]]')" \
        "[\"ann_$N\",\"Ann_$N@Example.com\",\"Ann Smith\",\"+14155550123\",[],true]"
    [[ $(jget "$body" 'j["created_at"]') =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$ ]]
    local created=$body
    api GET "/api/users/$ID"
    assert_equal "$status" 200
    assert_equal "$body" "$created"

    # the optional fields left out are null; given as null too
    post "$(obj username "min_$N" email "min_$N@example.com" password 'abcdefgh')"
    assert_equal "$status" 201
    assert_equal "$(jget "$body" '[j["full_name"], j["phone"]]')" '[null,null]'
    post "{\"username\":\"nul_$N\",\"email\":\"nul_$N@example.com\",\"password\":\"abcdefgh\",\"full_name\":null,\"phone\":null}"
    assert_equal "$status" 201
    assert_equal "$(jget "$body" '[j["full_name"], j["phone"]]')" '[null,null]'
    assert_equal "$(sql "SELECT count(*) FROM users WHERE username IN ('ann_$N', 'min_$N', 'nul_$N')")" 3
}

@test "the password is stored only as a yescrypt hash of it, and no answer carries it" {
    local pw='s3cret pass wörd'
    post "$(obj username "pw_$N" email "pw_$N@example.com" password "$pw")"
    assert_equal "$status" 201
    assert_no_secret
    local hash
    hash=$(sql "SELECT password_hash FROM users WHERE id = $ID")
    [[ $hash == '$y$'* ]] || fail "not a yescrypt hash: $hash"
    [[ $hash != *s3cret* ]]
    assert_equal "$(crypt_ok "$pw" "$hash")" True
    assert_equal "$(crypt_ok 's3cret pass word' "$hash")" False
    # no column of the row holds the plain text
    assert_equal "$(sql "SELECT count(*) FROM users u WHERE u::text LIKE '%s3cret%'")" 0
    # each user gets its own salt
    post "$(obj username "pw2_$N" email "pw2_$N@example.com" password "$pw")"
    assert_equal "$status" 201
    local hash2
    hash2=$(sql "SELECT password_hash FROM users WHERE id = $ID")
    [ "$hash2" != "$hash" ]
    assert_equal "$(crypt_ok "$pw" "$hash2")" True

    for path in "/api/users/$ID" "/api/users/$ID" "/api/users?after=$((ID - 2))&limit=2" /api/users; do
        api GET "$path"
        assert_equal "$status" 200
        assert_no_secret
    done
}

@test "GET by id: X-Cache miss then hit; 007 is user 7 (one cache entry); HEAD has no body" {
    new_user a
    api GET "/api/users/$ID"
    assert_equal "$status" 200
    grep -qxE 'x-cache: (miss|hit)' <<<"$headers"
    assert_equal "$body" "$USER"
    assert_user
    api GET "/api/users/$ID"
    assert_equal "$status" 200
    has_header 'x-cache: hit'
    assert_equal "$body" "$USER"
    # once the cache has forgotten it: a miss (from the table), then a hit
    rcli del "user:$ID" >/dev/null
    api GET "/api/users/$ID"
    assert_equal "$status" 200
    has_header 'x-cache: miss'
    assert_equal "$body" "$USER"
    api GET "/api/users/$ID"
    has_header 'x-cache: hit'
    assert_equal "$body" "$USER"
    # leading zeros name the same user, and its cache entry
    api GET "/api/users/00$ID"
    assert_equal "$status" 200
    has_header 'x-cache: hit'
    assert_equal "$body" "$USER"
    # the cache holds it for USER_CACHE_TTL (30 s by default)
    local ttl
    ttl=$(rcli ttl "user:$ID")
    [ "$ttl" -ge 1 ] && [ "$ttl" -le 30 ] || fail "ttl $ttl"

    head_req "/api/users/$ID"
    assert_equal "$status" 200
    assert_equal "$BODY_BYTES" 0
    has_header 'content-type: application/json'
    has_header 'x-cache: hit'
    has_header "content-length: $(printf '%s' "$USER" | wc -c)"
    head_req /api/users/9223372036854775807
    assert_equal "$status" 404
    assert_equal "$BODY_BYTES" 0
    has_header "content-length: $(printf '%s' '{"detail":"User not found"}' | wc -c)"
}

@test "GET of an id no user has: 404 User not found; other paths under it: 404" {
    api GET /api/users/9223372036854775807
    assert_404
    has_header 'content-type: application/json'
    new_user a
    for p in "/api/users/$ID/x" /api/users/1/x /api/users/abc/x "/api/users/$ID/"; do
        api GET "$p"
        assert_equal "$p:$status" "$p:404"
        assert_equal "$(jget "$body" 'list(j)')" '["detail"]'
    done
    api GET "/api/users$ID"
    assert_equal "$status" 404
}

@test "GET with an id that is not an integer: 422 int_parsing at [path, user_id]" {
    for id in abc 1e3 1.5 0x10 - 1a '%20' '1%2F2' '%C3%A9' 'x%27%20OR%201=1'; do
        api GET "/api/users/$id"
        echo "id=$id"
        assert_422 '["path","user_id"]' int_parsing "$INT_MSG"
    done
}

@test "GET with an id out of range: 422 greater_than_equal / less_than_equal" {
    for id in 0 -1 -0 -99999999999999999999; do
        api GET "/api/users/$id"
        echo "id=$id"
        assert_422 '["path","user_id"]' greater_than_equal
        assert_equal "$(jget "$body" 'j["detail"][0]["msg"]')" 'Input should be greater than or equal to 1'
    done
    for id in 99999999999999999999 9223372036854775808; do
        api GET "/api/users/$id"
        echo "id=$id"
        assert_422 '["path","user_id"]' less_than_equal
        assert_equal "$(jget "$body" 'j["detail"][0]["msg"]')" \
            'Input should be less than or equal to 9223372036854775807'
    done
}

@test "other methods: 405 with an Allow header naming the route's methods" {
    # allow_set: the Allow header's methods, sorted, comma-separated
    allow_set() { sed -n 's/^allow: //p' <<<"$headers" | tr -d ' ' | tr ',' '\n' | sort | paste -sd,; }
    for m in PUT DELETE PATCH OPTIONS; do
        http "$m" /api/users -m 15 --data-binary '{}'
        assert_equal "$m:$status" "$m:405"
        assert_equal "$body" '{"detail":"Method Not Allowed"}'
        assert_equal "$(allow_set)" get,head,post
    done
    new_user a
    for m in PUT POST OPTIONS; do
        for id in "$ID" abc; do
            http "$m" "/api/users/$id" -m 15 --data-binary '{}'
            assert_equal "$m $id:$status" "$m $id:405"
            assert_equal "$body" '{"detail":"Method Not Allowed"}'
            assert_equal "$(allow_set)" delete,get,head,patch
        done
    done
    # and nothing was changed by them
    api GET "/api/users/$ID"
    assert_equal "$body" "$USER"
}

# ---------------------------------------------------------------- conflicts

@test "409 Username already registered, ignoring case; nothing is stored" {
    post "$(obj username "Bob_$N" email "bob1_$N@example.com" password 'abcdefgh')"
    assert_equal "$status" 201
    for u in "bob_$N" "BOB_$N" "Bob_$N"; do
        post "$(obj username "$u" email "other_${u}@example.com" password 'abcdefgh')"
        assert_equal "$u:$status" "$u:409"
        assert_equal "$body" '{"detail":"Username already registered"}'
    done
    # case beyond ASCII too
    post "$(obj username "Émile_$N" email "emile1_$N@example.com" password 'abcdefgh')"
    assert_equal "$status" 201
    post "$(obj username "émile_$N" email "emile2_$N@example.com" password 'abcdefgh')"
    assert_equal "$status" 409
    assert_equal "$body" '{"detail":"Username already registered"}'
    assert_equal "$(sql "SELECT count(*) FROM users WHERE lower(username) IN ('bob_$N', 'émile_$N')")" 2
}

@test "409 Email already registered, ignoring case; nothing is stored" {
    post "$(obj username "x1_$N" email "X_$N@Y.com" password 'abcdefgh')"
    assert_equal "$status" 201
    for e in "x_$N@y.com" "X_$N@y.COM" "X_$N@Y.com"; do
        post "$(obj username "x2_${N}_$RANDOM" email "$e" password 'abcdefgh')"
        assert_equal "$e:$status" "$e:409"
        assert_equal "$body" '{"detail":"Email already registered"}'
    done
    assert_equal "$(sql "SELECT count(*) FROM users WHERE lower(email) = 'x_$N@y.com'")" 1
    assert_equal "$(sql "SELECT count(*) FROM users WHERE username LIKE 'x2\\_${N}\\_%'")" 0
}

@test "parallel registrations of one name: exactly one 201, the others 409" {
    local cfg="$BATS_TEST_TMPDIR/race.cfg" i
    : >"$cfg"
    for i in $(seq 1 12); do
        [ "$i" = 1 ] || echo next >>"$cfg"
        printf 'url = "%s"\nrequest = "POST"\nheader = "Content-Type: application/json"\n' "$BASE/api/users" >>"$cfg"
        printf 'data = "{\\"username\\":\\"race_%s\\",\\"email\\":\\"race%s_%s@example.com\\",\\"password\\":\\"abcdefgh\\"}"\n' \
            "$N" "$i" "$N" >>"$cfg"
        printf 'output = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nmax-time = 15\n' >>"$cfg"
    done
    curl_batch "$cfg"
    run cat "$BATS_TEST_TMPDIR/codes"
    assert_line --regexp '^ *1 201$'
    assert_line --regexp '^ *11 409$'
    assert_equal "${#lines[@]}" 2
    assert_equal "$(sql "SELECT count(*) FROM users WHERE username = 'race_$N'")" 1
}

# ---------------------------------------------------------------- look-alike names

@test "look-alike names are refused: admіn (Cyrillic і) and ａdmin (fullwidth) beside admin, 409; distinct names register" {
    post "$(obj username admin email "admin_$N@example.com" password abcdefgh)"
    assert_equal "$status" 201
    local admin_id=$ID
    # the same name once normalised (NFKC, then case-folded)
    local u
    for u in ADMIN Admin "$(printf '\uff41dmin')" "$(printf '\uff21\uff24\uff2d\uff29\uff2e')"; do
        post "$(obj username "$u" email "same_${N}_$RANDOM@example.com" password abcdefgh)"
        echo "username: $u"
        assert_equal "$status" 409
        assert_equal "$body" '{"detail":"Username already registered"}'
    done
    # another name that looks the same (Unicode TR39 skeleton)
    for u in "$(printf 'adm\u0456n')" "$(printf '\u0430dmin')" adrnin "$(printf 'ADM\u0406N')"; do
        post "$(obj username "$u" email "like_${N}_$RANDOM@example.com" password abcdefgh)"
        echo "username: $u"
        assert_equal "$status" 409
        assert_equal "$body" '{"detail":"Username too similar to a registered one"}'
    done
    # a name with characters that vanish when normalised (soft hyphen,
    # zero-width joiner, a variation selector): 422
    for u in "$(printf 'ad\u00admin')" "$(printf 'adm\u200din')" "$(printf 'admin\ufe0f')"; do
        post "$(obj username "$u" email "inv_${N}_$RANDOM@example.com" password abcdefgh)"
        echo "username: $u"
        assert_422 '["body","username"]' string_pattern_mismatch
    done
    assert_equal "$(sql "SELECT count(*) FROM users WHERE email LIKE '%\_${N}\_%@example.com'")" 0
    # ordinary distinct names still register, near ones included
    for u in admins administrator adm1 bob_adm carol "$(printf '\u0430\u0434\u043c\u0438\u043d')"; do
        post "$(obj username "${u}" email "ok_${N}_$RANDOM@example.com" password abcdefgh)"
        echo "username: $u"
        assert_equal "$status" 201
    done
    # the name is stored as given; its key and skeleton beside it
    assert_equal "$(sql "SELECT username || ' ' || username_key FROM users WHERE id = $admin_id")" 'admin admin'
    # a rename to a look-alike is refused too, and changes nothing
    new_user r
    patch "$ID" "$(obj username "$(printf 'adm\u0456n')")"
    assert_equal "$status" 409
    assert_equal "$body" '{"detail":"Username too similar to a registered one"}'
    patch "$ID" "$(obj username "$(printf '\uff41dmin')")"
    assert_equal "$status" 409
    assert_equal "$body" '{"detail":"Username already registered"}'
    assert_equal "$(sql "SELECT username FROM users WHERE id = $ID")" "$NAME"
    # and one's own name in another form is one's own: 200
    patch "$admin_id" "$(obj username "$(printf '\uff41DMIN')")"
    assert_equal "$status" 200
    assert_equal "$(sql "SELECT username_key FROM users WHERE id = $admin_id")" admin
}

# ---------------------------------------------------------------- validation

@test "POST without a required field: 422 missing at [body, field]" {
    post '{"email":"a@example.com","password":"abcdefgh"}'
    assert_422 '["body","username"]' missing 'Field required'
    post "{\"username\":\"m_$N\",\"password\":\"abcdefgh\"}"
    assert_422 '["body","email"]' missing 'Field required'
    post "{\"username\":\"m_$N\",\"email\":\"m_$N@example.com\"}"
    assert_422 '["body","password"]' missing 'Field required'
    assert_equal "$(sql "SELECT count(*) FROM users WHERE username = 'm_$N'")" 0
}

@test "POST with a field that is not a string: 422 string_type" {
    local ok_u="\"username\":\"t_$N\"" ok_e="\"email\":\"t_$N@example.com\"" ok_p='"password":"abcdefgh"'
    local cases=(
        "username|{\"username\":42,$ok_e,$ok_p}"
        "username|{\"username\":null,$ok_e,$ok_p}"
        "username|{\"username\":[\"t_$N\"],$ok_e,$ok_p}"
        "email|{$ok_u,\"email\":{\"a\":1},$ok_p}"
        "email|{$ok_u,\"email\":null,$ok_p}"
        "password|{$ok_u,$ok_e,\"password\":12345678}"
        "password|{$ok_u,$ok_e,\"password\":true}"
        "full_name|{$ok_u,$ok_e,$ok_p,\"full_name\":1.5}"
        "full_name|{$ok_u,$ok_e,$ok_p,\"full_name\":[]}"
        "phone|{$ok_u,$ok_e,$ok_p,\"phone\":14155550123}"
        "phone|{$ok_u,$ok_e,$ok_p,\"phone\":false}"
    )
    local c
    for c in "${cases[@]}"; do
        post "${c#*|}"
        echo "case: $c"
        assert_422 "[\"body\",\"${c%%|*}\"]" string_type 'Input should be a valid string'
    done
    assert_equal "$(sql "SELECT count(*) FROM users WHERE username = 't_$N'")" 0
}

@test "POST with an unknown field: 422 extra_forbidden (no scopes, id or hash from clients)" {
    local base="\"username\":\"xf_$N\",\"email\":\"xf_$N@example.com\",\"password\":\"abcdefgh\""
    for extra in '"is_admin":true' '"scopes":["admin"]' '"id":1' '"password_hash":"$y$j9T$abc"' \
        '"Username":"x"' '"created_at":"2000-01-01T00:00:00Z"'; do
        post "{$base,$extra}"
        local key=${extra%%\":*}
        echo "extra: $extra"
        assert_422 "[\"body\",${key}\"]" extra_forbidden 'Extra inputs are not permitted'
    done
    assert_equal "$(sql "SELECT count(*) FROM users WHERE username = 'xf_$N'")" 0
}

@test "POST with a body that is not JSON, a JSON array or empty: json_invalid, dict_type, missing" {
    local b
    for b in '{"username":' "{'username':'x'}" '{"a":1,}' '{} x' 'username=x&password=y' '{"a":"\x"}'; do
        post "$b"
        echo "body: $b"
        assert_equal "$status" 422
        assert_equal "$(jget "$body" '[len(j["detail"]), j["detail"][0]["loc"][0],
            type(j["detail"][0]["loc"][1]).__name__, len(j["detail"][0]["loc"]), j["detail"][0]["type"]]')" \
            '[1,"body","int",2,"json_invalid"]'
    done
    for b in '[]' '[{"username":"x"}]' '[1,2]'; do
        post "$b"
        echo "body: $b"
        assert_422 '["body"]' dict_type 'Input should be a valid dictionary'
    done
    # an empty body (Content-Length: 0)
    post ''
    assert_422 '["body"]' missing 'Field required'
}

@test "a body that is valid JSON but not an object (1, \"x\", true, null): 422 dict_type at [body]" {
    # RFC 8259 JSON texts, so not json_invalid: the wrong type of body, as
    # for an array (FastAPI: a null body is a missing one)
    new_user a
    local b target=$ID
    for b in '1' '"x"' 'true' '1.5' '"{\"username\":\"x\"}"' 'null'; do
        post "$b"
        echo "POST body: $b"
        assert_equal "$status" 422
        if [ "$b" = null ]; then
            assert_equal "$(jget "$body" '[j["detail"][0]["loc"], j["detail"][0]["type"] in ("dict_type", "missing")]')" '[["body"],true]'
        else
            assert_422 '["body"]' dict_type 'Input should be a valid dictionary'
        fi
        patch "$target" "$b"
        echo "PATCH body: $b"
        assert_equal "$status" 422
        if [ "$b" = null ]; then
            assert_equal "$(jget "$body" '[j["detail"][0]["loc"], j["detail"][0]["type"] in ("dict_type", "missing")]')" '[["body"],true]'
        else
            assert_422 '["body"]' dict_type 'Input should be a valid dictionary'
        fi
    done
    api GET "/api/users/$target"
    assert_equal "$body" "$USER"
}

@test "username: 3..64 characters (code points, not bytes)" {
    post "$(obj username ab email "s_$N@example.com" password abcdefgh)"
    assert_422 '["body","username"]' string_too_short 'String should have at least 3 characters'
    post "$(obj username éé email "s_$N@example.com" password abcdefgh)" # 4 bytes, 2 characters
    assert_422 '["body","username"]' string_too_short
    post "$(obj username '' email "s_$N@example.com" password abcdefgh)"
    assert_422 '["body","username"]' string_too_short

    local u64 u65 e64 e65
    u64="u${N}_$(printf 'x%.0s' $(seq 1 $((64 - 2 - ${#N}))))"
    u65="${u64}y"
    post "$(obj username "$u65" email "l_$N@example.com" password abcdefgh)"
    assert_422 '["body","username"]' string_too_long 'String should have at most 64 characters'
    post "$(obj username "$u64" email "l_$N@example.com" password abcdefgh)"
    assert_equal "$status" 201

    # 64 emoji (256 bytes) is a valid name, 65 is not
    e64=$("$PY" -c 'print("\U0001F600" * 62 + "%02d" % (int(__import__("sys").argv[1]) % 100))' "$N")
    e65="😀$e64"
    post "$(obj username "$e65" email "e_$N@example.com" password abcdefgh)"
    assert_422 '["body","username"]' string_too_long
    post "$(obj username "$e64" email "e_$N@example.com" password abcdefgh)"
    assert_equal "$status" 201
    assert_equal "$(jget "$body" 'j["username"]')" "$e64"
    assert_equal "$(sql "SELECT char_length(username) || ' ' || octet_length(username) FROM users WHERE id = $ID")" '64 250'
}

@test "username: no spaces, invisible or control characters, '@', '/' or ':'" {
    local bad
    local -a bads
    # space, tab, newline, leading/trailing space, NBSP, ogham space, en
    # quad, zero-width space, ZWNJ, RLM, line separator, narrow NBSP, word
    # joiner, ideographic space, BOM; DEL and C1 controls; '@', '/', ':'
    mapfile -d '' -t bads < <("$PY" -c '
import sys
for s in ["a b", "a\tb", "a\nb", " ab", "ab ", "a\u00a0b", "a\u1680b", "a\u2000b", "a\u200bb",
          "a\u200cb", "a\u200fb", "a\u2028b", "a\u202fb", "a\u2060b", "a\u3000b", "\ufeffab",
          "a\x7fb", "a\x85b", "a\x9fb", "a@b", "a/b", "a:b", "@ab", "ab:"]:
    sys.stdout.write(s + sys.argv[1] + "\0")' "$N")
    [ "${#bads[@]}" = 24 ]
    for bad in "${bads[@]}"; do
        post "$(obj username "$bad" email "p_$N@example.com" password abcdefgh)"
        echo "username: $(printf '%q' "$bad")"
        assert_422 '["body","username"]' string_pattern_mismatch
    done
    # the JSON escape of a space is a space too
    post "{\"username\":\"a\\u0020b$N\",\"email\":\"p_$N@example.com\",\"password\":\"abcdefgh\"}"
    assert_422 '["body","username"]' string_pattern_mismatch
    assert_equal "$(sql "SELECT count(*) FROM users WHERE email = 'p_$N@example.com'")" 0
    # punctuation that is none of those is fine
    post "$(obj username "a.b-c_d+e!~$N" email "p_$N@example.com" password abcdefgh)"
    assert_equal "$status" 201
}

@test "email: invalid addresses are 422 value_error 'value is not a valid email address'" {
    local long_local long_total bad
    long_local="$(printf 'a%.0s' $(seq 1 65))@example.com"
    long_total="a@$(printf 'b%.0s' $(seq 1 60)).$(printf 'c%.0s' $(seq 1 60)).$(printf 'd%.0s' $(seq 1 60)).$(printf 'e%.0s' $(seq 1 60)).$(printf 'f%.0s' $(seq 1 20)).com"
    for bad in plain "@example.com" "a@" "a@@example.com" "a@b@example.com" "a@localhost" \
        "a b@example.com" "a,b@example.com" "a;b@example.com" "a(b)@example.com" "a<b>@example.com" \
        'a\b@example.com' '"ab"@example.com' "a[b]@example.com" \
        ".a@example.com" "a.@example.com" "a..b@example.com" "a@example..com" "a@.example.com" \
        "a@example.com." "a@-example.com" "a@example-.com" "a@exa_mple.com" "a@exa mple.com" \
        "a@example.123" "a@1.2.3.4" "a@[127.0.0.1]" "$long_local" "$long_total" ""; do
        post "$(obj username "em_$N" email "$bad" password abcdefgh)"
        echo "email: $bad"
        assert_422 '["body","email"]' value_error 'value is not a valid email address'
    done
    assert_equal "$(sql "SELECT count(*) FROM users WHERE username = 'em_$N'")" 0

    # unusual but valid ones are stored as given
    local good i=0
    for good in "first.last+tag_$N@sub.example.co.uk" "o'neil-$N@example.com" "x$N@bücher.de" \
        "UPPER_$N@EXAMPLE.COM" "a!#\$%&*=?^\`{|}~$N@x-y.example.org" "$N@123.example.com"; do
        i=$((i + 1))
        post "$(obj username "em_${N}_$i" email "$good" password abcdefgh)"
        echo "email: $good"
        assert_equal "$status" 201
        assert_equal "$(jget "$body" 'j["email"]')" "$good"
    done
}

@test "password: 8..128 characters (code points, not bytes), any character" {
    local p
    p=$(printf 'é%.0s' $(seq 1 7)) # 14 bytes, 7 characters
    post "$(obj username "pw_$N" email "pw_$N@example.com" password "$p")"
    assert_422 '["body","password"]' string_too_short 'String should have at least 8 characters'
    post "$(obj username "pw_$N" email "pw_$N@example.com" password 'abcdefg')"
    assert_422 '["body","password"]' string_too_short
    post "$(obj username "pw_$N" email "pw_$N@example.com" password '')"
    assert_422 '["body","password"]' string_too_short
    p=$(printf 'x%.0s' $(seq 1 129))
    post "$(obj username "pw_$N" email "pw_$N@example.com" password "$p")"
    assert_422 '["body","password"]' string_too_long 'String should have at most 128 characters'
    p=$(printf '😀%.0s' $(seq 1 129))
    post "$(obj username "pw_$N" email "pw_$N@example.com" password "$p")"
    assert_422 '["body","password"]' string_too_long
    assert_equal "$(sql "SELECT count(*) FROM users WHERE username = 'pw_$N'")" 0

    # 8 emoji (32 bytes) and 127 emoji + x (509 bytes) are fine; so are spaces and controls
    local i=0
    for p in "$(printf '😀%.0s' $(seq 1 8))" "$(printf '😀%.0s' $(seq 1 127))x" "$(printf 'x%.0s' $(seq 1 128))" \
        '        ' "$(printf 'tab\there\x01\x7f')"; do
        i=$((i + 1))
        post "$(obj username "pw_${N}_$i" email "pw_${N}_$i@example.com" password "$p")"
        assert_equal "$i:$status" "$i:201"
        assert_equal "$(crypt_ok "$p" "$(sql "SELECT password_hash FROM users WHERE id = $ID")")" True
    done
}

@test "password: at most 511 bytes in UTF-8 (libcrypt's limit): 128 emoji is a 422, never a 500" {
    local p
    # 127 emoji + a 3-byte character: 128 characters, 511 bytes: fine
    p="$(printf '😀%.0s' $(seq 1 127))中"
    post "$(obj username "pw4_$N" email "pw4_$N@example.com" password "$p")"
    assert_equal "$status" 201
    assert_no_secret
    assert_equal "$(crypt_ok "$p" "$(sql "SELECT password_hash FROM users WHERE username = 'pw4_$N'")")" True
    # 128 emoji: 128 characters, 512 bytes: string_too_long, by POST and PATCH
    p=$(printf '😀%.0s' $(seq 1 128))
    post "$(obj username "pw5_$N" email "pw5_$N@example.com" password "$p")"
    assert_422 '["body","password"]' string_too_long
    assert_equal "$(sql "SELECT count(*) FROM users WHERE username = 'pw5_$N'")" 0
    new_user b
    local hash
    hash=$(sql "SELECT password_hash FROM users WHERE id = $ID")
    patch "$ID" "$(obj password "$p")"
    assert_422 '["body","password"]' string_too_long
    assert_equal "$(sql "SELECT password_hash FROM users WHERE id = $ID")" "$hash"
    p="$(printf '😀%.0s' $(seq 1 127))中"
    patch "$ID" "$(obj password "$p")"
    assert_equal "$status" 200
    assert_equal "$(crypt_ok "$p" "$(sql "SELECT password_hash FROM users WHERE id = $ID")")" True
}

@test "full_name: up to 128 characters, no control characters, may be null or empty" {
    local f
    f=$(printf '中%.0s' $(seq 1 129))
    post "$(obj username "fn_$N" email "fn_$N@example.com" password abcdefgh full_name "$f")"
    assert_422 '["body","full_name"]' string_too_long 'String should have at most 128 characters'
    for f in "$(printf 'a\tb')" "$(printf 'a\nb')" "$(printf 'a\rb')" "$(printf 'a\x07b')" \
        "$(printf 'a\x1bb')" "$(printf 'a\x7fb')" "$("$PY" -c 'print("a\u0085b\u009f")')"; do
        post "$(obj username "fn_$N" email "fn_$N@example.com" password abcdefgh full_name "$f")"
        echo "full_name: $(printf '%q' "$f")"
        assert_422 '["body","full_name"]' string_pattern_mismatch
    done
    assert_equal "$(sql "SELECT count(*) FROM users WHERE username = 'fn_$N'")" 0

    local i=0
    for f in "$(printf '😀%.0s' $(seq 1 128))" "" "  spaced   out  " "Ånne-Marie O'Brien, Jr."; do
        i=$((i + 1))
        post "$(obj username "fn_${N}_$i" email "fn_${N}_$i@example.com" password abcdefgh full_name "$f")"
        assert_equal "$i:$status" "$i:201"
        assert_equal "$(jget "$body" 'j["full_name"]')" "$f"
    done
    assert_equal "$(sql "SELECT char_length(full_name) FROM users WHERE username = 'fn_${N}_1'")" 128
}

@test "phone: E.164 (+, then 7..15 digits, the first not 0) or null" {
    local p i=0
    for p in 4155550123 +0123456789 +123456 +1234567890123456 "+1 415 555 0123" +1-415-5550123 \
        "+1415555012a" ++14155550123 "+" "" " +14155550123" "+١٢٣٤٥٦٧٨"; do
        post "$(obj username "ph_$N" email "ph_$N@example.com" password abcdefgh phone "$p")"
        echo "phone: '$p'"
        assert_422 '["body","phone"]' string_pattern_mismatch "String should match pattern"
    done
    assert_equal "$(sql "SELECT count(*) FROM users WHERE username = 'ph_$N'")" 0
    for p in +1234567 +123456789012345 +442071838750; do
        i=$((i + 1))
        post "$(obj username "ph_${N}_$i" email "ph_${N}_$i@example.com" password abcdefgh phone "$p")"
        assert_equal "$p:$status" "$p:201"
        assert_equal "$(jget "$body" 'j["phone"]')" "$p"
    done
}

@test "a NUL (\\u0000), a lone surrogate or invalid UTF-8 in any field is a 422, never a 500" {
    # body_with FIELD RAW-JSON: a valid create body, but FIELD holds RAW-JSON
    body_with() {
        local k v out=""
        for k in username email password full_name phone; do
            case $k in
            username) v="\"z_$N\"" ;;
            email) v="\"z_$N@example.com\"" ;;
            password) v='"abcdefgh"' ;;
            full_name) v='"Zed"' ;;
            phone) v='"+14155550199"' ;;
            esac
            [ "$k" = "$1" ] && v=$2
            out+="${out:+,}\"$k\":$v"
        done
        printf '{%s}' "$out"
    }
    new_user target
    local target=$ID before f v
    before=$(user_count)
    for f in username email password full_name phone; do
        for v in '"ab\u0000cdefgh@example.com"' '"\u0000"' '"ab\ud800cdefgh@example.com"' \
            '"ab\udc00"' "$(printf '"ab\xff\xfecdefgh@example.com"')" "$(printf '"ab\xc0\xafcdefgh"')" \
            "$(printf '"ab\xed\xa0\x80cdefgh"')"; do
            post "$(body_with "$f" "$v")"
            echo "POST $f: $v"
            assert_equal "$status" 422
            assert_equal "$(jget "$body" '[j["detail"][0]["loc"][0], j["detail"][0]["type"]]')" \
                '["body","json_invalid"]'
            patch "$target" "{\"$f\":$v}"
            echo "PATCH $f: $v"
            assert_equal "$status" 422
            assert_equal "$(jget "$body" '[j["detail"][0]["loc"][0], j["detail"][0]["type"]]')" \
                '["body","json_invalid"]'
        done
    done
    # a NUL in a key
    post '{"\u0000":1}'
    assert_equal "$status" 422
    assert_equal "$(user_count)" "$before"
    api GET "/api/users/$target"
    assert_equal "$body" "$USER"
    # the same bodies with a plain value in place are fine
    post "$(body_with username "\"z_$N\"")"
    assert_equal "$status" 201
}

# ---------------------------------------------------------------- injection, Unicode

@test "SQL injection strings in text fields are stored and answered verbatim" {
    local before s i=0
    before=$(user_count)
    local names=("'OR'1'='1" "';DROP-TABLE-users;--" "a\\b\\\\c" "\$1\$2\$\$" "%s%n%x" \
        "\");DELETE-FROM-users;--" "1;SELECT-pg_sleep(5)" "x'||'y" "\\x27\\047" "\$body\$")
    local texts=("'; DROP TABLE users; --" "' OR '1'='1" '\' '\\' '$1' '$$ $body$ $$' \
        "\"); DELETE FROM users WHERE ('1'='1" "1; SELECT pg_sleep(5); --" "%s %n %d" "NULL" "null" "E'\\x00'")
    for s in "${names[@]}"; do
        i=$((i + 1))
        local text=${texts[i % ${#texts[@]}]} pw="${texts[(i + 3) % ${#texts[@]}]}--padding"
        local email="o'q${i}--\$1%_$N@example.com"
        local u="${s}_${N}"
        post "$(obj username "$u" email "$email" password "$pw" full_name "$text")"
        echo "username: $u full_name: $text"
        assert_equal "$status" 201
        assert_equal "$(jget "$body" 'j["username"]')" "$u"
        assert_equal "$(jget "$body" 'j["email"]')" "$email"
        assert_equal "$(jget "$body" 'j["full_name"]')" "$text"
        local created=$body
        api GET "/api/users/$ID"
        assert_equal "$body" "$created"
        # in the table exactly as sent; the password hashed, not mangled
        assert_equal "$(sql "SELECT username FROM users WHERE id = $ID")" "$u"
        assert_equal "$(sql "SELECT full_name FROM users WHERE id = $ID")" "$text"
        assert_equal "$(sql "SELECT email FROM users WHERE id = $ID")" "$email"
        assert_equal "$(crypt_ok "$pw" "$(sql "SELECT password_hash FROM users WHERE id = $ID")")" True
    done
    # every full_name text through PATCH too
    for s in "${texts[@]}"; do
        patch "$ID" "$(obj full_name "$s")"
        assert_equal "$status" 200
        assert_equal "$(jget "$body" 'j["full_name"]')" "$s"
        assert_equal "$(sql "SELECT full_name FROM users WHERE id = $ID")" "$s"
    done
    assert_equal "$(user_count)" "$((before + ${#names[@]}))"
    assert_equal "$(sql "SELECT to_regclass('users') IS NOT NULL")" t
}

@test "SQL injection in places that validation refuses: 422, and the table survives" {
    local before s q
    new_user seed
    before=$(user_count)
    for s in "'; DROP TABLE users; --" "' OR '1'='1" "a' OR 'a'='a"; do
        post "$(obj username "$s" email "inj_$N@example.com" password abcdefgh)"
        assert_422 '["body","username"]' string_pattern_mismatch
        post "$(obj username "inj_$N" email "$s@example.com" password abcdefgh)"
        assert_422 '["body","email"]' value_error
        post "$(obj username "inj_$N" email "inj_$N@example.com" password abcdefgh phone "+1$s")"
        assert_422 '["body","phone"]' string_pattern_mismatch
    done
    for q in "1%20OR%201=1" "1;DROP%20TABLE%20users" "1'%20OR%20'1'='1" "(SELECT%201)"; do
        api GET "/api/users/$q"
        assert_422 '["path","user_id"]' int_parsing
        api DELETE "/api/users/$q"
        assert_422 '["path","user_id"]' int_parsing
        api GET "/api/users?after=$q"
        assert_422 '["query","after"]' int_parsing
        api GET "/api/users?limit=$q"
        assert_422 '["query","limit"]' int_parsing
    done
    assert_equal "$(user_count)" "$before"
    api GET "/api/users?limit=1"
    assert_equal "$status" 200
}

@test "Unicode (é, 中文, emoji, RTL, combining marks) round-trips exactly in username, email, full_name" {
    local -a names=("Zoë_é_$N" "中文用户_$N" "😀🎉_$N" "שלום_$N" "مرحبا_$N" "$("$PY" -c 'print("e\u0301a\u0308\u0645\u0651")')_$N")
    local -a locals=("élodie.$N" "中文.$N" "😀$N" "שלום$N" "مرحبا$N" "$("$PY" -c 'print("e\u0301")')$N")
    local full
    full="José Ñúñez · 中文 😀👩‍👩‍👧 שלום עולם مرحبا $("$PY" -c 'print("e\u0301 \u202eRTL\u202c")')"
    local i
    for i in "${!names[@]}"; do
        local email="${locals[i]}@example.com"
        post "$(obj username "${names[i]}" email "$email" password abcdefgh full_name "$full")"
        echo "username: ${names[i]}"
        assert_equal "$status" 201
        # raw UTF-8 in the answer, not \u escapes
        [[ $body == *"\"username\":\"${names[i]}\""* ]] || fail "not raw UTF-8: $body"
        assert_equal "$(jget "$body" 'j["username"]')" "${names[i]}"
        assert_equal "$(jget "$body" 'j["email"]')" "$email"
        assert_equal "$(jget "$body" 'j["full_name"]')" "$full"
        api GET "/api/users/$ID"
        assert_equal "$(jget "$body" '[j["username"], j["email"], j["full_name"]]')" \
            "$(obj x "${names[i]}" y "$email" z "$full" | "$PY" -c 'import json, sys; print(json.dumps(list(json.load(sys.stdin).values()), separators=(",", ":")))')"
        # the table holds the same bytes (no normalisation)
        assert_equal "$(sql "SELECT username FROM users WHERE id = $ID")" "${names[i]}"
        assert_equal "$(sql "SELECT email FROM users WHERE id = $ID")" "$email"
        assert_equal "$(sql "SELECT full_name FROM users WHERE id = $ID")" "$full"
    done
    # combining marks are characters of their own: e + U+0301 is 2 of them
    assert_equal "$(sql "SELECT char_length(username) FROM users WHERE username = '${names[5]}'")" \
        "$((7 + ${#N}))"
    # stored as given, but compared normalised (NFKC, case-folded): the
    # precomposed é is the same name as e + U+0301
    post "$(obj username "$("$PY" -c 'print("\u00e9a\u0308\u0645\u0651")')_$N" email "pre_$N@example.com" password abcdefgh)"
    assert_equal "$status" 409
    assert_equal "$body" '{"detail":"Username already registered"}'
}

# ---------------------------------------------------------------- list

@test "GET /api/users pages in id order: items, next and a Link header, until next is null" {
    local -a ids=() users=()
    local i
    for i in 1 2 3 4 5; do
        new_user "p$i"
        ids+=("$ID")
        users+=("$USER")
    done
    local first=${ids[0]}
    api GET "/api/users?limit=2&after=$((first - 1))"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[u["id"] for u in j["items"]]')" "[${ids[0]},${ids[1]}]"
    assert_equal "$(jget "$body" 'j["next"]')" "/api/users?limit=2&after=${ids[1]}"
    has_header "link: </api/users?limit=2&after=${ids[1]}>; rel=\"next\""
    assert_equal "$(jget "$body" 'all(list(u) == '"$USER_KEYS"' for u in j["items"])')" true
    assert_no_secret
    assert_equal "$(jget "$body" 'j["items"][0]["username"]')" "u${N}_p1"

    # follow next
    api GET "$(jget "$body" 'j["next"]')"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[u["id"] for u in j["items"]]')" "[${ids[2]},${ids[3]}]"
    assert_equal "$(jget "$body" 'j["next"]')" "/api/users?limit=2&after=${ids[3]}"
    api GET "$(jget "$body" 'j["next"]')"
    assert_equal "$status" 200
    assert_equal "$body" "{\"items\":[${users[4]}],\"next\":null}"
    no_header link

    # exactly `limit` left: no next page
    api GET "/api/users?limit=3&after=${ids[1]}"
    assert_equal "$(jget "$body" '[[u["id"] for u in j["items"]], j["next"]]')" "[[${ids[2]},${ids[3]},${ids[4]}],null]"
    no_header link
    # after the last id: empty
    api GET "/api/users?after=${ids[4]}"
    assert_equal "$body" '{"items":[],"next":null}'
    api GET "/api/users?after=9223372036854775807"
    assert_equal "$body" '{"items":[],"next":null}'
    # the page is the users in the table, in id order
    api GET "/api/users?limit=100&after=$((first - 1))"
    assert_equal "$(jget "$body" '[u["id"] for u in j["items"]]')" \
        "[$(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM users WHERE id >= $first")]"
}

@test "GET /api/users: limit defaults to 20 and goes up to 100; after defaults to 0" {
    local first='' i
    for i in $(seq 1 21); do
        new_user "d$i"
        [ -n "$first" ] || first=$ID
    done
    api GET "/api/users?after=$((first - 1))"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" 'len(j["items"])')" 20
    local twentieth
    twentieth=$(jget "$body" 'j["items"][19]["id"]')
    assert_equal "$(jget "$body" 'j["next"]')" "/api/users?limit=20&after=$twentieth"
    api GET "/api/users?limit=100&after=$((first - 1))"
    assert_equal "$(jget "$body" '[len(j["items"]), j["next"]]')" '[21,null]'
    # no after: from the smallest id
    api GET /api/users
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[u["id"] for u in j["items"]]')" \
        "[$(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM users ORDER BY id LIMIT 20) s")]"
    [ "$(jget "$body" 'j["next"] is not None')" = true ]
    api GET "/api/users?limit=100"
    assert_equal "$status" 200
    local total
    total=$(user_count)
    assert_equal "$(jget "$body" 'len(j["items"])')" "$((total < 100 ? total : 100))"
    # leading zeros and a trailing slash are the same list
    api GET "/api/users/?limit=005&after=$((first - 1))"
    assert_equal "$(jget "$body" '[len(j["items"]), j["items"][0]["id"], j["next"]]')" \
        "[5,$first,\"/api/users?limit=5&after=$(jget "$body" 'j["items"][4]["id"]')\"]"
}

@test "GET /api/users with a bad limit or after: 422 at [query, limit] / [query, after]" {
    local v
    for v in abc 1.5 1e2 '' '%20' 0x10; do
        api GET "/api/users?limit=$v"
        echo "limit=$v"
        assert_422 '["query","limit"]' int_parsing "$INT_MSG"
        api GET "/api/users?after=$v"
        echo "after=$v"
        assert_422 '["query","after"]' int_parsing "$INT_MSG"
    done
    for v in 0 -1 -100; do
        api GET "/api/users?limit=$v"
        assert_422 '["query","limit"]' greater_than_equal 'Input should be greater than or equal to 1'
    done
    for v in 101 1000 99999999999999999999; do
        api GET "/api/users?limit=$v"
        assert_422 '["query","limit"]' less_than_equal 'Input should be less than or equal to 100'
    done
    for v in -1 -99999999999999999999; do
        api GET "/api/users?after=$v"
        assert_422 '["query","after"]' greater_than_equal 'Input should be greater than or equal to 0'
    done
    for v in 9223372036854775808 99999999999999999999; do
        api GET "/api/users?after=$v"
        assert_422 '["query","after"]' less_than_equal \
            'Input should be less than or equal to 9223372036854775807'
    done
}

@test "HEAD /api/users: the GET headers (Link too), no body" {
    new_user a
    local a=$ID
    new_user b
    head_req "/api/users?limit=1&after=$((a - 1))"
    assert_equal "$status" 200
    assert_equal "$BODY_BYTES" 0
    has_header 'content-type: application/json'
    grep -q '^link: </api/users?limit=1&after=[0-9]*>; rel="next"$' <<<"$headers"
}

# ---------------------------------------------------------------- update

@test "PATCH one field: 200 the updated user, the others unchanged, updated_at moves, GET agrees" {
    new_user a "\"full_name\":\"Old Name\",\"phone\":\"+14155550100\""
    local created=$USER
    # warm the cache first: the update must replace what it holds
    api GET "/api/users/$ID"
    api GET "/api/users/$ID"
    has_header 'x-cache: hit'
    patch "$ID" '{"full_name":"New Name"}'
    assert_equal "$status" 200
    assert_user
    assert_equal "$(jget "$body" '[j["id"], j["username"], j["email"], j["full_name"], j["phone"]]')" \
        "[$ID,\"$NAME\",\"$EMAIL\",\"New Name\",\"+14155550100\"]"
    local updated=$body
    assert_equal "$(jget "$updated" 'j["created_at"]')" "$(jget "$created" 'j["created_at"]')"
    assert_equal "$("$PY" -c 'import json, sys
from datetime import datetime as d
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(d.fromisoformat(b["updated_at"]) > d.fromisoformat(a["updated_at"]))' "$created" "$updated")" True
    api GET "/api/users/$ID"
    assert_equal "$status" 200
    assert_equal "$body" "$updated"
    api GET "/api/users/$ID"
    assert_equal "$body" "$updated"
    assert_equal "$(sql "SELECT full_name FROM users WHERE id = $ID")" 'New Name'
    # in the list too
    api GET "/api/users?limit=1&after=$((ID - 1))"
    assert_equal "$body" "{\"items\":[$updated],\"next\":$(jget "$body" 'json.dumps(j["next"])')}"
}

@test "PATCH with null full_name / phone clears them; absent fields stay" {
    new_user a '"full_name":"Full","phone":"+14155550101"'
    patch "$ID" '{"phone":null}'
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[j["full_name"], j["phone"]]')" '["Full",null]'
    patch "$ID" '{"full_name":null}'
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[j["full_name"], j["phone"]]')" '[null,null]'
    assert_equal "$(sql "SELECT full_name IS NULL AND phone IS NULL FROM users WHERE id = $ID")" t
    patch "$ID" '{"full_name":"Again","phone":"+14155550102"}'
    assert_equal "$(jget "$body" '[j["full_name"], j["phone"]]')" '["Again","+14155550102"]'
    api GET "/api/users/$ID"
    assert_equal "$(jget "$body" '[j["full_name"], j["phone"]]')" '["Again","+14155550102"]'
}

@test "PATCH username, email and password; the old name and email are free again" {
    new_user a
    local old_name=$NAME old_email=$EMAIL old_hash
    old_hash=$(sql "SELECT password_hash FROM users WHERE id = $ID")
    patch "$ID" "$(obj username "renamed_$N" email "Renamed_$N@Example.org" password 'new password 1')"
    assert_equal "$status" 200
    assert_user
    assert_equal "$(jget "$body" '[j["username"], j["email"]]')" "[\"renamed_$N\",\"Renamed_$N@Example.org\"]"
    local hash
    hash=$(sql "SELECT password_hash FROM users WHERE id = $ID")
    [[ $hash == '$y$'* ]]
    [ "$hash" != "$old_hash" ]
    assert_equal "$(crypt_ok 'new password 1' "$hash")" True
    assert_equal "$(crypt_ok "pw-$old_name-secret" "$hash")" False
    # a password-only change changes only the hash
    local before=$body
    patch "$ID" '{"password":"another one"}'
    assert_equal "$status" 200
    assert_no_secret
    assert_equal "$(jget "$body" '[j["username"], j["email"], j["full_name"]]')" \
        "$(jget "$before" '[j["username"], j["email"], j["full_name"]]')"
    assert_equal "$(crypt_ok 'another one' "$(sql "SELECT password_hash FROM users WHERE id = $ID")")" True

    post "$(obj username "$old_name" email "$old_email" password abcdefgh)"
    assert_equal "$status" 201
}

@test "PATCH {} is 200 with the user unchanged; PATCH of a missing user is 404" {
    new_user a
    patch "$ID" '{}'
    assert_equal "$status" 200
    assert_equal "$body" "$USER"
    assert_equal "$(sql "SELECT version FROM users WHERE id = $ID")" 1
    patch 9223372036854775807 '{}'
    assert_404
    patch 9223372036854775807 '{"full_name":"x"}'
    assert_404
    assert_equal "$(sql "SELECT count(*) FROM users WHERE full_name = 'x' AND id = 9223372036854775807")" 0
}

@test "PATCH to another user's username or email (any case): 409; to its own in another case: 200" {
    new_user a
    local a_id=$ID a_name=$NAME a_email=$EMAIL
    new_user b
    local b_user=$USER
    patch "$ID" "$(obj username "${a_name^^}")"
    assert_equal "$status" 409
    assert_equal "$body" '{"detail":"Username already registered"}'
    patch "$ID" "$(obj email "${a_email^^}")"
    assert_equal "$status" 409
    assert_equal "$body" '{"detail":"Email already registered"}'
    api GET "/api/users/$ID"
    assert_equal "$body" "$b_user"
    # its own, recased
    patch "$a_id" "$(obj username "${a_name^^}" email "${a_email^^}")"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[j["username"], j["email"]]')" "[\"${a_name^^}\",\"${a_email^^}\"]"
}

@test "PATCH with bad input: the same 422s as POST, and the user is unchanged" {
    new_user a '"full_name":"Keep Me"'
    local c
    local cases=(
        '["body","username"]|string_type|{"username":null}'
        '["body","email"]|string_type|{"email":null}'
        '["body","password"]|string_type|{"password":null}'
        '["body","username"]|string_type|{"username":5}'
        '["body","username"]|string_too_short|{"username":"ab"}'
        '["body","username"]|string_pattern_mismatch|{"username":"a b c"}'
        '["body","email"]|value_error|{"email":"not-an-email"}'
        '["body","password"]|string_too_short|{"password":"short"}'
        '["body","full_name"]|string_pattern_mismatch|{"full_name":"a\u0007b"}'
        '["body","phone"]|string_pattern_mismatch|{"phone":"555-0100"}'
        '["body","scopes"]|extra_forbidden|{"scopes":["admin"]}'
        '["body","id"]|extra_forbidden|{"id":1}'
        '["body"]|dict_type|[]'
        '["body"]|missing|'
    )
    for c in "${cases[@]}"; do
        local loc=${c%%|*} rest=${c#*|}
        patch "$ID" "${rest#*|}"
        echo "case: $c"
        assert_422 "$loc" "${rest%%|*}"
    done
    patch "$ID" '{"full_name":'
    assert_equal "$(jget "$body" '[j["detail"][0]["loc"][0], j["detail"][0]["type"]]')" '["body","json_invalid"]'
    # one bad field spoils the whole update
    patch "$ID" '{"full_name":"Changed","phone":"nope"}'
    assert_422 '["body","phone"]' string_pattern_mismatch
    api GET "/api/users/$ID"
    assert_equal "$body" "$USER"
    assert_equal "$(sql "SELECT full_name || ' ' || version FROM users WHERE id = $ID")" 'Keep Me 1'
    # bad ids come first
    patch abc '{}'
    assert_422 '["path","user_id"]' int_parsing
    patch 0 '{"full_name":"x"}'
    assert_422 '["path","user_id"]' greater_than_equal
}

# ---------------------------------------------------------------- delete

@test "DELETE: 204 with no body; afterwards GET, PATCH and DELETE are 404 (even after a cached read)" {
    new_user a
    local id=$ID
    api GET "/api/users/$id"
    api GET "/api/users/$id"
    has_header 'x-cache: hit'
    api DELETE "/api/users/$id"
    assert_equal "$status" 204
    assert_equal "$body" ""
    no_header content-type
    assert_equal "$(sql "SELECT count(*) FROM users WHERE id = $id")" 0
    api GET "/api/users/$id"
    assert_404
    api GET "/api/users/00$id"
    assert_404
    head_req "/api/users/$id"
    assert_equal "$status" 404
    api DELETE "/api/users/$id"
    assert_404
    patch "$id" '{"full_name":"ghost"}'
    assert_404
    patch "$id" '{}'
    assert_404
    api GET "/api/users?after=$((id - 1))&limit=1"
    [[ $(jget "$body" '[u["id"] for u in j["items"]]') != "[$id]" ]]
    # the name and email are free; the new user has a new id, the old stays gone
    post "$(obj username "$NAME" email "$EMAIL" password abcdefgh)"
    assert_equal "$status" 201
    [ "$ID" != "$id" ]
    api GET "/api/users/$ID"
    assert_equal "$status" 200
    api GET "/api/users/$id"
    assert_404
}

@test "DELETE of an id no user has: 404; of a bad id: 422" {
    local before
    before=$(user_count)
    api DELETE /api/users/9223372036854775807
    assert_404
    api DELETE /api/users/abc
    assert_422 '["path","user_id"]' int_parsing
    api DELETE /api/users/0
    assert_422 '["path","user_id"]' greater_than_equal
    api DELETE /api/users/99999999999999999999
    assert_422 '["path","user_id"]' less_than_equal
    api DELETE /api/users
    assert_equal "$status" 405
    assert_equal "$(user_count)" "$before"
}

# ---------------------------------------------------------------- who may do what

# login NAME PASSWORD: POST /api/token; sets TOKEN (empty unless 200)
login() {
    NOAUTH=1 api POST /api/token --data-urlencode grant_type=password \
        --data-urlencode "username=$1" --data-urlencode "password=$2"
    TOKEN=
    [ "$status" = 200 ] && TOKEN=$(jget "$body" 'j["access_token"]')
    [ -n "$TOKEN" ]
}

# as TOKEN METHOD PATH [curl args...]: a request with that bearer token only
as() { local t=$1; shift; NOAUTH=1 api "$@" -H "Authorization: Bearer $t"; }

@test "GET /api/users/me is the caller, phone included; PATCH and DELETE /me act on the caller" {
    new_user a '"phone":"+14155550101"'
    local id=$ID name=$NAME
    login "$name" "pw-$name-secret"
    as "$TOKEN" GET /api/users/me
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[j["id"], j["username"], j["phone"]]')" "[$id,\"$name\",\"+14155550101\"]"
    assert_equal "$body" "$USER"
    as "$TOKEN" PATCH /api/users/me -H 'Content-Type: application/json' --data-binary '{"full_name":"Me Myself"}'
    assert_equal "$status" 200
    assert_equal "$(jget "$body" '[j["id"], j["full_name"]]')" "[$id,\"Me Myself\"]"
    as "$TOKEN" DELETE /api/users/me
    assert_equal "$status" 204
    assert_equal "$(sql "SELECT count(*) FROM users WHERE id = $id")" 0
    # the account's tokens go with it, at the gateway within REVOKE_SYNC_MS
    retry 30 0.1 eval 'as "$TOKEN" GET /api/users/me; [ "$status" = 401 ]'
    assert_equal "$body" '{"detail":"Token revoked"}'
}

@test "without a token: registration works, everything else is 401 with WWW-Authenticate: Bearer" {
    NOAUTH=1 api POST /api/users -H 'Content-Type: application/json' \
        --data-binary "{\"username\":\"anon_$N\",\"email\":\"anon_$N@example.com\",\"password\":\"abcdefgh\"}"
    assert_equal "$status" 201
    local id
    id=$(id_of "$body")
    for req in "GET /api/users/me" "GET /api/users/$id" "GET /api/users" "PATCH /api/users/$id" \
        "DELETE /api/users/$id"; do
        local data=()
        [[ $req == PATCH* ]] && data=(-H 'Content-Type: application/json' --data-binary '{}')
        NOAUTH=1 api ${req% *} "${req#* }" "${data[@]}"
        echo "$req"
        assert_equal "$status" 401
        assert_equal "$body" '{"detail":"Not authenticated"}'
        has_header 'www-authenticate: bearer realm="api"'
    done
    assert_equal "$(sql "SELECT count(*) FROM users WHERE id = $id")" 1
}

@test "another user's account: only id, username, full_name and created_at; PATCH and DELETE are 403 and change nothing" {
    new_user owner '"phone":"+14155550102","full_name":"Owner"'
    local victim=$ID owner=$USER
    new_user other
    login "$NAME" "pw-$NAME-secret"
    as "$TOKEN" GET "/api/users/$victim"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" 'list(j)')" '["id","username","full_name","created_at"]'
    assert_equal "$body" "$(jget "$owner" 'json.dumps({k: j[k] for k in ("id", "username", "full_name", "created_at")}, separators=(",", ":"), ensure_ascii=False)')"
    # a cached copy is rendered per caller too
    as "$TOKEN" GET "/api/users/$victim"
    has_header 'x-cache: hit'
    assert_equal "$(jget "$body" 'list(j)')" '["id","username","full_name","created_at"]'
    # walking the ids gives nobody's email away (the caller is victim + 1)
    local id
    for id in $((victim - 2)) $((victim - 1)) "$victim"; do
        as "$TOKEN" GET "/api/users/$id"
        [[ $body != *'@example.com'* ]] || fail "an email in $body"
    done
    # the owner sees all of it, phone included
    login "u${N}_owner" "pw-u${N}_owner-secret"
    as "$TOKEN" GET "/api/users/$victim"
    assert_user
    assert_equal "$(jget "$body" 'j["phone"]')" '+14155550102'
    login "u${N}_other" "pw-u${N}_other-secret"
    local before
    before=$(sql "SELECT version, full_name, phone FROM users WHERE id = $victim")
    as "$TOKEN" PATCH "/api/users/$victim" -H 'Content-Type: application/json' \
        --data-binary '{"full_name":"pwned","password":"newpassword"}'
    assert_equal "$status" 403
    assert_equal "$body" '{"detail":"Not enough permissions"}'
    as "$TOKEN" DELETE "/api/users/$victim"
    assert_equal "$status" 403
    assert_equal "$(sql "SELECT version, full_name, phone FROM users WHERE id = $victim")" "$before"
    # the list of everyone is for admins: the gateway says so before the route
    as "$TOKEN" GET /api/users
    assert_equal "$status" 403
    has_header 'www-authenticate: bearer realm="api", error="insufficient_scope", scope="admin"'
}

@test "an admin reads every phone and may change or delete any account" {
    new_user v '"phone":"+14155550103"'
    local id=$ID
    local admin
    admin=$(token 999999 admin)
    as "$admin" GET "/api/users/$id"
    assert_user
    assert_equal "$(jget "$body" 'j["phone"]')" '+14155550103'
    as "$admin" GET "/api/users?after=$((id - 1))&limit=1"
    assert_equal "$(jget "$body" '[j["items"][0]["id"], j["items"][0]["phone"]]')" "[$id,\"+14155550103\"]"
    as "$admin" PATCH "/api/users/$id" -H 'Content-Type: application/json' --data-binary '{"phone":"+14155550104"}'
    assert_equal "$status" 200
    assert_equal "$(jget "$body" 'j["phone"]')" '+14155550104'
    as "$admin" DELETE "/api/users/$id"
    assert_equal "$status" 204
}

@test "phone at rest: a Fernet token in PostgreSQL and in the Redis cache, never the number; Python decrypts it" {
    new_user p '"phone":"+14155550105"'
    local id=$ID stored
    api GET "/api/users/$id" # fills the cache
    stored=$(sql "SELECT phone FROM users WHERE id = $id")
    [[ $stored == gAAAAA* ]] || fail "phone stored as '$stored'"
    run -0 sql "SELECT u::text FROM users u WHERE id = $id"
    refute_output --partial 14155550105
    run -0 rcli get "user:$id"
    ! grep -q 14155550105 <<<"$output" || fail "clear phone in the cache: $output"
    keys=$(cat "$GW_STATE/secrets/fernet-keys")
    run -0 "$PY" -c 'import sys
from cryptography.fernet import Fernet, MultiFernet
f = MultiFernet([Fernet(k) for k in sys.argv[1].split(",")])
print(f.decrypt(sys.argv[2].encode()).decode())' "$keys" "$stored"
    assert_output '+14155550105'
    # the database itself refuses a clear number
    run psql_app -c "UPDATE users SET phone = '+14155550106' WHERE id = $id"
    assert_failure
    assert_output --partial users_phone_encrypted
}

# ---------------------------------------------------------------- password and email changes

# me_patch TOKEN BODY [curl args...]: PATCH /api/users/me with that token only
me_patch() {
    local t=$1 b=$2
    shift 2
    as "$t" PATCH /api/users/me -H 'Content-Type: application/json' --data-binary "$b" "$@"
}

# claim TOKEN NAME: a claim of the token's payload
claim() {
    "$PY" -c 'import base64, json, sys
p = sys.argv[1].split(".")[1]
print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))[sys.argv[2]])' "$1" "$2"
}

# revoked TOKEN: the gateway refuses it as revoked, within REVOKE_SYNC_MS
revoked() {
    retry 30 0.1 eval "as '$1' GET /api/users/me; [ \"\$status\" = 401 ]"
    assert_equal "$status" 401
    assert_equal "$body" '{"detail":"Token revoked"}'
}

# works TOKEN: the gateway lets it through (GET /api/users/me is 200)
works() {
    as "$1" GET /api/users/me
    assert_equal "$status" 200
}

@test "changing one's password or email needs current_password: missing is a 422, wrong a 403, and nothing changes" {
    new_user a
    local pw="pw-$NAME-secret" hash
    hash=$(sql "SELECT password_hash FROM users WHERE id = $ID")
    login "$NAME" "$pw"
    local t=$TOKEN
    me_patch "$t" '{"password":"new password 1"}'
    assert_422 '["body","current_password"]' missing 'Field required'
    me_patch "$t" "$(obj email "moved_$N@example.com")"
    assert_422 '["body","current_password"]' missing 'Field required'
    me_patch "$t" "$(obj email "moved_$N@example.com" password 'new password 1' current_password 'not it at all')"
    assert_equal "$status" 403
    assert_equal "$body" '{"detail":"Current password is incorrect"}'
    me_patch "$t" '{"password":"new password 1","current_password":12345678}'
    assert_422 '["body","current_password"]' string_type
    me_patch "$t" '{"password":"new password 1","current_password":null}'
    assert_422 '["body","current_password"]' string_type
    assert_equal "$(sql "SELECT password_hash FROM users WHERE id = $ID")" "$hash"
    assert_equal "$(sql "SELECT email FROM users WHERE id = $ID")" "$EMAIL"
    # the other fields need none; a right one given with them is fine, a wrong one is not
    me_patch "$t" '{"full_name":"Free To Change"}'
    assert_equal "$status" 200
    me_patch "$t" "$(obj full_name 'With Proof' current_password "$pw")"
    assert_equal "$status" 200
    me_patch "$t" "$(obj full_name 'Bad Proof' current_password 'wrong')"
    assert_equal "$status" 403
    assert_equal "$(sql "SELECT full_name FROM users WHERE id = $ID")" 'With Proof'
    # registration has no such field
    post "$(obj username "cp_$N" email "cp_$N@example.com" password abcdefgh current_password x)"
    assert_422 '["body","current_password"]' extra_forbidden
    # with it: the password changes; the new one logs in, the old one does not
    me_patch "$t" "$(obj password 'new password 1' current_password "$pw")"
    assert_equal "$status" 200
    assert_no_secret
    [[ $body != *'current_password'* ]]
    login "$NAME" 'new password 1'
    login "$NAME" "$pw" || true
    assert_equal "$status" 400
    # and the email, with the new password as the current one
    me_patch "$t" "$(obj email "moved_$N@example.com" current_password 'new password 1')"
    assert_equal "$status" 200
    assert_equal "$(jget "$body" 'j["email"]')" "moved_$N@example.com"
}

@test "guessing current_password is throttled as logins are: per (name, address), 429 with Retry-After; other addresses are not held up" {
    new_user b
    local pw="pw-$NAME-secret" i
    login "$NAME" "$pw"
    local t=$TOKEN
    # LOGIN_FREE_FAILURES (5) free failures, then the sixth makes the next wait 1 s
    for i in 1 2 3 4 5 6; do
        me_patch "$t" "$(obj password 'new password 2' current_password "guess $i")"
        assert_equal "$i:$status" "$i:403"
    done
    me_patch "$t" "$(obj password 'new password 2' current_password "$pw")"
    assert_equal "$status" 429
    assert_equal "$body" '{"detail":"Too many password attempts, try again later"}'
    has_header 'retry-after: 1'
    # once it is over, one more wrong guess: 2 s
    retry 30 0.1 eval 'me_patch "$t" "$(obj password "new password 2" current_password "guess 7")"; [ "$status" = 403 ]'
    me_patch "$t" "$(obj password 'new password 2' current_password "$pw")"
    assert_equal "$status" 429
    has_header 'retry-after: 2'
    # the same count as the name's logins from this address
    login "$NAME" "$pw" || true
    assert_equal "$status" 429
    # from another address the right password goes through at once
    me_patch "$t" "$(obj password 'new password 2' current_password "$pw")" --interface 127.0.0.2
    assert_equal "$status" 200
    assert_equal "$(crypt_ok 'new password 2' "$(sql "SELECT password_hash FROM users WHERE id = $ID")")" True
}

@test "a password change revokes the user's other tokens within REVOKE_SYNC_MS; the token that made it, and new ones, work" {
    new_user c
    local me=$ID pw="pw-$NAME-secret"
    login "$NAME" "$pw"
    local t1=$TOKEN
    login "$NAME" "$pw"
    local t2=$TOKEN ops
    ops=$(token "$me" "" 600) # an operator's (bin/tokenctl: no generation)
    new_user bystander
    login "$NAME" "pw-$NAME-secret"
    local other=$TOKEN
    works "$t2"
    works "$ops"
    me_patch "$t1" "$(obj password 'changed password' current_password "$pw")"
    assert_equal "$status" 200
    revoked "$t2"
    revoked "$ops"
    works "$t1"
    works "$other"
    login "u${N}_c" 'changed password'
    works "$TOKEN"
    assert_equal "$(claim "$TOKEN" gen)" "$(($(claim "$t1" gen) + 1))"
    assert_equal "$(sql "SELECT token_gen FROM users WHERE id = $me")" "$(claim "$TOKEN" gen)"
}

@test "an email change revokes the user's other tokens too; a full_name or username change does not" {
    new_user d
    local pw="pw-$NAME-secret"
    login "$NAME" "$pw"
    local t1=$TOKEN
    login "$NAME" "$pw"
    local t2=$TOKEN
    me_patch "$t1" "$(obj full_name 'Just A Name' username "d_renamed_$N")"
    assert_equal "$status" 200
    sleep 1.2 # past REVOKE_SYNC_MS: still accepted
    works "$t2"
    me_patch "$t1" "$(obj email "d_moved_$N@example.com" current_password "$pw")"
    assert_equal "$status" 200
    revoked "$t2"
    works "$t1"
}

@test "a token issued in the same second as the change, just after it, works; one issued just before it is revoked (no 1 s edge)" {
    new_user e
    local pw="pw-$NAME-secret" next before after try
    login "$NAME" "$pw"
    local changer=$TOKEN
    for try in $(seq 1 20); do
        login "$NAME" "$pw"
        before=$TOKEN
        next="password $try of $N"
        me_patch "$changer" "$(obj password "$next" current_password "$pw")"
        assert_equal "$status" 200
        pw=$next
        login "$NAME" "$pw"
        after=$TOKEN
        [ "$(claim "$before" iat)" != "$(claim "$after" iat)" ] || break
    done
    echo "one second: try $try, iat $(claim "$before" iat) and $(claim "$after" iat)"
    assert_equal "$(claim "$before" iat)" "$(claim "$after" iat)"
    revoked "$before"
    works "$after"
    works "$changer"
}

@test "an admin changes another's password or email without current_password and revokes all of that user's tokens; on one's own account an admin needs it" {
    new_user f
    local id=$ID pw="pw-$NAME-secret"
    login "$NAME" "$pw"
    local t=$TOKEN admin
    admin=$(token 999999 admin)
    as "$admin" PATCH "/api/users/$id" -H 'Content-Type: application/json' \
        --data-binary "$(obj email "f_moved_$N@example.com")"
    assert_equal "$status" 200
    revoked "$t"
    as "$admin" GET "/api/users/$id" # the admin's own token is not touched
    assert_equal "$status" 200
    # the admin of its own account is its owner
    sql "UPDATE users SET scopes = '{admin}' WHERE id = $id"
    login "$NAME" "$pw"
    local self_admin=$TOKEN
    me_patch "$self_admin" '{"password":"admin set 1"}'
    assert_422 '["body","current_password"]' missing
    me_patch "$self_admin" "$(obj password 'admin set 1' current_password "$pw")"
    assert_equal "$status" 200
    works "$self_admin"
}

@test "deleting a user revokes its tokens, by an admin as by itself" {
    new_user g
    login "$NAME" "pw-$NAME-secret"
    local t=$TOKEN
    api DELETE "/api/users/$ID"
    assert_equal "$status" 204
    revoked "$t"
    api GET '/api/users?limit=1' # the admin's token is not touched
    assert_equal "$status" 200
    # and by itself: the token that deletes goes too
    new_user g2
    login "$NAME" "pw-$NAME-secret"
    as "$TOKEN" DELETE /api/users/me
    assert_equal "$status" 204
    revoked "$TOKEN"
}

@test "headers cannot speak for the authorizer: a client's Variable-AUTH_JTI, Auth-Jti or Variable-AUTH_SUB change nothing" {
    new_user victim
    local victim=$ID victim_user=$USER
    new_user h
    local pw="pw-$NAME-secret"
    login "$NAME" "$pw"
    local t1=$TOKEN
    login "$NAME" "$pw"
    local t2=$TOKEN
    local j2
    j2=$(claim "$t2" jti)
    # the change made with t1 claims to be t2's, and the victim's
    me_patch "$t1" "$(obj password 'forged headers' current_password "$pw")" \
        -H "Variable-AUTH_JTI: $j2" -H "Auth-Jti: $j2" -H "Variable-AUTH_SUB: $victim" \
        -H "Auth-Sub: $victim" -H 'Variable-AUTH_SCOPE: admin'
    assert_equal "$status" 200
    assert_equal "$(jget "$body" 'j["id"]')" "$ID"
    revoked "$t2"
    works "$t1"
    api GET "/api/users/$victim"
    assert_equal "$body" "$victim_user"
}

# ---------------------------------------------------------------- configuration, health

# other_gateway VAR=value...: a second gateway on the same databases for one
# test (teardown stops it and puts the file's back)
other_gateway() {
    MAIN_BASE=$BASE MAIN_GW_PID=$GW_PID MAIN_GW_STATE=$GW_STATE
    start_gateway GW_PROCS=1 "$@"
}

@test "registrations are limited per client address: 429 with Retry-After and a detail, bad ones counted too; other addresses go on" {
    other_gateway REGISTER_PER_ADDR=3 REGISTER_WINDOW=600
    rcli del register:addr:127.0.0.1 register:addr:127.0.0.2 >/dev/null
    post "$(obj username "rl1_$N" email "rl1_$N@example.com" password abcdefgh)"
    assert_equal "$status" 201
    post "$(obj username "rl2_$N" email "rl2_$N@example.com" password short)"
    assert_equal "$status" 422
    post "$(obj username "rl1_$N" email "rl3_$N@example.com" password abcdefgh)"
    assert_equal "$status" 409
    # the fourth from 127.0.0.1 in the window, however good
    post "$(obj username "rl4_$N" email "rl4_$N@example.com" password abcdefgh)"
    assert_equal "$status" 429
    assert_equal "$body" '{"detail":"Too many registrations from this address, try again later"}'
    local ra
    ra=$(sed -n 's/^retry-after: \([0-9]*\)$/\1/p' <<<"$headers")
    [ -n "$ra" ] || fail "no Retry-After in: $headers"
    [ "$ra" -ge 1 ] || fail "Retry-After: $ra"
    [ "$ra" -le 600 ] || fail "Retry-After: $ra"
    assert_equal "$(sql "SELECT count(*) FROM users WHERE username = 'rl4_$N'")" 0
    # without a token too (registration is public), and it stays refused
    NOAUTH=1 post "$(obj username "rl5_$N" email "rl5_$N@example.com" password abcdefgh)"
    assert_equal "$status" 429
    # another address is another count
    post "$(obj username "rl4_$N" email "rl4_$N@example.com" password abcdefgh)" --interface 127.0.0.2
    assert_equal "$status" 201
    # and the limit is on registrations only
    api GET "/api/users/$ID"
    assert_equal "$status" 200
}

@test "USER_CACHE_TTL=0: no cache and no X-Cache header; reads are still right" {
    other_gateway USER_CACHE_TTL=0 REGISTER_PER_ADDR=1000000
    new_user a
    api GET "/api/users/$ID"
    assert_equal "$status" 200
    assert_equal "$body" "$USER"
    no_header x-cache
    api GET "/api/users/$ID"
    no_header x-cache
    assert_equal "$(rcli exists "user:$ID")" 0
    patch "$ID" '{"full_name":"No Cache"}'
    assert_equal "$status" 200
    api GET "/api/users/$ID"
    assert_equal "$(jget "$body" 'j["full_name"]')" 'No Cache'
    api DELETE "/api/users/$ID"
    assert_equal "$status" 204
    api GET "/api/users/$ID"
    assert_404
    assert_equal "$(rcli exists "user:$ID")" 0
}

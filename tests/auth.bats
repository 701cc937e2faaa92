#!/usr/bin/env bats
# Bad input against authentication: forged, altered, expired, revoked and
# malformed bearer tokens at the gateway's authorizer (fcgi/auth.c), hostile
# logins at POST /api/token, and altered Fernet tokens through bin/fernet.
# Every case must be a clean refusal with the status RFC 6750 / 6749 name
# (400, 401, 403, 429; bin/fernet: exit 1), never a 500, a crash or a hang,
# and never an acceptance.
#
# Tokens are crafted here with Python's standard library only (hmac,
# hashlib, base64, json), from the gateway's own keys ($GW_TOKEN_KEYS), so
# that each forgery differs from a token the gateway accepts in exactly one
# way; "a crafted token is accepted" is the control for all of them.

load helpers
load queue
load pg

PY=/usr/bin/python3

setup_file() {
    start_redis
    start_pg
    # a short login delay, as in token.bats: 3 free failures per (name, address)
    start_gateway LOGIN_FREE_FAILURES=3 LOGIN_DELAY_MAX=2 LOGIN_PER_ADDR=1000
    export BASE GW_STATE GW_PID
    local code
    code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST "$BASE/api/users" \
        -d '{"username":"alice","email":"alice@example.com","password":"wonderland"}')
    [ "$code" = 201 ] || { echo "registering alice: $code" >&2; return 1; }
    psql_app -c "UPDATE users SET scopes = '{users,tasks}' WHERE username = 'alice'"
    ALICE_ID=$(psql_app -c "SELECT id FROM users WHERE username = 'alice'")
    export ALICE_ID
}

teardown_file() {
    stop_gateway
    stop_pg
    stop_redis
}

setup() {
    # a fresh login attempt window for every test
    reset_limits
}

# reset_limits: forget every login attempt (a new window); the keys hold
# user names with quotes and spaces, so not through xargs
reset_limits() {
    rcli eval "for _, k in ipairs(redis.call('keys', ARGV[1])) do redis.call('del', k) end" 0 'login:*' >/dev/null
}

# jwt [HEADER] [CLAIMS] [KEY]: a token made with Python's standard library.
# HEADER and CLAIMS are JSON objects merged over the defaults: header
# {"alg":"HS256","typ":"JWT","kid":<the gateway's signing kid>}, claims
# {"sub":<alice's id>,"scope":"users tasks","iat":now,"exp":now+600,
# "jti":<new uuid>}; a null drops a field, a string "now+N" / "now-N" is
# that epoch second. Signed with HMAC-SHA256 under the gateway's signing
# key, or KEY (base64url, no padding). Environment knobs:
#   SIGN=sha512|none     another HMAC, or no signature at all (empty part)
#   RAW_HEADER=, RAW_CLAIMS=   the JSON text of a part as is
#   LENGTH=N             pad (claim "pad", header "p") to exactly N chars
jwt() {
    local h=${1:-} c=${2:-}
    "$PY" - "${h:-"{}"}" "${c:-"{}"}" "${3:-}" <<'EOF'
import base64, hashlib, hmac, json, os, sys, time, uuid

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

kid, key = os.environ["GW_TOKEN_KEYS"].split(",")[0].split(":", 1)
key = unb64(sys.argv[3] or key)
now = int(time.time())

def merge(base, over):
    for k, v in over.items():
        if v is None:
            base.pop(k, None)
        elif isinstance(v, str) and v.startswith("now") and len(v) > 3:
            base[k] = now + int(v[3:])
        else:
            base[k] = v
    return base

header = merge({"alg": "HS256", "typ": "JWT", "kid": kid}, json.loads(sys.argv[1]))
claims = merge({"sub": os.environ["ALICE_ID"], "scope": "users tasks", "iat": now,
                "exp": now + 600, "jti": str(uuid.uuid4())}, json.loads(sys.argv[2]))
sign = os.environ.get("SIGN", "sha256")

def make(header, claims):
    h = os.environ.get("RAW_HEADER") or json.dumps(header, separators=(",", ":"))
    c = os.environ.get("RAW_CLAIMS") or json.dumps(claims, separators=(",", ":"))
    signing = b64(h.encode()) + "." + b64(c.encode())
    sig = b"" if sign == "none" else hmac.new(key, signing.encode(), getattr(hashlib, sign)).digest()
    return signing + "." + b64(sig)

want = int(os.environ.get("LENGTH", "0"))
if want:
    for hp in range(4):
        for cp in range(want):
            t = make(dict(header, p="x" * hp), dict(claims, pad="x" * cp))
            if len(t) >= want:
                break
        if len(t) == want:
            break
    assert len(t) == want, (len(t), want)
    print(t)
else:
    print(make(header, claims))
EOF
}

# other_key: a random HMAC key as the gateway's are written (base64url)
other_key() {
    "$PY" -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode())'
}

# part_json PART: the JSON text of a token part
part_json() {
    "$PY" -c 'import base64,sys; p=sys.argv[1]; print(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)).decode())' "$1"
}

# get PATH [AUTHORIZATION-VALUE...]: GET with exactly these Authorization
# headers (none without one), 10 s at most; sets status, body, headers.
get() {
    local path=$1 h=() a
    shift
    for a in "$@"; do h+=(-H "Authorization: $a"); done
    NOAUTH=1 http GET "$path" -m 10 "${h[@]}"
}

# challenge EXPECTED: the answer has exactly one WWW-Authenticate header,
# this one (compared in lower case: `http` lower-cases the headers).
challenge() {
    local got
    got=$(grep '^www-authenticate:' <<<"$headers" || true)
    assert_equal "$got" "www-authenticate: $(tr 'A-Z' 'a-z' <<<"$1")"
}

# invalid_token [DETAIL]: the last answer was RFC 6750's invalid_token
invalid_token() {
    local d=${1:-Invalid token}
    assert_equal "$status" 401
    assert_equal "$body" "{\"detail\":\"$d\"}"
    challenge "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"$d\""
}

# invalid_request: the last answer was RFC 6750's invalid_request
invalid_request() {
    assert_equal "$status" 400
    assert_equal "$body" '{"detail":"Malformed bearer token"}'
    challenge 'Bearer realm="api", error="invalid_request", error_description="Malformed bearer token"'
}

# no_credentials: 401 with a bare challenge, no error (RFC 6750 §3.1)
no_credentials() {
    assert_equal "$status" 401
    assert_equal "$body" '{"detail":"Not authenticated"}'
    challenge 'Bearer realm="api"'
}

# me_ok: the last answer was alice's own record
me_ok() {
    assert_equal "$status" 200
    [[ $body == *"\"id\":$ALICE_ID,"* ]] || fail "not alice: $body"
    [[ $body == *'"username":"alice"'* ]] || fail "not alice: $body"
}

login() { # FORM: POST it to /api/token as a form
    http POST /api/token -m 10 -H 'Content-Type: application/x-www-form-urlencoded' --data-raw "$1"
}

# login_as USER PASSWORD [curl args...]: the password grant, the values URL-encoded by curl
login_as() {
    NOAUTH=1 http POST /api/token -m 10 --data-urlencode grant_type=password \
        --data-urlencode "username=$1" --data-urlencode "password=$2" "${@:3}"
}

access_token() {
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' <<<"$body"
}

# ---------------------------------------------------------------- tokens --

@test "control: a token crafted here with the gateway's key is accepted, in any scheme case" {
    t=$(jwt)
    get /api/users/me "Bearer $t"
    me_ok
    # RFC 6750 §2.1 / RFC 7235 §2.1: the scheme is case-insensitive
    get /api/users/me "bearer $t"
    me_ok
    get /api/users/me "BEARER $t"
    me_ok
    get /api/users/me "bEaReR   $t"
    me_ok
    # ... and so is a real login's token
    login_as alice wonderland
    assert_equal "$status" 200
    get /api/users/me "bearer $(access_token)"
    me_ok
}

@test "tampered tokens: every byte of a real token changed in turn is 401 (400 when no longer token68), never 200 or 500" {
    login_as alice wonderland
    assert_equal "$status" 200
    tok=$(access_token)
    get /api/users/me "Bearer $tok"
    me_ok
    # two changes per position: the low bit flipped (which turns some
    # characters into ones token68 lacks: '@' '`' '[' '{' ',' '^') and the
    # next character of the base64url alphabet; with the answer expected
    "$PY" - "$tok" "$BASE/api/users/me" "$BATS_TEST_TMPDIR" <<'EOF'
import sys
tok, url, d = sys.argv[1:]
b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
t68 = set(b64 + "._~+/")
cfg, want = [], []
for pos, c in enumerate(tok):
    alts = [chr(ord(c) ^ 1), b64[(b64.index(c) + 1) % 64] if c in b64 else "A"]
    for v, r in enumerate(alts):
        bad = tok[:pos] + r + tok[pos + 1:]
        assert bad != tok and '"' not in bad and "\\" not in bad
        if r in t68:
            code, ch = 401, 'Bearer realm="api", error="invalid_token", error_description="Invalid token"'
        else:
            code, ch = 400, 'Bearer realm="api", error="invalid_request", error_description="Malformed bearer token"'
        cfg.append('url = "%s"\nheader = "Authorization: Bearer %s"\noutput = "/dev/null"\n'
                   'max-time = 20\nwrite-out = "%d %d %%{http_code} %%header{www-authenticate}\\n"\n'
                   % (url, bad, pos, v))
        want.append("%d %d %d %s" % (pos, v, code, ch))
open(d + "/tamper.cfg", "w").write("next\n".join(cfg))
open(d + "/tamper.want", "w").write("\n".join(sorted(want)) + "\n")
EOF
    [ "$(wc -l <"$BATS_TEST_TMPDIR/tamper.want")" -eq $((2 * ${#tok})) ]
    curl -s --no-progress-meter -Z --parallel-max 8 -K "$BATS_TEST_TMPDIR/tamper.cfg" |
        sort >"$BATS_TEST_TMPDIR/tamper.got"
    run diff "$BATS_TEST_TMPDIR/tamper.want" "$BATS_TEST_TMPDIR/tamper.got"
    assert_success
    # none of it harmed the real token
    get /api/users/me "Bearer $tok"
    me_ok
}

@test "alg none: an unsigned token naming the real kid is 401, with or without a signature part" {
    kid=${GW_TOKEN_KEYS%%:*}
    for alg in none None NONE; do
        t=$(SIGN=none jwt "{\"alg\":\"$alg\",\"typ\":\"JWT\",\"kid\":\"$kid\"}" '{"scope":"users tasks admin"}')
        [[ $t == *. ]]
        [[ $(part_json "${t%%.*}") == "{\"alg\":\"$alg\",\"typ\":\"JWT\",\"kid\":\"$kid\"}" ]]
        get /api/users/me "Bearer $t"
        invalid_token
        get /api/users "Bearer $t"
        invalid_token
        # two parts only, as some libraries write it
        get /api/users/me "Bearer ${t%.}"
        invalid_token
    done
    # alg none carrying the signature of a genuine HS256 token
    good=$(jwt)
    hp=$(RAW_HEADER="{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"$kid\"}" jwt)
    get /api/users/me "Bearer ${hp%.*}.${good##*.}"
    invalid_token
    # no alg at all, or one that is not a string
    get /api/users/me "Bearer $(jwt '{"alg":null}')"
    invalid_token
    get /api/users/me "Bearer $(jwt '{"alg":256}')"
    invalid_token
    # the control: the same claims, HS256
    get /api/users/me "Bearer $good"
    me_ok
}

@test "alg HS512 and RS256 headers are 401, whatever they are signed with" {
    # HS512, signed HMAC-SHA512 with the real key: a valid HS512 JWT
    t=$(SIGN=sha512 jwt '{"alg":"HS512"}')
    get /api/users/me "Bearer $t"
    invalid_token
    # HS512 header over an HMAC-SHA256 signature
    get /api/users/me "Bearer $(jwt '{"alg":"HS512"}')"
    invalid_token
    # RS256 with the HMAC key as if it were the public key (key confusion)
    get /api/users/me "Bearer $(jwt '{"alg":"RS256"}')"
    invalid_token
    get /api/users/me "Bearer $(SIGN=sha512 jwt '{"alg":"RS256"}')"
    invalid_token
    # HS256 in another case, or with a space
    get /api/users/me "Bearer $(jwt '{"alg":"hs256"}')"
    invalid_token
    get /api/users/me "Bearer $(jwt '{"alg":"HS256 "}')"
    invalid_token
}

@test "a token signed with another key under the real kid is 401, admin scope or not" {
    k=$(other_key)
    get /api/users/me "Bearer $(jwt '{}' '{}' "$k")"
    invalid_token
    get /api/users "Bearer $(jwt '{}' '{"scope":"admin"}' "$k")"
    invalid_token
    # the real key with one byte changed, and the real key cut short
    realkey=${GW_TOKEN_KEYS%%,*}
    realkey=${realkey#*:}
    near=$("$PY" -c '
import base64, sys
s = sys.argv[1]; k = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
k[-1] ^= 1
print(base64.urlsafe_b64encode(bytes(k)).rstrip(b"=").decode())' "$realkey")
    [ "$near" != "$realkey" ]
    get /api/users/me "Bearer $(jwt '{}' '{}' "$near")"
    invalid_token
    get /api/users/me "Bearer $(jwt '{}' '{}' "${realkey:0:22}")"
    invalid_token
    # the real key signs the control
    get /api/users/me "Bearer $(jwt '{}' '{}' "$realkey")"
    me_ok
}

@test "a token with an unknown, missing or odd kid is 401 even when signed with the real key" {
    for h in '{"kid":"nope"}' '{"kid":null}' '{"kid":""}' '{"kid":1}' '{"kid":["dev1"]}' \
        "{\"kid\":\"${GW_TOKEN_KEYS%%:*}x\"}" "{\"kid\":\"$(tr 'a-z' 'A-Z' <<<"${GW_TOKEN_KEYS%%:*}")\"}"; do
        get /api/users/me "Bearer $(jwt "$h")"
        invalid_token
    done
    # an unknown kid with a key of its own
    get /api/users/me "Bearer $(jwt '{"kid":"attacker"}' '{}' "$(other_key)")"
    invalid_token
}

@test "an expired token is 401 Token expired, to the second" {
    get /api/users/me "Bearer $(jwt '{}' '{"exp":"now-10","iat":"now-700"}')"
    invalid_token "Token expired"
    # exp is the first second it is no longer valid (now >= exp)
    get /api/users/me "Bearer $(jwt '{}' '{"exp":"now+0"}')"
    invalid_token "Token expired"
    # long ago, and at the epoch
    get /api/users/me "Bearer $(jwt '{}' '{"exp":1,"iat":0}')"
    invalid_token "Token expired"
    # a real one from tokenctl with a 1 s TTL, after it ran out
    t=$(token "$ALICE_ID" "" 1)
    sleep 2.1
    get /api/users/me "Bearer $t"
    invalid_token "Token expired"
}

@test "a token not yet valid (nbf in the future, iat far in the future) is 401" {
    get /api/users/me "Bearer $(jwt '{}' '{"nbf":"now+3600"}')"
    invalid_token
    get /api/users/me "Bearer $(jwt '{}' '{"nbf":"now+5"}')"
    invalid_token
    get /api/users/me "Bearer $(jwt '{}' '{"iat":"now+3600","exp":"now+7200"}')"
    invalid_token
    get /api/users/me "Bearer $(jwt '{}' '{"iat":"now+86400","exp":"now+90000","nbf":"now+86400"}')"
    invalid_token
    # the controls: nbf passed; iat within the 60 s clock leeway (lib/token.h)
    get /api/users/me "Bearer $(jwt '{}' '{"nbf":"now-5"}')"
    me_ok
    get /api/users/me "Bearer $(jwt '{}' '{"iat":"now+30"}')"
    me_ok
}

@test "a revoked token is refused (401 Token revoked) within REVOKE_SYNC_MS; other tokens go on working" {
    login_as alice wonderland
    assert_equal "$status" 200
    tok=$(access_token)
    other=$(jwt)
    get /api/users/me "Bearer $tok"
    me_ok
    NOAUTH=1 http POST /api/token/revoke -m 10 --data-urlencode "token=$tok"
    assert_equal "$status" 200
    assert_equal "$body" '{}'
    start=$(date +%s%N)
    retry 30 0.1 eval 'get /api/users/me "Bearer $tok"; [ "$status" = 401 ]'
    elapsed_ms=$((($(date +%s%N) - start) / 1000000))
    [ "$elapsed_ms" -lt 3000 ] || fail "revoked after $elapsed_ms ms"
    invalid_token "Token revoked"
    # public routes refuse it too; in any scheme case
    get /api/hello/x "bearer $tok"
    invalid_token "Token revoked"
    # revoking again changes nothing
    NOAUTH=1 http POST /api/token/revoke -m 10 --data-urlencode "token=$tok"
    assert_equal "$status" 200
    get /api/users/me "Bearer $tok"
    invalid_token "Token revoked"
    get /api/users/me "Bearer $other"
    me_ok
}

@test "a forged token cannot revoke a real one: its jti is ignored" {
    victim=$(jwt)
    jti=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["jti"])' "$(part_json "$(cut -d. -f2 <<<"$victim")")")
    forged=$(jwt '{}' "{\"jti\":\"$jti\"}" "$(other_key)")
    NOAUTH=1 http POST /api/token/revoke -m 10 --data-urlencode "token=$forged"
    assert_equal "$status" 200
    unsigned=$(SIGN=none jwt '{"alg":"none"}' "{\"jti\":\"$jti\"}")
    NOAUTH=1 http POST /api/token/revoke -m 10 --data-urlencode "token=$unsigned"
    assert_equal "$status" 200
    run -0 rcli zrange revoked 0 -1
    refute_output --partial "$jti"
    # past REVOKE_SYNC_MS: still accepted
    sleep 1.2
    get /api/users/me "Bearer $victim"
    me_ok
}

@test "an oversized token (over TOKEN_MAX, under lighttpd's header limit) is 401; one of TOKEN_MAX is read" {
    t=$(LENGTH=4097 jwt)
    [ "${#t}" -eq 4097 ]
    get /api/users/me "Bearer $t"
    invalid_token
    t=$(LENGTH=7000 jwt)
    get /api/users/me "Bearer $t"
    invalid_token
    get /api/hello/x "Bearer $t"
    invalid_token
    # the limit is the length, not the content: exactly 4096 is a good token
    t=$(LENGTH=4096 jwt)
    [ "${#t}" -eq 4096 ]
    get /api/users/me "Bearer $t"
    me_ok
    # over the request header limit: lighttpd's own 431, not the route's
    t=$(LENGTH=9000 jwt)
    get /api/users/me "Bearer $t"
    assert_equal "$status" 431
}

@test "a signed token missing a required claim (sub, exp, jti, iat, scope) is 401" {
    for c in sub exp jti iat scope; do
        get /api/users/me "Bearer $(jwt '{}' "{\"$c\":null}")"
        invalid_token
    done
    get /api/users/me "Bearer $(RAW_CLAIMS='{}' jwt)"
    invalid_token
}

@test "a signed token with claims of the wrong type, size or shape is 401" {
    for c in '{"sub":1}' '{"sub":null,"user":"1"}' '{"sub":["1"]}' '{"exp":"9999999999"}' \
        '{"exp":9999999999.5}' '{"iat":"0"}' '{"nbf":"0"}' '{"nbf":true}' '{"jti":7}' \
        '{"scope":["admin"]}' '{"scope":null}'; do
        get /api/users/me "Bearer $(jwt '{}' "$c")"
        invalid_token
    done
    # a NUL inside a string claim (the C string would be shorter)
    get /api/users/me "Bearer $(jwt '{}' "{\"sub\":\"$ALICE_ID\\u0000x\"}")"
    invalid_token
    get /api/users "Bearer $(jwt '{}' '{"scope":"users\u0000admin"}')"
    invalid_token
    # longer than the claims can hold: refused, never cut to fit
    get /api/users/me "Bearer $(jwt '{}' "{\"sub\":\"$ALICE_ID$(printf '0%.0s' {1..70})\"}")"
    invalid_token
    get /api/users/me "Bearer $(jwt '{}' "{\"jti\":\"$(printf 'j%.0s' {1..65})\"}")"
    invalid_token
    get /api/users "Bearer $(jwt '{}' "{\"scope\":\"admin $(printf 'x%.0s' {1..300})\"}")"
    invalid_token
    # a repeated claim, a payload that is no object, a header that is no JSON
    now=$(date +%s)
    get /api/users/me "Bearer $(RAW_CLAIMS="{\"sub\":\"999999\",\"sub\":\"$ALICE_ID\",\"scope\":\"\",\"iat\":$now,\"exp\":$((now + 600)),\"jti\":\"j\"}" jwt)"
    invalid_token
    get /api/users/me "Bearer $(RAW_CLAIMS='["sub"]' jwt)"
    invalid_token
    get /api/users/me "Bearer $(RAW_HEADER='not json' jwt)"
    invalid_token
    get /api/users/me "Bearer $(RAW_HEADER="{\"alg\":\"none\",\"alg\":\"HS256\",\"kid\":\"${GW_TOKEN_KEYS%%:*}\"}" jwt)"
    invalid_token
}

@test "a token that is not three canonical base64url parts is 401" {
    t=$(jwt)
    IFS=. read -r h p s <<<"$t"
    for bad in "$h.$p" "$h.$p.$s.$s" "$h..$s" ".$p.$s" "$h.$p.$s=" "$h.$p.$s==" \
        "$h.$p.${s}A" "$h.$p.${s:0:42}" "..." "a.b.c" "$p.$h.$s" "$t.$s"; do
        get /api/users/me "Bearer $bad"
        invalid_token
    done
    # the signature's last character with its spare bits set: the same bytes
    # in a second spelling, still refused (one spelling per token)
    last=${s: -1}
    alt=$("$PY" -c '
import sys
a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
print(a[a.index(sys.argv[1]) ^ 1])' "$last")
    get /api/users/me "Bearer ${s:0:42}"
    invalid_token
    get /api/users/me "Bearer $h.$p.${s:0:42}$alt"
    invalid_token
    get /api/users/me "Bearer $t"
    me_ok
}

@test "Authorization headers: none, empty and other schemes are 401 without an error; malformed Bearer is 400" {
    t=$(jwt)
    get /api/users/me
    no_credentials
    NOAUTH=1 http GET /api/users/me -m 10 -H 'Authorization;'
    no_credentials
    get /api/users/me "Basic $(printf 'alice:wonderland' | base64)"
    no_credentials
    get /api/users/me "Digest username=\"alice\""
    no_credentials
    # the scheme glued to the token is no Bearer header at all
    get /api/users/me "Bearer$t"
    no_credentials
    get /api/users/me "Bearerx $t"
    no_credentials
    # "Bearer" followed by nothing, or by what token68 lacks
    get /api/users/me "Bearer"
    invalid_request
    get /api/users/me "Bearer "
    invalid_request
    get /api/users/me "bearer"
    invalid_request
    get /api/users/me "Bearer  a b"
    invalid_request
    get /api/users/me "Bearer $t $t"
    invalid_request
    get /api/users/me "Bearer $t,"
    invalid_request
    get /api/users/me "Bearer =$t"
    invalid_request
    get /api/users/me "Bearer ${t%%.*}=.${t#*.}"
    invalid_request
    get /api/users/me "Bearer \"$t\""
    invalid_request
    get /api/users/me "Bearer ${t:0:20}%2E${t:21}"
    invalid_request
}

@test "Authorization headers: garbage bytes are a clean 400 or 401, never a 500" {
    t=$(jwt)
    # bytes that are not UTF-8 (not token68, not a scheme we know)
    get /api/users/me $'\xff\xfe\x80garbage\xc3'
    no_credentials
    get /api/users/me $'Bearer \xff\xfe\x80\xc3'
    invalid_request
    get /api/users/me $'Bearer '"$t"$'\xe2\x80\x8b'
    invalid_request
    get /api/users/me "Bearer ünïcødé😀"
    invalid_request
    # control characters in a header: lighttpd refuses the request itself
    for g in $'Bearer \x01\x02' $'Bearer '"$t"$'\x7f' $'\x1b[31m'; do
        get /api/users/me "$g"
        assert_equal "$status" 400
    done
    # random bytes, many times over (no NUL, CR or LF: curl cannot send them)
    "$PY" - "$BASE/api/users/me" "$BATS_TEST_TMPDIR" <<'EOF'
import random, sys
url, d = sys.argv[1:]
rnd = random.Random(6)
cfg = []
for n in range(200):
    k = rnd.randrange(1, 300)
    v = bytes(rnd.choice([b for b in range(0x20, 0x100) if b not in b'"\\\x7f']) for _ in range(k))
    v = (b"Bearer " if n % 2 else b"") + v
    cfg.append(b'url = "' + url.encode() + b'"\nheader = "Authorization: ' + v.strip() +
               b'"\noutput = "/dev/null"\nmax-time = 20\nwrite-out = "%{http_code}\\n"\n')
open(d + "/garbage.cfg", "wb").write(b"next\n".join(cfg))
EOF
    curl -s --no-progress-meter -Z --parallel-max 8 -K "$BATS_TEST_TMPDIR/garbage.cfg" |
        sort | uniq -c >"$BATS_TEST_TMPDIR/codes"
    run awk '$2 != 400 && $2 != 401' "$BATS_TEST_TMPDIR/codes"
    assert_output ""
    [ "$(awk '{ n += $1 } END { print n }' "$BATS_TEST_TMPDIR/codes")" -eq 200 ]
}

@test "two Authorization headers (lighttpd joins them with \", \"): 400 after a Bearer, even when both are good; 401 after another scheme" {
    t=$(jwt)
    a=$(jwt '{}' '{"scope":"admin"}')
    get /api/users/me "Bearer $t" "Bearer $t"
    invalid_request
    get /api/users "Bearer $t" "Bearer $a"
    invalid_request
    get /api/users/me "Bearer $t" "Basic eDp5"
    invalid_request
    get /api/hello/x "Bearer $t" "Bearer $t"
    invalid_request
    # "Basic eDp5, Bearer ...": credentials of another scheme come first,
    # so no bearer token is taken from it (RFC 7235: 401 and a challenge)
    get /api/users/me "Basic eDp5" "Bearer $t"
    no_credentials
    # and a lone one still works
    get /api/users/me "Bearer $t"
    me_ok
}

@test "insufficient scope: GET /api/users without admin is 403 insufficient_scope, with admin 200" {
    for s in "" "users tasks" "administrator" "admins" "xadmin" "ADMIN" "Admin" "adm" "users,admin"; do
        get /api/users "Bearer $(token "$ALICE_ID" "$s")"
        assert_equal "$status" 403
        assert_equal "$body" '{"detail":"Not enough permissions"}'
        challenge 'Bearer realm="api", error="insufficient_scope", scope="admin"'
    done
    # alice's own login token has her scopes, which lack admin
    login_as alice wonderland
    assert_equal "$status" 200
    get /api/users "Bearer $(access_token)"
    assert_equal "$status" 403
    challenge 'Bearer realm="api", error="insufficient_scope", scope="admin"'
    # a forged admin claim is not a scope
    get /api/users "Bearer $(jwt '{}' '{"scope":"admin"}' "$(other_key)")"
    invalid_token
    for s in "admin" "users admin" "admin tasks"; do
        get /api/users "Bearer $(token "$ALICE_ID" "$s")"
        assert_equal "$status" 200
        [[ $body == '{"items":['* ]] || fail "$body"
        [[ $body == *'"username":"alice"'* ]] || fail "$body"
    done
    # without any token: 401, not 403
    get /api/users
    no_credentials
}

@test "public routes work without a token; with an invalid one they are 401, with a malformed one 400" {
    get /api/hello/x
    assert_equal "$status" 200
    assert_equal "$body" '{"message":"Hello, x!"}'
    before=$(psql_app -c "SELECT count(*) FROM users")
    NOAUTH=1 http POST /api/users -m 10 -d '{"username":"pubuser","email":"pub@example.com","password":"publicpass"}'
    assert_equal "$status" 201
    [[ $body == *'"username":"pubuser"'* ]]
    # a client holding a bad token is told so, and nothing is created
    bad=$(jwt '{}' '{}' "$(other_key)")
    get /api/hello/x "Bearer $bad"
    invalid_token
    get /api/hello/x "Bearer $(jwt '{}' '{"exp":"now-5"}')"
    invalid_token "Token expired"
    get /api/hello/x "Bearer"
    invalid_request
    NOAUTH=1 http POST /api/users -m 10 -H "Authorization: Bearer $bad" \
        -d '{"username":"pubuser2","email":"pub2@example.com","password":"publicpass"}'
    invalid_token
    NOAUTH=1 http POST /api/users -m 10 -H "Authorization: Bearer  a b" \
        -d '{"username":"pubuser3","email":"pub3@example.com","password":"publicpass"}'
    invalid_request
    assert_equal "$(psql_app -c "SELECT count(*) FROM users")" "$((before + 1))"
    # another scheme is no token: the route is served
    get /api/hello/x "Basic eDp5"
    assert_equal "$status" 200
    # and a good token is fine there too
    get /api/hello/x "Bearer $(jwt)"
    assert_equal "$status" 200
    assert_equal "$body" '{"message":"Hello, x!"}'
    psql_app -c "DELETE FROM users WHERE username = 'pubuser'"
}

# ---------------------------------------------------------------- logins --

@test "login: a wrong password and an unknown user get the same 400 invalid_grant" {
    login_as alice nope
    assert_equal "$status" 400
    assert_equal "$body" '{"error":"invalid_grant","error_description":"Incorrect username or password"}'
    [[ $headers == *"cache-control: no-store"* ]]
    wrong_body=$body
    wrong_headers=$(grep -v -e '^date:' -e '^x-request-id:' -e '^content-length:' <<<"$headers")
    login_as nobody-here nope
    assert_equal "$status" 400
    assert_equal "$body" "$wrong_body"
    assert_equal "$(grep -v -e '^date:' -e '^x-request-id:' -e '^content-length:' <<<"$headers")" "$wrong_headers"
    # alice's password under a name nobody has
    login_as nobody-here wonderland
    assert_equal "$status" 400
    assert_equal "$body" "$wrong_body"
    # an empty password, and near misses of the right one
    reset_limits
    login_as alice ""
    assert_equal "$status" 400
    [[ $body == '{"error":"invalid_'* ]] || fail "$body"
    login_as alice "wonderland "
    assert_equal "$body" "$wrong_body"
    login_as alice "WONDERLAND"
    assert_equal "$body" "$wrong_body"
}

@test "login: SQL injection and unicode user names are 400 invalid_grant, never 500, and the users table is intact" {
    count=$(psql_app -c "SELECT count(*) FROM users")
    hash=$(psql_app -c "SELECT password_hash FROM users WHERE username = 'alice'")
    # each with alice's real password: a name that matched her would log in
    # (names are looked up NFKC-case-folded: ALICE, a fullwidth ａｌｉｃｅ and
    # alice with a zero-width space are alice, tested below; a Cyrillic а,
    # an RTL override or a dotted İ are other names)
    while IFS= read -r u; do
        login_as "$u" wonderland
        [ "$status" = 400 ] || fail "username '$u': $status $body"
        assert_equal "$body" '{"error":"invalid_grant","error_description":"Incorrect username or password"}'
    done <<'EOF'
' OR '1'='1
' OR 1=1 --
alice' --
alice'--
alice';--
alice' OR 'x'='x
'; DROP TABLE users; --
alice'; DELETE FROM users; --
alice'); DROP TABLE users; --
" OR ""="
alice\
%
_lice
alic_
alice%
a%
' UNION SELECT 1, '$y$', 'admin' --
'||(SELECT password_hash FROM users LIMIT 1)||'
alice' AND pg_sleep(5) IS NULL --
$1
ünïcødé
😀
alice😀
аlice
‮ecila
alİce
alicе
EOF
    assert_equal "$(psql_app -c "SELECT count(*) FROM users")" "$count"
    assert_equal "$(psql_app -c "SELECT password_hash FROM users WHERE username = 'alice'")" "$hash"
    assert_equal "$(psql_app -c "SELECT to_regclass('public.users') IS NOT NULL")" t
    # and alice still logs in, under any spelling of her name
    local u
    for u in alice ALICE 'ａｌｉｃｅ' 'ＡＬＩＣＥ' 'alice​' 'alic​e'; do
        login_as "$u" wonderland
        [ "$status" = 200 ] || fail "username '$u': $status $body"
    done
}

@test "login: a NUL, invalid UTF-8 or an overlong name is a 400, never her token or a 500" {
    # a NUL ends the name in C: "alice\0junk" must not be taken for alice
    login 'grant_type=password&username=alice%00junk&password=wonderland'
    assert_equal "$status" 400
    [[ $body == '{"error":"invalid_'* ]] || fail "$body"
    login 'grant_type=password&username=alice&password=wonderland%00junk'
    assert_equal "$status" 400
    [[ $body == '{"error":"invalid_'* ]] || fail "$body"
    login 'grant_type=password&username=%FF%FEalice&password=wonderland'
    assert_equal "$status" 400
    [[ $body == '{"error":"invalid_request",'* ]] || fail "$body"
    login 'grant_type=password&username=%C3&password=wonderland'
    assert_equal "$status" 400
    [[ $body == '{"error":"invalid_request",'* ]] || fail "$body"
    long=$(printf 'a%.0s' {1..5000})
    login_as "$long" wonderland
    assert_equal "$status" 400
    assert_equal "$body" '{"error":"invalid_grant","error_description":"Incorrect username or password"}'
    login_as alice "$long"
    assert_equal "$status" 400
    [[ $body == '{"error":"invalid_'* ]] || fail "$body"
}

@test "login: past the free failures a name waits (429 with Retry-After), the right password included; unknown names alike" {
    for n in 1 2 3 4; do
        login_as alice "guess$n"
        assert_equal "$status" 400
    done
    login_as alice wonderland
    assert_equal "$status" 429
    assert_equal "$body" '{"detail":"Too many login attempts, try again later"}'
    ra=$(sed -n 's/^retry-after: \([0-9]*\)$/\1/p' <<<"$headers")
    assert_equal "$ra" 1
    [[ $body != *access_token* ]]
    # a user name nobody has is limited the same way (no enumeration)
    for n in 1 2 3 4; do
        login_as nobody-here "guess$n"
        assert_equal "$status" 400
    done
    login_as nobody-here guess5
    assert_equal "$status" 429
    [[ $headers == *"retry-after: 1"* ]]
    # and the same answer from both, once the wait is over
    retry 30 0.1 eval 'login_as alice guess6; [ "$status" != 429 ]'
    wrong_alice=$body
    retry 30 0.1 eval 'login_as nobody-here guess6; [ "$status" != 429 ]'
    assert_equal "$body" "$wrong_alice"
}

@test "login: the wait holds whatever the spelling of the name (logins fold it), and only for the address that failed" {
    for n in 1 2 3 4; do
        login_as alice "guess$n"
        assert_equal "$status" 400
    done
    # past the 1 s wait, one more failure: 2 s
    retry 30 0.1 eval 'login_as alice guess5; [ "$status" = 400 ]'
    # ALICE and ａｌｉｃｅ log in as alice (token.bats), so they wait as alice
    for u in ALICE Alice aLiCe 'ａｌｉｃｅ'; do
        login_as "$u" wonderland
        assert_equal "$u:$status" "$u:429"
    done
    # another address is another pair
    login_as alice wonderland --interface 127.0.0.2
    assert_equal "$status" 200
}

# ---------------------------------------------------------------- fernet --
# tests/fernet.bats covers: 1 in 8 positions changed, 8 truncation lengths,
# '=' removed / added on one token, another key, a TTL 100 s past, and keys.
# Here: every truncation, byte-level cuts that are re-encoded, re-padding on
# all three padding lengths, authentic (re-signed) tokens with a bad version,
# a bad plaintext padding or a timestamp at the edges, keys that share half
# of the real one, and NUL bytes around the token.

FERNET=${GW_BIN:-$REPO/bin}/fernet

# fernet_refused: the last `run --separate-stderr` refused a token
fernet_refused() {
    assert_equal "$status" 1
    assert_equal "$stderr" "fernet: invalid token"
    assert_equal "$output" ""
}

# fforge KEY TOKEN OP...: re-make a token with Python's standard library,
# re-signed with KEY's HMAC half unless OP "nosign" is given. OPs:
#   ts=N | ts=now±N   the timestamp;   ver=N   the version byte
#   ivxor=N           XOR the last IV byte (the plaintext's last pad byte
#                     for a one-block message)
#   cut=N             drop the last N ciphertext bytes
#   hmaccut=N         drop the last N bytes of the HMAC (after signing)
fforge() {
    "$PY" - "$@" <<'EOF'
import base64, hashlib, hmac, sys, time
key = base64.urlsafe_b64decode(sys.argv[1])
raw = base64.urlsafe_b64decode(sys.argv[2])
ver, ts, iv, ct = raw[0], int.from_bytes(raw[1:9], "big"), bytearray(raw[9:25]), raw[25:-32]
sign, hcut = True, 0
for op in sys.argv[3:]:
    k, _, v = op.partition("=")
    if k == "ts":
        ts = int(time.time()) + int(v[3:]) if v.startswith("now") else int(v)
    elif k == "ver":
        ver = int(v)
    elif k == "ivxor":
        iv[15] ^= int(v)
    elif k == "cut":
        ct = ct[:len(ct) - int(v)]
    elif k == "hmaccut":
        hcut = int(v)
    elif k == "nosign":
        sign = False
body = bytes([ver]) + ts.to_bytes(8, "big") + bytes(iv) + ct
mac = hmac.new(key[:16], body, hashlib.sha256).digest() if sign else raw[-32:]
print(base64.urlsafe_b64encode(body + mac[:32 - hcut]).decode())
EOF
}

fernet_key() { "$FERNET" genkey; }

@test "fernet: a token cut at any length, or cut in bytes and re-encoded, exits 1 with one line and no output" {
    k=$(fernet_key)
    tok=$(printf 'cut me' | "$FERNET" encrypt --key "$k")
    [ "${#tok}" -eq 100 ]
    # every prefix, with and without the newline the CLI allows
    for ((n = 0; n < ${#tok}; n++)); do
        run --separate-stderr "$FERNET" decrypt --key "$k" <<<"${tok:0:n}"
        fernet_refused
    done
    printf '%s' "${tok:0:50}" >"$BATS_TEST_TMPDIR/half"
    run --separate-stderr "$FERNET" decrypt --key "$k" <"$BATS_TEST_TMPDIR/half"
    fernet_refused
    # cut in bytes and re-encoded: canonical base64url, but bytes missing
    for op in hmaccut=1 hmaccut=16 hmaccut=32 "cut=16 nosign" "cut=1 nosign"; do
        # shellcheck disable=SC2086
        bad=$(fforge "$k" "$tok" nosign $op)
        [ "$bad" != "$tok" ]
        run --separate-stderr "$FERNET" decrypt --key "$k" <<<"$bad"
        fernet_refused
    done
    # ... and re-signed, so that only the length is wrong: a ciphertext not
    # of whole blocks, or none at all (refused by the length check)
    for op in cut=1 cut=15 cut=16; do
        bad=$(fforge "$k" "$tok" "$op")
        run --separate-stderr "$FERNET" decrypt --key "$k" <<<"$bad"
        fernet_refused
        run --separate-stderr env LOG_LEVEL=DEBUG "$FERNET" decrypt --key "$k" <<<"$bad"
        [[ $stderr == *"token refused: length"* ]] || fail "$op: $stderr"
        run --separate-stderr "$FERNET" rotate --key "$k" <<<"$bad"
        fernet_refused
    done
    # the control: re-signed unchanged, it decrypts
    run -0 --separate-stderr "$FERNET" decrypt --key "$k" <<<"$(fforge "$k" "$tok")"
    assert_output "cut me"
}

@test "fernet: re-padded tokens (each of 0, 1 and 2 '=') exit 1; so do another alphabet and spare bits set" {
    k=$(fernet_key)
    # 0, 16 and 32 bytes: 73, 89 and 105 token bytes: 2, 1 and 0 '='
    for m in "" "0123456789abcdef" "0123456789abcdef0123456789abcdef"; do
        tok=$(printf '%s' "$m" | "$FERNET" encrypt --key "$k")
        run -0 --separate-stderr "$FERNET" decrypt --key "$k" <<<"$tok"
        assert_output "$m"
        bare=${tok%%=*}
        pads=$((${#tok} - ${#bare}))
        [ $(((${#bare} + pads) % 4)) -eq 0 ]
        variants=("$bare" "$tok=" "$tok==" "${bare:0:10}=${bare:10}${tok:${#bare}}" "=$tok" "$bare=")
        [ "$pads" -eq 2 ] && variants+=("$bare=" "$bare===")
        [ "$pads" -eq 1 ] && variants+=("$bare==")
        [ "$pads" -eq 0 ] && variants+=("$bare=" "$bare====")
        for bad in "${variants[@]}"; do
            [ "$bad" != "$tok" ] || continue
            run --separate-stderr "$FERNET" decrypt --key "$k" <<<"$bad"
            fernet_refused
        done
        # the same bytes in another spelling: the standard alphabet, and
        # the last character's spare bits set (Python reads both)
        std=$(tr -- '-_' '+/' <<<"$tok")
        if [ "$std" != "$tok" ]; then
            run --separate-stderr "$FERNET" decrypt --key "$k" <<<"$std"
            fernet_refused
        fi
        if [ "$pads" -gt 0 ]; then
            alt=$("$PY" -c '
import sys
a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
b = sys.argv[1]
print(b[:-1] + a[a.index(b[-1]) ^ 1])' "$bare")
            run --separate-stderr "$FERNET" decrypt --key "$k" <<<"$alt${tok:${#bare}}"
            fernet_refused
        fi
    done
}

@test "fernet: keys that share half of the real one, in any keyring, exit 1; the right key anywhere in it works" {
    k=$(fernet_key)
    other=$(fernet_key)
    tok=$(printf 'halves' | "$FERNET" encrypt --key "$k")
    # same AES half, another HMAC half; halves swapped; HMAC half alone doubled
    read -r same_aes swapped doubled < <("$PY" -c '
import base64, sys
k = base64.urlsafe_b64decode(sys.argv[1]); o = base64.urlsafe_b64decode(sys.argv[2])
e = lambda b: base64.urlsafe_b64encode(b).decode()
print(e(o[:16] + k[16:]), e(k[16:] + k[:16]), e(k[:16] + k[:16]))' "$k" "$other")
    [ -n "$doubled" ] || fail "no keys made"
    for kk in "$same_aes" "$swapped" "$doubled" "$other"; do
        run --separate-stderr "$FERNET" decrypt --key "$kk" <<<"$tok"
        fernet_refused
    done
    run --separate-stderr "$FERNET" decrypt --key "$same_aes" --key "$swapped" --key "$other" <<<"$tok"
    fernet_refused
    run --separate-stderr env FERNET_KEYS="$same_aes,$swapped,$doubled" "$FERNET" rotate <<<"$tok"
    fernet_refused
    # the control: the right key last in a ring of wrong ones
    run -0 --separate-stderr "$FERNET" decrypt --key "$same_aes" --key "$swapped" --key "$k" <<<"$tok"
    assert_output halves
}

@test "fernet: authentic tokens past their --ttl, or stamped at the edges of time, exit 1" {
    k=$(fernet_key)
    tok=$(printf 'timed' | "$FERNET" encrypt --key "$k")
    old=$(fforge "$k" "$tok" ts=now-100)
    run --separate-stderr "$FERNET" decrypt --key "$k" --ttl 90 <<<"$old"
    fernet_refused
    run --separate-stderr "$FERNET" decrypt --key "$k" --ttl 1 <<<"$old"
    fernet_refused
    run -0 --separate-stderr "$FERNET" decrypt --key "$k" --ttl 110 <<<"$old"
    assert_output timed
    # at the epoch; at the largest timestamps (unsigned and signed)
    for ts in 0 1 18446744073709551615 9223372036854775808 9223372036854775807; do
        t=$(fforge "$k" "$tok" "ts=$ts")
        run --separate-stderr "$FERNET" decrypt --key "$k" --ttl 60 <<<"$t"
        fernet_refused
        run --separate-stderr "$FERNET" decrypt --key "$k" --ttl 4294967296 <<<"$t"
        if [ "$ts" = 0 ] || [ "$ts" = 1 ]; then
            # 2^32 s is longer ago than the epoch: no longer too old
            assert_equal "$status" 0
            assert_output timed
        else
            fernet_refused
        fi
        # without --ttl time is not checked (as Python's decrypt(token))
        run -0 --separate-stderr "$FERNET" decrypt --key "$k" <<<"$t"
        assert_output timed
    done
    # a token really made 2 s ago, past a 1 s TTL
    fresh=$(printf 'timed' | "$FERNET" encrypt --key "$k")
    sleep 2.1
    run --separate-stderr "$FERNET" decrypt --key "$k" --ttl 1 <<<"$fresh"
    fernet_refused
}

@test "fernet: authentic tokens with a bad version byte or a bad plaintext padding exit 1 and print nothing" {
    k=$(fernet_key)
    tok=$(printf 'pad' | "$FERNET" encrypt --key "$k")
    for v in 0 127 129 255; do
        run --separate-stderr "$FERNET" decrypt --key "$k" <<<"$(fforge "$k" "$tok" "ver=$v")"
        fernet_refused
    done
    # 'pad' is 3 bytes and 13 of padding (0x0d): make the last one 0x0c,
    # 0x1d, 0x00 (a valid HMAC over a plaintext that is not PKCS7)
    for x in 1 16 13; do
        bad=$(fforge "$k" "$tok" "ivxor=$x")
        run --separate-stderr "$FERNET" decrypt --key "$k" <<<"$bad"
        fernet_refused
        run --separate-stderr env LOG_LEVEL=DEBUG "$FERNET" decrypt --key "$k" <<<"$bad"
        [[ $stderr == *"token refused: padding"* ]] || fail "ivxor=$x: $stderr"
        assert_equal "$output" ""
        run --separate-stderr "$FERNET" rotate --key "$k" <<<"$bad"
        fernet_refused
    done
}

@test "fernet: NUL bytes or a lone CR around the token exit 1" {
    k=$(fernet_key)
    tok=$(printf 'nul' | "$FERNET" encrypt --key "$k")
    d=$BATS_TEST_TMPDIR
    printf '%s\0' "$tok" >"$d/t1"
    printf '%s\0\n' "$tok" >"$d/t2"
    printf '\0%s\n' "$tok" >"$d/t3"
    printf '%s\0%s\n' "${tok:0:50}" "${tok:50}" >"$d/t4"
    printf '%s\r' "$tok" >"$d/t5"
    printf '%s\n\r' "$tok" >"$d/t6"
    printf '%s\r\r\n' "$tok" >"$d/t7"
    for f in t1 t2 t3 t4 t5 t6 t7; do
        run --separate-stderr "$FERNET" decrypt --key "$k" <"$d/$f"
        fernet_refused
        run --separate-stderr "$FERNET" rotate --key "$k" <"$d/$f"
        fernet_refused
    done
    # the control
    run -0 --separate-stderr "$FERNET" decrypt --key "$k" <<<"$tok"
    assert_output nul
}

# ------------------------------------------------------------------ last --

@test "no answer in this file was a 5xx, and no route program crashed so far" {
    run grep -E '" 5[0-9][0-9] ' "$GW_STATE/log/access.log"
    assert_output ""
    run "$REPO/tests/check-logs" "$GW_STATE"
    assert_success
}

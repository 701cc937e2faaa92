#!/usr/bin/env bats
# bin/fernet and Python's cryptography.fernet (Debian's python3-cryptography,
# for /usr/bin/python3: the first python3 on PATH may be another one): tokens
# and keys made by either are read by the other, rotations included, and
# every refusal is exit 1 with one line on stderr that never shows a key.

load helpers

FERNET=${GW_BIN:-$REPO/bin}/fernet
PY=/usr/bin/python3

# py SCRIPT [ARGS...]: Python with Fernet, MultiFernet, InvalidToken, sys,
# os, time imported; keys come in the environment (K1, K2, ...).
py() {
    local script=$1
    shift
    "$PY" -c "import os, sys, time
from cryptography.fernet import Fernet, MultiFernet, InvalidToken
$script" "$@"
}

fernet() { "$FERNET" "$@"; }

setup() {
    K1=$(fernet genkey)
    K2=$(py 'print(Fernet.generate_key().decode())')
    export K1 K2
    D=$BATS_TEST_TMPDIR
    # the messages: text, binary (every byte value, NULs, no final newline),
    # empty, large (3 MiB)
    printf 'Hello, Fernet! Jörg 😀\n' >"$D/text"
    "$PY" -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 5 + b"\0\0")' >"$D/binary"
    : >"$D/empty"
    head -c $((3 * 1024 * 1024)) /dev/urandom >"$D/large"
    MESSAGES="text binary empty large"
}

# no_secrets: neither key, in any form, appears in $output or $stderr
no_secrets() {
    local k
    for k in "$K1" "$K2" "${K1%=}" "${K2%=}" "${K1:0:20}" "${K2:0:20}"; do
        [[ ${output-} != *"$k"* ]] || { echo "a key in stdout: $output" >&2; return 1; }
        [[ ${stderr-} != *"$k"* ]] || { echo "a key in stderr: $stderr" >&2; return 1; }
    done
}

# invalid_token: the last `run` failed as an invalid token should
invalid_token() {
    assert_equal "$status" 1
    assert_equal "$stderr" "fernet: invalid token"
    assert_equal "$output" ""
    no_secrets
}

@test "genkey prints a new URL-safe key that Python's Fernet takes" {
    run -0 --separate-stderr fernet genkey
    [[ $output =~ ^[A-Za-z0-9_-]{43}=$ ]]
    assert_equal "$stderr" ""
    [ "$output" != "$K1" ]
    run -0 py 'f = Fernet(os.environ["K1"]); print(f.decrypt(f.encrypt(b"ok")).decode())'
    assert_output ok
    run -2 fernet genkey --key "$K1"
}

@test "tokens from bin/fernet decrypt in Python: text, binary, empty, large" {
    for m in $MESSAGES; do
        fernet encrypt --key "$K1" <"$D/$m" >"$D/$m.tok"
        # one token and a newline
        [[ $(cat "$D/$m.tok") =~ ^gAAAAA[A-Za-z0-9_-]+=*$ ]]
        [ "$(wc -l <"$D/$m.tok")" = 1 ]
        py 'sys.stdout.buffer.write(Fernet(os.environ["K1"]).decrypt(open(sys.argv[1], "rb").read(), ttl=60))' \
            "$D/$m.tok" >"$D/$m.py"
        cmp "$D/$m" "$D/$m.py"
    done
}

@test "tokens from Python decrypt in bin/fernet: text, binary, empty, large, with or without a newline" {
    for m in $MESSAGES; do
        py 'sys.stdout.buffer.write(Fernet(os.environ["K2"]).encrypt(open(sys.argv[1], "rb").read()))' \
            "$D/$m" >"$D/$m.tok"
        fernet decrypt --key "$K2" --ttl 60 <"$D/$m.tok" >"$D/$m.out"
        cmp "$D/$m" "$D/$m.out"
        # print(token): with a newline; and a CRLF from another system
        { cat "$D/$m.tok"; echo; } | fernet decrypt --key "$K2" >"$D/$m.out"
        cmp "$D/$m" "$D/$m.out"
        { cat "$D/$m.tok"; printf '\r\n'; } | FERNET_KEYS=$K2 fernet decrypt >"$D/$m.out"
        cmp "$D/$m" "$D/$m.out"
    done
    # the message is written as it is: no newline added
    py 'print(Fernet(os.environ["K2"]).encrypt(b"no newline").decode())' >"$D/t"
    run -0 --separate-stderr fernet decrypt --key "$K2" <"$D/t"
    assert_equal "$(fernet decrypt --key "$K2" <"$D/t" | od -An -c | tr -d ' \n')" "nonewline"
}

@test "bin/fernet round-trips binary stdin exactly" {
    for m in $MESSAGES; do
        fernet encrypt --key "$K1" <"$D/$m" | fernet decrypt --key "$K1" >"$D/$m.out"
        cmp "$D/$m" "$D/$m.out"
    done
}

@test "Python's MultiFernet reads the tokens bin/fernet rotated, with their timestamp kept" {
    # an old token (made by Python with K2, a day ago)
    py 'sys.stdout.buffer.write(Fernet(os.environ["K2"]).encrypt_at_time(b"rotate me", int(time.time()) - 86400))' \
        >"$D/old.tok"
    fernet rotate --key "$K1" --key "$K2" <"$D/old.tok" >"$D/new.tok"
    run -0 py '
old = open(sys.argv[1], "rb").read()
new = open(sys.argv[2], "rb").read().rstrip(b"\n")
k1, k2 = Fernet(os.environ["K1"]), Fernet(os.environ["K2"])
assert new != old
assert k1.decrypt(new) == b"rotate me"
assert MultiFernet([k1, k2]).decrypt(new) == b"rotate me"
assert k1.extract_timestamp(new) == k2.extract_timestamp(old)
try:
    k2.decrypt(new)
    raise SystemExit("the old key still opens the rotated token")
except InvalidToken:
    pass
# the same rotation in Python keeps the same timestamp
assert k1.extract_timestamp(MultiFernet([k1, k2]).rotate(old)) == k2.extract_timestamp(old)
print("ok")' "$D/old.tok" "$D/new.tok"
    assert_output ok
    # a day old: past a one-hour TTL, in Python and here, since rotation keeps the time
    run --separate-stderr fernet decrypt --key "$K1" --ttl 3600 <"$D/new.tok"
    invalid_token
    run -0 py 'Fernet(os.environ["K1"]).decrypt(open(sys.argv[1], "rb").read(), ttl=90000)' "$D/new.tok"
    # FERNET_KEYS works the same: the first key encrypts
    FERNET_KEYS="$K1,$K2" fernet rotate <"$D/old.tok" >"$D/new2.tok"
    run -0 --separate-stderr fernet decrypt --key "$K1" <"$D/new2.tok"
    assert_output "rotate me"
}

@test "bin/fernet reads the tokens Python's MultiFernet rotated" {
    printf 'from us' | fernet encrypt --key "$K1" >"$D/ours.tok"
    py 'sys.stdout.buffer.write(MultiFernet([Fernet(os.environ["K2"]), Fernet(os.environ["K1"])]).rotate(open(sys.argv[1], "rb").read()))' \
        "$D/ours.tok" >"$D/rot.tok"
    run -0 --separate-stderr fernet decrypt --key "$K2" <"$D/rot.tok"
    assert_output "from us"
    run --separate-stderr fernet decrypt --key "$K1" <"$D/rot.tok"
    invalid_token
    # and ours rotated back under K1, with the timestamp of the first token
    fernet rotate --key "$K1" --key "$K2" <"$D/rot.tok" >"$D/back.tok"
    run -0 py '
k1 = Fernet(os.environ["K1"])
a, b = (open(p, "rb").read() for p in sys.argv[1:3])
assert k1.decrypt(b) == b"from us"
assert k1.extract_timestamp(a) == k1.extract_timestamp(b)
print("ok")' "$D/ours.tok" "$D/back.tok"
    assert_output ok
}

@test "a keyring decrypts with any of its keys and encrypts with the first" {
    printf 'by K1' | fernet encrypt --key "$K1" >"$D/k1.tok"
    py 'sys.stdout.buffer.write(Fernet(os.environ["K2"]).encrypt(b"by K2"))' >"$D/k2.tok"
    run -0 --separate-stderr fernet decrypt --key "$K1" --key "$K2" <"$D/k2.tok"
    assert_output "by K2"
    run -0 --separate-stderr env FERNET_KEYS="$K2,$K1" "$FERNET" decrypt <"$D/k1.tok"
    assert_output "by K1"
    printf 'first' | FERNET_KEYS="$K2,$K1" fernet encrypt >"$D/first.tok"
    run -0 py 'print(Fernet(os.environ["K2"]).decrypt(open(sys.argv[1], "rb").read()).decode())' "$D/first.tok"
    assert_output first
    # --key takes the place of FERNET_KEYS
    run --separate-stderr env FERNET_KEYS="$K1" "$FERNET" decrypt --key "$K2" <"$D/k1.tok"
    invalid_token
}

@test "--ttl: past the TTL or over 60 s ahead is an invalid token, as in Python" {
    py '
now = int(time.time())
f = Fernet(os.environ["K2"])
for name, t in (("old", now - 100), ("ahead", now + 3600), ("skew", now + 30)):
    open(os.path.join(sys.argv[1], name + ".tok"), "wb").write(f.encrypt_at_time(b"timed", t))' "$D"
    run --separate-stderr fernet decrypt --key "$K2" --ttl 50 <"$D/old.tok"
    invalid_token
    run -1 py 'Fernet(os.environ["K2"]).decrypt(open(sys.argv[1], "rb").read(), ttl=50)' "$D/old.tok"
    run -0 --separate-stderr fernet decrypt --key "$K2" --ttl 1000 <"$D/old.tok"
    assert_output timed
    run -0 --separate-stderr fernet decrypt --key "$K2" <"$D/old.tok"
    run --separate-stderr fernet decrypt --key "$K2" --ttl=86400 <"$D/ahead.tok"
    invalid_token
    run -1 py 'Fernet(os.environ["K2"]).decrypt(open(sys.argv[1], "rb").read(), ttl=86400)' "$D/ahead.tok"
    # without a TTL no time is checked (Python's decrypt(token) neither)
    run -0 --separate-stderr fernet decrypt --key "$K2" <"$D/ahead.tok"
    assert_output timed
    # within the allowed clock skew
    run -0 --separate-stderr fernet decrypt --key "$K2" --ttl 10 <"$D/skew.tok"
    assert_output timed
    # our own fresh tokens pass a 1 s TTL
    printf 'fresh' | fernet encrypt --key "$K1" >"$D/fresh.tok"
    run -0 --separate-stderr fernet decrypt --key "$K1" --ttl 1 <"$D/fresh.tok"
}

@test "tampered, truncated, re-encoded and other-key tokens: exit 1, one line, no key" {
    printf 'secret message' | fernet encrypt --key "$K1" >"$D/tok"
    local tok
    tok=$(cat "$D/tok")
    # every character of the token changed in turn (here: 1 in 8 positions)
    # (not `i`: bats's `run` sets a global i)
    local pos
    for ((pos = 0; pos < ${#tok}; pos += 8)); do
        local c=${tok:pos:1} r=A
        [ "$c" = A ] && r=B
        printf '%s\n' "${tok:0:pos}$r${tok:pos+1}" >"$D/bad"
        run --separate-stderr fernet decrypt --key "$K1" <"$D/bad"
        invalid_token
        run -1 py 'Fernet(os.environ["K1"]).decrypt(open(sys.argv[1], "rb").read())' "$D/bad"
    done
    # truncated
    for n in 0 1 4 20 56 76 $((${#tok} - 4)) $((${#tok} - 1)); do
        printf '%s' "${tok:0:n}" >"$D/bad"
        run --separate-stderr fernet decrypt --key "$K1" <"$D/bad"
        invalid_token
    done
    # padding removed or added, whitespace inside, two newlines after
    for bad in "${tok%%=*}" "$tok=" "$tok====" "${tok:0:10} ${tok:10}" "$tok"$'\n'; do
        printf '%s\n' "$bad" >"$D/bad"
        run --separate-stderr fernet decrypt --key "$K1" <"$D/bad"
        invalid_token
    done
    # made with another key
    run --separate-stderr fernet decrypt --key "$K2" <"$D/tok"
    invalid_token
    run --separate-stderr fernet rotate --key "$K2" <"$D/tok"
    invalid_token
    # not a token at all
    run --separate-stderr fernet decrypt --key "$K1" </dev/null
    invalid_token
    printf 'secret message' >"$D/plain"
    run --separate-stderr fernet decrypt --key "$K1" <"$D/plain"
    invalid_token
}

@test "a bad or missing key: exit 1, one line naming it by position, never its text" {
    printf 'x' | fernet encrypt --key "$K1" >"$D/tok"
    local bad=${K1%=}  # no padding: Python refuses it too
    run -1 py 'Fernet(sys.argv[1])' "$bad"
    run --separate-stderr fernet decrypt --key "$K2" --key "$bad" <"$D/tok"
    assert_equal "$status" 1
    assert_equal "$stderr" "fernet: --key 2 is not a Fernet key (32 url-safe base64-encoded bytes)"
    assert_equal "$output" ""
    no_secrets
    run --separate-stderr env FERNET_KEYS="$K1,$K2,$bad" "$FERNET" encrypt <"$D/tok"
    assert_equal "$status" 1
    assert_equal "$stderr" "fernet: FERNET_KEYS: key 3 is not a Fernet key (32 url-safe base64-encoded bytes)"
    assert_equal "$output" ""
    no_secrets
    run --separate-stderr env FERNET_KEYS="$K1," "$FERNET" decrypt <"$D/tok"
    assert_equal "$status" 1
    assert_equal "$stderr" "fernet: FERNET_KEYS: key 2 is not a Fernet key (32 url-safe base64-encoded bytes)"
    run --separate-stderr env -u FERNET_KEYS "$FERNET" decrypt <"$D/tok"
    assert_equal "$status" 1
    assert_equal "$stderr" "fernet: no key: set FERNET_KEYS or pass --key"
    run --separate-stderr env FERNET_KEYS= "$FERNET" encrypt <"$D/tok"
    assert_equal "$status" 1
    # LOG_LEVEL=DEBUG says which check refused a token, still without a key
    run --separate-stderr env LOG_LEVEL=DEBUG "$FERNET" decrypt --key "$K2" <"$D/tok"
    assert_equal "$status" 1
    [[ $stderr == *"DEBUG - token refused: hmac"* ]]
    [[ $stderr == *"fernet: invalid token" ]]
    no_secrets
}

@test "keys are read as Python's Fernet(key) reads them" {
    # the same 32 bytes in both alphabets and with a non-canonical last
    # character: one key for both; Python refuses what we refuse, except
    # for bytes Python skips (whitespace, junk, text after the '=')
    local std url
    std=$(py 'import base64; print(base64.b64encode(bytes([0xfb, 0xff, 0xbf] * 10 + [1, 2])).decode())')
    url=$(py 'import base64; print(base64.urlsafe_b64encode(bytes([0xfb, 0xff, 0xbf] * 10 + [1, 2])).decode())')
    [[ $std == *[+/]* ]]
    printf 'alphabets' | fernet encrypt --key "$std" >"$D/tok"
    run -0 --separate-stderr fernet decrypt --key "$url" <"$D/tok"
    assert_output alphabets
    run -0 py 'print(Fernet(sys.argv[1]).decrypt(open(sys.argv[2], "rb").read()).decode())' "$url" "$D/tok"
    assert_output alphabets
    # last character 'I' (001000) vs 'J' (001001): only the 2 spare bits differ
    [ "${url:42:1}" = I ]
    run -0 --separate-stderr fernet decrypt --key "${url:0:42}J=" <"$D/tok"
    assert_output alphabets
    run -0 py 'Fernet(sys.argv[1]).decrypt(open(sys.argv[2], "rb").read())' "${url:0:42}J=" "$D/tok"
    # both refuse
    for bad in "${url%=}" "${url:0:42}==" "${url%=}AAAA" "${url%=}AAAAA=" "" "short="; do
        run -1 py 'Fernet(sys.argv[1])' "$bad"
        run --separate-stderr fernet decrypt --key "$bad" <"$D/tok"
        assert_equal "$status" 1
        assert_equal "$stderr" "fernet: --key 1 is not a Fernet key (32 url-safe base64-encoded bytes)"
    done
    # Python skips these bytes; we refuse the key rather than guess
    for lax in "$url"$'\n' " $url" "${url:0:10}!${url:10}" "$url=" "${url}abcd"; do
        run -0 py 'Fernet(sys.argv[1])' "$lax"
        run --separate-stderr fernet decrypt --key "$lax" <"$D/tok"
        assert_equal "$status" 1
    done
}

@test "usage errors exit 2" {
    run -2 fernet
    run -2 fernet nope
    run -2 fernet encrypt --ttl 5 --key "$K1"
    run -2 fernet decrypt --key
    run -2 fernet decrypt --key "$K1" --ttl
    run -2 fernet decrypt --key "$K1" --ttl abc
    run -2 fernet decrypt --key "$K1" --ttl 0
    run -2 fernet decrypt --key "$K1" --ttl -5
    run -2 fernet decrypt --key "$K1" extra
    run -2 --separate-stderr fernet rotate --key "$K1" --ttl 5
    [[ $stderr == usage:* ]]
    no_secrets
}

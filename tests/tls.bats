#!/usr/bin/env bats
# TLS on the gateway's second port (mod_openssl, lighttpd.conf) and the
# security headers on every answer, over both schemes: the development
# certificate scripts/gateway makes, a configured one, protocols, ciphers,
# HSTS only over TLS, GW_TLS_PORT=0.
#
# What the gateway refuses, Debian's OpenSSL 3 clients refuse by themselves at
# their default security level (TLS 1.0 and 1.1 above all), so such a refusal
# would prove nothing: each one is preceded by the same client getting what it
# asks for from `openssl s_server`, with the client's security level lowered.

load helpers

setup_file() {
    start_gateway
    export CA=$GW_STATE/tls/cert.pem MAIN_GW_PID=$GW_PID
}

teardown_file() {
    stop_gateway
}

teardown() {
    [ -z "${SPID:-}" ] || { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null || true; }
    # a test's own second gateway (this runs in the test's process)
    [ "${GW_PID:-}" = "$MAIN_GW_PID" ] || stop_gateway
}

tls_port() { echo "${TLS_BASE##*:}"; }

# s_server ARGS...: `openssl s_server` on a free port (SPORT) with the
# gateway's development certificate, answering HTTP: the control for a
# refusal. teardown stops it.
s_server() {
    SPORT=$(free_port)
    openssl s_server -accept "$SPORT" -cert "$CA" -key "$GW_STATE/tls/key.pem" -www -quiet "$@" \
        </dev/null >"$BATS_TEST_TMPDIR/s_server.out" 2>&1 3>&- &
    SPID=$!
    retry 50 0.1 eval '(exec 3<>"/dev/tcp/127.0.0.1/$SPORT") 2>/dev/null'
}

# handshake PORT ARGS...: an OpenSSL client's handshake with 127.0.0.1:PORT;
# fails when refused, prints the protocol and suite agreed otherwise.
handshake() {
    local port=$1
    shift
    openssl s_client -connect "127.0.0.1:$port" -brief "$@" </dev/null 2>&1 |
        grep -E '^(Protocol version|Ciphersuite|Server Temp Key):'
    [ "${PIPESTATUS[0]}" = 0 ]
}

# listen_ports PID: the TCP ports the process listens on, one a line, sorted.
listen_ports() {
    local inodes
    inodes=$(find "/proc/$1/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null | tr -dc '0-9\n')
    awk 'FNR > 1 && $4 == "0A" { print $10, $2 }' /proc/net/tcp /proc/net/tcp6 |
        while read -r inode addr; do
            if grep -qx "$inode" <<<"$inodes"; then echo $((16#${addr##*:})); fi
        done | sort -n
}

fingerprint() { openssl x509 -noout -fingerprint -sha256 "$@"; }

served_fingerprint() {
    openssl s_client -connect "127.0.0.1:$1" </dev/null 2>/dev/null | fingerprint
}

@test "the development certificate: self-signed EC P-256 for localhost, 127.0.0.1 and ::1, key 0600 in a 0700 dir" {
    assert_equal "$(stat -c %a "$GW_STATE/tls")" 700
    assert_equal "$(stat -c %a "$GW_STATE/tls/key.pem")" 600
    run -0 openssl x509 -in "$CA" -noout -text
    assert_output --partial "ASN1 OID: prime256v1"
    assert_output --regexp "Subject Alternative Name: *
 *DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"
    # a server certificate, not a CA: browsers refuse a CA certificate as a server's
    assert_output --regexp "Basic Constraints: critical
 *CA:FALSE"
    assert_output --partial "TLS Web Server Authentication"
    # the key is the certificate's
    assert_equal "$(openssl pkey -in "$GW_STATE/tls/key.pem" -pubout)" "$(openssl x509 -in "$CA" -noout -pubkey)"
    assert_equal "$(served_fingerprint "$(tls_port)")" "$(fingerprint -in "$CA")"
}

@test "the development certificate is made once, and again only when missing" {
    local st=$BATS_TEST_TMPDIR/st first
    env GW_STATE="$st" GW_CGI_BIN="$GW_CGI_BIN" "$REPO/scripts/gateway" -t
    first=$(fingerprint -in "$st/tls/cert.pem")
    env GW_STATE="$st" GW_CGI_BIN="$GW_CGI_BIN" "$REPO/scripts/gateway" -t
    assert_equal "$(fingerprint -in "$st/tls/cert.pem")" "$first"
    rm "$st/tls/key.pem"
    env GW_STATE="$st" GW_CGI_BIN="$GW_CGI_BIN" "$REPO/scripts/gateway" -t
    [ "$(fingerprint -in "$st/tls/cert.pem")" != "$first" ]
    [ -s "$st/tls/key.pem" ]
}

@test "GET /api/hello/world over https is the greeting; the certificate verifies for 127.0.0.1 and localhost only" {
    local port
    port=$(tls_port)
    run -0 curl -sS --cacert "$CA" "$TLS_BASE/api/hello/world"
    assert_output '{"message":"Hello, world!"}'
    run -0 curl -sS --cacert "$CA" --resolve "localhost:$port:127.0.0.1" "https://localhost:$port/api/hello/world"
    assert_output '{"message":"Hello, world!"}'
    # the client does check: another name, or no trust in the certificate, fails
    run -60 curl -sS --cacert "$CA" --resolve "api.example.com:$port:127.0.0.1" \
        "https://api.example.com:$port/api/hello/world"
    run -60 curl -sS "$TLS_BASE/api/hello/world"
}

@test "TLS 1.2 and TLS 1.3 are both served, with AEAD suites" {
    run -0 curl -sS -v --cacert "$CA" --tlsv1.2 --tls-max 1.2 "$TLS_BASE/api/hello/world"
    assert_output --regexp "SSL connection using TLSv1\.2 / ECDHE-ECDSA-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)"
    assert_output --partial '{"message":"Hello, world!"}'
    run -0 curl -sS -v --cacert "$CA" --tlsv1.3 "$TLS_BASE/api/hello/world"
    assert_output --regexp "SSL connection using TLSv1\.3 / TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)"
    assert_output --partial '{"message":"Hello, world!"}'
    run -0 handshake "$(tls_port)" -tls1_2
    assert_line "Protocol version: TLSv1.2"
    run -0 handshake "$(tls_port)" -tls1_3
    assert_line "Protocol version: TLSv1.3"
}

@test "TLS 1.0 and 1.1 are refused, though the client speaks them" {
    local v weak='DEFAULT:@SECLEVEL=0'
    s_server -min_protocol TLSv1 -max_protocol TLSv1.1 -cipher "$weak"
    for v in 1 1_1; do
        run -0 handshake "$SPORT" "-tls$v" -cipher "$weak"
        run -1 handshake "$(tls_port)" "-tls$v" -cipher "$weak"
    done
    for v in 1.0 1.1; do
        run -0 curl -sS -k --tlsv"$v" --tls-max "$v" --ciphers "$weak" -o /dev/null "https://127.0.0.1:$SPORT/"
        run ! curl -sS --cacert "$CA" --tlsv"$v" --tls-max "$v" --ciphers "$weak" "$TLS_BASE/api/hello/world"
        assert_output --partial "alert protocol version"
    done
}

@test "ECDHE with AEAD ciphers only, on X25519, P-256 or P-384, in the client's order" {
    s_server
    # CBC suites: what an OpenSSL server takes by default
    run -0 handshake "$SPORT" -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA
    run -1 handshake "$(tls_port)" -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA
    run -0 handshake "$SPORT" -tls1_2 -cipher ECDHE-ECDSA-AES256-SHA384
    run -1 handshake "$(tls_port)" -tls1_2 -cipher ECDHE-ECDSA-AES256-SHA384
    # other key exchange groups (TLS 1.3: in 1.2 the group must also be the
    # certificate's curve)
    local g
    for g in X448 P-521 ffdhe2048; do
        run -0 handshake "$SPORT" -tls1_3 -groups "$g"
        run -1 handshake "$(tls_port)" -tls1_3 -groups "$g"
    done
    run -0 handshake "$(tls_port)" -tls1_3 -groups P-384
    assert_line "Server Temp Key: ECDH, secp384r1, 384 bits"
    # all the offered suites are strong, so the client's preference wins
    run -0 handshake "$(tls_port)" -tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256
    assert_line "Ciphersuite: ECDHE-ECDSA-CHACHA20-POLY1305"
    run -0 handshake "$(tls_port)" -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305
    assert_line "Ciphersuite: ECDHE-ECDSA-AES128-GCM-SHA256"
    run -0 handshake "$(tls_port)" -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256
    assert_line "Ciphersuite: TLS_CHACHA20_POLY1305_SHA256"
}

@test "a client cannot renegotiate" {
    s_server -tls1_2 -client_renegotiation
    # "R" asks s_client to renegotiate; the pause lets the answer come back
    run -0 bash -c '(echo R; sleep 1) | openssl s_client -connect "127.0.0.1:$1" -tls1_2 2>&1' _ "$SPORT"
    assert_output --partial RENEGOTIATING
    refute_output --partial "no renegotiation"
    run -1 bash -c '(echo R; sleep 1) | openssl s_client -connect "127.0.0.1:$1" -tls1_2 2>&1' _ "$(tls_port)"
    assert_output --partial RENEGOTIATING
    assert_output --partial "no renegotiation"
}

# check_security_headers CASE CSP: $headers (from `http`) hold each security
# header once, with CSP as the Content-Security-Policy.
check_security_headers() {
    local h
    for h in "x-content-type-options: nosniff" "referrer-policy: no-referrer" \
        "x-frame-options: deny" "content-security-policy: $2"; do
        assert_equal "$1: $(grep -c "^$h$" <<<"$headers")" "$1: 1"
    done
}

# every_kind_of_answer: the security headers on a route's 200, the
# authorizer's 401, lighttpd's own 404, 403 (mod_access), 413 and 431 (both
# refused before any module runs), /metrics, a static file;
# then HSTS in each of them when https, never when not. Base URL and curl
# arguments from BASE and the arguments.
every_kind_of_answer() {
    local none="default-src 'none'; frame-ancestors 'none'" page="default-src 'self'; frame-ancestors 'none'"
    local hsts="strict-transport-security: max-age=63072000; includesubdomains" n=0
    head -c 2000000 /dev/zero >"$BATS_TEST_TMPDIR/big"
    local -a cases=(
        "200 $none|GET /api/hello/world"
        "401 $none|GET /api/users/1 NOAUTH"
        "404 $none|GET /nope.json"
        "403 $none|GET /errors/404.html"
        "413 $none|POST /api/hello/world --http1.1 --data-binary @$BATS_TEST_TMPDIR/big"
        "431 $none|GET /api/hello/world -H X-Big:$(head -c 9000 /dev/zero | tr '\0' a)"
        "200 $none|GET /metrics"
        "200 $page|GET /README"
    )
    local c want csp req method path
    for c in "${cases[@]}"; do
        want=${c%%|*} csp=${want#* } want=${want%% *} req=${c#*|}
        read -r method path _ <<<"$req"
        local -a args
        read -r -a args <<<"${req#"$method $path"}"
        if [ "${args[0]-}" = NOAUTH ]; then
            NOAUTH=1 http "$method" "$path" "$@" "${args[@]:1}"
        else
            http "$method" "$path" "$@" "${args[@]}"
        fi
        assert_equal "$method $path: $status" "$method $path: $want"
        check_security_headers "$method $path" "$csp"
        if [[ $BASE == https:* ]]; then
            assert_equal "$method $path: $(grep -c "^$hsts$" <<<"$headers")" "$method $path: 1"
        else
            assert_equal "$method $path: $(grep -c "^strict-transport-security:" <<<"$headers")" "$method $path: 0"
        fi
        n=$((n + 1))
    done
    assert_equal "$n" 8
}

@test "security headers on every kind of answer over http, and no HSTS" {
    every_kind_of_answer
}

@test "security headers on every kind of answer over https (HTTP/2 but for the 413), with HSTS" {
    # curl 7.88 loses an HTTP/2 answer that comes before the upload ends,
    # hence the 413 over HTTP/1.1
    BASE=$TLS_BASE every_kind_of_answer --cacert "$CA"
}

@test "the gateway listens on the HTTP port and the TLS port, nothing else" {
    run -0 listen_ports "$GW_PID"
    assert_output "$(printf '%s\n' "${BASE##*:}" "$(tls_port)" | sort -n)"
}

@test "a configured certificate and key are the ones served, and no development pair is made" {
    local d=$BATS_TEST_TMPDIR
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=configured.example -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null
    start_gateway GW_TLS_CERT="$d/cert.pem" GW_TLS_KEY="$d/key.pem"
    assert_equal "$(served_fingerprint "$(tls_port)")" "$(fingerprint -in "$d/cert.pem")"
    [ "$(fingerprint -in "$d/cert.pem")" != "$(fingerprint -in "$CA")" ]
    run -0 curl -sS --cacert "$d/cert.pem" "$TLS_BASE/api/hello/world"
    assert_output '{"message":"Hello, world!"}'
    [ ! -e "$GW_STATE/tls" ]
}

@test "a certificate and its key in one file is enough (GW_TLS_CERT alone)" {
    local d=$BATS_TEST_TMPDIR
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=one.example -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null
    cat "$d/cert.pem" "$d/key.pem" >"$d/both.pem"
    start_gateway GW_TLS_CERT="$d/both.pem"
    assert_equal "$(served_fingerprint "$(tls_port)")" "$(fingerprint -in "$d/cert.pem")"
}

@test "GW_TLS_PORT=0: no TLS listener and no certificate, plain HTTP as before" {
    start_gateway GW_TLS_PORT=0
    assert_equal "$TLS_BASE" ""
    run -0 listen_ports "$GW_PID"
    assert_output "${BASE##*:}"
    [ ! -e "$GW_STATE/tls" ]
    http GET /api/hello/world
    assert_equal "$status" 200
    check_security_headers "GET /api/hello/world" "default-src 'none'; frame-ancestors 'none'"
}

@test "bad TLS settings stop the start, saying why" {
    local st=$BATS_TEST_TMPDIR/st d=$BATS_TEST_TMPDIR
    gw() { env GW_STATE="$st" GW_CGI_BIN="$GW_CGI_BIN" GW_PORT=8080 "$@" "$REPO/scripts/gateway" -t; }
    run -1 gw GW_TLS_PORT=https
    assert_output "gateway: GW_TLS_PORT: expected a port number or 0, got 'https'"
    run -1 gw GW_TLS_PORT=65536
    assert_output "gateway: GW_TLS_PORT: expected a port number or 0, got '65536'"
    run -1 gw GW_TLS_PORT=8080
    assert_output "gateway: GW_TLS_PORT must differ from GW_PORT (8080)"
    run -1 gw GW_TLS_KEY="$d/key.pem"
    assert_output "gateway: GW_TLS_KEY is set but GW_TLS_CERT is not"
    run -1 gw GW_TLS_CERT="$d/nope.pem"
    assert_output "gateway: cannot read TLS file '$d/nope.pem'"
    # a key that is not the certificate's: lighttpd's check refuses it
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/other.pem"
    run ! gw GW_TLS_CERT="$CA" GW_TLS_KEY="$d/other.pem"
    assert_output --partial "Private key does not match the certificate public key"
}

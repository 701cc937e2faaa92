#!/usr/bin/env bats
# lighttpd.conf as shipped: valid, and a bad route setting stops the start
# with the reason in the log instead of serving half a stack.

load helpers

@test "lighttpd.conf passes lighttpd's own check with the modules loaded" {
    run -0 env GW_STATE="$BATS_TEST_TMPDIR/st" GW_CGI_BIN="$GW_CGI_BIN" "$REPO/scripts/gateway" -t
}

@test "--check reads a route program's settings and exits" {
    run -0 "$GW_CGI_BIN/hello" --check
    assert_output ""
    LOG_LEVEL=LOUD run -1 "$GW_CGI_BIN/hello" --check
    assert_output --partial "conf: LOG_LEVEL: expected one of"
    run -2 "$GW_CGI_BIN/hello" --bogus
    assert_output --partial "usage:"
}

@test "a missing GW_ setting is a clear start-up error" {
    run ! env -i PATH="$PATH" GW_ROOT="$REPO" lighttpd -tt -f "$REPO/lighttpd.conf"
    assert_output --partial "Undefined env variable: GW_CGI_BIN"
}

@test "a bad route setting makes the gateway refuse to start, saying why" {
    local st="$BATS_TEST_TMPDIR/st"
    run -1 timeout 20 env GW_STATE="$st" GW_PORT="$(free_port)" GW_CGI_BIN="$GW_CGI_BIN" \
        MAX_BODY_BYTES=lots "$REPO/scripts/gateway"
    # the first route program checked (in name order) says why
    assert_output --partial " - ERROR - conf: MAX_BODY_BYTES: expected an integer in 0..1073741824, got 'lots'"
    assert_output --partial "bad settings (above); not starting"
    [ ! -e "$st/log/error.log" ] # lighttpd never started
}

@test "GW_REMOTE_ROUTES points routes at other hosts; a typo or a bad address refuses to start" {
    local st="$BATS_TEST_TMPDIR/st"
    gw_conf() { env GW_STATE="$st" GW_CGI_BIN="$GW_CGI_BIN" GW_TLS_PORT=0 \
        GW_BACKENDS="$REPO/scripts/backends" "$@" \
        lighttpd -p -f "$REPO/lighttpd.conf"; }
    mkdir -p "$st"
    # the effective configuration: hello and users over TCP, no bin-path;
    # the other routes spawned on their unix sockets as without it
    run -0 gw_conf GW_ROOT="$REPO" GW_PROCS=2 GW_BACKEND_TIMEOUT=30 GW_LONGPOLL_TIMEOUT=65 \
        GW_BIND=127.0.0.1 GW_PORT=1 GW_WORKERS=0 GW_METRICS_ALLOW=127.0.0.1/32 \
        GW_MAX_CONNECTIONS=4096 GW_MAX_FDS=12288 GW_READ_IDLE=15 GW_BIN="$GW_BIN" \
        GW_REMOTE_ROUTES="hello=10.1.2.3:9001, users=[::1]:9002"
    assert_output --regexp '"hello" => \(
[^)]*"host" +=> "10\.1\.2\.3",
[^)]*"port" +=> 9001,'
    assert_output --regexp '"users" => \(
[^)]*"host" +=> "::1",
[^)]*"port" +=> 9002,'
    refute_output --partial '/cgi-bin/hello"'
    refute_output --partial '/cgi-bin/users"'
    assert_output --partial "\"$GW_CGI_BIN/tasks\""
    assert_output --partial "\"$st/sock/tasks.sock\""

    run ! env GW_STATE="$st" GW_CGI_BIN="$GW_CGI_BIN" GW_REMOTE_ROUTES="helo=10.1.2.3:9001" \
        "$REPO/scripts/gateway" -t
    assert_output --partial "GW_REMOTE_ROUTES: 'helo' is not a route (one of: auth hello"
    local bad
    for bad in hello=10.1.2.3 hello=10.1.2.3:0 hello=10.1.2.3:65536 hello=:9001 'hello=a"b:1' hello; do
        run ! env GW_STATE="$st" GW_CGI_BIN="$GW_CGI_BIN" GW_REMOTE_ROUTES="$bad" \
            "$REPO/scripts/gateway" -t
        assert_output --partial "GW_REMOTE_ROUTES: expected name=host:port, got '$bad'"
    done
}

@test "GW_LOG: file (the default) or stderr; anything else refuses to start" {
    local st="$BATS_TEST_TMPDIR/st"
    run ! env GW_STATE="$st" GW_CGI_BIN="$GW_CGI_BIN" GW_LOG=syslog "$REPO/scripts/gateway" -t
    assert_output --partial "lighttpd.conf: GW_LOG: expected file or stderr, got 'syslog'"
    run -0 env GW_STATE="$st" GW_CGI_BIN="$GW_CGI_BIN" GW_LOG=stderr "$REPO/scripts/gateway" -t
    run -0 env GW_STATE="$st" GW_CGI_BIN="$GW_CGI_BIN" GW_LOG=file "$REPO/scripts/gateway" -t
}

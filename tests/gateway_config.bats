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

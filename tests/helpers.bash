# Shared helpers for the bats suites. Every suite talks to real programs:
# route binaries run as plain CGI, or a real lighttpd started here on a free
# port with its state in a temp dir.
#
# Set by tests/run (defaults let `bats tests/x.bats` run alone after `make`):
#   GW_CGI_BIN   the build under test (cgi-bin/ or build/asan/cgi-bin/)
#   TEST_TMP     where gateways keep their state (scanned for sanitizer reports)

bats_require_minimum_version 1.5.0
bats_load_library bats-support
bats_load_library bats-assert

REPO=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
: "${GW_CGI_BIN:=$REPO/cgi-bin}"
: "${GW_BIN:=$REPO/bin}"
: "${TEST_TMP:=${BATS_RUN_TMPDIR:-/tmp}}"
export GW_CGI_BIN GW_BIN TEST_TMP

# cgi PROGRAM METHOD TARGET [BODY]: run a route binary as plain CGI, the way
# mod_cgi would, with CRs stripped from its output.
cgi() {
    local prog=$1 method=$2 target=$3 body=${4-}
    local query=""
    [[ $target == *\?* ]] && query=${target#*\?}
    printf '%s' "$body" | env -i PATH="$PATH" REQUEST_METHOD="$method" REQUEST_URI="$target" \
        QUERY_STRING="$query" CONTENT_LENGTH="${#body}" ${CGI_ENV-} \
        "$GW_CGI_BIN/$prog" | tr -d '\r'
}

# free_port, retry, answers
source "$REPO/scripts/lib.sh"

gateway_answers() {
    answers "$BASE/api/hello/world" '{"message":"Hello, world!"}'
}

# token SUB [SCOPE] [TTL]: an access token signed with the gateway's keys
# (bin/tokenctl, as an operator would make one).
token() {
    TOKEN_KEYS=$GW_TOKEN_KEYS "$GW_BIN/tokenctl" issue --sub "$1" --scope "${2-}" --ttl "${3:-3600}"
}

# start_gateway [VAR=value ...]: start lighttpd with lighttpd.conf as shipped,
# on a free port, state in a new dir under TEST_TMP. Exports BASE, TLS_BASE
# (https on a second free port, with the gateway's development certificate
# $GW_STATE/tls/cert.pem unless GW_TLS_CERT is given; empty with
# GW_TLS_PORT=0), GW_STATE,
# GW_PID, GW_TOKEN_KEYS (its signing keys), and AUTH, the header of an admin
# token (sub 0, no such user) for the suites that are not about auth:
# `curl -H "$AUTH" ...`; `http` sends it unless NOAUTH=1. Extra GW_*
# settings (GW_PROCS=1, ...) come as arguments.
start_gateway() {
    GW_STATE=$(mktemp -d "$TEST_TMP/gw.XXXXXX")
    local port tlsport arg
    for _ in 1 2 3; do
        port=$(free_port)
        # TLS on a second free port; GW_TLS_PORT=N (0: none) as an argument wins
        tlsport=$(free_port)
        [ "$tlsport" != "$port" ] || tlsport=$(free_port)
        for arg in "$@"; do [[ $arg == GW_TLS_PORT=* ]] && tlsport=${arg#GW_TLS_PORT=}; done
        BASE="http://127.0.0.1:$port"
        TLS_BASE="https://127.0.0.1:$tlsport"
        [ "$tlsport" != 0 ] || TLS_BASE=
        env GW_STATE="$GW_STATE" GW_PORT="$port" GW_TLS_PORT="$tlsport" GW_CGI_BIN="$GW_CGI_BIN" GW_PROCS=2 "$@" \
            "$REPO/scripts/gateway" >"$GW_STATE/gateway.out" 2>&1 3>&- </dev/null &
        GW_PID=$!
        export BASE TLS_BASE GW_STATE GW_PID
        if retry 50 0.1 gateway_answers; then
            GW_TOKEN_KEYS=${TOKEN_KEYS:-}
            local a
            for a in "$@"; do [[ $a == TOKEN_KEYS=* ]] && GW_TOKEN_KEYS=${a#TOKEN_KEYS=}; done
            [ -n "$GW_TOKEN_KEYS" ] || GW_TOKEN_KEYS=$(cat "$GW_STATE/secrets/token-keys")
            export GW_TOKEN_KEYS
            AUTH="Authorization: Bearer $(token 0 admin)"
            export AUTH
            return 0
        fi
        kill "$GW_PID" 2>/dev/null
        wait "$GW_PID" 2>/dev/null
    done
    echo "gateway did not start:" >&2
    cat "$GW_STATE/gateway.out" "$GW_STATE/log/error.log" >&2
    return 1
}

# Route processes of the gateway under test: the children of lighttpd's
# master (scripts/gateway execs lighttpd, so GW_PID is it) that run a route
# program; its other children are lighttpd's own workers.
# route_pids [PROGRAM]: those of one route program only (hello, tasks).
route_pids() {
    pgrep -P "$GW_PID" -f "^$GW_CGI_BIN/${1-}" 2>/dev/null || true
}

# pids_of_exe EXE: the processes running the binary EXE (also when a
# rebuild replaced it under them: "(deleted)"). Found by command name first:
# one pgrep, not a readlink per process of the host, which in teardowns'
# retry loops cost more CPU than some suites' tests.
pids_of_exe() {
    local p exe name=${1##*/}
    for p in $(pgrep -x "${name:0:15}"); do
        exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
        if [ "${exe% (deleted)}" = "$1" ]; then echo "$p"; fi
    done
    return 0
}

# rss_kb PID: the process's resident memory in kB (the memory suites).
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# stop_gateway: SIGTERM lighttpd, wait until it and its route processes are
# gone (so sanitizer reports at exit are in the log), then fail if any
# sanitizer or crash report is in the logs.
stop_gateway() {
    [ -n "${GW_PID:-}" ] || return 0
    local pids
    pids=$(route_pids)
    kill -TERM "$GW_PID" 2>/dev/null
    retry 100 0.1 eval '! kill -0 "$GW_PID" 2>/dev/null'
    for p in $pids; do
        retry 100 0.1 eval "! kill -0 $p 2>/dev/null || grep -q '^State:.*Z' /proc/$p/status"
    done
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=
    check_logs "$GW_STATE"
}

check_logs() {
    "$REPO/tests/check-logs" "$1"
}

# curl_batch CFG: run the requests of a curl -K config (entries separated
# by `next`, each with output and write-out "%{http_code}\n"), 8 at a time
# over one curl, and count the statuses into $BATS_TEST_TMPDIR/codes
# ("   N 200" lines).
curl_batch() {
    curl -s --no-progress-meter -Z --parallel-max 8 -K "$1" |
        sort | uniq -c >"$BATS_TEST_TMPDIR/codes"
}

# http METHOD PATH [curl args...]: request through the gateway, with $AUTH
# unless NOAUTH=1; sets $status, $body, $headers (lower-cased names).
http() {
    local method=$1 path=$2
    shift 2
    local out="$BATS_TEST_TMPDIR/resp" auth=()
    [ "${NOAUTH:-0}" = 1 ] || [ -z "${AUTH:-}" ] || auth=(-H "$AUTH")
    status=$(curl -s -o "$out.body" -D "$out.head" -w '%{http_code}' -X "$method" "${auth[@]}" "$@" \
        "$BASE$path")
    body=$(cat "$out.body")
    headers=$(tr -d '\r' <"$out.head" | tr 'A-Z' 'a-z')
}

# secret_env PID: the settings in process PID's environment that are, or
# name a file holding, a secret (any *URL, *KEY(S), *PASSWORD, *PASSWD,
# *SECRET, *TOKEN, *CREDENTIALS, or such a name with _FILE), as NAME=value
# lines, sorted: for exact comparisons, so that one too many fails.
secret_env() {
    tr '\0' '\n' <"/proc/$1/environ" |
        grep -E '^([A-Z0-9_]*_)?(URL|KEYS?|PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIALS)(_FILE)?=' | sort
}

# Hosts for the scale-out suite (tests/scaleout.bats): this machine's own
# test hosts, made of network namespaces. Load after helpers and queue.
#
#   hosts_up      three hosts, A B C, each a namespace with its own loopback
#                 and an eth0 on a private /24, joined by a bridge that lives
#                 in a fourth namespace (the switch): nothing is added to
#                 this machine's own network, and the hosts reach nothing
#                 but each other.
#   on H CMD...   run CMD on host H (A, B or C); spawn_on: in the background
#   kill_host H   the host dies: SIGKILL to every process on it
#   hosts_down    SIGKILL every process left on the hosts, delete them
#   host_redis, host_runner, host_gateway: the stack's parts on a host;
#   fcgi_request: one raw FastCGI request from a host to a program
#
# Both builds' suites run at the same time: every namespace name carries a
# random id, and each run picks its own /24 in 10.0.0.0/8 (not needed for
# isolation, each run has its own switch, but an address then names one
# run's host only, e.g. in a REDIS_URL that leftover_runners matches).
# Ports inside the hosts are fixed: nothing else lives there.
#
# Commands enter a host with nsenter (its network namespace only), not
# `ip netns exec` or `ip -n`: those also make "/" a slave mount, which fails
# where "/" is no mount point (a chroot, as on a freshly debootstrapped
# test machine). So /sys is the machine's own: read links with ip, not
# /sys/class/net.

# in_ns NAME CMD...: CMD in network namespace NAME (exec'd in place)
in_ns() {
    local ns=$1
    shift
    nsenter --net="/run/netns/$ns" -- "$@"
}
#
# Exports NET_ID, NS_A NS_B NS_C NS_SW (namespace names), IP_A IP_B IP_C.

hosts_up() {
    NET_ID=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
    NS_A=apistack-$NET_ID-a NS_B=apistack-$NET_ID-b NS_C=apistack-$NET_ID-c
    NS_SW=apistack-$NET_ID-sw
    local net=10.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1))
    IP_A=$net.1 IP_B=$net.2 IP_C=$net.3
    export NET_ID NS_A NS_B NS_C NS_SW IP_A IP_B IP_C
    # teardown finds them here even if this function fails halfway
    echo "$NS_A $NS_B $NS_C $NS_SW" >"$BATS_TEST_TMPDIR/netns"
    ip netns add "$NS_SW"
    in_ns "$NS_SW" ip link add br0 type bridge
    in_ns "$NS_SW" ip link set br0 up
    local h ns ip
    for h in A B C; do
        ns=NS_$h ip=IP_$h
        ip netns add "${!ns}"
        # eth0 on the host, its peer (named after the host) on the switch
        ip link add eth0 netns "${!ns}" type veth peer name "$h" netns "$NS_SW"
        in_ns "$NS_SW" ip link set "$h" master br0 up
        in_ns "${!ns}" ip addr add "${!ip}/24" dev eth0
        in_ns "${!ns}" ip link set eth0 up
        in_ns "${!ns}" ip link set lo up
    done
    # links up (the bridge forwards at once: no STP)
    for h in A B C; do
        retry 50 0.1 eval "on $h ip -o link show dev eth0 | grep -q 'state UP'"
    done
}

# on H CMD...: CMD on host H, in the foreground
on() {
    local ns=NS_$1
    shift
    in_ns "${!ns}" "$@"
}

# spawn_on H CMD...: start CMD on host H in the background, with the
# caller's redirections; SPAWNED is its pid (nsenter execs CMD in place; a
# background `on` would be a subshell's pid)
spawn_on() {
    local ns=NS_$1
    shift
    # nsenter itself, not in_ns: a function in the background is a subshell
    nsenter --net="/run/netns/${!ns}" -- "$@" &
    SPAWNED=$!
}

# host_pids H: every process on host H
host_pids() {
    local ns=NS_$1
    ip netns pids "${!ns}" 2>/dev/null
}

# kill_host H: the host dies: SIGKILL to every process on it; waits until
# they are gone.
kill_host() {
    local p pids
    pids=$(host_pids "$1")
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null
    for p in $pids; do retry 100 0.05 gone "$p" || return 1; done
}

# hosts_down: kill what is left on the hosts, then delete them (which
# deletes their links). Never fails: teardown's last step.
hosts_down() {
    [ -f "$BATS_TEST_TMPDIR/netns" ] || return 0
    local ns p pids
    for ns in $(cat "$BATS_TEST_TMPDIR/netns"); do
        [ -e "/run/netns/$ns" ] || continue
        pids=$(ip netns pids "$ns" 2>/dev/null)
        if [ -n "$pids" ]; then
            echo "hosts_down: killing what was left on $ns: $pids" >&2
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null
            for p in $pids; do retry 100 0.05 gone "$p" || true; done
        fi
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -f "$BATS_TEST_TMPDIR/netns"
}

# host_redis: redis-server on host C, on C's address (the test's own
# settings: no persistence) and on a unix socket for rcli from here, with a
# password as scripts/redis sets one (requirepass, in a config file of its
# own, never on its command line). Exports REDIS_DIR REDIS_SOCK REDIS_PID
# REDIS_URL (redis://:<password>@C:6379/0, what every host uses); stop_redis
# (queue.bash) stops it.
host_redis() {
    REDIS_DIR=$(mktemp -d "$TEST_TMP/redis.XXXXXX")
    REDIS_SOCK=$REDIS_DIR/redis.sock
    (umask 077 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' >"$REDIS_DIR/password")
    REDIS_URL=redis://:$(redis_password)@$IP_C:6379/0
    export REDIS_DIR REDIS_SOCK REDIS_URL
    (umask 077 && cat >"$REDIS_DIR/redis.conf") <<CONF
bind $IP_C
port 6379
unixsocket $REDIS_SOCK
unixsocketperm 700
dir $REDIS_DIR
logfile $REDIS_DIR/redis.log
save ""
appendonly no
protected-mode no
maxmemory 256mb
maxmemory-policy noeviction
requirepass $(redis_password)
CONF
    spawn_on C redis-server "$REDIS_DIR/redis.conf" >"$REDIS_DIR/redis.out" 2>&1 3>&- </dev/null
    REDIS_PID=$SPAWNED
    export REDIS_PID
    echo "$REDIS_PID" >"$REDIS_DIR/test.pid"
    retry 100 0.05 redis_up || { cat "$REDIS_DIR/redis.out" "$REDIS_DIR/redis.log" >&2; return 1; }
}

# host_runner H NAME [ARGS...]: a queue-runner of the build under test on
# host H (named NAME, so its id says which host), on the shared Redis, with
# the caller's RUNNER_LEASE; waits for `ready`. Sets RUNNER_PID RUNNER_LOG;
# stop_runners (queue.bash) stops it.
host_runner() {
    local h=$1 name=$2 dir
    shift 2
    dir=$(mktemp -d "$TEST_TMP/runner.XXXXXX")
    RUNNER_LOG=$dir/runner.log
    spawn_on "$h" env REDIS_URL="$REDIS_URL" RUNNER_LEASE="${RUNNER_LEASE:-10}" \
        "$GW_BIN/queue-runner" -n "$name" "$@" >"$RUNNER_LOG" 2>&1 3>&- </dev/null
    RUNNER_PID=$SPAWNED
    RUNNER_PIDS+=("$RUNNER_PID")
    RUNNER_DIRS+=("$dir")
    retry 200 0.05 grep -q ' - INFO - ready: ' "$RUNNER_LOG" ||
        { echo "runner on $h not ready:" >&2; cat "$RUNNER_LOG" >&2; return 1; }
}

# host_gateway H [VAR=value...]: scripts/gateway on host H, on H's address
# port 8080, no TLS, its state in a new dir, on the shared Redis, signing
# with TOKEN_KEYS (the caller's, shared by every gateway). Sets GW_PID
# GW_STATE BASE AUTH GW_TOKEN_KEYS as start_gateway does, so `http`, `api`,
# `submit` and stop_route_gateway work (requests go through `curl`, which
# the suite runs on a host). Extra settings (GW_REMOTE_ROUTES=...) as
# arguments.
host_gateway() {
    local h=$1 ip=IP_$1
    shift
    GW_STATE=$(mktemp -d "$TEST_TMP/gw.XXXXXX")
    BASE=http://${!ip}:8080
    spawn_on "$h" env GW_STATE="$GW_STATE" GW_BIND="${!ip}" GW_PORT=8080 GW_TLS_PORT=0 \
        GW_CGI_BIN="$GW_CGI_BIN" GW_PROCS=2 GW_WORKERS=1 REDIS_URL="$REDIS_URL" \
        TOKEN_KEYS="$TOKEN_KEYS" DATABASE_URL=postgresql:///none "$@" \
        "$REPO/scripts/gateway" >"$GW_STATE/gateway.out" 2>&1 3>&- </dev/null
    GW_PID=$SPAWNED
    GW_TOKEN_KEYS=$TOKEN_KEYS
    AUTH="Authorization: Bearer $(token 0 admin)"
    export GW_PID GW_STATE BASE AUTH GW_TOKEN_KEYS
    # /api/health: a route lighttpd runs itself here (hello may be remote)
    if ! retry 100 0.1 answers "$BASE/api/health" '{"status":"ok"}'; then
        echo "gateway on $h did not start:" >&2
        cat "$GW_STATE/gateway.out" "$GW_STATE/log/error.log" >&2
        return 1
    fi
}

# fcgi_request HOST ADDR PORT PATH: one FastCGI GET of PATH, sent from
# host HOST straight to the program at ADDR:PORT (no lighttpd), as lighttpd
# would send it. Prints what the program answered (its CGI headers and
# body), or "closed without an answer" when it shut the connection.
fcgi_request() {
    on "$1" "$PY" - "$2" "$3" "$4" <<'PY'
import socket, struct, sys

addr, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def record(kind, content, rid=1):
    return struct.pack(">BBHHBx", 1, kind, rid, len(content), 0) + content

def pair(k, v):
    k, v = k.encode(), v.encode()
    return bytes([len(k)]) + bytes([len(v)]) + k + v

params = b"".join(pair(k, v) for k, v in [
    ("REQUEST_METHOD", "GET"), ("REQUEST_URI", path), ("SCRIPT_NAME", path),
    ("QUERY_STRING", ""), ("SERVER_PROTOCOL", "HTTP/1.1"), ("CONTENT_LENGTH", "0"),
    ("REMOTE_ADDR", "127.0.0.1"), ("SERVER_NAME", "test"),
    # what lighttpd adds once the gateway's authorizer let a request through
    ("AUTH_SUB", "0"), ("AUTH_SCOPE", "admin")])
s = socket.create_connection((addr, port), timeout=5)
s.sendall(record(1, struct.pack(">HB5x", 1, 0)) + record(4, params) + record(4, b"")
          + record(5, b""))
data = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except ConnectionResetError:
    pass
out = b""
while len(data) >= 8:
    _, kind, _, n, pad = struct.unpack(">BBHHB", data[:7])
    if kind == 6:
        out += data[8:8 + n]
    data = data[8 + n + pad:]
sys.stdout.write(out.decode(errors="replace").replace("\r", "") if out else "closed without an answer\n")
PY
}

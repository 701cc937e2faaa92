#!/usr/bin/env bats
# `make install`, and a host's own lighttpd serving the API after one conf
# file is enabled: Debian's stock /etc/lighttpd/lighttpd.conf, copied into a
# temp root with its paths and port moved there and nothing else changed
# (it drops to www-data, as on a real host), plus our include, enabled the
# way lighty-enable-mod does (a symlink in conf-enabled/). Once with the
# FastCGI include (50-apistack.conf), once with the CGI-only one
# (50-apistack-cgi.conf: mod_cgi, a process per request). Each passes the
# same smoke tests: hello, a user registered and signed in, a task run by
# a queue runner, the refusals, and the host's own page left alone.
#
# The route programs and tools are the build under test (GW_CGI_BIN,
# GW_BIN) copied over the installed ones, so the ASan run checks them too.

load helpers
load queue
load pg

setup() {
    ROOT=$(mktemp -d "$TEST_TMP/dropin.XXXXXX")
    LIBDIR=$ROOT/usr/local/lib/apistack
    SETTINGS=$ROOT/etc/apistack/apistack.env
    LT_PID=
}

teardown() {
    if [ -n "$LT_PID" ]; then
        kill -INT "$LT_PID" 2>/dev/null
        retry 100 0.05 eval "! kill -0 $LT_PID 2>/dev/null" || kill -KILL "$LT_PID" 2>/dev/null
    fi
    queue_teardown
    stop_pg
}

# as_host_user CMD...: run as lighttpd's user on Debian
as_www() { setpriv --reuid=www-data --regid=www-data --clear-groups -- "$@"; }

# reachable PATH: www-data may search every directory up to PATH (temp dirs
# are 0700); the services under test live there
reachable() {
    local d
    d=$(cd "$1" && pwd)
    while [ "$d" != / ]; do
        as_www test -x "$d" || chmod o+x "$d"
        d=$(dirname "$d")
    done
}

# install_tree: make install into ROOT (the installed files name ROOT's
# paths: PREFIX and friends, not DESTDIR), then the build under test over it
install_tree() {
    run -0 make -s -C "$REPO" install PREFIX="$ROOT/usr/local" SYSCONFDIR="$ROOT/etc" \
        LOCALSTATEDIR="$ROOT/var" SYSTEMDDIR="$ROOT/lib/systemd/system"
    cp "$GW_CGI_BIN"/* "$LIBDIR/cgi-bin/"
    cp "$GW_BIN"/* "$LIBDIR/bin/"
}

# stock_conf: Debian's lighttpd.conf in ROOT, its paths and port moved
# there, conf-enabled/ empty. Each substitution must have matched.
stock_conf() {
    PORT=$(free_port)
    mkdir -p "$ROOT/etc/lighttpd/conf-enabled" "$ROOT/var/www/html" "$ROOT/var/log/lighttpd" \
        "$ROOT/var/cache/lighttpd/uploads" "$ROOT/run"
    chown www-data: "$ROOT/var/log/lighttpd" "$ROOT/var/cache/lighttpd/uploads"
    reachable "$ROOT"
    echo '<html><body>the host page</body></html>' >"$ROOT/var/www/html/index.html"
    local conf=$ROOT/etc/lighttpd/lighttpd.conf
    sed -e "s|\"/var/www/html\"|\"$ROOT/var/www/html\"|" \
        -e "s|\"/var/cache/lighttpd/uploads\"|\"$ROOT/var/cache/lighttpd/uploads\"|" \
        -e "s|\"/var/log/lighttpd/error.log\"|\"$ROOT/var/log/lighttpd/error.log\"|" \
        -e "s|\"/run/lighttpd.pid\"|\"$ROOT/run/lighttpd.pid\"|" \
        -e "s|^server.port *= 80\$|server.port = $PORT|" \
        -e "s|\"/etc/lighttpd/conf-enabled/\*.conf\"|\"$ROOT/etc/lighttpd/conf-enabled/*.conf\"|" \
        /etc/lighttpd/lighttpd.conf >"$conf"
    # every path of the stock file moved (the helper scripts under
    # /usr/share/lighttpd stay), and the port
    run grep -nE '"/(var|run|etc)/' "$conf"
    assert_failure
    grep -q "^server.port = $PORT\$" "$conf"
    grep -q "^include \"$ROOT/etc/lighttpd/conf-enabled/\*.conf\"\$" "$conf"
    grep -q '^server.username *= "www-data"' "$conf"
}

# services: Redis and PostgreSQL for the host (reachable by www-data), the
# settings file the include made on its first read, edited as an admin
# would (Redis and PostgreSQL addresses), the migrations applied
services() {
    start_redis
    start_pg --bare
    reachable "$PG_DIR/run"
    chmod 0777 "$PG_DIR/run/.s.PGSQL.5432"
    REDIS_TCP=$(redis_tcp_url 0)
}

# enable NAME: what lighty-enable-mod NAME does, in ROOT
enable() {
    ln -s "../conf-available/50-$1.conf" "$ROOT/etc/lighttpd/conf-enabled/50-$1.conf"
}

start_host_lighttpd() {
    local conf=$ROOT/etc/lighttpd/lighttpd.conf
    # lighttpd's own check reads the include: the host is prepared then
    run -0 lighttpd -tt -f "$conf"
    [ -s "$SETTINGS" ]
    # a new settings file: fresh keys, root's, readable by www-data's group only
    run -0 stat -c '%U %G %a' "$SETTINGS"
    assert_output "root www-data 640"
    grep -Eq '^TOKEN_KEYS=k[0-9]{8}:[A-Za-z0-9_-]{43}$' "$SETTINGS"
    grep -Eq '^FERNET_KEYS=[A-Za-z0-9_-]{43}=$' "$SETTINGS"
    run -0 stat -c '%U %a' "$ROOT/var/lib/apistack/sock"
    assert_output "www-data 700"
    # (not sed: a URL's "&" is sed's "what matched")
    grep -vE '^(REDIS_URL|DATABASE_URL)=' "$SETTINGS" >"$SETTINGS.new"
    printf 'REDIS_URL=%s\nDATABASE_URL=%s\n' "$REDIS_TCP" "$DATABASE_URL" >>"$SETTINGS.new"
    cat "$SETTINGS.new" >"$SETTINGS" # keeps its owner and mode
    rm "$SETTINGS.new"
    run -0 env DATABASE_URL="$DATABASE_URL" MIGRATIONS_DIR="$LIBDIR/sql" "$LIBDIR/bin/migrate"

    # as systemd starts it: an environment of its own, not the test's
    env -i PATH="$PATH" ASAN_OPTIONS="${ASAN_OPTIONS:-}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}" \
        setsid lighttpd -D -f "$conf" >"$ROOT/lighttpd.out" 2>&1 </dev/null &
    LT_PID=$!
    BASE=http://127.0.0.1:$PORT
    if ! retry 100 0.1 answers "$BASE/api/hello/world" '{"message":"Hello, world!"}'; then
        cat "$ROOT/lighttpd.out" "$ROOT/var/log/lighttpd/error.log" >&2
        return 1
    fi
    # a queue runner as the systemd unit runs it: the settings file, www-data
    local k
    RUNNER_ENV=()
    for k in REDIS_URL DATABASE_URL; do RUNNER_ENV+=("$k=$(sed -n "s/^$k=//p" "$SETTINGS")"); done
    RUNNER_LOG=$ROOT/runner.log
    env "${RUNNER_ENV[@]}" METRICS_DIR="$ROOT/var/lib/apistack/metrics" \
        setpriv --reuid=www-data --regid=www-data --clear-groups -- \
        "$LIBDIR/bin/queue-runner" -c 1 >"$RUNNER_LOG" 2>&1 </dev/null &
    RUNNER_PIDS+=("$!")
    retry 200 0.05 grep -q 'ready' "$RUNNER_LOG"
}

# smoke: the hello/users/tasks smoke tests through the host's lighttpd
smoke() {
    run -0 curl -sS -i "$BASE/api/hello/world"
    assert_line --regexp '^HTTP/1.1 200'
    assert_line --partial 'Content-Type: application/json'
    assert_line --partial "Content-Security-Policy: default-src 'none'"
    assert_line '{"message":"Hello, world!"}'

    # a user registers (public), signs in, and reads itself with the token
    local name=dave$RANDOM
    run -0 curl -sS -o /dev/null -w '%{http_code}' "$BASE/api/users" \
        -d "{\"username\":\"$name\",\"email\":\"$name@example.com\",\"password\":\"12345678\"}"
    assert_output 201
    run -0 curl -sS "$BASE/api/token" -d grant_type=password -d "username=$name" -d password=12345678
    local tok
    tok=$(sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p' <<<"$output")
    [ -n "$tok" ]
    run -0 curl -sS -H "Authorization: Bearer $tok" "$BASE/api/users/me"
    assert_output --partial "\"username\":\"$name\""

    # a task: submitted over HTTP, run by the runner, its result read back
    run -0 curl -sS -H "Authorization: Bearer $tok" "$BASE/api/tasks/add" -d '{"args":[4,4]}'
    local id
    id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$output")
    [[ $id =~ $UUID_RE ]]
    run -0 curl -sS -H "Authorization: Bearer $tok" "$BASE/api/tasks/$id?wait=10"
    assert_output --partial '"status":"SUCCESS","result":8'

    # refusals, as JSON: no token, a forged one, lighttpd's own 404
    run -0 curl -sS -i "$BASE/api/users/me"
    assert_line --regexp '^HTTP/1.1 401'
    assert_line --partial 'WWW-Authenticate: Bearer'
    assert_line '{"detail":"Not authenticated"}'
    run -0 curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${tok}x" "$BASE/api/users/me"
    assert_output 401
    run -0 curl -sS -i -H "Authorization: Bearer $tok" "$BASE/api/nothing-here"
    assert_line --regexp '^HTTP/1.1 404'
    assert_line --partial 'Content-Type: application/json'

    # /metrics for loopback, the docs, and the host's own page untouched
    # (route programs under CGI record no request metrics: a process per
    # request; the runner's and the queues' are there in both)
    run -0 curl -sS "$BASE/metrics"
    assert_line 'runners_alive 1'
    assert_line --regexp '^tasks_total\{.*state="SUCCESS".*\} [1-9]'
    run -0 curl -sS -o /dev/null -w '%{http_code} %{content_type}' "$BASE/docs/"
    assert_output --regexp '^200 text/html'
    run -0 curl -sS -o /dev/null -w '%{http_code}' "$BASE/openapi.json"
    assert_output 200
    run -0 curl -sS -i "$BASE/"
    assert_line --regexp '^HTTP/1.1 200'
    assert_line '<html><body>the host page</body></html>'
    refute_line --partial 'Content-Security-Policy'
}

@test "make install DESTDIR=: everything under DESTDIR, naming the final paths" {
    local d=$ROOT/destdir
    run -0 make -s -C "$REPO" install DESTDIR="$d"
    local lib=$d/usr/local/lib/apistack f
    for f in bin/queue-runner bin/migrate bin/taskctl bin/qrunctl cgi-bin/auth cgi-bin/hello \
        cgi-bin/users cgi-bin/tasks scripts/gateway scripts/setup scripts/lighttpd-site \
        scripts/backends lighttpd.conf lighttpd-routes.conf www/openapi.json sql/001_users.sql \
        cron/keepalive; do
        [ -e "$lib/$f" ] || { echo "missing $lib/$f"; false; }
    done
    [ -x "$lib/cgi-bin/hello" ]
    [ -x "$lib/scripts/gateway" ]
    [ -f "$d/etc/lighttpd/conf-available/50-apistack.conf" ]
    [ -f "$d/etc/lighttpd/conf-available/50-apistack-cgi.conf" ]
    # nothing outside DESTDIR, and no file names DESTDIR
    run grep -rl "$d" "$d"
    assert_failure
    run -0 grep -h '^include_shell' "$d/etc/lighttpd/conf-available/50-apistack.conf"
    assert_output 'include_shell "/usr/local/lib/apistack/scripts/lighttpd-site"'
    # the installed gateway runs from its own tree as from the checkout
    run -0 env GW_STATE="$ROOT/state" GW_TLS_PORT=0 "$lib/scripts/gateway" -t
}

@test "a stock Debian lighttpd serves the API once 50-apistack.conf is enabled" {
    install_tree
    stock_conf
    services
    enable apistack
    start_host_lighttpd
    smoke
    # lighttpd spawned the route programs, as its own user
    run -0 pgrep -u www-data -f "^$LIBDIR/cgi-bin/users"
    # the secrets: in no configuration lighttpd holds, nor its environment;
    # each a file the route programs' group reads, and a route program gets
    # the paths of those it reads only (doc/secrets.md)
    local tk s=$ROOT/var/lib/apistack/secrets/routes p
    tk=$(sed -n 's/^TOKEN_KEYS=k[0-9]*://p' "$SETTINGS")
    run -0 lighttpd -p -f "$ROOT/etc/lighttpd/lighttpd.conf"
    assert_output --partial "\"TOKEN_KEYS_FILE\" => \"$s/TOKEN_KEYS\""
    refute_output --partial "$tk"
    refute_output --partial "$(redis_password)"
    run -0 stat -c '%U %G %a' "$s" "$s/TOKEN_KEYS" "$s/REDIS_URL"
    assert_output "root www-data 750
root www-data 640
root www-data 640"
    for p in $(pgrep -f "^lighttpd -D -f $ROOT/"); do
        run -1 grep -c -F -e "$tk" -e "$(redis_password)" "/proc/$p/environ"
    done
    run -0 pgrep -u www-data -n -f "^$LIBDIR/cgi-bin/users"
    run -0 tr '\0' '\n' <"/proc/$output/environ"
    assert_line "FERNET_KEYS_FILE=$s/FERNET_KEYS"
    assert_line "DATABASE_URL_FILE=$s/DATABASE_URL"
    refute_line --regexp '^(TOKEN_KEYS|FERNET_KEYS|DATABASE_URL|REDIS_URL)='
    refute_line --regexp '^TOKEN_KEYS_FILE='
    run -0 pgrep -u www-data -n -f "^$LIBDIR/cgi-bin/hello"
    run -0 tr '\0' '\n' <"/proc/$output/environ"
    refute_line --regexp '^(TOKEN_KEYS|FERNET_KEYS|DATABASE_URL|REDIS_URL)'
    # and nothing of ours runs as root
    run pgrep -u root -f "^$LIBDIR/(cgi-bin|bin)/"
    assert_failure
}

@test "a CGI-only host: the same binaries under mod_cgi (50-apistack-cgi.conf)" {
    install_tree
    stock_conf
    services
    enable apistack-cgi
    start_host_lighttpd
    smoke
    # no FastCGI process was spawned: each request ran and exited
    run pgrep -f "^$LIBDIR/cgi-bin/"
    assert_failure
    # the authorizer wrapped the route: a scope the token lacks is refused
    # before the route runs (403 from auth, not the route's answer)
    run -0 curl -sS -i -H "Authorization: Bearer $(TOKEN_KEYS=$(sed -n 's/^TOKEN_KEYS=//p' "$SETTINGS") \
        "$GW_BIN/tokenctl" issue --sub 1 --ttl 60)" "$BASE/api/users"
    assert_line --regexp '^HTTP/1.1 403'
    assert_line --partial 'error="insufficient_scope"'
}

@test "the CGI authorizer runs only route programs beside it, and clears identities a caller set" {
    install_tree
    local keys="k1:$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    # not a program of cgi-bin/: refused before anything runs
    run env -i PATH="$PATH" REQUEST_METHOD=GET REQUEST_URI=/api/hello/x TOKEN_KEYS="$keys" \
        "$LIBDIR/cgi-bin/auth" /bin/sh
    assert_failure 1
    assert_output --partial 'not a route program in'
    run env -i PATH="$PATH" REQUEST_METHOD=GET REQUEST_URI=/api/hello/x TOKEN_KEYS="$keys" \
        "$LIBDIR/cgi-bin/auth" "$LIBDIR/cgi-bin/auth"
    assert_failure 1
    assert_output --partial 'cannot wrap itself'
    # a route program that shows what it was given: its environment, its stdin
    printf '#!/bin/sh\nenv | grep -E "^(AUTH_|REQUEST_ID=)" | sort\necho "body: $(cat)"\n' \
        >"$LIBDIR/cgi-bin/show"
    chmod +x "$LIBDIR/cgi-bin/show"
    start_redis
    local tok
    tok=$(TOKEN_KEYS=$keys "$GW_BIN/tokenctl" issue --sub 7 --scope "read write" --ttl 60)
    cgi_auth() { # cgi_auth TARGET [VAR=value...]: POST "hi" through auth to show
        local target=$1
        shift
        printf hi | env -i PATH="$PATH" REQUEST_METHOD=POST REQUEST_URI="$target" CONTENT_LENGTH=2 \
            TOKEN_KEYS="$keys" REDIS_URL="$REDIS_URL" "$@" "$LIBDIR/cgi-bin/auth" "$LIBDIR/cgi-bin/show"
    }
    # identities a caller put in the environment never reach the route
    run -0 cgi_auth /api/hello/x AUTH_SUB=1 AUTH_SCOPE=admin AUTH_JTI=mine CORS_ORIGIN=evil
    refute_line --partial 'AUTH_'
    assert_line --regexp '^REQUEST_ID=[0-9a-f]{32}$'
    assert_line 'body: hi'
    # the token's, from the authorizer, do; the body is left for the route
    run -0 cgi_auth /api/hello/x AUTH_SUB=1 AUTH_JTI=mine HTTP_AUTHORIZATION="Bearer $tok"
    assert_line 'AUTH_SUB=7'
    assert_line 'AUTH_SCOPE=read write'
    assert_line --regexp '^AUTH_JTI=[0-9a-f-]{36}$'
    assert_line 'body: hi'
    # a refusal is the authorizer's answer; the route never runs
    run -0 cgi_auth /api/tasks/x
    assert_line --partial 'Status: 401'
    refute_line 'body: hi'
}

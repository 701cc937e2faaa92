#!/usr/bin/env bats
# `make run` as a developer runs it: in a fresh copy of the checkout (no
# var/), in the foreground of a "terminal" (a process group of its own, as
# a shell's job), on free ports. Where its secrets live and who gets them
# (doc/secrets.md), its Redis (a password, loopback only), the Python
# Celery URL it prints, its logs (no secret in them, mode 0640), the README's
# examples as printed, the dev users of scripts/seed, and its lifecycle
# (doc/running.md): Ctrl-C and SIGTERM stop it in order with no task lost or
# run twice, and a second `make run` from the same var/ is refused. One
# stack for the file, started again by the Ctrl-C test.

load helpers
load queue

setup_file() {
    # The checkout as a clone of it has it: its tracked and not ignored
    # files (uncommitted edits too: tests/mutate's copies are no git
    # checkouts), through a git dir of our own that tracks nothing; so no
    # var/ and no build.
    CHECKOUT=$(mktemp -d "$TEST_TMP/checkout.XXXXXX")
    local g
    g=$(mktemp -d "$TEST_TMP/git.XXXXXX")
    git init -q --bare "$g"
    git --git-dir="$g" --work-tree="$REPO" ls-files -z -co --exclude-standard |
        tar -C "$REPO" --null -T - -cf - | tar -C "$CHECKOUT" -xf -
    rm -rf "$g"
    # The build: the one under test (normal or ASan), its objects beside,
    # as if `make` had just built them here; `make -t` dates them in make's
    # order, so make run's own `make all` has nothing to do. (A build from
    # scratch would cost a minute of make test; make test builds these very
    # sources itself.)
    mkdir -p "$CHECKOUT/build"
    cp -r "$REPO/build/obj" "$CHECKOUT/build/obj"
    cp -r "$GW_CGI_BIN" "$CHECKOUT/cgi-bin"
    cp -r "$GW_BIN" "$CHECKOUT/bin"
    make -C "$CHECKOUT" -s -t all >/dev/null
    RUN_STATE=$CHECKOUT/var
    RUN_PORT=$(free_port)
    RUN_REDIS_PORT=$(free_port)
    export CHECKOUT RUN_STATE RUN_PORT RUN_REDIS_PORT
    start_make_run
}

teardown_file() {
    [ -n "${CHECKOUT:-}" ] || return 0
    local pgid
    pgid=$(cat "$CHECKOUT.pgid" 2>/dev/null) || pgid=
    if [ -n "$pgid" ] && ! gone "$pgid"; then
        kill -TERM -- "-$pgid" 2>/dev/null
        retry 600 0.1 gone "$pgid" || kill -KILL -- "-$pgid" 2>/dev/null
    fi
    # what a failed test may leave: processes of a stack (each holds the
    # lock: scripts/run gone, or a stack of a second make run), a bare Redis
    local p
    for p in $(lock_holders) $(cat "$CHECKOUT.extra" 2>/dev/null); do
        kill -TERM "$p" 2>/dev/null
    done
    retry 100 0.1 no_lock_holders || kill -KILL $(lock_holders) 2>/dev/null
    check_logs "$RUN_STATE"
}

# lock_holders: the processes that have var/run.lock open
lock_holders() {
    find /proc/[0-9]*/fd -lname "$RUN_STATE/run.lock" 2>/dev/null | cut -d/ -f3 | sort -un
}
no_lock_holders() { [ -z "$(lock_holders)" ]; }

# nofds CMD...: exec CMD with no descriptor above 2: bats waits for every
# process that holds one of its pipes, and a stack a failed test leaves
# behind must not hang the suite
nofds() {
    local fd
    for fd in /proc/$BASHPID/fd/*; do
        fd=${fd##*/}
        [ "$fd" -le 2 ] || eval "exec $fd>&-"
    done
    exec "$@"
}

# start_make_run: `make run` in CHECKOUT as a terminal's shell starts a
# job: a process group of its own (set -m) that a terminal's Ctrl-C reaches
# as a whole, with SIGINT and SIGQUIT at their defaults (perl sets them),
# even when this suite runs with them ignored (a non-interactive shell's
# `&` ignores them: tests/run's streams). Its output goes to $CHECKOUT.out
# (appended: one stack after the other), its group id to $CHECKOUT.pgid.
# Waits for "run: ready at".
start_make_run() {
    local from
    from=$(wc -l <"$CHECKOUT.out" 2>/dev/null) || from=0
    (
        set -m
        cd "$CHECKOUT"
        nofds perl -e '$SIG{INT} = $SIG{QUIT} = "DEFAULT"; exec { $ARGV[0] } @ARGV or die "$!\n"' \
            env -u GW_CGI_BIN -u GW_BIN PORT="$RUN_PORT" GW_TLS_PORT=0 REDIS_PORT="$RUN_REDIS_PORT" \
            make run >>"$CHECKOUT.out" 2>&1 </dev/null &
        echo $! >"$CHECKOUT.pgid"
    )
    if ! retry 900 0.1 ready_since "$from"; then
        tail -n +"$((from + 1))" "$CHECKOUT.out" >&2
        return 1
    fi
}

# ready_since LINE: "run: ready at" is in $CHECKOUT.out after line LINE
ready_since() { tail -n +"$((${1} + 1))" "$CHECKOUT.out" | grep -q '^run: ready at '; }

# run_pid: scripts/run's pid, as var/run.lock names it
run_pid() { head -n 1 "$RUN_STATE/run.lock"; }

# rcli (queue.bash's, for meta, status_is, inflight_count): make run's Redis
rcli() {
    REDISCLI_AUTH=$(cat "$RUN_STATE/secrets/redis-password") redis-cli -s "$RUN_STATE/redis/redis.sock" "$@"
}

# login USER PASSWORD: a bearer token from the stack's /api/token
login() {
    curl -s -m 10 "http://127.0.0.1:$RUN_PORT/api/token" -d grant_type=password -d "username=$1" \
        --data-urlencode "password=$2" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}

# secret_values: every secret of the stack, one a line
secret_values() {
    cat "$RUN_STATE/secrets/redis-password" "$RUN_STATE/secrets/database-url" \
        "$RUN_STATE/secrets/fernet-keys"
    echo
    cut -d: -f2 "$RUN_STATE/secrets/token-keys"
}

# lighttpd_pids: the master (the gateway's pid) and its workers
lighttpd_pids() {
    local p
    for p in $(pgrep -f "^lighttpd -D -f $CHECKOUT/lighttpd.conf"); do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "GW_STATE=$RUN_STATE" && echo "$p"
    done
    return 0
}

# route_env PROGRAM: the environment of one of make run's PROGRAM processes
route_env() {
    local p
    for p in $(pgrep -f "^$CHECKOUT/cgi-bin/$1\$"); do
        if tr '\0' '\n' <"/proc/$p/environ" | grep -q "^METRICS_DIR=$RUN_STATE/"; then
            tr '\0' '\n' <"/proc/$p/environ"
            return 0
        fi
    done
    return 1
}

@test "make run's secrets are files under var/secrets, 0600 in a 0700 directory" {
    run -0 stat -c '%a' "$RUN_STATE/secrets"
    assert_output 700
    local f
    for f in redis-password redis-url database-url token-keys fernet-keys admin-password; do
        run -0 stat -c '%a' "$RUN_STATE/secrets/$f"
        assert_equal "$f: $output" "$f: 600"
    done
    run -0 cat "$RUN_STATE/secrets/redis-url"
    assert_output "unix://:$(cat "$RUN_STATE/secrets/redis-password")@$RUN_STATE/redis/redis.sock"
}

@test "no secret is in the environment of lighttpd's master or workers" {
    run -0 lighttpd_pids
    local pids=$output p
    # the master and GW_WORKERS (nproc) workers
    assert_equal "$(wc -w <<<"$pids")" "$(($(nproc) + 1))"
    for p in $pids; do
        run -0 tr '\0' '\n' <"/proc/$p/environ"
        refute_line --regexp '^(REDIS_URL|DATABASE_URL|TOKEN_KEYS|FERNET_KEYS)(_FILE)?='
        refute_line --partial "$(cat "$RUN_STATE/secrets/redis-password")"
        run -1 grep -c -F -f <(secret_values) "/proc/$p/environ"
        assert_output 0
    done
}

@test "each route program gets the paths of the secrets it reads, and no other" {
    local s=$RUN_STATE/secrets/routes
    run -0 route_env auth
    assert_line "TOKEN_KEYS_FILE=$s/TOKEN_KEYS"
    assert_line "REDIS_URL_FILE=$s/REDIS_URL"
    refute_line --regexp '^(DATABASE_URL|FERNET_KEYS)'
    run -0 route_env users
    assert_line "DATABASE_URL_FILE=$s/DATABASE_URL"
    assert_line "FERNET_KEYS_FILE=$s/FERNET_KEYS"
    refute_line --regexp '^TOKEN_KEYS'
    run -0 route_env tasks
    assert_line "REDIS_URL_FILE=$s/REDIS_URL"
    refute_line --regexp '^(DATABASE_URL|TOKEN_KEYS|FERNET_KEYS)'
    run -0 route_env hello
    refute_line --regexp '^(REDIS_URL|DATABASE_URL|TOKEN_KEYS|FERNET_KEYS)'
    # and the values are no one's environment
    run -0 route_env users
    run -1 grep -c -F -f <(secret_values) <<<"$output"
    assert_output 0
}

@test "the queue runner gets Redis only: no DATABASE_URL, no keys" {
    local p found=0
    for p in $(pgrep -f "^bin/queue-runner"); do
        tr '\0' '\n' <"/proc/$p/environ" | grep -qx "GW_STATE=$RUN_STATE" || continue
        found=1
        run -0 tr '\0' '\n' <"/proc/$p/environ"
        assert_line "REDIS_URL_FILE=$RUN_STATE/secrets/redis-url"
        refute_line --regexp '^(DATABASE_URL|TOKEN_KEYS|FERNET_KEYS)'
    done
    assert_equal "$found" 1
}

@test "make run's Redis: refused without the password, on loopback only; the Celery URL it prints works" {
    run -0 env -u REDISCLI_AUTH redis-cli -s "$RUN_STATE/redis/redis.sock" ping
    assert_output --partial NOAUTH
    run -0 env -u REDISCLI_AUTH redis-cli -h 127.0.0.1 -p "$RUN_REDIS_PORT" ping
    assert_output --partial NOAUTH
    run -0 ss -Hltn "sport = :$RUN_REDIS_PORT"
    assert_equal "${#lines[@]}" 1
    assert_output --regexp "127\.0\.0\.1:$RUN_REDIS_PORT "
    # the URL as printed, its $(cat ...) run by a shell as the developer's
    # would, handed to Python's Celery: our runner runs the task
    local printed url
    printed=$(grep -A1 'Python Celery: broker and backend' "$CHECKOUT.out" | tail -n 1)
    url=$(eval "printf '%s' $printed")
    [[ $url == redis://:*@127.0.0.1:$RUN_REDIS_PORT/0 ]] || fail "printed: $printed"
    run -0 env CELERY_URL="$url" "$PY" -c 'import os
from celery import Celery
app = Celery(broker=os.environ["CELERY_URL"], backend=os.environ["CELERY_URL"])
print(app.send_task("tasks.add", (20, 22)).get(timeout=10))'
    assert_output 42
    # and the taskctl line it prints
    run -0 env REDIS_URL_FILE="$RUN_STATE/secrets/redis-url" "$GW_BIN/taskctl" call add 4 4
    assert_output 8
}

@test "secrets in query strings reach no log; every log is 0640" {
    local tag=q-$$-$RANDOM
    run -0 curl -s -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$RUN_PORT/api/hello/world?password=$tag-pw&access_token=$tag-tok"
    assert_output 200
    run -0 curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RUN_PORT/nope?api_key=$tag-key"
    assert_output 404
    kill -HUP "$(lighttpd_pids | head -n 1)" # lighttpd writes its access log out
    retry 50 0.1 grep -q 'nope?api_key=\*\*\*' "$RUN_STATE/log/access.log"
    run grep -rF -- "$tag" "$RUN_STATE/log" "$RUN_STATE/redis/redis.log" "$RUN_STATE/pg/postgres.log"
    assert_failure 1
    local f
    for f in "$RUN_STATE"/log/{access,error,routes,runner}.log "$RUN_STATE/redis/redis.log" \
        "$RUN_STATE/pg/postgres.log"; do
        run -0 stat -c '%a' "$f"
        assert_equal "$f: $output" "$f: 640"
    done
}

# readme_examples: the commands after "Then:" in the README's "Two commands"
readme_examples() {
    awk '/^## Two commands/ { s = 1 } s && /^```sh$/ { n++; next } s && n == 2 && /^```$/ { exit }
        s && n == 2 { print }' "$CHECKOUT/README.md"
}

@test "the README's examples after make run work as printed (port adapted)" {
    local script
    script=$(readme_examples | sed "s/localhost:8080/localhost:$RUN_PORT/g")
    [[ $script == *"bin/taskctl call add 4 4"* ]] || fail "no examples found: $script"
    # <id> is the id the POST before it answered; each curl's body on a
    # line of its own, its status into $codes
    script=$(awk '!/^[[:space:]]*#/ && /<id>/ && !done {
            print "id=$(sed -n '\''s/.*\"id\":\"\\([^\"]*\\)\".*/\\1/p'\'' \"$last\")"
            gsub(/<id>/, "'\''\"$id\"'\''"); done = 1 } { print }' <<<"$script")
    local codes=$BATS_TEST_TMPDIR/codes
    run -0 env codes="$codes" last="$BATS_TEST_TMPDIR/last" bash -c '
        curl() {
            local out
            out=$(command curl -w "\n%{http_code}" "$@")
            printf "%s\n" "${out%$'\''\n'\''*}" | tee "$last"
            printf "%s\n" "${out##*$'\''\n'\''}" >>"$codes"
        }
        cd "$1"
        '"$script" _ "$CHECKOUT" <<<"SELECT username FROM users WHERE id = 5;"
    assert_line --index 0 '{"message":"Hello, world!"}'
    assert_line --index 1 --regexp '^\{"id":5,"username":"dave",.*"email":"dave@example.com"'
    assert_line --index 2 --regexp '^\{"id":5,"username":"dave",'
    assert_line --index 3 --regexp '^\{"id":"[0-9a-f-]{36}","task":"tasks.add","status":"PENDING"\}$'
    assert_line --index 4 --regexp '^\{"id":"[0-9a-f-]{36}",.*"status":"SUCCESS","result":8,'
    assert_line --index 5 '{"detail":"Not authenticated"}'
    assert_line --index 6 8
    assert_line --index 9 ' dave'
    run -0 cat "$codes"
    assert_equal "$(echo $output)" "200 201 200 200 202 200 401"
}

# seed URL: scripts/seed as make run calls it
seed() {
    env DATABASE_URL_FILE="$RUN_STATE/secrets/database-url" GW_STATE="$RUN_STATE" \
        "$CHECKOUT/scripts/seed" "$1"
}

# psql_app SQL: make run's database
psql_app() { psql -X -q -tA -v ON_ERROR_STOP=1 "$(cat "$RUN_STATE/secrets/database-url")" -c "$1"; }

@test "scripts/seed: sample users, an admin with a generated password; again, it registers only who is missing" {
    run -0 stat -c '%a' "$RUN_STATE/secrets/admin-password"
    assert_output 600
    local pw u
    pw=$(cat "$RUN_STATE/secrets/admin-password")
    for u in alice:wonderland bob:canwefixit carol:higherfurther; do
        run -0 login "${u%%:*}" "${u#*:}"
        assert_output --regexp '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$'
    done
    run -0 curl -s "http://127.0.0.1:$RUN_PORT/api/token" -d grant_type=password -d username=admin \
        --data-urlencode "password=$pw"
    assert_output --partial '"scope":"admin"'
    # everyone there: no request at all (nothing answers at this URL)
    local dead=http://127.0.0.1:$(free_port) alice_id
    run -0 seed "$dead"
    alice_id=$(psql_app "SELECT id FROM users WHERE username = 'alice'")
    # carol gone, admin's scope taken: carol alone is registered again
    psql_app "DELETE FROM users WHERE username = 'carol'"
    psql_app "UPDATE users SET scopes = '{}' WHERE username = 'admin'"
    run -1 seed "$dead"
    assert_output "seed: creating carol: no answer from $dead"
    run -0 seed "http://127.0.0.1:$RUN_PORT"
    run -0 login carol higherfurther
    refute_output ''
    run -0 psql_app "SELECT scopes FROM users WHERE username = 'admin'"
    assert_output '{admin}'
    run -0 psql_app "SELECT id FROM users WHERE username = 'alice'"
    assert_output "$alice_id"
    run -0 psql_app "SELECT count(*) FROM users WHERE username IN ('alice', 'bob', 'carol', 'admin')"
    assert_output 4
    run -0 cat "$RUN_STATE/secrets/admin-password"
    assert_output "$pw"
}

@test "a second make run from the same var/ is refused at once, naming the running stack, and changes nothing" {
    local pid pgid metrics
    pid=$(run_pid)
    pgid=$(cat "$CHECKOUT.pgid")
    # the lock's holder is the running stack's scripts/run
    run -0 tr '\0' ' ' <"/proc/$pid/cmdline"
    assert_output --partial scripts/run
    run -0 ps -o pgid= -p "$pid"
    assert_equal "$(echo $output)" "$pgid"
    metrics=$(ls -i "$RUN_STATE/metrics" | sort)
    # other ports: the ports' check would not stop it
    local port2 redis2
    port2=$(free_port)
    redis2=$(free_port)
    # a changed source: the refused make run builds nothing either (the
    # running stack's programs are not relinked under it)
    local built
    built=$(stat -c %Y "$CHECKOUT/cgi-bin/hello")
    touch -r "$CHECKOUT/fcgi/hello.c" "$BATS_TEST_TMPDIR/hello.c.time"
    touch -d '+2 seconds' "$CHECKOUT/fcgi/hello.c"
    run -2 nofds timeout 60 env -u GW_CGI_BIN -u GW_BIN PORT="$port2" GW_TLS_PORT=0 REDIS_PORT="$redis2" \
        make -C "$CHECKOUT" --no-print-directory run
    assert_line "run: a stack is already running from $RUN_STATE (pid $pid, http://127.0.0.1:$RUN_PORT/); stop it first (Ctrl-C in its terminal, or kill $pid)"
    refute_output --partial stopping
    touch -r "$BATS_TEST_TMPDIR/hello.c.time" "$CHECKOUT/fcgi/hello.c"
    run -0 stat -c %Y "$CHECKOUT/cgi-bin/hello"
    assert_output "$built"
    # nothing changed: its metrics (not reset), its lock, no second Redis
    # or lighttpd, and it still answers
    run -0 ls -i "$RUN_STATE/metrics"
    assert_equal "$(sort <<<"$output")" "$metrics"
    run -0 run_pid
    assert_output "$pid"
    run -0 ss -Hltn "( sport = :$port2 or sport = :$redis2 )"
    assert_output ''
    run -0 curl -s -m 5 "http://127.0.0.1:$RUN_PORT/api/hello/world"
    assert_output '{"message":"Hello, world!"}'
    run -0 env REDIS_URL_FILE="$RUN_STATE/secrets/redis-url" "$CHECKOUT/bin/taskctl" call add 2 3
    assert_output 5
}

# stop_lines FROM: make run's "run: stopping: ..." and "run: stopped" lines
# after line FROM of its output, each cut to its first words, on one line
# ("run: still stopping", a further signal's answer, comes at any point)
stop_lines() {
    tail -n +"$(($1 + 1))" "$CHECKOUT.out" | grep -oE '^run: (stopping: [a-zA-Z]+ [a-zA-Z]+|stopped)' |
        tr '\n' ' '
}
ORDER='run: stopping: lighttpd stops run: stopping: the queue run: stopping: Redis writes run: stopped '


# refused: nothing accepts connections on make run's port any more
refused() { ! (exec 3<>"/dev/tcp/127.0.0.1/$RUN_PORT") 2>/dev/null; }

# sleep_task SECONDS: submit tasks.sleep as the seeded admin and wait until
# a worker runs it; prints its id
sleep_task() {
    local tok id
    tok=$(login admin "$(cat "$RUN_STATE/secrets/admin-password")")
    id=$(curl -s -m 10 -H "Authorization: Bearer $tok" -X POST \
        "http://127.0.0.1:$RUN_PORT/api/tasks/sleep" -d "{\"args\":[$1]}" |
        sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
    [ -n "$id" ] && retry 100 0.1 status_is "$id" STARTED && echo "$id"
}

@test "Ctrl-C while a task runs: stops in order, the result stored; the next start runs nothing twice and has the data" {
    local pgid pid id from t0 ms
    pgid=$(cat "$CHECKOUT.pgid")
    pid=$(run_pid)
    run -0 curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RUN_PORT/api/users" \
        -d '{"username":"erin","email":"erin@example.com","password":"erin-pass-1"}'
    assert_output 201
    run -0 sleep_task 5
    id=$output
    from=$(wc -l <"$CHECKOUT.out")
    t0=$(now_ms)
    # the terminal's Ctrl-C: SIGINT to the whole foreground group; and an
    # impatient second one
    kill -INT -- "-$pgid"
    sleep 0.3
    kill -INT -- "-$pgid"
    # lighttpd stops accepting first, while the runner drains: the task
    # still runs, and Redis and PostgreSQL are up for it
    retry 100 0.05 refused
    run -0 meta_status "$id"
    assert_output STARTED
    run -0 psql_app 'SELECT 1'
    assert_output 1
    retry 600 0.1 gone "$pgid"
    ms=$(($(now_ms) - t0))
    echo "# stop after Ctrl-C with a task of 5 s running: $ms ms" >&3
    [ "$ms" -ge 4000 ] || fail "stopped in $ms ms, before its task ended"
    run -0 stop_lines "$from"
    assert_output "$ORDER"
    run -0 tail -n +"$((from + 1))" "$CHECKOUT.out"
    assert_line --partial 'run: still stopping'
    refute_line --regexp '^run: .*killed'
    # every process of the stack is gone (each held the lock), PostgreSQL
    # shut down clean; the lock file still names the old stack
    run -0 flock -n "$RUN_STATE/run.lock" true
    run -0 tail -n 1 "$RUN_STATE/pg/postgres.log"
    assert_output --partial 'database system is shut down'
    run -0 run_pid
    assert_output "$pid"
    # the next start takes the stale lock
    start_make_run
    run -0 run_pid
    refute_output "$pid"
    run -0 meta "$id"
    assert_output --regexp '"status":"SUCCESS","result":5,'
    run -0 succeeded_lines "$RUN_STATE/log/runner.log" "$id"
    assert_output 1
    run -0 rcli lrange celery 0 -1
    refute_output --partial "$id"
    run -0 inflight_count
    assert_output 0
    run -0 grep -c 'database system was shut down at' "$RUN_STATE/pg/postgres.log"
    assert_output 2
    run -1 grep -E 'not properly shut down|interrupted|automatic recovery' "$RUN_STATE/pg/postgres.log"
    run -0 login erin erin-pass-1
    refute_output ''
}

@test "SIGTERM to make run's group while a task runs: the same order, the result stored, nothing left queued" {
    local pgid id from t0 ms
    pgid=$(cat "$CHECKOUT.pgid")
    run -0 sleep_task 3
    id=$output
    from=$(wc -l <"$CHECKOUT.out")
    t0=$(now_ms)
    kill -TERM -- "-$pgid"
    retry 600 0.1 gone "$pgid"
    ms=$(($(now_ms) - t0))
    echo "# stop after SIGTERM with a task of 3 s running: $ms ms" >&3
    run -0 stop_lines "$from"
    assert_output "$ORDER"
    run -0 flock -n "$RUN_STATE/run.lock" true
    # what the next start would find: Redis alone on the same data
    REDIS_DIR=$RUN_STATE/redis REDIS_PORT=0 REDIS_PASSWORD_FILE=$RUN_STATE/secrets/redis-password \
        nofds "$CHECKOUT/scripts/redis" </dev/null &
    local redis=$!
    echo "$redis" >>"$CHECKOUT.extra"
    retry 50 0.1 rcli ping
    run -0 meta "$id"
    assert_output --regexp '"status":"SUCCESS","result":3,'
    run -0 rcli lrange celery 0 -1
    refute_output --partial "$id"
    run -0 inflight_count
    assert_output 0
    rcli shutdown >/dev/null 2>&1 || true
    retry 50 0.1 gone "$redis"
}

@test "make run is refused while processes of an earlier stack still hold var/" {
    # as when scripts/run was killed with SIGKILL and left its processes:
    # a process holding the lock, the file naming a pid that is gone
    run -0 flock -n "$RUN_STATE/run.lock" true
    printf '%s\n%s\n' 999999999 "http://127.0.0.1:$RUN_PORT/" >"$RUN_STATE/run.lock"
    nofds flock "$RUN_STATE/run.lock" sleep 60 </dev/null &
    local holder=$!
    retry 50 0.1 bash -c '! flock -n "$1" true' _ "$RUN_STATE/run.lock"
    run -2 nofds timeout 60 env -u GW_CGI_BIN -u GW_BIN PORT="$RUN_PORT" GW_TLS_PORT=0 \
        REDIS_PORT="$RUN_REDIS_PORT" make -C "$CHECKOUT" --no-print-directory run
    assert_output --regexp "run: processes of an earlier stack still hold $RUN_STATE \(its pid 999999999 is gone; http://127.0.0.1:$RUN_PORT/\): .*\b$holder\b"
    kill "$holder"
}

#!/usr/bin/env bats
# scripts/redis, the Redis of `make run` and of every suite (start_redis):
# a password on the socket and on TCP (requirepass, from
# REDIS_PASSWORD_FILE), TCP on loopback only, a memory bound
# (REDIS_MAXMEMORY) with noeviction, and its files 0640.

load helpers
load queue

teardown() {
    stop_redis
}

@test "without the password redis-cli is refused (NOAUTH), on the socket and over TCP; with it, it works" {
    start_redis
    run -0 env -u REDISCLI_AUTH redis-cli -s "$REDIS_SOCK" get k
    assert_output --partial NOAUTH
    run -0 env -u REDISCLI_AUTH redis-cli -h 127.0.0.1 -p "$REDIS_PORT" set k v
    assert_output --partial NOAUTH
    # a wrong one: refused too
    run -0 env REDISCLI_AUTH=not-the-password-at-all redis-cli -s "$REDIS_SOCK" ping
    assert_output --partial WRONGPASS
    run -0 rcli set k v
    assert_output OK
    run -0 env REDISCLI_AUTH="$(redis_password)" redis-cli -h 127.0.0.1 -p "$REDIS_PORT" get k
    assert_output v
    # our programs and Python's redis client, from the URLs start_redis made
    run -1 taskctl status nope
    assert_output "taskctl: no task nope"
    REDIS_URL=$(redis_tcp_url 0) run -1 taskctl status nope
    assert_output "taskctl: no task nope"
    REDIS_URL="unix://$REDIS_SOCK" run -1 taskctl status nope
    assert_output --partial NOAUTH
    run -0 "$PY" -c 'import os, redis; print(redis.Redis.from_url(os.environ["CELERY_URL"]).get("k").decode())'
    assert_output v
    # the password is on no command line
    run -0 cat "/proc/$REDIS_PID/cmdline"
    refute_output --partial "$(redis_password)"
}

@test "TCP is on 127.0.0.1 only" {
    start_redis
    run -0 rcli config get bind
    assert_line --index 1 127.0.0.1
    run -0 rcli config get protected-mode
    assert_line --index 1 yes
    # what the kernel says: one TCP listener, on loopback
    run -0 ss -Hltnp "sport = :$REDIS_PORT"
    assert_equal "${#lines[@]}" 1
    assert_output --regexp "127\.0\.0\.1:$REDIS_PORT .*pid=$REDIS_PID,"
}

@test "maxmemory is REDIS_MAXMEMORY (256mb unless set) with noeviction: past it writes are refused, reads go on" {
    start_redis
    run -0 rcli config get maxmemory
    assert_line --index 1 268435456
    run -0 rcli config get maxmemory-policy
    assert_line --index 1 noeviction
    stop_redis

    REDIS_MAXMEMORY=2mb start_redis
    run -0 rcli config get maxmemory
    assert_line --index 1 2097152
    local big n answer refused=0
    big=$(head -c 100000 /dev/zero | tr '\0' x)
    for n in $(seq 1 60); do
        answer=$(rcli set "k$n" "$big")
        if [ "$answer" != OK ]; then refused=$n; break; fi
    done
    [ "$refused" -gt 1 ] || fail "no write refused (or the first): $answer"
    assert_equal "$answer" "OOM command not allowed when used memory > 'maxmemory'."
    # nothing was evicted, and reads still work
    run -0 rcli dbsize
    assert_output "$((refused - 1))"
    run -0 rcli strlen k1
    assert_output 100000
}

@test "a bad REDIS_MAXMEMORY, a short password or no REDIS_PASSWORD_FILE stops it with the reason" {
    local dir=$BATS_TEST_TMPDIR/r
    mkdir -p "$dir"
    printf 'short' >"$dir/pw"
    run -1 env -u REDIS_PASSWORD_FILE REDIS_DIR="$dir" "$REPO/scripts/redis"
    assert_output --partial "set REDIS_PASSWORD_FILE"
    run -1 env REDIS_DIR="$dir" REDIS_PASSWORD_FILE="$dir/pw" "$REPO/scripts/redis"
    assert_output --partial "16 characters or more"
    printf 'has space in it, sixteen+' >"$dir/pw"
    run -1 env REDIS_DIR="$dir" REDIS_PASSWORD_FILE="$dir/pw" "$REPO/scripts/redis"
    assert_output --partial "URL-safe"
    run -1 env REDIS_DIR="$dir" REDIS_PASSWORD_FILE= REDIS_MAXMEMORY='1; rm' "$REPO/scripts/redis"
    assert_output --partial "REDIS_MAXMEMORY: expected a size"
}

@test "its log and data files are 0640, its directory 0700" {
    start_redis
    rcli set k v >/dev/null
    retry 50 0.1 test -s "$REDIS_DIR/redis.log"
    run -0 stat -c '%a' "$REDIS_DIR"
    assert_output 700
    run -0 stat -c '%a %n' "$REDIS_DIR/redis.log"
    assert_output "640 $REDIS_DIR/redis.log"
    local f
    for f in $(find "$REDIS_DIR" -path '*appendonly*' -type f); do
        run -0 stat -c '%a' "$f"
        assert_equal "$f: $output" "$f: 640"
    done
}

@test "an ACL user in the URL is sent as AUTH user password, by the routes' library and its event loop" {
    start_redis
    local pw=acl-$$-$RANDOM-secret
    run -0 rcli acl setuser app on ">$pw" '~*' '&*' +@all
    assert_output OK
    REDIS_URL="unix://app:$pw@$REDIS_SOCK" run -1 taskctl status nope
    assert_output "taskctl: no task nope"
    REDIS_URL="redis://app:$pw@127.0.0.1:$REDIS_PORT/0" run -1 taskctl status nope
    assert_output "taskctl: no task nope"
    # the same password for the default user is wrong
    REDIS_URL="unix://:$pw@$REDIS_SOCK" run -1 taskctl status nope
    assert_output --partial "AUTH refused"
    # the tasks route's pub/sub (lib/aserve.c) logs in as app too: a long
    # poll on a task still running is answered as soon as the runner
    # publishes its result, not when the wait runs out
    start_gateway GW_PROCS=1 GW_TLS_PORT=0 REDIS_URL="unix://app:$pw@$REDIS_SOCK"
    REDIS_URL="unix://app:$pw@$REDIS_SOCK" start_runner -c 1
    submit sleep '{"args":[1]}'
    assert_equal "$status" 202
    SECONDS=0
    api GET "/api/tasks/$ID?wait=10"
    assert_equal "$(jget "$body" 'j["status"]')" SUCCESS
    [ "$SECONDS" -lt 5 ] || fail "answered after $SECONDS s"
    queue_teardown
}

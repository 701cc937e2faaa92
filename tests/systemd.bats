#!/usr/bin/env bats
# The systemd units (deploy/systemd/), as `make install` installs them: into
# a temp tree (PREFIX, SYSCONFDIR, LOCALSTATEDIR and SYSTEMDDIR under it, so
# the paths the units name exist), checked by systemd-analyze verify, and
# their command lines run the way systemd would run them: the settings file
# scripts/setup writes, the unit's Environment=, its User=, its KillSignal.
#
# Tested: the units load with no warning (syntax, every setting known, every
# executable there); the restart and stop policies; the runner's ExecStart
# with its environment and user runs tasks, writes its metrics where the
# sandbox lets it, and drains a running task to SUCCESS on KillSignal within
# TimeoutStopSec, its workers gone when it exits (KillMode=mixed signals
# the supervisor only); the migrate unit's commands make the settings file
# and apply the installed sql/; every system call, address family, written
# path and executable mapping of both programs' runs (strace) is allowed by
# their unit's sandbox.
# Not tested: systemd itself, which is not PID 1 here: Restart= and the
# start limit, the ordering, the sandbox as systemd applies it (PrivateTmp,
# ProtectSystem mounts, the seccomp filter: only checked against what the
# programs did in these runs), and the migrate unit as www-data (the test
# PostgreSQL's socket is its own user's).

load helpers
load queue
load pg

setup_file() {
    # www-data must reach the tree: not under TEST_TMP (0700)
    SD_TREE=$(mktemp -d /tmp/apistack-systemd.XXXXXX)
    chmod 755 "$SD_TREE"
    export SD_TREE
    export SD_LIBDIR=$SD_TREE/usr/lib/apistack SD_UNITS=$SD_TREE/usr/lib/systemd/system
    export SD_ENV=$SD_TREE/etc/apistack/apistack.env SD_STATE=$SD_TREE/var/lib/apistack
    make -C "$REPO" --no-print-directory install PREFIX="$SD_TREE/usr" SYSCONFDIR="$SD_TREE/etc" \
        LOCALSTATEDIR="$SD_TREE/var" SYSTEMDDIR="$SD_UNITS" >"$SD_TREE/install.log" 2>&1 ||
        { cat "$SD_TREE/install.log" >&2; return 1; }
    # make install ships the normal build; run the build under test
    cp "$GW_BIN"/* "$SD_LIBDIR/bin/"
}

teardown_file() {
    [ -n "${SD_TREE:-}" ] && rm -rf "$SD_TREE"
}

teardown() {
    if [ -n "${STRACE_PID:-}" ]; then kill -KILL "$STRACE_PID" 2>/dev/null || true; wait "$STRACE_PID" 2>/dev/null || true; fi
    queue_teardown
    stop_pg
    rm -f "$SD_ENV"
}

# unit_get UNIT KEY: the KEY's value in the installed unit (the last one
# set, as systemd takes it for single-valued settings)
unit_get() { sed -n "s/^$2=//p" "$SD_UNITS/$1" | tail -n 1; }

# unit_all UNIT KEY: every value of a list setting (After=, Wants=), one a line
unit_all() { sed -n "s/^$2=//p" "$SD_UNITS/$1" | tr ' ' '\n' | grep -v '^$'; }

# seconds VALUE: a systemd time span in seconds ("45", "45s", "2min", "30min")
seconds() {
    case $1 in
    *min) echo $((${1%min} * 60)) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
    esac
}

# unit_env UNIT: fill UNIT_ENV with the environment systemd would give the
# unit's commands: Environment= first, then its EnvironmentFile= (which
# overrides it; "KEY=value" lines, # comments, one pair of quotes taken off),
# then every name its UnsetEnvironment= lines list taken out (systemd applies
# them last)
unit_env() {
    UNIT_ENV=()
    local line file k v unset=" "
    while IFS= read -r line; do UNIT_ENV+=("$line"); done < <(unit_get "$1" Environment | tr ' ' '\n' | grep .)
    file=$(unit_get "$1" EnvironmentFile)
    file=${file#-}
    while IFS= read -r line; do
        [[ $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
        k=${BASH_REMATCH[1]} v=${BASH_REMATCH[2]}
        [[ $v =~ ^\"(.*)\"$ || $v =~ ^\'(.*)\'$ ]] && v=${BASH_REMATCH[1]}
        UNIT_ENV+=("$k=$v")
    done <"$file"
    unset+="$(unit_all "$1" UnsetEnvironment | tr '\n' ' ')"
    local kept=() kv
    for kv in "${UNIT_ENV[@]}"; do
        [[ $unset == *" ${kv%%=*} "* ]] || kept+=("$kv")
    done
    UNIT_ENV=("${kept[@]}")
}

# env_value NAME: NAME's value in UNIT_ENV (the last one)
env_value() {
    local kv v=
    for kv in "${UNIT_ENV[@]}"; do [[ $kv == "$1="* ]] && v=${kv#*=}; done
    printf '%s' "$v"
}

# unit_cmd UNIT KEY: fill UNIT_CMD with the argv of ExecStart= (or
# ExecStartPre=), systemd's way: the prefix characters (+ - @ ! :) off, a
# $NAME word split on blanks into zero or more words, ${NAME} put in as one.
# Needs UNIT_ENV.
unit_cmd() {
    local words w name
    read -ra words <<<"$(unit_get "$1" "$2")"
    words[0]=${words[0]##[-+@!:]}
    words[0]=${words[0]##[-+@!:]}
    UNIT_CMD=()
    for w in "${words[@]}"; do
        if [[ $w =~ ^\$([A-Za-z_][A-Za-z0-9_]*)$ ]]; then
            read -ra split <<<"$(env_value "${BASH_REMATCH[1]}")"
            UNIT_CMD+=("${split[@]}")
        else
            while [[ $w =~ \$\{([A-Za-z_][A-Za-z0-9_]*)\} ]]; do
                name=${BASH_REMATCH[1]}
                w=${w//"\${$name}"/$(env_value "$name")}
            done
            UNIT_CMD+=("$w")
        fi
    done
}

# as_unit UNIT CMD...: run CMD as the unit runs its main command: from /,
# only the unit's environment (and the sanitizer settings of the build under
# test), its User= and Group=, no new privileges, its UMask=. Execs: the pid
# of a background `as_unit` is the program's.
as_unit() {
    local unit=$1
    shift
    cd / || return 1
    umask "$(unit_get "$unit" UMask)"
    exec env -i "${UNIT_ENV[@]}" ASAN_OPTIONS="${ASAN_OPTIONS:-}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}" \
        setpriv --reuid="$(unit_get "$unit" User)" --regid="$(unit_get "$unit" Group)" \
        --init-groups --no-new-privs -- "$@"
}

# set_setting KEY VALUE: set KEY in the settings file, as an admin edits it
set_setting() {
    local tmp=$SD_ENV.edit
    grep -v "^$1=" "$SD_ENV" >"$tmp" || true
    printf '%s=%s\n' "$1" "$2" >>"$tmp"
    chgrp --reference="$SD_ENV" "$tmp"
    chmod --reference="$SD_ENV" "$tmp"
    mv "$tmp" "$SD_ENV"
}

# runner_setup: what starting apistack-runner does first: its ExecStartPre
# (scripts/setup, as root) makes the settings file; then the host's admin
# points it at the test's Redis and sets the runner's arguments.
runner_setup() {
    unit_env apistack-runner.service 2>/dev/null || true
    UNIT_ENV=()
    unit_cmd apistack-runner.service ExecStartPre
    env -i PATH="$PATH" "${UNIT_CMD[@]}"
    set_setting REDIS_URL "$(redis_tcp_url 0)"
    set_setting RUNNER_ARGS '-c 2 -n systemd'
    unit_env apistack-runner.service
    unit_cmd apistack-runner.service ExecStart
}

# start_unit_runner [PREFIX...]: run the runner unit's command as the unit
# would (PREFIX: a tracer in front); wait for `ready`. Sets UNIT_PID (the
# runner's supervisor) and UNIT_LOG; the runner is stopped by queue_teardown.
start_unit_runner() {
    local dir
    dir=$(mktemp -d "$TEST_TMP/runner.XXXXXX")
    UNIT_LOG=$dir/runner.log
    if [ $# -gt 0 ]; then
        # LeakSanitizer cannot work under ptrace (the ASan build)
        ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 "$@" -o "$dir/strace.out" bash -c "$(declare -f as_unit unit_get); UNIT_ENV=($(printf '%q ' "${UNIT_ENV[@]}")); as_unit apistack-runner.service $(printf '%q ' "${UNIT_CMD[@]}")" \
            >"$UNIT_LOG" 2>&1 3>&- </dev/null &
        STRACE_PID=$!
        STRACE_OUT=$dir/strace.out
        retry 100 0.05 eval 'pgrep -f -n "^${UNIT_CMD[0]}" >/dev/null' || return 1
        UNIT_PID=$(pgrep -P "$STRACE_PID")
    else
        (as_unit apistack-runner.service "${UNIT_CMD[@]}") >"$UNIT_LOG" 2>&1 3>&- </dev/null &
        UNIT_PID=$!
    fi
    RUNNER_PIDS+=("$UNIT_PID")
    RUNNER_DIRS+=("$dir")
    retry 200 0.05 grep -q ' - INFO - ready: ' "$UNIT_LOG" || { cat "$UNIT_LOG" >&2; return 1; }
}

@test "make install: the units, with the install's paths, pass systemd-analyze verify with no warning" {
    [ -f "$SD_UNITS/apistack-runner.service" ]
    [ -f "$SD_UNITS/apistack-migrate.service" ]
    run grep -n '@[A-Z]*@' "$SD_UNITS"/apistack-*.service
    assert_output ''
    # every path a unit names is the install's
    run -0 grep -ho "$SD_TREE/[^ ]*" "$SD_UNITS"/apistack-*.service
    assert_line "$SD_LIBDIR/bin/queue-runner"
    assert_line "$SD_LIBDIR/bin/migrate"
    assert_line "$SD_LIBDIR/scripts/setup"
    assert_line "$SD_ENV"
    # verify loads each unit with its dependencies, checks every setting and
    # that each command's program is there; it warns on stderr and fails
    run -0 --separate-stderr systemd-analyze verify "$SD_UNITS/apistack-migrate.service" \
        "$SD_UNITS/apistack-runner.service"
    assert_equal "$output$stderr" ''
}

@test "the units' start, restart and stop policies" {
    # migrate: a oneshot that stays active; setup as root before it
    assert_equal "$(unit_get apistack-migrate.service Type)" oneshot
    assert_equal "$(unit_get apistack-migrate.service RemainAfterExit)" yes
    assert_equal "$(unit_get apistack-migrate.service ExecStartPre)" "+$SD_LIBDIR/scripts/setup"
    assert_equal "$(unit_get apistack-migrate.service ExecStart)" "$SD_LIBDIR/bin/migrate"
    assert_equal "$(unit_get apistack-migrate.service User)" www-data
    run -0 unit_all apistack-migrate.service After
    assert_line network-online.target
    # the runner: after the network and the migrations, as www-data, with
    # the host's settings, always restarted, with a pause and a start limit
    run -0 unit_all apistack-runner.service After
    assert_line network-online.target
    assert_line apistack-migrate.service
    run -0 unit_all apistack-runner.service Wants
    assert_line network-online.target
    assert_line apistack-migrate.service
    assert_equal "$(unit_get apistack-runner.service User)" www-data
    assert_equal "$(unit_get apistack-runner.service EnvironmentFile)" "-$SD_ENV"
    assert_equal "$(unit_get apistack-runner.service Restart)" always
    [ "$(seconds "$(unit_get apistack-runner.service RestartSec)")" -ge 1 ]
    [ "$(unit_get apistack-runner.service StartLimitBurst)" -ge 3 ]
    # StartLimitBurst restarts must fit in the interval for the limit to bite
    local burst interval pause
    burst=$(unit_get apistack-runner.service StartLimitBurst)
    interval=$(seconds "$(unit_get apistack-runner.service StartLimitIntervalSec)")
    pause=$(seconds "$(unit_get apistack-runner.service RestartSec)")
    [ $((burst * pause)) -lt "$interval" ]
    # stop: SIGTERM to the supervisor alone, SIGKILL for all only past the
    # drain (RUNNER_DRAIN, 30 s by default) and a margin to put tasks back
    assert_equal "$(unit_get apistack-runner.service KillMode)" mixed
    assert_equal "$(unit_get apistack-runner.service KillSignal)" SIGTERM
    [ "$(seconds "$(unit_get apistack-runner.service TimeoutStopSec)")" -ge 40 ]
    # logs to the journal
    assert_equal "$(unit_get apistack-runner.service StandardError)" journal
    # the state directory, where its metrics go, is the only writable path
    assert_equal "$(unit_get apistack-runner.service ProtectSystem)" strict
    assert_equal "$(unit_get apistack-runner.service ReadWritePaths)" "-$SD_STATE"
    assert_equal "$(unit_get apistack-runner.service Environment)" "METRICS_DIR=$SD_STATE/metrics"
}

@test "the runner unit's command, settings and user run tasks; KillSignal drains a running task to SUCCESS within TimeoutStopSec" {
    start_redis
    runner_setup
    # the settings file scripts/setup wrote: root's, readable by the group
    run -0 stat -c '%U:%G %a' "$SD_ENV"
    assert_output 'root:www-data 640'
    assert_equal "${UNIT_CMD[*]}" "$SD_LIBDIR/bin/queue-runner -c 2 -n systemd"
    start_unit_runner
    assert_equal "$(awk '/^Uid:/ { print $2 }' "/proc/$UNIT_PID/status")" "$(id -u www-data)"
    # the settings file holds every secret; the runner gets Redis's only
    # (UnsetEnvironment=)
    run -0 grep -c '^\(DATABASE_URL\|TOKEN_KEYS\|FERNET_KEYS\)=' "$SD_ENV"
    assert_output 3
    run -0 tr '\0' '\n' <"/proc/$UNIT_PID/environ"
    assert_line --regexp '^REDIS_URL=redis://'
    refute_line --regexp '^(DATABASE_URL|TOKEN_KEYS|FERNET_KEYS)(_FILE)?='
    run -0 taskctl send add 20 22
    local id=$output
    wait_status "$id" SUCCESS
    assert_equal "$(result "$id")" 42
    # its metrics: in the state dir setup made (the only writable path)
    run -0 find "$SD_STATE/metrics" -user www-data -name 'queue-runner.*'
    [ -n "$output" ]

    run -0 taskctl send sleep 3
    id=$output
    wait_status "$id" STARTED
    local kids signal timeout
    kids=$(runner_children "$UNIT_PID")
    [ -n "$kids" ]
    signal=$(unit_get apistack-runner.service KillSignal)
    timeout=$(seconds "$(unit_get apistack-runner.service TimeoutStopSec)")
    SECONDS=0
    # KillMode=mixed: the signal goes to the main process only
    kill -s "${signal#SIG}" "$UNIT_PID"
    local rc=0
    wait "$UNIT_PID" || rc=$?
    [ "$SECONDS" -lt "$timeout" ]
    assert_equal "$rc" 0
    # the task ran to the end (about 3 s), and no worker outlived the
    # supervisor (systemd's SIGKILL of what is left would kill it mid-task)
    assert_equal "$(meta_status "$id")" SUCCESS
    local k
    for k in $kids; do gone "$k"; done
    grep -q 'stopping: finishing running tasks' "$UNIT_LOG"
    grep -q ' - INFO - stopped' "$UNIT_LOG"
    assert_equal "$(inflight_count)" 0
}

# expand_filter SET...: the system calls a SystemCallFilter= list allows
expand_filter() {
    local s
    for s in "$@"; do
        if [[ $s == @* ]]; then
            # shellcheck disable=SC2046
            expand_filter $(systemd-analyze syscall-filter "$s" | sed 1d | grep -v '^ *#' | tr -d ' ')
        else
            echo "$s"
        fi
    done
}

# check_sandbox UNIT TRACE: everything the program did in TRACE (strace -f
# output from its exec on) is allowed by UNIT's sandbox: each system call is
# in SystemCallFilter=; nothing is mapped writable and executable, nor made
# executable later (MemoryDenyWriteExecute=); each socket's family is in
# RestrictAddressFamilies=; each file opened to write or made is under
# ReadWritePaths= (ProtectSystem=strict makes the rest read-only) or in /dev
# (PrivateDevices= keeps null, zero, ... writable). Sets FAMILIES and
# WRITTEN (what the program used) for the caller's own checks.
check_sandbox() {
    local unit=$1 trace=$2 f rw
    # shellcheck disable=SC2046
    expand_filter $(unit_get "$unit" SystemCallFilter) | sort -u >"$BATS_TEST_TMPDIR/allowed"
    [ -s "$BATS_TEST_TMPDIR/allowed" ]
    sed -n 's/^[0-9]* *\([a-z_0-9]*\)(.*/\1/p' "$trace" | sort -u >"$BATS_TEST_TMPDIR/used"
    grep -q '^execve$' "$BATS_TEST_TMPDIR/used"
    run comm -23 "$BATS_TEST_TMPDIR/used" "$BATS_TEST_TMPDIR/allowed"
    assert_output ''

    assert_equal "$(unit_get "$unit" MemoryDenyWriteExecute)" yes
    grep -q 'mmap(.*PROT_EXEC' "$trace"
    run grep -E 'PROT_WRITE\|PROT_EXEC|mprotect\(.*PROT_EXEC|pkey_mprotect\(.*PROT_EXEC' "$trace"
    assert_output ''

    FAMILIES=$(sed -n 's/^[0-9]* *socket(\(AF_[A-Z0-9]*\),.*/\1/p' "$trace" | sort -u)
    for f in $FAMILIES; do
        [[ " $(unit_get "$unit" RestrictAddressFamilies) " == *" $f "* ]] ||
            { echo "socket($f) is not in RestrictAddressFamilies=" >&2; return 1; }
    done

    rw=$(unit_get "$unit" ReadWritePaths)
    rw=${rw#-}
    WRITTEN=$(grep -E '^[0-9]+ +(open|openat|creat|mkdir|mkdirat|unlink|unlinkat|rename|renameat2?)\(' "$trace" |
        grep -E 'O_WRONLY|O_RDWR|O_CREAT|mkdir|unlink|rename|creat\(' | grep -v ' = -1 ' |
        grep -o '"/[^"]*"' | tr -d '"' | sort -u)
    for f in $WRITTEN; do
        [[ ( -n $rw && $f == "$rw"/* ) || $f == /dev/* ]] ||
            { echo "writes $f, outside ReadWritePaths=$rw" >&2; return 1; }
    done
}

@test "the runner's sandbox allows every system call, address family, written path and mapping of a run" {
    command -v strace >/dev/null || { echo "strace is needed (scripts/deps test)" >&2; return 1; }
    start_redis
    runner_setup
    start_unit_runner strace -f -qq -e 'trace=all' -e 'signal=none'
    run -0 taskctl send add 1 2
    wait_status "$output" SUCCESS
    run -0 taskctl send sleep 1
    local id=$output
    wait_status "$id" STARTED
    kill -TERM "$UNIT_PID"
    wait "$STRACE_PID"
    STRACE_PID=
    assert_equal "$(meta_status "$id")" SUCCESS
    # from the runner's exec on (before it: env and setpriv)
    local trace=$BATS_TEST_TMPDIR/trace
    awk -v exe="${UNIT_CMD[0]}" 'index($0, "execve(\"" exe "\"") { on = 1 } on' "$STRACE_OUT" >"$trace"
    [ -s "$trace" ]
    check_sandbox apistack-runner.service "$trace"
    # it forked its workers, reached Redis over TCP, wrote its metrics
    grep -qE '^[0-9]+ +(fork|clone|clone3)\(' "$trace"
    [[ $FAMILIES == *AF_INET* ]]
    [[ $WRITTEN == *"$SD_STATE/metrics/queue-runner."* ]]
}

@test "the migrate unit: setup makes the settings file, then ExecStart applies the installed sql/, once, within its sandbox" {
    start_pg --bare
    unit_env apistack-migrate.service 2>/dev/null || true
    UNIT_ENV=()
    unit_cmd apistack-migrate.service ExecStartPre
    env -i PATH="$PATH" "${UNIT_CMD[@]}"
    [ -f "$SD_ENV" ]
    # its keys are fresh and well-formed
    run -0 grep -c '^TOKEN_KEYS=[A-Za-z0-9]*:[A-Za-z0-9_-]\{43\}$\|^FERNET_KEYS=[A-Za-z0-9_-]\{43\}=$' "$SD_ENV"
    assert_output 2
    # run as root: the test PostgreSQL's socket is its own user's only
    set_setting DATABASE_URL "$DATABASE_URL"
    unit_env apistack-migrate.service
    unit_cmd apistack-migrate.service ExecStart
    local n trace=$BATS_TEST_TMPDIR/trace
    n=$(ls "$REPO"/sql/[0-9][0-9][0-9]_*.sql | wc -l)
    # under strace, for its sandbox (LeakSanitizer cannot work under ptrace)
    run -0 strace -f -qq -e 'trace=all' -e 'signal=none' -o "$trace" \
        env -i "${UNIT_ENV[@]}" ASAN_OPTIONS=detect_leaks=0 "${UNIT_CMD[@]}"
    assert_equal "$(grep -c '^migrate: applied ' <<<"$output")" "$n"
    assert_line "migrate: done ($n migrations, $n applied now)"
    sed -i -n "\|execve(\"${UNIT_CMD[0]}\"|,\$p" "$trace"
    [ -s "$trace" ]
    check_sandbox apistack-migrate.service "$trace"
    # it reached PostgreSQL (here its unix socket) and wrote no file
    [[ $FAMILIES == *AF_UNIX* ]]
    assert_equal "$WRITTEN" ''
    # RemainAfterExit: a restart of the unit runs it again, and it finds nothing to do
    run -0 env -i "${UNIT_ENV[@]}" "${UNIT_CMD[@]}"
    assert_output "migrate: up to date ($n migrations, 0 applied now)"
}

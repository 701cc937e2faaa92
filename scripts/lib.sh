# Shell helpers shared by the test harness (tests/helpers.bash) and the
# benchmark (bench/run). Source it; it defines functions only.

# free_port: a TCP port on 127.0.0.1 that nothing answers on right now.
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# retry N DELAY CMD...: run CMD until it succeeds, at most N times.
retry() {
    local n=$1 delay=$2
    shift 2
    for _ in $(seq 1 "$n"); do
        "$@" && return 0
        sleep "$delay"
    done
    return 1
}

# answers URL EXPECTED: the body at URL is exactly EXPECTED.
answers() {
    [ "$(curl -s -m 1 "$1")" = "$2" ]
}

# Shell helpers shared by the test harness (tests/helpers.bash) and the
# benchmark (bench/run, bench/hosting). Source it; it defines functions only.

# free_port: a TCP port on 127.0.0.1 that nothing answers on right now,
# below the kernel's ephemeral range (ip_local_port_range, 32768 up by
# default), where the source ports of our own outgoing connections (curl,
# Celery clients) would otherwise take it between this check and the bind.
free_port() {
    local p low=32768
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
    [ "$low" -gt 11000 ] || low=32768
    for _ in $(seq 1 50); do
        p=$((10000 + RANDOM % (low - 10000)))
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

# wrk_measure URL CONNS: one wrk run of $DURATION with $THREADS threads ->
# "req/s p50_ms p99_ms errors" (non-2xx/3xx answers and socket errors)
wrk_measure() {
    wrk -t"$THREADS" -c"$2" -d"$DURATION" --latency "$1" | awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0;
            if (v ~ /s$/) return v * 1000; return v }
        /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
        /Requests\/sec/ { rps = $2 }
        /Non-2xx or 3xx/ { err += $NF } /Socket errors/ { err += 1 }
        END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, err + 0 }'
}

# median_field FILE NAME FIELD: the median of field FIELD over the lines of
# FILE whose first field is NAME (the rounds of one series)
median_field() {
    awk -v n="$2" -v f="$3" '$1 == n { print $f }' "$1" | sort -g |
        awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

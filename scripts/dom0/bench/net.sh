#!/bin/bash
# Run once the guest says `harness: net-ready` (the bench): 100 pings, 300
# UDP echoes one at a time, 64 MiB to the TCP discard port, `xl shutdown`;
# around the pings, our guest's own share of their round trips.
ip=10.0.0.2
up() { read -r UP _ </proc/uptime; }
# Our echo answers `stats` on TCP 7 with its counters, the last part since
# the previous `stats`: asked before and after the pings, it gives the
# guest's own share of their round trips (wake-up to reply sent). Linux's
# bench-echo echoes the word back: no figures.
stats() {
    local l=
    if exec 4<>/dev/tcp/$ip/7; then
        printf 'stats\n' >&4
        read -r -t 5 l <&4
        exec 4>&-
    fi
    [ "$1" ] && echo "guest-ping: ${l##*since the last stats: }"
}
stats
ping -c 100 -i 0.05 -W 2 $ip 2>/dev/null | grep -o 'time=[0-9.]*' | cut -d= -f2 | sort -n |
    awk '{a[NR] = $1} END {if (NR) printf "rtt100: median %s ms, p99 %s ms, %d replies\n", a[int((NR + 1) / 2)], a[int(NR * 0.99 + 0.5)], NR}'
stats show
if exec 3<>/dev/udp/$ip/7; then
    n=0
    up; a=$UP
    for _ in $(seq 300); do
        printf x >&3
        read -r -N 1 -t 1 _ <&3 && n=$((n + 1))
    done
    up
    awk -v n=$n -v a="$a" -v b="$UP" 'BEGIN {printf "udp: %d of 300 echoed, %.0f per s\n", n, n / (b - a)}'
    exec 3>&-
fi
up; a=$UP
if timeout 300 head -c 67108864 /dev/zero >/dev/tcp/$ip/9; then
    up
    awk -v a="$a" -v b="$UP" 'BEGIN {printf "tcp64: %.2f MB/s\n", 67.108864 / (b - a)}'
else
    echo "tcp64: failed"
fi
timeout -k 5 30 xl shutdown "$NAME"

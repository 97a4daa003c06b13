#!/bin/bash
# Against an echo guest once its network is up (dom0 side of xenbr0; run
# by run-guest.sh with NAME set): 20 pings, a UDP and a TCP echo round trip,
# 100 pings for the RTT, 64 MiB to the discard port, the guest's counters,
# a flood ping, the counters again, then `xl shutdown`.
ip=10.0.0.2
stats() {
    local l=
    for _ in 1 2 3 4 5; do
        if exec 4<>/dev/tcp/$ip/7; then
            printf 'stats\n' >&4
            read -r -t 5 l <&4
            exec 4>&-
            [ -n "$l" ] && break
        fi
        sleep 1
    done
    echo "$1: ${l:-no reply}"
}
ping -c 20 -i 0.2 -W 2 $ip 2>&1 | tail -n 2 | sed 's/^/ping: /'
if exec 3<>/dev/udp/$ip/7; then
    printf 'hello over udp\n' >&3
    # One read(2) takes one whole datagram (bash's `read` takes a byte).
    l=$(timeout 5 head -n 1 <&3)
    echo "udp: ${l:-no reply}"
    exec 3>&-
fi
if exec 4<>/dev/tcp/$ip/7; then
    printf 'hello over tcp\n' >&4
    read -r -t 5 l <&4 && echo "tcp: $l" || echo "tcp: no reply"
    exec 4>&-
else
    echo "tcp: no connection"
fi
ping -c 100 -i 0.05 -W 2 $ip 2>/dev/null | grep -o 'time=[0-9.]*' | cut -d= -f2 | sort -n |
    awk '{a[NR] = $1} END {if (NR) printf "rtt100: median %s ms, p99 %s ms, %d replies\n", a[int((NR + 1) / 2)], a[int(NR * 0.99 + 0.5)], NR}'
t0=$(date +%s.%N)
if head -c 67108864 /dev/zero >/dev/tcp/$ip/9; then
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "tcp64: %.1f MB/s (64 MiB in %.2f s)\n", 67.108864 / (b - a), b - a}'
else
    echo "tcp64: failed"
fi
sleep 1
stats stats-before
# The flood takes about a minute under TCG and prints only at its end: a
# heartbeat keeps the session from looking stalled meanwhile.
( while sleep 20; do echo "flood-progress: running"; done ) &
beat=$!
ping -f -c 10000 -W 1 $ip 2>&1 | tail -n 2 | sed 's/^/flood: /'
kill $beat
sleep 1
stats stats-after
timeout -k 5 20 xl shutdown "$NAME"

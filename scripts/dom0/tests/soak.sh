#!/bin/bash
# (After lib.sh: up, since, ask, connect_echo, $ip.)
# A soak of the echo guest: for SOAK_SECONDS (180 in the suite) a flood
# ping, two TCP streams into its discard port and one out of its source
# port, each stream 8 MiB and then a new connection, all at once. The
# guest's counters are read after a 20-second warm-up under the same load
# (the stack's buffers and the heap's mapping reach their sizes) and again
# at the end, once every connection has closed on the guest's side, for the
# judge to compare: heap, free frames,
# grants, event-channel ports, sockets. Then `xl shutdown`.
secs=${SOAK_SECONDS:-180}
chunk=8388608
# stats LABEL: the guest's counters over a connection of their own; waits
# (30 s at most) until no socket is closing.
stats() {
    local l= i
    for i in $(seq 30); do
        if exec 5<>/dev/tcp/$ip/7; then
            printf 'stats\n' >&5
            read -r -t 5 l <&5
            exec 5>&-
        fi
        case $l in *"(0 closing)"*) break ;; esac
        sleep 1
    done
    echo "$1: ${l:-no reply}"
}
# One stream direction in a loop until the deadline; counts MiB moved.
# A connection the guest refuses (its discard port's listening sockets all
# taken at that instant: smoltcp has no SYN queue) is counted, not hidden.
into() {
    local n=0 r=0
    while up && [ "${UP%.*}" -lt "$end" ]; do
        if exec 7>/dev/tcp/$ip/9; then
            head -c $chunk /dev/zero >&7 && n=$((n + 8))
            exec 7>&-
        else
            r=$((r + 1))
        fi
    done 2>/dev/null
    echo "$n" >"/tmp/soak-$1"
    echo "$r" >"/tmp/soak-$1-refused"
}
out() {
    local n=0
    while up && [ "${UP%.*}" -lt "$end" ]; do
        if exec 6<>"/dev/tcp/$ip/19"; then
            echo "$chunk" >&6
            [ "$(timeout 120 head -c $chunk <&6 | wc -c)" = $chunk ] && n=$((n + 8))
            exec 6>&-
        fi
    done
    echo "$n" >"/tmp/soak-$1"
}

# load SECONDS TAG: the whole load for SECONDS (a heartbeat every 30 s).
load() {
    local t
    up; t=$UP; end=$(( ${UP%.*} + $1 ))
    ping -f -w "$1" -W 1 $ip >/tmp/soak-ping 2>&1 &
    into in1 & into in2 & out out1 &
    while up && [ "${UP%.*}" -lt "$end" ]; do
        sleep $(( $1 < 30 ? $1 : 30 ))
        [ "$2" = soak ] && echo "soak: $(since "$t") s of $1"
    done
    wait
    elapsed=$(since "$t")
}
# Warm-up: the same load for 20 s (the stack's buffers and the heap reach
# their sizes under it; the heap keeps its pages mapped once grown).
load 20 warm
stats stats-start
load "$secs" soak
echo "soak: ran $elapsed s of $secs; into the guest $(( $(cat /tmp/soak-in1) + $(cat /tmp/soak-in2) )) MiB, out of it $(cat /tmp/soak-out1) MiB; connections refused $(( $(cat /tmp/soak-in1-refused) + $(cat /tmp/soak-in2-refused) ))"
tail -n 2 /tmp/soak-ping | head -n 1 | sed 's/^/ping: /'
stats stats-end
connect_echo
ask "hello after the soak" 10 "tcp after"
exec 4>&-
timeout -k 5 20 xl shutdown "$NAME"

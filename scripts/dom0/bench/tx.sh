#!/bin/bash
# Run once the guest says `harness: net-ready` (the bench's TCP guest ->
# dom0 row): 64 MiB from the guest's source port 19 into /dev/null, then
# `xl shutdown`.
ip=10.0.0.2
n=67108864
up() { read -r UP _ </proc/uptime; }
if exec 3<>"/dev/tcp/$ip/19"; then
    up; a=$UP
    echo "$n fast" >&3
    got=$(timeout 300 head -c "$n" <&3 | wc -c)
    up
    exec 3>&-
    awk -v a="$a" -v b="$UP" -v n="$got" 'BEGIN {printf "tx64: %.2f MB/s, %d bytes\n", n / 1e6 / (b - a), n}'
else
    echo "tx64: cannot connect"
fi
timeout -k 5 30 xl shutdown "$NAME"

#!/bin/bash
# Against an echo guest: 64 MiB guest → dom0 over TCP (its source port 19),
# the CRC-32 of what arrived taken from gzip's trailer (coreutils' cksum
# dies of SIGILL in this dom0) for the judge to compare with the guest's,
# the rate, then `xl shutdown`.
ip=10.0.0.2
n=67108864
up() { read -r UP _ </proc/uptime; }
up; a=$UP
if exec 3<>"/dev/tcp/$ip/19"; then
    echo "$n" >&3
    trailer=$(timeout 300 head -c "$n" <&3 | gzip -1 -c | tail -c 8 | od -An -tu4 | tr -s ' ')
    up
    set -- $trailer
    echo "tx: received crc32 ${1:-none} size ${2:-0}"
    awk -v a="$a" -v b="$UP" -v n="$n" 'BEGIN {printf "tx: %.2f MB/s (with gzip in dom0)\n", n / 1e6 / (b - a)}'
    exec 3>&-
else
    echo "tx: cannot connect"
fi
timeout -k 5 20 xl shutdown "$NAME"

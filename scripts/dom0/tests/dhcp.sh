#!/bin/bash
# Against the echo guest that took its address from dom0's DHCP server (a
# static lease: 10.0.0.3): ping, a UDP echo, `xl shutdown`.
ip=10.0.0.3
ping -c 5 -i 0.2 -W 2 $ip 2>&1 | tail -n 2 | sed 's/^/ping: /'
if exec 3<>/dev/udp/$ip/7; then
    printf 'hello over dhcp\n' >&3
    echo "udp: $(timeout 5 head -n 1 <&3)"
    exec 3>&-
fi
timeout -k 5 20 xl shutdown "$NAME"

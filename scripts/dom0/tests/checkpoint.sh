#!/bin/bash
# (After lib.sh: up, since, ask, connect_echo, $ip.)
# Against an echo guest: three checkpoints (`xl save -c`: the domain is
# saved and goes on where it was) while dom0 pings it every 10 ms; then the
# guest's counters over TCP (it must not have reconnected) and `xl
# shutdown`. Each checkpoint's time is reported: pings are lost only while
# the domain is paused for it.
ping -i 0.01 -c 2000 -W 1 $ip >/tmp/"$NAME".ping 2>&1 &
pinger=$!
sleep 2
for i in 1 2 3; do
    up; t=$UP
    timeout -k 5 120 xl save -c "$NAME" /tmp/"$NAME".cp >/tmp/"$NAME".cp.log 2>&1
    rc=$?
    echo "checkpoint $i: rc=$rc seconds=$(since "$t") bytes=$(stat -c %s /tmp/"$NAME".cp 2>/dev/null || echo 0)"
    [ "$rc" = 0 ] || grep -v progress /tmp/"$NAME".cp.log | tail -n 10 | sed 's/^/checkpoint-log: /'
    rm -f /tmp/"$NAME".cp
    sleep 2
done
wait "$pinger"
grep -E 'packets transmitted' /tmp/"$NAME".ping | sed 's/^/ping: /'
if exec 4<>/dev/tcp/$ip/7; then
    printf 'stats\n' >&4
    l=; read -r -t 5 l <&4
    echo "stats-after: ${l:-no reply}"
    exec 4>&-
fi
timeout -k 5 20 xl shutdown "$NAME"

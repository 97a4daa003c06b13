#!/bin/bash
# The bench's save/restore and migration figures, once the guest says
# `harness: net-ready`:
#   migrate: rc=N seconds=S        `xl migrate` to this host, start to end
#   downtime-ping: gap=MS lost=N   the longest gap between replies of a
#                                  ping every 10 ms running across it
#   downtime-tcp: gap=MS           the longest gap between echoes of a line
#                                  sent every 10 ms on one TCP connection
#                                  (last byte before -> first byte after)
#   guest-suspend: ...             our guest's own line on its suspend
#                                  for the migration (`rt: suspend:
#                                  quiesced in N us ... running again N us
#                                  after ...`: the guest's share of the
#                                  pause; Linux prints none)
#   save: rc=N seconds=S bytes=B   `xl save` to a file (dom0's tmpfs)
#   restore: rc=N seconds=S ping-after=S
# then `xl shutdown`.
ip=10.0.0.2
up() { read -r UP _ </proc/uptime; }
since() { up; awk -v a="$1" -v b="$UP" 'BEGIN {printf "%.2f", b - a}'; }
# The largest difference between consecutive numbers on stdin, in ms.
gap() { awk 'NR > 1 && $1 - p > g {g = $1 - p} {p = $1} END {printf "%.0f", g * 1000}'; }

# --- live migration, with a ping stream and a TCP stream running across it
rm -f /tmp/stop
ping -D -i 0.01 -W 1 $ip >/tmp/ping.log 2>&1 &
ppid=$!
if exec 4<>/dev/tcp/$ip/7; then
    ( while [ ! -e /tmp/stop ]; do echo x; sleep 0.01; done ) >&4 &
    wpid=$!
    ( while read -r -t 60 _; do echo "$EPOCHREALTIME"; done ) <&4 >/tmp/tcp.ts &
    rpid=$!
fi
sleep 1
up; t=$UP
timeout -k 5 180 xl migrate -s '' "$NAME" 'xl migrate-receive' >/tmp/"$NAME".mig.log 2>&1
rc=$?
echo "migrate: rc=$rc seconds=$(since "$t")"
[ "$rc" = 0 ] || grep -v progress /tmp/"$NAME".mig.log | tail -n 10 | sed 's/^/migrate-log: /'
sleep 3
touch /tmp/stop
kill -INT "$ppid" 2>/dev/null; wait "$ppid" 2>/dev/null
sent=$(grep -c 'bytes from' /tmp/ping.log)
lost=$(awk '/packets transmitted/ {print $1 - $4}' /tmp/ping.log)
echo "downtime-ping: gap=$(sed -n 's/^\[\([0-9.]*\)\] .*bytes from.*/\1/p' /tmp/ping.log | gap) lost=${lost:-?} replies=$sent"
if [ -n "${wpid:-}" ]; then
    wait "$wpid" 2>/dev/null
    sleep 0.5
    kill "$rpid" 2>/dev/null; wait "$rpid" 2>/dev/null
    exec 4>&-
    echo "downtime-tcp: gap=$(gap </tmp/tcp.ts) echoes=$(wc -l </tmp/tcp.ts)"
else
    echo "downtime-tcp: no connection"
fi

# xenconsoled logs the migrated-in domain under the name it had then.
grep -h 'rt: suspend:' /var/log/xen/console/guest-"$NAME"--incoming.log 2>/dev/null |
    tr -d '\r' | tail -n 1 | sed 's/^.*rt: suspend: /guest-suspend: /'

# --- save and restore
f=/tmp/$NAME.save
up; t=$UP
timeout -k 5 180 xl save "$NAME" "$f" >/tmp/"$NAME".save.log 2>&1
rc=$?
echo "save: rc=$rc seconds=$(since "$t") bytes=$(stat -c %s "$f" 2>/dev/null || echo 0)"
up; t=$UP
timeout -k 5 180 xl restore "$f" >/tmp/"$NAME".restore.log 2>&1
rc=$?
d=$(since "$t")
up; t2=$UP
for _ in $(seq 500); do
    ping -c 1 -W 0.2 $ip >/dev/null 2>&1 && break
done
echo "restore: rc=$rc seconds=$d ping-after=$(since "$t2")"
rm -f "$f"
timeout -k 5 30 xl shutdown "$NAME"

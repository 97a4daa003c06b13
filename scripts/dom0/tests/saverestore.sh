#!/bin/bash
# (After lib.sh: up, since, ask, connect_echo, $ip.)
# Against an echo guest: one TCP connection open across `xl save` and `xl
# restore` (the guest comes back in a new domain and reconnects its vif),
# echoing before and after (and after an unknown control/shutdown value), the guest's counters before and after, the save
# file's size and the times, then `xl shutdown`.
connect_echo
ask "hello before the save" 5 "tcp before"
ask stats 5 stats-before
# A value of control/shutdown the guest does not know: logged and ignored,
# the domain carries on (and the save after it still works).
xenstore-write /local/domain/"$(xl domid "$NAME")"/control/shutdown frobnicate
ask "hello after an unknown request" 5 "tcp unknown"
up; t=$UP
timeout -k 5 120 xl save "$NAME" /tmp/"$NAME".save >/tmp/"$NAME".save.log 2>&1
echo "save: rc=$? seconds=$(since "$t") bytes=$(stat -c %s /tmp/"$NAME".save 2>/dev/null || echo 0)"
sed 's/^/save-log: /' /tmp/"$NAME".save.log | tail -n 5
up; t=$UP
timeout -k 5 120 xl restore /tmp/"$NAME".save >/tmp/"$NAME".restore.log 2>&1
echo "restore: rc=$? seconds=$(since "$t")"
grep -v 'progress' /tmp/"$NAME".restore.log | sed 's/^/restore-log: /' | tail -n 30
rm -f /tmp/"$NAME".save
up; t=$UP
for _ in $(seq 300); do
    ping -c 1 -W 0.2 $ip >/dev/null 2>&1 && break
done
echo "first ping after restore: $(since "$t") s"
if ! ping -c 1 -W 1 $ip >/dev/null 2>&1; then
    xl list 2>&1 | sed 's/^/diag: /'
    xl dmesg | tail -n 25 | sed 's/^/diag: dmesg: /'
    d=$(xl domid "$NAME" 2>/dev/null) && timeout 10 /usr/lib/xen-4.17/bin/xenctx -a -S "$d" 0 2>&1 | head -n 30 | sed 's/^/diag: xenctx: /'
    tail -n 20 /var/log/xen/console/guest-"$NAME".log | sed 's/^/diag: console: /'
fi
ask "hello after the restore" 20 "tcp after"
ask stats 5 stats-after
exec 4>&-
timeout -k 5 20 xl shutdown "$NAME"

#!/bin/bash
# (After lib.sh: up, since, ask, connect_echo, $ip.)
# Against an echo guest: ten live migrations to this same host (`xl
# migrate`, the receiving side run locally: `-s ''` makes xl run the
# "host" argument as the receiving command), one TCP connection open across
# all of them; the guest's counters after the first and after the tenth
# (grants, ports, heap and free frames must not grow), the connection
# echoing at the end, then `xl shutdown`.
connect_echo
ask "hello before migrating" 5 "tcp before"
for i in $(seq 1 10); do
    up; t=$UP
    timeout -k 5 180 xl migrate -s '' "$NAME" 'xl migrate-receive' >/tmp/"$NAME".mig.log 2>&1
    rc=$?
    d=$(since "$t")
    up; t=$UP
    answered=no
    for _ in $(seq 300); do
        ping -c 1 -W 0.2 $ip >/dev/null 2>&1 && { answered=yes; break; }
    done
    echo "migrate $i: rc=$rc seconds=$d ping-after=$(since "$t") answered=$answered"
    if [ "$rc" != 0 ]; then
        grep -v progress /tmp/"$NAME".mig.log | tail -n 40 | sed 's/^/migrate-log: /'
        break
    fi
    if [ "$answered" = no ]; then
        net_state
        # What the guest said last (the harness shows its console only
        # once this script ends; xenconsoled logs a migrated-in domain
        # under the name it had then, NAME--incoming).
        cat /var/log/xen/console/guest-"$NAME".log /var/log/xen/console/guest-"$NAME"--incoming.log 2>/dev/null |
            tr -d '\r' | tail -n 20 | sed 's/^/console-tail: /'
        break
    fi
    if [ "$i" = 1 ]; then ask stats 20 stats-first; fi
done
ask stats 20 stats-last
ask "hello after migrating" 20 "tcp after"
exec 4>&-
timeout -k 5 20 xl shutdown "$NAME"

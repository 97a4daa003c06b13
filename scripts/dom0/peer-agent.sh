#!/bin/bash
# The second host's agent (harness.mode=peer, see scripts/dom0/init): run by
# `busybox nc -ll -p 5556 -e`, once per connection, with the connection as
# stdin and stdout. Reads one command line, answers with lines starting
# `peer: `, and closes:
#   hello                  peer: ready (its `xl list`, one line per domain)
#   migrate NAME ADDRESS   `xl migrate` NAME to the host at ADDRESS (port 5555);
#                          peer: migrate rc=N seconds=S  (+ the log on failure)
#   console NAME           the guest's console log on this host, line by line
# Every xl call is bounded, like the harness's own.
read -r cmd name addr _
up() { read -r UP _ </proc/uptime; echo "$UP"; }
case $cmd in
    hello)
        echo "peer: ready"
        timeout -k 5 10 xl list 2>&1 | sed 's/^/peer: list: /'
        ;;
    migrate)
        t=$(up)
        # A line every 30 s while it runs (the harness takes a long silence
        # for a stuck session).
        timeout -k 5 240 xl migrate -s '' "$name" "busybox nc $addr 5555" >/tmp/"$name".mig.log 2>&1 &
        mpid=$! n=0
        while kill -0 "$mpid" 2>/dev/null; do
            sleep 1
            n=$((n + 1))
            [ $((n % 30)) = 0 ] && echo "peer: still migrating ($n s)"
        done
        wait "$mpid"
        rc=$?
        echo "peer: migrate rc=$rc seconds=$(awk -v a="$t" -v b="$(up)" 'BEGIN {printf "%.2f", b - a}')"
        [ "$rc" = 0 ] || grep -v progress /tmp/"$name".mig.log | tail -n 30 | sed 's/^/peer: log: /'
        ;;
    console)
        # xenconsoled names the log after the domain's name when it first
        # saw it: a migrated-in domain is NAME--incoming then.
        found=
        for f in /var/log/xen/console/guest-"$name"--incoming.log /var/log/xen/console/guest-"$name".log; do
            [ -f "$f" ] || continue
            found=1
            tr -d '\r' <"$f" | sed 's/^/peer: console: /'
        done
        [ -n "$found" ] || echo "peer: console: (no log; the log directory has: $(ls /var/log/xen/console | tr '\n' ' '))"
        ;;
    *)
        echo "peer: unknown command ${cmd:-(none)}"
        ;;
esac

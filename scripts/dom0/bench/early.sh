#!/bin/bash
# Started with `xl create` (the bench; NAME set): one loop, paced by its
# pings, notes when the guest's console shows its first bytes, when the line
# saying the program started appears (ours: the app's first line, printed
# first thing in `main`; Linux: its /init's first line), and when the first
# ping reply comes. The console log (xenconsoled's) is read incrementally
# with the shell's own `read`, a line read before its newline arrived kept
# for the next look: dom0 must not fork more than it has to, as every fork
# slows the boot being timed (a grep every 20 ms doubled `xl create`'s time).
# Pings go one at a time with a 100 ms wait (one long `ping` run ended at
# once while the vif was not there yet); dom0 retries ARP every 100 ms on
# the bridge so the figure is not rounded up to its default 1 s.
echo 100 >/proc/sys/net/ipv4/neigh/xenbr0/retrans_time_ms
# Times count from T0 (dom0's uptime when run-guest.sh started `xl create`;
# the toolstack's steps count from it too), else from this script's start.
a=${T0:-}
[ -n "$a" ] || read -r a _ </proc/uptime
end=$(( ${a%.*} + 120 ))
stamp() { read -r b _ </proc/uptime; awk -v a="$a" -v b="$b" -v w="$1" 'BEGIN {printf "%s: %.3f s\n", w, b - a}'; }
exec 4<"/var/log/xen/console/guest-$NAME.log"
first= main= reply= part=
while :; do
    read -r now _ </proc/uptime
    if [ -z "$main" ]; then
        while IFS= read -r line <&4; do
            line=$part$line part=
            [ -n "$first" ] || { first=1; stamp first-line; }
            case $line in "echo: boot: "* | "linux: init at"*) main=1; stamp main; line=; break ;; esac
        done
        part=$part$line
        [ -n "$first" ] || [ -z "$part" ] || { first=1; stamp first-line; }
    fi
    if [ -z "$reply" ]; then
        if ping -c 1 -W 0.1 10.0.0.2 >/dev/null 2>&1; then
            reply=1; stamp first-reply
        else
            sleep 0.05
        fi
    fi
    [ -n "$reply" ] && [ -n "$main" ] && break
    if [ "${now%.*}" -ge "$end" ]; then
        [ -n "$reply" ] || echo "first-reply: none in 120 s"
        break
    fi
    [ -z "$reply" ] || sleep 0.1
done

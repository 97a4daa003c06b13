#!/bin/bash
# 20 create/destroy cycles of more guests like this one (own names and
# MACs), each until its vif is connected; then what is left behind in dom0.
cfg=/harness/$NAME.cfg
ok=0
for i in $(seq 1 20); do
    n=cycle-$i
    read -r c0 _ </proc/uptime
    if ! timeout -k 5 60 xl create "$cfg" "name=\"$n\"" "vif=['bridge=xenbr0,mac=00:16:3e:00:01:$(printf %02x "$i")']" >/tmp/cycle.log 2>&1; then
        sed "s/^/cycle $i: xl create: /" /tmp/cycle.log | tail -n 5
    fi
    read -r c1 _ </proc/uptime
    echo "cycle $i: created"
    # Up to 60 s for the vif to connect: `xl create` itself has been seen
    # to take most of a minute now and then under TCG.
    st=
    for _ in $(seq 600); do
        d=$(xl domid "$n" 2>/dev/null)
        [ -n "$d" ] && st=$(xenstore-read "/local/domain/0/backend/vif/$d/0/state" 2>/dev/null)
        [ "$st" = 4 ] && break
        sleep 0.1
    done
    [ "$st" = 4 ] && ok=$((ok + 1))
    timeout -k 5 30 xl destroy "$n" >/dev/null 2>&1
    echo "cycle $i: vif state ${st:-none} (xl create $(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.1f", b - a}') s)"
done
sleep 1
main=$(xl domid "$NAME")
left=$(xenstore-list /local/domain/0/backend/vif 2>/dev/null | grep -vx "$main" | wc -l)
vifs=$(ip -o link show | grep -c ': vif')
echo "cycles: $ok of 20 connected; backend dirs left $left; vifs $vifs"
timeout -k 5 20 xl shutdown "$NAME"

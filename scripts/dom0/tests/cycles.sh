#!/bin/bash
# CYCLES (20 in the suite, 200 in the long version) create/destroy cycles of
# more guests like this one (own names and MACs), each until its vif is
# connected; then what is left behind in dom0 against what was there
# before: backend directories, vifs, domains (`xl list`), xenstore domain
# directories, loop devices.
n=${CYCLES:-20}
cfg=/harness/$NAME.cfg
domains() { xl list 2>/dev/null | tail -n +2 | wc -l; }
xsdoms() { xenstore-list /local/domain 2>/dev/null | wc -l; }
loops() { losetup -a 2>/dev/null | wc -l; }
d0=$(domains); x0=$(xsdoms); l0=$(loops)
ok=0
for i in $(seq 1 "$n"); do
    c=cycle-$i
    mac=$(printf '00:16:3e:00:%02x:%02x' $((1 + i / 256)) $((i % 256)))
    read -r c0 _ </proc/uptime
    if ! timeout -k 5 60 xl create "$cfg" "name=\"$c\"" "vif=['bridge=xenbr0,mac=$mac']" >/tmp/cycle.log 2>&1; then
        sed "s/^/cycle $i: xl create: /" /tmp/cycle.log | tail -n 5
    fi
    read -r c1 _ </proc/uptime
    # Up to 60 s for the vif to connect: `xl create` itself has been seen
    # to take most of a minute now and then under TCG.
    st=
    for _ in $(seq 600); do
        d=$(xl domid "$c" 2>/dev/null)
        [ -n "$d" ] && st=$(xenstore-read "/local/domain/0/backend/vif/$d/0/state" 2>/dev/null)
        [ "$st" = 4 ] && break
        sleep 0.1
    done
    [ "$st" = 4 ] && ok=$((ok + 1))
    timeout -k 5 30 xl destroy "$c" >/dev/null 2>&1
    # Every cycle in the suite; every tenth in the long version.
    if [ "$n" -le 20 ] || [ $((i % 10)) = 0 ]; then
        echo "cycle $i: vif state ${st:-none} (xl create $(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.1f", b - a}') s)"
    fi
done
sleep 1
main=$(xl domid "$NAME")
left=$(xenstore-list /local/domain/0/backend/vif 2>/dev/null | grep -vx "$main" | wc -l)
vifs=$(ip -o link show | grep -c ': vif')
echo "cycles: $ok of $n connected; backend dirs left $left; vifs $vifs"
echo "cycles left: domains $(($(domains) - d0)), xenstore domain dirs $(($(xsdoms) - x0)), loop devices $(($(loops) - l0))"
timeout -k 5 20 xl shutdown "$NAME"

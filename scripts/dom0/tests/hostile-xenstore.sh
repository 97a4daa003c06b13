#!/bin/bash
# (After lib.sh: up, since, ask, connect_echo, $ip.)
# A hostile toolstack against the echo guest: dom0 writes garbage into every
# xenstore key the guest reads — control/shutdown, memory/target, the vif's
# frontend keys (backend, backend-id, mac) and its backend directory (state
# and feature flags) — values that are empty, non-numeric, negative, huge,
# 4000 bytes long, binary, or paths into other domains' directories; then
# flips control/shutdown, memory/target and the backend's state hundreds of
# times in a burst; then `xl mem-set` far below the working set. One TCP
# connection from dom0 must echo after each step; the guest's stats before
# and after are reported for the judge (grants, ports, heap). Keys that the
# toolstack or the backend read themselves are put back after (the vif's
# frontend keys, the backend's state and flags), so the domain can still
# be shut down and torn down cleanly. Then `xl shutdown`.
d=$(timeout 10 xl domid "$NAME")
home=/local/domain/$d
fe=$home/device/vif/0
be=$(timeout 10 xenstore-read "$fe/backend")
# (`--`: values like "-1" are not options.)
xsw() { timeout -k 2 10 xenstore-write -- "$@" 2>/dev/null; }
big=$(head -c 4000 /dev/zero | tr '\0' 7)
values=("" "abc" "-1" "18446744073709551617" "$big" $'\x01\x02\xfe binary' \
    "../../../0/backend/vif/$d/0" "/local/domain/0/backend/vif/$d/0" "4 4" "0x10")
# throw KEY: every value into KEY, in one xenstore-write (one write each).
throw() {
    local args=() v
    for v in "${values[@]}"; do args+=("$1" "$v"); done
    xsw "${args[@]}"
    echo "threw: $1 rc=$? values=${#values[@]}"
}
# keep KEY...: their values now, to put back with `restore`.
saved=()
keep() { local k; for k in "$@"; do saved+=("$k" "$(timeout 10 xenstore-read "$k" 2>/dev/null)"); done; }
restore() { xsw "${saved[@]}"; echo "restored: ${#saved[@]} keys rc=$?"; saved=(); }

connect_echo
ask stats 10 "stats-before"

throw "$home/control/shutdown"
ask "hello after control" 10 "tcp control"

target=$(timeout 10 xenstore-read "$home/memory/target")
throw "$home/memory/target"
xsw "$home/memory/target" "$target"
ask "hello after target" 10 "tcp target"

keep "$fe/backend" "$fe/backend-id" "$fe/mac"
throw "$fe/backend"
throw "$fe/backend-id"
throw "$fe/mac"
restore
ask "hello after frontend" 10 "tcp frontend"

flags=$(timeout 10 xenstore-list "$be" | grep '^feature-' | head -n 12)
keep "$be/state"
for f in $flags; do keep "$be/$f"; done
throw "$be/state"
for f in $flags; do throw "$be/$f" >/dev/null; done
echo "threw: $(echo $flags | wc -w) backend feature flags"
restore
ask "hello after backend" 10 "tcp backend"

# The storm: 300 writes each into control/shutdown, memory/target and the
# backend's state, alternating garbage, in three processes at once.
up; t=$UP
for k in "$home/control/shutdown" "$home/memory/target" "$be/state"; do
    args=()
    for i in $(seq 150); do args+=("$k" "x$i" "$k" ""); done
    xsw "${args[@]}" &
done
wait
xsw "$home/memory/target" "$target" "$be/state" 4
echo "storm: 900 writes in $(since "$t") s"
# One more a second later: the guest's line about it counts the ones it
# held back during the storm.
sleep 1.2
xsw "$home/control/shutdown" "after-the-storm" "$home/memory/target" "after-the-storm"
xsw "$home/memory/target" "$target"
ask "hello after the storm" 20 "tcp storm"

# xl mem-set far below what the guest uses, then back.
# (xl list shows the domain's pages once the guest has given them back.)
timeout -k 5 20 xl mem-set "$NAME" 4m
for _ in $(seq 10); do sleep 1; m=$(timeout 10 xl list "$NAME" | awk 'NR==2{print $3}'); [ "${m:-4}" != 4 ] && [ "${m:-32}" != 32 ] && break; done
echo "mem-set 4: xl list ${m:-?} MiB"
ask "hello after mem-set" 20 "tcp mem-set"
timeout -k 5 20 xl mem-set "$NAME" 32m
sleep 2
echo "mem-set 32: xl list $(timeout 10 xl list "$NAME" | awk 'NR==2{print $3}') MiB"

ask stats 10 "stats-after"
exec 4>&-
timeout -k 5 20 xl shutdown "$NAME"

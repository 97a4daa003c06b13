#!/bin/bash
# (After lib.sh: up, since, ask, connect_echo, first_ping, reach_peer, $ip, $peer.)
# Against an echo guest that libvirt created: `virsh migrate --live` to the
# second harness host (the peer, 10.0.0.254, whose libvirtd listens on TCP
# on the hosts' private link) and back, through virsh only, one TCP
# connection from this dom0 open across both moves. At each step libvirt is
# asked where the domain is (`domstate` on both hosts: running on one, "not
# found" on the other); what virsh printed is reported verbatim. Then
# `virsh shutdown`.
here=xen:///system
there=xen+tcp://$peer/system
v() { local c=$1; shift; timeout -k 5 60 virsh -c "$c" "$@" 2>&1 | tr -d '\r' | sed '/^[[:space:]]*$/d'; return "${PIPESTATUS[0]}"; }
# domstate on one host: LABEL URI -> "LABEL: <state or error> rc=N"
state() { local out rc; out=$(v "$2" domstate "$NAME"); rc=$?; echo "$1: $(echo "$out" | head -n 1) rc=$rc"; }
# One `virsh migrate --live` from the libvirt at $1 to the one at $2, the
# migration stream to the host $3 (libvirt would otherwise name the
# destination by its host name, which neither host can resolve). In the
# background with a line every 30 s: the harness takes a long silence for
# a stuck session. Prints "LABEL: rc=N seconds=S ping-after=P" and, when it
# failed, virsh's output as "LABEL-log: " lines.
migrate() {
    local from=$1 to=$2 addr=$3 label=$4 t mpid n=0 rc
    up; t=$UP
    timeout -k 5 240 virsh -c "$from" migrate --live --verbose "$NAME" "$to" "tcp://$addr" \
        >/tmp/"$NAME".virsh-mig.log 2>&1 &
    mpid=$!
    while kill -0 "$mpid" 2>/dev/null; do
        sleep 1
        n=$((n + 1))
        [ $((n % 30)) = 0 ] && echo "still migrating ($n s)"
    done
    wait "$mpid"
    rc=$?
    echo "$label: rc=$rc seconds=$(since "$t") ping-after=$(first_ping)"
    tr -d '\r' </tmp/"$NAME".virsh-mig.log | tr '\033' '\n' | sed '/^[[:space:]]*$/d; /Migration: \[/d' |
        sed "s/^/$label-log: /"
}

# The peer boots alongside this host, its libvirtd in the background.
up; t=$UP
reach_peer
for _ in $(seq 120); do
    v "$there" version >/tmp/peer-version.log 2>&1 && break
    sleep 1
done
echo "peer libvirt after $(since "$t") s: $(grep -m 1 'running hypervisor' /tmp/peer-version.log || tail -n 1 /tmp/peer-version.log)"
connect_echo
ask "hello before migrating" 5 "tcp before"
state "home-before" "$here"

migrate "$here" "$there" $peer away
state "home-away" "$here"
state "peer-away" "$there"
v "$there" dominfo "$NAME" | grep -E '^(Id|State|Max memory|Used memory):' | sed 's/^/peer-dominfo: /'
ask "hello from the other host" 20 "tcp away"
ask stats 20 "stats-away"

migrate "$there" "$here" 10.0.0.1 back
state "peer-back" "$there"
state "home-back" "$here"
ask "hello back home" 20 "tcp home"
ask stats 20 "stats-home"
# What the guest printed on the second host (its xenconsoled's log).
exec 5<>/dev/tcp/$peer/5556 && { echo "console $NAME" >&5; timeout 30 cat <&5; exec 5>&-; }
exec 4>&-
out=$(v "$here" shutdown "$NAME")
echo "shutdown: rc=$? $out"

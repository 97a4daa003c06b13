#!/bin/bash
# (After lib.sh: up, since, ask, connect_echo, first_ping, reach_peer, $ip, $peer.)
# Against an echo guest: a live migration to the second harness host (the
# peer, 10.0.0.254, on the same Ethernet through the hosts' NICs) and back,
# one TCP connection from this dom0 open across both. The peer's agent
# (scripts/dom0/peer-agent.sh, port 5556) does the migration back, and
# returns what the guest printed there. Then `xl shutdown`.
# One command to the peer's agent; prints its answer.
agent() {
    exec 5<>/dev/tcp/$peer/5556 || { echo "peer: no agent"; return 1; }
    printf '%s\n' "$1" >&5
    timeout 300 cat <&5
    exec 5>&-
}
# The peer boots alongside this host; it may still be on its way.
up; t=$UP
reach_peer
for _ in $(seq 60); do
    r=$(agent hello 2>/dev/null)
    case $r in *"peer: ready"*) break ;; esac
    sleep 1
done
echo "peer reachable after $(since "$t") s"
echo "$r"
connect_echo
ask "hello before migrating" 5 "tcp before"

up; t=$UP
# In the background, with a line every 30 s: the harness takes a long
# silence for a stuck session.
timeout -k 5 240 xl migrate -s '' "$NAME" "busybox nc $peer 5555" >/tmp/"$NAME".mig.log 2>&1 &
mpid=$! n=0
while kill -0 "$mpid" 2>/dev/null; do
    sleep 1
    n=$((n + 1))
    [ $((n % 30)) = 0 ] && echo "still migrating ($n s): $(grep -v progress /tmp/"$NAME".mig.log | tail -n 1)"
done
wait "$mpid"
rc=$?
d=$(since "$t")
echo "away: rc=$rc seconds=$d ping-after=$(first_ping)"
[ "$rc" = 0 ] || grep -v progress /tmp/"$NAME".mig.log | tail -n 30 | sed 's/^/migrate-log: /'
ask "hello from the other host" 20 "tcp away"
ask stats 20 "stats-away"

agent "migrate $NAME 10.0.0.1"
# The domain is this host's again once xl migrate-receive created it.
for _ in $(seq 100); do
    timeout -k 5 10 xl list "$NAME" >/dev/null 2>&1 && break
    sleep 0.2
done
echo "home: ping-after=$(first_ping)"
ask "hello back home" 20 "tcp home"
ask stats 20 "stats-home"
agent "console $NAME"
exec 4>&-
timeout -k 5 20 xl shutdown "$NAME"

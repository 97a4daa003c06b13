#!/bin/bash
# (After lib.sh: up, since, ask, connect_echo, $ip.)
# A backend that drives its state machine out of order, against the echo
# guest: dom0 writes the vif backend's `state` behind netback's back.
# 1. One Closing: the guest must answer Closed, rearm (Initialising), and
#    reconnect through the real netback; the TCP connection from dom0 lives on.
# 2. Three seconds of Closing/Closed/InitWait/Connected in a loop, ending on
#    Closing: the guest backs off, reconnects once the loop stops, keeps
#    serving, and its grants and event channels are what they were.
# 3. The loop for good: the guest must give up (after its close limit) rather
#    than reconnect for ever, tell the app (which says so) and stay up until
#    `xl shutdown`.
d=$(timeout 10 xl domid "$NAME")
fe=/local/domain/$d/device/vif/0
be=$(timeout 10 xenstore-read "$fe/backend")
xsw() { timeout -k 2 10 xenstore-write -- "$@" 2>/dev/null; }
xsr() { timeout -k 2 10 xenstore-read "$1" 2>/dev/null; }
# connected SECONDS: waits until both ends say Connected; prints how long.
connected() {
    local t
    up; t=$UP
    for _ in $(seq $(($1 * 10))); do
        [ "$(xsr "$fe/state")" = 4 ] && [ "$(xsr "$be/state")" = 4 ] && { since "$t"; return 0; }
        sleep 0.1
    done
    echo "not within $1 s (frontend $(xsr "$fe/state"), backend $(xsr "$be/state"))"
    return 1
}
# flip SECONDS: writes Closing, Closed, InitWait, Connected into the
# backend's state in a loop, each left there a moment (a value overwritten
# within a millisecond is never read by anyone), ending on Closing; prints
# how many writes.
flip() {
    local n=0 end
    up; end=$(awk -v a="$UP" -v b="$1" 'BEGIN {print a + b}')
    while up; awk -v a="$UP" -v b="$end" 'BEGIN {exit !(a < b)}'; do
        xsw "$be/state" 5; sleep 0.15
        xsw "$be/state" 6; sleep 0.15
        xsw "$be/state" 2; sleep 0.05
        xsw "$be/state" 4; sleep 0.15
        n=$((n + 4))
    done
    xsw "$be/state" 5
    echo "$((n + 1))"
}

connect_echo
ask stats 10 "stats-before"

xsw "$be/state" 5
echo "one close: reconnected in $(connected 30) s"
ask "hello after one close" 30 "tcp one close"
# A stable connection: the guest's count of closes in a row starts again.
sleep 11

echo "loop: $(flip 3) writes in 3 s"
echo "loop: reconnected in $(connected 60) s"
ask "hello after the loop" 30 "tcp loop"
ask stats 10 "stats-after"
exec 4>&-

# Long enough for the guest's close limit (its back-off doubles from 1 s).
echo "for good: $(flip 45) writes in 45 s"
# Put a sane state back: a guest that gave up must not come back.
xsw "$be/state" 4
sleep 5
echo "for good: frontend state $(xsr "$fe/state")"
echo "for good: ping $(ping -c 3 -W 1 $ip 2>&1 | grep -o '[0-9]* received' || echo '? received')"
timeout -k 5 20 xl shutdown "$NAME"

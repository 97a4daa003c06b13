#!/bin/bash
# Runs one guest in the harness dom0 and reports on the console:
#   HARNESS: guest NAME created rc=N seconds=S      (xl create returned)
#   G NAME| <line>                                  (each guest console line, live)
#   HARNESS: guest NAME end state=STATE reason=R seconds=S
# STATE is poweroff, reboot, crashed, timeout or create-failed; seconds count from
# `xl create`. The config must preserve the domain on shutdown (on_poweroff,
# on_reboot, on_crash = "preserve") so the reason can be read; it is destroyed here.
# Judging the result is left to the caller (cargo xtask test).
#   usage: run-guest.sh NAME CONFIG TIMEOUT_SECONDS
set -u
name=$1 cfg=$2 limit=$3
log=/var/log/xen/console/guest-$name.log
h() { echo "HARNESS: $*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.3f", b-a}'; }

: >"$log"
shown=0
# Prints the console lines xenconsoled logged since the last call; with "final",
# also an unterminated last line.
emit() {
    local total
    total=$(wc -l <"$log")
    if [ "$total" -gt "$shown" ]; then
        sed -n "$((shown + 1)),${total}p" "$log" | sed "s/\r\$//; s/^/G $name| /"
        shown=$total
    fi
    if [ "${1:-}" = final ] && [ -s "$log" ] && [ -n "$(tail -c 1 "$log" | tr -d '\n')" ]; then
        tail -n 1 "$log" | sed "s/\r\$//; s/^/G $name| /"
        echo
    fi
}
t0=$(now)
# xl 4.17's monitor can crash (rc 3 or 139) when a guest shuts down within a
# fraction of a second; judge by the domain's state, not by xl's exit code.
xl create "$cfg" >/tmp/xl-create-$name.log 2>&1
rc=$?
h "guest $name created rc=$rc seconds=$(since "$t0")"

state=timeout reason=-
deadline=$(( $(date +%s) + limit ))
while [ "$(date +%s)" -lt "$deadline" ]; do
    emit
    line=$(xl list -v "$name" 2>/dev/null | awk 'NR==2')
    if [ -z "$line" ]; then
        if [ "$rc" != 0 ]; then state=create-failed; else state=gone; fi
        break
    fi
    st=$(echo "$line" | awk '{print $5}')
    case $st in
        *c*) state=crashed; reason=3; break ;;
        *s*)
            reason=$(echo "$line" | awk '{print $8}')
            case $reason in 0) state=poweroff ;; 1) state=reboot ;; 3) state=crashed ;; *) state=shutdown ;; esac
            break ;;
    esac
    sleep 0.05
done
end=$(since "$t0")
sleep 0.3   # let xenconsoled write out what the guest flushed before shutting down
emit final
if [ "$state" != poweroff ]; then
    sed "s/^/HARNESS: xl: /" /tmp/xl-create-$name.log
    xl dmesg | tail -n 15 | sed "s/^/HARNESS: xl-dmesg: /"
fi
h "guest $name end state=$state reason=$reason seconds=$end"
xl destroy "$name" >/dev/null 2>&1

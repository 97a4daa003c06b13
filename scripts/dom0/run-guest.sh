#!/bin/bash
# Runs one guest in the harness dom0 and reports on the console:
#   HARNESS: guest NAME created rc=N seconds=S      (xl create returned)
#   G NAME| <line>                                  (each guest console line, live)
#   HARNESS: guest NAME end state=STATE reason=R seconds=S
# STATE is poweroff, reboot, crashed, timeout or create-failed; seconds count from
# `xl create`. The config must preserve the domain on shutdown (on_poweroff,
# on_reboot, on_crash = "preserve") so the reason can be read; it is destroyed here.
# With DUMP_AT (a grep -E pattern), when a console line matches, the harness
# takes `xl dump-core` of the running guest, reports
#   HARNESS: guest NAME dump-core rc=N bytes=B
# and then presses Enter on the guest's console so it can go on.
# A guest may ask for what only the toolstack sees by printing a line
#   harness: xl-mem TAG
# the harness reports `xl list`'s memory column (MiB) as
#   HARNESS: guest NAME xl-mem tag=TAG mib=N
# and types N and Enter into the guest's console.
# If /harness/NAME.input exists, its lines are typed into the guest's console
# one at a time, each when the guest shows its prompt (a line starting `rt> `)
# once more than lines were typed so far: a scripted `xl console` session.
# Judging the result is left to the caller (cargo xtask test).
#   usage: run-guest.sh NAME CONFIG TIMEOUT_SECONDS [DUMP_AT]
set -u
name=$1 cfg=$2 limit=$3 dump_at=${4:-} dumped=0 asked=0 typed=0
input=/harness/$name.input
# Every xl call is bounded: a wedged toolstack must not stall the run.
# (-k: an xl that ignores SIGTERM is killed 5 s later.)
xlt() { local t=$1; shift; timeout -k 5 "$t" xl "$@"; }
log=/var/log/xen/console/guest-$name.log
h() { echo "HARNESS: $*"; }
# Time is read from /proc/uptime (monotonic, and `read` is a builtin): the
# watch loop must not end early because a clock stepped or a fork failed.
tick() { read -r UP _ </proc/uptime; }
now() { tick; echo "$UP"; }
since() { tick; awk -v a="$1" -v b="$UP" 'BEGIN{printf "%.3f", b-a}'; }

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
# fraction of a second, and `xl create` has been seen to block for a minute
# after the domain was already running: judge by the domain's state, not by
# xl's exit code, and watch the guest while `xl create` is still running.
xlt 60 create "$cfg" >/tmp/xl-create-$name.log 2>&1 &
cpid=$! rc=

state=timeout reason=-
tick
deadline=$(( ${UP%.*} + limit ))
while tick && [ "${UP%.*}" -lt "$deadline" ]; do
    if [ -z "$rc" ] && ! kill -0 "$cpid" 2>/dev/null; then
        wait "$cpid"
        rc=$?
        h "guest $name created rc=$rc seconds=$(since "$t0")"
    elif [ -z "$rc" ] && [ -z "${slow:-}" ] && [ "${UP%.*}" -gt "$(( ${t0%.*} + 15 ))" ]; then
        slow=1
        h "warning: xl create $name still running after 15 s"
        { xlt 10 list; xlt 10 info | grep -E 'free_memory|total_memory'; ps -eo pid,etime,args | grep -E '[x]l |[x]enstore'; } \
            2>&1 | sed "s/^/HARNESS: diag: /"
    fi
    emit
    if [ -n "$dump_at" ] && [ "$dumped" = 0 ] && grep -Eq "$dump_at" "$log"; then
        dumped=1
        core=/tmp/$name.core
        xlt 120 dump-core "$name" "$core" >/tmp/xl-dump-$name.log 2>&1
        drc=$?
        h "guest $name dump-core rc=$drc bytes=$(stat -c %s "$core" 2>/dev/null || echo 0)"
        [ "$drc" = 0 ] || sed "s/^/HARNESS: xl: /" /tmp/xl-dump-$name.log
        rm -f "$core"
        tty=$(timeout 10 xenstore-read "/local/domain/$(xlt 10 domid "$name")/console/tty" 2>/dev/null)
        [ -n "$tty" ] && printf '\r' >"$tty"
    fi
    if [ -f "$input" ] && [ "$typed" -lt "$(wc -l <"$input")" ] \
        && [ "$(grep -a -c '^rt> ' "$log")" -gt "$typed" ]; then
        typed=$((typed + 1))
        tty=$(timeout 10 xenstore-read "/local/domain/$(xlt 10 domid "$name")/console/tty" 2>/dev/null)
        [ -n "$tty" ] && printf '%s\r' "$(sed -n "${typed}p" "$input")" >"$tty"
    fi
    asks=$(grep -a -c '^harness: xl-mem ' "$log")
    if [ "$asks" -gt "$asked" ]; then
        asked=$((asked + 1))
        tag=$(grep -a '^harness: xl-mem ' "$log" | sed -n "${asked}p" | awk '{print $3}' | tr -d '\r')
        mib=$(xlt 10 list "$name" 2>/dev/null | awk 'NR==2{print $3}')
        h "guest $name xl-mem tag=$tag mib=${mib:-?}"
        tty=$(timeout 10 xenstore-read "/local/domain/$(xlt 10 domid "$name")/console/tty" 2>/dev/null)
        [ -n "$tty" ] && printf '%s\r' "${mib:-?}" >"$tty"
    fi
    line=$(xlt 10 list -v "$name" 2>/dev/null | awk 'NR==2')
    lrc=${PIPESTATUS[0]}
    if [ "$lrc" = 124 ]; then
        h "warning: xl list $name timed out"
        continue
    fi
    if [ -z "$line" ]; then
        # Not there yet while `xl create` is still building it.
        if [ -z "$rc" ]; then sleep 0.05; continue; fi
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
tick
[ "$state" = timeout ] && h "guest $name deadline reached: uptime=$UP deadline=$deadline (limit $limit s) xl-create=${rc:-running} xl-list=${line:-none}"
if [ -z "$rc" ]; then
    kill "$cpid" 2>/dev/null
    wait "$cpid"
    h "guest $name created rc=unfinished seconds=$end (xl create still running when the guest ended)"
fi
sleep 0.3   # let xenconsoled write out what the guest flushed before shutting down
emit final
if [ "$state" != poweroff ]; then
    sed "s/^/HARNESS: xl: /" /tmp/xl-create-$name.log
    # The last lines of Xen's log, without the HVM context save/restore chatter.
    xlt 10 dmesg | grep -Ev 'HVM[0-9]* restore:|HVM d[0-9]+(v[0-9]+)? save:' | tail -n 15 \
        | sed "s/^/HARNESS: xl-dmesg: /"
fi
h "guest $name end state=$state reason=$reason seconds=$end"
xlt 30 destroy "$name" >/dev/null 2>&1

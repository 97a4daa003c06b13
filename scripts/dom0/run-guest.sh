#!/bin/bash
# Runs one guest in the harness dom0 and reports on the console:
#   HARNESS: guest NAME created rc=N seconds=S      (xl create returned)
#   G NAME| <line>                                  (each guest console line, live)
#   HARNESS: guest NAME end state=STATE reason=R seconds=S
#   HARNESS: guest NAME still running (S s)       (every 30 s while it runs)
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
# Lines starting with `@` are done by the harness instead, while the guest
# waits at its prompt, and reported:
#   @idle S        HARNESS: guest NAME idle seconds=S cpu=C   (`xl list` Time(s) delta)
#   @mem-set MIB   HARNESS: guest NAME mem-set mib=MIB list=M seconds=T
#                  (`xl mem-set`, then up to 20 s until `xl list` shows MIB)
#   @xl CMD        HARNESS: guest NAME xl CMD rc=R at=T done=D  (`xl CMD NAME`;
#                  T: when it was started, D: when it returned, in seconds
#                  since `xl create` like the end line's; `@xl shutdown -w`
#                  returns once the domain has shut down)
# If /harness/NAME.dom0 exists, dom0 runs it (bash, NAME set) once the guest
# prints `harness: net-ready`: network checks from dom0's side of xenbr0.
# Its output is reported as `HARNESS: guest NAME dom0| <line>`, then
#   HARNESS: guest NAME dom0 rc=N
# If /harness/NAME.early exists, dom0 starts it in the background as `xl
# create` starts (timings from creation, e.g. until the first ping reply);
# its output is reported as `HARNESS: guest NAME early| <line>`. Such a
# guest's `xl create` also runs with -vvv, each log line stamped with dom0's
# uptime as it arrives; once the guest ended, the toolstack's steps are
# reported in seconds since `xl create` started, each once, as
#   HARNESS: guest NAME early| xl STEP: S s
# STEP: build-start, build-end (the domain builder), initwait (the vif's
# backend at InitWait), hotplug-start, hotplug-end (the vif's hotplug
# script), unpause (the domain is let run: its first instruction).
# A guest that prints `burst: done` has its lines `burst NNN <payload>` checked
# (not echoed): line i's payload is the alphabet from letter i mod 26 onwards,
# repeated, as long as the first line's. Reported as
#   HARNESS: guest NAME burst lines=K good=G bytes=B
# If /harness/NAME.before exists, dom0 runs it (bash, NAME set) before `xl
# create` (e.g. to make the guest's disk images), reported as
#   HARNESS: guest NAME before| <line>   and   HARNESS: guest NAME before rc=N
# a failing one ends the guest as create-failed without creating it. If
# /harness/NAME.after exists, dom0 runs it once the domain is destroyed (its
# disks released: checks of what the guest left on them), reported as
#   HARNESS: guest NAME after| <line>    and   HARNESS: guest NAME after rc=N
# If /harness/NAME.xml exists, `virsh -c xen:///system create` makes the
# domain from it instead of `xl create` (a libvirt test; its errors are
# reported verbatim as `HARNESS: xl: ` lines), a reboot is followed (libvirt
# creates the domain again) and reported as
#   HARNESS: guest NAME rebooting (libvirt restarts it) seconds=S
# and two more `@` lines drive it:
#   @virsh CMD ARGS  `virsh CMD ARGS` ({} is the domain, else appended but
#                    for `restore FILE`), its
#                    output as `HARNESS: guest NAME virsh| <line>`, then
#                    HARNESS: guest NAME virsh CMD ARGS rc=R at=T done=D
#                    after `reboot`, once libvirt created the domain again
#                    and its new boot showed a prompt:
#                    HARNESS: guest NAME rebooted domid=A->B seconds=S
#   @virsh-console LINE  LINE typed through `virsh console`, what it showed
#                    as `virsh-console| <line>`, then `virsh-console rc=R`
#   @flood BYTES   BYTES random bytes without CR or LF typed into the
#                  console at once (a binary flood, at the guest's pace, 90 s
#                  at most), then Enter; reported as
#                  HARNESS: guest NAME flood bytes=B seconds=S
# Judging the result is left to the caller (cargo xtask test).
#   usage: run-guest.sh NAME CONFIG TIMEOUT_SECONDS [DUMP_AT]
set -u
name=$1 cfg=$2 limit=$3 dump_at=${4:-} dumped=0 asked=0 typed=0 used=0 burst=0 ran=0
input=/harness/$name.input
# Every xl call is bounded: a wedged toolstack must not stall the run.
# (-k: an xl that ignores SIGTERM is killed 5 s later.)
xlt() { local t=$1; shift; timeout -k 5 "$t" xl "$@"; }
# The same for virsh, on libvirt's libxl driver.
virshc() { local t=$1; shift; timeout -k 5 "$t" virsh -c xen:///system "$@"; }
# With /harness/NAME.xml the guest is created by `virsh create` from it (a
# libvirt test); the harness then follows it across a reboot, which
# libvirt answers by creating it again.
xml=/harness/$name.xml
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
        # (Lines cut at 4 KiB: a guest's giant line must not hold up dom0's
        # console, which carries the whole session.)
        sed -n "$((shown + 1)),${total}p" "$log" | sed "s/\r\$//; /^burst [0-9]/d; s/^/G $name| /" | cut -b 1-4096
        shown=$total
    fi
    if [ "${1:-}" = final ] && [ -s "$log" ] && [ -n "$(tail -c 1 "$log" | tr -d '\n')" ]; then
        tail -n 1 "$log" | sed "s/\r\$//; s/^/G $name| /"
        echo
    fi
}
# `xl list` columns of the guest: $1 = column number (3 Mem, 6 Time(s)).
xl_col() { xlt 10 list "$name" 2>/dev/null | awk -v c="$1" 'NR==2{print $c}'; }
# Runs one `@` line of the input (see the header).
directive() {
    set -- $1
    case $1 in
        idle)
            local c1 c2
            c1=$(xl_col 6); sleep "$2"; c2=$(xl_col 6)
            h "guest $name idle seconds=$2 cpu=$(awk -v a="${c1:-0}" -v b="${c2:-0}" 'BEGIN{printf "%.1f", b-a}')"
            ;;
        mem-set)
            local t1 m=
            t1=$(now)
            xlt 20 mem-set "$name" "$2"m >/tmp/xl-mem-$name.log 2>&1 || sed "s/^/HARNESS: xl: /" /tmp/xl-mem-$name.log
            for _ in $(seq 200); do
                m=$(xl_col 3)
                [ "$m" = "$2" ] && break
                sleep 0.1
            done
            h "guest $name mem-set mib=$2 list=${m:-?} seconds=$(since "$t1")"
            ;;
        xl)
            shift
            local at rc
            at=$(since "$t0")
            xlt 20 "$@" "$name" >/tmp/xl-cmd-$name.log 2>&1
            rc=$?
            h "guest $name xl $* rc=$rc at=$at done=$(since "$t0")"
            ;;
        virsh)
            # `virsh -c xen:///system CMD ...` with {} standing for the
            # domain (appended when absent); its output verbatim.
            shift
            local at rc a args=()
            for a in "$@"; do [ "$a" = "{}" ] && a=$name; args+=("$a"); done
            # (`restore` names a save file, not a domain.)
            case " $* " in *" {} "*|" restore "*) ;; *) args+=("$name") ;; esac
            at=$(since "$t0")
            local before
            before=$(xlt 10 domid "$name" 2>/dev/null)
            virshc 60 "${args[@]}" >/tmp/virsh-$name.log 2>&1
            rc=$?
            tr -d '\r' </tmp/virsh-$name.log | sed "/^[[:space:]]*\$/d; s/^/HARNESS: guest $name virsh| /"
            h "guest $name virsh $* rc=$rc at=$at done=$(since "$t0")"
            if [ "$1" = reboot ] && [ "$rc" = 0 ]; then
                # libvirt answers the guest's reboot by creating the domain
                # again: wait (60 s at most) for the new domain id, then
                # let the next line wait for the new boot's prompt.
                local after=
                for _ in $(seq 600); do
                    after=$(xlt 10 domid "$name" 2>/dev/null)
                    [ -n "$after" ] && [ "$after" != "$before" ] && break
                    sleep 0.1
                done
                h "guest $name rebooted domid=$before->${after:-none} seconds=$(since "$t0")"
                # The new boot's prompt: after the runtime's last "asked to
                # reboot" line, some output (the boot) and then a prompt.
                for _ in $(seq 300); do
                    tr -d '\r' <"$log" | awk '
                        /the toolstack asked to reboot/ { after = 1; out = 0; found = 0; next }
                        after && !/^rt> / { out = 1 }
                        after && /^rt> / && out { found = 1 }
                        END { exit !found }' && break
                    sleep 0.1
                done
                typed=$(( $(grep -a -c '^rt> ' "$log") - 1 ))
            fi
            ;;
        virsh-console)
            # Types the rest of the line through `virsh console` in a pty
            # (script(1), as a user's terminal), then leaves with Ctrl-];
            # what the console showed is reported.
            shift
            local rc
            { sleep 2; printf '%s\r' "$*"; sleep 3; printf '\035'; sleep 1; } |
                timeout -k 5 30 script -qfec "virsh -c xen:///system console $name --force" /dev/null \
                    >/tmp/virsh-console-$name.log 2>&1
            rc=$?
            tr -d '\r' </tmp/virsh-console-$name.log | sed "/^[[:space:]]*\$/d; s/^/HARNESS: guest $name virsh-console| /"
            h "guest $name virsh-console rc=$rc"
            # The guest answers with a new prompt, like a typed line.
            typed=$((typed + 1))
            ;;
        flood)
            local t1 tty sent
            t1=$(now)
            tty=$(timeout 10 xenstore-read "/local/domain/$(xlt 10 domid "$name")/console/tty" 2>/dev/null)
            # (Without the erasing bytes too — backspace, delete, Ctrl-U —
            # which would make the line editor take and echo input again: a
            # terminal echoes what is typed; the test is about what the
            # guest keeps.)
            head -c "$2" /dev/urandom | tr -d '\r\n\010\177\025' >/tmp/flood-$name
            sent=0
            if [ -n "$tty" ]; then
                timeout -s INT 90 dd if=/tmp/flood-$name of="$tty" bs=4096 2>/tmp/flood-$name.log &
                local fpid=$! n=0
                while kill -0 "$fpid" 2>/dev/null; do
                    sleep 1
                    n=$((n + 1))
                    [ $((n % 20)) = 0 ] && h "guest $name still flooding ($n s)"
                done
                wait "$fpid"
                sent=$(awk '/bytes/{print $1; exit}' /tmp/flood-$name.log)
                printf '\r' >"$tty"
            fi
            rm -f /tmp/flood-$name
            h "guest $name flood bytes=${sent:-0} seconds=$(since "$t1")"
            # The Enter ends the flooded line: the shell answers with a new prompt.
            typed=$((typed + 1))
            ;;
        *) h "warning: unknown harness directive @$*" ;;
    esac
}
# Checks the guest's `burst NNN <payload>` lines (see the header).
check_burst() {
    tr -d '\r' <"$log" | awk -v name="$name" '
        BEGIN { a = "abcdefghijklmnopqrstuvwxyz"; rep = a; for (k = 0; k < 200; k++) rep = rep a }
        /^burst [0-9]+ / {
            n++; i = $2 + 0; p = substr($0, length($1 " " $2 " ") + 1)
            if (n == 1) len = length(p)
            bytes += length($0) + 1
            if (length(p) == len && p == substr(rep, (i % 26) + 1, len)) good++
        }
        END { printf "HARNESS: guest %s burst lines=%d good=%d bytes=%d\n", name, n, good, bytes }
    '
}
if [ -f "/harness/$name.before" ]; then
    NAME=$name timeout -k 5 "$limit" bash "/harness/$name.before" 2>&1 | sed "s/^/HARNESS: guest $name before| /"
    brc=${PIPESTATUS[0]}
    h "guest $name before rc=$brc"
    if [ "$brc" != 0 ]; then
        h "guest $name end state=create-failed reason=- seconds=0"
        exit 1
    fi
fi
t0=$(now)
# xl 4.17's monitor can crash (rc 3 or 139) when a guest shuts down within a
# fraction of a second, and `xl create` has been seen to block for a minute
# after the domain was already running: judge by the domain's state, not by
# xl's exit code, and watch the guest while `xl create` is still running.
if [ -f "$xml" ]; then
    # libvirt's daemon starts in the background at boot: wait for it.
    for _ in $(seq 300); do [ -S /run/libvirt/libvirt-sock ] && break; sleep 0.1; done
    virshc 60 create "$xml" >/tmp/xl-create-$name.log 2>&1 &
elif [ -f "/harness/$name.early" ]; then
    # One awk for the whole log (no fork per line): it reads each line as
    # xl writes it (stderr is unbuffered) and stamps it.
    xlt 60 -vvv create "$cfg" >/tmp/xl-create-$name.log \
        2> >(awk -W interactive '{ getline u < "/proc/uptime"; close("/proc/uptime"); split(u, f, " "); print f[1], $0 }' >"/tmp/xl-steps-$name.log") &
else
    xlt 60 create "$cfg" >/tmp/xl-create-$name.log 2>&1 &
fi
cpid=$! rc=
# A timing script that starts with the domain (see GuestSpec::early); its
# times count from T0, as the toolstack's steps do.
epid=
if [ -f "/harness/$name.early" ]; then
    NAME=$name T0=$t0 timeout -k 5 "$limit" bash "/harness/$name.early" 2>&1 | sed -u "s/^/HARNESS: guest $name early| /" &
    epid=$!
fi

state=timeout reason=-
tick
deadline=$(( ${UP%.*} + limit ))
beat=${UP%.*}
while tick && [ "${UP%.*}" -lt "$deadline" ]; do
    # A heartbeat: the host takes a long silence for a wedged toolstack.
    if [ "${UP%.*}" -ge "$((beat + 30))" ]; then
        beat=${UP%.*}
        h "guest $name still running ($(since "$t0") s)"
    fi
    if [ -z "$rc" ] && ! kill -0 "$cpid" 2>/dev/null; then
        wait "$cpid"
        rc=$?
        h "guest $name created rc=$rc seconds=$(since "$t0")"
    elif [ -z "$rc" ] && [ -z "${slow:-}" ] && [ "${UP%.*}" -gt "$(( ${t0%.*} + 15 ))" ]; then
        slow=1
        h "warning: xl create $name still running after 15 s"
        { xlt 10 list; xlt 10 info | grep -E 'free_memory|total_memory'
          ps -eo pid,ppid,etime,wchan:24,args | grep -v '\[' | tail -n 15
          timeout 5 xenstore-ls -f /local/domain/0/backend 2>&1 | grep -E 'vbd.*/(state|hotplug-status|params|physical-device)' | head -n 20
          tail -n 12 /var/log/xen/xen-hotplug.log 2>/dev/null; } \
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
    if [ -f "$input" ] && [ "$used" -lt "$(wc -l <"$input")" ] \
        && [ "$(grep -a -c '^rt> ' "$log")" -gt "$typed" ]; then
        used=$((used + 1))
        next=$(sed -n "${used}p" "$input")
        case $next in
            @*) directive "${next#@}" ;;
            *)
                typed=$((typed + 1))
                tty=$(timeout 10 xenstore-read "/local/domain/$(xlt 10 domid "$name")/console/tty" 2>/dev/null)
                [ -n "$tty" ] && printf '%s\r' "$next" >"$tty"
                ;;
        esac
    fi
    if [ "$ran" = 0 ] && [ -f "/harness/$name.dom0" ] && grep -aq '^harness: net-ready' "$log"; then
        ran=1
        emit
        # Bounded by the guest's deadline: a guest that stops answering must
        # not hold a dom0 check (and with it this loop) forever.
        tick
        NAME=$name timeout -k 5 $(( deadline - ${UP%.*} > 1 ? deadline - ${UP%.*} : 1 )) \
            bash "/harness/$name.dom0" 2>&1 | sed "s/^/HARNESS: guest $name dom0| /"
        h "guest $name dom0 rc=${PIPESTATUS[0]}"
    fi
    if [ "$burst" = 0 ] && grep -aq '^burst: done' "$log"; then
        burst=1
        check_burst
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
        # A libvirt guest may be between libvirt's destroy and create of a
        # reboot (seen or not): it has 20 s to come back.
        if [ "$rc" = 0 ] && [ -f "$xml" ]; then
            gone_at=${gone_at:-${UP%.*}}
            if [ "${UP%.*}" -lt $((gone_at + 20)) ]; then sleep 0.1; continue; fi
        fi
        if [ "$rc" != 0 ]; then state=create-failed; else state=gone; fi
        break
    fi
    gone_at=
    st=$(echo "$line" | awk '{print $5}')
    case $st in *s*) ;; *) rebooting= ;; esac
    case $st in
        *c*) state=crashed; reason=3; break ;;
        *s*)
            reason=$(echo "$line" | awk '{print $8}')
            if [ "$reason" = 1 ] && [ -f "$xml" ]; then
                # libvirt restarts a rebooting guest (on_reboot restart).
                if [ -z "${rebooting:-}" ]; then
                    rebooting=1
                    h "guest $name rebooting (libvirt restarts it) seconds=$(since "$t0")"
                fi
                sleep 0.1; continue
            fi
            case $reason in 0) state=poweroff ;; 1) state=reboot ;; 3) state=crashed ;; *) state=shutdown ;; esac
            break ;;
    esac
    sleep 0.05
done
end=$(since "$t0")
[ -n "$epid" ] && { kill "$epid" 2>/dev/null; wait "$epid" 2>/dev/null; }
tick
if [ "$state" = timeout ]; then
    h "guest $name deadline reached: uptime=$UP deadline=$deadline (limit $limit s) xl-create=${rc:-running} xl-list=${line:-none}"
    # Where the guest is: its registers and the top of its stack.
    domid=$(xlt 10 domid "$name" 2>/dev/null) &&
        timeout 10 /usr/lib/xen-4.17/bin/xenctx -a -S "$domid" 0 2>&1 | head -n 60 | sed 's/^/HARNESS: diag: xenctx: /'
fi
if [ -z "$rc" ]; then
    kill "$cpid" 2>/dev/null
    wait "$cpid"
    h "guest $name created rc=unfinished seconds=$end (xl create still running when the guest ended)"
fi
sleep 0.3   # let xenconsoled write out what the guest flushed before shutting down
emit final
if [ "$state" != poweroff ]; then
    sed "s/^/HARNESS: xl: /" /tmp/xl-create-$name.log
    # A verbose `xl create` (a bench guest) logged its errors with the rest.
    [ -f "/tmp/xl-steps-$name.log" ] && grep -aiE 'error|warn|fail' "/tmp/xl-steps-$name.log" | cut -d' ' -f2- | sed "s/^/HARNESS: xl: /"
    if [ -f "$xml" ]; then
        # libvirt's side: is its daemon there, and what did it log.
        { pgrep -a libvirtd || echo "libvirtd is not running"
          ls -l /run/libvirt 2>&1 | head -n 8
          tail -n 15 /var/log/libvirt/libvirtd.log 2>&1
          tail -n 10 "/var/log/libvirt/libxl/$name.log" 2>/dev/null; } | sed "s/^/HARNESS: diag: libvirt: /"
    fi
    # The last lines of Xen's log, without the HVM context save/restore chatter.
    xlt 10 dmesg | grep -Ev 'HVM[0-9]* restore:|HVM d[0-9]+(v[0-9]+)? save:' | tail -n 15 \
        | sed "s/^/HARNESS: xl-dmesg: /"
fi
h "guest $name end state=$state reason=$reason seconds=$end"
# The toolstack's steps (see the top): the hotplug script ended when xl
# logged its next line.
if [ -f "/tmp/xl-steps-$name.log" ]; then
    awk -v a="$t0" '
        function at(step) { if (!(step in seen)) { seen[step] = 1; printf "xl %s: %.3f s\n", step, $1 - a } }
        hot == 1 { at("hotplug-end"); hot = 2 }
        /domainbuilder: detail: xc_dom_allocate:/ { at("build-start") }
        /domainbuilder: detail: xc_dom_release: called/ { at("build-end") }
        /backend\/vif\/.* wanted state 2 ok/ { at("initwait") }
        /forking to execute: .*\/vif-/ { at("hotplug-start"); if (!hot) hot = 1; next }
        /libxl_domain_unpause:/ { at("unpause") }
    ' "/tmp/xl-steps-$name.log" | while IFS= read -r l; do h "guest $name early| $l"; done
    rm -f "/tmp/xl-steps-$name.log"
fi
# The destroy runs in the background: an `xl destroy` stuck in the kernel
# (uninterruptible, so even `timeout -k` cannot end it) has stalled whole
# sessions after a PV guest. It is reported with where it sleeps, and left
# behind so the next guest can run.
xlt 30 destroy "$name" >/dev/null 2>&1 &
dpid=$!
for _ in $(seq 400); do
    kill -0 "$dpid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$dpid" 2>/dev/null; then
    h "warning: xl destroy $name still running after 40 s; left behind"
    ps -eo pid,stat,wchan:32,etime,args | grep -E '[x]l |[x]enstore|[x]enconsole' | sed 's/^/HARNESS: diag: /'
    for p in $(pgrep -f "xl destroy $name"); do
        sed "s/^/HARNESS: diag: stack $p: /" "/proc/$p/stack" 2>/dev/null
    done
    timeout 5 xl list 2>&1 | sed 's/^/HARNESS: diag: /'
fi
if [ -f "/harness/$name.after" ]; then
    if kill -0 "$dpid" 2>/dev/null; then
        h "guest $name after rc=skipped (the domain is not destroyed yet)"
    else
        NAME=$name timeout -k 5 "$limit" bash "/harness/$name.after" 2>&1 | sed "s/^/HARNESS: guest $name after| /"
        h "guest $name after rc=${PIPESTATUS[0]}"
    fi
fi

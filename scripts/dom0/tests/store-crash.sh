#!/bin/bash
# Against a store guest (its disk made by blk-before.sh): a client streams
# records `rec <id> <payload>` over TCP, each answered `ok <id>` once it is
# durable; `xl destroy` cuts the guest down mid-stream; the guest is booted
# again on the same disk, and its recovery must hold every acknowledged
# record, intact (the guest checks each against its payload). Reports
#   crash: acknowledged A before the destroy
#   crash: recovered N records, intact: yes|no
ip=10.0.0.2
log=/var/log/xen/console/guest-$NAME.log
acked=/tmp/$NAME-acked
: >"$acked"
payload() {
    local c
    c=$(printf "\\$(printf '%03o' $((97 + $1 % 26)))")
    printf '%*s' $((50 + $1 * 37 % 1500)) '' | tr ' ' "$c"
}
client() {
    exec 3<>"/dev/tcp/$ip/9000" || { echo "client: cannot connect"; return; }
    local i ans
    for ((i = 0; ; i++)); do
        echo "rec $i $(payload $i)" >&3 || break
        read -r -t 20 ans <&3 || break
        ans=${ans%$'\r'}
        if [ "$ans" != "ok $i" ]; then
            echo "client: record $i answered ${ans:-nothing}"
            break
        fi
        echo "$i" >>"$acked"
    done
}
client &
cpid=$!
# Let at least 100 records be acknowledged (at most 120 s), then cut.
for _ in $(seq 1200); do
    [ "$(wc -l <"$acked")" -ge 100 ] && break
    sleep 0.1
done
timeout -k 5 20 xl destroy "$NAME"
wait "$cpid" 2>/dev/null
echo "crash: acknowledged $(wc -l <"$acked") before the destroy"
# The same domain again, on the same disk.
boots=$(grep -ac '^store: recovered' "$log")
timeout -k 5 60 xl create "/harness/$NAME.cfg" >/tmp/xl-recreate-$NAME.log 2>&1 ||
    { echo "crash: xl create again failed"; sed 's/^/xl: /' /tmp/xl-recreate-$NAME.log; }
for _ in $(seq 600); do
    [ "$(grep -ac '^store: recovered' "$log")" -gt "$boots" ] && grep -aq '^store: \(all\|record\)' <(tail -n 5 "$log") && break
    sleep 0.1
done
rec=$(grep -a '^store: recovered' "$log" | tail -n 1 | tr -d '\r')
n=$(echo "$rec" | awk '{print $3}')
intact=no
tail -n 20 "$log" | tr -d '\r' | grep -q "^store: all $n records intact" && intact=yes
echo "crash: recovered ${n:-?} records, intact: $intact"
timeout -k 5 20 xl shutdown "$NAME"

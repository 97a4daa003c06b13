#!/bin/bash
# Helpers of the save/restore and migration scripts (prepended to each by
# xtask's test plan): timing from /proc/uptime, and one TCP connection to the
# echo guest on fd 4; the second harness host of two-host tests.
ip=10.0.0.2
peer=10.0.0.254
up() { read -r UP _ </proc/uptime; }
since() { up; awk -v a="$1" -v b="$UP" 'BEGIN {printf "%.2f", b - a}'; }
# ask LINE SECONDS LABEL: sends LINE on the connection, prints its echo.
ask() { printf '%s\n' "$1" >&4; l=; read -r -t "$2" l <&4; echo "$3: ${l:-no reply}"; }
# Opens the connection (fd 4); without one the guest is shut down and the
# script ends.
connect_echo() {
    if ! exec 4<>/dev/tcp/$ip/7; then
        echo "tcp: no connection"
        timeout -k 5 20 xl shutdown "$NAME"
        exit 1
    fi
}
# Seconds until the guest answers a ping (10 ms apart), from now.
first_ping() {
    local t
    up; t=$UP
    for _ in $(seq 1000); do
        ping -c 1 -W 0.2 $ip >/dev/null 2>&1 && break
    done
    since "$t"
}
# Waits (5 minutes at most) until the second host answers a ping: it boots
# alongside this one and may still be on its way.
reach_peer() {
    for _ in $(seq 300); do
        ping -c 1 -W 1 $peer >/dev/null 2>&1 && return
    done
}
# What dom0 sees of the guest's network (after it stopped answering): the
# vif's keys on both sides, the vif's counters, dom0's neighbour entry.
net_state() {
    local id
    id=$(xl domid "$NAME" 2>/dev/null) || { echo "net-state: no domain $NAME"; return; }
    {
        xenstore-ls -f /local/domain/0/backend/vif/"$id" 2>&1 | head -n 40
        xenstore-ls -f /local/domain/"$id"/device/vif 2>&1 | head -n 20
        ip -s link show vif"$id".0 2>&1
        ip neigh show $ip 2>&1
    } | sed 's/^/net-state: /'
}

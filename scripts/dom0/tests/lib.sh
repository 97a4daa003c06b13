#!/bin/bash
# Helpers of the save/restore and migration scripts (prepended to each by
# xtask's test plan): timing from /proc/uptime, and one TCP connection to the
# echo guest on fd 4.
ip=10.0.0.2
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

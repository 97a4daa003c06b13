#!/bin/bash
# Run once the guest says `harness: net-ready` (the bench's HTTP rows): the
# same load generator against our httpd and the Linux domU's server —
# 1 keep-alive client (600 requests), then 16 (16 x 50) — every answer
# checked, and our httpd's CPU line before and after the first; then
# `xl shutdown`.
ip=10.0.0.2
# Our httpd's status page has a `cpu:` line (time blocked, stack polls, its
# own share of each answer since boot); Linux's server has none.
cpu() {
    local l=
    if exec 5<>/dev/tcp/$ip/80; then
        printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$ip" >&5
        l=$(timeout 5 grep -a -m 1 '^cpu:' <&5)
        exec 5>&-
    fi
    echo "$1: ${l:-none}"
}
cpu cpu-before
/harness/bench-echo http-load "$ip:80" 1 600 1 2>&1 | sed 's/^http-load:/http1:/'
cpu cpu-http1
/harness/bench-echo http-load "$ip:80" 16 50 1 2>&1 | sed 's/^http-load:/http16:/'
timeout -k 5 30 xl shutdown "$NAME"

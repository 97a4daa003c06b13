#!/bin/bash
# Run once the guest says `harness: net-ready` (the bench's HTTP rows): the
# same load generator against our httpd and the Linux domU's server —
# 1 keep-alive client (600 requests), then 16 (16 x 50) — every answer
# checked; then `xl shutdown`.
ip=10.0.0.2
/harness/bench-echo http-load "$ip:80" 1 600 1 2>&1 | sed 's/^http-load:/http1:/'
/harness/bench-echo http-load "$ip:80" 16 50 1 2>&1 | sed 's/^http-load:/http16:/'
timeout -k 5 30 xl shutdown "$NAME"

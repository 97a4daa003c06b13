#!/bin/bash
# Against an httpd guest: the status page, a missing page, then 1000
# requests over 10 keep-alive connections, 4 pipelined at a time, each
# answer checked (/harness/bench-echo http-load), the server's counters
# after, and `xl shutdown`.
ip=10.0.0.2
timeout 10 busybox wget -q -O - "http://$ip/" 2>&1 | sed 's/^/page: /'
timeout 10 busybox wget -q -O - "http://$ip/missing" 2>&1 | head -n 1 | sed 's/^/missing: /'
timeout 300 /harness/bench-echo http-load "$ip:80" 10 100 4 2>&1
timeout 10 busybox wget -q -O - "http://$ip/" 2>&1 | grep -E '^(http|tasks|network): ' | sed 's/^/after: /'
timeout -k 5 20 xl shutdown "$NAME"

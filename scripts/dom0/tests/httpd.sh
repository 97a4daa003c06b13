#!/bin/bash
# Against an httpd guest: the status page, a missing page, two static
# files (from its FAT disk if it has one), then 1000
# requests over 10 keep-alive connections, 4 pipelined at a time, each
# answer checked (/harness/bench-echo http-load), the server's counters
# after, and `xl shutdown`.
ip=10.0.0.2
timeout 10 busybox wget -q -O - "http://$ip/" 2>&1 | sed 's/^/page: /'
timeout 10 busybox wget -q -O - "http://$ip/missing" 2>&1 | head -n 1 | sed 's/^/missing: /'
# Static files: served from the guest's FAT disk when it has one (the
# PVH test), 404 without (the PV test).
echo "file-hello: $(timeout 10 busybox wget -q -O - "http://$ip/hello.txt" 2>&1 | head -n 1)"
if timeout 30 busybox wget -q -O "/tmp/$NAME-seq.txt" "http://$ip/docs/seq.txt" 2>/dev/null &&
    seq 1 50000 | cmp -s - "/tmp/$NAME-seq.txt"; then
    echo "file-seq: identical ($(stat -c %s "/tmp/$NAME-seq.txt") bytes)"
else
    echo "file-seq: missing or different"
fi
rm -f "/tmp/$NAME-seq.txt"
timeout 300 /harness/bench-echo http-load "$ip:80" 10 100 4 2>&1
timeout 10 busybox wget -q -O - "http://$ip/" 2>&1 | grep -E '^(http|tasks|network): ' | sed 's/^/after: /'
timeout -k 5 20 xl shutdown "$NAME"

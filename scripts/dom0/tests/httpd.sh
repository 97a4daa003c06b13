#!/bin/bash
# Against an httpd guest: the status page, a missing page, `xl shutdown`.
ip=10.0.0.2
timeout 10 busybox wget -q -O - "http://$ip/" 2>&1 | sed 's/^/page: /'
timeout 10 busybox wget -q -O - "http://$ip/missing" 2>&1 | head -n 1 | sed 's/^/missing: /'
timeout -k 5 20 xl shutdown "$NAME"

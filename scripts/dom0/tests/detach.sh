#!/bin/bash
# Detaches the guest's vif while it runs (`xl network-detach`): the guest
# must notice, close its side and still shut down cleanly.
ip=10.0.0.2
ping -c 3 -W 2 $ip 2>&1 | tail -n 2 | sed 's/^/ping: /'
timeout -k 5 30 xl network-detach "$NAME" 0
echo "detach: rc=$?"
sleep 2
echo "vifs left: $(xl network-list "$NAME" 2>/dev/null | tail -n +2 | wc -l)"
timeout -k 5 20 xl shutdown "$NAME"

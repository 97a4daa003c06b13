#!/bin/bash
# Run once the guest says `harness: net-ready` (the bench's TCP guest ->
# dom0 row): 64 MiB from the guest's source port 19, read by
# `bench-echo sink` (one copy per byte in dom0; it also reports dom0's CPU
# share over the transfer), then `xl shutdown`.
ip=10.0.0.2
timeout 300 /harness/bench-echo sink "$ip:19" 67108864 || echo "tx64: failed"
timeout -k 5 30 xl shutdown "$NAME"

#!/bin/bash
# After a libvirt test's guest is gone (NAME set): libvirt creates it once
# more from the same XML and destroys it; then neither libvirt nor xl may
# know it. Errors are shown verbatim.
v() { timeout -k 5 60 virsh -c xen:///system "$@"; }
xml=/harness/$NAME.xml
v create "$xml" 2>&1 | grep -v '^$' | head -n 3
rc=${PIPESTATUS[0]}
echo "create rc=$rc"
[ "$rc" = 0 ] || exit 1
for _ in $(seq 150); do
    [ "$(v domstate "$NAME" 2>/dev/null | head -n 1)" = running ] && break
    sleep 0.2
done
echo "domstate: $(v domstate "$NAME" 2>&1 | head -n 1)"
v destroy "$NAME" 2>&1 | grep -v '^$' | head -n 2
echo "destroy rc=${PIPESTATUS[0]}"
echo "domstate after destroy: $(v domstate "$NAME" 2>&1 | head -n 1)"
if xl list "$NAME" >/dev/null 2>&1; then echo "xl list: still there"; else echo "xl list: gone"; fi

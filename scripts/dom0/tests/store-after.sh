#!/bin/bash
# After a store guest is gone: no loop device left; the disk goes.
echo "loops left: $(losetup -a | grep -c "$NAME" || true)"
rm -f "/tmp/$NAME-a.img" "/tmp/$NAME-acked"

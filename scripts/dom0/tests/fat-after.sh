#!/bin/bash
# After a fattest guest is gone: `fsck.vfat -n` of its disk, the files it
# wrote compared byte for byte, no loop device left; then the disk goes.
export MTOOLS_SKIP_CHECK=1
img=/tmp/$NAME-fat.img
fsck.vfat -n "$img" >"/tmp/$NAME-fsck.log" 2>&1
echo "fsck: rc=$?"
sed 's/^/fsck| /' "/tmp/$NAME-fsck.log" | tail -n 4
if mcopy -i "$img" ::/OUT.TXT "/tmp/$NAME-out.txt" && seq 1 30000 | cmp -s - "/tmp/$NAME-out.txt"; then
    echo "out: identical"
else
    echo "out: differs"
fi
echo "more: $(mtype -i "$img" ::/DOCS/SUB/MORE.TXT 2>&1)"
echo "loops left: $(losetup -a | grep -c "$NAME" || true)"
rm -f "$img" "/tmp/$NAME-out.txt" "/tmp/$NAME-fsck.log"

#!/bin/bash
# After a blktest guest is destroyed: the CRC-32 and size of what it left on
# its disk (compared with what the guest printed), the read-only disk
# untouched, no loop device left; then the files go. The CRC comes from
# gzip's trailer (CRC-32 and size of the input): coreutils' cksum dies of
# SIGILL in this dom0 (its PCLMUL path, with XSAVE off under Xen).
f=/tmp/$NAME-a.img
trailer=$(gzip -1 -c "$f" | tail -c 8 | od -An -tu4 | tr -s ' ')
set -- $trailer
echo "crc32: $1 $(stat -c %s "$f")"
echo "ro: $(head -c 15 "/tmp/$NAME-ro.img" | tr '\n' '|')"
echo "loops left: $(losetup -a | grep -c "$NAME" || true)"
rm -f "$f" "/tmp/$NAME-ro.img"

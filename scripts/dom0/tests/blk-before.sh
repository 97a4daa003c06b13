#!/bin/bash
# Before a blktest guest: its disks, as files xl's block script puts on loop
# devices for blkback — xvda 256 MiB of zeros (sparse), xvdb 1 MiB whose
# first bytes say "read-only disk" (given to the guest read-only).
set -e
truncate -s 256M "/tmp/$NAME-a.img"
truncate -s 1M "/tmp/$NAME-ro.img"
printf 'read-only disk\n' | dd of="/tmp/$NAME-ro.img" conv=notrunc status=none
echo "disks made: $(stat -c %s "/tmp/$NAME-a.img") and $(stat -c %s "/tmp/$NAME-ro.img") bytes"

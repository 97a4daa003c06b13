#!/bin/bash
# Before a store guest: its disk, 64 MiB of zeros (sparse), for xl's block
# script to put on a loop device for blkback.
set -e
truncate -s 64M "/tmp/$NAME-a.img"
echo "disk made: $(stat -c %s "/tmp/$NAME-a.img") bytes"

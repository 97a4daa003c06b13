#!/bin/bash
# Before a fattest guest: a 64 MiB disk formatted whole with mkfs.vfat (FAT32
# for the PV test, FAT16 for the PVH one) holding files in folders, put there
# with mtools.
set -e
export MTOOLS_SKIP_CHECK=1
img=/tmp/$NAME-fat.img
case $NAME in *-pvh) bits=16 ;; *) bits=32 ;; esac
truncate -s 64M "$img"
mkfs.vfat -F "$bits" -n RTFAT "$img" >/dev/null
printf 'hello from dom0\n' >"/tmp/$NAME-hello.txt"
seq 1 50000 >"/tmp/$NAME-seq.txt"
printf 'a note in a folder in a folder\n' >"/tmp/$NAME-note.txt"
mmd -i "$img" ::/DOCS ::/DOCS/SUB
mcopy -i "$img" "/tmp/$NAME-hello.txt" ::/HELLO.TXT
mcopy -i "$img" "/tmp/$NAME-seq.txt" ::/DOCS/SEQ.TXT
mcopy -i "$img" "/tmp/$NAME-note.txt" ::/DOCS/SUB/NOTE.TXT
rm -f "/tmp/$NAME-hello.txt" "/tmp/$NAME-seq.txt" "/tmp/$NAME-note.txt"
echo "FAT$bits made: $(mdir -i "$img" -/ -b :: | tr '\n' ' ')"

#!/bin/bash
# After virsh-saverestore-*: the save file goes (it sits in dom0's RAM).
rm -f /tmp/virsh-save.img && echo "save file removed"

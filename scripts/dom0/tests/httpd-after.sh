#!/bin/bash
# After an httpd guest with a FAT disk: the disk goes.
rm -f "/tmp/$NAME-fat.img"
echo "loops left: $(losetup -a | grep -c "$NAME" || true)"

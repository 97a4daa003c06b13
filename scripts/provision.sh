#!/usr/bin/env bash
#! Provision the Xen-in-QEMU harness from Debian packages, and cache it.
#
# Produces, under a cache folder OUTSIDE the source tree, keyed on the Debian
# package versions it was built from (and on this script's own content):
#
#   $CACHE/<key>/xen.elf              Xen hypervisor (multiboot ELF, for QEMU -kernel):
#                                     Debian's source and Debian's own .config, with one
#                                     change: CONFIG_SHADOW_PAGING=y. Debian's binary
#                                     leaves shadow paging out, and without it Xen cannot
#                                     track a PV guest's dirty pages: `xl migrate` of any
#                                     PV guest (Linux too) fails with "Failed to enable
#                                     logdirty: 95". PVH guests use HAP and are not affected.
#   $CACHE/<key>/vmlinux-dom0.elf     dom0 Linux kernel, uncompressed ELF
#   $CACHE/<key>/dom0-rootfs.cpio.zst dom0 initramfs: Debian minbase + xl toolstack +
#                                     libvirt (libxl driver, virsh) + modules
#   $CACHE/<key>/linux-domu.vmlinuz   Debian's kernel (the dom0 one, as shipped) for the
#                                     Linux PV domU the benchmarks compare against
#   $CACHE/<key>/linux-domu.cpio.gz   its initramfs: busybox-static, xen-netfront, xen-blkfront, /init
#   $CACHE/<key>/versions             the package versions the key was made from
#
# and prints `HARNESS_DIR=<dir>` as its last line. A second run with the same
# package versions finds the cache and returns in well under a second.
#
# Host packages it installs when missing (as root, with apt): qemu-system-x86 10
# (from bookworm-backports: the suite is added by copying this machine's own
# Debian entry), debootstrap, cpio, zstd, python3, what building Xen takes
# (gcc, make, flex, bison, dpkg-dev), and libvirt's XML schema checker
# (virt-xml-validate: libvirt-clients, libxml2-utils). Xen's source comes with `apt-get source`:
# a deb-src entry is added by copying this machine's own Debian entries.
#
# Environment: RT_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/xen-rt)
set -euo pipefail

SELF=$(readlink -f "$0")
CACHE_ROOT=${RT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/xen-rt}/harness
XEN_PKG=xen-hypervisor-4.17-amd64
# dom0's packages: the xl toolstack, and libvirt's daemon with its libxl
# (Xen) driver and virsh, for the libvirt tests (`virsh -c xen:///system`).
TOOLS_PKGS=xen-utils-4.17,xenstore-utils,iproute2,bridge-utils,kmod,busybox,procps,iputils-ping,dosfstools,mtools,libvirt-daemon-driver-xen,libvirt-clients
DOM0_MODULES="xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-netback xen-blkback loop bridge tun virtio_pci virtio_net virtio_blk"
T0=$(date +%s)
STEP=0
STEPS=9

step() {
    STEP=$((STEP + 1))
    printf '[provision %d/%d +%3ds] %s\n' "$STEP" "$STEPS" "$(( $(date +%s) - T0 ))" "$*" >&2
}
die() { printf 'provision: error: %s\n' "$*" >&2; exit 1; }

command -v apt-get >/dev/null || die "needs a Debian (bookworm) host with apt"
need_root() {
    [ "$(id -u)" = 0 ] || die "$1 needs root: run 'sudo $SELF' once (later runs use the cache)"
}

# ---------------------------------------------------------------------------
# 1. host packages
# ---------------------------------------------------------------------------
debian_uri() {
    # The Debian archive this machine already uses: first deb822 URIs line of a
    # source that carries the bookworm suite, else a one-line sources.list entry.
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm([ \n]|$)/ {
                 for (i = 1; i <= NF; i++) if ($i == "URIs:") { print $(i+1); exit } }' "$f"
    done | head -n1
    if [ -e /etc/apt/sources.list ]; then
        awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list
    fi
    return 0
}

ensure_backports() {
    if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        return
    fi
    local uri
    uri=$(debian_uri | head -n1)
    [ -n "$uri" ] || die "found no Debian bookworm entry in /etc/apt/sources.list* to copy for bookworm-backports"
    cat >/etc/apt/sources.list.d/xen-rt-backports.sources <<EOF
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    APT_UPDATED=0
}

ensure_deb_src() {
    # Xen's source: the machine's own Debian entries (deb822 stanzas of the
    # bookworm suites), copied as deb-src.
    if grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ ||
       grep -qs '^deb-src .* bookworm' /etc/apt/sources.list; then
        return
    fi
    local f out=/etc/apt/sources.list.d/xen-rt-src.sources
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] && [ "$f" != "$out" ] || continue
        awk 'BEGIN{RS=""; ORS="\n\n"} /Types:[^\n]*deb/ && /Suites:[^\n]*bookworm/ {
                 sub(/Types:[^\n]*/, "Types: deb-src"); print }' "$f"
    done >"$out.new"
    if [ ! -s "$out.new" ] && [ -e /etc/apt/sources.list ]; then
        awk '$1=="deb" && $3 ~ /^bookworm/ {
                 printf "Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\n\n", $2, $3 }' \
            /etc/apt/sources.list >"$out.new"
    fi
    [ -s "$out.new" ] || { rm -f "$out.new"; die "found no Debian bookworm entry in /etc/apt/sources.list* to copy as deb-src"; }
    mv "$out.new" "$out"
    APT_UPDATED=0
}

qemu_major() {
    command -v qemu-system-x86_64 >/dev/null || { echo 0; return; }
    qemu-system-x86_64 --version | awk 'NR==1{split($4, v, "."); print v[1]+0}'
}

APT_UPDATED=0
apt_update_once() {
    [ "$APT_UPDATED" = 1 ] && return
    apt-get update -qq >&2 || die "apt-get update failed"
    APT_UPDATED=1
}

step "host packages (qemu-system-x86 >= 10, debootstrap, cpio, zstd, python3, a C toolchain, virt-xml-validate)"
need=()
for tool in debootstrap cpio zstd python3 gcc make flex bison; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
command -v dpkg-source >/dev/null || need+=(dpkg-dev)
# libvirt's schema checker for the domain XML `cargo xtask build` writes.
command -v virt-xml-validate >/dev/null || need+=(libvirt-clients)
command -v xmllint >/dev/null || need+=(libxml2-utils)
if [ "$(qemu_major)" -lt 10 ] || [ ${#need[@]} -gt 0 ]; then
    need_root "installing ${need[*]:-} qemu-system-x86"
    ensure_backports
    apt_update_once
    if [ "$(qemu_major)" -lt 10 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports \
            --no-install-recommends qemu-system-x86 >&2 || die "could not install qemu-system-x86 from bookworm-backports"
    fi
    if [ ${#need[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${need[@]}" >&2 || die "could not install ${need[*]}"
    fi
fi
[ "$(qemu_major)" -ge 10 ] || die "qemu-system-x86_64 10 or newer is required (found $(qemu_major))"

# ---------------------------------------------------------------------------
# 2. cache key: the package versions we would build from
# ---------------------------------------------------------------------------
step "resolving package versions"
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/{print $2; exit}'; }
if [ -z "$(candidate "$XEN_PKG")" ] || [ "$(candidate "$XEN_PKG")" = "(none)" ]; then
    need_root "apt-get update"
    apt_update_once
fi
KVER=$(apt-cache depends linux-image-amd64 2>/dev/null |
       awk '/Depends: linux-image-[0-9]/{sub("linux-image-", "", $2); print $2; exit}')
[ -n "$KVER" ] || die "cannot resolve the Debian kernel (apt-cache depends linux-image-amd64)"
versions=$(printf '%s %s\nlinux-image-%s %s\nxen-utils-4.17 %s\nbusybox %s\nbusybox-static %s\nlibvirt-daemon-driver-xen %s\nscript %s\n' \
    "$XEN_PKG" "$(candidate "$XEN_PKG")" "$KVER" "$(candidate "linux-image-$KVER")" \
    "$(candidate xen-utils-4.17)" "$(candidate busybox)" "$(candidate busybox-static)" \
    "$(candidate libvirt-daemon-driver-xen)" \
    "$(sha256sum "$SELF" | cut -c1-16)")
case "$versions" in *"(none)"*|*" "$'\n'*) die "a package has no install candidate:"$'\n'"$versions";; esac
KEY=$(printf '%s' "$versions" | sha256sum | cut -c1-16)
OUT=$CACHE_ROOT/$KEY
if [ -e "$OUT/done" ]; then
    printf '[provision] cached: %s (%s)\n' "$OUT" "$(tr '\n' ' ' <"$OUT/versions")" >&2
    echo "HARNESS_DIR=$OUT"
    exit 0
fi
need_root "building the harness image"
rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp/debs"
W=$OUT.tmp
printf '%s\n' "$versions" >"$W/versions"

# ---------------------------------------------------------------------------
# 3. Xen and the dom0 kernel, downloaded (never installed on the host)
# ---------------------------------------------------------------------------
step "downloading $XEN_PKG and linux-image-$KVER"
(cd "$W/debs" && apt-get download -qq "$XEN_PKG" "linux-image-$KVER" busybox-static 2>&1 | grep -v unsandboxed >&2 || true)
ls "$W"/debs/"$XEN_PKG"_*.deb "$W"/debs/linux-image-"$KVER"_*.deb "$W"/debs/busybox-static_*.deb >/dev/null 2>&1 ||
    die "apt-get download of $XEN_PKG / linux-image-$KVER / busybox-static failed"
mkdir -p "$W/x/xen" "$W/x/linux"
dpkg-deb -x "$W"/debs/"$XEN_PKG"_*.deb "$W/x/xen"
dpkg-deb -x "$W"/debs/linux-image-"$KVER"_*.deb "$W/x/linux"

# ---------------------------------------------------------------------------
# 4. Xen itself, from Debian's source with Debian's .config plus shadow
#    paging (see the top of this file); the binary package's own config is
#    the starting point, so nothing else differs
# ---------------------------------------------------------------------------
XEN_WANT=$(candidate "$XEN_PKG")
step "building Xen from Debian's source, with shadow paging (a minute or two)"
ensure_deb_src
apt_update_once
S=$W/xen-src
mkdir -p "$S"
XEN_SRC=
# The binary's own version first; the mirror may not carry every source
# (security updates), then the newest 4.17 it has.
for v in "$XEN_WANT" $(apt-cache showsrc xen 2>/dev/null | awk '/^Version: 4\.17\./{print $2}' | sort -rV | uniq); do
    if (cd "$S" && apt-get source --download-only -qq "xen=$v" >/dev/null 2>&1); then
        XEN_SRC=$v
        break
    fi
    rm -f "$S"/*
done
[ -n "$XEN_SRC" ] || die "apt-get source xen: no Xen 4.17 source could be downloaded"
[ "$XEN_SRC" = "$XEN_WANT" ] ||
    printf '[provision] note: source of Xen %s unavailable; building %s (same 4.17 ABI as the tools)\n' \
        "$XEN_WANT" "$XEN_SRC" >&2
dpkg-source -x "$S"/xen_*.dsc "$S/src" >"$W/xen-build.log" 2>&1 ||
    { tail -20 "$W/xen-build.log" >&2; die "unpacking Xen's source failed"; }
cp "$W/x/xen/boot/xen-4.17-amd64.config" "$S/src/xen/.config"
sed -i 's/^# CONFIG_SHADOW_PAGING is not set$/CONFIG_SHADOW_PAGING=y/' "$S/src/xen/.config"
{ make -C "$S/src/xen" olddefconfig && make -C "$S/src/xen" -j"$(nproc)"; } >>"$W/xen-build.log" 2>&1 ||
    { tail -30 "$W/xen-build.log" >&2; die "building Xen failed (log: $W/xen-build.log)"; }
grep -qx 'CONFIG_SHADOW_PAGING=y' "$S/src/xen/.config" || die "Xen's .config lost CONFIG_SHADOW_PAGING"
cp "$S/src/xen/xen" "$W/xen.elf"
printf 'xen-source %s CONFIG_SHADOW_PAGING=y\n' "$XEN_SRC" >>"$W/versions"
rm -rf "$S"
# Xen unpacks an xz bzImage ~5 s slower under TCG than we can here: hand it the ELF.
python3 - "$W/x/linux/boot/vmlinuz-$KVER" "$W/vmlinux-dom0.elf" <<'PY'
import lzma, sys
d = open(sys.argv[1], "rb").read()
setup_sects = d[0x1f1] or 4
off = int.from_bytes(d[0x248:0x24c], "little")
size = int.from_bytes(d[0x24c:0x250], "little")
start = (setup_sects + 1) * 512 + off
blob = d[start:start + size]
if blob[:6] != b"\xfd7zXZ\x00":
    sys.exit("bzImage payload is not xz-compressed (magic %r)" % blob[:6])
elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(blob)
if elf[:4] != b"\x7fELF":
    sys.exit("bzImage payload is not an ELF")
open(sys.argv[2], "wb").write(elf)
PY

# ---------------------------------------------------------------------------
# 5. dom0 root filesystem: Debian minbase + toolstack
# ---------------------------------------------------------------------------
MIRROR=$(debian_uri | head -n1)
[ -n "$MIRROR" ] || die "found no Debian archive entry in /etc/apt/sources.list*"
step "debootstrap bookworm minbase + xen-utils (about a minute)"
R=$W/rootfs
debootstrap --variant=minbase --include="$TOOLS_PKGS" bookworm "$R" "$MIRROR" >"$W/debootstrap.log" 2>&1 ||
    { tail -20 "$W/debootstrap.log" >&2; die "debootstrap failed (log: $W/debootstrap.log)"; }

# ---------------------------------------------------------------------------
# 6. kernel modules a Xen dom0 needs, with their dependencies
# ---------------------------------------------------------------------------
step "adding dom0 kernel modules"
mkdir -p "$R/stage/lib/modules" "$R/lib/modules/$KVER"
cp -al "$W/x/linux/lib/modules/$KVER" "$R/stage/lib/modules/"
chroot "$R" depmod -b /stage "$KVER"
for m in $DOM0_MODULES; do
    chroot "$R" modprobe -d /stage -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | sort -u | while read -r f; do
    rel=${f#/stage}
    mkdir -p "$R$(dirname "$rel")"
    cp "$R$f" "$R$rel"
done
cp "$R/stage/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$R/lib/modules/$KVER/"
rm -rf "$R/stage"
chroot "$R" depmod "$KVER"

# ---------------------------------------------------------------------------
# 7. trim what a test dom0 never uses (keeps the initramfs small and fast)
# ---------------------------------------------------------------------------
step "trimming the dom0 root filesystem"
rm -rf "$R"/usr/share/{doc,man,info,locale,lintian,bash-completion,zsh} \
       "$R"/var/cache/apt/* "$R"/var/lib/apt/lists/* "$R"/usr/lib/udev/hwdb.bin "$R"/usr/lib/udev/hwdb.d \
       "$R"/usr/lib/python3* "$R"/usr/bin/python3* "$R"/usr/share/python3 \
       "$R"/usr/bin/perl* "$R"/usr/lib/x86_64-linux-gnu/perl* "$R"/usr/share/perl* \
       "$R"/usr/share/zoneinfo \
       "$R"/usr/lib/apt "$R"/usr/bin/apt* "$R"/var/lib/dpkg/info "$R"/var/cache/debconf
# Character-set converters: only the DOS code pages mtools converts FAT
# names with (it fails without them) and glibc's module lists.
find "$R/usr/lib/x86_64-linux-gnu/gconv" -maxdepth 1 -name '*.so' \
    ! -name IBM850.so ! -name IBM437.so -delete
mkdir -p "$R/var/log/xen/console" "$R/var/lib/xen" "$R/root" "$R/harness"
# libvirt's libxl driver names the host CPU by the models of its cpu_map,
# and a model is used for a host only if the host has all its features. In
# this harness dom0's view of the CPU (QEMU's TCG `-cpu max` through Xen
# with xsave=0) matched none, and libvirtd's Xen driver refused to start
# ("Cannot find suitable CPU model for given data"). A model with no
# features matches any CPU; libvirt still prefers a real one that fits.
cat >"$R/usr/share/libvirt/cpu_map/x86_harness-any.xml" <<'EOF'
<cpus>
  <!-- The Xen-in-QEMU harness: see scripts/provision.sh. -->
  <model name='harness-any'>
    <decode host='on' guest='off'/>
  </model>
</cpus>
EOF
sed -i "s|    <include filename='x86_486.xml'/>|&\n    <include filename='x86_harness-any.xml'/>|" "$R/usr/share/libvirt/cpu_map/index.xml"
grep -q "x86_harness-any.xml" "$R/usr/share/libvirt/cpu_map/index.xml" || die "could not add the harness CPU model to libvirt's cpu_map"
# libvirtd loads every driver it finds, and a failing one stops it: QEMU's
# (a dependency of the daemon package) wants the libvirt-qemu user that
# only libvirt-daemon-system's setup makes. This dom0 manages Xen guests.
rm -f "$R"/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so
[ -f "$R"/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_libxl.so ] ||
    die "libvirt's libxl driver is missing from the dom0 root filesystem"
echo dom0 >"$R/etc/hostname"

# ---------------------------------------------------------------------------
# 8. the Linux PV domU of the benchmarks: Debian's kernel as shipped, and a
#    busybox initramfs that brings up eth0 (bench.ip= on the kernel command
#    line) and starts /bin/bench-echo (UDP/TCP echo 7, discard 9, like
#    app/echo), which the bench appends as a second cpio archive
# ---------------------------------------------------------------------------
step "building the Linux PV domU (busybox initramfs)"
L=$W/linux-domu
mkdir -p "$L"/bin "$L"/sbin "$L"/dev "$L"/proc "$L"/sys "$L"/lib/modules "$W/x/bb"
dpkg-deb -x "$W"/debs/busybox-static_*.deb "$W/x/bb"
cp "$W/x/bb/bin/busybox" "$L/bin/busybox"
mknod -m 600 "$L/dev/console" c 5 1
netfront=$(find "$W/x/linux/lib/modules/$KVER" -name 'xen-netfront.ko*' | head -n1)
case $netfront in *.ko) ;; *) die "xen-netfront.ko not found (or compressed: $netfront)";; esac
cp "$netfront" "$L/lib/modules/xen-netfront.ko"
blkfront=$(find "$W/x/linux/lib/modules/$KVER" -name 'xen-blkfront.ko*' | head -n1)
case $blkfront in *.ko) ;; *) die "xen-blkfront.ko not found (or compressed: $blkfront)";; esac
cp "$blkfront" "$L/lib/modules/xen-blkfront.ko"
cat >"$L/init" <<'EOF'
#!/bin/busybox sh
# Linux PV domU for the benchmarks: network up, then the echo and discard
# server; `xl shutdown` powers it off through /sbin/poweroff.
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
printf '#!/bin/sh\nexec /bin/busybox poweroff -f\n' >/sbin/poweroff; chmod +x /sbin/poweroff
echo "linux: init at $(cut -d' ' -f1 /proc/uptime) s"
ip=$(sed -n 's/.*[[:space:]]bench.ip=\([^[:space:]]*\).*/\1/p' /proc/cmdline)
insmod /lib/modules/xen-netfront.ko
# The disks of the storage bench (none otherwise: blkfront then just waits).
insmod /lib/modules/xen-blkfront.ko
for _ in $(seq 100); do [ -e /sys/class/net/eth0 ] && break; sleep 0.05; done
ip addr add "$ip" dev eth0 && ip link set eth0 up && ip link set lo up
# The echo/discard server: xtask/bench-echo, appended by `cargo xtask bench`.
if [ -x /bin/bench-echo ]; then /bin/bench-echo & else echo "linux: no /bin/bench-echo"; fi
used=$(awk '/MemTotal/{t=$2} /MemAvailable/{a=$2} END{print t-a}' /proc/meminfo)
echo "linux: network up at $(cut -d' ' -f1 /proc/uptime) s; memory in use ${used} KiB"
echo "harness: net-ready"
while :; do sleep 3600; done
EOF
chmod +x "$L/init"
(cd "$L" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -9 >"$W/linux-domu.cpio.gz"
cp "$W/x/linux/boot/vmlinuz-$KVER" "$W/linux-domu.vmlinuz"
rm -rf "$L"

# ---------------------------------------------------------------------------
# 9. pack
# ---------------------------------------------------------------------------
step "packing dom0-rootfs.cpio.zst"
(cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) |
    zstd -q -f -T0 -12 -o "$W/dom0-rootfs.cpio.zst"
# The initramfs is extended per run by appending an uncompressed overlay cpio;
# the kernel only finds it if the compressed part ends 4-byte aligned.
truncate -s %512 "$W/dom0-rootfs.cpio.zst"
rm -rf "$W/x" "$W/debs" "$R"
touch "$W/done"
rm -rf "$OUT"
mv "$W" "$OUT"
printf '[provision] done in %ds: %s (%s)\n' "$(( $(date +%s) - T0 ))" "$OUT" "$(du -sh "$OUT" | cut -f1)" >&2
echo "HARNESS_DIR=$OUT"

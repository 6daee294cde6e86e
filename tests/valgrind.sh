#!/bin/sh
# valgrind finds no leak and no memory error in a create / verify / extract
# round trip (also with zstd and gzip, whose compression runs in threads),
# nor in the C unit tests, nor in the random access programs (vma cat, the
# nbdkit plugin, vma-fuse), nor in the store's commands (catalog, store, diff,
# create --stable).
cd "$(dirname "$0")/.." || exit 1
T=$(mktemp -d /tmp/vma-valgrind.XXXXXX)
trap 'rm -rf "$T"' EXIT
VG="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99"
F=tests/fixtures/proxmox/a-two-drives
set -e
$VG build/vma create "$T/a.vma" -c $F/cfg/qemu-server.conf drive-scsi0=$F/disk0.raw drive-virtio1=$F/disk1.raw
$VG build/vma verify -v "$T/a.vma" >/dev/null
$VG build/vma extract "$T/a.vma" "$T/x" >/dev/null
$VG build/vma create "$T/a.vma.zst" $F/disk1.raw
$VG build/vma extract "$T/a.vma.zst" "$T/y" >/dev/null
$VG build/vma list --json "$T/a.vma.zst" >/dev/null
$VG build/vma create --threads 3 "$T/a.vma.gz" $F/disk0.raw
$VG build/vma verify "$T/a.vma.gz" >/dev/null
# compression abandoned half way, with frames in flight (no space left)
set +e
$VG build/vma create --compress zstd - $F/disk0.raw $F/disk1.raw >/dev/full 2>/dev/null
[ $? -eq 1 ] || exit 1
set -e
# a failing extract must not leak either
# (exit 1 is the expected failure; valgrind's own error status is 99)
set +e
$VG build/vma extract tests/fixtures/proxmox/e-vmstate/e-vmstate.vma "$T/x" 2>/dev/null
[ $? -eq 1 ] || exit 1
set -e
$VG build/test_core >/dev/null
# the store: catalog with digests (SQLite, surveys), store, diff by reading
# and from digests, create --stable (image digests, the canonical layout)
mkdir "$T/st"
$VG build/vma create -q --stable "$T/st/vzdump-qemu-100-2025_01_10-01_00_00.vma" drive-scsi0=$F/disk0.raw
$VG build/vma create -q --stable "$T/st/vzdump-qemu-100-2025_01_11-01_00_00.vma.zst" drive-scsi0=$F/disk1.raw
$VG build/vma catalog -q --verify "$T/st"
$VG build/vma store --json "$T/st" >/dev/null
$VG build/vma diff --read "$T/st/vzdump-qemu-100-2025_01_10-01_00_00.vma" "$T/st/vzdump-qemu-100-2025_01_11-01_00_00.vma.zst" >/dev/null
$VG build/vma diff "$T/st/vzdump-qemu-100-2025_01_10-01_00_00.vma" "$T/st/vzdump-qemu-100-2025_01_11-01_00_00.vma.zst" >/dev/null
$VG build/vma verify "$T/st/vzdump-qemu-100-2025_01_10-01_00_00.vma"
$VG build/vma history --vmid 100 "$T/st" /etc/x >/dev/null 2>&1 || true
# random access: vma cat, the nbdkit plugin under nbdkit, vma-fuse
$VG build/vma cat "$T/a.vma" drive-scsi0 >"$T/cat.raw"
cmp "$T/cat.raw" "$T/x/disk-drive-scsi0.raw"
if command -v nbdkit >/dev/null && command -v nbdcopy >/dev/null; then
    $VG nbdkit -U - -r build/nbdkit-vma-plugin.so "$T/a.vma" --run \
        "nbdcopy \"\$uri\" '$T/nbd.raw' && nbdinfo --map \"\$uri\" >/dev/null && nbdinfo --list \"\$uri\" >/dev/null"
    cmp "$T/nbd.raw" "$T/x/disk-drive-scsi0.raw"
fi
if [ -e /dev/fuse ] && command -v fusermount3 >/dev/null; then
    mkdir "$T/m"
    ( $VG build/vma-fuse -f "$T/a.vma" "$T/m"; echo $? >"$T/fuse.rc" ) &
    i=0
    while ! grep -q " $T/m " /proc/mounts && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    cp --sparse=always "$T/m/drive-virtio1.raw" "$T/fuse.raw"
    fusermount3 -u "$T/m"
    wait
    [ "$(cat "$T/fuse.rc")" = 0 ] || { echo "vma-fuse under valgrind: status $(cat "$T/fuse.rc")"; exit 1; }
    cmp "$T/fuse.raw" "$T/x/disk-drive-virtio1.raw"
fi
echo "valgrind: clean"

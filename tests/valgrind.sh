#!/bin/sh
# valgrind finds no leak and no memory error in a create / verify / extract
# round trip (also with zstd and gzip, whose compression runs in threads),
# nor in the C unit tests.
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
echo "valgrind: clean"

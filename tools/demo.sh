#!/bin/sh
# make demo: a full backup and restore of a generated VM, end to end.
set -e
cd "$(dirname "$0")/.."
VMA=$(pwd)/build/vma
D=$(mktemp -d /tmp/vma-demo.XXXXXX)
trap 'rm -rf "$D"' EXIT
if [ -t 1 ]; then step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }; else step() { printf '\n== %s\n' "$*"; }; fi

step "a sample VM: a 256 MiB thin disk with data in three places, a 1 MiB EFI disk, a config"
truncate -s 256M "$D/vm-100-disk-0.raw"
head -c 3000000 /dev/urandom | dd of="$D/vm-100-disk-0.raw" conv=notrunc status=none
head -c 1000000 /dev/urandom | dd of="$D/vm-100-disk-0.raw" bs=1M seek=100 conv=notrunc status=none
printf 'the end of the disk\n' | dd of="$D/vm-100-disk-0.raw" bs=1 seek=268435400 conv=notrunc status=none
head -c 1048576 /dev/urandom > "$D/vm-100-disk-1.raw"
cat > "$D/qemu-server.conf" <<CONF
boot: order=scsi0
cores: 2
efidisk0: local-lvm:vm-100-disk-1,size=1M
memory: 2048
name: demo
scsi0: local-lvm:vm-100-disk-0,size=256M
#qmdump#map:efidisk0:drive-efidisk0:local-lvm:raw:
#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:
CONF
ls -ls "$D"

A="$D/vzdump-qemu-100-2026_01_31-02_00_00.vma.zst"
step "vma create (zstd, because of the name)"
$VMA create -v "$A" -c "$D/qemu-server.conf" \
    drive-scsi0="$D/vm-100-disk-0.raw" drive-efidisk0="$D/vm-100-disk-1.raw" 2>&1 | grep -v '^progress'
ls -l "$A"

step "vma list"
$VMA list "$A"

step "vma config"
$VMA config "$A"

step "vma verify"
$VMA verify -v "$A" | grep -v '^progress'

step "vma restore-map --target dir:$D/restored"
$VMA restore-map "$A" --target "dir:$D/restored"

step "vma extract (into a folder)"
$VMA extract "$A" "$D/out"
ls -ls "$D/out"

step "compare"
cmp "$D/vm-100-disk-0.raw" "$D/out/disk-drive-scsi0.raw"
cmp "$D/vm-100-disk-1.raw" "$D/out/disk-drive-efidisk0.raw"
cmp "$D/qemu-server.conf" "$D/out/qemu-server.conf"
echo "restored disks and config are identical to the originals"

step "a damaged archive is refused (exit 1, nothing left behind)"
zstd -dcq "$A" > "$D/damaged.vma"
printf 'X' | dd of="$D/damaged.vma" bs=1 seek=13000 conv=notrunc status=none
if $VMA extract "$D/damaged.vma" "$D/bad"; then echo "damage not detected"; exit 1; fi
[ ! -e "$D/bad" ] && echo "nothing was left under $D/bad"

step "demo complete"

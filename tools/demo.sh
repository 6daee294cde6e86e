#!/bin/sh
# make demo: a full backup and restore of a generated VM, end to end.
set -e
cd "$(dirname "$0")/.."
VMA=$(pwd)/build/vma
D=$(mktemp -d /tmp/vma-demo.XXXXXX)
trap 'rm -rf "$D"' EXIT
if [ -t 1 ]; then step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }; else step() { printf '\n== %s\n' "$*"; }; fi

step "a sample VM: a 256 MiB disk (GPT, one ext4 partition with a small Linux tree), a 1 MiB EFI disk, a config"
# the guest's files, as a folder: mke2fs -d puts them into the file system
# (no root, no loop device)
mkdir -p "$D/tree/etc/nginx" "$D/tree/var/log" "$D/tree/srv"
printf 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n' >"$D/tree/etc/os-release"
printf 'demo-vm\n' >"$D/tree/etc/hostname"
printf 'LABEL=root / ext4 defaults 0 1\n' >"$D/tree/etc/fstab"
printf 'worker_processes 4;\nhttp { server { listen 80; root /srv; } }\n' >"$D/tree/etc/nginx/nginx.conf"
head -c 3000000 /dev/urandom >"$D/tree/srv/data.bin"
printf 'the demo started\n' >"$D/tree/var/log/syslog"
truncate -s 256M "$D/vm-100-disk-0.raw"
printf 'label: gpt\nstart=2048, size=520192, type=L, name=root\n' | sfdisk -q "$D/vm-100-disk-0.raw"
mke2fs -q -t ext4 -L root -d "$D/tree" "$D/root.ext4" 254M
dd if="$D/root.ext4" of="$D/vm-100-disk-0.raw" bs=1M seek=1 conv=notrunc,sparse status=none
rm -f "$D/root.ext4"
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

export VMA_CACHE_DIR="$D/cache"
V="$D/dump/vzdump-qemu-100-2026_02_01-02_00_00.vma.zst"
mkdir -p "$D/dump"
step "the archive as vzdump writes it: vma | zstd --rsyncable -T2 (one zstd stream)"
zstd -dcq "$A" | zstd -q -T2 --rsyncable -o "$V"
ls -l "$V"

step "vma inspect: what the guest holds (partitions, file systems, OS), read at once"
$VMA inspect "$V"

step "vma ls -l /etc: the guest's files, no restore, no mount, no root"
$VMA ls -l "$V" /etc

step "vma get: one file out of the backup, to standard output and into a folder"
$VMA get "$V" /etc/nginx/nginx.conf -
mkdir "$D/got"
$VMA get "$V" /srv /etc/hostname "$D/got"
cmp "$D/tree/srv/data.bin" "$D/got/srv/data.bin"
cmp "$D/tree/etc/hostname" "$D/got/hostname"
echo "the files got back are identical to the guest's"

step "vma find: files by name, size and time"
$VMA find "$V" / --name '*.conf'

step "vma cache: the decoded copy the first reads made, which the next ones use"
$VMA cache

step "demo complete"

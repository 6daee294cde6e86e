#!/bin/sh
# valgrind finds no leak and no memory error in a create / verify / extract
# round trip (also with zstd and gzip, whose compression runs in threads),
# nor in the C unit tests, nor in the random access programs (vma cat, the
# nbdkit plugin, vma-fuse).
cd "$(dirname "$0")/.." || exit 1
T=$(mktemp -d /tmp/vma-valgrind.XXXXXX)
trap 'rm -rf "$T"' EXIT
VG="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --suppressions=tests/valgrind.supp"
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
# the guest's files: GPT, ext4 root with a vfat /boot/efi, an XFS data disk
if command -v mke2fs >/dev/null && command -v sfdisk >/dev/null && command -v mkfs.vfat >/dev/null &&
   command -v mcopy >/dev/null && command -v mkfs.xfs >/dev/null; then
    G=$T/guest
    mkdir -p "$G/root/etc" "$G/root/boot/efi" "$G/root/home/bob" "$G/efi/EFI" "$G/xfs"
    echo "ID=debian" >"$G/root/etc/os-release"
    echo "LABEL=EFI /boot/efi vfat defaults 0 1" >"$G/root/etc/fstab"
    head -c 300000 /dev/urandom >"$G/root/home/bob/data.bin"
    ln -s ../../etc/os-release "$G/root/home/bob/link"
    truncate -s 100M "$G/root/home/bob/sparse"
    echo grub >"$G/efi/EFI/grub.efi"
    mke2fs -q -F -t ext4 -d "$G/root" "$G/root.img" 16M
    mkfs.vfat -C -n EFI "$G/efi.img" 4096 >/dev/null
    mcopy -s -i "$G/efi.img" "$G/efi/EFI" ::/
    truncate -s 24M "$G/disk.raw"
    printf 'label: gpt\nstart=2048, size=8192, type=U\nstart=10240, type=L\n' | sfdisk -q "$G/disk.raw"
    dd if="$G/efi.img" of="$G/disk.raw" bs=512 seek=2048 conv=notrunc,sparse status=none
    dd if="$G/root.img" of="$G/disk.raw" bs=512 seek=10240 conv=notrunc,sparse status=none
    printf '/dev/null\n0 0\nd--755 0 0\nf ---644 0 0 %s\n$\n' "$G/root/home/bob/data.bin" >"$G/proto"
    truncate -s 300M "$G/xfs.img"
    mkfs.xfs -q -f -p "$G/proto" "$G/xfs.img"
    build/vma create -q "$G/g.vma" drive-scsi0="$G/disk.raw" drive-scsi1="$G/xfs.img"
    $VG build/vma inspect "$G/g.vma" >/dev/null
    $VG build/vma ls -R -l "$G/g.vma" / >/dev/null
    $VG build/vma find "$G/g.vma" / --type f --json >/dev/null
    mkdir "$G/out"
    $VG build/vma get -q "$G/g.vma" / scsi1:/f "$G/out"
    cmp "$G/out/f" "$G/root/home/bob/data.bin"
    cmp "$G/out/root/home/bob/data.bin" "$G/root/home/bob/data.bin"
    set +e
    $VG build/vma get "$G/g.vma" /nope "$G/out" 2>/dev/null
    [ $? -eq 1 ] || exit 1
    set -e
    if [ -e /dev/fuse ] && command -v fusermount3 >/dev/null; then
        mkdir "$G/m"
        ( $VG build/vma-fuse-files -f --mount / ext4 1:5242880:14680064 --mount /boot/efi vfat 1:1048576:4194304 \
            "$G/g.vma" "$G/m"; echo $? >"$G/fuse.rc" ) &
        fpid=$!
        i=0
        while ! grep -q " $G/m " /proc/mounts && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
        cmp "$G/m/home/bob/data.bin" "$G/root/home/bob/data.bin"
        cp --sparse=always "$G/m/home/bob/sparse" "$G/fsparse"
        ls -lR "$G/m" >/dev/null
        fusermount3 -u "$G/m"
        wait $fpid
        i=0
        while [ ! -s "$G/fuse.rc" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
        [ "$(cat "$G/fuse.rc")" = 0 ] || { echo "vma-fuse-files under valgrind: status $(cat "$G/fuse.rc")"; exit 1; }
    fi
fi
echo "valgrind: clean"

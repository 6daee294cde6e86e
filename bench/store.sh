#!/bin/sh
# bench/store.sh - the backup store as a whole (make bench runs it with the
# rest; it also runs on its own: sh bench/store.sh, or BENCH_ONLY=store):
#
#   - vma catalog (without --files) of a store of 20 plain archives of a
#     1 GiB disk each (64 KiB clusters alternately random and zero): it must
#     read only their headers and extent headers (target: under 2 s for all
#     20, cold cache); beside it cat of one archive, and the catalog's
#     --verify (every byte read, cluster digests made)
#   - vma find across a catalog of 20 backups with 20,000 files each
#     (target: under 0.2 s), and vma history of one file; the catalog is
#     made by bench/mkcatalog.lua through the module vma.catalog (the file
#     lists are what vma catalog --files records; making them from guests
#     is measured by bench/files.sh's reading of guest files)
#   - vma diff of two backups of a 1 GiB disk (reading both archives) beside
#     cmp of their extracted images (target: at least 0.8x cmp's speed), and
#     the same diff from the catalog's cluster digests
#
# Environment: BENCH_DIR (default /var/tmp/vma-bench), BENCH_RUNS (3),
# BENCH_QUICK=1 (64 MiB disks, 2,000 files), BENCH_COLD=0 (warm cache), VMA
# (build/vma).  See docs/performance.md.
set -eu

BENCH_NAME=store
. "$(dirname "$0")/common.sh"

if [ "$QUICK" = 1 ]; then
    DISK_M=64 NARCH=20 NFILES=2000 MODE=quick
else
    DISK_M=1024 NARCH=20 NFILES=20000 MODE=full
fi
# the 20 archives (half of each disk is data), two images extracted, headroom
bench_workdir $((DISK_M * NARCH / 2 + DISK_M * 3 + 400)) "BENCH_QUICK=1 for a small run"

target() { # NAME VALUE LIMIT UNIT
    if awk -v v="$2" -v l="$3" 'BEGIN { exit !(v <= l) }'; then ok=met; else ok=MISSED; fi
    printf '  %-50s %9s %-6s (limit %s%s)\n' "$1" "$2$4" "$ok" "$3" "$4"
}

# ---- the store: 20 archives of a 1 GiB disk -----------------------------------
echo "bench store: making $NARCH plain archives of a $DISK_M MiB disk in $W ($MODE)" >&2
S=$W/dump
mkdir -p "$S"
rnd store-a $((DISK_M * MiB / 2)) | "$LUA" "$ROOT/bench/mkimage.lua" "$W/a.img" $((DISK_M * MiB)) 65536
# B: A with its last 64 clusters (4 MiB) rewritten, so that cmp reads to the end
cp "$W/a.img" "$W/b.img"
rnd store-b $((4 * MiB)) | dd of="$W/b.img" bs=1M seek=$((DISK_M - 4)) conv=notrunc iflag=fullblock status=none
printf 'name: bench\nscsi0: local:vm-100-disk-0,size=%dM\n' "$DISK_M" >"$W/q.conf"
"$VMA" create -q --ctime 1736470800 "$S/vzdump-qemu-100-2025_01_10-01_00_00.vma" -c qemu-server.conf="$W/q.conf" scsi0="$W/a.img"
"$VMA" create -q --ctime 1736557200 "$S/vzdump-qemu-100-2025_01_11-01_00_00.vma" -c qemu-server.conf="$W/q.conf" scsi0="$W/b.img"
i=3
while [ $i -le "$NARCH" ]; do
    cp "$S/vzdump-qemu-100-2025_01_10-01_00_00.vma" "$S/$(printf 'vzdump-qemu-%d-2025_01_10-01_00_00.vma' $((100 + i)))"
    i=$((i + 1))
done
rm -f "$W/a.img" "$W/b.img"
A=$S/vzdump-qemu-100-2025_01_10-01_00_00.vma B=$S/vzdump-qemu-100-2025_01_11-01_00_00.vma
ASIZE=$(du -k --apparent-size "$A" | cut -f1)

round=1
while [ "$round" -le "$RUNS" ]; do
    once "cat one archive" ":" "cat \"$A\" >/dev/null"
    once "catalog $NARCH archives" "rm -f \"$S/.vma-catalog.sqlite\"" "\"$VMA\" catalog -q \"$S\""
    once "catalog again (nothing new)" ":" "\"$VMA\" catalog -q \"$S\""
    round=$((round + 1))
done
[ "$(sqlite3 "$S/.vma-catalog.sqlite" 'SELECT count(*) FROM archives' 2>/dev/null || echo "$NARCH")" = "$NARCH" ] ||
    die "the catalog does not hold $NARCH archives"
# --verify once (it reads everything: a figure, not a target)
once "catalog --verify $NARCH archives" ":" "\"$VMA\" catalog -q --verify \"$S\""

# ---- diff of two backups beside cmp of their images -----------------------------
echo "bench store: extracting the two disks for cmp" >&2
"$VMA" extract -q "$A" "$W/xa" >/dev/null
"$VMA" extract -q "$B" "$W/xb" >/dev/null
round=1
while [ "$round" -le "$RUNS" ]; do
    once "cmp images" ":" "cmp -s \"$W/xa/disk-drive-scsi0.raw\" \"$W/xb/disk-drive-scsi0.raw\"; [ \$? = 1 ]"
    once "vma diff (reading)" ":" "\"$VMA\" diff -q --read \"$A\" \"$B\" >\"$W/diff.out\""
    once "vma diff (digests)" ":" "\"$VMA\" diff -q \"$A\" \"$B\" >\"$W/diff2.out\""
    round=$((round + 1))
done
grep -q "4.0 MiB differ" "$W/diff.out" || die "vma diff found other than the 4 MiB rewritten: $(cat "$W/diff.out")"
cmp -s "$W/diff.out" "$W/diff2.out" && die "the diffs should say where they come from"
rm -rf "$W/xa" "$W/xb"

# ---- find and history across 20 backups x 20,000 files ----------------------------
echo "bench store: a catalog of $NARCH backups x $NFILES files (bench/mkcatalog.lua)" >&2
F=$W/files
mkdir -p "$F"
LUA_CPATH="$ROOT/build/?.so;;" LUA_PATH="$ROOT/lua/?.lua;;" "$LUA" "$ROOT/bench/mkcatalog.lua" "$F" "$NARCH" "$NFILES" ||
    die "mkcatalog failed"
# vma find comes with the guest's file commands: without them, the store's
# form is timed through a command file that runs it alone
FIND=find
if ! "$VMA" help find >/dev/null 2>&1; then
    mkdir -p "$W/cmds"
    printf 'return { description = "find", usage = "", run = require("vma.storecmd").find }\n' >"$W/cmds/find.lua"
    export VMA_COMMANDS_PATH="$W/cmds${VMA_COMMANDS_PATH:+:$VMA_COMMANDS_PATH}"
fi
FIND_OUT=$("$VMA" $FIND "$F" '*/app.conf' | wc -l)
round=1
while [ "$round" -le "$RUNS" ]; do
    once "find */app.conf" ":" "\"$VMA\" $FIND \"$F\" '*/app.conf' >/dev/null"
    once "find file-1234*" ":" "\"$VMA\" $FIND \"$F\" 'file-1234*' >/dev/null"
    once "find /usr/share/doc/*" ":" "\"$VMA\" $FIND --vmid 100 \"$F\" '/usr/share/doc/*' >/dev/null"
    once "history /etc/app.conf" ":" "\"$VMA\" history --vmid 100 \"$F\" /etc/app.conf >/dev/null"
    round=$((round + 1))
done
DOCS=$("$VMA" $FIND --vmid 100 "$F" '/usr/share/doc/*' | wc -l)
CATMB=$(du -k "$F/.vma-catalog.sqlite" | awk '{ printf "%.1f", $1 / 1024 }')

# ---- the report ----------------------------------------------------------------------
echo
echo "== vma store benchmark ($MODE size, median of $RUNS runs, $CACHE)"
echo "store: $NARCH plain archives of a $DISK_M MiB disk, $(awk -v k="$ASIZE" 'BEGIN { printf "%.1f", k / 1024 }') MiB each"
for k in "cat one archive" "catalog $NARCH archives" "catalog again (nothing new)" "catalog --verify $NARCH archives" \
         "cmp images" "vma diff (reading)" "vma diff (digests)" \
         "find */app.conf" "find file-1234*" "find /usr/share/doc/*" "history /etc/app.conf"; do
    printf '  %-40s %9s s\n' "$k" "$(median "$k" 3)"
done
echo "  (find */app.conf: $FIND_OUT lines; find /usr/share/doc/*: $DOCS lines; catalog of $NARCH x $NFILES files: $CATMB MiB)"
echo
echo "store targets:"
target "catalog $NARCH plain $DISK_M MiB archives" "$(median "catalog $NARCH archives" 3)" 2.0 " s"
target "find over $NARCH backups x $NFILES files" "$(median "find */app.conf" 3)" 0.2 " s"
target "find by name over $NARCH x $NFILES" "$(median "find file-1234*" 3)" 0.2 " s"
target "diff (reading) / cmp images (>= 0.8x speed)" \
    "$(awk -v a="$(median "vma diff (reading)" 3)" -v b="$(median "cmp images" 3)" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1e-9) }')" 1.25 x

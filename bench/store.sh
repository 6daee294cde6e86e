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

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VMA=${VMA:-$ROOT/build/vma}
RUNS=${BENCH_RUNS:-3}
QUICK=${BENCH_QUICK:-0}
BASE=${BENCH_DIR:-/var/tmp/vma-bench}
LUA=$(command -v lua5.4 || command -v lua || true)

die() { echo "bench store: $*" >&2; exit 1; }
[ -x "$VMA" ] || die "$VMA not found: run make first"
[ -n "$LUA" ] || die "lua5.4 is needed"
case $RUNS in ''|*[!0-9]*|0) die "BENCH_RUNS must be a positive number" ;; esac

if [ "$QUICK" = 1 ]; then
    DISK_M=64 NARCH=20 NFILES=2000 MODE=quick
else
    DISK_M=1024 NARCH=20 NFILES=20000 MODE=full
fi
MiB=1048576

mkdir -p "$BASE" || die "cannot create $BASE"
W=$(mktemp -d "$BASE/store.XXXXXX") || die "cannot create a folder in $BASE"
cleanup() { rm -rf "$W"; rmdir "$BASE" 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
# the 20 archives (half of each disk is data), two images extracted, headroom
NEED=$((DISK_M * NARCH / 2 + DISK_M * 3 + 400))
AVAIL=$(df -Pk "$W" | awk 'NR == 2 { print int($4 / 1024) }')
[ "$AVAIL" -ge "$NEED" ] || die "not enough free space in $BASE: $AVAIL MiB free, $NEED MiB needed (BENCH_QUICK=1 for a small run)"
export XDG_CACHE_HOME="$W/cache"

drop_caches() { :; }
CACHE="warm cache"
if [ "${BENCH_COLD:-1}" != 0 ] && sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
    drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
    CACHE="cold cache (dropped before every timed run)"
fi

if command -v openssl >/dev/null 2>&1; then
    rnd() { openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:vma-bench-$1" </dev/zero 2>/dev/null | head -c "$2"; }
else
    rnd() { head -c "$2" /dev/urandom; }
fi

SAMPLES=$W/samples
: >"$SAMPLES"
# time NAME PREP CMD: PREP untimed, the cache dropped, CMD timed (seconds)
timed() {
    eval "$2"
    drop_caches
    t0=$(date +%s%N)
    eval "$3" || die "$1 failed: $3"
    t1=$(date +%s%N)
    echo "$1|$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')" >>"$SAMPLES"
}
median() {
    awk -F'|' -v k="$1" '$1 == k { v[++n] = $2 } END {
        if (!n) { print "nan"; exit }
        for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
        printf "%.3f", (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }' "$SAMPLES"
}
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
    timed "cat one archive" ":" "cat \"$A\" >/dev/null"
    timed "catalog $NARCH archives" "rm -f \"$S/.vma-catalog.sqlite\"" "\"$VMA\" catalog -q \"$S\""
    timed "catalog again (nothing new)" ":" "\"$VMA\" catalog -q \"$S\""
    round=$((round + 1))
done
[ "$(sqlite3 "$S/.vma-catalog.sqlite" 'SELECT count(*) FROM archives' 2>/dev/null || echo "$NARCH")" = "$NARCH" ] ||
    die "the catalog does not hold $NARCH archives"
# --verify once (it reads everything: a figure, not a target)
timed "catalog --verify $NARCH archives" ":" "\"$VMA\" catalog -q --verify \"$S\""

# ---- diff of two backups beside cmp of their images -----------------------------
echo "bench store: extracting the two disks for cmp" >&2
"$VMA" extract -q "$A" "$W/xa" >/dev/null
"$VMA" extract -q "$B" "$W/xb" >/dev/null
round=1
while [ "$round" -le "$RUNS" ]; do
    timed "cmp images" ":" "cmp -s \"$W/xa/disk-drive-scsi0.raw\" \"$W/xb/disk-drive-scsi0.raw\"; [ \$? = 1 ]"
    timed "vma diff (reading)" ":" "\"$VMA\" diff -q --read \"$A\" \"$B\" >\"$W/diff.out\""
    timed "vma diff (digests)" ":" "\"$VMA\" diff -q \"$A\" \"$B\" >\"$W/diff2.out\""
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
    timed "find */app.conf" ":" "\"$VMA\" $FIND \"$F\" '*/app.conf' >/dev/null"
    timed "find file-1234*" ":" "\"$VMA\" $FIND \"$F\" 'file-1234*' >/dev/null"
    timed "find /usr/share/doc/*" ":" "\"$VMA\" $FIND --vmid 100 \"$F\" '/usr/share/doc/*' >/dev/null"
    timed "history /etc/app.conf" ":" "\"$VMA\" history --vmid 100 \"$F\" /etc/app.conf >/dev/null"
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
    printf '  %-40s %9s s\n' "$k" "$(median "$k")"
done
echo "  (find */app.conf: $FIND_OUT lines; find /usr/share/doc/*: $DOCS lines; catalog of $NARCH x $NFILES files: $CATMB MiB)"
echo
echo "store targets:"
target "catalog $NARCH plain $DISK_M MiB archives" "$(median "catalog $NARCH archives")" 2.0 " s"
target "find over $NARCH backups x $NFILES files" "$(median "find */app.conf")" 0.2 " s"
target "find by name over $NARCH x $NFILES" "$(median "find file-1234*")" 0.2 " s"
target "diff (reading) / cmp images (>= 0.8x speed)" \
    "$(awk -v a="$(median "vma diff (reading)")" -v b="$(median "cmp images")" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1e-9) }')" 1.25 x

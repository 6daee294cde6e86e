#!/bin/sh
# bench/files.sh - files, not disks: the guest's files read straight out of a
# backup, beside the tools and the manual path they replace, in one run
# (make bench runs it; it also runs on its own: sh bench/files.sh).
#
#   a 100 GiB thin disk (GPT, one ext4 partition) holding 20,000 small files,
#   /data/big.bin (1 GiB of random data) and /etc/app/target.conf, backed up
#   into a plain .vma and a seekable .vma.zst (vma create); then
#   - vma get of one small file (plain; .vma.zst with its index cached)
#   - vma ls -R / beside fls -r on the raw image
#   - vma get of the 1 GiB file beside cat of the same file (a copy of it on
#     the host, to the same folder) and icat from the raw image
#   - the manual path it replaces: vma extract, the partition's offset
#     (sfdisk -J), debugfs -R dump on the image at that offset
#
# Environment: BENCH_DIR (default /var/tmp/vma-bench), BENCH_RUNS (3),
# BENCH_QUICK=1 (a 4 GiB disk, 2,000 files, a 64 MiB file), BENCH_COLD=0
# (warm cache), VMA (build/vma).  See docs/performance.md.
set -eu

BENCH_NAME=files
. "$(dirname "$0")/common.sh"
for t in mke2fs sfdisk fls icat debugfs; do
    command -v $t >/dev/null 2>&1 || die "$t is needed (apt-get install e2fsprogs fdisk sleuthkit)"
done

if [ "$QUICK" = 1 ]; then
    DISK_G=4 NFILES=2000 BIG_M=64 MODE=quick
else
    DISK_G=100 NFILES=20000 BIG_M=1024 MODE=full
fi
bench_workdir $((BIG_M * 6 + 600))

measure() { # OP PREP CMD
    i=0
    while [ $i -lt "$RUNS" ]; do once "$1" "$2" "$3"; i=$((i + 1)); done
}

# ---- the guest ----------------------------------------------------------------
echo "bench files: making a ${DISK_G} GiB thin disk with $NFILES files and a $BIG_M MiB file in $W"
SRC=$W/src
"$LUA" - "$SRC" "$NFILES" <<'EOF'
local dir, n = arg[1], tonumber(arg[2])
local function sh(c) assert(os.execute(c)) end
sh("mkdir -p '" .. dir .. "/etc/app' '" .. dir .. "/data'")
local per = 100
for d = 0, n // per - 1 do
  local sub = string.format("%s/usr/share/pkg%03d/%02d", dir, d // 10, d % 10)
  sh("mkdir -p '" .. sub .. "'")
  for i = 1, per do
    local f = assert(io.open(string.format("%s/file%03d.txt", sub, i), "wb"))
    f:write(string.rep(string.format("package %d file %d\n", d, i), 1 + (i * 37) % 200))
    f:close()
  end
end
local f = assert(io.open(dir .. "/etc/app/target.conf", "wb"))
f:write("listen 8080\nworkers 4\n")
f:close()
f = assert(io.open(dir .. "/etc/os-release", "wb"))
f:write("ID=bench\nPRETTY_NAME=\"vma bench guest\"\n")
f:close()
EOF
if command -v openssl >/dev/null 2>&1; then
    openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass pass:vma-files </dev/zero 2>/dev/null | head -c $((BIG_M * MiB)) >"$SRC/data/big.bin"
else
    head -c $((BIG_M * MiB)) /dev/urandom >"$SRC/data/big.bin"
fi
DISK=$W/disk.raw
truncate -s "${DISK_G}G" "$DISK"
printf 'label: gpt\nstart=2048, type=L\n' | sfdisk -q "$DISK"
PSTART=$((2048 * 512))
PSIZE=$(sfdisk -J "$DISK" | awk -F'[:,]' '/"size"/ { gsub(/ /, "", $0); for (i = 1; i <= NF; i++) if ($i ~ /"size"/) print $(i + 1) }' | tail -1)
mke2fs -q -F -t ext4 -E offset=$PSTART,lazy_itable_init=1,lazy_journal_init=1 -d "$SRC" "$DISK" $((PSIZE / 2))k
A=$W/a.vma
Z=$W/a.vma.zst
"$VMA" create -q "$A" drive-scsi0="$DISK"
"$VMA" create -q --compress zstd "$Z" drive-scsi0="$DISK"
cp "$SRC/data/big.bin" "$W/host-big.bin"
rm -rf "$SRC"
sync
ASIZE=$(du -m "$A" | cut -f1)
ZSIZE=$(du -m "$Z" | cut -f1)
OUT=$W/out
fresh() { rm -rf "$OUT"; mkdir "$OUT"; }
INO=$(fls -r -p -o 2048 "$DISK" | awk -F'\t' '$2 == "data/big.bin" { split($1, a, " "); sub(":", "", a[2]); print a[2] }')
[ -n "$INO" ] || die "fls does not find data/big.bin"

# ---- the measurements ---------------------------------------------------------
measure "vma get one file (plain)" "fresh; rm -rf \"$XDG_CACHE_HOME\"" \
    "\"$VMA\" get -q \"$A\" /etc/app/target.conf \"$OUT\""
"$VMA" ls "$Z" / >/dev/null   # builds and keeps the index of the .vma.zst
measure "vma get one file (zst, index cached)" "fresh" "\"$VMA\" get -q \"$Z\" /etc/app/target.conf \"$OUT\""
cmp -s "$OUT/target.conf" /dev/null && die "the file copied is empty"
measure "manual: extract + offset + debugfs dump" "fresh" \
    "\"$VMA\" extract \"$A\" \"$OUT/x\" >/dev/null 2>&1 && off=\$(sfdisk -J \"$OUT/x/disk-drive-scsi0.raw\" | awk -F'[:,]' '/\"start\"/ { gsub(/ /, \"\", \$0); for (i = 1; i <= NF; i++) if (\$i ~ /\"start\"/) print \$(i + 1) }' | head -1) && debugfs -R 'dump /etc/app/target.conf $OUT/target.conf' \"$OUT/x/disk-drive-scsi0.raw?offset=\$((off * 512))\" >/dev/null 2>&1"
measure "vma ls -R /" "" "\"$VMA\" ls -R \"$A\" / >\"$W/ls.txt\""
measure "fls -r (raw image)" "" "fls -r -o 2048 \"$DISK\" >\"$W/fls.txt\""
measure "vma get the big file (plain)" "fresh" "\"$VMA\" get -q \"$A\" /data/big.bin \"$OUT\""
cmp -s "$OUT/big.bin" "$W/host-big.bin" || die "vma get: the big file differs"
measure "vma get the big file (zst)" "fresh" "\"$VMA\" get -q \"$Z\" /data/big.bin \"$OUT\""
measure "cat of the file (host copy)" "fresh" "cat \"$W/host-big.bin\" >\"$OUT/big.bin\""
# the issue's baseline: cat of the file from the extracted image, mounted
# (root and a loop device needed; else the host copy stands in)
LOOPED=0
if [ "$(id -u)" = 0 ] && [ -e /dev/loop-control ]; then
    mkdir -p "$W/mnt"
    if "$VMA" extract "$A" "$W/x" >/dev/null 2>&1 &&
        mount -o ro,loop,noload,offset=$PSTART "$W/x/disk-drive-scsi0.raw" "$W/mnt" 2>/dev/null; then
        LOOPED=1
        cleanup() { umount "$W/mnt" 2>/dev/null || true; rm -rf "$W"; rmdir "$BASE" 2>/dev/null || true; }
        measure "cat of the file (extracted image, loop mount)" "fresh" "cat \"$W/mnt/data/big.bin\" >\"$OUT/big.bin\""
        cmp -s "$OUT/big.bin" "$W/host-big.bin" || die "the loop-mounted file differs"
        umount "$W/mnt"
    fi
    rm -rf "$W/x"
fi
measure "icat (raw image)" "fresh" "icat -o 2048 \"$DISK\" $INO >\"$OUT/big.bin\""
NLS=$(wc -l <"$W/ls.txt")
NFLS=$(wc -l <"$W/fls.txt")

# ---- the report ---------------------------------------------------------------
echo
echo "== files, not disks ($MODE size, median of $RUNS runs, $CACHE)"
echo "guest: ${DISK_G} GiB thin disk, GPT, ext4 with $NFILES files + a $BIG_M MiB file; archive $ASIZE MiB, .vma.zst $ZSIZE MiB"
echo "entries listed: vma ls -R $NLS lines, fls -r $NFLS lines"
printf '%-44s %9s  %10s\n' "operation" "median s" "peak RSS"
for op in "vma get one file (plain)" "vma get one file (zst, index cached)" \
          "manual: extract + offset + debugfs dump" "vma ls -R /" "fls -r (raw image)" \
          "vma get the big file (plain)" "vma get the big file (zst)" "cat of the file (extracted image, loop mount)" \
          "cat of the file (host copy)" "icat (raw image)"; do
    [ "$(median "$op")" != nan ] || continue
    printf '%-44s %9.3f  %10s\n' "$op" "$(median "$op")" "$(rss "$op")"
done
echo
echo "files targets:"
target() { # NAME VALUE LIMIT UNIT
    if awk -v v="$2" -v l="$3" 'BEGIN { exit !(v <= l) }'; then ok=met; else ok=MISSED; fi
    printf '  %-52s %9s %-6s (limit %s%s)\n' "$1" "$(printf '%.2f' "$2")$4" "$ok" "$3" "$4"
}
r() { awk -v a="$(median "$1")" -v b="$(median "$2")" 'BEGIN { printf "%.4f", (b > 0 ? a / b : 999) }'; }
target "get one file, plain" "$(median 'vma get one file (plain)')" 1.0 " s"
target "get one file, seekable .vma.zst (index cached)" "$(median 'vma get one file (zst, index cached)')" 2.0 " s"
target "ls -R / time / fls -r time (>= 0.5x speed)" "$(r 'vma ls -R /' 'fls -r (raw image)')" 2.0 x
if [ "$LOOPED" = 1 ]; then
    target "get big file / cat from the extracted image (>= 0.8x)" "$(r 'vma get the big file (plain)' 'cat of the file (extracted image, loop mount)')" 1.25 x
    echo "  get big file / cat of a host copy of the file: $(r 'vma get the big file (plain)' 'cat of the file (host copy)')x the time"
else
    target "get big file / cat of a host copy (no loop mount here)" "$(r 'vma get the big file (plain)' 'cat of the file (host copy)')" 1.25 x
fi
echo "  manual path / vma get one file: $(r 'manual: extract + offset + debugfs dump' 'vma get one file (plain)')x the time"
echo "  get big file / icat from the raw image: $(r 'vma get the big file (plain)' 'icat (raw image)')x the time"

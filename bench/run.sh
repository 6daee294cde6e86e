#!/bin/sh
# bench/run.sh - throughput of `vma create`, `vma extract` and `vma verify`
# beside `cat` and `cp --sparse=always && sync` on the same images, and of the
# compressed archives beside zstd, gzip/pigz and lzop (make bench).
#
# Environment:
#   BENCH_DIR=/var/tmp/vma-bench  where the images and archives go (a run folder
#                                 inside it is removed at the end)
#   BENCH_RUNS=3                  runs per measurement; the median is reported
#   BENCH_QUICK=1                 small images for a smoke run
#   BENCH_COLD=0                  do not drop the page cache (warm cache)
#   BENCH_ONLY="half comp"        only these images (of: half thin check scale comp
#                                 instant), "files": the guest's files
#                                 (bench/files.sh), "store": the backup store
#                                 (bench/store.sh)
#   PVE_VMA=/path/to/vma          also time Proxmox's vma on the same images
#   BENCH_RBD=0                   skip the Ceph RBD section (it starts a test
#                                 cluster, tests/ceph/cluster.sh, for the run)
#   VMA=build/vma                 the vma to measure
# See docs/performance.md.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VMA=${VMA:-$ROOT/build/vma}
RUNS=${BENCH_RUNS:-3}
QUICK=${BENCH_QUICK:-0}
BASE=${BENCH_DIR:-/var/tmp/vma-bench}
PVE_VMA=${PVE_VMA:-}
ONLY=${BENCH_ONLY:-half thin check scale comp instant files store}
LUA=$(command -v lua5.4 || command -v lua || true)

die() { echo "bench: $*" >&2; exit 1; }

[ -x "$VMA" ] || die "$VMA not found: run make first"
[ -n "$LUA" ] || die "lua5.4 is needed (apt-get install lua5.4)"
case $RUNS in ''|*[!0-9]*|0) die "BENCH_RUNS must be a positive number" ;; esac
if [ -n "$PVE_VMA" ] && [ ! -x "$PVE_VMA" ]; then
    die "PVE_VMA=$PVE_VMA is not an executable"
fi

# Sizes in MiB. half: 64 KiB clusters alternately random and zero. thin: sparse,
# with THIN_DATA MiB of data in 8 places. check: every other 4 KiB block zero.
# scale: a huge sparse image with SCALE_DATA MiB of data (create + verify only).
# comp: a third text-like, a third random, a third zero 64 KiB clusters (the
# compressed archives). instant: the same mix, INSTANT MiB, as vzdump's
# one-stream .vma.zst (random access through the decoded copy).
if [ "$QUICK" = 1 ]; then
    HALF=64 THIN=512 THIN_DATA=8 CHECK=32 SCALE=16384 SCALE_DATA=4 COMP=64 INSTANT=256 MODE="quick"
else
    HALF=1024 THIN=8192 THIN_DATA=64 CHECK=256 SCALE=1048576 SCALE_DATA=4 COMP=1024 INSTANT=4096 MODE="full"
fi
# want IMAGE: the image is measured in this run
want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
for img in $ONLY; do
    case $img in half|thin|check|scale|comp|instant|files|store) ;; *) die "BENCH_ONLY: unknown image '$img'" ;; esac
done
want comp || COMP=0
want instant || INSTANT=0
NCPU=$(nproc)

# ---- /usr/bin/time for the peak memory ------------------------------------
if [ ! -x /usr/bin/time ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bench: installing the Debian package 'time' for /usr/bin/time" >&2
    apt-get install -y -qq time >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq time >/dev/null 2>&1; } || true
fi
# the page cache, /usr/bin/time, seeded random bytes (drop_caches, CACHE,
# TIMEBIN, rnd, RNDSRC)
. "$ROOT/bench/host.sh"

# ---- the work folder --------------------------------------------------------
mkdir -p "$BASE" || die "cannot create $BASE"
W=$(mktemp -d "$BASE/run.XXXXXX") || die "cannot create a folder in $BASE"
cleanup() {
    rm -rf "$W"
    rmdir "$BASE" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Space: the allocated images, then for the largest one its archive, the cp
# copy and the extracted disk (twice that with PVE_VMA), plus the thin archive
# of the scale image (512 bytes per 59 clusters) and some headroom.
BIG=$HALF
[ "$CHECK" -gt "$BIG" ] && BIG=$CHECK
PER=3
[ -n "$PVE_VMA" ] && PER=5
# comp: the image, its copy, the extracted disk, and 4 compressed files
# instant: the image, its plain archive, the one stream, a seekable copy and
# the decoded copy (raw frames first: about the plain archive's size)
NEED=$((HALF + CHECK + THIN_DATA + SCALE_DATA + PER * BIG + SCALE / 7000 + 256 + 5 * COMP + 4 * INSTANT))
AVAIL=$(df -Pk "$W" | awk 'NR == 2 { print int($4 / 1024) }')
if [ "$AVAIL" -lt "$NEED" ]; then
    die "not enough free space in $BASE: $AVAIL MiB free, $NEED MiB needed (set BENCH_DIR, or BENCH_QUICK=1)"
fi
echo "free space in $BASE: $AVAIL MiB (need about $NEED MiB)"

# ---- helpers ----------------------------------------------------------------
MiB=1048576
RES=$W/results          # image|op|median_s|rss_kib|min_s|max_s|cpu_s
: >"$RES"

# once IMAGE OP PREP CMD: run PREP (untimed), drop the cache, run CMD (a shell
# string) timed; append the seconds and the peak RSS (KiB, from /usr/bin/time)
# to the samples of IMAGE|OP.
once() {
    eval "$3"
    drop_caches
    o_t0=$(date +%s%N)
    if [ -n "$TIMEBIN" ]; then
        eval "$TIMEBIN -f '%M %U %S' -o \"\$W/rss\" $4" || die "$1: '$2' failed: $4"
    else
        eval "$4" || die "$1: '$2' failed: $4"
    fi
    o_t1=$(date +%s%N)
    o_rss="- -"
    [ -z "$TIMEBIN" ] || o_rss=$(tail -n 1 "$W/rss" | awk '{ printf "%s %.2f", $1, $2 + $3 }')
    echo "$o_t0 $o_t1 $o_rss" | awk -v k="$1|$2" '{ printf "%s|%.6f|%s|%s\n", k, ($2 - $1) / 1e9, $3, $4 }' >>"$SAMPLES"
}

# summarize: for each IMAGE|OP of the samples, the median, min and max seconds,
# the largest peak RSS and the median CPU seconds (user + system), into RES as
# image|op|median|rss|min|max|cpu
summarize() {
    sort -t'|' -k1,2 -k3,3g "$SAMPLES" | awk -F'|' '
        function flush() {
            if (key == "") return
            med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            cmed = "-"
            if (nc) {
                asort_c()
                cmed = sprintf("%.2f", (nc % 2) ? c[(nc + 1) / 2] : (c[nc / 2] + c[nc / 2 + 1]) / 2)
            }
            printf "%s|%.6f|%s|%.6f|%.6f|%s\n", key, med, rss, v[1], v[n], cmed
        }
        function asort_c(   i, j, x) {
            for (i = 2; i <= nc; i++) { x = c[i]; for (j = i - 1; j >= 1 && c[j] > x; j--) c[j + 1] = c[j]; c[j + 1] = x }
        }
        { k = $1 "|" $2
          if (k != key) { flush(); key = k; n = 0; nc = 0; rss = "-" }
          v[++n] = $3
          if ($5 != "-" && $5 != "") c[++nc] = $5 + 0
          if ($4 != "-" && (rss == "-" || $4 + 0 > rss + 0)) rss = $4 }
        END { flush() }' >>"$RES"
}

# get IMAGE OP: the recorded median seconds
get() { awk -F'|' -v i="$1" -v o="$2" '$1 == i && $2 == o { print $3 }' "$RES"; }

same() { cmp "$1" "$2" || die "extracted disk $2 differs from $1"; }

# ---- the images -------------------------------------------------------------
echo "making the images in $W ($MODE size; data from $RNDSRC)"
if want half; then
    rnd half $((HALF * MiB / 2)) | "$LUA" "$ROOT/bench/mkimage.lua" "$W/half.img" $((HALF * MiB)) 65536
fi
if want check; then
    rnd check $((CHECK * MiB / 2)) | "$LUA" "$ROOT/bench/mkimage.lua" "$W/check.img" $((CHECK * MiB)) 4096
fi

if want thin; then
    # thin: 8 pieces of THIN_DATA/8 MiB, one in each eighth, at odd places
    truncate -s "${THIN}M" "$W/thin.img"
    piece=$((THIN_DATA / 8))
    step=$((THIN / 8))
    i=0
    while [ $i -lt 8 ]; do
        rnd "thin$i" $((piece * MiB)) |
            dd of="$W/thin.img" bs=1M seek=$((i * step + i * (step / 8 - 1))) conv=notrunc iflag=fullblock status=none
        i=$((i + 1))
    done
fi

if want scale; then
    # scale: 4 pieces of SCALE_DATA/4 MiB: at the start, a third, two thirds, the end
    truncate -s "${SCALE}M" "$W/scale.img"
    piece=$((SCALE_DATA / 4))
    for at in 0 $((SCALE / 3)) $((SCALE * 2 / 3 + 1)) $((SCALE - piece)); do
        rnd "scale$at" $((piece * MiB)) |
            dd of="$W/scale.img" bs=1M seek="$at" conv=notrunc iflag=fullblock status=none
    done
fi
if [ "$COMP" -gt 0 ]; then
    rnd comp $((COMP * MiB)) | "$LUA" "$ROOT/bench/mkimage.lua" "$W/comp.img" $((COMP * MiB)) 65536 mixed
fi
sync

# ---- the measurements -------------------------------------------------------
# busy: the share of CPU time used by others over one second while we wait
busy() {
    b0=$(head -n 1 /proc/stat) && sleep 1 && b1=$(head -n 1 /proc/stat) &&
        printf '%s\n%s\n' "$b0" "$b1" | awk '{ t = 0; for (i = 2; i <= NF; i++) t += $i; idle = $5 + $6 }
            NR == 1 { t0 = t; i0 = idle } NR == 2 { printf "%.0f", (t > t0) ? 100 * (1 - (idle - i0) / (t - t0)) : 0 }' ||
        echo '?'
}
BUSY0=$(busy)
A=$W/a.vma C=$W/copy.img D=$W/x PA=$W/pve.vma PD=$W/px
SAMPLES=$W/samples
: >"$SAMPLES"
# The operations of one image take turns (one run of each per round, RUNS
# rounds), so that a slow spell of the disk hits the tools alike.
for img in half thin check; do
    want $img || continue
    I=$W/$img.img
    echo "$img.img: $(du -k --apparent-size "$I" | cut -f1) KiB, $(du -k "$I" | cut -f1) KiB allocated" >&2
    round=1
    while [ "$round" -le "$RUNS" ]; do
        once $img "cat image" ":" "cat \"$I\" >/dev/null"
        once $img "cp --sparse && sync" "rm -f \"$C\"" "sh -c 'cp --sparse=always \"\$1\" \"\$2\" && sync' sh \"$I\" \"$C\""
        rm -f "$C"
        once $img "vma create" "rm -f \"$A\"" "\"$VMA\" create \"$A\" \"$I\""
        once $img "cat archive" ":" "cat \"$A\" >/dev/null"
        once $img "vma verify" ":" "\"$VMA\" verify \"$A\" >/dev/null"
        once $img "vma extract" "rm -rf \"$D\"" "\"$VMA\" extract \"$A\" \"$D\" >/dev/null"
        if [ "$round" = 1 ]; then
            same "$I" "$D/disk-disk0.raw"
            echo "  cmp: the extracted disk equals the image" >&2
            echo "$img|archive|$(du -k --apparent-size "$A" | cut -f1)|-|0|0|-" >>"$RES"
        fi
        rm -rf "$D"
        if [ -n "$PVE_VMA" ]; then
            once $img "pve create" "rm -f \"$PA\"" "\"$PVE_VMA\" create \"$PA\" drive-scsi0=\"$I\""
            once $img "pve verify" ":" "\"$PVE_VMA\" verify \"$PA\" >/dev/null"
            once $img "pve extract" "rm -rf \"$PD\"" "\"$PVE_VMA\" extract \"$PA\" \"$PD\" >/dev/null"
            if [ "$round" = 1 ]; then
                same "$I" "$PD/disk-drive-scsi0.raw"
                echo "  cmp: Proxmox's extracted disk equals the image" >&2
            fi
            rm -rf "$PD" "$PA"
        fi
        rm -f "$A"
        echo "  round $round of $RUNS done" >&2
        round=$((round + 1))
    done
done

if want scale; then
    echo "scale.img: ${SCALE} MiB sparse, $SCALE_DATA MiB of data" >&2
    round=1
    while [ "$round" -le "$RUNS" ]; do
        once scale "vma create" "rm -f \"$A\"" "\"$VMA\" create \"$A\" \"$W/scale.img\""
        once scale "vma verify" ":" "\"$VMA\" verify \"$A\" >/dev/null"
        [ "$round" = 1 ] && echo "scale|archive|$(du -k --apparent-size "$A" | cut -f1)|-|0|0|-" >>"$RES"
        rm -f "$A"
        round=$((round + 1))
    done
fi

# comp: the compressed archives beside the compressors on the same image.
# zstd: create beside `zstd -T2 -3 && sync`; verify beside `zstd -dc`;
# extract beside the slower of `zstd -dc` and `cp --sparse && sync`. gzip
# beside pigz (gzip without it) and lzo beside lzop likewise.
GZ=gzip
command -v pigz >/dev/null 2>&1 && GZ=pigz
have_lzop=0
command -v lzop >/dev/null 2>&1 && have_lzop=1
if [ "$COMP" -gt 0 ]; then
    I=$W/comp.img X=$W/ref.out
    echo "comp.img: $COMP MiB, 64 KiB clusters a third each text-like, random, zero" >&2
    round=1
    while [ "$round" -le "$RUNS" ]; do
        once comp "cp --sparse && sync" "rm -f \"$C\"" "sh -c 'cp --sparse=always \"\$1\" \"\$2\" && sync' sh \"$I\" \"$C\""
        rm -f "$C"
        for ext in zst gz lzo; do
            case $ext in
            zst) ref="zstd -T2 -3 && sync" refcmd="zstd -q -T2 -3 \"\$1\" -o \"\$2\" && sync" dec="zstd -dc" ;;
            gz) [ "$GZ" = pigz ] && ref="pigz -p2 -6 && sync" refcmd="pigz -p2 -6 -c \"\$1\" >\"\$2\" && sync"
                [ "$GZ" = gzip ] && ref="gzip -6 && sync" refcmd="gzip -6 -c \"\$1\" >\"\$2\" && sync"
                dec="gzip -dc" ;;
            lzo) [ "$have_lzop" = 1 ] || continue
                ref="lzop && sync" refcmd="lzop -c \"\$1\" >\"\$2\" && sync" dec="lzop -dc" ;;
            esac
            AZ=$W/a.vma.$ext
            once comp "$ref" "rm -f \"$X\"" "sh -c '$refcmd' sh \"$I\" \"$X\""
            [ "$round" = 1 ] && echo "comp|size $ext ref|$(du -k --apparent-size "$X" | cut -f1)|-|0|0|-" >>"$RES"
            rm -f "$X"
            once comp "vma create .$ext" "rm -f \"$AZ\"" "\"$VMA\" create \"$AZ\" \"$I\""
            once comp "$dec >/dev/null" ":" "$dec \"$AZ\" >/dev/null"
            [ "$ext" = gz ] && [ "$GZ" = pigz ] && once comp "pigz -dc >/dev/null" ":" "pigz -dc \"$AZ\" >/dev/null"
            once comp "vma verify .$ext" ":" "\"$VMA\" verify \"$AZ\" >/dev/null"
            once comp "vma extract .$ext" "rm -rf \"$D\"" "\"$VMA\" extract \"$AZ\" \"$D\" >/dev/null"
            if [ "$round" = 1 ]; then
                same "$I" "$D/disk-disk0.raw"
                echo "  cmp: the disk extracted from .vma.$ext equals the image" >&2
                echo "comp|size $ext|$(du -k --apparent-size "$AZ" | cut -f1)|-|0|0|-" >>"$RES"
            fi
            if [ "$ext" = zst ]; then
                once comp "zstd -dc => extract -" "rm -rf \"$D\"" "sh -c 'zstd -dc \"\$1\" | \"\$2\" extract - \"\$3\" >/dev/null' sh \"$AZ\" \"$VMA\" \"$D\""
                [ "$round" = 1 ] && same "$I" "$D/disk-disk0.raw"
            fi
            rm -rf "$D" "$AZ"
        done
        echo "  round $round of $RUNS done" >&2
        round=$((round + 1))
    done
fi

# ---- instant access: vzdump's one-stream .vma.zst --------------------------
# The instant image as vzdump writes it (vma | zstd -T2 --rsyncable): the
# configs and the first 4 KiB of the first disk from an empty cache; the
# background decoder filling the cache (vma cache add: its fill time, from
# its JSON) beside zstd -dc >/dev/null; the copy's size once compacted beside
# the archive's; random 4 KiB reads through the copy beside a seekable
# .vma.zst of the same archive.
if [ "$INSTANT" -gt 0 ]; then
    command -v zstd >/dev/null 2>&1 || die "instant: zstd is needed"
    II=$W/instant.img IP=$W/instant.vma IO=$W/instant.vma.zst IS=$W/instant-seekable.vma.zst
    IC=$W/icache
    echo "instant.img: $INSTANT MiB, 64 KiB clusters a third each text-like, random, zero" >&2
    rnd instant $((INSTANT * MiB)) | "$LUA" "$ROOT/bench/mkimage.lua" "$II" $((INSTANT * MiB)) 65536 mixed
    printf 'memory: 2048\nscsi0: local:100/vm-100-disk-0.raw,size=%dM\n' "$INSTANT" >"$W/instant.conf"
    "$VMA" create -q "$IP" -c qemu-server.conf="$W/instant.conf" drive-scsi0="$II" || die "instant: create failed"
    rm -f "$II"
    zstd -q -T2 --rsyncable "$IP" -o "$IO" || die "instant: zstd failed"
    "$VMA" recompress -q "$IP" "$IS" || die "instant: recompress failed"
    echo "instant|archive|$(du -k --apparent-size "$IO" | cut -f1)|-|0|0|-" >>"$RES"
    rm -f "$IP"
    round=1
    while [ "$round" -le "$RUNS" ]; do
        once instant "zstd -dc >/dev/null" ":" "zstd -dc \"$IO\" >/dev/null"
        # the same stream written out to the work folder, as the copy is
        once instant "zstd -dc >file" "rm -f \"$W/instant.out\"" "zstd -q -dc \"$IO\" -o \"$W/instant.out\""
        rm -f "$W/instant.out"
        once instant "config + first 4 KiB" "rm -rf \"$IC\"" \
            "sh -c 'VMA_CACHE_DIR=\"\$3\" \"\$1\" config \"\$2\" >/dev/null && VMA_CACHE_DIR=\"\$3\" \"\$1\" cat -q \"\$2\" scsi0 --length 4K >/dev/null' sh \"$VMA\" \"$IO\" \"$IC\""
        rm -rf "$IC"
        drop_caches
        VMA_CACHE_DIR=$IC "$VMA" cache add -q --json "$IO" >"$W/add.json" || die "instant: cache add failed"
        fill=$("$LUA" -e 'local s = io.read("a"); print(s:match("\"fill_seconds\":([%d.e+-]+)"))' <"$W/add.json")
        echo "instant|vma decoder fill|$fill|-|-" >>"$SAMPLES"
        # the same two with the archive in the page cache (a backup just
        # copied in): the disk then only takes the copy, not the archive too
        rm -rf "$IC"
        cat "$IO" >/dev/null
        t0=$(date +%s%N)
        zstd -dc "$IO" >/dev/null || die "instant: zstd -dc failed"
        t1=$(date +%s%N)
        echo "$t0 $t1" | awk '{ printf "instant|zstd -dc, archive cached|%.6f|-|-\n", ($2 - $1) / 1e9 }' >>"$SAMPLES"
        VMA_CACHE_DIR=$IC "$VMA" cache add -q --json "$IO" >"$W/add.json" || die "instant: cache add failed"
        fill=$("$LUA" -e 'local s = io.read("a"); print(s:match("\"fill_seconds\":([%d.e+-]+)"))' <"$W/add.json")
        echo "instant|vma decoder fill, archive cached|$fill|-|-" >>"$SAMPLES"
        if [ "$round" = 1 ]; then
            echo "instant|copy|$(du -k --apparent-size "$IC"/*.vma.zst | cut -f1)|-|0|0|-" >>"$RES"
            VMA_CACHE_DIR=$IC "$VMA" cat -q "$IO" scsi0 >"$W/from-copy.raw" || die "instant: cat failed"
            "$VMA" cat -q "$IS" scsi0 | cmp - "$W/from-copy.raw" || die "instant: the copy differs"
            rm -f "$W/from-copy.raw"
            echo "  cmp: the disk read through the copy equals the seekable archive's" >&2
            cat "$IC"/*.vma.zst "$IS" >/dev/null
            RR_COPY=$(VMA_CACHE_DIR=$IC LUA_CPATH="$ROOT/build/?.so;;" "$LUA" "$ROOT/bench/randread.lua" "$IO" drive-scsi0 50000 cache | cut -d' ' -f1)
            RR_SEEK=$(VMA_CACHE_DIR=$IC LUA_CPATH="$ROOT/build/?.so;;" "$LUA" "$ROOT/bench/randread.lua" "$IS" drive-scsi0 50000 | cut -d' ' -f1)
        fi
        rm -rf "$IC"
        echo "  round $round of $RUNS done" >&2
        round=$((round + 1))
    done
    rm -f "$IO" "$IS"
fi

# ---- random access: serve, cat, mount, the Lua API, the index ------------------
# On the half image's archive (plain, and a seekable .vma.zst): nbdcopy of the
# served disk beside cp of the extracted raw image, vma cat beside cat of it,
# cp --sparse from the mounted disk beside cp --sparse of it; random 4 KiB
# reads through the Lua API (warm cache); indexing a 100 GiB thin archive.
ACCESS=1
for tool in nbdkit nbdcopy fusermount3 zstd; do
    command -v $tool >/dev/null 2>&1 || { ACCESS=0; echo "bench: $tool missing: no random-access figures" >&2; }
done
[ -e /dev/fuse ] || { ACCESS=0; echo "bench: no /dev/fuse: no random-access figures" >&2; }
want half || ACCESS=0 # it reads the half image
SPID= MNT=$W/mnt
stop_access() {
    [ -z "$SPID" ] || { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null || true; SPID=; }
    if grep -q " $MNT " /proc/mounts 2>/dev/null; then fusermount3 -u "$MNT" 2>/dev/null || true; fi
}
cleanup() {
    stop_access
    rm -rf "$W"
    rmdir "$BASE" 2>/dev/null || true
}
# serve ARCHIVE: vma serve on a socket in $W, wait until it prints its URIs
serve() {
    rm -f "$W/nbd.sock" "$W/serve.out"
    "$VMA" serve "$1" --socket "$W/nbd.sock" >"$W/serve.out" 2>&1 &
    SPID=$!
    i=0
    while ! grep -q 'nbd+unix' "$W/serve.out" 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 600 ] && kill -0 "$SPID" 2>/dev/null || die "vma serve did not start: $(cat "$W/serve.out")"
        sleep 0.05
    done
}
if [ "$ACCESS" = 1 ]; then
    echo "random access: half.img archive, plain and seekable zst" >&2
    AP=$W/ra.vma AZ=$W/ra.vma.zst RAW=$W/rx/disk-disk0.raw URI="nbd+unix:///disk0?socket=$W/nbd.sock"
    "$VMA" create "$AP" "$W/half.img" >/dev/null
    "$VMA" extract "$AP" "$W/rx" >/dev/null
    same "$W/half.img" "$RAW"
    # a seekable .vma.zst: vma create's own once it writes a seek table, else made by hand
    "$VMA" create "$AZ" "$W/half.img" >/dev/null
    ZST_NOTE="vma create"
    if ! "$VMA" cat "$AZ" disk0 --length 0 >/dev/null 2>&1; then
        rm -f "$AZ"
        "$LUA" "$ROOT/bench/mkseekable.lua" "$AP" "$AZ"
        ZST_NOTE="made by bench/mkseekable.lua: 4 MiB frames, zstd -3 (vma create writes one stream)"
    fi
    echo "ra|archive|$(du -k --apparent-size "$AP" | cut -f1)|-|0|0|-" >>"$RES"
    echo "ra|zst archive|$(du -k --apparent-size "$AZ" | cut -f1)|-|0|0|-" >>"$RES"
    # thin100: 100 GiB sparse, 4 MiB of data: the time to open and index it
    truncate -s 100G "$W/thin100.img"
    rnd thin100 $((4 * MiB)) | dd of="$W/thin100.img" bs=1M seek=51200 conv=notrunc iflag=fullblock status=none
    "$VMA" create "$W/thin100.vma" "$W/thin100.img" >/dev/null
    rm -f "$W/thin100.img"
    mkdir -p "$MNT"
    round=1
    while [ "$round" -le "$RUNS" ]; do
        once ra "cp raw && sync" "rm -f \"\$C\"" "sh -c 'cp \"\$1\" \"\$2\" && sync' sh \"$RAW\" \"$C\""
        once ra "cat raw" ":" "cat \"$RAW\" >/dev/null"
        once ra "cp --sparse raw && sync" "rm -f \"\$C\"" "sh -c 'cp --sparse=always \"\$1\" \"\$2\" && sync' sh \"$RAW\" \"$C\""
        for kind in plain zst; do
            AR=$AP
            [ $kind = zst ] && AR=$AZ
            serve "$AR"
            once ra "nbdcopy $kind && sync" "rm -f \"\$C\"" "sh -c 'nbdcopy \"\$1\" \"\$2\" && sync' sh \"$URI\" \"$C\""
            [ "$round" = 1 ] && { same "$RAW" "$C"; echo "  cmp: nbdcopy of the served $kind disk equals the image" >&2; }
            stop_access
            once ra "vma cat $kind" ":" "\"$VMA\" cat \"$AR\" disk0 >/dev/null"
            "$VMA" mount "$AR" "$MNT" || die "vma mount $AR failed"
            once ra "mount cp --sparse $kind && sync" "rm -f \"\$C\"" "sh -c 'cp --sparse=always \"\$1\" \"\$2\" && sync' sh \"$MNT/disk0.raw\" \"$C\""
            [ "$round" = 1 ] && { same "$RAW" "$C"; echo "  cmp: cp from the mounted $kind disk equals the image" >&2; }
            stop_access
        done
        rm -f "$C"
        once ra "index 100 GiB thin" "rm -rf \"\$W/xdg\"" "env XDG_CACHE_HOME=\"$W/xdg\" \"$VMA\" cat \"$W/thin100.vma\" disk0 --length 0"
        echo "  random access: round $round of $RUNS done" >&2
        round=$((round + 1))
    done
    # random 4 KiB reads from the page cache (not timed by once: a rate)
    RR_PLAIN=$(LUA_CPATH="$ROOT/build/?.so;;" "$LUA" "$ROOT/bench/randread.lua" "$AP" disk0 200000 | cut -d' ' -f1)
    RR_ZST=$(LUA_CPATH="$ROOT/build/?.so;;" "$LUA" "$ROOT/bench/randread.lua" "$AZ" disk0 50000 | cut -d' ' -f1)
    # and of the comp image's seekable .vma.zst (compressible data: each
    # frame decoded once, then read from the spill file in $W), beside the
    # same archive without a spill file (VMA_SPILL_MB=0: a frame decode per
    # read that misses the 64 MiB frame cache)
    RR_COMP= RR_NOSPILL=
    if [ -f "$W/comp.img" ]; then
        "$VMA" create "$W/rc.vma.zst" "$W/comp.img" >/dev/null
        RR_COMP=$(TMPDIR=$W LUA_CPATH="$ROOT/build/?.so;;" "$LUA" "$ROOT/bench/randread.lua" "$W/rc.vma.zst" disk0 50000 | cut -d' ' -f1)
        RR_NOSPILL=$(VMA_SPILL_MB=0 LUA_CPATH="$ROOT/build/?.so;;" "$LUA" "$ROOT/bench/randread.lua" "$W/rc.vma.zst" disk0 3000 | cut -d' ' -f1)
        rm -f "$W/rc.vma.zst"
    fi
fi
# ---- Ceph RBD: restore into and back up from a cluster ------------------------
# One single-node cluster (tests/ceph/cluster.sh: bluestore on a sparse file)
# for the whole section: the half image's archive restored into a new image
# beside `rbd import` of the raw image; a snapshot of it backed up beside
# `rbd export` (to standard output, so that only the reading is compared, and
# to files with sync); the thin image (in the full size 8 GiB holding 64 MiB,
# put in the cluster by a restore: rbd import would read all of it) backed up
# from a snapshot. BENCH_RBD=0 skips it.
RBD=${BENCH_RBD:-1}
CEPHDIR=
stop_ceph() {
    [ -z "$CEPHDIR" ] || "$ROOT/tests/ceph/cluster.sh" stop "$CEPHDIR" --rm >/dev/null 2>&1 || true
    CEPHDIR=
}
cleanup() {
    stop_access
    stop_ceph
    rm -rf "$W"
    rmdir "$BASE" 2>/dev/null || true
}
if [ "$RBD" != 0 ] && ! { want half && want thin; }; then
    RBD=0
    echo "bench: no RBD figures: they need the images half and thin (BENCH_ONLY=\"half thin\")" >&2
fi
if [ "$RBD" != 0 ]; then
    for tool in ceph-mon ceph-osd rbd; do
        command -v $tool >/dev/null 2>&1 ||
            { RBD=0; echo "bench: $tool missing: no RBD figures (apt-get install ceph-mon ceph-osd ceph-common)" >&2; }
    done
    [ -f "$ROOT/build/cmod/vma/rbd.so" ] ||
        { RBD=0; echo "bench: build/cmod/vma/rbd.so missing (make with librbd-dev): no RBD figures" >&2; }
fi
if [ "$RBD" = 1 ]; then
    CEPHDIR=$W/ceph
    "$ROOT/tests/ceph/cluster.sh" start "$CEPHDIR" >"$W/ceph-start.log" 2>&1 ||
        { cat "$W/ceph-start.log" >&2; die "the Ceph test cluster did not start"; }
    CEPH_CONF=$CEPHDIR/ceph.conf
    export CEPH_CONF
    echo "rbd: $(tail -n 1 "$W/ceph-start.log")" >&2
    R="rbd --no-progress"
    HA=$W/rbd-half.vma TA=$W/rbd-thin.vma
    "$VMA" create "$HA" "$W/half.img" >/dev/null
    "$VMA" create "$TA" "$W/thin.img" >/dev/null
    printf 'format=raw:0:disk0=rbd:rbd/res\n' >"$W/res.map"
    printf 'format=raw:0:disk0=rbd:rbd/thin\n' >"$W/thin.map"
    "$VMA" extract -q -r "$W/thin.map" "$TA" "$W/tx" >/dev/null
    rm -rf "$W/tx"
    $R snap create rbd/thin@s
    DROP_RES="{ $R snap purge rbd/res; $R rm rbd/res; } >/dev/null 2>&1 || true; rm -rf \"\$D\""
    round=1
    while [ "$round" -le "$RUNS" ]; do
        once rbd "rbd import" "$R rm rbd/imp >/dev/null 2>&1 || true" "$R import \"$W/half.img\" rbd/imp"
        once rbd "extract to rbd" "$DROP_RES" "\"$VMA\" extract -q -r \"$W/res.map\" \"$HA\" \"$D\" >/dev/null"
        if [ "$round" = 1 ]; then
            $R export rbd/res - | cmp - "$W/half.img" || die "the image restored into RBD differs"
            echo "  cmp: the image restored into RBD equals the image" >&2
        fi
        $R snap create rbd/res@s
        once rbd "rbd export" ":" "$R export rbd/res@s - >/dev/null"
        once rbd "create from rbd" ":" "\"$VMA\" create -q - disk0=rbd:rbd/res@s >/dev/null"
        once rbd "rbd export && sync" "rm -f \"\$C\"" "sh -c 'rbd --no-progress export rbd/res@s \"\$1\" && sync' sh \"$C\""
        once rbd "create from rbd file" "rm -f \"\$A\"" "\"$VMA\" create -q \"$A\" disk0=rbd:rbd/res@s"
        if [ "$round" = 1 ]; then
            rm -rf "$D"
            "$VMA" extract -q "$A" "$D" >/dev/null
            same "$W/half.img" "$D/disk-disk0.raw"
            echo "  cmp: the archive made from the RBD snapshot restores to the image" >&2
            rm -rf "$D"
        fi
        rm -f "$A" "$C"
        once rbd "create thin from rbd" "rm -f \"\$A\"" "\"$VMA\" create -q \"$A\" disk0=rbd:rbd/thin@s"
        [ "$round" = 1 ] && { "$VMA" verify "$A" >/dev/null || die "the thin archive from RBD does not verify"; }
        rm -f "$A"
        echo "  rbd: round $round of $RUNS done" >&2
        round=$((round + 1))
    done
    RBD_STORE="$(sed -n 's/^osd_objectstore = //p' "$CEPH_CONF") OSD, $(nproc) cores shared with the cluster"
    stop_ceph
fi
summarize

# ---- the report -------------------------------------------------------------
BUSY1=$(busy)
echo
echo "== vma benchmark ($MODE size, median of $RUNS runs, $CACHE)"
echo "date:       $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "vma:        $("$VMA" --version 2>/dev/null | head -n 1 || echo "$VMA")"
echo "cpu:        $(nproc) cores, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)"
echo "kernel:     $(uname -sr)"
echo "work fs:    $(df -PT "$W" | awk 'NR == 2 { print $2 " on " $1 " (" $7 ")" }') $(findmnt -no OPTIONS -T "$W" 2>/dev/null || true)"
echo "other load: ${BUSY0}% of the CPUs busy before the measurements, ${BUSY1}% after (idle machine: 0-2%)"
if awk -v a="$BUSY0" -v b="$BUSY1" 'BEGIN { exit !(a + 0 > 5 || b + 0 > 5) }'; then
    echo "            other work was running: the numbers are skewed; run again on an idle machine"
fi
if [ -n "$PVE_VMA" ]; then
    echo "pve vma:    $PVE_VMA"
else
    echo "pve vma:    not available (set PVE_VMA=/path/to/vma to compare)"
fi
[ -n "$TIMEBIN" ] || echo "peak RSS:   not measured (/usr/bin/time missing)"
echo

awk -F'|' -v half=$HALF -v thin=$THIN -v check=$CHECK -v scale=$SCALE -v comp=$COMP -v pve="$PVE_VMA" '
    $1 == "ra" || $1 == "rbd" { next }  # random access, RBD: reported below
    { t[$1 "|" $2] = $3; r[$1 "|" $2] = $4; lo[$1 "|" $2] = $5; hi[$1 "|" $2] = $6; cpu[$1 "|" $2] = $7
      if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
    function row(img, op, ref, refname,   s, mb, ratio, rss) {
        if (!((img "|" op) in t)) return
        s = t[img "|" op]
        mb = size[img] / (s > 0 ? s : 1e-9)
        if (ref != "" && t[img "|" ref] > 0) ratio = sprintf("%.2fx", s / t[img "|" ref]); else { ratio = "-"; refname = "" }
        rss = r[img "|" op]
        rss = (rss == "-" || rss == "") ? "-" : sprintf("%.1f MiB", rss / 1024)
        printf "%-7s %-21s %9.3f %15s %7s %10.0f %7s  %-20s %10s\n", img, op, s,
            sprintf("%.3f-%.3f", lo[img "|" op], hi[img "|" op]), cpu[img "|" op], mb, ratio, refname, rss
    }
    END {
        size["half"] = half; size["thin"] = thin; size["check"] = check; size["scale"] = scale; size["comp"] = comp
        label["half"] = "half: " half " MiB, 64 KiB clusters alternately random and zero"
        label["thin"] = "thin: " thin " MiB sparse, 8 pieces of data"
        label["check"] = "check: " check " MiB, every other 4 KiB block zero"
        label["scale"] = "scale: " scale " MiB sparse, a few MiB of data (create + verify only)"
        label["comp"] = "comp: " comp " MiB, 64 KiB clusters a third each text-like, random and zero"
        printf "%-7s %-21s %9s %15s %7s %10s %7s  %-20s %10s\n", "image", "operation", "median s", "min-max s", "cpu s", "MiB/s", "ratio", "reference", "peak RSS"
        for (k = 1; k <= n; k++) {
            img = order[k]
            if (img == "comp") {
                printf "-- %s\n", label[img]
                split("zst gz lzo", exts, " ")
                for (j = 1; j <= 3; j++) {
                    e = exts[j]
                    if (!(("comp|size " e) in t)) continue
                    printf "   .vma.%s %.1f MiB; the image by the reference command %.1f MiB (%+.2f%%)\n", e,
                        t["comp|size " e] / 1024, t["comp|size " e " ref"] / 1024,
                        100 * (t["comp|size " e] / t["comp|size " e " ref"] - 1)
                }
                row(img, "cp --sparse && sync", "", "")
                row(img, "zstd -T2 -3 && sync", "", "")
                row(img, "vma create .zst", "zstd -T2 -3 && sync", "zstd -T2 -3 && sync")
                row(img, "zstd -dc >/dev/null", "", "")
                row(img, "vma verify .zst", "zstd -dc >/dev/null", "zstd -dc >/dev/null")
                row(img, "vma extract .zst", "zstd -dc >/dev/null", "zstd -dc >/dev/null")
                row(img, "zstd -dc => extract -", "zstd -dc >/dev/null", "zstd -dc >/dev/null")
                gzref = (("comp|pigz -p2 -6 && sync") in t) ? "pigz -p2 -6 && sync" : "gzip -6 && sync"
                row(img, gzref, "", "")
                row(img, "vma create .gz", gzref, gzref)
                row(img, "gzip -dc >/dev/null", "", "")
                row(img, "pigz -dc >/dev/null", "", "")
                row(img, "vma verify .gz", "gzip -dc >/dev/null", "gzip -dc >/dev/null")
                row(img, "vma extract .gz", "gzip -dc >/dev/null", "gzip -dc >/dev/null")
                row(img, "lzop && sync", "", "")
                row(img, "vma create .lzo", "lzop && sync", "lzop && sync")
                row(img, "lzop -dc >/dev/null", "", "")
                row(img, "vma verify .lzo", "lzop -dc >/dev/null", "lzop -dc >/dev/null")
                row(img, "vma extract .lzo", "lzop -dc >/dev/null", "lzop -dc >/dev/null")
                continue
            }
            printf "-- %s; archive %.1f MiB\n", label[img], t[img "|archive"] / 1024
            row(img, "cat image", "", "")
            row(img, "cp --sparse && sync", "", "")
            row(img, "vma create", "cp --sparse && sync", "cp --sparse && sync")
            row(img, "cat archive", "", "")
            row(img, "vma verify", "cat archive", "cat archive")
            row(img, "vma extract", "cp --sparse && sync", "cp --sparse && sync")
            row(img, "pve create", "cp --sparse && sync", "cp --sparse && sync")
            row(img, "pve verify", "cat archive", "cat archive")
            row(img, "pve extract", "cp --sparse && sync", "cp --sparse && sync")
        }
        if (pve != "") {
            print ""
            print "ours / Proxmox vma (below 1.00x: faster than Proxmox):"
            for (k = 1; k <= n; k++) {
                img = order[k]
                split("create verify extract", ops, " ")
                for (j = 1; j <= 3; j++)
                    if (((img "|pve " ops[j]) in t) && t[img "|pve " ops[j]] > 0)
                        printf "  %-7s %-8s %.2fx\n", img, ops[j], t[img "|vma " ops[j]] / t[img "|pve " ops[j]]
            }
        }
    }' "$RES"

# ---- the targets -------------------------------------------------------------
echo
echo "targets ($MODE size; ratios of the medians, and in brackets of the fastest runs):"
target() { # NAME VALUE LIMIT UNIT [NOTE]
    if awk -v v="$2" -v l="$3" 'BEGIN { exit !(v <= l) }'; then ok=met; else ok=MISSED; fi
    printf '  %-40s %9s %-6s (limit %s%s)%s\n' "$1" "$(printf '%.2f' "$2")$4" "$ok" "$3" "$4" "${5:+ [$5]}"
}
# ratio IMAGE OP REF [COLUMN]: OP's time over REF's (column 3: median, 5: min)
ratio() {
    awk -F'|' -v i="$1" -v a="$2" -v b="$3" -v c="${4:-3}" '$1 == i && $2 == a { x = $c } $1 == i && $2 == b { y = $c }
        END { printf "%.4f", (y > 0 ? x / y : 999) }' "$RES"
}
ratio2() { target "$1" "$(ratio "$2" "$3" "$4")" "$5" x "fastest $(printf '%.2f' "$(ratio "$2" "$3" "$4" 5)")x"; }
if want half; then
    ratio2 "half create / (cp --sparse && sync)" half 'vma create' 'cp --sparse && sync' 1.0
    ratio2 "half extract / (cp --sparse && sync)" half 'vma extract' 'cp --sparse && sync' 1.0
fi
if want check; then ratio2 "check extract / (cp --sparse && sync)" check 'vma extract' 'cp --sparse && sync' 1.0; fi
for img in half thin check; do
    if want $img; then ratio2 "$img verify / cat archive" $img 'vma verify' 'cat archive' 2.0; fi
done
if want thin; then target "thin create (${THIN} MiB sparse)" "$(get thin 'vma create')" 1.0 " s"; fi
if [ "$COMP" -gt 0 ]; then
    ratio2 "comp create .zst / (zstd -T2 -3 && sync)" comp 'vma create .zst' 'zstd -T2 -3 && sync' 0.8
    ratio2 "comp verify .zst / zstd -dc" comp 'vma verify .zst' 'zstd -dc >/dev/null' 1.1
    # extract: beside the slower of decompressing and copying
    for c in "zst zstd" "gz gzip" "lzo lzop"; do
        ext=${c% *} dec="${c#* } -dc >/dev/null"
        [ -n "$(get comp "vma verify .$ext")" ] || continue
        [ "$ext" = zst ] || ratio2 "comp verify .$ext / ${c#* } -dc" comp "vma verify .$ext" "$dec" 1.1
        slower=$(awk -F'|' -v d="$dec" '$1 == "comp" && ($2 == d || $2 == "cp --sparse && sync") && $3 > m { m = $3; o = $2 }
            END { print o }' "$RES")
        ratio2 "comp extract .$ext / ($slower)" comp "vma extract .$ext" "$slower" 1.2
    done
fi
if [ -n "$TIMEBIN" ]; then
    maxrss=$(awk -F'|' '$1 != "ra" && $1 != "rbd" && $2 ~ /^vma / && $4 != "-" && $4 + 0 > m { m = $4 + 0 } END { printf "%.2f", m / 1024 }' "$RES")
    [ "$maxrss" = "0.00" ] || target "peak RSS of vma create/verify/extract (largest)" "$maxrss" 64 " MiB"
fi
if [ "$INSTANT" -gt 0 ]; then
    echo
    arch=$(get instant archive) copy=$(get instant copy)
    echo "instant access ($INSTANT MiB instant image, as vzdump writes it: $(awk -v k="$arch" 'BEGIN { printf "%.1f", k / 1024 }') MiB one-stream .vma.zst):"
    for op in "zstd -dc >/dev/null" "zstd -dc >file" "vma decoder fill" "zstd -dc, archive cached" \
              "vma decoder fill, archive cached" "config + first 4 KiB"; do
        awk -F'|' -v o="$op" '$1 == "instant" && $2 == o {
            printf "  %-34s %9.3f s  (%.3f-%.3f)\n", o, $3, $5, $6 }' "$RES"
    done
    echo "  the decoded copy, compacted         $(awk -v k="$copy" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
    echo "  random 4 KiB reads (Lua, warm)     through the copy $RR_COPY/s, seekable .vma.zst $RR_SEEK/s"
    echo
    echo "instant-access targets:"
    target "configs + first 4 KiB, one stream" "$(get instant 'config + first 4 KiB')" 1.0 " s"
    ratio2 "decoder fill / zstd -dc (>= 0.85x speed)" instant 'vma decoder fill' 'zstd -dc >/dev/null' 1.176
    echo "  decoder fill / zstd -dc into a file on the same disk: $(ratio instant 'vma decoder fill' 'zstd -dc >file')x the time"
    echo "  decoder fill / zstd -dc, both with the archive in the page cache: $(ratio instant 'vma decoder fill, archive cached' 'zstd -dc, archive cached')x the time"
    target "copy / archive size" "$(awk -v a="$arch" -v c="$copy" 'BEGIN { printf "%.4f", c / a }')" 1.15 x
    target "seekable reads/s / reads/s through the copy" "$(awk -v a="$RR_SEEK" -v b="$RR_COPY" 'BEGIN { printf "%.4f", a / (b > 0 ? b : 1e-9) }')" 1.1 x
fi
if [ "$ACCESS" = 1 ]; then
    echo
    echo "random access ($HALF MiB half image; archive $(get ra archive | awk '{ printf "%.1f", $1 / 1024 }') MiB, seekable zst $(get ra 'zst archive' | awk '{ printf "%.1f", $1 / 1024 }') MiB: $ZST_NOTE):"
    for op in "cp raw && sync" "nbdcopy plain && sync" "nbdcopy zst && sync" "cat raw" "vma cat plain" "vma cat zst" \
              "cp --sparse raw && sync" "mount cp --sparse plain && sync" "mount cp --sparse zst && sync" "index 100 GiB thin"; do
        awk -F'|' -v o="$op" -v mb="$HALF" '$1 == "ra" && $2 == o {
            rate = (o ~ /index/) ? "-" : sprintf("%.0f", mb / ($3 > 0 ? $3 : 1e-9))
            rss = ($4 == "-") ? "-" : sprintf("%.1f MiB", $4 / 1024)
            printf "  %-34s %9.3f s  (%.3f-%.3f)  %8s MiB/s  peak RSS %s\n", o, $3, $5, $6, rate, rss }' "$RES"
    done
    echo "  random 4 KiB reads (Lua, warm)     plain $RR_PLAIN/s, zst $RR_ZST/s"
    [ -z "$RR_COMP" ] || echo "  the same, comp image's .vma.zst     $RR_COMP/s (without the spill file $RR_NOSPILL/s)"
    echo
    echo "random-access targets (time ratios; at most the limit):"
    for kind in plain zst; do
        ratio2 "nbdcopy $kind / cp raw (>= 0.8x speed)" ra "nbdcopy $kind && sync" 'cp raw && sync' 1.25
        ratio2 "vma cat $kind / cat raw (>= 0.9x speed)" ra "vma cat $kind" 'cat raw' 1.11
        ratio2 "mount cp --sparse $kind / cp --sparse raw" ra "mount cp --sparse $kind && sync" 'cp --sparse raw && sync' 1.5
    done
    target "index a 100 GiB thin archive" "$(get ra 'index 100 GiB thin')" 1.0 " s"
    # a rate: the target is a floor, so compare its inverse
    for kind in plain zst comp; do
        eval "rr=\$RR_$(echo $kind | tr a-z A-Z)"
        [ $kind != comp ] || [ -n "$rr" ] || continue
        if [ "${rr:-0}" -ge 20000 ]; then ok=met; else ok=MISSED; fi
        what=$kind
        [ $kind = comp ] && what="zst of the comp image"
        printf '  %-40s %9s %-6s (limit %s)\n' "random 4 KiB reads/s, $what (Lua)" "$rr" "$ok" ">= 20000"
    done
fi
if [ "$RBD" = 1 ]; then
    echo
    echo "Ceph RBD (a single-node test cluster on this machine: $RBD_STORE; half image $HALF MiB, thin image $THIN MiB holding $THIN_DATA MiB):"
    for op in "rbd import" "extract to rbd" "rbd export" "create from rbd" "rbd export && sync" \
              "create from rbd file" "create thin from rbd"; do
        awk -F'|' -v o="$op" -v mb="$HALF" '$1 == "rbd" && $2 == o {
            rate = (o ~ /thin/) ? "-" : sprintf("%.0f", mb / ($3 > 0 ? $3 : 1e-9))
            rss = ($4 == "-" || $4 == "") ? "-" : sprintf("%.1f MiB", $4 / 1024)
            printf "  %-34s %9.3f s  (%.3f-%.3f)  %8s MiB/s  peak RSS %s\n", o, $3, $5, $6, rate, rss }' "$RES"
    done
    echo
    echo "RBD targets (time ratios; at most the limit):"
    ratio2 "extract to rbd / rbd import (>= 0.8x speed)" rbd "extract to rbd" "rbd import" 1.25
    ratio2 "create from rbd / rbd export (>= 0.8x speed)" rbd "create from rbd" "rbd export" 1.25
    ratio2 "  the same into files, with sync" rbd "create from rbd file" "rbd export && sync" 1.25
    target "create from ${THIN} MiB holding ${THIN_DATA} MiB" "$(get rbd 'create thin from rbd')" 2.0 " s"
fi

# ---- the backup store (bench/store.sh, also runnable on its own) ---------------
if want store; then
    echo
    BENCH_DIR="$BASE" BENCH_RUNS="$RUNS" BENCH_QUICK="$QUICK" BENCH_COLD="${BENCH_COLD:-1}" VMA="$VMA" \
        sh "$ROOT/bench/store.sh" || echo "bench: the store section failed"
fi

# ---- files, not disks (bench/files.sh, also runnable on its own) --------------
if want files; then
    echo
    BENCH_DIR="$BASE" BENCH_RUNS="$RUNS" BENCH_QUICK="$QUICK" VMA="$VMA" sh "$ROOT/bench/files.sh" ||
        echo "bench: the files section failed"
fi

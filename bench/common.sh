# bench/common.sh - what bench/files.sh and bench/store.sh share (sourced:
# BENCH_NAME set first): the settings from the environment, die, the work
# folder, the page cache dropped before each timed run, the samples and their
# medians (bench/host.sh: what the machine gives every script).  bench/run.sh
# has its own samples (images, several columns).
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VMA=${VMA:-$ROOT/build/vma}
RUNS=${BENCH_RUNS:-3}
QUICK=${BENCH_QUICK:-0}
BASE=${BENCH_DIR:-/var/tmp/vma-bench}
LUA=$(command -v lua5.4 || command -v lua || true)
MiB=1048576

die() { echo "bench $BENCH_NAME: $*" >&2; exit 1; }
[ -x "$VMA" ] || die "$VMA not found: run make first"
[ -n "$LUA" ] || die "lua5.4 is needed"
case $RUNS in ''|*[!0-9]*|0) die "BENCH_RUNS must be a positive number" ;; esac

# bench_workdir NEED_MIB [HINT]: the work folder W (removed at the end), with
# NEED_MIB free in it; the cache folder and the samples inside it
bench_workdir() {
    mkdir -p "$BASE" || die "cannot create $BASE"
    W=$(mktemp -d "$BASE/$BENCH_NAME.XXXXXX") || die "cannot create a folder in $BASE"
    trap 'rm -rf "$W"; rmdir "$BASE" 2>/dev/null || true' EXIT
    trap 'exit 130' INT TERM HUP
    AVAIL=$(df -Pk "$W" | awk 'NR == 2 { print int($4 / 1024) }')
    [ "$AVAIL" -ge "$1" ] || die "not enough free space in $BASE: $AVAIL MiB free, $1 MiB needed${2:+ ($2)}"
    export XDG_CACHE_HOME="$W/cache"
    SAMPLES=$W/samples
    : >"$SAMPLES"
}

# the page cache, /usr/bin/time, seeded random bytes (drop_caches, CACHE,
# TIMEBIN, rnd)
. "$ROOT/bench/host.sh"

# once OP PREP CMD: PREP untimed, the cache dropped, CMD timed; the sample
# OP|seconds|peak RSS in KiB (- without /usr/bin/time)
once() {
    eval "$2"
    drop_caches
    t0=$(date +%s%N)
    if [ -n "$TIMEBIN" ]; then
        eval "$TIMEBIN -f '%M' -o \"\$W/rss\" $3" || die "'$1' failed: $3"
    else
        eval "$3" || die "'$1' failed: $3"
    fi
    t1=$(date +%s%N)
    rss=-
    [ -z "$TIMEBIN" ] || rss=$(tail -n 1 "$W/rss")
    echo "$1|$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')|$rss" >>"$SAMPLES"
}
# median OP [DIGITS]: the median seconds of OP's samples (nan without one)
median() {
    awk -F'|' -v o="$1" -v d="${2:-4}" '$1 == o { v[++n] = $2 } END {
        for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
        if (n == 0) print "nan"; else printf "%.*f", d, (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }' "$SAMPLES"
}
# rss OP: the largest peak RSS of OP's samples
rss() { awk -F'|' -v o="$1" '$1 == o && $3 != "-" && $3 + 0 > m { m = $3 + 0 } END { if (m) printf "%.1f MiB", m / 1024; else print "-" }' "$SAMPLES"; }

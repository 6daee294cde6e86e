#!/bin/sh
# Build the libFuzzer harness of the reader (tests/fuzz/fuzz_reader.c) with
# clang, ASan and UBSan, and fuzz for FUZZ_SECONDS (default 60).
#
#   sh tests/fuzz/run.sh              build, then fuzz for FUZZ_SECONDS
#   sh tests/fuzz/run.sh replay       build, then run every seed and regression once
#   FUZZ_JOBS=4 sh tests/fuzz/run.sh  four fuzzing processes sharing the corpus
#                                     (their logs: build/fuzz/fuzz-N.log)
#   FUZZ_FLAGS='-len_control=0' FUZZ_MAX_LEN=1200000 sh tests/fuzz/run.sh
#                                     more libFuzzer flags; extents over 1 MiB
#   FUZZ_TARGET=guest sh tests/fuzz/run.sh
#                                     the guest readers instead (partition
#                                     tables, LVM, file systems:
#                                     tests/fuzz/fuzz_guest.c, seeds in
#                                     tests/fuzz/seeds-guest/, made by
#                                     tests/fuzz/gen_guest_seeds.sh)
#
# The seeds (tests/fuzz/seeds/) and every input that ever crashed
# (tests/fuzz/regressions/) are committed; the working corpus grows in
# build/fuzz-corpus and crash inputs land in build/fuzz-artifacts/ (copy
# them to tests/fuzz/regressions/ once understood).
# Needs clang and libclang-rt-14-dev (sh tools/deps.sh installs them).
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
set -e

CLANG=${CLANG:-clang}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-1}
B=build/fuzz
TARGET=${FUZZ_TARGET:-reader}
case $TARGET in
reader) SEEDS=tests/fuzz/seeds REGR=tests/fuzz/regressions CORPUS=build/fuzz-corpus
        DICT="-dict=$ROOT/tests/fuzz/vma.dict" EXTRA_PKG= MAX_LEN=300000 ;;
guest)  SEEDS=tests/fuzz/seeds-guest REGR=tests/fuzz/regressions-guest CORPUS=build/fuzz-corpus-guest
        DICT= EXTRA_PKG= MAX_LEN=600000 ;;
*)      echo "fuzz: unknown FUZZ_TARGET $TARGET (reader, guest)" >&2; exit 2 ;;
esac
BIN=$B/fuzz_$TARGET
FUZZ_MAX_LEN=${FUZZ_MAX_LEN:-$MAX_LEN}
ART=build/fuzz-artifacts

if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "fuzz: $CLANG not found (apt-get install clang libclang-rt-14-dev)" >&2
    exit 2
fi
mkdir -p "$B" "$CORPUS" "$ART"

SRC="$(ls src/lib/*/*.c) tests/fuzz/fuzz_$TARGET.c"
PKG="glib-2.0 uuid libcrypto libzstd zlib lzo2 libxxhash $EXTRA_PKG"
# rebuild when a source is newer than the binary
rebuild=0
[ -x "$BIN" ] || rebuild=1
for f in $SRC src/lib/*.h src/lib/*/*.h tests/fuzz/run.sh; do
    [ "$f" -nt "$BIN" ] && rebuild=1
done
if [ "$rebuild" = 1 ]; then
    echo "fuzz: building $BIN"
    # shellcheck disable=SC2046
    "$CLANG" -g -O1 -std=c11 -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        $(pkg-config --cflags $PKG) -Isrc/lib -DVMA_VERSION='"fuzz"' \
        -o "$BIN" $SRC $(pkg-config --libs $PKG) -lpthread
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

if [ "${1:-}" = replay ]; then
    set --
    for f in $SEEDS/* $REGR/*; do
        [ -f "$f" ] && set -- "$@" "$f"
    done
    echo "fuzz: replaying $# files"
    exec "$BIN" -rss_limit_mb=4096 "$@"
fi

echo "fuzz: $FUZZ_JOBS job(s) for ${FUZZ_SECONDS}s, corpus $CORPUS, crashes in $ART/"
set -- -max_len="$FUZZ_MAX_LEN" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=4096 \
    -timeout=60 -artifact_prefix="$ROOT/$ART/" $DICT \
    -print_final_stats=1 ${FUZZ_FLAGS:-} "$ROOT/$CORPUS" "$ROOT/$SEEDS" "$ROOT/$REGR"
if [ "$FUZZ_JOBS" -gt 1 ]; then
    # the jobs write their logs (fuzz-N.log) into the current folder
    cd "$B"
    exec "$ROOT/$BIN" -jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS" "$@"
fi
exec "$ROOT/$BIN" "$@"

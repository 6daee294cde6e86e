#!/bin/sh
# Build the libFuzzer harnesses (tests/fuzz/fuzz_*.c) with clang, ASan and
# UBSan, and fuzz each for FUZZ_SECONDS (default 60), one after the other.
#
#   sh tests/fuzz/run.sh              build, then fuzz every harness FUZZ_SECONDS
#   sh tests/fuzz/run.sh replay       build, then run every seed and regression once
#                                     through every harness
#   FUZZ_TARGETS="seekable disk" sh tests/fuzz/run.sh
#                                     only these harnesses (of: reader seekable
#                                     index disk guest)
#   FUZZ_JOBS=4 sh tests/fuzz/run.sh  four fuzzing processes per harness sharing
#                                     its corpus (their logs: build/fuzz/NAME/fuzz-N.log)
#   FUZZ_FLAGS='-len_control=0' FUZZ_MAX_LEN=1200000 sh tests/fuzz/run.sh
#                                     more libFuzzer flags; extents over 1 MiB
#   sh tests/fuzz/run.sh coverage     the line coverage of src/lib reached by each
#                                     harness's corpus, seeds and regressions
#                                     (clang source coverage, llvm-cov report)
#
# The harnesses:
#   reader    the streaming reader and the restore engine
#   seekable  random reads of a plain file or a seekable .vma.zst (seek table,
#             frames, block maps, spill file) against a decode from start to end
#   index     the index: built, walked, saved, loaded; fuzzed cache files
#   disk      vma_archive_pread and vma_archive_map of plain and seekable
#             archives against a restore of the same bytes
#   guest     the guest readers: partition tables, LVM, file systems (its own
#             seeds, tests/fuzz/seeds-guest/ made by gen_guest_seeds.lua, and
#             regressions, tests/fuzz/regressions-guest/)
# The seeds (tests/fuzz/seeds/) and every input that ever failed
# (tests/fuzz/regressions/) are committed and shared by the archive
# harnesses; each
# harness's working corpus grows in build/fuzz-corpus/NAME and its crash
# inputs land in build/fuzz-artifacts/NAME/ (copy them to
# tests/fuzz/regressions/ once understood: `make check` replays them through
# every harness, build/fuzz_replay).
# Needs clang and libclang-rt-14-dev (sh tools/deps.sh installs them).
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
set -e

CLANG=${CLANG:-clang}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-1}
FUZZ_MAX_LEN=${FUZZ_MAX_LEN:-300000}
B=build/fuzz
ALL=$(ls tests/fuzz/fuzz_*.c | sed 's|tests/fuzz/fuzz_\(.*\)\.c|\1|' | tr '\n' ' ')
TARGETS=${FUZZ_TARGETS:-$ALL}

if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "fuzz: $CLANG not found (apt-get install clang libclang-rt-14-dev)" >&2
    exit 2
fi
for t in $TARGETS; do
    [ -f "tests/fuzz/fuzz_$t.c" ] || { echo "fuzz: no harness '$t' (of: $ALL)" >&2; exit 2; }
done
mkdir -p "$B"

LIBSRC=$(ls src/lib/*/*.c)
PKG="glib-2.0 uuid libcrypto libzstd zlib libisal lzo2 libxxhash"
# The Sleuth Kit's headers (the guest layer loads the library with dlopen)
TSK_CFLAGS=$(pkg-config --cflags tsk 2>/dev/null || true)
# a harness's seeds and regressions: its own folders when it has them
seeds_of() { if [ -d "tests/fuzz/seeds-$1" ]; then echo "tests/fuzz/seeds-$1"; else echo tests/fuzz/seeds; fi; }
regr_of() { if [ -d "tests/fuzz/regressions-$1" ]; then echo "tests/fuzz/regressions-$1"; else echo tests/fuzz/regressions; fi; }
build() { # NAME: build/fuzz/fuzz_NAME, when a source is newer than it
    bin=$B/fuzz_$1
    rebuild=0
    [ -x "$bin" ] || rebuild=1
    for f in $LIBSRC src/lib/*.h src/lib/*/*.h tests/fuzz/fuzz_$1.c tests/fuzz/common.c \
             tests/fuzz/common.h tests/fuzz/run.sh; do
        [ "$f" -nt "$bin" ] && rebuild=1
    done
    if [ "$rebuild" = 1 ]; then
        echo "fuzz: building $bin"
        # shellcheck disable=SC2046,SC2086
        "$CLANG" -g -O1 -std=c11 -fno-omit-frame-pointer \
            -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
            $(pkg-config --cflags $PKG) $TSK_CFLAGS -Isrc/lib -DVMA_VERSION='"fuzz"' \
            -o "$bin" $LIBSRC tests/fuzz/fuzz_$1.c tests/fuzz/common.c \
            $(pkg-config --libs $PKG) -ldl -lpthread
    fi
}
if [ "${1:-}" = coverage ]; then
    # shellcheck disable=SC2086
    for t in $TARGETS; do
        bin=$B/cov_$t
        echo "fuzz: $t: coverage build $bin"
        # shellcheck disable=SC2046
        "$CLANG" -g -O1 -std=c11 -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping \
            $(pkg-config --cflags $PKG) $TSK_CFLAGS -Isrc/lib -DVMA_VERSION='"fuzz"' \
            -o "$bin" $LIBSRC tests/fuzz/fuzz_$t.c tests/fuzz/common.c \
            $(pkg-config --libs $PKG) -ldl -lpthread
        mkdir -p "build/fuzz-corpus/$t"
        rm -f "$B/cov_$t.profraw"
        LLVM_PROFILE_FILE="$B/cov_$t.profraw" "$bin" -runs=0 -rss_limit_mb=4096 \
            "build/fuzz-corpus/$t" "$(seeds_of "$t")" "$(regr_of "$t")" >"$B/cov_$t.log" 2>&1
        llvm-profdata merge -sparse "$B/cov_$t.profraw" -o "$B/cov_$t.profdata"
        echo "fuzz: $t: lines of src/lib reached by $(ls "build/fuzz-corpus/$t" | wc -l) corpus inputs, the seeds and regressions:"
        llvm-cov report "$bin" -instr-profile="$B/cov_$t.profdata" $LIBSRC
    done
    exit 0
fi

for t in $TARGETS; do build "$t"; done

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

if [ "${1:-}" = replay ]; then
    for t in $TARGETS; do
        set --
        for f in "$(seeds_of "$t")"/* "$(regr_of "$t")"/*; do
            [ -f "$f" ] && set -- "$@" "$f"
        done
        echo "fuzz: $t: replaying $# files"
        "$B/fuzz_$t" -rss_limit_mb=4096 "$@"
    done
    exit 0
fi

for t in $TARGETS; do
    CORPUS=build/fuzz-corpus/$t
    ART=build/fuzz-artifacts/$t
    mkdir -p "$CORPUS" "$ART" "$B/$t"
    echo "fuzz: $t: $FUZZ_JOBS job(s) for ${FUZZ_SECONDS}s, corpus $CORPUS, crashes in $ART/"
    # the archive harnesses share the format's dictionary; the guest's
    # inputs are disk images (up to 600 KB)
    dict="-dict=$ROOT/tests/fuzz/vma.dict" len=$FUZZ_MAX_LEN
    [ "$t" = guest ] && dict= len=${FUZZ_MAX_LEN_GUEST:-600000}
    # shellcheck disable=SC2086
    set -- -max_len="$len" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=4096 \
        -timeout=60 -artifact_prefix="$ROOT/$ART/" $dict \
        -print_final_stats=1 ${FUZZ_FLAGS:-} "$ROOT/$CORPUS" "$ROOT/$(seeds_of "$t")" \
        "$ROOT/$(regr_of "$t")"
    if [ "$FUZZ_JOBS" -gt 1 ]; then
        # the jobs write their logs (fuzz-N.log) into the current folder
        (cd "$B/$t" && "$ROOT/$B/fuzz_$t" -jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS" "$@")
    else
        "$ROOT/$B/fuzz_$t" "$@"
    fi
done

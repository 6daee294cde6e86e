#!/bin/sh
# Runs every test and ends with the line "N passed, N failed, N skipped"
# (a skipped test is never counted as passed).
#   C unit tests (build/test_core), the fuzzing seeds and regressions through
#   every harness (build/fuzz_replay), Lua and command-line tests (busted, tests/lua),
#   the same C and command-line tests under ASan+UBSan, the C tests under
#   ThreadSanitizer, and a valgrind leak check.
#   The full pass also builds the Debian packages, installs them on this machine,
#   uses and purges them (tests/deb/, as root, one run at a time).
# VMA_QUICK=1 skips the sanitizer, valgrind and package passes.
# VMA_TAGS=ceph (or guestfs) runs only the specs tagged #ceph (#guestfs): make
# check-ceph, make check-guestfs.
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
LOG=$(mktemp -d /tmp/vma-check.XXXXXX)
passed=0
failed=0
skipped=0

count() { # name, passed, failed[, skipped]
    echo "== $1: $2 passed, $3 failed, ${4:-0} skipped"
    passed=$((passed + $2))
    failed=$((failed + $3))
    skipped=$((skipped + ${4:-0}))
}

# the TAP output of busted: count ok / not ok lines; "ok N - # SKIP" is a
# pending test: skipped, not passed
run_busted() { # label, specs (a folder or files), then environment assignments
    label=$1
    specs=$2
    shift 2
    env "$@" VMA_ROOT="$ROOT" LUA_PATH="$ROOT/lua/?.lua;$ROOT/tests/lua/?.lua;;" \
        $WRAP busted --lpath="$ROOT/lua/?.lua;$ROOT/tests/lua/?.lua" -o TAP $BUSTED_ARGS $specs \
        >"$LOG/$label.tap" 2>&1
    skip=$(grep -c '^ok [0-9]* - # SKIP' "$LOG/$label.tap")
    ok=$(($(grep -c '^ok ' "$LOG/$label.tap") - skip))
    nok=$(grep -c '^not ok ' "$LOG/$label.tap")
    if [ "$ok" -eq 0 ] && [ "$nok" -eq 0 ] && [ "$skip" -eq 0 ]; then
        # no test: busted itself failed, unless a tag selects none (VMA_TAGS)
        if [ -n "${VMA_TAGS:-}" ] && grep -qx '1\.\.0' "$LOG/$label.tap"; then
            echo "== no spec is tagged #$VMA_TAGS yet"
            return
        fi
        nok=1
    fi
    # busted ends its output with the plan "1..N": without it, or with fewer
    # results than it says, busted stopped early (a crash, a killed run)
    plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\)$/\1/p' "$LOG/$label.tap" | tail -1)
    if [ -z "$plan" ] || [ "$((ok + nok + skip))" -lt "$plan" ]; then
        echo "== $label: busted stopped early: $((ok + nok + skip)) results of ${plan:-an unknown number}"
        tail -20 "$LOG/$label.tap"
        nok=$((nok + 1))
    fi
    if [ "$nok" -ne 0 ]; then
        grep -A12 '^not ok ' "$LOG/$label.tap" | head -150
        grep -E '^(Error|lua)' "$LOG/$label.tap" | head -20
    fi
    if [ "$skip" -ne 0 ]; then
        echo "== $label: $skip skipped (not counted as passed):"
        sed -n 's/^ok [0-9]* - # SKIP /   /p' "$LOG/$label.tap" | sort | uniq -c | head -30
    fi
    count "$label" "$ok" "$nok" "$skip"
}

run_c() { # label, binary
    "$2" >"$LOG/$1.out" 2>&1
    rc=$?
    p=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$LOG/$1.out" | tail -1)
    f=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$LOG/$1.out" | tail -1)
    [ -n "$p" ] || { p=0; f=1; }
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    [ "$f" -eq 0 ] || tail -40 "$LOG/$1.out"
    count "$1" "$p" "$f"
}

WRAP=""
BUSTED_ARGS=""
if [ -n "${VMA_TAGS:-}" ]; then
    BUSTED_ARGS="--tags=$VMA_TAGS"
    run_busted "lua-$VMA_TAGS" tests/lua LUA_CPATH="$ROOT/build/?.so;;" VMA_BIN="$ROOT/build/vma"
    rm -rf "$LOG"
    echo "$passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]
    exit
fi

run_c c-unit build/test_core
# every fuzzing seed and regression through every harness (tests/fuzz/replay.c)
run_c fuzz-replay build/fuzz_replay
run_busted lua tests/lua LUA_CPATH="$ROOT/build/?.so;;" VMA_BIN="$ROOT/build/vma"

if [ "${VMA_QUICK:-0}" != 1 ]; then
    # the same under AddressSanitizer + UndefinedBehaviorSanitizer
    if make --no-print-directory asan >"$LOG/asan-build.log" 2>&1; then
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=99 \
            run_c c-unit-asan build/asan/test_core
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=99 \
            run_c fuzz-replay-asan build/asan/fuzz_replay
        # the specs that run the executable (the others test pure Lua)
        run_busted cli-asan "$(ls tests/lua/*cli*_spec.lua tests/lua/safety_spec.lua \
                tests/lua/hostile_spec.lua 2>/dev/null | tr '\n' ' ')" \
            VMA_BIN="$ROOT/build/asan/vma" VMA_ONLY_CLI=1 \
            LUA_CPATH="$ROOT/build/?.so;;" \
            ASAN_OPTIONS=detect_leaks=1:exitcode=99 \
            LSAN_OPTIONS=suppressions="$ROOT/tests/lsan.supp" \
            UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=99
    else
        tail -20 "$LOG/asan-build.log"
        count asan-build 0 1
    fi
    # the C tests under ThreadSanitizer: every hand-off between the
    # library's threads (base/thread.c: pthread mutexes, conditions and
    # queues) is visible to it; a report fails the pass (exit code 66)
    if make --no-print-directory tsan >"$LOG/tsan-build.log" 2>&1; then
        TSAN_OPTIONS="halt_on_error=0:exitcode=66:second_deadlock_stack=1:suppressions=$ROOT/tests/tsan.supp" \
            run_c c-unit-tsan build/tsan/test_core
        grep -A3 '^WARNING: ThreadSanitizer' "$LOG/c-unit-tsan.out" | head -60
    else
        tail -20 "$LOG/tsan-build.log"
        count tsan-build 0 1
    fi
    # the Debian packages: built, installed here, used, purged (one run at a
    # time on this machine: they install system-wide)
    WRAP="flock /var/lock/vma-deb-test.lock"
    run_busted deb tests/deb LUA_CPATH="$ROOT/build/?.so;;" VMA_BIN="$ROOT/build/vma"
    WRAP=""
    # valgrind: no leak in a create / verify / extract round trip
    if sh tests/valgrind.sh >"$LOG/valgrind.log" 2>&1; then
        count valgrind 1 0
    else
        tail -30 "$LOG/valgrind.log"
        count valgrind 0 1
    fi
fi

rm -rf "$LOG"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

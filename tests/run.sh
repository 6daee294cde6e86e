#!/bin/sh
# Runs every test and ends with the line "N passed, N failed, N skipped"
# (a skipped test is never counted as passed).
#   C unit tests (build/test_core), Lua and command-line tests (busted, tests/lua),
#   the same C and command-line tests under ASan+UBSan, the C tests under
#   ThreadSanitizer, and a valgrind leak check.
# VMA_QUICK=1 skips the sanitizer and valgrind passes.
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
        busted --lpath="$ROOT/lua/?.lua;$ROOT/tests/lua/?.lua" -o TAP $specs >"$LOG/$label.tap" 2>&1
    skip=$(grep -c '^ok [0-9]* - # SKIP' "$LOG/$label.tap")
    ok=$(($(grep -c '^ok ' "$LOG/$label.tap") - skip))
    nok=$(grep -c '^not ok ' "$LOG/$label.tap")
    if [ "$ok" -eq 0 ] && [ "$nok" -eq 0 ] && [ "$skip" -eq 0 ]; then nok=1; fi # busted itself failed
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

run_c c-unit build/test_core
run_busted lua tests/lua LUA_CPATH="$ROOT/build/?.so;;" VMA_BIN="$ROOT/build/vma"

if [ "${VMA_QUICK:-0}" != 1 ]; then
    # the same under AddressSanitizer + UndefinedBehaviorSanitizer
    if make --no-print-directory asan >"$LOG/asan-build.log" 2>&1; then
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=99 \
            run_c c-unit-asan build/asan/test_core
        # the specs that run the executable (the others test pure Lua)
        run_busted cli-asan "$(ls tests/lua/*cli*_spec.lua tests/lua/safety_spec.lua \
                tests/lua/hostile_spec.lua 2>/dev/null | tr '\n' ' ')" \
            VMA_BIN="$ROOT/build/asan/vma" VMA_ONLY_CLI=1 \
            LUA_CPATH="$ROOT/build/?.so;;" \
            ASAN_OPTIONS=detect_leaks=1:exitcode=99 \
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

#!/bin/sh
# Starts a test cluster (tests/ceph/cluster.sh), builds tests/ceph/smoke.c, runs the smoke test
# and the error-code checks, stops the cluster and removes its folder; ends with "N passed, N failed".
# CEPH_TEST_FAULTS=1 also runs aio writes while the OSD is killed and restarted, and while the
# OSD is made full and not full again (about 1.5 more minutes). CEPH_TEST_VERBOSE=1 shows
# what smoke printed.
cd "$(dirname "$0")/../.." || exit 1
CLUSTER=tests/ceph/cluster.sh
SMOKE=build/ceph-smoke
passed=0
failed=0

result() { # name, 0 if it passed
    if [ "$2" -eq 0 ]; then
        echo "ok   $1"
        passed=$((passed + 1))
    else
        echo "FAIL $1"
        failed=$((failed + 1))
    fi
}

# what smoke printed: on failure, or always with CEPH_TEST_VERBOSE=1
show_log() { # rc
    if [ "$1" -ne 0 ] || [ "${CEPH_TEST_VERBOSE:-0}" = 1 ]; then
        sed 's/^/    /' "$LOG"
    fi
}

mkdir -p build
cc -O2 -Wall -Wextra -o "$SMOKE" tests/ceph/smoke.c -lrbd -lrados || {
    echo "0 passed, 1 failed"
    exit 1
}
DIR=$(mktemp -d /tmp/vma-ceph.XXXXXX) || exit 1
LOG=$DIR.log
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null; $CLUSTER stop "$DIR" --rm; rm -f "$LOG"' EXIT
trap 'exit 1' INT TERM HUP
if ! $CLUSTER start "$DIR"; then
    echo "0 passed, 1 failed"
    exit 1
fi
export CEPH_CONF="$DIR/ceph.conf"

"$SMOKE" >"$LOG" 2>&1
rc=$?
show_log $rc
result "smoke: aio writes, discard, flush, read back, diff" $rc

"$SMOKE" --errors >"$LOG" 2>&1
rc=$?
show_log $rc
result "smoke --errors: error codes" $rc

# aio writes with 10 s timeouts while something goes wrong for 15 s: the writes in flight
# must fail with -ETIMEDOUT after 10 s, and writes must work again once it is repaired
fault() { # name, command to break, command to repair (split at spaces: $DIR has none)
    SMOKE_TIMEOUT=10 "$SMOKE" --writes 30 >"$LOG" 2>&1 &
    pid=$!
    sleep 3
    $2 || echo "could not: $2"
    sleep 15
    $3 || echo "could not: $3"
    wait $pid
    pid=
    grep -q 'batch FAILED: first error -110 ' "$LOG" &&
        grep -q 'batch ok' "$LOG" && grep -q 'rbd_remove: 0 ' "$LOG"
    rc=$?
    show_log $rc
    result "$1" $rc
}

if [ "${CEPH_TEST_FAULTS:-0}" = 1 ]; then
    fault "aio writes while the OSD is killed: -ETIMEDOUT, then they work again" \
        "$CLUSTER kill-osd $DIR" "$CLUSTER start-osd $DIR"
    fault "aio writes while the OSD is full: -ETIMEDOUT, then they work again" \
        "$CLUSTER full $DIR on" "$CLUSTER full $DIR off"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]

#!/bin/sh
# A throw-away single-node Ceph cluster for the tests: one monitor (mon.a), one OSD (osd.0),
# no manager, bound to 127.0.0.1 only, every file inside one scratch folder.
#
#   cluster.sh start DIR          create DIR, start mon + osd, create the pool rbd; exit 0 when ready
#   cluster.sh stop DIR [--rm]    stop osd then mon (SIGTERM, SIGKILL after a timeout); --rm removes DIR
#   cluster.sh kill-osd DIR       SIGKILL the OSD (a crash, for fault tests)
#   cluster.sh start-osd DIR      start the OSD again and wait until it is up
#   cluster.sh status DIR         which daemons run (exit 0 if both run)
#   cluster.sh full DIR on|off    make the OSD report itself full (so every pool is full), or not
#   cluster.sh quota DIR BYTES    set the quota max_bytes of pool rbd (0 removes it); see README:
#                                 without a manager the monitor never enforces it
#
# Clients: `. DIR/env.sh` exports CEPH_CONF (ceph, rbd, librados all read it).
# Environment:
#   CEPH_TEST_PORT     monitor port (default: a free one in 3300-3399)
#   CEPH_TEST_STORE    bluestore (default, a sparse file DIR/osd/ceph-0/block) or memstore (RAM)
#   CEPH_TEST_SIZE     OSD size: bytes or with K/M/G suffix (default 8G bluestore, 2G memstore)
#   CEPH_TEST_TIMEOUT  seconds to wait for the cluster to come up (default 60)
#   CEPH_TEST_CLIENT_TIMEOUT  librados client timeouts written to ceph.conf (default 30)
#   CEPH_TEST_VERBOSE=1  print how long each step of start took
#   CEPH_TEST_MGR=1    also start a manager (mgr.x; needs the package ceph-mgr): only with one
#                      does the monitor know the pools' use, so only then are quotas enforced
set -u

PROG=${0##*/}
TIMEOUT=${CEPH_TEST_TIMEOUT:-60}
STOP_TIMEOUT=20
CLIENT_TIMEOUT=${CEPH_TEST_CLIENT_TIMEOUT:-30}
MARKER=.ceph-test-cluster
FAIL_STOP="osd.0 mgr.x mon.a" # what fail() stops: start-osd stops only the OSD

usage() {
    sed -n '2,/^set -u/s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

say() { echo "$PROG: $*" >&2; }
die() { say "$*"; exit 1; }

# now in seconds (integer)
now() { date +%s; }

# with CEPH_TEST_VERBOSE=1: the time since start began, and what is done
T0=$(date +%s.%N)
step() {
    [ "${CEPH_TEST_VERBOSE:-0}" = 1 ] || return 0
    say "$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN { printf "%.1f", a - b }') s: $*"
}

# size with an optional K/M/G/T suffix -> bytes
bytes() {
    case $1 in
    *[Tt]) n=${1%?}; m=1099511627776 ;;
    *[Gg]) n=${1%?}; m=1073741824 ;;
    *[Mm]) n=${1%?}; m=1048576 ;;
    *[Kk]) n=${1%?}; m=1024 ;;
    *) n=$1; m=1 ;;
    esac
    case $n in '' | *[!0-9]*) die "not a size: $1" ;; esac
    echo $((n * m))
}

# DIR as an absolute path (DIR must exist)
absdir() { (cd "$1" 2>/dev/null && pwd -P) || die "no such folder: $1"; }

set_dir() {
    [ $# -ge 1 ] || usage
    D=$(absdir "$1") || exit 1
    CONF=$D/ceph.conf
    [ -f "$D/$MARKER" ] || die "$D is not a test cluster folder (no $MARKER)"
}

# the ceph command line tool on this cluster, never waiting forever
ceph_() { timeout 40 ceph --conf "$CONF" --connect-timeout 30 "$@"; }

# pid of a daemon (mon.a, osd.0) if it runs and is ours (command line names our conf), else empty
daemon_pid() { # name
    pf=$D/run/$1.pid
    [ -f "$pf" ] || return 0
    p=$(cat "$pf" 2>/dev/null) || return 0
    case $p in '' | *[!0-9]*) return 0 ;; esac
    [ -r "/proc/$p/cmdline" ] || return 0
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$CONF" || return 0
    echo "$p"
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# wait up to $2 seconds (in 0.1 s steps) for pid $1 to exit; 0 if it did
wait_gone() {
    i=0
    while alive "$1"; do
        [ "$i" -ge $(($2 * 10)) ] && return 1
        sleep 0.1
        i=$((i + 1))
    done
    return 0
}

stop_daemon() { # name
    p=$(daemon_pid "$1")
    if [ -n "$p" ]; then
        kill -TERM "$p" 2>/dev/null
        if ! wait_gone "$p" "$STOP_TIMEOUT"; then
            say "$1 (pid $p) did not exit $STOP_TIMEOUT s after SIGTERM: SIGKILL"
            kill -KILL "$p" 2>/dev/null
            wait_gone "$p" 10 || say "$1 (pid $p) survived SIGKILL"
        fi
    fi
    rm -f "$D/run/$1.pid"
}

kill_daemon() { # name
    p=$(daemon_pid "$1")
    [ -n "$p" ] || die "$1 is not running"
    kill -KILL "$p"
    wait_gone "$p" 10 || die "$1 (pid $p) survived SIGKILL"
    rm -f "$D/run/$1.pid"
}

tail_log() { # file
    if [ -s "$1" ]; then
        say "last lines of $1:"
        # a daemon log: only its timestamped lines (not rocksdb's statistics)
        if grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$1"; then
            grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$1" | tail -n 15
        else
            tail -n 15 "$1"
        fi | sed 's/^/    /' >&2
    fi
}

# start failed: message, a log to show; stop what we started and exit 1
fail() { # message [log...]
    say "$1"
    shift
    for f in "$@"; do tail_log "$f"; done
    for n in $FAIL_STOP; do stop_daemon "$n"; done
    exit 1
}

port_in_use() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

write_conf() { # port
    fsid=$1
    port=$2
    cat >"$CONF" <<EOF
# a single-node test cluster made by tests/ceph/cluster.sh; every path is inside $D
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:$port
public_network = 127.0.0.0/8
cluster_network = 127.0.0.0/8
ms_bind_ipv4 = true
ms_bind_ipv6 = false
ms_bind_msgr1 = false
ms_bind_msgr2 = true
ms_bind_retry_count = 1
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
keyring = $D/keyring
run_dir = $D/run
crash_dir = $D/crash
log_file = $D/log/\$name.log
mon_cluster_log_file = $D/log/cluster.log
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_data_avail_warn = 10
# (only with CEPH_TEST_MGR=1) no restful module: it would listen on all addresses
mgr_initial_modules = iostat

[mon]
mon_data = $D/mon/\$cluster-\$id
admin_socket = $D/run/\$name.asok
pid_file = $D/run/\$name.pid

[osd]
osd_data = $D/osd/\$cluster-\$id
admin_socket = $D/run/\$name.asok
pid_file = $D/run/\$name.pid
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
osd_objectstore = $STORE
memstore_device_bytes = $SIZE
bluestore_block_create = true
bluestore_block_size = $SIZE

[mgr]
mgr_data = $D/mgr/\$cluster-\$id
admin_socket = $D/run/\$name.asok
pid_file = $D/run/\$name.pid

# librados / librbd clients (ceph, rbd, smoke.c): give up instead of hanging forever
[client]
rados_osd_op_timeout = $CLIENT_TIMEOUT
rados_mon_op_timeout = $CLIENT_TIMEOUT
client_mount_timeout = $CLIENT_TIMEOUT
EOF
}

# monitor: keyring, monmap, mkfs, start; returns 2 if its port was taken
start_mon() { # port
    fsid=$(uuidgen)
    rm -rf "$D/mon" "$D/monmap" "$D/keyring"
    mkdir -p "$D/mon/ceph-a" || fail "cannot write in $D"
    write_conf "$fsid" "$1"
    k=$D/keyring
    {
        ceph-authtool --create-keyring "$k" --gen-key -n mon. --cap mon 'allow *' &&
            ceph-authtool "$k" --gen-key -n client.admin \
                --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' &&
            ceph-authtool "$k" --gen-key -n osd.0 \
                --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' &&
            ceph-authtool "$k" --gen-key -n mgr.x \
                --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' &&
            chmod 600 "$k" &&
            monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$1]" "$D/monmap"
    } >"$D/log/setup.log" 2>&1 || fail "could not make the keyring or monmap" "$D/log/setup.log"
    ceph-mon --conf "$CONF" --mkfs -i a --monmap "$D/monmap" --keyring "$k" \
        >"$D/log/mon-mkfs.out" 2>&1 || fail "ceph-mon --mkfs failed" "$D/log/mon-mkfs.out" "$D/log/mon.a.log"
    : >"$D/log/mon.a.log"
    if ! ceph-mon --conf "$CONF" -i a >"$D/log/mon.a.out" 2>&1; then
        if grep -q 'Address already in use' "$D/log/mon.a.out" "$D/log/mon.a.log" 2>/dev/null; then
            return 2
        fi
        fail "ceph-mon did not start" "$D/log/mon.a.out" "$D/log/mon.a.log"
    fi
    # it daemonized: wait for its pid file, then for it to answer
    deadline=$(($(now) + TIMEOUT))
    while [ -z "$(daemon_pid mon.a)" ]; do
        [ "$(now)" -ge "$deadline" ] && fail "ceph-mon wrote no pid file" "$D/log/mon.a.out" "$D/log/mon.a.log"
        if grep -q 'Address already in use' "$D/log/mon.a.log" 2>/dev/null; then
            return 2
        fi
        sleep 0.1
    done
    while ! ceph_ mon stat >/dev/null 2>"$D/log/ceph-cli.err"; do
        alive "$(daemon_pid mon.a)" || {
            grep -q 'Address already in use' "$D/log/mon.a.log" 2>/dev/null && return 2
            fail "ceph-mon exited" "$D/log/mon.a.log"
        }
        [ "$(now)" -ge "$deadline" ] && fail "the monitor did not answer in $TIMEOUT s" "$D/log/ceph-cli.err" "$D/log/mon.a.log"
        sleep 1
    done
    return 0
}

# the optional manager: start it and wait until the monitor has it active
start_mgr() {
    command -v ceph-mgr >/dev/null 2>&1 || fail "CEPH_TEST_MGR=1 needs ceph-mgr (apt-get install ceph-mgr)"
    mkdir -p "$D/mgr/ceph-x"
    ceph-mgr --conf "$CONF" -i x >"$D/log/mgr.x.out" 2>&1 ||
        fail "ceph-mgr did not start" "$D/log/mgr.x.out" "$D/log/mgr.x.log"
    deadline=$(($(now) + TIMEOUT))
    until ceph_ mgr stat 2>/dev/null | grep -q '"available": true'; do
        alive "$(daemon_pid mgr.x)" || [ ! -f "$D/run/mgr.x.pid" ] ||
            fail "ceph-mgr exited" "$D/log/mgr.x.log"
        [ "$(now)" -ge "$deadline" ] && fail "the manager was not active after $TIMEOUT s" "$D/log/mgr.x.log"
        sleep 1
    done
}

# start osd.0 (made already) and wait until it is active and the monitor has it up
run_osd() {
    old=$(daemon_pid osd.0)
    [ -z "$old" ] || die "osd.0 runs already (pid $old)"
    rm -f "$D/run/osd.0.pid" "$D/run/osd.0.asok"
    ceph-osd --conf "$CONF" -i 0 >>"$D/log/osd.0.out" 2>&1 ||
        fail "ceph-osd did not start" "$D/log/osd.0.out" "$D/log/osd.0.log"
    deadline=$(($(now) + TIMEOUT))
    while :; do
        p=$(daemon_pid osd.0)
        if [ -n "$p" ]; then
            alive "$p" || fail "ceph-osd exited" "$D/log/osd.0.log"
            # the OSD's own view first (cheap, no monitor), then the monitor's
            if [ -S "$D/run/osd.0.asok" ] &&
                timeout 10 ceph --admin-daemon "$D/run/osd.0.asok" status 2>/dev/null |
                grep -q '"state": "active"' &&
                ceph_ osd dump 2>/dev/null | grep -q '^osd\.0 up '; then
                return 0
            fi
        fi
        [ "$(now)" -ge "$deadline" ] && fail "osd.0 was not up after $TIMEOUT s" "$D/log/osd.0.out" "$D/log/osd.0.log"
        sleep 1
    done
}

cmd_start() {
    [ $# -eq 1 ] || usage
    t0=$(now)
    STORE=${CEPH_TEST_STORE:-bluestore}
    case $STORE in
    bluestore)
        SIZE=$(bytes "${CEPH_TEST_SIZE:-8G}") || exit 1
        # rocksdb alone wants about 300 MB: 64 MiB fails at mkfs, 1 GiB works
        [ "$SIZE" -ge 1073741824 ] || die "CEPH_TEST_SIZE must be at least 1G for bluestore"
        ;;
    memstore) SIZE=$(bytes "${CEPH_TEST_SIZE:-2G}") || exit 1 ;;
    *) die "CEPH_TEST_STORE must be bluestore or memstore, not $STORE" ;;
    esac
    for tool in ceph ceph-mon ceph-osd ceph-authtool monmaptool rbd uuidgen ss timeout; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
    done
    mkdir -p "$1" || die "cannot create $1"
    D=$(absdir "$1") || exit 1
    CONF=$D/ceph.conf
    if [ -f "$D/$MARKER" ]; then
        for n in osd.0 mgr.x mon.a; do
            p=$(daemon_pid $n)
            [ -z "$p" ] || die "a cluster runs in $D already ($n, pid $p); stop it first"
        done
        rm -rf "$D/mon" "$D/mgr" "$D/osd" "$D/run" "$D/log" "$D/crash" \
            "$D/ceph.conf" "$D/env.sh" "$D/keyring" "$D/monmap"
    elif [ -n "$(ls -A "$D")" ]; then
        die "$D is not empty and not a test cluster folder"
    fi
    # a unix socket path is limited to 107 bytes
    [ ${#D} -le 80 ] || die "path too long for the admin sockets (${#D} > 80 bytes): $D"
    : >"$D/$MARKER"
    mkdir -p "$D/run" "$D/log" "$D/crash" || die "cannot write in $D"
    trap 'fail "interrupted"' INT TERM HUP

    # the monitor, on CEPH_TEST_PORT or the first free port in 3300-3399 (from a
    # pid-dependent start so that clusters started at the same time try different ones)
    if [ -n "${CEPH_TEST_PORT:-}" ]; then
        case $CEPH_TEST_PORT in '' | *[!0-9]*) die "CEPH_TEST_PORT is not a port: $CEPH_TEST_PORT" ;; esac
        port_in_use "$CEPH_TEST_PORT" && die "port $CEPH_TEST_PORT is in use"
        start_mon "$CEPH_TEST_PORT"
        [ $? -eq 2 ] && fail "port $CEPH_TEST_PORT is in use" "$D/log/mon.a.log"
    else
        off=$(($$ % 100))
        i=0
        while :; do
            [ $i -ge 100 ] && die "no free port in 3300-3399"
            port=$((3300 + (off + i) % 100))
            i=$((i + 1))
            port_in_use $port && continue
            start_mon $port
            [ $? -eq 2 ] || break
            stop_daemon mon.a # lost a race for the port: try the next one
        done
    fi
    step "monitor up"
    port=$(sed -n 's/^mon_host = v2:127\.0\.0\.1:\([0-9]*\)$/\1/p' "$CONF")
    [ "${CEPH_TEST_MGR:-0}" != 1 ] || { start_mgr; step "manager active"; }

    # the OSD
    uuid=$(uuidgen)
    id=$(ceph_ osd new "$uuid" 0 2>"$D/log/ceph-cli.err") || fail "ceph osd new failed" "$D/log/ceph-cli.err"
    [ "$id" = 0 ] || fail "ceph osd new gave id '$id', not 0"
    mkdir -p "$D/osd/ceph-0"
    step "osd.0 created"
    ceph-osd --conf "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >"$D/log/osd-mkfs.out" 2>&1 ||
        fail "ceph-osd --mkfs failed" "$D/log/osd-mkfs.out" "$D/log/osd.0.log"
    step "osd.0 mkfs done"
    run_osd
    step "osd.0 up"

    # the pool
    {
        ceph_ osd pool create rbd 8 8 &&
            timeout 60 rbd --conf "$CONF" pool init rbd
    } >"$D/log/pool.out" 2>&1 || fail "could not create the pool rbd" "$D/log/pool.out" "$D/log/osd.0.log"

    step "pool rbd ready"
    cat >"$D/env.sh" <<EOF
# . this file to use the test cluster in $D
CEPH_CONF='$CONF'
CEPH_TEST_DIR='$D'
CEPH_TEST_MON='v2:127.0.0.1:$port'
export CEPH_CONF CEPH_TEST_DIR CEPH_TEST_MON
EOF
    trap - INT TERM HUP
    say "cluster ready in $(($(now) - t0)) s: $D ($STORE, monitor v2:127.0.0.1:$port); . $D/env.sh"
}

cmd_stop() {
    [ $# -ge 1 ] || usage
    rmdir=0
    dir=
    for a in "$@"; do
        case $a in --rm) rmdir=1 ;; *) [ -z "$dir" ] || usage; dir=$a ;; esac
    done
    [ -n "$dir" ] || usage
    set_dir "$dir"
    stop_daemon osd.0
    stop_daemon mgr.x
    stop_daemon mon.a
    if [ $rmdir = 1 ]; then
        rm -rf "$D"
    fi
}

cmd_status() {
    set_dir "$@"
    rc=0
    for n in mon.a osd.0 mgr.x; do
        [ $n = mgr.x ] && [ ! -d "$D/mgr" ] && continue
        p=$(daemon_pid $n)
        if [ -n "$p" ]; then echo "$n running (pid $p)"; else echo "$n stopped"; rc=1; fi
    done
    exit $rc
}

cmd_full() {
    [ $# -eq 2 ] || usage
    set_dir "$1"
    # the OSD's debug command injectfull makes it report itself full to the monitor, which
    # marks it and every pool full (store-independent, gone when the OSD restarts)
    case $2 in
    on) type=full ;;
    off) type=none ;;
    *) usage ;;
    esac
    out=$(timeout 10 ceph --admin-daemon "$D/run/osd.0.asok" injectfull $type 2>&1) ||
        die "could not inject the full state (does osd.0 run?): $out"
    want=$2
    deadline=$(($(now) + TIMEOUT))
    while :; do
        if ceph_ osd dump 2>/dev/null | grep '^osd\.0 ' | grep -q '[ ,]full[, ]'; then
            state=on
        else
            state=off
        fi
        [ "$state" = "$want" ] && return 0
        [ "$(now)" -ge "$deadline" ] && die "osd.0 is not full=$want after $TIMEOUT s"
        sleep 1
    done
}

cmd_quota() {
    [ $# -eq 2 ] || usage
    set_dir "$1"
    n=$(bytes "$2") || exit 1
    out=$(ceph_ osd pool set-quota rbd max_bytes "$n" 2>&1) || die "could not set the quota: $out"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
kill-osd)
    [ $# -eq 1 ] || usage
    set_dir "$1"
    grep -q '^osd_objectstore = memstore$' "$CONF" &&
        die "kill-osd needs bluestore: a killed memstore OSD comes back empty (its PGs are gone, all I/O hangs)"
    kill_daemon osd.0
    ;;
start-osd) [ $# -eq 1 ] || usage; set_dir "$1"; FAIL_STOP=osd.0; run_osd ;;
status) cmd_status "$@" ;;
full) cmd_full "$@" ;;
quota) cmd_quota "$@" ;;
*) usage ;;
esac

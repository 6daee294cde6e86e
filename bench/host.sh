# bench/host.sh - what every benchmark script needs of the machine (sourced
# by bench/run.sh and bench/common.sh): the page cache dropped before each
# timed run where root may (BENCH_COLD=0: never) and CACHE saying which,
# TIMEBIN (/usr/bin/time for the peak RSS, if it works), and rnd SEED BYTES:
# a deterministic stream (AES-CTR of zeros, the same on every run), else
# /dev/urandom, with RNDSRC saying which.
drop_caches() { :; }
CACHE="warm cache (the page cache is not dropped between runs)"
if [ "${BENCH_COLD:-1}" != 0 ] && sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
    drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
    CACHE="cold cache (sync; echo 3 > /proc/sys/vm/drop_caches before every timed run)"
fi

TIMEBIN=
if [ -x /usr/bin/time ] && /usr/bin/time -f %M -o /dev/null true 2>/dev/null; then TIMEBIN=/usr/bin/time; fi

if command -v openssl >/dev/null 2>&1; then
    RNDSRC="openssl aes-128-ctr (seeded, the same on every run)"
    rnd() {
        openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:vma-bench-$1" </dev/zero 2>/dev/null |
            head -c "$2"
    }
else
    RNDSRC="/dev/urandom (one set of images for all tools in this run)"
    rnd() { head -c "$2" /dev/urandom; }
fi

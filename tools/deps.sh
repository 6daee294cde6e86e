#!/bin/sh
# Install the Debian packages given as arguments when they are missing.
# Idempotent: does nothing (and needs no network) when all are installed.
#
# When another apt or dpkg holds its lock (unattended-upgrades on a freshly
# booted machine, an apt in another terminal), it waits for it, saying so once,
# for at most VMA_APT_WAIT seconds (default 600), then fails with a message;
# any other failure of apt-get ends it at once. VMA_APT_POLL: the seconds
# between two tries (default 5).
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
WAIT=${VMA_APT_WAIT:-600}
POLL=${VMA_APT_POLL:-5}
ERR=$(mktemp /tmp/vma-deps.XXXXXX) || exit 1
trap 'rm -f "$ERR"' EXIT

# apt-get ARGS..., waiting while another process holds the apt or dpkg lock
apt_wait() {
    start=$(date +%s)
    said=""
    while :; do
        if $SUDO apt-get "$@" 2>"$ERR"; then
            grep -v '^W: ' "$ERR" >&2
            return 0
        fi
        # "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by
        # process 1234 (unattended-upgr)", "Unable to acquire the dpkg frontend
        # lock", "Unable to lock directory /var/lib/apt/lists/"
        if ! grep -q -e 'Could not get lock' -e 'Unable to acquire the dpkg frontend lock' \
                -e 'Unable to lock' "$ERR"; then
            cat "$ERR" >&2
            return 1
        fi
        waited=$(($(date +%s) - start))
        who=$(sed -n 's/.*[Hh]eld by \(process [0-9]* ([^)]*)\).*/\1/p' "$ERR" | head -1)
        if [ "$waited" -ge "$WAIT" ]; then
            echo "deps: apt is still locked by ${who:-another process} after ${waited} s;" \
                "run 'make' again once it has finished (VMA_APT_WAIT=SECONDS waits longer)" >&2
            return 1
        fi
        if [ -z "$said" ]; then
            echo "deps: another apt or dpkg is running (${who:-it holds the lock});" \
                "waiting for it to finish, at most ${WAIT} s" >&2
            said=1
        fi
        sleep "$POLL"
    done
}

apt_wait update -qq || exit 1
# shellcheck disable=SC2086 # the names are words
apt_wait install -y -qq $missing >/dev/null || exit 1

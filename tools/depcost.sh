#!/bin/sh
# shellcheck disable=SC2086,SC2016,SC2046 # package lists are words; $($*) is make's
# What each dependency step costs on a fresh, minimal Debian 12: the packages
# apt would install, the MB it would download and the MB they take installed.
# The base is debootstrap --variant=minbase bookworm (what the debian:12
# container image holds); apt-get -s runs against a dpkg status that holds only
# that base, so nothing is installed and this machine's own packages do not
# count. Needs debootstrap and the network (debootstrap --print-debs).
#
#   sh tools/depcost.sh               every target's step (README.md's table)
#   sh tools/depcost.sh PKG|./X.deb   one list of packages or .deb files
# .deb files named relative to the caller's folder
ARGS=""
for a in "$@"; do
    case "$a" in *.deb) a=$(realpath "$a") ;; esac
    ARGS="$ARGS $a"
done
cd "$(dirname "$0")/.." || exit 1
set -e
set -- $ARGS
T=$(mktemp -d /tmp/vma-depcost.XXXXXX)
trap 'rm -rf "$T"' EXIT

debootstrap --print-debs --variant=minbase bookworm "$T/root" http://deb.debian.org/debian \
    2>/dev/null | tr ' ' '\n' | sed '/^$/d' >"$T/base"
# the base as a dpkg status: each package's stanza, installed
xargs apt-cache show --no-all-versions <"$T/base" 2>/dev/null |
    sed '/^Package:/a Status: install ok installed' >"$T/status"

make_var() { make -s --no-print-directory --eval 'print-%: ; @echo $($*)' "print-$1"; }

# cost LABEL PKG...: "LABEL: N packages, X MB download, Y MB installed"
cost() {
    label=$1
    shift
    apt-get -s -o Dir::State::status="$T/status" -o APT::Get::Show-User-Simulation-Note=false \
        install "$@" >"$T/sim" 2>"$T/err" || { cat "$T/err" >&2; return 1; }
    sed -n 's/^Inst \([^ ]*\) .*/\1/p' "$T/sim" >"$T/inst"
    n=$(wc -l <"$T/inst")
    # sizes: a local .deb's own, else the archive's (one apt-cache call)
    dl=0
    inst=0
    for a in "$@"; do
        case "$a" in
        *.deb)
            dl=$((dl + $(stat -c %s "$a")))
            inst=$((inst + $(dpkg-deb -f "$a" Installed-Size)))
            grep -v -x "$(dpkg-deb -f "$a" Package)" "$T/inst" >"$T/inst2" || true
            mv "$T/inst2" "$T/inst"
            ;;
        esac
    done
    if [ -s "$T/inst" ]; then
        set -- $(xargs apt-cache show --no-all-versions <"$T/inst" |
            awk '/^Size: /{s+=$2} /^Installed-Size: /{i+=$2} END{print s+0, i+0}')
        dl=$((dl + $1))
        inst=$((inst + $2))
    fi
    printf '%s: %d packages, %d MB download, %d MB installed\n' "$label" "$n" \
        $(((dl + 524288) / 1048576)) $(((inst + 512) / 1024))
    if [ -n "$VERBOSE" ]; then tr '\n' ' ' <"$T/inst"; echo; fi
}

if [ $# -gt 0 ]; then
    cost "$*" "$@"
    exit
fi
BUILD=$(make_var DEBS_BUILD)
RUN=$(make_var DEBS_RUN)
CHECK=$(make_var DEBS_CHECK)
DEB=$(make_var DEBS_DEB)
CEPH=$(make_var DEBS_CEPH)
GUESTFS=$(make_var DEBS_GUESTFS)
BDEPS=$(sh tools/mkdeb.sh --build-depends | tr '\n' ' ')
echo "base: $(wc -l <"$T/base") packages (debootstrap --variant=minbase bookworm)"
cost "make, make demo (DEBS_BUILD DEBS_RUN)" $BUILD $RUN
cost "make check (+ DEBS_CHECK DEBS_DEB, Build-Depends)" $BUILD $RUN $CHECK $DEB $BDEPS
cost "make deb (DEBS_DEB, Build-Depends)" $DEB $BDEPS
cost "make check-ceph (make check + DEBS_CEPH)" $BUILD $RUN $CHECK $DEB $BDEPS $CEPH
cost "make check-guestfs (make check + DEBS_GUESTFS)" $BUILD $RUN $CHECK $DEB $BDEPS $GUESTFS
cost "make check-all" $BUILD $RUN $CHECK $DEB $BDEPS $CEPH $GUESTFS
cost "DEBS_CEPH alone" $CEPH
cost "DEBS_GUESTFS alone" $GUESTFS

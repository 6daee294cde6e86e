#!/bin/sh
# make deb: the Debian packages of this tree in build/deb/.
#
#   sh tools/mkdeb.sh                  copy the tree (without build/ and .git) to
#                                      build/deb/vma-VERSION, run
#                                      dpkg-buildpackage -us -uc -b there, then
#                                      lintian (no error allowed); the .deb files
#                                      land in build/deb/
#   sh tools/mkdeb.sh --build-depends  the names of debian/control's
#                                      Build-Depends, one per line (for tools/deps.sh)
#
# DEB_BUILD_OPTIONS is passed on (default: parallel=2).
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

if [ "$1" = --build-depends ]; then
    # the field and its continuation lines, without versions, architectures,
    # profiles and alternatives; debhelper-compat is debhelper's
    sed -n '/^Build-Depends:/,/^[^ #]/p' debian/control | sed '/^[^ ]/{/^Build-Depends:/!d}' |
        sed 's/^Build-Depends://; s/([^)]*)//g; s/\[[^]]*\]//g; s/<[^>]*>//g; s/|[^,]*//g' |
        tr ',' '\n' | sed 's/[[:space:]]//g; /^$/d; s/^debhelper-compat$/debhelper/'
    exit 0
fi

set -e
VERSION=$(sed -n 's/^VERSION *:= *//p' Makefile)
DEBVERSION=$(dpkg-parsechangelog -S Version)
if [ "$DEBVERSION" != "$VERSION" ]; then
    echo "mkdeb: debian/changelog says $DEBVERSION, the Makefile $VERSION: add a changelog entry" >&2
    exit 1
fi
OUT=$ROOT/build/deb
SRC=$OUT/vma-$VERSION
rm -rf "$OUT"
mkdir -p "$SRC"
tar -C "$ROOT" --exclude=./build --exclude=./.git -cf - . | tar -C "$SRC" -xf -
echo "mkdeb: building in $SRC"
cd "$SRC"
DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-parallel=2} dpkg-buildpackage -us -uc -b >"$OUT/build.log" 2>&1 || {
    tail -40 "$OUT/build.log" >&2
    echo "mkdeb: dpkg-buildpackage failed (the whole log: $OUT/build.log)" >&2
    exit 1
}
cd "$OUT"
CHANGES=$(ls vma_*.changes)
if ! lintian --fail-on error --tag-display-limit 0 "$CHANGES" >lintian.log 2>&1; then
    cat lintian.log >&2
    echo "mkdeb: lintian found errors" >&2
    exit 1
fi
grep -v 'running with root privileges' lintian.log >lintian.tags || true
if [ -s lintian.tags ]; then
    echo "mkdeb: lintian (no errors):"
    sed 's/^/  /' lintian.tags
fi
echo "mkdeb: the packages (apt-get install ./build/deb/NAME_*.deb):"
for d in *.deb; do
    printf '  %-44s %6s KiB, installed %5s KiB; depends: %s\n' "$d" \
        $(($(stat -c %s "$d") / 1024)) "$(dpkg-deb -f "$d" Installed-Size)" "$(dpkg-deb -f "$d" Depends)"
done

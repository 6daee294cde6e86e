#!/bin/sh
# tools/rename-os.sh - rewrite a tree for the move of the POSIX helpers of the
# Lua module from the `vma` table to `vma.os` (vma.stat -> vma.os.stat, ...).
#
#   sh tools/rename-os.sh [PATH...]     (default: the tree this script is in)
#
# Rewrites, in the Lua, C, shell and Markdown files and the man page under
# each PATH (files git ignores are left alone in a checkout):
#   vma.NAME                 -> vma.os.NAME
#   require("vma").NAME      -> require("vma").os.NAME
# for NAME in the list below; vma.access only where it is called
# (vma.access(...)): "vma.access" is also the name of a Lua module.
# It is idempotent (vma.os.stat is left as it is) and prints the files it
# changed. What it cannot see: the module held under another name
# (local V = require "vma"; V.stat(...)); grep for those after it runs.
set -eu

NAMES='stat|lstat|addresses|is_all_holes|mkdir|rmdir|write_file|rename|fsync_dir|isatty|terminal_width|catch_signals|interrupted|clock|spawn|wait|kill|sleep|mkdtemp|getpid|realpath'

ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || set -- "$ROOT"

command -v perl >/dev/null || { echo "rename-os: perl is needed" >&2; exit 1; }

files() { # every file to look at under $1
    if [ -d "$1" ] && git -C "$1" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$1" && git ls-files -co --exclude-standard -- . | sed "s|^|$1/|")
    elif [ -d "$1" ]; then
        find "$1" -type f
    else
        echo "$1"
    fi
}

for top in "$@"; do
    files "$top" | while IFS= read -r f; do
        case $f in
            *.lua|*.c|*.h|*.md|*.sh|*.1|*.bash|*/completions/*) ;;
            *) continue ;;
        esac
        [ -f "$f" ] || continue
        case $f in */tools/rename-os.sh) continue ;; esac
        if grep -Eq "(\bvma|require *\( *[\"']vma[\"'] *\))\.(($NAMES)\b|access *\()" "$f"; then
            before=$(cksum <"$f")
            perl -pi -e "
                s/(?<![\\w.])vma\\.($NAMES)\\b/vma.os.\$1/g;
                s/(?<![\\w.])vma\\.access(\\s*\\()/vma.os.access\$1/g;
                s/(require\\s*\\(\\s*[\"']vma[\"']\\s*\\))\\.($NAMES)\\b/\$1.os.\$2/g;
                s/(require\\s*\\(\\s*[\"']vma[\"']\\s*\\))\\.access(\\s*\\()/\$1.os.access\$2/g;
            " "$f"
            [ "$(cksum <"$f")" = "$before" ] || echo "$f"
        fi
    done
done

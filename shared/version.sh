#!/bin/sh
# shared/version.sh - prints workq's version (semantic versioning), the
# one every binary's --version, the shared library's file name and
# soname, workq.pc and the .deb carry:
#   at a tag vX.Y.Z            X.Y.Z
#   N commits after that tag   X.Y.Z+N.gHASH
#   no such tag                the VERSION file's X.Y.Z, then +gHASH
#   outside a git checkout     the VERSION file's X.Y.Z
# with ".dirty" appended when tracked files have uncommitted changes.
# "+" marks build metadata in SemVer and sorts after X.Y.Z in Debian's
# version order, so a build after the tag upgrades the tagged one.
cd "$(dirname "$0")/.." || exit 1
base=$(cat VERSION) || exit 1
if ! git rev-parse --git-dir >/dev/null 2>&1; then
    echo "$base"
    exit 0
fi
git update-index -q --refresh >/dev/null 2>&1
dirty=""
git diff-index --quiet HEAD -- 2>/dev/null || dirty=.dirty
if d=$(git describe --tags --match 'v[0-9]*.[0-9]*.[0-9]*' 2>/dev/null); then
    # v1.2.3 or v1.2.3-4-gabc1234
    echo "${d#v}$dirty" | sed -E 's/-([0-9]+)-(g[0-9a-f]+)(\.dirty)?$/+\1.\2\3/'
else
    echo "$base+g$(git rev-parse --short=7 HEAD)$dirty"
fi

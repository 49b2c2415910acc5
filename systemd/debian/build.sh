#!/bin/sh
# systemd/debian/build.sh - make deb: builds the Debian packages of this checkout
# with Debian's own tools, into build-deb/:
#   workq_VERSION_ARCH.deb      the daemons and the CLI, the systemd units,
#                               sysusers.d and tmpfiles.d entries, the
#                               configuration (conffile
#                               /etc/workq/workq.conf), man pages, docs and
#                               the shared library libworkq.so.X
#   workq-dev_VERSION_ARCH.deb  the C SDK: headers, libworkq.a, the
#                               libworkq.so link and workq.pc
# then runs lintian on both (errors fail the build; warnings are shown).
#
# The objects are built apart, in build-deb/build, with dpkg-buildflags'
# hardening flags; Depends come from dpkg-shlibdeps (the shared libraries
# the binaries and libworkq.so link) plus systemd, whose systemd-sysusers
# and systemd-tmpfiles the maintainer scripts run, and procps, whose
# /bin/kill the units' ExecReload= runs (a minimal Debian lacks it).  The maintainer scripts
# start nothing: the operator configures /etc/workq/workq.conf first and
# enables the units (docs/production.md).  The version is
# shared/version.sh's, with "-" turned into "~" (a native package's
# version has no revision).
#
# Environment: MAKE (default make), DEB_MAINTAINER (default: the last commit's author).
set -eu
cd "$(dirname "$0")/../.."
make=${MAKE:-make}
out=build-deb
src=$(pwd)

# the tools, on a machine that builds workq but never built a package
missing=""
for t in dpkg-shlibdeps:dpkg-dev lintian:lintian; do
    command -v "${t%%:*}" >/dev/null || missing="$missing ${t#*:}"
done
# systemd.pc, which names the units' directory: part of systemd on
# Debian 12, of systemd-dev from Debian 13 on, where the units belong in
# /usr/lib/systemd/system (lintian's aliased-location error for /lib)
pkg-config --exists systemd 2>/dev/null ||
    ! apt-cache show systemd-dev >/dev/null 2>&1 || missing="$missing systemd-dev"
if [ -n "$missing" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "deb: installing:$missing"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends $missing
fi

version=$(sh shared/version.sh)
debver=$(echo "$version" | tr - '~')
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
maint=${DEB_MAINTAINER:-$(git log -1 --format='%an <%ae>' 2>/dev/null || true)}
[ -n "$maint" ] || { echo "deb: set DEB_MAINTAINER='Name <address>'" >&2
    exit 1; }
sdvar() { pkg-config --variable="$1" systemd 2>/dev/null || true; }
unitdir=$(sdvar systemdsystemunitdir)
sysusersdir=$(sdvar sysusersdir)
tmpfilesdir=$(sdvar tmpfilesdir)

rm -rf "$out/stage" "$out"/*.deb
set -- BUILD="$out/build" \
    CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)" \
    LDFLAGS="$(dpkg-buildflags --get LDFLAGS)" \
    PREFIX=/usr SYSCONFDIR=/etc LIBDIR="/usr/lib/$multiarch" \
    SYSTEMD_UNITDIR="${unitdir:-/lib/systemd/system}" \
    SYSUSERSDIR="${sysusersdir:-/usr/lib/sysusers.d}" \
    TMPFILESDIR="${tmpfilesdir:-/usr/lib/tmpfiles.d}"
$make "$@" all
$make "$@" DESTDIR="$src/$out/stage/workq" install >/dev/null

main=$out/stage/workq
dev=$out/stage/workq-dev
lib=usr/lib/$multiarch

# the SDK's build-time files go to workq-dev
mkdir -p "$dev/$lib" "$dev/usr"
mv "$main/usr/include" "$dev/usr/"
mv "$main/$lib/libworkq.a" "$main/$lib/libworkq.so" "$main/$lib/pkgconfig" \
    "$dev/$lib/"
# dpkg keeps /etc/workq/workq.conf as a conffile; the documented
# reference, replaced on each upgrade, goes beside the docs
mv "$main/etc/workq/workq.conf.example" "$main/usr/share/doc/workq/"

# what dh_strip and dh_compress would do
strip --remove-section=.comment --remove-section=.note \
    "$main"/usr/bin/workq*
strip --remove-section=.comment --remove-section=.note --strip-unneeded \
    "$main/$lib"/libworkq.so.*.*.*
strip --strip-debug --remove-section=.comment --remove-section=.note \
    --enable-deterministic-archives "$dev/$lib/libworkq.a"
gzip -9n "$main"/usr/share/man/man*/*

# copyright and changelog, which every package's doc directory holds
date=$(git log -1 --format=%aD 2>/dev/null || date -R)
for p in workq workq-dev; do
    d=$out/stage/$p/usr/share/doc/$p
    mkdir -p "$d"
    cp systemd/debian/copyright "$d/copyright"
    printf '%s (%s) unstable; urgency=medium\n\n  * %s\n\n -- %s  %s\n' \
        workq "$debver" "Built from this version; changes in CHANGELOG.md." \
        "$maint" "$date" | gzip -9n > "$d/changelog.gz"
done
cp CHANGELOG.md "$main/usr/share/doc/workq/"

# control files
mkdir -p "$main/DEBIAN" "$dev/DEBIAN"
for f in postinst prerm postrm; do
    install -m 0755 "systemd/debian/$f" "$main/DEBIAN/$f"
done
echo /etc/workq/workq.conf > "$main/DEBIAN/conffiles"
echo "activate-noawait ldconfig" > "$main/DEBIAN/triggers"
echo "libworkq $(echo "$version" | sed 's/[.].*//') workq (>= $debver)" \
    > "$main/DEBIAN/shlibs"

# dpkg-shlibdeps reads debian/control of a source tree; give it one
shl=$out/shlibdeps
mkdir -p "$shl/debian"
printf 'Source: workq\n\nPackage: workq\nArchitecture: any\n' \
    > "$shl/debian/control"
deps=$(cd "$shl" && dpkg-shlibdeps -O -e"$src/$main/usr/bin/workq" \
    -e"$src/$main/usr/bin/workq-producer" -e"$src/$main/usr/bin/workq-worker" \
    -e"$src/$main/usr/bin/workq-scheduler" \
    -e"$(ls "$src/$main/$lib"/libworkq.so.*.*.*)" 2>"$src/$out/shlibdeps.log" |
    sed -n 's/^shlibs:Depends=//p')
[ -n "$deps" ] || { cat "$out/shlibdeps.log" >&2; exit 1; }

# the -dev package needs the -dev packages of the libraries workq.pc
# names (Requires.private), found by who ships their .pc files
devdeps=""
for pc in $(sed -n 's/^Requires.private: //p' "$dev/$lib/pkgconfig/workq.pc"); do
    f=$(pkg-config --variable=pcfiledir "$pc")/$pc.pc
    p=$(dpkg-query -S "$f" 2>/dev/null | sed 's/:.*//' | head -n 1) ||
        true
    [ -n "$p" ] || p=$(dpkg-query -S "$(realpath "$f")" | sed 's/:.*//' |
        head -n 1)
    devdeps="$devdeps, ${p%%:*}"
done

size() { du -sk --exclude=DEBIAN "$1" | cut -f1; }
cat > "$main/DEBIAN/control" <<CONTROL
Package: workq
Version: $debver
Architecture: $arch
Maintainer: $maint
Installed-Size: $(size "$main")
Depends: $deps, systemd, procps
Section: admin
Priority: optional
Description: background jobs on Kafka or RabbitMQ, recorded in PostgreSQL
 workq runs background tasks: a producer (HTTP API, the workq command or
 the C client) puts a task on Kafka or RabbitMQ, worker daemons run it
 and record the outcome in PostgreSQL exactly once per idempotency key,
 and a scheduler retries failed tasks after a backoff and dead-letters
 the hopeless ones.
 .
 This package holds the daemons (workq-producer, workq-worker,
 workq-scheduler), the workq command, their systemd units, the
 configuration /etc/workq/workq.conf and the shared library of the C
 client, libworkq.so.0. Nothing starts until the operator has configured
 it and enabled the units.
CONTROL
cat > "$dev/DEBIAN/control" <<CONTROL
Package: workq-dev
Version: $debver
Architecture: $arch
Maintainer: $maint
Installed-Size: $(size "$dev")
Depends: workq (= $debver)$devdeps
Section: libdevel
Priority: optional
Description: C client SDK of workq (headers, static library, pkg-config)
 workq runs background tasks on Kafka or RabbitMQ and records their
 outcomes in PostgreSQL. This package holds what a C program that submits
 tasks is built with: workq.h, workq_outbox.h and workq_plugin.h, the
 static library libworkq.a, the libworkq.so link and workq.pc
 (pkg-config --cflags --libs workq).
CONTROL

for p in workq workq-dev; do
    (cd "$out/stage/$p" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' |
        LC_ALL=C sort -z | xargs -0r md5sum) > "$out/stage/$p/DEBIAN/md5sums"
    dpkg-deb --root-owner-group -Zxz --build "$out/stage/$p" \
        "$out/${p}_${debver}_$arch.deb" >/dev/null
    echo "deb: $out/${p}_${debver}_$arch.deb"
done

# lintian: errors fail, warnings are printed (README, "Debian packages")
lintian --tag-display-limit 0 "$out"/*.deb | tee "$out/lintian.txt" || true
if grep -q '^E: ' "$out/lintian.txt"; then
    echo "deb: lintian found errors" >&2
    exit 1
fi
echo "deb: lintian: $(grep -c '^E: ' "$out/lintian.txt") errors," \
    "$(grep -c '^W: ' "$out/lintian.txt") warnings"

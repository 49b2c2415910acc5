#!/bin/sh
# tests/deps.sh - installs the Debian packages that workq's build, tests
# and demo need, and only those that are missing (make deps); then the
# browser tests' npm package (playwright-core, pinned by
# tests/browser/package-lock.json) with npm ci, when it is not installed
# at the locked version.
#
# Debian 12 and 13 name a few packages differently; each such choice is
# made here by asking apt what exists.
set -eu

pkgs="build-essential pkg-config git ca-certificates
      librdkafka-dev librabbitmq-dev libpq-dev libconfig-dev libssl-dev
      libmicrohttpd-dev libsystemd-dev libjansson-dev libcmocka-dev
      postgresql rabbitmq-server kcat maven
      clang libclang-rt-dev clang-format valgrind curl procps psmisc wrk systemd man-db
      openssl chromium"

# The dashboard's browser tests: Debian's Chromium (above), driven by
# playwright-core on Node.js.  A node that is already there (Debian's,
# or NodeSource's, which bundles npm and conflicts with Debian's npm
# package) is used as it is.
command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"

# Kafka 4 needs Java 17 or newer; any installed JRE that new will do.
java_major=$(java -version 2>&1 | sed -nE '1s/.*version "([0-9]+).*/\1/p')
if [ -z "$java_major" ] || [ "$java_major" -lt 17 ]; then
    pkgs="$pkgs default-jre-headless"
fi

# msgpack-c: Debian 13 made libmsgpack-dev an empty transitional package.
msgpack=libmsgpack-dev
if apt-cache show libmsgpack-c-dev >/dev/null 2>&1; then
    msgpack=libmsgpack-c-dev
fi
pkgs="$pkgs $msgpack"

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "deps: all packages present"
else
    echo "deps: installing:$missing"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends $missing
fi

# npm ci installs exactly the lock file's versions (and verifies their
# integrity hashes); npm writes node_modules/.package-lock.json, newer
# than the lock file, once it has.
browser=$(dirname "$0")/browser
if [ ! -f "$browser/node_modules/.package-lock.json" ] \
    || [ "$browser/package-lock.json" -nt "$browser/node_modules/.package-lock.json" ]; then
    echo "deps: npm ci in $browser"
    (cd "$browser" && npm ci --no-audit --no-fund)
else
    echo "deps: $browser/node_modules is up to date"
fi

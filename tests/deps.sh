#!/bin/sh
# tests/deps.sh - installs the Debian packages that workq's build, tests
# and demo need, and only those that are missing (make deps); then the
# tests' npm packages (tests/openapi, tests/browser) with npm ci, when
# they are not installed at their lock files' versions.
#
# Debian 12 and 13 name a few packages differently; each such choice is
# made here by asking apt what exists.
set -eu

pkgs="build-essential pkg-config git ca-certificates
      librdkafka-dev librabbitmq-dev libpq-dev libconfig-dev libssl-dev
      libmicrohttpd-dev libsystemd-dev libjansson-dev libcmocka-dev
      libcurl4-openssl-dev
      postgresql pgbouncer rabbitmq-server kcat maven
      clang libclang-rt-dev clang-format valgrind curl procps psmisc wrk systemd man-db
      openssl gnuplot-nox nodejs chromium
      python3-msgpack python3-pika python3-confluent-kafka"

# pgbouncer: tests/services/pgbouncer.sh runs a private one on 56432
# (test_pgbouncer); the package's own service, which may start on 6432
# where policy allows, shares no port, file or pid with it and is left
# alone.  The same name on Debian 12 (1.18) and 13 (1.24).

# python3-*: tests/conformance/publish.py, a producer in another language
# (docs/wire-format.md); the same names on Debian 12 and 13.

# Kafka 4 needs Java 17 or newer; any installed JRE that new will do.
java_major=$(java -version 2>&1 | sed -nE '1s/.*version "([0-9]+).*/\1/p')
if [ -z "$java_major" ] || [ "$java_major" -lt 17 ]; then
    pkgs="$pkgs default-jre-headless"
fi

# The process handler's tests run the reference libraries under the
# interpreters at /usr/bin (the worker does no PATH search): Debian's
# python3 and nodejs (the same names on 12 and 13), unless one is there
# already, from a package or not.
[ -x /usr/bin/python3 ] || pkgs="$pkgs python3"
[ -x /usr/bin/node ] || pkgs="$pkgs nodejs"

# msgpack-c: Debian 13 made libmsgpack-dev an empty transitional package.
msgpack=libmsgpack-dev
if apt-cache show libmsgpack-c-dev >/dev/null 2>&1; then
    msgpack=libmsgpack-c-dev
fi
pkgs="$pkgs $msgpack"

# npm: Debian's own package, unless the nodejs installed brings it (the
# NodeSource build does, and conflicts with Debian's npm).
command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"

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

# The npm packages of the tests, at the versions each package-lock.json
# pins: the OpenAPI test's validators (tests/openapi) and the dashboard's
# browser driver, playwright-core (tests/browser; Chromium is Debian's,
# above); skipped when they are installed already.
for here in "$(dirname "$0")/openapi" "$(dirname "$0")/browser"; do
    if ! cmp -s "$here/package-lock.json" "$here/node_modules/.package-lock.json.installed" 2>/dev/null; then
        echo "deps: npm ci in $here"
        (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
        cp "$here/package-lock.json" "$here/node_modules/.package-lock.json.installed"
    fi
done

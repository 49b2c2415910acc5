#!/bin/sh
# tests/fresh/check.sh - the README's two commands on a machine made from
# nothing (make fresh-check DIST=bookworm|trixie [FRESH_STEPS="demo check"]).
#
# A green run on a machine that already has our packages proves little
# about a new one: `make demo` once failed on its first run on a fresh
# machine only. This script
#   1. builds a minimal Debian root with debootstrap (--variant=minbase,
#      plus make and git: a user who cloned the repository has both),
#      cached under $WORKQ_FRESH_DIR/DIST/base between runs; the mirror is
#      taken from this machine's own apt sources;
#   2. copies the cached root for this run and puts a clean `git clone` of
#      HEAD in it (uncommitted changes are not part of the check);
#   3. runs, chrooted into the copy, in a network namespace of its own whose
#      only way out is slirp4netns (user-mode NAT, host loopback disabled),
#      so its private servers never meet the machine's: each of
#      FRESH_STEPS as `make STEP` in the clone (default: demo, then check,
#      the README's first command then its test command). The step
#      `deb` (make deb) goes on: the workq package is installed by apt in
#      a second copy of the cached root, one without the build packages,
#      and checked there (tests/fresh/deb.sh).
# Each step prints its time; any failure exits non-zero. Needs root
# (debootstrap, chroot, ip netns); installs debootstrap, slirp4netns and
# iproute2 on this machine if they are missing.
#
# Environment: WORKQ_FRESH_DIR (default /var/tmp/workq-fresh),
# WORKQ_FRESH_REBUILD=1 to build the cached root again.
set -eu

dist=${1:-bookworm}
shift || true
steps=${*:-demo check}
case $dist in
    bookworm|trixie) ;;
    *) echo "fresh-check: DIST must be bookworm or trixie, not '$dist'" >&2
       exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "fresh-check: needs root (debootstrap," \
    "chroot, ip netns)" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/../.." && pwd)
top=${WORKQ_FRESH_DIR:-/var/tmp/workq-fresh}/$dist
base=$top/base
run=$top/run
ns=workq-fresh-$$
t_all=$(date +%s)

# step NAME COMMAND...: runs one step and prints how long it took
step() {
    name=$1; shift
    echo "== fresh $dist: $name"
    t0=$(date +%s)
    if ! "$@"; then
        echo "== fresh $dist: $name FAILED after $(( $(date +%s) - t0 )) s" >&2
        exit 1
    fi
    echo "== fresh $dist: $name: $(( $(date +%s) - t0 )) s"
}

host_tools() {
    missing=""
    command -v debootstrap >/dev/null || missing="$missing debootstrap"
    command -v slirp4netns >/dev/null || missing="$missing slirp4netns"
    command -v ip >/dev/null || missing="$missing iproute2"
    command -v git >/dev/null || missing="$missing git"
    [ -n "$missing" ] || return 0
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends $missing
}

# the first URI of this machine's sources that serves the main archive,
# and the one that serves security updates (deb822 or one-line format)
host_uris() {
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v want="$1" '
        /^URIs:/ { u = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++)
            if ((want == "security") == ($i ~ /-security$/)) { print u; exit } }'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk -v want="$1" '$1 == "deb" {
            u = $2; s = $3; if ($2 ~ /^\[/) { u = $3; s = $4 }
            if ((want == "security") == (s ~ /-security$/)) { print u; exit } }'
}

build_base() {
    if [ -f "$base/.workq-fresh-done" ] && [ -z "${WORKQ_FRESH_REBUILD:-}" ]; then
        echo "cached root $base"
        return 0
    fi
    mirror=$(host_uris main | head -n 1)
    security=$(host_uris security | head -n 1)
    [ -n "$mirror" ] || { echo "no Debian mirror in this machine's apt" \
        "sources" >&2; return 1; }
    rm -rf "$base"
    mkdir -p "$top"
    debootstrap --variant=minbase --include=make,git,ca-certificates \
        "$dist" "$base" "$mirror" >"$top/debootstrap.log" 2>&1 || {
        tail -n 20 "$top/debootstrap.log" >&2; return 1; }
    {
        echo "deb $mirror $dist main"
        echo "deb $mirror $dist-updates main"
        [ -z "$security" ] || echo "deb $security $dist-security main"
    } > "$base/etc/apt/sources.list"
    # the same apt settings as this machine where they concern the archive
    # (a mirror that serves snapshots needs Check-Valid-Until off)
    grep -h 'Check-Valid-Until\|Check-Date' /etc/apt/apt.conf.d/* \
        > "$base/etc/apt/apt.conf.d/99workq-fresh" 2>/dev/null || true
    # the root has no /etc/hosts; RabbitMQ's node name needs localhost
    printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' \
        > "$base/etc/hosts"
    # outbound HTTPS may go through a proxy whose CA sits in this machine's
    # local certificates; Maven needs it to fetch the Kafka jars
    if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
        cp /usr/local/share/ca-certificates/*.crt \
            "$base/usr/local/share/ca-certificates/"
        chroot "$base" update-ca-certificates >/dev/null
    fi
    touch "$base/.workq-fresh-done"
}

copy_root() {
    rm -rf "$run"
    cp -a "$base" "$run"
    git clone -q --no-hardlinks "$repo" "$run/root/workq"
    git -C "$run/root/workq" log --oneline -1
    # DNS through slirp4netns' forwarder unless this machine's resolver is
    # reachable from the namespace (host loopback is not)
    if grep -q '^nameserver *127\.' /etc/resolv.conf; then
        echo "nameserver 10.0.2.3" > "$run/etc/resolv.conf"
    else
        grep '^nameserver' /etc/resolv.conf > "$run/etc/resolv.conf"
    fi
}

slirp_pid=""
cleanup() {
    [ -z "$slirp_pid" ] || kill "$slirp_pid" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

start_netns() {
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    # libslirp: --configure sets the tap address, route and DNS forwarder;
    # --disable-host-loopback keeps the machine's own servers out of reach
    slirp4netns --configure --mtu=65520 --disable-host-loopback \
        --netns-type=path "/run/netns/$ns" tap0 >"$top/slirp.log" 2>&1 &
    slirp_pid=$!
    i=0
    until ip netns exec "$ns" ip -4 addr show tap0 2>/dev/null | grep -q inet; do
        i=$((i + 1))
        [ "$i" -lt 50 ] || { cat "$top/slirp.log" >&2; return 1; }
        sleep 0.1
    done
}

# in_root COMMAND: runs a shell command in the clone, chrooted, in the
# network namespace, with its own mounts and process namespace (its /proc
# shows only its own processes, so the test servers' scripts never see,
# nor end, this machine's; all of them end with the step), a clean
# environment
in_root() {
    ip netns exec "$ns" unshare --mount --propagation private --pid --fork \
        sh -c '
        set -e
        r=$1; shift
        mount -t proc proc "$r/proc"
        mount -t sysfs sysfs "$r/sys"
        mount --rbind /dev "$r/dev"
        mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm"
        mount -t tmpfs tmpfs "$r/run"
        exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LANG=C.UTF-8 CI=true DEBIAN_FRONTEND=noninteractive \
            chroot "$r" sh -c "cd /root/workq && $*" </dev/null
    ' in_root "${root:-$run}" "$@"
}

# step deb: `make deb` in the clone, then the workq package installed by
# apt in a second copy of the cached root, one without the build packages
# (tests/fresh/deb.sh)
deb_root() {
    rm -rf "$top/deb"
    cp -a "$base" "$top/deb"
    mkdir -p "$top/deb/root/workq"
    cp "$run"/root/workq/build-deb/workq_*.deb \
        "$run/root/workq/tests/fresh/deb.sh" \
        "$top/deb/root/workq/"
}

step "host tools" host_tools
step "root (debootstrap $dist, cached)" build_base
step "copy root, clone HEAD" copy_root
step "network namespace" start_netns
for s in $steps; do
    step "make $s" in_root "make $s"
    if [ "$s" = deb ]; then
        step "copy root for the package" deb_root
        root=$top/deb
        step "apt install ./workq_*.deb, verify, remove, purge" \
            in_root "sh deb.sh"
        root=""
    fi
done
echo "== fresh $dist: all green in $(( $(date +%s) - t_all )) s"

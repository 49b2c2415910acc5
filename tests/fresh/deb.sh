#!/bin/sh
# tests/fresh/deb.sh - run by tests/fresh/check.sh (step deb) as root in
# a second copy of the fresh Debian root, one that never had workq's
# build packages, in a directory holding the packages `make deb` built:
# installs workq with apt (so its Depends alone must bring what it needs),
# then checks the version it prints, the units (systemd-analyze verify),
# the user, the ownership of /etc/workq, that nothing was enabled, that a
# removal keeps the configuration and that a purge removes it.
set -eu

fail() { echo "fresh deb: $*" >&2; exit 1; }

deb=$(ls ./workq_*.deb)
version=$(dpkg-deb -f "$deb" Version | tr '~' -)
apt-get update -qq
apt-get install -y -qq --no-install-recommends "./$deb" >apt.log 2>&1 ||
    { tail -n 30 apt.log >&2; fail "apt install $deb failed"; }

out=$(workq --version)
echo "$out"
[ "$out" = "workq $version" ] || fail "workq --version: '$out', want 'workq $version'"
for b in workq-producer workq-worker workq-scheduler; do
    "$b" --version | grep -qx "$b $version" || fail "$b --version"
done

# --man=no: a minimal root has no man(1) to look the units'
# Documentation= pages up with; their files are checked below instead
unitdir=$(dpkg -L workq | grep '/systemd/system/workq.target$' | xargs dirname)
systemd-analyze verify --man=no "$unitdir/workq.target" \
    "$unitdir/workq-producer.service" "$unitdir/workq-scheduler.service" \
    "$unitdir/workq-worker@.service" 2>&1 | tee verify.log
# verify exits non-zero on a unit error; any line it prints is a finding
[ ! -s verify.log ] || fail "systemd-analyze verify printed the above"
echo "systemd-analyze verify: 4 units, no finding"
for m in man1/workq.1 man8/workq-producer.8 man8/workq-worker.8 \
    man8/workq-scheduler.8; do
    [ -s "/usr/share/man/$m.gz" ] || fail "no /usr/share/man/$m.gz"
done

id workq >/dev/null || fail "no workq user after install"
[ "$(stat -c '%a %U %G' /etc/workq)" = "750 root workq" ] ||
    fail "/etc/workq: $(stat -c '%a %U %G' /etc/workq)"
[ "$(stat -c '%a %U %G' /etc/workq/workq.conf)" = "640 root workq" ] ||
    fail "/etc/workq/workq.conf: $(stat -c '%a %U %G' /etc/workq/workq.conf)"
for u in workq.target workq-producer.service workq-scheduler.service; do
    state=$(systemctl is-enabled "$u" 2>/dev/null || true)
    [ "$state" = disabled ] || fail "$u is '$state' after install, not disabled"
done
ldconfig -p | grep -q 'libworkq.so.0 ' || fail "libworkq.so.0 not in ld.so.cache"

echo "# operator's edit" >> /etc/workq/workq.conf
apt-get remove -y -qq workq >>apt.log 2>&1 || fail "apt remove failed"
[ ! -e /usr/bin/workq ] || fail "/usr/bin/workq left after remove"
grep -q "operator's edit" /etc/workq/workq.conf ||
    fail "remove did not keep the edited /etc/workq/workq.conf"
echo "removed: /etc/workq/workq.conf kept"
apt-get purge -y -qq workq >>apt.log 2>&1 || fail "apt purge failed"
[ ! -e /etc/workq ] || fail "/etc/workq left after purge: $(ls -la /etc/workq)"
echo "purged: /etc/workq gone"

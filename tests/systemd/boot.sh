#!/bin/sh
# tests/systemd/boot.sh - workq's units under a real systemd as PID 1
# (make systemd-check; needs root and the private test servers).
#
# Boots a Debian 12 root (the cached root of make fresh-check, plus
# systemd) with `systemd-nspawn --boot`, installs the workq package that
# `make deb` built (apt, as an operator would), points
# /etc/workq/workq.conf at the private servers of tests/services (the
# container shares this machine's network, and gets a database and a
# queue of its own), starts workq.target with the scheduler and two
# workers of the queue, and checks:
#   1. each unit is Type=notify and active with the daemon's own STATUS=
#      (systemd marks a notify unit active only on READY=1);
#   2. `systemctl kill -s KILL` of a worker while tasks run: systemd
#      restarts it, and every task submitted ends succeeded, once;
#   3. a worker frozen with SIGSTOP is killed by the watchdog after
#      WatchdogSec= and restarted;
#   4. `systemctl stop workq.target` lets the running tasks finish
#      (sleep tasks running at the stop end succeeded, not abandoned);
#   5. `systemd-analyze security` scores each unit at 2.0 or below
#      (docs/production.md).
# Each check prints its time; any failure exits non-zero.
#
# systemd-nspawn runs with --register=no --keep-unit: this machine's PID 1
# is not systemd, so there is no machined to register with nor a manager
# to ask for a scope.  Commands reach the container through nsenter.
#
# Environment: WORKQ_FRESH_DIR (default /var/tmp/workq-fresh).
set -eu

repo=$(cd "$(dirname "$0")/../.." && pwd)
top=${WORKQ_FRESH_DIR:-/var/tmp/workq-fresh}/bookworm
base=$top/base
boot=$top/boot
run=$top/boot-run
q=boot$$
db=workq_boot_$$
pg="host=127.0.0.1 port=55432 user=postgres"
t_all=$(date +%s)

fail() { echo "systemd-check: $*" >&2; exit 1; }
step() {
    name=$1; shift
    echo "== systemd: $name"
    t0=$(date +%s)
    "$@" || { echo "== systemd: $name FAILED after $(( $(date +%s) - t0 )) s" >&2
        exit 1; }
    echo "== systemd: $name: $(( $(date +%s) - t0 )) s"
}

[ "$(id -u)" -eq 0 ] || fail "needs root (systemd-nspawn)"
command -v systemd-nspawn >/dev/null || {
    apt-get install -y -qq --no-install-recommends systemd-container >/dev/null; }
psql "$pg dbname=postgres" -Atc 'SELECT 1' >/dev/null 2>&1 ||
    fail "PostgreSQL of tests/services is not running (tests/services/ctl start all)"

# the cached root with systemd; made by make fresh-check's step, else here
boot_root() {
    if [ -f "$boot/.workq-boot-done" ]; then
        echo "cached root $boot"
    else
        [ -f "$base/.workq-fresh-done" ] ||
            fail "no cached root $base: run make fresh-check once"
        rm -rf "$boot"
        cp -a "$base" "$boot"
        cp /etc/resolv.conf "$boot/etc/resolv.conf"
        chroot "$boot" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends systemd \
            systemd-sysv dbus' >"$top/boot-apt.log" 2>&1 ||
            { tail -n 20 "$top/boot-apt.log" >&2; return 1; }
        touch "$boot/.workq-boot-done"
    fi
    rm -rf "$run"
    cp -a "$boot" "$run"
    cp /etc/resolv.conf "$run/etc/resolv.conf"
    cp "$repo"/build-deb/workq_*.deb "$run/root/"
}

nspawn_pid=""
leader=""
cleanup() {
    if [ -n "$leader" ]; then
        c systemctl poweroff >/dev/null 2>&1 || true
        i=0
        while kill -0 "$nspawn_pid" 2>/dev/null && [ "$i" -lt 100 ]; do
            sleep 0.1; i=$((i + 1)); done
    fi
    [ -z "$nspawn_pid" ] || kill "$nspawn_pid" 2>/dev/null || true
    psql "$pg dbname=postgres" -qc "DROP DATABASE IF EXISTS $db" \
        >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

# c COMMAND...: runs a command in the booted container
c() {
    nsenter -t "$leader" -m -u -i -n -p -r -w -- env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

boot_container() {
    systemd-nspawn -D "$run" --boot --register=no --keep-unit \
        --machine="workq-boot-$$" >"$top/boot-console.log" 2>&1 </dev/null &
    nspawn_pid=$!
    i=0
    while [ -z "$leader" ]; do
        # the container's PID 1 is nspawn's child (its /proc/PID/root
        # reads "/": nspawn pivots into the root)
        leader=$(pgrep -P "$nspawn_pid" -x systemd || true)
        i=$((i + 1))
        [ "$i" -lt 100 ] || { tail -n 20 "$top/boot-console.log" >&2; return 1; }
        [ -n "$leader" ] || sleep 0.2
    done
    echo "systemd is PID 1 of the container (pid $leader here)"
    i=0
    until state=$(c systemctl is-system-running 2>/dev/null); \
        [ "$state" = running ] || [ "$state" = degraded ]; do
        i=$((i + 1))
        [ "$i" -lt 150 ] || { echo "state: $state" >&2; return 1; }
        sleep 0.2
    done
    echo "system: $state"
    [ "$state" = running ] || c systemctl --failed --no-legend
}

install_configure() {
    c sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends /root/workq_*.deb' \
        >"$top/boot-install.log" 2>&1 ||
        { tail -n 20 "$top/boot-install.log" >&2; return 1; }
    c workq --version
    psql "$pg dbname=postgres" -qc "CREATE DATABASE $db"
    c sed -i -e 's|^\( *url = "amqp://guest:guest@127.0.0.1:\)5672"|\155672"|' \
        -e "s|^\( *conninfo = \)\"host=127.0.0.1 port=5432 dbname=workq\"|\1\"$pg dbname=$db\"|" \
        -e 's|^\( *transport = \).*|\1"rabbitmq";|' /etc/workq/workq.conf
    c grep -q 55672 /etc/workq/workq.conf || fail "could not set the broker"
    c grep -q "$db" /etc/workq/workq.conf || fail "could not set the database"
    c workq --config /etc/workq/workq.conf migrate
    c systemctl enable workq-scheduler.service "workq-worker@$q:1.service" \
        "workq-worker@$q:2.service" workq.target 2>&1 | tail -n 1
    c systemctl start workq.target
}

units="workq-scheduler.service workq-worker@$q:1.service workq-worker@$q:2.service"
prop() { c systemctl show -P "$2" "$1"; }
n() { psql "$pg dbname=$db" -Atc "$1"; }
wait_for() {     # wait_for SECONDS DESCRIPTION SHELL-CONDITION
    end=$(( $(date +%s) + $1 ))
    until eval "$3"; do
        [ "$(date +%s)" -lt "$end" ] || { echo "not within $1 s: $2" >&2
            return 1; }
        sleep 0.2
    done
}

check_ready() {
    for u in $units; do
        wait_for 30 "$u active" '[ "$(prop "$u" ActiveState)" = active ]'
        [ "$(prop "$u" Type)" = notify ] || fail "$u is not Type=notify"
        st=$(prop "$u" StatusText)
        [ -n "$st" ] || fail "$u: no STATUS= from the daemon"
        echo "$u: active, status \"$st\""
    done
}

submit() {      # submit COUNT TYPE PAYLOAD
    i=0
    : > "$run/root/batch.jsonl"
    while [ "$i" -lt "$1" ]; do
        echo "{\"type\":\"$2\",\"payload\":$3,\"idempotency_key\":\"$2-$i-$(date +%s%N)\"}" \
            >> "$run/root/batch.jsonl"
        i=$((i + 1))
    done
    c workq --config /etc/workq/workq.conf submit --queue "$q" \
        --batch /root/batch.jsonl | tail -n 1
}

check_kill() {
    r0=$(prop "workq-worker@$q:1.service" NRestarts)
    submit 300 sleep 50
    wait_for 30 "a task running" '[ "$(n "SELECT count(*) FROM workq.tasks WHERE state = '"'running'"'")" -gt 0 ]'
    c systemctl kill -s KILL "workq-worker@$q:1.service"
    wait_for 30 "worker 1 restarted" \
        '[ "$(prop "workq-worker@$q:1.service" NRestarts)" -gt "$r0" ] && [ "$(prop "workq-worker@$q:1.service" ActiveState)" = active ]'
    echo "worker 1: killed, restarted ($(prop "workq-worker@$q:1.service" NRestarts) restarts)"
    wait_for 180 "300 tasks succeeded" \
        '[ "$(n "SELECT count(*) FROM workq.tasks WHERE state = '"'succeeded'"'")" -eq 300 ]'
    [ "$(n "SELECT count(*) FROM workq.tasks")" -eq 300 ] ||
        fail "$(n "SELECT state, count(*) FROM workq.tasks GROUP BY 1")"
    echo "300 tasks submitted, 300 succeeded, no other row"
}

check_watchdog() {
    u="workq-worker@$q:2.service"
    r0=$(prop "$u" NRestarts)
    wd=$(prop "$u" WatchdogUSec)
    echo "$u: WatchdogSec=$wd, frozen with SIGSTOP"
    c systemctl kill -s STOP "$u"
    wait_for 120 "the watchdog restarted $u" \
        '[ "$(prop "$u" NRestarts)" -gt "$r0" ] && [ "$(prop "$u" ActiveState)" = active ]'
    c journalctl -q -u "$u" --no-pager | grep -i watchdog | tail -n 2
    c journalctl -q -u "$u" --no-pager | grep -qi 'watchdog timeout' ||
        fail "no watchdog timeout in the journal of $u"
}

check_drain() {
    submit 8 sleep 4000
    wait_for 30 "sleep tasks running" \
        '[ "$(n "SELECT count(*) FROM workq.tasks WHERE state = '"'running'"'")" -gt 0 ]'
    ids=$(n "SELECT id FROM workq.tasks WHERE state = 'running'" | tr '\n' ' ')
    t0=$(date +%s)
    c systemctl stop workq.target
    # systemctl waits for the target's own stop job only: its members
    # (PartOf=) may still be draining when it returns
    echo "systemctl stop workq.target returned after $(( $(date +%s) - t0 )) s"
    for u in $units; do
        wait_for 60 "$u inactive" '[ "$(prop "$u" ActiveState)" = inactive ]'
    done
    echo "all units inactive after $(( $(date +%s) - t0 )) s"
    for id in $ids; do
        st=$(n "SELECT state FROM workq.tasks WHERE id = '$id'")
        [ "$st" = succeeded ] || fail "task $id, running at the stop, is $st"
    done
    echo "the $(echo $ids | wc -w) tasks running at the stop succeeded"
}

check_security() {
    for u in workq-producer.service workq-scheduler.service "workq-worker@$q:1.service"; do
        s=$(c systemd-analyze security --no-pager "$u" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
        echo "$u: exposure $s"
        awk -v s="$s" 'BEGIN { exit !(s != "" && s <= 2.0) }' ||
            fail "$u scores $s, above 2.0"
    done
}

step "root with systemd (cached), the package" boot_root
step "boot (systemd-nspawn --boot)" boot_container
step "apt install, configure, start workq.target" install_configure
step "READY=1: units active with their STATUS=" check_ready
step "kill -s KILL a worker under load: restarted, nothing lost" check_kill
step "SIGSTOP a worker: the watchdog restarts it" check_watchdog
step "stop workq.target drains in-flight tasks" check_drain
step "systemd-analyze security <= 2.0" check_security
echo "== systemd: all green in $(( $(date +%s) - t_all )) s"

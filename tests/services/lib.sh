# shellcheck shell=bash
# Helpers shared by tests/services/{postgres,rabbitmq,kafka}.sh.
# Sourced by tests/services/ctl, which runs with `set -euo pipefail`.

# Base directory for all throwaway server data. A fixed path (not mktemp) so
# that every parent is traversable by the postgres user and so that a later
# `ctl start` finds the data of an earlier one.
WQ_BASE="${WORKQ_SERVICES_DIR:-/var/tmp/workq-services}"
WQ_BASE="${WQ_BASE%/}"

# The throwaway CA and server certificate every server's TLS listener
# uses (tests/services/mkcerts.sh): ca.pem verifies them all.
WQ_TLS_DIR="$WQ_BASE/tls"

wq_log() { printf '[services] %s\n' "$*" >&2; }
wq_die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# Seconds since the epoch with a fraction, for timings.
wq_now() { date +%s.%N; }
wq_elapsed() { awk -v a="$1" -v b="$(wq_now)" 'BEGIN { printf "%.1f", b - a }'; }

wq_ensure_base() {
    mkdir -p "$WQ_BASE"
    chmod 755 "$WQ_BASE"
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
wq_port_open() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# wq_require_free_port NAME PORT...: fail at once when another process
# already listens on one of our fixed ports (else the server would die at
# bind time, or a foreign listener could pass for ours).
wq_require_free_port() {
    local name="$1" port; shift
    for port in "$@"; do
        if wq_port_open "$port"; then
            wq_log "$name: 127.0.0.1:$port is already in use by another process:"
            command -v ss >/dev/null && ss -ltnpH "sport = :$port" >&2 || true
            wq_die "$name: port $port busy; stop whatever listens there"
        fi
    done
}

# True when PID is a live process (zombies count as dead).
wq_pid_alive() {
    local pid="$1" state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/stat" ] || return 1
    state="$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# First line of a pid file, or nothing.
wq_read_pidfile() {
    [ -s "$1" ] && head -n1 "$1" | tr -dc '0-9'
    return 0
}

# True when /proc/PID/cmdline contains STRING (guards against pid reuse).
wq_pid_cmdline_has() {
    local pid="$1" needle="$2"
    wq_pid_alive "$pid" || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$needle"
}

# wq_wait_until SECONDS CMD...: poll CMD every 0.2 s until it succeeds.
wq_wait_until() {
    local limit="$1"; shift
    local deadline=$((SECONDS + limit))
    while :; do
        "$@" && return 0
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

wq_all_dead() {
    local p
    for p in "$@"; do
        wq_pid_alive "$p" && return 1
    done
    return 0
}

# wq_kill_wait SIGNAL SECONDS PID...: send SIGNAL, wait up to SECONDS for the
# processes to go, then SIGKILL whatever is left and wait for that too.
wq_kill_wait() {
    local sig="$1" limit="$2"; shift 2
    local pids=() p
    for p in "$@"; do
        wq_pid_alive "$p" && pids+=("$p")
    done
    [ "${#pids[@]}" -eq 0 ] && return 0
    kill "-$sig" "${pids[@]}" 2>/dev/null || true
    wq_wait_until "$limit" wq_all_dead "${pids[@]}" && return 0
    wq_log "still alive after ${limit}s: ${pids[*]}; sending SIGKILL"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wq_wait_until 10 wq_all_dead "${pids[@]}" ||
        wq_log "WARNING: could not kill ${pids[*]}"
}

# pgrep limited to this shell's process namespace: a Debian root that
# tests/fresh/check.sh runs in a namespace of its own starts servers with
# the same command lines, which this machine's namespace sees (and must
# never take for its own).
wq_pgrep() { pgrep --ns $$ --nslist pid "$@"; }

# PID and all its descendants, parents first.
wq_tree() {
    local c
    echo "$1"
    for c in $(pgrep -P "$1" 2>/dev/null); do
        wq_tree "$c"
    done
}

# SIGKILL a process with all its descendants (e.g. a CLI helper).
wq_kill_tree() {
    local pids
    pids="$(wq_tree "$1")"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# wq_close_fds: close every descriptor above 2 of the current shell.  A
# server must not keep its caller's pipes open: a `ctl start` run from a
# script whose output is piped would hold that pipe for the server's life.
wq_close_fds() {
    local f n
    for f in /proc/$BASHPID/fd/*; do
        n="${f##*/}"
        [ "$n" -gt 2 ] 2>/dev/null && eval "exec $n>&-"
    done
    return 0
}

# wq_spawn PIDFILE LOGFILE CMD...: start CMD detached from this shell (own
# session, stdin from /dev/null, stdout+stderr appended to LOGFILE, working
# directory that of PIDFILE so crash dumps do not land in the caller's
# directory) and write its pid to PIDFILE.  Every descriptor above 2 is
# closed: the server neither holds wq_lock's lock (fd 9) nor a caller's
# pipe for its whole life.
wq_spawn() {
    local pidfile="$1" logfile="$2"; shift 2
    rm -f "$pidfile"
    # The inner bash writes its own pid, then execs CMD: the pid stays valid.
    ( wq_close_fds
      exec setsid bash -c 'cd "$(dirname "$0")" && echo $$ >"$0" && exec "$@"' "$pidfile" "$@" \
        </dev/null >>"$logfile" 2>&1 ) &
    disown "$!" 2>/dev/null || true
    # Wait for the pid file so callers can read it right away.
    wq_wait_until 5 test -s "$pidfile" || wq_die "could not start: $*"
}

# wq_lock NAME: serialise concurrent `ctl` calls on one service (held on fd 9
# until the calling (sub)shell exits; wq_spawn closes it for servers).
wq_lock() {
    wq_ensure_base
    exec 9>"$WQ_BASE/.$1.lock"
    flock -w 300 9 || wq_die "timed out waiting for lock $WQ_BASE/.$1.lock"
}

wq_unlock() {
    exec 9>&-
}

# wq_tls_ensure: make the test CA and server certificate if missing or
# expiring (under a lock of its own, fd 7: services start in parallel).
wq_tls_ensure() {
    wq_ensure_base
    (
        exec 7>"$WQ_BASE/.tls.lock"
        flock -w 60 7 || wq_die "timed out waiting for $WQ_BASE/.tls.lock"
        sh "$WQ_SELF_DIR/mkcerts.sh" "$WQ_TLS_DIR" ||
            wq_die "could not make the test certificates in $WQ_TLS_DIR"
    )
}

# wq_tail_logs LINES FILE...: print the last lines of each existing file to
# stderr, for a failed start.
wq_tail_logs() {
    local n="$1" f; shift
    for f in "$@"; do
        [ -s "$f" ] || continue
        printf -- '----- last %s lines of %s -----\n' "$n" "$f" >&2
        tail -n "$n" "$f" >&2 || true
    done
}

# shellcheck shell=bash
# Private PostgreSQL for integration tests: 127.0.0.1:55432, user postgres
# (trust), database workq; TLS on the same port (ssl = on, the test CA's
# server certificate), so sslmode=verify-full works with sslrootcert =
# tls/ca.pem and plain connections still do. Sourced by tests/services/ctl
# after lib.sh.

PG_PORT=55432
PG_DB=workq
PG_DIR="$WQ_BASE/pg"
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgres.log"
PG_SOCKDIR="$PG_DIR/run"
PG_TLS="$PG_DIR/tls"      # copies of the server certificate, owned by postgres
PG_CONNINFO="host=127.0.0.1 port=$PG_PORT user=postgres dbname=$PG_DB"
PG_START_TIMEOUT=30

# Binaries: those matching an existing data directory's major version, else
# the newest installed (/usr/lib/postgresql/<major>/bin; never hard-coded).
pg_bindir() {
    local v
    if [ -s "$PG_DATA/PG_VERSION" ]; then
        v="$(cat "$PG_DATA/PG_VERSION")"
        if [ -x "/usr/lib/postgresql/$v/bin/postgres" ]; then
            echo "/usr/lib/postgresql/$v/bin"
            return 0
        fi
    fi
    v="$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n1)"
    [ -n "$v" ] && [ -x "/usr/lib/postgresql/$v/bin/postgres" ] ||
        wq_die "no PostgreSQL server in /usr/lib/postgresql (apt-get install postgresql)"
    echo "/usr/lib/postgresql/$v/bin"
}

# initdb and pg_ctl refuse to run as root: run them as postgres when root.
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_psql() {
    PGCONNECT_TIMEOUT=5 "$(pg_bindir)/psql" -X -q -v ON_ERROR_STOP=1 "$@"
}

# The live postmaster of this cluster, if any. The cwd check guards against
# a stale postmaster.pid whose pid now belongs to another postgres.
pg_postmaster_pid() {
    local pid
    pid="$(wq_read_pidfile "$PG_DATA/postmaster.pid")"
    [ -n "$pid" ] && wq_pid_cmdline_has "$pid" postgres &&
        [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$(readlink -f "$PG_DATA")" ] &&
        echo "$pid"
    return 0
}

# Every process of this cluster (postmaster and backends, also orphans left
# by a SIGKILLed postmaster): their working directory is the data directory.
pg_cluster_pids() {
    local d pid real
    real="$(readlink -f "$PG_DATA" 2>/dev/null)" || return 0
    [ -n "$real" ] || return 0
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        [ "$(readlink "$d/cwd" 2>/dev/null)" = "$real" ] || continue
        wq_pid_cmdline_has "$pid" postgres && echo "$pid"
    done
    return 0
}

pg_isready_ok() {
    "$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -t 2
}

pg_running() {
    [ -n "$(pg_postmaster_pid)" ]
}

pg_status() {
    pg_running && pg_isready_ok
}

pg_prepare_dirs() {
    wq_ensure_base
    # postgres must be able to traverse every parent of the data directory.
    if [ "$(id -u)" -eq 0 ]; then
        local d="$WQ_BASE"
        while [ "$d" != / ] && [ -n "$d" ]; do
            if ! runuser -u postgres -- test -x "$d"; then
                wq_log "chmod a+x $d (postgres must traverse it)"
                chmod a+x "$d"
            fi
            d="$(dirname "$d")"
        done
    fi
    mkdir -p "$PG_DIR" "$PG_SOCKDIR"
    chmod 755 "$PG_DIR"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$PG_DIR" "$PG_SOCKDIR"
        touch "$PG_LOG"
        chown postgres: "$PG_LOG"
    fi
}

pg_initdb() {
    [ -s "$PG_DATA/PG_VERSION" ] && return 0
    rm -rf "$PG_DATA"
    wq_log "pg: initdb $PG_DATA"
    pg_as_owner "$(pg_bindir)/initdb" -D "$PG_DATA" -U postgres -A trust \
        -E UTF8 --locale=C.UTF-8 --no-sync >>"$PG_LOG" 2>&1 ||
        { wq_tail_logs 40 "$PG_LOG"; wq_die "pg: initdb failed"; }
    echo "include_if_exists = 'workq-test.conf'" >>"$PG_DATA/postgresql.conf"
}

# The server certificate and key where postgres may read them: the key
# must be 0600 and owned by the server's user.
pg_copy_tls() {
    mkdir -p "$PG_TLS"
    cp "$WQ_TLS_DIR/server.pem" "$PG_TLS/server.pem"
    cp "$WQ_TLS_DIR/server.key" "$PG_TLS/server.key"
    chmod 0644 "$PG_TLS/server.pem"
    chmod 0600 "$PG_TLS/server.key"
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$PG_TLS"
    return 0
}

# Rewritten at every start so that changes here apply to old data dirs too.
pg_write_conf() {
    local sockdir="$PG_SOCKDIR"
    pg_copy_tls
    # A Unix socket path must fit in 107 bytes; with a long base dir go
    # TCP only (tests connect over TCP anyway).
    [ "${#sockdir}" -gt 90 ] && sockdir=""
    cat >"$PG_DATA/workq-test.conf" <<EOF
# Written by tests/services/postgres.sh; overwritten at every start.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sockdir'
max_connections = 200
# Durability against an OS crash is not needed for throwaway test data.
# A killed server (ctl kill9) still keeps every committed transaction: the
# WAL is written to the OS at commit because synchronous_commit stays on.
fsync = off
full_page_writes = off
# TLS on the same port, with the throwaway test CA (tests/services/mkcerts.sh).
ssl = on
ssl_cert_file = '$PG_TLS/server.pem'
ssl_key_file = '$PG_TLS/server.key'
EOF
    [ "$(id -u)" -eq 0 ] && chown postgres: "$PG_DATA/workq-test.conf"
    return 0
}

pg_launch() {
    local pids
    # Orphaned backends of a SIGKILLed postmaster keep the shared memory
    # attached and make the new postmaster refuse to start: end them first.
    pids="$(pg_cluster_pids)"
    if [ -n "$pids" ]; then
        wq_log "pg: ending leftover processes ${pids//$'\n'/ }"
        # shellcheck disable=SC2086
        wq_kill_wait KILL 10 $pids
    fi
    # No process of this cluster is left, so its lock files are stale. Remove
    # them: a killed postmaster can stay a zombie for seconds (until init
    # reaps it), and postgres takes a zombie pid in a lock file for a live
    # server ("lock file ... already exists").
    rm -f "$PG_DATA/postmaster.pid" "$PG_SOCKDIR/.s.PGSQL.$PG_PORT.lock"
    pg_write_conf
    # -w waits for the postmaster to report ready (it does not connect).
    ( wq_close_fds
      exec 2>>"$PG_LOG"
      pg_as_owner "$(pg_bindir)/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -s -w \
        -t "$PG_START_TIMEOUT" start >/dev/null )
}

pg_start() {
    local t0 rc=0
    t0="$(wq_now)"
    wq_lock pg
    pg_prepare_dirs
    if pg_running; then
        wq_log "pg: already running (pid $(pg_postmaster_pid))"
        # A server started by an older version of this script: its
        # settings (TLS among them) apply with a reload, no restart.
        local before
        before="$(cat "$PG_DATA/workq-test.conf" 2>/dev/null || true)"
        pg_write_conf
        if [ "$before" != "$(cat "$PG_DATA/workq-test.conf")" ]; then
            pg_as_owner "$(pg_bindir)/pg_ctl" -D "$PG_DATA" -s reload 9>&- \
                >/dev/null 2>>"$PG_LOG" && wq_log "pg: settings reloaded"
        fi
    else
        wq_require_free_port pg "$PG_PORT"
        pg_initdb
        pg_launch || rc=$?
        if [ "$rc" -ne 0 ]; then
            wq_tail_logs 40 "$PG_LOG"
            wq_die "pg: pg_ctl start failed (exit $rc)"
        fi
    fi
    if ! wq_wait_until "$PG_START_TIMEOUT" pg_isready_ok; then
        wq_tail_logs 40 "$PG_LOG"
        wq_die "pg: not ready on 127.0.0.1:$PG_PORT after ${PG_START_TIMEOUT}s"
    fi
    if [ "$(pg_psql "host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres" -tAc \
            "select 1 from pg_database where datname = '$PG_DB'")" != 1 ]; then
        pg_psql "host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres" \
            -c "create database $PG_DB owner postgres" >/dev/null
    fi
    if [ "$(pg_psql "$PG_CONNINFO" -tAc 'select 1')" != 1 ]; then
        wq_tail_logs 40 "$PG_LOG"
        wq_die "pg: 'select 1' on $PG_DB failed"
    fi
    wq_unlock
    wq_log "pg: ready on 127.0.0.1:$PG_PORT ($(wq_elapsed "$t0") s)"
}

pg_stop() {
    local pid pids
    wq_lock pg
    pid="$(pg_postmaster_pid)"
    if [ -n "$pid" ]; then
        # fast: roll back open transactions and disconnect clients.
        pg_as_owner "$(pg_bindir)/pg_ctl" -D "$PG_DATA" -s -m fast -w -t 20 stop \
            >/dev/null 2>&1 || wq_log "pg: pg_ctl stop failed; killing"
    fi
    pids="$(pg_cluster_pids)"
    # shellcheck disable=SC2086
    [ -n "$pids" ] && wq_kill_wait TERM 10 $pids
    wq_unlock
    wq_log "pg: stopped"
}

# SIGKILL the postmaster and its backends together, as a crash would.
pg_kill9() {
    local pids
    pids="$(pg_cluster_pids)"
    if [ -z "$pids" ]; then
        wq_log "pg: not running"
        return 0
    fi
    # shellcheck disable=SC2086
    wq_kill_wait KILL 10 $pids
    wq_log "pg: killed (SIGKILL) ${pids//$'\n'/ }"
}

pg_logfiles() { echo "$PG_LOG"; }

pg_clean() {
    rm -rf "$PG_DIR"
}

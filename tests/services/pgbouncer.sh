# shellcheck shell=bash
# Private PgBouncer for integration tests: 127.0.0.1:56432 in transaction
# pooling mode in front of the private PostgreSQL (127.0.0.1:55432), every
# database of it ("*"), user postgres (trust), at most PGB_POOL_SIZE server
# connections per database and user, so that clients really share them.
# Sourced by tests/services/ctl after lib.sh and postgres.sh.
#
# Independent of the Debian package's own instance (pgbouncer.service:
# /etc/pgbouncer, port 6432, pidfile /run/postgresql): own configuration,
# port, pidfile and log under $WQ_BASE/pgbouncer; nothing here reads or
# stops the system one.  PgBouncer refuses to run as root: as root it is
# started with -u postgres (it switches user itself, so the pid in the
# pid file is the server's own).

PGB_PORT=56432
PGB_POOL_SIZE=2
PGB_DIR="$WQ_BASE/pgbouncer"
PGB_INI="$PGB_DIR/pgbouncer.ini"
PGB_USERS="$PGB_DIR/userlist.txt"
PGB_PIDFILE="$PGB_DIR/pgbouncer.pid"
PGB_LOG="$PGB_DIR/pgbouncer.log"
PGB_CONNINFO="host=127.0.0.1 port=$PGB_PORT user=postgres dbname=$PG_DB"
PGB_START_TIMEOUT=15

pgb_bin() {
    command -v pgbouncer 2>/dev/null || { [ -x /usr/sbin/pgbouncer ] &&
        echo /usr/sbin/pgbouncer; } ||
        wq_die "pgbouncer: not installed (apt-get install pgbouncer; make deps)"
}

# The live server, if any (the cmdline check guards against pid reuse).
pgb_pid() {
    local pid
    pid="$(wq_read_pidfile "$PGB_PIDFILE")"
    [ -n "$pid" ] && wq_pid_cmdline_has "$pid" "$PGB_INI" && echo "$pid"
    return 0
}

pgb_running() { [ -n "$(pgb_pid)" ]; }

pgb_status() { pgb_running && wq_port_open "$PGB_PORT"; }

# Rewritten at every start.  Only settings of PgBouncer 1.18 (Debian 12)
# that 1.24 (Debian 13) reads the same way.
pgb_write_conf() {
    local user=""
    [ "$(id -u)" -eq 0 ] && user=postgres
    cat >"$PGB_INI" <<EOF
; Written by tests/services/pgbouncer.sh; overwritten at every start.
[databases]
* = host=127.0.0.1 port=$PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $PGB_USERS
pool_mode = transaction
default_pool_size = $PGB_POOL_SIZE
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
; the test servers' databases come and go: drop idle server connections
; soon, so that DROP DATABASE is not kept waiting long
server_idle_timeout = 5
server_lifetime = 60
query_wait_timeout = 30
pidfile = $PGB_PIDFILE
logfile = $PGB_LOG
log_connections = 0
log_disconnections = 0
admin_users = postgres
stats_users = postgres
EOF
    # trust still needs the user listed (PgBouncer's auth_type docs)
    echo '"postgres" ""' >"$PGB_USERS"
    [ -n "$user" ] && chown "$user": "$PGB_INI" "$PGB_USERS"
    return 0
}

pgb_prepare_dirs() {
    wq_ensure_base
    mkdir -p "$PGB_DIR"
    chmod 755 "$PGB_DIR"
    touch "$PGB_LOG"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$PGB_DIR" "$PGB_LOG"
    return 0
}

pgb_start() {
    local t0 user=()
    t0="$(wq_now)"
    wq_lock pgbouncer
    pgb_prepare_dirs
    if pgb_running; then
        wq_log "pgbouncer: already running (pid $(pgb_pid))"
    else
        wq_require_free_port pgbouncer "$PGB_PORT"
        pgb_write_conf
        [ "$(id -u)" -eq 0 ] && user=(-u postgres)
        rm -f "$PGB_PIDFILE"
        # In the foreground under wq_spawn (which writes the pid file):
        # PgBouncer writes its own too, the same pid.
        wq_spawn "$PGB_DIR/spawn.pid" "$PGB_DIR/stderr.log" \
            "$(pgb_bin)" "${user[@]}" "$PGB_INI"
        if ! wq_wait_until "$PGB_START_TIMEOUT" pgb_status; then
            wq_tail_logs 40 "$PGB_LOG" "$PGB_DIR/stderr.log"
            wq_die "pgbouncer: not listening on 127.0.0.1:$PGB_PORT after ${PGB_START_TIMEOUT}s"
        fi
    fi
    wq_unlock
    wq_log "pgbouncer: ready on 127.0.0.1:$PGB_PORT, transaction pooling, $PGB_POOL_SIZE server connections per database ($(wq_elapsed "$t0") s)"
}

pgb_stop() {
    local pid
    wq_lock pgbouncer
    pid="$(pgb_pid)"
    # SIGTERM: immediate shutdown (SIGINT would wait for every client)
    [ -n "$pid" ] && wq_kill_wait TERM 10 "$pid"
    wq_unlock
    wq_log "pgbouncer: stopped"
}

pgb_kill9() {
    local pid
    pid="$(pgb_pid)"
    if [ -z "$pid" ]; then
        wq_log "pgbouncer: not running"
        return 0
    fi
    wq_kill_wait KILL 10 "$pid"
    wq_log "pgbouncer: killed (SIGKILL) $pid"
}

pgb_logfiles() { echo "$PGB_LOG"; echo "$PGB_DIR/stderr.log"; }

pgb_clean() {
    rm -rf "$PGB_DIR"
}

# shellcheck shell=bash
# Private RabbitMQ node for integration tests: 127.0.0.1:55672, guest/guest,
# and AMQP over TLS (amqps) on 127.0.0.1:55671 with the test CA's server
# certificate. Sourced by tests/services/ctl after lib.sh.
#
# Independent of a system node (5672, epmd 4369, dist 25672): own node name,
# own HOME (Erlang cookie), own epmd port, own distribution ports, own
# config/data/log dirs, and the scripts in /usr/lib/rabbitmq/bin (the
# /usr/sbin wrappers switch to the rabbitmq user and use its cookie).

RMQ_PORT=55672
RMQ_TLS_PORT=55671
RMQ_NODE=workq-test@localhost
RMQ_DIST_PORT=25673    # default would be node port + 20000 = 75672 (invalid)
RMQ_EPMD_PORT=54369
RMQ_CTL_DIST_MIN=45673 # CLI tools' own distribution ports (default 35672..)
RMQ_BIN=/usr/lib/rabbitmq/bin
RMQ_DIR="$WQ_BASE/rabbitmq"
RMQ_PIDFILE="$RMQ_DIR/rabbitmq.pid"   # written by the node: beam.smp's pid
RMQ_WRAPPER_PIDFILE="$RMQ_DIR/wrapper.pid"
RMQ_STDOUT="$RMQ_DIR/log/stdout.log"
RMQ_LOG="$RMQ_DIR/log/$RMQ_NODE.log"
RMQ_START_TIMEOUT=90

# The same private environment for the node and for every CLI call; a
# cookie or epmd port mismatch shows up as "Failed to connect and
# authenticate".
rmq_env() {
    export HOME="$RMQ_DIR/home"
    export RABBITMQ_NODENAME="$RMQ_NODE"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT="$RMQ_PORT"
    export RABBITMQ_DIST_PORT="$RMQ_DIST_PORT"
    export RABBITMQ_CTL_DIST_PORT_MIN="$RMQ_CTL_DIST_MIN"
    export RABBITMQ_CTL_DIST_PORT_MAX="$((RMQ_CTL_DIST_MIN + 10))"
    export ERL_EPMD_PORT="$RMQ_EPMD_PORT"
    export ERL_EPMD_ADDRESS=127.0.0.1
    export RABBITMQ_CONF_ENV_FILE=/dev/null
    export RABBITMQ_CONFIG_FILE="$RMQ_DIR/etc/rabbitmq.conf"
    export RABBITMQ_CONFIG_FILES="$RMQ_DIR/etc/conf.d"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/etc/advanced.config"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/etc/enabled_plugins"
    export RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
    export RABBITMQ_LOG_BASE="$RMQ_DIR/log"
    export RABBITMQ_PID_FILE="$RMQ_PIDFILE"
    export RABBITMQ_PLUGINS_EXPAND_DIR="$RMQ_DIR/plugins-expand"
    # Else a crashing VM (node or CLI) writes erl_crash.dump into the cwd.
    export ERL_CRASH_DUMP="$RMQ_DIR/log/erl_crash.dump"
    # Distribution (25673) on loopback only, like AMQP; by default it
    # listens on every interface.
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
    unset RABBITMQ_ALLOW_INPUT RABBITMQ_SERVER_START_ARGS RABBITMQ_USE_LONGNAME \
        ERL_FLAGS ERL_AFLAGS ERL_ZFLAGS
}

# rabbitmqctl against the private node, e.g. `rmq_ctl list_queues`.
rmq_ctl() {
    ( rmq_env; cd "$RMQ_DIR" 2>/dev/null || true; exec "$RMQ_BIN/rabbitmqctl" -n "$RMQ_NODE" "$@" 9>&- )
}

# rmq_ctl_timeout SECONDS ARGS...: the same, killed after SECONDS.
rmq_ctl_timeout() {
    local secs="$1"; shift
    ( rmq_env; cd "$RMQ_DIR" 2>/dev/null || true; exec timeout "$secs" "$RMQ_BIN/rabbitmqctl" -n "$RMQ_NODE" "$@" 9>&- )
}

rmq_prepare_dirs() {
    wq_ensure_base
    mkdir -p "$RMQ_DIR"/{home,etc/conf.d,mnesia,log,plugins-expand}
    chmod 700 "$RMQ_DIR/home"
    # Our own cookie, written before anything starts so that the node and
    # the CLI never race to create it.
    if [ ! -s "$RMQ_DIR/home/.erlang.cookie" ]; then
        umask 077
        printf 'WORKQTESTCOOKIE%s' "$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)" \
            >"$RMQ_DIR/home/.erlang.cookie"
        umask 022
    fi
    chmod 400 "$RMQ_DIR/home/.erlang.cookie"
    # No plugins (no management UI): faster boot.
    echo '[].' >"$RMQ_DIR/etc/enabled_plugins"
    cat >"$RMQ_DIR/etc/rabbitmq.conf" <<EOF
# Written by tests/services/rabbitmq.sh; overwritten at every start.
# guest/guest may connect from loopback (the default).
loopback_users.guest = true
log.console = false
log.file.level = info
# amqps, next to the plain listener (RABBITMQ_NODE_PORT)
listeners.ssl.1 = 127.0.0.1:$RMQ_TLS_PORT
ssl_options.cacertfile = $WQ_TLS_DIR/ca.pem
ssl_options.certfile = $WQ_TLS_DIR/server.pem
ssl_options.keyfile = $WQ_TLS_DIR/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
EOF
}

# The node's name is not on its command line (3.10 sets it at boot), but
# its private HOME is: "-home $RMQ_DIR/home". The CLI tools' VMs have it too.
rmq_vm_marker() { echo "-home $RMQ_DIR/home "; }

rmq_pid() {
    local pid
    pid="$(wq_read_pidfile "$RMQ_PIDFILE")"
    [ -n "$pid" ] && wq_pid_cmdline_has "$pid" "$(rmq_vm_marker)" && echo "$pid"
    return 0
}

# Every Erlang VM with our private HOME (node and CLI tools); never the
# system node.
rmq_stray_pids() {
    local p
    for p in $(wq_pgrep -x beam.smp 2>/dev/null; wq_pgrep -x erl 2>/dev/null); do
        wq_pid_cmdline_has "$p" "$(rmq_vm_marker)" && echo "$p"
    done
    return 0
}

# Our private epmd (never the system one on 4369): the node starts it as
# `epmd -daemon` with ERL_EPMD_PORT in its environment.
rmq_epmd_pids() {
    local p
    for p in $(wq_pgrep -x epmd 2>/dev/null); do
        if wq_pid_cmdline_has "$p" "-port $RMQ_EPMD_PORT" ||
            tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" |
                grep -qx "ERL_EPMD_PORT=$RMQ_EPMD_PORT"; then
            echo "$p"
        fi
    done
    return 0
}

rmq_running() {
    [ -n "$(rmq_pid)" ]
}

rmq_status() {
    rmq_running && wq_port_open "$RMQ_PORT"
}

rmq_launch() {
    wq_log "rabbitmq: starting node $RMQ_NODE"
    echo "===== ctl start $(date '+%F %T') =====" >>"$RMQ_STDOUT"
    rm -f "$RMQ_PIDFILE"
    ( rmq_env; wq_spawn "$RMQ_WRAPPER_PIDFILE" "$RMQ_STDOUT" "$RMQ_BIN/rabbitmq-server" )
}

rmq_fail() {
    # The node log, then stdout: a boot failure (bad config, port in use)
    # shows only in the latter.
    wq_tail_logs 40 "$RMQ_LOG" "$RMQ_STDOUT"
    wq_die "rabbitmq: $*"
}

rmq_start() {
    local t0 wrapper
    t0="$(wq_now)"
    wq_lock rabbitmq
    rmq_prepare_dirs
    if rmq_running; then
        wq_log "rabbitmq: already running (pid $(rmq_pid))"
    else
        # Leftovers of a killed node (beam) would hold the node name.
        local strays
        strays="$(rmq_stray_pids)"
        # shellcheck disable=SC2086
        [ -n "$strays" ] && wq_kill_wait KILL 10 $strays
        wq_require_free_port rabbitmq "$RMQ_PORT" "$RMQ_TLS_PORT" "$RMQ_DIST_PORT"
        rmq_launch
        wrapper="$(wq_read_pidfile "$RMQ_WRAPPER_PIDFILE")"
        # `rabbitmqctl wait PIDFILE` (3.10 has no await_startup in
        # rabbitmq-diagnostics) waits for the node to write its pid file,
        # then for the rabbit app to run. A node that dies before writing
        # the pid file would keep it waiting: watch the node meanwhile.
        rmq_ctl_timeout "$RMQ_START_TIMEOUT" wait --timeout "$RMQ_START_TIMEOUT" \
            "$RMQ_PIDFILE" >>"$RMQ_STDOUT" 2>&1 &
        local waiter=$! rc=0
        while wq_pid_alive "$waiter"; do
            if ! wq_pid_alive "$wrapper"; then
                wq_kill_tree "$waiter"
                rmq_fail "node exited during start"
            fi
            sleep 0.3
        done
        wait "$waiter" || rc=$?
        if [ "$rc" -ne 0 ]; then
            wq_pid_alive "$wrapper" || rmq_fail "node exited during start"
            rmq_fail "node not started after ${RMQ_START_TIMEOUT}s (rabbitmqctl wait: exit $rc)"
        fi
    fi
    wq_wait_until 10 wq_port_open "$RMQ_PORT" ||
        rmq_fail "nothing accepts connections on 127.0.0.1:$RMQ_PORT"
    wq_port_open "$RMQ_TLS_PORT" || wq_log "rabbitmq: WARNING: no amqps" \
        "listener on $RMQ_TLS_PORT (a node from an older ctl? ctl restart rabbitmq)"
    wq_unlock
    wq_log "rabbitmq: ready on 127.0.0.1:$RMQ_PORT ($(wq_elapsed "$t0") s)"
}

rmq_stop() {
    local pid wrapper pids
    wq_lock rabbitmq
    pid="$(rmq_pid)"
    wrapper="$(wq_read_pidfile "$RMQ_WRAPPER_PIDFILE")"
    if [ -n "$pid" ]; then
        # shutdown returns once the node's OS process has exited.
        rmq_ctl_timeout 40 shutdown >>"$RMQ_STDOUT" 2>&1 || wq_log "rabbitmq: shutdown failed; killing"
        wq_kill_wait TERM 15 "$pid"
    fi
    # The wrapper script (it waits for beam), stray VMs with our node name,
    # then our epmd: it outlives the node.
    wq_pid_cmdline_has "$wrapper" rabbitmq-server && wq_kill_wait TERM 10 "$wrapper"
    pids="$(rmq_stray_pids)"
    # shellcheck disable=SC2086
    [ -n "$pids" ] && wq_kill_wait TERM 10 $pids
    if [ -n "$(rmq_epmd_pids)" ]; then
        epmd -port "$RMQ_EPMD_PORT" -kill >/dev/null 2>&1 || true
        pids="$(rmq_epmd_pids)"
        # shellcheck disable=SC2086
        [ -n "$pids" ] && wq_kill_wait TERM 5 $pids
    fi
    rm -f "$RMQ_PIDFILE" "$RMQ_WRAPPER_PIDFILE"
    wq_unlock
    wq_log "rabbitmq: stopped"
}

rmq_kill9() {
    local pid
    pid="$(rmq_pid)"
    if [ -z "$pid" ]; then
        wq_log "rabbitmq: not running"
        return 0
    fi
    wq_kill_wait KILL 10 "$pid"
    wq_log "rabbitmq: killed (SIGKILL) beam pid $pid"
}

rmq_logfiles() { echo "$RMQ_STDOUT"; echo "$RMQ_LOG"; }

rmq_clean() {
    rm -rf "$RMQ_DIR"
}

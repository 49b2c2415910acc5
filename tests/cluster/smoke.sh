#!/usr/bin/env bash
# tests/cluster/smoke.sh - the cluster smoke run (tests/cluster/ctl smoke,
# make cluster-smoke): real workq binaries on the cluster of
# tests/cluster/ctl (which must be up), on each transport in turn.
#
#   bash tests/cluster/smoke.sh [--transport rabbitmq|kafka|both]
#                               [--rate N] [--duration S] [--dir DIR]
#                               [--broker-fault kill|cut]
#
# Per transport, on a fresh database: two workers on hosts w1 and w2, two
# schedulers on host app and the steady-rate submitter there (chaos-tool
# submit, the public C client) for DURATION s at RATE tasks/s; every type
# of its mix is a noop here, but for "effect", an exec handler that
# appends the task's key to a file.  Faults, in that order:
#   +DURATION/4   kill -9 of the host of the first broker node (rmq1 or
#                 kafka1: the node every client knows first); with
#                 --broker-fault cut, its link cut instead (a partition:
#                 the node lives on, silent, and its peers cannot see it)
#   +DURATION/2   that host started again (its link back)
#   +5*DURATION/8 kill -9 of every process on worker host w2 (its worker
#                 with tasks in flight); its worker starts again 5 s later
#   +3*DURATION/4 PostgreSQL failover: kill -9 of the primary's host, the
#                 standby promoted (ctl pg-failover); afterwards the old
#                 primary comes back as a synchronous standby (pg-rejoin)
# Then it waits (at most 180 s) until every accepted task has succeeded
# and counts in PostgreSQL: every accepted task succeeded exactly once
# (one success record), none missing, none dead, no effect written twice
# unless an attempt was lost.  It also checks the replication the queue
# got: quorum queue members (3), or the topic's replicas (3) and its
# min.insync.replicas (2).  Prints a table; exit 0 only if all hold.
# Column "stall s k/r/f": the longest time no task was newly accepted
# (sampled every 0.2 s) after the broker kill, after its return and after
# the PostgreSQL failover: how long producers were held up.
# Holds /var/tmp/workq-tests.lock throughout (other test runs wait), unless
# WORKQ_TESTS_LOCKED=1 says that the caller holds it.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"

TRANSPORTS="rabbitmq kafka"
RATE=40
DURATION=40
DIR=""
BROKER_FAULT=kill
while [ "$#" -gt 0 ]; do
    case "$1" in
        --transport) TRANSPORTS="$2"; [ "$2" = both ] && TRANSPORTS="rabbitmq kafka"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        --broker-fault) BROKER_FAULT="$2"; shift 2 ;;
        -h|--help) sed -n '2,27s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "smoke: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$DURATION" -ge 20 ] && [ "$DURATION" -le 600 ] || { echo "smoke: --duration 20..600" >&2; exit 2; }
case "$BROKER_FAULT" in kill|cut) ;; *) echo "smoke: --broker-fault kill or cut" >&2; exit 2 ;; esac
[ "$RATE" -ge 1 ] && [ "$RATE" -le 500 ] || { echo "smoke: --rate 1..500" >&2; exit 2; }

# Counting (count.sh, shared with chaos.sh): the mix runs as noops but
# "effect".
CNT_FAILING="''"
CNT_EFFECT_TYPES="'effect'"
CL_NAME=smoke
# shellcheck source=common.sh
. "$ROOT/tests/cluster/common.sh"
cl_need_build workq-worker
DIR="${DIR:-$(mktemp -d /tmp/workq-cluster-smoke.XXXXXX)}"
mkdir -p "$DIR"
chmod 755 "$DIR"
cl_lock 1800
cl_check_up "$DIR"

T0=$SECONDS
log() { printf '[smoke %s +%3ds] %s\n' "$T" "$((SECONDS - T0))" "$*" | tee -a "$DIR/events.log" >&2; }

declare -A PID=()
cleanup() {
    [ -n "${SUBMIT_PID:-}" ] && kill -TERM "$SUBMIT_PID" 2>/dev/null || true
    stop_daemons
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start SLOT HOST BINARY: a daemon on a host, restarted by tend (as
# systemd's Restart= would) when a fault killed it.
start() {
    local slot="$1" host="$2" bin="$3"
    (cd "$DIR/$T" && exec "$CTL" exec "$host" "$BIN/$bin" --config "$CONF") \
        >>"$DIR/$T/$slot.log" 2>&1 8>&- &
    PID[$slot]=$!
}

RESULTS=()

run_transport() {
    T="$1"
    local db="workq_smoke_$T" q="smoke_${T}_$(date +%s)" first d
    mkdir -p "$DIR/$T"
    CONF="$DIR/$T/workq.conf"
    : >"$DIR/$T/effects"
    : >"$DIR/$T/accepted"
    cat >"$CONF" <<CONF
# cluster smoke ($T): every client knows all the nodes.
transport = "$T";
log = { level = "info"; };
rabbitmq = { url = "amqp://guest:guest@10.77.0.11:5672/%2f";
             hosts = "10.77.0.12:5672,10.77.0.13:5672"; heartbeat = "5s"; };
kafka = { brokers = "$KAFKA_BROKERS"; partitions = 4; replication_factor = 3;
          min_insync_replicas = 2; session_timeout_ms = 6000; };
postgres = { conninfo = "$PGHOSTS dbname=$db"; };
worker = { queues = [ "$q" ]; concurrency = 16; lease = "10s"; drain_timeout = "5s"; };
scheduler = { poll_interval = "500ms"; publish_timeout = "5s"; };
handlers = (
    { type = "ok"; builtin = "noop"; },
    { type = "proc"; builtin = "noop"; },
    { type = "flaky"; builtin = "noop"; },
    { type = "doomed"; builtin = "noop"; },
    { type = "slow"; builtin = "noop"; },
    { type = "crash"; builtin = "noop"; },
    { type = "crash_always"; builtin = "noop"; },
    { type = "effect"; kind = "exec"; timeout = "20s";
      argv = [ "/bin/sh", "$ROOT/tests/fault/effect.sh", "effect" ];
      env = [ "CHAOS_EFFECTS=$DIR/$T/effects" ]; }
);
queue_policies = (
    { name = "*"; max_attempts = 12; backoff_base = "200ms";
      backoff_cap = "2s"; backoff_jitter = "none"; }
);
CONF
    chmod 600 "$CONF"
    sqlp -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    "$CTL" exec app "$BIN/workq" --config "$CONF" migrate >"$DIR/$T/migrate.log" 2>&1
    start w1 w1 workq-worker
    start w2 w2 workq-worker
    start s1 app workq-scheduler
    start s2 app workq-scheduler
    log "queue $q, database $db: $RATE tasks/s for ${DURATION}s, workers on w1 w2, schedulers on app"
    (cd "$DIR/$T" && exec "$CTL" exec app "$TOOL" submit --config "$CONF" --queue "$q" \
        --rate "$RATE" --duration "$DURATION" --accepted "$DIR/$T/accepted" --drain 120) \
        >"$DIR/$T/submit.out" 2>"$DIR/$T/submit.log" 8>&- &
    SUBMIT_PID=$!
    first=$([ "$T" = rabbitmq ] && echo rmq1 || echo kafka1)
    # Faults run in the background (a start takes seconds) while the loop
    # samples the accepted count every 0.2 s: the longest time without a
    # newly accepted task after each fault is how long producers stalled.
    local start_t=$SECONDS step=0 fault_pid="" fault_rc=0 now n last_n=0 last_ms gap
    local wkill=0 wkill_at=0
    local -a stall=(0 0 0 0)
    last_ms=$(( ${EPOCHREALTIME/./} / 1000 ))
    while kill -0 "$SUBMIT_PID" 2>/dev/null; do
        d=$((SECONDS - start_t))
        now=$(( ${EPOCHREALTIME/./} / 1000 ))
        n="$(wc -l <"$DIR/$T/accepted")"
        if [ "$n" -gt "$last_n" ]; then
            last_n=$n; last_ms=$now
        elif [ "$d" -lt "$DURATION" ]; then
            gap=$((now - last_ms))
            [ "$gap" -gt "${stall[$step]}" ] && stall[$step]=$gap
        fi
        if [ -n "$fault_pid" ] && ! kill -0 "$fault_pid" 2>/dev/null; then
            wait "$fault_pid" || { fault_rc=1; log "a fault command failed (see $DIR/faults.log)"; }
            fault_pid=""
            log "fault $step done"
        fi
        # The worker host w2 killed whole (its worker with its tasks in
        # flight) and its worker started again 5 s later, as a rebooted
        # host would; its leases expire and its tasks run on w1.
        if [ "$wkill" = 0 ] && [ "$d" -ge $((5 * DURATION / 8)) ]; then
            log "inject: kill -9 host w2 (its worker, tasks in flight)"
            "$CTL" kill w2 >>"$DIR/faults.log" 2>&1 8>&-
            wkill=1; wkill_at=$SECONDS
        elif [ "$wkill" = 1 ] && [ "$SECONDS" -ge $((wkill_at + 5)) ]; then
            log "worker on w2 starts again"
            start w2 w2 workq-worker
            wkill=2
        fi
        if [ -z "$fault_pid" ]; then
            if [ "$step" = 0 ] && [ "$d" -ge $((DURATION / 4)) ]; then
                log "inject: $BROKER_FAULT host $first (accepted so far $n)"
                "$CTL" "$BROKER_FAULT" "$first" >>"$DIR/faults.log" 2>&1 8>&- &
                fault_pid=$!; step=1
            elif [ "$step" = 1 ] && [ "$d" -ge $((DURATION / 2)) ]; then
                log "host $first $([ "$BROKER_FAULT" = kill ] && echo starts again || echo "link back") (accepted so far $n)"
                "$CTL" "$([ "$BROKER_FAULT" = kill ] && echo start || echo heal)" "$first" \
                    >>"$DIR/faults.log" 2>&1 8>&- &
                fault_pid=$!; step=2
            elif [ "$step" = 2 ] && [ "$d" -ge $((3 * DURATION / 4)) ]; then
                log "inject: PostgreSQL failover (primary $("$CTL" pg-primary)) (accepted so far $n)"
                "$CTL" pg-failover >>"$DIR/faults.log" 2>&1 8>&- &
                fault_pid=$!; step=3
            fi
        fi
        sleep 0.2
    done
    [ -z "$fault_pid" ] || wait "$fault_pid" || fault_rc=1
    log "PostgreSQL primary now $("$CTL" pg-primary)"
    local stalls
    stalls="$(printf '%d.%d/%d.%d/%d.%d' $((stall[1] / 1000)) $((stall[1] % 1000 / 100)) \
        $((stall[2] / 1000)) $((stall[2] % 1000 / 100)) $((stall[3] / 1000)) $((stall[3] % 1000 / 100)))"
    log "longest producer stall (s) after kill / return / failover: $stalls (before the faults $((stall[0] / 1000)).$((stall[0] % 1000 / 100)))"
    local submit_rc=0
    wait "$SUBMIT_PID" || submit_rc=$?
    SUBMIT_PID=""
    log "submitter done: $(cat "$DIR/$T/submit.out") (exit $submit_rc)"

    # Every accepted task succeeded, at most 180 s; then the counts
    # (tests/cluster/count.sh, shared with chaos.sh).
    cnt_load "$db" "$DIR/$T"
    cnt_wait_quiet "$T" "$db" "$q" 180
    local quiet=$CNT_QUIET
    log "quiescence: $([ "$quiet" = 1 ] && echo reached || echo "NOT reached ($CNT_WHY)")"
    stop_daemons
    cnt_count "$T" "$db" "$q" "$DIR/$T"
    local repl k
    repl="$(cnt_replication "$T" "$q")"

    # The old primary returns as a synchronous standby.
    log "pg-rejoin: $("$CTL" pg-rejoin 2>&1 | tail -n1)"

    # Every type but "effect" is a noop here: every task must succeed.
    cnt_verdict 1 "$repl"
    local fail=("${CNT_FAIL[@]}")
    [ "$quiet" = 1 ] || fail+=("no quiescence")
    [ "$submit_rc" = 0 ] || fail+=("submitter exit $submit_rc")
    [ "$step" = 3 ] || fail+=("faults injected: $step of 3")
    [ "$wkill" = 2 ] || fail+=("worker host kill: $wkill of 2 steps")
    [ "$fault_rc" = 0 ] || fail+=("a fault command failed")
    local verdict=PASS
    [ "${#fail[@]}" -eq 0 ] || verdict="FAIL: ${fail[*]}"
    RESULTS+=("$(cnt_row "$T" "$repl" "$stalls" "$verdict")")
    log "$T: $verdict"
}

for T in $TRANSPORTS; do
    run_transport "$T"
done

{
    echo "== cluster smoke: ${DURATION}s at $RATE tasks/s per transport; faults: $([ "$BROKER_FAULT" = kill ] && echo "kill -9 of" || echo "link cut of") the first"
    echo "   broker node's host and its return, worker host w2 killed whole (worker back 5 s later),"
    echo "   PostgreSQL primary killed and the standby promoted"
    cnt_header "stall s k/r/f"
    printf '%s\n' "${RESULTS[@]}"
    echo "stall: longest time without a newly accepted task after the kill / the return / the failover"
    echo "(logs in $DIR; total $((SECONDS - T0)) s)"
} | tee "$DIR/report.txt"
! grep -q FAIL "$DIR/report.txt"

#!/usr/bin/env bash
# tests/cluster/chaos.sh - faults under load on the cluster test bed
# (make cluster-chaos, tests/cluster/ctl chaos; issue 19).  The bed of
# tests/cluster/ctl must be up (make cluster-up).
#
#   bash tests/cluster/chaos.sh [--transport rabbitmq|kafka|both]
#                               [--duration S] [--rate N] [--quiesce S]
#                               [--min-each N] [--dir DIR]
#
# Per transport, on a fresh database: workers on hosts w1 and w2, two
# schedulers on host app and the steady-rate submitter there (chaos-tool
# submit, the public C client) for DURATION s (default 600) at RATE
# tasks/s (default 40), with the single-node chaos suite's mix: noop,
# fail twice then succeed, always fail, sleep 1.5 s, an exec handler
# writing a side effect, one crashing on its first attempt, one crashing
# always (its process type runs as a noop here).  Two fault loops run
# side by side until DURATION is up, each fault waiting for the last one
# of its loop to be repaired and the cluster to be whole again:
#   brokers and PostgreSQL, in turn, 10 s apart:
#     broker-kill   kill -9 of every process of one broker node's host
#                   (rmq1..3 or kafka1..3, in turn), started again 10 s
#                   later
#     pg-failover   the PostgreSQL primary's host killed, the standby
#                   promoted (ctl pg-failover); 5 s later the old primary
#                   comes back as a synchronous standby (ctl pg-rejoin)
#     broker-cut    one broker node's link cut for 20 s (a partition: the
#                   node lives on, silent; longer than the 2 x 5 s AMQP
#                   heartbeat, the 6 s Kafka session and the 9 s broker
#                   session timeout), then back
#   worker hosts w1 and w2, in turn, 10 s apart:
#     worker-cut    the host's link cut for 20 s (longer than the 10 s
#                   lease and the timeouts above), then back
#     worker-loss   20 % of the host's packets dropped each way for 25 s
#                   (ctl loss: this kernel has no sch_netem, so no netem
#                   loss or delay; a classic BPF filter picks packets at
#                   random and tc mirred sends them to a link that is
#                   down), then normal
#     worker-kill   every process of the host killed (its worker with
#                   tasks in flight, their handler programs), its worker
#                   started again 5 s later
# A daemon that ends on its own is started again (as systemd's Restart=
# would, at most every 2 s); one that crashed fails the run.  Then the
# cluster is made whole, the run waits (at most QUIESCE s, default 300)
# until every accepted task is succeeded or dead, dead copies published
# and the broker queue drained, and counts as the single-node suite does
# (tests/cluster/count.sh): 0 missing, 0 stuck, 0 with two successes,
# side effects repeated only where an attempt was lost.  Each kind of
# fault must have been injected MIN-EACH times (default 2, 1 when
# DURATION < 300).  For every fault it reports how long producers waited
# for their first accepted task after it and how long workers took to
# record outcomes again (tests/cluster/fault_times.py).  Prints the table
# (also DIR/report.txt); exit 0 only if every check holds.
# Holds /var/tmp/workq-tests.lock throughout (other test runs wait), unless
# WORKQ_TESTS_LOCKED=1 says that the caller holds it.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"

TRANSPORTS="rabbitmq kafka"
RATE=40
DURATION=600
QUIESCE=300
MIN_EACH=""
DIR=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        --transport) TRANSPORTS="$2"; [ "$2" = both ] && TRANSPORTS="rabbitmq kafka"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --quiesce) QUIESCE="$2"; shift 2 ;;
        --min-each) MIN_EACH="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        -h|--help) sed -n '2,54s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "cluster-chaos: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
for t in $TRANSPORTS; do
    case "$t" in rabbitmq|kafka) ;; *) echo "cluster-chaos: --transport rabbitmq, kafka or both" >&2; exit 2 ;; esac
done
[[ "$DURATION" =~ ^[0-9]+$ ]] && [ "$DURATION" -ge 60 ] && [ "$DURATION" -le 3600 ] ||
    { echo "cluster-chaos: --duration 60..3600" >&2; exit 2; }
[[ "$RATE" =~ ^[0-9]+$ ]] && [ "$RATE" -ge 1 ] && [ "$RATE" -le 200 ] ||
    { echo "cluster-chaos: --rate 1..200" >&2; exit 2; }
[[ "$QUIESCE" =~ ^[0-9]+$ ]] && [ "$QUIESCE" -ge 30 ] && [ "$QUIESCE" -le 1800 ] ||
    { echo "cluster-chaos: --quiesce 30..1800" >&2; exit 2; }
if [ -z "$MIN_EACH" ]; then
    MIN_EACH=2
    [ "$DURATION" -ge 300 ] || MIN_EACH=1
fi

CL_NAME=cluster-chaos
# shellcheck source=common.sh
. "$ROOT/tests/cluster/common.sh"
cl_need_build workq-worker workq-scheduler
DIR="${DIR:-$(mktemp -d /tmp/workq-cluster-chaos.XXXXXX)}"
mkdir -p "$DIR"
chmod 755 "$DIR"
# WORKQ_TESTS_LOCKED=1: the caller holds the lock already (for example
# flock /var/tmp/workq-tests.lock around cluster-up, chaos and cluster-down).
cl_lock 3600
cl_check_up "$DIR"

T0=$SECONDS
T=-
now_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
log() { printf '[cluster-chaos %s +%4ds] %s\n' "$T" "$((SECONDS - T0))" "$*" | tee -a "$DIR/events.log" >&2; }

# --- the daemons (all on hosts of the bed) ---------------------------------
SLOTS=(w1 w2 s1 s2)
declare -A HOST_OF=([w1]=w1 [w2]=w2 [s1]=app [s2]=app)
declare -A PID=() EXPECTED=() NEXT_START=() STARTS=()
declare -A COUNT=()

start_daemon() {
    local slot="$1" host="${HOST_OF[$1]}" n
    n=$(( ${STARTS[$slot]:-0} + 1 ))
    STARTS[$slot]=$n
    if [ "${slot:0:1}" = w ]; then
        # --id: the host's name first, so outcomes can be told apart by host
        (cd "$TDIR" && exec "$CTL" exec "$host" "$BIN/workq-worker" --config "$CONF" \
            --id "$slot-$n") >>"$TDIR/$slot.log" 2>&1 8>&- &
    else
        (cd "$TDIR" && exec "$CTL" exec "$host" "$BIN/workq-scheduler" --config "$CONF") \
            >>"$TDIR/$slot.log" 2>&1 8>&- &
    fi
    PID[$slot]=$!
    NEXT_START[$slot]=$((SECONDS + 2))
}

# True while PID runs (a zombie, our child not yet waited for, is dead).
# (read, not awk: it runs five times a second.)
alive() {
    local _p _c st
    read -r _p _c st _ 2>/dev/null <"/proc/$1/stat" || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# Starts again every daemon that has ended, unless its host is down on
# purpose (a file hold.HOST while a worker-kill fault holds it down);
# one that ended without a fault killing its host is counted.
tend() {
    local slot pid rc host
    for slot in "${SLOTS[@]}"; do
        pid="${PID[$slot]:-}"
        [ -n "$pid" ] || continue
        alive "$pid" && continue
        host="${HOST_OF[$slot]}"
        if [ -e "$TDIR/hold.$host" ]; then
            EXPECTED[$slot]="$pid"
            continue
        fi
        [ "$SECONDS" -ge "${NEXT_START[$slot]:-0}" ] || continue
        rc=0
        wait "$pid" 2>/dev/null || rc=$?
        if [ "${EXPECTED[$slot]:-}" != "$pid" ]; then
            if [ "$rc" -gt 128 ]; then
                COUNT[daemon_crashes]=$(( ${COUNT[daemon_crashes]:-0} + 1 ))
                log "$slot (pid $pid) CRASHED: signal $((rc - 128)) (see $TDIR/$slot.log)"
            else
                COUNT[daemon_exits]=$(( ${COUNT[daemon_exits]:-0} + 1 ))
                log "$slot (pid $pid) ended on its own, status $rc (started again)"
            fi
        fi
        start_daemon "$slot"
    done
}

# --- the cluster made whole ------------------------------------------------
ALL_HOSTS=(rmq1 rmq2 rmq3 kafka1 kafka2 kafka3 w1 w2)

# kafka_whole, rmq_whole: tests/cluster/common.sh.
broker_whole() {
    if [ "$T" = rabbitmq ]; then rmq_whole "${1:-rmq1}"; else kafka_whole "$Q"; fi
}

# Waits (at most 180 s) until the brokers are whole again.
settle_broker() {
    local node="$1" deadline=$((SECONDS + 180))
    until broker_whole "$node"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 3
    done
}

heal_all() {
    local h
    for h in "${ALL_HOSTS[@]}"; do
        "$CTL" heal "$h" >/dev/null 2>&1 || true
    done
    "$CTL" unslow w1 >/dev/null 2>&1 || true
    "$CTL" unslow w2 >/dev/null 2>&1 || true
    rm -f "${TDIR:-/nonexistent}"/hold.*
}

# --- the fault loops (each a background subshell) ----------------------------
fault_event() {
    # ms track fault n target phase
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(now_ms)" "$@" >>"$TDIR/faults.tsv"
}
fault_cmd() {
    "$CTL" "$@" >>"$TDIR/faults.log" 2>&1 8>&- && return 0
    echo "$(date '+%T') ctl $*: failed" >>"$TDIR/fault_errors"
    log "fault command failed: ctl $* (see $TDIR/faults.log)"
    return 1
}

# Brokers and PostgreSQL: broker-kill, pg-failover, broker-cut in turn.
loop_infra() {
    local i=0 nb=0 node kind prefix n
    declare -A seq=()
    prefix=$([ "$T" = rabbitmq ] && echo rmq || echo kafka)
    sleep 15
    while [ "$(now_ms)" -lt "$END_MS" ] && [ "$i" -lt 200 ]; do
        case $((i % 3)) in
            0) kind=broker-kill ;;
            1) kind=pg-failover ;;
            2) kind=broker-cut ;;
        esac
        n=$(( ${seq[$kind]:-0} + 1 )); seq[$kind]=$n
        case "$kind" in
            broker-kill)
                node="$prefix$((nb % 3 + 1))"; nb=$((nb + 1))
                log "inject: $kind $n: kill -9 host $node"
                fault_event infra "$kind" "$n" "$node" inject
                fault_cmd kill "$node" || true
                sleep 10
                fault_cmd start "$node" || true
                fault_event infra "$kind" "$n" "$node" repair
                settle_broker "$node" || { log "$node: brokers not whole 180 s after its return"
                    echo "$(date '+%T') $kind $n: not whole" >>"$TDIR/fault_errors"; }
                fault_event infra "$kind" "$n" "$node" settled
                log "$kind $n: $node back, brokers whole" ;;
            broker-cut)
                node="$prefix$((nb % 3 + 1))"; nb=$((nb + 1))
                log "inject: $kind $n: link of $node cut for 20 s"
                fault_event infra "$kind" "$n" "$node" inject
                fault_cmd cut "$node" || true
                sleep 20
                fault_cmd heal "$node" || true
                fault_event infra "$kind" "$n" "$node" repair
                settle_broker "$node" || { log "$node: brokers not whole 180 s after its link came back"
                    echo "$(date '+%T') $kind $n: not whole" >>"$TDIR/fault_errors"; }
                fault_event infra "$kind" "$n" "$node" settled
                log "$kind $n: $node link back, brokers whole" ;;
            pg-failover)
                node="$("$CTL" pg-primary 2>/dev/null || echo '?')"
                log "inject: $kind $n: primary $node killed, standby promoted"
                fault_event infra "$kind" "$n" "$node" inject
                fault_cmd pg-failover || true
                fault_event infra "$kind" "$n" "$node" repair
                sleep 5
                fault_cmd pg-rejoin || true
                fault_event infra "$kind" "$n" "$node" settled
                log "$kind $n: primary now $("$CTL" pg-primary 2>/dev/null), $node its synchronous standby" ;;
        esac
        i=$((i + 1))
        sleep 10
    done
}

# Worker hosts w1, w2: worker-cut, worker-loss, worker-kill in turn.
loop_workers() {
    local j=0 kind h n
    declare -A seq=()
    sleep 20
    while [ "$(now_ms)" -lt "$END_MS" ] && [ "$j" -lt 300 ]; do
        case $((j % 3)) in
            0) kind=worker-cut ;;
            1) kind=worker-loss ;;
            2) kind=worker-kill ;;
        esac
        h="w$((j % 2 + 1))"
        n=$(( ${seq[$kind]:-0} + 1 )); seq[$kind]=$n
        case "$kind" in
            worker-cut)
                log "inject: $kind $n: link of $h cut for 20 s"
                fault_event workers "$kind" "$n" "$h" inject
                fault_cmd cut "$h" || true
                sleep 20
                fault_cmd heal "$h" || true
                fault_event workers "$kind" "$n" "$h" repair ;;
            worker-loss)
                log "inject: $kind $n: 20 % of $h's packets dropped each way for 25 s"
                fault_event workers "$kind" "$n" "$h" inject
                fault_cmd loss "$h" 20 || true
                sleep 25
                fault_cmd unslow "$h" || true
                fault_event workers "$kind" "$n" "$h" repair ;;
            worker-kill)
                log "inject: $kind $n: every process of $h killed, its worker back 5 s later"
                touch "$TDIR/hold.$h"
                fault_event workers "$kind" "$n" "$h" inject
                fault_cmd kill "$h" || true
                sleep 5
                rm -f "$TDIR/hold.$h"
                fault_event workers "$kind" "$n" "$h" repair ;;
        esac
        j=$((j + 1))
        sleep 10
    done
}

LOOP_PIDS=()
SUBMIT_PID=""
cleanup() {
    local p
    for p in "${LOOP_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    [ -n "$SUBMIT_PID" ] && { kill -TERM "$SUBMIT_PID" 2>/dev/null || true; }
    stop_daemons
    heal_all
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RESULTS=()
TIMINGS=()
FAILED=0

run_transport() {
    T="$1"
    TDIR="$DIR/$T"
    DB="workq_cchaos_$T"
    Q="cchaos_${T}_$(date +%s)"
    CONF="$TDIR/workq.conf"
    mkdir -p "$TDIR"
    : >"$TDIR/effects"
    : >"$TDIR/accepted"
    : >"$TDIR/faults.tsv"
    : >"$TDIR/samples"
    : >"$TDIR/fault_errors"
    COUNT=()
    STARTS=()
    EXPECTED=()
    cat >"$CONF" <<CONF
# cluster chaos ($T): every client knows all the nodes; short leases and
# backoffs so that faults show and the run settles.
transport = "$T";
log = { level = "info"; };
rabbitmq = { url = "amqp://guest:guest@10.77.0.11:5672/%2f";
             hosts = "10.77.0.12:5672,10.77.0.13:5672"; heartbeat = "5s"; };
kafka = { brokers = "$KAFKA_BROKERS"; partitions = 4; replication_factor = 3;
          min_insync_replicas = 2; session_timeout_ms = 6000; };
postgres = { conninfo = "$PGHOSTS dbname=$DB"; };
worker = { queues = [ "$Q" ]; concurrency = 16; lease = "10s"; drain_timeout = "5s"; };
scheduler = { poll_interval = "500ms"; publish_timeout = "5s"; };
handlers = (
    { type = "ok"; builtin = "noop"; },
    { type = "proc"; builtin = "noop"; },
    { type = "flaky"; builtin = "fail"; options = "until=3"; },
    { type = "doomed"; builtin = "fail"; options = "p=1"; },
    { type = "slow"; builtin = "sleep"; options = "ms=1500"; timeout = "20s"; },
    { type = "effect"; kind = "exec"; timeout = "20s";
      argv = [ "/bin/sh", "$ROOT/tests/fault/effect.sh", "effect" ];
      env = [ "CHAOS_EFFECTS=$TDIR/effects" ]; },
    { type = "crash"; kind = "exec"; timeout = "20s";
      argv = [ "/bin/sh", "$ROOT/tests/fault/effect.sh", "once" ];
      env = [ "CHAOS_EFFECTS=$TDIR/effects" ]; },
    { type = "crash_always"; kind = "exec"; timeout = "20s";
      argv = [ "/bin/sh", "$ROOT/tests/fault/effect.sh", "always" ];
      env = [ "CHAOS_EFFECTS=$TDIR/effects" ]; }
);
queue_policies = (
    { name = "*"; max_attempts = 12; backoff_base = "200ms";
      backoff_cap = "2s"; backoff_jitter = "none"; }
);
CONF
    chmod 600 "$CONF"
    sqlp -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    "$CTL" exec app "$BIN/workq" --config "$CONF" migrate >"$TDIR/migrate.log" 2>&1
    local slot
    for slot in "${SLOTS[@]}"; do start_daemon "$slot"; done
    log "queue $Q, database $DB: $RATE tasks/s for ${DURATION}s; workers on w1 w2, schedulers and submitter on app; logs in $TDIR"
    START_MS=$(now_ms)
    END_MS=$((START_MS + DURATION * 1000))
    (cd "$TDIR" && exec "$CTL" exec app "$TOOL" submit --config "$CONF" --queue "$Q" \
        --rate "$RATE" --duration "$DURATION" --accepted "$TDIR/accepted" --drain 120) \
        >"$TDIR/submit.out" 2>"$TDIR/submit.log" 8>&- &
    SUBMIT_PID=$!
    loop_infra 8>&- &
    LOOP_PIDS=($!)
    loop_workers 8>&- &
    LOOP_PIDS+=($!)

    # The accepted count every 0.2 s (for the producers' figures), the
    # daemons tended meanwhile; bounded by the submitter's end.
    local k=0 kmax=$(( (DURATION + 200) * 5 ))
    exec 3>&2 2>>"$TDIR/jobs.log"
    while alive "$SUBMIT_PID" && [ "$k" -lt "$kmax" ]; do
        printf '%s %s\n' "$(now_ms)" "$(wc -l <"$TDIR/accepted")" >>"$TDIR/samples"
        tend
        sleep 0.2
        k=$((k + 1))
    done
    alive "$SUBMIT_PID" && { log "submitter still running at the bound: stopped"; kill -TERM "$SUBMIT_PID" 2>/dev/null || true; }
    local submit_rc=0
    wait "$SUBMIT_PID" || submit_rc=$?
    SUBMIT_PID=""
    log "submitter done: $(cat "$TDIR/submit.out") (exit $submit_rc)"

    # The fault loops end after their last fault is repaired (at most
    # 400 s more); the daemons are tended meanwhile.
    local deadline=$((SECONDS + 400)) p busy
    while :; do
        busy=0
        for p in "${LOOP_PIDS[@]}"; do alive "$p" && busy=1; done
        [ "$busy" = 1 ] || break
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "fault loops still running after 400 s: stopped"
            for p in "${LOOP_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
            echo "loops stopped" >>"$TDIR/fault_errors"
            break
        fi
        tend
        sleep 0.5
    done
    for p in "${LOOP_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    LOOP_PIDS=()

    # The cluster whole again: links up, every broker node of the
    # transport running and in the cluster, PostgreSQL with its standby.
    heal_all
    local prefix h whole=1
    prefix=$([ "$T" = rabbitmq ] && echo rmq || echo kafka)
    for h in 1 2 3; do fault_cmd start "$prefix$h" || true; done
    settle_broker "${prefix}1" || { whole=0; log "brokers not whole at the end"; }
    fault_cmd pg-rejoin || whole=0
    log "cluster whole: $([ "$whole" = 1 ] && echo yes || echo NO); PostgreSQL primary $("$CTL" pg-primary)"

    cnt_load "$DB" "$TDIR"
    cnt_wait_quiet "$T" "$DB" "$Q" "$QUIESCE" tend
    local quiet=$CNT_QUIET
    exec 2>&3 3>&-
    log "quiescence: $([ "$quiet" = 1 ] && echo reached || echo "NOT reached ($CNT_WHY)")"
    stop_daemons
    cnt_count "$T" "$DB" "$Q" "$TDIR"
    local repl
    repl="$(cnt_replication "$T" "$Q")"

    # Outcomes the workers recorded, by host (the timing of the faults).
    cnt_psql "$DB" -F' ' >"$TDIR/outcomes" <<SQL
SELECT (extract(epoch FROM a.finished_at) * 1000)::bigint, split_part(a.worker, '-', 1)
  FROM workq.attempts a JOIN workq.tasks t ON t.id = a.task_id
 WHERE t.queue = '$Q' AND a.finished_at IS NOT NULL AND a.outcome IS NOT NULL
   AND a.outcome <> 'lease_expired'
UNION ALL
SELECT (extract(epoch FROM finished_at) * 1000)::bigint, split_part(worker, '-', 1)
  FROM workq.tasks WHERE queue = '$Q' AND state = 'succeeded' AND finished_at IS NOT NULL
SQL
    python3 "$ROOT/tests/cluster/fault_times.py" "$TDIR/faults.tsv" "$TDIR/samples" \
        "$TDIR/outcomes" "$START_MS" "$END_MS" >"$TDIR/timings" ||
        echo "(fault_times.py failed)" >>"$TDIR/timings"

    # Each kind of fault injected MIN_EACH times at least.
    local kind n injected="" few=()
    for kind in broker-kill broker-cut pg-failover worker-cut worker-loss worker-kill; do
        n="$(awk -F'\t' -v k="$kind" '$3 == k && $6 == "inject"' "$TDIR/faults.tsv" | wc -l)"
        injected+="${injected:+, }$kind $n"
        [ "$n" -ge "$MIN_EACH" ] || few+=("$kind $n")
    done
    local stale
    stale="$(cat "$TDIR"/w[12].log | grep -c 'the lease was lost before the outcome' || true)"

    cnt_verdict 0 "$repl"
    local fail=("${CNT_FAIL[@]}")
    [ "$quiet" = 1 ] || fail+=("no quiescence within ${QUIESCE}s")
    [ "$submit_rc" = 0 ] || fail+=("submitter exit $submit_rc")
    [ "${#few[@]}" -eq 0 ] || fail+=("injected fewer than $MIN_EACH times: ${few[*]}")
    [ -s "$TDIR/fault_errors" ] && fail+=("fault commands failed: $(wc -l <"$TDIR/fault_errors")")
    [ "${COUNT[daemon_crashes]:-0}" = 0 ] || fail+=("daemons crashed: ${COUNT[daemon_crashes]}")
    [ "$whole" = 1 ] || fail+=("cluster not whole at the end")
    local verdict=PASS
    [ "${#fail[@]}" -eq 0 ] || { verdict="FAIL: ${fail[*]}"; FAILED=1; }
    RESULTS+=("$(cnt_row "$T" "$repl" "${CNT[attempts]:-?}" "$verdict")")
    TIMINGS+=("== $T: injected $injected (at least $MIN_EACH each)
   submitter: $(cat "$TDIR/submit.out")
   daemons ended on their own and started again: ${COUNT[daemon_exits]:-0}, crashed: ${COUNT[daemon_crashes]:-0};
   outcomes refused as stale (lease lost first): $stale; dead ${CNT[dead]:-?}, good types dead ${CNT[good_type_dead]:-?}, dead copies on the broker ${CNT[dead_copies]:-?}
$(cat "$TDIR/timings")")
    log "$T: $verdict"
}

for t in $TRANSPORTS; do
    run_transport "$t"
done

{
    echo "== cluster chaos: ${DURATION}s at $RATE tasks/s per transport; workers on w1, w2; 2 schedulers"
    echo "   faults: broker-kill, broker-cut (20 s), pg-failover | worker-cut (20 s), worker-loss (20 %, 25 s), worker-kill"
    cnt_header attempts
    printf '%s\n' "${RESULTS[@]}"
    echo "stuck: not succeeded or dead, or an attempt without outcome; effect2+: side effect repeated"
    echo "after a lost attempt (allowed); lost: attempts lost to an expired lease"
    echo
    printf '%s\n\n' "${TIMINGS[@]}"
    echo "P-first: injection to the first task accepted after it; P-stall: longest time without a newly"
    echo "accepted task until the next fault of its loop; P-back: injection to the end of that stall"
    echo "(producers served again); W-first: injection (worker hosts: their return) to the first outcome"
    echo "recorded (worker hosts: by that host's worker); W-stall, W-back: the same as P- for recorded"
    echo "outcomes of all workers (tests/cluster/fault_times.py)"
    echo "(logs in $DIR; total $((SECONDS - T0)) s)"
} | tee "$DIR/report.txt"
[ "$FAILED" = 0 ]

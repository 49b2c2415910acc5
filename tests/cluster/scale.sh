#!/usr/bin/env bash
# tests/cluster/scale.sh - scale-out figures on the cluster test bed
# (make cluster-scale, tests/cluster/ctl scale; issue 19).  The bed of
# tests/cluster/ctl must be up (make cluster-up).
#
#   bash tests/cluster/scale.sh [--transport rabbitmq|kafka|both]
#                               [--tasks N] [--hosts "1 2 4"]
#                               [--concurrency C] [--rate R] [--seconds S]
#                               [--kill "other first"] [--dir DIR]
#
# Per transport (RabbitMQ: quorum queues, a member on each of the three
# nodes; Kafka: replication factor 3, min.insync.replicas 2, acks=all),
# with one workq-scheduler on host app throughout:
#   throughput  for each count H of worker hosts (--hosts, default 1 2 4:
#               w1..wH, one workq-worker each, worker.concurrency C,
#               default 64), on a fresh database and queue: 100 warm-up
#               tasks, then N noop tasks (default 20000) submitted from
#               host app in batches (chaos-tool submit --type ok --count
#               N: the public C client's wq_client_submit_batch, every
#               100 ms what is due at 20000/s, receipts on as by
#               default).  tasks/s = N / (the last outcome's finished_at
#               - the first task's created_at), PostgreSQL's timestamps.
#               The counts (tests/cluster/count.sh) must show every task
#               succeeded exactly once, else the run fails.  Where the
#               CPU went meanwhile: tests/cluster/cpu_split.py.
#   latency     workers on w1 and w2; from host app R tasks/s (default
#               100) for S s (default 20), each submitted alone with the
#               blocking wq_client_submit as a request handler would, by
#               16 threads side by side, each with a client of its own
#               (chaos-tool paced); latency from when a task was due to
#               its confirmation (a stalled submit counts against those
#               waiting behind it); p50, p99, max.  Phases: all broker
#               nodes up; then for each of --kill (default "other
#               first"): "other" kills -9 the host of the second node
#               (rmq2, kafka2), "first" that of the first (rmq1, kafka1:
#               the node rabbitmq.url names and every client tries
#               first), S/4 s into the phase; the node is started again
#               after the phase and the run waits (at most 180 s) until
#               the brokers are whole.  The tasks of all phases are
#               counted as above.
# Prints one table (also DIR/report.txt); exit 0 only if every count
# holds.  About 2.5 minutes per transport with the defaults.  Holds
# /var/tmp/workq-tests.lock throughout (other test runs wait), unless
# WORKQ_TESTS_LOCKED=1 says that the caller holds it.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"

TRANSPORTS="rabbitmq kafka"
TASKS=20000
HOSTS="1 2 4"
CONC=64
RATE=100
SECS=20
KILLS="other first"
DIR=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        --transport) TRANSPORTS="$2"; [ "$2" = both ] && TRANSPORTS="rabbitmq kafka"; shift 2 ;;
        --tasks) TASKS="$2"; shift 2 ;;
        --hosts) HOSTS="$2"; shift 2 ;;
        --concurrency) CONC="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --seconds) SECS="$2"; shift 2 ;;
        --kill) KILLS="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        -h|--help) sed -n '2,45s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "cluster-scale: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
bad() { echo "cluster-scale: $*" >&2; exit 2; }
for t in $TRANSPORTS; do
    case "$t" in rabbitmq|kafka) ;; *) bad "--transport rabbitmq, kafka or both" ;; esac
done
for h in $HOSTS; do case "$h" in 1|2|3|4) ;; *) bad "--hosts: counts of 1..4" ;; esac; done
for k in $KILLS; do case "$k" in other|first|none) ;; *) bad "--kill: other, first or none" ;; esac; done
[[ "$TASKS" =~ ^[0-9]+$ ]] && [ "$TASKS" -ge 100 ] && [ "$TASKS" -le 200000 ] || bad "--tasks 100..200000"
[[ "$CONC" =~ ^[0-9]+$ ]] && [ "$CONC" -ge 1 ] && [ "$CONC" -le 1024 ] || bad "--concurrency 1..1024"
[[ "$RATE" =~ ^[0-9]+$ ]] && [ "$RATE" -ge 1 ] && [ "$RATE" -le 2000 ] || bad "--rate 1..2000"
[[ "$SECS" =~ ^[0-9]+$ ]] && [ "$SECS" -ge 8 ] && [ "$SECS" -le 300 ] || bad "--seconds 8..300"

# Every task is a noop: all must succeed; no side effect.
CNT_FAILING="''"
CNT_EFFECT_TYPES="''"
CL_NAME=cluster-scale
# shellcheck source=common.sh
. "$ROOT/tests/cluster/common.sh"
cl_need_build workq-worker workq-scheduler workq
DIR="${DIR:-$(mktemp -d /tmp/workq-cluster-scale.XXXXXX)}"
mkdir -p "$DIR"
chmod 755 "$DIR"
cl_lock 3600
cl_check_up "$DIR"

T0=$SECONDS
T=-
log() { printf '[cluster-scale %s +%4ds] %s\n' "$T" "$((SECONDS - T0))" "$*" | tee -a "$DIR/events.log" >&2; }

declare -A PID=()
CPU_PID=""
KILLED=""
cleanup() {
    [ -n "$CPU_PID" ] && kill -TERM "$CPU_PID" 2>/dev/null || true
    stop_daemons
    # a node this run killed is started again
    [ -z "$KILLED" ] || "$CTL" start "$KILLED" >>"$DIR/faults.log" 2>&1 8>&- || true
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start SLOT HOST BINARY [ARGS...]: a daemon of the run's RDIR and CONF.
start() {
    local slot="$1" host="$2" bin="$3"
    shift 3
    (cd "$RDIR" && exec "$CTL" exec "$host" "$BIN/$bin" --config "$CONF" "$@") \
        >>"$RDIR/$slot.log" 2>&1 8>&- &
    PID[$slot]=$!
}

# write_conf T DB Q: the run's configuration (every client knows all the
# nodes; the transport's defaults otherwise, producer receipts on).
write_conf() {
    cat >"$CONF" <<CONF
# cluster scale ($1): every client knows all the nodes.
transport = "$1";
log = { level = "info"; };
rabbitmq = { url = "amqp://guest:guest@10.77.0.11:5672/%2f";
             hosts = "10.77.0.12:5672,10.77.0.13:5672"; heartbeat = "5s"; };
kafka = { brokers = "$KAFKA_BROKERS"; partitions = 4; replication_factor = 3;
          min_insync_replicas = 2; session_timeout_ms = 6000; };
postgres = { conninfo = "$PGHOSTS dbname=$2"; };
worker = { queues = [ "$3" ]; concurrency = $CONC; lease = "30s"; drain_timeout = "5s"; };
scheduler = { poll_interval = "500ms"; publish_timeout = "5s"; };
handlers = ( { type = "ok"; builtin = "noop"; } );
CONF
    chmod 600 "$CONF"
}

# fresh_run T DB Q: a fresh database, migrated, and the run's directory.
fresh_run() {
    RDIR="$DIR/$1/$3"
    CONF="$RDIR/workq.conf"
    mkdir -p "$RDIR"
    : >"$RDIR/accepted"
    : >"$RDIR/effects"
    write_conf "$1" "$2" "$3"
    sqlp -c "DROP DATABASE IF EXISTS $2 WITH (FORCE)" -c "CREATE DATABASE $2"
    "$CTL" exec app "$BIN/workq" --config "$CONF" migrate >"$RDIR/migrate.log" 2>&1
}

# Kafka: every worker of the run has logged an assignment and none has
# changed for 3 s (at most 60 s); RabbitMQ consumers start at once.
wait_assigned() {
    local t="$1" n="$2" i last="" cur stable=0 deadline=$((SECONDS + 60)) all
    [ "$t" = kafka ] || return 0
    while [ "$SECONDS" -lt "$deadline" ]; do
        all=1
        for i in $(seq 1 "$n"); do
            grep -q 'assigned' "$RDIR/w$i.log" 2>/dev/null || all=0
        done
        cur="$(cat "$RDIR"/w*.log 2>/dev/null | grep -c -E 'assigned|revoked|lost' || true)"
        if [ "$all" = 1 ] && [ "$cur" = "$last" ]; then
            stable=$((stable + 1))
            [ "$stable" -ge 3 ] && return 0
        else
            stable=0
        fi
        last="$cur"
        sleep 1
    done
    log "workers not all assigned partitions after 60 s (going on)"
}

# succeeded_like DB Q PREFIX: tasks of the queue with that key prefix that
# have succeeded.
succeeded_like() {
    cnt_psql "$1" -c "SELECT count(*) FROM workq.tasks WHERE queue = '$2'
        AND state = 'succeeded' AND idempotency_key LIKE '$3-%'" 2>/dev/null || echo 0
}

# count_run T DB Q: the counts of count.sh; sets VERDICT and adds "fail"
# reasons.
count_run() {
    local t="$1" db="$2" q="$3" quiet
    cnt_load "$db" "$RDIR"
    cnt_wait_quiet "$t" "$db" "$q" 180
    quiet=$CNT_QUIET
    stop_daemons
    cnt_count "$t" "$db" "$q" "$RDIR"
    REPL="$(cnt_replication "$t" "$q")"
    cnt_verdict 1 "$REPL"
    local fail=("${CNT_FAIL[@]}")
    [ "$quiet" = 1 ] || fail+=("no quiescence ($CNT_WHY)")
    VERDICT=PASS
    [ "${#fail[@]}" -eq 0 ] || { VERDICT="FAIL: ${fail[*]}"; FAILED=1; }
}

FMT='%-9s %-24s %8s %9s %6s %7s %9s  %-44s %s\n'
ROWS=()
CPU_ROWS=()
FAILED=0

throughput_run() {
    local t="$1" h="$2" db q i n start_ms ms
    db="workq_scale_${t}_$h"
    q="scale_${t}_${h}h_$(date +%s)"
    fresh_run "$t" "$db" "$q"
    for i in $(seq 1 "$h"); do start "w$i" "w$i" workq-worker --id "w$i"; done
    start s1 app workq-scheduler
    wait_assigned "$t" "$h"
    # warm-up: the queue or topic made, every consumer taking tasks
    (cd "$RDIR" && exec "$CTL" exec app "$TOOL" submit --config "$CONF" --queue "$q" \
        --type ok --prefix w --rate 1000 --count 100 --duration 10 --drain 30 \
        --accepted "$RDIR/accepted") >"$RDIR/warmup.out" 2>"$RDIR/warmup.log" 8>&-
    for i in $(seq 1 60); do
        [ "$(succeeded_like "$db" "$q" w)" -ge 100 ] && break
        sleep 1
    done
    log "$h worker host(s), queue $q: warm-up $(succeeded_like "$db" "$q" w)/100 succeeded; $TASKS tasks"
    python3 "$ROOT/tests/cluster/cpu_split.py" 900 >"$RDIR/cpu" 8>&- &
    CPU_PID=$!
    (cd "$RDIR" && exec "$CTL" exec app "$TOOL" submit --config "$CONF" --queue "$q" \
        --type ok --prefix t --rate 20000 --count "$TASKS" --duration 300 --drain 60 \
        --accepted "$RDIR/accepted") >"$RDIR/submit.out" 2>"$RDIR/submit.log" 8>&-
    log "submitted: $(cat "$RDIR/submit.out")"
    # the last outcome: every task succeeded (at most 300 s)
    for i in $(seq 1 300); do
        n="$(succeeded_like "$db" "$q" t)"
        [ "$n" -ge "$TASKS" ] && break
        sleep 1
    done
    kill -TERM "$CPU_PID" 2>/dev/null || true
    wait "$CPU_PID" || true
    CPU_PID=""
    ms="$(cnt_psql "$db" -c "SELECT round(1000 * extract(epoch FROM max(finished_at) - min(created_at)))
        FROM workq.tasks WHERE queue = '$q' AND idempotency_key LIKE 't-%'")"
    local submit_s tput
    submit_s="$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$RDIR/submit.out")"
    tput="$(awk -v n="$n" -v ms="$ms" 'BEGIN { if (ms > 0) printf "%.0f", n * 1000 / ms; else print "?" }')"
    log "$n of $TASKS succeeded in $ms ms: $tput tasks/s (submitting took ${submit_s:-?} s); CPU: $(cat "$RDIR/cpu")"
    count_run "$t" "$db" "$q"
    ROWS+=("$(printf "$FMT" "$t" "workers on $h host(s)" "${CNT[accepted]:-?}" "${CNT[succeeded]:-?}" \
        "${CNT[double_success]:-?}" "$(awk -v ms="$ms" 'BEGIN { printf "%.1f", ms / 1000 }')" \
        "$tput" "submit ${submit_s:-?} s; $REPL" "$VERDICT")")
    CPU_ROWS+=("$(printf '%-9s %d host(s): %s' "$t" "$h" "$(cat "$RDIR/cpu")")")
    log "$t, $h host(s): $VERDICT"
}

# Waits (at most 180 s) until the brokers of T are whole.
settle() {
    local t="$1" q="$2" deadline=$((SECONDS + 180))
    until if [ "$t" = rabbitmq ]; then rmq_whole rmq2; else kafka_whole "$q"; fi; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 3
    done
}

latency_runs() {
    local t="$1" db q prefix phase node res k
    db="workq_scale_${t}_lat"
    q="scale_${t}_lat_$(date +%s)"
    prefix=$([ "$t" = rabbitmq ] && echo rmq || echo kafka)
    fresh_run "$t" "$db" "$q"
    start w1 w1 workq-worker --id w1
    start w2 w2 workq-worker --id w2
    start s1 app workq-scheduler
    wait_assigned "$t" 2
    local lat_rows=()
    for phase in up $KILLS; do
        [ "$phase" = none ] && continue
        node=""
        case "$phase" in
            other) node="${prefix}2" ;;
            first) node="${prefix}1" ;;
        esac
        log "latency, $phase: $RATE tasks/s for ${SECS}s, one per submit${node:+; kill -9 of $node at +$((SECS / 4))s}"
        (cd "$RDIR" && exec "$CTL" exec app "$TOOL" paced --config "$CONF" --queue "$q" \
            --prefix "$phase" --rate "$RATE" --duration "$SECS" --retry 60 \
            --accepted "$RDIR/accepted" --samples "$RDIR/samples.$phase") \
            >"$RDIR/paced.$phase.out" 2>"$RDIR/paced.$phase.log" 8>&- &
        local paced_pid=$!
        if [ -n "$node" ]; then
            sleep "$((SECS / 4))"
            "$CTL" kill "$node" >>"$DIR/faults.log" 2>&1 8>&-
            KILLED="$node"
        fi
        wait "$paced_pid" || log "paced submitter exit $?"
        res="$(cat "$RDIR/paced.$phase.out")"
        log "$phase: $res"
        if [ -n "$node" ]; then
            "$CTL" start "$node" >>"$DIR/faults.log" 2>&1 8>&- || log "ctl start $node failed"
            KILLED=""
            settle "$t" "$q" || { log "brokers not whole 180 s after $node's return"; FAILED=1; }
            log "$node back, brokers whole"
        fi
        lat_rows+=("$(echo "$res" | awk -v t="$t" -v p="$phase" -v node="${node:-none}" -v fmt="$FMT" '{
            for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            what = p == "up" ? "latency, all nodes up" : "latency, " node " killed"
            printf fmt, t, what, v["due"], v["accepted"], "", "", "",
                "p50/p99/max ms " v["p50_ms"] "/" v["p99_ms"] "/" v["max_ms"] " (calls " v["call_p50_ms"] "/" v["call_p99_ms"] "/" v["call_max_ms"] ")", "" }')")
    done
    count_run "$t" "$db" "$q"
    for k in "${lat_rows[@]}"; do ROWS+=("${k%$'\n'}$VERDICT"); done
    log "$t, latency phases: $VERDICT"
}

for T in $TRANSPORTS; do
    for h in $HOSTS; do throughput_run "$T" "$h"; done
    latency_runs "$T"
done

{
    echo "== cluster scale: $TASKS noop tasks per throughput run (batches from host app), worker.concurrency $CONC;"
    echo "   latency: $RATE tasks/s for ${SECS}s, one blocking submit each, from host app; kill -9 at +$((SECS / 4))s"
    # shellcheck disable=SC2059
    printf "$FMT" transport run tasks succeeded twice seconds tasks/s notes result
    printf '%s\n' "${ROWS[@]}"
    echo "tasks: accepted, with 100 warm-up tasks in each throughput run (not timed); seconds: the"
    echo "$TASKS timed tasks' first created to last outcome recorded (PostgreSQL's clock); latency:"
    echo "from when the task was due to its confirmation (calls: the submit call alone)"
    echo "CPU seconds over each throughput run (2 cores: at most 2 x wall):"
    printf '%s\n' "${CPU_ROWS[@]}"
    echo "(logs in $DIR; total $((SECONDS - T0)) s)"
} | tee "$DIR/report.txt"
[ "$FAILED" = 0 ]

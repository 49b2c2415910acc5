#!/usr/bin/env bash
# tests/fault/chaos.sh - the chaos suite: workq's promise, proven by
# counting while things break (make chaos).
#
#   bash tests/fault/chaos.sh [--transport rabbitmq|kafka] [--duration S]
#                             [--rate N] [--quiesce S] [--dir DIR]
#
# On the private servers of tests/services (started by the caller), with a
# fresh database, it runs two workers and two schedulers throughout and
# the steady-rate submitter (chaos-tool submit, the public C client) with
# a mix of handlers: noop (ok), fail twice then succeed (flaky), always
# fail (doomed), sleep 1.5 s (slow), an exec handler appending the key to
# a file (effect), one crashing with SIGSEGV on its first attempt (crash),
# one crashing every time (crash_always) and a long-lived Python program
# of kind process taking 50-250 ms a task, 8 at once (proc); one task in
# ten is delayed.  Meanwhile it injects:
#   - kill -9 of a worker every 3-5 s, and of a scheduler every 11 s; each
#     is started again at once, as systemd's Restart= would;
#   - kill -9 of one of the process handler's programs every 2-3 s, with
#     tasks in flight (the worker restarts it; the tasks it held fail as
#     attempts and are retried);
#   - a worker frozen with SIGSTOP for 8 s every 17 s (a stalled process:
#     its leases expire, its tasks run elsewhere, then it wakes up and
#     tries to record what it finished);
#   - in turn, every DURATION/5 s (20..60 s): a broker restart (graceful,
#     then kill -9 the next time), a PostgreSQL restart (fast, then kill
#     -9), the broker frozen with SIGSTOP for HANG s, PostgreSQL frozen
#     for HANG s (longer than the lease, the heartbeats and the Kafka
#     session timeout: a hung peer, not a closed one).
# Then it stops submitting, thaws and restarts what is down, waits for
# quiescence (every accepted task succeeded or dead, dead copies
# published, the broker queue drained) and counts, in PostgreSQL and on
# the broker:
#   - every accepted task (confirmed to the submitter) is succeeded or
#     dead; none missing, none stuck (running, or an attempt without an
#     outcome);
#   - no task has two success records; each succeeded task has exactly
#     one; always-failing types never succeed; each dead task has its
#     whole history and a published dead copy;
#   - the exec side effect holds each succeeded key once, except where a
#     crash fell between effect and record: a key written n > 1 times is
#     counted apart when its task lost at least n-1 attempts to an expired
#     lease or to a worker that died while it ran unclaimed (its history
#     says "may have run unclaimed"), and fails the run otherwise.
# The report (also DIR/report.txt) prints what was injected and the
# counts; the exit status is 0 only when every check holds.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"

TRANSPORT=rabbitmq
DURATION=120
RATE=50
QUIESCE=300
HANG=15
DIR=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        --transport) TRANSPORT="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --quiesce) QUIESCE="$2"; shift 2 ;;
        --hang) HANG="$2"; shift 2 ;;
        --dir) DIR="$2"; shift 2 ;;
        -h|--help) sed -n '2,40s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "chaos: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$TRANSPORT" in
    rabbitmq|kafka) ;;
    *) echo "chaos: --transport rabbitmq or kafka" >&2; exit 2 ;;
esac

BUILD="${WORKQ_BUILD:-build}"
BIN="$ROOT/$BUILD"
CTL="$ROOT/tests/services/ctl"
TOOL="$BIN/tests/fault/chaos-tool"
[ -x "$TOOL" ] && [ -x "$BIN/workq-worker" ] ||
    { echo "chaos: build first (make chaos builds $TOOL)" >&2; exit 2; }
DIR="${DIR:-$(mktemp -d "/tmp/workq-chaos-$TRANSPORT.XXXXXX")}"
mkdir -p "$DIR"
chmod 755 "$DIR"
DB="workq_chaos_$TRANSPORT"
QUEUE="chaos_${TRANSPORT}_$(date +%s)"
PG="host=127.0.0.1 port=55432 user=postgres"
KAFKA=127.0.0.1:59092
CONF="$DIR/workq.conf"

log() { printf '[chaos %s +%3ds] %s\n' "$TRANSPORT" "$((SECONDS - T0))" "$*" | tee -a "$DIR/events.log"; }
sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$PG dbname=$DB" "$@"; }
T0=$SECONDS

# Every server up before we start: a missing one fails loudly here.
"$CTL" status pg "$TRANSPORT" >/dev/null ||
    { echo "chaos: the private servers are not running (tests/services/ctl start all)" >&2; exit 1; }

cat >"$CONF" <<CONF
# chaos suite ($TRANSPORT): short leases and backoffs, so that faults
# show and the run settles quickly.
transport = "$TRANSPORT";
log = { level = "info"; };
rabbitmq = { url = "amqp://guest:guest@127.0.0.1:55672"; heartbeat = "5s"; };
kafka = { brokers = "$KAFKA"; partitions = 4; session_timeout_ms = 6000; };
postgres = { conninfo = "$PG dbname=$DB"; };
worker = { queues = [ "$QUEUE" ]; concurrency = 16; lease = "5s";
           drain_timeout = "5s"; };
scheduler = { poll_interval = "500ms"; publish_timeout = "5s"; };
handlers = (
    { type = "ok"; builtin = "noop"; },
    { type = "flaky"; builtin = "fail"; options = "until=3"; },
    { type = "doomed"; builtin = "fail"; options = "p=1"; },
    { type = "slow"; builtin = "sleep"; options = "ms=1500"; timeout = "20s"; },
    { type = "effect"; kind = "exec"; timeout = "20s";
      argv = [ "/bin/sh", "$ROOT/tests/fault/effect.sh", "effect" ];
      env = [ "CHAOS_EFFECTS=$DIR/effects" ]; },
    { type = "crash"; kind = "exec"; timeout = "20s";
      argv = [ "/bin/sh", "$ROOT/tests/fault/effect.sh", "once" ];
      env = [ "CHAOS_EFFECTS=$DIR/effects" ]; },
    { type = "crash_always"; kind = "exec"; timeout = "20s";
      argv = [ "/bin/sh", "$ROOT/tests/fault/effect.sh", "always" ];
      env = [ "CHAOS_EFFECTS=$DIR/effects" ]; },
    { type = "proc"; kind = "process"; processes = 2; max_in_flight = 8;
      timeout = "20s";
      argv = [ "/usr/bin/python3", "$ROOT/tests/fault/proc_handler.py" ]; }
);
queue_policies = (
    { name = "*"; max_attempts = 12; backoff_base = "200ms";
      backoff_cap = "1s"; backoff_jitter = "none"; }
);
CONF
: >"$DIR/effects"
: >"$DIR/accepted"

psql -X -q "$PG dbname=postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
    -c "CREATE DATABASE $DB" >/dev/null
"$BIN/workq" --config "$CONF" migrate >/dev/null

# --- the daemons ---------------------------------------------------------
declare -A PID=() KILLED=()
declare -A COUNT=([worker_kills]=0 [scheduler_kills]=0 [broker_restarts]=0
    [broker_kill9s]=0 [pg_restarts]=0 [pg_kill9s]=0 [broker_freezes]=0
    [pg_freezes]=0 [daemon_exits]=0 [daemon_crashes]=0 [restarts]=0 [fault_errors]=0 [worker_freezes]=0
    [proc_kills]=0)
SLOTS=(w1 w2 s1 s2)

start_daemon() {
    local slot="$1" bin
    case "$slot" in w*) bin=workq-worker ;; *) bin=workq-scheduler ;; esac
    # cwd DIR: whatever a handler leaves lands there
    (cd "$DIR" && exec "$BIN/$bin" --config "$CONF") >>"$DIR/$slot.log" 2>&1 3>&- &
    PID[$slot]=$!
}

# True while PID runs (a zombie, our child not yet waited for, is dead).
alive() {
    local st
    st="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# Restarts every daemon that has ended; one we did not kill is counted.
tend_daemons() {
    local slot pid rc
    for slot in "${SLOTS[@]}"; do
        pid="${PID[$slot]}"
        alive "$pid" && continue
        rc=0
        wait "$pid" 2>/dev/null || rc=$?
        if [ "${KILLED[$slot]:-}" != "$pid" ]; then
            if [ "$rc" -gt 128 ]; then
                COUNT[daemon_crashes]=$((COUNT[daemon_crashes] + 1))
                log "$slot (pid $pid) CRASHED: signal $((rc - 128)) (see $DIR/$slot.log)"
            else
                COUNT[daemon_exits]=$((COUNT[daemon_exits] + 1))
                log "$slot (pid $pid) exited on its own, status $rc"
            fi
        fi
        start_daemon "$slot"
        COUNT[restarts]=$((COUNT[restarts] + 1))
    done
}

# kill -9 of one process handler program of a worker (its children
# running proc_handler.py), if it has one running now.
kill9_handler() {
    local pid="${PID[$1]}" c
    for c in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        if tr '\0' ' ' <"/proc/$c/cmdline" 2>/dev/null | grep -q proc_handler.py; then
            kill -KILL "$c" 2>/dev/null && COUNT[proc_kills]=$((COUNT[proc_kills] + 1))
            return 0
        fi
    done
}

kill9_daemon() {
    local slot="$1" pid="${PID[$1]}"
    alive "$pid" || return 0
    KILLED[$slot]="$pid"
    kill -KILL "$pid" 2>/dev/null || true
}

FAULT_PID=""
cleanup() {
    local slot
    [ -n "$FAULT_PID" ] && { kill "$FAULT_PID" 2>/dev/null || true; }
    [ -n "${SUBMIT_PID:-}" ] && { kill "$SUBMIT_PID" 2>/dev/null || true; }
    "$CTL" resume pg "$TRANSPORT" >/dev/null 2>&1 || true
    for slot in "${SLOTS[@]}"; do
        [ -n "${PID[$slot]:-}" ] || continue
        kill -CONT "${PID[$slot]}" 2>/dev/null || true
        kill -TERM "${PID[$slot]}" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A server fault runs in the background (a restart takes seconds); the
# main loop goes on killing and restarting daemons meanwhile.
server_fault() {
    local n="$1" what
    case $((n % 4)) in
        0) if [ $(((n / 4) % 2)) -eq 0 ]; then
               what="broker restart"; COUNT[broker_restarts]=$((COUNT[broker_restarts] + 1))
               set -- restart "$TRANSPORT"
           else
               what="broker kill -9 and start"; COUNT[broker_kill9s]=$((COUNT[broker_kill9s] + 1))
               set -- kill9 "$TRANSPORT"
           fi ;;
        1) if [ $(((n / 4) % 2)) -eq 0 ]; then
               what="PostgreSQL restart"; COUNT[pg_restarts]=$((COUNT[pg_restarts] + 1))
               set -- restart pg
           else
               what="PostgreSQL kill -9 and start"; COUNT[pg_kill9s]=$((COUNT[pg_kill9s] + 1))
               set -- kill9 pg
           fi ;;
        2) what="broker frozen (SIGSTOP) ${HANG}s"; COUNT[broker_freezes]=$((COUNT[broker_freezes] + 1))
           set -- pause "$TRANSPORT" ;;
        3) what="PostgreSQL frozen (SIGSTOP) ${HANG}s"; COUNT[pg_freezes]=$((COUNT[pg_freezes] + 1))
           set -- pause pg ;;
    esac
    log "inject: $what"
    (
        case "$1" in
            restart) "$CTL" restart "$2" ;;
            kill9) "$CTL" kill9 "$2"; "$CTL" start "$2" ;;
            pause) "$CTL" pause "$2"; sleep "$HANG"; "$CTL" resume "$2" ;;
        esac
    ) >>"$DIR/faults.log" 2>&1 3>&- &
    FAULT_PID=$!
}

# Collects the last server fault; one whose commands failed is counted
# (an injection that did not happen proves nothing).
fault_done() {
    if ! wait "$FAULT_PID"; then
        COUNT[fault_errors]=$((COUNT[fault_errors] + 1))
        log "a server fault's command failed (see $DIR/faults.log)"
    fi
}

for slot in "${SLOTS[@]}"; do start_daemon "$slot"; done
log "queue $QUEUE, database $DB, logs in $DIR"
log "submitting $RATE tasks/s for ${DURATION}s; 2 workers, 2 schedulers"
"$TOOL" submit --config "$CONF" --queue "$QUEUE" --rate "$RATE" \
    --duration "$DURATION" --accepted "$DIR/accepted" --drain 90 \
    >"$DIR/submit.out" 2>"$DIR/submit.log" &
SUBMIT_PID=$!

PERIOD=$((DURATION / 5))
[ "$PERIOD" -lt 20 ] && PERIOD=20
[ "$PERIOD" -gt 60 ] && PERIOD=60
START=$SECONDS
next_wkill=$((START + 3)); next_skill=$((START + 11)); next_fault=$((START + PERIOD))
nfault=0; wturn=1; sturn=1; fturn=2
next_wfreeze=$((START + 7)); frozen_slot=""; frozen_pid=""; thaw_at=0
next_pkill=$((START + 2)); pturn=1
# longer than the lease (5 s) and shorter than RabbitMQ's heartbeat
# timeout (2 x 5 s): it wakes up with its connections and its finished
# work, and its leases gone
WFREEZE=8
# bash reports each killed child ("Killed") on stderr: those go to jobs.log
exec 3>&2 2>>"$DIR/jobs.log"
while alive "$SUBMIT_PID"; do
    now=$SECONDS
    if [ $((now - START)) -lt "$DURATION" ]; then
        if [ "$now" -ge "$next_wkill" ]; then
            # never the frozen one: it is to wake up
            [ "w$wturn" = "$frozen_slot" ] && wturn=$((3 - wturn))
            kill9_daemon "w$wturn"
            COUNT[worker_kills]=$((COUNT[worker_kills] + 1))
            wturn=$((3 - wturn))
            next_wkill=$((now + 3 + RANDOM % 3))
        fi
        if [ "$now" -ge "$next_pkill" ]; then
            [ "w$pturn" = "$frozen_slot" ] || kill9_handler "w$pturn"
            pturn=$((3 - pturn))
            next_pkill=$((now + 2 + RANDOM % 2))
        fi
        if [ "$now" -ge "$next_wfreeze" ] && [ -z "$frozen_slot" ]; then
            frozen_slot="w$fturn"; frozen_pid="${PID[$frozen_slot]}"
            kill -STOP "$frozen_pid" 2>/dev/null || true
            COUNT[worker_freezes]=$((COUNT[worker_freezes] + 1))
            fturn=$((3 - fturn))
            thaw_at=$((now + WFREEZE))
            next_wfreeze=$((now + 17))
        fi
        if [ "$now" -ge "$next_skill" ]; then
            kill9_daemon "s$sturn"
            COUNT[scheduler_kills]=$((COUNT[scheduler_kills] + 1))
            sturn=$((3 - sturn))
            next_skill=$((now + 11))
        fi
        if [ "$now" -ge "$next_fault" ] && { [ -z "$FAULT_PID" ] || ! alive "$FAULT_PID"; }; then
            [ -n "$FAULT_PID" ] && fault_done
            server_fault "$nfault"
            nfault=$((nfault + 1))
            next_fault=$((now + PERIOD))
        fi
    fi
    if [ -n "$frozen_slot" ] && { [ "$now" -ge "$thaw_at" ] ||
            [ $((now - START)) -ge "$DURATION" ]; }; then
        kill -CONT "$frozen_pid" 2>/dev/null || true
        frozen_slot=""
    fi
    sleep 0.2
    tend_daemons
done
SUBMIT_RC=0
wait "$SUBMIT_PID" || SUBMIT_RC=$?
SUBMIT_PID=""
log "submitter done: $(cat "$DIR/submit.out") (exit $SUBMIT_RC)"
if [ -n "$FAULT_PID" ]; then
    fault_done
    FAULT_PID=""
fi
"$CTL" resume pg "$TRANSPORT" >/dev/null 2>&1 || true
"$CTL" start pg "$TRANSPORT" >>"$DIR/faults.log" 2>&1

# --- quiescence ----------------------------------------------------------
sql -c "CREATE TABLE chaos_accepted (key text PRIMARY KEY, type text NOT NULL)" \
    -c "CREATE TABLE chaos_effects (key text NOT NULL)" \
    -c "\\copy chaos_accepted FROM '$DIR/accepted'"

broker_backlog() {
    if [ "$TRANSPORT" = rabbitmq ]; then
        "$CTL" rabbitmqctl list_queues -q --no-table-headers name messages 2>/dev/null |
            awk -v q="workq.$QUEUE" '$1 == q { n = $2 } END { print n == "" ? -1 : n }'
    else
        "$TOOL" kafka-lag --brokers "$KAFKA" --queue "$QUEUE" 2>/dev/null || echo -1
    fi
}

log "waiting for quiescence (at most ${QUIESCE}s)"
deadline=$((SECONDS + QUIESCE)); quiet=0; backlog=-1
while [ "$SECONDS" -lt "$deadline" ]; do
    tend_daemons
    open="$(sql -c "SELECT count(*) FROM chaos_accepted a LEFT JOIN workq.tasks t
        ON t.queue = '$QUEUE' AND t.idempotency_key = a.key
        WHERE t.state IS NULL OR t.state NOT IN ('succeeded', 'dead')")"
    unpub="$(sql -c "SELECT count(*) FROM workq.tasks WHERE queue = '$QUEUE'
        AND state = 'dead' AND dead_published_at IS NULL")"
    if [ "$open" = 0 ] && [ "$unpub" = 0 ]; then
        backlog="$(broker_backlog)"
        if [ "$backlog" = 0 ]; then
            quiet=1
            break
        fi
    fi
    sleep 2
done
exec 2>&3 3>&-
log "quiescence: $([ "$quiet" = 1 ] && echo reached || echo "NOT reached: $open open, $unpub dead unpublished, broker backlog $backlog")"

# Dead copies on the broker: every dead task once at least (twice after
# a scheduler crash between publish and bookkeeping).
if [ "$TRANSPORT" = rabbitmq ]; then
    dead_copies="$("$CTL" rabbitmqctl list_queues -q --no-table-headers name messages 2>/dev/null |
        awk -v q="workq.$QUEUE.dead" '$1 == q { n = $2 } END { print n == "" ? 0 : n }')"
else
    dead_copies="$("$TOOL" kafka-lag --brokers "$KAFKA" --queue "$QUEUE.dead" 2>/dev/null || echo -1)"
fi

# --- counting ------------------------------------------------------------
sql -c "\\copy chaos_effects FROM '$DIR/effects'"
sql >"$DIR/counts" <<SQL
WITH t AS (SELECT * FROM workq.tasks WHERE queue = '$QUEUE'),
a AS (SELECT a.* FROM workq.attempt_history a JOIN t ON t.id = a.task_id),
per AS (
    SELECT t.id, t.idempotency_key AS key, t.type, t.state, t.attempt,
           t.max_attempts,
           count(a.*) AS attempts,
           count(a.*) FILTER (WHERE a.outcome = 'succeeded') AS successes,
           -- attempts lost with a worker: leases that expired, and runs
           -- a worker may have had unclaimed when it died (RabbitMQ; the
           -- note of docs/task-states.md, "Unclaimed runs")
           count(a.*) FILTER (WHERE a.outcome = 'lease_expired'
               OR a.error LIKE '%may have run unclaimed%') AS lost,
           count(a.*) FILTER (WHERE a.outcome IS NULL) AS unfinished
    FROM t LEFT JOIN a ON a.task_id = t.id
    GROUP BY t.id, t.idempotency_key, t.type, t.state, t.attempt, t.max_attempts),
eff AS (SELECT key, count(*) AS n FROM chaos_effects GROUP BY key),
acc AS (SELECT c.key, c.type AS want, p.*, coalesce(e.n, 0) AS effects
        FROM chaos_accepted c LEFT JOIN per p ON p.key = c.key
        LEFT JOIN eff e ON e.key = c.key)
SELECT 'accepted', count(*) FROM acc
UNION ALL SELECT 'succeeded', count(*) FROM acc WHERE state = 'succeeded'
UNION ALL SELECT 'dead', count(*) FROM acc WHERE state = 'dead'
UNION ALL SELECT 'missing', count(*) FROM acc WHERE id IS NULL
UNION ALL SELECT 'not_final', count(*) FROM acc
    WHERE state NOT IN ('succeeded', 'dead')
UNION ALL SELECT 'type_mismatch', count(*) FROM acc WHERE type <> want
UNION ALL SELECT 'tasks_not_accepted', count(*) FROM per
    WHERE key NOT IN (SELECT key FROM chaos_accepted)
UNION ALL SELECT 'running', count(*) FROM per WHERE state = 'running'
UNION ALL SELECT 'attempts', coalesce(sum(attempts), 0) FROM per
UNION ALL SELECT 'attempts_unfinished', coalesce(sum(unfinished), 0) FROM per
UNION ALL SELECT 'attempts_lost', coalesce(sum(lost), 0) FROM per
UNION ALL SELECT 'double_success', count(*) FROM per WHERE successes > 1
UNION ALL SELECT 'succeeded_without_record', count(*) FROM per
    WHERE state = 'succeeded' AND successes <> 1
UNION ALL SELECT 'failing_type_succeeded', count(*) FROM acc
    WHERE want IN ('doomed', 'crash_always') AND state = 'succeeded'
UNION ALL SELECT 'good_type_dead', count(*) FROM acc
    WHERE want NOT IN ('doomed', 'crash_always') AND state = 'dead'
UNION ALL SELECT 'dead_history_broken', count(*) FROM per
    WHERE state = 'dead' AND (attempts <> attempt OR unfinished > 0)
UNION ALL SELECT 'dead_unpublished', count(*) FROM t
    WHERE state = 'dead' AND dead_published_at IS NULL
UNION ALL SELECT 'effect_missing', count(*) FROM acc
    WHERE want IN ('effect', 'crash') AND state = 'succeeded' AND effects = 0
UNION ALL SELECT 'effect_once', count(*) FROM acc
    WHERE want IN ('effect', 'crash') AND effects = 1
UNION ALL SELECT 'effect_repeated_after_lost_attempt', count(*) FROM acc
    WHERE effects > 1 AND effects - 1 <= lost
UNION ALL SELECT 'effect_repeated_unexplained', count(*) FROM acc
    WHERE effects > 1 AND effects - 1 > lost
UNION ALL SELECT 'effect_of_failing_type', count(*) FROM acc
    WHERE want = 'crash_always' AND effects > 0
UNION ALL SELECT 'effect_lines_unaccepted', count(*) FROM chaos_effects
    WHERE key NOT IN (SELECT key FROM chaos_accepted)
SQL
# Outcomes a worker finished after its lease was gone (it was frozen or
# cut off): the record guard refuses them, and the worker says so.
stale="$(cat "$DIR"/w[12].log | grep -c 'the lease was lost before the outcome' || true)"
declare -A N=()
while IFS='|' read -r k v; do N[$k]="$v"; done <"$DIR/counts"

FAIL=()
must0() { [ "${N[$1]}" = 0 ] || FAIL+=("$1=${N[$1]}"); }
for k in missing not_final type_mismatch running attempts_unfinished double_success \
        succeeded_without_record failing_type_succeeded dead_history_broken \
        dead_unpublished effect_missing effect_repeated_unexplained \
        effect_of_failing_type; do
    must0 "$k"
done
[ "${N[accepted]}" -gt 0 ] || FAIL+=("nothing was accepted")
[ "$quiet" = 1 ] || FAIL+=("no quiescence within ${QUIESCE}s")
[ "${COUNT[daemon_crashes]}" = 0 ] || FAIL+=("daemons crashed on their own: ${COUNT[daemon_crashes]}")
[ "$dead_copies" -ge "${N[dead]}" ] || FAIL+=("dead copies on the broker $dead_copies < dead tasks ${N[dead]}")
[ "${COUNT[fault_errors]}" = 0 ] || FAIL+=("fault injections failed: ${COUNT[fault_errors]}")
[ "$SUBMIT_RC" = 0 ] || FAIL+=("the submitter failed ($SUBMIT_RC)")

{
    echo "== chaos report: $TRANSPORT, ${DURATION}s at $RATE tasks/s, queue $QUEUE"
    echo "submitter:   $(cat "$DIR/submit.out")"
    echo "injected:    worker kill -9 ${COUNT[worker_kills]}, worker frozen ${COUNT[worker_freezes]} x ${WFREEZE}s," \
        "scheduler kill -9 ${COUNT[scheduler_kills]}, process handler kill -9 ${COUNT[proc_kills]},"
    echo "             broker restart ${COUNT[broker_restarts]}, broker kill -9 ${COUNT[broker_kill9s]}," \
        "broker frozen ${COUNT[broker_freezes]} x ${HANG}s,"
    echo "             PostgreSQL restart ${COUNT[pg_restarts]}, PostgreSQL kill -9 ${COUNT[pg_kill9s]}," \
        "PostgreSQL frozen ${COUNT[pg_freezes]} x ${HANG}s"
    echo "daemons:     restarted ${COUNT[restarts]}, exited on their own ${COUNT[daemon_exits]}," \
        "crashed ${COUNT[daemon_crashes]}"
    echo "tasks:       accepted ${N[accepted]}: succeeded ${N[succeeded]}, dead ${N[dead]}," \
        "missing ${N[missing]}, not final ${N[not_final]}, running ${N[running]}"
    echo "             (good types dead after spending attempts: ${N[good_type_dead]};" \
        "rows never confirmed to the submitter: ${N[tasks_not_accepted]})"
    echo "attempts:    ${N[attempts]}, lost to an expired lease ${N[attempts_lost]}," \
        "without outcome ${N[attempts_unfinished]}; outcomes refused as stale $stale"
    echo "exactly once: tasks with two successes ${N[double_success]}, succeeded without" \
        "one success record ${N[succeeded_without_record]}, failing types succeeded ${N[failing_type_succeeded]}"
    echo "dead:        history broken ${N[dead_history_broken]}, copy unpublished" \
        "${N[dead_unpublished]}, copies on the broker $dead_copies"
    echo "side effect: once ${N[effect_once]}, missing ${N[effect_missing]}," \
        "repeated after a lost attempt (crash between effect and record) ${N[effect_repeated_after_lost_attempt]}," \
        "repeated unexplained ${N[effect_repeated_unexplained]}"
    echo "             (lines of never-confirmed keys ${N[effect_lines_unaccepted]})"
    echo "broker:      backlog at the end $backlog"
    if [ "${#FAIL[@]}" -eq 0 ]; then
        echo "chaos $TRANSPORT: PASS"
    else
        echo "chaos $TRANSPORT: FAIL: ${FAIL[*]}"
    fi
} | tee "$DIR/report.txt"
[ "${#FAIL[@]}" -eq 0 ]

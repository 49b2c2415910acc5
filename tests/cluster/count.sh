# tests/cluster/count.sh - counting for the cluster runs, sourced by
# tests/cluster/smoke.sh and tests/cluster/chaos.sh (not run by itself).
# The same checks as the single-node chaos suite (tests/fault/chaos.sh),
# on the cluster's multi-host PostgreSQL and its brokers:
#   - every accepted task (confirmed to the submitter, a line "key<TAB>type"
#     in DIR/accepted) is succeeded or dead; none missing, none stuck
#     (running, or an attempt without an outcome);
#   - no task has two success records, each succeeded task has exactly
#     one; the always-failing types never succeed; each dead task has its
#     whole history and a published dead copy (on the broker too);
#   - the exec side effect (DIR/effects, tests/fault/effect.sh) holds each
#     succeeded key once, except where an attempt was lost between effect
#     and record: a key written n > 1 times whose task lost at least n-1
#     attempts to an expired lease is counted apart; otherwise it fails.
# The caller sets CTL (tests/cluster/ctl), TOOL (chaos-tool), PGHOSTS (the
# multi-host conninfo without dbname) and KAFKA_BROKERS, optionally
# CNT_FAILING and CNT_EFFECT_TYPES (SQL lists of the mix's always-failing
# and side-effect types; chaos.sh's by default), and calls:
#   cnt_load DB DIR                  tables cl_accepted, cl_effects; accepted
#   cnt_wait_quiet T DB Q SECONDS [FN]  until every accepted task is final,
#                                    dead copies published, broker backlog 0
#                                    (FN is called every round, e.g. to
#                                    restart daemons); sets CNT_QUIET (1/0)
#                                    and CNT_WHY
#   cnt_count T DB Q DIR             the counts into the array CNT and
#                                    DIR/counts; also CNT[dead_copies]
#   cnt_replication T Q              prints "quorum, members 3" or
#                                    "replicas 3, min.insync 2"
#   cnt_verdict STRICT REPL          fills CNT_FAIL with what does not hold;
#                                    STRICT=1: every accepted task must have
#                                    succeeded (no failing types in the mix)
#   cnt_header EXTRA / cnt_row T REPL EXTRA VERDICT   one table line each

cnt_psql() {
    local db="$1"; shift
    PGCONNECT_TIMEOUT=5 psql -X -q -At -v ON_ERROR_STOP=1 "$PGHOSTS dbname=$db" "$@"
}

cnt_load() {
    local db="$1" dir="$2"
    cnt_psql "$db" \
        -c "CREATE TABLE cl_accepted (key text PRIMARY KEY, type text NOT NULL)" \
        -c "CREATE TABLE cl_effects (key text NOT NULL)" \
        -c "\\copy cl_accepted FROM '$dir/accepted'"
}

# Messages still on the broker for queue Q (RabbitMQ depth on a node that
# answers, Kafka consumer-group lag), -1 when it cannot be read.
cnt_backlog() {
    local t="$1" q="$2" h n
    if [ "$t" = rabbitmq ]; then
        for h in rmq1 rmq2 rmq3; do
            n="$(timeout 30 "$CTL" rabbitmqctl "$h" list_queues -q --no-table-headers name messages 2>/dev/null |
                awk -v q="$q" '$1 == q { n = $2 } END { print n == "" ? -1 : n }')" || n=-1
            [ "$n" != -1 ] && { echo "$n"; return 0; }
        done
        echo -1
    else
        timeout 30 "$TOOL" kafka-lag --brokers "$KAFKA_BROKERS" --queue "${q#workq.}" 2>/dev/null || echo -1
    fi
}

cnt_wait_quiet() {
    local t="$1" db="$2" q="$3" secs="$4" fn="${5:-}" open unpub backlog=-1
    local deadline=$((SECONDS + secs))
    CNT_QUIET=0
    CNT_WHY="not looked at"
    while [ "$SECONDS" -lt "$deadline" ]; do
        [ -z "$fn" ] || "$fn"
        open="$(cnt_psql "$db" -c "SELECT count(*) FROM cl_accepted a
            LEFT JOIN workq.tasks t ON t.queue = '$q' AND t.idempotency_key = a.key
            WHERE t.state IS NULL OR t.state NOT IN ('succeeded', 'dead')" 2>/dev/null || echo '?')"
        unpub="$(cnt_psql "$db" -c "SELECT count(*) FROM workq.tasks WHERE queue = '$q'
            AND state = 'dead' AND dead_published_at IS NULL" 2>/dev/null || echo '?')"
        CNT_WHY="$open not final, $unpub dead unpublished, broker backlog $backlog"
        if [ "$open" = 0 ] && [ "$unpub" = 0 ]; then
            backlog="$(cnt_backlog "$t" "workq.$q")"
            CNT_WHY="$open not final, $unpub dead unpublished, broker backlog $backlog"
            [ "$backlog" = 0 ] && { CNT_QUIET=1; return 0; }
        fi
        sleep 2
    done
    return 0
}

# The mix's types that always fail, and those that write the side effect
# (SQL lists; smoke.sh runs every type but "effect" as a noop).
CNT_FAILING="${CNT_FAILING:-'doomed', 'crash_always'}"
CNT_EFFECT_TYPES="${CNT_EFFECT_TYPES:-'effect', 'crash'}"

cnt_count() {
    local t="$1" db="$2" q="$3" dir="$4" k v
    cnt_psql "$db" -c "\\copy cl_effects FROM '$dir/effects'"
    cnt_psql "$db" -F'|' >"$dir/counts" <<SQL
WITH t AS (SELECT * FROM workq.tasks WHERE queue = '$q'),
a AS (SELECT a.* FROM workq.attempt_history a JOIN t ON t.id = a.task_id),
per AS (
    SELECT t.id, t.idempotency_key AS key, t.type, t.state, t.attempt,
           count(a.*) AS attempts,
           count(a.*) FILTER (WHERE a.outcome = 'succeeded') AS successes,
           count(a.*) FILTER (WHERE a.outcome = 'lease_expired') AS lost,
           count(a.*) FILTER (WHERE a.outcome IS NULL) AS unfinished
    FROM t LEFT JOIN a ON a.task_id = t.id
    GROUP BY t.id, t.idempotency_key, t.type, t.state, t.attempt),
eff AS (SELECT key, count(*) AS n FROM cl_effects GROUP BY key),
acc AS (SELECT c.key, c.type AS want, p.*, coalesce(e.n, 0) AS effects
        FROM cl_accepted c LEFT JOIN per p ON p.key = c.key
        LEFT JOIN eff e ON e.key = c.key)
SELECT 'accepted', count(*) FROM acc
UNION ALL SELECT 'succeeded', count(*) FROM acc WHERE state = 'succeeded'
UNION ALL SELECT 'dead', count(*) FROM acc WHERE state = 'dead'
UNION ALL SELECT 'missing', count(*) FROM acc WHERE id IS NULL
UNION ALL SELECT 'not_final', count(*) FROM acc
    WHERE state NOT IN ('succeeded', 'dead')
UNION ALL SELECT 'type_mismatch', count(*) FROM acc WHERE type <> want
UNION ALL SELECT 'tasks_not_accepted', count(*) FROM per
    WHERE key NOT IN (SELECT key FROM cl_accepted)
UNION ALL SELECT 'running', count(*) FROM per WHERE state = 'running'
UNION ALL SELECT 'attempts', coalesce(sum(attempts), 0) FROM per
UNION ALL SELECT 'attempts_unfinished', coalesce(sum(unfinished), 0) FROM per
UNION ALL SELECT 'attempts_lost', coalesce(sum(lost), 0) FROM per
UNION ALL SELECT 'double_success', count(*) FROM per WHERE successes > 1
UNION ALL SELECT 'succeeded_without_record', count(*) FROM per
    WHERE state = 'succeeded' AND successes <> 1
UNION ALL SELECT 'failing_type_succeeded', count(*) FROM acc
    WHERE want IN ($CNT_FAILING) AND state = 'succeeded'
UNION ALL SELECT 'good_type_dead', count(*) FROM acc
    WHERE want NOT IN ($CNT_FAILING) AND state = 'dead'
UNION ALL SELECT 'dead_history_broken', count(*) FROM per
    WHERE state = 'dead' AND (attempts <> attempt OR unfinished > 0)
UNION ALL SELECT 'dead_unpublished', count(*) FROM t
    WHERE state = 'dead' AND dead_published_at IS NULL
UNION ALL SELECT 'effect_missing', count(*) FROM acc
    WHERE want IN ($CNT_EFFECT_TYPES) AND state = 'succeeded' AND effects = 0
UNION ALL SELECT 'effect_once', count(*) FROM acc
    WHERE want IN ($CNT_EFFECT_TYPES) AND effects = 1
UNION ALL SELECT 'effect_repeated_after_lost_attempt', count(*) FROM acc
    WHERE effects > 1 AND effects - 1 <= lost
UNION ALL SELECT 'effect_repeated_unexplained', count(*) FROM acc
    WHERE effects > 1 AND effects - 1 > lost
UNION ALL SELECT 'effect_of_failing_type', count(*) FROM acc
    WHERE want IN ($CNT_FAILING) AND effects > 0
UNION ALL SELECT 'effect_lines_unaccepted', count(*) FROM cl_effects
    WHERE key NOT IN (SELECT key FROM cl_accepted)
SQL
    unset CNT
    declare -gA CNT=()
    while IFS='|' read -r k v; do CNT[$k]="$v"; done <"$dir/counts"
    # Dead copies on the broker: each dead task's once at least.
    if [ "$t" = rabbitmq ]; then
        CNT[dead_copies]="$(cnt_backlog rabbitmq "workq.$q.dead")"
    else
        CNT[dead_copies]="$(timeout 30 "$TOOL" kafka-lag --brokers "$KAFKA_BROKERS" \
            --queue "$q.dead" 2>/dev/null || echo -1)"
    fi
    [ "${CNT[dead]:-0}" != 0 ] || CNT[dead_copies]=0
}

cnt_replication() {
    local t="$1" q="$2" repl h
    if [ "$t" = rabbitmq ]; then
        for h in rmq2 rmq1 rmq3; do
            repl="$(timeout 30 "$CTL" rabbitmqctl "$h" list_queues -q --no-table-headers name type members 2>/dev/null |
                awk -v n="workq.$q" '$1 == n { print $2 ", members " gsub(/rabbit@/, "") }')" || repl=""
            [ -n "$repl" ] && break
        done
        echo "${repl:-?}"
    else
        repl="$(kcat -b "$KAFKA_BROKERS" -L -t "workq.$q" 2>/dev/null |
            awk '/replicas:/ { sub(/.*replicas: /, ""); sub(/, isrs.*/, ""); n = split($0, r, ","); if (min == "" || n < min) min = n } END { print "replicas " (min == "" ? "?" : min) }')"
        echo "$repl, min.insync $(timeout 30 "$TOOL" kafka-config --brokers "$KAFKA_BROKERS" \
            --topic "workq.$q" --name min.insync.replicas 2>/dev/null || echo '?')"
    fi
}

# cnt_verdict STRICT REPL: CNT_FAIL lists every check that does not hold.
cnt_verdict() {
    local strict="$1" repl="$2" k
    CNT_FAIL=()
    for k in missing not_final type_mismatch running attempts_unfinished double_success \
            succeeded_without_record failing_type_succeeded dead_history_broken \
            dead_unpublished effect_missing effect_repeated_unexplained \
            effect_of_failing_type; do
        [ "${CNT[$k]:-x}" = 0 ] || CNT_FAIL+=("$k=${CNT[$k]:-?}")
    done
    [ "${CNT[accepted]:-0}" -gt 0 ] || CNT_FAIL+=("nothing accepted")
    if [ "$strict" = 1 ]; then
        [ "${CNT[succeeded]:-0}" = "${CNT[accepted]:-x}" ] ||
            CNT_FAIL+=("succeeded ${CNT[succeeded]:-?} of ${CNT[accepted]:-?}")
    fi
    [ "${CNT[dead_copies]:--1}" -ge "${CNT[dead]:-0}" ] ||
        CNT_FAIL+=("dead copies on the broker ${CNT[dead_copies]:-?} < dead tasks ${CNT[dead]:-?}")
    case "$repl" in
        quorum,\ members\ 3|replicas\ 3,\ min.insync\ 2) ;;
        *) CNT_FAIL+=("replication: $repl") ;;
    esac
}

CNT_FMT='%-9s %8s %9s %5s %7s %5s %6s %7s %8s %6s %-26s %-14s %s\n'
cnt_header() {
    # shellcheck disable=SC2059
    printf "$CNT_FMT" transport accepted succeeded dead missing stuck double effect1 \
        effect2+ lost replication "$1" result
}

# effect2+: keys whose effect ran again after a lost attempt (allowed);
# lost: attempts lost to an expired lease; stuck: not final or running.
cnt_row() {
    # shellcheck disable=SC2059
    printf "$CNT_FMT" "$1" "${CNT[accepted]:-?}" "${CNT[succeeded]:-?}" "${CNT[dead]:-?}" \
        "${CNT[missing]:-?}" "$(( ${CNT[not_final]:-0} + ${CNT[attempts_unfinished]:-0} ))" \
        "${CNT[double_success]:-?}" "${CNT[effect_once]:-?}" \
        "${CNT[effect_repeated_after_lost_attempt]:-?}" "${CNT[attempts_lost]:-?}" \
        "$2" "$3" "$4"
}

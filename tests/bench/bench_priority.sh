#!/bin/sh
# bench_priority.sh [KIND...] - latency of high- against low-priority
# tasks under a backlog (README "Priorities"), on the private servers of
# tests/services (which must be running: tests/services/ctl start all).
# Not a timed test: it prints figures, it asserts nothing.
#
# Per transport (default: rabbitmq kafka): a fresh database; a backlog of
# $LOW low tasks (default 3000) is submitted, then a worker with
# concurrency $CONC (default 2) starts; once it is busy, $HIGH high tasks
# (default 200) are submitted, $WAVES waves (default 10) 200 ms apart.
# Tasks are builtin `sleep` with $MS ms (default 2) each.  When all have
# finished: p50/p99/max of the latency (finished_at - created_at) of the
# high tasks and of the low ones, and how many low tasks finished while
# high ones were waiting (no starvation: it is above 0).
#
#   sh tests/bench/bench_priority.sh              both transports
#   LOW=10000 HIGH=500 sh tests/bench/bench_priority.sh kafka
#
# Latencies of low tasks include the backlog's own wait (they were all
# submitted before the worker started), so compare high against low, not
# against other benchmarks.  The machine's load shows in the figures:
# the script prints nproc and the load average.
set -eu

here=$(cd "$(dirname "$0")/../.." && pwd)
build=${WORKQ_BUILD:-build}
bin="$here/$build"
LOW=${LOW:-3000}
HIGH=${HIGH:-200}
WAVES=${WAVES:-10}
CONC=${CONC:-2}
MS=${MS:-2}
pg="host=127.0.0.1 port=${WORKQ_TEST_PG_PORT:-55432} user=postgres"
kinds=${*:-"rabbitmq kafka"}

echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg);" \
    "$(date -u +%Y-%m-%dT%H:%MZ)"
echo "low=$LOW high=$HIGH waves=$WAVES concurrency=$CONC sleep=${MS}ms"
for kind in $kinds; do
    db="workq_bench_prio_$$"
    q="bench-prio-$kind-$$"
    psql "$pg dbname=postgres" -qc "DROP DATABASE IF EXISTS $db" \
        -c "CREATE DATABASE $db"
    export WORKQ_TRANSPORT="$kind"
    export WORKQ_POSTGRES_CONNINFO="$pg dbname=$db"
    export WORKQ_RABBITMQ_URL=${WORKQ_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:55672}
    export WORKQ_KAFKA_BROKERS=${WORKQ_TEST_KAFKA_BROKERS:-127.0.0.1:59092}
    export WORKQ_LOG_LEVEL=warn
    "$bin/workq" migrate >/dev/null
    tmp=$(mktemp -d)
    i=0
    while [ $i -lt "$LOW" ]; do
        echo "{\"type\":\"sleep\",\"payload\":\"$MS\",\"priority\":\"low\"}"
        i=$((i + 1))
    done >"$tmp/low.jsonl"
    i=0
    while [ $i -lt $((HIGH / WAVES)) ]; do
        echo "{\"type\":\"sleep\",\"payload\":\"$MS\",\"priority\":\"high\"}"
        i=$((i + 1))
    done >"$tmp/high.jsonl"
    "$bin/workq" --quiet submit --batch "$tmp/low.jsonl" -q "$q" >/dev/null
    "$bin/workq-worker" --queue "$q" --concurrency "$CONC" \
        >"$tmp/worker.log" 2>&1 &
    wpid=$!
    # busy: some low ones done
    until [ "$(psql "$WORKQ_POSTGRES_CONNINFO" -tAc "SELECT count(*) FROM
        workq.tasks WHERE state = 'succeeded'")" -gt 50 ]; do
        sleep 0.2
    done
    w=0
    while [ $w -lt "$WAVES" ]; do
        "$bin/workq" --quiet submit --batch "$tmp/high.jsonl" -q "$q" >/dev/null
        sleep 0.2
        w=$((w + 1))
    done
    total=$((LOW + HIGH / WAVES * WAVES))
    until [ "$(psql "$WORKQ_POSTGRES_CONNINFO" -tAc "SELECT count(*) FROM
        workq.tasks WHERE state = 'succeeded'")" -ge "$total" ]; do
        sleep 0.5
    done
    kill -TERM "$wpid"
    wait "$wpid" || true
    echo "== $kind"
    psql "$WORKQ_POSTGRES_CONNINFO" -qc "
        SELECT CASE priority WHEN 2 THEN 'high' WHEN 1 THEN 'normal'
                ELSE 'low' END AS priority, count(*) AS tasks,
            round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)) AS p50_ms,
            round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)) AS p99_ms,
            round(max(ms)) AS max_ms,
            sum(CASE WHEN attempt = 1 THEN 1 ELSE 0 END) AS one_attempt
          FROM (SELECT priority, attempt, extract(epoch FROM finished_at
                - created_at) * 1000 AS ms FROM workq.tasks) t
         GROUP BY priority ORDER BY priority DESC" \
        -c "SELECT count(*) AS low_done_while_high_waited FROM workq.tasks
             WHERE priority = 0 AND finished_at BETWEEN
               (SELECT min(created_at) FROM workq.tasks WHERE priority = 2)
               AND (SELECT max(finished_at) FROM workq.tasks
                    WHERE priority = 2)"
    rm -rf "$tmp"
    psql "$pg dbname=postgres" -qc "DROP DATABASE $db"
done

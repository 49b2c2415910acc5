#!/bin/sh
# tests/bench/run.sh - the submit benchmarks (`make bench-submit`, and the
# last part of `make bench`'s report), against the
# private servers of tests/services (started by the Makefile), printing
# one table at the end.  A benchmark, never a test: nothing here passes
# or fails on a number.
#
#   1. C client, batched (many in flight, a flush every 10000) and one
#      at a time (latency of a blocking submit): bench_submit; the
#      batched run once more with receipts off (producer.receipts), so
#      the table shows what they cost;
#   2. `workq submit --batch FILE` (JSON lines) with output to /dev/null;
#   3. workq-producer under wrk: single-task POSTs, keep-alive
#      connections, bearer token, latency percentiles from wrk.
# Per transport: Kafka, RabbitMQ quorum queues (the default), RabbitMQ
# classic queues.
#
# Environment: WORKQ_BUILD (build dir), BENCH_TASKS (C client, default
# 200000), BENCH_CLI_TASKS (default 100000), BENCH_HTTP_SECONDS (15),
# BENCH_HTTP_CONNS (64), BENCH_PORT (18999).
set -u
build=${WORKQ_BUILD:-build}
case $build in /*) ;; *) build=$(pwd)/$build ;; esac
src=$(cd "$(dirname "$0")/../.." && pwd)
tasks=${BENCH_TASKS:-200000}
cli_tasks=${BENCH_CLI_TASKS:-100000}
http_s=${BENCH_HTTP_SECONDS:-15}
conns=${BENCH_HTTP_CONNS:-64}
port=${BENCH_PORT:-18999}
tmp=$(mktemp -d /tmp/workq-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

export WORKQ_KAFKA_BROKERS=${WORKQ_TEST_KAFKA_BROKERS:-127.0.0.1:59092}
export WORKQ_RABBITMQ_URL=${WORKQ_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:55672}
export WORKQ_POSTGRES_CONNINFO=${WORKQ_TEST_PG_CONNINFO:-host=127.0.0.1 port=55432 user=postgres dbname=workq}
export WORKQ_LOG_LEVEL=warn
# receipts go to this database: without its schema they would fail and
# the runs would measure nothing of their cost (bench_submit says so)
"$build/workq" migrate >&2 || exit 1
rows="$tmp/rows"
: > "$rows"

# word KEY LINE: the value of KEY=VALUE in LINE
word() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }

row() {     # path transport tasks/s p50 p99 note
    printf '%-24s %-16s %12s %9s %9s  %s\n' "$1" "$2" "$3" "$4" "$5" "$6" \
        >> "$rows"
}

cleanup_queue() {   # kind queue
    "$build/tests/bench/bench_submit" --cleanup -t "$1" "$2" \
        >/dev/null 2>&1 || true
}

for tq in kafka:- rabbitmq:quorum rabbitmq:classic; do
    t=${tq%%:*}; qt=${tq#*:}
    label=$t; [ "$qt" != "-" ] && label="$t/$qt"
    export WORKQ_TRANSPORT=$t
    export WORKQ_RABBITMQ_QUEUE_TYPE=quorum
    [ "$qt" = classic ] && export WORKQ_RABBITMQ_QUEUE_TYPE=classic

    # 1. the C client
    q="bench-client-$t-$qt-$$"
    n=$tasks; [ "$t" = rabbitmq ] && n=$((tasks / 2))
    echo "bench: C client, $label, $n tasks" >&2
    out=$("$build/tests/bench/bench_submit" -t "$t" \
        -Q "$WORKQ_RABBITMQ_QUEUE_TYPE" -n "$n" -l 500 -q "$q")
    b=$(printf '%s\n' "$out" | grep 'kind=client-batch')
    s=$(printf '%s\n' "$out" | grep 'kind=client-single')
    row "C client batched" "$label" "$(word rate "$b")" - - \
        "$n tasks, 100 B, 10000 in flight, failed=$(word failed "$b")"
    row "C client one by one" "$label" "$(word rate "$s")" \
        "$(word p50_ms "$s")" "$(word p99_ms "$s")" "500 blocking submits"
    cleanup_queue "$t" "$q"
    q="bench-client-off-$t-$qt-$$"
    out=$("$build/tests/bench/bench_submit" -t "$t" \
        -Q "$WORKQ_RABBITMQ_QUEUE_TYPE" -n "$n" -l 0 -R off -q "$q")
    b=$(printf '%s\n' "$out" | grep 'kind=client-batch')
    row "C client batched" "$label" "$(word rate "$b")" - - \
        "the same, receipts off (producer.receipts = false)"
    cleanup_queue "$t" "$q"

    # 2. workq submit --batch
    q="bench-cli-$t-$qt-$$"
    awk -v n="$cli_tasks" 'BEGIN { for (i = 0; i < n; i++)
        printf "{\"type\":\"noop\",\"payload\":{\"n\":%d}}\n", i }' \
        > "$tmp/tasks.jsonl"
    echo "bench: workq submit --batch, $label, $cli_tasks lines" >&2
    t0=$(date +%s.%N)
    "$build/workq" --quiet submit --batch "$tmp/tasks.jsonl" -q "$q" \
        > /dev/null 2> "$tmp/cli.err"
    rc=$?
    t1=$(date +%s.%N)
    rate=$(awk -v n="$cli_tasks" -v a="$t0" -v b="$t1" \
        'BEGIN { printf "%.0f", n / (b - a) }')
    row "workq submit --batch" "$label" "$rate" - - \
        "$cli_tasks JSON lines, exit $rc (process start included)"
    cleanup_queue "$t" "$q"

    # 3. HTTP under wrk
    q="bench-http-$t-$qt-$$"
    echo "bench-token" > "$tmp/tokens"
    WORKQ_PRODUCER_LISTEN=127.0.0.1:$port \
    WORKQ_PRODUCER_TOKENS_FILE=$tmp/tokens \
    WORKQ_PRODUCER_QUEUES="$q" \
        "$build/workq-producer" 2> "$tmp/producer.log" &
    pid=$!
    i=0
    until curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; do
        i=$((i + 1)); [ $i -gt 100 ] && break; sleep 0.1
    done
    # first request declares the queue
    curl -s -o /dev/null -H 'Content-Type: application/json' \
        -H 'Authorization: Bearer bench-token' -d '{"type":"noop"}' \
        "http://127.0.0.1:$port/v1/queues/$q/tasks"
    echo "bench: HTTP, $label, wrk -c $conns -d ${http_s}s" >&2
    w=$(WQ_BENCH_TOKEN=bench-token wrk -t 2 -c "$conns" -d "${http_s}s" \
        --latency -s "$src/tests/bench/post_task.lua" \
        "http://127.0.0.1:$port/v1/queues/$q/tasks" | grep '^wq ')
    kill -TERM $pid; wait $pid
    row "HTTP single-task POST" "$label" "$(word rate "$w")" \
        "$(word p50_ms "$w")" "$(word p99_ms "$w")" \
        "wrk -t2 -c$conns ${http_s}s, errors=$(word errors "$w"), 202 after confirm"
    cleanup_queue "$t" "$q"
done

echo
echo "workq submit benchmarks - $(nproc) cores ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)), brokers on the same machine"
echo "RabbitMQ: persistent messages, publisher confirms; Kafka: acks=all, idempotent, lz4, linger.ms=${WORKQ_KAFKA_LINGER_MS:-5}"
printf '%-24s %-16s %12s %9s %9s  %s\n' path transport tasks/s p50_ms p99_ms notes
cat "$rows"

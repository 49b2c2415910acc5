#!/bin/sh
# tests/bench/report.sh - `make bench`'s report: the end-to-end benchmark
# (bench_e2e, through bench_e2e.sh and its durable PostgreSQL) on both
# transports, three runs each with 2 workers, one run each with 1 and 4
# workers, and RabbitMQ classic queues once beside the quorum default;
# then the submit benchmarks (run.sh).  Writes under $WORKQ_BENCH_OUT
# (default build/bench):
#
#   report.md          the table (medians of three runs, each against
#                      the ceiling measured in the same run), scaling,
#                      the submit table, the machine
#   throughput.png     tasks finished per second during the throughput
#                      run (the median run of each transport)
#   latency.png        latency distribution at the paced rate
#   scaling.png        tasks/s with 1, 2 and 4 workers
#   runs/              each run's RESULT line and data (bench_e2e -o)
#
# A benchmark, never a test: nothing here fails on a number.  It takes
# 12-22 minutes (a warm-up run on each transport first, not reported);
# the machine should be otherwise idle.
#
# Environment: WORKQ_BUILD (build dir, default build), BENCH_E2E_TASKS
# (tasks per throughput run, default 50000), BENCH_E2E_RATE (latency
# run's tasks/s, default 2000), BENCH_E2E_SECONDS (its length, 10),
# BENCH_RUNS (runs with 2 workers, default 3), BENCH_SKIP_SUBMIT=1 (no
# submit benchmarks).
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${WORKQ_BUILD:-build}
case $build in /*) ;; *) build=$src/$build ;; esac
out=${WORKQ_BENCH_OUT:-$build/bench}
tasks=${BENCH_E2E_TASKS:-50000}
rate=${BENCH_E2E_RATE:-2000}
secs=${BENCH_E2E_SECONDS:-10}
runs=${BENCH_RUNS:-3}
bench=$build/tests/bench/bench_e2e

command -v gnuplot >/dev/null || {
    echo "report.sh: gnuplot is missing (make deps installs gnuplot-nox)" >&2
    exit 1
}
rm -rf "$out/runs"
mkdir -p "$out/runs"
log=$out/bench.log
: >"$log"

# e2e NAME KIND [bench_e2e options]: one run, its data under runs/NAME
e2e() {
    name=$1 kind=$2
    shift 2
    echo "== $name" | tee -a "$log"
    WORKQ_BUILD=$build WORKQ_BENCH_KINDS=$kind \
        sh "$src/tests/bench/bench_e2e.sh" "$bench" -n "$tasks" -r "$rate" \
        -s "$secs" -i 5 -o "$out/runs/$name" "$@" 2>&1 | tee -a "$log"
}

# A warm-up on each transport first, not reported: a broker started a
# minute ago (its JVM, its Erlang schedulers) is slow for its first few
# minutes of load; against one, a first Kafka run's p50 at 2,000 tasks/s
# was 2,056 ms and the next ones 198, 29, 7.7.
for kind in rabbitmq kafka; do
    echo "== warm-up $kind (not reported)" | tee -a "$log"
    WORKQ_BUILD=$build WORKQ_BENCH_KINDS=$kind \
        sh "$src/tests/bench/bench_e2e.sh" "$bench" -n "$tasks" -r "$rate" \
        -s "$secs" -i 1 >>"$log" 2>&1
done

for i in $(seq 1 "$runs"); do
    e2e "rabbitmq-w2-$i" rabbitmq -q -w 2
    e2e "kafka-w2-$i" kafka -w 2
done
e2e rabbitmq-classic-w2 rabbitmq -w 2
for w in 1 4; do
    e2e "rabbitmq-w$w" rabbitmq -q -w "$w"
    e2e "kafka-w$w" kafka -w "$w"
done

# word KEY FILE: KEY's value in a RESULT line
word() { tr ' ' '\n' <"$2" | sed -n "s/^$1=//p" | head -n 1; }

# median KEY FILE...: the median of KEY over the files (the middle value;
# the lower middle for an even count)
median() {
    key=$1
    shift
    for f in "$@"; do word "$key" "$f"; done | sort -g |
        awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# the run whose workq tasks/s is the median: its time series is charted
median_run() {
    for f in "$out"/runs/"$1"-w2-*.result; do
        printf '%s %s\n' "$(word workq "$f")" "${f%.result}"
    done | sort -g | awk '{ v[NR] = $2 } END { print v[int((NR + 1) / 2)] }'
}

cols="ceiling workq ratio submit_per_s p50_ms p95_ms p99_ms rss_mb pg_us
      broker_us workers_us client_us wal_bytes rows index_entries
      pg_us_paced workers_us_paced"
{
    echo "# workq benchmark report"
    echo
    echo "Machine: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo),"
    echo "Debian $(cat /etc/debian_version), kernel $(uname -r);"
    echo "$(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo '?')."
    echo "Brokers, PostgreSQL (durable: fsync, synchronous_commit and"
    echo "full_page_writes on) and workq on this one machine. Tasks: type"
    echo "\`ack\`, a payload of about 70 bytes of JSON, a result of about 30."
    echo
    echo "## End to end, 2 workers (median of $runs runs; $tasks tasks per throughput run, latency at $rate tasks/s)"
    echo
    printf '| figure |'
    for k in rabbitmq kafka; do printf ' %s |' "$k"; done
    echo
    echo "| --- | --- | --- |"
    for c in $cols; do
        printf '| %s |' "$c"
        for k in rabbitmq kafka; do
            printf ' %s |' "$(median "$c" "$out"/runs/"$k"-w2-*.result)"
        done
        echo
    done
    echo
    echo "ceiling: the broker alone (publish with confirms, consume with acks),"
    echo "measured in the same run; ratio = workq / ceiling; \`*_us\`: CPU"
    echo "microseconds per task of each process class; wal_bytes, rows and"
    echo "index_entries: PostgreSQL's work per task (all of the throughput"
    echo "run); \`*_us_paced\`: the same CPU a task in the latency run, at"
    echo "$rate tasks/s. RabbitMQ uses quorum queues (workq's default)."
    echo
    echo "## Each run"
    echo
    echo '```'
    cat "$out"/runs/*.result
    echo '```'
    echo
    echo "## Scaling with workers (one run each; 2 = the median above)"
    echo
    echo "| workers | rabbitmq tasks/s | kafka tasks/s |"
    echo "| --- | --- | --- |"
    for w in 1 2 4; do
        if [ "$w" = 2 ]; then
            r=$(median workq "$out"/runs/rabbitmq-w2-*.result)
            k=$(median workq "$out"/runs/kafka-w2-*.result)
        else
            r=$(word workq "$out/runs/rabbitmq-w$w.result")
            k=$(word workq "$out/runs/kafka-w$w.result")
        fi
        echo "| $w | $r | $k |"
        echo "$w $r $k" >>"$out/runs/scaling.dat"
    done
    echo
    echo "RabbitMQ classic queues, 2 workers, one run: $(word workq "$out/runs/rabbitmq-classic-w2.result") tasks/s"
    echo "(ceiling $(word ceiling "$out/runs/rabbitmq-classic-w2.result")), PostgreSQL $(word pg_us "$out/runs/rabbitmq-classic-w2.result") us/task."
    echo
    echo "![throughput](throughput.png) ![latency](latency.png) ![scaling](scaling.png)"
} >"$out/report.md"

rmed=$(median_run rabbitmq)
kmed=$(median_run kafka)
gnuplot <<PLOT
set terminal pngcairo size 800,450 noenhanced
set datafile separator ","
set key top right
set grid
set output "$out/throughput.png"
set title "Tasks finished per second, throughput run (median run, 2 workers)"
set xlabel "seconds since the first task was created"
set ylabel "tasks/s"
plot "$rmed.tput.csv" skip 1 using 1:2 with lines lw 2 title "RabbitMQ (quorum)", \
     "$kmed.tput.csv" skip 1 using 1:2 with lines lw 2 title "Kafka"
set output "$out/latency.png"
set title "Latency at $rate tasks/s, created to recorded (median run)"
set xlabel "ms"
set ylabel "percentile"
set logscale x
set key bottom right
plot "$rmed.lat.csv" skip 1 using 2:1 with lines lw 2 title "RabbitMQ (quorum)", \
     "$kmed.lat.csv" skip 1 using 2:1 with lines lw 2 title "Kafka"
unset logscale x
set output "$out/scaling.png"
set datafile separator " "
set title "Throughput with 1, 2 and 4 workers"
set xlabel "workers"
set ylabel "tasks/s"
set key top left
set xtics (1, 2, 4)
set yrange [0:*]
plot "$out/runs/scaling.dat" using 1:2 with linespoints lw 2 title "RabbitMQ (quorum)", \
     "$out/runs/scaling.dat" using 1:3 with linespoints lw 2 title "Kafka"
PLOT

if [ "${BENCH_SKIP_SUBMIT:-0}" != 1 ]; then
    echo "== submit benchmarks" | tee -a "$log"
    "$src/tests/services/ctl" start all >/dev/null
    WORKQ_BUILD=$build sh "$src/tests/bench/run.sh" >"$out/submit.txt" 2>&1 || true
    {
        echo
        echo "## Submit side (tests/bench/run.sh)"
        echo
        echo '```'
        cat "$out/submit.txt"
        echo '```'
    } >>"$out/report.md"
fi
echo "report: $out/report.md (charts beside it)"

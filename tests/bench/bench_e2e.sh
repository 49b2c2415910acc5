#!/bin/sh
# bench_e2e.sh BENCH_BINARY [bench_e2e options] - the end-to-end benchmark
# (tests/bench/bench_e2e.c) on both transports, against a PostgreSQL of its
# own with durable settings (fsync, synchronous_commit and
# full_page_writes on: the test servers' PostgreSQL runs with fsync off),
# and the private RabbitMQ and Kafka of tests/services.  The PostgreSQL
# lives in $WORKQ_BENCH_DIR (default /var/tmp/workq-bench) on port
# $WORKQ_BENCH_PG_PORT (default 55433) and is stopped at the end.
#
#   make bench-e2e                      both transports, default sizes
#   WORKQ_BENCH_ARGS="-n 200000 -w 1"   passed to bench_e2e
#   WORKQ_BENCH_KINDS="kafka"           one transport only
#   WORKQ_BENCH_ARGS="-z"               the old workload: noop tasks
#                                       without payload or result
#   WORKQ_BENCH_LOG_LEVEL=debug         the workers' log level (warn)
#
# Each transport's figures end with the cost model of its throughput run
# (CPU us per task of PostgreSQL, broker, workers and client, WAL bytes
# and syncs, rows and index entries written; see bench_e2e.c).
set -eu

bench=$1; shift
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=${WORKQ_BENCH_DIR:-/var/tmp/workq-bench}
port=${WORKQ_BENCH_PG_PORT:-55433}
kinds=${WORKQ_BENCH_KINDS:-"rabbitmq kafka"}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$pgbin" ] || pgbin=$(dirname "$(command -v postgres || command -v initdb)")

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

"$here/tests/services/ctl" start rabbitmq kafka

mkdir -p "$dir"
chmod 755 "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
if [ ! -s "$dir/pg/PG_VERSION" ]; then
    # no --no-sync: this cluster is about durability
    as_pg "$pgbin/initdb" -D "$dir/pg" -A trust -U postgres >/dev/null
fi
cat >"$dir/pg/workq-bench.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 100
# durable: the defaults, said out loud
fsync = on
synchronous_commit = on
full_page_writes = on
# room, so that no checkpoint lands in the middle of a run
shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
${WORKQ_BENCH_PG_EXTRA:-}
CONF
grep -q "workq-bench.conf" "$dir/pg/postgresql.conf" ||
    echo "include_if_exists = 'workq-bench.conf'" >>"$dir/pg/postgresql.conf"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir/pg/workq-bench.conf"
as_pg "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w start >/dev/null
trap 'as_pg "$pgbin/pg_ctl" -D "$dir/pg" -m fast -w stop >/dev/null' EXIT
psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc \
    "DROP DATABASE IF EXISTS workq_bench" -c "CREATE DATABASE workq_bench"

echo "machine: $(nproc) CPUs, $(uname -r); $(date -u +%Y-%m-%dT%H:%MZ)"
for k in $kinds; do
    # shellcheck disable=SC2086
    "$bench" "$k" "host=127.0.0.1 port=$port user=postgres dbname=workq_bench" \
        ${WORKQ_BENCH_ARGS:-} "$@"
done

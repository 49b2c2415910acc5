#!/bin/sh
# tests/demo.sh - the whole workq pipeline on local private servers
# (make demo).  It starts PostgreSQL, RabbitMQ and Kafka of tests/services,
# a fresh database, the HTTP producer, two workers and the scheduler;
# submits a mix of tasks through the CLI and the HTTP API (succeeding,
# failing then succeeding, always failing, failing for good, an exec
# handler, a delayed task); prints what happened to each; and stops what
# it started.
#
#   make demo                      # on RabbitMQ
#   WORKQ_DEMO_TRANSPORT=kafka make demo
set -eu
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
TRANSPORT=${WORKQ_DEMO_TRANSPORT:-rabbitmq}
PORT=${WORKQ_DEMO_PORT:-18080}
WORKQ="$PWD/$BUILD/workq"
DIR=$(mktemp -d /tmp/workq-demo.XXXXXX)
PIDS=""

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

say "servers (tests/services/ctl start all)"
tests/services/ctl start all

cat > "$DIR/workq.conf" <<CONF
# The demo's configuration: private servers, a short retry policy.
transport = "$TRANSPORT";
log = { level = "info"; };
rabbitmq = { url = "amqp://guest:guest@127.0.0.1:55672"; };
kafka = { brokers = "127.0.0.1:59092"; partitions = 2; };
postgres = { conninfo = "host=127.0.0.1 port=55432 user=postgres dbname=workq_demo"; };
worker = { queues = [ "demo" ]; concurrency = 4; lease = "10s"; };
scheduler = { poll_interval = "500ms"; };
# No tokens in the demo: auth "none" says so, and works on loopback only.
producer = { listen = "127.0.0.1:$PORT"; auth = "none"; };
handlers = (
    { type = "shout"; kind = "exec"; argv = [ "/usr/bin/tr", "a-z", "A-Z" ];
      timeout = "10s"; }
);
queue_policies = (
    { name = "demo"; max_attempts = 3; backoff_base = "1s";
      backoff_cap = "2s"; backoff_jitter = "none"; }
);
CONF
chmod 600 "$DIR/workq.conf"     # it holds the broker's password
wq() { "$WORKQ" --config "$DIR/workq.conf" "$@"; }

say "fresh database workq_demo, schema (workq migrate)"
tests/services/ctl psql -q -c "DROP DATABASE IF EXISTS workq_demo WITH (FORCE)" \
    -c "CREATE DATABASE workq_demo" >/dev/null
wq migrate

say "daemons: producer on :$PORT, two workers, scheduler ($TRANSPORT)"
say "the producer takes requests without a token: auth = \"none\" in $DIR/workq.conf (loopback only)"
"$PWD/$BUILD/workq-producer" --config "$DIR/workq.conf" 2> "$DIR/producer.log" &
PIDS="$PIDS $!"
for i in 1 2; do
    "$PWD/$BUILD/workq-worker" --config "$DIR/workq.conf" --id "demo-worker-$i" \
        2> "$DIR/worker$i.log" &
    PIDS="$PIDS $!"
done
"$PWD/$BUILD/workq-scheduler" --config "$DIR/workq.conf" 2> "$DIR/scheduler.log" &
PIDS="$PIDS $!"
for _ in $(seq 1 50); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done
echo "logs in $DIR"

say "submit (CLI and HTTP)"
wq submit -q demo -t echo -k greet "hello, workq"
wq submit -q demo -t shout -k shout "an exec handler, no shell"
wq submit -q demo -t fail -k flaky "until=3"
wq submit -q demo -t fail -k hopeless "p=1"
wq submit -q demo -t fail -k broken "permanent"
wq submit -q demo -t echo -k later --delay 2s "delayed by two seconds"
curl -sS -X POST "http://127.0.0.1:$PORT/v1/queues/demo/tasks" \
    -H 'Content-Type: application/json' -H 'Idempotency-Key: over-http' \
    -d '{"type":"echo","payload":"sent over HTTP"}'
echo
echo "the same key again: accepted by the broker, absorbed by the worker's claim"
wq submit -q demo -t echo -k greet "hello, workq"

say "waiting for every task to end (retries back off 1 s, then 2 s)"
for k in greet shout flaky hopeless broken later over-http; do
    for _ in $(seq 1 120); do
        state=$(wq --json status --queue demo --key "$k" 2>/dev/null \
            | sed -n 's/.*"state":"\([a-z_]*\)".*/\1/p')
        case "$state" in succeeded|dead|cancelled) break ;; esac
        sleep 0.25
    done
    printf '  %-10s %s\n' "$k" "${state:-unknown}"
done

say "the tasks (workq list --queue demo)"
wq list --queue demo
say "one task's history (workq status --queue demo --key flaky)"
wq status --queue demo --key flaky
say "dead letters (workq dlq list --queue demo)"
wq dlq list --queue demo
say "stats"
wq stats
say "stopping the daemons (SIGTERM drains)"
cleanup
PIDS=""
echo "done; logs in $DIR; servers still up (make services-stop)"

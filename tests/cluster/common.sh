# tests/cluster/common.sh - what the cluster runs share before they start
# (sourced by tests/cluster/smoke.sh, chaos.sh and scale.sh; not run by
# itself): where the binaries are, the tests' lock, the check that the bed
# is up, the bed's PostgreSQL and Kafka addresses, the counting of
# tests/cluster/count.sh, and helpers to stop the daemons and to see the
# brokers whole.  The caller has set ROOT (the checkout) and CL_NAME (its
# name in messages), and CNT_FAILING / CNT_EFFECT_TYPES if it wants
# count.sh's other than the default; then:
#   cl_need_build BIN...   exits 2 unless every $BIN/BIN exists
#   cl_lock SECONDS        takes /var/tmp/workq-tests.lock on fd 8 (waits
#                          at most SECONDS), unless WORKQ_TESTS_LOCKED=1
#                          says that the caller holds it already
#   cl_check_up DIR        exits 1 unless ctl status says every server is
#                          up (its output in DIR/status.before)
#   stop_daemons           SIGTERM to every pid of the array PID, at most
#                          20 s each to end, then SIGKILL; empties PID
#   kafka_whole Q          true if every partition of workq.Q has its 3
#                          replicas in sync and 3 brokers are listed
#   rmq_whole NODE         true if NODE sees three running nodes

BUILD="${WORKQ_BUILD:-build}"
BIN="$ROOT/$BUILD"
CTL="$ROOT/tests/cluster/ctl"
TOOL="$BIN/tests/fault/chaos-tool"
PGHOSTS="host=10.77.0.31,10.77.0.32 port=5432,5432 user=postgres target_session_attrs=read-write connect_timeout=3"
KAFKA_BROKERS=10.77.0.21:9092,10.77.0.22:9092,10.77.0.23:9092
sqlp() { PGCONNECT_TIMEOUT=5 psql -X -q -At -v ON_ERROR_STOP=1 "$PGHOSTS dbname=postgres" "$@"; }
# shellcheck source=count.sh
. "$ROOT/tests/cluster/count.sh"

cl_need_build() {
    local b
    for b in tests/fault/chaos-tool "$@"; do
        [ -x "$BIN/$b" ] ||
            { echo "$CL_NAME: build first (make all $BUILD/tests/fault/chaos-tool)" >&2; exit 2; }
    done
}

cl_lock() {
    exec 8>/var/tmp/workq-tests.lock
    if [ "${WORKQ_TESTS_LOCKED:-}" != 1 ]; then
        flock -w "$1" 8 || { echo "$CL_NAME: could not take /var/tmp/workq-tests.lock" >&2; exit 1; }
    fi
}

cl_check_up() {
    "$CTL" status >"$1/status.before" 2>&1 ||
        { cat "$1/status.before"; echo "$CL_NAME: the cluster is not (all) up: make cluster-up" >&2; exit 1; }
}

stop_daemons() {
    local s
    for s in "${!PID[@]}"; do kill -TERM "${PID[$s]}" 2>/dev/null || true; done
    for s in "${!PID[@]}"; do
        timeout 20 tail --pid="${PID[$s]}" -f /dev/null 2>/dev/null || kill -KILL "${PID[$s]}" 2>/dev/null || true
    done
    PID=()
}

kafka_whole() {
    local q="$1" md
    md="$(timeout 10 kcat -b "$KAFKA_BROKERS" -L -t "workq.$q" 2>/dev/null)" || return 1
    echo "$md" | grep -q '^ *3 brokers:' || return 1
    echo "$md" | awk '/isrs:/ { n++; s = $0; sub(/.*isrs: /, "", s); if (/Broker:/ || split(s, r, ",") != 3) bad++ }
        END { exit (n > 0 && bad == 0) ? 0 : 1 }'
}

rmq_whole() {
    local n
    n="$(timeout 30 "$CTL" rabbitmqctl "$1" cluster_status --formatter json 2>/dev/null |
        grep -o '"running_nodes":\[[^]]*\]' | grep -o 'rabbit@' | wc -l)" || return 1
    [ "$n" = 3 ]
}

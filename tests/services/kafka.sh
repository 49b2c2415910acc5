# shellcheck shell=bash
# Private Apache Kafka 4.x broker for integration tests: one node in KRaft
# combined mode (broker+controller), PLAINTEXT on 127.0.0.1:59092, controller
# on 127.0.0.1:59093, and for the TLS and SASL tests SSL on 59094,
# SASL_PLAINTEXT on 59095 and SASL_SSL on 59096 (the test CA's server
# certificate; SASL mechanisms PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, one
# user workq). Debian has no Kafka
# package: the official jars come from Maven Central
# (tests/services/kafka/pom.xml) into a cache outside the git tree. Sourced
# by tests/services/ctl after lib.sh.

KAFKA_PORT=59092
KAFKA_CONTROLLER_PORT=59093
KAFKA_SSL_PORT=59094
KAFKA_SASL_PORT=59095
KAFKA_SASL_SSL_PORT=59096
KAFKA_SASL_USER=workq
KAFKA_SASL_PASSWORD=workq-test-secret
KAFKA_POM="$WQ_SELF_DIR/kafka/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$KAFKA_POM" | head -n1)"
KAFKA_CACHE="${XDG_CACHE_HOME:-${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}/.cache}/workq/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_CACHE/libs"
KAFKA_DIR="$WQ_BASE/kafka"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_LOG4J="$KAFKA_DIR/log4j2.properties"
KAFKA_PIDFILE="$KAFKA_DIR/kafka.pid"
KAFKA_LOG="$KAFKA_DIR/kafka.log"
# What kafka_format wrote into $KAFKA_DATA; a data directory formatted by
# an older version of this script is formatted again.  2: SCRAM users.
KAFKA_FORMAT_STAMP="$KAFKA_DIR/data.format"
KAFKA_FORMAT_VERSION=2
# A fixed cluster id (base64url of "workq-test-kafka"): formatting needs no
# extra JVM start for `random-uuid`.
KAFKA_CLUSTER_ID=d29ya3EtdGVzdC1rYWZrYQ
KAFKA_START_TIMEOUT=90
KAFKA_HEAP="-Xmx512m -Xms256m"

# A java of version 17 or newer: $JAVA_HOME, then PATH, then /usr/lib/jvm.
kafka_java() {
    local j v
    for j in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java 2>/dev/null || true)" \
            /usr/lib/jvm/*/bin/java; do
        [ -n "$j" ] && [ -x "$j" ] || continue
        v="$("$j" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
        if [ -n "$v" ] && [ "$v" -ge 17 ]; then
            echo "$j"
            return 0
        fi
    done
    wq_die "kafka: needs Java 17 or newer (apt-get install default-jre-headless)"
}

# Copy the broker jars into the cache once (Maven's own ~/.m2 is reused).
# Redone when the pom changes; a marker file says the copy is complete.
kafka_fetch_jars() {
    local sum t0 tmp
    [ -n "$KAFKA_VERSION" ] || wq_die "kafka: no <kafka.version> in $KAFKA_POM"
    sum="$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)"
    [ "$(cat "$KAFKA_LIBS/.complete" 2>/dev/null)" = "$sum" ] && return 0
    command -v mvn >/dev/null || wq_die "kafka: mvn not found (apt-get install maven)"
    mkdir -p "$KAFKA_CACHE"
    exec 8>"$KAFKA_CACHE/.lock"
    flock -w 600 8 || wq_die "kafka: timed out waiting for $KAFKA_CACHE/.lock"
    if [ "$(cat "$KAFKA_LIBS/.complete" 2>/dev/null)" != "$sum" ]; then
        wq_log "kafka: fetching Kafka $KAFKA_VERSION jars with Maven into $KAFKA_LIBS"
        t0="$(wq_now)"
        tmp="$KAFKA_CACHE/libs.tmp.$$"
        rm -rf "$tmp"
        # -f: run from anywhere; copy-dependencies writes no target/ dir here.
        if ! mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies \
                -DoutputDirectory="$tmp" </dev/null >"$KAFKA_CACHE/mvn.log" 2>&1 9>&- 8>&-; then
            wq_tail_logs 40 "$KAFKA_CACHE/mvn.log"
            rm -rf "$tmp"
            wq_die "kafka: mvn dependency:copy-dependencies failed"
        fi
        ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || wq_die "kafka: no kafka_2.13 jar in $tmp"
        echo "$sum" >"$tmp/.complete"
        rm -rf "$KAFKA_LIBS"
        mv "$tmp" "$KAFKA_LIBS"
        wq_log "kafka: jars fetched ($(wq_elapsed "$t0") s)"
    fi
    exec 8>&-
}

kafka_write_conf() {
    mkdir -p "$KAFKA_DIR" "$KAFKA_DATA"
    cat >"$KAFKA_PROPS" <<EOF
# Written by tests/services/kafka.sh; overwritten at every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SSL://127.0.0.1:$KAFKA_SSL_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SSL://127.0.0.1:$KAFKA_SSL_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
# TLS: the test CA's server certificate (tests/services/mkcerts.sh), no
# client certificates.
ssl.keystore.type=PEM
ssl.keystore.location=$WQ_TLS_DIR/server-bundle.pem
ssl.client.auth=none
# SASL: one fixed user.  PLAIN checks the password in this file; SCRAM
# checks the salted credentials kafka_format put in the cluster metadata
# (StorageTool --add-scram, KIP-900), so its login modules take no user.
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$KAFKA_DATA
# Single node: every replication factor and ISR minimum is 1.
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the default 50: the first consumer group
# and the first transaction of a fresh broker come up faster.
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=8
# Tests create their topics explicitly; consumer groups join at once.
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
# Sized for a 2-core machine.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
    cat >"$KAFKA_LOG4J" <<'EOF'
# Written by tests/services/kafka.sh: everything to stdout (kafka.log).
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
}

# Sets KAFKA_JVM: the java command line up to the main class.
kafka_jvm_args() {
    # shellcheck disable=SC2206
    KAFKA_JVM=("$1" $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20
        -XX:+ExitOnOutOfMemoryError -XX:ErrorFile="$KAFKA_DIR/hs_err_pid%p.log"
        -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$KAFKA_LOG4J" -Dkafka.logs.dir="$KAFKA_DIR"
        -cp "$KAFKA_LIBS/*")
}

kafka_format() {
    local scram="name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD"
    if [ -s "$KAFKA_DATA/meta.properties" ]; then
        [ "$(cat "$KAFKA_FORMAT_STAMP" 2>/dev/null)" = "$KAFKA_FORMAT_VERSION" ] && return 0
        wq_log "kafka: $KAFKA_DATA predates format version $KAFKA_FORMAT_VERSION; its topics go"
        rm -rf "$KAFKA_DATA"
    fi
    wq_log "kafka: formatting $KAFKA_DATA (cluster id $KAFKA_CLUSTER_ID)"
    kafka_jvm_args "$1"
    (cd "$KAFKA_DIR" && exec "${KAFKA_JVM[@]}" kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" \
        -c "$KAFKA_PROPS" --ignore-formatted \
        --add-scram "SCRAM-SHA-256=[$scram]" --add-scram "SCRAM-SHA-512=[$scram]") \
        </dev/null >>"$KAFKA_LOG" 2>&1 9>&- ||
        { wq_tail_logs 40 "$KAFKA_LOG"; wq_die "kafka: storage format failed"; }
    echo "$KAFKA_FORMAT_VERSION" >"$KAFKA_FORMAT_STAMP"
}

kafka_pid() {
    local pid
    pid="$(wq_read_pidfile "$KAFKA_PIDFILE")"
    [ -n "$pid" ] && wq_pid_cmdline_has "$pid" "kafka.Kafka $KAFKA_PROPS" && echo "$pid"
    return 0
}

# Java processes running our server.properties (e.g. a lost pid file).
kafka_stray_pids() {
    local p
    for p in $(wq_pgrep -x java 2>/dev/null); do
        wq_pid_cmdline_has "$p" "kafka.Kafka $KAFKA_PROPS" && echo "$p"
    done
    return 0
}

kafka_running() {
    [ -n "$(kafka_pid)" ]
}

# A real metadata round trip, not just an open port.
kafka_metadata_ok() {
    wq_port_open "$KAFKA_PORT" || return 1
    timeout 10 kcat -b "127.0.0.1:$KAFKA_PORT" -L -m 5 2>/dev/null | grep -q ' 1 brokers:'
}

kafka_status() {
    kafka_running && kafka_metadata_ok
}

kafka_start() {
    local t0 java pid
    command -v kcat >/dev/null || wq_die "kafka: kcat not found (apt-get install kcat)"
    java="$(kafka_java)"
    wq_lock kafka
    if kafka_running; then
        t0="$(wq_now)"
        wq_log "kafka: already running (pid $(kafka_pid))"
    else
        # Not while a broker runs: it reads the jars it was started with.
        kafka_fetch_jars
        t0="$(wq_now)"
        pid="$(kafka_stray_pids)"
        # shellcheck disable=SC2086
        [ -n "$pid" ] && wq_kill_wait KILL 10 $pid
        wq_require_free_port kafka "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" \
            "$KAFKA_SSL_PORT" "$KAFKA_SASL_PORT" "$KAFKA_SASL_SSL_PORT"
        wq_ensure_base
        kafka_write_conf
        echo "===== ctl start $(date '+%F %T') =====" >>"$KAFKA_LOG"
        kafka_format "$java"
        wq_log "kafka: starting broker"
        rm -f "$KAFKA_PIDFILE"
        kafka_jvm_args "$java"
        wq_spawn "$KAFKA_PIDFILE" "$KAFKA_LOG" "${KAFKA_JVM[@]}" kafka.Kafka "$KAFKA_PROPS"
    fi
    pid="$(wq_read_pidfile "$KAFKA_PIDFILE")"
    local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    until kafka_metadata_ok; do
        if ! wq_pid_alive "$pid"; then
            wq_tail_logs 40 "$KAFKA_LOG"
            wq_die "kafka: broker exited during start"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            wq_tail_logs 40 "$KAFKA_LOG"
            wq_die "kafka: no metadata from 127.0.0.1:$KAFKA_PORT after ${KAFKA_START_TIMEOUT}s"
        fi
        sleep 0.3
    done
    wq_unlock
    wq_log "kafka: ready on 127.0.0.1:$KAFKA_PORT ($(wq_elapsed "$t0") s)"
}

kafka_stop() {
    local pid pids
    wq_lock kafka
    pid="$(kafka_pid)"
    # SIGTERM: controlled shutdown (flushes, writes the clean-shutdown marker).
    [ -n "$pid" ] && wq_kill_wait TERM 30 "$pid"
    pids="$(kafka_stray_pids)"
    # shellcheck disable=SC2086
    [ -n "$pids" ] && wq_kill_wait TERM 30 $pids
    rm -f "$KAFKA_PIDFILE"
    wq_unlock
    wq_log "kafka: stopped"
}

kafka_kill9() {
    local pid
    pid="$(kafka_pid)"
    if [ -z "$pid" ]; then
        wq_log "kafka: not running"
        return 0
    fi
    wq_kill_wait KILL 10 "$pid"
    wq_log "kafka: killed (SIGKILL) pid $pid"
}

kafka_logfiles() { echo "$KAFKA_LOG"; }

kafka_clean() {
    rm -rf "$KAFKA_DIR"
}

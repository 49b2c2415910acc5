/*
 * config_table.c - the one table of configuration keys (STYLE.md habit
 * 11).
 *
 * Each row is a key: its dotted path, type, field of struct wq_config,
 * default, range, flags and a one-line doc.  config.c reads only this
 * table to parse the file, apply defaults, environment overrides and
 * secret files, print --help and dump the effective configuration; the
 * unit tests check that config/workq.conf documents every row and nothing
 * else.  Defaults are written the way the environment gives a value: "4",
 * "30s", "info", a list as "a,b".
 *
 * Rows of one group stay together and in the order of config/workq.conf.
 * An enum's names are listed in the order of its C enum in config.h (or
 * log.h, transport.h): the stored value is the index.
 *
 * Adding a key: one row here, one field in struct wq_config, and the
 * documented setting in config/workq.conf.
 */
#include <stddef.h>

#include "config.h"

#define FIELD(f) offsetof(struct wq_config, f)
#define NAMES(...) ((const char *const[]){ __VA_ARGS__, NULL })

#define STRING(k, f, def, flags, doc) \
    { k, WQ_CONFIG_STRING, FIELD(f), def, 0, 0, NULL, flags, doc }
#define INT(k, f, def, min, max, doc) \
    { k, WQ_CONFIG_INT, FIELD(f), def, min, max, NULL, 0, doc }
#define BOOL(k, f, def, doc) \
    { k, WQ_CONFIG_BOOL, FIELD(f), def, 0, 1, NULL, 0, doc }
#define ENUM(k, f, def, names, doc) \
    { k, WQ_CONFIG_ENUM, FIELD(f), def, 0, 0, names, 0, doc }
#define DURATION(k, f, def, min_ms, max_ms, doc) \
    { k, WQ_CONFIG_DURATION, FIELD(f), def, min_ms, max_ms, NULL, 0, doc }
#define LIST(k, f, def, min_items, doc) \
    { k, WQ_CONFIG_LIST, FIELD(f), def, min_items, 0, NULL, 0, doc }

#define SECOND 1000LL
#define MINUTE (60 * SECOND)
#define HOUR   (60 * MINUTE)

const struct wq_config_key wq_config_keys[] = {
    /* log */
    ENUM("log.level", log.level, "info",
        NAMES("debug", "info", "warn", "error"),
        "lowest level of the lines written to the log"),
    ENUM("log.format", log.format, "text", NAMES("text", "json"),
        "log line format: human text or one JSON object per line"),
    STRING("log.file", log.file, "", 0,
        "append log lines to this file (reopened on SIGHUP); empty: stderr"),

    /* the broker */
    ENUM("transport", transport, "rabbitmq", NAMES("rabbitmq", "kafka"),
        "the broker that carries tasks"),

    /* kafka */
    STRING("kafka.brokers", kafka.brokers, "127.0.0.1:9092", 0,
        "bootstrap brokers, \"host:port,host:port\""),
    INT("kafka.partitions", kafka.partitions, "4", 1, 1024,
        "partitions of a topic workq creates"),
    INT("kafka.replication_factor", kafka.replication_factor, "1", 1, 16,
        "replication factor of a topic workq creates"),
    INT("kafka.linger_ms", kafka.linger_ms, "5", 0, 10000,
        "producer batching delay in milliseconds (linger.ms)"),
    INT("kafka.session_timeout_ms", kafka.session_timeout_ms, "10000",
        1000, 300000,
        "consumer group session timeout in milliseconds"),
    ENUM("kafka.security_protocol", kafka.security_protocol, "plaintext",
        NAMES("plaintext", "ssl", "sasl_plaintext", "sasl_ssl"),
        "librdkafka security.protocol"),
    ENUM("kafka.sasl_mechanism", kafka.sasl_mechanism, "",
        NAMES("", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        "librdkafka sasl.mechanism; empty: not set"),
    STRING("kafka.sasl_username", kafka.sasl_username, "", 0,
        "SASL user name"),
    STRING("kafka.sasl_password", kafka.sasl_password, "", WQ_CONFIG_SECRET,
        "SASL password"),
    STRING("kafka.ssl_ca_location", kafka.ssl_ca_location, "", 0,
        "CA certificate file for TLS (ssl.ca.location); empty: system CAs"),

    /* rabbitmq */
    STRING("rabbitmq.url", rabbitmq.url, "amqp://guest:guest@127.0.0.1:5672",
        0, "AMQP URL, amqp[s]://user:password@host:port/vhost"),
    STRING("rabbitmq.password", rabbitmq.password, "", WQ_CONFIG_SECRET,
        "password that replaces the one in rabbitmq.url; empty: the URL's"),
    ENUM("rabbitmq.queue_type", rabbitmq.queue_type, "quorum",
        NAMES("quorum", "classic"),
        "type of the queues workq declares"),
    INT("rabbitmq.prefetch", rabbitmq.prefetch, "64", 1, 65535,
        "unacknowledged deliveries a consumer may hold (basic.qos)"),
    DURATION("rabbitmq.heartbeat", rabbitmq.heartbeat_ms, "30s",
        0, 65535 * SECOND,
        "AMQP heartbeat interval, whole seconds; 0: off"),
    STRING("rabbitmq.tls_ca", rabbitmq.tls_ca, "", 0,
        "CA certificate file for amqps:// URLs"),

    /* postgres */
    STRING("postgres.conninfo", postgres.conninfo,
        "host=127.0.0.1 port=5432 dbname=workq", 0,
        "libpq connection string or postgresql:// URI"),
    STRING("postgres.password", postgres.password, "", WQ_CONFIG_SECRET,
        "password passed to libpq next to conninfo; empty: none"),
    INT("postgres.pool_size", postgres.pool_size, "4", 1, 64,
        "PostgreSQL connections per process"),

    /* worker */
    LIST("worker.queues", worker.queues, "default", 1,
        "queues this worker consumes"),
    INT("worker.concurrency", worker.concurrency, "16", 1, 4096,
        "tasks run at the same time"),
    DURATION("worker.lease", worker.lease_ms, "30s", 1 * SECOND, 24 * HOUR,
        "how long a claim holds a task before the scheduler takes it back"),
    DURATION("worker.drain_timeout", worker.drain_timeout_ms, "30s",
        0, 1 * HOUR,
        "on SIGTERM, how long in-flight tasks may still finish"),
    STRING("worker.id", worker.id, "", 0,
        "name of this worker in the store; empty: hostname-pid"),

    /* producer */
    STRING("producer.listen", producer.listen, "127.0.0.1:8080", 0,
        "address of the HTTP API, host:port"),
    STRING("producer.tokens_file", producer.tokens_file, "", 0,
        "file of accepted HTTP bearer tokens, one a line"),
    INT("producer.max_body", producer.max_body, "1114112", 1024,
        1073741824,
        "largest HTTP request body in bytes"),

    /* scheduler */
    DURATION("scheduler.poll_interval", scheduler.poll_interval_ms, "1s",
        10, 1 * HOUR,
        "longest wait between two scans for due tasks"),

    /* metrics */
    STRING("metrics.listen", metrics.listen, "", 0,
        "address of the Prometheus /metrics endpoint; empty: off"),
};

const size_t wq_config_nkeys = WQ_ARRAY_LEN(wq_config_keys);

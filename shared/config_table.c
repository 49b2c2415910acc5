/*
 * config_table.c - the one table of configuration keys (STYLE.md habit
 * 11).
 *
 * Each row is a key: its dotted path, type, field of struct wq_config,
 * default, range, flags and a one-line doc.  config.c reads only this
 * table to parse the file, apply defaults, environment overrides and
 * secret files, config_print.c to print --help and dump the effective
 * configuration (each value through its type's row, config_types.c); the
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
#define TiB    (1LL << 40)

/* Rows of a group's own table: offsets into the element struct T. */
#define E_STRING(T, k, f, def, flags, doc) \
    { k, WQ_CONFIG_STRING, offsetof(T, f), def, 0, 0, NULL, flags, doc }
#define E_INT(T, k, f, def, min, max, doc) \
    { k, WQ_CONFIG_INT, offsetof(T, f), def, min, max, NULL, 0, doc }
#define E_BOOL(T, k, f, def, doc) \
    { k, WQ_CONFIG_BOOL, offsetof(T, f), def, 0, 1, NULL, 0, doc }
#define E_SIZE(T, k, f, def, min, max, doc) \
    { k, WQ_CONFIG_SIZE, offsetof(T, f), def, min, max, NULL, 0, doc }
#define E_OCTAL(T, k, f, def, min, max, doc) \
    { k, WQ_CONFIG_OCTAL, offsetof(T, f), def, min, max, NULL, 0, doc }
#define E_ENUM(T, k, f, def, names, doc) \
    { k, WQ_CONFIG_ENUM, offsetof(T, f), def, 0, 0, names, 0, doc }
#define E_DURATION(T, k, f, def, min_ms, max_ms, doc) \
    { k, WQ_CONFIG_DURATION, offsetof(T, f), def, min_ms, max_ms, NULL, 0, \
      doc }
#define E_LIST(T, k, f, def, min_items, doc) \
    { k, WQ_CONFIG_LIST, offsetof(T, f), def, min_items, 0, NULL, 0, doc }
#define E_INT_LIST(T, k, f, def, min, max, doc) \
    { k, WQ_CONFIG_INT_LIST, offsetof(T, f), def, min, max, NULL, 0, doc }
#define GROUPS(k, f, def, T, tab, doc) \
    { k, WQ_CONFIG_GROUPS, FIELD(f), def, 0, 0, NULL, 0, doc, tab, \
      WQ_ARRAY_LEN(tab), sizeof(T), offsetof(T, where) }

#define H struct wq_config_handler
static const struct wq_config_key handler_keys[] = {
    E_STRING(H, "type", type, "", WQ_CONFIG_REQUIRED,
        "task type this handler runs; \"*\": every type without one"),
    E_STRING(H, "queue", queue, "", 0,
        "only for tasks of this queue; empty: every queue"),
    E_ENUM(H, "kind", kind, "builtin", NAMES("builtin", "exec", "plugin",
        "http", "process"),
        "builtin (in the worker), exec (a program per task), plugin (a .so), "
        "http (a POST to a URL), process (long-lived programs, "
        "docs/handler-protocol.md)"),
    E_STRING(H, "builtin", builtin, "", 0,
        "kind builtin: noop, echo, ack, sleep or fail; empty: the type's name"),
    E_LIST(H, "argv", argv, "", 0,
        "kind exec or process: the program (absolute path) and its "
        "arguments"),
    E_LIST(H, "env", env, "", 0,
        "kind exec or process: extra NAME=value for the program's "
        "environment"),
    E_STRING(H, "workdir", workdir, "", 0,
        "kind exec or process: the program's working directory (absolute); "
        "empty: the worker's"),
    E_INT(H, "processes", processes, "2", 1, 256,
        "kind process: programs of this handler kept running"),
    E_INT(H, "max_in_flight", max_in_flight, "8", 1, 4096,
        "kind process: tasks sent to one program at once (async runtimes "
        "run them concurrently)"),
    E_STRING(H, "plugin", plugin, "", 0,
        "kind plugin: path of the shared object"),
    E_STRING(H, "options", options, "", 0,
        "options for a builtin (\"ms=100\", \"until=3\", \"p=0.5\") or "
        "the plugin's init"),
    E_DURATION(H, "timeout", timeout_ms, "0s", 0, 24 * HOUR,
        "a task running longer fails (exec: its process group is killed); "
        "0: no limit"),
    E_DURATION(H, "kill_grace", kill_grace_ms, "5s", 0, 1 * HOUR,
        "exec: time between SIGTERM and SIGKILL at a timeout; process: "
        "time between closing stdin and SIGKILL at a stop"),
    E_INT_LIST(H, "permanent_exit_codes", permanent_exit_codes, "65", 1, 255,
        "exec: exit codes that fail the task for good (no retry)"),
    E_INT(H, "max_output", max_output, "1048576", 0, 1 << 30,
        "bytes of result kept (exec: stdout); more is cut and reported"),
    E_INT(H, "max_stderr", max_stderr, "65536", 0, 1 << 30,
        "exec, process: bytes of stderr written to the log (process: of "
        "each line)"),
    E_SIZE(H, "limit_memory", limit_memory, "1G", 0, 1024 * TiB,
        "exec, process: address space of the program (RLIMIT_AS), "
        "\"512M\"; 0: the worker's"),
    E_DURATION(H, "limit_cpu", limit_cpu_ms, "5m", 0, 365 * 24 * HOUR,
        "exec, process: CPU time of the program (RLIMIT_CPU, whole "
        "seconds), then SIGXCPU; 0: the worker's; process: only if set to "
        "other than the default"),
    E_INT(H, "limit_files", limit_files, "1024", 0, 1 << 20,
        "exec, process: open descriptors of the program (RLIMIT_NOFILE); "
        "0: the worker's"),
    E_INT(H, "limit_processes", limit_processes, "1024", 0, 1 << 22,
        "exec, process: processes of the worker's user, all of them counted "
        "(RLIMIT_NPROC); 0: the worker's"),
    E_SIZE(H, "limit_file_size", limit_file_size, "0", 0, 1024 * TiB,
        "exec, process: largest file the program may write "
        "(RLIMIT_FSIZE), then SIGXFSZ; 0: the worker's"),
    E_BOOL(H, "core_dumps", core_dumps, "false",
        "exec, process: let the program dump core (false: RLIMIT_CORE 0)"),
    E_OCTAL(H, "umask", umask, "0077", 0, 0777,
        "exec, process: the program's umask, an octal string"),
    E_STRING(H, "url", url, "", 0,
        "kind http: the URL tasks are POSTed to (https://, or http:// to "
        "a loopback address)"),
    E_STRING(H, "secret", secret, "", WQ_CONFIG_SECRET,
        "kind http: key of the X-Workq-Signature HMAC-SHA256; empty: "
        "unsigned"),
    E_STRING(H, "tls_ca", tls_ca, "", 0,
        "kind http: CA certificates (PEM file) the receiver is verified "
        "with; empty: the system's"),
    E_BOOL(H, "follow_redirects", follow_redirects, "false",
        "kind http: follow 3xx answers (at most 3); false: a 3xx fails for "
        "good"),
};
#undef H

#define P struct wq_config_queue_policy
static const struct wq_config_key queue_policy_keys[] = {
    E_STRING(P, "name", name, "", WQ_CONFIG_REQUIRED,
        "the queue; \"*\": every queue without a policy of its own"),
    E_INT(P, "max_attempts", max_attempts, "25", 1, 1000000,
        "attempts of a task submitted without a number of its own"),
    E_DURATION(P, "backoff_base", backoff_base_ms, "15s", 0, 24 * HOUR,
        "delay after the first failure, before jitter"),
    E_DURATION(P, "backoff_cap", backoff_cap_ms, "48h", 0, 365 * 24 * HOUR,
        "no retry delay is longer"),
    E_INT(P, "backoff_factor", backoff_factor, "2", 1, 100,
        "the delay grows by this factor with each failed attempt"),
    E_ENUM(P, "backoff_jitter", backoff_jitter, "equal",
        NAMES("none", "full", "equal"),
        "none, full (0..delay) or equal (delay/2..delay)"),
    E_DURATION(P, "retention", retention_ms, "0s", 0, 3650 * 24 * HOUR,
        "succeeded and cancelled tasks are pruned this long after they "
        "ended; 0: scheduler.retention"),
    E_DURATION(P, "dead_retention", dead_retention_ms, "0s", 0,
        3650 * 24 * HOUR,
        "dead tasks are pruned this long after they died; 0: "
        "scheduler.dead_retention"),
    E_DURATION(P, "dead_ttl", dead_ttl_ms, "336h", 0, 3650 * 24 * HOUR,
        "copies on workq.Q.dead expire after this (RabbitMQ "
        "x-message-ttl, Kafka retention.ms); 0: never"),
    E_INT(P, "dead_max_length", dead_max_length, "100000", 0, 1000000000,
        "RabbitMQ: workq.Q.dead keeps at most this many copies, the "
        "oldest dropped (x-max-length); 0: no limit"),
    E_STRING(P, "hook_url", hook_url, "", WQ_CONFIG_URL,
        "https URL the scheduler POSTs to when a task of this queue ends "
        "(succeeded, dead, cancelled), unless the task names its own "
        "(header workq-hook); empty: none"),
};
#undef P

#define L struct wq_config_rate_limit
static const struct wq_config_key rate_limit_keys[] = {
    E_STRING(L, "queue", queue, "", WQ_CONFIG_REQUIRED,
        "the queue whose tasks are limited"),
    E_STRING(L, "type", type, "", 0,
        "only tasks of this type; empty: every type of the queue together"),
    E_INT(L, "rate", rate, "1", 1, 1000000,
        "tasks started per second, across every worker"),
    E_INT(L, "burst", burst, "0", 0, 1000000,
        "tasks that may start at once after a quiet time; 0: rate"),
};
#undef L

#define C struct wq_config_periodic
static const struct wq_config_key periodic_keys[] = {
    E_STRING(C, "name", name, "", WQ_CONFIG_REQUIRED,
        "unique name of the entry; its ticks are recorded under it"),
    E_STRING(C, "schedule", schedule, "", WQ_CONFIG_REQUIRED,
        "five-field cron expression in UTC, or @hourly, @daily, ..."),
    E_STRING(C, "queue", queue, "", WQ_CONFIG_REQUIRED,
        "queue of the task"),
    E_STRING(C, "type", type, "", WQ_CONFIG_REQUIRED,
        "type (handler name) of the task"),
    E_STRING(C, "payload", payload, "", 0,
        "payload of the task, as text"),
    E_INT(C, "max_attempts", max_attempts, "0", 0, 1000000,
        "attempts of each task; 0: the queue's policy"),
    E_ENUM(C, "priority", priority, "normal", NAMES("low", "normal", "high"),
        "priority of each task: high, normal or low (its broker band)"),
};
#undef C

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
    ENUM("transport", transport, "rabbitmq", wq_transport_names,
        "the broker that carries tasks"),
    DURATION("broker.connect_timeout", broker.connect_timeout_ms, "5s",
        100, 10 * MINUTE,
        "how long connecting to the broker may take before it fails"),

    /* kafka */
    STRING("kafka.brokers", kafka.brokers, "127.0.0.1:9092",
        WQ_CONFIG_HOSTPORTS,
        "bootstrap brokers, \"host:port,host:port\""),
    INT("kafka.partitions", kafka.partitions, "4", 1, 1024,
        "partitions of a topic workq creates"),
    INT("kafka.replication_factor", kafka.replication_factor, "1", 1, 16,
        "replication factor of a topic workq creates"),
    INT("kafka.min_insync_replicas", kafka.min_insync_replicas, "0", 0, 16,
        "min.insync.replicas of a topic workq creates; 0: the broker's "
        "default"),
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
        WQ_CONFIG_URL, "AMQP URL, amqp[s]://user:password@host:port/vhost"),
    STRING("rabbitmq.hosts", rabbitmq.hosts, "", 0,
        "more nodes of the URL's cluster, \"host:port,host:port\": tried "
        "in turn when one does not answer"),
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
    ENUM("postgres.pooler", postgres.pooler, "none",
        NAMES("none", "transaction"),
        "none: direct or a session-mode pooler; transaction: a "
        "transaction-mode pooler (PgBouncer), statements unnamed"),
    STRING("postgres.listen_conninfo", postgres.listen_conninfo, "", 0,
        "with pooler \"transaction\": a direct connection for LISTEN "
        "(cancels, the scheduler's wake-ups)"),

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
    DURATION("worker.claim_after", worker.claim_after_ms, "1s", 0, 1 * HOUR,
        "a first delivery runs before its row is written; its row is written"
        " once, with the outcome, unless it runs longer than this"),
    DURATION("worker.batch_wait", worker.batch_wait_ms, "0s", 0, 1 * SECOND,
        "least time between two rounds of claims and records while work"
        " keeps coming, so that more tasks share a commit; 0s: at once"),
    STRING("worker.id", worker.id, "", 0,
        "name of this worker in the store; empty: hostname-pid"),
    INT("worker.batch_max", worker.batch_max, "500", 1, 10000,
        "most tasks claimed or recorded in one PostgreSQL statement"),
    INT("worker.priority_weight_high", worker.priority_weight_high, "6",
        0, 1000, "claims of high-priority tasks per weighted round"),
    INT("worker.priority_weight_normal", worker.priority_weight_normal, "3",
        0, 1000, "claims of normal-priority tasks per weighted round"),
    INT("worker.priority_weight_low", worker.priority_weight_low, "1",
        0, 1000, "claims of low-priority tasks per weighted round"),
    BOOL("worker.builtin_handlers", worker.builtin_handlers, "true",
        "run types noop, echo, ack, sleep, fail with the built-in handlers"),

    /* handlers and queue policies: lists of groups */
    GROUPS("handlers", handlers, "", struct wq_config_handler, handler_keys,
        "which code runs which task type (worker)"),
    GROUPS("queue_policies", queue_policies, "",
        struct wq_config_queue_policy, queue_policy_keys,
        "retries and backoff per queue (worker, scheduler, producer)"),
    GROUPS("periodic", periodic, "", struct wq_config_periodic,
        periodic_keys, "tasks the scheduler enqueues on a cron schedule"),
    GROUPS("rate_limits", rate_limits, "", struct wq_config_rate_limit,
        rate_limit_keys, "tasks started per second of a queue or a type, "
        "across every worker (worker)"),

    /* producer */
    STRING("producer.listen", producer.listen, "127.0.0.1:8080",
        WQ_CONFIG_LISTEN,
        "address of the HTTP API, host:port"),
    STRING("producer.tokens_file", producer.tokens_file, "", 0,
        "file of accepted HTTP bearer tokens: sha256:HEX SCOPES a line"),
    ENUM("producer.auth", producer.auth, "tokens", NAMES("tokens", "none"),
        "tokens: the API needs a bearer token and does not start without "
        "any; none: it takes every request (loopback listen only)"),
    BOOL("producer.auth_none_nonloopback", producer.auth_none_nonloopback,
        "false",
        "with auth \"none\", also listen on a non-loopback address"),
    INT("producer.max_body", producer.max_body, "1114112", 1024,
        1073741824,
        "largest HTTP request body in bytes"),
    INT("producer.threads", producer.threads, "2", 1, 256,
        "HTTP server threads"),
    INT("producer.batch_max", producer.batch_max, "1000", 1, 100000,
        "most tasks in one POST .../tasks:batch request"),
    INT("producer.rate_limit", producer.rate_limit, "0", 0, 100000000,
        "tasks accepted per second, a batch counting its tasks (429 "
        "beyond); 0: no limit"),
    LIST("producer.queues", producer.queues, "", 0,
        "queues the API accepts tasks for, names or fnmatch(3) patterns "
        "(\"reports.*\", \"*\": any); empty: the queues this "
        "configuration names (worker.queues, queue_policies, periodic)"),
    INT("producer.max_queues", producer.max_queues, "64", 1, 100000,
        "most distinct queues one producer process accepts tasks for (each "
        "may make a broker queue); beyond, 403"),
    DURATION("producer.request_timeout", producer.request_timeout_ms, "10s",
        100, 10 * MINUTE,
        "longest wait for the broker's confirmation before a 503"),
    DURATION("producer.read_timeout", producer.read_timeout_ms, "10s",
        1 * SECOND, 1 * HOUR,
        "a request must arrive whole (TLS, headers, body) within this, "
        "else the connection is closed (slow clients); whole seconds"),
    INT("producer.max_connections", producer.max_connections, "1024", 1,
        65536, "concurrent HTTP connections; more wait in the backlog"),
    STRING("producer.tls_cert", producer.tls_cert, "", 0,
        "PEM certificate (chain) of the HTTPS API; empty: plain HTTP"),
    STRING("producer.tls_key", producer.tls_key, "", 0,
        "PEM private key of producer.tls_cert (unencrypted)"),
    BOOL("producer.receipts", producer.receipts, "true",
        "record each confirmed task in PostgreSQL (workq.accepted, "
        "workq.accepted_runs) so that its id resolves before a worker "
        "claims it"),

    /* scheduler */
    DURATION("scheduler.poll_interval", scheduler.poll_interval_ms, "1s",
        10, 1 * HOUR,
        "longest wait between two scans for due tasks"),
    INT("scheduler.batch_size", scheduler.batch_size, "500", 1, 10000,
        "most rows claimed, published or pruned in one transaction"),
    DURATION("scheduler.publish_timeout", scheduler.publish_timeout_ms,
        "30s", 100, 10 * MINUTE,
        "longest wait for the broker to confirm a batch"),
    DURATION("scheduler.cron_catchup", scheduler.cron_catchup_ms, "1h",
        0, 366 * 24 * HOUR,
        "periodic ticks missed this recently (scheduler down) still run"),
    DURATION("scheduler.retention", scheduler.retention_ms, "168h", 0,
        3650 * 24 * HOUR,
        "succeeded and cancelled tasks are pruned this long after they "
        "ended; 0: kept forever"),
    DURATION("scheduler.dead_retention", scheduler.dead_retention_ms,
        "720h", 0, 3650 * 24 * HOUR,
        "dead tasks are pruned this long after they died; 0: kept "
        "forever"),
    DURATION("scheduler.retention_interval",
        scheduler.retention_interval_ms, "5m", 1 * SECOND, 24 * HOUR,
        "how often the scheduler looks for tasks to prune"),
    DURATION("scheduler.backlog_interval", scheduler.backlog_interval_ms,
        "30s", 0, 1 * HOUR,
        "how often the scheduler asks the broker for each configured "
        "queue's backlog (metrics); 0: never"),

    /* completion hooks (scheduler/hooks.c) */
    STRING("hooks.secret", hooks.secret, "", WQ_CONFIG_SECRET,
        "HMAC-SHA256 key of the X-Workq-Signature on completion hooks; "
        "empty: unsigned"),
    STRING("hooks.tls_ca", hooks.tls_ca, "", 0,
        "CA file that verifies hook receivers; empty: the system's"),
    DURATION("hooks.timeout", hooks.timeout_ms, "10s", 100, 30 * SECOND,
        "longest wait for a hook receiver's answer (the scheduler's hooks "
        "thread waits meanwhile, not its loop)"),
    INT("hooks.concurrency", hooks.concurrency, "16", 1, 1000,
        "hooks POSTed at once (one round of the hooks thread)"),
    DURATION("hooks.backoff_base", hooks.backoff_base_ms, "1s", 10,
        1 * HOUR,
        "delay after a hook's first failed delivery, doubled each time"),
    DURATION("hooks.backoff_cap", hooks.backoff_cap_ms, "10m", 10,
        24 * HOUR,
        "no delay between a hook's deliveries is longer"),

    /* metrics */
    STRING("metrics.listen", metrics.listen, "", WQ_CONFIG_LISTEN,
        "address of the Prometheus /metrics endpoint; empty: off"),
};

const size_t wq_config_nkeys = WQ_ARRAY_LEN(wq_config_keys);

/*
 * config.h - the configuration of every workq process (DESIGN.md
 * "Configuration", STYLE.md habit 11).
 *
 * A process reads one libconfig file (default WQ_SYSCONFDIR
 * "/workq/workq.conf", or --config PATH) into a visible struct wq_config:
 * one field per key, grouped like the file (cfg->kafka.brokers,
 * cfg->postgres.pool_size).  One table of keys, wq_config_keys[] in
 * config_table.c, drives everything: parsing, defaults, WORKQ_* environment
 * overrides, *_file secrets, the --help text, the dump of the effective
 * configuration, and the test that config/workq.conf documents every key.
 *
 * Precedence, lowest first: the table's default, the file, the
 * environment.  WORKQ_<KEY> names a key with dots turned into underscores,
 * upper case (WORKQ_KAFKA_BROKERS, WORKQ_LOG_LEVEL).  A SECRET key such as
 * postgres.password may instead come from a file: "password_file" next to
 * it in the config, or WORKQ_POSTGRES_PASSWORD_FILE; the file's content
 * without trailing newlines becomes the value.  Giving both the value and
 * its _file at the same level (both in the file, or both in the
 * environment) is an error.
 *
 * All errors are collected, never only the first: each is one line
 * "FILE:LINE: KEY: message" (or "environment WORKQ_X: KEY: message").
 * Unknown keys are errors, with a "did you mean" hint.
 *
 * Ownership: every string and list in a struct wq_config belongs to it and
 * is released by wq_config_free(); nothing points into libconfig after a
 * load.  Do not copy a loaded struct by assignment (both copies would
 * own the same strings); pass pointers.  Read it from any thread once
 * loaded, but do not load, free or call wq_config_transport_conf() on one
 * config from two threads at once.
 *
 * Lists of groups (handlers, queue_policies) have a table of their own
 * for the keys of one group; from the environment they are written in
 * libconfig syntax: WORKQ_HANDLERS='( { type = "x"; kind = "exec";
 * argv = [ "/bin/x" ]; } )'.
 *
 * Adding a key: one row in config_table.c, one field here, and its
 * documented entry in config/workq.conf (a unit test fails without it).
 */
#ifndef WQ_CONFIG_H
#define WQ_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"
#include "transport.h"
#include "wq.h"

/*
 * A big enough err buffer for wq_config_load: it holds about 30 error
 * lines.  Longer reports are cut at a line boundary and end with
 * "... and N more errors".
 */
#define WQ_CONFIG_ERRLEN 4096

/* Values of the enum keys: the index in the table's list of names. */
enum wq_kafka_security {        /* kafka.security_protocol */
    WQ_KAFKA_PLAINTEXT,
    WQ_KAFKA_SSL,
    WQ_KAFKA_SASL_PLAINTEXT,
    WQ_KAFKA_SASL_SSL,
};

enum wq_kafka_sasl {            /* kafka.sasl_mechanism */
    WQ_KAFKA_SASL_NONE,         /* "" */
    WQ_KAFKA_SASL_PLAIN,
    WQ_KAFKA_SASL_SCRAM_SHA_256,
    WQ_KAFKA_SASL_SCRAM_SHA_512,
};

enum wq_rabbitmq_queue_type {   /* rabbitmq.queue_type */
    WQ_RABBITMQ_QUORUM,
    WQ_RABBITMQ_CLASSIC,
};

/*
 * The defaults of handlers[].limit_* (config_table.c writes them as text:
 * "1G", "5m", 1024, 1024): an exec program is limited unless its handler
 * says otherwise (0: the worker's own limit).
 */
#define WQ_EXEC_LIMIT_MEMORY    (1LL << 30)
#define WQ_EXEC_LIMIT_CPU_MS    300000
#define WQ_EXEC_LIMIT_FILES     1024
#define WQ_EXEC_LIMIT_PROCESSES 1024

/* A string list key: n strings, also NULL-terminated (v[n] == NULL). */
struct wq_config_list {
    char **v;
    size_t n;
};

/* An integer list key: n ints, each within the row's [min, max]. */
struct wq_config_ints {
    int *v;
    size_t n;
};

/*
 * A list of groups key (handlers, queue_policies): n elements of the
 * row's element struct (elem_size bytes each), in file order.  Cast `v`
 * to the element type named in the comment of the field.
 */
struct wq_config_groups {
    void *v;
    size_t n;
};

/* handlers[].kind */
enum wq_handler_kind {
    WQ_HANDLER_BUILTIN,         /* noop, echo, ack, sleep, fail (worker) */
    WQ_HANDLER_EXEC,            /* a program: argv, stdin, stdout */
    WQ_HANDLER_PLUGIN,          /* a shared object (workq_plugin.h) */
    WQ_HANDLER_HTTP,            /* an HTTPS POST to a URL */
    WQ_HANDLER_PROCESS,         /* long-lived programs, framed protocol
                                   (docs/handler-protocol.md) */
};

/*
 * One element of `handlers`: which code runs tasks of a type.  Strings
 * are never NULL ("" when unset).  `where` says where the group was
 * written ("FILE:LINE"), for errors found later by the worker.
 */
struct wq_config_handler {
    char *where;
    char *type;                 /* task type ("resize"); "*": any type */
    char *queue;                /* only tasks of this queue; "": any */
    int kind;                   /* enum wq_handler_kind */
    char *builtin;              /* kind builtin: noop|echo|sleep|fail;
                                   "": the type's name */
    struct wq_config_list argv; /* exec, process: program and arguments */
    struct wq_config_list env;  /* exec, process: extra "NAME=value" */
    char *workdir;              /* exec, process: working directory;
                                   "": the worker's */
    int processes;              /* process: programs kept running */
    int max_in_flight;          /* process: tasks sent to one at once */
    char *plugin;               /* kind plugin: path of the .so */
    char *options;              /* builtin and plugin options */
    int64_t timeout_ms;         /* 0: none */
    int64_t kill_grace_ms;      /* exec: SIGTERM to SIGKILL; process:
                                   stdin closed to SIGKILL at a stop */
    struct wq_config_ints permanent_exit_codes;
    int max_output;             /* bytes of result kept (exec stdout) */
    int max_stderr;             /* bytes of exec stderr logged */
    /* exec: resource limits of the program (setrlimit(2)); 0: the
     * worker's own limit is inherited */
    int64_t limit_memory;       /* RLIMIT_AS, bytes */
    int64_t limit_cpu_ms;       /* RLIMIT_CPU; whole seconds, rounded up */
    int limit_files;            /* RLIMIT_NOFILE */
    int limit_processes;        /* RLIMIT_NPROC (per user) */
    int64_t limit_file_size;    /* RLIMIT_FSIZE, bytes */
    int core_dumps;             /* 0: RLIMIT_CORE 0 */
    int umask;                  /* exec: the program's umask */
    char *url;                  /* http: where tasks are POSTed */
    char *secret;               /* http: HMAC-SHA256 key; "": unsigned */
    char *tls_ca;               /* http: CA file; "": the system's */
    int follow_redirects;       /* http: 0: a 3xx is a permanent failure */
};

/*
 * One element of `queue_policies`: retries of a queue.  name "*" is the
 * policy of every queue without one of its own.
 */
struct wq_config_queue_policy {
    char *where;
    char *name;
    int max_attempts;           /* for tasks submitted without one */
    int64_t backoff_base_ms;
    int64_t backoff_cap_ms;
    int backoff_factor;
    int backoff_jitter;         /* enum wq_jitter (backoff.h) */
    int64_t retention_ms;       /* succeeded, cancelled kept; 0: the
                                   scheduler's default */
    int64_t dead_retention_ms;  /* dead kept; 0: the scheduler's */
    int64_t dead_ttl_ms;        /* copies on workq.Q.dead; 0: forever */
    int dead_max_length;        /* RabbitMQ: copies kept; 0: no limit */
    char *hook_url;             /* completion hook; "": none */
};

/*
 * One element of `rate_limits` (flow control; worker/flow_control.c): at
 * most `rate` tasks a second start, across every worker, of the queue
 * (type "") or of one type in it, after a burst of up to `burst`.
 */
struct wq_config_rate_limit {
    char *where;
    char *queue;
    char *type;                 /* "": every type of the queue together */
    int rate;                   /* tasks per second */
    int burst;                  /* 0: rate */
};

/* The bounds of workq.Q.dead of a queue without a policy (config_table.c
 * has the same defaults): 14 days, 100000 copies. */
#define WQ_DEAD_TTL_DEFAULT_MS      (336LL * 3600 * 1000)
#define WQ_DEAD_MAX_LENGTH_DEFAULT  100000

/* producer.auth */
enum wq_producer_auth {
    WQ_AUTH_TOKENS,
    WQ_AUTH_NONE,
};

/*
 * One element of `periodic`: a task the scheduler enqueues on a cron
 * schedule (cron.h; UTC).  Strings are never NULL.
 */
struct wq_config_periodic {
    char *where;
    char *name;                 /* unique; names the ticks in PostgreSQL */
    char *schedule;             /* five-field cron expression or @macro */
    char *queue;
    char *type;
    char *payload;              /* bytes of the task's payload */
    int max_attempts;           /* 0: the queue's policy */
    int priority;               /* enum wq_priority (priority.h) */
};

struct wq_config_derived;       /* private: storage of the helpers */

/*
 * The effective configuration.  Enum keys are ints holding the enum named
 * in the comment; durations are milliseconds (int64_t, field name ends in
 * _ms); strings are never NULL after a successful load ("" when unset).
 */
struct wq_config {
    struct {
        int level;              /* enum wq_log_level */
        int format;             /* enum wq_log_format */
        char *file;             /* "" = stderr */
    } log;

    int transport;              /* enum wq_transport_kind */

    struct {
        int64_t connect_timeout_ms;
    } broker;

    struct {
        char *brokers;
        int partitions;
        int replication_factor;
        int min_insync_replicas;    /* 0: the broker's default */
        int linger_ms;
        int session_timeout_ms;
        int security_protocol;  /* enum wq_kafka_security */
        int sasl_mechanism;     /* enum wq_kafka_sasl */
        char *sasl_username;
        char *sasl_password;    /* secret */
        char *ssl_ca_location;
    } kafka;

    struct {
        char *url;
        char *hosts;            /* more nodes, "host:port,..."; "": none */
        char *password;         /* secret; replaces the URL's password */
        int queue_type;         /* enum wq_rabbitmq_queue_type */
        int prefetch;
        int64_t heartbeat_ms;
        char *tls_ca;
    } rabbitmq;

    struct {
        /*
         * The store passes conninfo as "dbname" with expand_dbname=1 and
         * a non-empty password as "password" to PQconnectdbParams, so
         * both key=value strings and postgresql:// URIs work.
         */
        char *conninfo;
        char *password;         /* secret */
        int pool_size;
        int pooler;             /* enum wq_store_pooler (store.h) */
        char *listen_conninfo;  /* LISTEN's direct connection; "": none */
    } postgres;

    struct {
        struct wq_config_list queues;
        int concurrency;
        int64_t lease_ms;
        int64_t drain_timeout_ms;
        int64_t claim_after_ms; /* a first delivery runs unclaimed this
                                   long (store_claims.h); 0: claim first */
        int64_t batch_wait_ms;  /* least time between a worker's rounds
                                   under load; 0: a round at once */
        char *id;               /* "" = the worker makes "hostname-pid" */
        int batch_max;
        int builtin_handlers;
        /* claims per round of the priority bands (priority.h) */
        int priority_weight_high, priority_weight_normal;
        int priority_weight_low;
    } worker;

    struct wq_config_groups handlers;       /* struct wq_config_handler */
    struct wq_config_groups queue_policies; /* wq_config_queue_policy */
    struct wq_config_groups periodic;       /* wq_config_periodic */
    struct wq_config_groups rate_limits;    /* wq_config_rate_limit */

    struct {
        char *listen;
        char *tokens_file;
        int auth;               /* enum wq_producer_auth */
        int auth_none_nonloopback;
        int max_body;
        int threads;            /* HTTP server threads */
        int batch_max;          /* tasks in one :batch request */
        int rate_limit;         /* tasks per second; 0 = no limit */
        struct wq_config_list queues;   /* fnmatch patterns; empty: the
                                         * queues the config names */
        int max_queues;         /* distinct queues one producer takes */
        int64_t request_timeout_ms; /* wait for the broker at most */
        int64_t read_timeout_ms;    /* a request arrives whole within */
        int max_connections;
        char *tls_cert;             /* PEM file; "" = plain HTTP */
        char *tls_key;              /* PEM file of its private key */
        int receipts;               /* workq.accepted rows at submit */
    } producer;

    struct {
        int64_t poll_interval_ms;
        int batch_size;         /* rows per claim, publish, delete */
        int64_t publish_timeout_ms; /* wait for the broker's confirms */
        int64_t cron_catchup_ms;    /* missed ticks younger are run */
        int64_t retention_ms;       /* succeeded, cancelled; 0: forever */
        int64_t dead_retention_ms;  /* dead; 0: forever */
        int64_t retention_interval_ms;
        int64_t backlog_interval_ms;    /* broker backlog metrics; 0: off */
    } scheduler;

    struct {                    /* completion hooks (scheduler/hooks.c) */
        char *secret;           /* secret; "" = unsigned */
        char *tls_ca;           /* "" = the system's CAs */
        int64_t timeout_ms;
        int concurrency;        /* POSTs in flight in one round */
        int64_t backoff_base_ms;
        int64_t backoff_cap_ms;
    } hooks;

    struct {
        char *listen;           /* "" = no metrics endpoint */
    } metrics;

    struct wq_config_derived *derived_; /* private, see config.c */
};

/* ---- the table (config_table.c) ------------------------------------------ */

enum wq_config_type {
    WQ_CONFIG_STRING,   /* char *                                        */
    WQ_CONFIG_INT,      /* int, within [min, max]                        */
    WQ_CONFIG_BOOL,     /* int, 0 or 1                                   */
    WQ_CONFIG_ENUM,     /* int, index into values[] (case-insensitive)   */
    WQ_CONFIG_DURATION, /* int64_t ms, within [min, max] ms; the file    */
                        /* gives seconds (30, 1.5) or a string: "500ms", */
                        /* "30s", "5m", "2h", "1m30s"                    */
    WQ_CONFIG_SIZE,     /* int64_t bytes, within [min, max]; the file    */
                        /* gives an integer or a string with K, M, G or  */
                        /* T (powers of 1024): "512M", "2G", "64KiB"     */
    WQ_CONFIG_OCTAL,    /* int, within [min, max]; an octal string such  */
                        /* as "0077" (a umask), never a bare integer     */
    WQ_CONFIG_LIST,     /* struct wq_config_list, at least min items     */
    WQ_CONFIG_INT_LIST, /* struct wq_config_ints, items within [min, max] */
    WQ_CONFIG_GROUPS,   /* struct wq_config_groups: a libconfig list of  */
                        /* groups ( { ... }, { ... } ), each read with   */
                        /* the sub-table `sub`; from the environment in  */
                        /* libconfig syntax                              */
};

#define WQ_CONFIG_SECRET   0x1u /* may come from KEY_file; hidden in dumps */
#define WQ_CONFIG_REQUIRED 0x2u /* must end up non-empty */
/* Addresses, checked at load (empty passes only where the default is ""): */
#define WQ_CONFIG_LISTEN   0x4u /* HOST:PORT to listen on, as
                                   wq_http_listen_check accepts */
#define WQ_CONFIG_HOSTPORTS 0x8u /* "host:port,host:port", ports 1..65535 */
#define WQ_CONFIG_URL      0x10u /* scheme://[user@]host[:port][/...], the
                                   port 1..65535 when given */

struct wq_config_key {
    const char *key;            /* "kafka.brokers" */
    enum wq_config_type type;
    size_t offset;              /* offsetof(struct wq_config, ...) */
    const char *def;            /* default, written as the environment
                                   would give it ("4", "30s", "a,b") */
    long long min, max;         /* range (INT, DURATION ms, SIZE bytes,
                                   OCTAL); LIST: min items */
    const char *const *values;  /* ENUM: NULL-terminated names */
    unsigned flags;             /* WQ_CONFIG_SECRET | WQ_CONFIG_REQUIRED |
                                   an address kind (WQ_CONFIG_LISTEN...) */
    const char *doc;            /* one line for --help */
    /* GROUPS only: the keys of one element (offsets into the element
     * struct, no GROUPS among them), its size and the offset of its
     * `char *where` ("FILE:LINE" of the group). */
    const struct wq_config_key *sub;
    size_t nsub;
    size_t elem_size;
    size_t where_offset;
};

/* The one table, in the order of config/workq.conf, grouped by section. */
extern const struct wq_config_key wq_config_keys[];
extern const size_t wq_config_nkeys;

/* ---- loading ------------------------------------------------------------- */

/*
 * wq_config_defaults fills *out with the table's defaults only: no file,
 * no environment.  *out is overwritten (not freed first); release it with
 * wq_config_free().  Cannot fail: it aborts on a malformed default, which
 * is a bug in the table that the unit tests catch.
 */
void wq_config_defaults(struct wq_config *out);

/*
 * wq_config_load builds the effective configuration: defaults, then the
 * file at `path`, then *_file secrets, then WORKQ_* environment variables.
 * `path` NULL means WQ_SYSCONFDIR "/workq/workq.conf", and if that file
 * does not exist the result is defaults plus environment (no error); an
 * explicit path that cannot be opened is an error.
 *
 * *out is overwritten, not freed first.  Returns 0 with *out owning the
 * result (release with wq_config_free), or
 * WQ_ECONFIG with every problem found written into err, one
 * "FILE:LINE: KEY: message" line each, joined by '\n' (size err with
 * WQ_CONFIG_ERRLEN; a longer report is cut at a line boundary).  On
 * failure *out holds nothing and may still be passed to wq_config_free.
 * Blocks on file reads; uses getenv, so do not run it concurrently with
 * setenv.
 */
int wq_config_load(const char *path, struct wq_config *out, char *err,
    size_t errlen);

/*
 * wq_config_load_string is wq_config_load for a configuration held in
 * memory: `text` (libconfig syntax, NUL-terminated) takes the place of
 * the file and `name` that of its path in errors ("NAME:LINE: KEY: ...";
 * NULL: "(string)").  *_file secrets and the environment apply as with a
 * file; an @include is relative to the working directory.  Same results
 * and ownership as wq_config_load.
 */
int wq_config_load_string(const char *text, const char *name,
    struct wq_config *out, char *err, size_t errlen);

/*
 * wq_config_free releases every string and list of cfg, wiping secrets
 * first, and zeroes it.  Safe on a zeroed struct and twice in a row.
 */
void wq_config_free(struct wq_config *cfg);

/* ---- output -------------------------------------------------------------- */

/*
 * wq_config_print_doc writes --help style documentation of every key:
 * name, type and range, default, environment variable, secret file
 * variant, and the one-line doc.
 */
void wq_config_print_doc(FILE *fp);

/*
 * wq_config_dump writes the effective configuration as a libconfig file
 * that loads again.  Non-empty secrets are written as "<hidden>".
 */
void wq_config_dump(const struct wq_config *cfg, FILE *fp);

/* ---- helpers for other modules ------------------------------------------- */

/*
 * wq_config_transport_conf fills *out for wq_transport_open() from cfg:
 * kind, client_id (worker.id or NULL), the connect timeout and
 * dead_bounds (wq_config_dead_bounds with cfg); then every backend fills
 * its own fields from its rows (wq_transport_settings: Kafka brokers,
 * tuning and librdkafka property pairs; the AMQP URL with
 * rabbitmq.password in its userinfo, ...).  kafka_group_id,
 * publish_timeout_ms, on_confirm and on_confirm_user are left 0/NULL for
 * the caller to set.
 *
 * Every string *out points to is owned by cfg and stays valid until
 * wq_config_free(cfg), also across later calls (which reuse it while the
 * fields it came from stay unchanged).  Returns 0, or WQ_ECONFIG with err
 * set if a backend refuses its rows (a malformed AMQP URL).
 */
int wq_config_transport_conf(struct wq_config *cfg,
    struct wq_transport_conf *out, char *err, size_t errlen);

/*
 * wq_config_store_opts fills *out for wq_store_open_opts() from cfg's
 * postgres group (conninfo, password, pooler, listen_conninfo); the
 * strings stay cfg's.
 */
void wq_config_store_opts(const struct wq_config *cfg,
    struct wq_store_opts *out);

/*
 * wq_config_keep keeps a copy of the `len` bytes at p until
 * wq_config_free(cfg) and returns it; an identical copy kept earlier is
 * returned instead, so that the same content keeps the same address.
 * Copies are wiped when freed (they may hold secrets).  For the
 * transports' settings.  Not thread-safe.
 */
const void *wq_config_keep(struct wq_config *cfg, const void *p, size_t len);

/* wq_config_keepf keeps a formatted string, like wq_config_keep. */
const char *wq_config_keepf(struct wq_config *cfg, const char *fmt, ...)
    WQ_PRINTFLIKE(2, 3);

/* wq_config_enum_name is the name of the value of ENUM key `key` in cfg
 * ("sasl_ssl" for "kafka.security_protocol"); "" for an unknown key. */
const char *wq_config_enum_name(const struct wq_config *cfg,
    const char *key);

/*
 * wq_config_dead_bounds gives the bounds of workq.<queue>.dead: the
 * dead_ttl and dead_max_length of the queue's policy, else of the "*"
 * policy, else WQ_DEAD_TTL_DEFAULT_MS and WQ_DEAD_MAX_LENGTH_DEFAULT.
 * `user` is the struct wq_config.  The signature of
 * wq_transport_conf.dead_bounds.  Pure; thread-safe.
 */
void wq_config_dead_bounds(void *user, const char *queue, int64_t *ttl_ms,
    int64_t *max_length);

/*
 * wq_config_setup_log calls wq_log_setup() with the log.level,
 * log.format and log.file of cfg and the process name `procname`.
 * Returns its result: 0, or WQ_EIO with err set when log.file cannot be
 * opened (the log then stays on stderr).  Call before threads start.
 */
int wq_config_setup_log(const struct wq_config *cfg, const char *procname,
    char *err, size_t errlen);

/*
 * wq_config_parse_duration parses "500ms", "30s", "5m", "2h", sums of
 * them ("1h30m") or a bare integer of seconds into milliseconds.
 * Returns 0 and sets *ms, or WQ_EINVAL.  Pure; thread-safe.
 */
int wq_config_parse_duration(const char *s, int64_t *ms);

/*
 * wq_config_parse_size parses a size in bytes: a bare integer, or one
 * followed by K, M, G or T (also KiB, MiB, GiB, TiB; powers of 1024,
 * the letter in either case), as "512M" or "2G".  Returns 0 and sets
 * *bytes, or WQ_EINVAL (no digits, another suffix, or more than
 * INT64_MAX bytes).  Pure; thread-safe.
 */
int wq_config_parse_size(const char *s, int64_t *bytes);

#endif

/*
 * test_config.c - the configuration module: defaults, the documented
 * example config/workq.conf (which must document every key of the table
 * and nothing else), environment overrides, *_file secrets, error
 * collection with file:line:key, durations, lists, the dump, --help text
 * and the transport and log helpers.
 *
 * Each test runs in its own temporary directory (the harness makes it the
 * working directory), writes its fixture files there and starts from an
 * environment without WORKQ_* configuration variables.  The example file
 * is found through $WORKQ_SOURCE_DIR, else the source tree the Makefile
 * compiled in (WQ_SOURCE_DIR).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wq_test.h"
#include "config.h"
#include "log.h"

#ifndef WQ_SOURCE_DIR
#define WQ_SOURCE_DIR "."
#endif

#define assert_not_contains(hay, needle) do {                             \
    const char *h_ = (hay), *n_ = (needle);                               \
    if (strstr(h_, n_) != NULL)                                           \
        fail_msg("\"%s\"\n    contains \"%s\"", h_, n_);                  \
} while (0)

/* ---- helpers ------------------------------------------------------------- */

static void
env_of(const char *key, int file, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "WORKQ_");

    for (const char *p = key; *p && n + 1 < len; p++)
        buf[n++] = *p == '.' ? '_' : (char)(*p >= 'a' && *p <= 'z'
            ? *p - 'a' + 'A' : *p);
    buf[n] = '\0';
    if (file)
        snprintf(buf + n, len - n, "_FILE");
}

/* Removes every WORKQ_<KEY> and WORKQ_<KEY>_FILE the table knows. */
static void
clean_env(void)
{
    char name[160];

    for (size_t i = 0; i < wq_config_nkeys; i++) {
        env_of(wq_config_keys[i].key, 0, name, sizeof name);
        unsetenv(name);
        env_of(wq_config_keys[i].key, 1, name, sizeof name);
        unsetenv(name);
    }
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* A new string with the whole file; caller frees. */
static char *
read_whole(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (f == NULL)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static const char *
example_path(void)
{
    static char buf[PATH_MAX];
    const char *dir = getenv("WORKQ_SOURCE_DIR");

    snprintf(buf, sizeof buf, "%s/config/workq.conf",
        dir != NULL && dir[0] != '\0' ? dir : WQ_SOURCE_DIR);
    return buf;
}

/* The dump of cfg as a new string; caller frees. */
static char *
dump_of(const struct wq_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    wq_config_dump(cfg, f);
    fclose(f);
    return buf;
}

/* Loads text written to "test.conf"; returns wq_config_load's result. */
static int
load_text(const char *text, struct wq_config *cfg, char *err, size_t len)
{
    write_file("test.conf", text);
    return wq_config_load("test.conf", cfg, err, len);
}

/* Loads text that must be rejected; returns the error report. */
static const char *
load_bad(const char *text)
{
    static char err[WQ_CONFIG_ERRLEN];
    struct wq_config cfg;

    if (load_text(text, &cfg, err, sizeof err) != WQ_ECONFIG)
        fail_msg("accepted:\n%s", text);
    /* a failed load leaves nothing behind, and free stays safe */
    assert_null(cfg.log.file);
    wq_config_free(&cfg);
    return err;
}

static size_t
count_lines(const char *s)
{
    size_t n = s[0] != '\0';

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- defaults and the example file --------------------------------------- */

static void
check_defaults(const struct wq_config *c)
{
    assert_int_equal(c->log.level, WQ_LOG_INFO);
    assert_int_equal(c->log.format, WQ_LOG_TEXT);
    assert_string_equal(c->log.file, "");
    assert_int_equal(c->transport, WQ_TRANSPORT_RABBITMQ);
    assert_string_equal(c->kafka.brokers, "127.0.0.1:9092");
    assert_int_equal(c->kafka.partitions, 4);
    assert_int_equal(c->kafka.replication_factor, 1);
    assert_int_equal(c->kafka.linger_ms, 5);
    assert_int_equal(c->kafka.session_timeout_ms, 10000);
    assert_int_equal(c->kafka.security_protocol, WQ_KAFKA_PLAINTEXT);
    assert_int_equal(c->kafka.sasl_mechanism, WQ_KAFKA_SASL_NONE);
    assert_string_equal(c->kafka.sasl_username, "");
    assert_string_equal(c->kafka.sasl_password, "");
    assert_string_equal(c->kafka.ssl_ca_location, "");
    assert_string_equal(c->rabbitmq.url,
        "amqp://guest:guest@127.0.0.1:5672");
    assert_string_equal(c->rabbitmq.password, "");
    assert_int_equal(c->rabbitmq.queue_type, WQ_RABBITMQ_QUORUM);
    assert_int_equal(c->rabbitmq.prefetch, 64);
    assert_int_equal(c->rabbitmq.heartbeat_ms, 30000);
    assert_string_equal(c->rabbitmq.tls_ca, "");
    assert_string_equal(c->postgres.conninfo,
        "host=127.0.0.1 port=5432 dbname=workq");
    assert_string_equal(c->postgres.password, "");
    assert_int_equal(c->postgres.pool_size, 4);
    assert_int_equal(c->worker.queues.n, 1);
    assert_string_equal(c->worker.queues.v[0], "default");
    assert_null(c->worker.queues.v[1]);
    assert_int_equal(c->worker.concurrency, 16);
    assert_int_equal(c->worker.lease_ms, 30000);
    assert_int_equal(c->worker.drain_timeout_ms, 30000);
    assert_string_equal(c->worker.id, "");
    assert_string_equal(c->producer.listen, "127.0.0.1:8080");
    assert_string_equal(c->producer.tokens_file, "");
    assert_int_equal(c->producer.max_body, 1048576 + 65536);
    assert_int_equal(c->scheduler.poll_interval_ms, 1000);
    assert_string_equal(c->metrics.listen, "");
}

static void
test_config_defaults(void **state)
{
    struct wq_config c;
    char err[WQ_CONFIG_ERRLEN];
    struct stat st;

    (void)state;
    clean_env();
    wq_config_defaults(&c);
    check_defaults(&c);
    wq_config_free(&c);
    wq_config_free(&c);     /* twice is harmless */

    /* without the default file: defaults (plus env), no error */
    if (stat(WQ_SYSCONFDIR "/workq/workq.conf", &st) != 0) {
        assert_int_equal(wq_config_load(NULL, &c, err, sizeof err), 0);
        check_defaults(&c);
        wq_config_free(&c);
        setenv("WORKQ_POSTGRES_POOL_SIZE", "9", 1);
        assert_int_equal(wq_config_load(NULL, &c, err, sizeof err), 0);
        assert_int_equal(c.postgres.pool_size, 9);
        wq_config_free(&c);
    }
}

static void
test_config_example_loads(void **state)
{
    struct wq_config c, d;
    char err[WQ_CONFIG_ERRLEN] = "x";
    char *a, *b;

    (void)state;
    clean_env();
    if (wq_config_load(example_path(), &c, err, sizeof err) != 0)
        fail_msg("%s: %s", example_path(), err);
    assert_string_equal(err, "");
    /* it holds exactly the defaults */
    check_defaults(&c);
    wq_config_defaults(&d);
    a = dump_of(&c);
    b = dump_of(&d);
    assert_string_equal(a, b);
    free(a);
    free(b);
    wq_config_free(&c);
    wq_config_free(&d);
}

/*
 * A small reader of config/workq.conf's text: every setting with its
 * group path and whether a comment line stands right above it.
 */
struct doc_entry {
    char key[128];
    int commented;
};

static size_t
scan_example(struct doc_entry *out, size_t max)
{
    char *text = read_whole(example_path()), *line, *save = NULL;
    char stack[8][64];
    size_t depth = 0, n = 0;
    int comment = 0;

    for (line = strtok_r(text, "\n", &save); line != NULL;
        line = strtok_r(NULL, "\n", &save)) {
        char *p = line, name[64];
        size_t len;

        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0') {
            comment = 0;
            continue;
        }
        if (*p == '#' || strncmp(p, "//", 2) == 0) {
            comment = 1;
            continue;
        }
        if (*p == '}') {
            assert_true(depth > 0);
            depth--;
            comment = 0;
            continue;
        }
        len = strspn(p, "abcdefghijklmnopqrstuvwxyz"
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
        if (len == 0 || len >= sizeof name) {
            comment = 0;
            continue;       /* a continued value */
        }
        memcpy(name, p, len);
        name[len] = '\0';
        p += len;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '=' && *p != ':')
            fail_msg("cannot read this line of the example: %s", line);
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '{') {
            assert_true(depth < 8);
            snprintf(stack[depth++], sizeof stack[0], "%s", name);
        } else {
            char *key = out[n].key;

            assert_true(n < max);
            key[0] = '\0';
            for (size_t i = 0; i < depth; i++) {
                strcat(key, stack[i]);
                strcat(key, ".");
            }
            strcat(key, name);
            out[n].commented = comment;
            n++;
        }
        comment = 0;
    }
    assert_int_equal(depth, 0);
    free(text);
    return n;
}

static void
test_config_example_documents_every_key(void **state)
{
    struct doc_entry e[256];
    size_t n;

    (void)state;
    n = scan_example(e, WQ_ARRAY_LEN(e));
    for (size_t i = 0; i < wq_config_nkeys; i++) {
        const char *key = wq_config_keys[i].key;
        size_t j;

        for (j = 0; j < n; j++)
            if (strcmp(e[j].key, key) == 0)
                break;
        if (j == n)
            fail_msg("config/workq.conf does not set %s", key);
        if (!e[j].commented)
            fail_msg("config/workq.conf has no comment above %s", key);
    }
}

static void
test_config_example_keys_in_table(void **state)
{
    struct doc_entry e[256];
    size_t n;

    (void)state;
    n = scan_example(e, WQ_ARRAY_LEN(e));
    assert_int_equal(n, wq_config_nkeys);
    for (size_t j = 0; j < n; j++) {
        size_t i;

        for (i = 0; i < wq_config_nkeys; i++)
            if (strcmp(e[j].key, wq_config_keys[i].key) == 0)
                break;
        if (i == wq_config_nkeys)
            fail_msg("config/workq.conf sets %s, which is not in the table",
                e[j].key);
    }
}

/* Every key has a doc line, a sane range and a default inside it. */
static void
test_config_table_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < wq_config_nkeys; i++) {
        const struct wq_config_key *k = &wq_config_keys[i];

        assert_non_null(k->doc);
        assert_true(strlen(k->doc) > 10);
        assert_non_null(k->def);
        if (k->type == WQ_CONFIG_INT || k->type == WQ_CONFIG_DURATION)
            assert_true(k->min <= k->max);
        if (k->type == WQ_CONFIG_ENUM)
            assert_non_null(k->values);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(k->key, wq_config_keys[j].key);
    }
}

/* The names of enum keys are listed in the order of their C enums. */
static void
test_config_enum_order(void **state)
{
    struct wq_config c;
    char err[WQ_CONFIG_ERRLEN];

    (void)state;
    clean_env();
    for (size_t i = 0; i < wq_config_nkeys; i++) {
        const struct wq_config_key *k = &wq_config_keys[i];

        if (strcmp(k->key, "log.level") == 0)
            for (int j = 0; k->values[j] != NULL; j++)
                assert_int_equal(wq_log_level_parse(k->values[j]), j);
        if (strcmp(k->key, "log.format") == 0)
            for (int j = 0; k->values[j] != NULL; j++)
                assert_int_equal(wq_log_format_parse(k->values[j]), j);
        if (strcmp(k->key, "transport") == 0) {
            assert_string_equal(k->values[WQ_TRANSPORT_KAFKA], "kafka");
            assert_string_equal(k->values[WQ_TRANSPORT_RABBITMQ],
                "rabbitmq");
        }
    }
    assert_int_equal(load_text(
        "transport = \"KAFKA\";\n"
        "kafka = { security_protocol = \"sasl_ssl\";\n"
        "          sasl_mechanism = \"scram-sha-256\"; };\n"
        "rabbitmq = { queue_type = \"classic\"; };\n"
        "log = { level = \"warn\"; format = \"json\"; };\n",
        &c, err, sizeof err), 0);
    assert_int_equal(c.transport, WQ_TRANSPORT_KAFKA);
    assert_int_equal(c.kafka.security_protocol, WQ_KAFKA_SASL_SSL);
    assert_int_equal(c.kafka.sasl_mechanism, WQ_KAFKA_SASL_SCRAM_SHA_256);
    assert_int_equal(c.rabbitmq.queue_type, WQ_RABBITMQ_CLASSIC);
    assert_int_equal(c.log.level, WQ_LOG_WARN);
    assert_int_equal(c.log.format, WQ_LOG_JSON);
    wq_config_free(&c);
}

/* ---- precedence and secrets ---------------------------------------------- */

static void
test_config_env_beats_file(void **state)
{
    struct wq_config c;
    char err[WQ_CONFIG_ERRLEN];

    (void)state;
    clean_env();
    setenv("WORKQ_KAFKA_BROKERS", "env:2", 1);
    setenv("WORKQ_LOG_LEVEL", "error", 1);
    setenv("WORKQ_WORKER_QUEUES", "a, b ,c", 1);
    setenv("WORKQ_WORKER_LEASE", "2m", 1);
    setenv("WORKQ_POSTGRES_CONNINFO", "postgresql://db/jobs", 1);
    setenv("WORKQ_TRANSPORT", "kafka", 1);
    if (load_text(
        "log = { level = \"warn\"; format = \"json\"; };\n"
        "transport = \"rabbitmq\";\n"
        "kafka = { brokers = \"file:1\"; partitions = 8; };\n"
        "worker = { queues = [\"x\"]; lease = 10; concurrency = 3; };\n",
        &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(c.kafka.brokers, "env:2");
    assert_int_equal(c.kafka.partitions, 8);            /* file */
    assert_int_equal(c.log.level, WQ_LOG_ERROR);
    assert_int_equal(c.log.format, WQ_LOG_JSON);        /* file */
    assert_int_equal(c.transport, WQ_TRANSPORT_KAFKA);
    assert_int_equal(c.worker.queues.n, 3);
    assert_string_equal(c.worker.queues.v[0], "a");
    assert_string_equal(c.worker.queues.v[1], "b");
    assert_string_equal(c.worker.queues.v[2], "c");
    assert_null(c.worker.queues.v[3]);
    assert_int_equal(c.worker.lease_ms, 120000);
    assert_int_equal(c.worker.concurrency, 3);          /* file */
    assert_string_equal(c.postgres.conninfo, "postgresql://db/jobs");
    assert_int_equal(c.rabbitmq.prefetch, 64);          /* default */
    wq_config_free(&c);
}

static void
test_config_secret_file(void **state)
{
    struct wq_config c;
    char err[WQ_CONFIG_ERRLEN];

    (void)state;
    clean_env();
    write_file("pg.secret", "s3cret\n");
    write_file("amqp.secret", "r@bbit\r\n\n");
    setenv("WORKQ_RABBITMQ_PASSWORD_FILE", "amqp.secret", 1);
    setenv("WORKQ_KAFKA_SASL_PASSWORD", "kpass", 1);
    if (load_text(
        "postgres = { password_file = \"pg.secret\"; };\n"
        "rabbitmq = { password = \"from-file\"; };\n"
        "kafka = { sasl_password = \"overridden\"; };\n",
        &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(c.postgres.password, "s3cret");
    /* the environment's _FILE beats the file's value */
    assert_string_equal(c.rabbitmq.password, "r@bbit");
    assert_string_equal(c.kafka.sasl_password, "kpass");
    wq_config_free(&c);

    /* an empty password_file means "not used" */
    assert_int_equal(load_text(
        "postgres = { password = \"p\"; password_file = \"\"; };\n",
        &c, err, sizeof err), 0);
    assert_string_equal(c.postgres.password, "p");
    wq_config_free(&c);
}

static void
test_config_secret_and_file_is_error(void **state)
{
    const char *err;
    char name[64];

    (void)state;
    clean_env();
    write_file("pg.secret", "x\n");
    err = load_bad(
        "postgres = {\n"
        "    password = \"inline\";\n"
        "    password_file = \"pg.secret\";\n"
        "};\n");
    assert_contains(err, "test.conf:3: postgres.password_file: both "
        "password (at test.conf:2) and password_file are set");
    assert_int_equal(count_lines(err), 1);

    /* the same in the environment */
    setenv("WORKQ_KAFKA_SASL_PASSWORD", "inline", 1);
    setenv("WORKQ_KAFKA_SASL_PASSWORD_FILE", "pg.secret", 1);
    err = load_bad("");
    assert_contains(err, "environment WORKQ_KAFKA_SASL_PASSWORD_FILE: "
        "kafka.sasl_password: both WORKQ_KAFKA_SASL_PASSWORD and "
        "WORKQ_KAFKA_SASL_PASSWORD_FILE are set");
    /* _file is only for secrets */
    clean_env();
    err = load_bad("kafka = { brokers_file = \"x\"; };\n");
    assert_contains(err, "test.conf:1: kafka.brokers_file: unknown key");
    env_of("postgres.password", 1, name, sizeof name);
    assert_string_equal(name, "WORKQ_POSTGRES_PASSWORD_FILE");
}

static void
test_config_secret_file_unreadable(void **state)
{
    const char *err;

    (void)state;
    clean_env();
    err = load_bad("\n\npostgres = { password_file = \"missing.secret\"; };\n");
    assert_contains(err, "test.conf:3: postgres.password_file: cannot read "
        "missing.secret: No such file or directory");
    setenv("WORKQ_RABBITMQ_PASSWORD_FILE", "/nonexistent/secret", 1);
    err = load_bad("");
    assert_contains(err, "environment WORKQ_RABBITMQ_PASSWORD_FILE: "
        "rabbitmq.password: cannot read /nonexistent/secret");
    unsetenv("WORKQ_RABBITMQ_PASSWORD_FILE");
    assert_int_equal(mkdir("adir", 0700), 0);
    err = load_bad("kafka = { sasl_password_file = \"adir\"; };\n");
    assert_contains(err, "test.conf:1: kafka.sasl_password_file: cannot "
        "read adir");
}

/* ---- errors -------------------------------------------------------------- */

static void
test_config_multiple_errors(void **state)
{
    const char *err;

    (void)state;
    clean_env();
    setenv("WORKQ_POSTGRES_POOL_SIZE", "lots", 1);
    err = load_bad(
        "kafka = {\n"
        "    partitions = 0;\n"
        "    linger_ms = \"five\";\n"
        "};\n"
        "log = { level = \"loud\"; };\n");
    assert_contains(err, "test.conf:2: kafka.partitions: 0 is out of range "
        "1..1024\n");
    assert_contains(err, "test.conf:3: kafka.linger_ms: expected an "
        "integer, got a string\n");
    assert_contains(err, "test.conf:5: log.level: \"loud\" is not one of "
        "debug|info|warn|error\n");
    assert_contains(err, "environment WORKQ_POSTGRES_POOL_SIZE: "
        "postgres.pool_size: \"lots\" is not an integer");
    assert_int_equal(count_lines(err), 4);
}

static void
test_config_syntax_error(void **state)
{
    const char *err;

    (void)state;
    clean_env();
    err = load_bad(
        "log = {\n"
        "    level = = \"info\";\n"
        "};\n");
    assert_contains(err, "test.conf:2: ");
    assert_contains(err, "syntax error");
    assert_int_equal(count_lines(err), 1);
}

static void
test_config_include_names_its_file(void **state)
{
    const char *err;

    (void)state;
    clean_env();
    assert_int_equal(mkdir("etc", 0700), 0);
    write_file("etc/extra.conf", "\nworker = { concurrency = 0; };\n");
    write_file("etc/main.conf", "@include \"extra.conf\"\n");
    struct wq_config c;
    static char e[WQ_CONFIG_ERRLEN];
    assert_int_equal(wq_config_load("etc/main.conf", &c, e, sizeof e),
        WQ_ECONFIG);
    err = e;
    assert_contains(err, "extra.conf:2: worker.concurrency: 0 is out of "
        "range 1..4096");
}

static void
test_config_unknown_key(void **state)
{
    const char *err;

    (void)state;
    clean_env();
    err = load_bad(
        "kafka = { borkers = \"x\"; };\n"
        "frobnicate = 1;\n"
        "worker = { prefetch = 3; };\n"
        "logging = { level = \"info\"; };\n"
        "postgres = { pasword_file = \"x\"; };\n");
    assert_contains(err, "test.conf:1: kafka.borkers: unknown key (did you "
        "mean kafka.brokers?)\n");
    assert_contains(err, "test.conf:2: frobnicate: unknown key\n");
    assert_contains(err, "test.conf:3: worker.prefetch: unknown key (did "
        "you mean rabbitmq.prefetch?)\n");
    assert_contains(err, "test.conf:4: logging: unknown key\n");
    assert_contains(err, "test.conf:5: postgres.pasword_file: unknown key "
        "(did you mean postgres.password_file?)");
    assert_int_equal(count_lines(err), 5);
}

static void
test_config_group_mismatch(void **state)
{
    const char *err;

    (void)state;
    clean_env();
    err = load_bad(
        "kafka = \"localhost\";\n"
        "transport = { kind = \"kafka\"; };\n");
    assert_contains(err, "test.conf:1: kafka: expected a group { ... }, got "
        "a string\n");
    assert_contains(err, "test.conf:2: transport: expected a string, got a "
        "group");
}

static void
test_config_int_range(void **state)
{
    const char *err;
    struct wq_config c;
    char e[WQ_CONFIG_ERRLEN];

    (void)state;
    clean_env();
    err = load_bad("kafka = { partitions = 2000; };\n");
    assert_contains(err, "test.conf:1: kafka.partitions: 2000 is out of "
        "range 1..1024");
    err = load_bad("producer = { max_body = 9999999999L; };\n");
    assert_contains(err, "producer.max_body: 9999999999 is out of range");
    err = load_bad("postgres = { pool_size = 2.5; };\n");
    assert_contains(err, "postgres.pool_size: expected an integer, got a "
        "float");
    setenv("WORKQ_POSTGRES_POOL_SIZE", "0", 1);
    err = load_bad("");
    assert_contains(err, "environment WORKQ_POSTGRES_POOL_SIZE: "
        "postgres.pool_size: 0 is out of range 1..64");
    setenv("WORKQ_POSTGRES_POOL_SIZE", "4x", 1);
    err = load_bad("");
    assert_contains(err, "\"4x\" is not an integer");
    /* the bounds themselves are accepted */
    setenv("WORKQ_POSTGRES_POOL_SIZE", "64", 1);
    assert_int_equal(load_text("kafka = { partitions = 1; };\n", &c, e,
        sizeof e), 0);
    assert_int_equal(c.postgres.pool_size, 64);
    assert_int_equal(c.kafka.partitions, 1);
    wq_config_free(&c);
}

static void
test_config_bad_enum(void **state)
{
    const char *err;

    (void)state;
    clean_env();
    err = load_bad("transport = \"zeromq\";\n");
    assert_contains(err, "test.conf:1: transport: \"zeromq\" is not one of "
        "rabbitmq|kafka");
    err = load_bad("kafka = { sasl_mechanism = \"GSSAPI\"; };\n");
    assert_contains(err, "kafka.sasl_mechanism: \"GSSAPI\" is not one of "
        "\"\"|PLAIN|SCRAM-SHA-256|SCRAM-SHA-512");
    setenv("WORKQ_LOG_FORMAT", "xml", 1);
    err = load_bad("");
    assert_contains(err, "environment WORKQ_LOG_FORMAT: log.format: "
        "\"xml\" is not one of text|json");
}

static void
test_config_bad_duration(void **state)
{
    const char *err;

    (void)state;
    clean_env();
    err = load_bad(
        "worker = {\n"
        "    lease = \"10 parsecs\";\n"
        "    drain_timeout = true;\n"
        "};\n"
        "scheduler = { poll_interval = \"1ms\"; };\n"
        "rabbitmq = { heartbeat = -5; };\n");
    assert_contains(err, "test.conf:2: worker.lease: \"10 parsecs\" is not "
        "a duration");
    assert_contains(err, "test.conf:3: worker.drain_timeout: expected a "
        "duration: integer seconds or a string like \"30s\"");
    assert_contains(err, "got a boolean");
    assert_contains(err, "test.conf:5: scheduler.poll_interval: 1ms is out "
        "of range 10ms..1h");
    assert_contains(err, "test.conf:6: rabbitmq.heartbeat: -5 seconds is "
        "out of range");
    assert_int_equal(count_lines(err), 4);
    setenv("WORKQ_WORKER_LEASE", "5d", 1);
    err = load_bad("");
    assert_contains(err, "environment WORKQ_WORKER_LEASE: worker.lease: "
        "\"5d\" is not a duration");
}

static void
test_config_duration_units(void **state)
{
    static const struct { const char *s; int64_t ms; } ok[] = {
        { "500ms", 500 }, { "30s", 30000 }, { "5m", 300000 },
        { "2h", 7200000 }, { "1m30s", 90000 }, { "1h1m1s1ms", 3661001 },
        { "30", 30000 }, { "0", 0 }, { "0s", 0 },
    };
    static const char *const bad[] = {
        "", "s", "10 parsecs", "5d", "-1s", "1.5s", " 1s", "1s ", "1S",
        "99999999999999999999s", "9223372036854775807h", "ms5",
    };
    struct wq_config c;
    char err[WQ_CONFIG_ERRLEN];
    int64_t ms;

    (void)state;
    clean_env();
    for (size_t i = 0; i < WQ_ARRAY_LEN(ok); i++) {
        ms = -1;
        if (wq_config_parse_duration(ok[i].s, &ms) != 0)
            fail_msg("\"%s\" rejected", ok[i].s);
        assert_int_equal(ms, ok[i].ms);
    }
    for (size_t i = 0; i < WQ_ARRAY_LEN(bad); i++)
        if (wq_config_parse_duration(bad[i], &ms) != WQ_EINVAL)
            fail_msg("\"%s\" accepted", bad[i]);

    /* in the file: integer seconds, float seconds or a string */
    if (load_text(
        "rabbitmq = { heartbeat = 10; };\n"
        "worker = { lease = 1.5; drain_timeout = \"1m30s\"; };\n"
        "scheduler = { poll_interval = \"250ms\"; };\n",
        &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.rabbitmq.heartbeat_ms, 10000);
    assert_int_equal(c.worker.lease_ms, 1500);
    assert_int_equal(c.worker.drain_timeout_ms, 90000);
    assert_int_equal(c.scheduler.poll_interval_ms, 250);
    wq_config_free(&c);
}

static void
test_config_size_units(void **state)
{
    static const struct { const char *s; int64_t bytes; } ok[] = {
        { "0", 0 }, { "1000", 1000 }, { "512K", 512 << 10 },
        { "512k", 512 << 10 }, { "64M", 64 << 20 }, { "64MiB", 64 << 20 },
        { "2G", 2LL << 30 }, { "2g", 2LL << 30 }, { "2GiB", 2LL << 30 },
        { "1T", 1LL << 40 },
        { "8388607T", 8388607LL << 40 },
    };
    static const char *const bad[] = {
        "", "M", "1.5G", "-1", "1 G", " 1G", "1G ", "1GB", "1P", "1Gi",
        "12X", "99999999999999999999", "8388608T",
    };
    int64_t bytes;

    (void)state;
    for (size_t i = 0; i < WQ_ARRAY_LEN(ok); i++) {
        bytes = -1;
        if (wq_config_parse_size(ok[i].s, &bytes) != 0)
            fail_msg("\"%s\" rejected", ok[i].s);
        assert_int_equal(bytes, ok[i].bytes);
    }
    for (size_t i = 0; i < WQ_ARRAY_LEN(bad); i++)
        if (wq_config_parse_size(bad[i], &bytes) != WQ_EINVAL)
            fail_msg("\"%s\" accepted", bad[i]);
}

static void
test_config_string_list(void **state)
{
    struct wq_config c;
    char err[WQ_CONFIG_ERRLEN];
    const char *e;

    (void)state;
    clean_env();
    /* an array */
    assert_int_equal(load_text("worker = { queues = [\"mail\", \"pdf\"]; };\n",
        &c, err, sizeof err), 0);
    assert_int_equal(c.worker.queues.n, 2);
    assert_string_equal(c.worker.queues.v[0], "mail");
    assert_string_equal(c.worker.queues.v[1], "pdf");
    assert_null(c.worker.queues.v[2]);
    wq_config_free(&c);
    /* a list */
    assert_int_equal(load_text(
        "worker = { queues = (\"a\", \"b\", \"c\"); };\n",
        &c, err, sizeof err), 0);
    assert_int_equal(c.worker.queues.n, 3);
    assert_string_equal(c.worker.queues.v[2], "c");
    wq_config_free(&c);

    e = load_bad("worker = { queues = []; };\n");
    assert_contains(e, "test.conf:1: worker.queues: needs at least 1 item");
    e = load_bad("worker = { queues = [1, 2]; };\n");
    assert_contains(e, "worker.queues: item 1 is an integer, expected a "
        "string");
    e = load_bad("worker = { queues = (\"a\", 2); };\n");
    assert_contains(e, "worker.queues: item 2 is an integer");
    e = load_bad("worker = { queues = \"default\"; };\n");
    assert_contains(e, "worker.queues: expected a list of strings");
    e = load_bad("worker = { queues = [\"a\", \"\"]; };\n");
    assert_contains(e, "worker.queues: item 2 is empty");
    setenv("WORKQ_WORKER_QUEUES", "a,,b", 1);
    e = load_bad("");
    assert_contains(e, "environment WORKQ_WORKER_QUEUES: worker.queues: "
        "item 2 is empty");
    setenv("WORKQ_WORKER_QUEUES", "solo", 1);
    assert_int_equal(load_text("", &c, err, sizeof err), 0);
    assert_int_equal(c.worker.queues.n, 1);
    assert_string_equal(c.worker.queues.v[0], "solo");
    wq_config_free(&c);
}

static void
test_config_missing_path(void **state)
{
    struct wq_config c;
    char err[WQ_CONFIG_ERRLEN];

    (void)state;
    clean_env();
    assert_int_equal(wq_config_load("nope.conf", &c, err, sizeof err),
        WQ_ECONFIG);
    assert_string_equal(err, "nope.conf: cannot read: No such file or "
        "directory");
    wq_config_free(&c);
    assert_int_equal(mkdir("dir.conf", 0700), 0);
    assert_int_equal(wq_config_load("dir.conf", &c, err, sizeof err),
        WQ_ECONFIG);
    assert_contains(err, "dir.conf: cannot read: Is a directory");
    /* an empty file is a valid config of defaults */
    assert_int_equal(load_text("", &c, err, sizeof err), 0);
    check_defaults(&c);
    wq_config_free(&c);
}

static void
test_config_error_truncation(void **state)
{
    struct wq_config c;
    char text[4096] = "", err[300];
    size_t n = 0;

    (void)state;
    clean_env();
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "unknown_%d = 1;\n",
            i);
    assert_int_equal(load_text(text, &c, err, sizeof err), WQ_ECONFIG);
    assert_true(strlen(err) < sizeof err);
    assert_contains(err, "test.conf:1: unknown_0: unknown key\n");
    assert_contains(err, " more errors");
    /* every line but the last is whole */
    for (char *p = err, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1)
        assert_true(strncmp(p, "test.conf:", 10) == 0);

    /* a tiny buffer still gets the start of the first line */
    char tiny[16];
    assert_int_equal(load_text(text, &c, tiny, sizeof tiny), WQ_ECONFIG);
    assert_string_equal(tiny, "test.conf:1: un");
    /* and no buffer at all is allowed */
    assert_int_equal(load_text(text, &c, NULL, 0), WQ_ECONFIG);
}

/* ---- output -------------------------------------------------------------- */

/*
 * The configuration file and secret files: refused when others may
 * write them, a warning when others may read a secret in them.
 */
static void
test_config_file_permissions(void **state)
{
    struct wq_config c;
    char err[WQ_CONFIG_ERRLEN];
    char *log;

    (void)state;
    clean_env();
    assert_int_equal(wq_log_setup("t", WQ_LOG_INFO, WQ_LOG_TEXT, "t.log",
        err, sizeof err), 0);
    /* writable by others: refused, secret or not */
    write_file("perm.conf", "worker = { lease = \"5s\"; };\n");
    assert_int_equal(chmod("perm.conf", 0666), 0);
    assert_int_equal(wq_config_load("perm.conf", &c, err, sizeof err),
        WQ_ECONFIG);
    assert_contains(err, "perm.conf is writable by others (mode 0666)");
    /* readable by others, no secret: quiet */
    assert_int_equal(chmod("perm.conf", 0644), 0);
    if (wq_config_load("perm.conf", &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    wq_config_free(&c);
    /* readable by others with a password, in a key or in a conninfo */
    write_file("secret.conf", "postgres = { conninfo = \"host=db "
        "password=pw\"; };\n");
    assert_int_equal(chmod("secret.conf", 0644), 0);
    if (wq_config_load("secret.conf", &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    wq_config_free(&c);
    /* a secret file others may write: refused; read: a warning */
    write_file("pw", "s3cret\n");
    assert_int_equal(chmod("pw", 0646), 0);
    write_file("file.conf", "postgres = { password_file = \"pw\"; };\n");
    assert_int_equal(chmod("file.conf", 0600), 0);
    assert_int_equal(wq_config_load("file.conf", &c, err, sizeof err),
        WQ_ECONFIG);
    assert_contains(err, "secret file pw is writable by others");
    assert_int_equal(chmod("pw", 0604), 0);
    if (wq_config_load("file.conf", &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    wq_config_free(&c);

    log = read_whole("t.log");
    assert_not_contains(log, "perm.conf");
    assert_contains(log, "configuration file secret.conf is readable by "
        "others (mode 0644)");
    assert_contains(log, "secret file pw is readable by others (mode 0604)");
    assert_not_contains(log, "s3cret");
    free(log);
}

static void
test_config_dump_hides_secrets(void **state)
{
    struct wq_config c, d;
    char err[WQ_CONFIG_ERRLEN];
    char *a, *b;

    (void)state;
    clean_env();
    setenv("WORKQ_POSTGRES_PASSWORD", "hunter2", 1);
    setenv("WORKQ_KAFKA_SASL_PASSWORD", "kafka-secret", 1);
    setenv("WORKQ_RABBITMQ_PASSWORD", "amqp-secret", 1);
    setenv("WORKQ_WORKER_QUEUES", "a,\"quoted\"", 1);
    setenv("WORKQ_LOG_FILE", "/var/log/workq\\x.log", 1);
    /* passwords inside connection strings are hidden too */
    setenv("WORKQ_POSTGRES_CONNINFO",
        "host=db password='pg \\'inline' dbname=workq", 1);
    setenv("WORKQ_RABBITMQ_URL", "amqps://app:url-secret@mq:5671/vh", 1);
    if (load_text("worker = { lease = 5401; };\n", &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    a = dump_of(&c);
    assert_not_contains(a, "inline");
    assert_not_contains(a, "url-secret");
    assert_contains(a, "amqps://app:<hidden>@mq:5671/vh");
    assert_contains(a, "host=db password=<hidden> dbname=workq");
    assert_not_contains(a, "hunter2");
    assert_not_contains(a, "kafka-secret");
    assert_not_contains(a, "amqp-secret");
    assert_contains(a, "    password = \"<hidden>\";\n");
    assert_contains(a, "    sasl_password = \"<hidden>\";\n");
    assert_contains(a, "    lease = \"1h30m1s\";\n");
    assert_contains(a, "transport = \"rabbitmq\";\n");
    assert_contains(a, "log = {\n    level = \"info\";\n");

    /* the dump is a config file that loads to the same dump */
    clean_env();
    write_file("dumped.conf", a);
    if (wq_config_load("dumped.conf", &d, err, sizeof err) != 0)
        fail_msg("%s\n%s", err, a);
    b = dump_of(&d);
    assert_string_equal(a, b);
    assert_string_equal(d.worker.queues.v[1], "\"quoted\"");
    assert_string_equal(d.log.file, "/var/log/workq\\x.log");
    free(a);
    free(b);
    wq_config_free(&c);
    wq_config_free(&d);
}

static void
test_config_print_doc(void **state)
{
    char *buf = NULL, name[160];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    (void)state;
    assert_non_null(f);
    wq_config_print_doc(f);
    fclose(f);
    for (size_t i = 0; i < wq_config_nkeys; i++) {
        const struct wq_config_key *k = &wq_config_keys[i];

        assert_contains(buf, k->key);
        assert_contains(buf, k->doc);
        env_of(k->key, 0, name, sizeof name);
        assert_contains(buf, name);
        if (k->flags & WQ_CONFIG_SECRET) {
            env_of(k->key, 1, name, sizeof name);
            assert_contains(buf, name);
        }
    }
    assert_contains(buf, "integer 1..1024");
    assert_contains(buf, "one of debug|info|warn|error");
    assert_contains(buf, "duration 1s..24h");
    /* the keys of a group's table, with their types */
    assert_contains(buf, "handlers[].limit_memory  (size 0..1024T, default "
        "\"1G\")");
    assert_contains(buf, "handlers[].umask  (octal 0000..0777, default "
        "\"0077\")");
    assert_contains(buf, "handlers[].core_dumps  (boolean, default false)");
    free(buf);
}

/* ---- helpers for other modules ------------------------------------------- */

static void
test_config_transport_kafka(void **state)
{
    struct wq_config c;
    struct wq_transport_conf t, t2;
    char err[WQ_CONFIG_ERRLEN];

    (void)state;
    clean_env();
    wq_config_defaults(&c);
    assert_int_equal(wq_config_transport_conf(&c, &t, err, sizeof err), 0);
    assert_int_equal(t.kafka_nprops, 1);
    assert_string_equal(t.kafka_props[0], "security.protocol=plaintext");
    wq_config_free(&c);

    write_file("k.secret", "pa=ss\n");
    if (load_text(
        "transport = \"kafka\";\n"
        "kafka = {\n"
        "    brokers = \"k1:9093,k2:9093\";\n"
        "    partitions = 12; replication_factor = 3;\n"
        "    linger_ms = 20; session_timeout_ms = 6000;\n"
        "    security_protocol = \"sasl_ssl\";\n"
        "    sasl_mechanism = \"SCRAM-SHA-512\";\n"
        "    sasl_username = \"svc\";\n"
        "    sasl_password_file = \"k.secret\";\n"
        "    ssl_ca_location = \"/etc/ssl/ca.pem\";\n"
        "};\n"
        "worker = { id = \"w-1\"; };\n", &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(wq_config_transport_conf(&c, &t, err, sizeof err), 0);
    assert_int_equal(t.kind, WQ_TRANSPORT_KAFKA);
    assert_string_equal(t.client_id, "w-1");
    assert_string_equal(t.kafka_brokers, "k1:9093,k2:9093");
    assert_null(t.kafka_group_id);
    assert_int_equal(t.kafka_partitions, 12);
    assert_int_equal(t.kafka_replication, 3);
    assert_int_equal(t.kafka_linger_ms, 20);
    assert_int_equal(t.kafka_session_timeout_ms, 6000);
    assert_int_equal(t.kafka_nprops, 5);
    assert_string_equal(t.kafka_props[0], "security.protocol=sasl_ssl");
    assert_string_equal(t.kafka_props[1], "sasl.mechanism=SCRAM-SHA-512");
    assert_string_equal(t.kafka_props[2], "sasl.username=svc");
    assert_string_equal(t.kafka_props[3], "sasl.password=pa=ss");
    assert_string_equal(t.kafka_props[4], "ssl.ca.location=/etc/ssl/ca.pem");
    assert_null(t.on_confirm);

    /* a second call reuses the same storage */
    assert_int_equal(wq_config_transport_conf(&c, &t2, err, sizeof err), 0);
    assert_ptr_equal(t2.kafka_props, t.kafka_props);
    assert_ptr_equal(t2.amqp_url, t.amqp_url);

    /* after a change the old strings stay valid until wq_config_free */
    free(c.kafka.sasl_username);
    c.kafka.sasl_username = strdup("other");
    assert_int_equal(wq_config_transport_conf(&c, &t2, err, sizeof err), 0);
    assert_string_equal(t2.kafka_props[2], "sasl.username=other");
    assert_string_equal(t.kafka_props[2], "sasl.username=svc");
    wq_config_free(&c);
}

static void
test_config_transport_rabbitmq(void **state)
{
    struct wq_config c;
    struct wq_transport_conf t;
    char err[WQ_CONFIG_ERRLEN];

    (void)state;
    clean_env();
    wq_config_defaults(&c);
    assert_int_equal(wq_config_transport_conf(&c, &t, err, sizeof err), 0);
    assert_int_equal(t.kind, WQ_TRANSPORT_RABBITMQ);
    assert_string_equal(t.amqp_url, "amqp://guest:guest@127.0.0.1:5672");
    assert_int_equal(t.amqp_quorum, 1);
    assert_int_equal(t.amqp_prefetch, 64);
    assert_int_equal(t.amqp_heartbeat_s, 30);
    assert_null(t.amqp_cacert);
    assert_null(t.client_id);
    wq_config_free(&c);

    setenv("WORKQ_RABBITMQ_PASSWORD", "p@ss:w/rd", 1);
    if (load_text(
        "rabbitmq = {\n"
        "    url = \"amqps://bob:old@mq.example:5671/jobs\";\n"
        "    queue_type = \"classic\"; prefetch = 200;\n"
        "    heartbeat = \"500ms\"; tls_ca = \"/etc/ca.pem\";\n"
        "};\n", &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(wq_config_transport_conf(&c, &t, err, sizeof err), 0);
    assert_string_equal(t.amqp_url,
        "amqps://bob:p%40ss%3Aw%2Frd@mq.example:5671/jobs");
    assert_int_equal(t.amqp_quorum, 0);
    assert_int_equal(t.amqp_prefetch, 200);
    assert_int_equal(t.amqp_heartbeat_s, 1);    /* rounded up, not off */
    assert_string_equal(t.amqp_cacert, "/etc/ca.pem");
    wq_config_free(&c);

    /* no userinfo: RabbitMQ's default user gets the password */
    setenv("WORKQ_RABBITMQ_PASSWORD", "x", 1);
    setenv("WORKQ_RABBITMQ_URL", "amqp://mq/", 1);
    assert_int_equal(load_text("", &c, err, sizeof err), 0);
    assert_int_equal(wq_config_transport_conf(&c, &t, err, sizeof err), 0);
    assert_string_equal(t.amqp_url, "amqp://guest:x@mq/");
    wq_config_free(&c);

    /* user without password, and an '@' in the path */
    setenv("WORKQ_RABBITMQ_URL", "amqp://ann@mq:5672/v@h", 1);
    assert_int_equal(load_text("", &c, err, sizeof err), 0);
    assert_int_equal(wq_config_transport_conf(&c, &t, err, sizeof err), 0);
    assert_string_equal(t.amqp_url, "amqp://ann:x@mq:5672/v@h");
    wq_config_free(&c);

    setenv("WORKQ_RABBITMQ_URL", "not a url", 1);
    assert_int_equal(load_text("", &c, err, sizeof err), 0);
    assert_int_equal(wq_config_transport_conf(&c, &t, err, sizeof err),
        WQ_ECONFIG);
    assert_contains(err, "rabbitmq.url");
    wq_config_free(&c);
}

static void
test_config_setup_log(void **state)
{
    struct wq_config c;
    char err[WQ_CONFIG_ERRLEN];
    char *text;

    (void)state;
    clean_env();
    assert_int_equal(load_text(
        "log = { level = \"warn\"; format = \"json\"; file = \"t.log\"; };\n",
        &c, err, sizeof err), 0);
    assert_int_equal(wq_config_setup_log(&c, "cfgtest", err, sizeof err), 0);
    wq_log_info("t", "not-written");
    wq_log(WQ_LOG_WARN, "t", "written");
    text = read_whole("t.log");
    assert_not_contains(text, "not-written");
    assert_contains(text, "written");
    assert_contains(text, "cfgtest");
    assert_contains(text, "{");
    free(text);
    wq_config_free(&c);

    /* an unopenable log file is reported */
    assert_int_equal(load_text(
        "log = { file = \"/nonexistent/dir/x.log\"; };\n", &c, err,
        sizeof err), 0);
    assert_int_equal(wq_config_setup_log(&c, "cfgtest", err, sizeof err),
        WQ_EIO);
    assert_contains(err, "/nonexistent/dir/x.log");
    wq_config_free(&c);
}

/* A configuration held in memory: same results, named in its errors. */
static void
test_config_load_string(void **state)
{
    struct wq_config c;
    char err[WQ_CONFIG_ERRLEN];

    (void)state;
    clean_env();
    assert_int_equal(wq_config_load_string("producer = { read_timeout = "
        "\"3s\"; tls_cert = \"c.pem\"; tls_key = \"k.pem\"; };\n",
        "mem.conf", &c, err, sizeof err), 0);
    assert_int_equal(c.producer.read_timeout_ms, 3000);
    assert_string_equal(c.producer.tls_cert, "c.pem");
    assert_string_equal(c.producer.tls_key, "k.pem");
    assert_int_equal(c.producer.max_connections, 1024);
    wq_config_free(&c);

    assert_int_equal(wq_config_load_string("\nworker = { concurrency = 0; "
        "};\n", "mem.conf", &c, err, sizeof err), WQ_ECONFIG);
    assert_contains(err, "mem.conf:2: worker.concurrency");
    wq_config_free(&c);
    assert_int_equal(wq_config_load_string("a = ", NULL, &c, err,
        sizeof err), WQ_ECONFIG);
    assert_contains(err, "(string):1");
    wq_config_free(&c);
    /* an empty text is the defaults */
    assert_int_equal(wq_config_load_string("", NULL, &c, err, sizeof err),
        0);
    assert_string_equal(c.producer.listen, "127.0.0.1:8080");
    wq_config_free(&c);
}

/* The bounds of workq.Q.dead: the queue's policy, the "*" policy, the
 * defaults; and producer.auth parses. */
static void
test_config_dead_bounds_and_auth(void **state)
{
    struct wq_config c;
    char err[WQ_CONFIG_ERRLEN];
    struct wq_transport_conf tc;
    int64_t ttl, max;

    (void)state;
    assert_int_equal(wq_config_load_string("", NULL, &c, err, sizeof err),
        0);
    wq_config_dead_bounds(&c, "any", &ttl, &max);
    assert_int_equal(ttl, 14LL * 24 * 3600 * 1000);
    assert_int_equal(max, 100000);
    assert_int_equal(c.producer.auth, WQ_AUTH_TOKENS);
    assert_int_equal(c.producer.auth_none_nonloopback, 0);
    wq_config_free(&c);

    assert_int_equal(wq_config_load_string("queue_policies = ( "
        "{ name = \"emails\"; dead_ttl = \"1h\"; dead_max_length = 10; }, "
        "{ name = \"*\"; dead_ttl = \"0s\"; } );\n"
        "producer = { auth = \"none\"; auth_none_nonloopback = true; };\n",
        NULL, &c, err, sizeof err), 0);
    wq_config_dead_bounds(&c, "emails", &ttl, &max);
    assert_int_equal(ttl, 3600000);
    assert_int_equal(max, 10);
    wq_config_dead_bounds(&c, "other", &ttl, &max);
    assert_int_equal(ttl, 0);
    assert_int_equal(max, 100000);
    assert_int_equal(c.producer.auth, WQ_AUTH_NONE);
    assert_int_equal(c.producer.auth_none_nonloopback, 1);
    assert_int_equal(wq_config_transport_conf(&c, &tc, err, sizeof err), 0);
    assert_true(tc.dead_bounds == wq_config_dead_bounds);
    assert_true(tc.dead_bounds_user == &c);
    wq_config_free(&c);

    assert_int_equal(wq_config_load_string("producer = { auth = \"open\"; "
        "};\n", NULL, &c, err, sizeof err), WQ_ECONFIG);
    assert_contains(err, "producer.auth");
    wq_config_free(&c);
}

/*
 * Addresses are checked at load, with file:line:key: a listen address
 * with a port out of range or a host that is not an address, a Kafka
 * broker list item without a valid port, an AMQP URL with a bad port.
 * The good forms pass, and an empty metrics.listen (off) too.
 */
static void
test_config_addresses_checked_at_load(void **state)
{
    struct wq_config c;
    char err[WQ_CONFIG_ERRLEN];
    const char *e;

    (void)state;
    clean_env();
    e = load_bad("producer = { listen = \"127.0.0.1:99999\"; };\n");
    assert_contains(e, "test.conf:1: producer.listen");
    assert_contains(e, "99999");
    e = load_bad("\nmetrics = { listen = \"myhost:9100\"; };\n");
    assert_contains(e, "test.conf:2: metrics.listen");
    e = load_bad("producer = { listen = \"8080\"; };\n");
    assert_contains(e, "producer.listen");
    e = load_bad("kafka = { brokers = \"k1:9092, k2\"; };\n");
    assert_contains(e, "test.conf:1: kafka.brokers");
    assert_contains(e, "\"k2\"");
    e = load_bad("kafka = { brokers = \"k1:65536\"; };\n");
    assert_contains(e, "kafka.brokers");
    e = load_bad("rabbitmq = { url = \"amqp://u:p@h:0/v\"; };\n");
    assert_contains(e, "test.conf:1: rabbitmq.url");
    e = load_bad("rabbitmq = { url = \"amqp://u@h:5672x/v@h:1\"; };\n");
    assert_contains(e, "rabbitmq.url");

    assert_int_equal(load_text("producer = { listen = \"*:0\"; };\n"
        "metrics = { listen = \"\"; };\n"
        "kafka = { brokers = \"k1:9092, [::1]:9093\"; };\n"
        "rabbitmq = { url = \"amqps://u:p@rabbit.example:5671/v@h\"; };\n",
        &c, err, sizeof err), 0);
    wq_config_free(&c);
    assert_int_equal(load_text("rabbitmq = { url = \"amqp://rabbit\"; };\n",
        &c, err, sizeof err), 0);
    wq_config_free(&c);

    /* the environment is checked the same way */
    setenv("WORKQ_PRODUCER_LISTEN", "127.0.0.1:99999", 1);
    assert_int_equal(load_text("", &c, err, sizeof err), WQ_ECONFIG);
    assert_contains(err, "WORKQ_PRODUCER_LISTEN");
    wq_config_free(&c);
    unsetenv("WORKQ_PRODUCER_LISTEN");
}

/* A transaction-mode pooler without a connection for LISTEN is refused
 * at load (cancels of running tasks would be lost), with the key. */
static void
test_config_pooler_needs_listen_conninfo(void **state)
{
    struct wq_config c;
    struct wq_store_opts so;
    char err[WQ_CONFIG_ERRLEN];
    const char *e;

    (void)state;
    clean_env();
    e = load_bad("postgres = { pooler = \"transaction\"; };\n");
    assert_contains(e, "test.conf: postgres.listen_conninfo");
    assert_contains(e, "required when postgres.pooler is \"transaction\"");
    e = load_bad("postgres = { pooler = \"statement\"; };\n");
    assert_contains(e, "postgres.pooler");

    assert_int_equal(load_text("postgres = { pooler = \"transaction\";\n"
        "  conninfo = \"host=b port=6432\";\n"
        "  listen_conninfo = \"host=db port=5432\"; };\n", &c, err,
        sizeof err), 0);
    wq_config_store_opts(&c, &so);
    assert_int_equal(so.pooler, WQ_STORE_POOLER_TRANSACTION);
    assert_string_equal(so.conninfo, "host=b port=6432");
    assert_string_equal(so.listen_conninfo, "host=db port=5432");
    wq_config_free(&c);

    assert_int_equal(load_text("", &c, err, sizeof err), 0);
    assert_int_equal(c.postgres.pooler, WQ_STORE_POOLER_NONE);
    assert_string_equal(c.postgres.listen_conninfo, "");
    wq_config_free(&c);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_config_dead_bounds_and_auth),
    cmocka_unit_test(test_config_load_string),
    cmocka_unit_test(test_config_defaults),
    cmocka_unit_test(test_config_example_loads),
    cmocka_unit_test(test_config_example_documents_every_key),
    cmocka_unit_test(test_config_example_keys_in_table),
    cmocka_unit_test(test_config_table_rows),
    cmocka_unit_test(test_config_enum_order),
    cmocka_unit_test(test_config_env_beats_file),
    cmocka_unit_test(test_config_secret_file),
    cmocka_unit_test(test_config_secret_and_file_is_error),
    cmocka_unit_test(test_config_secret_file_unreadable),
    cmocka_unit_test(test_config_multiple_errors),
    cmocka_unit_test(test_config_syntax_error),
    cmocka_unit_test(test_config_include_names_its_file),
    cmocka_unit_test(test_config_unknown_key),
    cmocka_unit_test(test_config_group_mismatch),
    cmocka_unit_test(test_config_int_range),
    cmocka_unit_test(test_config_bad_enum),
    cmocka_unit_test(test_config_bad_duration),
    cmocka_unit_test(test_config_duration_units),
    cmocka_unit_test(test_config_size_units),
    cmocka_unit_test(test_config_string_list),
    cmocka_unit_test(test_config_missing_path),
    cmocka_unit_test(test_config_error_truncation),
    cmocka_unit_test(test_config_file_permissions),
    cmocka_unit_test(test_config_dump_hides_secrets),
    cmocka_unit_test(test_config_print_doc),
    cmocka_unit_test(test_config_transport_kafka),
    cmocka_unit_test(test_config_transport_rabbitmq),
    cmocka_unit_test(test_config_setup_log),
    cmocka_unit_test(test_config_addresses_checked_at_load),
    cmocka_unit_test(test_config_pooler_needs_listen_conninfo),
};

WQ_TEST_MAIN("config", tests)

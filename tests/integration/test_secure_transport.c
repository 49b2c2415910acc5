/*
 * test_secure_transport.c - the brokers and PostgreSQL over TLS and SASL,
 * configured only through workq's configuration (a libconfig text read
 * by wq_config_load_string, then wq_config_transport_conf or
 * wq_store_open, as every daemon does), against the TLS and SASL
 * listeners of tests/services with its throwaway CA:
 *
 *   - RabbitMQ amqps:// with rabbitmq.tls_ca: a publish confirmed and
 *     consumed back; another CA, or a host name the certificate does not
 *     name, is refused with a clear error;
 *   - Kafka with security_protocol ssl, sasl_plaintext and sasl_ssl
 *     (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, the password from a
 *     *_file secret): a round trip through each listener and mechanism;
 *     another CA, the system's CAs or a wrong password
 *     confirm nothing, and the log says why (never the password);
 *   - PostgreSQL with sslmode=verify-full and sslrootcert = the test CA:
 *     the session is encrypted (pg_stat_ssl); another CA fails with
 *     "certificate verify failed".
 *
 * The transports' own log lines go to stderr (the test's output).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "store.h"
#include "transport.h"
#include "uuid.h"
#include "wq_test.h"
#include "wq_test_broker.h"
#include "wq_test_pg.h"

#define TLS_CA()       wq_test_env("WORKQ_TEST_TLS_CA", \
    "/var/tmp/workq-services/tls/ca.pem")
#define TLS_OTHER_CA() wq_test_env("WORKQ_TEST_TLS_OTHER_CA", \
    "/var/tmp/workq-services/tls/other-ca.pem")
#define AMQPS_URL()    wq_test_env("WORKQ_TEST_AMQPS_URL", \
    "amqps://guest:guest@localhost:55671/%2f")
#define KAFKA_SSL()    wq_test_env("WORKQ_TEST_KAFKA_SSL_BROKERS", \
    "127.0.0.1:59094")
#define KAFKA_SASL()   wq_test_env("WORKQ_TEST_KAFKA_SASL_BROKERS", \
    "127.0.0.1:59095")
#define KAFKA_SASL_SSL() wq_test_env("WORKQ_TEST_KAFKA_SASL_SSL_BROKERS", \
    "127.0.0.1:59096")
#define SASL_USER()    wq_test_env("WORKQ_TEST_KAFKA_SASL_USER", "workq")
#define SASL_PASS()    wq_test_env("WORKQ_TEST_KAFKA_SASL_PASSWORD", \
    "workq-test-secret")

/* Loads a configuration text or fails the test. */
static void
load(const char *text, struct wq_config *cfg)
{
    char err[WQ_CONFIG_ERRLEN];

    if (wq_config_load_string(text, "test.conf", cfg, err, sizeof err) != 0)
        fail_msg("configuration rejected:\n%s\n---\n%s", err, text);
}

/*
 * Opens the transport `cfg` describes, declares `queue`, publishes one
 * message and waits for its confirmation, then consumes it back with a
 * second connection of the same configuration.  Returns 0, or the first
 * failure's code with its reason in err.
 */
static int
roundtrip(struct wq_config *cfg, const char *queue, char *err, size_t errlen)
{
    struct wq_transport_conf tc;
    wq_transport *pub = NULL, *sub = NULL;
    const char *qs[1] = { queue };
    char body[128];
    int rc, found = 0;
    uint64_t deadline;

    snprintf(body, sizeof body, "secure-%s-%d", queue, (int)getpid());
    if ((rc = wq_config_transport_conf(cfg, &tc, err, errlen)) != 0)
        return rc;
    tc.kafka_session_timeout_ms = 6000;
    if ((rc = wq_transport_open(&tc, &pub, err, errlen)) != 0)
        return rc;
    if ((rc = wq_transport_declare(pub, queue, err, errlen)) != 0
        || (rc = wq_transport_publish(pub, queue, "k", 1, body,
        strlen(body), NULL, err, errlen)) != 0
        || (rc = wq_transport_flush(pub, 20000, err, errlen)) != 0)
        goto out;
    if ((rc = wq_transport_open(&tc, &sub, err, errlen)) != 0
        || (rc = wq_transport_subscribe(sub, qs, 1, err, errlen)) != 0)
        goto out;
    deadline = wq_clock_mono_ns() + 60ull * 1000000000u;
    while (!found && wq_clock_mono_ns() < deadline) {
        wq_delivery *d;

        rc = wq_transport_poll(sub, &d, 500, err, errlen);
        if (rc == WQ_EAGAIN)
            continue;
        if (rc != 0)
            goto out;
        found = d->len == strlen(body) && memcmp(d->body, body, d->len) == 0;
        if ((rc = wq_transport_ack(sub, d, err, errlen)) != 0)
            goto out;
    }
    rc = found ? 0 : wq_seterr(err, errlen, WQ_ETIMEOUT,
        "the message did not come back within 60 s");
out:
    wq_transport_close(sub, 5000);
    wq_transport_close(pub, 5000);
    return rc;
}

/* --- RabbitMQ ------------------------------------------------------------ */

static void
test_secure_amqps_roundtrip(void **state)
{
    struct wq_config cfg;
    char text[2048], err[WQ_ERRLEN];

    (void)state;
    snprintf(text, sizeof text, "transport = \"rabbitmq\";\n"
        "rabbitmq = { url = \"%s\"; tls_ca = \"%s\"; };\n", AMQPS_URL(),
        TLS_CA());
    load(text, &cfg);
    if (roundtrip(&cfg, wq_test_queue(WQ_TRANSPORT_RABBITMQ, "amqps"), err,
        sizeof err) != 0)
        fail_msg("amqps round trip: %s", err);
    wq_config_free(&cfg);
}

static void
test_secure_amqps_refuses_wrong_ca_and_host(void **state)
{
    struct wq_config cfg;
    char text[2048], err[WQ_ERRLEN], url[512], *p;
    int rc;

    (void)state;
    /* the certificate of another CA */
    snprintf(text, sizeof text, "transport = \"rabbitmq\";\n"
        "rabbitmq = { url = \"%s\"; tls_ca = \"%s\"; };\n", AMQPS_URL(),
        TLS_OTHER_CA());
    load(text, &cfg);
    rc = roundtrip(&cfg, wq_test_queue(WQ_TRANSPORT_RABBITMQ, "amqps-ca"), err,
        sizeof err);
    printf("another CA: %d %s\n", rc, err);
    assert_int_equal(rc, WQ_EBROKER);
    assert_non_null(strstr(err, "cannot connect"));
    wq_config_free(&cfg);

    /* the right CA, but the host as an IP address: rabbitmq-c 0.11
     * matches the host against the certificate's DNS names only, so the
     * certificate (DNS:localhost, IP:127.0.0.1) does not name it */
    snprintf(url, sizeof url, "%s", AMQPS_URL());
    if ((p = strstr(url, "@localhost:")) != NULL) {
        char rest[256];

        snprintf(rest, sizeof rest, "%s", p + strlen("@localhost"));
        snprintf(p, sizeof url - (size_t)(p - url), "@127.0.0.1%s", rest);
    }
    snprintf(text, sizeof text, "transport = \"rabbitmq\";\n"
        "rabbitmq = { url = \"%s\"; tls_ca = \"%s\"; };\n", url, TLS_CA());
    load(text, &cfg);
    rc = roundtrip(&cfg, wq_test_queue(WQ_TRANSPORT_RABBITMQ, "amqps-host"), err,
        sizeof err);
    printf("wrong host: %d %s\n", rc, err);
    assert_int_not_equal(rc, 0);
    wq_config_free(&cfg);

    /* a CA file that does not exist: a configuration error */
    snprintf(text, sizeof text, "transport = \"rabbitmq\";\n"
        "rabbitmq = { url = \"%s\"; tls_ca = \"/nonexistent/ca.pem\"; };\n",
        AMQPS_URL());
    load(text, &cfg);
    rc = roundtrip(&cfg, "unused", err, sizeof err);
    printf("missing CA file: %d %s\n", rc, err);
    assert_int_equal(rc, WQ_ECONFIG);
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
    wq_config_free(&cfg);
}

/* --- Kafka --------------------------------------------------------------- */

/* A Kafka configuration: `proto` with `brokers`, SASL `mech` with the
 * password from a file when `pass` is not NULL, the CA when `ca` is not
 * NULL. */
static void
kafka_conf(char *text, size_t len, const char *brokers, const char *proto,
    const char *mech, const char *pass, const char *ca)
{
    int n = snprintf(text, len, "transport = \"kafka\";\n"
        "kafka = { brokers = \"%s\"; security_protocol = \"%s\";\n",
        brokers, proto);

    if (pass != NULL) {
        FILE *f = fopen("kafka-password", "w");

        assert_non_null(f);
        fprintf(f, "%s\n", pass);
        fclose(f);
        n += snprintf(text + n, len - (size_t)n, "  sasl_mechanism = "
            "\"%s\"; sasl_username = \"%s\";\n  sasl_password_file = "
            "\"kafka-password\";\n", mech, SASL_USER());
    }
    if (ca != NULL)
        n += snprintf(text + n, len - (size_t)n, "  ssl_ca_location = "
            "\"%s\";\n", ca);
    snprintf(text + n, len - (size_t)n, "};\n");
}

/* A round trip through `proto`; SASL with `mech` unless it is NULL. */
static void
check_kafka(const char *brokers, const char *proto, const char *mech,
    int tls)
{
    struct wq_config cfg;
    char text[2048], err[WQ_ERRLEN];
    int sasl = mech != NULL;

    kafka_conf(text, sizeof text, brokers, proto, mech,
        sasl ? SASL_PASS() : NULL, tls ? TLS_CA() : NULL);
    load(text, &cfg);
    /* the secret came from its file, and is hidden in a dump */
    if (sasl)
        assert_string_equal(cfg.kafka.sasl_password, SASL_PASS());
    if (roundtrip(&cfg, wq_test_queue(WQ_TRANSPORT_KAFKA, proto), err,
        sizeof err) != 0)
        fail_msg("kafka %s %s round trip: %s", proto, sasl ? mech : "",
            err);
    wq_config_free(&cfg);
}

static void
test_secure_kafka_ssl_roundtrip(void **state)
{
    (void)state;
    check_kafka(KAFKA_SSL(), "ssl", NULL, 1);
}

static void
test_secure_kafka_sasl_plaintext_roundtrip(void **state)
{
    (void)state;
    check_kafka(KAFKA_SASL(), "sasl_plaintext", "PLAIN", 0);
}

static void
test_secure_kafka_sasl_ssl_roundtrip(void **state)
{
    (void)state;
    check_kafka(KAFKA_SASL_SSL(), "sasl_ssl", "PLAIN", 1);
}

static void check_kafka_refused(const char *brokers, const char *proto,
    const char *mech, const char *pass, const char *ca, const char *why);

/*
 * SCRAM: the broker holds only a salted hash of the password (added when
 * tests/services formats its storage) and the password never crosses the
 * wire.  librdkafka before 2.6.1 computes a proof Kafka 4.x refuses
 * (librdkafka#4895; Debian 12 has 2.0.2): there, the right password is
 * refused too, and workq's log must say why before the broker's
 * "invalid credentials" does.
 */
static void
test_secure_kafka_scram(void **state)
{
    (void)state;
    printf("librdkafka %s\n", rd_kafka_version_str());
    if (rd_kafka_version() >= 0x02060100) {
        check_kafka(KAFKA_SASL_SSL(), "sasl_ssl", "SCRAM-SHA-256", 1);
        check_kafka(KAFKA_SASL(), "sasl_plaintext", "SCRAM-SHA-512", 0);
    } else {
        check_kafka_refused(KAFKA_SASL_SSL(), "sasl_ssl", "SCRAM-SHA-256",
            SASL_PASS(), TLS_CA(), "fixed in librdkafka 2.6.1");
        check_kafka_refused(KAFKA_SASL(), "sasl_plaintext", "SCRAM-SHA-512",
            SASL_PASS(), NULL, "invalid credentials");
    }
}

/*
 * A failing secured Kafka: a message is never confirmed, and the log (what
 * an operator reads; librdkafka reports connection problems there, since
 * it retries them by itself) says why.
 */
static void
check_kafka_refused(const char *brokers, const char *proto,
    const char *mech, const char *pass, const char *ca, const char *why)
{
    struct wq_transport_conf tc;
    struct wq_config cfg;
    wq_transport *t = NULL;
    char text[2048], err[WQ_ERRLEN], *log;
    int rc;

    remove("kafka.log");
    assert_int_equal(wq_log_setup("test", WQ_LOG_INFO, WQ_LOG_TEXT,
        "kafka.log", err, sizeof err), 0);
    kafka_conf(text, sizeof text, brokers, proto, mech, pass, ca);
    load(text, &cfg);
    assert_int_equal(wq_config_transport_conf(&cfg, &tc, err, sizeof err), 0);
    rc = wq_transport_open(&tc, &t, err, sizeof err);
    if (rc == 0) {
        rc = wq_transport_publish(t, "nothing-confirmed", "k", 1, "x", 1,
            NULL, err, sizeof err);
        if (rc == 0)
            rc = wq_transport_flush(t, 8000, err, sizeof err);
        wq_transport_close(t, 1000);
    }
    wq_log_setup("test", WQ_LOG_INFO, WQ_LOG_TEXT, NULL, NULL, 0);
    printf("kafka %s: %d %s\n", proto, rc, err);
    assert_int_not_equal(rc, 0);
    {
        FILE *f = fopen("kafka.log", "r");
        long n;

        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        fseek(f, 0, SEEK_SET);
        log = calloc(1, (size_t)n + 1);
        assert_int_equal(fread(log, 1, (size_t)n, f), (size_t)n);
        fclose(f);
    }
    if (strstr(log, why) == NULL)
        fail_msg("kafka %s refused, but the log lacks '%s':\n%s", proto,
            why, log);
    if (pass != NULL && strstr(log, pass) != NULL)
        fail_msg("the log holds the SASL password");
    free(log);
    wq_config_free(&cfg);
}

static void
test_secure_kafka_refuses_wrong_ca_and_password(void **state)
{
    (void)state;
    check_kafka_refused(KAFKA_SSL(), "ssl", NULL, NULL, TLS_OTHER_CA(),
        "certificate verify failed");
    check_kafka_refused(KAFKA_SASL(), "sasl_plaintext", "PLAIN",
        "wrong-password", NULL, "Authentication failed");
    check_kafka_refused(KAFKA_SASL_SSL(), "sasl_ssl", "PLAIN",
        "wrong-password", TLS_CA(), "Authentication failed");
    check_kafka_refused(KAFKA_SASL_SSL(), "sasl_ssl", "SCRAM-SHA-256",
        "wrong-password", TLS_CA(), "Authentication failed");
    /* no CA given: the system's CAs do not know the test CA */
    check_kafka_refused(KAFKA_SSL(), "ssl", NULL, NULL, NULL,
        "certificate verify failed");
}

/* --- PostgreSQL ---------------------------------------------------------- */

/* pg_stat_ssl of the store's own session: 1 when it is TLS. */
static int
session_is_tls(wq_store *s)
{
    return (int)wq_test_pg_num(s, "SELECT count(*) FROM pg_stat_ssl WHERE "
        "pid = pg_backend_pid() AND ssl");
}

static void
test_secure_postgres_verify_full(void **state)
{
    struct wq_config cfg;
    char text[2048], err[WQ_ERRLEN];
    wq_store *s = NULL;
    int rc;

    (void)state;
    wq_log_setup("test", WQ_LOG_WARN, WQ_LOG_TEXT, NULL, NULL, 0);
    snprintf(text, sizeof text, "postgres = { conninfo = \"%s "
        "sslmode=verify-full sslrootcert=%s\"; };\n", WQ_TEST_PG_CONNINFO(),
        TLS_CA());
    load(text, &cfg);
    if ((rc = wq_store_open(cfg.postgres.conninfo, cfg.postgres.password, &s,
        err, sizeof err)) != 0)
        fail_msg("verify-full with the test CA: %s", err);
    assert_int_equal(session_is_tls(s), 1);
    wq_store_close(s);
    wq_config_free(&cfg);

    /* another CA: refused, and the reason says so */
    snprintf(text, sizeof text, "postgres = { conninfo = \"%s "
        "sslmode=verify-full sslrootcert=%s\"; };\n", WQ_TEST_PG_CONNINFO(),
        TLS_OTHER_CA());
    load(text, &cfg);
    rc = wq_store_open(cfg.postgres.conninfo, cfg.postgres.password, &s, err,
        sizeof err);
    printf("another CA: %d %s\n", rc, err);
    assert_int_equal(rc, WQ_ESTORE);
    assert_null(s);
    assert_non_null(strstr(err, "certificate verify failed"));
    wq_config_free(&cfg);

    /* sslmode=disable still works: the plain path is unchanged */
    snprintf(text, sizeof text, "postgres = { conninfo = \"%s "
        "sslmode=disable\"; };\n", WQ_TEST_PG_CONNINFO());
    load(text, &cfg);
    if (wq_store_open(cfg.postgres.conninfo, cfg.postgres.password, &s, err,
        sizeof err) != 0)
        fail_msg("sslmode=disable: %s", err);
    assert_int_equal(session_is_tls(s), 0);
    wq_store_close(s);
    wq_config_free(&cfg);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_secure_amqps_roundtrip),
    cmocka_unit_test(test_secure_amqps_refuses_wrong_ca_and_host),
    cmocka_unit_test(test_secure_kafka_ssl_roundtrip),
    cmocka_unit_test(test_secure_kafka_sasl_plaintext_roundtrip),
    cmocka_unit_test(test_secure_kafka_sasl_ssl_roundtrip),
    cmocka_unit_test(test_secure_kafka_scram),
    cmocka_unit_test(test_secure_kafka_refuses_wrong_ca_and_password),
    cmocka_unit_test(test_secure_postgres_verify_full),
};

WQ_TEST_MAIN("secure_transport", tests)

/*
 * test_redact.c - password redaction inside connection strings, URLs and
 * properties (shared/redact.c), and its use by wq_seterr, the log and
 * the metrics labels.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wq_test.h"
#include "log.h"
#include "metrics.h"
#include "redact.h"
#include "wq.h"

static void
expect(const char *in, const char *want)
{
    char *got = wq_redact_dup(in);

    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("redact(%s)\n  got  %s\n  want %s", in, got, want);
    free(got);
}

static void
test_redact_libpq_keyword_forms(void **state)
{
    (void)state;
    expect("host=db password=s3cret dbname=x",
        "host=db password=<hidden> dbname=x");
    expect("password = s3cret", "password = <hidden>");
    expect("host=db password='with space' port=1",
        "host=db password=<hidden> port=1");
    expect("password='it\\'s' user=u", "password=<hidden> user=u");
    expect("password=back\\ slash user=u", "password=<hidden> user=u");
    expect("sslpassword=k1 sslmode=verify-full",
        "sslpassword=<hidden> sslmode=verify-full");
    /* no password: unchanged, and a key that only contains the word */
    expect("host=db dbname=password", "host=db dbname=password");
    expect("passwordless=1", "passwordless=1");
    expect("", "");
}

static void
test_redact_uri_forms(void **state)
{
    (void)state;
    expect("postgresql://app:pa%40ss@db:5432/workq",
        "postgresql://app:<hidden>@db:5432/workq");
    expect("postgres://app:pw@h1:5432,h2:5433/workq?sslmode=require",
        "postgres://app:<hidden>@h1:5432,h2:5433/workq?sslmode=require");
    expect("postgresql://db/workq?user=app&password=pw&sslmode=require",
        "postgresql://db/workq?user=app&password=<hidden>&sslmode=require");
    expect("amqp://guest:guest@127.0.0.1:5672",
        "amqp://guest:<hidden>@127.0.0.1:5672");
    expect("amqps://u:p@ss@mq:5671/vh", "amqps://u:<hidden>@mq:5671/vh");
    /* a user without a password, or no userinfo: unchanged */
    expect("amqp://guest@mq/", "amqp://guest@mq/");
    expect("amqp://mq:5672/vh", "amqp://mq:5672/vh");
    /* help texts keep their placeholder */
    expect("want amqp[s]://user:password@host:port/vhost",
        "want amqp[s]://user:password@host:port/vhost");
    expect("connect amqp://a:b@h failed", "connect amqp://a:<hidden>@h failed");
}

static void
test_redact_kafka_properties(void **state)
{
    (void)state;
    expect("sasl.password=k@fka", "sasl.password=<hidden>");
    expect("sasl.username=u sasl.password=x ssl.ca.location=/c",
        "sasl.username=u sasl.password=<hidden> ssl.ca.location=/c");
    expect("sasl.jaas.config=... password=\"q\\\"x\";",
        "sasl.jaas.config=... password=<hidden>;");
}

static void
test_redact_truncates_like_snprintf(void **state)
{
    char buf[12];
    size_t n;

    (void)state;
    n = wq_redact(buf, sizeof buf, "password=abc rest");
    assert_int_equal(n, strlen("password=<hidden> rest"));
    assert_string_equal(buf, "password=<h");
    assert_int_equal(wq_redact(NULL, 0, "a"), 1);
}

static void
test_redact_seterr_hides_password(void **state)
{
    char err[WQ_ERRLEN];

    (void)state;
    assert_int_equal(wq_seterr(err, sizeof err, WQ_ECONFIG,
        "cannot parse '%s'", "amqp://u:topsecret@h"), WQ_ECONFIG);
    assert_string_equal(err, "cannot parse 'amqp://u:<hidden>@h'");
}

static void
test_redact_log_line_hides_password(void **state)
{
    char err[WQ_ERRLEN], buf[4096];
    FILE *f;
    size_t n;

    (void)state;
    assert_int_equal(wq_log_setup("p", WQ_LOG_DEBUG, WQ_LOG_JSON, "out.log",
        err, sizeof err), 0);
    wq_log_warn("t", "PostgreSQL unavailable (%s)",
        "host=db password=topsecret");
    f = fopen("out.log", "r");
    assert_non_null(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    if (strstr(buf, "topsecret") != NULL
        || strstr(buf, "password=<hidden>") == NULL)
        fail_msg("log line: %s", buf);
}

static void
test_redact_metric_labels(void **state)
{
    wq_metrics *m = wq_metrics_new();
    char *text;

    (void)state;
    wq_metrics_gauge(m, "x_up", "help", "url=\"amqp://u:topsecret@h\"");
    text = wq_metrics_render(m, &(size_t){ 0 });
    assert_non_null(text);
    if (strstr(text, "topsecret") != NULL)
        fail_msg("%s", text);
    free(text);
    wq_metrics_free(m);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_redact_libpq_keyword_forms),
    cmocka_unit_test(test_redact_uri_forms),
    cmocka_unit_test(test_redact_kafka_properties),
    cmocka_unit_test(test_redact_truncates_like_snprintf),
    cmocka_unit_test(test_redact_seterr_hides_password),
    cmocka_unit_test(test_redact_log_line_hides_password),
    cmocka_unit_test(test_redact_metric_labels),
};

WQ_TEST_MAIN("redact", tests)

/*
 * test_log.c - the log module: levels, text and JSON lines, escaping of
 * untrusted text, library bridges and reopen after rotation.  Each test
 * logs into a file in its own temporary directory and reads it back.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wq_test.h"
#include "log.h"

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    static char buf[65536];
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void
setup(enum wq_log_level level, enum wq_log_format format)
{
    char err[WQ_ERRLEN];

    assert_int_equal(wq_log_setup("testproc", level, format, "out.log", err,
        sizeof err), 0);
}

static void
test_log_level_filters(void **state)
{
    (void)state;
    setup(WQ_LOG_WARN, WQ_LOG_TEXT);
    wq_log_debug("t", "debug-line");
    wq_log_info("t", "info-line");
    wq_log_warn("t", "warn-line %d", 7);
    wq_log_error("t", "error-line");
    char *s = slurp("out.log");
    assert_null(strstr(s, "debug-line"));
    assert_null(strstr(s, "info-line"));
    assert_non_null(strstr(s, " warn testproc t: warn-line 7 (tests/unit/test_log.c:"));
    assert_non_null(strstr(s, " error testproc t: error-line"));
}

static void
test_log_text_escapes_newlines(void **state)
{
    (void)state;
    setup(WQ_LOG_DEBUG, WQ_LOG_TEXT);
    wq_log_info("t", "evil\nfake line\x01");
    char *s = slurp("out.log");
    /* one line only: the injected newline is escaped */
    assert_non_null(strstr(s, "evil\\nfake line\\u0001\n"));
    assert_int_equal(strchr(s, '\n') - s + 1, (long)strlen(s));
}

static void
test_log_json_is_one_valid_object(void **state)
{
    (void)state;
    setup(WQ_LOG_DEBUG, WQ_LOG_JSON);
    wq_log_info("store", "quote \" back \\ tab \t");
    char *s = slurp("out.log");
    assert_true(strncmp(s, "{\"ts\":\"", 7) == 0);
    assert_non_null(strstr(s, "\"level\":\"info\""));
    assert_non_null(strstr(s, "\"proc\":\"testproc\""));
    assert_non_null(strstr(s, "\"component\":\"store\""));
    assert_non_null(strstr(s, "\"msg\":\"quote \\\" back \\\\ tab \\t\"}\n"));
}

static void
test_log_long_message_is_truncated_not_split(void **state)
{
    static char big[20000];

    (void)state;
    memset(big, 'x', sizeof big - 1);
    setup(WQ_LOG_DEBUG, WQ_LOG_JSON);
    wq_log_info("t", "%s", big);
    char *s = slurp("out.log");
    size_t n = strlen(s);
    assert_true(n > 4000 && n < 9000);
    assert_string_equal(s + n - 3, "\"}\n");
    assert_non_null(strstr(s, "...\"}"));
}

static void
test_log_external_levels(void **state)
{
    (void)state;
    setup(WQ_LOG_INFO, WQ_LOG_TEXT);
    wq_log_external(3, "rdkafka/FAIL", "broker down");
    wq_log_external(7, "rdkafka/DEBUG", "noise");
    wq_log_libpq_notice(NULL, "NOTICE:  relation exists, skipping\n");
    char *s = slurp("out.log");
    assert_non_null(strstr(s, " error testproc rdkafka/FAIL: broker down\n"));
    assert_null(strstr(s, "noise"));
    assert_non_null(strstr(s, " info testproc libpq: NOTICE:  relation exists, skipping\n"));
}

static void
test_log_reopen_after_rotation(void **state)
{
    (void)state;
    setup(WQ_LOG_INFO, WQ_LOG_TEXT);
    wq_log_info("t", "before");
    assert_int_equal(rename("out.log", "out.log.1"), 0);
    wq_log_info("t", "still-old-file");
    assert_int_equal(wq_log_reopen(), 0);
    wq_log_info("t", "after");
    assert_non_null(strstr(slurp("out.log.1"), "still-old-file"));
    char *s = slurp("out.log");
    assert_non_null(strstr(s, "after"));
    assert_null(strstr(s, "before"));
}

static void
test_log_parse_names(void **state)
{
    (void)state;
    assert_int_equal(wq_log_level_parse("debug"), WQ_LOG_DEBUG);
    assert_int_equal(wq_log_level_parse("WARNING"), WQ_LOG_WARN);
    assert_int_equal(wq_log_level_parse("loud"), -1);
    assert_int_equal(wq_log_format_parse("json"), WQ_LOG_JSON);
    assert_int_equal(wq_log_format_parse("xml"), -1);
}

static void
test_log_setup_bad_path_reports(void **state)
{
    char err[WQ_ERRLEN] = "";

    (void)state;
    assert_int_equal(wq_log_setup("p", WQ_LOG_INFO, WQ_LOG_TEXT,
        "/nonexistent-dir/x.log", err, sizeof err), WQ_EIO);
    assert_non_null(strstr(err, "/nonexistent-dir/x.log"));
}

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static void *
other_thread(void *arg)
{
    (void)arg;
    wq_log_info("t", "from-another-thread");
    return NULL;
}

/* A thread's task context marks its lines, in text and JSON, until it
 * ends, and only that thread's. */
static void
test_log_task_context(void **state)
{
    pthread_t th;
    char *s;

    (void)state;
    setup(WQ_LOG_DEBUG, WQ_LOG_TEXT);
    wq_log_task_begin("0190a5f8-7c1e-7a3b-8000-000000000001", TP);
    wq_log_info("t", "inside");
    assert_int_equal(pthread_create(&th, NULL, other_thread, NULL), 0);
    pthread_join(th, NULL);
    wq_log_task_end();
    wq_log_info("t", "outside");
    wq_log_task_begin("0190a5f8-7c1e-7a3b-8000-000000000002", NULL);
    wq_log_warn("t", "no-trace");
    wq_log_task_end();
    s = slurp("out.log");
    assert_non_null(strstr(s, "t: inside task=0190a5f8-7c1e-7a3b-8000-"
        "000000000001 traceparent=" TP "\n"));
    assert_non_null(strstr(s, "t: from-another-thread\n"));
    assert_non_null(strstr(s, "t: outside\n"));
    assert_non_null(strstr(s, "t: no-trace (tests/unit/test_log.c:"));
    assert_non_null(strstr(s, " task=0190a5f8-7c1e-7a3b-8000-000000000002\n"));
    assert_null(strstr(strstr(s, "no-trace"), "traceparent"));

    assert_int_equal(unlink("out.log"), 0);
    setup(WQ_LOG_DEBUG, WQ_LOG_JSON);
    wq_log_task_begin("0190a5f8-7c1e-7a3b-8000-000000000003", TP);
    wq_log_info("t", "json");
    wq_log_task_end();
    s = slurp("out.log");
    assert_non_null(strstr(s, "\"msg\":\"json\",\"task\":\"0190a5f8-7c1e-"
        "7a3b-8000-000000000003\",\"traceparent\":\"" TP "\"}\n"));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_log_level_filters),
    cmocka_unit_test(test_log_text_escapes_newlines),
    cmocka_unit_test(test_log_json_is_one_valid_object),
    cmocka_unit_test(test_log_long_message_is_truncated_not_split),
    cmocka_unit_test(test_log_external_levels),
    cmocka_unit_test(test_log_reopen_after_rotation),
    cmocka_unit_test(test_log_parse_names),
    cmocka_unit_test(test_log_setup_bad_path_reports),
    cmocka_unit_test(test_log_task_context),
};

WQ_TEST_MAIN("log", tests)

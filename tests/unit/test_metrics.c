/*
 * test_metrics.c - the Prometheus text rendering of counters, gauges and
 * histograms, label families, and concurrent updates.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "wq_test.h"
#include "metrics.h"

static void
test_metrics_counter_family_renders_once(void **state)
{
    wq_metrics *m = wq_metrics_new();
    wq_metric *ok = wq_metrics_counter(m, "workq_tasks_total", "Tasks.",
        "outcome=\"succeeded\"");
    wq_metric *bad = wq_metrics_counter(m, "workq_tasks_total", "Tasks.",
        "outcome=\"failed\"");
    size_t len;
    char *s;

    (void)state;
    wq_metric_inc(ok, 3);
    wq_metric_inc(bad, 1);
    s = wq_metrics_render(m, &len);
    assert_int_equal(strlen(s), len);
    assert_string_equal(s,
        "# HELP workq_tasks_total Tasks.\n"
        "# TYPE workq_tasks_total counter\n"
        "workq_tasks_total{outcome=\"succeeded\"} 3\n"
        "workq_tasks_total{outcome=\"failed\"} 1\n");
    free(s);
    wq_metrics_free(m);
}

static void
test_metrics_gauge_set_and_add(void **state)
{
    wq_metrics *m = wq_metrics_new();
    wq_metric *g = wq_metrics_gauge(m, "workq_in_flight", "In flight.", NULL);
    char *s;

    (void)state;
    wq_metric_set(g, 10);
    wq_metric_add(g, -3);
    assert_int_equal(wq_metric_value(g), 7);
    s = wq_metrics_render(m, NULL);
    assert_non_null(strstr(s, "# TYPE workq_in_flight gauge\nworkq_in_flight 7\n"));
    free(s);
    wq_metrics_free(m);
}

static void
test_metrics_histogram_cumulative_buckets(void **state)
{
    static const double bounds[] = { 0.01, 0.1, 1 };
    wq_metrics *m = wq_metrics_new();
    wq_metric *h = wq_metrics_histogram(m, "workq_seconds", "Latency.",
        "queue=\"q\"", bounds, 3);
    char *s;

    (void)state;
    wq_metric_observe(h, 0.005);
    wq_metric_observe(h, 0.01);   /* le is inclusive */
    wq_metric_observe(h, 0.5);
    wq_metric_observe(h, 7);
    s = wq_metrics_render(m, NULL);
    assert_non_null(strstr(s, "workq_seconds_bucket{queue=\"q\",le=\"0.01\"} 2\n"));
    assert_non_null(strstr(s, "workq_seconds_bucket{queue=\"q\",le=\"0.1\"} 2\n"));
    assert_non_null(strstr(s, "workq_seconds_bucket{queue=\"q\",le=\"1\"} 3\n"));
    assert_non_null(strstr(s, "workq_seconds_bucket{queue=\"q\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(s, "workq_seconds_sum{queue=\"q\"} 7.515000\n"));
    assert_non_null(strstr(s, "workq_seconds_count{queue=\"q\"} 4\n"));
    free(s);
    wq_metrics_free(m);
}

static wq_metric *shared_counter;

static void *
bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++)
        wq_metric_inc(shared_counter, 1);
    return NULL;
}

static void
test_metrics_concurrent_increments_are_not_lost(void **state)
{
    wq_metrics *m = wq_metrics_new();
    pthread_t t[4];

    (void)state;
    shared_counter = wq_metrics_counter(m, "c", "C.", NULL);
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, bump, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(wq_metric_value(shared_counter), 400000);
    wq_metrics_free(m);
}

static void
test_metrics_null_metric_is_noop(void **state)
{
    (void)state;
    wq_metric_inc(NULL, 1);
    wq_metric_set(NULL, 1);
    wq_metric_observe(NULL, 1.0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_metrics_counter_family_renders_once),
    cmocka_unit_test(test_metrics_gauge_set_and_add),
    cmocka_unit_test(test_metrics_histogram_cumulative_buckets),
    cmocka_unit_test(test_metrics_concurrent_increments_are_not_lost),
    cmocka_unit_test(test_metrics_null_metric_is_noop),
};

WQ_TEST_MAIN("metrics", tests)

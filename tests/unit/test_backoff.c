/*
 * test_backoff.c - the retry delay: growth, cap, each jitter's bounds,
 * attempt limits, and the Sidekiq-like spread of the defaults.
 */
#include "wq_test.h"
#include "backoff.h"

static void
test_backoff_exponential_without_jitter(void **state)
{
    struct wq_backoff p = { 1000, 60000, 2.0, WQ_JITTER_NONE, 10 };

    (void)state;
    assert_int_equal(wq_backoff_delay_ms(&p, 1, 0.5), 1000);
    assert_int_equal(wq_backoff_delay_ms(&p, 2, 0.5), 2000);
    assert_int_equal(wq_backoff_delay_ms(&p, 5, 0.5), 16000);
    assert_int_equal(wq_backoff_delay_ms(&p, 7, 0.5), 60000);   /* capped */
    assert_int_equal(wq_backoff_delay_ms(&p, 5000, 0.5), 60000); /* no inf */
    assert_int_equal(wq_backoff_delay_ms(&p, 0, 0.5), 1000);
}

static void
test_backoff_full_jitter_bounds(void **state)
{
    struct wq_backoff p = { 1000, 60000, 2.0, WQ_JITTER_FULL, 10 };

    (void)state;
    assert_int_equal(wq_backoff_delay_ms(&p, 3, 0.0), 0);
    assert_int_equal(wq_backoff_delay_ms(&p, 3, 0.5), 2000);
    assert_true(wq_backoff_delay_ms(&p, 3, 0.999999) < 4000);
    assert_true(wq_backoff_delay_ms(&p, 3, 7.0) <= 4000);  /* clamped */
}

static void
test_backoff_equal_jitter_never_below_half(void **state)
{
    struct wq_backoff p = { 1000, 60000, 2.0, WQ_JITTER_EQUAL, 10 };

    (void)state;
    for (int i = 0; i < 1000; i++) {
        int64_t d = wq_backoff_delay_ms(&p, 4, wq_backoff_rand01());
        assert_in_range(d, 4000, 8000);
    }
}

static void
test_backoff_should_retry_counts_attempts(void **state)
{
    struct wq_backoff p = WQ_BACKOFF_DEFAULT;

    (void)state;
    p.max_attempts = 3;
    assert_true(wq_backoff_should_retry(&p, 1));
    assert_true(wq_backoff_should_retry(&p, 2));
    assert_false(wq_backoff_should_retry(&p, 3));
}

static void
test_backoff_defaults_spread_about_twenty_days(void **state)
{
    struct wq_backoff p = WQ_BACKOFF_DEFAULT;
    double lo = 0, mid = 0, hi = 0;

    (void)state;
    for (uint32_t a = 1; a < p.max_attempts; a++) {
        lo += (double)wq_backoff_delay_ms(&p, a, 0.0);
        mid += (double)wq_backoff_delay_ms(&p, a, 0.5);
        hi += (double)wq_backoff_delay_ms(&p, a, 0.999999);
    }
    /* 24 retries: about 17 days on average, 11 to 23 whatever the dice */
    assert_true(lo / 86400000.0 > 11.0);
    assert_true(mid / 86400000.0 > 15.0 && mid / 86400000.0 < 20.0);
    assert_true(hi / 86400000.0 < 23.0);
}

static void
test_backoff_rand01_in_range_and_varied(void **state)
{
    double min = 1, max = 0;

    (void)state;
    for (int i = 0; i < 10000; i++) {
        double r = wq_backoff_rand01();
        assert_true(r >= 0 && r < 1);
        if (r < min) min = r;
        if (r > max) max = r;
    }
    assert_true(min < 0.01 && max > 0.99);
}

static void
test_backoff_jitter_names(void **state)
{
    (void)state;
    assert_int_equal(wq_backoff_jitter_parse("full"), WQ_JITTER_FULL);
    assert_int_equal(wq_backoff_jitter_parse("equal"), WQ_JITTER_EQUAL);
    assert_int_equal(wq_backoff_jitter_parse("none"), WQ_JITTER_NONE);
    assert_int_equal(wq_backoff_jitter_parse("random"), -1);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_backoff_exponential_without_jitter),
    cmocka_unit_test(test_backoff_full_jitter_bounds),
    cmocka_unit_test(test_backoff_equal_jitter_never_below_half),
    cmocka_unit_test(test_backoff_should_retry_counts_attempts),
    cmocka_unit_test(test_backoff_defaults_spread_about_twenty_days),
    cmocka_unit_test(test_backoff_rand01_in_range_and_varied),
    cmocka_unit_test(test_backoff_jitter_names),
};

WQ_TEST_MAIN("backoff", tests)

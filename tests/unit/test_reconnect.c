/*
 * test_reconnect.c - the reconnect backoff: the steps double up to the
 * cap, success starts over, equal jitter stays in [step/2, step], and a
 * hold waits exactly as asked.
 */
#include "wq_test.h"
#include "reconnect.h"

static void
test_reconnect_steps_double_to_the_cap(void **state)
{
    struct wq_reconnect r;

    (void)state;
    wq_reconnect_init(&r, 100, 1000, WQ_JITTER_NONE);
    assert_true(wq_reconnect_due(&r));
    assert_int_equal(wq_reconnect_wait_ms(&r), 0);
    assert_int_equal(wq_reconnect_failed(&r), 100);
    assert_false(wq_reconnect_due(&r));
    assert_in_range(wq_reconnect_wait_ms(&r), 1, 100);
    assert_int_equal(wq_reconnect_failed(&r), 200);
    assert_int_equal(wq_reconnect_failed(&r), 400);
    assert_int_equal(wq_reconnect_failed(&r), 800);
    assert_int_equal(wq_reconnect_failed(&r), 1000);
    assert_int_equal(wq_reconnect_failed(&r), 1000);
    wq_reconnect_ok(&r);
    assert_int_equal(wq_reconnect_failed(&r), 100);
}

static void
test_reconnect_equal_jitter_bounds(void **state)
{
    struct wq_reconnect r;

    (void)state;
    for (int i = 0; i < 1000; i++) {
        wq_reconnect_init(&r, 400, 30000, WQ_JITTER_EQUAL);
        assert_in_range(wq_reconnect_failed(&r), 200, 400);
        assert_in_range(wq_reconnect_failed(&r), 400, 800);
    }
}

static void
test_reconnect_hold_is_exact(void **state)
{
    struct wq_reconnect r;

    (void)state;
    wq_reconnect_init(&r, 100, 1000, WQ_JITTER_EQUAL);
    wq_reconnect_hold(&r, 5000);
    assert_in_range(wq_reconnect_wait_ms(&r), 4900, 5000);
    assert_int_equal(r.step_ms, 100);       /* the step is kept */
    wq_reconnect_hold(&r, 0);
    assert_true(wq_reconnect_due(&r));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_reconnect_steps_double_to_the_cap),
    cmocka_unit_test(test_reconnect_equal_jitter_bounds),
    cmocka_unit_test(test_reconnect_hold_is_exact),
};

WQ_TEST_MAIN("reconnect", tests)

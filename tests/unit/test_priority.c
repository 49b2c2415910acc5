/*
 * test_priority.c - priorities (priority.h): names and numbers, the band
 * names and their reservation in queue names, and the weighted picker's
 * shares: high first, low never starved, an idle band's turn given away.
 */
#include <string.h>

#include "wq_test.h"
#include "envelope.h"
#include "priority.h"

static void
test_priority_parse_and_names(void **state)
{
    int p = -1;

    (void)state;
    assert_int_equal(wq_priority_parse("high", &p), 0);
    assert_int_equal(p, WQ_PRIORITY_HIGH);
    assert_int_equal(wq_priority_parse("LOW", &p), 0);
    assert_int_equal(p, WQ_PRIORITY_LOW);
    assert_int_equal(wq_priority_parse("1", &p), 0);
    assert_int_equal(p, WQ_PRIORITY_NORMAL);
    assert_int_equal(wq_priority_parse("2", &p), 0);
    assert_int_equal(p, WQ_PRIORITY_HIGH);
    p = 7;
    assert_int_equal(wq_priority_parse("3", &p), WQ_EINVAL);
    assert_int_equal(wq_priority_parse("urgent", &p), WQ_EINVAL);
    assert_int_equal(wq_priority_parse("", &p), WQ_EINVAL);
    assert_int_equal(wq_priority_parse(NULL, &p), WQ_EINVAL);
    assert_int_equal(p, 7);
    assert_string_equal(wq_priority_name(WQ_PRIORITY_NORMAL), "normal");
    assert_string_equal(wq_priority_name(9), "?");
}

static void
test_priority_bands(void **state)
{
    char b[WQ_BROKER_QUEUE_MAX + 1];
    size_t qlen;

    (void)state;
    assert_string_equal(wq_priority_band(b, sizeof b, "mail",
        WQ_PRIORITY_NORMAL), "mail");
    assert_string_equal(wq_priority_band(b, sizeof b, "mail",
        WQ_PRIORITY_HIGH), "mail.priority-high");
    assert_string_equal(wq_priority_band(b, sizeof b, "mail",
        WQ_PRIORITY_LOW), "mail.priority-low");
    assert_int_equal(wq_priority_of_band("mail.priority-high", &qlen),
        WQ_PRIORITY_HIGH);
    assert_int_equal(qlen, 4);
    assert_int_equal(wq_priority_of_band("a.b.priority-low", &qlen),
        WQ_PRIORITY_LOW);
    assert_int_equal(qlen, 3);
    assert_int_equal(wq_priority_of_band("mail", &qlen), WQ_PRIORITY_NORMAL);
    assert_int_equal(qlen, 4);
    /* the suffix alone is no band of an empty queue */
    assert_int_equal(wq_priority_of_band(".priority-high", &qlen),
        WQ_PRIORITY_NORMAL);
    /* a longest queue's band fits the broker's limit */
    memset(b, 'q', WQ_QUEUE_MAX);
    b[WQ_QUEUE_MAX] = '\0';
    {
        char band[WQ_BROKER_QUEUE_MAX + 1];

        wq_priority_band(band, sizeof band, b, WQ_PRIORITY_HIGH);
        assert_int_equal(strlen(band), WQ_QUEUE_MAX + 14);
    }
}

static void
test_priority_suffixes_reserved(void **state)
{
    char err[WQ_ERRLEN];

    (void)state;
    assert_int_equal(wq_queue_name_valid("mail.priority-high", err,
        sizeof err), WQ_EINVAL);
    assert_non_null(strstr(err, "reserved for priority bands"));
    assert_int_equal(wq_queue_name_valid("mail.priority-low", err,
        sizeof err), WQ_EINVAL);
    assert_int_equal(wq_queue_name_valid("mail.priority-lower", err,
        sizeof err), 0);
    assert_int_equal(wq_queue_name_valid("priority-high", err,
        sizeof err), 0);
}

/* Counts n picks with every band always available. */
static void
shares(const int weights[WQ_PRIORITY_N], const int avail[WQ_PRIORITY_N],
    int n, int got[WQ_PRIORITY_N], int first[WQ_PRIORITY_N])
{
    int credit[WQ_PRIORITY_N] = { 0 };

    memset(got, 0, WQ_PRIORITY_N * sizeof *got);
    for (int i = 0; i < WQ_PRIORITY_N; i++)
        first[i] = -1;
    for (int i = 0; i < n; i++) {
        int p = wq_priority_pick(weights, credit, avail);

        assert_true(p >= 0 && p < WQ_PRIORITY_N && avail[p]);
        if (first[p] < 0)
            first[p] = i;
        got[p]++;
    }
}

static void
test_priority_pick_weights(void **state)
{
    const int w[WQ_PRIORITY_N] = { 1, 3, 6 };   /* low, normal, high */
    const int all[WQ_PRIORITY_N] = { 1, 1, 1 };
    const int no_normal[WQ_PRIORITY_N] = { 1, 0, 1 };
    const int only_low[WQ_PRIORITY_N] = { 1, 0, 0 };
    const int none[WQ_PRIORITY_N] = { 0, 0, 0 };
    int got[WQ_PRIORITY_N], first[WQ_PRIORITY_N], credit[3] = { 0 };

    (void)state;
    /* a full backlog of all three: 6:3:1, high first, low in every
     * round of ten */
    shares(w, all, 1000, got, first);
    assert_int_equal(got[WQ_PRIORITY_HIGH], 600);
    assert_int_equal(got[WQ_PRIORITY_NORMAL], 300);
    assert_int_equal(got[WQ_PRIORITY_LOW], 100);
    assert_int_equal(first[WQ_PRIORITY_HIGH], 0);
    assert_int_equal(first[WQ_PRIORITY_NORMAL], 6);
    assert_int_equal(first[WQ_PRIORITY_LOW], 9);
    /* nothing normal: its turns go to the others, 6:1 */
    shares(w, no_normal, 700, got, first);
    assert_int_equal(got[WQ_PRIORITY_HIGH], 600);
    assert_int_equal(got[WQ_PRIORITY_LOW], 100);
    assert_int_equal(got[WQ_PRIORITY_NORMAL], 0);
    /* only low: every pick */
    shares(w, only_low, 50, got, first);
    assert_int_equal(got[WQ_PRIORITY_LOW], 50);
    /* nothing at all */
    assert_int_equal(wq_priority_pick(w, credit, none), -1);
}

static void
test_priority_pick_zero_weight(void **state)
{
    const int w[WQ_PRIORITY_N] = { 0, 1, 1 };
    const int all[WQ_PRIORITY_N] = { 1, 1, 1 };
    const int only_low[WQ_PRIORITY_N] = { 1, 0, 0 };
    int got[WQ_PRIORITY_N], first[WQ_PRIORITY_N];

    (void)state;
    /* weight 0: served only when the others have nothing */
    shares(w, all, 100, got, first);
    assert_int_equal(got[WQ_PRIORITY_LOW], 0);
    assert_int_equal(got[WQ_PRIORITY_HIGH], 50);
    shares(w, only_low, 10, got, first);
    assert_int_equal(got[WQ_PRIORITY_LOW], 10);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_priority_parse_and_names),
    cmocka_unit_test(test_priority_bands),
    cmocka_unit_test(test_priority_suffixes_reserved),
    cmocka_unit_test(test_priority_pick_weights),
    cmocka_unit_test(test_priority_pick_zero_weight),
};

WQ_TEST_MAIN("priority", tests)

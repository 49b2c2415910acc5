/*
 * test_cron.c - the cron expression parser and the next-tick search
 * (shared/cron.h): fields, ranges, steps, lists, names, macros, the
 * day-of-month/day-of-week rule, calendar edges, and invalid input
 * rejected with a reason that names the field.  The next-tick search is
 * checked against a naive minute-by-minute search that uses gmtime_r(3),
 * an implementation of the calendar independent of cron.c's.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "wq_test.h"
#include "cron.h"

static struct wq_cron
parse_ok(const char *expr)
{
    struct wq_cron c;
    char err[WQ_ERRLEN] = "";

    if (wq_cron_parse(expr, &c, err, sizeof err) != 0)
        fail_msg("\"%s\" rejected: %s", expr, err);
    return c;
}

static void
parse_bad(const char *expr, const char *reason)
{
    struct wq_cron c;
    char err[WQ_ERRLEN] = "";

    if (wq_cron_parse(expr, &c, err, sizeof err) != WQ_EINVAL)
        fail_msg("\"%s\" accepted, want an error with \"%s\"",
            expr != NULL ? expr : "(null)", reason);
    assert_contains(err, reason);
    assert_int_equal(c.minute, 0);     /* zeroed on failure */
}

/* Seconds since the epoch of a UTC time. */
static int64_t
utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm;

    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return (int64_t)timegm(&tm);
}

static int64_t
next_of(const char *expr, int64_t after)
{
    struct wq_cron c = parse_ok(expr);
    int64_t t = 0;

    if (wq_cron_next(&c, after, &t) != 0)
        fail_msg("\"%s\": no next tick", expr);
    return t;
}

/* ---- fields ----------------------------------------------------------------- */

static void
test_cron_star(void **state)
{
    struct wq_cron c = parse_ok("* * * * *");

    (void)state;
    assert_true(c.minute == (UINT64_C(1) << 60) - 1);
    assert_int_equal(c.hour, (1u << 24) - 1);
    assert_int_equal(c.dom, ((1u << 31) - 1) << 1);
    assert_int_equal(c.month, ((1u << 12) - 1) << 1);
    assert_int_equal(c.dow, 0x7f);
    assert_true(c.dom_star && c.dow_star);
}

static void
test_cron_values_ranges_steps_lists(void **state)
{
    struct wq_cron c;

    (void)state;
    c = parse_ok("5 4 * * *");
    assert_true(c.minute == UINT64_C(1) << 5);
    assert_int_equal(c.hour, 1u << 4);

    c = parse_ok("*/15 1-5 * * *");
    assert_true(c.minute == ((UINT64_C(1) << 0) | (UINT64_C(1) << 15)
        | (UINT64_C(1) << 30) | (UINT64_C(1) << 45)));
    assert_int_equal(c.hour, 0x3e);

    c = parse_ok("10-20/5 0 1 1 *");
    assert_true(c.minute == ((UINT64_C(1) << 10) | (UINT64_C(1) << 15)
        | (UINT64_C(1) << 20)));

    /* "v/n" runs from v to the field's end */
    c = parse_ok("5/20 0 * * *");
    assert_true(c.minute == ((UINT64_C(1) << 5) | (UINT64_C(1) << 25)
        | (UINT64_C(1) << 45)));

    c = parse_ok("1,2,30-31 0 1,15 * *");
    assert_true(c.minute == ((UINT64_C(1) << 1) | (UINT64_C(1) << 2)
        | (UINT64_C(1) << 30) | (UINT64_C(1) << 31)));
    assert_int_equal(c.dom, (1u << 1) | (1u << 15));
    assert_false(c.dom_star);

    /* blanks: tabs, several, leading and trailing */
    c = parse_ok("  0\t0   *  * *  ");
    assert_true(c.minute == 1);

    /* a stepped star still counts as a star for the day rule */
    c = parse_ok("0 0 */2 * 1");
    assert_true(c.dom_star);
    assert_false(c.dow_star);
}

static void
test_cron_names(void **state)
{
    struct wq_cron c;

    (void)state;
    c = parse_ok("0 0 * jan-mar,DEC MON-fri");
    assert_int_equal(c.month, (1u << 1) | (1u << 2) | (1u << 3) | (1u << 12));
    assert_int_equal(c.dow, 0x3e);
    c = parse_ok("0 0 * * sun");
    assert_int_equal(c.dow, 1);
    /* 7 is Sunday as well */
    c = parse_ok("0 0 * * 7");
    assert_int_equal(c.dow, 1);
    c = parse_ok("0 0 * * 5-7");
    assert_int_equal(c.dow, (1u << 5) | (1u << 6) | 1u);
    c = parse_ok("0 0 * Feb *");
    assert_int_equal(c.month, 1u << 2);
}

static void
test_cron_macros(void **state)
{
    struct wq_cron a, b;

    (void)state;
    a = parse_ok("@daily");
    b = parse_ok("0 0 * * *");
    assert_memory_equal(&a, &b, sizeof a);
    a = parse_ok("  @Hourly ");
    b = parse_ok("0 * * * *");
    assert_memory_equal(&a, &b, sizeof a);
    a = parse_ok("@annually");
    b = parse_ok("@yearly");
    assert_memory_equal(&a, &b, sizeof a);
    b = parse_ok("0 0 1 1 *");
    assert_memory_equal(&a, &b, sizeof a);
    a = parse_ok("@weekly");
    b = parse_ok("0 0 * * 0");
    assert_memory_equal(&a, &b, sizeof a);
    a = parse_ok("@monthly");
    b = parse_ok("0 0 1 * *");
    assert_memory_equal(&a, &b, sizeof a);
    a = parse_ok("@midnight");
    b = parse_ok("@daily");
    assert_memory_equal(&a, &b, sizeof a);
}

static void
test_cron_invalid(void **state)
{
    char longexpr[400];

    (void)state;
    parse_bad(NULL, "no cron expression");
    parse_bad("", "empty");
    parse_bad("   ", "empty");
    parse_bad("* * * *", "4 fields, want 5");
    parse_bad("*", "1 field, want 5");
    parse_bad("* * * * * *", "more than 5 fields");
    parse_bad("60 * * * *", "field 1 (minute): 60 is out of range 0-59");
    parse_bad("* 24 * * *", "field 2 (hour): 24 is out of range 0-23");
    parse_bad("* * 0 * *", "field 3 (day of month): 0 is out of range 1-31");
    parse_bad("* * 32 * *", "field 3 (day of month): 32 is out of range");
    parse_bad("* * * 13 *", "field 4 (month): 13 is out of range 1-12");
    parse_bad("* * * * 8", "field 5 (day of week): 8 is out of range 0-7");
    parse_bad("5-1 * * * *", "range 5-1 is reversed");
    parse_bad("0 0 * * sat-sun", "range 6-0 is reversed");
    parse_bad("*/0 * * * *", "step 0 is out of range 1-60");
    parse_bad("*/61 * * * *", "step 61 is out of range 1-60");
    parse_bad("*/ * * * *", "a step must be a number");
    parse_bad("a * * * *", "field 1 (minute): unknown name 'a' (this field "
        "takes numbers only)");
    parse_bad("* * * foo *", "field 4 (month): unknown name 'foo'");
    parse_bad("* * * * monday", "unknown name 'monday'");
    parse_bad("1,,2 * * * *", "field 1 (minute): a value is missing");
    parse_bad("1, * * * *", "a value is missing");
    parse_bad("1- * * * *", "a value is missing");
    parse_bad("-1 * * * *", "unexpected character '-'");
    parse_bad("1x * * * *", "unexpected character 'x'");
    parse_bad("* * * * 1;", "unexpected character ';'");
    parse_bad("99999 * * * *", "number too large");
    parse_bad("*/99999 * * * *", "step");
    parse_bad("@reboot", "@reboot is not supported");
    parse_bad("@every 5m", "unknown macro '@every'");
    parse_bad("@daily 5", "unexpected text after @daily");
    parse_bad("0 0 30 2 *", "never fires");
    parse_bad("0 0 31 4,6,9,11 *", "never fires");
    memset(longexpr, '1', sizeof longexpr - 1);
    longexpr[sizeof longexpr - 1] = '\0';
    parse_bad(longexpr, "longer than 256 bytes");
    /* Feb 29 exists, only not every year */
    parse_ok("0 0 29 2 *");
}

/* ---- the next tick ----------------------------------------------------------- */

static void
test_cron_next_simple(void **state)
{
    (void)state;
    /* strictly after: a time on a tick gives the following one */
    assert_int_equal(next_of("*/15 * * * *", utc(2026, 11, 28, 8, 0, 30)),
        utc(2026, 11, 28, 8, 15, 0));
    assert_int_equal(next_of("*/15 * * * *", utc(2026, 11, 28, 8, 15, 0)),
        utc(2026, 11, 28, 8, 30, 0));
    assert_int_equal(next_of("* * * * *", utc(2026, 11, 28, 8, 15, 59)),
        utc(2026, 11, 28, 8, 16, 0));
    assert_int_equal(next_of("0 3 * * *", utc(2026, 11, 28, 3, 0, 0)),
        utc(2026, 11, 29, 3, 0, 0));
    assert_int_equal(next_of("0 3 * * *", utc(2026, 11, 28, 2, 59, 59)),
        utc(2026, 11, 28, 3, 0, 0));
    /* year, month and leap-day edges */
    assert_int_equal(next_of("0 0 1 1 *", utc(2026, 12, 31, 23, 59, 0)),
        utc(2027, 1, 1, 0, 0, 0));
    assert_int_equal(next_of("0 0 29 2 *", utc(2026, 1, 1, 0, 0, 0)),
        utc(2028, 2, 29, 0, 0, 0));
    assert_int_equal(next_of("0 12 31 * *", utc(2026, 4, 1, 0, 0, 0)),
        utc(2026, 5, 31, 12, 0, 0));
    assert_int_equal(next_of("30 23 * * *", utc(2026, 2, 28, 23, 45, 0)),
        utc(2026, 3, 1, 23, 30, 0));
    /* 2100 is no leap year */
    assert_int_equal(next_of("0 0 29 2 *", utc(2096, 3, 1, 0, 0, 0)),
        utc(2104, 2, 29, 0, 0, 0));
}

static void
test_cron_next_day_rule(void **state)
{
    (void)state;
    /* both restricted: the 13th or a Friday (Nov 6 2026 is a Friday) */
    assert_int_equal(next_of("0 0 13 * 5", utc(2026, 11, 1, 0, 0, 0)),
        utc(2026, 11, 6, 0, 0, 0));
    assert_int_equal(next_of("0 0 13 * 5", utc(2026, 11, 6, 0, 0, 0)),
        utc(2026, 11, 13, 0, 0, 0));
    assert_int_equal(next_of("0 0 12 * 5", utc(2026, 11, 6, 0, 0, 0)),
        utc(2026, 11, 12, 0, 0, 0));
    /* a star in either: both must match (odd days that are Mondays) */
    assert_int_equal(next_of("0 0 */2 * 1", utc(2026, 11, 28, 0, 0, 0)),
        utc(2026, 12, 7, 0, 0, 0));
    /* weekdays only */
    assert_int_equal(next_of("0 9 * * mon-fri", utc(2026, 11, 28, 9, 0, 0)),
        utc(2026, 11, 30, 9, 0, 0));
}

/*
 * The naive reference: gmtime_r, and a walk that moves a day, an hour or
 * a minute at a time, whichever field does not match.
 */
static int64_t
naive_next(const struct wq_cron *c, int64_t t, int64_t limit)
{
    int64_t w = (t / 60 + 1) * 60;

    while (w < limit) {
        time_t tt = (time_t)w;
        struct tm tm;
        int dom_ok, dow_ok, day_ok;

        gmtime_r(&tt, &tm);
        dom_ok = (c->dom >> tm.tm_mday) & 1;
        dow_ok = (c->dow >> tm.tm_wday) & 1;
        day_ok = ((c->month >> (tm.tm_mon + 1)) & 1)
            && (c->dom_star || c->dow_star ? dom_ok && dow_ok
                : dom_ok || dow_ok);
        if (!day_ok)
            w += 86400 - (tm.tm_hour * 3600 + tm.tm_min * 60);
        else if (!((c->hour >> tm.tm_hour) & 1))
            w += 3600 - tm.tm_min * 60;
        else if (!((c->minute >> tm.tm_min) & 1))
            w += 60;
        else
            return w;
    }
    return -1;
}

static void
test_cron_next_against_naive(void **state)
{
    static const char *const exprs[] = {
        "* * * * *", "*/7 * * * *", "59 23 31 12 *", "0 0 29 2 *",
        "15,45 */5 * * 1-5", "0 0 13 * 5", "0 0 */2 * 1", "0 12 1-7 * 0",
        "30 6 * jun-aug sat,sun", "0 0 31 * *", "1-59/29 3 * * *",
        "@weekly", "0 0 L * *",
    };
    int64_t start = utc(2026, 11, 28, 7, 43, 6);

    (void)state;
    for (size_t i = 0; i < WQ_ARRAY_LEN(exprs); i++) {
        struct wq_cron c;
        char err[WQ_ERRLEN];
        int64_t t = start;

        if (wq_cron_parse(exprs[i], &c, err, sizeof err) != 0) {
            assert_string_equal(exprs[i], "0 0 L * *");   /* no 'L' */
            continue;
        }
        for (int k = 0; k < 25; k++) {
            int64_t got, want = naive_next(&c, t, t + 12LL * 366 * 86400);

            assert_int_equal(wq_cron_next(&c, t, &got), 0);
            if (got != want)
                fail_msg("\"%s\" after %lld: got %lld, want %lld", exprs[i],
                    (long long)t, (long long)got, (long long)want);
            assert_int_equal(wq_cron_matches(&c, got), 1);
            assert_int_equal(wq_cron_matches(&c, got + 30), 1);
            t = got + k % 3 * 7;    /* on the tick, or a little past it */
        }
    }
}

static void
test_cron_next_bounds(void **state)
{
    struct wq_cron c = parse_ok("0 0 1 1 *");
    int64_t t;

    (void)state;
    assert_int_equal(wq_cron_next(&c, utc(9999, 12, 31, 0, 0, 0), &t),
        WQ_ENOENT);
    assert_int_equal(wq_cron_next(&c, INT64_MAX, &t), WQ_ENOENT);
    assert_int_equal(wq_cron_next(&c, INT64_MIN, &t), WQ_ENOENT);
    /* before the epoch works too */
    assert_int_equal(wq_cron_next(&c, utc(1969, 6, 1, 0, 0, 0), &t), 0);
    assert_int_equal(t, utc(1970, 1, 1, 0, 0, 0));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cron_star),
    cmocka_unit_test(test_cron_values_ranges_steps_lists),
    cmocka_unit_test(test_cron_names),
    cmocka_unit_test(test_cron_macros),
    cmocka_unit_test(test_cron_invalid),
    cmocka_unit_test(test_cron_next_simple),
    cmocka_unit_test(test_cron_next_day_rule),
    cmocka_unit_test(test_cron_next_against_naive),
    cmocka_unit_test(test_cron_next_bounds),
};

WQ_TEST_MAIN("cron", tests)

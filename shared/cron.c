/*
 * cron.c - five-field cron expressions (see cron.h for the syntax).
 *
 * Parsing is one pass over the text with no allocation; every field
 * becomes a bit set.  The calendar is done by hand with Howard Hinnant's
 * days-from-civil algorithms instead of timegm(3)/gmtime_r(3), so the
 * module is pure (no locale, no time zone database, no errno) and the
 * next tick is found by walking days, not minutes: at most one 400-year
 * Gregorian cycle (146097 days) of cheap bit tests.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cron.h"

#define DAYS_PER_CYCLE 146097   /* days in 400 Gregorian years */

/* Years 1..9999, in days since 1970-01-01. */
#define MIN_DAY (-719162)       /* 0001-01-01 */
#define MAX_DAY 2932896         /* 9999-12-31 */

struct field {
    const char *name;
    int min, max;
    const char *const *names;   /* names[i] stands for min + i, or NULL */
};

static const char *const month_names[] = {
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
    "nov", "dec", NULL,
};
static const char *const dow_names[] = {
    "sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL,
};

static const struct field fields[5] = {
    { "minute", 0, 59, NULL },
    { "hour", 0, 23, NULL },
    { "day of month", 1, 31, NULL },
    { "month", 1, 12, month_names },
    /* 7 is Sunday too; folded into bit 0 after parsing */
    { "day of week", 0, 7, dow_names },
};

static const struct {
    const char *name;
    const char *expr;
} macros[] = {
    { "@yearly", "0 0 1 1 *" },
    { "@annually", "0 0 1 1 *" },
    { "@monthly", "0 0 1 * *" },
    { "@weekly", "0 0 * * 0" },
    { "@daily", "0 0 * * *" },
    { "@midnight", "0 0 * * *" },
    { "@hourly", "0 * * * *" },
};

static int
is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Reads a value of field f at *p (digits or a name) into *v and advances
 * *p.  Returns 0 or WQ_EINVAL with err set.
 */
static int
parse_value(const char **p, int fi, int *v, char *err, size_t errlen)
{
    const struct field *f = &fields[fi];
    const char *s = *p;
    long n = 0;
    size_t len;

    if (*s >= '0' && *s <= '9') {
        while (*s >= '0' && *s <= '9') {
            n = n * 10 + (*s - '0');
            if (n > 9999)
                return wq_seterr(err, errlen, WQ_EINVAL, "field %d (%s): "
                    "number too large", fi + 1, f->name);
            s++;
        }
        if (n < f->min || n > f->max)
            return wq_seterr(err, errlen, WQ_EINVAL, "field %d (%s): %ld "
                "is out of range %d-%d", fi + 1, f->name, n, f->min,
                f->max);
        *v = (int)n;
        *p = s;
        return 0;
    }
    len = 0;
    while ((s[len] >= 'a' && s[len] <= 'z')
        || (s[len] >= 'A' && s[len] <= 'Z'))
        len++;
    if (len == 0) {
        if (*s == '\0' || is_blank(*s) || *s == ',')
            return wq_seterr(err, errlen, WQ_EINVAL, "field %d (%s): a "
                "value is missing", fi + 1, f->name);
        return wq_seterr(err, errlen, WQ_EINVAL, "field %d (%s): "
            "unexpected character '%c'", fi + 1, f->name, *s);
    }
    if (f->names != NULL && len == 3)
        for (int i = 0; f->names[i] != NULL; i++)
            if (strncasecmp(s, f->names[i], 3) == 0) {
                *v = f->min + i;
                *p = s + 3;
                return 0;
            }
    return wq_seterr(err, errlen, WQ_EINVAL, "field %d (%s): unknown "
        "name '%.*s'%s", fi + 1, f->name, (int)(len > 16 ? 16 : len), s,
        f->names == NULL ? " (this field takes numbers only)" : "");
}

/*
 * Parses field fi from *p up to the next blank or the end into *bits and
 * advances *p.  *star says whether the field starts with '*'.
 */
static int
parse_field(const char **p, int fi, uint64_t *bits, int *star, char *err,
    size_t errlen)
{
    const struct field *f = &fields[fi];
    const char *s = *p;
    int rc;

    *bits = 0;
    *star = *s == '*';
    for (;;) {
        int lo, hi, step = 1, single = 0;

        if (*s == '*') {
            lo = f->min;
            hi = f->max;
            s++;
        } else {
            if ((rc = parse_value(&s, fi, &lo, err, errlen)) != 0)
                return rc;
            hi = lo;
            single = 1;
            if (*s == '-') {
                s++;
                if ((rc = parse_value(&s, fi, &hi, err, errlen)) != 0)
                    return rc;
                single = 0;
                if (hi < lo)
                    return wq_seterr(err, errlen, WQ_EINVAL, "field %d (%s): "
                        "range %d-%d is reversed (ranges do not wrap)",
                        fi + 1, f->name, lo, hi);
            }
        }
        if (*s == '/') {
            long n = 0;

            s++;
            if (!(*s >= '0' && *s <= '9'))
                return wq_seterr(err, errlen, WQ_EINVAL, "field %d (%s): a "
                    "step must be a number", fi + 1, f->name);
            while (*s >= '0' && *s <= '9') {
                n = n * 10 + (*s - '0');
                if (n > 9999)
                    break;
                s++;
            }
            if (n < 1 || n > f->max - f->min + 1 || (*s >= '0' && *s <= '9'))
                return wq_seterr(err, errlen, WQ_EINVAL, "field %d (%s): "
                    "step %ld is out of range 1-%d", fi + 1, f->name, n,
                    f->max - f->min + 1);
            step = (int)n;
            if (single)
                hi = f->max;    /* "v/n" is "v-max/n" */
        }
        for (int v = lo; v <= hi; v += step)
            *bits |= (uint64_t)1 << v;
        if (*s == ',') {
            s++;
            continue;
        }
        if (*s == '\0' || is_blank(*s))
            break;
        return wq_seterr(err, errlen, WQ_EINVAL, "field %d (%s): "
            "unexpected character '%c'", fi + 1, f->name, *s);
    }
    *p = s;
    return 0;
}

int
wq_cron_parse(const char *expr, struct wq_cron *out, char *err,
    size_t errlen)
{
    struct wq_cron c;
    const char *p;
    int64_t next;
    uint64_t bits[5];
    int star[5], n = 0, rc;

    memset(out, 0, sizeof *out);
    if (expr == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "no cron expression");
    if (strnlen(expr, WQ_CRON_MAX + 1) > WQ_CRON_MAX)
        return wq_seterr(err, errlen, WQ_EINVAL, "cron expression longer "
            "than %d bytes", WQ_CRON_MAX);
    p = expr;
    while (is_blank(*p))
        p++;
    if (*p == '@') {
        size_t len = strcspn(p, " \t");

        for (size_t i = 0; i < WQ_ARRAY_LEN(macros); i++)
            if (len == strlen(macros[i].name)
                && strncasecmp(p, macros[i].name, len) == 0) {
                const char *q = p + len;

                while (is_blank(*q))
                    q++;
                if (*q != '\0')
                    return wq_seterr(err, errlen, WQ_EINVAL, "unexpected "
                        "text after %s", macros[i].name);
                return wq_cron_parse(macros[i].expr, out, err, errlen);
            }
        if (len == 7 && strncasecmp(p, "@reboot", 7) == 0)
            return wq_seterr(err, errlen, WQ_EINVAL, "@reboot is not "
                "supported: the scheduler runs periodic tasks by time only");
        return wq_seterr(err, errlen, WQ_EINVAL, "unknown macro '%.*s' "
            "(known: @yearly, @annually, @monthly, @weekly, @daily, "
            "@midnight, @hourly)", (int)(len > 16 ? 16 : len), p);
    }
    if (*p == '\0')
        return wq_seterr(err, errlen, WQ_EINVAL, "empty cron expression");
    while (*p != '\0') {
        if (n == 5)
            return wq_seterr(err, errlen, WQ_EINVAL, "more than 5 fields "
                "(minute hour day-of-month month day-of-week); seconds "
                "and years are not supported");
        if ((rc = parse_field(&p, n, &bits[n], &star[n], err, errlen)) != 0)
            return rc;
        n++;
        while (is_blank(*p))
            p++;
    }
    if (n < 5)
        return wq_seterr(err, errlen, WQ_EINVAL, "%d field%s, want 5 "
            "(minute hour day-of-month month day-of-week)", n,
            n == 1 ? "" : "s");

    memset(&c, 0, sizeof c);
    c.minute = bits[0];
    c.hour = (uint32_t)bits[1];
    c.dom = (uint32_t)bits[2];
    c.month = (uint16_t)bits[3];
    c.dow = (uint8_t)((bits[4] & 0x7f) | ((bits[4] >> 7) & 1));
    c.dom_star = (uint8_t)star[2];
    c.dow_star = (uint8_t)star[4];
    /* From the day before year 2000 (a cycle start): a whole cycle. */
    if (wq_cron_next(&c, 946684799, &next) != 0)
        return wq_seterr(err, errlen, WQ_EINVAL, "never fires: no day "
            "matches both the day-of-month and the month fields");
    *out = c;
    return 0;
}

/* ---- the calendar ---------------------------------------------------------- */

/* Floor division and modulo for negative times. */
static int64_t
floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* Days since 1970-01-01 to year, month (1..12), day (1..31). */
static void
civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era, yy;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    yy = (int64_t)yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

/* Day of the week of a day number, 0 = Sunday (1970-01-01 was a
 * Thursday). */
static unsigned
weekday(int64_t z)
{
    int64_t w = (z + 4) % 7;

    return (unsigned)(w < 0 ? w + 7 : w);
}

static int
day_matches(const struct wq_cron *c, int64_t day)
{
    int64_t y;
    unsigned m, d;
    int dom_ok, dow_ok;

    civil_from_days(day, &y, &m, &d);
    if (!(c->month & (1u << m)))
        return 0;
    dom_ok = (c->dom >> d) & 1;
    dow_ok = (c->dow >> weekday(day)) & 1;
    if (c->dom_star || c->dow_star)
        return dom_ok && dow_ok;
    return dom_ok || dow_ok;
}

int
wq_cron_matches(const struct wq_cron *c, int64_t t)
{
    int64_t min = floor_div(t, 60), day = floor_div(min, 1440);
    int64_t mod = min - day * 1440;

    return day_matches(c, day) && ((c->hour >> (mod / 60)) & 1)
        && ((c->minute >> (mod % 60)) & 1);
}

/* The first set bit of `bits` at or above `from` (below `limit`), or -1. */
static int
first_bit(uint64_t bits, int from, int limit)
{
    for (int i = from; i < limit; i++)
        if ((bits >> i) & 1)
            return i;
    return -1;
}

int
wq_cron_next(const struct wq_cron *c, int64_t after, int64_t *next)
{
    int64_t min, day;
    int h0, m0;

    if (after < (int64_t)MIN_DAY * 86400 || after > (int64_t)MAX_DAY * 86400)
        return WQ_ENOENT;
    min = floor_div(after, 60) + 1;
    day = floor_div(min, 1440);
    h0 = (int)((min - day * 1440) / 60);
    m0 = (int)((min - day * 1440) % 60);
    for (int64_t i = 0; i <= DAYS_PER_CYCLE && day <= MAX_DAY; i++, day++) {
        if (day_matches(c, day)) {
            for (int h = first_bit(c->hour, h0, 24); h >= 0;
                h = first_bit(c->hour, h + 1, 24)) {
                int m = first_bit(c->minute, h == h0 ? m0 : 0, 60);

                if (m >= 0) {
                    *next = (day * 1440 + h * 60 + m) * 60;
                    return 0;
                }
            }
        }
        h0 = 0;
        m0 = 0;
    }
    return WQ_ENOENT;
}

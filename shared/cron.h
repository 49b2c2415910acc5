/*
 * cron.h - five-field cron expressions in UTC: parsing, matching and the
 * next tick.  The scheduler's periodic tasks use it (scheduler/periodic.c);
 * it lives in shared/ because it is a pure module the CLI and the fuzz
 * target use as well.
 *
 * Syntax (Vixie cron, as crontab(5) describes it):
 *
 *   minute hour day-of-month month day-of-week
 *   0-59   0-23 1-31         1-12  0-7 (0 and 7 are Sunday)
 *
 * Each field is a comma-separated list of items; an item is `*`, a value
 * `v`, a range `a-b`, each optionally followed by a step `/n` (`*` and
 * `a-b` stepped from their start; `v/n` means `v-max/n`).  Months and
 * days of the week may be written as English three-letter names (jan,
 * mon; any case), also in ranges.  The macros @yearly (@annually),
 * @monthly, @weekly, @daily (@midnight) and @hourly stand for their usual
 * expressions; @reboot is refused (a scheduler has no boot).  Fields are
 * separated by blanks; nothing else may follow the fifth.
 *
 * Day rule, as in Vixie cron: when both day-of-month and day-of-week are
 * restricted (neither starts with `*`), a day matches if either does;
 * otherwise both must match.  So "0 0 13 * 5" fires on every 13th and
 * every Friday, while a day-of-month of `*` stepped by 2 with a
 * day-of-week of 1 fires on odd days that are Mondays (a stepped `*`
 * still starts with `*`).
 *
 * Invalid input is rejected with a reason that names the field: values
 * out of range, reversed ranges, a step of 0 or beyond the field, unknown
 * names, empty items, a wrong number of fields, and expressions that can
 * never fire ("0 0 30 2 *").  Times are seconds since the Unix epoch, in
 * UTC; there are no time zones and so no daylight-saving gaps.
 *
 * Everything here is pure, allocates nothing and is thread-safe.
 */
#ifndef WQ_CRON_H
#define WQ_CRON_H

#include <stddef.h>
#include <stdint.h>

#include "wq.h"

/* Longest expression accepted, in bytes. */
#define WQ_CRON_MAX 256

/* A parsed expression: one bit per allowed value. */
struct wq_cron {
    uint64_t minute;    /* bits 0..59 */
    uint32_t hour;      /* bits 0..23 */
    uint32_t dom;       /* bits 1..31 */
    uint16_t month;     /* bits 1..12 */
    uint8_t dow;        /* bits 0..6, 0 = Sunday */
    uint8_t dom_star;   /* the day-of-month field starts with '*' */
    uint8_t dow_star;   /* the day-of-week field starts with '*' */
};

/*
 * wq_cron_parse parses `expr` into *out.  Returns 0, or WQ_EINVAL with
 * err saying which field is wrong and why ("field 2 (hour): 24 is out of
 * range 0-23"), *out then zeroed.  `expr` NULL is WQ_EINVAL.
 */
int wq_cron_parse(const char *expr, struct wq_cron *out, char *err,
    size_t errlen);

/*
 * wq_cron_matches returns 1 if the minute that holds time `t` (seconds
 * since the epoch, UTC) matches `c`, else 0.
 */
int wq_cron_matches(const struct wq_cron *c, int64_t t);

/*
 * wq_cron_next sets *next to the first minute boundary strictly after
 * `after` (seconds since the epoch, UTC) that matches `c`.  Returns 0, or
 * WQ_ENOENT if there is none within a whole 400-year Gregorian cycle (it
 * never fires; wq_cron_parse refuses such expressions) or `after` lies
 * outside years 1..9999.
 */
int wq_cron_next(const struct wq_cron *c, int64_t after, int64_t *next);

#endif

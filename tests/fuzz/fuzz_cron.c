/*
 * fuzz_cron.c - libFuzzer target for wq_cron_parse() and wq_cron_next().
 *
 * The input (NUL-terminated copy) must be either rejected with WQ_EINVAL,
 * a reason and a zeroed result, or accepted.  An accepted expression must
 * have at least one bit in every field, no bit outside its field's range,
 * and must fire: from a few start times (derived from the input, so the
 * fuzzer explores them too), wq_cron_next() finds a tick strictly later,
 * on a minute boundary, that wq_cron_matches(), with no matching minute
 * in between for the first hour after the start.  Any violation aborts
 * with a line saying what.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, what) do {                                              \
    if (!(cond)) {                                                          \
        fprintf(stderr, "fuzz_cron: %s (%s:%d)\n", (what), __FILE__,        \
            __LINE__);                                                      \
        abort();                                                            \
    }                                                                       \
} while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wq_cron c, zero;
    char *expr, err[WQ_ERRLEN];
    uint64_t seed = 1469598103934665603ULL;
    int rc;

    if (size > 4 * WQ_CRON_MAX)
        return 0;
    expr = malloc(size + 1);
    if (expr == NULL)
        return 0;
    memcpy(expr, data, size);
    expr[size] = '\0';
    err[0] = '\0';
    rc = wq_cron_parse(expr, &c, err, sizeof err);
    memset(&zero, 0, sizeof zero);
    if (rc != 0) {
        CHECK(rc == WQ_EINVAL, "rejection is not WQ_EINVAL");
        CHECK(err[0] != '\0', "rejection without a reason");
        CHECK(memcmp(&c, &zero, sizeof c) == 0, "rejection leaves data");
        free(expr);
        return 0;
    }
    CHECK(c.minute != 0 && c.minute >> 60 == 0, "minute bits");
    CHECK(c.hour != 0 && c.hour >> 24 == 0, "hour bits");
    CHECK(c.dom != 0 && (c.dom & 1) == 0, "day-of-month bits");
    CHECK(c.month != 0 && (c.month & 1) == 0 && c.month >> 13 == 0,
        "month bits");
    CHECK(c.dow != 0 && c.dow >> 7 == 0, "day-of-week bits");

    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 1099511628211ULL;
    for (int k = 0; k < 3; k++) {
        /* 1970 .. about 2400 */
        int64_t start = (int64_t)(seed % 13569465600ULL), t, m;

        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        CHECK(wq_cron_next(&c, start, &t) == 0, "accepted but never fires");
        CHECK(t > start, "next is not after the start");
        CHECK(t % 60 == 0, "next is not on a minute");
        CHECK(wq_cron_matches(&c, t), "next does not match");
        for (m = (start / 60 + 1) * 60; m < t && m < start + 3600; m += 60)
            CHECK(!wq_cron_matches(&c, m), "a matching minute was skipped");
    }
    free(expr);
    return 0;
}

/*
 * priority.c - task priorities as broker bands (see priority.h).
 *
 * Owns the band names and the weighted picker; the worker's claim order
 * (worker/consumer.c), the producers' publish (client.c, the HTTP
 * publisher) and the scheduler's republish use them.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "priority.h"

static const char *const names[WQ_PRIORITY_N] = {
    [WQ_PRIORITY_LOW] = "low",
    [WQ_PRIORITY_NORMAL] = "normal",
    [WQ_PRIORITY_HIGH] = "high",
};

static const char *const suffixes[WQ_PRIORITY_N] = {
    [WQ_PRIORITY_LOW] = WQ_PRIORITY_LOW_SUFFIX,
    [WQ_PRIORITY_NORMAL] = "",
    [WQ_PRIORITY_HIGH] = WQ_PRIORITY_HIGH_SUFFIX,
};

const char *
wq_priority_name(int priority)
{
    if (priority < 0 || priority >= WQ_PRIORITY_N)
        return "?";
    return names[priority];
}

int
wq_priority_parse(const char *s, int *out)
{
    if (s == NULL)
        return WQ_EINVAL;
    for (int p = 0; p < WQ_PRIORITY_N; p++) {
        char num[2] = { (char)('0' + p), 0 };

        if (strcasecmp(s, names[p]) == 0 || strcmp(s, num) == 0) {
            *out = p;
            return 0;
        }
    }
    return WQ_EINVAL;
}

char *
wq_priority_band(char *buf, size_t len, const char *queue, int priority)
{
    const char *suffix = priority >= 0 && priority < WQ_PRIORITY_N
        ? suffixes[priority] : "";

    snprintf(buf, len, "%s%s", queue, suffix);
    return buf;
}

int
wq_priority_of_band(const char *band, size_t *qlen)
{
    size_t n = strlen(band);

    *qlen = n;
    for (int p = 0; p < WQ_PRIORITY_N; p++) {
        size_t ns = strlen(suffixes[p]);

        if (ns > 0 && n > ns && memcmp(band + n - ns, suffixes[p], ns) == 0) {
            *qlen = n - ns;
            return p;
        }
    }
    return WQ_PRIORITY_NORMAL;
}

int
wq_priority_pick(const int weights[WQ_PRIORITY_N],
    int credit[WQ_PRIORITY_N], const int avail[WQ_PRIORITY_N])
{
    int any = 0;

    for (int round = 0; round < 2; round++) {
        for (int p = WQ_PRIORITY_N - 1; p >= 0; p--) {
            if (!avail[p])
                continue;
            any = 1;
            if (credit[p] > 0) {
                credit[p]--;
                return p;
            }
        }
        if (!any)
            return -1;
        /* every available band used its credit: a new round */
        for (int p = 0; p < WQ_PRIORITY_N; p++)
            credit[p] = weights[p];
    }
    /* all available bands weigh 0: the highest of them */
    for (int p = WQ_PRIORITY_N - 1; p >= 0; p--)
        if (avail[p])
            return p;
    return -1;
}

/*
 * backoff.c - exponential backoff with jitter (see backoff.h).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include "backoff.h"

int64_t
wq_backoff_delay_ms(const struct wq_backoff *p, uint32_t attempt,
    double rand01)
{
    double d;

    if (attempt < 1)
        attempt = 1;
    if (rand01 < 0)
        rand01 = 0;
    if (rand01 >= 1)
        rand01 = nextafter(1.0, 0.0);
    /* pow() overflows to +inf for large attempts; the cap catches it */
    d = (double)p->base_ms * pow(p->factor < 1 ? 1 : p->factor,
        (double)(attempt - 1));
    if (!(d <= (double)p->cap_ms))
        d = (double)p->cap_ms;
    switch (p->jitter) {
    case WQ_JITTER_FULL:
        d = d * rand01;
        break;
    case WQ_JITTER_EQUAL:
        d = d / 2 + d / 2 * rand01;
        break;
    case WQ_JITTER_NONE:
        break;
    }
    return d < 0 ? 0 : (int64_t)d;
}

int
wq_backoff_should_retry(const struct wq_backoff *p, uint32_t attempt)
{
    return attempt < p->max_attempts;
}

double
wq_backoff_rand01(void)
{
    static __thread uint64_t s;

    if (s == 0 && (getrandom(&s, sizeof s, 0) != sizeof s || s == 0))
        s = 0x9e3779b97f4a7c15ull;
    /* xorshift64*: plenty for spreading retries */
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return (double)((s * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
}

int
wq_backoff_jitter_parse(const char *s)
{
    if (strcmp(s, "none") == 0)
        return WQ_JITTER_NONE;
    if (strcmp(s, "full") == 0)
        return WQ_JITTER_FULL;
    if (strcmp(s, "equal") == 0)
        return WQ_JITTER_EQUAL;
    return -1;
}

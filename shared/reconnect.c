/*
 * reconnect.c - the reconnect backoff of the daemons (see reconnect.h).
 */
#include "clock.h"
#include "reconnect.h"

void
wq_reconnect_init(struct wq_reconnect *r, int64_t min_ms, int64_t max_ms,
    enum wq_jitter jitter)
{
    r->min_ms = min_ms;
    r->max_ms = max_ms < min_ms ? min_ms : max_ms;
    r->jitter = jitter;
    r->step_ms = min_ms;
    r->at_ns = 0;
}

int
wq_reconnect_due(const struct wq_reconnect *r)
{
    return wq_clock_mono_ns() >= r->at_ns;
}

int64_t
wq_reconnect_wait_ms(const struct wq_reconnect *r)
{
    return wq_clock_ms_until(r->at_ns);
}

int64_t
wq_reconnect_failed(struct wq_reconnect *r)
{
    int64_t wait = r->step_ms;

    if (r->jitter == WQ_JITTER_EQUAL)
        wait = (int64_t)((double)wait * (0.5 + wq_backoff_rand01() / 2));
    wq_reconnect_hold(r, wait);
    r->step_ms = r->step_ms * 2 > r->max_ms ? r->max_ms : r->step_ms * 2;
    return wait;
}

void
wq_reconnect_ok(struct wq_reconnect *r)
{
    r->step_ms = r->min_ms;
}

void
wq_reconnect_hold(struct wq_reconnect *r, int64_t ms)
{
    r->at_ns = ms > 0 ? wq_clock_mono_ns() + (uint64_t)ms * 1000000u : 0;
}

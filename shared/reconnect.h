/*
 * reconnect.h - when to try a lost connection again: the one reconnect
 * backoff of the daemons (broker and PostgreSQL connections of the
 * worker, the scheduler and the producer).
 *
 * A struct wq_reconnect holds the current step and the earliest time of
 * the next attempt.  Each failure waits the step (with equal jitter if
 * asked: uniform in [step/2, step], so that many processes restarted
 * together do not reconnect in step) and doubles it up to the cap; a
 * success brings the step back to the first one.  The delays of failed
 * tasks are another matter (backoff.h).
 *
 * A value type owned by one thread; no locking.
 */
#ifndef WQ_RECONNECT_H
#define WQ_RECONNECT_H

#include <stdint.h>

#include "backoff.h"

struct wq_reconnect {
    int64_t min_ms;         /* the first step */
    int64_t max_ms;         /* no step is longer */
    enum wq_jitter jitter;  /* WQ_JITTER_NONE or WQ_JITTER_EQUAL */
    int64_t step_ms;        /* the wait after the next failure */
    uint64_t at_ns;         /* monotonic: no attempt before this */
};

/* Starts at step min_ms, due at once. */
void wq_reconnect_init(struct wq_reconnect *r, int64_t min_ms,
    int64_t max_ms, enum wq_jitter jitter);

/* True when an attempt is allowed now. */
int wq_reconnect_due(const struct wq_reconnect *r);

/* Milliseconds until an attempt is allowed, 0 if it is now. */
int64_t wq_reconnect_wait_ms(const struct wq_reconnect *r);

/* An attempt failed: the next waits the step (jittered), and the step
 * doubles up to max_ms.  Returns the wait in ms. */
int64_t wq_reconnect_failed(struct wq_reconnect *r);

/* An attempt succeeded: the step is min_ms again. */
void wq_reconnect_ok(struct wq_reconnect *r);

/* The next attempt waits exactly `ms` (0: allowed now); the step is kept. */
void wq_reconnect_hold(struct wq_reconnect *r, int64_t ms);

#endif

/*
 * backoff.h - when a failed task runs again: exponential backoff with
 * jitter and a cap (DESIGN.md step 6).  Pure functions of the policy, the
 * attempt number and a random number, so they are easy to test and the
 * same in the worker (a handler failed) and the scheduler (a lease
 * expired).
 *
 * delay(n) = min(cap, base * factor^(n-1)) for the n-th failed attempt,
 * then jitter:
 *   none   delay
 *   full   uniform in [0, delay]             (AWS "full jitter")
 *   equal  delay/2 + uniform in [0, delay/2] (never less than half)
 *
 * The defaults (base 15 s, factor 2, cap 48 h, equal jitter, 25 attempts)
 * spread 25 attempts over 11 to 23 days (17 on average), close to what
 * Sidekiq users expect (about 20).
 */
#ifndef WQ_BACKOFF_H
#define WQ_BACKOFF_H

#include <stdint.h>

enum wq_jitter {
    WQ_JITTER_NONE,
    WQ_JITTER_FULL,
    WQ_JITTER_EQUAL,
};

struct wq_backoff {
    int64_t base_ms;        /* delay after the first failure, before jitter */
    int64_t cap_ms;         /* no delay is longer */
    double factor;          /* growth per attempt, >= 1 */
    enum wq_jitter jitter;
    uint32_t max_attempts;  /* attempts in all, including the first */
};

#define WQ_BACKOFF_DEFAULT { 15000, 48LL * 3600 * 1000, 2.0, \
    WQ_JITTER_EQUAL, 25 }

/*
 * wq_backoff_delay_ms returns the delay before the attempt that follows
 * failed attempt `attempt` (1 for the first), with `rand01` uniform in
 * [0, 1) supplying the jitter.  Never negative, never above cap_ms.
 */
int64_t wq_backoff_delay_ms(const struct wq_backoff *p, uint32_t attempt,
    double rand01);

/* True if another attempt is allowed after `attempt` failed. */
int wq_backoff_should_retry(const struct wq_backoff *p, uint32_t attempt);

/* A uniform double in [0, 1) from a thread-local generator; not for
 * cryptography. */
double wq_backoff_rand01(void);

/* Parses "none", "full", "equal"; -1 if unknown. */
int wq_backoff_jitter_parse(const char *s);

#endif

/*
 * flow_control.h - the worker's side of flow control (README "Flow
 * control"): which deliveries must be admitted before their claim, and
 * the admission itself, against rate limits (rate_limits in workq.conf,
 * per queue or per type) and concurrency keys (the envelope's "fc" and
 * "fn"), both counted across every worker in PostgreSQL (store_flow.h,
 * migration 0007).
 *
 * A delivery that is not admitted is neither claimed nor acked: it waits
 * in the consumer, and is asked for again after the wait the admission
 * gave.  So it is not lost (the broker still has it) and no attempt is
 * counted.  A delivery of a queue and type without a rate limit and
 * without a concurrency key never reaches this module: wq_flow_needed()
 * is one pointer test and, only when limits are configured, a scan of
 * them.
 *
 * One wq_flow per consumer thread (it keeps that thread's buffers and
 * the holds to release); not thread-safe.  Allocation failures abort
 * (alloc.h), as everywhere in the worker.
 */
#ifndef WQ_FLOW_CONTROL_H
#define WQ_FLOW_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "envelope.h"
#include "store_flow.h"

typedef struct wq_flow wq_flow;

/*
 * wq_flow_check_config checks cfg->rate_limits: valid queue names, and
 * no (queue, type) twice.  Returns 0 or WQ_ECONFIG with err naming the
 * group ("FILE:LINE").  For the worker's start.
 */
int wq_flow_check_config(const struct wq_config *cfg, char *err,
    size_t errlen);

/* wq_flow_new returns the flow control of one consumer, with the rate
 * limits of `cfg` (checked), which must outlive it. */
wq_flow *wq_flow_new(const struct wq_config *cfg);

/* wq_flow_free releases it; NULL is allowed. */
void wq_flow_free(wq_flow *f);

/*
 * wq_flow_needed returns 1 if a task of `env` must be admitted before
 * its claim: it has a concurrency key, or its queue or its type has a
 * rate limit; else 0.  Pure; costs nothing when neither applies.
 */
int wq_flow_needed(const wq_flow *f, const struct wq_envelope *env);

/*
 * wq_flow_release_add remembers that the hold of the task of `env` (if
 * it has a concurrency key; otherwise nothing happens) may go: its
 * outcome is committed, or its claim did not run it (`urgent`: release
 * it with the next round trip rather than with the next admission).
 */
void wq_flow_release_add(wq_flow *f, const struct wq_envelope *env,
    int urgent);

/* wq_flow_release_due returns 1 when releases should go out now even
 * without candidates (an urgent one, or many piled up). */
int wq_flow_release_due(const wq_flow *f);

/*
 * wq_flow_admit asks PostgreSQL which of envs[0..n) may start now, and
 * sends the releases remembered so far.  admitted[i] gets 1 or 0,
 * wait_ms[i] (not admitted) when to ask again.  grace_ms: how long a
 * hold admitted but not yet claimed counts (the lease).  Returns 0, or
 * WQ_ESTORE (the releases are kept for the next call).  Blocks for one
 * round trip.
 */
int wq_flow_admit(wq_flow *f, wq_store *s, const char *worker,
    int64_t grace_ms, const struct wq_envelope *const *envs, size_t n,
    unsigned char *admitted, int *wait_ms, char *err, size_t errlen);

#endif

/*
 * store_flow.h - the SQL of flow control (README "Flow control";
 * migration 0007): admitting tasks under rate limits and concurrency
 * keys for the worker (worker/flow_control.c decides which tasks ask),
 * and resolving a unique window for the submit paths.
 *
 * Owns nothing but what struct wq_flow_bufs holds; the connection is
 * the caller's store's.  Nothing here is called for a task without flow
 * control, so a queue without it pays nothing.
 */
#ifndef WQ_STORE_FLOW_H
#define WQ_STORE_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

/* One task that asks to start.  Strings are borrowed for the call; ""
 * means none. */
struct wq_flow_candidate {
    const char *queue;
    const char *key;            /* its idempotency key */
    const char *ckey;           /* concurrency key */
    int climit;                 /* with ckey: 1.. */
    const char *bucket[2];      /* rate-limit buckets ("q:Q", "t:Q:T") */
    int rate[2];                /* tokens a second, with bucket */
    int burst[2];
    int admitted;               /* out: 1 may start (holds and tokens
                                   taken), 0 not now */
    int wait_ms;                /* out: not admitted: ask again after */
};

/* A task whose hold is to go: its outcome is recorded, or its claim did
 * not run it. */
struct wq_flow_release {
    const char *queue;
    const char *key;
};

/* Buffers reused across calls. */
struct wq_flow_bufs {
    struct wq_buf b[12];
};

void wq_flow_bufs_free(struct wq_flow_bufs *bufs);

/*
 * wq_store_flow_admit releases the holds of rel[0..nrel) taken by
 * `worker` (unless their task runs again), then decides for c[0..n) in
 * order which may start, in one statement (workq.flow_admit), and fills
 * their `admitted` and `wait_ms`.  A candidate admitted holds its slot
 * of its concurrency key for grace_ms or until its task ends an attempt,
 * and has taken a token of each bucket: claim it now.
 * Returns 0, or WQ_ESTORE (nothing admitted, nothing released).  Blocks
 * for the round trip.
 */
int wq_store_flow_admit(wq_store *s, struct wq_flow_bufs *bufs,
    const char *worker, int64_t grace_ms, struct wq_flow_candidate *c,
    size_t n, const struct wq_flow_release *rel, size_t nrel, char *err,
    size_t errlen);

/*
 * wq_store_flow_remember records the concurrency key and limit of the
 * task (queue, key), so that the scheduler publishes it with them
 * (workq.flow_tasks): for a delayed task, stored as scheduled.  Returns
 * 0 or WQ_ESTORE.
 */
int wq_store_flow_remember(wq_store *s, const char *queue, const char *key,
    const char *ckey, int climit, char *err, size_t errlen);

/*
 * wq_store_unique_window returns in *start_ms (epoch ms) the start of
 * the unique window of (queue, key) that now falls in: the open one, or
 * a new one of window_ms opened now when there is none or it ended.
 * Every submit inside one window gets the same start.  Returns 0, or
 * WQ_ESTORE.  Blocks for the round trip(s).
 */
int wq_store_unique_window(wq_store *s, const char *queue, const char *key,
    int64_t window_ms, int64_t *start_ms, char *err, size_t errlen);

#endif

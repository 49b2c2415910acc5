/*
 * publisher.h - the producer's publishing thread: the one owner of the
 * transport handle (handles are single-threaded, transport.h).
 *
 * HTTP threads validate and encode tasks, then hand each message to the
 * publisher with pub_submit(); they never block on the broker.  The
 * publisher takes everything queued at once, publishes it, and serves
 * confirmations in short flush slices while more arrives, so that many
 * messages are in flight and batches form by themselves under load.  Each
 * message's verdict calls its done() on the publisher thread, which
 * answers the HTTP request (wq_http_complete).
 *
 * Broker failure: a failed connection, or a message not confirmed within
 * the request timeout, closes the handle (which gives every message in
 * flight its verdict) and marks the broker down; pub_submit() then
 * refuses at once (503 without waiting) while the thread reopens the
 * transport with exponential backoff (open() waits up to
 * broker.connect_timeout for the broker, its address read by the
 * broker's own library).
 */
#ifndef WQ_PRODUCER_PUBLISHER_H
#define WQ_PRODUCER_PUBLISHER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"
#include "wq.h"

struct pub_msg;

/*
 * Called once per submitted message on the publisher thread: status 0
 * when the broker confirmed it, else a WQ_E* and a reason.  It owns the
 * message afterwards (usually frees it).
 */
typedef void pub_done_fn(struct pub_msg *m, int status, const char *why);
/* After a round of verdicts (done() calls), on the publisher thread. */
typedef void pub_round_fn(void *user);

/* One message to publish; the caller allocates it and its data. */
struct pub_msg {
    struct pub_msg *next, *prev;    /* publisher's lists */
    const char *queue;              /* without "workq." */
    const void *key;
    size_t keylen;
    const void *body;               /* the encoded envelope */
    size_t len;
    uint64_t enqueued_ns;           /* set by pub_submit */
    pub_done_fn *done;
    void *user;
};

struct publisher;

/*
 * pub_start starts the thread; it opens the transport described by cfg
 * (borrowed: it must outlive the publisher) in the background, so a
 * broker that is down at start-up is not fatal.  `timeout_ms` bounds the
 * wait for a confirmation.  Metrics (may be NULL) get the publish latency
 * histogram and broker gauges.  `round` (may be NULL) is called with
 * `round_user` after each round of verdicts, so that what the done()
 * calls of a round set up goes on in one piece (the producer's receipts:
 * one statement for a burst of confirmations).  Returns 0 or WQ_ECONFIG
 * (the transport configuration is invalid: err says why).
 */
int pub_start(struct wq_config *cfg, int timeout_ms, wq_metrics *metrics,
    pub_round_fn *round, void *round_user, struct publisher **out,
    char *err, size_t errlen);

/*
 * pub_submit queues the chain of messages `head` (linked by next, `n` of
 * them) as a whole.  Returns 0, after which each gets exactly one done()
 * call; WQ_EBROKER when the broker is known to be down, or WQ_ECLOSED
 * when the publisher is stopping: then no done() is called and the
 * caller still owns the messages.  Thread-safe; never blocks for long.
 */
int pub_submit(struct publisher *p, struct pub_msg *head, size_t n);

/* pub_broker_up returns 1 while the transport is open and working. */
int pub_broker_up(const struct publisher *p);

/* pub_inflight returns the messages queued or awaiting a confirmation. */
size_t pub_inflight(const struct publisher *p);

/*
 * pub_stop_begin starts the drain: new messages are refused (WQ_ECLOSED),
 * what is queued is still published, and the confirmations are awaited
 * for up to timeout_ms; then everything left gets the verdict WQ_ECLOSED
 * and the transport is closed (flush, then destroy).  Does not block;
 * pub_finished() tells when the thread is done.  Thread-safe.
 */
void pub_stop_begin(struct publisher *p, int timeout_ms);

/* pub_hurry ends the drain now (a second SIGTERM). */
void pub_hurry(struct publisher *p);

/* pub_finished returns 1 once the thread has closed the transport. */
int pub_finished(const struct publisher *p);

/* pub_free joins the thread (after pub_stop_begin) and frees everything.
 * NULL is allowed. */
void pub_free(struct publisher *p);

#endif

/*
 * broker.h - the scheduler's side of the broker: one transport handle
 * that publishes batches and waits for their confirmations, declares the
 * queues it publishes to (once each), and reconnects with backoff when
 * the broker goes away.
 *
 * A batch is an array of messages; wq_broker_publish() sends them all,
 * waits for every confirmation (one flush), and says per message whether
 * the broker took it.  Callers commit their bookkeeping only for the
 * confirmed ones (docs/task-states.md "Publishing").
 *
 * Not thread-safe; the scheduler's one thread uses it.
 */
#ifndef WQ_SCHED_BROKER_H
#define WQ_SCHED_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "wq.h"

typedef struct wq_broker wq_broker;

/* One message of a batch.  The fields are borrowed for the call. */
struct wq_broker_msg {
    const char *queue;          /* without "workq." ("emails.dead" too) */
    const void *key;            /* Kafka message key; may be NULL */
    size_t keylen;
    const void *body;
    size_t len;
    int status;                 /* out: 0 confirmed, else a WQ_E* code */
};

/*
 * wq_broker_new prepares a handle for the transport of `cfg` (which it
 * borrows; it must outlive the handle) without connecting.  `client_id`
 * names this process to the broker and is copied.  Never fails (aborts
 * on exhaustion, like every daemon allocation).
 */
wq_broker *wq_broker_new(struct wq_config *cfg, const char *client_id);

/*
 * wq_broker_ready connects if the handle is down and its backoff has
 * passed.  Returns 0 when connected; WQ_EAGAIN while waiting out the
 * backoff (wq_broker_retry_ms says how long); WQ_EBROKER or WQ_ECONFIG
 * when the attempt failed (err says why; the backoff grows, from 100 ms
 * to 30 s).  Blocks while connecting.
 */
int wq_broker_ready(wq_broker *b, char *err, size_t errlen);

/* 1 while connected, else 0. */
int wq_broker_is_up(const wq_broker *b);

/* Milliseconds until the next connection attempt; 0 when up or due. */
int64_t wq_broker_retry_ms(const wq_broker *b);

/*
 * wq_broker_publish publishes msgs[0..n) (declaring each queue the handle
 * has not declared yet), then waits up to timeout_ms for every
 * confirmation, and sets each message's status: 0 when the broker
 * confirmed it, otherwise the reason's code.  *nok (may be NULL) gets the
 * number confirmed.  Returns 0 when the handle is still usable (some
 * messages may have been refused: look at their status), or WQ_EBROKER /
 * WQ_ETIMEOUT when the connection failed or the confirmations did not
 * come in time; the handle is then closed and reconnects later, and the
 * messages without status 0 must be treated as not sent (they may still
 * arrive: a duplicate, absorbed by the worker's claim).  Requires a
 * connected handle (wq_broker_ready).  Blocks.
 */
int wq_broker_publish(wq_broker *b, struct wq_broker_msg *msgs, size_t n,
    int timeout_ms, size_t *nok, char *err, size_t errlen);

/*
 * wq_broker_keepalive serves the connection while nothing is published
 * (RabbitMQ heartbeats, Kafka events); call it at least every
 * wq_broker_keepalive_ms().  A connection found dead is closed.
 */
void wq_broker_keepalive(wq_broker *b);

/* How often keepalive must run, in milliseconds; 0: never needed. */
int64_t wq_broker_keepalive_ms(const wq_broker *b);

/* wq_broker_free closes the connection (waiting up to timeout_ms for
 * anything still in flight) and frees the handle.  NULL is allowed. */
void wq_broker_free(wq_broker *b, int timeout_ms);

#endif

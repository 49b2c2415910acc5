/*
 * consumer.h - the worker's loop: take deliveries off the broker, decode,
 * claim in batches, hand claimed tasks to the handler slots, collect
 * their outcomes, record them in batches, ack (DESIGN.md steps 3 to 6).
 *
 * One thread runs wq_consumer_run(); it alone touches the transport and
 * its PostgreSQL connection.  Handler threads give finished tasks back
 * through a locked list and wake that thread (the transport's wakeup()
 * while it waits in poll, a condition variable otherwise), so it blocks
 * exactly as long as nothing is ready.  Other threads talk to it only
 * through wq_consumer_stop().
 *
 * A worker runs one consumer per transport handle: on RabbitMQ one for
 * all its queues; on Kafka one per queue, so that each queue has its own
 * consumer group, "workq.<queue>" (DESIGN.md step 3: a group named after
 * the first of several queues would be joined by workers of the others
 * too, and every message of theirs consumed twice).  The consumers of a
 * worker share its handler slots (one pool, one count of running tasks),
 * its lease set and its metrics.
 */
#ifndef WQ_WORKER_CONSUMER_H
#define WQ_WORKER_CONSUMER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "handler.h"
#include "worker_lease.h"
#include "pool.h"
#include "worker_stats.h"
#include "transport.h"

struct wq_consumer_conf {
    const struct wq_config *cfg;        /* postgres, policies, tunables */
    const char *worker_id;
    const char *const *queues;          /* consumed queues */
    size_t nqueues;
    int concurrency;                    /* handler slots, of the worker */
    wq_pool *pool;                      /* shared: wq_pool_new(concurrency,
                                           0, wq_consumer_run_task, NULL) */
    atomic_size_t *busy;                /* shared: tasks claimed by all the
                                           worker's consumers, not yet done */
    int64_t lease_ms;
    int64_t drain_timeout_ms;
    int64_t claim_after_ms;             /* worker.claim_after; 0: claim
                                           before every run */
    int64_t batch_wait_ms;              /* worker.batch_wait: least time
                                           between rounds under load */
    int batch_max;
    struct wq_transport_conf tconf;     /* strings owned by the caller */
    const wq_handlers *handlers;
    wq_worker_lease *lease;
    struct wq_worker_stats *stats;
    uint64_t watchdog_usec;             /* 0: none; else the loop turns at
                                           least every third of it (main.c
                                           sends WATCHDOG=1) */
};

typedef struct wq_consumer wq_consumer;

/* Makes a consumer; nothing connects until wq_consumer_run.  The conf
 * and everything it points to must outlive the consumer. */
wq_consumer *wq_consumer_new(const struct wq_consumer_conf *conf);

/*
 * wq_consumer_run connects to PostgreSQL and the broker (retrying with
 * backoff while either is unreachable: it never gives up), then consumes
 * until wq_consumer_stop.  Then, in this order: it stops taking
 * deliveries and gives back those not yet claimed; lets running tasks
 * finish within drain_timeout and records and acks them; at the deadline
 * (or at once for a second stop) kills exec children and abandons the
 * rest to lease expiry; closes the broker in the library's order and the
 * PostgreSQL connection.  `on_ready` (may be NULL) is called once from
 * this thread when it first consumes.  Returns 0 (a clean stop), or the
 * number of tasks abandoned.
 */
int wq_consumer_run(wq_consumer *c, void (*on_ready)(void *), void *arg);

/*
 * wq_consumer_stop asks the loop to stop: `now` 0 drains (first
 * SIGTERM), 1 stops at once (second SIGTERM).  Thread-safe, returns at
 * once; not async-signal-safe (call it from the main loop).
 */
void wq_consumer_stop(wq_consumer *c, int now);

/* Frees a consumer whose run returned 0 (after the shared pool was
 * stopped).  NULL is allowed. */
void wq_consumer_free(wq_consumer *c);

/*
 * wq_consumer_run_task is the function of the shared pool (pool.h): it
 * runs one claimed task on a handler thread and hands it back to the
 * consumer that claimed it.  `user` is unused.
 */
void wq_consumer_run_task(void *item, void *user);

#endif

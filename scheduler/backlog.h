/*
 * backlog.h - the broker's backlog of each configured queue as scheduler
 * metrics (workq_broker_waiting_messages{queue}, the sum of its priority
 * bands, workq_broker_band_waiting_messages{queue,priority} for each band,
 * and on Kafka workq_broker_oldest_waiting_seconds{queue}), refreshed every
 * scheduler.backlog_interval by a thread of its own.
 *
 * The queues are those the configuration names (worker.queues,
 * queue_policies other than "*", periodic): metrics are registered
 * before threads start (metrics.h), so the set is fixed at start.  The
 * thread has its own transport handle (transport.h: a handle is not
 * thread-safe) and only writes metrics, which are lock-free; the
 * scheduler's loop never waits for it.
 */
#ifndef WQ_SCHED_BACKLOG_H
#define WQ_SCHED_BACKLOG_H

#include "config.h"
#include "metrics.h"

typedef struct wq_sched_backlog wq_sched_backlog;

/*
 * wq_sched_backlog_new registers the metrics of cfg's queues in reg and
 * starts the thread.  Call before any thread that reads reg starts.
 * Returns NULL (and starts nothing) when scheduler.backlog_interval is 0
 * or no queue is configured.  cfg and reg must outlive the handle.  Not
 * thread-safe with other calls on cfg (wq_config_transport_conf).
 */
wq_sched_backlog *wq_sched_backlog_new(struct wq_config *cfg,
    wq_metrics *reg);

/* Stops the thread (waits for a round in progress) and frees b.  NULL
 * is a no-op. */
void wq_sched_backlog_free(wq_sched_backlog *b);

#endif

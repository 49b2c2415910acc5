/*
 * sched_stats.h - what the scheduler tells the outside: its Prometheus metrics,
 * /healthz and /metrics (http.h), and the numbers of its sd_notify STATUS
 * line.
 *
 * The scheduler's one loop thread updates the metrics; the HTTP server's
 * threads read them (lock-free, metrics.h).  Health is the loop's own
 * view: when it last went round, and whether it holds a PostgreSQL and a
 * broker connection.
 */
#ifndef WQ_SCHED_STATS_H
#define WQ_SCHED_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "http.h"
#include "metrics.h"

struct wq_sched_stats {
    wq_metrics *reg;
    wq_metric *published_retry;     /* retry_wait -> queued */
    wq_metric *published_delayed;   /* scheduled -> queued */
    wq_metric *relayed;             /* outbox rows published */
    wq_metric *dead_copies;         /* copies on workq.Q.dead */
    wq_metric *lease_retry;         /* expired leases -> retry_wait */
    wq_metric *lease_dead;          /* expired leases -> dead */
    wq_metric *cron_ticks;          /* periodic tasks enqueued */
    wq_metric *pruned;              /* rows deleted by retention */
    wq_metric *unpublishable;       /* tasks made dead: no envelope */
    wq_metric *publish_failures;    /* messages not confirmed */
    wq_metric *hooks_delivered;     /* completion hooks answered 2xx */
    wq_metric *hooks_failed;        /* POSTs that failed (retried) */
    wq_metric *hooks_rejected;      /* not https: dropped, logged */
    wq_metric *lag_seconds;         /* histogram: due -> confirmed */
    wq_metric *oldest_due_seconds;  /* gauge: age of the oldest due task */
    wq_metric *wakeups;             /* turns of the loop */
    wq_metric *store_up, *broker_up;

    atomic_uint_fast64_t loop_ns;   /* last turn of the loop */
    uint64_t stale_ns;              /* /healthz fails after this */
    wq_http *http;
};

/* Registers every metric.  Call before threads start. */
void wq_sched_stats_init(struct wq_sched_stats *st);

/*
 * wq_sched_stats_serve starts /healthz and /metrics on `listen`
 * ("host:port", port 0 picks one); "" serves nothing.  Returns 0, or
 * WQ_EIO/WQ_EINVAL with err set.  *port (may be NULL) gets the bound
 * port, 0 if none.
 */
int wq_sched_stats_serve(struct wq_sched_stats *st, const char *listen,
    int *port, char *err, size_t errlen);

/* Stops the server and frees the metrics. */
void wq_sched_stats_free(struct wq_sched_stats *st);

#endif

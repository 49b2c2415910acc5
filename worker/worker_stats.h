/*
 * worker_stats.h - what the worker tells the outside: its Prometheus metrics,
 * the /healthz and /metrics endpoints (http.h) and the numbers of its
 * sd_notify STATUS line.
 *
 * The consumer thread and the handler threads update the metrics (lock
 * free, metrics.h); the HTTP server's threads read them.  Health is the
 * consumer loop's own view: when it last went round, and whether it holds
 * a broker and a PostgreSQL connection.
 */
#ifndef WQ_WORKER_STATS_H
#define WQ_WORKER_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "http.h"
#include "metrics.h"

#define WQ_STATS_LOOPS 64       /* consumer loops of a worker at most */

struct wq_worker_stats {
    wq_metrics *reg;
    /* tasks by the outcome of their attempt */
    wq_metric *succeeded, *failed, *permanent, *timeout, *cancelled;
    wq_metric *dead;            /* tasks made dead (record or claim) */
    wq_metric *dead_at_claim;   /* of which: attempts spent at claim */
    wq_metric *dup_final, *dup_running, *dup_not_due;
    wq_metric *lost_leases;     /* outcomes whose lease was gone */
    wq_metric *progress_reports;    /* progress reports of handlers */
    wq_metric *progress_writes;     /* of which written to PostgreSQL */
    wq_metric *dead_letters;    /* undecodable messages kept */
    wq_metric *abandoned;       /* stopped at shutdown, not recorded */
    wq_metric *flow_waits;      /* admissions refused (flow control) */
    wq_metric *in_flight;       /* held: claimed, running or unrecorded */
    wq_metric *running;         /* in a handler now */
    wq_metric *handler_seconds; /* histogram */
    wq_metric *claim_seconds;   /* histogram: a round with claims */
    wq_metric *record_seconds;  /* histogram: a round with outcomes */
    wq_metric *latency_seconds; /* histogram: created -> recorded */
    wq_metric *rounds;          /* PostgreSQL round trips of the loop */
    wq_metric *store_up, *broker_up;

    /* The last turn of each consumer loop (one per transport handle),
     * monotonic ns; health and the watchdog go by the oldest. */
    atomic_uint_fast64_t loops[WQ_STATS_LOOPS];
    atomic_int nloops;
    uint64_t stale_ns;              /* healthz fails after this */
    /* Another reason to be unhealthy (the handlers': a crash-looping
     * process handler), asked after the loop's own; may be NULL.  Set
     * before serving. */
    const char *(*extra_why)(void *user);
    void *extra_user;
    wq_http *http;
};

/* Registers every metric.  Call before threads start. */
void wq_worker_stats_init(struct wq_worker_stats *st);

/*
 * wq_worker_stats_serve starts /healthz and /metrics on `listen` ("host:port",
 * port 0 picks one); "" serves nothing.  Returns 0, or WQ_EIO/WQ_EINVAL
 * with err set.  *port (may be NULL) gets the bound port, 0 if none.
 */
int wq_worker_stats_serve(struct wq_worker_stats *st, const char *listen,
    int *port, char *err, size_t errlen);

/* Takes a slot for a consumer loop's turns: 0.., or -1 if all are taken.
 * Call before threads start. */
int wq_worker_stats_loop_register(struct wq_worker_stats *st);

/* A consumer loop went round (now).  Thread-safe. */
void wq_worker_stats_loop_turn(struct wq_worker_stats *st, int slot);

/* The monotonic time of the least recent turn among the loops (now if
 * there is none).  Thread-safe. */
uint64_t wq_worker_stats_oldest_turn(struct wq_worker_stats *st);

/* Stops the server and frees the metrics. */
void wq_worker_stats_free(struct wq_worker_stats *st);

#endif

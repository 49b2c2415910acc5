/*
 * sched_stats.c - the scheduler's metrics and its /healthz and /metrics
 * endpoints (see sched_stats.h).
 */
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "health.h"
#include "sched_stats.h"

/* Lag buckets: from a millisecond to an hour behind. */
static const double lag_bounds[] = {
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
    900, 3600,
};

void
wq_sched_stats_init(struct wq_sched_stats *st)
{
    wq_metrics *m = wq_metrics_new();

    memset(st, 0, sizeof *st);
    st->reg = m;
    st->published_retry = wq_metrics_counter(m,
        "workq_scheduler_published_total",
        "Due tasks published, confirmed and made queued.", "kind=\"retry\"");
    st->published_delayed = wq_metrics_counter(m,
        "workq_scheduler_published_total",
        "Due tasks published, confirmed and made queued.",
        "kind=\"delayed\"");
    st->relayed = wq_metrics_counter(m, "workq_scheduler_relayed_total",
        "Outbox rows published, confirmed and deleted.", NULL);
    st->dead_copies = wq_metrics_counter(m, "workq_scheduler_dead_total",
        "Copies of dead tasks published on workq.Q.dead.", NULL);
    st->lease_retry = wq_metrics_counter(m,
        "workq_scheduler_lease_expiries_total",
        "Running tasks whose lease expired (their worker died or hung).",
        "outcome=\"retry\"");
    st->lease_dead = wq_metrics_counter(m,
        "workq_scheduler_lease_expiries_total",
        "Running tasks whose lease expired (their worker died or hung).",
        "outcome=\"dead\"");
    st->cron_ticks = wq_metrics_counter(m, "workq_scheduler_cron_ticks_total",
        "Periodic tasks enqueued (one per tick).", NULL);
    st->pruned = wq_metrics_counter(m, "workq_scheduler_pruned_total",
        "Rows deleted by retention.", NULL);
    st->unpublishable = wq_metrics_counter(m,
        "workq_scheduler_unpublishable_total",
        "Due tasks whose row makes no valid envelope, made dead.", NULL);
    st->publish_failures = wq_metrics_counter(m,
        "workq_scheduler_publish_failures_total",
        "Messages the broker did not confirm (published again later).",
        NULL);
    st->hooks_delivered = wq_metrics_counter(m,
        "workq_scheduler_hooks_total",
        "Completion hook POSTs, by result.", "result=\"delivered\"");
    st->hooks_failed = wq_metrics_counter(m,
        "workq_scheduler_hooks_total",
        "Completion hook POSTs, by result.", "result=\"failed\"");
    st->hooks_rejected = wq_metrics_counter(m,
        "workq_scheduler_hooks_total",
        "Completion hook POSTs, by result.", "result=\"rejected\"");
    st->lag_seconds = wq_metrics_histogram(m, "workq_scheduler_lag_seconds",
        "From a task's due time to the broker's confirmation.", NULL,
        lag_bounds, WQ_ARRAY_LEN(lag_bounds));
    st->oldest_due_seconds = wq_metrics_gauge(m,
        "workq_scheduler_oldest_due_seconds",
        "Age of the oldest due task not yet published (whole seconds).",
        NULL);
    st->wakeups = wq_metrics_counter(m, "workq_scheduler_wakeups_total",
        "Turns of the scheduler's loop.", NULL);
    st->store_up = wq_metrics_gauge(m, "workq_scheduler_store_up",
        "1 while the scheduler holds a PostgreSQL connection.", NULL);
    st->broker_up = wq_metrics_gauge(m, "workq_scheduler_broker_up",
        "1 while the scheduler holds a broker connection.", NULL);
    atomic_store(&st->loop_ns, wq_clock_mono_ns());
    st->stale_ns = 120ull * 1000000000u;
}

static const char *
why_unhealthy(void *user)
{
    struct wq_sched_stats *st = user;
    uint64_t age = wq_clock_mono_ns() - atomic_load(&st->loop_ns);

    if (age > st->stale_ns)
        return "the scheduler loop is stuck";
    if (wq_metric_value(st->store_up) == 0)
        return "no PostgreSQL connection";
    if (wq_metric_value(st->broker_up) == 0)
        return "no broker connection";
    return NULL;
}

int
wq_sched_stats_serve(struct wq_sched_stats *st, const char *listen,
    int *port, char *err, size_t errlen)
{
    return wq_health_serve(listen, st->reg, why_unhealthy, st, &st->http,
        port, err, errlen);
}

void
wq_sched_stats_free(struct wq_sched_stats *st)
{
    if (st->http != NULL)
        wq_http_stop(st->http);
    st->http = NULL;
    wq_metrics_free(st->reg);
    st->reg = NULL;
}

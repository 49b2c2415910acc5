/*
 * worker_stats.c - the worker's metrics and its /healthz and /metrics
 * endpoints (see worker_stats.h).
 *
 * /healthz answers 200 {"status":"ok"} while the consumer loop turns (it
 * wakes at least every few seconds when a watchdog or a broker heartbeat
 * asks, and at every delivery, completion or signal) and holds both
 * connections; 503 with the reason otherwise, so a load balancer or an
 * orchestrator sees a worker that cannot take tasks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "health.h"
#include "worker_stats.h"

static const double duration_bounds[] = {
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60,
    300, 1800,
};

void
wq_worker_stats_init(struct wq_worker_stats *st)
{
    wq_metrics *m;

    memset(st, 0, sizeof *st);
    st->reg = m = wq_metrics_new();
#define TASKS "workq_worker_tasks_total"
#define TASKS_HELP "Attempts finished, by outcome."
    st->succeeded = wq_metrics_counter(m, TASKS, TASKS_HELP,
        "outcome=\"succeeded\"");
    st->failed = wq_metrics_counter(m, TASKS, TASKS_HELP,
        "outcome=\"failed\"");
    st->permanent = wq_metrics_counter(m, TASKS, TASKS_HELP,
        "outcome=\"permanent_failure\"");
    st->timeout = wq_metrics_counter(m, TASKS, TASKS_HELP,
        "outcome=\"timeout\"");
    st->cancelled = wq_metrics_counter(m, TASKS, TASKS_HELP,
        "outcome=\"cancelled\"");
    st->dead = wq_metrics_counter(m, "workq_worker_dead_total",
        "Tasks this worker made dead (attempts spent or permanent).", NULL);
    st->dead_at_claim = wq_metrics_counter(m,
        "workq_worker_dead_at_claim_total",
        "Deliveries of tasks whose attempts were spent, made dead without "
        "running (poison messages).", NULL);
#define DUPS "workq_worker_duplicates_total"
#define DUPS_HELP "Deliveries acked without running, by the task's state."
    st->dup_final = wq_metrics_counter(m, DUPS, DUPS_HELP,
        "reason=\"final\"");
    st->dup_running = wq_metrics_counter(m, DUPS, DUPS_HELP,
        "reason=\"running\"");
    st->dup_not_due = wq_metrics_counter(m, DUPS, DUPS_HELP,
        "reason=\"not_due\"");
    st->progress_reports = wq_metrics_counter(m,
        "workq_worker_progress_reports_total",
        "Progress reports of running tasks' handlers.", NULL);
    st->progress_writes = wq_metrics_counter(m,
        "workq_worker_progress_writes_total",
        "Progress reports written to PostgreSQL (at most one per task per "
        "second; the others are replaced by a later one).", NULL);
    st->lost_leases = wq_metrics_counter(m, "workq_worker_lost_leases_total",
        "Outcomes not recorded because the lease had been lost.", NULL);
    st->dead_letters = wq_metrics_counter(m,
        "workq_worker_dead_letters_total",
        "Undecodable messages kept in workq.dead_letters.", NULL);
    st->abandoned = wq_metrics_counter(m, "workq_worker_abandoned_total",
        "Tasks stopped at a shutdown deadline, left to lease expiry.", NULL);
    st->flow_waits = wq_metrics_counter(m, "workq_worker_flow_waits_total",
        "Times a delivery was held back by a rate limit or a concurrency "
        "key (flow control), unclaimed, to ask again later.", NULL);
    st->in_flight = wq_metrics_gauge(m, "workq_worker_in_flight",
        "Tasks claimed and not yet recorded.", NULL);
    st->running = wq_metrics_gauge(m, "workq_worker_running",
        "Tasks in a handler now.", NULL);
    st->handler_seconds = wq_metrics_histogram(m,
        "workq_worker_handler_duration_seconds",
        "Time a handler ran for one attempt.", NULL, duration_bounds,
        WQ_ARRAY_LEN(duration_bounds));
    st->claim_seconds = wq_metrics_histogram(m,
        "workq_worker_claim_seconds",
        "PostgreSQL round trip of a batch that claimed tasks.", NULL,
        wq_metrics_latency_bounds, wq_metrics_latency_nbounds);
    st->record_seconds = wq_metrics_histogram(m,
        "workq_worker_record_seconds",
        "PostgreSQL round trip of a batch that recorded outcomes.", NULL,
        wq_metrics_latency_bounds, wq_metrics_latency_nbounds);
    st->latency_seconds = wq_metrics_histogram(m,
        "workq_worker_task_latency_seconds",
        "From a task's creation to its outcome's commit.", NULL,
        wq_metrics_latency_bounds, wq_metrics_latency_nbounds);
    st->rounds = wq_metrics_counter(m, "workq_worker_store_rounds_total",
        "Claim/record round trips to PostgreSQL.", NULL);
    st->store_up = wq_metrics_gauge(m, "workq_worker_store_up",
        "1 while the worker holds a PostgreSQL connection.", NULL);
    st->broker_up = wq_metrics_gauge(m, "workq_worker_broker_up",
        "1 while the worker consumes from the broker.", NULL);
    atomic_init(&st->nloops, 0);
    st->stale_ns = 60ull * 1000000000u;
}

int
wq_worker_stats_loop_register(struct wq_worker_stats *st)
{
    int slot = atomic_load(&st->nloops);

    if (slot >= WQ_STATS_LOOPS)
        return -1;
    atomic_store(&st->loops[slot], wq_clock_mono_ns());
    atomic_store(&st->nloops, slot + 1);
    return slot;
}

void
wq_worker_stats_loop_turn(struct wq_worker_stats *st, int slot)
{
    if (slot >= 0 && slot < WQ_STATS_LOOPS)
        atomic_store(&st->loops[slot], wq_clock_mono_ns());
}

uint64_t
wq_worker_stats_oldest_turn(struct wq_worker_stats *st)
{
    uint64_t oldest = wq_clock_mono_ns();
    int n = atomic_load(&st->nloops);

    for (int i = 0; i < n; i++) {
        uint64_t t = atomic_load(&st->loops[i]);

        if (t < oldest)
            oldest = t;
    }
    return oldest;
}

static const char *
why_unhealthy(void *user)
{
    struct wq_worker_stats *st = user;
    uint64_t age = wq_clock_mono_ns() - wq_worker_stats_oldest_turn(st);

    if (age > st->stale_ns)
        return "the consume loop is stuck";
    if (wq_metric_value(st->broker_up) == 0)
        return "no broker connection";
    if (wq_metric_value(st->store_up) == 0)
        return "no PostgreSQL connection";
    if (st->extra_why != NULL)
        return st->extra_why(st->extra_user);
    return NULL;
}

int
wq_worker_stats_serve(struct wq_worker_stats *st, const char *listen, int *port,
    char *err, size_t errlen)
{
    return wq_health_serve(listen, st->reg, why_unhealthy, st, &st->http,
        port, err, errlen);
}

void
wq_worker_stats_free(struct wq_worker_stats *st)
{
    if (st->http != NULL)
        wq_http_stop(st->http);
    st->http = NULL;
    wq_metrics_free(st->reg);
    st->reg = NULL;
}

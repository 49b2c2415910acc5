/*
 * backlog.c - a thread that asks the broker for the backlog of each
 * configured queue and keeps it in gauges (see backlog.h).
 *
 * Each round: open the transport if not open, one backlog() per priority
 * band of each queue (priority.h), the gauges set from the answers: each
 * band's, and the queue's as their sum.  A band the broker does not have
 * counts 0.  A broker error ends the round, closes the handle (the next
 * round reconnects) and leaves the gauges at their last values, with
 * workq_scheduler_backlog_up at 0 until a round succeeds again.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "backlog.h"
#include "log.h"
#include "priority.h"
#include "transport.h"

#define COMPONENT "backlog"

struct bqueue {
    const char *name;           /* owned by the config */
    wq_metric *waiting, *oldest;
    wq_metric *band[WQ_PRIORITY_N]; /* waiting per priority band */
};

struct wq_sched_backlog {
    struct wq_transport_conf tc;
    int64_t interval_ms;
    struct bqueue *q;
    size_t n;
    wq_metric *up;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop;
};

static void
add_queue(struct wq_sched_backlog *b, const char *name)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->q[i].name, name) == 0)
            return;
    b->q = xreallocarray(b->q, b->n + 1, sizeof *b->q);
    memset(&b->q[b->n], 0, sizeof *b->q);
    b->q[b->n++].name = name;
}

/* One round; 0, or the broker's error (the handle is then closed). */
static int
round_once(struct wq_sched_backlog *b, wq_transport **t)
{
    char err[WQ_ERRLEN];
    struct wq_backlog bl;
    int rc;

    if (*t == NULL && (rc = wq_transport_open(&b->tc, t, err, sizeof err))
        != 0) {
        wq_log_warn(COMPONENT, "broker: %s", err);
        return rc;
    }
    for (size_t i = 0; i < b->n; i++) {
        int64_t waiting = 0, oldest_ms = 0;
        int known = 0;

        /* the queue's three bands (priority.h); the gauge of the queue
         * is their sum, its oldest the oldest of them */
        for (int p = 0; p < WQ_PRIORITY_N; p++) {
            char band[WQ_BROKER_QUEUE_MAX + 1];

            wq_priority_band(band, sizeof band, b->q[i].name, p);
            rc = wq_transport_backlog(*t, band, &bl, err, sizeof err);
            if (rc == WQ_ENOENT) {
                wq_metric_set(b->q[i].band[p], 0);
                known = 1;
                continue;
            }
            if (rc == WQ_EINVAL) {
                wq_log_debug(COMPONENT, "queue %s: %s", band, err);
                continue;
            }
            if (rc != 0) {
                wq_log_warn(COMPONENT, "queue %s: %s", band, err);
                wq_transport_close(*t, 1000);
                *t = NULL;
                return rc;
            }
            known = 1;
            wq_metric_set(b->q[i].band[p], bl.ready > 0 ? bl.ready : 0);
            waiting += bl.ready > 0 ? bl.ready : 0;
            if (bl.oldest_ms > oldest_ms)
                oldest_ms = bl.oldest_ms;
            wq_backlog_free(&bl);
        }
        if (!known)
            continue;
        wq_metric_set(b->q[i].waiting, waiting);
        wq_metric_set(b->q[i].oldest, oldest_ms / 1000);
    }
    return 0;
}

static void *
thread_main(void *arg)
{
    struct wq_sched_backlog *b = arg;
    wq_transport *t = NULL;
    struct timespec until;

    pthread_mutex_lock(&b->lock);
    while (!b->stop) {
        pthread_mutex_unlock(&b->lock);
        wq_metric_set(b->up, round_once(b, &t) == 0);
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += b->interval_ms / 1000;
        until.tv_nsec += (b->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&b->lock);
        while (!b->stop
            && pthread_cond_timedwait(&b->cond, &b->lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&b->lock);
    wq_transport_close(t, 1000);
    return NULL;
}

wq_sched_backlog *
wq_sched_backlog_new(struct wq_config *cfg, wq_metrics *reg)
{
    const struct wq_config_queue_policy *qp = cfg->queue_policies.v;
    const struct wq_config_periodic *pe = cfg->periodic.v;
    struct wq_sched_backlog *b;
    pthread_condattr_t ca;
    char err[WQ_ERRLEN], labels[WQ_QUEUE_MAX + 40];
    int partitioned = wq_transport_backend(cfg->transport)
        ->backlog_partitions;

    if (cfg->scheduler.backlog_interval_ms <= 0)
        return NULL;
    b = xcalloc(1, sizeof *b);
    for (size_t i = 0; i < cfg->worker.queues.n; i++)
        add_queue(b, cfg->worker.queues.v[i]);
    for (size_t i = 0; i < cfg->queue_policies.n; i++)
        if (strcmp(qp[i].name, "*") != 0)
            add_queue(b, qp[i].name);
    for (size_t i = 0; i < cfg->periodic.n; i++)
        add_queue(b, pe[i].queue);
    if (b->n == 0 || wq_config_transport_conf(cfg, &b->tc, err, sizeof err)
        != 0) {
        if (b->n > 0)
            wq_log_warn(COMPONENT, "no backlog metrics: %s", err);
        free(b->q);
        free(b);
        return NULL;
    }
    b->tc.client_id = "workq-scheduler-backlog";
    b->interval_ms = cfg->scheduler.backlog_interval_ms;
    for (size_t i = 0; i < b->n; i++) {
        snprintf(labels, sizeof labels, "queue=\"%s\"", b->q[i].name);
        b->q[i].waiting = wq_metrics_gauge(reg,
            "workq_broker_waiting_messages", "Messages the broker holds "
            "for the queue: RabbitMQ ready count, Kafka consumer-group lag.",
            labels);
        if (partitioned)
            b->q[i].oldest = wq_metrics_gauge(reg,
                "workq_broker_oldest_waiting_seconds", "Age of the message "
                "at the first uncommitted offset (Kafka); 0 when none "
                "waits.", labels);
        for (int p = WQ_PRIORITY_N - 1; p >= 0; p--) {
            snprintf(labels, sizeof labels, "queue=\"%s\",priority=\"%s\"",
                b->q[i].name, wq_priority_name(p));
            b->q[i].band[p] = wq_metrics_gauge(reg,
                "workq_broker_band_waiting_messages", "Messages the broker "
                "holds in one priority band of the queue (their sum is "
                "workq_broker_waiting_messages).", labels);
        }
    }
    b->up = wq_metrics_gauge(reg, "workq_scheduler_backlog_up",
        "1 when the last backlog round reached the broker.", NULL);
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&b->thread, NULL, thread_main, b) != 0)
        abort();    /* no thread at start: the daemon's policy (alloc.h) */
    return b;
}

void
wq_sched_backlog_free(wq_sched_backlog *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->lock);
    b->stop = 1;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->thread, NULL);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b->q);
    free(b);
}

/*
 * db.c - the producer's PostgreSQL thread (see db.h): a job queue under a
 * mutex, one store connection, reconnects with a minimum interval.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "clock.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "reconnect.h"

#define COMPONENT "db"
#define RETRY_MS  1000          /* between two connection attempts */

struct dbq {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct db_job *head, *tail;
    int stopping;
    atomic_int up;

    const struct wq_config *cfg;
    wq_store *store;
    struct wq_reconnect retry;      /* at most one attempt per RETRY_MS */
    char why[WQ_ERRLEN];
};

static void
set_up(struct dbq *d, int up)
{
    if (atomic_exchange(&d->up, up) != up) {
        if (up)
            wq_log_info(COMPONENT, "PostgreSQL up");
        else
            wq_log_warn(COMPONENT, "PostgreSQL unavailable: %s", d->why);
    }
}

/* The connection, made or checked when due; NULL while unavailable. */
static wq_store *
connection(struct dbq *d)
{
    struct wq_store_opts so;
    int rc;

    if (atomic_load(&d->up) && d->store != NULL)
        return d->store;
    if (!wq_reconnect_due(&d->retry))
        return NULL;
    wq_reconnect_hold(&d->retry, RETRY_MS);
    wq_config_store_opts(d->cfg, &so);
    if (d->store == NULL)
        rc = wq_store_open_opts(&so, &d->store, d->why, sizeof d->why);
    else
        rc = wq_store_ping(d->store, d->why, sizeof d->why);
    set_up(d, rc == 0);
    return rc == 0 ? d->store : NULL;
}

static void *
run(void *arg)
{
    struct dbq *d = arg;
    struct db_job *job;
    wq_store *s;
    int stop;

    wq_daemon_block_signals();
    for (;;) {
        pthread_mutex_lock(&d->lock);
        while (d->head == NULL && !d->stopping)
            pthread_cond_wait(&d->cond, &d->lock);
        job = d->head;
        if (job != NULL && (d->head = job->next) == NULL)
            d->tail = NULL;
        stop = d->stopping;
        pthread_mutex_unlock(&d->lock);
        if (job == NULL && stop)
            break;
        s = connection(d);
        if (job->run(job, s, d->why) == WQ_ESTORE && s != NULL) {
            /* check now: reconnect, or mark it down for the next jobs */
            wq_reconnect_hold(&d->retry, 0);
            atomic_store(&d->up, 0);
            (void)connection(d);
        }
    }
    wq_store_close(d->store);
    return NULL;
}

int
db_start(const struct wq_config *cfg, struct dbq **out, char *err,
    size_t errlen)
{
    struct dbq *d = xcalloc(1, sizeof *d);
    int rc;

    d->cfg = cfg;
    wq_reconnect_init(&d->retry, RETRY_MS, RETRY_MS, WQ_JITTER_NONE);
    snprintf(d->why, sizeof d->why, "not connected yet");
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    if ((rc = pthread_create(&d->thread, NULL, run, d)) != 0) {
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->lock);
        free(d);
        return wq_seterr(err, errlen, WQ_EIO, "pthread_create: %s",
            strerror(rc));
    }
    *out = d;
    return 0;
}

int
db_submit(struct dbq *d, struct db_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&d->lock);
    if (d->stopping) {
        pthread_mutex_unlock(&d->lock);
        return WQ_ECLOSED;
    }
    if (d->tail != NULL)
        d->tail->next = job;
    else
        d->head = job;
    d->tail = job;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

int
db_up(const struct dbq *d)
{
    return atomic_load(&((struct dbq *)(uintptr_t)d)->up);
}

void
db_stop(struct dbq *d)
{
    int joined;

    if (d == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    joined = d->stopping;
    d->stopping = 1;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
    if (!joined)
        pthread_join(d->thread, NULL);
}

void
db_free(struct dbq *d)
{
    if (d == NULL)
        return;
    db_stop(d);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

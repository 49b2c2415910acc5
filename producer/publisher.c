/*
 * publisher.c - the producer's publishing thread (see publisher.h).
 *
 * The thread owns the publishing connection (pubconn.h: the transport
 * handle, the queues declared on it, the reconnect backoff),
 * and two lists of struct pub_msg: `queued` (filled by pub_submit under
 * the lock) and `flight` (published, in publish order, awaiting the
 * broker's verdict; only the thread touches it).  Its loop:
 *
 *   1. wait until something is queued or in flight (idle: wake once a
 *      second for chores), then take the whole queue;
 *   2. (re)open the transport if it is closed and the backoff allows;
 *   3. publish every taken message (declaring its queue on first use);
 *   4. serve confirmations for up to FLUSH_SLICE_MS, so that new requests
 *      wait at most that long to be published;
 *   5. fail the in-flight messages older than the request timeout
 *      (by closing the handle), and, when idle, let the AMQP connection
 *      read its socket (heartbeats; a broker that went away).
 *
 * At rest the thread sleeps in pthread_cond_timedwait, once a second.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "daemon.h"
#include "log.h"
#include "publisher.h"
#include "pubconn.h"
#include "transport.h"

#define COMPONENT        "publisher"
#define FLUSH_SLICE_MS   2      /* confirm serving between intakes */
#define IDLE_WAKE_MS     1000   /* chores when idle */
#define BACKOFF_FIRST_MS 100    /* reopen: first wait ... */
#define BACKOFF_MAX_MS   5000   /* ... doubling up to this */
#define CLOSE_MS         1000   /* closing a handle that failed */

struct publisher {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct pub_msg *qhead, *qtail;  /* queued, under lock */
    int stopping;                   /* under lock: refuse new messages */
    uint64_t stop_deadline_ns;      /* under lock */
    atomic_int broker_up;
    atomic_size_t inflight;         /* queued + in flight */
    atomic_int finished;            /* the thread is done */

    pub_round_fn *round;            /* set before the thread starts */
    void *round_user;

    /* Owned by the thread. */
    struct wq_config *cfg;
    int timeout_ms;
    struct wq_pubconn pc;           /* the transport handle */
    struct pub_msg *fhead, *ftail;  /* in flight, oldest first */
    size_t nflight;
    uint64_t last_chore_ns;
    int need_drop;                  /* a verdict said the broker is gone */
    char need_why[384];
    int dropping;                   /* closing: verdicts use drop_status */
    int drop_status;
    char drop_why[384];

    wq_metric *latency, *up_gauge, *flight_gauge, *confirmed, *refused;
};

/* --- in-flight list ------------------------------------------------------ */

static void
flight_add(struct publisher *p, struct pub_msg *m)
{
    m->next = NULL;
    m->prev = p->ftail;
    if (p->ftail != NULL)
        p->ftail->next = m;
    else
        p->fhead = m;
    p->ftail = m;
    p->nflight++;
}

static void
flight_del(struct publisher *p, struct pub_msg *m)
{
    if (m->prev != NULL)
        m->prev->next = m->next;
    else
        p->fhead = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
    else
        p->ftail = m->prev;
    m->next = m->prev = NULL;
    p->nflight--;
}

/* Gives one message its verdict; it is the done() callback's afterwards. */
static void
finish(struct publisher *p, struct pub_msg *m, int status, const char *why)
{
    atomic_fetch_sub(&p->inflight, 1);
    if (status == 0) {
        wq_metric_observe(p->latency,
            (double)(wq_clock_mono_ns() - m->enqueued_ns) / 1e9);
        wq_metric_inc(p->confirmed, 1);
    } else {
        wq_metric_inc(p->refused, 1);
    }
    m->done(m, status, why);
}

/* --- the transport ------------------------------------------------------- */

static void
set_up(struct publisher *p, int up)
{
    if (atomic_exchange(&p->broker_up, up) != up)
        wq_log_info(COMPONENT, "broker %s", up ? "up" : "down");
    wq_metric_set(p->up_gauge, up);
}

/* The transport's verdict on one message (publish, flush or close). */
static void
on_confirm(void *opaque, int status, const char *reason, void *user)
{
    struct publisher *p = user;
    struct pub_msg *m = opaque;
    char why[384];

    flight_del(p, m);
    if (status != 0 && p->dropping) {
        status = p->drop_status;
        reason = p->drop_why;
    }
    if (status != 0)
        snprintf(why, sizeof why, "%s", reason != NULL ? reason
            : wq_strerror(status));
    finish(p, m, status, status != 0 ? why : NULL);
    /* A message that timed out or could not be sent means the broker is
     * gone (Kafka reports it this way): refuse new ones quickly, and
     * close the handle once out of the transport's call. */
    if (!p->dropping && (status == WQ_ETIMEOUT || status == WQ_EBROKER)) {
        set_up(p, 0);
        if (!p->need_drop)
            snprintf(p->need_why, sizeof p->need_why, "%s", why);
        p->need_drop = 1;
    }
}

/*
 * Closes the handle after a failure: every message in flight gets
 * `status` with `why`, the broker is marked down, and the next open waits
 * for the backoff.
 */
static void
drop(struct publisher *p, int status, const char *why)
{
    struct pub_msg *m;

    p->need_drop = 0;
    if (p->pc.t != NULL) {
        wq_log_warn(COMPONENT, "closing the broker connection: %s", why);
        p->dropping = 1;
        p->drop_status = status;
        snprintf(p->drop_why, sizeof p->drop_why, "%s", why);
        /* forgets the declared queues, holds the next open */
        wq_pubconn_drop(&p->pc, 0);
        p->dropping = 0;
    }
    /* the transport reported them all; this is only a safety net */
    while ((m = p->fhead) != NULL) {
        flight_del(p, m);
        finish(p, m, status, why);
    }
    set_up(p, 0);
}

/* After an attempt to open: the broker is up, or the log says when the
 * next attempt comes. */
static void
opened(struct publisher *p, int rc, const char *err)
{
    if (rc == 0) {
        set_up(p, 1);
        return;
    }
    wq_log_warn(COMPONENT, "broker unavailable, retry in %lld ms: %s",
        (long long)wq_reconnect_wait_ms(&p->pc.retry), err);
    set_up(p, 0);
}

/* Opens the transport when it is closed and the backoff has passed. */
static void
try_open(struct publisher *p)
{
    char err[WQ_ERRLEN];

    if (p->pc.t != NULL || !wq_reconnect_due(&p->pc.retry))
        return;
    /* open() waits for the broker (broker.connect_timeout), as its
     * library reads the address: that is the probe */
    opened(p, wq_pubconn_open(&p->pc, err, sizeof err), err);
}

/* Publishes one message, or gives it its verdict at once. */
static void
publish(struct publisher *p, struct pub_msg *m)
{
    char err[WQ_ERRLEN];
    int rc;

    if (p->pc.t == NULL) {
        finish(p, m, WQ_EBROKER, "the broker is unavailable");
        return;
    }
    if ((rc = wq_pubconn_declare(&p->pc, m->queue, err, sizeof err)) == 0) {
        /* in the list first: the verdict may come inside publish() */
        flight_add(p, m);
        rc = wq_pubconn_publish(&p->pc, m->queue, m->key, m->keylen,
            m->body, m->len, m, err, sizeof err);
        if (rc != 0)
            flight_del(p, m);
    }
    if (rc == 0)
        return;
    finish(p, m, rc, err);
    if (wq_pubconn_broken(rc))
        drop(p, WQ_EBROKER, err);
}

/* --- the thread ---------------------------------------------------------- */

static void
chores(struct publisher *p)
{
    uint64_t now = wq_clock_mono_ns();
    char err[WQ_ERRLEN];
    int rc;

    if (p->need_drop) {
        drop(p, WQ_EBROKER, p->need_why);
        return;
    }
    /* the oldest message in flight waited too long: the broker is gone */
    if (p->fhead != NULL && now - p->fhead->enqueued_ns
        > (uint64_t)p->timeout_ms * 1000000u) {
        snprintf(err, sizeof err, "not confirmed by the broker within %d "
            "ms", p->timeout_ms);
        drop(p, WQ_ETIMEOUT, err);
        return;
    }
    if (now - p->last_chore_ns < (uint64_t)IDLE_WAKE_MS * 1000000u)
        return;
    p->last_chore_ns = now;
    if (p->pc.t == NULL) {
        try_open(p);
    } else if (p->nflight == 0) {
        /* reads the socket: heartbeats, and a broker that went away */
        rc = wq_pubconn_flush(&p->pc, 0, err, sizeof err);
        if (rc == WQ_EBROKER)
            drop(p, WQ_EBROKER, err);
    }
}

static void *
run(void *arg)
{
    struct publisher *p = arg;
    struct pub_msg *batch, *m;
    char err[WQ_ERRLEN];
    struct timespec ts;
    uint64_t deadline = 0;
    int stop = 0, rc;

    wq_daemon_block_signals();
    for (;;) {
        pthread_mutex_lock(&p->lock);
        if (p->qhead == NULL && p->nflight == 0 && !p->stopping) {
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += IDLE_WAKE_MS / 1000;
            pthread_cond_timedwait(&p->cond, &p->lock, &ts);
        }
        batch = p->qhead;
        p->qhead = p->qtail = NULL;
        stop = p->stopping;
        deadline = p->stop_deadline_ns;
        pthread_mutex_unlock(&p->lock);

        if (batch != NULL && p->pc.t == NULL)
            try_open(p);
        while ((m = batch) != NULL) {
            batch = m->next;
            m->next = NULL;
            publish(p, m);
        }
        if (p->pc.t != NULL && p->nflight > 0) {
            rc = wq_pubconn_flush(&p->pc, FLUSH_SLICE_MS, err, sizeof err);
            if (rc == WQ_EBROKER)
                drop(p, WQ_EBROKER, err);
        }
        wq_metric_set(p->flight_gauge, (int64_t)p->nflight);
        chores(p);
        if (p->round != NULL)
            p->round(p->round_user);
        if (stop) {
            pthread_mutex_lock(&p->lock);
            batch = p->qhead;
            pthread_mutex_unlock(&p->lock);
            if (batch == NULL && p->nflight == 0)
                break;
            if (wq_clock_mono_ns() >= deadline && batch == NULL) {
                drop(p, WQ_ECLOSED, "the producer is stopping");
                break;
            }
        }
    }
    wq_pubconn_drop(&p->pc, CLOSE_MS);
    if (p->round != NULL)
        p->round(p->round_user);
    set_up(p, 0);
    atomic_store(&p->finished, 1);
    return NULL;
}

/* --- the interface ------------------------------------------------------- */

int
pub_start(struct wq_config *cfg, int timeout_ms, wq_metrics *metrics,
    pub_round_fn *round, void *round_user, struct publisher **out,
    char *err, size_t errlen)
{
    struct publisher *p = xcalloc(1, sizeof *p);
    struct wq_transport_conf tc;
    int rc;

    p->cfg = cfg;
    p->round = round;
    p->round_user = round_user;
    p->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    if ((rc = wq_config_transport_conf(cfg, &tc, err, errlen)) != 0) {
        free(p);
        return rc;
    }
    if (tc.client_id == NULL)
        tc.client_id = "workq-producer";
    /* the broker's library gives up when we do */
    tc.publish_timeout_ms = p->timeout_ms;
    tc.on_confirm = on_confirm;
    tc.on_confirm_user = p;
    wq_pubconn_init(&p->pc, &tc, BACKOFF_FIRST_MS, BACKOFF_MAX_MS,
        WQ_JITTER_NONE);
    if (metrics != NULL) {
        p->latency = wq_metrics_histogram(metrics,
            "workq_producer_publish_seconds", "Time from a task's "
            "acceptance to the broker's confirmation.", NULL,
            wq_metrics_latency_bounds, wq_metrics_latency_nbounds);
        p->up_gauge = wq_metrics_gauge(metrics, "workq_producer_broker_up",
            "1 while the broker connection works.", NULL);
        p->flight_gauge = wq_metrics_gauge(metrics,
            "workq_producer_inflight", "Messages published and not yet "
            "confirmed.", NULL);
        p->confirmed = wq_metrics_counter(metrics,
            "workq_producer_published_total", "Messages by the broker's "
            "verdict.", "verdict=\"confirmed\"");
        p->refused = wq_metrics_counter(metrics,
            "workq_producer_published_total", "Messages by the broker's "
            "verdict.", "verdict=\"failed\"");
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    /*
     * A first attempt now, so that a healthy broker is up before READY.
     * A configuration the library refuses is fatal (Kafka checks it
     * here, without connecting); an absent broker is not.
     */
    rc = wq_pubconn_open(&p->pc, err, errlen);
    if (rc == WQ_ECONFIG) {
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        wq_pubconn_free(&p->pc, 0);
        free(p);
        return rc;
    }
    opened(p, rc, err);     /* a failure armed the backoff */
    if ((rc = pthread_create(&p->thread, NULL, run, p)) != 0) {
        wq_pubconn_free(&p->pc, 0);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return wq_seterr(err, errlen, WQ_EIO, "pthread_create: %s",
            strerror(rc));
    }
    *out = p;
    return 0;
}

int
pub_submit(struct publisher *p, struct pub_msg *head, size_t n)
{
    uint64_t now = wq_clock_mono_ns();
    struct pub_msg *tail = head;

    if (!atomic_load(&p->broker_up))
        return WQ_EBROKER;
    for (struct pub_msg *m = head; m != NULL; m = m->next) {
        m->enqueued_ns = now;
        tail = m;
    }
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        return WQ_ECLOSED;
    }
    atomic_fetch_add(&p->inflight, n);
    if (p->qtail != NULL)
        p->qtail->next = head;
    else
        p->qhead = head;
    p->qtail = tail;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int
pub_broker_up(const struct publisher *p)
{
    return atomic_load(&((struct publisher *)(uintptr_t)p)->broker_up);
}

size_t
pub_inflight(const struct publisher *p)
{
    return atomic_load(&((struct publisher *)(uintptr_t)p)->inflight);
}

void
pub_stop_begin(struct publisher *p, int timeout_ms)
{
    pthread_mutex_lock(&p->lock);
    if (!p->stopping) {
        p->stopping = 1;
        p->stop_deadline_ns = wq_clock_mono_ns()
            + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
    }
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

void
pub_hurry(struct publisher *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    p->stop_deadline_ns = 0;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

int
pub_finished(const struct publisher *p)
{
    return atomic_load(&((struct publisher *)(uintptr_t)p)->finished);
}

void
pub_free(struct publisher *p)
{
    if (p == NULL)
        return;
    pub_stop_begin(p, 0);
    pthread_join(p->thread, NULL);
    wq_pubconn_free(&p->pc, 0);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

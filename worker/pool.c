/*
 * pool.c - handler slots as threads created on demand (see pool.h).
 *
 * One mutex guards a FIFO ring of items and the thread counts; `work`
 * wakes idle threads, `quit` tells the stopper that a thread left.
 * Threads live until stop: creating one costs more than keeping it, and
 * an idle thread costs no CPU and little memory (its stack pages are only
 * reserved).
 *
 * Idle threads are woken in a chain, one at a time: a submit wakes one
 * only when no wakeup is on its way (`wakeups` counts the signals sent and
 * not yet taken), and a thread that takes an item with more left behind
 * it wakes the next.  A burst of short tasks (a round of claims is a
 * burst) is thus run by the few threads that keep up with it, instead of
 * one wakeup, sleep and lock handover per task; a burst of long ones
 * still starts every item on its own thread, one wakeup latency apart.
 * New threads are made only for the items that the idle threads cannot
 * all take (more queued than idle).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "daemon.h"
#include "log.h"
#include "pool.h"

#define DEFAULT_STACK (2u << 20)

struct wq_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;        /* an item is queued, or stop */
    pthread_cond_t quit;        /* a thread finished its last item */
    wq_pool_fn *fn;
    void *user;
    size_t max_threads;
    size_t stack_size;
    pthread_t *threads;
    size_t nthreads;            /* started */
    size_t idle;                /* threads waiting for work */
    size_t wakeups;             /* signals sent, not yet taken */
    size_t running;             /* inside fn */
    size_t exited;              /* returned from their loop */
    void **ring;
    size_t head, len, cap;
    int stopping;
};

/* Wakes one idle thread if items wait and no wakeup is on its way; the
 * lock is held. */
static void
wake_next(wq_pool *p)
{
    if (p->len > 0 && p->wakeups == 0 && p->idle > 0) {
        p->wakeups++;
        pthread_cond_signal(&p->work);
    }
}

static void *
thread_main(void *arg)
{
    wq_pool *p = arg;
    void *item;

    wq_daemon_block_signals();
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->len == 0 && !p->stopping) {
            p->idle++;
            pthread_cond_wait(&p->work, &p->lock);
            p->idle--;
            if (p->wakeups > 0)
                p->wakeups--;
        }
        if (p->len == 0)
            break;          /* stopping, nothing left */
        item = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->len--;
        p->running++;
        wake_next(p);
        pthread_mutex_unlock(&p->lock);
        p->fn(item, p->user);
        pthread_mutex_lock(&p->lock);
        p->running--;
    }
    p->exited++;
    pthread_cond_broadcast(&p->quit);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

wq_pool *
wq_pool_new(size_t max_threads, size_t stack_size, wq_pool_fn *fn,
    void *user)
{
    wq_pool *p = xcalloc(1, sizeof *p);
    pthread_condattr_t ca;

    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->quit, &ca);
    pthread_condattr_destroy(&ca);
    p->fn = fn;
    p->user = user;
    p->max_threads = max_threads > 0 ? max_threads : 1;
    p->stack_size = stack_size > 0 ? stack_size : DEFAULT_STACK;
    p->threads = xcalloc(p->max_threads, sizeof *p->threads);
    p->cap = 64;
    p->ring = xcalloc(p->cap, sizeof *p->ring);
    return p;
}

/* Grows the ring, keeping the FIFO order. */
static void
ring_grow(wq_pool *p)
{
    void **r = xcalloc(p->cap * 2, sizeof *r);

    for (size_t i = 0; i < p->len; i++)
        r[i] = p->ring[(p->head + i) % p->cap];
    free(p->ring);
    p->ring = r;
    p->head = 0;
    p->cap *= 2;
}

int
wq_pool_submit(wq_pool *p, void *item)
{
    pthread_attr_t at;
    int rc;

    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        return WQ_ECLOSED;
    }
    if (p->len == p->cap)
        ring_grow(p);
    p->ring[(p->head + p->len) % p->cap] = item;
    p->len++;
    wake_next(p);
    if (p->len > p->idle && p->nthreads < p->max_threads) {
        pthread_attr_init(&at);
        pthread_attr_setstacksize(&at, p->stack_size);
        rc = pthread_create(&p->threads[p->nthreads], &at, thread_main, p);
        pthread_attr_destroy(&at);
        if (rc == 0)
            p->nthreads++;
        else if (p->nthreads == 0)
            /* not one thread: nothing would ever run; the daemon's
             * policy for exhaustion is to die (alloc.h) */
            wq_log_error("pool", "cannot start a handler thread: %s",
                strerror(rc));
        /* else the busy threads take it when they are done */
    }
    pthread_mutex_unlock(&p->lock);
    return 0;
}

size_t
wq_pool_pending(wq_pool *p)
{
    size_t n;

    pthread_mutex_lock(&p->lock);
    n = p->len + p->running;
    pthread_mutex_unlock(&p->lock);
    return n;
}

int
wq_pool_stop(wq_pool *p, int timeout_ms)
{
    struct timespec ts;
    int left;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (timeout_ms >= 0) {
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    while (p->exited < p->nthreads) {
        if (timeout_ms < 0)
            pthread_cond_wait(&p->quit, &p->lock);
        else if (pthread_cond_timedwait(&p->quit, &p->lock, &ts)
            == ETIMEDOUT)
            break;
    }
    left = (int)(p->nthreads - p->exited);
    pthread_mutex_unlock(&p->lock);
    if (left > 0)
        return left;
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    return 0;
}

void
wq_pool_free(wq_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->quit);
    free(p->threads);
    free(p->ring);
    free(p);
}

/*
 * pool.h - the worker's handler slots: threads that run one task each,
 * created on demand up to a maximum (worker.concurrency) and kept for
 * reuse.
 *
 * The pool knows nothing of tasks: it runs fn(item, user) for each
 * submitted item on one of its threads.  Handing results back is the
 * caller's business (consumer.c pushes them on its completion list and
 * wakes its loop).  The pool's threads block SIGTERM, SIGINT and SIGHUP
 * (daemon.h), so signals reach the main thread only.
 */
#ifndef WQ_WORKER_POOL_H
#define WQ_WORKER_POOL_H

#include <stddef.h>

typedef struct wq_pool wq_pool;
typedef void wq_pool_fn(void *item, void *user);

/*
 * wq_pool_new makes a pool of at most max_threads threads of stack_size
 * bytes (0: 2 MiB) running fn.  No thread starts until work comes.
 * Aborts on allocation failure (alloc.h).
 */
wq_pool *wq_pool_new(size_t max_threads, size_t stack_size, wq_pool_fn *fn,
    void *user);

/*
 * wq_pool_submit queues item; an idle thread takes it, or a new one if
 * all are busy and fewer than max_threads exist; otherwise it waits in
 * line.  Never blocks for long (a mutex).  Thread-safe.  Returns 0, or
 * WQ_ECLOSED after wq_pool_stop.
 */
int wq_pool_submit(wq_pool *p, void *item);

/* Items submitted and not finished (queued or running).  Thread-safe. */
size_t wq_pool_pending(wq_pool *p);

/*
 * wq_pool_stop refuses new items, lets the threads finish what is queued
 * and running, and joins them, waiting at most timeout_ms (-1: forever).
 * Returns 0 when every thread was joined (then wq_pool_free may follow),
 * or the number of threads still running a task at the deadline: they
 * are left running, and the pool must not be freed (the process is about
 * to exit).
 */
int wq_pool_stop(wq_pool *p, int timeout_ms);

/* Frees a pool whose wq_pool_stop returned 0.  NULL is allowed. */
void wq_pool_free(wq_pool *p);

#endif

/*
 * db.h - the producer's PostgreSQL thread: the one owner of its store
 * connection (store handles are single-threaded, store.h).
 *
 * HTTP threads hand it jobs (store a delayed task, read a task, check the
 * connection for /readyz); each job runs on this thread and answers its
 * HTTP request itself, so no HTTP thread waits on the database.  The
 * connection is made on first use and remade after a failure, at most
 * once per RETRY interval, so a database that is down costs each job one
 * quick "unavailable" instead of a connect timeout.
 */
#ifndef WQ_PRODUCER_DB_H
#define WQ_PRODUCER_DB_H

#include "config.h"
#include "store.h"

struct db_job;

/*
 * Runs `job` on the database thread.  `store` is the connection, or NULL
 * when PostgreSQL is unreachable (`why` says why).  The job owns itself
 * (frees itself when done).  Return WQ_ESTORE when the connection failed
 * under the job, so that the thread checks it; anything else is ignored.
 */
typedef int db_run_fn(struct db_job *job, wq_store *store, const char *why);

struct db_job {
    struct db_job *next;
    db_run_fn *run;
};

struct dbq;

/* db_start starts the thread; cfg is borrowed (postgres.*).  Returns 0
 * or WQ_EIO. */
int db_start(const struct wq_config *cfg, struct dbq **out, char *err,
    size_t errlen);

/* db_submit queues a job.  Returns 0 (it will run exactly once) or
 * WQ_ECLOSED when the thread is stopping (it will not).  Thread-safe. */
int db_submit(struct dbq *d, struct db_job *job);

/* db_up returns 1 if the last use of the connection worked. */
int db_up(const struct dbq *d);

/* db_stop runs the jobs already queued, refuses new ones (db_submit then
 * returns WQ_ECLOSED), closes the connection and joins the thread.
 * Blocks.  NULL is allowed. */
void db_stop(struct dbq *d);

/* db_free frees a stopped dbq; call once nothing can call db_submit any
 * more (the HTTP server is stopped).  NULL is allowed. */
void db_free(struct dbq *d);

#endif

/*
 * worker_lease.h - the worker's leases: the set of tasks it has claimed and not
 * yet recorded, and the thread that keeps their leases alive and the
 * worker's heartbeat row fresh (docs/task-states.md "Leases").
 *
 * The thread has its own PostgreSQL connection, so a slow claim or
 * record on the consumer's connection never delays a renewal.  Every
 * lease/3 it renews all of the set's leases and upserts the workq.workers
 * row in one statement (store_claims.c, wq_claim_renew); after a failure it
 * tries again within a second, reconnecting as needed, so a short
 * PostgreSQL outage costs no lease.
 *
 * The same connection LISTENs on channel workq_cancel: `workq cancel`
 * sends NOTIFY workq_cancel, '<task id>' for a running task
 * (docs/task-states.md, "Cancel"), and when the id is in the set, the
 * thread calls the cancel function with the pointer stored next to it.
 * It waits in poll(2) on that connection's socket and an eventfd (kicks
 * and the stop), so a cancel arrives at once and an idle worker sleeps.
 */
#ifndef WQ_WORKER_LEASE_H
#define WQ_WORKER_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "store_claims.h"

typedef struct wq_worker_lease wq_worker_lease;

/*
 * wq_worker_lease_start starts the thread for worker `w` (its strings are
 * copied) with leases of lease_ms, connecting as *so says (its strings are
 * copied; a transaction-mode pooler's LISTEN goes to so->listen_conninfo,
 * store.h).  It connects in the background, so PostgreSQL may be down at
 * start.
 * Returns 0 with *out owned by the caller (wq_worker_lease_stop), or WQ_EIO if
 * the thread cannot start.
 */
int wq_worker_lease_start(const struct wq_worker_info *w,
    const struct wq_store_opts *so, int64_t lease_ms, wq_worker_lease **out,
    char *err, size_t errlen);

/*
 * Called by the lease thread when a cancel for a task of the set arrives,
 * with the pointer given to wq_worker_lease_add, while the set's lock is held:
 * the task cannot leave the set (and be freed by its owner) meanwhile.
 * Must not call back into this module.
 */
typedef void wq_worker_lease_cancel_fn(void *task, void *user);

/* Sets the cancel function before tasks are added (NULL: ignore). */
void wq_worker_lease_on_cancel(wq_worker_lease *l,
    wq_worker_lease_cancel_fn *fn, void *user);

/* Adds a claimed task (its row id) to the set, with a pointer for the
 * cancel function.  Thread-safe. */
void wq_worker_lease_add(wq_worker_lease *l, const uint8_t id[16], void *task);

/* Removes a recorded (or abandoned) task from the set.  Thread-safe. */
void wq_worker_lease_remove(wq_worker_lease *l, const uint8_t id[16]);

/* 1 if the task is in the set, else 0.  Thread-safe. */
int wq_worker_lease_holds(wq_worker_lease *l, const uint8_t id[16]);

/* How many tasks are in the set.  Thread-safe. */
size_t wq_worker_lease_count(wq_worker_lease *l);

/* Renew now (after a claim of many tasks, or for tests).  Thread-safe. */
void wq_worker_lease_kick(wq_worker_lease *l);

/* The progress table whose reports the lease thread writes (progress.h);
 * lives until wq_worker_lease_stop.  Thread-safe. */
struct wq_progress;
struct wq_progress *wq_worker_lease_progress(wq_worker_lease *l);

/*
 * wq_worker_lease_stop stops the thread; with `clean` it first marks the worker
 * row stopped (a clean shutdown).  Leases still in the set are left to
 * expire.  Closes the connection and frees everything.  NULL is allowed.
 */
void wq_worker_lease_stop(wq_worker_lease *l, int clean);

#endif

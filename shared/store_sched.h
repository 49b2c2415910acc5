/*
 * store_sched.h - the scheduler's SQL, in the store: the statements of
 * its rounds (due tasks, lost leases, dead copies, the outbox relay,
 * periodic ticks, retention and the receipts sweep) and of its probe.
 *
 * The scheduler names a statement and gives its parameters; the rounds'
 * logic (what to publish, the backoff, the transactions) stays in
 * scheduler/, which reads the rows with store.h's row functions in
 * the column order each statement's comment in store_sched.c gives.
 * Threads and errors as store.h.
 */
#ifndef WQ_STORE_SCHED_H
#define WQ_STORE_SCHED_H

#include <stddef.h>

#include "store.h"

enum wq_sched_sql {
    WQ_SCHED_SQL_PROBE,
    WQ_SCHED_SQL_DUE_SELECT,
    WQ_SCHED_SQL_DUE_QUEUED,
    WQ_SCHED_SQL_DUE_UNPUBLISHABLE,
    WQ_SCHED_SQL_LEASE_SELECT,
    WQ_SCHED_SQL_LEASE_RECOVER,
    WQ_SCHED_SQL_DEAD_SELECT,
    WQ_SCHED_SQL_DEAD_MARK,
    WQ_SCHED_SQL_OUTBOX_SELECT,
    WQ_SCHED_SQL_OUTBOX_DELETE,
    WQ_SCHED_SQL_CRON_LAST,
    WQ_SCHED_SQL_CRON_TICK,
    WQ_SCHED_SQL_RECEIPT_RUNS,
    WQ_SCHED_SQL_RECEIPTS,
    WQ_SCHED_SQL_PRUNE_DONE,
    WQ_SCHED_SQL_PRUNE_DEAD,
    WQ_SCHED_SQL_PRUNE_TICKS,
    WQ_SCHED_SQL_PRUNE_WORKERS,
    WQ_SCHED_SQL_PRUNE_FLOW_TASKS,
    WQ_SCHED_SQL_PRUNE_FLOW_HOLDS,
    WQ_SCHED_SQL_PRUNE_WINDOWS,
    WQ_SCHED_SQL_PRUNE_WORKFLOWS,
    WQ_SCHED_SQL_HOOKS_SELECT,
    WQ_SCHED_SQL_HOOKS_NEXT,
    WQ_SCHED_SQL_HOOKS_DELIVERED,
    WQ_SCHED_SQL_HOOKS_RETRY,
    WQ_SCHED_SQL_COUNT
};

/*
 * wq_store_sched_query runs statement `q` with its text parameters
 * values[0..n) (n fixed by the statement; NULL is SQL NULL), results in
 * binary format for the rounds and the probe, text for the retention and
 * receipts statements.  Returns 0 with *out set (wq_store_rows_free it),
 * or an error as wq_store_query, naming what the statement does.
 */
int wq_store_sched_query(wq_store *s, enum wq_sched_sql q,
    const char *const *values, struct pg_result **out, char *err,
    size_t errlen);

#endif

/*
 * store_admin.h - the operator's SQL, in the store: the statements of
 * the `workq` CLI's status-changing and reporting commands (list, retry,
 * cancel, dlq list|replay|purge, stats, workers), of the HTTP API's
 * operator routes (history, periodic), and of `workq dlq`'s view of
 * workq.dead_letters (messages no envelope could be read from).
 * `workq status` reads through store.h (wq_store_task_get and friends)
 * instead.
 *
 * ops.c names a statement and gives its text parameters; it reads the
 * text rows with store.h's row functions in the column order of the
 * statement's SELECT or RETURNING list in store_admin.c.  Threads and
 * errors as store.h.
 */
#ifndef WQ_STORE_ADMIN_H
#define WQ_STORE_ADMIN_H

#include <stddef.h>

#include "store.h"

enum wq_admin_sql {
    WQ_ADMIN_SQL_CANCEL,
    WQ_ADMIN_SQL_DLQ_LIST,
    WQ_ADMIN_SQL_DLQ_COUNT,
    WQ_ADMIN_SQL_DLQ_REPLAY,
    WQ_ADMIN_SQL_DLQ_PURGE,
    WQ_ADMIN_SQL_HISTORY,
    WQ_ADMIN_SQL_LIST,
    WQ_ADMIN_SQL_RETRY,
    WQ_ADMIN_SQL_STATS,
    WQ_ADMIN_SQL_TICKS,
    WQ_ADMIN_SQL_WORKERS,
    WQ_ADMIN_SQL_UNDECODABLE_LIST,
    WQ_ADMIN_SQL_UNDECODABLE_GET,
    WQ_ADMIN_SQL_COUNT
};

/*
 * wq_store_admin_query runs statement `q` with its text parameters
 * values[0..n) (n fixed by the statement; NULL is SQL NULL), results in
 * text format.  Returns 0 with *out set (wq_store_rows_free it), or an
 * error as wq_store_query, prefixed with `what`.
 */
int wq_store_admin_query(wq_store *s, enum wq_admin_sql q,
    const char *const *values, struct pg_result **out, const char *what,
    char *err, size_t errlen);

/* wq_store_admin_sql returns the text of statement q, for the tests
 * that read its query plan (EXPLAIN); NULL for no such statement. */
const char *wq_store_admin_sql(enum wq_admin_sql q);

#endif

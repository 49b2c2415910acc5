/*
 * lease_recover.c - lost-lease recovery (docs/task-states.md "Leases").
 *
 * A running task whose lease_expires_at has passed belongs to a worker
 * that died or hung: it stopped renewing the lease (workers renew every
 * third of it).  One round turns up to a batch of them into a failed
 * attempt, outcome lease_expired, in one transaction: retry_wait with
 * run_at = now + the queue's backoff when attempts are left, else dead
 * (with its whole history; dead.c then publishes the copy).  The backoff
 * is computed here, per task, with the same policy and jitter the worker
 * uses for a failed handler; the rows are locked by the SELECT, so the
 * UPDATE that follows acts on exactly what was read.
 *
 * If the worker was only slow and records its outcome later, its record
 * finds the row no longer running under its lease and changes nothing:
 * at most one outcome per attempt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "sched.h"

#define COMPONENT "leases"

int
wq_sched_lease_recover(struct wq_sched *s, int *more, int *done, char *err,
    size_t errlen)
{
    struct wq_buf ids = WQ_BUF_INIT, delays = WQ_BUF_INIT;
    struct pg_result *r, *u = NULL;
    const char *params[2];
    char id[37], d[32];
    int rc, rows;

    *more = 0;
    *done = 0;
    if ((rc = wq_sched_rows_round_begin(s->store, WQ_SCHED_SQL_LEASE_SELECT,
        s->batch, &r, err, errlen)) != 0 || r == NULL)
        return rc;
    rows = wq_store_nrows(r);
    *more = rows == s->batch;
    wq_sched_rows_array_begin(&ids);
    wq_sched_rows_array_begin(&delays);
    for (int i = 0; i < rows; i++) {
        struct wq_backoff b;
        int32_t attempt = wq_sched_rows_i32(r, i, 2);

        wq_sched_rows_policy(s->cfg, wq_sched_rows_text(r, i, 1), &b, NULL);
        wq_sched_rows_uuid(r, i, 0, id);
        wq_sched_rows_array_add(&ids, id);
        snprintf(d, sizeof d, "%lld", (long long)wq_backoff_delay_ms(&b,
            attempt > 0 ? (uint32_t)attempt : 1, wq_backoff_rand01()));
        wq_sched_rows_array_add(&delays, d);
    }
    wq_sched_rows_array_end(&ids);
    wq_sched_rows_array_end(&delays);
    params[0] = ids.data;
    params[1] = delays.data;
    if ((rc = wq_store_sched_query(s->store, WQ_SCHED_SQL_LEASE_RECOVER,
        params, &u, err, errlen)) != 0)
        goto fail;
    if ((rc = wq_sched_rows_commit(s->store, err, errlen)) != 0)
        goto fail;
    for (int i = 0; i < wq_store_nrows(u); i++) {
        int dead = strcmp(wq_sched_rows_text(u, i, 1), "dead") == 0;

        wq_sched_rows_uuid(u, i, 0, id);
        wq_log_info(COMPONENT, "task %s: lease expired, %s", id,
            dead ? "attempts spent: dead" : "retry scheduled");
        wq_metric_inc(dead ? s->st->lease_dead : s->st->lease_retry, 1);
    }
    *done = wq_store_nrows(u);
    goto out;

fail:
    wq_sched_rows_rollback(s->store);
out:
    wq_store_rows_free(r);
    wq_store_rows_free(u);
    wq_buf_free(&ids);
    wq_buf_free(&delays);
    return rc;
}

/*
 * publish.c - due tasks to the broker: scheduled tasks whose run_at has
 * come (delayed submits, periodic ticks, enqueues with a run_at) and
 * retry_wait tasks whose backoff is over (docs/task-states.md
 * "Publishing").
 *
 * One round is one transaction: lock up to a batch of due rows, oldest
 * run_at first, skipping rows another scheduler holds; publish their
 * envelopes (attempt = tasks.attempt + 1, the attempt the claim will
 * start); wait for the confirmations; make the confirmed rows queued;
 * commit.  A worker that gets a message before the commit waits for the
 * row lock in its claim and then finds the row queued.  Rows whose
 * message was not confirmed stay due and go out in a later round.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "priority.h"
#include "sched.h"

#define COMPONENT "publish"

/* Columns after the task columns (WQ_SCHED_ROWS_TASK_NCOLS). */
enum { C_STATE = WQ_SCHED_ROWS_TASK_NCOLS, C_LATE_MS };

int
wq_sched_publish_due(struct wq_sched *s, int *more, int *done, char *err,
    size_t errlen)
{
    struct wq_broker_msg *msgs = NULL;
    size_t *off = NULL, n = 0, nok = 0;
    int *rowof = NULL;
    char (*bands)[WQ_BROKER_QUEUE_MAX + 1] = NULL;
    struct wq_buf ids = WQ_BUF_INIT;
    struct pg_result *r, *u = NULL;
    char id[37], why[WQ_ERRLEN];
    const char *params[2];
    uint64_t t0;
    int rc, rows;

    *more = 0;
    *done = 0;
    if ((rc = wq_sched_rows_round_begin(s->store, WQ_SCHED_SQL_DUE_SELECT,
        s->batch, &r, err, errlen)) != 0 || r == NULL)
        return rc;
    rows = wq_store_nrows(r);
    *more = rows == s->batch;

    /* Encode every envelope into one buffer; pointers after it stops
     * growing. */
    msgs = xcalloc((size_t)rows, sizeof *msgs);
    bands = xcalloc((size_t)rows, sizeof *bands);
    off = xcalloc((size_t)rows + 1, sizeof *off);
    rowof = xcalloc((size_t)rows, sizeof *rowof);
    wq_buf_reset(&s->buf);
    for (int i = 0; i < rows; i++) {
        uint32_t attempt = (uint32_t)wq_sched_rows_i32(r, i, 6) + 1;

        off[n] = s->buf.len;
        if (wq_sched_rows_envelope(r, i, attempt, NULL, 0, &s->buf, why,
            sizeof why) != 0) {
            wq_sched_rows_uuid(r, i, 0, id);
            wq_log_error(COMPONENT, "task %s of queue '%s' makes no valid "
                "envelope, made dead: %s", id, wq_sched_rows_text(r, i, 1),
                why);
            params[0] = id;
            params[1] = why;
            if ((rc = wq_store_sched_query(s->store,
                WQ_SCHED_SQL_DUE_UNPUBLISHABLE, params, &u, err, errlen)) != 0)
                goto fail;
            wq_store_rows_free(u);
            u = NULL;
            wq_metric_inc(s->st->unpublishable, 1);
            (*done)++;
            continue;
        }
        rowof[n] = i;
        /* back to the task's priority band (priority.h) */
        msgs[n].queue = wq_priority_band(bands[n], sizeof bands[n],
            wq_sched_rows_text(r, i, 1), wq_sched_rows_i32(r, i, 13));
        msgs[n].key = wq_sched_rows_text(r, i, 3);
        msgs[n].keylen = strlen(msgs[n].key);
        n++;
    }
    off[n] = s->buf.len;
    for (size_t i = 0; i < n; i++) {
        msgs[i].body = s->buf.data + off[i];
        msgs[i].len = off[i + 1] - off[i];
    }

    t0 = wq_clock_mono_ns();
    rc = wq_broker_publish(s->broker, msgs, n, s->publish_timeout_ms, &nok,
        err, errlen);
    wq_sched_rows_array_begin(&ids);
    if (nok > 0) {
        double took = (double)(wq_clock_mono_ns() - t0) / 1e9;

        for (size_t i = 0; i < n; i++) {
            int row = rowof[i];

            if (msgs[i].status != 0)
                continue;
            wq_sched_rows_uuid(r, row, 0, id);
            wq_sched_rows_array_add(&ids, id);
            if (strcmp(wq_sched_rows_text(r, row, C_STATE), "retry_wait") == 0)
                wq_metric_inc(s->st->published_retry, 1);
            else
                wq_metric_inc(s->st->published_delayed, 1);
            wq_metric_observe(s->st->lag_seconds,
                (double)wq_sched_rows_i64(r, row, C_LATE_MS) / 1e3 + took);
        }
    }
    wq_sched_rows_array_end(&ids);
    if (nok < n)
        wq_metric_inc(s->st->publish_failures, n - nok);
    {
        int src = wq_sched_rows_round_settle(s->store, WQ_SCHED_SQL_DUE_QUEUED,
            &ids, nok, err, errlen);

        if (src != 0) {
            /* The messages are out; the rows stay due and go out again
             * later (duplicates the claims absorb). */
            rc = src;
            goto fail;
        }
    }
    *done += (int)nok;
    if (nok > 0)
        wq_log_debug(COMPONENT, "published %zu due task(s)", nok);
    if (rc == 0 && nok < n)
        *more = 0;  /* refused messages: do not spin on them */
    goto out;

fail:
    wq_sched_rows_rollback(s->store);
out:
    wq_store_rows_free(r);
    wq_store_rows_free(u);
    wq_buf_free(&ids);
    free(msgs);
    free(bands);
    free(off);
    free(rowof);
    return rc;
}

/*
 * outbox_relay.c - the relay of workq.outbox (transactional enqueue,
 * workq.enqueue() in migration 0002, wq_client_enqueue_tx()).
 *
 * A row holds a ready message: queue, Kafka key and the encoded
 * envelope, written in the transaction of whoever needed it, so it exists
 * only if that transaction committed.  One round locks up to a batch of
 * rows, oldest id first, skipping rows another relay holds; publishes
 * them in that order; waits for the confirmations; deletes the confirmed
 * rows; commits.  ids are allocated before commit, so a row with a lower
 * id may appear after a higher one was relayed: the relay never remembers
 * a position, it takes whatever rows are there.  Order is therefore
 * "oldest first within a round", not a global guarantee; with several
 * relays, rounds interleave.  A crash between confirmation and commit
 * publishes the rows again (a duplicate the claim absorbs by key).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "sched.h"

#define COMPONENT "outbox"

int
wq_sched_outbox_relay(struct wq_sched *s, int *more, int *done, char *err,
    size_t errlen)
{
    struct wq_broker_msg *msgs = NULL;
    char **names = NULL;
    struct wq_buf ids = WQ_BUF_INIT;
    struct pg_result *r;
    char num[32];
    size_t nok = 0;
    int rc, rows;

    *more = 0;
    *done = 0;
    if ((rc = wq_sched_rows_round_begin(s->store, WQ_SCHED_SQL_OUTBOX_SELECT,
        s->batch, &r, err, errlen)) != 0 || r == NULL)
        return rc;
    rows = wq_store_nrows(r);
    *more = rows == s->batch;
    msgs = xcalloc((size_t)rows, sizeof *msgs);
    names = xcalloc((size_t)rows, sizeof *names);
    for (int i = 0; i < rows; i++) {
        const char *kind = wq_sched_rows_text(r, i, 1);

        names[i] = strcmp(kind, "dead") == 0
            ? xasprintf("%s.dead", wq_sched_rows_text(r, i, 2))
            : xstrdup(wq_sched_rows_text(r, i, 2));
        msgs[i].queue = names[i];
        if (!wq_store_isnull(r, i, 3)) {
            msgs[i].key = wq_store_value(r, i, 3);
            msgs[i].keylen = wq_store_length(r, i, 3);
        }
        msgs[i].body = wq_store_value(r, i, 4);
        msgs[i].len = wq_store_length(r, i, 4);
    }
    rc = wq_broker_publish(s->broker, msgs, (size_t)rows,
        s->publish_timeout_ms, &nok, err, errlen);
    wq_sched_rows_array_begin(&ids);
    for (int i = 0; i < rows; i++)
        if (msgs[i].status == 0) {
            snprintf(num, sizeof num, "%lld",
                (long long)wq_sched_rows_i64(r, i, 0));
            wq_sched_rows_array_add(&ids, num);
        }
    wq_sched_rows_array_end(&ids);
    {
        int src = wq_sched_rows_round_settle(s->store,
            WQ_SCHED_SQL_OUTBOX_DELETE, &ids, nok, err, errlen);

        if (src != 0) {
            rc = src;
            goto fail;
        }
    }
    wq_metric_inc(s->st->relayed, nok);
    if (nok < (size_t)rows) {
        wq_metric_inc(s->st->publish_failures, (size_t)rows - nok);
        *more = 0;
    }
    *done = (int)nok;
    if (nok > 0)
        wq_log_debug(COMPONENT, "relayed %zu outbox row(s)", nok);
    goto out;

fail:
    wq_sched_rows_rollback(s->store);
out:
    wq_store_rows_free(r);
    wq_buf_free(&ids);
    for (int i = 0; names != NULL && i < rows; i++)
        free(names[i]);
    free(names);
    free(msgs);
    return rc;
}

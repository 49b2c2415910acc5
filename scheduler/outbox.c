/*
 * outbox.c - the relay of workq.outbox (transactional enqueue,
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

#include <libpq-fe.h>

#include "alloc.h"
#include "log.h"
#include "sched.h"

#define COMPONENT "outbox"

static const char select_sql[] =
    "SELECT o.id, o.kind, o.queue, o.msg_key, o.body"
    "  FROM workq.outbox o"
    "  ORDER BY o.id"
    "  LIMIT $1"
    "  FOR UPDATE SKIP LOCKED";

static const char delete_sql[] =
    "DELETE FROM workq.outbox WHERE id = ANY($1::int8[])";

int
wq_outbox_relay(struct wq_sched *s, int *more, int *done, char *err,
    size_t errlen)
{
    struct wq_broker_msg *msgs = NULL;
    char **names = NULL;
    struct wq_buf ids = WQ_BUF_INIT;
    PGresult *r = NULL, *u = NULL;
    const char *params[1];
    char limit[16], num[32], why[WQ_ERRLEN];
    size_t nok = 0;
    int rc, rows = 0;

    *more = 0;
    *done = 0;
    snprintf(limit, sizeof limit, "%d", s->batch);
    if ((rc = wq_rows_begin(s->store, err, errlen)) != 0)
        return rc;
    params[0] = limit;
    if ((rc = wq_rows_query(s->store, select_sql, 1, params, &r,
        "select outbox rows", err, errlen)) != 0)
        goto fail;
    rows = PQntuples(r);
    if (rows == 0) {
        PQclear(r);
        return wq_rows_commit(s->store, err, errlen);
    }
    *more = rows == s->batch;
    msgs = xcalloc((size_t)rows, sizeof *msgs);
    names = xcalloc((size_t)rows, sizeof *names);
    for (int i = 0; i < rows; i++) {
        const char *kind = wq_rows_text(r, i, 1);

        names[i] = strcmp(kind, "dead") == 0
            ? xasprintf("%s.dead", wq_rows_text(r, i, 2))
            : xstrdup(wq_rows_text(r, i, 2));
        msgs[i].queue = names[i];
        if (!PQgetisnull(r, i, 3)) {
            msgs[i].key = PQgetvalue(r, i, 3);
            msgs[i].keylen = (size_t)PQgetlength(r, i, 3);
        }
        msgs[i].body = PQgetvalue(r, i, 4);
        msgs[i].len = (size_t)PQgetlength(r, i, 4);
    }
    rc = wq_broker_publish(s->broker, msgs, (size_t)rows,
        s->publish_timeout_ms, &nok, err, errlen);
    if (nok > 0) {
        int urc;

        wq_rows_array_begin(&ids);
        for (int i = 0; i < rows; i++)
            if (msgs[i].status == 0) {
                snprintf(num, sizeof num, "%lld",
                    (long long)wq_rows_i64(r, i, 0));
                wq_rows_array_add(&ids, num);
            }
        wq_rows_array_end(&ids);
        params[0] = ids.data;
        if ((urc = wq_rows_query(s->store, delete_sql, 1, params, &u,
            "delete relayed outbox rows", why, sizeof why)) != 0) {
            rc = urc;
            wq_seterr(err, errlen, urc, "%s", why);
            goto fail;
        }
    }
    {
        int crc = wq_rows_commit(s->store, why, sizeof why);

        if (crc != 0) {
            rc = crc;
            wq_seterr(err, errlen, crc, "%s", why);
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
    wq_rows_rollback(s->store);
out:
    PQclear(r);
    PQclear(u);
    wq_buf_free(&ids);
    for (int i = 0; names != NULL && i < rows; i++)
        free(names[i]);
    free(names);
    free(msgs);
    return rc;
}

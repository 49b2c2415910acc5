/*
 * store_flow.c - flow control's SQL, part of the store (see store_flow.h
 * for the contracts and migration 0007 for the tables and the function
 * they use).  Batches travel as binary arrays (pgarray.h), as the
 * worker's claims do; the admission itself is workq.flow_admit, one
 * statement whatever the number of candidates.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pgarray.h"
#include "store_flow.h"
#include "store_int.h"

enum {
    B_QUEUE, B_KEY, B_CKEY, B_CLIMIT, B_BUCKET, B_RATE, B_BURST,
    B_BUCKET2, B_RATE2, B_BURST2, B_RQUEUE, B_RKEY,
    B_COUNT
};

_Static_assert(B_COUNT <= WQ_ARRAY_LEN(((struct wq_flow_bufs *)0)->b),
    "struct wq_flow_bufs needs more buffers");

static const char admit_sql[] =
    "SELECT ord, admitted, wait_ms FROM workq.flow_admit($1::text[],"
    " $2::text[], $3::text[], $4::int4[], $5::text[], $6::int4[],"
    " $7::int4[], $8::text[], $9::int4[], $10::int4[], $11::text[],"
    " $12::text[], $13, $14::int8)";

/*
 * The window: a new one replaces an ended one (or is the first); else the
 * open one stands and the second branch reads it.  When two submits
 * open the same new window at once, the one that waited on the other's
 * insert finds nothing in either branch (its snapshot predates the
 * row): the caller asks again.
 */
static const char window_sql[] =
    "WITH up AS ("
    "  INSERT INTO workq.unique_windows AS u (queue, idempotency_key,"
    "    window_start, window_end)"
    "  VALUES ($1, $2, now(), now() + $3::int8 * interval '1 millisecond')"
    "  ON CONFLICT (queue, idempotency_key) DO UPDATE SET"
    "    window_start = EXCLUDED.window_start,"
    "    window_end = EXCLUDED.window_end"
    "  WHERE u.window_end <= now()"
    "  RETURNING window_start"
    ")"
    "SELECT (extract(epoch FROM window_start) * 1000)::int8 FROM up "
    "UNION ALL "
    "SELECT (extract(epoch FROM window_start) * 1000)::int8"
    "  FROM workq.unique_windows"
    " WHERE queue = $1 AND idempotency_key = $2"
    "   AND NOT EXISTS (SELECT 1 FROM up)";

static const char remember_sql[] =
    "INSERT INTO workq.flow_tasks (queue, idempotency_key, concurrency_key,"
    "  concurrency_limit) VALUES ($1, $2, $3, $4::int4)"
    " ON CONFLICT (queue, idempotency_key) DO UPDATE SET"
    "  concurrency_key = EXCLUDED.concurrency_key,"
    "  concurrency_limit = EXCLUDED.concurrency_limit";

int
wq_store_flow_remember(wq_store *s, const char *queue, const char *key,
    const char *ckey, int climit, char *err, size_t errlen)
{
    char lim[16];
    const char *values[4] = { queue, key, ckey, lim };
    PGresult *r = NULL;
    int rc;

    snprintf(lim, sizeof lim, "%d", climit > 0 ? climit : 1);
    rc = wq_store_query(s, remember_sql, 4, values, 0, &r, "flow task",
        err, errlen);
    wq_store_rows_free(r);
    return rc;
}

void
wq_flow_bufs_free(struct wq_flow_bufs *bufs)
{
    for (size_t i = 0; i < WQ_ARRAY_LEN(bufs->b); i++)
        wq_buf_free(&bufs->b[i]);
}

int
wq_store_flow_admit(wq_store *s, struct wq_flow_bufs *bufs,
    const char *worker, int64_t grace_ms, struct wq_flow_candidate *c,
    size_t n, const struct wq_flow_release *rel, size_t nrel, char *err,
    size_t errlen)
{
    struct wq_buf *b = bufs->b;
    const char *values[14];
    int lengths[14], formats[14];
    char grace[24];
    PGresult *r;
    int rc;

    if ((rc = wq_store_ready(s, err, errlen)) != 0)
        return rc;
    wq_pgarray_begin(&b[B_QUEUE], WQ_OID_TEXT, n);
    wq_pgarray_begin(&b[B_KEY], WQ_OID_TEXT, n);
    wq_pgarray_begin(&b[B_CKEY], WQ_OID_TEXT, n);
    wq_pgarray_begin(&b[B_CLIMIT], WQ_OID_INT4, n);
    wq_pgarray_begin(&b[B_BUCKET], WQ_OID_TEXT, n);
    wq_pgarray_begin(&b[B_RATE], WQ_OID_INT4, n);
    wq_pgarray_begin(&b[B_BURST], WQ_OID_INT4, n);
    wq_pgarray_begin(&b[B_BUCKET2], WQ_OID_TEXT, n);
    wq_pgarray_begin(&b[B_RATE2], WQ_OID_INT4, n);
    wq_pgarray_begin(&b[B_BURST2], WQ_OID_INT4, n);
    for (size_t i = 0; i < n; i++) {
        wq_pgarray_str(&b[B_QUEUE], c[i].queue);
        wq_pgarray_str(&b[B_KEY], c[i].key);
        wq_pgarray_str(&b[B_CKEY], c[i].ckey != NULL ? c[i].ckey : "");
        wq_pgarray_i32(&b[B_CLIMIT], c[i].climit);
        for (int j = 0; j < 2; j++) {
            const char *bk = c[i].bucket[j] != NULL ? c[i].bucket[j] : "";

            wq_pgarray_str(&b[j == 0 ? B_BUCKET : B_BUCKET2], bk);
            wq_pgarray_i32(&b[j == 0 ? B_RATE : B_RATE2], c[i].rate[j]);
            wq_pgarray_i32(&b[j == 0 ? B_BURST : B_BURST2], c[i].burst[j]);
        }
        c[i].admitted = 0;
        c[i].wait_ms = 0;
    }
    wq_pgarray_begin(&b[B_RQUEUE], WQ_OID_TEXT, nrel);
    wq_pgarray_begin(&b[B_RKEY], WQ_OID_TEXT, nrel);
    for (size_t i = 0; i < nrel; i++) {
        wq_pgarray_str(&b[B_RQUEUE], rel[i].queue);
        wq_pgarray_str(&b[B_RKEY], rel[i].key);
    }
    for (int i = 0; i < B_COUNT; i++) {
        values[i] = (const char *)b[i].data;
        lengths[i] = (int)b[i].len;
        formats[i] = 1;
    }
    snprintf(grace, sizeof grace, "%" PRId64, grace_ms);
    values[12] = worker;
    values[13] = grace;
    lengths[12] = lengths[13] = 0;
    formats[12] = formats[13] = 0;

    r = PQexecParams(s->conn, admit_sql, 14, NULL, values, lengths, formats,
        0);
    if ((rc = wq_store_result_check(s, r, "flow admission", err, errlen))
        == 0) {
        for (int i = 0; i < PQntuples(r); i++) {
            long ord = strtol(PQgetvalue(r, i, 0), NULL, 10);

            if (ord < 1 || (size_t)ord > n)
                continue;
            c[ord - 1].admitted = PQgetvalue(r, i, 1)[0] == 't';
            c[ord - 1].wait_ms = atoi(PQgetvalue(r, i, 2));
        }
    }
    PQclear(r);
    return rc;
}

int
wq_store_unique_window(wq_store *s, const char *queue, const char *key,
    int64_t window_ms, int64_t *start_ms, char *err, size_t errlen)
{
    char ms[24];
    const char *values[3] = { queue, key, ms };
    PGresult *r = NULL;
    int rc;

    snprintf(ms, sizeof ms, "%" PRId64, window_ms);
    for (int tries = 0; tries < 3; tries++) {
        if ((rc = wq_store_query(s, window_sql, 3, values, 0, &r,
            "unique window", err, errlen)) != 0)
            return rc;
        if (PQntuples(r) == 1) {
            *start_ms = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            wq_store_rows_free(r);
            return 0;
        }
        wq_store_rows_free(r);
    }
    return wq_seterr(err, errlen, WQ_ESTORE, "unique window of %s/%s: the "
        "row changed under three tries", queue, key);
}

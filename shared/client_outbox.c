/*
 * client_outbox.c - wq_client_enqueue_tx (workq_outbox.h): the C face of
 * workq.enqueue(), the SQL function of migration 0002.
 *
 * Everything a task needs travels as parameters of one statement on the
 * caller's connection: the payload in binary, the headers as a JSON
 * object built with jansson (which also checks that they are UTF-8).
 * The function itself validates the task and encodes the envelope, so C
 * and every other language get the same rules and bytes.  Part of the
 * public client API: allocation failures return WQ_ENOMEM.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "wq.h"
#include "workq_outbox.h"

static const char enqueue_sql[] =
    "SELECT workq.enqueue($1, $2, $3::bytea, $4, $5::int4,"
    "  CASE WHEN $6::int8 > 0"
    "       THEN timestamptz 'epoch' + $6::int8 * interval '1 millisecond'"
    "       WHEN $7::int8 > 0"
    "       THEN clock_timestamp() + $7::int8 * interval '1 millisecond'"
    "  END, $8::jsonb)::text";

/* One line of the server's message, without the trailing newline. */
static void
copy_msg(char *err, size_t errlen, int code, const char *what,
    const char *msg)
{
    size_t n = strcspn(msg, "\n");

    wq_seterr(err, errlen, code, "%s: %.*s", what, (int)n, msg);
}

int
wq_client_enqueue_tx(struct pg_conn *conn, const struct wq_client_task *t,
    char id[WQ_CLIENT_ID_LEN], char *err, size_t errlen)
{
    const char *values[8];
    int lengths[8] = { 0 }, formats[8] = { 0 };
    char maxa[16], runat[32], delay[32];
    json_t *h = NULL;
    char *hjson = NULL;
    PGresult *r = NULL;
    const char *state;
    int rc;

    if (id != NULL)
        id[0] = '\0';
    if (conn == NULL || t == NULL || t->queue == NULL || t->type == NULL
        || (t->payload == NULL && t->payload_len > 0)
        || (t->headers == NULL && t->nheaders > 0))
        return wq_seterr(err, errlen, WQ_EINVAL, "enqueue: a connection, "
            "a queue and a type are required");
    if (t->max_attempts < 0 || t->delay_ms < 0 || t->run_at_ms < 0)
        return wq_seterr(err, errlen, WQ_EINVAL, "enqueue: max_attempts, "
            "delay_ms and run_at_ms must not be negative");
    if (t->payload_len > WQ_PAYLOAD_MAX)
        return wq_seterr(err, errlen, WQ_ETOOBIG, "enqueue: payload is "
            "%zu bytes, the limit is %u", t->payload_len, WQ_PAYLOAD_MAX);
    if (PQstatus(conn) != CONNECTION_OK)
        return wq_seterr(err, errlen, WQ_ESTORE, "enqueue: the connection "
            "is not usable");
    if (PQtransactionStatus(conn) == PQTRANS_INERROR)
        return wq_seterr(err, errlen, WQ_ESTORE, "enqueue: the "
            "transaction has already failed; roll it back first");

    if ((h = json_object()) == NULL)
        return wq_seterr(err, errlen, WQ_ENOMEM, "enqueue: out of memory");
    for (size_t i = 0; i < t->nheaders; i++) {
        json_t *v;

        if (t->headers[i].name == NULL || t->headers[i].value == NULL) {
            rc = wq_seterr(err, errlen, WQ_EINVAL, "enqueue: header %zu "
                "has no name or value", i);
            goto out;
        }
        if ((v = json_string(t->headers[i].value)) == NULL) {
            rc = wq_seterr(err, errlen, WQ_EINVAL, "enqueue: header '%.64s' "
                "is not UTF-8", t->headers[i].name);
            goto out;
        }
        if (json_object_get(h, t->headers[i].name) != NULL) {
            json_decref(v);
            rc = wq_seterr(err, errlen, WQ_EINVAL, "enqueue: header "
                "'%.64s' given twice", t->headers[i].name);
            goto out;
        }
        if (json_object_set_new(h, t->headers[i].name, v) != 0) {
            rc = wq_seterr(err, errlen, WQ_EINVAL, "enqueue: header name "
                "'%.64s' is not UTF-8", t->headers[i].name);
            goto out;
        }
    }
    if ((hjson = json_dumps(h, JSON_COMPACT)) == NULL) {
        rc = wq_seterr(err, errlen, WQ_ENOMEM, "enqueue: out of memory");
        goto out;
    }

    snprintf(maxa, sizeof maxa, "%d", t->max_attempts);
    snprintf(runat, sizeof runat, "%lld", (long long)t->run_at_ms);
    snprintf(delay, sizeof delay, "%lld", (long long)t->delay_ms);
    values[0] = t->queue;
    values[1] = t->type;
    values[2] = t->payload != NULL ? t->payload : "";
    lengths[2] = (int)t->payload_len;
    formats[2] = 1;
    values[3] = t->idempotency_key;
    values[4] = t->max_attempts > 0 ? maxa : NULL;
    values[5] = runat;
    values[6] = delay;
    values[7] = hjson;
    r = PQexecParams(conn, enqueue_sql, 8, NULL, values, lengths, formats,
        0);
    if (r == NULL) {
        rc = wq_seterr(err, errlen, WQ_ESTORE, "enqueue: %s",
            PQerrorMessage(conn));
        goto out;
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        rc = state != NULL && (strncmp(state, "22", 2) == 0
            || strncmp(state, "23", 2) == 0) ? WQ_EINVAL : WQ_ESTORE;
        copy_msg(err, errlen, rc, "enqueue", PQresultErrorMessage(r));
        goto out;
    }
    if (id != NULL)
        snprintf(id, WQ_CLIENT_ID_LEN, "%s", PQgetvalue(r, 0, 0));
    rc = 0;
out:
    PQclear(r);
    free(hjson);
    json_decref(h);
    return rc;
}

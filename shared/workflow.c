/*
 * workflow.c - the C face of workflows (workq_outbox.h, docs/workflows.md):
 * submit, add to a batch, close a batch, read the graph, each one
 * statement calling the SQL functions of migration 0008 on a libpq
 * connection the caller owns.
 *
 * All the rules (the document's members, the limits, when a batch takes
 * tasks) and all the stepping live in SQL, so that the CLI, the HTTP API,
 * C programs and any other language get the same behaviour.  This file
 * only moves text and maps SQLSTATEs to WQ_E* codes.  Part of the public
 * client API: allocation failures return WQ_ENOMEM.  The CLI and
 * workq-producer call these functions with their store's connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "wq.h"
#include "workq_outbox.h"

/* The code for a failed statement's SQLSTATE. */
static int
code_of(const PGresult *r)
{
    const char *state = r != NULL
        ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

    if (state == NULL)
        return WQ_ESTORE;
    if (strcmp(state, "P0002") == 0)
        return WQ_ENOENT;
    if (strcmp(state, "55000") == 0)
        return WQ_ECLOSED;
    /* 42883: no such function (schema older than 0008); the rest of 42
     * is a bug, not the caller's input */
    if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0)
        return WQ_EINVAL;
    return WQ_ESTORE;
}

/*
 * Runs `sql` with text parameters; on success *out holds its result (one
 * row, or any for `rows_any`).  Else returns the WQ_E* code with one line
 * of the server's message in err.
 */
static int
run(PGconn *conn, const char *what, const char *sql, int n,
    const char *const *values, int rows_any, PGresult **out, char *err,
    size_t errlen)
{
    PGresult *r;
    size_t len;
    const char *msg, *hint = "";
    int rc;

    *out = NULL;
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        return wq_seterr(err, errlen, WQ_ESTORE, "%s: the connection is "
            "not usable", what);
    if (PQtransactionStatus(conn) == PQTRANS_INERROR)
        return wq_seterr(err, errlen, WQ_ESTORE, "%s: the transaction has "
            "already failed; roll it back first", what);
    r = PQexecParams(conn, sql, n, NULL, values, NULL, NULL, 0);
    if (r == NULL)
        return wq_seterr(err, errlen, WQ_ENOMEM, "%s: %s", what,
            PQerrorMessage(conn));
    if (PQresultStatus(r) == PGRES_TUPLES_OK
        && (rows_any || PQntuples(r) == 1)) {
        *out = r;
        return 0;
    }
    rc = code_of(r);
    msg = PQresultErrorMessage(r);
    if (strncmp(msg, "ERROR:  ", 8) == 0)
        msg += 8;
    len = strcspn(msg, "\n");
    if (PQresultErrorField(r, PG_DIAG_SQLSTATE) != NULL
        && strcmp(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42883") == 0)
        hint = " (the schema lacks workflows: run `workq migrate`)";
    wq_seterr(err, errlen, rc, "%s: %.*s%s", what, (int)len, msg, hint);
    PQclear(r);
    return rc;
}

/* A copy of r's first value into *out (malloc), or WQ_ENOMEM. */
static int
copy_value(PGresult *r, char **out, char *err, size_t errlen)
{
    const char *v = PQgetvalue(r, 0, 0);
    size_t n = strlen(v);

    if ((*out = malloc(n + 1)) == NULL)
        return wq_seterr(err, errlen, WQ_ENOMEM, "workflow: out of memory");
    memcpy(*out, v, n + 1);
    return 0;
}

int
wq_client_workflow_submit_tx(struct pg_conn *conn, const char *doc,
    char id[WQ_CLIENT_ID_LEN], char *err, size_t errlen)
{
    const char *values[1] = { doc };
    PGresult *r;
    int rc;

    if (id != NULL)
        id[0] = '\0';
    if (doc == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "workflow: no document");
    if ((rc = run(conn, "workflow", "SELECT workq.workflow_submit($1::jsonb)"
        "::text", 1, values, 0, &r, err, errlen)) != 0)
        return rc;
    if (id != NULL)
        snprintf(id, WQ_CLIENT_ID_LEN, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int
wq_client_workflow_add_tx(struct pg_conn *conn, const char *workflow_id,
    const char *tasks, char **ids, char *err, size_t errlen)
{
    const char *values[2] = { workflow_id, tasks };
    PGresult *r;
    int rc;

    if (ids != NULL)
        *ids = NULL;
    if (workflow_id == NULL || tasks == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "workflow add: a workflow "
            "id and tasks are required");
    if ((rc = run(conn, "workflow add", "SELECT coalesce(json_agg(x)::text, "
        "'[]') FROM workq.workflow_add($1::uuid, $2::jsonb) AS x", 2, values,
        0, &r, err, errlen)) != 0)
        return rc;
    rc = ids != NULL ? copy_value(r, ids, err, errlen) : 0;
    PQclear(r);
    return rc;
}

int
wq_client_workflow_close_tx(struct pg_conn *conn, const char *workflow_id,
    int *closed, char *err, size_t errlen)
{
    const char *values[1] = { workflow_id };
    PGresult *r;
    int rc;

    if (closed != NULL)
        *closed = 0;
    if (workflow_id == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "workflow close: a "
            "workflow id is required");
    if ((rc = run(conn, "workflow close", "SELECT workq.workflow_close("
        "$1::uuid)", 1, values, 0, &r, err, errlen)) != 0)
        return rc;
    if (closed != NULL)
        *closed = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return 0;
}

int
wq_client_workflow_get(struct pg_conn *conn, const char *id, char **json,
    char *err, size_t errlen)
{
    const char *values[1] = { id };
    PGresult *r;
    int rc;

    if (json != NULL)
        *json = NULL;
    if (id == NULL || json == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "workflow: an id and a "
            "place for the answer are required");
    if ((rc = run(conn, "workflow", "SELECT workq.workflow_json($1::uuid)"
        "::text", 1, values, 0, &r, err, errlen)) != 0)
        return rc;
    if (PQgetisnull(r, 0, 0))
        rc = wq_seterr(err, errlen, WQ_ENOENT, "workflow %.40s: no workflow "
            "has this id, nor a task of one", id);
    else
        rc = copy_value(r, json, err, errlen);
    PQclear(r);
    return rc;
}

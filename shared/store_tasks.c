/*
 * store_tasks.c - the store's SQL on tasks as records: insert and read a
 * task (by id or by key, its receipt included), its attempt history, an
 * outbox entry, the receipts of accepted tasks (wq_store_accept, on the
 * producer's submit path) and undecodable messages (dead letters).  See
 * store.h for the contracts.
 *
 * Values travel as parameters, never spliced into SQL: uuid and bytea in
 * libpq's binary format, text and numbers in text format.  Task rows come
 * back in binary format, so bytea needs no unescaping; times are epoch
 * milliseconds computed by the server.  The statements on hot paths are
 * prepared on first use and again after a reconnect (store_int.h).
 * Allocation failures are returned as WQ_ENOMEM, never aborted on.
 */
#include <endian.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "alloc.h"
#include "buf.h"
#include "log.h"
#include "pgarray.h"
#include "store.h"
#include "store_int.h"
#include "uuid.h"

/* The statements of this file: prepared ones are the hot paths. */
enum {
    STMT_TASK_INSERT,
    STMT_TASK_GET,
    STMT_TASK_GET_KEY,
    STMT_DEAD_LETTER,
    STMT_TASK_ATTEMPTS,
    STMT_OUTBOX_GET,
    /* Receipts: sent in pipelines by accept_send(), not by stmt_run();
     * only their bits of s->prepared are used. */
    STMT_ACCEPT,
    STMT_ACCEPT_RUNS,
    STMT_COUNT
};

_Static_assert(STMT_COUNT <= 16, "store_int.h's WQ_PREP_* bits start at 16");

/* The columns a task row is read with, in this order (see task_decode). */
#define MS(col) "(extract(epoch FROM " col ") * 1000)::int8"
#define TASK_COLS                                                         \
    "SELECT id, queue, type, idempotency_key, payload, headers::text, "   \
    "state, attempt, max_attempts, lease_owner, worker, last_error, "     \
    "result, " MS("run_at") ", " MS("lease_expires_at") ", "              \
    MS("created_at") ", " MS("started_at") ", " MS("finished_at") ", "    \
    MS("updated_at") ", attempt_base, " MS("dead_published_at") ", "     \
    "priority::int4, "
/* By id: the task's row, or the receipt of a task not claimed yet. */
#define TASK_SELECT_HANDLE TASK_COLS "receipt FROM workq.task_handle($1) "
#define TASK_SELECT        TASK_COLS "false FROM workq.tasks "

enum {
    C_ID, C_QUEUE, C_TYPE, C_KEY, C_PAYLOAD, C_HEADERS, C_STATE, C_ATTEMPT,
    C_MAX_ATTEMPTS, C_LEASE_OWNER, C_WORKER, C_LAST_ERROR, C_RESULT,
    C_RUN_AT, C_LEASE_EXPIRES_AT, C_CREATED_AT, C_STARTED_AT,
    C_FINISHED_AT, C_UPDATED_AT, C_ATTEMPT_BASE, C_DEAD_PUBLISHED_AT,
    C_PRIORITY, C_RECEIPT, C_NCOLS
};

static const Oid task_insert_types[] = {
    WQ_OID_UUID, WQ_OID_TEXT, WQ_OID_TEXT, WQ_OID_TEXT, WQ_OID_BYTEA, WQ_OID_TEXT, WQ_OID_TEXT,
    WQ_OID_INT4, WQ_OID_INT4, WQ_OID_INT8, WQ_OID_INT8, WQ_OID_INT4,
};
static const Oid task_get_types[] = { WQ_OID_UUID };
static const Oid task_get_key_types[] = { WQ_OID_TEXT, WQ_OID_TEXT };
static const Oid dead_letter_types[] = {
    WQ_OID_TEXT, WQ_OID_TEXT, WQ_OID_BYTEA, WQ_OID_BYTEA, WQ_OID_INT4, WQ_OID_INT8, WQ_OID_BOOL,
    WQ_OID_TEXT, WQ_OID_TEXT,
};

static const struct stmt {
    const char *name;       /* prepared statement name */
    const char *what;       /* for error messages */
    int prepare;            /* 1: prepare once per connection */
    int nparams;
    const Oid *types;
    const char *sql;
} stmts[STMT_COUNT] = {
    [STMT_TASK_INSERT] = {
        "wq_task_insert", "insert task", 1,
        (int)WQ_ARRAY_LEN(task_insert_types), task_insert_types,
        /* a receipt with this id: the broker holds the task already */
        "INSERT INTO workq.tasks (id, queue, type, idempotency_key, "
        "payload, headers, state, attempt, max_attempts, run_at, "
        "created_at, priority) "
        "SELECT $1, $2, $3, coalesce($4, $1::text), $5, "
        "coalesce($6::jsonb, '{}'), $7, $8, $9, "
        "timestamptz 'epoch' + $10 * interval '1 millisecond', "
        "coalesce(timestamptz 'epoch' + $11 * interval '1 millisecond', "
        "now()), $12::int2 "
        "WHERE NOT EXISTS (SELECT 1 FROM workq.accepted a WHERE a.id = $1) "
        "ON CONFLICT (queue, idempotency_key) DO NOTHING "
        "RETURNING 1",
    },
    [STMT_TASK_GET] = {
        "wq_task_get", "get task", 1,
        (int)WQ_ARRAY_LEN(task_get_types), task_get_types,
        TASK_SELECT_HANDLE,
    },
    [STMT_TASK_GET_KEY] = {
        "wq_task_get_key", "get task by key", 1,
        (int)WQ_ARRAY_LEN(task_get_key_types), task_get_key_types,
        TASK_SELECT "WHERE queue = $1 AND idempotency_key = $2",
    },
    [STMT_DEAD_LETTER] = {
        /* Rare: not worth a prepared statement on every connection. */
        "wq_dead_letter_insert", "insert dead letter", 0,
        (int)WQ_ARRAY_LEN(dead_letter_types), dead_letter_types,
        "INSERT INTO workq.dead_letters (transport, queue, raw, msg_key, "
        "src_partition, src_offset, redelivered, error, worker) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "ON CONFLICT (queue, src_partition, src_offset, sha256(raw)) "
        "WHERE transport = 'kafka' DO NOTHING "
        "RETURNING id",
    },
    [STMT_TASK_ATTEMPTS] = {
        /* for people (status, GET /v1/tasks/ID): not prepared */
        "wq_task_attempts", "get attempts", 0,
        (int)WQ_ARRAY_LEN(task_get_types), task_get_types,
        "SELECT attempt, " MS("started_at") ", " MS("finished_at") ", "
        "duration_ms, worker, outcome, error "
        "FROM workq.attempt_history WHERE task_id = $1 ORDER BY attempt",
    },
    [STMT_OUTBOX_GET] = {
        "wq_outbox_get", "get outbox entry", 0,
        (int)WQ_ARRAY_LEN(task_get_types), task_get_types,
        "SELECT queue, " MS("created_at") " "
        "FROM workq.outbox WHERE task_id = $1 ORDER BY id LIMIT 1",
    },
};

/*
 * Runs statement `id` of stmts[] with the given parameters, preparing it
 * first if it is a prepared one not yet prepared on this connection.
 * On success *out holds the result (the caller PQclear()s it).
 */
static int
stmt_run(wq_store *s, int id, const char *const *values, const int *lengths,
    const int *formats, int binary_result, PGresult **out, char *err,
    size_t errlen)
{
    const struct stmt *st = &stmts[id];
    PGresult *r;
    int rc;

    *out = NULL;
    if ((rc = wq_store_ready(s, err, errlen)) != 0)
        return rc;
    if (st->prepare && !wq_store_unnamed(s)
        && (s->prepared & (1u << id)) == 0) {
        r = PQprepare(s->conn, st->name, st->sql, st->nparams, st->types);
        rc = wq_store_result_check(s, r, st->what, err, errlen);
        PQclear(r);
        if (rc != 0)
            return rc;
        s->prepared |= 1u << id;
    }
    if (st->prepare && !wq_store_unnamed(s))
        r = PQexecPrepared(s->conn, st->name, st->nparams, values, lengths,
            formats, binary_result);
    else
        r = PQexecParams(s->conn, st->sql, st->nparams, st->types, values,
            lengths, formats, binary_result);
    if ((rc = wq_store_result_check(s, r, st->what, err, errlen)) != 0) {
        PQclear(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* --- tasks ----------------------------------------------------------- */

static void
uuid_format(const uint8_t id[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    int n = 0;

    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[n++] = '-';
        out[n++] = hex[id[i] >> 4];
        out[n++] = hex[id[i] & 15];
    }
    out[n] = '\0';
}

int
wq_store_task_insert(wq_store *s, const struct wq_task_new *t, int *inserted,
    char *err, size_t errlen)
{
    char attempt[16], max_attempts[16], run_at[24], created_at[24];
    char priority[8];
    const char *values[12];
    int lengths[12] = { 0 }, formats[12] = { 0 };
    const char *state;
    PGresult *r;
    int rc;

    if (inserted != NULL)
        *inserted = 0;
    if (t->queue == NULL || t->type == NULL ||
        (t->payload == NULL && t->payload_len > 0))
        return wq_seterr(err, errlen, WQ_EINVAL,
            "insert task: queue, type and payload are required");
    if ((state = wq_task_state_name(t->state)) == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "insert task: invalid state %d", (int)t->state);
    if (t->payload_len > WQ_PAYLOAD_MAX)
        return wq_seterr(err, errlen, WQ_ETOOBIG,
            "insert task: payload of %zu bytes exceeds %u", t->payload_len,
            WQ_PAYLOAD_MAX);
    snprintf(attempt, sizeof attempt, "%d", t->attempt);
    snprintf(max_attempts, sizeof max_attempts, "%d", t->max_attempts);
    snprintf(run_at, sizeof run_at, "%" PRId64, t->run_at_ms);
    snprintf(created_at, sizeof created_at, "%" PRId64, t->created_at_ms);

    values[0] = (const char *)t->id; lengths[0] = 16; formats[0] = 1;
    values[1] = t->queue;
    values[2] = t->type;
    values[3] = t->idempotency_key;
    /* A NULL binary value would be SQL NULL: an empty payload is "". */
    values[4] = t->payload_len > 0 ? (const char *)t->payload : "";
    lengths[4] = (int)t->payload_len; formats[4] = 1;
    values[5] = t->headers_json;
    values[6] = state;
    values[7] = attempt;
    values[8] = max_attempts;
    values[9] = t->run_at_ms != 0 ? run_at : NULL;
    values[10] = t->created_at_ms != 0 ? created_at : NULL;
    snprintf(priority, sizeof priority, "%d", t->priority);
    values[11] = priority;

    rc = stmt_run(s, STMT_TASK_INSERT, values, lengths, formats, 0, &r, err,
        errlen);
    if (rc != 0)
        return rc;
    if (inserted != NULL)
        *inserted = PQntuples(r) == 1;
    PQclear(r);
    return 0;
}

void
wq_task_row_free(struct wq_task_row *row)
{
    if (row == NULL)
        return;
    free(row->queue);
    free(row->type);
    free(row->idempotency_key);
    free(row->payload);
    free(row->headers_json);
    free(row->lease_owner);
    free(row->worker);
    free(row->last_error);
    free(row->progress_message);
    free(row->result);
    memset(row, 0, sizeof *row);
}

/* Copies column c of row 0 (binary format) with a NUL after it; *p is
 * left NULL for SQL NULL.  Returns 0 or WQ_ENOMEM. */
static int
col_dup(const PGresult *r, int c, void *pp, size_t *lenp)
{
    char **p = pp;
    size_t len;

    *p = NULL;
    if (lenp != NULL)
        *lenp = 0;
    if (PQgetisnull(r, 0, c))
        return 0;
    len = (size_t)PQgetlength(r, 0, c);
    if ((*p = malloc(len + 1)) == NULL)
        return WQ_ENOMEM;
    memcpy(*p, PQgetvalue(r, 0, c), len);
    (*p)[len] = '\0';
    if (lenp != NULL)
        *lenp = len;
    return 0;
}

/* Reads a binary int4 or int8 column of row 0; SQL NULL reads as 0.
 * Returns 0, or WQ_ESTORE if the column does not have `size` bytes. */
static int
col_int(const PGresult *r, int c, size_t size, int64_t *v)
{
    const char *p = PQgetvalue(r, 0, c);
    uint32_t u32;
    uint64_t u64;

    *v = 0;
    if (PQgetisnull(r, 0, c))
        return 0;
    if ((size_t)PQgetlength(r, 0, c) != size)
        return WQ_ESTORE;
    if (size == 4) {
        memcpy(&u32, p, 4);
        *v = (int32_t)be32toh(u32);
    } else {
        memcpy(&u64, p, 8);
        *v = (int64_t)be64toh(u64);
    }
    return 0;
}

/* Decodes row 0 of a TASK_SELECT result (binary format) into *out. */
static int
task_decode(const PGresult *r, struct wq_task_row *out, char *err,
    size_t errlen)
{
    static const int times[] = { C_RUN_AT, C_LEASE_EXPIRES_AT, C_CREATED_AT,
        C_STARTED_AT, C_FINISHED_AT, C_UPDATED_AT, C_DEAD_PUBLISHED_AT };
    int64_t *const time_out[] = { &out->run_at_ms, &out->lease_expires_at_ms,
        &out->created_at_ms, &out->started_at_ms, &out->finished_at_ms,
        &out->updated_at_ms, &out->dead_published_at_ms };
    int64_t v;
    int state;

    if (PQnfields(r) != C_NCOLS || PQgetlength(r, 0, C_ID) != 16 ||
        PQgetisnull(r, 0, C_STATE))
        return wq_seterr(err, errlen, WQ_ESTORE,
            "get task: unexpected row shape");
    memcpy(out->id, PQgetvalue(r, 0, C_ID), 16);

    if (col_dup(r, C_QUEUE, &out->queue, NULL) != 0 ||
        col_dup(r, C_TYPE, &out->type, NULL) != 0 ||
        col_dup(r, C_KEY, &out->idempotency_key, NULL) != 0 ||
        col_dup(r, C_PAYLOAD, &out->payload, &out->payload_len) != 0 ||
        col_dup(r, C_HEADERS, &out->headers_json, NULL) != 0 ||
        col_dup(r, C_LEASE_OWNER, &out->lease_owner, NULL) != 0 ||
        col_dup(r, C_WORKER, &out->worker, NULL) != 0 ||
        col_dup(r, C_LAST_ERROR, &out->last_error, NULL) != 0 ||
        col_dup(r, C_RESULT, &out->result, &out->result_len) != 0)
        return wq_seterr(err, errlen, WQ_ENOMEM, "get task: out of memory");

    if ((state = wq_task_state_parse(PQgetvalue(r, 0, C_STATE))) < 0)
        return wq_seterr(err, errlen, WQ_ESTORE,
            "get task: unknown state \"%.32s\" (is this workq older than "
            "the schema?)", PQgetvalue(r, 0, C_STATE));
    out->state = (enum wq_task_state)state;
    out->receipt = PQgetlength(r, 0, C_RECEIPT) == 1
        && PQgetvalue(r, 0, C_RECEIPT)[0] != 0;
    if (col_int(r, C_ATTEMPT, 4, &v) != 0)
        goto shape;
    out->attempt = (int)v;
    if (col_int(r, C_MAX_ATTEMPTS, 4, &v) != 0)
        goto shape;
    out->max_attempts = (int)v;
    if (col_int(r, C_ATTEMPT_BASE, 4, &v) != 0)
        goto shape;
    out->attempt_base = (int)v;
    if (col_int(r, C_PRIORITY, 4, &v) != 0)
        goto shape;
    out->priority = (int)v;
    for (size_t i = 0; i < WQ_ARRAY_LEN(times); i++)
        if (col_int(r, times[i], 8, time_out[i]) != 0)
            goto shape;
    return 0;

shape:
    return wq_seterr(err, errlen, WQ_ESTORE, "get task: unexpected row shape");
}

/* Runs a task SELECT and decodes its row; WQ_ENOENT names `what`. */
static int
task_fetch(wq_store *s, int stmt, const char *const *values,
    const int *lengths, const int *formats, const char *what,
    struct wq_task_row *out, char *err, size_t errlen)
{
    PGresult *r;
    int rc;

    memset(out, 0, sizeof *out);
    rc = stmt_run(s, stmt, values, lengths, formats, 1, &r, err, errlen);
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0)
        rc = wq_seterr(err, errlen, WQ_ENOENT, "no task %s", what);
    else
        rc = task_decode(r, out, err, errlen);
    PQclear(r);
    if (rc != 0)
        wq_task_row_free(out);
    return rc;
}

int
wq_store_task_get(wq_store *s, const uint8_t id[16], struct wq_task_row *out,
    char *err, size_t errlen)
{
    const char *values[1] = { (const char *)id };
    const int lengths[1] = { 16 }, formats[1] = { 1 };
    char what[40];

    uuid_format(id, what);
    return task_fetch(s, STMT_TASK_GET, values, lengths, formats, what, out,
        err, errlen);
}

int
wq_store_task_get_by_key(wq_store *s, const char *queue,
    const char *idempotency_key, struct wq_task_row *out, char *err,
    size_t errlen)
{
    const char *values[2] = { queue, idempotency_key };
    int lengths[2] = { 0, 0 }, formats[2] = { 0, 0 };
    uint8_t id[16];
    char what[64];
    int rc;

    memset(out, 0, sizeof *out);
    if (queue == NULL || idempotency_key == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "get task: queue and key are required");
    snprintf(what, sizeof what, "with that key in queue %.40s", queue);
    rc = task_fetch(s, STMT_TASK_GET_KEY, values, lengths, formats, what,
        out, err, errlen);
    if (rc != WQ_ENOENT)
        return rc;
    /* not claimed yet: the receipt, under the key's own id */
    if (wq_uuid_for_key(queue, idempotency_key, id) != 0)
        return rc;
    values[0] = (const char *)id;
    lengths[0] = 16;
    formats[0] = 1;
    return task_fetch(s, STMT_TASK_GET, values, lengths, formats, what, out,
        err, errlen);
}

/* A text column of row `row`, or NULL for SQL NULL. */
static const char *
text_or_null(const PGresult *r, int row, int c)
{
    return PQgetisnull(r, row, c) ? NULL : PQgetvalue(r, row, c);
}

/* A copy of a text column, or NULL for SQL NULL; *fail set on ENOMEM. */
static char *
text_dup(const PGresult *r, int row, int c, int *fail)
{
    const char *v = text_or_null(r, row, c);
    char *p;

    if (v == NULL)
        return NULL;
    if ((p = strdup(v)) == NULL)
        *fail = 1;
    return p;
}

/* An int8 text column, or `none` for SQL NULL. */
static int64_t
text_int(const PGresult *r, int row, int c, int64_t none)
{
    const char *v = text_or_null(r, row, c);

    return v != NULL ? strtoll(v, NULL, 10) : none;
}

void
wq_task_attempts_free(struct wq_task_attempt *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i].worker);
        free(v[i].outcome);
        free(v[i].error);
    }
    free(v);
}

int
wq_store_task_attempts(wq_store *s, const uint8_t id[16],
    struct wq_task_attempt **out, size_t *n, char *err, size_t errlen)
{
    const char *values[1] = { (const char *)id };
    const int lengths[1] = { 16 }, formats[1] = { 1 };
    struct wq_task_attempt *v = NULL;
    PGresult *r;
    int rc, fail = 0;
    size_t rows;

    *out = NULL;
    *n = 0;
    rc = stmt_run(s, STMT_TASK_ATTEMPTS, values, lengths, formats, 0, &r,
        err, errlen);
    if (rc != 0)
        return rc;
    rows = (size_t)PQntuples(r);
    if (rows > 0 && (v = calloc(rows, sizeof *v)) == NULL)
        fail = 1;
    for (size_t i = 0; !fail && i < rows; i++) {
        v[i].attempt = (int)text_int(r, (int)i, 0, 0);
        v[i].started_at_ms = text_int(r, (int)i, 1, 0);
        v[i].finished_at_ms = text_int(r, (int)i, 2, 0);
        v[i].duration_ms = text_int(r, (int)i, 3, -1);
        v[i].worker = text_dup(r, (int)i, 4, &fail);
        v[i].outcome = text_dup(r, (int)i, 5, &fail);
        v[i].error = text_dup(r, (int)i, 6, &fail);
    }
    PQclear(r);
    if (fail) {
        wq_task_attempts_free(v, rows);
        return wq_seterr(err, errlen, WQ_ENOMEM,
            "get attempts: out of memory");
    }
    *out = v;
    *n = rows;
    return 0;
}

int
wq_store_outbox_get(wq_store *s, const uint8_t id[16], char **queue,
    int64_t *created_at_ms, char *err, size_t errlen)
{
    const char *values[1] = { (const char *)id };
    const int lengths[1] = { 16 }, formats[1] = { 1 };
    PGresult *r;
    int rc, fail = 0;

    *queue = NULL;
    *created_at_ms = 0;
    rc = stmt_run(s, STMT_OUTBOX_GET, values, lengths, formats, 0, &r, err,
        errlen);
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return wq_seterr(err, errlen, WQ_ENOENT, "no task in the outbox");
    }
    *queue = text_dup(r, 0, 0, &fail);
    *created_at_ms = text_int(r, 0, 1, 0);
    PQclear(r);
    if (fail)
        return wq_seterr(err, errlen, WQ_ENOMEM,
            "get outbox entry: out of memory");
    return 0;
}

/* --- receipts of accepted tasks -------------------------------------- */

/*
 * One statement for the batch.  `x` numbers the entries; an id twice in
 * the batch (one key submitted twice) is new once and a duplicate after.
 * A receipt that exists already was written by an earlier submit of the
 * key (or by this one, when a statement's answer was lost and it runs
 * again: then its tasks read as duplicates of themselves, which says
 * nothing false about what runs).  A task row belongs to this submit
 * when its created_at is the envelope's (a worker claimed the task
 * between the broker's confirmation and this statement); otherwise the
 * key was taken before.  Only the duplicates come back.
 */
static const char accept_sql[] =
    "WITH x AS ("
    "  SELECT u.*, timestamptz 'epoch' + u.created_ms"
    "      * interval '1 millisecond' AS created_at,"
    "    row_number() OVER (PARTITION BY u.id ORDER BY u.ord) AS rn"
    "  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[],"
    "    $5::int4[], $6::int8[], $7::int4[]) WITH ORDINALITY"
    "    AS u(id, queue, type, key, max_attempts, created_ms, priority, ord)"
    "), ins AS ("
    "  INSERT INTO workq.accepted (id, created_at, max_attempts, queue,"
    "    type, idempotency_key, priority)"
    "  SELECT id, created_at, max_attempts, queue, type, key,"
    "    priority::int2 FROM x"
    "  WHERE rn = 1"
    "    AND NOT EXISTS (SELECT 1 FROM workq.tasks t WHERE t.id = x.id)"
    "  ON CONFLICT (id) DO NOTHING"
    "  RETURNING id"
    ")"
    "SELECT x.ord, coalesce(t.state, 'queued') FROM x"
    "  LEFT JOIN workq.tasks t ON t.id = x.id"
    "  LEFT JOIN workq.accepted a ON a.id = x.id"
    "  WHERE x.rn > 1 OR (NOT EXISTS (SELECT 1 FROM ins WHERE ins.id = x.id)"
    "    AND (a.id IS NOT NULL OR t.created_at IS DISTINCT FROM x.created_at))";

/*
 * Tasks without a client-given key (their key is their id's text) have a
 * fresh UUIDv7: never a duplicate, so their receipts need no checks and
 * no row each.  They go into workq.accepted_runs, a run per (queue,
 * type, max_attempts, priority) of the batch: a row per range of ids of
 * one sequence (uuid.h, wq_uuid_seq_stamp), with an empty `ids`
 * (migration 0012), or, when the run's ids come from many origins, one
 * row with the ids sorted end to end (migration 0003).  A retried
 * statement adds the same rows twice, which the scheduler's sweep
 * removes like any other.
 *
 * Its commit does not wait for the WAL flush (synchronous_commit off for
 * this transaction, set_config(..., true)): a receipt is a view of a task
 * the broker holds, not the task.  If PostgreSQL crashes within a moment
 * of the commit (wal_writer_delay, 200 ms by default, times three at
 * most), such ids read as "no such task" until a worker claims them; no
 * task is lost or run twice.  That saves a disk flush per batch, which
 * is most of what receipts cost a blocking submit.
 */
static const char accept_runs_sql[] =
    "INSERT INTO workq.accepted_runs (first_id, last_id, created_at,"
    "    max_attempts, queue, type, ids, priority)"
    "  SELECT u.first_id, u.last_id, timestamptz 'epoch' + u.created_ms"
    "      * interval '1 millisecond', u.max_attempts, u.queue, u.type, u.ids,"
    "    u.priority::int2"
    "  FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::int4[],"
    "    $5::text[], $6::text[], $7::bytea[], $8::int4[])"
    "    AS u(first_id, last_id, created_ms, max_attempts, queue, type, ids,"
    "      priority),"
    /* this statement's commit only: asynchronous (see above) */
    "  (SELECT set_config('synchronous_commit', 'off', true)) AS c";

/* 1 if v has no client-given key (its key is its id's text). */
static int
key_is_id(const struct wq_accept *v)
{
    return v->key == NULL;
}

/* Orders fresh entries into runs: by queue, type, max_attempts,
 * priority, id. */
static int
cmp_fresh(const void *pa, const void *pb)
{
    const struct wq_accept *a = *(const struct wq_accept *const *)pa;
    const struct wq_accept *b = *(const struct wq_accept *const *)pb;
    int c;

    /* submitters pass the same strings for a batch's queue and type */
    if ((a->queue != b->queue && (c = strcmp(a->queue, b->queue)) != 0)
        || (a->type != b->type && (c = strcmp(a->type, b->type)) != 0))
        return c;
    if (a->max_attempts != b->max_attempts)
        return a->max_attempts < b->max_attempts ? -1 : 1;
    if (a->priority != b->priority)
        return a->priority < b->priority ? -1 : 1;
    return memcmp(a->id, b->id, 16);
}

static int
same_run(const struct wq_accept *a, const struct wq_accept *b)
{
    return (a->queue == b->queue || strcmp(a->queue, b->queue) == 0)
        && (a->type == b->type || strcmp(a->type, b->type) == 0)
        && a->max_attempts == b->max_attempts
        && a->priority == b->priority;
}

/* An entry's id as two integers that order as its bytes do. */
struct wq_idkey {
    uint64_t hi, lo;
    const struct wq_accept *a;
};

static int
idkey_lt(const struct wq_idkey *x, const struct wq_idkey *y)
{
    return x->hi < y->hi || (x->hi == y->hi && x->lo < y->lo);
}

/*
 * Sorts v[0..n) by id, with tmp[0..n) to spare, and returns the one of
 * the two that holds the result.  It merges the ascending runs it finds,
 * pairwise, until one is left: a batch comes confirmed in a few
 * interleaved streams (one per partition), each in the order of its ids
 * (UUIDv7s count up within a process), so a few linear passes sort it
 * where qsort() took a fifth of what receipts cost the C client.
 */
static struct wq_idkey *
ids_sort(struct wq_idkey *v, struct wq_idkey *tmp, size_t n)
{
    for (;;) {
        size_t i = 0, o = 0, merges = 0;
        struct wq_idkey *t;

        while (i < n) {
            size_t x = i, m, y, e;

            for (m = x + 1; m < n && !idkey_lt(&v[m], &v[m - 1]); m++)
                ;
            for (e = m + (m < n); e < n && !idkey_lt(&v[e], &v[e - 1]); e++)
                ;
            for (y = m; x < m && y < e; )
                tmp[o++] = idkey_lt(&v[y], &v[x]) ? v[y++] : v[x++];
            while (x < m)
                tmp[o++] = v[x++];
            while (y < e)
                tmp[o++] = v[y++];
            merges++;
            i = e;
        }
        if (merges <= 1)
            return tmp;
        t = v;
        v = tmp;
        tmp = t;
    }
}

/*
 * Puts f[0..n), entries of one run (same_run), in the order of their
 * ids, as qsort with cmp_fresh would.
 */
static void
fresh_sort(wq_store *s, const struct wq_accept **f, size_t n)
{
    struct wq_idkey *k = s->accept_keys, *sorted;

    for (size_t i = 0; i < n; i++) {
        uint64_t w[2];

        memcpy(w, f[i]->id, sizeof w);
        k[i].hi = be64toh(w[0]);
        k[i].lo = be64toh(w[1]);
        k[i].a = f[i];
    }
    sorted = ids_sort(k, k + n, n);
    for (size_t i = 0; i < n; i++)
        f[i] = sorted[i].a;
}

/*
 * Queues statement `id` (accept_sql or accept_runs_sql) on the pipeline,
 * preparing it first on a connection that has not seen it (or unnamed,
 * behind a transaction-mode pooler), then a sync
 * point, so each is its own transaction as before.  0 or WQ_ESTORE.
 */
static int
accept_queue(wq_store *s, int id, const char *sql, int nparams,
    const Oid *types, struct wq_buf *b, char *err, size_t errlen)
{
    static const char *const names[STMT_COUNT] = {
        [STMT_ACCEPT] = "wq_accept", [STMT_ACCEPT_RUNS] = "wq_accept_runs" };
    const char *values[8];
    int lengths[8], formats[8] = { 1, 1, 1, 1, 1, 1, 1, 1 };

    for (int i = 0; i < nparams; i++) {
        values[i] = (const char *)b[i].data;
        lengths[i] = (int)b[i].len;
    }
    if (wq_store_unnamed(s)) {
        /* parsed with each batch: no name can outlive the transaction */
        if (!PQsendQueryParams(s->conn, sql, nparams, types, values,
            lengths, formats, 0) || !PQpipelineSync(s->conn))
            goto fail;
        s->accept_syncs++;
        return 0;
    }
    if ((s->prepared & (1u << id)) == 0) {
        if (!PQsendPrepare(s->conn, names[id], sql, nparams, types))
            goto fail;
        s->prepared |= 1u << id;
    }
    if (!PQsendQueryPrepared(s->conn, names[id], nparams, values, lengths,
        formats, 0) || !PQpipelineSync(s->conn))
        goto fail;
    s->accept_syncs++;
    return 0;
fail:
    /* nothing of it counts: the caller leaves the pipeline or closes */
    s->prepared &= ~(1u << id);
    return wq_store_result_check(s, NULL, "record accepted tasks", err,
        errlen);
}

/* A run splits into ranges only when they hold this many ids each on
 * average: a range is a row, a listed id 16 bytes. */
#define RANGE_MIN 32

/* 1 if b follows a in their sequence (uuid.h, wq_uuid_seq_stamp):
 * entries in id order whose rand_b goes up by one. */
static int
seq_next(const struct wq_accept *a, const struct wq_accept *b)
{
    return wq_uuid_rand_b(b->id) == wq_uuid_rand_b(a->id) + 1;
}

/*
 * Appends one row of workq.accepted_runs for f[0..n), entries of one
 * run in id order, to the statement's parameters b[0..8): as a range
 * (`range`: f[0..n) follow each other in their sequence, and `ids` is
 * empty), or with their ids listed.
 */
static void
fresh_row(struct wq_buf *b, const struct wq_accept *const *f, size_t n,
    int range)
{
    int64_t created = f[0]->created_at_ms;
    size_t len = range ? 0 : n * 16;

    for (size_t m = 1; m < n; m++)
        if (f[m]->created_at_ms < created)
            created = f[m]->created_at_ms;
    wq_pgarray_bytes(&b[0], f[0]->id, 16);
    wq_pgarray_bytes(&b[1], f[n - 1]->id, 16);
    wq_pgarray_i64(&b[2], created);
    wq_pgarray_i32(&b[3], f[0]->max_attempts);
    wq_pgarray_str(&b[4], f[0]->queue);
    wq_pgarray_str(&b[5], f[0]->type);
    wq_pgarray_i32(&b[7], f[0]->priority);
    wq_pgarray_elem(&b[6], len);
    if (wq_buf_reserve(&b[6], len) != 0)
        abort();        /* out of memory: as xmalloc */
    for (size_t m = 0; m < len / 16; m++) {
        memcpy(b[6].data + b[6].len, f[m]->id, 16);
        b[6].len += 16;
    }
}

/*
 * Queues the receipts of the fresh entries of v[0..n) (those key_is_id).
 * The parameters are built in the store's kept buffers (libpq copies
 * them on sending), and a run's ids straight into its bytea element.
 */
static int
accept_fresh(wq_store *s, const struct wq_accept *v, size_t n, size_t nfresh,
    char *err, size_t errlen)
{
    static const Oid types[8] = { WQ_OID_UUID_A, WQ_OID_UUID_A,
        WQ_OID_INT8_A, WQ_OID_INT4_A, WQ_OID_TEXT_A, WQ_OID_TEXT_A,
        WQ_OID_BYTEA_A, WQ_OID_INT4_A };
    struct wq_buf *b = s->accept_params;
    const struct wq_accept **f;
    size_t k = 0, nrows = 0;
    int sorted = 1, onerun = 1;

    if (nfresh > s->accept_order_cap) {
        free(s->accept_order);
        free(s->accept_keys);
        s->accept_order = xcalloc(nfresh, sizeof *s->accept_order);
        s->accept_keys = xcalloc(2 * nfresh, sizeof *s->accept_keys);
        s->accept_order_cap = nfresh;
    }
    f = s->accept_order;
    for (size_t i = 0; i < n; i++)
        if (key_is_id(&v[i])) {
            f[k] = &v[i];
            if (k > 0 && onerun && !same_run(f[0], f[k]))
                onerun = 0;
            if (k > 0 && sorted && cmp_fresh(&f[k - 1], &f[k]) > 0)
                sorted = 0;
            k++;
        }
    /* one submitter's ids come in order, but its confirmations come
     * partition by partition: usually one run, in a few sorted streams */
    if (!sorted && onerun)
        fresh_sort(s, f, nfresh);
    else if (!sorted)
        qsort(f, nfresh, sizeof *f, cmp_fresh);
    /* two passes over the runs: count the rows, then write them */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            wq_pgarray_begin(&b[0], WQ_OID_UUID, nrows);
            wq_pgarray_begin(&b[1], WQ_OID_UUID, nrows);
            wq_pgarray_begin(&b[2], WQ_OID_INT8, nrows);
            wq_pgarray_begin(&b[3], WQ_OID_INT4, nrows);
            wq_pgarray_begin(&b[4], WQ_OID_TEXT, nrows);
            wq_pgarray_begin(&b[5], WQ_OID_TEXT, nrows);
            wq_pgarray_begin(&b[6], WQ_OID_BYTEA, nrows);
            wq_pgarray_begin(&b[7], WQ_OID_INT4, nrows);
        }
        for (size_t i = 0, j; i < nfresh; i = j) {
            size_t blocks = 1;

            for (j = i + 1; j < nfresh && same_run(f[i], f[j]); j++)
                blocks += !seq_next(f[j - 1], f[j]);
            if (blocks > 1 && blocks * RANGE_MIN > j - i) {
                /* ids of many origins: listed */
                if (pass == 0)
                    nrows++;
                else
                    fresh_row(b, f + i, j - i, 0);
                continue;
            }
            for (size_t a = i, e; a < j; a = e) {
                for (e = a + 1; e < j && seq_next(f[e - 1], f[e]); e++)
                    ;
                if (pass == 0)
                    nrows++;
                else
                    fresh_row(b, f + a, e - a, 1);
            }
        }
    }
    return accept_queue(s, STMT_ACCEPT_RUNS, accept_runs_sql, 8, types, b,
        err, errlen);
}

/* Queues the receipts of the entries of v[0..n) with a client key. */
static int
accept_keyed(wq_store *s, const struct wq_accept *v, size_t n, size_t nkeyed,
    char *err, size_t errlen)
{
    static const Oid types[7] = { WQ_OID_UUID_A, WQ_OID_TEXT_A,
        WQ_OID_TEXT_A, WQ_OID_TEXT_A, WQ_OID_INT4_A, WQ_OID_INT8_A,
        WQ_OID_INT4_A };
    struct wq_buf *b = s->accept_params;

    wq_pgarray_begin(&b[0], WQ_OID_UUID, nkeyed);
    wq_pgarray_begin(&b[1], WQ_OID_TEXT, nkeyed);
    wq_pgarray_begin(&b[2], WQ_OID_TEXT, nkeyed);
    wq_pgarray_begin(&b[3], WQ_OID_TEXT, nkeyed);
    wq_pgarray_begin(&b[4], WQ_OID_INT4, nkeyed);
    wq_pgarray_begin(&b[5], WQ_OID_INT8, nkeyed);
    wq_pgarray_begin(&b[6], WQ_OID_INT4, nkeyed);
    for (size_t i = 0; i < n; i++) {
        if (key_is_id(&v[i]))
            continue;
        wq_pgarray_bytes(&b[0], v[i].id, 16);
        wq_pgarray_str(&b[1], v[i].queue);
        wq_pgarray_str(&b[2], v[i].type);
        wq_pgarray_str(&b[3], v[i].key);
        wq_pgarray_i32(&b[4], v[i].max_attempts);
        wq_pgarray_i64(&b[5], v[i].created_at_ms);
        wq_pgarray_i32(&b[6], v[i].priority);
    }
    return accept_queue(s, STMT_ACCEPT, accept_sql, 7, types, b, err,
        errlen);
}

/* The duplicates accept_sql returned: marks them in v[0..n). */
static void
accept_duplicates(const PGresult *r, struct wq_accept *v, size_t n)
{
    size_t nkeyed = 0, *idx;

    for (size_t i = 0; i < n; i++)
        nkeyed += !key_is_id(&v[i]);
    if (PQntuples(r) == 0 || nkeyed == 0)
        return;
    idx = xcalloc(nkeyed, sizeof *idx);
    for (size_t i = 0, k = 0; i < n; i++)
        if (!key_is_id(&v[i]))
            idx[k++] = i;
    for (int row = 0; row < PQntuples(r); row++) {
        long long ord = strtoll(PQgetvalue(r, row, 0), NULL, 10);
        int state = wq_task_state_parse(PQgetvalue(r, row, 1));

        if (ord < 1 || (size_t)ord > nkeyed)
            continue;
        v[idx[ord - 1]].duplicate = 1;
        if (state >= 0)
            v[idx[ord - 1]].state = (enum wq_task_state)state;
    }
    free(idx);
}

/*
 * Leaves the pipeline after a failure, reading and dropping what is still
 * to come, so that the connection serves the next statement (or, lost,
 * is made again by wq_store_ping, which also ends the pipeline).
 */
static int
accept_abandon(wq_store *s, int rc)
{
    PGresult *r;

    /* a command queued without its sync point: one more ends it */
    if (PQpipelineStatus(s->conn) != PQ_PIPELINE_OFF
        && !PQexitPipelineMode(s->conn) && PQstatus(s->conn) == CONNECTION_OK
        && PQpipelineSync(s->conn))
        s->accept_syncs++;
    while (s->accept_syncs > 0 && PQstatus(s->conn) == CONNECTION_OK) {
        if ((r = PQgetResult(s->conn)) == NULL)
            continue;
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC)
            s->accept_syncs--;
        PQclear(r);
    }
    s->accept_syncs = 0;
    s->accept_ngroups = 0;
    s->accept_rc = 0;
    (void)PQexitPipelineMode(s->conn);
    return rc;
}

/*
 * The statements go in one pipeline (libpq's pipeline mode), a sync
 * point after each: receipts of fresh tasks, then those with a key.
 * Sending writes them (blocking while the socket is full, which
 * PostgreSQL empties as it parses) and reads nothing.  A send while
 * another is under way adds its statements to the same pipeline.
 */
int
wq_store_accept_send(wq_store *s, struct wq_accept *v, size_t n, char *err,
    size_t errlen)
{
    size_t nfresh = 0;
    int rc, before = s->accept_syncs;

    for (size_t i = 0; i < n; i++) {
        v[i].duplicate = 0;
        v[i].state = WQ_TASK_QUEUED;
    }
    if (n == 0)
        return 0;
    if (n > INT32_MAX)
        return wq_seterr(err, errlen, WQ_EINVAL, "accept: batch too large");
    if (s->accept_ngroups == WQ_ACCEPT_DEPTH)
        return wq_seterr(err, errlen, WQ_EINVAL, "accept: %d sends under "
            "way already", WQ_ACCEPT_DEPTH);
    if (s->accept_ngroups == 0) {
        if ((rc = wq_store_ready(s, err, errlen)) != 0)
            return rc;
        if (!PQenterPipelineMode(s->conn))
            return wq_store_result_check(s, NULL, "record accepted tasks",
                err, errlen);
        s->accept_rc = 0;
        s->accept_err[0] = '\0';
    }
    for (size_t i = 0; i < n; i++)
        nfresh += key_is_id(&v[i]);
    if (nfresh > 0 && (rc = accept_fresh(s, v, n, nfresh, err, errlen)) != 0)
        return accept_abandon(s, rc);
    if (nfresh < n
        && (rc = accept_keyed(s, v, n, n - nfresh, err, errlen)) != 0)
        return accept_abandon(s, rc);
    s->accept_group[s->accept_ngroups++] = s->accept_syncs - before;
    return 0;
}

int
wq_store_accept_recv(wq_store *s, struct wq_accept *v, size_t n, int wait,
    char *err, size_t errlen)
{
    PGresult *r;
    int rc;

    if (s->accept_ngroups == 0)
        return 0;
    /* the oldest send's sync points: its answers come first */
    while (s->accept_group[0] > 0) {
        if (!wait && (!PQconsumeInput(s->conn) || PQisBusy(s->conn))) {
            if (PQstatus(s->conn) == CONNECTION_OK)
                return WQ_EAGAIN;
            /* lost: PQgetResult says so below */
        }
        if ((r = PQgetResult(s->conn)) == NULL) {
            /* the end of one statement's results; or a lost connection,
             * which answers nothing more */
            if (PQstatus(s->conn) != CONNECTION_OK)
                return accept_abandon(s, wq_store_result_check(s, NULL,
                    "record accepted tasks", err, errlen));
            continue;
        }
        switch (PQresultStatus(r)) {
        case PGRES_PIPELINE_SYNC:
            s->accept_syncs--;
            s->accept_group[0]--;
            break;
        case PGRES_TUPLES_OK:           /* accept_sql: the duplicates */
            accept_duplicates(r, v, n);
            break;
        case PGRES_COMMAND_OK:          /* a prepare, accept_runs_sql */
            break;
        default:
            if (s->accept_rc == 0) {
                s->accept_rc = wq_store_result_check(s, r,
                    "record accepted tasks", s->accept_err,
                    sizeof s->accept_err);
                if (s->accept_rc == 0)
                    s->accept_rc = wq_seterr(s->accept_err,
                        sizeof s->accept_err, WQ_ESTORE,
                        "record accepted tasks: %s",
                        PQresStatus(PQresultStatus(r)));
                /* a failed prepare is prepared again next time */
                s->prepared &= ~((1u << STMT_ACCEPT)
                    | (1u << STMT_ACCEPT_RUNS));
            }
            break;
        }
        PQclear(r);
    }
    rc = s->accept_rc;
    s->accept_rc = 0;
    s->accept_ngroups--;
    memmove(&s->accept_group[0], &s->accept_group[1],
        (size_t)s->accept_ngroups * sizeof s->accept_group[0]);
    if (rc != 0) {
        wq_seterr(err, errlen, rc, "%s", s->accept_err);
        /* the later sends go with it, as the interface says */
        if (s->accept_ngroups > 0)
            accept_abandon(s, rc);
    }
    if (s->accept_ngroups == 0 && !PQexitPipelineMode(s->conn) && rc == 0)
        rc = accept_abandon(s, wq_store_result_check(s, NULL,
            "record accepted tasks", err, errlen));
    if (rc != 0)
        for (size_t i = 0; i < n; i++) {
            v[i].duplicate = 0;
            v[i].state = WQ_TASK_QUEUED;
        }
    return rc;
}

int
wq_store_accept(wq_store *s, struct wq_accept *v, size_t n, char *err,
    size_t errlen)
{
    int rc;

    if ((rc = wq_store_accept_send(s, v, n, err, errlen)) != 0)
        return rc;
    return wq_store_accept_recv(s, v, n, 1, err, errlen);
}

/* --- dead letters ---------------------------------------------------- */

int
wq_store_dead_letter_insert(wq_store *s, const struct wq_dead_letter *dl,
    int64_t *id, char *err, size_t errlen)
{
    char partition[16], offset[24], *reason = NULL;
    const char *values[9];
    int lengths[9] = { 0 }, formats[9] = { 0 };
    PGresult *r;
    int rc;

    if (id != NULL)
        *id = 0;
    if (dl->transport == NULL || dl->queue == NULL || dl->error == NULL ||
        (dl->raw == NULL && dl->raw_len > 0) ||
        (dl->key == NULL && dl->keylen > 0))
        return wq_seterr(err, errlen, WQ_EINVAL,
            "insert dead letter: transport, queue, raw and error are "
            "required");
    if (dl->raw_len > INT32_MAX || dl->keylen > INT32_MAX)
        return wq_seterr(err, errlen, WQ_ETOOBIG,
            "insert dead letter: message of %zu bytes is too large",
            dl->raw_len);
    if ((reason = wq_utf8_sanitize(dl->error)) == NULL)
        return wq_seterr(err, errlen, WQ_ENOMEM,
            "insert dead letter: out of memory");
    snprintf(partition, sizeof partition, "%" PRId32, dl->partition);
    snprintf(offset, sizeof offset, "%" PRId64, dl->offset);

    values[0] = dl->transport;
    values[1] = dl->queue;
    values[2] = dl->raw_len > 0 ? (const char *)dl->raw : "";
    lengths[2] = (int)dl->raw_len; formats[2] = 1;
    values[3] = dl->key != NULL ? (const char *)dl->key : NULL;
    lengths[3] = (int)dl->keylen; formats[3] = 1;
    values[4] = dl->partition >= 0 ? partition : NULL;
    values[5] = dl->offset >= 0 ? offset : NULL;
    values[6] = dl->redelivered ? "true" : "false";
    values[7] = reason;
    values[8] = dl->worker;

    rc = stmt_run(s, STMT_DEAD_LETTER, values, lengths, formats, 0, &r, err,
        errlen);
    free(reason);
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 1 && id != NULL)
        *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

/* The last progress report of a task (migration 0009). */
static const char progress_get_sql[] =
    "SELECT progress, coalesce(progress_message, ''),"
    "  (extract(epoch FROM progress_at) * 1000)::int8"
    "  FROM workq.tasks WHERE id = $1::uuid AND progress IS NOT NULL";

int
wq_store_task_progress(wq_store *s, struct wq_task_row *row, char *err,
    size_t errlen)
{
    char id[WQ_UUID_STRLEN];
    const char *values[1] = { id };
    PGresult *r;
    int rc;

    if (row->receipt)
        return 0;       /* not claimed: no progress yet */
    wq_uuid_format(row->id, id);
    r = PQexecParams(s->conn, progress_get_sql, 1, NULL, values, NULL, NULL,
        0);
    if (PQresultStatus(r) == PGRES_FATAL_ERROR
        && PQresultErrorField(r, PG_DIAG_SQLSTATE) != NULL
        && strcmp(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42703") == 0) {
        /* a schema before migration 0009 (a producer upgraded first):
         * no progress to show, the rest of the task still is */
        PQclear(r);
        return 0;
    }
    if ((rc = wq_store_result_check(s, r, "read progress", err, errlen))
        == 0 && PQntuples(r) == 1) {
        row->has_progress = 1;
        row->progress = atoi(PQgetvalue(r, 0, 0));
        free(row->progress_message);
        row->progress_message = PQgetvalue(r, 0, 1)[0] != '\0'
            ? xstrdup(PQgetvalue(r, 0, 1)) : NULL;
        row->progress_at_ms = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    }
    PQclear(r);
    return rc;
}

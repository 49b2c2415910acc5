/*
 * ops.c - the operator's actions and reports as JSON (see ops.h): runs
 * store_admin.c's statements and turns their text rows into the objects
 * both `workq --json` and the HTTP API answer.
 *
 * Cursors are "<microseconds since the epoch>_<task id>" of the last row
 * of a page: opaque to clients, checked strictly here, so a cursor that
 * was tampered with is a 400, never a query.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "cron.h"
#include "ops.h"
#include "priority.h"
#include "store_admin.h"
#include "task_json.h"
#include "textout.h"
#include "uuid.h"
#include "wq.h"

#define BATCH 1000              /* rows per replay or purge transaction */

/* What purge leaves on the broker. */
#define BROKER_COPIES \
    "the copies on workq.QUEUE.dead are not removed from the broker: " \
    "they expire by the queue's dead_ttl and dead_max_length " \
    "(queue_policies)"

/* --- values -------------------------------------------------------------- */

/* Aborts when jansson is out of memory (alloc.h's rule). */
static json_t *
must(json_t *j)
{
    if (j == NULL)
        abort();
    return j;
}

static void
set(json_t *o, const char *name, json_t *v)
{
    if (json_object_set_new(o, name, must(v)) != 0)
        abort();
}

static json_t *
str(const char *s)
{
    return wq_task_json_str(s);
}

/* An epoch-milliseconds column as RFC 3339, or null. */
static json_t *
time_of(const struct pg_result *r, int i, int col)
{
    char buf[40];

    if (wq_store_isnull(r, i, col))
        return json_null();
    return json_string(wq_clock_format_rfc3339(strtoll(wq_store_value(r, i,
        col), NULL, 10), buf, sizeof buf));
}

static json_t *
int_of(const struct pg_result *r, int i, int col)
{
    if (wq_store_isnull(r, i, col))
        return json_null();
    return json_integer(strtoll(wq_store_value(r, i, col), NULL, 10));
}

static json_t *
text_of(const struct pg_result *r, int i, int col)
{
    return wq_store_isnull(r, i, col) ? json_null()
        : str(wq_store_value(r, i, col));
}

/* Appends to a buffer; out of memory aborts. */
static void
put(struct wq_buf *b, const void *p, size_t n)
{
    if (wq_buf_append(b, p, n) != 0)
        abort();
}

static int
query(wq_store *s, enum wq_admin_sql q, const char *const *p,
    struct pg_result **r, char *err, size_t errlen)
{
    return wq_store_admin_query(s, q, p, r, "", err, errlen);
}

/* --- cursors ------------------------------------------------------------- */

static void
cursor_make(const char *us, const char *id, char *buf, size_t len)
{
    snprintf(buf, len, "%s_%s", us, id);
}

/* Splits a cursor into its microseconds and id (text, into us/id). */
static int
cursor_parse(const char *c, char us[24], char id[WQ_UUID_STRLEN], char *err,
    size_t errlen)
{
    const char *sep = strchr(c, '_');
    uint8_t bin[WQ_UUID_LEN];
    size_t n;

    if (sep == NULL || (n = (size_t)(sep - c)) == 0 || n > 19
        || strspn(c, "0123456789") != n || strlen(sep + 1) != 36
        || wq_uuid_parse(sep + 1, bin) != 0)
        return wq_seterr(err, errlen, WQ_EINVAL, "cursor: not one this API "
            "gave (pass next_cursor as it came)");
    memcpy(us, c, n);
    us[n] = '\0';
    memcpy(id, sep + 1, 37);
    return 0;
}

/* --- summaries ----------------------------------------------------------- */

/* A row of store_admin.c's SUMMARY columns as JSON. */
static json_t *
summary(const struct pg_result *r, int i, enum wq_ops_bodies bodies,
    int dead)
{
    json_t *o = must(json_object());

    set(o, "id", str(wq_store_value(r, i, 0)));
    set(o, "queue", str(wq_store_value(r, i, 1)));
    set(o, "type", str(wq_store_value(r, i, 2)));
    set(o, "idempotency_key", text_of(r, i, 13));
    set(o, "state", str(wq_store_value(r, i, 3)));
    set(o, "priority", str(wq_priority_name(atoi(wq_store_value(r, i,
        17)))));
    set(o, "attempt", int_of(r, i, 4));
    set(o, "max_attempts", int_of(r, i, 5));
    set(o, "created_at", time_of(r, i, 14));
    set(o, "updated_at", time_of(r, i, 6));
    set(o, "run_at", time_of(r, i, 7));
    set(o, "finished_at", time_of(r, i, 15));
    set(o, "last_error", text_of(r, i, 8));
    set(o, "payload_bytes", int_of(r, i, 10));
    if (bodies == WQ_OPS_BODIES_ALL) {
        for (int k = 0; k < 2; k++) {
            const char *name = k == 0 ? "payload" : "result";
            int col = k == 0 ? 9 : 11;
            unsigned char *v;
            size_t n;

            if (wq_store_isnull(r, i, col)) {
                set(o, name, json_null());
                continue;
            }
            if ((v = wq_store_bytea_decode(wq_store_value(r, i, col), &n))
                == NULL || wq_text_json_set_bytes(o, name, v, n) != 0)
                abort();
            free(v);
        }
    }
    if (dead)
        set(o, "copy_published", json_boolean(strcmp(wq_store_value(r, i,
            16), "t") == 0));
    return o;
}

/* {"tasks": [...], "next_cursor"} of rows with the cursor in column 18. */
static json_t *
page(const struct pg_result *r, long limit, enum wq_ops_bodies bodies,
    int dead)
{
    json_t *o = must(json_object()), *v = must(json_array());
    int n = wq_store_nrows(r);
    char next[80];

    for (int i = 0; i < n; i++)
        if (json_array_append_new(v, summary(r, i, bodies, dead)) != 0)
            abort();
    set(o, "tasks", v);
    if (n > 0 && n == limit) {
        cursor_make(wq_store_value(r, n - 1, 18), wq_store_value(r, n - 1,
            0), next, sizeof next);
        set(o, "next_cursor", json_string(next));
    } else {
        set(o, "next_cursor", json_null());
    }
    return o;
}

int
wq_ops_tasks_page(wq_store *s, const struct wq_ops_tasks_query *q,
    json_t **out, char *err, size_t errlen)
{
    char limit[24], after[24], before[24], us[24], id[WQ_UUID_STRLEN];
    const char *p[10] = { NULL };
    struct pg_result *r;
    int rc;

    *out = NULL;
    if (q->state != NULL && wq_task_state_parse(q->state) < 0)
        return wq_seterr(err, errlen, WQ_EINVAL, "state: unknown '%s' "
            "(scheduled, queued, running, retry_wait, succeeded, dead, "
            "cancelled)", q->state);
    if (q->cursor != NULL && (rc = cursor_parse(q->cursor, us, id, err,
        errlen)) != 0)
        return rc;
    snprintf(limit, sizeof limit, "%ld", q->limit);
    p[0] = q->queue;
    p[1] = q->state;
    p[2] = q->type;
    p[3] = limit;
    p[4] = q->bodies == WQ_OPS_BODIES_ALL ? "all" : "none";
    p[5] = q->key_prefix;
    if (q->created_after_ms != WQ_OPS_NONE) {
        snprintf(after, sizeof after, "%" PRId64, q->created_after_ms);
        p[6] = after;
    }
    if (q->created_before_ms != WQ_OPS_NONE) {
        snprintf(before, sizeof before, "%" PRId64, q->created_before_ms);
        p[7] = before;
    }
    if (q->cursor != NULL) {
        p[8] = us;
        p[9] = id;
    }
    if ((rc = query(s, WQ_ADMIN_SQL_LIST, p, &r, err, errlen)) != 0)
        return rc;
    *out = page(r, q->limit, q->bodies, 0);
    wq_store_rows_free(r);
    return 0;
}

/* --- dead letters -------------------------------------------------------- */

/*
 * The first six parameters of the dead filter; *ids gets the uuid[]
 * literal (malloc'd, the caller frees it) when f names ids.
 */
static int
dead_params(const struct wq_ops_dead_filter *f, const char **p, char *older,
    char *newer, char **ids, char *err, size_t errlen)
{
    *ids = NULL;
    p[0] = f->queue;
    p[1] = f->type;
    p[2] = f->error;
    p[3] = p[4] = p[5] = NULL;
    if (f->older_than_ms != WQ_OPS_NONE) {
        snprintf(older, 24, "%" PRId64, f->older_than_ms);
        p[3] = older;
    }
    if (f->newer_than_ms != WQ_OPS_NONE) {
        snprintf(newer, 24, "%" PRId64, f->newer_than_ms);
        p[4] = newer;
    }
    if (f->ids != NULL) {
        struct wq_buf b = WQ_BUF_INIT;
        uint8_t bin[WQ_UUID_LEN];

        put(&b, "{", 1);
        for (size_t i = 0; i < f->nids; i++) {
            if (wq_uuid_parse(f->ids[i], bin) != 0) {
                wq_buf_free(&b);
                return wq_seterr(err, errlen, WQ_EINVAL, "ids[%zu]: not a "
                    "task id (a UUID)", i);
            }
            if (i > 0)
                put(&b, ",", 1);
            put(&b, f->ids[i], 36);
        }
        put(&b, "}", 2);        /* with the NUL */
        *ids = b.data;          /* taken over */
        p[5] = *ids;
    }
    return 0;
}

/*
 * Runs `sql` over the dead tasks f selects: the filter's six parameters,
 * then lim, us and id (the cursor's; NULL where there is none, and left
 * out by a statement that takes fewer).
 */
static int
dead_query(wq_store *s, enum wq_admin_sql sql,
    const struct wq_ops_dead_filter *f, const char *lim, const char *us,
    const char *id, struct pg_result **r, char *err, size_t errlen)
{
    char older[24], newer[24];
    const char *p[9];
    char *ids;
    int rc;

    if ((rc = dead_params(f, p, older, newer, &ids, err, errlen)) != 0)
        return rc;
    p[6] = lim;
    p[7] = us;
    p[8] = id;
    rc = query(s, sql, p, r, err, errlen);
    free(ids);
    return rc;
}

int
wq_ops_dead_page(wq_store *s, const struct wq_ops_dead_filter *f,
    long limit, const char *cursor, json_t **out, char *err, size_t errlen)
{
    char lim[24], us[24], id[WQ_UUID_STRLEN];
    struct pg_result *r;
    int rc;

    *out = NULL;
    if (cursor != NULL && (rc = cursor_parse(cursor, us, id, err, errlen))
        != 0)
        return rc;
    snprintf(lim, sizeof lim, "%ld", limit);
    if ((rc = dead_query(s, WQ_ADMIN_SQL_DLQ_LIST, f, lim,
        cursor != NULL ? us : NULL, cursor != NULL ? id : NULL, &r, err,
        errlen)) != 0)
        return rc;
    *out = page(r, limit, WQ_OPS_BODIES_NONE, 1);
    wq_store_rows_free(r);
    return 0;
}

int
wq_ops_dead_count(wq_store *s, const struct wq_ops_dead_filter *f,
    long limit, long *n, char *err, size_t errlen)
{
    char lim[24];
    struct pg_result *r;
    int rc;

    *n = 0;
    snprintf(lim, sizeof lim, "%ld", limit > 0 ? limit : 1000000000L);
    if ((rc = dead_query(s, WQ_ADMIN_SQL_DLQ_COUNT, f, lim, NULL, NULL, &r,
        err, errlen)) != 0)
        return rc;
    *n = atol(wq_store_value(r, 0, 0));
    wq_store_rows_free(r);
    return 0;
}

int
wq_ops_undecodable_page(wq_store *s, const struct wq_ops_dead_filter *f,
    long limit, json_t **out, char *err, size_t errlen)
{
    char older[24], newer[24], lim[24];
    const char *p[5];
    struct pg_result *r;
    json_t *a;
    int rc;

    *out = NULL;
    a = must(json_array());
    if (f->type != NULL || f->ids != NULL) {
        *out = must(json_pack("{s:o}", "undecodable", a));
        return 0;
    }
    p[0] = f->queue;
    p[1] = f->error;
    p[2] = p[3] = NULL;
    if (f->older_than_ms != WQ_OPS_NONE) {
        snprintf(older, sizeof older, "%" PRId64, f->older_than_ms);
        p[2] = older;
    }
    if (f->newer_than_ms != WQ_OPS_NONE) {
        snprintf(newer, sizeof newer, "%" PRId64, f->newer_than_ms);
        p[3] = newer;
    }
    snprintf(lim, sizeof lim, "%ld", limit);
    p[4] = lim;
    if ((rc = query(s, WQ_ADMIN_SQL_UNDECODABLE_LIST, p, &r, err, errlen))
        != 0) {
        json_decref(a);
        return rc;
    }
    for (int i = 0; i < wq_store_nrows(r); i++) {
        json_t *o = must(json_object());

        set(o, "id", int_of(r, i, 0));
        set(o, "queue", text_of(r, i, 1));
        set(o, "transport", text_of(r, i, 2));
        set(o, "received_at", time_of(r, i, 3));
        set(o, "bytes", int_of(r, i, 4));
        set(o, "error", text_of(r, i, 5));
        if (json_array_append_new(a, o) != 0)
            abort();
    }
    wq_store_rows_free(r);
    *out = must(json_pack("{s:o}", "undecodable", a));
    return 0;
}

int
wq_ops_undecodable_raw(wq_store *s, const char *id, unsigned char **bytes,
    size_t *n, char *err, size_t errlen)
{
    const char *p[1] = { id };
    struct pg_result *r;
    int rc;

    *bytes = NULL;
    *n = 0;
    if (id[0] == '\0' || strlen(id) > 18 || strspn(id, "0123456789")
        != strlen(id))
        return wq_seterr(err, errlen, WQ_EINVAL, "an undecodable message's "
            "id is a number");
    if ((rc = query(s, WQ_ADMIN_SQL_UNDECODABLE_GET, p, &r, err, errlen))
        != 0)
        return rc;
    if (wq_store_nrows(r) == 0) {
        wq_store_rows_free(r);
        return wq_seterr(err, errlen, WQ_ENOENT, "no undecodable message "
            "%s", id);
    }
    if ((*bytes = wq_store_bytea_decode(wq_store_value(r, 0, 11), n))
        == NULL)
        abort();    /* alloc.h */
    wq_store_rows_free(r);
    return 0;
}

int
wq_ops_dead_change(wq_store *s, const struct wq_ops_dead_filter *f,
    long limit, long attempts, int purge, json_t **out, char *err,
    size_t errlen)
{
    char older[24], newer[24], lim[24], att[24];
    const char *p[8];
    json_t *ids = must(json_array());
    long total = 0;
    char *idlit;
    int rc;

    *out = NULL;
    if ((rc = dead_params(f, p, older, newer, &idlit, err, errlen)) != 0) {
        json_decref(ids);
        return rc;
    }
    snprintf(att, sizeof att, "%ld", attempts);
    p[7] = attempts > 0 ? att : NULL;
    for (;;) {
        long want = BATCH;
        struct pg_result *r;
        int got;

        if (limit > 0 && limit - total < want)
            want = limit - total;
        if (want <= 0)
            break;
        snprintf(lim, sizeof lim, "%ld", want);
        p[6] = lim;
        if ((rc = query(s, purge ? WQ_ADMIN_SQL_DLQ_PURGE
            : WQ_ADMIN_SQL_DLQ_REPLAY, p, &r, err, errlen)) != 0)
            break;
        got = wq_store_nrows(r);
        for (int i = 0; i < got; i++)
            if (json_array_size(ids) < WQ_OPS_CHANGE_MAX)
                json_array_append_new(ids, must(json_string(
                    wq_store_value(r, i, 0))));
        wq_store_rows_free(r);
        total += got;
        if (got < want)
            break;
    }
    free(idlit);
    *out = must(json_pack("{s:s, s:b, s:I, s:o}", "action",
        purge ? "purge" : "replay", "dry_run", 0, purge ? "purged"
        : "replayed", (json_int_t)total, "ids", ids));
    if (purge)
        set(*out, "broker_copies", json_string(BROKER_COPIES));
    return rc;
}

/* --- one task ------------------------------------------------------------ */

int
wq_ops_task(wq_store *s, const char *id, int dead_only, json_t **out,
    char *err, size_t errlen)
{
    struct wq_task_attempt *att = NULL;
    struct wq_task_row row;
    uint8_t bin[WQ_UUID_LEN];
    size_t natt = 0;
    int rc;

    *out = NULL;
    if (wq_uuid_parse(id, bin) != 0)
        return wq_seterr(err, errlen, WQ_EINVAL, "the task id must be a "
            "UUID");
    memset(&row, 0, sizeof row);
    rc = wq_store_task_get(s, bin, &row, err, errlen);
    if (rc == 0 && dead_only && row.state != WQ_TASK_DEAD)
        rc = wq_seterr(err, errlen, WQ_ENOENT, "task %s is not dead", id);
    if (rc == 0)
        rc = wq_store_task_attempts(s, row.id, &att, &natt, err, errlen);
    if (rc == 0)
        rc = wq_store_task_progress(s, &row, err, errlen);
    if (rc == 0)
        *out = must(wq_task_json(&row, att, natt));
    wq_task_attempts_free(att, natt);
    wq_task_row_free(&row);
    return rc;
}

int
wq_ops_retry(wq_store *s, const char *id, long attempts, json_t **out,
    char *err, size_t errlen)
{
    const char *p[2];
    char att[24];
    struct pg_result *r;
    uint8_t bin[WQ_UUID_LEN];
    int rc;

    *out = NULL;
    if (wq_uuid_parse(id, bin) != 0)
        return wq_seterr(err, errlen, WQ_EINVAL, "the task id must be a "
            "UUID");
    snprintf(att, sizeof att, "%ld", attempts);
    p[0] = id;
    p[1] = attempts > 0 ? att : NULL;
    if ((rc = query(s, WQ_ADMIN_SQL_RETRY, p, &r, err, errlen)) != 0)
        return rc;
    if (wq_store_nrows(r) == 0) {
        wq_store_rows_free(r);
        return wq_seterr(err, errlen, WQ_ENOENT, "no task %s", id);
    }
    if (strcmp(wq_store_value(r, 0, 3), "t") != 0) {
        const char *state = wq_store_value(r, 0, 0);

        *out = must(json_pack("{s:s, s:s, s:s, s:b, s:s}", "id", id,
            "previous_state", state, "state", state, "retried", 0,
            "reason", strcmp(state, "succeeded") == 0 ? "it succeeded; "
            "submit it again under a new key to run it once more"
            : "it is on its way already (queued or running)"));
    } else {
        const char *old = wq_store_value(r, 0, 0);

        *out = must(json_pack("{s:s, s:s, s:s, s:b, s:n, s:b, s:I, s:I}",
            "id", id, "previous_state", old, "state",
            strcmp(old, "scheduled") == 0 ? "scheduled" : "retry_wait",
            "retried", 1, "reason", "new_series",
            strcmp(old, "dead") == 0 || strcmp(old, "cancelled") == 0,
            "attempt", (json_int_t)atoll(wq_store_value(r, 0, 2)),
            "max_attempts", (json_int_t)atoll(wq_store_value(r, 0, 1))));
    }
    wq_store_rows_free(r);
    return 0;
}

int
wq_ops_cancel(wq_store *s, const char *id, json_t **out, char *err,
    size_t errlen)
{
    const char *p[1];
    struct pg_result *r = NULL;
    uint8_t bin[WQ_UUID_LEN];
    const char *state, *reason;
    int rc, done, running;

    *out = NULL;
    if (wq_uuid_parse(id, bin) != 0)
        return wq_seterr(err, errlen, WQ_EINVAL, "the task id must be a "
            "UUID");
    p[0] = id;
    for (int tries = 0;; tries++) {
        if ((rc = query(s, WQ_ADMIN_SQL_CANCEL, p, &r, err, errlen)) != 0)
            return rc;
        /* a worker claimed it between the statement's snapshot and its
         * insert: the task row is there now, so once more */
        if (wq_store_nrows(r) > 0 || tries > 0)
            break;
        wq_store_rows_free(r);
    }
    if (wq_store_nrows(r) == 0) {
        wq_store_rows_free(r);
        return wq_seterr(err, errlen, WQ_ENOENT, "no task %s", id);
    }
    state = wq_store_value(r, 0, 0);
    done = strcmp(wq_store_value(r, 0, 2), "t") == 0;
    running = strcmp(state, "running") == 0;
    reason = done ? NULL : running ? "it is running: its worker was asked "
        "to stop it (NOTIFY workq_cancel); its state shows when it ended"
        : "it is final already";
    *out = must(json_pack("{s:s, s:s, s:s, s:b, s:b, s:o, s:o}", "id", id,
        "previous_state", state, "state", done ? "cancelled" : state,
        "cancelled", done, "stop_requested", running, "reason",
        reason != NULL ? json_string(reason) : json_null(), "worker",
        running ? text_of(r, 0, 1) : json_null()));
    wq_store_rows_free(r);
    return 0;
}

/* --- stats --------------------------------------------------------------- */

static const char *const states[] = {
    "scheduled", "queued", "running", "retry_wait", "succeeded", "dead",
    "cancelled",
};

/* One queue of the report: its row in the result, or -1. */
struct qstat {
    const char *queue;
    int row;
};

static int
qstat_cmp(const void *a, const void *b)
{
    return strcmp(((const struct qstat *)a)->queue,
        ((const struct qstat *)b)->queue);
}

static void
qstat_add(struct qstat **v, size_t *n, size_t *cap, const char *queue,
    int row)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i].queue, queue) == 0)
            return;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = xreallocarray(*v, *cap, sizeof **v);
    }
    (*v)[*n].queue = queue;
    (*v)[(*n)++].row = row;
}

static json_t *
count_or_null(int64_t v)
{
    return v >= 0 ? json_integer(v) : json_null();
}

json_t *
wq_ops_backlog_json(int transport, int rc, const struct wq_backlog *b)
{
    json_t *o = must(json_object());

    set(o, "transport", json_string(wq_transport_kind_name(transport)));
    if (rc == WQ_ENOENT) {
        set(o, "exists", json_false());
        set(o, "ready", json_integer(0));
        set(o, "waiting", json_integer(0));
        set(o, "unacked", json_null());
        set(o, "lag", json_null());
        set(o, "oldest_age_s", json_null());
        return o;
    }
    set(o, "exists", json_true());
    set(o, "ready", count_or_null(b->ready));
    set(o, "waiting", count_or_null(b->ready));
    set(o, "unacked", count_or_null(b->unacked));
    set(o, "consumers", count_or_null(b->consumers));
    set(o, "oldest_age_s", b->oldest_ms >= 0
        ? json_integer(b->oldest_ms / 1000) : json_null());
    set(o, "oldest_waiting_seconds", b->oldest_ms >= 0
        ? json_integer(b->oldest_ms / 1000) : json_null());
    if (wq_transport_backend(transport)->backlog_partitions) {
        json_t *parts = must(json_array());

        set(o, "group", str(b->group));
        set(o, "lag", json_integer(b->ready));
        for (size_t k = 0; k < b->nparts; k++) {
            const struct wq_backlog_partition *p = &b->parts[k];

            json_array_append_new(parts, must(json_pack("{s:i, s:I, s:I, "
                "s:o, s:I}", "partition", (int)p->partition, "low",
                (json_int_t)p->low, "high", (json_int_t)p->high,
                "committed", count_or_null(p->committed), "lag",
                (json_int_t)p->lag)));
        }
        set(o, "partitions", parts);
    } else {
        set(o, "lag", json_null());
    }
    return o;
}

/* a + b of two counts, -1 (unknown) when either is. */
static int64_t
count_add(int64_t a, int64_t b)
{
    return a < 0 || b < 0 ? -1 : a + b;
}

/*
 * The backlog of one queue from the answers for its bands, rc[p] and
 * b[p] by priority (priority.h): counts added up (the broker holds the
 * queue's tasks in all three), consumers and the oldest age the largest,
 * the group the normal band's (all bands are read in one group); no
 * partitions.  *rc_out is 0 when any band exists, else WQ_ENOENT.
 */
static void
backlog_sum(const int *rc, const struct wq_backlog *b, struct wq_backlog *sum,
    int *rc_out)
{
    memset(sum, 0, sizeof *sum);
    sum->consumers = sum->oldest_ms = -1;
    *rc_out = WQ_ENOENT;
    for (int p = WQ_PRIORITY_N - 1; p >= 0; p--) {
        if (rc[p] != 0)
            continue;
        if (*rc_out != 0 || p == WQ_PRIORITY_NORMAL)
            snprintf(sum->group, sizeof sum->group, "%s", b[p].group);
        *rc_out = 0;
        sum->ready = count_add(sum->ready, b[p].ready);
        sum->unacked = count_add(sum->unacked, b[p].unacked);
        if (b[p].consumers > sum->consumers)
            sum->consumers = b[p].consumers;
        if (b[p].oldest_ms > sum->oldest_ms)
            sum->oldest_ms = b[p].oldest_ms;
    }
}

/*
 * The "broker" object of a queue whose bands answered rc[p], b[p]: the
 * totals (wq_ops_backlog_json of the sum; Kafka: every band's partitions,
 * each with its "priority"), and "bands": {high, normal, low} with each
 * band's own {exists, ready, waiting, unacked, consumers, lag,
 * oldest_age_s, oldest_waiting_seconds}.
 */
static json_t *
backlog_bands_json(int transport, const int *rc, const struct wq_backlog *b)
{
    struct wq_backlog sum;
    json_t *o, *bands = must(json_object()), *parts;
    int src;

    backlog_sum(rc, b, &sum, &src);
    o = wq_ops_backlog_json(transport, src, &sum);
    if ((parts = json_object_get(o, "partitions")) != NULL) {
        for (int p = WQ_PRIORITY_N - 1; p >= 0; p--) {
            for (size_t k = 0; rc[p] == 0 && k < b[p].nparts; k++) {
                const struct wq_backlog_partition *x = &b[p].parts[k];

                if (json_array_append_new(parts, must(json_pack("{s:s, s:i, "
                    "s:I, s:I, s:o, s:I}", "priority", wq_priority_name(p),
                    "partition", (int)x->partition, "low", (json_int_t)x->low,
                    "high", (json_int_t)x->high, "committed",
                    count_or_null(x->committed), "lag", (json_int_t)x->lag)))
                    != 0)
                    abort();
            }
        }
    }
    for (int p = WQ_PRIORITY_N - 1; p >= 0; p--) {
        json_t *one = wq_ops_backlog_json(transport, rc[p] == 0 ? 0
            : WQ_ENOENT, &b[p]);

        json_object_del(one, "transport");
        json_object_del(one, "group");
        json_object_del(one, "partitions");
        set(bands, wq_priority_name(p), one);
    }
    set(o, "bands", bands);
    return o;
}

int
wq_ops_stats(wq_store *s, const struct wq_config *cfg, const char *queue,
    wq_ops_backlog_fn *backlog, void *user, json_t **out, char *err,
    size_t errlen)
{
    const char *p[1] = { queue };
    struct qstat *v = NULL;
    size_t n = 0, cap = 0;
    struct wq_backlog *b = NULL;
    int *brc = NULL, broken = -1;
    char (*berr)[WQ_ERRLEN] = NULL;
    struct pg_result *r;
    json_t *all;
    int rc;

    *out = NULL;
    if ((rc = query(s, WQ_ADMIN_SQL_STATS, p, &r, err, errlen)) != 0)
        return rc;
    /*
     * The queues: those with rows, and the one asked for or else every
     * queue the configuration names (tasks sent straight to the broker
     * have no row until claimed: their queue may have none at all).
     */
    for (int i = 0; i < wq_store_nrows(r); i++)
        qstat_add(&v, &n, &cap, wq_store_value(r, i, 0), i);
    if (queue != NULL) {
        qstat_add(&v, &n, &cap, queue, -1);
    } else {
        const struct wq_config_queue_policy *qp = cfg->queue_policies.v;
        const struct wq_config_periodic *pe = cfg->periodic.v;

        for (size_t i = 0; i < cfg->worker.queues.n; i++)
            qstat_add(&v, &n, &cap, cfg->worker.queues.v[i], -1);
        for (size_t i = 0; i < cfg->queue_policies.n; i++)
            if (strcmp(qp[i].name, "*") != 0)
                qstat_add(&v, &n, &cap, qp[i].name, -1);
        for (size_t i = 0; i < cfg->periodic.n; i++)
            qstat_add(&v, &n, &cap, pe[i].queue, -1);
    }
    if (n > 0)
        qsort(v, n, sizeof *v, qstat_cmp);
    if (backlog != NULL && n > 0) {
        /* each queue's bands, at b[WQ_PRIORITY_N * q + priority] */
        size_t nb = n * WQ_PRIORITY_N;
        const char **names = xcalloc(nb, sizeof *names);
        char (*bandv)[WQ_BROKER_QUEUE_MAX + 1] = xcalloc(nb, sizeof *bandv);

        b = xcalloc(nb, sizeof *b);
        brc = xcalloc(nb, sizeof *brc);
        berr = xcalloc(nb, sizeof *berr);
        for (size_t i = 0; i < nb; i++)
            names[i] = wq_priority_band(bandv[i], sizeof bandv[i],
                v[i / WQ_PRIORITY_N].queue, (int)(i % WQ_PRIORITY_N));
        backlog(user, names, nb, b, brc, berr);
        free(names);
        free(bandv);
        for (size_t i = 0; i < nb && broken < 0; i++)
            if (brc[i] != 0 && brc[i] != WQ_ENOENT && brc[i] != WQ_EINVAL)
                broken = (int)i;
    }

    all = must(json_array());
    for (size_t q = 0; q < n; q++) {
        json_t *o, *counts;
        int i = v[q].row;

        /* a configured queue without rows is shown when the broker holds
         * something for it (or it was asked for) */
        if (i < 0 && queue == NULL && b != NULL && broken < 0) {
            struct wq_backlog sum;
            int src;

            backlog_sum(&brc[WQ_PRIORITY_N * q], &b[WQ_PRIORITY_N * q], &sum,
                &src);
            if (src != 0 || (sum.ready <= 0 && sum.unacked <= 0))
                continue;
        } else if (i < 0 && queue == NULL) {
            continue;
        }
        o = must(json_object());
        counts = must(json_object());
#define PGV(col) (i >= 0 ? atoll(wq_store_value(r, i, (col))) : 0)
        set(o, "queue", str(v[q].queue));
        for (int k = 0; k < 7; k++) {
            set(o, states[k], json_integer(PGV(1 + k)));
            set(counts, states[k], json_integer(PGV(1 + k)));
        }
        set(o, "succeeded_1m", json_integer(PGV(8)));
        set(o, "dead_1m", json_integer(PGV(9)));
        set(o, "oldest_waiting_s", i < 0 || wq_store_isnull(r, i, 10)
            ? json_null() : json_integer(PGV(10)));
        set(o, "outbox", json_integer(PGV(11)));
        /* the names `workq stats --json` had before the HTTP API */
        set(o, "counts", counts);
        set(o, "succeeded_last_minute", json_integer(PGV(8)));
        set(o, "dead_last_minute", json_integer(PGV(9)));
        set(o, "rate_per_second", json_real((double)PGV(8) / 60.0));
        set(o, "oldest_waiting_seconds", i < 0 || wq_store_isnull(r, i, 10)
            ? json_null() : json_integer(PGV(10)));
#undef PGV
        if (backlog != NULL)
            set(o, "broker", broken >= 0 ? json_null()
                : backlog_bands_json(cfg->transport, &brc[WQ_PRIORITY_N * q],
                &b[WQ_PRIORITY_N * q]));
        json_array_append_new(all, o);
    }
    *out = must(json_object());
    set(*out, "queues", all);
    if (backlog != NULL)
        set(*out, "broker_error", broken >= 0 ? json_string(berr[broken])
            : json_null());
    for (size_t q = 0; b != NULL && q < n * WQ_PRIORITY_N; q++)
        wq_backlog_free(&b[q]);
    free(b);
    free(brc);
    free(berr);
    free(v);
    wq_store_rows_free(r);
    return 0;
}

int
wq_ops_history(wq_store *s, const char *queue, int minutes, int64_t now_ms,
    json_t **out, char *err, size_t errlen)
{
    int64_t since = now_ms / 60000 - minutes + 1;     /* epoch minutes */
    char from[24], when[40];
    const char *p[2] = { queue, from };
    struct pg_result *r;
    json_t *series = must(json_array()), *cur = NULL;
    const char *curq = NULL;
    int rc;

    *out = NULL;
    snprintf(from, sizeof from, "%" PRId64, since);
    if ((rc = query(s, WQ_ADMIN_SQL_HISTORY, p, &r, err, errlen)) != 0) {
        json_decref(series);
        return rc;
    }
    for (int i = 0; i < wq_store_nrows(r); i++) {
        const char *q = wq_store_value(r, i, 0);
        int64_t m = strtoll(wq_store_value(r, i, 1), NULL, 10) - since;
        const char *kind = wq_store_value(r, i, 2);
        json_t *arr;

        if (m < 0 || m >= minutes)
            continue;           /* finished after now_ms: next time */
        if (curq == NULL || strcmp(curq, q) != 0) {
            cur = must(json_object());
            set(cur, "queue", str(q));
            for (int k = 0; k < 3; k++) {
                json_t *z = must(json_array());

                for (int j = 0; j < minutes; j++)
                    json_array_append_new(z, must(json_integer(0)));
                set(cur, k == 0 ? "succeeded" : k == 1 ? "dead" : "failed",
                    z);
            }
            json_array_append_new(series, cur);
            curq = q;
        }
        arr = json_object_get(cur, kind[0] == 's' ? "succeeded"
            : kind[0] == 'd' ? "dead" : "failed");
        json_array_set_new(arr, (size_t)m, must(json_integer(strtoll(
            wq_store_value(r, i, 3), NULL, 10))));
    }
    *out = must(json_pack("{s:s, s:i, s:o}", "since",
        wq_clock_format_rfc3339(since * 60000, when, sizeof when), "step_s",
        60, "series", series));
    wq_store_rows_free(r);
    return 0;
}

int
wq_ops_workers(wq_store *s, int all, int64_t lease_ms, json_t **out,
    char *err, size_t errlen)
{
    const char *p[2];
    char lease[24];
    struct pg_result *r;
    json_t *v;
    int rc;

    *out = NULL;
    snprintf(lease, sizeof lease, "%" PRId64, lease_ms);
    p[0] = all ? "true" : "false";
    p[1] = lease;
    if ((rc = query(s, WQ_ADMIN_SQL_WORKERS, p, &r, err, errlen)) != 0)
        return rc;
    v = must(json_array());
    for (int i = 0; i < wq_store_nrows(r); i++) {
        json_t *o = must(json_object()), *qs = must(json_array());
        char *list = xstrdup(wq_store_value(r, i, 3)), *save = NULL, *q;

        for (q = strtok_r(list, ",", &save); q != NULL;
            q = strtok_r(NULL, ",", &save))
            json_array_append_new(qs, str(q));
        free(list);
        set(o, "id", str(wq_store_value(r, i, 0)));
        set(o, "status", str(wq_store_value(r, i, 8)));
        set(o, "hostname", text_of(r, i, 1));
        set(o, "pid", int_of(r, i, 2));
        set(o, "queues", qs);
        set(o, "in_flight", int_of(r, i, 4));
        set(o, "started_at", time_of(r, i, 5));
        set(o, "heartbeat_at", time_of(r, i, 6));
        set(o, "heartbeat_age_s", int_of(r, i, 7));
        set(o, "heartbeat_age_seconds", int_of(r, i, 7));
        set(o, "version", text_of(r, i, 9));
        json_array_append_new(v, o);
    }
    wq_store_rows_free(r);
    *out = must(json_pack("{s:o}", "workers", v));
    return 0;
}

int
wq_ops_periodic(wq_store *s, const struct wq_config *cfg, int64_t now_ms,
    json_t **out, char *err, size_t errlen)
{
    const struct wq_config_periodic *pe = cfg->periodic.v;
    struct pg_result *r = NULL;
    struct wq_buf b = WQ_BUF_INIT;
    json_t *v = must(json_array());
    const char *p[1];
    int rc;

    *out = NULL;
    /* the names as a text[] literal: each quoted, \ and " escaped */
    put(&b, "{", 1);
    for (size_t i = 0; i < cfg->periodic.n; i++) {
        put(&b, i > 0 ? ",\"" : "\"", i > 0 ? 2 : 1);
        for (const char *c = pe[i].name; *c != '\0'; c++) {
            if (*c == '"' || *c == '\\')
                put(&b, "\\", 1);
            put(&b, c, 1);
        }
        put(&b, "\"", 1);
    }
    put(&b, "}", 2);
    p[0] = (const char *)b.data;
    rc = query(s, WQ_ADMIN_SQL_TICKS, p, &r, err, errlen);
    wq_buf_free(&b);
    if (rc != 0) {
        json_decref(v);
        return rc;
    }
    for (size_t i = 0; i < cfg->periodic.n; i++) {
        struct wq_cron c;
        char cerr[128], when[40];
        int64_t next;
        json_t *o = must(json_object()), *last = json_null();

        for (int k = 0; k < wq_store_nrows(r); k++)
            if (strcmp(wq_store_value(r, k, 0), pe[i].name) == 0) {
                json_decref(last);
                last = time_of(r, k, 1);
            }
        set(o, "name", str(pe[i].name));
        set(o, "schedule", str(pe[i].schedule));
        set(o, "queue", str(pe[i].queue));
        set(o, "type", str(pe[i].type));
        set(o, "priority", str(wq_priority_name(pe[i].priority)));
        set(o, "last_run_at", last);
        if (wq_cron_parse(pe[i].schedule, &c, cerr, sizeof cerr) == 0
            && wq_cron_next(&c, now_ms / 1000, &next) == 0)
            set(o, "next_run_at", json_string(wq_clock_format_rfc3339(
                next * 1000, when, sizeof when)));
        else
            set(o, "next_run_at", json_null());
        json_array_append_new(v, o);
    }
    wq_store_rows_free(r);
    *out = must(json_pack("{s:o}", "periodic", v));
    return 0;
}

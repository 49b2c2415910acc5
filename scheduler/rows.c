/*
 * rows.c - what the scheduler's rounds share: transactions around the
 * store's statements (store_sched.h), readers of binary results, array
 * parameters, task rows turned into envelopes, and the retry policy of a
 * queue.
 *
 * Results come back in binary format, so that payloads (bytea) arrive as
 * their bytes and uuids as 16 bytes, without unescaping.  Queries select
 * only simple types: uuid, text, bytea, int4, int8 (times as epoch
 * milliseconds computed in SQL).  libpq ends every binary field with a
 * NUL byte it does not count, so a text column is a C string as it is.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"
#include "log.h"
#include "sched.h"
#include "uuid.h"

int
wq_sched_rows_begin(wq_store *s, char *err, size_t errlen)
{
    return wq_store_exec(s, "BEGIN", err, errlen);
}

int
wq_sched_rows_commit(wq_store *s, char *err, size_t errlen)
{
    return wq_store_exec(s, "COMMIT", err, errlen);
}

void
wq_sched_rows_rollback(wq_store *s)
{
    wq_store_rollback(s);
}

int
wq_sched_rows_round_begin(wq_store *s, enum wq_sched_sql select, int batch,
    struct pg_result **out, char *err, size_t errlen)
{
    char limit[16];
    const char *params[1] = { limit };
    int rc;

    *out = NULL;
    snprintf(limit, sizeof limit, "%d", batch);
    if ((rc = wq_sched_rows_begin(s, err, errlen)) != 0)
        return rc;
    if ((rc = wq_store_sched_query(s, select, params, out, err,
        errlen)) != 0) {
        wq_sched_rows_rollback(s);
        return rc;
    }
    if (wq_store_nrows(*out) == 0) {
        wq_store_rows_free(*out);
        *out = NULL;
        return wq_sched_rows_commit(s, err, errlen);
    }
    return 0;
}

int
wq_sched_rows_round_settle(wq_store *s, enum wq_sched_sql settle,
    const struct wq_buf *ids, size_t nids, char *err, size_t errlen)
{
    const char *params[1] = { ids->data };
    char why[WQ_ERRLEN];
    struct pg_result *u = NULL;
    int rc = 0;

    if (nids > 0)
        rc = wq_store_sched_query(s, settle, params, &u, why, sizeof why);
    wq_store_rows_free(u);
    if (rc == 0)
        rc = wq_sched_rows_commit(s, why, sizeof why);
    if (rc != 0)
        wq_seterr(err, errlen, rc, "%s", why);
    return rc;
}

const char *
wq_sched_rows_text(const struct pg_result *r, int row, int col)
{
    if (wq_store_isnull(r, row, col))
        return NULL;
    return wq_store_value(r, row, col);
}

int32_t
wq_sched_rows_i32(const struct pg_result *r, int row, int col)
{
    uint32_t v;

    if (wq_store_isnull(r, row, col) || wq_store_length(r, row, col) != 4)
        return 0;
    memcpy(&v, wq_store_value(r, row, col), 4);
    return (int32_t)be32toh(v);
}

int64_t
wq_sched_rows_i64(const struct pg_result *r, int row, int col)
{
    uint64_t v;

    if (wq_store_isnull(r, row, col) || wq_store_length(r, row, col) != 8)
        return 0;
    memcpy(&v, wq_store_value(r, row, col), 8);
    return (int64_t)be64toh(v);
}

void
wq_sched_rows_uuid(const struct pg_result *r, int row, int col, char out[37])
{
    if (wq_store_isnull(r, row, col) || wq_store_length(r, row, col) != 16) {
        out[0] = '\0';
        return;
    }
    wq_uuid_format((const uint8_t *)wq_store_value(r, row, col), out);
}

static void
put(struct wq_buf *b, const void *p, size_t n)
{
    if (wq_buf_append(b, p, n) != 0)
        abort();    /* out of memory: the daemon's policy (alloc.h) */
}

void
wq_sched_rows_array_begin(struct wq_buf *b)
{
    wq_buf_reset(b);
    put(b, "{", 1);
}

void
wq_sched_rows_array_add(struct wq_buf *b, const char *elem)
{
    if (b->len > 1)
        put(b, ",", 1);
    put(b, "\"", 1);
    for (const char *p = elem; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            put(b, "\\", 1);
        put(b, p, 1);
    }
    put(b, "\"", 1);
}

void
wq_sched_rows_array_end(struct wq_buf *b)
{
    put(b, "}", 2);     /* with the NUL */
}

int
wq_sched_rows_envelope(const struct pg_result *r, int row, uint32_t attempt,
    const struct wq_header *extra, size_t nextra, struct wq_buf *out,
    char *err, size_t errlen)
{
    struct wq_envelope env;
    struct wq_header *h = NULL;
    json_t *root = NULL;
    json_error_t jerr;
    const char *hjson;
    int32_t max;
    int rc;

    memset(&env, 0, sizeof env);
    env.version = WQ_ENVELOPE_VERSION;
    if (wq_store_length(r, row, 0) != 16)
        return wq_seterr(err, errlen, WQ_EINVAL, "bad id column");
    memcpy(env.id, wq_store_value(r, row, 0), 16);
    env.queue = (char *)wq_sched_rows_text(r, row, 1);
    env.type = (char *)wq_sched_rows_text(r, row, 2);
    env.key = (char *)wq_sched_rows_text(r, row, 3);
    env.payload = (uint8_t *)wq_store_value(r, row, 4);
    env.payload_len = wq_store_length(r, row, 4);
    env.attempt = attempt;
    max = wq_sched_rows_i32(r, row, 7);
    env.max_attempts = max > 0 ? (uint32_t)max : 1;
    env.created_at_ms = wq_sched_rows_i64(r, row, 8);
    if (env.created_at_ms < 0)
        env.created_at_ms = 0;
    /* flow control (envelope version 2): the concurrency key travels on */
    env.concurrency_key = (char *)wq_sched_rows_text(r, row, 9);
    if (env.concurrency_key != NULL) {
        env.version = 0;        /* as the fields need */
        env.concurrency_limit = (uint32_t)wq_sched_rows_i32(r, row, 10);
    }

    hjson = wq_sched_rows_text(r, row, 5);
    if (hjson != NULL && strcmp(hjson, "{}") != 0) {
        const char *name;
        json_t *v;

        if ((root = json_loads(hjson, JSON_REJECT_DUPLICATES, &jerr)) == NULL
            || !json_is_object(root)) {
            rc = wq_seterr(err, errlen, WQ_EINVAL, "headers are not a JSON "
                "object: %s", root == NULL ? jerr.text : "not an object");
            goto out;
        }
        h = xcalloc(json_object_size(root) + nextra + 1, sizeof *h);
        json_object_foreach(root, name, v) {
            if (!json_is_string(v)) {
                rc = wq_seterr(err, errlen, WQ_EINVAL, "header '%.64s' is "
                    "not a string", name);
                goto out;
            }
            h[env.nheaders].name = (char *)name;
            h[env.nheaders].value = (char *)json_string_value(v);
            env.nheaders++;
        }
    } else if (nextra > 0) {
        h = xcalloc(nextra, sizeof *h);
    }
    for (size_t i = 0; i < nextra && env.nheaders < WQ_HEADERS_MAX; i++) {
        int dup = 0;

        for (size_t j = 0; j < env.nheaders && !dup; j++)
            dup = strcmp(h[j].name, extra[i].name) == 0;
        if (!dup)
            h[env.nheaders++] = extra[i];
    }
    env.headers = h;
    rc = wq_envelope_encode(&env, out, err, errlen);
out:
    free(h);
    if (root != NULL)
        json_decref(root);
    return rc;
}

void
wq_sched_rows_policy(const struct wq_config *cfg, const char *queue,
    struct wq_backoff *b, int *max_attempts)
{
    static const struct wq_backoff def = WQ_BACKOFF_DEFAULT;
    const struct wq_config_queue_policy *p = cfg->queue_policies.v, *use;

    use = NULL;
    for (size_t i = 0; i < cfg->queue_policies.n && use == NULL; i++)
        if (strcmp(p[i].name, queue) == 0)
            use = &p[i];
    for (size_t i = 0; i < cfg->queue_policies.n && use == NULL; i++)
        if (strcmp(p[i].name, "*") == 0)
            use = &p[i];
    if (use == NULL) {
        *b = def;
        if (max_attempts != NULL)
            *max_attempts = (int)def.max_attempts;
        return;
    }
    b->base_ms = use->backoff_base_ms;
    b->cap_ms = use->backoff_cap_ms;
    b->factor = use->backoff_factor;
    b->jitter = (enum wq_jitter)use->backoff_jitter;
    b->max_attempts = (uint32_t)use->max_attempts;
    if (max_attempts != NULL)
        *max_attempts = use->max_attempts;
}

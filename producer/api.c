/*
 * api.c - routes, validation and answers of the producer's HTTP API (see
 * api.h).
 *
 * A task request becomes one struct api_msg: the publisher's pub_msg, the
 * encoded envelope (the buffer the encoder grew, taken over), and the 202
 * body, prepared on the HTTP thread so that the publisher thread only has
 * to hand it to wq_http_complete() when the broker confirms.  A batch
 * request becomes one api_msg per immediate task plus one database job
 * for its delayed tasks, all pointing at a struct api_batch that answers
 * once its last task has a verdict (from either thread: an atomic count).
 * Validation is all-or-nothing: a batch with one bad task is refused
 * whole, and nothing of it is published.
 */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <jansson.h>

#include "alloc.h"
#include "api.h"
#include "api_ops.h"
#include "api_workflow.h"
#include "buf.h"
#include "clock.h"
#include "envelope.h"
#include "log.h"
#include "priority.h"
#include "store.h"
#include "store_flow.h"
#include "task_json.h"
#include "taskspec.h"
#include "textout.h"
#include "token.h"
#include "ui.h"
#include "uuid.h"

#define COMPONENT "api"
#define JSON_TYPE "application/json"

/* Why a request was refused: the label of the rejected counter. */
enum reason {
    R_INVALID_JSON, R_INVALID_TASK, R_INVALID_QUEUE, R_INVALID_ID,
    R_TOO_LARGE, R_UNAUTHORIZED, R_UNSUPPORTED_MEDIA_TYPE, R_RATE_LIMITED,
    R_NOT_FOUND, R_METHOD_NOT_ALLOWED, R_UNAVAILABLE, R_FORBIDDEN,
    R_AUTH_THROTTLED, R_INVALID_ARGUMENT, R_CONFLICT, R_COUNT,
};

static const char *const reason_name[R_COUNT] = {
    "invalid_json", "invalid_task", "invalid_queue", "invalid_id",
    "too_large", "unauthorized", "unsupported_media_type", "rate_limited",
    "not_found", "method_not_allowed", "unavailable", "forbidden",
    "auth_throttled", "invalid_argument", "conflict",
};

/*
 * Failed authentications, per client address: a token bucket of
 * AUTH_FAIL_BURST failures refilled at AUTH_FAIL_PER_S.  An address whose
 * bucket is empty is answered 429 (Retry-After) before its token is even
 * looked at, so guessing goes no faster than the refill.  The limit is by
 * address, never by token: a guesser cannot lock a token out, only its
 * own address (or the addresses behind the same proxy or NAT).  The
 * table is fixed (AUTH_SLOTS, AUTH_PROBE slots tried per address); a new
 * address takes the slot of the one seen longest ago.
 */
#define AUTH_SLOTS      1024
#define AUTH_PROBE      8
#define AUTH_FAIL_BURST 20.0
#define AUTH_FAIL_PER_S 1.0

struct auth_slot {
    char addr[48];
    double left;                /* failures still allowed */
    uint64_t at_ns;             /* of the last update */
    uint64_t warned_ns;         /* of the last warning, 0: none */
};

struct api {
    struct wq_config *cfg;
    struct publisher *pub;
    struct dbq *db;
    wq_metrics *metrics;
    atomic_int stopping;

    pthread_rwlock_t tokens_lock;
    wq_tokens *tokens;          /* NULL: no tokens_file, no auth */

    pthread_mutex_t bucket_lock;
    double tokens_left, rate;   /* tasks, not requests */
    uint64_t bucket_ns;

    pthread_mutex_t auth_lock;
    struct auth_slot *auth;     /* AUTH_SLOTS */

    char **allowed;             /* producer.queues, or what config names */
    size_t nallowed;
    pthread_mutex_t queues_lock;
    char **queues;              /* distinct queues taken, max_queues */
    size_t nqueues;

    wq_metric *rejected[R_COUNT];
    wq_metric *accepted_queued, *accepted_scheduled;

    struct api_ops *ops;        /* the operator routes (api_ops.c) */

    /* Confirmed messages waiting for their receipts (receipts_run). */
    pthread_mutex_t receipts_lock;
    struct api_msg **confirmed;
    size_t nconfirmed, confirmed_cap;
    int receipts_queued;        /* receipts_job is on the db queue */
    struct db_job receipts_job;
};

/* One request's outcome, per task of a batch. */
struct batch_result {
    char id[WQ_UUID_STRLEN];
    char *key;
    int status;                 /* 0, or the WQ_E* of the failure */
    int scheduled, duplicate, untracked;
    const char *state;          /* a static name; NULL: by `scheduled` */
    int64_t run_at_ms;
    char why[160];
};

struct api_batch {
    struct api *api;
    wq_http_req *req;
    atomic_size_t pending;
    size_t n;
    char queue[WQ_QUEUE_MAX + 1];
    struct batch_result *r;
};

/* An immediate task on its way to the broker. */
struct api_msg {
    struct pub_msg m;           /* first: the publisher hands it back */
    struct api *api;
    wq_http_req *req;           /* a single task's request, or NULL */
    struct api_batch *batch;    /* or the batch and its index */
    size_t index;
    char *ok_body;              /* the 202 answer, ready */
    size_t ok_len;
    char *body;                 /* the encoded envelope */
    char *key;
    char queue[WQ_QUEUE_MAX + 1];
    char band[WQ_BROKER_QUEUE_MAX + 1]; /* the broker queue (priority.h) */
    /* for the receipt (wq_store_accept) */
    uint8_t id[WQ_UUID_LEN];
    char type[WQ_TYPE_MAX + 1];
    int keyed;                  /* the client gave the key */
    int max_attempts;
    int64_t created_at_ms;
    int priority;               /* priority.h, for the receipt */
};

/* Delayed tasks on their way to PostgreSQL. */
struct api_insert {
    struct db_job job;          /* first */
    struct api *api;
    wq_http_req *req;           /* single task, or NULL for a batch */
    struct api_batch *batch;
    size_t n;
    size_t *index;              /* batch index of each envelope */
    struct wq_envelope *env;    /* owned copies */
    int *priority;              /* of each envelope (priority.h) */
};

/* A task with a unique window, on its way to PostgreSQL for the window
 * (flow control), then on to the broker or, delayed, the store. */
struct api_unique {
    struct db_job job;          /* first */
    struct api *api;
    wq_http_req *req;
    struct wq_envelope env;     /* owned copy, with the client's key */
    int64_t window_ms;
    int priority;               /* priority.h */
};

struct api_get {
    struct db_job job;
    struct api *api;
    wq_http_req *req;
    uint8_t id[WQ_UUID_LEN];
};

struct api_ready {
    struct db_job job;
    struct api *api;
    wq_http_req *req;
};

/* --- answers ------------------------------------------------------------- */

/* An error answer, counted under its reason. */
static int
refuse(struct api *a, enum reason r, int code, const char *detail,
    int *status, const char **ctype, char **body, size_t *len)
{
    wq_metric_inc(a->rejected[r], 1);
    *status = code;
    *ctype = JSON_TYPE;
    *body = wq_http_json_error(reason_name[r], detail, len);
    return 0;
}

/* The same, later, from another thread. */
static void
complete_error(struct api *a, wq_http_req *req, enum reason r, int code,
    const char *detail)
{
    size_t len;
    char *body;

    wq_metric_inc(a->rejected[r], 1);
    body = wq_http_json_error(reason_name[r], detail, &len);
    wq_http_complete(req, code, JSON_TYPE, body, len);
}

/* A json_t as an answer body; takes the reference. */
static char *
dump(json_t *j, size_t *len)
{
    char *s = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    if (s == NULL)
        abort();    /* out of memory: as xmalloc */
    *len = strlen(s);
    return s;
}

/* The status a failed publish or insert answers with. */
static int
failure_code(int status, enum reason *r)
{
    if (status == WQ_ETOOBIG) {
        *r = R_TOO_LARGE;
        return 413;
    }
    if (status == WQ_EINVAL) {
        *r = R_INVALID_TASK;
        return 400;
    }
    *r = R_UNAVAILABLE;
    return 503;
}

/*
 * The answer for one accepted task.  `state` is the task's state now
 * (NULL: scheduled or queued by `scheduled`); a duplicate names the task
 * an earlier submit of the same key made, in the state it has now.
 */
static json_t *
accepted_json(const char *id, const char *queue, const char *key,
    int scheduled, int64_t run_at_ms, int duplicate, const char *state,
    int untracked)
{
    char when[40];
    json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "queue", queue,
        "idempotency_key", key, "state", state != NULL ? state
        : scheduled ? "scheduled" : "queued");

    if (scheduled && run_at_ms != 0)
        json_object_set_new(j, "run_at", json_string(
            wq_clock_format_rfc3339(run_at_ms, when, sizeof when)));
    if (duplicate)
        json_object_set_new(j, "duplicate", json_true());
    if (untracked)
        json_object_set_new(j, "untracked", json_true());
    return j;
}

/* --- batches ------------------------------------------------------------- */

static void
batch_free(struct api_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->r[i].key);
    free(b->r);
    free(b);
}

/* Answers the batch: 202 when every task was accepted, else 503 (or the
 * failure's own code) with each task's outcome. */
static void
batch_answer(struct api_batch *b)
{
    struct api *a = b->api;
    json_t *j, *arr = json_array();
    size_t nbad = 0, first = 0, nsched = 0, len;
    enum reason r = R_UNAVAILABLE;
    char detail[256];
    int code = 202;

    for (size_t i = 0; i < b->n; i++) {
        struct batch_result *x = &b->r[i];

        if (x->status == 0) {
            json_array_append_new(arr, accepted_json(x->id, b->queue,
                x->key, x->scheduled, x->run_at_ms, x->duplicate, x->state,
                x->untracked));
            nsched += x->scheduled;
        } else {
            if (nbad++ == 0)
                first = i;
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "id",
                x->id, "error", "unavailable", "detail", x->why));
        }
    }
    if (nbad == 0) {
        wq_metric_inc(a->accepted_queued, b->n - nsched);
        wq_metric_inc(a->accepted_scheduled, nsched);
        j = json_pack("{s:o}", "tasks", arr);
    } else {
        wq_metric_inc(a->accepted_queued, b->n - nbad - nsched);
        wq_metric_inc(a->accepted_scheduled, nsched);
        code = failure_code(b->r[first].status, &r);
        wq_metric_inc(a->rejected[r], 1);
        snprintf(detail, sizeof detail, "%zu of %zu tasks not accepted; "
            "tasks[%zu]: %s", nbad, b->n, first, b->r[first].why);
        j = json_pack("{s:s, s:s, s:o}", "error", reason_name[r], "detail",
            detail, "tasks", arr);
    }
    {
        char *body = dump(j, &len);

        wq_http_complete(b->req, code, JSON_TYPE, body, len);
    }
    batch_free(b);
}

static void
batch_item_done(struct api_batch *b, size_t i, int status, const char *why)
{
    b->r[i].status = status;
    if (status != 0)
        snprintf(b->r[i].why, sizeof b->r[i].why, "%s",
            why != NULL ? why : wq_strerror(status));
    if (atomic_fetch_sub(&b->pending, 1) == 1)
        batch_answer(b);
}

/* --- immediate tasks: the publisher's callback --------------------------- */

static void
msg_free(struct api_msg *m)
{
    free(m->ok_body);
    free(m->body);
    free(m->key);
    free(m);
}

/*
 * Answers a confirmed message: 202 with the prepared body, or 200 for a
 * duplicate with the state its key's task has now.  untracked: its
 * receipt could not be recorded (the task runs; the id resolves once a
 * worker claims it).
 */
static void
msg_accepted(struct api_msg *m, int duplicate, const char *state,
    int untracked)
{
    struct api *a = m->api;
    char id[WQ_UUID_STRLEN];
    size_t len;
    char *body;

    if (m->batch != NULL) {
        struct batch_result *x = &m->batch->r[m->index];

        x->duplicate = duplicate;
        x->state = state;
        x->untracked = untracked;
        batch_item_done(m->batch, m->index, 0, NULL);
    } else if (!duplicate && !untracked) {
        wq_metric_inc(a->accepted_queued, 1);
        wq_http_complete(m->req, 202, JSON_TYPE, m->ok_body, m->ok_len);
        m->ok_body = NULL;
    } else {
        wq_metric_inc(a->accepted_queued, 1);
        wq_uuid_format(m->id, id);
        body = dump(accepted_json(id, m->queue, m->key, 0, 0, duplicate,
            state, untracked), &len);
        wq_http_complete(m->req, duplicate ? 200 : 202, JSON_TYPE, body,
            len);
    }
    msg_free(m);
}

/* Takes every confirmed message waiting for its receipt (*n of them). */
static struct api_msg **
receipts_take(struct api *a, size_t *n)
{
    struct api_msg **v;

    pthread_mutex_lock(&a->receipts_lock);
    v = a->confirmed;
    *n = a->nconfirmed;
    a->confirmed = NULL;
    a->nconfirmed = a->confirmed_cap = 0;
    a->receipts_queued = 0;
    pthread_mutex_unlock(&a->receipts_lock);
    return v;
}

/*
 * On the database thread: the receipts of every message confirmed since
 * the last run, in one statement, then their answers.  Messages that
 * the broker confirms meanwhile wait for the next run, which their
 * arrival queued.
 */
static int
receipts_run(struct db_job *job, wq_store *s, const char *why)
{
    struct api *a = (struct api *)(void *)((char *)job
        - offsetof(struct api, receipts_job));
    struct api_msg **v;
    struct wq_accept *acc;
    char err[WQ_ERRLEN];
    size_t n;
    int rc = WQ_ESTORE;

    v = receipts_take(a, &n);

    acc = xcalloc(n > 0 ? n : 1, sizeof *acc);
    for (size_t i = 0; i < n; i++) {
        memcpy(acc[i].id, v[i]->id, sizeof acc[i].id);
        acc[i].queue = v[i]->queue;
        acc[i].type = v[i]->type;
        acc[i].key = v[i]->keyed ? v[i]->key : NULL;
        acc[i].max_attempts = v[i]->max_attempts;
        acc[i].created_at_ms = v[i]->created_at_ms;
        acc[i].priority = v[i]->priority;
    }
    if (s == NULL)
        wq_log_warn(COMPONENT, "%zu task(s) accepted without a receipt "
            "(their ids resolve once claimed): PostgreSQL unavailable: %s",
            n, why);
    else {
        rc = wq_store_accept(s, acc, n, err, sizeof err);
        if (rc == WQ_ESTORE && wq_store_ping(s, NULL, 0) == 0)
            /* a connection lost and made again: receipts are idempotent */
            rc = wq_store_accept(s, acc, n, err, sizeof err);
        if (rc != 0)
            wq_log_warn(COMPONENT, "%zu task(s) accepted without a receipt "
                "(their ids resolve once claimed): %s", n, err);
    }
    for (size_t i = 0; i < n; i++)
        msg_accepted(v[i], rc == 0 && acc[i].duplicate, rc == 0
            ? wq_task_state_name(acc[i].state) : "queued", rc != 0);
    free(acc);
    free(v);
    return rc == WQ_ESTORE && s != NULL ? WQ_ESTORE : 0;
}

/*
 * On the publisher thread: keeps a confirmed message for its receipt,
 * sent with the rest of its round (api_receipts_round).
 */
static void
receipt_queue(struct api *a, struct api_msg *m)
{
    pthread_mutex_lock(&a->receipts_lock);
    if (a->nconfirmed == a->confirmed_cap) {
        a->confirmed_cap = a->confirmed_cap ? a->confirmed_cap * 2 : 64;
        a->confirmed = xreallocarray(a->confirmed, a->confirmed_cap,
            sizeof *a->confirmed);
    }
    a->confirmed[a->nconfirmed++] = m;
    pthread_mutex_unlock(&a->receipts_lock);
}

/*
 * On the publisher thread, after a round of verdicts: the receipts job
 * for what was confirmed, unless it is on the database queue already
 * (then it takes them too).  A burst of confirmations is one statement,
 * where a job per confirmation made PostgreSQL run a statement for every
 * one or two tasks (25 us of its CPU a task under wrk).  The job is
 * submitted outside the lock (a database thread that runs it at once
 * must be able to take the lock).  When the database thread takes no
 * more jobs (stopping), what waits is answered untracked here.
 */
void
api_receipts_round(void *user)
{
    struct api *a = user;
    struct api_msg **v;
    size_t n;
    int submit;

    pthread_mutex_lock(&a->receipts_lock);
    if ((submit = a->nconfirmed > 0 && !a->receipts_queued))
        a->receipts_queued = 1;
    pthread_mutex_unlock(&a->receipts_lock);
    if (!submit || db_submit(a->db, &a->receipts_job) == 0)
        return;

    v = receipts_take(a, &n);
    for (size_t i = 0; i < n; i++)
        msg_accepted(v[i], 0, NULL, 1);
    free(v);
}

/* On the publisher thread: the broker's verdict answers the request,
 * after the receipt when the verdict is a confirmation. */
static void
msg_done(struct pub_msg *pm, int status, const char *why)
{
    struct api_msg *m = (struct api_msg *)(void *)pm;
    struct api *a = m->api;
    enum reason r;
    int code;

    if (status == 0) {
        if (a->cfg->producer.receipts)
            receipt_queue(a, m);
        else
            msg_accepted(m, 0, NULL, 0);
        return;
    }
    if (m->batch != NULL) {
        batch_item_done(m->batch, m->index, status, why);
    } else {
        code = failure_code(status, &r);
        complete_error(a, m->req, r, code, why);
    }
    msg_free(m);
}

/*
 * Encodes `env` into a new message for the publisher.  Returns it, or
 * NULL with err set (the envelope was validated already, so only a size
 * beyond the limits can fail here).
 */
static struct api_msg *
msg_new(struct api *a, const struct wq_envelope *env, int priority,
    char *err, size_t errlen, int *rc)
{
    struct wq_buf buf = WQ_BUF_INIT;
    struct api_msg *m;

    if ((*rc = wq_envelope_encode(env, &buf, err, errlen)) != 0) {
        wq_buf_free(&buf);
        return NULL;
    }
    m = xcalloc(1, sizeof *m);
    m->api = a;
    m->body = buf.data;             /* taken over */
    m->key = xstrdup(env->key);
    snprintf(m->queue, sizeof m->queue, "%s", env->queue);
    snprintf(m->type, sizeof m->type, "%s", env->type);
    memcpy(m->id, env->id, sizeof m->id);
    {
        char idtext[WQ_UUID_STRLEN];

        wq_uuid_format(env->id, idtext);
        m->keyed = strcmp(idtext, env->key) != 0;
    }
    m->max_attempts = (int)env->max_attempts;
    m->created_at_ms = env->created_at_ms;
    m->priority = priority;
    /* the priority is the band the message goes to */
    m->m.queue = wq_priority_band(m->band, sizeof m->band, env->queue,
        priority);
    m->m.key = m->key;
    m->m.keylen = strlen(m->key);
    m->m.body = m->body;
    m->m.len = buf.len;
    m->m.done = msg_done;
    return m;
}

/* --- delayed tasks: the database job ------------------------------------- */

static void
insert_free(struct api_insert *j)
{
    for (size_t i = 0; i < j->n; i++)
        wq_envelope_free(&j->env[i]);
    free(j->env);
    free(j->index);
    free(j->priority);
    free(j);
}

/* Stores one delayed task; fills the result. */
static int
insert_one(wq_store *s, const struct wq_envelope *env, int priority,
    struct batch_result *res, char *err, size_t errlen)
{
    struct wq_task_new t;
    struct wq_task_row row;
    char *hjson = NULL;
    int inserted = 0, rc;

    /* NULL only when out of memory (the envelope was validated, so every
     * header is UTF-8): abort as xmalloc does (alloc.h) rather than store
     * the task without its headers */
    if (env->nheaders > 0 && (hjson = wq_taskspec_headers_json(env)) == NULL)
        abort();
    memset(&t, 0, sizeof t);
    memcpy(t.id, env->id, sizeof t.id);
    t.queue = env->queue;
    t.type = env->type;
    t.idempotency_key = env->key;
    t.payload = env->payload;
    t.payload_len = env->payload_len;
    t.headers_json = hjson;
    t.state = WQ_TASK_SCHEDULED;
    t.max_attempts = (int)env->max_attempts;
    t.run_at_ms = env->run_at_ms;
    t.created_at_ms = env->created_at_ms;
    t.priority = priority;
    /* flow control: the scheduler publishes it with its concurrency key */
    rc = 0;
    if (env->concurrency_key != NULL)
        rc = wq_store_flow_remember(s, env->queue, env->key,
            env->concurrency_key, (int)env->concurrency_limit, err, errlen);
    if (rc == 0)
        rc = wq_store_task_insert(s, &t, &inserted, err, errlen);
    free(hjson);
    if (rc != 0)
        return rc;
    wq_uuid_format(env->id, res->id);
    res->scheduled = 1;
    res->run_at_ms = env->run_at_ms;
    if (inserted)
        return 0;
    /* the key exists: answer with that task, as an idempotent retry */
    memset(&row, 0, sizeof row);
    if ((rc = wq_store_task_get_by_key(s, env->queue, env->key, &row, err,
        errlen)) != 0)
        return rc;
    if (memcmp(row.id, env->id, sizeof row.id) != 0
        || row.created_at_ms != env->created_at_ms
        || row.run_at_ms != env->run_at_ms) {
        wq_uuid_format(row.id, res->id);
        res->duplicate = 1;
        res->run_at_ms = row.run_at_ms;
    }
    res->state = wq_task_state_name(row.state);
    wq_task_row_free(&row);
    return 0;
}

/*
 * Stores every envelope of the job, several in one transaction (one
 * commit for the lot): all or none.  Returns 0 or the first failure.
 */
static int
insert_all(struct api_insert *j, wq_store *s, struct batch_result *res,
    char *err, size_t errlen)
{
    int rc = 0, txn = j->n > 1;

    memset(res, 0, j->n * sizeof *res);
    if (txn && (rc = wq_store_exec(s, "BEGIN", err, errlen)) != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < j->n; i++)
        rc = insert_one(s, &j->env[i], j->priority[i], &res[i], err,
            errlen);
    if (txn && rc == 0)
        rc = wq_store_exec(s, "COMMIT", err, errlen);
    else if (txn)
        (void)wq_store_exec(s, "ROLLBACK", NULL, 0);
    return rc;
}

/* On the database thread: store, then answer (or count into the batch). */
static int
insert_run(struct db_job *job, wq_store *s, const char *why)
{
    struct api_insert *j = (struct api_insert *)(void *)job;
    struct batch_result *res;
    char err[WQ_ERRLEN] = "";
    size_t len;
    enum reason r;
    int rc;

    res = xcalloc(j->n, sizeof *res);
    if (s == NULL) {
        rc = WQ_ESTORE;
        snprintf(err, sizeof err, "PostgreSQL unavailable: %s", why);
    } else {
        rc = insert_all(j, s, res, err, sizeof err);
        /* a connection lost and made again: the inserts are idempotent
         * (same ids under the same keys), so do them once more */
        if (rc == WQ_ESTORE && wq_store_ping(s, NULL, 0) == 0)
            rc = insert_all(j, s, res, err, sizeof err);
    }
    if (rc != 0 && rc != WQ_EINVAL && rc != WQ_ETOOBIG)
        rc = WQ_ESTORE;

    if (j->batch != NULL) {
        for (size_t i = 0; i < j->n; i++) {
            struct batch_result *x = &j->batch->r[j->index[i]];

            if (rc == 0) {
                memcpy(x->id, res[i].id, sizeof x->id);
                x->scheduled = 1;
                x->duplicate = res[i].duplicate;
                x->state = res[i].state;
                x->run_at_ms = res[i].run_at_ms;
            }
            batch_item_done(j->batch, j->index[i], rc, err);
        }
    } else if (rc == 0) {
        char *body = dump(accepted_json(res[0].id, j->env[0].queue,
            j->env[0].key, 1, res[0].run_at_ms, res[0].duplicate,
            res[0].state, 0), &len);

        wq_metric_inc(j->api->accepted_scheduled, 1);
        wq_http_complete(j->req, res[0].duplicate ? 200 : 202, JSON_TYPE,
            body, len);
    } else {
        int code = failure_code(rc, &r);

        complete_error(j->api, j->req, r, code, err);
    }
    free(res);
    insert_free(j);
    return rc;
}

/* --- unique windows: the database job ------------------------------------ */

/*
 * On the database thread: the window of the task's key (workq.
 * unique_windows), then the task under the window's key, as post_task
 * would have sent it: to the broker, or stored when delayed.
 */
static int
unique_run(struct db_job *job, wq_store *s, const char *why)
{
    struct api_unique *j = (struct api_unique *)(void *)job;
    char err[WQ_ERRLEN] = "", ukey[WQ_KEY_MAX + 1], idtext[WQ_UUID_STRLEN];
    struct wq_envelope e;
    struct api_insert *ins;
    struct api_msg *m;
    int64_t start = 0;
    enum reason r;
    int rc;

    if (s == NULL) {
        rc = WQ_ESTORE;
        snprintf(err, sizeof err, "PostgreSQL unavailable: %s", why);
    } else {
        rc = wq_store_unique_window(s, j->env.queue, j->env.key,
            j->window_ms, &start, err, sizeof err);
        if (rc == WQ_ESTORE && wq_store_ping(s, NULL, 0) == 0)
            rc = wq_store_unique_window(s, j->env.queue, j->env.key,
                j->window_ms, &start, err, sizeof err);
    }
    if (rc == 0)
        rc = wq_taskspec_unique_key(j->env.key, start, ukey, sizeof ukey,
            err, sizeof err);
    if (rc == 0) {
        e = j->env;             /* borrows j->env's memory */
        e.mem = NULL;
        e.key = ukey;
        (void)wq_uuid_for_key(e.queue, ukey, e.id);
        wq_uuid_format(e.id, idtext);
        if (e.run_at_ms > 0) {
            ins = xcalloc(1, sizeof *ins);
            ins->job.run = insert_run;
            ins->api = j->api;
            ins->req = j->req;
            ins->n = 1;
            ins->env = xcalloc(1, sizeof *ins->env);
            ins->priority = xcalloc(1, sizeof *ins->priority);
            ins->priority[0] = j->priority;
            if ((rc = wq_envelope_copy(&ins->env[0], &e, err,
                sizeof err)) != 0) {
                insert_free(ins);
            } else {
                wq_envelope_free(&j->env);
                free(j);
                return insert_run(&ins->job, s, why);
            }
        } else if ((m = msg_new(j->api, &e, j->priority, err, sizeof err,
            &rc)) != NULL) {
            m->req = j->req;
            m->ok_body = dump(accepted_json(idtext, e.queue, e.key, 0, 0, 0,
                NULL, 0), &m->ok_len);
            if ((rc = pub_submit(j->api->pub, &m->m, 1)) != 0) {
                msg_free(m);
                snprintf(err, sizeof err, "%s", rc == WQ_ECLOSED
                    ? "the producer is stopping"
                    : "the broker is unavailable");
                rc = WQ_ESTORE;     /* answered 503, as post_task does */
            }
        }
    }
    if (rc != 0) {
        int code = failure_code(rc, &r);

        complete_error(j->api, j->req, r, code, err);
    }
    wq_envelope_free(&j->env);
    free(j);
    return rc;
}

/* --- reading a task ------------------------------------------------------ */

static int
get_run(struct db_job *job, wq_store *s, const char *why)
{
    struct api_get *j = (struct api_get *)(void *)job;
    struct wq_task_attempt *att = NULL;
    struct wq_task_row row;
    size_t natt = 0;
    char err[WQ_ERRLEN], detail[WQ_ERRLEN + 64];
    size_t len;
    int rc;

    if (s == NULL) {
        api_complete_unavailable(j->api, j->req, why);
        free(j);
        return 0;
    }
    memset(&row, 0, sizeof row);
    rc = wq_store_task_get(s, j->id, &row, err, sizeof err);
    if (rc == 0)
        rc = wq_store_task_attempts(s, row.id, &att, &natt, err, sizeof err);
    if (rc == 0)
        rc = wq_store_task_progress(s, &row, err, sizeof err);
    if (rc == 0) {
        /* dump aborts on a NULL (out of memory), as xmalloc does */
        char *body = dump(wq_task_json(&row, att, natt), &len);

        wq_http_complete(j->req, 200, JSON_TYPE, body, len);
    } else if (rc == WQ_ENOENT) {
        complete_error(j->api, j->req, R_NOT_FOUND, 404, "no such task "
            "(a task sent straight to the broker has a row once a worker "
            "claims it)");
    } else {
        snprintf(detail, sizeof detail, "PostgreSQL: %s", err);
        complete_error(j->api, j->req, R_UNAVAILABLE, 503, detail);
    }
    wq_task_attempts_free(att, natt);
    wq_task_row_free(&row);
    free(j);
    return rc;
}

/* --- readiness ----------------------------------------------------------- */

static int
ready_run(struct db_job *job, wq_store *s, const char *why)
{
    struct api_ready *j = (struct api_ready *)(void *)job;
    struct api *a = j->api;
    char err[WQ_ERRLEN], detail[WQ_ERRLEN + 64];
    int pg = s != NULL && wq_store_ping(s, err, sizeof err) == 0;
    int broker = pub_broker_up(a->pub);
    int stopping = atomic_load(&a->stopping);
    size_t len;
    json_t *o;

    if (s != NULL && !pg)
        why = err;
    if (pg && broker && !stopping) {
        o = json_pack("{s:s, s:s, s:s}", "status", "ready", "broker", "up",
            "postgres", "up");
        char *body = dump(o, &len);

        wq_http_complete(j->req, 200, JSON_TYPE, body, len);
    } else {
        snprintf(detail, sizeof detail, "%s", stopping ? "stopping"
            : !broker ? "the broker is unavailable" : "");
        if (!pg && !stopping)
            snprintf(detail + strlen(detail), sizeof detail - strlen(detail),
                "%sPostgreSQL unavailable: %s", broker ? "" : "; ", why);
        o = json_pack("{s:s, s:s, s:s, s:s}", "error", "not_ready",
            "detail", detail, "broker", broker ? "up" : "down", "postgres",
            pg ? "up" : "down");
        char *body = dump(o, &len);

        wq_http_complete(j->req, 503, JSON_TYPE, body, len);
    }
    free(j);
    return pg ? 0 : WQ_ESTORE;
}

/* --- checks -------------------------------------------------------------- */

/*
 * The scopes of the request's bearer token (token.h): every scope
 * without a tokens file, 0 for a missing or unknown token.  The token
 * is hashed and compared with every entry in constant time; it is never
 * logged or copied.
 */
static unsigned
scopes_of(struct api *a, const char *header)
{
    const char *tok;
    unsigned scopes = 0;

    pthread_rwlock_rdlock(&a->tokens_lock);
    if (a->tokens == NULL) {
        pthread_rwlock_unlock(&a->tokens_lock);
        return WQ_TOKEN_SCOPES_ALL;
    }
    if (header != NULL && strncasecmp(header, "Bearer ", 7) == 0) {
        for (tok = header + 7; *tok == ' '; tok++)
            ;
        scopes = wq_tokens_check(a->tokens, tok, strlen(tok));
    }
    pthread_rwlock_unlock(&a->tokens_lock);
    return scopes;
}

/* 403 unless the token has `need`; 1 if it answered. */
static int
lacks_scope(struct api *a, unsigned scopes, unsigned need, int *status,
    const char **ctype, char **body, size_t *len)
{
    char detail[96], names[32];

    if ((scopes & need) == need)
        return 0;
    snprintf(detail, sizeof detail, "the token lacks the scope '%s' this "
        "route needs", wq_token_scopes_text(need, names, sizeof names));
    refuse(a, R_FORBIDDEN, 403, detail, status, ctype, body, len);
    return 1;
}

/* --- for api_ops.c ------------------------------------------------------ */

static enum reason
reason_of(const char *name)
{
    for (int r = 0; r < R_COUNT; r++)
        if (strcmp(reason_name[r], name) == 0)
            return (enum reason)r;
    abort();                    /* a bug: a reason api.c does not count */
}

int
api_refuse(struct api *a, const char *reason, int code, const char *detail,
    int *status, const char **ctype, char **body, size_t *len)
{
    return refuse(a, reason_of(reason), code, detail, status, ctype, body,
        len);
}

void
api_complete_error(struct api *a, wq_http_req *req, const char *reason,
    int code, const char *detail)
{
    complete_error(a, req, reason_of(reason), code, detail);
}

void
api_complete_store_error(struct api *a, wq_http_req *req, int rc,
    const char *err)
{
    char detail[WQ_ERRLEN + 16];

    if (rc == WQ_ENOENT) {
        complete_error(a, req, reason_of("not_found"), 404, err);
    } else if (rc == WQ_EINVAL) {
        complete_error(a, req, reason_of("invalid_argument"), 400, err);
    } else if (rc == WQ_ECLOSED) {
        complete_error(a, req, reason_of("conflict"), 409, err);
    } else {
        snprintf(detail, sizeof detail, "PostgreSQL: %s", err);
        complete_error(a, req, reason_of("unavailable"), 503, detail);
    }
}

void
api_complete_unavailable(struct api *a, wq_http_req *req, const char *why)
{
    char detail[WQ_ERRLEN + 64];

    snprintf(detail, sizeof detail, "PostgreSQL unavailable: %s", why);
    complete_error(a, req, R_UNAVAILABLE, 503, detail);
}

int
api_lacks_scope(struct api *a, unsigned scopes, unsigned need, int *status,
    const char **ctype, char **body, size_t *len)
{
    return lacks_scope(a, scopes, need, status, ctype, body, len);
}

/*
 * Token bucket of producer.rate_limit tasks a second, one second's worth
 * deep; a batch costs its number of tasks.  A request passes when the
 * bucket holds its cost, or is full for a batch larger than the bucket,
 * which then goes into debt (paid back before anything else passes).
 * 1 if the request may pass; else 0 and *wait_s, the seconds until it
 * could.
 */
static int
rate_ok(struct api *a, size_t cost, unsigned *wait_s)
{
    double need;
    uint64_t now;
    int ok;

    *wait_s = 0;
    if (a->rate <= 0)
        return 1;
    need = (double)cost < a->rate ? (double)cost : a->rate;
    if (need < 1)
        need = 1;
    pthread_mutex_lock(&a->bucket_lock);
    now = wq_clock_mono_ns();
    a->tokens_left += (double)(now - a->bucket_ns) * a->rate / 1e9;
    if (a->tokens_left > a->rate)
        a->tokens_left = a->rate < 1 ? 1 : a->rate;
    a->bucket_ns = now;
    if ((ok = a->tokens_left >= need))
        a->tokens_left -= (double)cost;
    else
        *wait_s = (unsigned)((need - a->tokens_left) / a->rate) + 1;
    pthread_mutex_unlock(&a->bucket_lock);
    return ok;
}

/* 429 for producer.rate_limit; 1 (answered) unless `cost` tasks may pass. */
static int
over_rate(struct api *a, const struct wq_http_request *req, size_t cost,
    int *status, const char **ctype, char **body, size_t *len)
{
    unsigned wait_s;

    if (rate_ok(a, cost, &wait_s))
        return 0;
    wq_http_retry_after(req->handle, wait_s);
    refuse(a, R_RATE_LIMITED, 429, "over producer.rate_limit tasks per "
        "second; retry later", status, ctype, body, len);
    return 1;
}

/* The slot of `addr`, refilled to now; a new one (the oldest of its
 * probe window taken over) when `create`, else NULL when absent.  Under
 * auth_lock. */
static struct auth_slot *
auth_slot(struct api *a, const char *addr, int create, uint64_t now)
{
    uint32_t h = 2166136261u;
    struct auth_slot *s, *oldest = NULL;

    if (addr == NULL)
        addr = "";      /* not from a socket (http.h says ""): one slot */
    for (const char *p = addr; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (unsigned i = 0; i < AUTH_PROBE; i++) {
        s = &a->auth[(h + i) % AUTH_SLOTS];
        if (strcmp(s->addr, addr) == 0) {
            s->left += (double)(now - s->at_ns) * AUTH_FAIL_PER_S / 1e9;
            if (s->left > AUTH_FAIL_BURST)
                s->left = AUTH_FAIL_BURST;
            s->at_ns = now;
            return s;
        }
        if (oldest == NULL || s->addr[0] == '\0'
            || (oldest->addr[0] != '\0' && s->at_ns < oldest->at_ns))
            oldest = s;
    }
    if (!create)
        return NULL;
    snprintf(oldest->addr, sizeof oldest->addr, "%s", addr);
    oldest->left = AUTH_FAIL_BURST;
    oldest->at_ns = now;
    oldest->warned_ns = 0;
    return oldest;
}

/* Seconds an address must wait before its token is looked at; 0: go. */
static unsigned
auth_throttled(struct api *a, const char *addr)
{
    struct auth_slot *s;
    unsigned wait_s = 0;

    pthread_mutex_lock(&a->auth_lock);
    s = auth_slot(a, addr, 0, wq_clock_mono_ns());
    if (s != NULL && s->left < 1)
        wait_s = (unsigned)((1 - s->left) / AUTH_FAIL_PER_S) + 1;
    pthread_mutex_unlock(&a->auth_lock);
    return wait_s;
}

/* Counts a failed authentication from addr; logs when it becomes
 * throttled, at most once a minute per address. */
static void
auth_failed(struct api *a, const char *addr)
{
    uint64_t now = wq_clock_mono_ns();
    struct auth_slot *s;
    int throttled = 0;

    pthread_mutex_lock(&a->auth_lock);
    s = auth_slot(a, addr, 1, now);
    s->left -= 1;
    if (s->left < 1 && (s->warned_ns == 0
        || now - s->warned_ns >= 60 * 1000000000ull)) {
        s->warned_ns = now;
        throttled = 1;
    }
    pthread_mutex_unlock(&a->auth_lock);
    if (throttled)
        wq_log_warn(COMPONENT, "%s: %.0f failed authentications in a row: "
            "its requests are answered 429 until it slows down to %.0f a "
            "second", addr, AUTH_FAIL_BURST, AUTH_FAIL_PER_S);
}

static int
is_json(const char *ctype)
{
    size_t n = strlen(JSON_TYPE);

    if (ctype == NULL || strncasecmp(ctype, JSON_TYPE, n) != 0)
        return 0;
    return ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ';
}

/* --- task requests ------------------------------------------------------- */

/*
 * The queues a submit may name: producer.queues when set, else every
 * queue the configuration names (worker.queues, queue policies but "*",
 * periodic tasks).  Called once, at api_new.
 */
static void
allowed_init(struct api *a)
{
    const struct wq_config *c = a->cfg;
    const struct wq_config_queue_policy *qp = c->queue_policies.v;
    const struct wq_config_periodic *pe = c->periodic.v;
    size_t max = c->producer.queues.n + c->worker.queues.n
        + c->queue_policies.n + c->periodic.n;

    a->allowed = xcalloc(max + 1, sizeof *a->allowed);
    if (c->producer.queues.n > 0) {
        for (size_t i = 0; i < c->producer.queues.n; i++)
            a->allowed[a->nallowed++] = xstrdup(c->producer.queues.v[i]);
        return;
    }
    for (size_t i = 0; i < c->worker.queues.n; i++)
        a->allowed[a->nallowed++] = xstrdup(c->worker.queues.v[i]);
    for (size_t i = 0; i < c->queue_policies.n; i++)
        if (strcmp(qp[i].name, "*") != 0)
            a->allowed[a->nallowed++] = xstrdup(qp[i].name);
    for (size_t i = 0; i < c->periodic.n; i++)
        a->allowed[a->nallowed++] = xstrdup(pe[i].queue);
}

/*
 * 403 unless `queue` is allowed (producer.queues) and, when new to this
 * process, within producer.max_queues; 1 if it answered.  A queue once
 * taken stays taken until the producer restarts.
 */
static int
queue_refused(struct api *a, const char *queue, int *status,
    const char **ctype, char **body, size_t *len)
{
    char detail[WQ_QUEUE_MAX + 160];
    size_t i;
    int ok = 0;

    for (i = 0; i < a->nallowed && !ok; i++)
        ok = fnmatch(a->allowed[i], queue, 0) == 0;
    if (!ok) {
        snprintf(detail, sizeof detail, "queue '%s' is not one of "
            "producer.queues", queue);
        refuse(a, R_FORBIDDEN, 403, detail, status, ctype, body, len);
        return 1;
    }
    pthread_mutex_lock(&a->queues_lock);
    for (i = 0; i < a->nqueues; i++)
        if (strcmp(a->queues[i], queue) == 0)
            break;
    if (i == a->nqueues && a->nqueues < (size_t)a->cfg->producer.max_queues) {
        if (a->queues == NULL)
            a->queues = xcalloc((size_t)a->cfg->producer.max_queues,
                sizeof *a->queues);
        a->queues[a->nqueues++] = xstrdup(queue);
    } else if (i == a->nqueues) {
        ok = 0;
    }
    pthread_mutex_unlock(&a->queues_lock);
    if (!ok) {
        snprintf(detail, sizeof detail, "queue '%s' would be queue %d of "
            "this producer, over producer.max_queues", queue,
            a->cfg->producer.max_queues + 1);
        wq_log_warn(COMPONENT, "refused a task for a new queue: %s", detail);
        refuse(a, R_FORBIDDEN, 403, detail, status, ctype, body, len);
        return 1;
    }
    return 0;
}

/* What every task route checks first; 1 if it answered already.  The
 * rate limit takes `cost` tasks (0: checked later, by the batch). */
static int
task_checks(struct api *a, const struct wq_http_request *req,
    const char *queue, size_t cost, int *status, const char **ctype,
    char **body, size_t *len)
{
    char err[WQ_ERRLEN];

    if (cost > 0 && over_rate(a, req, cost, status, ctype, body, len))
        return 1;
    if (atomic_load(&a->stopping)) {
        refuse(a, R_UNAVAILABLE, 503, "the producer is stopping", status,
            ctype, body, len);
        return 1;
    }
    if (!is_json(req->content_type)) {
        refuse(a, R_UNSUPPORTED_MEDIA_TYPE, 415, "the body must be "
            "application/json", status, ctype, body, len);
        return 1;
    }
    if (wq_queue_name_valid(queue, err, sizeof err) != 0) {
        refuse(a, R_INVALID_QUEUE, 400, err, status, ctype, body, len);
        return 1;
    }
    return queue_refused(a, queue, status, ctype, body, len);
}

/* The reason and status of a task that failed validation. */
static int
invalid_code(int rc, enum reason *r)
{
    if (rc == WQ_EDECODE) {
        *r = R_INVALID_JSON;
        return 400;
    }
    if (rc == WQ_ETOOBIG) {
        *r = R_TOO_LARGE;
        return 413;
    }
    *r = R_INVALID_TASK;
    return 400;
}

/* The task's "priority", normal when it does not say. */
static int
spec_priority(const struct wq_taskspec *spec)
{
    return spec->priority >= 0 ? spec->priority : WQ_PRIORITY_NORMAL;
}

/*
 * Validates one parsed task into `env` (fields borrowed from `spec`):
 * the Idempotency-Key header, the queue policy, the envelope's rules.
 * A task without a key submitted for now takes its id from `seq`, when
 * given (a batch: its receipts are then a range).
 */
static int
task_prepare(struct api *a, struct wq_taskspec *spec, const char *hdr_key,
    struct wq_uuid_seq *seq, struct wq_envelope *env,
    struct wq_header *hdrs, char idtext[WQ_UUID_STRLEN], int64_t *run_at,
    char *err, size_t errlen)
{
    int rc;

    if (hdr_key != NULL) {
        if (spec->task.idempotency_key == NULL)
            spec->task.idempotency_key = hdr_key;
        else if (strcmp(spec->task.idempotency_key, hdr_key) != 0)
            return wq_seterr(err, errlen, WQ_EINVAL, "the Idempotency-Key "
                "header and the body's idempotency_key differ");
    }
    if (spec->task.max_attempts == 0)
        spec->task.max_attempts = wq_taskspec_max_attempts(a->cfg,
            spec->task.queue);
    if (spec->flow.unique_for_ms > 0 && spec->task.idempotency_key == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "field 'unique_for': a "
            "unique window needs an idempotency key");
    rc = wq_taskspec_envelope(&spec->task, seq, env, hdrs, idtext, run_at,
        err, errlen);
    if (rc == 0)
        rc = wq_taskspec_flow_apply(&spec->flow, env, err, errlen);
    return rc;
}

static int
post_task(struct api *a, const struct wq_http_request *req,
    const char *queue, int *status, const char **ctype, char **body,
    size_t *len)
{
    struct wq_taskspec_defaults def = { .queue = queue };
    struct wq_header hdrs[WQ_HEADERS_MAX];
    struct wq_taskspec spec;
    struct wq_envelope env;
    struct api_insert *ins;
    struct api_msg *m;
    char err[WQ_ERRLEN], idtext[WQ_UUID_STRLEN];
    int64_t run_at;
    enum reason r;
    int rc, code;

    if (task_checks(a, req, queue, 1, status, ctype, body, len))
        return 0;
    if ((rc = wq_taskspec_parse(req->body, req->body_len, &def, &spec, err,
        sizeof err)) != 0) {
        code = invalid_code(rc, &r);
        return refuse(a, r, code, err, status, ctype, body, len);
    }
    if ((rc = task_prepare(a, &spec, req->idempotency_key, NULL, &env, hdrs,
        idtext, &run_at, err, sizeof err)) != 0) {
        wq_taskspec_free(&spec);
        code = invalid_code(rc, &r);
        return refuse(a, r, code, err, status, ctype, body, len);
    }

    if (spec.flow.unique_for_ms > 0) {
        struct api_unique *u = xcalloc(1, sizeof *u);

        u->job.run = unique_run;
        u->api = a;
        u->req = req->handle;
        u->window_ms = spec.flow.unique_for_ms;
        u->priority = spec_priority(&spec);
        rc = wq_envelope_copy(&u->env, &env, err, sizeof err);
        wq_taskspec_free(&spec);
        if (rc != 0 || db_submit(a->db, &u->job) != 0) {
            wq_envelope_free(&u->env);
            free(u);
            return refuse(a, R_UNAVAILABLE, 503, rc != 0 ? err
                : "the producer is stopping", status, ctype, body, len);
        }
        return WQ_EAGAIN;
    }

    if (run_at > 0) {
        ins = xcalloc(1, sizeof *ins);
        ins->job.run = insert_run;
        ins->api = a;
        ins->req = req->handle;
        ins->n = 1;
        ins->env = xcalloc(1, sizeof *ins->env);
        ins->priority = xcalloc(1, sizeof *ins->priority);
        ins->priority[0] = spec_priority(&spec);
        rc = wq_envelope_copy(&ins->env[0], &env, err, sizeof err);
        wq_taskspec_free(&spec);
        if (rc != 0 || db_submit(a->db, &ins->job) != 0) {
            insert_free(ins);
            return refuse(a, R_UNAVAILABLE, 503, rc != 0 ? err
                : "the producer is stopping", status, ctype, body, len);
        }
        return WQ_EAGAIN;
    }

    m = msg_new(a, &env, spec_priority(&spec), err, sizeof err, &rc);
    if (m == NULL) {
        wq_taskspec_free(&spec);
        code = invalid_code(rc, &r);
        return refuse(a, r, code, err, status, ctype, body, len);
    }
    m->req = req->handle;
    m->ok_body = dump(accepted_json(idtext, queue, env.key, 0, 0, 0, NULL,
        0), &m->ok_len);
    wq_taskspec_free(&spec);
    if ((rc = pub_submit(a->pub, &m->m, 1)) != 0) {
        msg_free(m);
        return refuse(a, R_UNAVAILABLE, 503, rc == WQ_ECLOSED
            ? "the producer is stopping" : "the broker is unavailable",
            status, ctype, body, len);
    }
    return WQ_EAGAIN;
}

static void
msgs_free(struct api_msg *head)
{
    struct api_msg *m;

    while ((m = head) != NULL) {
        head = (struct api_msg *)(void *)m->m.next;
        msg_free(m);
    }
}

static int
post_batch(struct api *a, const struct wq_http_request *req,
    const char *queue, int *status, const char **ctype, char **body,
    size_t *len)
{
    struct wq_taskspec_defaults def = { .queue = queue };
    struct wq_header hdrs[WQ_HEADERS_MAX];
    struct wq_taskspec spec;
    struct wq_envelope env;
    struct api_batch *b = NULL;
    struct api_insert *ins = NULL;
    struct api_msg *head = NULL, *tail = NULL, *m;
    /* the batch's fresh ids: one range, one receipt row (uuid.h) */
    struct wq_uuid_seq ids = { 0, 0, 0 };
    char err[WQ_ERRLEN], detail[WQ_ERRLEN + 32], idtext[WQ_UUID_STRLEN];
    size_t n, nmsg = 0;
    json_error_t je;
    json_t *root, *tasks;
    int64_t run_at;
    enum reason r;
    int rc, code;

    if (task_checks(a, req, queue, 0, status, ctype, body, len))
        return 0;
    root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES
        | JSON_ALLOW_NUL, &je);
    if (root == NULL) {
        snprintf(detail, sizeof detail, "invalid JSON at line %d column "
            "%d: %s", je.line, je.column, je.text);
        return refuse(a, R_INVALID_JSON, 400, detail, status, ctype, body,
            len);
    }
    tasks = json_is_array(root) ? root : json_object_get(root, "tasks");
    if (!json_is_array(tasks) || (json_is_object(root)
        && json_object_size(root) != 1)) {
        json_decref(root);
        return refuse(a, R_INVALID_TASK, 400, "the body must be "
            "{\"tasks\": [task, ...]} or an array of tasks", status, ctype,
            body, len);
    }
    if ((n = json_array_size(tasks)) == 0
        || n > (size_t)a->cfg->producer.batch_max) {
        json_decref(root);
        snprintf(detail, sizeof detail, "%zu tasks; a batch holds 1 to %d",
            n, a->cfg->producer.batch_max);
        return refuse(a, n == 0 ? R_INVALID_TASK : R_TOO_LARGE,
            n == 0 ? 400 : 413, detail, status, ctype, body, len);
    }
    /* the rate limit counts tasks: a batch costs its length */
    if (over_rate(a, req, n, status, ctype, body, len)) {
        json_decref(root);
        return 0;
    }

    b = xcalloc(1, sizeof *b);
    b->api = a;
    b->req = req->handle;
    b->n = n;
    b->r = xcalloc(n, sizeof *b->r);
    snprintf(b->queue, sizeof b->queue, "%s", queue);
    for (size_t i = 0; i < n; i++) {
        rc = wq_taskspec_from_json(json_array_get(tasks, i), &def, &spec,
            err, sizeof err);
        if (rc == 0 && spec.flow.unique_for_ms > 0)
            rc = wq_seterr(err, sizeof err, WQ_EINVAL, "field 'unique_for': "
                "not in a batch; POST a task with a unique window alone");
        else if (rc == 0 && (rc = task_prepare(a, &spec, NULL, &ids, &env,
            hdrs, idtext, &run_at, err, sizeof err)) != 0)
            wq_taskspec_free(&spec);
        if (rc != 0) {
            wq_taskspec_free(&spec);
            goto invalid;
        }
        memcpy(b->r[i].id, idtext, sizeof idtext);
        b->r[i].key = xstrdup(env.key);
        if (run_at > 0) {
            if (ins == NULL) {
                ins = xcalloc(1, sizeof *ins);
                ins->job.run = insert_run;
                ins->api = a;
                ins->batch = b;
                ins->env = xcalloc(n, sizeof *ins->env);
                ins->index = xcalloc(n, sizeof *ins->index);
                ins->priority = xcalloc(n, sizeof *ins->priority);
            }
            ins->priority[ins->n] = spec_priority(&spec);
            rc = wq_envelope_copy(&ins->env[ins->n], &env, err, sizeof err);
            wq_taskspec_free(&spec);
            if (rc != 0)
                goto invalid;
            ins->index[ins->n++] = i;
            continue;
        }
        m = msg_new(a, &env, spec_priority(&spec), err, sizeof err, &rc);
        wq_taskspec_free(&spec);
        if (m == NULL)
            goto invalid;
        m->batch = b;
        m->index = i;
        if (tail != NULL)
            tail->m.next = &m->m;
        else
            head = m;
        tail = m;
        nmsg++;
        continue;

invalid:
        json_decref(root);
        msgs_free(head);
        if (ins != NULL)
            insert_free(ins);
        batch_free(b);
        /* an index into the request's array, from 0: named as one */
        snprintf(detail, sizeof detail, "tasks[%zu]: %s", i, err);
        code = invalid_code(rc == WQ_EDECODE ? WQ_EINVAL : rc, &r);
        return refuse(a, r, code, detail, status, ctype, body, len);
    }
    json_decref(root);

    /* From here on every task gets a verdict through batch_item_done. */
    atomic_store(&b->pending, n);
    if (head != NULL && (rc = pub_submit(a->pub, &head->m, nmsg)) != 0) {
        for (m = head; m != NULL; m = head) {
            head = (struct api_msg *)(void *)m->m.next;
            batch_item_done(b, m->index, WQ_EBROKER, rc == WQ_ECLOSED
                ? "the producer is stopping" : "the broker is unavailable");
            msg_free(m);
        }
    }
    if (ins != NULL && db_submit(a->db, &ins->job) != 0) {
        for (size_t i = 0; i < ins->n; i++)
            batch_item_done(b, ins->index[i], WQ_ESTORE,
                "the producer is stopping");
        insert_free(ins);
    }
    return WQ_EAGAIN;
}

static int
get_task(struct api *a, const struct wq_http_request *req, const char *id,
    int *status, const char **ctype, char **body, size_t *len)
{
    struct api_get *j;
    uint8_t bin[WQ_UUID_LEN];

    if (wq_uuid_parse(id, bin) != 0)
        return refuse(a, R_INVALID_ID, 400, "the task id must be a UUID "
            "(0190a5f8-7c1e-7a3b-9c4d-5e6f708192a3)", status, ctype, body,
            len);
    j = xcalloc(1, sizeof *j);
    j->job.run = get_run;
    j->api = a;
    j->req = req->handle;
    memcpy(j->id, bin, sizeof bin);
    if (db_submit(a->db, &j->job) != 0) {
        free(j);
        return refuse(a, R_UNAVAILABLE, 503, "the producer is stopping",
            status, ctype, body, len);
    }
    return WQ_EAGAIN;
}

/* --- routing ------------------------------------------------------------- */

static int
method_is(const struct wq_http_request *req, const char *m)
{
    return strcmp(req->method, m) == 0;
}

int
api_wrong_method(struct api *a, const char *allowed, int *status,
    const char **ctype, char **body, size_t *len)
{
    char detail[64];

    snprintf(detail, sizeof detail, "use %s on this route", allowed);
    return refuse(a, R_METHOD_NOT_ALLOWED, 405, detail, status, ctype, body,
        len);
}

/*
 * GET /ui/...: a file of the dashboard, public (it holds no data; its
 * scripts fetch /v1/ with the operator's token), with the header fields
 * of ui.h on every answer, a 404 included.
 */
static int
get_ui(struct api *a, const struct wq_http_request *req, int *status,
    const char **ctype, char **body, size_t *len)
{
    const struct ui_asset *f;

    wq_http_set_fields(req->handle, ui_fields);
    if (!method_is(req, "GET") && !method_is(req, "HEAD"))
        return api_wrong_method(a, "GET", status, ctype, body, len);
    if ((f = ui_find(req->path)) == NULL)
        return refuse(a, R_NOT_FOUND, 404, "no such file of the dashboard",
            status, ctype, body, len);
    *status = 200;
    *ctype = f->ctype;
    *body = xmalloc(f->len + 1);
    memcpy(*body, f->data, f->len);
    *len = f->len;
    return 0;
}

/*
 * GET /v1/whoami: the scopes of the request's token, so that the
 * dashboard shows acting buttons only to a token that may act (the
 * routes check the scope whatever a page shows).  Any valid token.
 */
static int
get_whoami(unsigned scopes, int *status, const char **ctype, char **body,
    size_t *len)
{
    json_t *arr = json_array();

    if (scopes & WQ_TOKEN_SCOPE_SUBMIT)
        json_array_append_new(arr, json_string("submit"));
    if (scopes & WQ_TOKEN_SCOPE_READ)
        json_array_append_new(arr, json_string("read"));
    if (scopes & WQ_TOKEN_SCOPE_ADMIN)
        json_array_append_new(arr, json_string("admin"));
    *status = 200;
    *ctype = JSON_TYPE;
    *body = dump(json_pack("{s:o}", "scopes", arr), len);
    return 0;
}

int
api_handle(void *user, const struct wq_http_request *req, int *status,
    const char **ctype, char **body, size_t *len)
{
    struct api *a = user;
    const char *p = req->path, *rest, *slash;
    char queue[WQ_QUEUE_MAX + 2];
    unsigned scopes, wait_s;
    size_t qlen;
    int rc;

    if (strcmp(p, "/healthz") == 0) {
        if (!method_is(req, "GET") && !method_is(req, "HEAD"))
            return api_wrong_method(a, "GET", status, ctype, body, len);
        *status = 200;
        *ctype = JSON_TYPE;
        *body = xstrdup("{\"status\":\"ok\"}");
        *len = strlen(*body);
        return 0;
    }
    if (strcmp(p, "/readyz") == 0) {
        struct api_ready *j;

        if (!method_is(req, "GET") && !method_is(req, "HEAD"))
            return api_wrong_method(a, "GET", status, ctype, body, len);
        j = xcalloc(1, sizeof *j);
        j->job.run = ready_run;
        j->api = a;
        j->req = req->handle;
        if (db_submit(a->db, &j->job) != 0) {
            free(j);
            return refuse(a, R_UNAVAILABLE, 503, "stopping", status, ctype,
                body, len);
        }
        return WQ_EAGAIN;
    }
    if (strcmp(p, "/metrics") == 0) {
        if (!method_is(req, "GET"))
            return api_wrong_method(a, "GET", status, ctype, body, len);
        *status = 200;
        *ctype = "text/plain; version=0.0.4; charset=utf-8";
        *body = wq_metrics_render(a->metrics, len);
        return 0;
    }
    if (strncmp(p, "/ui", 3) == 0 && (p[3] == '\0' || p[3] == '/'))
        return get_ui(a, req, status, ctype, body, len);
    if (strcmp(p, "/v1/openapi.json") == 0) {
        /* the document is public: it holds no data, and tools fetch it */
        if (!method_is(req, "GET"))
            return api_wrong_method(a, "GET", status, ctype, body, len);
        return api_ops_openapi(req, status, ctype, body, len);
    }
    if (strncmp(p, "/v1/", 4) != 0)
        return refuse(a, R_NOT_FOUND, 404, "no such route", status, ctype,
            body, len);
    if ((wait_s = auth_throttled(a, req->client_addr)) > 0) {
        wq_http_retry_after(req->handle, wait_s);
        return refuse(a, R_AUTH_THROTTLED, 429, "too many failed "
            "authentications from this address; retry later", status,
            ctype, body, len);
    }
    if ((scopes = scopes_of(a, req->authorization)) == 0) {
        auth_failed(a, req->client_addr);
        return refuse(a, R_UNAUTHORIZED, 401, "a valid bearer token is "
            "required (Authorization: Bearer TOKEN)", status, ctype, body,
            len);
    }

    if (strcmp(p, "/v1/whoami") == 0) {
        if (!method_is(req, "GET"))
            return api_wrong_method(a, "GET", status, ctype, body, len);
        return get_whoami(scopes, status, ctype, body, len);
    }
    if ((rc = api_ops_handle(a->ops, a, a->db, req, scopes, status, ctype,
        body, len)) != WQ_ENOENT)
        return rc;
    if ((rc = api_workflow_handle(a, a->db, req, scopes, status, ctype, body,
        len)) != WQ_ENOENT)
        return rc;
    if (strncmp(p, "/v1/tasks/", 10) == 0 && strchr(p + 10, '/') == NULL) {
        if (!method_is(req, "GET"))
            return api_wrong_method(a, "GET", status, ctype, body, len);
        if (lacks_scope(a, scopes, WQ_TOKEN_SCOPE_READ, status, ctype, body,
            len))
            return 0;
        return get_task(a, req, p + 10, status, ctype, body, len);
    }
    if (strncmp(p, "/v1/queues/", 11) == 0
        && (slash = strchr(p + 11, '/')) != NULL) {
        rest = slash + 1;
        if (strcmp(rest, "tasks") == 0 || strcmp(rest, "tasks:batch") == 0) {
            if (!method_is(req, "POST"))
                return api_wrong_method(a, "POST", status, ctype, body, len);
            if (lacks_scope(a, scopes, WQ_TOKEN_SCOPE_SUBMIT, status, ctype,
                body, len))
                return 0;
            qlen = (size_t)(slash - (p + 11));
            if (qlen > WQ_QUEUE_MAX)
                qlen = WQ_QUEUE_MAX + 1;    /* too long: refused below */
            memcpy(queue, p + 11, qlen);
            queue[qlen] = '\0';
            return rest[5] == '\0'
                ? post_task(a, req, queue, status, ctype, body, len)
                : post_batch(a, req, queue, status, ctype, body, len);
        }
    }
    return refuse(a, R_NOT_FOUND, 404, "no such route", status, ctype, body,
        len);
}

/* --- setup --------------------------------------------------------------- */

int
api_reload_tokens(struct api *a, char *err, size_t errlen)
{
    const char *path = a->cfg->producer.tokens_file;
    char msg[WQ_ERRLEN];
    wq_tokens *t = NULL, *old;

    if (path[0] == '\0')
        return 0;
    if (wq_tokens_load(path, &t, msg, sizeof msg) != 0)
        return wq_seterr(err, errlen, WQ_ECONFIG, "producer.tokens_file "
            "%s", msg);
    if (wq_tokens_count(t) == 0)
        wq_log_warn(COMPONENT, "%s holds no token: every /v1/ request "
            "will be refused", path);
    if (wq_tokens_plaintext(t) > 0)
        wq_log_warn(COMPONENT, "%s: %zu of %zu tokens are written in "
            "plaintext; replace each line by its hash (workq token hash)",
            path, wq_tokens_plaintext(t), wq_tokens_count(t));
    pthread_rwlock_wrlock(&a->tokens_lock);
    old = a->tokens;
    a->tokens = t;
    pthread_rwlock_unlock(&a->tokens_lock);
    wq_tokens_free(old);
    return 0;
}

/*
 * 1 if the host of `listen` ("host:port", "[v6]:port") is a loopback
 * address: 127.0.0.0/8, ::1, ::ffff:127.x, or the name "localhost".  Any
 * other name, and an empty host (every address), is not.
 */
int
api_listen_is_loopback(const char *listen)
{
    char host[256];
    const char *colon;
    struct in6_addr a6;
    struct in_addr a4;
    size_t n;

    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');

        if (end == NULL)
            return 0;
        n = (size_t)(end - listen - 1);
        listen++;
    } else {
        colon = strrchr(listen, ':');
        n = colon != NULL ? (size_t)(colon - listen) : strlen(listen);
    }
    if (n == 0 || n >= sizeof host)
        return 0;
    memcpy(host, listen, n);
    host[n] = '\0';
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6)
            && a6.s6_addr[12] == 127);
    return 0;
}

/*
 * Refuses a configuration that would open the API to anyone, or that
 * says two things: auth "tokens" without a tokens file, auth "none" with
 * one, auth "none" on a non-loopback address without
 * producer.auth_none_nonloopback.  WQ_ECONFIG with err set, or 0.
 */
static int
auth_check(const struct wq_config *cfg, char *err, size_t errlen)
{
    const char *tf = cfg->producer.tokens_file;

    if (cfg->producer.auth == WQ_AUTH_TOKENS && tf[0] == '\0')
        return wq_seterr(err, errlen, WQ_ECONFIG, "producer.auth is "
            "\"tokens\" but producer.tokens_file is not set: the API would "
            "take requests from anyone.  Make a token (workq token new) and "
            "list it in producer.tokens_file, or set producer.auth = "
            "\"none\" to run without tokens on a loopback address");
    if (cfg->producer.auth == WQ_AUTH_NONE && tf[0] != '\0')
        return wq_seterr(err, errlen, WQ_ECONFIG, "producer.auth is "
            "\"none\" but producer.tokens_file is set (%s): set "
            "producer.auth = \"tokens\" to check tokens, or unset the file",
            tf);
    if (cfg->producer.auth == WQ_AUTH_NONE
        && !cfg->producer.auth_none_nonloopback
        && !api_listen_is_loopback(cfg->producer.listen))
        return wq_seterr(err, errlen, WQ_ECONFIG, "producer.auth is "
            "\"none\" and producer.listen %s is not a loopback address: "
            "anyone who reaches it could submit and read tasks.  Use "
            "tokens, listen on 127.0.0.1, or set "
            "producer.auth_none_nonloopback = true",
            cfg->producer.listen);
    return 0;
}

int
api_new(const struct api_conf *conf, struct api **out, char *err,
    size_t errlen)
{
    struct api *a = xcalloc(1, sizeof *a);
    char labels[64];
    int rc;

    if ((rc = auth_check(conf->cfg, err, errlen)) != 0) {
        free(a);
        return rc;
    }
    a->cfg = conf->cfg;
    a->pub = conf->pub;
    a->db = conf->db;
    a->metrics = conf->metrics;
    pthread_rwlock_init(&a->tokens_lock, NULL);
    pthread_mutex_init(&a->bucket_lock, NULL);
    pthread_mutex_init(&a->receipts_lock, NULL);
    /* set once: the db thread reads it while the job is queued */
    a->receipts_job.run = receipts_run;
    pthread_mutex_init(&a->auth_lock, NULL);
    a->auth = xcalloc(AUTH_SLOTS, sizeof *a->auth);
    pthread_mutex_init(&a->queues_lock, NULL);
    allowed_init(a);
    a->rate = a->cfg->producer.rate_limit;
    a->tokens_left = a->rate;
    a->bucket_ns = wq_clock_mono_ns();
    a->ops = api_ops_new(a->cfg);
    if ((rc = api_reload_tokens(a, err, errlen)) != 0) {
        api_free(a);
        return rc;
    }
    if (a->tokens == NULL)
        wq_log_warn(COMPONENT, "producer.auth = \"none\": the API on %s "
            "accepts requests without a token", a->cfg->producer.listen);
    for (int r = 0; r < R_COUNT; r++) {
        snprintf(labels, sizeof labels, "reason=\"%s\"", reason_name[r]);
        a->rejected[r] = wq_metrics_counter(a->metrics,
            "workq_producer_requests_rejected_total", "Requests refused, "
            "by reason.", labels);
    }
    a->accepted_queued = wq_metrics_counter(a->metrics,
        "workq_producer_tasks_accepted_total", "Tasks accepted (202): "
        "confirmed by the broker, or stored as scheduled.",
        "state=\"queued\"");
    a->accepted_scheduled = wq_metrics_counter(a->metrics,
        "workq_producer_tasks_accepted_total", "Tasks accepted (202): "
        "confirmed by the broker, or stored as scheduled.",
        "state=\"scheduled\"");
    *out = a;
    return 0;
}

void
api_set_backends(struct api *a, struct publisher *pub, struct dbq *db)
{
    a->pub = pub;
    a->db = db;
}

void
api_set_stopping(struct api *a)
{
    atomic_store(&a->stopping, 1);
}

void
api_free(struct api *a)
{
    if (a == NULL)
        return;
    api_ops_free(a->ops);
    wq_tokens_free(a->tokens);
    pthread_rwlock_destroy(&a->tokens_lock);
    pthread_mutex_destroy(&a->bucket_lock);
    pthread_mutex_destroy(&a->receipts_lock);
    free(a->confirmed);
    pthread_mutex_destroy(&a->auth_lock);
    free(a->auth);
    pthread_mutex_destroy(&a->queues_lock);
    for (size_t i = 0; i < a->nallowed; i++)
        free(a->allowed[i]);
    free(a->allowed);
    for (size_t i = 0; i < a->nqueues; i++)
        free(a->queues[i]);
    free(a->queues);
    free(a);
}

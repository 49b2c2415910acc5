/*
 * api_ops.c - the operator routes (see api_ops.h): query arguments and
 * bodies are checked on the HTTP thread, copied into one struct ops_job,
 * and the database thread runs ops.h's function for the route and
 * answers.
 *
 * Every argument a route does not know is refused (400), as is a value
 * out of its range: a typo in a filter must not widen a list, nor a
 * replay.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"
#include "api_ops.h"
#include "clock.h"
#include "log.h"
#include "ops.h"
#include "taskspec.h"
#include "token.h"
#include "transport.h"
#include "uuid.h"

#define COMPONENT "api"
#define JSON_TYPE "application/json"
#define BACKLOG_TTL_MS 5000     /* a queue's broker backlog is reused */
#define OWN_MAX 16              /* strings a job copies */

/* One queue's backlog as the broker last gave it. */
struct cached {
    char *queue;
    int64_t at_ms;
    int rc;
    char err[WQ_ERRLEN];
    struct wq_backlog b;
};

struct api_ops {
    struct wq_config *cfg;
    /* made once at start: wq_config_transport_conf is for one thread */
    struct wq_transport_conf tc;
    int tc_rc;
    char tc_err[WQ_ERRLEN];
    /* the broker connection and cache of /v1/stats: used on the
     * database thread only */
    wq_transport *t;
    struct cached *cache;
    size_t ncache;
};

enum route {
    TASKS, RETRY, CANCEL, DEAD, DEAD_ONE, REPLAY, PURGE, STATS, HISTORY,
    WORKERS, PERIODIC, UNDECODABLE, UNDECODABLE_RAW,
};

struct ops_job {
    struct db_job job;          /* first */
    struct api_ops *ops;
    struct api *api;
    wq_http_req *req;
    enum route route;
    char id[WQ_UUID_STRLEN + 1];    /* a task's, or an undecodable
                                       message's number */
    long n;                     /* limit, minutes, attempts */
    long attempts;
    int flag;                   /* workers: all */
    struct wq_ops_tasks_query tq;
    struct wq_ops_dead_filter df;
    const char *cursor, *queue;
    char *own[OWN_MAX];         /* copies the fields above point into */
    size_t nown;
    const char **ids;
};

/* --- the job ------------------------------------------------------------- */

static const char *
own(struct ops_job *j, const char *s)
{
    if (s == NULL)
        return NULL;
    if (j->nown == OWN_MAX)
        abort();                /* a bug: more fields than OWN_MAX */
    return j->own[j->nown++] = xstrdup(s);
}

static void
job_free(struct ops_job *j)
{
    for (size_t i = 0; i < j->nown; i++)
        free(j->own[i]);
    if (j->ids != NULL) {
        for (size_t i = 0; i < j->df.nids; i++)
            free((char *)j->ids[i]);
        free(j->ids);
    }
    free(j);
}

/* --- the broker's backlog, cached ---------------------------------------- */

static void
backlog_copy(struct wq_backlog *to, const struct wq_backlog *from)
{
    *to = *from;
    to->parts = NULL;
    if (from->nparts > 0) {
        to->parts = xreallocarray(NULL, from->nparts, sizeof *to->parts);
        memcpy(to->parts, from->parts, from->nparts * sizeof *to->parts);
    }
}

static struct cached *
cached_of(struct api_ops *o, const char *queue)
{
    for (size_t i = 0; i < o->ncache; i++)
        if (strcmp(o->cache[i].queue, queue) == 0)
            return &o->cache[i];
    o->cache = xreallocarray(o->cache, o->ncache + 1, sizeof *o->cache);
    memset(&o->cache[o->ncache], 0, sizeof *o->cache);
    o->cache[o->ncache].queue = xstrdup(queue);
    o->cache[o->ncache].at_ms = 0;     /* never asked */
    return &o->cache[o->ncache++];
}

/*
 * wq_ops_backlog_fn of the producer: each queue's answer is reused for
 * BACKLOG_TTL_MS, so a dashboard that polls costs the broker one
 * question per queue every few seconds.  The connection is opened on
 * first use and dropped after a failure (the next request opens a new
 * one); an unreachable broker stops the asking for this request.
 */
static void
stats_backlog(void *user, const char *const *queues, size_t n,
    struct wq_backlog *b, int *brc, char (*berr)[WQ_ERRLEN])
{
    struct api_ops *o = user;
    int64_t now = wq_clock_wall_ms();
    char err[WQ_ERRLEN] = "";
    int down = 0;

    for (size_t i = 0; i < n; i++) {
        struct cached *c = cached_of(o, queues[i]);

        if (now - c->at_ms > BACKLOG_TTL_MS && !down) {
            int rc = 0;

            if (o->t == NULL && (rc = o->tc_rc) != 0)
                snprintf(err, sizeof err, "%s", o->tc_err);
            else if (o->t == NULL)
                rc = wq_transport_open(&o->tc, &o->t, err, sizeof err);
            wq_backlog_free(&c->b);
            memset(&c->b, 0, sizeof c->b);
            if (rc == 0)
                rc = wq_transport_backlog(o->t, queues[i], &c->b, err,
                    sizeof err);
            c->rc = rc;
            snprintf(c->err, sizeof c->err, "%s", rc != 0 ? err : "");
            c->at_ms = now;
            if (rc != 0 && rc != WQ_ENOENT && rc != WQ_EINVAL) {
                wq_log_warn(COMPONENT, "broker backlog unknown: %s", err);
                wq_transport_close(o->t, 1000);
                o->t = NULL;
                c->at_ms = 0;   /* ask again next time */
                down = 1;
            }
        } else if (down) {
            brc[i] = WQ_EIO;
            snprintf(berr[i], sizeof berr[i], "%s", err);
            continue;
        }
        brc[i] = c->rc;
        snprintf(berr[i], sizeof berr[i], "%s", c->err);
        if (c->rc == 0)
            backlog_copy(&b[i], &c->b);
    }
}

/* --- running on the database thread -------------------------------------- */

static int
run(struct db_job *job, wq_store *s, const char *why)
{
    struct ops_job *j = (struct ops_job *)(void *)job;
    char err[WQ_ERRLEN];
    json_t *out = NULL;
    int rc;

    if (s == NULL) {
        api_complete_unavailable(j->api, j->req, why);
        job_free(j);
        return 0;
    }
    err[0] = '\0';
    switch (j->route) {
    case TASKS:
        rc = wq_ops_tasks_page(s, &j->tq, &out, err, sizeof err);
        break;
    case RETRY:
        rc = wq_ops_retry(s, j->id, j->attempts, &out, err, sizeof err);
        break;
    case CANCEL:
        rc = wq_ops_cancel(s, j->id, &out, err, sizeof err);
        break;
    case DEAD:
        rc = wq_ops_dead_page(s, &j->df, j->n, j->cursor, &out, err,
            sizeof err);
        break;
    case DEAD_ONE:
        rc = wq_ops_task(s, j->id, 1, &out, err, sizeof err);
        break;
    case REPLAY:
    case PURGE:
        rc = wq_ops_dead_change(s, &j->df, j->n, j->attempts,
            j->route == PURGE, &out, err, sizeof err);
        break;
    case STATS:
        rc = wq_ops_stats(s, j->ops->cfg, j->queue, stats_backlog, j->ops,
            &out, err, sizeof err);
        break;
    case HISTORY:
        rc = wq_ops_history(s, j->queue, (int)j->n, wq_clock_wall_ms(), &out,
            err, sizeof err);
        break;
    case WORKERS:
        rc = wq_ops_workers(s, j->flag, j->ops->cfg->worker.lease_ms, &out,
            err, sizeof err);
        break;
    case PERIODIC:
        rc = wq_ops_periodic(s, j->ops->cfg, wq_clock_wall_ms(), &out, err,
            sizeof err);
        break;
    case UNDECODABLE:
        rc = wq_ops_undecodable_page(s, &j->df, j->n, &out, err, sizeof err);
        break;
    case UNDECODABLE_RAW: {
        unsigned char *bytes;
        size_t n;

        /* the bytes as they came off the broker, not JSON */
        if ((rc = wq_ops_undecodable_raw(s, j->id, &bytes, &n, err,
            sizeof err)) == 0) {
            wq_http_complete(j->req, 200, "application/octet-stream",
                (char *)bytes, n);
            job_free(j);
            return 0;
        }
        break;
    }
    default:
        abort();
    }
    if (rc == 0) {
        char *text = json_dumps(out, JSON_COMPACT);

        if (text == NULL)
            abort();            /* out of memory: as xmalloc */
        wq_http_complete(j->req, 200, JSON_TYPE, text, strlen(text));
    } else {
        api_complete_store_error(j->api, j->req, rc, err);
    }
    json_decref(out);
    job_free(j);
    return rc == WQ_ESTORE ? rc : 0;
}

/* --- checking a request -------------------------------------------------- */

/* The value of query argument `name`, or NULL. */
static const char *
arg(const struct wq_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nargs; i++)
        if (strcmp(req->args[i].name, name) == 0)
            return req->args[i].value != NULL ? req->args[i].value : "";
    return NULL;
}

/* The first argument not in the NULL-terminated `known`, or NULL. */
static const char *
unknown_arg(const struct wq_http_request *req, const char *const *known)
{
    for (size_t i = 0; i < req->nargs; i++) {
        size_t k;

        for (k = 0; known[k] != NULL; k++)
            if (strcmp(req->args[i].name, known[k]) == 0)
                break;
        if (known[k] == NULL)
            return req->args[i].name;
    }
    return NULL;
}

static int
parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL || s[0] == '\0' || s[0] == '+' || s[0] == ' ')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* An RFC 3339 time or epoch milliseconds. */
static int
parse_time(const char *s, int64_t *ms)
{
    long v;

    if (wq_taskspec_parse_rfc3339(s, ms) == 0)
        return 0;
    if (parse_long(s, 0, 253402300799999L, &v) == 0) {
        *ms = v;
        return 0;
    }
    return -1;
}

/* A request's problem, to answer 400 with. */
struct bad {
    char detail[256];
};

/* Says what is wrong with a request; returns -1. */
static int bad(struct bad *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
bad(struct bad *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(b->detail, sizeof b->detail, fmt, ap);
    va_end(ap);
    return -1;
}

static int
check_args(const struct wq_http_request *req, const char *const *known,
    struct bad *b)
{
    const char *u = unknown_arg(req, known);

    if (u != NULL)
        return bad(b, "unknown query argument '%.64s'", u);
    return 0;
}

/* limit= (1..max, default 50). */
static int
get_limit(const struct wq_http_request *req, long *n, struct bad *b)
{
    const char *v = arg(req, "limit");

    *n = 50;
    if (v != NULL && parse_long(v, 1, WQ_OPS_PAGE_MAX, n) != 0)
        return bad(b, "limit: a whole number 1..%d", WQ_OPS_PAGE_MAX);
    return 0;
}

/* A non-empty text argument, or NULL when absent. */
static int
get_text(struct ops_job *j, const struct wq_http_request *req,
    const char *name, const char **out, struct bad *b)
{
    const char *v = arg(req, name);

    *out = NULL;
    if (v == NULL)
        return 0;
    if (v[0] == '\0')
        return bad(b, "%s: empty (leave the argument out for any)", name);
    if (strlen(v) > 1024)
        return bad(b, "%s: longer than 1024 bytes", name);
    *out = own(j, v);
    return 0;
}

static int
get_ms(const struct wq_http_request *req, const char *name, int64_t *out,
    struct bad *b)
{
    const char *v = arg(req, name);
    long n;

    *out = WQ_OPS_NONE;
    if (v == NULL)
        return 0;
    if (parse_long(v, 0, 100L * 365 * 86400 * 1000, &n) != 0)
        return bad(b, "%s: milliseconds, a whole number >= 0", name);
    *out = n;
    return 0;
}

static int
tasks_query(struct ops_job *j, const struct wq_http_request *req,
    struct bad *b)
{
    static const char *const known[] = {
        "queue", "state", "type", "key_prefix", "created_after",
        "created_before", "limit", "cursor", NULL,
    };
    struct wq_ops_tasks_query *q = &j->tq;
    const char *v;

    if (check_args(req, known, b) != 0 || get_limit(req, &q->limit, b) != 0
        || get_text(j, req, "queue", &q->queue, b) != 0
        || get_text(j, req, "state", &q->state, b) != 0
        || get_text(j, req, "type", &q->type, b) != 0
        || get_text(j, req, "key_prefix", &q->key_prefix, b) != 0
        || get_text(j, req, "cursor", &q->cursor, b) != 0)
        return -1;
    q->created_after_ms = q->created_before_ms = WQ_OPS_NONE;
    if ((v = arg(req, "created_after")) != NULL
        && parse_time(v, &q->created_after_ms) != 0)
        return bad(b, "created_after: an RFC 3339 time or epoch "
            "milliseconds");
    if ((v = arg(req, "created_before")) != NULL
        && parse_time(v, &q->created_before_ms) != 0)
        return bad(b, "created_before: an RFC 3339 time or epoch "
            "milliseconds");
    if (q->state != NULL && wq_task_state_parse(q->state) < 0)
        return bad(b, "state: one of scheduled, queued, running, "
            "retry_wait, succeeded, dead, cancelled");
    q->bodies = WQ_OPS_BODIES_NONE;
    return 0;
}

static int
dead_query(struct ops_job *j, const struct wq_http_request *req,
    struct bad *b)
{
    static const char *const known[] = {
        "queue", "type", "error", "older_than_ms", "newer_than_ms", "limit",
        "cursor", NULL,
    };

    if (check_args(req, known, b) != 0 || get_limit(req, &j->n, b) != 0
        || get_text(j, req, "queue", &j->df.queue, b) != 0
        || get_text(j, req, "type", &j->df.type, b) != 0
        || get_text(j, req, "error", &j->df.error, b) != 0
        || get_text(j, req, "cursor", &j->cursor, b) != 0
        || get_ms(req, "older_than_ms", &j->df.older_than_ms, b) != 0
        || get_ms(req, "newer_than_ms", &j->df.newer_than_ms, b) != 0)
        return -1;
    return 0;
}

/* The attempts of a new series, from "attempts" or "max_attempts". */
static int
body_attempts(json_t *o, long *out, struct bad *b)
{
    json_t *v = json_object_get(o, "attempts");

    if (v == NULL)
        v = json_object_get(o, "max_attempts");
    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1
        || json_integer_value(v) > 1000000)
        return bad(b, "attempts: a whole number 1..1000000");
    *out = (long)json_integer_value(v);
    return 0;
}

/* The body of a POST: none, or a JSON object (into *out). */
static int
body_object(const struct wq_http_request *req, json_t **out, int *code,
    struct bad *b)
{
    json_error_t e;

    *out = NULL;
    *code = 400;
    if (req->body_len == 0)
        return 0;
    if (req->content_type == NULL
        || strncasecmp(req->content_type, JSON_TYPE, strlen(JSON_TYPE))
        != 0) {
        *code = 415;
        return bad(b, "the body must be application/json");
    }
    *out = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
    if (*out == NULL)
        return bad(b, "invalid JSON: %s (line %d)", e.text, e.line);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return bad(b, "the body must be a JSON object");
    }
    return 0;
}

/* Only the members of `known` in o. */
static int
check_members(json_t *o, const char *const *known, struct bad *b)
{
    const char *k;
    json_t *v;

    json_object_foreach(o, k, v) {
        size_t i;

        for (i = 0; known[i] != NULL; i++)
            if (strcmp(k, known[i]) == 0)
                break;
        if (known[i] == NULL)
            return bad(b, "unknown member '%.64s'", k);
    }
    return 0;
}

/* The body of :replay and :purge. */
static int
change_body(struct ops_job *j, json_t *o, int purge, struct bad *b)
{
    static const char *const known_replay[] = {
        "ids", "queue", "type", "error", "older_than_ms", "newer_than_ms",
        "limit", "attempts", "max_attempts", NULL,
    };
    json_t *ids, *v;
    int filters = 0;

    j->df.older_than_ms = j->df.newer_than_ms = WQ_OPS_NONE;
    if (o == NULL)
        return bad(b, "give {\"ids\": [...]} or filters with a \"limit\"");
    if (check_members(o, known_replay, b) != 0)
        return -1;
    if (purge && (json_object_get(o, "attempts") != NULL
        || json_object_get(o, "max_attempts") != NULL))
        return bad(b, "attempts: only replay takes it");
    if (!purge && body_attempts(o, &j->attempts, b) != 0)
        return -1;
    for (int k = 0; k < 3; k++) {
        const char *name = k == 0 ? "queue" : k == 1 ? "type" : "error";
        const char **to = k == 0 ? &j->df.queue : k == 1 ? &j->df.type
            : &j->df.error;

        if ((v = json_object_get(o, name)) == NULL || json_is_null(v))
            continue;
        if (!json_is_string(v) || json_string_length(v) == 0
            || json_string_length(v) > 1024)
            return bad(b, "%s: a non-empty string", name);
        *to = own(j, json_string_value(v));
        filters = 1;
    }
    for (int k = 0; k < 2; k++) {
        const char *name = k == 0 ? "older_than_ms" : "newer_than_ms";
        int64_t *to = k == 0 ? &j->df.older_than_ms : &j->df.newer_than_ms;

        if ((v = json_object_get(o, name)) == NULL || json_is_null(v))
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return bad(b, "%s: milliseconds, a whole number >= 0", name);
        *to = json_integer_value(v);
        filters = 1;
    }
    ids = json_object_get(o, "ids");
    v = json_object_get(o, "limit");
    if (ids != NULL) {
        if (filters || v != NULL)
            return bad(b, "ids or filters, not both");
        if (!json_is_array(ids) || json_array_size(ids) == 0
            || json_array_size(ids) > WQ_OPS_CHANGE_MAX)
            return bad(b, "ids: an array of 1..%d task ids",
                WQ_OPS_CHANGE_MAX);
        j->ids = xcalloc(json_array_size(ids), sizeof *j->ids);
        for (size_t i = 0; i < json_array_size(ids); i++) {
            json_t *x = json_array_get(ids, i);
            uint8_t bin[WQ_UUID_LEN];

            if (!json_is_string(x)
                || wq_uuid_parse(json_string_value(x), bin) != 0)
                return bad(b, "ids[%zu]: not a task id (a UUID)", i);
            j->ids[j->df.nids++] = xstrdup(json_string_value(x));
        }
        j->df.ids = j->ids;
        j->n = (long)j->df.nids;
        return 0;
    }
    if (v == NULL || !json_is_integer(v) || json_integer_value(v) < 1
        || json_integer_value(v) > WQ_OPS_CHANGE_MAX)
        return bad(b, "limit: required with filters, a whole number "
            "1..%d", WQ_OPS_CHANGE_MAX);
    j->n = (long)json_integer_value(v);
    return 0;
}

/* --- routing ------------------------------------------------------------- */

static int
method_is(const struct wq_http_request *req, const char *m)
{
    return strcmp(req->method, m) == 0;
}

/* Which route `p` is; -1 for none.  id gets the task id of a path. */
static int
route_of(const char *p, char *id, size_t idlen)
{
    const char *colon;

    if (strcmp(p, "/v1/tasks") == 0)
        return TASKS;
    if (strcmp(p, "/v1/dead") == 0)
        return DEAD;
    if (strcmp(p, "/v1/dead:replay") == 0)
        return REPLAY;
    if (strcmp(p, "/v1/dead:purge") == 0)
        return PURGE;
    if (strcmp(p, "/v1/stats") == 0)
        return STATS;
    if (strcmp(p, "/v1/stats/history") == 0)
        return HISTORY;
    if (strcmp(p, "/v1/workers") == 0)
        return WORKERS;
    if (strcmp(p, "/v1/periodic") == 0)
        return PERIODIC;
    if (strcmp(p, "/v1/undecodable") == 0)
        return UNDECODABLE;
    if (strncmp(p, "/v1/undecodable/", 16) == 0
        && (colon = strchr(p + 16, '/')) != NULL
        && strcmp(colon, "/raw") == 0) {
        size_t n = (size_t)(colon - (p + 16));

        if (n == 0 || n > 18 || strspn(p + 16, "0123456789") != n)
            return UNDECODABLE_RAW + 100;
        memcpy(id, p + 16, n);
        id[n] = '\0';
        return UNDECODABLE_RAW;
    }
    if (strncmp(p, "/v1/dead/", 9) == 0 && strchr(p + 9, '/') == NULL) {
        snprintf(id, idlen, "%.*s", (int)(idlen - 1), p + 9);
        return strlen(p + 9) < idlen ? DEAD_ONE : DEAD_ONE + 100;
    }
    if (strncmp(p, "/v1/tasks/", 10) == 0 && strchr(p + 10, '/') == NULL
        && (colon = strchr(p + 10, ':')) != NULL) {
        size_t n = (size_t)(colon - (p + 10));

        if (strcmp(colon, ":retry") != 0 && strcmp(colon, ":cancel") != 0)
            return -1;
        if (n >= idlen)
            n = idlen - 1;      /* too long: not a UUID, refused later */
        memcpy(id, p + 10, n);
        id[n] = '\0';
        return colon[1] == 'r' ? RETRY : CANCEL;
    }
    return -1;
}

int
api_ops_handle(struct api_ops *o, struct api *a, struct dbq *db,
    const struct wq_http_request *req, unsigned scopes, int *status,
    const char **ctype, char **body, size_t *len)
{
    char id[WQ_UUID_STRLEN + 1];
    int r = route_of(req->path, id, sizeof id), post, code = 400;
    struct ops_job *j;
    struct bad b;
    json_t *jb = NULL;
    uint8_t bin[WQ_UUID_LEN];

    if (r < 0)
        return WQ_ENOENT;
    post = r == RETRY || r == CANCEL || r == REPLAY || r == PURGE;
    if (!method_is(req, post ? "POST" : "GET"))
        return api_wrong_method(a, post ? "POST" : "GET", status, ctype, body,
            len);
    if (api_lacks_scope(a, scopes, post ? WQ_TOKEN_SCOPE_ADMIN
        : WQ_TOKEN_SCOPE_READ, status, ctype, body, len))
        return 0;
    if (r == DEAD_ONE + 100 || ((r == DEAD_ONE || r == RETRY || r == CANCEL)
        && wq_uuid_parse(id, bin) != 0))
        return api_refuse(a, "invalid_id", 400, "the task id must be a UUID "
            "(0190a5f8-7c1e-7a3b-9c4d-5e6f708192a3)", status, ctype, body,
            len);
    if (r == UNDECODABLE_RAW + 100)
        return api_refuse(a, "invalid_id", 400, "an undecodable message's "
            "id is a number (as GET /v1/undecodable lists them)", status,
            ctype, body, len);

    j = xcalloc(1, sizeof *j);
    j->job.run = run;
    j->ops = o;
    j->api = a;
    j->req = req->handle;
    j->route = (enum route)r;
    snprintf(j->id, sizeof j->id, "%s", id);
    j->df.older_than_ms = j->df.newer_than_ms = WQ_OPS_NONE;
    if (post) {
        static const char *const none[] = { NULL };
        if (req->nargs > 0 && check_args(req, none, &b) != 0)
            goto bad;
        if (body_object(req, &jb, &code, &b) != 0)
            goto bad;
    }
    switch (r) {
    case TASKS:
        if (tasks_query(j, req, &b) != 0)
            goto bad;
        break;
    case RETRY:
        if (jb != NULL) {
            static const char *const known[] = {
                "attempts", "max_attempts", NULL,
            };
            if (check_members(jb, known, &b) != 0
                || body_attempts(jb, &j->attempts, &b) != 0)
                goto bad;
        }
        break;
    case CANCEL:
        if (jb != NULL && json_object_size(jb) > 0) {
            bad(&b, "cancel takes no body members");
            goto bad;
        }
        break;
    case DEAD:
        if (dead_query(j, req, &b) != 0)
            goto bad;
        break;
    case UNDECODABLE: {
        static const char *const known[] = {
            "queue", "error", "older_than_ms", "newer_than_ms", "limit", NULL,
        };

        if (check_args(req, known, &b) != 0 || get_limit(req, &j->n, &b) != 0
            || get_text(j, req, "queue", &j->df.queue, &b) != 0
            || get_text(j, req, "error", &j->df.error, &b) != 0
            || get_ms(req, "older_than_ms", &j->df.older_than_ms, &b) != 0
            || get_ms(req, "newer_than_ms", &j->df.newer_than_ms, &b) != 0)
            goto bad;
        break;
    }
    case DEAD_ONE:
    case UNDECODABLE_RAW:
    case WORKERS:
    case PERIODIC:
    case STATS:
    case HISTORY: {
        static const char *const k_none[] = { NULL };
        static const char *const k_workers[] = { "all", NULL };
        static const char *const k_stats[] = { "queue", NULL };
        static const char *const k_hist[] = { "queue", "minutes", NULL };
        const char *v;

        if (check_args(req, r == WORKERS ? k_workers : r == STATS ? k_stats
            : r == HISTORY ? k_hist : k_none, &b) != 0)
            goto bad;
        if (r == WORKERS && (v = arg(req, "all")) != NULL) {
            if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
                bad(&b, "all: true or false");
                goto bad;
            }
            j->flag = strcmp(v, "true") == 0;
        }
        if ((r == STATS || r == HISTORY)
            && get_text(j, req, "queue", &j->queue, &b) != 0)
            goto bad;
        j->n = 60;
        if (r == HISTORY && (v = arg(req, "minutes")) != NULL
            && parse_long(v, 1, 1440, &j->n) != 0) {
            bad(&b, "minutes: a whole number 1..1440");
            goto bad;
        }
        break;
    }
    case REPLAY:
    case PURGE:
        if (change_body(j, jb, r == PURGE, &b) != 0)
            goto bad;
        break;
    default:
        abort();
    }
    json_decref(jb);
    if (db_submit(db, &j->job) != 0) {
        job_free(j);
        return api_refuse(a, "unavailable", 503, "the producer is stopping",
            status, ctype, body, len);
    }
    return WQ_EAGAIN;

bad:
    json_decref(jb);
    job_free(j);
    return api_refuse(a, code == 415 ? "unsupported_media_type"
        : "invalid_argument", code, b.detail, status, ctype, body, len);
}

int
api_ops_openapi(const struct wq_http_request *req, int *status,
    const char **ctype, char **body, size_t *len)
{
    (void)req;
    *status = 200;
    *ctype = JSON_TYPE;
    *body = xmalloc(wq_openapi_json_len + 1);
    memcpy(*body, wq_openapi_json, wq_openapi_json_len + 1);
    *len = wq_openapi_json_len;
    return 0;
}

/* --- setup --------------------------------------------------------------- */

struct api_ops *
api_ops_new(struct wq_config *cfg)
{
    struct api_ops *o = xcalloc(1, sizeof *o);

    o->cfg = cfg;
    o->tc_rc = wq_config_transport_conf(cfg, &o->tc, o->tc_err,
        sizeof o->tc_err);
    return o;
}

void
api_ops_free(struct api_ops *o)
{
    if (o == NULL)
        return;
    wq_transport_close(o->t, 1000);
    for (size_t i = 0; i < o->ncache; i++) {
        free(o->cache[i].queue);
        wq_backlog_free(&o->cache[i].b);
    }
    free(o->cache);
    free(o);
}

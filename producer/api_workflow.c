/*
 * api_workflow.c - the workflow routes (see api_workflow.h): the path
 * and body are checked here, copied into one job, and the database
 * thread runs the workflow function of workq_outbox.h and answers.
 *
 * The document's own rules are checked by PostgreSQL
 * (workq.workflow_submit), so this file only checks that a body is a
 * JSON object and passes its text on; PostgreSQL's message about a bad
 * document comes back as the 400's detail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "alloc.h"
#include "api_ops.h"
#include "api_workflow.h"
#include "token.h"
#include "uuid.h"
#include "workq_outbox.h"

#define JSON_TYPE "application/json"

enum wf_route { WF_SUBMIT, WF_GET, WF_ADD, WF_CLOSE };

struct wf_job {
    struct db_job job;          /* first */
    struct api *api;
    wq_http_req *req;
    enum wf_route route;
    char id[WQ_UUID_STRLEN + 1];
    char *text;                 /* the document or the tasks array */
};

static void
job_free(struct wf_job *j)
{
    free(j->text);
    free(j);
}

/* Answers the request; takes ownership of text. */
static void
answer(struct wf_job *j, int code, char *text)
{
    wq_http_complete(j->req, code, JSON_TYPE, text, strlen(text));
}

static int
run(struct db_job *job, wq_store *s, const char *why)
{
    struct wf_job *j = (struct wf_job *)(void *)job;
    char err[WQ_ERRLEN], id[WQ_CLIENT_ID_LEN];
    char *out = NULL;
    int rc, closed = 0;

    if (s == NULL) {
        api_complete_unavailable(j->api, j->req, why);
        job_free(j);
        return 0;
    }
    err[0] = '\0';
    switch (j->route) {
    case WF_SUBMIT:
        if ((rc = wq_client_workflow_submit_tx(wq_store_libpq(s), j->text,
            id, err, sizeof err)) == 0)
            out = xasprintf("{\"id\":\"%s\"}", id);
        break;
    case WF_GET:
        rc = wq_client_workflow_get(wq_store_libpq(s), j->id, &out, err,
            sizeof err);
        break;
    case WF_ADD: {
        char *ids = NULL;

        if ((rc = wq_client_workflow_add_tx(wq_store_libpq(s), j->id,
            j->text, &ids, err, sizeof err)) == 0) {
            out = xasprintf("{\"id\":\"%s\",\"ids\":%s}", j->id, ids);
            free(ids);
        }
        break;
    }
    case WF_CLOSE:
        if ((rc = wq_client_workflow_close_tx(wq_store_libpq(s), j->id,
            &closed, err, sizeof err)) == 0)
            out = xasprintf("{\"id\":\"%s\",\"closed\":%s}", j->id,
                closed ? "true" : "false");
        break;
    default:
        abort();
    }
    if (rc == 0) {
        answer(j, j->route == WF_SUBMIT ? 202 : 200, out);
        out = NULL;
    } else {
        api_complete_store_error(j->api, j->req, rc, err);
    }
    free(out);
    job_free(j);
    return rc == WQ_ESTORE ? rc : 0;
}

/* Which route `p` is, -1 for none; id gets the workflow id of a path
 * (cut to fit: a longer one is no UUID and refused later). */
static int
route_of(const char *p, char *id, size_t idlen)
{
    const char *rest, *end;
    size_t n;

    if (strcmp(p, "/v1/workflows") == 0)
        return WF_SUBMIT;
    if (strncmp(p, "/v1/workflows/", 14) != 0)
        return -1;
    rest = p + 14;
    end = rest + strcspn(rest, "/:");
    n = (size_t)(end - rest);
    snprintf(id, idlen, "%.*s", (int)(n < idlen ? n : idlen - 1), rest);
    if (n >= idlen)
        id[0] = 'x';            /* not a UUID */
    if (*end == '\0')
        return WF_GET;
    if (strcmp(end, "/tasks") == 0)
        return WF_ADD;
    if (strcmp(end, ":close") == 0)
        return WF_CLOSE;
    return -1;
}

int
api_workflow_handle(struct api *a, struct dbq *db,
    const struct wq_http_request *req, unsigned scopes, int *status,
    const char **ctype, char **body, size_t *len)
{
    char id[WQ_UUID_STRLEN + 1] = "";
    int r = route_of(req->path, id, sizeof id), post = r != WF_GET;
    uint8_t bin[WQ_UUID_LEN];
    json_t *doc = NULL, *tasks;
    json_error_t e;
    struct wf_job *j;
    char detail[256];

    if (r < 0)
        return WQ_ENOENT;
    if (strcmp(req->method, post ? "POST" : "GET") != 0)
        return api_wrong_method(a, post ? "POST" : "GET", status, ctype, body,
            len);
    if (api_lacks_scope(a, scopes, post ? WQ_TOKEN_SCOPE_SUBMIT
        : WQ_TOKEN_SCOPE_READ, status, ctype, body, len))
        return 0;
    if (r != WF_SUBMIT && wq_uuid_parse(id, bin) != 0)
        return api_refuse(a, "invalid_id", 400, "the workflow id must be a "
            "UUID (0190a5f8-7c1e-7a3b-9c4d-5e6f708192a3)", status, ctype,
            body, len);
    if (req->nargs > 0)
        return api_refuse(a, "invalid_argument", 400, "this route takes no "
            "query arguments", status, ctype, body, len);
    if (r == WF_SUBMIT || r == WF_ADD) {
        if (req->content_type == NULL || strncasecmp(req->content_type,
            JSON_TYPE, strlen(JSON_TYPE)) != 0)
            return api_refuse(a, "unsupported_media_type", 415, "the body "
                "must be application/json", status, ctype, body, len);
        doc = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES,
            &e);
        if (doc == NULL) {
            snprintf(detail, sizeof detail, "invalid JSON: %s (line %d)",
                e.text, e.line);
            return api_refuse(a, "invalid_json", 400, detail, status, ctype,
                body, len);
        }
        if (!json_is_object(doc) || (r == WF_ADD
            && (json_object_size(doc) != 1
                || !json_is_array(json_object_get(doc, "tasks"))))) {
            json_decref(doc);
            return api_refuse(a, "invalid_argument", 400, r == WF_ADD
                ? "the body must be {\"tasks\": [TASK, ...]}"
                : "the body must be a JSON object (a workflow document)",
                status, ctype, body, len);
        }
    } else if (req->body_len > 0) {
        return api_refuse(a, "invalid_argument", 400, "this route takes no "
            "body", status, ctype, body, len);
    }

    j = xcalloc(1, sizeof *j);
    j->job.run = run;
    j->api = a;
    j->req = req->handle;
    j->route = (enum wf_route)r;
    snprintf(j->id, sizeof j->id, "%s", id);
    if (doc != NULL) {
        tasks = r == WF_ADD ? json_object_get(doc, "tasks") : doc;
        if ((j->text = json_dumps(tasks, JSON_COMPACT)) == NULL)
            abort();            /* out of memory: as xmalloc */
        json_decref(doc);
    }
    if (db_submit(db, &j->job) != 0) {
        job_free(j);
        return api_refuse(a, "unavailable", 503, "the producer is stopping",
            status, ctype, body, len);
    }
    return WQ_EAGAIN;
}

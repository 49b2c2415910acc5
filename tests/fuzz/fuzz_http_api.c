/*
 * fuzz_http_api.c - libFuzzer target for the producer's request
 * handling (producer/api.c): routing, the queue taken from the path,
 * bearer tokens and their scopes, content types, the Idempotency-Key
 * header, single and batch bodies, and the answers of every path, with
 * the broker and PostgreSQL replaced by stubs that answer at once.
 *
 * An input is a small text request, as libmicrohttpd hands it over
 * (method, decoded path without query, three headers, the body):
 *
 *   METHOD PATH\n
 *   Name: value\n            (Content-Type, Authorization, Idempotency-Key;
 *   ...                       "X-Fuzz-Broker: down|closed|nack" steers the
 *   \n                         stub publisher, "X-Fuzz-Db: closed" the
 *   BODY                       stub database queue)
 *
 * Checked for every request, beyond the sanitizers:
 *   - exactly one answer: either api_handle() returns it, or it returns
 *     WQ_EAGAIN and wq_http_complete() is called once (the stubs finish
 *     synchronously, so by the time api_handle returns);
 *   - the status is one the API documents, and every answer but /metrics
 *     is a JSON object; errors carry "error" and "detail" strings;
 *   - nothing under /v1/ succeeds (2xx) without a token that has the
 *     route's scope, by an oracle written here from the tokens file;
 *   - a valid token never appears in an answer unless the request itself
 *     carried it elsewhere (path, Idempotency-Key or body).
 *
 * wq_http_complete is replaced with the linker's --wrap (Makefile).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "api.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "metrics.h"
#include "publisher.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
void __wrap_wq_http_complete(wq_http_req *req, int status,
    const char *content_type, char *body, size_t body_len);

#define CHECK(cond, what) do {                                              \
    if (!(cond)) {                                                          \
        fprintf(stderr, "fuzz_http_api: %s (%s:%d)\n", (what), __FILE__,    \
            __LINE__);                                                      \
        abort();                                                            \
    }                                                                       \
} while (0)

/* The tokens the API knows, and what the oracle says each may do. */
static const struct {
    const char *token;
    unsigned scopes;
} known[] = {
    { "submit-token", WQ_TOKEN_SCOPE_SUBMIT },
    { "read-token", WQ_TOKEN_SCOPE_READ },
    { "admin-token", WQ_TOKEN_SCOPES_ALL },      /* a plaintext line */
};

static struct wq_config cfg;
static wq_metrics *metrics;
static struct api *api;
static char handle_obj;                 /* the one request's handle */
#define HANDLE ((wq_http_req *)(void *)&handle_obj)

/* What the stubs do, set per input. */
static enum { B_OK, B_DOWN, B_CLOSED, B_NACK } broker;
static int db_closed;

/* What the current request got. */
static int answers, answer_status;
static char *answer_body;
static size_t answer_len;

/* --- stubs: the publisher, the database thread, the completion ---------- */

int
pub_submit(struct publisher *p, struct pub_msg *head, size_t n)
{
    (void)p;
    if (broker == B_CLOSED)
        return WQ_ECLOSED;
    for (struct pub_msg *m = head, *next; m != NULL && n > 0; m = next, n--) {
        next = m->next;
        if (broker == B_OK)
            m->done(m, 0, NULL);
        else if (broker == B_NACK)
            m->done(m, WQ_ENACK, "fuzz: the broker refused");
        else
            m->done(m, WQ_EBROKER, "fuzz: the broker is down");
    }
    return 0;
}

int
pub_broker_up(const struct publisher *p)
{
    (void)p;
    return broker == B_OK;
}

int
db_submit(struct dbq *d, struct db_job *job)
{
    (void)d;
    if (db_closed)
        return WQ_ECLOSED;
    /* no PostgreSQL here: the job runs its "unavailable" path */
    job->run(job, NULL, "fuzz: no PostgreSQL");
    return 0;
}

void __wrap_wq_http_retry_after(wq_http_req *req, unsigned seconds);

/* The handle is not a real request: keep the field away from it. */
void
__wrap_wq_http_retry_after(wq_http_req *req, unsigned seconds)
{
    CHECK(req == HANDLE, "Retry-After for a request that is not this one");
    (void)seconds;
}

void __wrap_wq_http_set_fields(wq_http_req *req, const char *const *fields);

/* The same for the /ui answers' header fields. */
void
__wrap_wq_http_set_fields(wq_http_req *req, const char *const *fields)
{
    CHECK(req == HANDLE, "header fields for a request that is not this one");
    (void)fields;
}

void
__wrap_wq_http_complete(wq_http_req *req, int status,
    const char *content_type, char *body, size_t body_len)
{
    (void)content_type;
    CHECK(req == HANDLE, "completed a request that is not this one");
    answers++;
    answer_status = status;
    free(answer_body);
    answer_body = body;
    answer_len = body_len;
}

/* --- set-up ------------------------------------------------------------ */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char path[] = "/tmp/wq-fuzz-tokens.XXXXXX";
    struct api_conf ac;
    char err[WQ_ERRLEN], e[WQ_TOKEN_ENTRY_LEN];
    FILE *f;
    int fd;

    (void)argc; (void)argv;
    CHECK((fd = mkstemp(path)) >= 0, "mkstemp");
    CHECK((f = fdopen(fd, "w")) != NULL, "fdopen");
    CHECK(wq_token_entry("submit-token", 12, e) == 0, "entry");
    fprintf(f, "# fuzz\n%s submit # s\n", e);
    CHECK(wq_token_entry("read-token", 10, e) == 0, "entry");
    fprintf(f, "%s read\nadmin-token admin\n", e);
    fclose(f);

    wq_config_defaults(&cfg);
    free(cfg.producer.tokens_file);
    cfg.producer.tokens_file = strdup(path);
    cfg.producer.batch_max = 4;
    metrics = wq_metrics_new();
    ac.cfg = &cfg;
    ac.pub = NULL;
    ac.db = NULL;
    ac.metrics = metrics;
    CHECK(api_new(&ac, &api, err, sizeof err) == 0, err);
    /* any non-NULL pointer: the stubs never look at them */
    api_set_backends(api, (struct publisher *)(void *)&handle_obj,
        (struct dbq *)(void *)&handle_obj);
    unlink(path);
    return 0;
}

/* --- the oracle ---------------------------------------------------------- */

/* The scopes the Authorization header grants (independent of api.c). */
static unsigned
oracle_scopes(const char *auth)
{
    const char *t;

    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
        return 0;
    for (t = auth + 7; *t == ' '; t++)
        ;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(t, known[i].token) == 0)
            return known[i].scopes;
    return 0;
}

static int
status_known(int s)
{
    static const int ok[] = { 200, 202, 400, 401, 403, 404, 405, 413, 415,
        429, 503 };

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (s == ok[i])
            return 1;
    return 0;
}

static void
check_answer(const char *method, const char *path, const char *auth,
    const char *key, const char *body, size_t blen)
{
    json_t *j;
    unsigned scopes = oracle_scopes(auth);

    CHECK(status_known(answer_status), "an undocumented status");
    if (strcmp(path, "/metrics") == 0 && answer_status == 200)
        return;
    /* the dashboard's files (public; their 404 is JSON as any other) */
    if (strncmp(path, "/ui", 3) == 0 && answer_status == 200)
        return;
    CHECK(answer_body != NULL, "an answer without a body");
    j = json_loadb(answer_body, answer_len, 0, NULL);
    CHECK(json_is_object(j), "an answer that is not a JSON object");
    if (answer_status >= 400) {
        CHECK(json_is_string(json_object_get(j, "error")),
            "an error without \"error\"");
        CHECK(json_is_string(json_object_get(j, "detail")),
            "an error without \"detail\"");
    }
    json_decref(j);
    /* the OpenAPI document is public; the operator's POSTs (retry,
     * cancel, dead:replay, dead:purge) need admin */
    if (strncmp(path, "/v1/", 4) == 0 && answer_status < 300
        && strcmp(path, "/v1/openapi.json") != 0) {
        unsigned need = strcmp(method, "GET") == 0 ? WQ_TOKEN_SCOPE_READ
            : strncmp(path, "/v1/queues/", 11) == 0 ? WQ_TOKEN_SCOPE_SUBMIT
            : WQ_TOKEN_SCOPE_ADMIN;

        CHECK((scopes & need) == need,
            "a /v1/ request succeeded without the scope it needs");
    }
    if (scopes != 0) {          /* a real token: a secret */
        const char *t = auth + 7;

        while (*t == ' ')
            t++;
        if (strstr(path, t) == NULL
            && (key == NULL || strstr(key, t) == NULL)
            && memmem(body, blen, t, strlen(t)) == NULL)
            CHECK(memmem(answer_body, answer_len, t, strlen(t)) == NULL,
                "an answer repeats the bearer token");
    }
}

/* --- one input ----------------------------------------------------------- */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wq_http_request req;
    char *text = malloc(size + 1), *p, *nl, *sp, *body;
    const char *ctype;
    char *out = NULL;
    size_t len = 0;
    int status = 0, rc;

    memcpy(text, data, size);
    text[size] = '\0';
    memset(&req, 0, sizeof req);
    broker = B_OK;
    db_closed = 0;

    /* the request line: the path ends at the first NUL, as MHD's does */
    p = text;
    if ((nl = memchr(p, '\n', size)) == NULL)
        goto out;
    *nl = '\0';
    if ((sp = strchr(p, ' ')) == NULL)
        goto out;
    *sp = '\0';
    req.method = p;
    req.client_addr = "127.0.0.1";
    req.path = sp + 1;
    if (req.path[0] != '/')
        goto out;
    /* headers, to an empty line */
    p = nl + 1;
    for (;;) {
        char *colon, *v;

        if ((size_t)(p - text) >= size)
            goto out;
        if ((nl = memchr(p, '\n', size - (size_t)(p - text))) == NULL)
            goto out;
        *nl = '\0';
        if (*p == '\0') {
            p = nl + 1;
            break;
        }
        if ((colon = strchr(p, ':')) != NULL) {
            *colon = '\0';
            for (v = colon + 1; *v == ' '; v++)
                ;
            if (strcasecmp(p, "content-type") == 0)
                req.content_type = v;
            else if (strcasecmp(p, "authorization") == 0)
                req.authorization = v;
            else if (strcasecmp(p, "idempotency-key") == 0)
                req.idempotency_key = v;
            else if (strcasecmp(p, "x-fuzz-broker") == 0)
                broker = strcmp(v, "down") == 0 ? B_DOWN
                    : strcmp(v, "closed") == 0 ? B_CLOSED
                    : strcmp(v, "nack") == 0 ? B_NACK : B_OK;
            else if (strcasecmp(p, "x-fuzz-db") == 0)
                db_closed = strcmp(v, "closed") == 0;
        }
        p = nl + 1;
    }
    /* the body: the rest, as its own NUL-terminated copy (http.c's) */
    len = size - (size_t)(p - text);
    body = malloc(len + 1);
    memcpy(body, p, len);
    body[len] = '\0';
    req.body = body;
    req.body_len = len;
    req.handle = HANDLE;

    answers = 0;
    answer_body = NULL;
    rc = api_handle(api, &req, &status, &ctype, &out, &len);
    if (rc == WQ_EAGAIN) {
        CHECK(out == NULL, "a deferred request with an answer body");
        CHECK(answers == 1, "a deferred request not answered exactly once");
    } else {
        CHECK(rc == 0, "api_handle returned neither 0 nor WQ_EAGAIN");
        CHECK(answers == 0, "an answered request also completed");
        answers = 1;
        answer_status = status;
        answer_body = out;
        answer_len = len;
    }
    check_answer(req.method, req.path, req.authorization,
        req.idempotency_key, req.body, req.body_len);
    free(answer_body);
    answer_body = NULL;
    free(body);
out:
    free(text);
    return 0;
}

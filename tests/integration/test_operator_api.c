/*
 * test_operator_api.c - the operator routes of workq-producer's HTTP API
 * (producer/api_ops.h), the real daemon on a port of its own against a
 * fresh database per test and the private RabbitMQ: filters, keyset
 * pages (two pages, no overlap, no gap), scopes (no token 401, a read
 * token 403 on every POST), the effects of retry, cancel, replay and
 * purge in PostgreSQL and their repeats, undecodable messages and their
 * raw bytes, stats with the broker's
 * backlog, history, workers and periodic tasks; that the CLI's --json
 * and the API answer the same objects; the query plans of the lists on
 * 50,000 rows; and the OpenAPI document: every route in it, every
 * documented route answering, and answers the server gave validated
 * against it with npm's validators (tests/openapi, node).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "sched_test.h"
#include "store_admin.h"
#include "store_int.h"
#include "wq_test_producer.h"

#define ADMIN   "admin-token-for-the-operator-tests"
#define READER  "read-token-for-the-operator-tests"
#define JSON    "application/json"

static char resp[1 << 20];

struct api {
    const char *ci;             /* the database */
    wq_store *s;
    pid_t pid;
    int port;
};

/* A producer on a fresh database, with an admin and a read token and
 * one periodic task ("nightly", queue "a"). */
static struct api
api_start(void)
{
    static char tokens[600];
    struct api a;
    const char *env[32];
    size_t n;
    FILE *f;

    a.ci = wq_test_pg_create_migrated_db();
    a.s = wq_test_pg_open(a.ci);
    n = wq_test_env_for(WQ_TRANSPORT_RABBITMQ, a.ci, env, 20);
    f = fopen("tokens", "w");
    assert_non_null(f);
    fprintf(f, "%s admin\n%s read\n", ADMIN, READER);
    fclose(f);
    snprintf(tokens, sizeof tokens, "WORKQ_PRODUCER_TOKENS_FILE=%s/tokens",
        wq_test_env("WQ_TEST_TMPDIR", "."));
    env[n++] = tokens;
    env[n++] = "WORKQ_PRODUCER_QUEUES=*";
    env[n++] = "WORKQ_PERIODIC=( { name = \"nightly\"; schedule = "
        "\"0 3 * * *\"; queue = \"a\"; type = \"report\"; } )";
    env[n] = NULL;
    wq_test_producer_start("127.0.0.1", env, NULL, NULL, NULL, &a.pid,
        &a.port);
    return a;
}

static void
api_stop(struct api *a)
{
    assert_int_equal(wq_test_producer_stop(&a->pid), 0);
    wq_store_close(a->s);
}

/* METHOD path with `token` and a JSON body (may be NULL); the answer's
 * body in resp.  Returns the status. */
static int
req(struct api *a, const char *method, const char *token, const char *body,
    const char *fmt, ...)
{
    char path[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    return wq_test_http_request(a->port, method, path, body != NULL ? JSON
        : NULL, token, NULL, body, body != NULL ? strlen(body) : 0, resp,
        sizeof resp);
}

/* GET with the read token, 200 expected; the answer parsed. */
static json_t *
get(struct api *a, const char *fmt, ...)
{
    char path[2048];
    json_error_t e;
    json_t *j;
    va_list ap;
    int st;

    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    st = wq_test_http_request(a->port, "GET", path, NULL, READER, NULL, NULL,
        0, resp, sizeof resp);
    if (st != 200)
        fail_msg("GET %s: %d %s", path, st, resp);
    if ((j = json_loads(resp, 0, &e)) == NULL)
        fail_msg("GET %s: not JSON (%s): %s", path, e.text, resp);
    return j;
}

/* POST with the admin token, `want` expected; the answer parsed. */
static json_t *
post(struct api *a, int want, const char *body, const char *fmt, ...)
{
    char path[2048];
    json_t *j;
    va_list ap;
    int st;

    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    st = wq_test_http_request(a->port, "POST", path, body != NULL ? JSON
        : NULL, ADMIN, NULL, body, body != NULL ? strlen(body) : 0, resp,
        sizeof resp);
    if (st != want)
        fail_msg("POST %s: %d, not %d: %s", path, st, want, resp);
    if ((j = json_loads(resp, 0, NULL)) == NULL)
        fail_msg("POST %s: not JSON: %s", path, resp);
    return j;
}

static const char *
jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_string(v))
        fail_msg("no string \"%s\" in %s", key, json_dumps(o, 0));
    return json_string_value(v);
}

static long long
jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_integer(v))
        fail_msg("no integer \"%s\" in %s", key, json_dumps(o, 0));
    return json_integer_value(v);
}

static const char *
state_of(struct api *a, const char *id)
{
    return textf(a->s, "SELECT state FROM workq.tasks WHERE id = '%s'", id);
}

/* A dead task that died `ago`, with one failed attempt. */
static const char *
dead_task(wq_store *s, const char *q, const char *type, const char *error,
    const char *ago)
{
    static char id[40];
    char extra[512];

    snprintf(extra, sizeof extra, ", now() - interval '%s', '%s'", ago,
        error);
    snprintf(id, sizeof id, "%s", insert_task(s, q, type, NULL, "dead", 1, 1,
        NULL, ", finished_at, last_error", extra));
    sqlf(s, "INSERT INTO workq.attempts (task_id, attempt, started_at, "
        "finished_at, duration_ms, worker, outcome, error) VALUES "
        "('%s', 1, now() - interval '%s', now() - interval '%s', 5, 'w1', "
        "'failed', '%s')", id, ago, ago, error);
    return id;
}

/* ---- tasks ------------------------------------------------------------- */

/* Every id of every page of `query`, pages of `limit`. */
static json_t *
all_pages(struct api *a, const char *query, int limit, int *pages)
{
    json_t *ids = json_array();
    char cursor[200] = "";

    *pages = 0;
    for (;;) {
        json_t *j = get(a, "/v1/tasks?%slimit=%d%s%s", query, limit,
            cursor[0] ? "&cursor=" : "", cursor);
        json_t *v = json_object_get(j, "tasks"), *next;

        (*pages)++;
        assert_true(json_array_size(v) <= (size_t)limit);
        for (size_t i = 0; i < json_array_size(v); i++)
            json_array_append(ids, json_object_get(json_array_get(v, i),
                "id"));
        next = json_object_get(j, "next_cursor");
        if (json_is_null(next)) {
            json_decref(j);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        json_decref(j);
        assert_true(*pages < 100);
    }
    return ids;
}

static void
test_api_tasks_list(void **state)
{
    struct api a = api_start();
    char ids[7][40];
    json_t *j, *v, *got;
    int pages;

    (void)state;
    /* created minutes apart, oldest first; two share a time (then the
     * id decides) */
    for (int i = 0; i < 7; i++) {
        char extra[128];

        snprintf(extra, sizeof extra, ", now() - interval '%d minutes', %s",
            i == 6 ? 1 : 10 - i, i < 3 ? "now()" : "NULL");
        snprintf(ids[i], sizeof ids[i], "%s", insert_task(a.s,
            i < 5 ? "a" : "b", i % 2 ? "odd" : "even", NULL,
            i < 3 ? "succeeded" : "queued", 0, 3, NULL,
            ", created_at, finished_at", extra));
    }
    sqlf(a.s, "UPDATE workq.tasks SET idempotency_key = 'order-' || id, "
        "last_error = repeat('x', 300) "
        "WHERE state = 'succeeded'");
    sqlf(a.s, "UPDATE workq.tasks SET created_at = (SELECT created_at FROM "
        "workq.tasks WHERE id = '%s') WHERE id = '%s'", ids[4], ids[3]);

    /* newest first, the summary fields */
    j = get(&a, "/v1/tasks");
    v = json_object_get(j, "tasks");
    assert_int_equal(json_array_size(v), 7);
    assert_string_equal(jstr(json_array_get(v, 0), "id"), ids[6]);
    assert_string_equal(jstr(json_array_get(v, 6), "id"), ids[0]);
    assert_true(json_is_null(json_object_get(j, "next_cursor")));
    assert_int_equal(strlen(jstr(json_array_get(v, 6), "last_error")), 200);
    assert_non_null(json_object_get(json_array_get(v, 0), "payload_bytes"));
    assert_null(json_object_get(json_array_get(v, 0), "payload"));
    json_decref(j);

    /* filters */
    j = get(&a, "/v1/tasks?queue=a&state=queued");
    assert_int_equal(json_array_size(json_object_get(j, "tasks")), 2);
    json_decref(j);
    j = get(&a, "/v1/tasks?type=odd");
    assert_int_equal(json_array_size(json_object_get(j, "tasks")), 3);
    json_decref(j);
    j = get(&a, "/v1/tasks?key_prefix=order-");
    assert_int_equal(json_array_size(json_object_get(j, "tasks")), 3);
    json_decref(j);
    j = get(&a, "/v1/tasks?created_after=%lld", (long long)(wq_clock_wall_ms()
        - 150000));
    assert_int_equal(json_array_size(json_object_get(j, "tasks")), 1);
    json_decref(j);
    j = get(&a, "/v1/tasks?created_before=2000-01-01T00:00:00Z");
    assert_int_equal(json_array_size(json_object_get(j, "tasks")), 0);
    json_decref(j);

    /* pages of 2, and of 3 with a filter: no overlap, no gap, same order */
    got = all_pages(&a, "", 2, &pages);
    assert_int_equal(pages, 4);
    assert_int_equal(json_array_size(got), 7);
    {
        char want[400], *have = json_dumps(got, JSON_COMPACT);

        snprintf(want, sizeof want, "%s", textf(a.s, "SELECT json_agg(id "
            "ORDER BY created_at DESC, id DESC)::text FROM workq.tasks"));
        for (char *c = want; *c != '\0'; c++)     /* json_agg's ", " */
            if (*c == ' ')
                memmove(c, c + 1, strlen(c));
        assert_string_equal(have, want);
        free(have);
    }
    json_decref(got);
    got = all_pages(&a, "queue=a&", 2, &pages);
    assert_int_equal(json_array_size(got), 5);
    assert_int_equal(pages, 3);
    json_decref(got);

    /* bad input, refused */
    assert_int_equal(req(&a, "GET", READER, NULL, "/v1/tasks?cursor=abc"),
        400);
    assert_int_equal(req(&a, "GET", READER, NULL, "/v1/tasks?state=zombie"),
        400);
    assert_int_equal(req(&a, "GET", READER, NULL, "/v1/tasks?limit=501"),
        400);
    assert_int_equal(req(&a, "GET", READER, NULL, "/v1/tasks?qeue=a"), 400);
    assert_non_null(strstr(resp, "qeue"));
    assert_int_equal(req(&a, "GET", NULL, NULL, "/v1/tasks"), 401);
    assert_int_equal(req(&a, "POST", READER, NULL, "/v1/tasks"), 405);
    api_stop(&a);
}

/* ---- retry and cancel --------------------------------------------------- */

static void
test_api_retry_cancel(void **state)
{
    struct api a = api_start();
    char dead[40], ok[40], queued[40], running[40];
    json_t *j;

    (void)state;
    snprintf(dead, sizeof dead, "%s", dead_task(a.s, "a", "t", "boom",
        "1 minute"));
    snprintf(ok, sizeof ok, "%s", insert_task(a.s, "a", "t", NULL,
        "succeeded", 1, 3, NULL, ", finished_at", ", now()"));
    snprintf(queued, sizeof queued, "%s", insert_task(a.s, "a", "t", NULL,
        "queued", 0, 3, NULL, "", ""));
    snprintf(running, sizeof running, "%s", insert_task(a.s, "a", "t", NULL,
        "running", 1, 3, NULL, ", lease_owner, lease_expires_at",
        ", 'w1', now() + interval '1 minute'"));

    /* scopes first: nothing changes */
    assert_int_equal(req(&a, "POST", READER, NULL, "/v1/tasks/%s:retry",
        dead), 403);
    assert_int_equal(req(&a, "POST", NULL, NULL, "/v1/tasks/%s:retry", dead),
        401);
    assert_int_equal(req(&a, "POST", READER, NULL, "/v1/tasks/%s:cancel",
        queued), 403);
    assert_string_equal(state_of(&a, dead), "dead");
    assert_string_equal(state_of(&a, queued), "queued");

    /* retry: a new series of 4 attempts */
    j = post(&a, 200, "{\"attempts\": 4}", "/v1/tasks/%s:retry", dead);
    assert_true(json_is_true(json_object_get(j, "retried")));
    assert_string_equal(jstr(j, "state"), "retry_wait");
    assert_true(json_is_null(json_object_get(j, "reason")));
    json_decref(j);
    assert_string_equal(state_of(&a, dead), "retry_wait");
    assert_int_equal(wq_test_pg_numf(a.s, "SELECT max_attempts FROM "
        "workq.tasks WHERE id = '%s'", dead), 5);
    /* again: harmless (due now, the same series) */
    j = post(&a, 200, NULL, "/v1/tasks/%s:retry", dead);
    assert_string_equal(jstr(j, "state"), "retry_wait");
    json_decref(j);
    assert_int_equal(wq_test_pg_numf(a.s, "SELECT max_attempts FROM "
        "workq.tasks WHERE id = '%s'", dead), 5);
    /* refused by the state: an answer, not an error */
    j = post(&a, 200, NULL, "/v1/tasks/%s:retry", ok);
    assert_true(json_is_false(json_object_get(j, "retried")));
    assert_string_equal(jstr(j, "state"), "succeeded");
    assert_non_null(strstr(jstr(j, "reason"), "succeeded"));
    json_decref(j);
    assert_int_equal(req(&a, "POST", ADMIN, "{\"attempts\": 0}",
        "/v1/tasks/%s:retry", dead), 400);
    assert_int_equal(req(&a, "POST", ADMIN, NULL, "/v1/tasks/%s:retry",
        "0190a5f8-7c1e-7a3b-9c4d-5e6f708192a3"), 404);
    assert_int_equal(req(&a, "POST", ADMIN, NULL, "/v1/tasks/nope:retry"),
        400);
    assert_int_equal(req(&a, "GET", ADMIN, NULL, "/v1/tasks/%s:retry", dead),
        405);

    /* cancel: once, then it is final */
    j = post(&a, 200, NULL, "/v1/tasks/%s:cancel", queued);
    assert_true(json_is_true(json_object_get(j, "cancelled")));
    assert_string_equal(jstr(j, "state"), "cancelled");
    json_decref(j);
    assert_string_equal(state_of(&a, queued), "cancelled");
    j = post(&a, 200, NULL, "/v1/tasks/%s:cancel", queued);
    assert_true(json_is_false(json_object_get(j, "cancelled")));
    assert_string_equal(jstr(j, "state"), "cancelled");
    assert_non_null(json_object_get(j, "reason"));
    json_decref(j);
    /* running: its worker is asked */
    j = post(&a, 200, NULL, "/v1/tasks/%s:cancel", running);
    assert_true(json_is_false(json_object_get(j, "cancelled")));
    assert_string_equal(jstr(j, "state"), "running");
    assert_true(json_is_true(json_object_get(j, "stop_requested")));
    assert_non_null(strstr(jstr(j, "reason"), "worker"));
    json_decref(j);
    api_stop(&a);
}

/* ---- dead letters ------------------------------------------------------- */

static void
test_api_dead(void **state)
{
    struct api a = api_start();
    char d[6][40], other[40], body[512];
    json_t *j, *v, *ids;
    char cursor[200];

    (void)state;
    for (int i = 0; i < 6; i++) {
        char ago[32];

        snprintf(ago, sizeof ago, "%d minutes", 10 * (i + 1));
        snprintf(d[i], sizeof d[i], "%s", dead_task(a.s, i < 4 ? "a" : "b",
            i % 2 ? "send" : "bill", i < 3 ? "SMTP 550 refused" : "timeout",
            ago));
    }
    snprintf(other, sizeof other, "%s", insert_task(a.s, "a", "t", NULL,
        "queued", 0, 3, NULL, "", ""));

    /* list: newest finished first, filters */
    j = get(&a, "/v1/dead");
    v = json_object_get(j, "tasks");
    assert_int_equal(json_array_size(v), 6);
    assert_string_equal(jstr(json_array_get(v, 0), "id"), d[0]);
    assert_string_equal(jstr(json_array_get(v, 0), "state"), "dead");
    json_decref(j);
    j = get(&a, "/v1/dead?queue=a&error=smtp");
    assert_int_equal(json_array_size(json_object_get(j, "tasks")), 3);
    json_decref(j);
    j = get(&a, "/v1/dead?type=send&older_than_ms=%d", 25 * 60000);
    assert_int_equal(json_array_size(json_object_get(j, "tasks")), 2);
    json_decref(j);
    j = get(&a, "/v1/dead?newer_than_ms=%d", 25 * 60000);
    assert_int_equal(json_array_size(json_object_get(j, "tasks")), 2);
    json_decref(j);
    /* two pages of 4 and 2 */
    j = get(&a, "/v1/dead?limit=4");
    assert_int_equal(json_array_size(json_object_get(j, "tasks")), 4);
    snprintf(cursor, sizeof cursor, "%s", jstr(j, "next_cursor"));
    assert_string_equal(jstr(json_array_get(json_object_get(j, "tasks"), 3),
        "id"), d[3]);
    json_decref(j);
    j = get(&a, "/v1/dead?limit=4&cursor=%s", cursor);
    v = json_object_get(j, "tasks");
    assert_int_equal(json_array_size(v), 2);
    assert_string_equal(jstr(json_array_get(v, 0), "id"), d[4]);
    assert_string_equal(jstr(json_array_get(v, 1), "id"), d[5]);
    assert_true(json_is_null(json_object_get(j, "next_cursor")));
    json_decref(j);

    /* one: a dead task with its attempts; 404 for one that is not dead */
    j = get(&a, "/v1/dead/%s", d[2]);
    assert_string_equal(jstr(j, "id"), d[2]);
    assert_int_equal(json_array_size(json_object_get(j, "attempts")), 1);
    json_decref(j);
    assert_int_equal(req(&a, "GET", READER, NULL, "/v1/dead/%s", other),
        404);

    /* scopes and bad bodies: nothing changes */
    snprintf(body, sizeof body, "{\"ids\": [\"%s\"]}", d[0]);
    assert_int_equal(req(&a, "POST", READER, body, "/v1/dead:replay"), 403);
    assert_int_equal(req(&a, "POST", READER, body, "/v1/dead:purge"), 403);
    assert_int_equal(req(&a, "POST", NULL, body, "/v1/dead:purge"), 401);
    assert_int_equal(req(&a, "POST", ADMIN, "{\"queue\": \"a\"}",
        "/v1/dead:purge"), 400);    /* filters need a limit */
    assert_int_equal(req(&a, "POST", ADMIN, "{\"queue\": \"a\", \"limit\": "
        "10001}", "/v1/dead:purge"), 400);
    assert_int_equal(req(&a, "POST", ADMIN, "{\"ids\": [\"x\"]}",
        "/v1/dead:replay"), 400);
    assert_int_equal(req(&a, "POST", ADMIN, "{\"qeue\": \"a\", \"limit\": 5}",
        "/v1/dead:replay"), 400);
    assert_int_equal(req(&a, "POST", ADMIN, NULL, "/v1/dead:replay"), 400);
    assert_int_equal(wq_test_pg_num(a.s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'dead'"), 6);

    /* replay by id, then again: 1, then 0 */
    j = post(&a, 200, body, "/v1/dead:replay");
    assert_int_equal(jint(j, "replayed"), 1);
    ids = json_object_get(j, "ids");
    assert_string_equal(json_string_value(json_array_get(ids, 0)), d[0]);
    json_decref(j);
    assert_string_equal(state_of(&a, d[0]), "retry_wait");
    j = post(&a, 200, body, "/v1/dead:replay");
    assert_int_equal(jint(j, "replayed"), 0);
    json_decref(j);

    /* purge by filter with a limit, then again */
    j = post(&a, 200, "{\"queue\": \"a\", \"error\": \"smtp\", \"limit\": 1}",
        "/v1/dead:purge");
    assert_int_equal(jint(j, "purged"), 1);
    json_decref(j);
    j = post(&a, 200, "{\"queue\": \"a\", \"error\": \"smtp\", \"limit\": 100}",
        "/v1/dead:purge");
    assert_int_equal(jint(j, "purged"), 1);
    json_decref(j);
    j = post(&a, 200, "{\"queue\": \"a\", \"error\": \"smtp\", \"limit\": 100}",
        "/v1/dead:purge");
    assert_int_equal(jint(j, "purged"), 0);
    json_decref(j);
    assert_int_equal(wq_test_pg_numf(a.s, "SELECT count(*) FROM workq.tasks "
        "WHERE id IN ('%s', '%s')", d[1], d[2]), 0);
    assert_int_equal(wq_test_pg_numf(a.s, "SELECT count(*) FROM "
        "workq.attempts WHERE task_id IN ('%s', '%s')", d[1], d[2]), 0);
    assert_int_equal(wq_test_pg_num(a.s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'dead'"), 3);
    /* replay with filters and attempts */
    j = post(&a, 200, "{\"queue\": \"b\", \"limit\": 10, \"attempts\": 3}",
        "/v1/dead:replay");
    assert_int_equal(jint(j, "replayed"), 2);
    json_decref(j);
    assert_int_equal(wq_test_pg_numf(a.s, "SELECT max_attempts FROM "
        "workq.tasks WHERE id = '%s'", d[4]), 4);
    api_stop(&a);
}

/* ---- stats, history, workers, periodic ---------------------------------- */

static void
test_api_stats_and_more(void **state)
{
    struct api a = api_start();
    json_t *j, *q, *b, *s, *w, *p;
    char out[1 << 14];
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "opsapi");

    (void)state;
    for (int i = 0; i < 3; i++)
        insert_task(a.s, queue, "t", NULL, "succeeded", 1, 3, NULL,
            ", finished_at", ", now() - interval '2 minutes'");
    dead_task(a.s, queue, "t", "boom", "30 seconds");
    insert_task(a.s, queue, "t", NULL, "queued", 0, 3, NULL, "", "");

    /* stats: PostgreSQL's states and the broker's (a queue it does not
     * have yet: exists false, ready 0) */
    j = get(&a, "/v1/stats?queue=%s", queue);
    q = json_array_get(json_object_get(j, "queues"), 0);
    assert_non_null(q);
    assert_string_equal(jstr(q, "queue"), queue);
    assert_int_equal(jint(q, "succeeded"), 3);
    assert_int_equal(jint(q, "dead"), 1);
    assert_int_equal(jint(q, "queued"), 1);
    assert_int_equal(jint(q, "dead_1m"), 1);
    b = json_object_get(q, "broker");
    assert_true(json_is_object(b));
    assert_int_equal(jint(b, "ready"), 0);
    assert_true(json_is_null(json_object_get(j, "broker_error")));
    /* the CLI's --json is the same object, by the same code */
    {
        const char *argv[] = { NULL, "--json", "stats", "--queue", queue,
            NULL };
        const char *env[16];
        json_t *c;

        argv[0] = wq_test_bin("workq");
        wq_test_env_for(WQ_TRANSPORT_RABBITMQ, a.ci, env, 16);
        assert_int_equal(wq_test_cmd(argv, env, NULL, out, sizeof out), 0);
        c = json_loads(out, 0, NULL);
        assert_non_null(c);
        /* ages move on between the two */
        for (int k = 0; k < 2; k++) {
            json_t *x = k == 0 ? json_array_get(c, 0) : q;

            json_object_del(x, "oldest_waiting_s");
            json_object_del(x, "oldest_waiting_seconds");
        }
        if (!json_equal(json_array_get(c, 0), q))
            fail_msg("CLI %s\nAPI %s", json_dumps(json_array_get(c, 0), 0),
                json_dumps(q, 0));
        json_decref(c);
    }
    json_decref(j);
    assert_int_equal(req(&a, "GET", READER, NULL, "/v1/stats?queue="), 400);

    /* history: 3 succeeded two minutes ago, 1 dead and 1 failed attempt
     * within the last minute */
    j = get(&a, "/v1/stats/history?queue=%s&minutes=5", queue);
    assert_int_equal(jint(j, "step_s"), 60);
    s = json_array_get(json_object_get(j, "series"), 0);
    assert_non_null(s);
    assert_int_equal(json_array_size(json_object_get(s, "succeeded")), 5);
    {
        long long ok = 0, dead = 0, failed = 0;

        for (size_t i = 0; i < 5; i++) {
            ok += json_integer_value(json_array_get(json_object_get(s,
                "succeeded"), i));
            dead += json_integer_value(json_array_get(json_object_get(s,
                "dead"), i));
            failed += json_integer_value(json_array_get(json_object_get(s,
                "failed"), i));
        }
        assert_int_equal(ok, 3);
        assert_int_equal(dead, 1);
        assert_int_equal(failed, 1);
    }
    json_decref(j);
    assert_int_equal(req(&a, "GET", READER, NULL, "/v1/stats/history?"
        "minutes=1441"), 400);

    /* workers */
    sqlf(a.s, "INSERT INTO workq.workers (id, pid, hostname, version, queues, "
        "in_flight, heartbeat_at, stopped_at) VALUES "
        "('w-live', 10, 'h1', 'v1', '{mail,sms}', 3, now(), NULL), "
        "('w-stopped', 12, 'h3', 'v1', '{mail}', 0, now(), now())");
    j = get(&a, "/v1/workers");
    w = json_object_get(j, "workers");
    assert_int_equal(json_array_size(w), 1);
    assert_string_equal(jstr(json_array_get(w, 0), "status"), "live");
    assert_int_equal(jint(json_array_get(w, 0), "in_flight"), 3);
    json_decref(j);
    j = get(&a, "/v1/workers?all=true");
    assert_int_equal(json_array_size(json_object_get(j, "workers")), 2);
    json_decref(j);
    assert_int_equal(req(&a, "GET", READER, NULL, "/v1/workers?all=yes"),
        400);

    /* periodic: the configuration's task, its last tick and the next */
    j = get(&a, "/v1/periodic");
    p = json_array_get(json_object_get(j, "periodic"), 0);
    assert_string_equal(jstr(p, "name"), "nightly");
    assert_true(json_is_null(json_object_get(p, "last_run_at")));
    assert_non_null(strstr(jstr(p, "next_run_at"), "T03:00:00"));
    json_decref(j);
    sqlf(a.s, "INSERT INTO workq.cron_ticks (name, tick_at) VALUES "
        "('nightly', '2026-01-02T03:00:00Z'), ('nightly', "
        "'2026-01-03T03:00:00Z')");
    j = get(&a, "/v1/periodic");
    p = json_array_get(json_object_get(j, "periodic"), 0);
    assert_string_equal(jstr(p, "last_run_at"), "2026-01-03T03:00:00.000Z");
    json_decref(j);
    api_stop(&a);
}

/* ---- query plans -------------------------------------------------------- */

/* EXPLAIN of statement q with params p; the plan as text in buf. */
static const char *
plan(wq_store *s, const char *sql, int n, const char *const *p, char *buf,
    size_t len)
{
    char err[WQ_ERRLEN], *text;
    struct pg_result *r;
    size_t used = 0;

    if (asprintf(&text, "EXPLAIN %s", sql) < 0)
        abort();
    if (wq_store_query(s, text, n, p, 0, &r, "explain", err, sizeof err)
        != 0)
        fail_msg("%s", err);
    free(text);
    buf[0] = '\0';
    for (int i = 0; i < wq_store_nrows(r); i++)
        used += (size_t)snprintf(buf + used, used < len ? len - used : 0,
            "%s\n", wq_store_value(r, i, 0));
    wq_store_rows_free(r);
    return buf;
}

/*
 * On 50,000 tasks (every state, 20 queues) after ANALYZE, the pages of
 * GET /v1/tasks (unfiltered, by queue, by queue and state, after a
 * cursor), of GET /v1/dead and the history read indexes, never the whole
 * table: no "Seq Scan on tasks" (nor on attempts).  The plans are printed
 * for docs/operator-api.md.
 */
static void
test_api_query_plans(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(ci);
    static char buf[1 << 15];
    char since[24];
    struct {
        const char *what;
        enum wq_admin_sql q;
        int n;
        const char *p[10];
    } cases[] = {
        { "tasks", WQ_ADMIN_SQL_LIST, 10,
          { NULL, NULL, NULL, "50", "none" } },
        { "tasks?queue=q7", WQ_ADMIN_SQL_LIST, 10,
          { "q7", NULL, NULL, "50", "none" } },
        { "tasks?queue=q7&state=dead", WQ_ADMIN_SQL_LIST, 10,
          { "q7", "dead", NULL, "50", "none" } },
        { "tasks?state=queued&cursor=...", WQ_ADMIN_SQL_LIST, 10,
          { NULL, "queued", NULL, "50", "none", NULL, NULL, NULL,
            "1780000000000000", "0190a5f8-7c1e-7a3b-9c4d-5e6f708192a3" } },
        { "dead", WQ_ADMIN_SQL_DLQ_LIST, 9,
          { NULL, NULL, NULL, NULL, NULL, NULL, "50" } },
        { "dead?queue=q7", WQ_ADMIN_SQL_DLQ_LIST, 9,
          { "q7", NULL, NULL, NULL, NULL, NULL, "50" } },
        { "stats/history", WQ_ADMIN_SQL_HISTORY, 2,
          { NULL, since } },
    };

    (void)state;
    /* the last hour, in epoch minutes, as GET /v1/stats/history asks */
    snprintf(since, sizeof since, "%lld", (long long)(wq_clock_wall_ms()
        / 60000 - 59));
    sqlf(s, "INSERT INTO workq.tasks (id, queue, type, idempotency_key, "
        "state, attempt, max_attempts, run_at, created_at, finished_at, "
        "lease_owner, lease_expires_at) "
        "SELECT workq.uuid_v7(), 'q' || (g %% 20), 't', 'k' || g, st, "
        "  CASE WHEN st IN ('queued', 'scheduled') THEN 0 ELSE 1 END, 3,"
        "  CASE WHEN st IN ('scheduled', 'retry_wait') THEN now() END,"
        "  now() - g * interval '1 second',"
        "  CASE WHEN st IN ('succeeded', 'dead', 'cancelled')"
        "    THEN now() - g * interval '1 second' END,"
        "  CASE WHEN st = 'running' THEN 'w' END,"
        "  CASE WHEN st = 'running' THEN now() END"
        "  FROM generate_series(1, 50000) g,"
        "  LATERAL (SELECT (ARRAY['succeeded', 'succeeded', 'succeeded',"
        "    'queued', 'dead', 'running', 'retry_wait', 'cancelled',"
        "    'scheduled', 'succeeded'])[1 + g %% 10] AS st) x");
    sqlf(s, "INSERT INTO workq.attempts (task_id, attempt, started_at, "
        "finished_at, outcome) SELECT id, 1, finished_at, finished_at, "
        "'failed' FROM workq.tasks WHERE finished_at IS NOT NULL");
    sqlf(s, "ANALYZE workq.tasks");
    sqlf(s, "ANALYZE workq.attempts");
    for (size_t i = 0; i < WQ_ARRAY_LEN(cases); i++) {
        plan(s, wq_store_admin_sql(cases[i].q), cases[i].n, cases[i].p, buf,
            sizeof buf);
        printf("---- GET /v1/%s on 50000 tasks\n%s", cases[i].what, buf);
        if (strstr(buf, "Seq Scan on tasks") != NULL
            || strstr(buf, "Seq Scan on attempts") != NULL)
            fail_msg("GET /v1/%s reads a whole table:\n%s", cases[i].what,
                buf);
        assert_non_null(strstr(buf, "Index"));
        /* A page reads its rows in order: no sort of every match.  The
         * one exception is a state with a partial index of its own (dead
         * here): the planner may sort that state's rows of one queue
         * when it counts few of them, and reads the queue's index in
         * order when it counts many, so the cost stays bounded by the
         * cheaper of the two.  No index per state (migration 0004). */
        if (cases[i].q != WQ_ADMIN_SQL_HISTORY && strstr(buf, "Sort") != NULL
            && strstr(buf, "Index Scan on tasks_dead_queue_page_idx") == NULL)
            fail_msg("GET /v1/%s sorts its matches:\n%s", cases[i].what,
                buf);
    }
    wq_store_close(s);
}

/* ---- undecodable messages ----------------------------------------------- */

/* A row of workq.dead_letters, received `ago`; returns its id. */
static long long
undecodable(wq_store *s, const char *transport, const char *queue,
    const char *error, const char *hex, const char *ago)
{
    char sql[1024];

    snprintf(sql, sizeof sql, "INSERT INTO workq.dead_letters (received_at, "
        "transport, queue, worker, error, raw) VALUES (now() - interval "
        "'%s', '%s', '%s', 'w1', '%s', '\\x%s') RETURNING id", ago,
        transport, queue, error, hex);
    return wq_test_pg_num(s, sql);
}

static void
test_api_undecodable(void **state)
{
    struct api a = api_start();
    /* bytes with a NUL, a high byte and a CR LF in them */
    static const unsigned char raw[] = { 0x00, 0xff, 'j', 'u', 'n', 'k',
        '\r', '\n', 0x00, 0x93 };
    struct wq_test_http_response r;
    long long id[3];
    char rq[512];
    json_t *j, *v;
    int n;

    (void)state;
    id[0] = undecodable(a.s, "rabbitmq", "a", "no envelope: not msgpack",
        "00ff6a756e6b0d0a0093", "2 hours");
    id[1] = undecodable(a.s, "kafka", "b", "truncated envelope",
        "6a756e6b", "1 minute");
    id[2] = undecodable(a.s, "rabbitmq", "a", "no envelope: not msgpack",
        "", "1 second");

    /* the list: newest first, the fields, the filters */
    j = get(&a, "/v1/undecodable");
    v = json_object_get(j, "undecodable");
    assert_int_equal(json_array_size(v), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(v,
        0), "id")), id[2]);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(v,
        2), "id")), id[0]);
    assert_string_equal(jstr(json_array_get(v, 2), "queue"), "a");
    assert_string_equal(jstr(json_array_get(v, 2), "transport"), "rabbitmq");
    assert_string_equal(jstr(json_array_get(v, 1), "transport"), "kafka");
    assert_string_equal(jstr(json_array_get(v, 2), "error"),
        "no envelope: not msgpack");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(v,
        2), "bytes")), sizeof raw);
    assert_non_null(strstr(jstr(json_array_get(v, 2), "received_at"), "T"));
    json_decref(j);
    j = get(&a, "/v1/undecodable?queue=a");
    assert_int_equal(json_array_size(json_object_get(j, "undecodable")), 2);
    json_decref(j);
    j = get(&a, "/v1/undecodable?error=TRUNCATED");
    assert_int_equal(json_array_size(json_object_get(j, "undecodable")), 1);
    json_decref(j);
    j = get(&a, "/v1/undecodable?newer_than_ms=3600000&limit=1");
    v = json_object_get(j, "undecodable");
    assert_int_equal(json_array_size(v), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(v,
        0), "id")), id[2]);
    json_decref(j);
    j = get(&a, "/v1/undecodable?older_than_ms=3600000");
    assert_int_equal(json_array_size(json_object_get(j, "undecodable")), 1);
    json_decref(j);
    /* a dead task is no undecodable message, and the reverse */
    dead_task(a.s, "a", "t", "boom", "1 minute");
    j = get(&a, "/v1/dead");
    assert_int_equal(json_array_size(json_object_get(j, "tasks")), 1);
    json_decref(j);

    /* the raw bytes, byte for byte, with the read token */
    n = snprintf(rq, sizeof rq, "GET /v1/undecodable/%lld/raw HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\nConnection: "
        "close\r\n\r\n", id[0], READER);
    assert_int_equal(wq_test_http_roundtrip(a.port, rq, (size_t)n, &r), 200);
    assert_non_null(strcasestr(r.text, "content-type: application/"
        "octet-stream"));
    assert_int_equal(r.body_len, sizeof raw);
    assert_memory_equal(r.body, raw, sizeof raw);
    wq_test_http_response_free(&r);
    /* an empty message is 0 bytes */
    n = snprintf(rq, sizeof rq, "GET /v1/undecodable/%lld/raw HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\nConnection: "
        "close\r\n\r\n", id[2], READER);
    assert_int_equal(wq_test_http_roundtrip(a.port, rq, (size_t)n, &r), 200);
    assert_int_equal(r.body_len, 0);
    wq_test_http_response_free(&r);

    /* refusals */
    assert_int_equal(req(&a, "GET", NULL, NULL, "/v1/undecodable"), 401);
    assert_int_equal(req(&a, "GET", NULL, NULL, "/v1/undecodable/%lld/raw",
        id[0]), 401);
    assert_int_equal(req(&a, "GET", READER, NULL, "/v1/undecodable/%lld/raw",
        id[0] + 1000), 404);
    assert_int_equal(req(&a, "GET", READER, NULL, "/v1/undecodable/x1/raw"),
        400);
    assert_non_null(strstr(resp, "invalid_id"));
    assert_int_equal(req(&a, "GET", READER, NULL, "/v1/undecodable?type=t"),
        400);
    assert_non_null(strstr(resp, "unknown query argument"));
    assert_int_equal(req(&a, "GET", READER, NULL, "/v1/undecodable?limit=0"),
        400);
    assert_int_equal(req(&a, "POST", ADMIN, "{}", "/v1/undecodable"), 405);
    api_stop(&a);
}

/* ---- the OpenAPI document ----------------------------------------------- */

/* "METHOD /path" lines of the route tables in producer/api.h and
 * producer/api_ops.h: every route the server has. */
static json_t *
server_routes(void)
{
    static const char *const files[] = { "producer/api.h",
        "producer/api_ops.h", "producer/api_workflow.h" };
    json_t *v = json_array();

    for (size_t f = 0; f < 3; f++) {
        char path[512], *text, *line, *save = NULL;

        snprintf(path, sizeof path, "%s/%s", WQ_SOURCE_DIR, files[f]);
        text = wq_test_read_file(path);
        for (line = strtok_r(text, "\n", &save); line != NULL;
            line = strtok_r(NULL, "\n", &save)) {
            char method[8], route[256];

            if (sscanf(line, " * %7[A-Z] %255s", method, route) == 2
                && route[0] == '/'
                && (strcmp(method, "GET") == 0
                || strcmp(method, "POST") == 0))
                json_array_append_new(v, json_pack("[s, s]", method,
                    route));
        }
        free(text);
    }
    return v;
}

static void
test_api_openapi(void **state)
{
    struct api a = api_start();
    char path[512], id[40], dead[4][40], body[256], out[1 << 16], num[24];
    char wf[40];
    json_t *doc, *routes, *paths, *examples = json_array();
    const char *k;
    json_t *item;
    int rc;

    (void)state;
    /* one dead task each for: show, retry, replay, purge */
    for (int i = 0; i < 4; i++)
        snprintf(dead[i], sizeof dead[i], "%s", dead_task(a.s, "a", "t",
            "boom", "1 minute"));
    snprintf(id, sizeof id, "%s", insert_task(a.s, "a", "t", NULL, "queued",
        0, 3, NULL, "", ""));
    /* and an undecodable message for its raw bytes */
    snprintf(num, sizeof num, "%lld", undecodable(a.s, "kafka", "a",
        "no envelope", "6a756e6b", "1 minute"));
    /* an open batch whose task does not end here: it takes tasks even
     * after it is closed */
    snprintf(wf, sizeof wf, "%s", textf(a.s, "SELECT workq.workflow_submit("
        "'{\"batch\": \"b\", \"queue\": \"a\", \"open\": true, "
        "\"tasks\": [{\"type\": \"t\"}], \"on_complete\": {\"type\": "
        "\"t\"}}')"));

    /* served without a token, and the same bytes as docs/openapi.json */
    assert_int_equal(req(&a, "GET", NULL, NULL, "/v1/openapi.json"), 200);
    doc = json_loads(resp, 0, NULL);
    assert_non_null(doc);
    {
        char *file;
        json_t *fj;

        snprintf(path, sizeof path, "%s/docs/openapi.json", WQ_SOURCE_DIR);
        file = wq_test_read_file(path);
        fj = json_loads(file, 0, NULL);
        assert_true(json_equal(fj, doc));
        json_decref(fj);
        free(file);
    }
    assert_string_equal(jstr(doc, "openapi"), "3.1.0");
    paths = json_object_get(doc, "paths");

    /* (1) every route of the server is documented ... */
    routes = server_routes();
    assert_true(json_array_size(routes) >= 16);
    for (size_t i = 0; i < json_array_size(routes); i++) {
        const char *m = json_string_value(json_array_get(json_array_get(
            routes, i), 0));
        const char *r = json_string_value(json_array_get(json_array_get(
            routes, i), 1));
        char lower[8];

        for (size_t c = 0; c <= strlen(m); c++)
            lower[c] = (char)(m[c] >= 'A' && m[c] <= 'Z' ? m[c] + 32 : m[c]);
        if (json_object_get(json_object_get(paths, r), lower) == NULL)
            fail_msg("%s %s is a route of the server but not in "
                "docs/openapi.json", m, r);
    }
    json_decref(routes);

    /* ... and every documented route answers (not "no such route"); the
     * answers are kept for (2) */
    json_object_foreach(paths, k, item) {
        const char *m;
        json_t *op;

        json_object_foreach(item, m, op) {
            char p[512], *q;
            const char *b = NULL;
            int st;
            json_t *ans;

            if (strcmp(m, "get") != 0 && strcmp(m, "post") != 0)
                continue;
            snprintf(p, sizeof p, "%s", k);
            /* the templates' parameters, with values that exist */
            if ((q = strstr(p, "{id}")) != NULL) {
                char rest[256];

                snprintf(rest, sizeof rest, "%s", q + 4);
                snprintf(q, sizeof p - (size_t)(q - p), "%s%s",
                    strstr(k, "/dead/") != NULL ? dead[0]
                    : strstr(k, ":retry") != NULL ? dead[1]
                    : strstr(k, "/undecodable/") != NULL ? num
                    : strstr(k, "/workflows/") != NULL ? wf : id, rest);
            }
            if ((q = strstr(p, "{queue}")) != NULL) {
                char rest[256];

                snprintf(rest, sizeof rest, "%s", q + 7);
                snprintf(q, sizeof p - (size_t)(q - p), "a%s", rest);
            }
            if (strcmp(m, "post") == 0) {
                if (strcmp(k, "/v1/workflows") == 0)
                    b = "{\"queue\": \"a\", \"chain\": [{\"type\": \"t\", "
                        "\"payload\": \"x\"}, {\"type\": \"t\"}]}";
                else if (strstr(k, "/workflows/") != NULL
                    && strstr(k, "/tasks") != NULL)
                    b = "{\"tasks\": [{\"type\": \"t\", \"queue\": "
                        "\"a\"}]}";
                else if (strstr(k, "tasks:batch") != NULL)
                    b = "{\"tasks\": [{\"type\": \"t\", \"payload\": \"x\", "
                        "\"run_at\": \"2099-01-01T00:00:00Z\"}]}";
                else if (strstr(k, "/tasks") != NULL && strstr(k, "/queues/")
                    != NULL)
                    b = "{\"type\": \"t\", \"payload\": \"x\", \"run_at\": "
                        "\"2099-01-01T00:00:00Z\"}";
                else if (strstr(k, "dead:") != NULL) {
                    snprintf(body, sizeof body, "{\"ids\": [\"%s\"]}",
                        strstr(k, "replay") != NULL ? dead[2] : dead[3]);
                    b = body;
                }
            }
            st = req(&a, m[0] == 'g' ? "GET" : "POST", ADMIN, b, "%s", p);
            if (st == 404 && strstr(resp, "no such route") != NULL)
                fail_msg("%s %s is documented but the server has no such "
                    "route", m, k);
            if (st != 200 && st != 202)
                fail_msg("%s %s: %d %s", m, p, st, resp);
            /* the two answers that are not JSON: the metrics' text and
             * an undecodable message's bytes */
            if (strstr(k, "/raw") != NULL) {
                assert_string_equal(resp, "junk");
                continue;
            }
            ans = strcmp(k, "/metrics") == 0 ? NULL : json_loads(resp, 0,
                NULL);
            if (strcmp(k, "/metrics") != 0 && ans == NULL)
                fail_msg("%s %s: not JSON: %s", m, p, resp);
            if (ans != NULL)
                json_array_append_new(examples, json_pack("{s:s, s:s, s:i, "
                    "s:o}", "method", m[0] == 'g' ? "GET" : "POST", "path",
                    k, "status", st, "body", ans));
        }
    }
    /* error answers too: 400, 401, 403, 404 */
    assert_int_equal(req(&a, "GET", NULL, NULL, "/v1/tasks"), 401);
    json_array_append_new(examples, json_pack("{s:s, s:s, s:i, s:o}",
        "method", "GET", "path", "/v1/tasks", "status", 401, "body",
        json_loads(resp, 0, NULL)));
    assert_int_equal(req(&a, "GET", READER, NULL, "/v1/tasks?limit=0"), 400);
    json_array_append_new(examples, json_pack("{s:s, s:s, s:i, s:o}",
        "method", "GET", "path", "/v1/tasks", "status", 400, "body",
        json_loads(resp, 0, NULL)));
    assert_int_equal(req(&a, "POST", READER, NULL, "/v1/tasks/%s:cancel",
        id), 403);
    json_array_append_new(examples, json_pack("{s:s, s:s, s:i, s:o}",
        "method", "POST", "path", "/v1/tasks/{id}:cancel", "status", 403,
        "body", json_loads(resp, 0, NULL)));
    assert_int_equal(req(&a, "GET", READER, NULL, "/v1/dead/%s", id), 404);
    json_array_append_new(examples, json_pack("{s:s, s:s, s:i, s:o}",
        "method", "GET", "path", "/v1/dead/{id}", "status", 404, "body",
        json_loads(resp, 0, NULL)));
    assert_true(json_array_size(examples) >= 20);

    /* (2) the document and the answers, by npm's validators */
    assert_int_equal(json_dump_file(examples, "examples.json", 0), 0);
    assert_int_equal(json_dump_file(doc, "openapi.json", 0), 0);
    {
        char script[512];
        const char *argv[] = { "/usr/bin/env", "node", script,
            "openapi.json", "examples.json", NULL };

        snprintf(script, sizeof script, "%s/tests/openapi/validate.mjs",
            WQ_SOURCE_DIR);
        snprintf(path, sizeof path, "%s/tests/openapi/node_modules/ajv",
            WQ_SOURCE_DIR);
        if (access(path, R_OK) != 0)
            fail_msg("the validators are not installed: run tests/deps.sh "
                "(npm ci in tests/openapi)");
        rc = wq_test_cmd(argv, NULL, NULL, out, sizeof out);
        printf("%s", out);
        if (rc != 0)
            fail_msg("node validate.mjs failed (%d; is node installed?): "
                "%s", rc, out);
        assert_non_null(strstr(out, "0 problem(s)"));
    }
    json_decref(examples);
    json_decref(doc);
    api_stop(&a);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_api_tasks_list),
    cmocka_unit_test(test_api_retry_cancel),
    cmocka_unit_test(test_api_dead),
    cmocka_unit_test(test_api_undecodable),
    cmocka_unit_test(test_api_stats_and_more),
    cmocka_unit_test(test_api_query_plans),
    cmocka_unit_test(test_api_openapi),
};

WQ_TEST_MAIN("operator_api", tests)

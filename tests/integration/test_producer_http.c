/*
 * test_producer_http.c - workq-producer, the real daemon, on a port of
 * its own, spoken to over plain sockets, on both transports: an accepted
 * task arrives on the broker intact; every malformed, unauthorized or
 * misrouted request gets its status and publishes nothing (checked with
 * a sentinel task that must be the only message on the queue); the
 * broker stopped mid-test gives 503 and the daemon recovers when it
 * returns; 32 concurrent clients x 100 requests are all accepted and
 * all arrive exactly once; SIGTERM finishes what is in flight and exits
 * 0 after READY=1 and STOPPING=1.
 *
 * The port: 18000 + pid % 1000, then 1000 further per retry when the
 * daemon exits 69 (address in use).
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "envelope.h"
#include "uuid.h"
#include "wq_test.h"
#include "wq_test_broker.h"
#include "wq_test_http.h"
#include "wq_test_producer.h"
#include "wq_test_pg.h"

#define RECV_MS  60000
#define TOKEN    "s3cret-token-for-tests"
#define JSON     "application/json"

struct producer {
    pid_t pid;
    int port;
};

/* --- the daemon ---------------------------------------------------------- */

static void
sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/*
 * Starts workq-producer for `kind` with `extra` environment entries
 * (NULL-terminated, may be NULL) and waits until /healthz answers.
 * Its log goes to producer.log in the test's directory.
 */
static struct producer
producer_start(int kind, const char *conninfo, const char *const *extra)
{
    struct producer p = { 0, 0 };
    static char tokens[1200];
    const char *env[24];
    size_t n = wq_test_env_for(kind, conninfo, env, 12);
    FILE *f;

    f = fopen("tokens", "w");
    assert_non_null(f);
    fprintf(f, "# tokens of the tests\n\nother-token\n  %s  \n", TOKEN);
    fclose(f);
    snprintf(tokens, sizeof tokens, "WORKQ_PRODUCER_TOKENS_FILE=%s/tokens",
        wq_test_env("WQ_TEST_TMPDIR", "."));
    env[n++] = tokens;
    env[n++] = "WORKQ_PRODUCER_QUEUES=*";  /* per-pid queue names */
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 23; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    wq_test_producer_start("127.0.0.1", env, NULL, NULL, NULL, &p.pid,
        &p.port);
    return p;
}

/* Stops the daemon with SIGTERM; returns its exit status. */
static int
producer_stop(struct producer *p)
{
    return wq_test_producer_stop(&p->pid);
}

/* --- requests and answers ------------------------------------------------ */

/* POST a task body to queue q with the right token and type. */
static int
post(int port, const char *queue, const char *body, char *resp, size_t rlen)
{
    char path[512];

    snprintf(path, sizeof path, "/v1/queues/%s/tasks", queue);
    return wq_test_http_request(port, "POST", path, JSON, TOKEN, NULL, body,
        strlen(body), resp, rlen);
}

/* The string member `name` of a JSON answer, copied into out. */
static void
json_str(const char *resp, const char *name, char *out, size_t len)
{
    json_t *j = json_loads(resp, 0, NULL), *v = NULL;

    if (j == NULL || (v = json_object_get(j, name)) == NULL
        || !json_is_string(v))
        fail_msg("no string '%s' in the answer: %s", name, resp);
    snprintf(out, len, "%s", json_string_value(v));
    json_decref(j);
}

static const struct wq_envelope *
find(const struct wq_envelope *env, size_t n, const char *id)
{
    char text[WQ_UUID_STRLEN];

    for (size_t i = 0; i < n; i++) {
        wq_uuid_format(env[i].id, text);
        if (strcmp(text, id) == 0)
            return &env[i];
    }
    fail_msg("task %s did not arrive", id);
    return NULL;
}

/* --- accepted tasks arrive intact ---------------------------------------- */

static void
check_accepted(int kind)
{
    const char *queue = wq_test_queue(kind, "http-ok");
    struct producer p = producer_start(kind, NULL, NULL);
    struct wq_test_consumer *cons;
    struct wq_envelope env[4];
    const struct wq_envelope *e;
    char resp[65536], id[64], key[64], ids[3][64], body[1024];
    int64_t before = wq_clock_wall_ms();
    json_t *j;
    int st;

    st = post(p.port, queue, "{\"type\":\"resize\",\"payload\":{\"w\":640},"
        "\"max_attempts\":4,\"headers\":{\"traceparent\":\"00-abc-01\","
        "\"tenant\":\"acme\"}}", resp, sizeof resp);
    if (st != 202)
        fail_msg("status %d: %s", st, resp);
    json_str(resp, "id", id, sizeof id);
    json_str(resp, "idempotency_key", key, sizeof key);
    assert_string_equal(key, id);
    json_str(resp, "queue", key, sizeof key);
    assert_string_equal(key, queue);

    /* the key from the Idempotency-Key header */
    snprintf(body, sizeof body, "/v1/queues/%s/tasks", queue);
    {
        static const char b[] = "{\"type\":\"mail\",\"payload\":"
            "\"plain text\"}";

        st = wq_test_http_request(p.port, "POST", body,
            "application/json; charset=utf-8", TOKEN,
            "Idempotency-Key: order-7\r\n", b, strlen(b), resp, sizeof resp);
    }
    if (st != 202)
        fail_msg("status %d: %s", st, resp);
    json_str(resp, "idempotency_key", key, sizeof key);
    assert_string_equal(key, "order-7");
    json_str(resp, "id", ids[0], sizeof ids[0]);

    /* a batch */
    snprintf(body, sizeof body, "/v1/queues/%s/tasks:batch", queue);
    {
        static const char b[] = "{\"tasks\":[{\"type\":\"a\"},{\"type\":"
            "\"b\",\"payload_base64\":\"/wA=\"}]}";

        st = wq_test_http_request(p.port, "POST", body, JSON, TOKEN, NULL, b,
            strlen(b), resp, sizeof resp);
    }
    if (st != 202)
        fail_msg("batch status %d: %s", st, resp);
    j = json_loads(resp, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "tasks")), 2);
    for (int i = 0; i < 2; i++)
        snprintf(ids[1 + i], sizeof ids[1], "%s", json_string_value(
            json_object_get(json_array_get(json_object_get(j, "tasks"), i),
            "id")));
    json_decref(j);

    cons = wq_test_consumer_open(kind, queue);
    assert_int_equal(wq_test_consumer_recv(cons, env, 4, RECV_MS), 4);
    e = find(env, 4, id);
    assert_string_equal(e->queue, queue);
    assert_string_equal(e->type, "resize");
    assert_string_equal(e->key, id);
    assert_int_equal(e->payload_len, strlen("{\"w\":640}"));
    assert_memory_equal(e->payload, "{\"w\":640}", e->payload_len);
    assert_int_equal(e->attempt, 1);
    assert_int_equal(e->max_attempts, 4);
    assert_true(e->created_at_ms >= before);
    assert_int_equal(e->run_at_ms, 0);
    assert_int_equal(e->nheaders, 2);
    assert_string_equal(e->headers[0].name, "traceparent");
    assert_string_equal(e->headers[0].value, "00-abc-01");
    assert_string_equal(e->headers[1].name, "tenant");
    e = find(env, 4, ids[0]);
    assert_string_equal(e->key, "order-7");
    assert_memory_equal(e->payload, "plain text", 10);
    e = find(env, 4, ids[2]);
    assert_int_equal(e->payload_len, 2);
    assert_memory_equal(e->payload, "\xff\0", 2);
    for (int i = 0; i < 4; i++)
        wq_envelope_free(&env[i]);
    wq_test_consumer_close(cons);

    /* health, readiness, metrics */
    assert_int_equal(wq_test_http_request(p.port, "GET", "/healthz", NULL,
        NULL, NULL, NULL, 0, resp, sizeof resp), 200);
    st = wq_test_http_request(p.port, "GET", "/readyz", NULL, NULL, NULL, NULL,
        0, resp, sizeof resp);
    if (st != 200)
        fail_msg("readyz %d: %s", st, resp);
    assert_int_equal(wq_test_http_request(p.port, "GET", "/metrics", NULL,
        NULL, NULL, NULL, 0, resp, sizeof resp), 200);
    assert_non_null(strstr(resp,
        "workq_producer_tasks_accepted_total{state=\"queued\"} 4\n"));
    assert_non_null(strstr(resp, "workq_producer_publish_seconds_count 4\n"));
    assert_int_equal(producer_stop(&p), 0);
}

static void
test_producer_http_accepted_kafka(void **state)
{
    (void)state;
    check_accepted(WQ_TRANSPORT_KAFKA);
}

static void
test_producer_http_accepted_rabbitmq(void **state)
{
    (void)state;
    check_accepted(WQ_TRANSPORT_RABBITMQ);
}

/* --- flow control in the task body (README "Flow control") -------------- */

/* GET /v1/tasks/ID answers 200 with "priority" `want`. */
static void
get_priority(int port, const char *id, const char *want)
{
    char resp[65536], path[256], got[32];
    int st;

    snprintf(path, sizeof path, "/v1/tasks/%s", id);
    st = wq_test_http_request(port, "GET", path, NULL, TOKEN, NULL, NULL, 0,
        resp, sizeof resp);
    if (st != 200)
        fail_msg("get %s: %d %s", id, st, resp);
    json_str(resp, "priority", got, sizeof got);
    if (strcmp(got, want) != 0)
        fail_msg("get %s: priority \"%s\", want \"%s\": %s", id, got, want,
            resp);
}

/*
 * "priority" (README "Priorities"): a task goes to its band, a batch's
 * tasks each to theirs, a delayed task keeps it in PostgreSQL, a unique
 * task too; a bad value is refused with 400.  GET /v1/tasks/ID and
 * GET /v1/tasks show it, also of a task no worker claimed yet (its
 * receipt: in a run without a key, of its own with one).
 */
static void
check_priority(int kind)
{
    const char *db = wq_test_pg_create_migrated_db();
    const char *queue = wq_test_queue(kind, "http-prio");
    struct producer p = producer_start(kind, db, NULL);
    struct wq_test_consumer *cons;
    struct wq_envelope env[3];
    char resp[65536], path[512], hi[200], lo[200], id[64];
    wq_store *s;
    int st;

    snprintf(hi, sizeof hi, "%s.priority-high", queue);
    snprintf(lo, sizeof lo, "%s.priority-low", queue);
    st = post(p.port, queue, "{\"type\":\"t\",\"priority\":\"high\","
        "\"payload\":\"one\"}", resp, sizeof resp);
    if (st != 202)
        fail_msg("status %d: %s", st, resp);
    json_str(resp, "id", id, sizeof id);
    get_priority(p.port, id, "high");
    snprintf(path, sizeof path, "/v1/queues/%s/tasks:batch", queue);
    {
        static const char b[] = "{\"tasks\":[{\"type\":\"a\",\"priority\":2,"
            "\"payload\":\"two\"},{\"type\":\"a\",\"priority\":\"low\","
            "\"payload\":\"three\"},{\"type\":\"a\",\"payload\":\"four\"},"
            "{\"type\":\"a\",\"priority\":\"low\",\"delay\":\"1h\","
            "\"idempotency_key\":\"later\"}]}";

        st = wq_test_http_request(p.port, "POST", path, JSON, TOKEN, NULL, b,
            strlen(b), resp, sizeof resp);
    }
    if (st != 202 && st != 200)
        fail_msg("batch: status %d: %s", st, resp);
    st = post(p.port, queue, "{\"type\":\"u\",\"idempotency_key\":\"w1\","
        "\"unique_for\":\"1h\",\"priority\":\"high\",\"payload\":\"five\"}",
        resp, sizeof resp);
    if (st != 202)
        fail_msg("unique: status %d: %s", st, resp);
    assert_int_equal(post(p.port, queue, "{\"type\":\"t\",\"priority\":"
        "\"urgent\"}", resp, sizeof resp), 400);
    assert_non_null(strstr(resp, "priority"));
    assert_int_equal(post(p.port, queue, "{\"type\":\"t\",\"priority\":3}",
        resp, sizeof resp), 400);

    s = wq_test_pg_open(db);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE idempotency_key = 'later' AND state = 'scheduled' AND "
        "priority = 0"), 1);
    wq_store_close(s);
    snprintf(path, sizeof path, "/v1/tasks?queue=%s&state=scheduled", queue);
    st = wq_test_http_request(p.port, "GET", path, NULL, TOKEN, NULL, NULL, 0,
        resp, sizeof resp);
    if (st != 200 || strstr(resp, "\"priority\":\"low\"") == NULL)
        fail_msg("list: %d, no low priority: %s", st, resp);
    st = post(p.port, queue, "{\"type\":\"k\",\"priority\":\"low\","
        "\"idempotency_key\":\"now-lo\",\"payload\":\"six\"}", resp,
        sizeof resp);
    if (st != 202)
        fail_msg("keyed: status %d: %s", st, resp);
    json_str(resp, "id", id, sizeof id);
    get_priority(p.port, id, "low");

    /* high: one, two and five (the unique one may come twice) */
    cons = wq_test_consumer_open(kind, hi);
    assert_int_equal(wq_test_consumer_recv(cons, env, 3, 60000), 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(env[i].queue, queue);
        assert_true(memcmp(env[i].payload, "one", 3) == 0
            || memcmp(env[i].payload, "two", 3) == 0
            || memcmp(env[i].payload, "five", 4) == 0);
        wq_envelope_free(&env[i]);
    }
    wq_test_consumer_close(cons);
    cons = wq_test_consumer_open(kind, lo);
    assert_int_equal(wq_test_consumer_recv(cons, env, 2, 60000), 2);
    for (int i = 0; i < 2; i++) {
        assert_true(memcmp(env[i].payload, "three", 5) == 0
            || memcmp(env[i].payload, "six", 3) == 0);
        wq_envelope_free(&env[i]);
    }
    wq_test_consumer_close(cons);
    cons = wq_test_consumer_open(kind, queue);
    assert_int_equal(wq_test_consumer_recv(cons, env, 1, 60000), 1);
    assert_memory_equal(env[0].payload, "four", 4);
    wq_envelope_free(&env[0]);
    wq_test_consumer_close(cons);
    assert_int_equal(producer_stop(&p), 0);
}

static void
test_producer_http_priority_kafka(void **state)
{
    (void)state;
    check_priority(WQ_TRANSPORT_KAFKA);
}

static void
test_producer_http_priority_rabbitmq(void **state)
{
    (void)state;
    check_priority(WQ_TRANSPORT_RABBITMQ);
}

/*
 * concurrency_key and concurrency_limit reach the envelope (version 2),
 * also of a delayed task (workq.flow_tasks, for the scheduler); a unique
 * window turns the key into KEY@wSTART, the same task inside the window;
 * unique_for without a key, in a batch, and a limit without a key are
 * refused.
 */
static void
check_flow(int kind)
{
    const char *db = wq_test_pg_create_migrated_db();
    const char *queue = wq_test_queue(kind, "http-flow");
    struct producer p = producer_start(kind, db, NULL);
    struct wq_test_consumer *cons;
    struct wq_envelope env[3];
    const struct wq_envelope *e;
    char resp[65536], id[64], uid[64], uid2[64], key[600], path[512];
    wq_store *s;
    size_t got;
    int st;

    st = post(p.port, queue, "{\"type\":\"t\",\"concurrency_key\":\"c7\","
        "\"concurrency_limit\":2}", resp, sizeof resp);
    if (st != 202)
        fail_msg("status %d: %s", st, resp);
    json_str(resp, "id", id, sizeof id);
    st = post(p.port, queue, "{\"type\":\"u\",\"idempotency_key\":\"w1\","
        "\"unique_for\":\"1h\"}", resp, sizeof resp);
    if (st != 202)
        fail_msg("unique: status %d: %s", st, resp);
    json_str(resp, "id", uid, sizeof uid);
    json_str(resp, "idempotency_key", key, sizeof key);
    assert_true(strncmp(key, "w1@w", 4) == 0);
    st = post(p.port, queue, "{\"type\":\"u\",\"idempotency_key\":\"w1\","
        "\"unique_for\":3600}", resp, sizeof resp);
    if (st != 202 && st != 200)
        fail_msg("unique again: status %d: %s", st, resp);
    json_str(resp, "id", uid2, sizeof uid2);
    assert_string_equal(uid, uid2);
    /* refusals */
    assert_int_equal(post(p.port, queue, "{\"type\":\"u\","
        "\"unique_for\":\"1h\"}", resp, sizeof resp), 400);
    assert_non_null(strstr(resp, "idempotency"));
    assert_int_equal(post(p.port, queue, "{\"type\":\"u\","
        "\"concurrency_limit\":2}", resp, sizeof resp), 400);
    assert_int_equal(post(p.port, queue, "{\"type\":\"u\","
        "\"concurrency_key\":\"\"}", resp, sizeof resp), 400);
    snprintf(path, sizeof path, "/v1/queues/%s/tasks:batch", queue);
    {
        static const char b[] = "{\"tasks\":[{\"type\":\"a\","
            "\"idempotency_key\":\"x\",\"unique_for\":\"1h\"}]}";

        st = wq_test_http_request(p.port, "POST", path, JSON, TOKEN, NULL, b,
            strlen(b), resp, sizeof resp);
    }
    assert_int_equal(st, 400);
    assert_non_null(strstr(resp, "not in a batch"));
    /* a delayed task keeps its key for the scheduler */
    st = post(p.port, queue, "{\"type\":\"t\",\"idempotency_key\":\"d1\","
        "\"delay\":\"1h\",\"concurrency_key\":\"c8\"}", resp, sizeof resp);
    if (st != 202)
        fail_msg("delayed: status %d: %s", st, resp);
    s = wq_test_pg_open(db);
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM "
        "workq.flow_tasks WHERE queue = '%s' AND idempotency_key = 'd1' AND "
        "concurrency_key = 'c8' AND concurrency_limit = 1", queue), 1);
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM "
        "workq.unique_windows WHERE queue = '%s' AND idempotency_key = "
        "'w1'", queue), 1);
    wq_store_close(s);

    /* two or three messages: the unique task may be published twice
     * (the claim absorbs that) */
    cons = wq_test_consumer_open(kind, queue);
    got = wq_test_consumer_recv(cons, env, 3, 10000);
    assert_true(got >= 2);
    e = find(env, got, id);
    assert_int_equal(e->version, 2);
    assert_string_equal(e->concurrency_key, "c7");
    assert_int_equal(e->concurrency_limit, 2);
    e = find(env, got, uid);
    assert_int_equal(e->version, 1);
    assert_null(e->concurrency_key);
    assert_string_equal(e->key, key);
    for (size_t i = 0; i < got; i++)
        wq_envelope_free(&env[i]);
    wq_test_consumer_close(cons);
    assert_int_equal(producer_stop(&p), 0);
}

static void
test_producer_http_flow_kafka(void **state)
{
    (void)state;
    check_flow(WQ_TRANSPORT_KAFKA);
}

static void
test_producer_http_flow_rabbitmq(void **state)
{
    (void)state;
    check_flow(WQ_TRANSPORT_RABBITMQ);
}

/*
 * "hook": the task's completion hook, as the header workq-hook: on a
 * single task and in a batch; an http:// URL, or a hook given twice
 * (with headers.workq-hook), is refused.
 */
static void
check_hook(int kind)
{
    const char *queue = wq_test_queue(kind, "http-hook");
    struct producer p = producer_start(kind, NULL, NULL);
    struct wq_test_consumer *cons;
    struct wq_envelope env[2];
    const struct wq_envelope *e;
    char resp[65536], id[64], bid[64], path[512];
    int st;

    st = post(p.port, queue, "{\"type\":\"t\",\"hook\":"
        "\"https://app.example/done\",\"headers\":{\"a\":\"1\"}}", resp,
        sizeof resp);
    if (st != 202)
        fail_msg("status %d: %s", st, resp);
    json_str(resp, "id", id, sizeof id);
    snprintf(path, sizeof path, "/v1/queues/%s/tasks:batch", queue);
    {
        static const char b[] = "{\"tasks\":[{\"type\":\"b\","
            "\"hook\":\"https://app.example/b\"}]}";

        st = wq_test_http_request(p.port, "POST", path, JSON, TOKEN, NULL, b,
            strlen(b), resp, sizeof resp);
    }
    if (st != 202 && st != 200)
        fail_msg("batch: status %d: %s", st, resp);
    {
        const char *q = strstr(resp, "\"id\":\"");

        assert_non_null(q);
        snprintf(bid, sizeof bid, "%.36s", q + 6);
    }
    /* refusals */
    assert_int_equal(post(p.port, queue, "{\"type\":\"u\",\"hook\":"
        "\"http://app.example/done\"}", resp, sizeof resp), 400);
    assert_non_null(strstr(resp, "want https://"));
    assert_int_equal(post(p.port, queue, "{\"type\":\"u\",\"hook\":"
        "\"https://a.example/\",\"headers\":{\"workq-hook\":"
        "\"https://b.example/\"}}", resp, sizeof resp), 400);
    assert_non_null(strstr(resp, "not both"));
    assert_int_equal(post(p.port, queue, "{\"type\":\"u\",\"hook\":7}",
        resp, sizeof resp), 400);

    cons = wq_test_consumer_open(kind, queue);
    assert_int_equal(wq_test_consumer_recv(cons, env, 2, RECV_MS), 2);
    e = find(env, 2, id);
    assert_int_equal(e->nheaders, 2);
    for (size_t i = 0; i < e->nheaders; i++)
        if (strcmp(e->headers[i].name, "workq-hook") == 0)
            assert_string_equal(e->headers[i].value,
                "https://app.example/done");
    e = find(env, 2, bid);
    assert_int_equal(e->nheaders, 1);
    assert_string_equal(e->headers[0].name, "workq-hook");
    assert_string_equal(e->headers[0].value, "https://app.example/b");
    for (size_t i = 0; i < 2; i++)
        wq_envelope_free(&env[i]);
    wq_test_consumer_close(cons);
    assert_int_equal(producer_stop(&p), 0);
}

static void
test_producer_http_hook_kafka(void **state)
{
    (void)state;
    check_hook(WQ_TRANSPORT_KAFKA);
}

static void
test_producer_http_hook_rabbitmq(void **state)
{
    (void)state;
    check_hook(WQ_TRANSPORT_RABBITMQ);
}

/*
 * kafka.brokers as librdkafka reads it: a protocol prefix
 * ("PLAINTEXT://host:port", also "SASL_SSL://h:9093") is a valid
 * bootstrap list, and the worker runs on it.  The producer must accept
 * tasks on the same list rather than refuse them (503) for ever.
 */
static void
test_producer_http_kafka_brokers_url(void **state)
{
    const char *queue = wq_test_queue(WQ_TRANSPORT_KAFKA, "http-brokers");
    static char brokers[1200];
    const char *extra[] = { brokers, NULL };
    struct wq_test_consumer *cons;
    struct wq_envelope env[2];
    struct producer p;
    char resp[4096], id[64];
    int st;

    (void)state;
    snprintf(brokers, sizeof brokers, "WORKQ_KAFKA_BROKERS=PLAINTEXT://%s",
        WQ_TEST_KAFKA_BROKERS());
    p = producer_start(WQ_TRANSPORT_KAFKA, NULL, extra);
    st = post(p.port, queue, "{\"type\":\"noop\"}", resp, sizeof resp);
    if (st != 202)
        fail_msg("status %d: %s\n----- producer.log -----\n%s", st, resp,
            wq_test_read_file("producer.log"));
    json_str(resp, "id", id, sizeof id);
    cons = wq_test_consumer_open(WQ_TRANSPORT_KAFKA, queue);
    assert_int_equal(wq_test_consumer_recv(cons, env, 1, RECV_MS), 1);
    find(env, 1, id);
    wq_envelope_free(&env[0]);
    wq_test_consumer_close(cons);
    assert_int_equal(producer_stop(&p), 0);
}

/* --- refusals publish nothing -------------------------------------------- */

struct bad {
    const char *what, *method, *path, *ctype, *token, *extra, *body;
    int status;
    const char *error;
};

static void
check_refusals(int kind)
{
    static char big_body[1200 * 1024], big_payload[(1 << 20) + 64];
    static char many[40 * 1024];
    const char *queue = wq_test_queue(kind, "http-bad");
    char tasks[256], batch[256], resp[4096], err[64], sentinel[64];
    char deadq[300], longq[300];
    struct producer p = producer_start(kind, NULL, (const char *[]){
        "WORKQ_PRODUCER_BATCH_MAX=5", NULL });
    struct wq_test_consumer *cons;
    size_t off;

    snprintf(tasks, sizeof tasks, "/v1/queues/%s/tasks", queue);
    snprintf(batch, sizeof batch, "/v1/queues/%s/tasks:batch", queue);
    snprintf(deadq, sizeof deadq, "/v1/queues/%s.dead/tasks", queue);
    memset(longq, 'q', sizeof longq);
    memcpy(longq, "/v1/queues/", 11);
    snprintf(longq + 11 + 200, sizeof longq - 211, "/tasks");
    memset(big_body, ' ', sizeof big_body - 1);
    memcpy(big_body, "{\"type\":\"t\"}", 12);
    off = (size_t)snprintf(big_payload, sizeof big_payload,
        "{\"type\":\"t\",\"payload\":\"");
    memset(big_payload + off, 'x', (1 << 20) + 1);
    snprintf(big_payload + off + (1 << 20) + 1, 4, "\"}");
    off = (size_t)snprintf(many, sizeof many, "{\"tasks\":[");
    for (int i = 0; i < 6; i++)
        off += (size_t)snprintf(many + off, sizeof many - off, "%s{\"type\":"
            "\"t\"}", i ? "," : "");
    snprintf(many + off, sizeof many - off, "]}");

    const struct bad cases[] = {
        { "malformed JSON", "POST", tasks, JSON, TOKEN, NULL,
          "{\"type\": \"t\"", 400, "invalid_json" },
        { "not an object", "POST", tasks, JSON, TOKEN, NULL, "[1,2]", 400,
          "invalid_task" },
        { "type is a number", "POST", tasks, JSON, TOKEN, NULL,
          "{\"type\":5}", 400, "invalid_task" },
        { "max_attempts is a string", "POST", tasks, JSON, TOKEN, NULL,
          "{\"type\":\"t\",\"max_attempts\":\"3\"}", 400, "invalid_task" },
        { "max_attempts 0", "POST", tasks, JSON, TOKEN, NULL,
          "{\"type\":\"t\",\"max_attempts\":0}", 400, "invalid_task" },
        { "header value a number", "POST", tasks, JSON, TOKEN, NULL,
          "{\"type\":\"t\",\"headers\":{\"a\":1}}", 400, "invalid_task" },
        { "delay not a duration", "POST", tasks, JSON, TOKEN, NULL,
          "{\"type\":\"t\",\"delay\":\"soon\"}", 400, "invalid_task" },
        { "run_at not a time", "POST", tasks, JSON, TOKEN, NULL,
          "{\"type\":\"t\",\"run_at\":\"tomorrow\"}", 400, "invalid_task" },
        { "delay and run_at", "POST", tasks, JSON, TOKEN, NULL,
          "{\"type\":\"t\",\"delay\":1,\"run_at\":\"2030-01-01T00:00:00Z\"}",
          400, "invalid_task" },
        { "missing type", "POST", tasks, JSON, TOKEN, NULL,
          "{\"payload\":\"x\"}", 400, "invalid_task" },
        { "empty object", "POST", tasks, JSON, TOKEN, NULL, "{}", 400,
          "invalid_task" },
        { "unknown field", "POST", tasks, JSON, TOKEN, NULL,
          "{\"type\":\"t\",\"max_attempt\":3}", 400, "invalid_task" },
        { "bad base64", "POST", tasks, JSON, TOKEN, NULL,
          "{\"type\":\"t\",\"payload_base64\":\"!!\"}", 400,
          "invalid_task" },
        { "keys differ", "POST", tasks, JSON, TOKEN,
          "Idempotency-Key: a\r\n", "{\"type\":\"t\","
          "\"idempotency_key\":\"b\"}", 400, "invalid_task" },
        { "empty body", "POST", tasks, JSON, TOKEN, NULL, "", 400,
          "invalid_json" },
        { "oversize body", "POST", tasks, JSON, TOKEN, NULL, big_body, 413,
          "payload_too_large" },
        { "payload over 1 MiB", "POST", tasks, JSON, TOKEN, NULL,
          big_payload, 413, "too_large" },
        { "bad token", "POST", tasks, JSON, "wrong-token", NULL,
          "{\"type\":\"t\"}", 401, "unauthorized" },
        { "token prefix", "POST", tasks, JSON, "s3cret", NULL,
          "{\"type\":\"t\"}", 401, "unauthorized" },
        { "no token", "POST", tasks, JSON, NULL, NULL, "{\"type\":\"t\"}",
          401, "unauthorized" },
        { "not bearer", "POST", tasks, JSON, NULL,
          "Authorization: Basic czNjcmV0\r\n", "{\"type\":\"t\"}", 401,
          "unauthorized" },
        { "bad queue name", "POST", "/v1/queues/bad!name/tasks", JSON,
          TOKEN, NULL, "{\"type\":\"t\"}", 400, "invalid_queue" },
        { "dead-letter queue name", "POST", deadq, JSON, TOKEN, NULL,
          "{\"type\":\"t\"}", 400, "invalid_queue" },
        { "queue name too long", "POST", longq, JSON, TOKEN, NULL,
          "{\"type\":\"t\"}", 400, "invalid_queue" },
        { "unknown route", "POST", "/v1/nothing", JSON, TOKEN, NULL,
          "{\"type\":\"t\"}", 404, "not_found" },
        { "unknown queue route", "POST", "/v1/queues/q/jobs", JSON, TOKEN,
          NULL, "{\"type\":\"t\"}", 404, "not_found" },
        { "outside /v1", "GET", "/index.html", NULL, NULL, NULL, "", 404,
          "not_found" },
        { "wrong content type", "POST", tasks, "text/plain", TOKEN, NULL,
          "{\"type\":\"t\"}", 415, "unsupported_media_type" },
        { "no content type", "POST", tasks, NULL, TOKEN, NULL,
          "{\"type\":\"t\"}", 415, "unsupported_media_type" },
        { "json-ish content type", "POST", tasks, "application/jsonx",
          TOKEN, NULL, "{\"type\":\"t\"}", 415, "unsupported_media_type" },
        { "wrong method", "GET", tasks, NULL, TOKEN, NULL, "", 405,
          "method_not_allowed" },
        { "wrong method on a task", "DELETE",
          "/v1/tasks/01a22130-9ad0-762e-afb2-954fcb158a6b", NULL, TOKEN,
          NULL, "", 405, "method_not_allowed" },
        { "batch with one bad task", "POST", batch, JSON, TOKEN, NULL,
          "{\"tasks\":[{\"type\":\"good\"},{\"type\":3}]}", 400,
          "invalid_task" },
        { "batch over batch_max", "POST", batch, JSON, TOKEN, NULL, many,
          413, "too_large" },
        { "empty batch", "POST", batch, JSON, TOKEN, NULL,
          "{\"tasks\":[]}", 400, "invalid_task" },
        { "batch not a list", "POST", batch, JSON, TOKEN, NULL,
          "{\"tasks\":{}}", 400, "invalid_task" },
    };

    for (size_t i = 0; i < WQ_ARRAY_LEN(cases); i++) {
        const struct bad *c = &cases[i];
        int st = wq_test_http_request(p.port, c->method, c->path, c->ctype,
            c->token, c->extra, c->body, strlen(c->body), resp, sizeof resp);

        if (st != c->status)
            fail_msg("%s: status %d, want %d: %s", c->what, st, c->status,
                resp);
        json_str(resp, "error", err, sizeof err);
        if (strcmp(err, c->error) != 0)
            fail_msg("%s: error '%s', want '%s'", c->what, err, c->error);
        json_str(resp, "detail", err, sizeof err);
    }
    /* a bad task of a batch is named by its index into "tasks", as one */
    {
        static const char body[] = "{\"tasks\":[{\"type\":\"good\"},"
            "{\"type\":\"good\"},{\"type\":3}]}";
        char detail[256];

        assert_int_equal(wq_test_http_request(p.port, "POST", batch, JSON,
            TOKEN, NULL, body, strlen(body), resp, sizeof resp), 400);
        json_str(resp, "detail", detail, sizeof detail);
        if (strncmp(detail, "tasks[2]: field 'type'", 22) != 0)
            fail_msg("want the task named tasks[2], got: %s", detail);
    }
    /* the one good task, which must be the only message */
    if (post(p.port, queue, "{\"type\":\"sentinel\"}", resp, sizeof resp)
        != 202)
        fail_msg("sentinel: %s", resp);
    json_str(resp, "id", sentinel, sizeof sentinel);
    cons = wq_test_consumer_open(kind, queue);
    wq_test_expect_only(cons, sentinel, 2000);
    wq_test_consumer_close(cons);

    assert_int_equal(wq_test_http_request(p.port, "GET", "/metrics", NULL,
        NULL, NULL, NULL, 0, resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "workq_producer_requests_rejected_total"
        "{reason=\"unauthorized\"} 4\n"));
    assert_non_null(strstr(resp, "workq_producer_tasks_accepted_total"
        "{state=\"queued\"} 1\n"));
    assert_int_equal(producer_stop(&p), 0);
}

static void
test_producer_http_refusals_kafka(void **state)
{
    (void)state;
    check_refusals(WQ_TRANSPORT_KAFKA);
}

static void
test_producer_http_refusals_rabbitmq(void **state)
{
    (void)state;
    check_refusals(WQ_TRANSPORT_RABBITMQ);
}

/* --- delayed tasks and GET /v1/tasks/ID ---------------------------------- */

static void
test_producer_http_delayed_and_get(void **state)
{
    const char *db = wq_test_pg_create_migrated_db();
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "http-delayed");
    struct producer p = producer_start(WQ_TRANSPORT_RABBITMQ, db, NULL);
    char resp[65536], id[64], path[256], st_name[32], sentinel[64];
    struct wq_test_consumer *cons;
    json_t *j;
    int st;

    (void)state;
    st = post(p.port, queue, "{\"type\":\"report\",\"payload\":\"p\","
        "\"delay\":\"10m\",\"headers\":{\"k\":\"v\"}}", resp, sizeof resp);
    if (st != 202)
        fail_msg("delayed: %d %s", st, resp);
    json_str(resp, "id", id, sizeof id);
    json_str(resp, "state", st_name, sizeof st_name);
    assert_string_equal(st_name, "scheduled");
    json_str(resp, "run_at", st_name, sizeof st_name);

    snprintf(path, sizeof path, "/v1/tasks/%s", id);
    st = wq_test_http_request(p.port, "GET", path, NULL, TOKEN, NULL, NULL, 0,
        resp, sizeof resp);
    if (st != 200)
        fail_msg("get: %d %s", st, resp);
    json_str(resp, "state", st_name, sizeof st_name);
    assert_string_equal(st_name, "scheduled");
    json_str(resp, "payload", st_name, sizeof st_name);
    assert_string_equal(st_name, "p");
    j = json_loads(resp, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j,
        "headers"), "k")), "v");
    {
        /* `workq --json status ID` prints the very same object */
        char ci[1200], out[65536];
        const char *argv[] = { wq_test_bin("workq"), "--json", "status", id,
            NULL };
        const char *env[] = { ci, NULL };
        json_t *c;

        snprintf(ci, sizeof ci, "WORKQ_POSTGRES_CONNINFO=%s", db);
        assert_int_equal(wq_test_cmd(argv, env, NULL, out, sizeof out), 0);
        c = json_loads(out, 0, NULL);
        if (c == NULL || !json_equal(c, j))
            fail_msg("status --json differs from GET:\n%s\n%s", out, resp);
        json_decref(c);
    }
    json_decref(j);

    /* the same key twice: one row, the first task's id */
    st = post(p.port, queue, "{\"type\":\"report\",\"idempotency_key\":"
        "\"daily\",\"run_at\":\"2099-01-01T00:00:00Z\"}", resp, sizeof resp);
    assert_int_equal(st, 202);
    json_str(resp, "id", id, sizeof id);
    st = post(p.port, queue, "{\"type\":\"report\",\"idempotency_key\":"
        "\"daily\",\"run_at\":\"2099-01-02T00:00:00Z\"}", resp, sizeof resp);
    assert_int_equal(st, 200);      /* a duplicate: nothing new */
    json_str(resp, "id", path, sizeof path);
    assert_string_equal(path, id);
    assert_non_null(strstr(resp, "\"duplicate\":true"));

    /* a batch mixing both kinds */
    snprintf(path, sizeof path, "/v1/queues/%s/tasks:batch", queue);
    {
        static const char b[] = "[{\"type\":\"a\",\"delay\":60},"
            "{\"type\":\"b\",\"delay\":30.5}]";

        st = wq_test_http_request(p.port, "POST", path, JSON, TOKEN, NULL, b,
            strlen(b), resp, sizeof resp);
    }
    if (st != 202)
        fail_msg("batch: %d %s", st, resp);

    assert_int_equal(wq_test_http_request(p.port, "GET",
        "/v1/tasks/01a22130-9ad0-762e-afb2-954fcb158a6b", NULL, TOKEN, NULL,
        NULL, 0, resp, sizeof resp), 404);
    assert_int_equal(wq_test_http_request(p.port, "GET", "/v1/tasks/not-an-id",
        NULL, TOKEN, NULL, NULL, 0, resp, sizeof resp), 400);
    assert_int_equal(wq_test_http_request(p.port, "GET", "/v1/tasks/x", NULL,
        NULL, NULL, NULL, 0, resp, sizeof resp), 401);

    /* nothing of it went to the broker */
    if (post(p.port, queue, "{\"type\":\"sentinel\"}", resp, sizeof resp)
        != 202)
        fail_msg("sentinel: %s", resp);
    json_str(resp, "id", sentinel, sizeof sentinel);
    cons = wq_test_consumer_open(WQ_TRANSPORT_RABBITMQ, queue);
    wq_test_expect_only(cons, sentinel, 1000);
    wq_test_consumer_close(cons);
    {
        wq_store *s = wq_test_pg_open(db);

        assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM "
            "workq.tasks WHERE queue = '%s' AND state = 'scheduled'",
            queue), 4);
        wq_store_close(s);
    }
    assert_int_equal(producer_stop(&p), 0);
}

/*
 * Task handles: the same key twice answers the first task's id, 202 then
 * 200 with "duplicate":true; before any worker ran, GET /v1/tasks/ID
 * answers the task as queued (from its receipt); the same key delayed is
 * the same task too.  A key's id is its UUIDv5 (uuid.h).
 */
static void
test_producer_http_handles(void **state)
{
    const char *db = wq_test_pg_create_migrated_db();
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "http-handle");
    struct producer p = producer_start(WQ_TRANSPORT_RABBITMQ, db, NULL);
    char resp[65536], id[64], id2[64], path[256], st_name[32];
    uint8_t own[16];
    int st;

    (void)state;
    st = post(p.port, queue, "{\"type\":\"noop\",\"idempotency_key\":"
        "\"order-9\"}", resp, sizeof resp);
    if (st != 202)
        fail_msg("first: %d %s", st, resp);
    json_str(resp, "id", id, sizeof id);
    assert_null(strstr(resp, "duplicate"));
    assert_int_equal(wq_uuid_for_key(queue, "order-9", own), 0);
    {
        char text[WQ_UUID_STRLEN];

        wq_uuid_format(own, text);
        assert_string_equal(id, text);
    }

    st = post(p.port, queue, "{\"type\":\"noop\",\"idempotency_key\":"
        "\"order-9\",\"payload\":\"another body\"}", resp, sizeof resp);
    if (st != 200)
        fail_msg("duplicate: %d %s", st, resp);
    json_str(resp, "id", id2, sizeof id2);
    assert_string_equal(id2, id);
    assert_non_null(strstr(resp, "\"duplicate\":true"));
    json_str(resp, "state", st_name, sizeof st_name);
    assert_string_equal(st_name, "queued");

    snprintf(path, sizeof path, "/v1/tasks/%s", id);
    st = wq_test_http_request(p.port, "GET", path, NULL, TOKEN, NULL, NULL, 0,
        resp, sizeof resp);
    if (st != 200)
        fail_msg("get before any worker: %d %s", st, resp);
    json_str(resp, "state", st_name, sizeof st_name);
    assert_string_equal(st_name, "queued");
    assert_non_null(strstr(resp, "\"claimed\":false"));

    /* the same key delayed: still that task */
    st = post(p.port, queue, "{\"type\":\"noop\",\"idempotency_key\":"
        "\"order-9\",\"delay\":\"10m\"}", resp, sizeof resp);
    if (st != 200)
        fail_msg("delayed duplicate: %d %s", st, resp);
    json_str(resp, "id", id2, sizeof id2);
    assert_string_equal(id2, id);

    /* a batch with a new key and the taken one */
    snprintf(path, sizeof path, "/v1/queues/%s/tasks:batch", queue);
    {
        static const char b[] = "[{\"type\":\"noop\",\"idempotency_key\":"
            "\"order-10\"},{\"type\":\"noop\",\"idempotency_key\":"
            "\"order-9\"}]";
        json_t *j, *tasks;

        st = wq_test_http_request(p.port, "POST", path, JSON, TOKEN, NULL, b,
            strlen(b), resp, sizeof resp);
        if (st != 202)
            fail_msg("batch: %d %s", st, resp);
        j = json_loads(resp, 0, NULL);
        tasks = json_object_get(j, "tasks");
        assert_int_equal(json_array_size(tasks), 2);
        assert_null(json_object_get(json_array_get(tasks, 0), "duplicate"));
        assert_true(json_is_true(json_object_get(json_array_get(tasks, 1),
            "duplicate")));
        assert_string_equal(json_string_value(json_object_get(
            json_array_get(tasks, 1), "id")), id);
        json_decref(j);
    }
    {
        wq_store *s = wq_test_pg_open(db);

        assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
            "workq.accepted"), 2);
        assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
            "workq.tasks"), 0);
        wq_store_close(s);
    }
    assert_int_equal(producer_stop(&p), 0);
}

/* PostgreSQL unreachable: delayed tasks and readiness say 503. */
static void
test_producer_http_store_unreachable(void **state)
{
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "http-nopg");
    struct producer p = producer_start(WQ_TRANSPORT_RABBITMQ,
        "host=127.0.0.1 port=1 dbname=none connect_timeout=2", NULL);
    char resp[4096];

    (void)state;
    assert_int_equal(post(p.port, queue, "{\"type\":\"t\",\"delay\":5}",
        resp, sizeof resp), 503);
    assert_non_null(strstr(resp, "PostgreSQL"));
    assert_int_equal(wq_test_http_request(p.port, "GET", "/readyz", NULL, NULL,
        NULL, NULL, 0, resp, sizeof resp), 503);
    assert_non_null(strstr(resp, "\"postgres\":\"down\""));
    /* reads of a task, the operator's lists and workflows answer 503
     * with the reason, not a hang or a 404 */
    {
        static const char *const paths[] = {
            "/v1/tasks/0190a2b4-0000-7000-8000-000000000001",
            "/v1/tasks", "/v1/workflows/0190a2b4-0000-7000-8000-000000000002",
        };

        for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
            int st = wq_test_http_request(p.port, "GET", paths[i], NULL,
                TOKEN, NULL, NULL, 0, resp, sizeof resp);

            if (st != 503 || strstr(resp, "PostgreSQL unavailable") == NULL)
                fail_msg("GET %s: %d %s", paths[i], st, resp);
        }
    }
    /* immediate tasks do not need the database */
    assert_int_equal(post(p.port, queue, "{\"type\":\"t\"}", resp,
        sizeof resp), 202);
    assert_int_equal(producer_stop(&p), 0);
}

/* --- the broker goes away and comes back --------------------------------- */

static void
test_producer_http_broker_restart(void **state)
{
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "http-restart");
    struct producer p = producer_start(WQ_TRANSPORT_RABBITMQ, NULL,
        (const char *[]){ "WORKQ_PRODUCER_REQUEST_TIMEOUT=3s",
        "WORKQ_RABBITMQ_HEARTBEAT=2s", NULL });
    char resp[4096], ids[64][64];
    struct wq_envelope env[64];
    struct wq_test_consumer *cons;
    int nids = 0, st = 0, i;
    uint64_t deadline;

    (void)state;
    assert_int_equal(post(p.port, queue, "{\"type\":\"before\"}", resp,
        sizeof resp), 202);
    json_str(resp, "id", ids[nids++], sizeof ids[0]);

    wq_test_service("stop", "rabbitmq");
    /* 503 soon, never a hang and never a 202 */
    deadline = wq_clock_mono_ns() + 30000000000u;
    for (i = 0; wq_clock_mono_ns() < deadline; i++) {
        st = post(p.port, queue, "{\"type\":\"during\"}", resp, sizeof resp);
        if (st == 503)
            break;
        if (st == 202)
            fail_msg("202 while the broker is down: %s", resp);
        sleep_ms(200);
    }
    if (st != 503)
        fail_msg("no 503 within 30 s of the broker stopping (last %d: %s)",
            st, resp);
    assert_non_null(strstr(resp, "\"error\":\"unavailable\""));
    assert_int_equal(wq_test_http_request(p.port, "GET", "/readyz", NULL, NULL,
        NULL, NULL, 0, resp, sizeof resp), 503);
    assert_non_null(strstr(resp, "\"broker\":\"down\""));

    wq_test_service("start", "rabbitmq");
    /* recovery: 202 again without restarting the producer */
    deadline = wq_clock_mono_ns() + 60000000000u;
    while (wq_clock_mono_ns() < deadline) {
        st = post(p.port, queue, "{\"type\":\"after\"}", resp, sizeof resp);
        if (st == 202)
            break;
        sleep_ms(250);
    }
    if (st != 202)
        fail_msg("no recovery within 60 s of the broker's return (%d: %s)",
            st, resp);
    json_str(resp, "id", ids[nids++], sizeof ids[0]);
    for (i = 0; i < 5; i++) {
        assert_int_equal(post(p.port, queue, "{\"type\":\"after\"}", resp,
            sizeof resp), 202);
        json_str(resp, "id", ids[nids++], sizeof ids[0]);
    }
    assert_int_equal(wq_test_http_request(p.port, "GET", "/readyz", NULL, NULL,
        NULL, NULL, 0, resp, sizeof resp), 200);

    /* every task answered 202 is on the queue, the one from before the
     * restart included (durable queue, persistent message) */
    cons = wq_test_consumer_open(WQ_TRANSPORT_RABBITMQ, queue);
    assert_int_equal(wq_test_consumer_recv(cons, env, (size_t)nids,
        RECV_MS), nids);
    for (i = 0; i < nids; i++)
        find(env, (size_t)nids, ids[i]);
    for (i = 0; i < nids; i++)
        wq_envelope_free(&env[i]);
    wq_test_consumer_close(cons);
    assert_int_equal(producer_stop(&p), 0);
}

/*
 * An operator deletes the queue under a running producer: the next task
 * is refused by the broker (503, never a lost 202), and the one after it
 * declares the queue again and is accepted.
 */
static void
test_producer_http_queue_deleted(void **state)
{
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "http-deleted");
    struct producer p = producer_start(WQ_TRANSPORT_RABBITMQ, NULL, NULL);
    struct wq_test_consumer *cons;
    struct wq_envelope env;
    char resp[4096], id[64], text[WQ_UUID_STRLEN];
    int st, i;

    (void)state;
    assert_int_equal(post(p.port, queue, "{\"type\":\"t\"}", resp,
        sizeof resp), 202);
    wq_test_delete_queue(WQ_TRANSPORT_RABBITMQ, queue);
    st = post(p.port, queue, "{\"type\":\"t\"}", resp, sizeof resp);
    if (st != 503)
        fail_msg("a task to a deleted queue: %d %s", st, resp);
    assert_non_null(strstr(resp, "no such queue"));
    for (i = 0; i < 3 && (st = post(p.port, queue, "{\"type\":\"again\"}",
        resp, sizeof resp)) != 202; i++)
        ;
    if (st != 202)
        fail_msg("not declared again: %d %s", st, resp);
    json_str(resp, "id", id, sizeof id);
    cons = wq_test_consumer_open(WQ_TRANSPORT_RABBITMQ, queue);
    assert_int_equal(wq_test_consumer_recv(cons, &env, 1, RECV_MS), 1);
    wq_uuid_format(env.id, text);
    assert_string_equal(text, id);
    wq_envelope_free(&env);
    wq_test_consumer_close(cons);
    assert_int_equal(producer_stop(&p), 0);
}

/* --- many clients at once ------------------------------------------------ */

enum { CLIENTS = 32, PER_CLIENT = 100 };

struct client_arg {
    int port;
    const char *queue;
    int n202;
    int other_status;
    char (*ids)[WQ_UUID_STRLEN];
};

static void *
client_thread(void *arg)
{
    struct client_arg *a = arg;
    char resp[1024], body[128];
    json_t *j;

    for (int i = 0; i < PER_CLIENT; i++) {
        snprintf(body, sizeof body, "{\"type\":\"load\",\"payload\":\"%d\"}",
            i);
        int st = post(a->port, a->queue, body, resp, sizeof resp);

        if (st != 202) {
            a->other_status = st;
            continue;
        }
        j = json_loads(resp, 0, NULL);
        if (j != NULL) {
            snprintf(a->ids[a->n202++], WQ_UUID_STRLEN, "%s",
                json_string_value(json_object_get(j, "id")));
            json_decref(j);
        }
    }
    return NULL;
}

/* Prints the producer's own count of 202s and of broker verdicts. */
static void
print_publish_counts(int port)
{
    static char text[65536];
    char *line, *save = NULL;

    if (wq_test_http_request(port, "GET", "/metrics", NULL, NULL, NULL, NULL,
        0, text, sizeof text) != 200)
        return;
    for (line = strtok_r(text, "\n", &save); line != NULL;
        line = strtok_r(NULL, "\n", &save))
        if (line[0] != '#' && (strstr(line, "published_total") != NULL
            || strstr(line, "tasks_accepted_total") != NULL))
            fprintf(stderr, "producer: %s\n", line);
}

static int
cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void
check_concurrency(int kind)
{
    enum { N = CLIENTS * PER_CLIENT };
    const char *queue = wq_test_queue(kind, "http-load");
    struct producer p = producer_start(kind, NULL, NULL);
    struct client_arg args[CLIENTS];
    pthread_t th[CLIENTS];
    char (*ids)[WQ_UUID_STRLEN] = calloc(N, WQ_UUID_STRLEN);
    char (*got)[WQ_UUID_STRLEN] = calloc(N, WQ_UUID_STRLEN);
    struct wq_envelope *env = calloc(N + 1, sizeof *env);
    struct wq_test_consumer *cons;
    char resp[256];
    size_t n;

    /* declare the queue first, so the consumer can subscribe at once */
    assert_int_equal(post(p.port, queue, "{\"type\":\"first\"}", resp,
        sizeof resp), 202);
    for (int i = 0; i < CLIENTS; i++) {
        args[i] = (struct client_arg){ p.port, queue, 0, 0,
            ids + i * PER_CLIENT };
        assert_int_equal(pthread_create(&th[i], NULL, client_thread,
            &args[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        if (args[i].n202 != PER_CLIENT)
            fail_msg("client %d: %d of %d accepted (other status %d)", i,
                args[i].n202, PER_CLIENT, args[i].other_status);
    }
    qsort(ids, N, WQ_UUID_STRLEN, cmp_id);
    for (int i = 1; i < N; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            fail_msg("id %s answered twice", ids[i]);

    cons = wq_test_consumer_open(kind, queue);
    n = wq_test_consumer_recv(cons, env, N + 1, RECV_MS);
    if (n != N + 1) {
        /* tells a 202 without the broker's confirmation from a confirmed
         * message the topic does not hold */
        print_publish_counts(p.port);
        fail_msg("%zu of %d tasks arrived", n, N + 1);
    }
    n = 0;
    for (int i = 0; i < N + 1; i++) {
        if (strcmp(env[i].type, "load") == 0)
            wq_uuid_format(env[i].id, got[n++]);
        wq_envelope_free(&env[i]);
    }
    assert_int_equal(n, N);
    qsort(got, N, WQ_UUID_STRLEN, cmp_id);
    for (int i = 0; i < N; i++)
        if (strcmp(got[i], ids[i]) != 0)
            fail_msg("arrived %s where %s was answered", got[i], ids[i]);
    /* and nothing more: exactly once */
    assert_int_equal(wq_test_consumer_recv(cons, env, 1, 1500), 0);
    wq_test_consumer_close(cons);
    assert_int_equal(producer_stop(&p), 0);
    free(ids);
    free(got);
    free(env);
}

static void
test_producer_http_concurrency_kafka(void **state)
{
    (void)state;
    check_concurrency(WQ_TRANSPORT_KAFKA);
}

static void
test_producer_http_concurrency_rabbitmq(void **state)
{
    (void)state;
    check_concurrency(WQ_TRANSPORT_RABBITMQ);
}

/* --- SIGTERM, sd_notify, rate limit, flags ------------------------------- */

struct stream_arg {
    int port;
    const char *queue;
    int n202, n503, nfail;
    char (*ids)[WQ_UUID_STRLEN];
    atomic_int stop; /* set by the main thread */
};

static void *
stream_thread(void *arg)
{
    struct stream_arg *a = arg;
    char resp[1024];
    json_t *j;

    while (!a->stop && a->n202 < 5000) {
        int st = post(a->port, a->queue, "{\"type\":\"stream\"}", resp,
            sizeof resp);

        if (st == 202) {
            j = json_loads(resp, 0, NULL);
            snprintf(a->ids[a->n202++], WQ_UUID_STRLEN, "%s",
                json_string_value(json_object_get(j, "id")));
            json_decref(j);
        } else if (st == 503) {
            a->n503++;
        } else if (st == -1) {
            break;      /* the daemon is gone: connection refused */
        } else {
            a->nfail++;
        }
    }
    return NULL;
}

static void
test_producer_http_sigterm_drains(void **state)
{
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "http-term");
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    char notify[256], msgs[4096] = "", resp[256];
    struct stream_arg a[4];
    pthread_t th[4];
    char (*ids)[WQ_UUID_STRLEN] = calloc(4 * 5000, WQ_UUID_STRLEN);
    struct wq_envelope *env;
    struct wq_test_consumer *cons;
    struct producer p;
    size_t total = 0, n, mlen = 0;
    int fd, rc;
    ssize_t r;

    (void)state;
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s/notify",
        wq_test_env("WQ_TEST_TMPDIR", "."));
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    snprintf(notify, sizeof notify, "NOTIFY_SOCKET=%s", sun.sun_path);
    p = producer_start(WQ_TRANSPORT_RABBITMQ, NULL,
        (const char *[]){ notify, NULL });
    assert_int_equal(post(p.port, queue, "{\"type\":\"first\"}", resp,
        sizeof resp), 202);
    for (int i = 0; i < 4; i++) {
        a[i] = (struct stream_arg){ .port = p.port, .queue = queue,
            .ids = ids + i * 5000 };
        pthread_create(&th[i], NULL, stream_thread, &a[i]);
    }
    sleep_ms(700);
    rc = producer_stop(&p);
    for (int i = 0; i < 4; i++)
        a[i].stop = 1;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += (size_t)a[i].n202;
        if (a[i].nfail > 0)
            fail_msg("client %d: %d answers neither 202 nor 503", i,
                a[i].nfail);
    }
    assert_int_equal(rc, 0);
    assert_true(total > 0);
    while ((r = recv(fd, msgs + mlen, sizeof msgs - 1 - mlen,
        MSG_DONTWAIT)) > 0) {
        mlen += (size_t)r;
        msgs[mlen++] = '\n';
    }
    msgs[mlen] = '\0';
    close(fd);
    assert_non_null(strstr(msgs, "READY=1"));
    assert_non_null(strstr(msgs, "STOPPING=1"));

    /* every 202 arrived: nothing accepted was lost in the shutdown */
    env = calloc(total + 2, sizeof *env);
    cons = wq_test_consumer_open(WQ_TRANSPORT_RABBITMQ, queue);
    n = wq_test_consumer_recv(cons, env, total + 2, 15000);
    if (n < total + 1)
        fail_msg("%zu of %zu accepted tasks arrived", n, total + 1);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < a[i].n202; k++)
            find(env, n, a[i].ids[k]);
    for (size_t i = 0; i < n; i++)
        wq_envelope_free(&env[i]);
    wq_test_consumer_close(cons);
    free(env);
    free(ids);
}

static void
test_producer_http_rate_limit(void **state)
{
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "http-rate");
    struct producer p = producer_start(WQ_TRANSPORT_RABBITMQ, NULL,
        (const char *[]){ "WORKQ_PRODUCER_RATE_LIMIT=5", NULL });
    char resp[1024];
    int n202 = 0, n429 = 0, st;

    (void)state;
    for (int i = 0; i < 40; i++) {
        st = post(p.port, queue, "{\"type\":\"t\"}", resp, sizeof resp);
        if (st == 202)
            n202++;
        else if (st == 429)
            n429++;
        else
            fail_msg("status %d: %s", st, resp);
    }
    assert_true(n429 > 0);
    assert_true(n202 >= 5 && n202 < 40);
    assert_non_null(strstr(resp, "rate_limited"));
    /* health checks are not limited */
    assert_int_equal(wq_test_http_request(p.port, "GET", "/healthz", NULL,
        NULL, NULL, NULL, 0, resp, sizeof resp), 200);
    sleep_ms(1100);
    assert_int_equal(post(p.port, queue, "{\"type\":\"t\"}", resp,
        sizeof resp), 202);
    assert_int_equal(producer_stop(&p), 0);
}

/* The rate limit counts tasks: a batch costs its length (issue 12). */
static void
test_producer_http_rate_limit_counts_tasks(void **state)
{
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "http-rate-tasks");
    struct producer p = producer_start(WQ_TRANSPORT_RABBITMQ, NULL,
        (const char *[]){ "WORKQ_PRODUCER_RATE_LIMIT=300", NULL });
    static char body[200 * 16 + 64], resp[65536];
    char path[256], raw[sizeof body + 512];
    struct wq_test_http_response r;
    size_t off = 0;
    int accepted = 0, refused = 0, st;
    uint64_t t0;
    double secs;

    (void)state;
    off += (size_t)snprintf(body + off, sizeof body - off, "{\"tasks\":[");
    for (int i = 0; i < 200; i++)
        off += (size_t)snprintf(body + off, sizeof body - off,
            "%s{\"type\":\"t\"}", i > 0 ? "," : "");
    snprintf(body + off, sizeof body - off, "]}");
    snprintf(path, sizeof path, "/v1/queues/%s/tasks:batch", queue);
    t0 = wq_clock_mono_ns();
    for (int i = 0; i < 5; i++) {
        st = wq_test_http_request(p.port, "POST", path, JSON, TOKEN, NULL,
            body, strlen(body), resp, sizeof resp);
        if (st == 202)
            accepted += 200;
        else if (st == 429)
            refused++;
        else
            fail_msg("status %d: %s", st, resp);
    }
    secs = (double)(wq_clock_mono_ns() - t0) / 1e9;
    /* one second's worth (300) plus the rate over the time taken */
    if (accepted > 300 + (int)(300 * secs))
        fail_msg("%d tasks accepted in %.2f s under rate_limit = 300",
            accepted, secs);
    assert_true(accepted >= 200);
    assert_true(refused > 0);
    /* the 429 says when to come back */
    snprintf(raw, sizeof raw, "POST %s HTTP/1.1\r\nHost: x\r\n"
        "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
        "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", path, TOKEN,
        strlen(body), body);
    st = wq_test_http_roundtrip(p.port, raw, strlen(raw), &r);
    if (st != 429 || strstr(r.text, "Retry-After: ") == NULL)
        fail_msg("status %d:\n%s", st, r.text);
    wq_test_http_response_free(&r);
    assert_int_equal(producer_stop(&p), 0);
}

static void
test_producer_http_flags(void **state)
{
    static char out[65536];
    char bin[1024];
    const char *argv[3];

    (void)state;
    snprintf(bin, sizeof bin, "%s", wq_test_bin("workq-producer"));
    argv[0] = bin;
    argv[2] = NULL;
    argv[1] = "--help";
    assert_int_equal(wq_test_cmd(argv, NULL, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "ROUTES"));
    assert_non_null(strstr(out, "EXIT STATUS"));
    argv[1] = "--version";
    assert_int_equal(wq_test_cmd(argv, NULL, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "workq-producer "));
    argv[1] = "--bogus";
    assert_int_equal(wq_test_cmd(argv, NULL, NULL, out, sizeof out), 64);
    {
        const char *cargv[] = { bin, "--config", "/nonexistent/workq.conf",
            NULL };

        assert_int_equal(wq_test_cmd(cargv, NULL, NULL, out, sizeof out),
            78);
    }
    {
        const char *env[] = { "WORKQ_PRODUCER_TOKENS_FILE=/nonexistent",
            "WORKQ_PRODUCER_LISTEN=127.0.0.1:1", NULL };
        const char *cargv[] = { bin, NULL };

        assert_int_equal(wq_test_cmd(cargv, env, NULL, out, sizeof out),
            78);
        assert_non_null(strstr(out, "/nonexistent"));
    }
}

/*
 * A batch's tasks without a key get ids of one sequence (rand_b up by
 * one, uuid.h), so that their receipts can be a range: rows with no ids
 * listed (migration 0012).  The rows stand for exactly the batch's
 * tasks, each of which reads as queued before any worker claimed it.
 */
static void
check_batch_range(int kind)
{
    enum { N = 40 };
    const char *db = wq_test_pg_create_migrated_db();
    const char *queue = wq_test_queue(kind, "http-range");
    struct producer p = producer_start(kind, db, NULL);
    char body[N * 24 + 32], path[2048], resp[65536], st_name[32];
    char ids[N][WQ_UUID_STRLEN];
    uint8_t bin[16];
    uint64_t first = 0;
    size_t off;
    wq_store *s;
    json_t *j, *tasks;
    int st;

    off = (size_t)snprintf(body, sizeof body, "{\"tasks\":[");
    for (int i = 0; i < N; i++)
        off += (size_t)snprintf(body + off, sizeof body - off,
            "%s{\"type\":\"a\"}", i ? "," : "");
    snprintf(body + off, sizeof body - off, "]}");
    snprintf(path, sizeof path, "/v1/queues/%s/tasks:batch", queue);
    st = wq_test_http_request(p.port, "POST", path, JSON, TOKEN, NULL, body,
        strlen(body), resp, sizeof resp);
    if (st != 202)
        fail_msg("batch: status %d: %s", st, resp);
    j = json_loads(resp, 0, NULL);
    assert_non_null(j);
    tasks = json_object_get(j, "tasks");
    assert_int_equal(json_array_size(tasks), N);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "%s", json_string_value(
            json_object_get(json_array_get(tasks, i), "id")));
        assert_int_equal(wq_uuid_parse(ids[i], bin), 0);
        if (i == 0)
            first = wq_uuid_rand_b(bin);
        else
            assert_true(wq_uuid_rand_b(bin) == first + (uint64_t)i);
    }
    json_decref(j);

    /* RabbitMQ confirms in order: one range.  Kafka confirms partition
     * by partition, and each part that is no range is listed */
    s = wq_test_pg_open(db);
    if (kind == WQ_TRANSPORT_RABBITMQ)
        assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM"
            " workq.accepted_runs WHERE queue = '%s' AND ids <> ''", queue),
            0);
    assert_int_equal(wq_test_pg_numf(s, "SELECT coalesce(sum(CASE WHEN"
        " ids = '' THEN workq.uuid_rand_b(last_id)"
        " - workq.uuid_rand_b(first_id) + 1 ELSE octet_length(ids) / 16"
        " END), 0) FROM workq.accepted_runs WHERE queue = '%s'", queue), N);
    wq_store_close(s);
    for (int i = 0; i < N; i += 13) {
        snprintf(path, sizeof path, "/v1/tasks/%s", ids[i]);
        st = wq_test_http_request(p.port, "GET", path, NULL, TOKEN, NULL,
            NULL, 0, resp, sizeof resp);
        if (st != 200)
            fail_msg("get %s: %d %s", ids[i], st, resp);
        json_str(resp, "state", st_name, sizeof st_name);
        assert_string_equal(st_name, "queued");
    }
    assert_int_equal(producer_stop(&p), 0);
}

static void test_producer_http_batch_range_kafka(void **state)
{ (void)state; check_batch_range(WQ_TRANSPORT_KAFKA); }
static void test_producer_http_batch_range_rabbitmq(void **state)
{ (void)state; check_batch_range(WQ_TRANSPORT_RABBITMQ); }

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_producer_http_accepted_kafka),
    cmocka_unit_test(test_producer_http_accepted_rabbitmq),
    cmocka_unit_test(test_producer_http_batch_range_kafka),
    cmocka_unit_test(test_producer_http_batch_range_rabbitmq),
    cmocka_unit_test(test_producer_http_flow_kafka),
    cmocka_unit_test(test_producer_http_flow_rabbitmq),
    cmocka_unit_test(test_producer_http_hook_kafka),
    cmocka_unit_test(test_producer_http_hook_rabbitmq),
    cmocka_unit_test(test_producer_http_priority_kafka),
    cmocka_unit_test(test_producer_http_priority_rabbitmq),
    cmocka_unit_test(test_producer_http_kafka_brokers_url),
    cmocka_unit_test(test_producer_http_refusals_kafka),
    cmocka_unit_test(test_producer_http_refusals_rabbitmq),
    cmocka_unit_test(test_producer_http_delayed_and_get),
    cmocka_unit_test(test_producer_http_handles),
    cmocka_unit_test(test_producer_http_store_unreachable),
    cmocka_unit_test(test_producer_http_queue_deleted),
    cmocka_unit_test(test_producer_http_concurrency_kafka),
    cmocka_unit_test(test_producer_http_concurrency_rabbitmq),
    cmocka_unit_test(test_producer_http_sigterm_drains),
    cmocka_unit_test(test_producer_http_rate_limit),
    cmocka_unit_test(test_producer_http_rate_limit_counts_tasks),
    cmocka_unit_test(test_producer_http_flags),
    cmocka_unit_test(test_producer_http_broker_restart),
};

WQ_TEST_MAIN("producer_http", tests)

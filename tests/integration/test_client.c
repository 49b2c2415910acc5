/*
 * test_client.c - the public C client API (shared/workq.h) against the
 * real brokers and PostgreSQL of tests/services, on both transports: a
 * submitted task arrives on the broker decoded intact with every field
 * given; a batch of 1000 all arrive with distinct ids; a delayed task is
 * a `scheduled` row in PostgreSQL and nothing on the broker; bad tasks
 * are refused before anything is sent.  The receiving side is a raw
 * transport consumer (wq_test_broker.h), not a worker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "envelope.h"
#include "store.h"
#include "uuid.h"
#include "workq.h"
#include "wq_test.h"
#include "wq_test_broker.h"
#include "wq_test_pg.h"

#define RECV_MS 60000

/* A client on the private servers; conninfo NULL: the default database. */
static wq_client *
client_open(int kind, const char *conninfo)
{
    struct wq_client_conf conf = {
        .transport = wq_test_kind_name(kind),
        .kafka_brokers = WQ_TEST_KAFKA_BROKERS(),
        .rabbitmq_url = WQ_TEST_AMQP_URL(),
        .postgres_conninfo = conninfo != NULL ? conninfo
            : WQ_TEST_PG_CONNINFO(),
        .client_id = "test-client",
        .kafka_linger_ms = 1,
    };
    char err[WQ_ERRLEN];
    wq_client *c = NULL;

    if (wq_client_open_conf(&conf, &c, err, sizeof err) != 0)
        fail_msg("wq_client_open_conf(%s): %s (tests/services/ctl start)",
            conf.transport, err);
    return c;
}

/* Submits a plain task and returns its id (static). */
static const char *
submit_plain(wq_client *c, const char *queue, const char *type)
{
    static char id[WQ_CLIENT_ID_LEN];
    struct wq_client_task t = { .queue = queue, .type = type,
        .payload = "x", .payload_len = 1 };
    char err[WQ_ERRLEN];

    if (wq_client_submit(c, &t, id, err, sizeof err) != 0)
        fail_msg("submit: %s", err);
    return id;
}

/* --- one task, every field --------------------------------------------- */

static void
check_fields(int kind)
{
    static const char payload[] = "bin\0ary\xff payload";
    struct wq_client_header hdrs[] = {
        { "traceparent", "00-0af7651916cd43dd8448eb211c80319c-"
            "b7ad6b7169203331-01" },
        { "tenant", "acme" },
        { "empty", "" },
    };
    const char *queue = wq_test_queue(kind, "client-fields");
    struct wq_client_task t = {
        .queue = queue, .type = "resize", .payload = payload,
        .payload_len = sizeof payload - 1, .idempotency_key = "order-42",
        .max_attempts = 7, .headers = hdrs, .nheaders = 3,
    };
    struct wq_test_consumer *cons;
    struct wq_envelope env;
    char id[WQ_CLIENT_ID_LEN], text[WQ_UUID_STRLEN], err[WQ_ERRLEN];
    int64_t before = wq_clock_wall_ms();
    wq_client *c = client_open(kind, NULL);

    if (wq_client_submit(c, &t, id, err, sizeof err) != 0)
        fail_msg("submit: %s", err);
    assert_int_equal(strlen(id), 36);
    wq_client_free(c);

    cons = wq_test_consumer_open(kind, queue);
    assert_int_equal(wq_test_consumer_recv(cons, &env, 1, RECV_MS), 1);
    wq_uuid_format(env.id, text);
    assert_string_equal(text, id);
    /* a client-given key names the task: the id is the key's UUIDv5 */
    {
        uint8_t own[16];

        assert_int_equal(wq_uuid_for_key(queue, "order-42", own), 0);
        assert_memory_equal(env.id, own, 16);
        assert_int_equal(env.id[6] >> 4, 5);
    }
    assert_true(env.created_at_ms >= before);
    assert_true(env.created_at_ms <= wq_clock_wall_ms());
    assert_string_equal(env.queue, queue);
    assert_string_equal(env.type, "resize");
    assert_string_equal(env.key, "order-42");
    assert_int_equal(env.payload_len, sizeof payload - 1);
    assert_memory_equal(env.payload, payload, sizeof payload - 1);
    assert_int_equal(env.attempt, 1);
    assert_int_equal(env.max_attempts, 7);
    assert_int_equal(env.run_at_ms, 0);
    assert_true(env.created_at_ms >= before);
    assert_true(env.created_at_ms <= wq_clock_wall_ms());
    assert_int_equal(env.nheaders, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(env.headers[i].name, hdrs[i].name);
        assert_string_equal(env.headers[i].value, hdrs[i].value);
    }
    if (kind == WQ_TRANSPORT_KAFKA)
        assert_string_equal(wq_test_consumer_last_key(cons), "order-42");
    wq_envelope_free(&env);
    wq_test_consumer_close(cons);
}

static void
test_client_fields_kafka(void **state)
{
    (void)state;
    check_fields(WQ_TRANSPORT_KAFKA);
}

static void
test_client_fields_rabbitmq(void **state)
{
    (void)state;
    check_fields(WQ_TRANSPORT_RABBITMQ);
}

/* Without a key the key is the id; without max_attempts, 25. */
static void
check_defaults(int kind)
{
    const char *queue = wq_test_queue(kind, "client-defaults");
    struct wq_test_consumer *cons;
    struct wq_envelope env;
    char text[WQ_UUID_STRLEN], id[WQ_CLIENT_ID_LEN];
    wq_client *c = client_open(kind, NULL);

    snprintf(id, sizeof id, "%s", submit_plain(c, queue, "noop"));
    wq_client_free(c);
    cons = wq_test_consumer_open(kind, queue);
    assert_int_equal(wq_test_consumer_recv(cons, &env, 1, RECV_MS), 1);
    wq_uuid_format(env.id, text);
    assert_string_equal(text, id);
    assert_string_equal(env.key, id);
    assert_int_equal(env.max_attempts, WQ_MAX_ATTEMPTS_DEFAULT);
    assert_int_equal(env.nheaders, 0);
    wq_envelope_free(&env);
    wq_test_consumer_close(cons);
}

static void
test_client_defaults_kafka(void **state)
{
    (void)state;
    check_defaults(WQ_TRANSPORT_KAFKA);
}

static void
test_client_defaults_rabbitmq(void **state)
{
    (void)state;
    check_defaults(WQ_TRANSPORT_RABBITMQ);
}

/* --- a batch of 1000 ----------------------------------------------------- */

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
check_batch(int kind)
{
    enum { N = 1000 };
    const char *queue = wq_test_queue(kind, "client-batch");
    struct wq_client_task *t = calloc(N, sizeof *t);
    struct wq_client_result *r = calloc(N, sizeof *r);
    struct wq_envelope *env = calloc(N, sizeof *env);
    char (*payloads)[16] = calloc(N, 16), err[WQ_ERRLEN];
    char **ids = calloc(N, sizeof *ids), **got = calloc(N, sizeof *got);
    struct wq_test_consumer *cons;
    wq_client *c = client_open(kind, NULL);
    size_t n;

    for (size_t i = 0; i < N; i++) {
        snprintf(payloads[i], 16, "task %zu", i);
        t[i].queue = queue;
        t[i].type = "noop";
        t[i].payload = payloads[i];
        t[i].payload_len = strlen(payloads[i]);
    }
    if (wq_client_submit_batch(c, t, N, r, err, sizeof err) != 0)
        fail_msg("batch: %s", err);
    wq_client_free(c);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(r[i].status, 0);
        assert_int_equal(r[i].scheduled, 0);
        ids[i] = r[i].id;
    }
    qsort(ids, N, sizeof *ids, cmp_str);
    for (size_t i = 1; i < N; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            fail_msg("id %s given twice", ids[i]);

    cons = wq_test_consumer_open(kind, queue);
    n = wq_test_consumer_recv(cons, env, N, RECV_MS);
    if (n != N)
        fail_msg("%zu of %d tasks arrived", n, N);
    for (size_t i = 0; i < N; i++) {
        got[i] = malloc(WQ_UUID_STRLEN);
        wq_uuid_format(env[i].id, got[i]);
        /* the payload belongs to the task with this id */
        for (size_t j = 0; j < N; j++)
            if (strcmp(r[j].id, got[i]) == 0) {
                assert_int_equal(env[i].payload_len, strlen(payloads[j]));
                assert_memory_equal(env[i].payload, payloads[j],
                    env[i].payload_len);
                break;
            }
        wq_envelope_free(&env[i]);
    }
    qsort(got, N, sizeof *got, cmp_str);
    for (size_t i = 0; i < N; i++)
        assert_string_equal(got[i], ids[i]);
    assert_int_equal(wq_test_consumer_recv(cons, env, 1, 1000), 0);
    wq_test_consumer_close(cons);
    for (size_t i = 0; i < N; i++)
        free(got[i]);
    free(got);
    free(ids);
    free(payloads);
    free(env);
    free(r);
    free(t);
}

static void
test_client_batch_1000_kafka(void **state)
{
    (void)state;
    check_batch(WQ_TRANSPORT_KAFKA);
}

static void
test_client_batch_1000_rabbitmq(void **state)
{
    (void)state;
    check_batch(WQ_TRANSPORT_RABBITMQ);
}

/* --- async submits and flush --------------------------------------------- */

struct counts {
    int ok, failed;
};

static void
count_done(void *user, const struct wq_client_result *r)
{
    struct counts *c = user;

    if (r->status == 0)
        c->ok++;
    else
        c->failed++;
}

static void
check_async(int kind)
{
    const char *queue = wq_test_queue(kind, "client-async");
    struct wq_client_task t = { .queue = queue, .type = "noop" };
    struct counts counts = { 0, 0 };
    struct wq_envelope env[300];
    struct wq_test_consumer *cons;
    char err[WQ_ERRLEN], id[WQ_CLIENT_ID_LEN];
    wq_client *c = client_open(kind, NULL);

    for (int i = 0; i < 300; i++) {
        if (wq_client_submit_async(c, &t, count_done, &counts, id, err,
            sizeof err) != 0)
            fail_msg("async %d: %s", i, err);
        assert_int_equal(strlen(id), 36);
    }
    if (wq_client_flush(c, -1, err, sizeof err) != 0)
        fail_msg("flush: %s", err);
    assert_int_equal(counts.ok, 300);
    assert_int_equal(counts.failed, 0);
    /* a flush with nothing queued is a no-op */
    assert_int_equal(wq_client_flush(c, 0, err, sizeof err), 0);
    wq_client_free(c);
    cons = wq_test_consumer_open(kind, queue);
    assert_int_equal(wq_test_consumer_recv(cons, env, 300, RECV_MS), 300);
    for (int i = 0; i < 300; i++)
        wq_envelope_free(&env[i]);
    wq_test_consumer_close(cons);
}

static void
test_client_async_kafka(void **state)
{
    (void)state;
    check_async(WQ_TRANSPORT_KAFKA);
}

static void
test_client_async_rabbitmq(void **state)
{
    (void)state;
    check_async(WQ_TRANSPORT_RABBITMQ);
}

/* --- delayed tasks: PostgreSQL, not the broker --------------------------- */

static void
check_delayed(int kind)
{
    const char *db = wq_test_pg_create_migrated_db();
    const char *queue = wq_test_queue(kind, "client-delayed");
    struct wq_client_header h = { "k", "v" };
    struct wq_client_task t = { .queue = queue, .type = "report",
        .payload = "later", .payload_len = 5, .delay_ms = 60000,
        .max_attempts = 3, .headers = &h, .nheaders = 1 };
    struct wq_client_task at = { .queue = queue, .type = "report",
        .idempotency_key = "at-key" };
    struct wq_client_result r;
    struct wq_task_row row;
    struct wq_test_consumer *cons;
    char err[WQ_ERRLEN], id[WQ_CLIENT_ID_LEN], sentinel[WQ_CLIENT_ID_LEN];
    uint8_t bin[16];
    int64_t before = wq_clock_wall_ms();
    wq_client *c = client_open(kind, db);
    wq_store *s;

    if (wq_client_submit_batch(c, &t, 1, &r, err, sizeof err) != 0)
        fail_msg("delayed submit: %s", err);
    assert_int_equal(r.scheduled, 1);
    assert_int_equal(r.duplicate, 0);
    assert_true(r.run_at_ms >= before + 60000);
    snprintf(id, sizeof id, "%s", r.id);
    /* run_at in the future: also scheduled */
    at.run_at_ms = wq_clock_wall_ms() + 3600 * 1000;
    if (wq_client_submit_batch(c, &at, 1, &r, err, sizeof err) != 0)
        fail_msg("run_at submit: %s", err);
    assert_int_equal(r.scheduled, 1);
    assert_int_equal(r.run_at_ms, at.run_at_ms);
    /* the same key again: not stored twice, the first task's id */
    at.run_at_ms += 1000;
    {
        char first[WQ_CLIENT_ID_LEN];

        snprintf(first, sizeof first, "%s", r.id);
        if (wq_client_submit_batch(c, &at, 1, &r, err, sizeof err) != 0)
            fail_msg("duplicate submit: %s", err);
        assert_int_equal(r.duplicate, 1);
        assert_string_equal(r.id, first);
    }
    /* the broker saw none of them: only the sentinel arrives */
    snprintf(sentinel, sizeof sentinel, "%s",
        submit_plain(c, queue, "sentinel"));
    wq_client_free(c);

    s = wq_test_pg_open(db);
    assert_int_equal(wq_uuid_parse(id, bin), 0);
    memset(&row, 0, sizeof row);
    if (wq_store_task_get(s, bin, &row, err, sizeof err) != 0)
        fail_msg("task %s not in PostgreSQL: %s", id, err);
    assert_int_equal(row.state, WQ_TASK_SCHEDULED);
    assert_string_equal(row.queue, queue);
    assert_string_equal(row.type, "report");
    assert_string_equal(row.idempotency_key, id);
    assert_int_equal(row.payload_len, 5);
    assert_memory_equal(row.payload, "later", 5);
    assert_int_equal(row.attempt, 0);
    assert_int_equal(row.max_attempts, 3);
    assert_true(row.run_at_ms >= before + 60000);
    assert_true(row.run_at_ms <= wq_clock_wall_ms() + 60000);
    assert_non_null(strstr(row.headers_json, "\"k\""));
    wq_task_row_free(&row);
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM workq.tasks "
        "WHERE queue = '%s' AND state = 'scheduled'", queue), 2);
    wq_store_close(s);

    cons = wq_test_consumer_open(kind, queue);
    wq_test_expect_only(cons, sentinel, 2000);
    wq_test_consumer_close(cons);
}

static void
test_client_delayed_kafka(void **state)
{
    (void)state;
    check_delayed(WQ_TRANSPORT_KAFKA);
}

static void
test_client_delayed_rabbitmq(void **state)
{
    (void)state;
    check_delayed(WQ_TRANSPORT_RABBITMQ);
}

/* --- refusals ------------------------------------------------------------ */

static void
test_client_invalid_tasks_send_nothing(void **state)
{
    static char big[(1 << 20) + 1];
    struct wq_client_header many[65];
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "client-invalid");
    struct wq_client_task bad[] = {
        { .queue = "no/slash", .type = "t" },
        { .queue = "x.dead", .type = "t" },
        { .queue = queue, .type = NULL },
        { .queue = queue, .type = "" },
        { .queue = queue, .type = "t", .payload = big,
          .payload_len = sizeof big },
        { .queue = queue, .type = "t", .headers = many, .nheaders = 65 },
        { .queue = queue, .type = "t", .delay_ms = 1000,
          .run_at_ms = 1 },
        { .queue = queue, .type = "t", .max_attempts = -1 },
        { .queue = queue, .type = "t", .idempotency_key = "" },
    };
    static const int want[] = { WQ_EINVAL, WQ_EINVAL, WQ_EINVAL, WQ_EINVAL,
        WQ_ETOOBIG, WQ_ETOOBIG, WQ_EINVAL, WQ_EINVAL, WQ_EINVAL };
    struct wq_client_result r[WQ_ARRAY_LEN(bad)];
    struct wq_test_consumer *cons;
    char err[WQ_ERRLEN], id[WQ_CLIENT_ID_LEN], sentinel[WQ_CLIENT_ID_LEN];
    wq_client *c = client_open(WQ_TRANSPORT_RABBITMQ, NULL);

    (void)state;
    for (int i = 0; i < 65; i++)
        many[i].name = many[i].value = "h";
    for (size_t i = 0; i < WQ_ARRAY_LEN(bad); i++) {
        int rc = wq_client_submit(c, &bad[i], id, err, sizeof err);

        if (rc != want[i])
            fail_msg("task %zu: %d (%s), want %d", i, rc, err, want[i]);
        assert_string_equal(id, "");
        assert_true(strlen(err) > 0);
    }
    /* in a batch, each fails alone and the good one goes */
    assert_int_equal(wq_client_submit_batch(c, bad, WQ_ARRAY_LEN(bad), r,
        err, sizeof err), WQ_EINVAL);
    assert_non_null(strstr(err, "9 of 9"));
    snprintf(sentinel, sizeof sentinel, "%s",
        submit_plain(c, queue, "sentinel"));
    wq_client_free(c);
    cons = wq_test_consumer_open(WQ_TRANSPORT_RABBITMQ, queue);
    wq_test_expect_only(cons, sentinel, 1000);
    wq_test_consumer_close(cons);
}

static void
test_client_unreachable_broker(void **state)
{
    struct wq_client_conf conf = { .transport = "rabbitmq",
        .rabbitmq_url = "amqp://guest:guest@127.0.0.1:1" };
    char err[WQ_ERRLEN];
    wq_client *c = (wq_client *)&conf;

    (void)state;
    assert_int_equal(wq_client_open_conf(&conf, &c, err, sizeof err),
        WQ_EBROKER);
    assert_null(c);
    assert_non_null(strstr(err, "127.0.0.1:1"));
    conf.transport = "carrier-pigeon";
    assert_int_equal(wq_client_open_conf(&conf, &c, err, sizeof err),
        WQ_ECONFIG);
}

/* The database is down: a delayed submit says so, an immediate one
 * does not care. */
static void
test_client_store_unreachable(void **state)
{
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "client-nostore");
    struct wq_client_task t = { .queue = queue, .type = "t",
        .delay_ms = 5000 };
    char err[WQ_ERRLEN], id[WQ_CLIENT_ID_LEN];
    wq_client *c = client_open(WQ_TRANSPORT_RABBITMQ,
        "host=127.0.0.1 port=1 dbname=none connect_timeout=2");

    (void)state;
    assert_int_equal(wq_client_submit(c, &t, id, err, sizeof err),
        WQ_ESTORE);
    t.delay_ms = 0;
    if (wq_client_submit(c, &t, id, err, sizeof err) != 0)
        fail_msg("immediate submit: %s", err);
    /* the broker took the immediate task: it runs, but its receipt could
     * not be written, and the result says so */
    {
        struct wq_client_result r;

        assert_int_equal(wq_client_submit_batch(c, &t, 1, &r, err,
            sizeof err), 0);
        assert_int_equal(r.untracked, 1);
        assert_int_equal(r.duplicate, 0);
    }
    wq_client_free(c);
}

/* --- task handles (issue 11: a handle that always resolves) ------------ */

/* Reads task `id` (text) from the store; its state name, or "none". */
static const char *
state_of(wq_store *s, const char *id, int *receipt)
{
    static char state[32];
    struct wq_task_row row;
    uint8_t bin[16];
    char err[WQ_ERRLEN];
    int rc;

    assert_int_equal(wq_uuid_parse(id, bin), 0);
    rc = wq_store_task_get(s, bin, &row, err, sizeof err);
    if (rc == WQ_ENOENT) {
        wq_task_row_free(&row);
        return "none";
    }
    if (rc != 0)
        fail_msg("get %s: %s", id, err);
    snprintf(state, sizeof state, "%s", wq_task_state_name(row.state));
    if (receipt != NULL)
        *receipt = row.receipt;
    wq_task_row_free(&row);
    return state;
}

/*
 * The same key twice, then once more delayed: one id for all three, the
 * later ones marked duplicate; before any worker ran, the id resolves to
 * a queued task (its receipt), and an id never accepted does not.  The
 * broker carries two messages with that id (the claim absorbs the
 * second); the delayed duplicate writes nothing.
 */
static void
check_handles(int kind)
{
    const char *conninfo = wq_test_pg_create_migrated_db();
    const char *queue = wq_test_queue(kind, "client-handle");
    struct wq_client_task t = { .queue = queue, .type = "noop",
        .payload = "x", .payload_len = 1, .idempotency_key = "order-7" };
    struct wq_client_task plain = { .queue = queue, .type = "noop" };
    struct wq_client_result r[2], d;
    struct wq_envelope env[3];
    struct wq_test_consumer *cons;
    char err[WQ_ERRLEN], other[WQ_UUID_STRLEN];
    uint8_t never[16];
    int receipt = 0;
    wq_client *c = client_open(kind, conninfo);
    wq_store *s = wq_test_pg_open(conninfo);

    if (wq_client_submit_batch(c, &t, 1, &r[0], err, sizeof err) != 0)
        fail_msg("first submit: %s", err);
    if (wq_client_submit_batch(c, &t, 1, &r[1], err, sizeof err) != 0)
        fail_msg("second submit: %s", err);
    assert_string_equal(r[0].id, r[1].id);
    assert_int_equal(r[0].duplicate, 0);
    assert_int_equal(r[1].duplicate, 1);
    assert_int_equal(r[0].untracked, 0);
    assert_string_equal(r[0].state, "queued");
    assert_string_equal(r[1].state, "queued");

    /* accepted, not claimed: it resolves, from its receipt */
    assert_string_equal(state_of(s, r[0].id, &receipt), "queued");
    assert_int_equal(receipt, 1);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.accepted"),
        1);

    /* the same key delayed: the same task, nothing new */
    t.delay_ms = 60000;
    if (wq_client_submit_batch(c, &t, 1, &d, err, sizeof err) != 0)
        fail_msg("delayed submit: %s", err);
    assert_string_equal(d.id, r[0].id);
    assert_int_equal(d.duplicate, 1);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks"),
        0);

    /* a task without a key has a fresh UUIDv7 and resolves too */
    if (wq_client_submit(c, &plain, other, err, sizeof err) != 0)
        fail_msg("plain submit: %s", err);
    assert_string_equal(state_of(s, other, NULL), "queued");

    /* an id that was never accepted does not resolve */
    assert_int_equal(wq_uuid_v7(never), 0);
    {
        char text[WQ_UUID_STRLEN];

        wq_uuid_format(never, text);
        assert_string_equal(state_of(s, text, NULL), "none");
    }
    wq_client_free(c);

    cons = wq_test_consumer_open(kind, queue);
    assert_int_equal(wq_test_consumer_recv(cons, env, 3, RECV_MS), 3);
    for (int i = 0; i < 3; i++)
        wq_envelope_free(&env[i]);
    wq_test_consumer_close(cons);
    wq_store_close(s);
}

static void test_client_handles_kafka(void **state)
{ (void)state; check_handles(WQ_TRANSPORT_KAFKA); }
static void test_client_handles_rabbitmq(void **state)
{ (void)state; check_handles(WQ_TRANSPORT_RABBITMQ); }

/*
 * A receipt after a worker claimed the task (the claim won the race with
 * the submitter's receipt) is the submit's own task, not a duplicate; a
 * row of an earlier submit of the key (another created_at) is one, and
 * its state comes back; an id twice in one batch is new once.
 */
static void
test_client_receipt_rules(void **state)
{
    const char *conninfo = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(conninfo);
    static const char *const keys[4] = { "claimed", "taken", "taken",
        "fresh" };
    struct wq_accept a[4];
    char err[WQ_ERRLEN], sql[512], text[2][WQ_UUID_STRLEN];

    (void)state;
    memset(a, 0, sizeof a);
    for (int i = 0; i < 4; i++) {
        a[i].queue = "rq";
        a[i].type = "noop";
        a[i].key = keys[i];
        a[i].max_attempts = 3;
        a[i].created_at_ms = 1700000000123;
        assert_int_equal(wq_uuid_for_key("rq", keys[i], a[i].id), 0);
    }
    wq_uuid_format(a[0].id, text[0]);
    wq_uuid_format(a[1].id, text[1]);
    /* "claimed": a worker's row of this very message (same created_at);
     * "taken": a row of an earlier submit of the key */
    snprintf(sql, sizeof sql, "INSERT INTO workq.tasks (id, queue, type,"
        " idempotency_key, state, attempt, max_attempts, created_at,"
        " finished_at) VALUES"
        " ('%s', 'rq', 'noop', 'claimed', 'succeeded', 1, 3,"
        "  timestamptz 'epoch' + 1700000000123 * interval '1 ms', now()),"
        " ('%s', 'rq', 'noop', 'taken', 'dead', 3, 3,"
        "  timestamptz 'epoch' + 1600000000000 * interval '1 ms', now())",
        text[0], text[1]);
    wq_test_pg_exec(s, sql);
    if (wq_store_accept(s, a, 4, err, sizeof err) != 0)
        fail_msg("accept: %s", err);
    assert_int_equal(a[0].duplicate, 0);
    assert_int_equal(a[1].duplicate, 1);
    assert_string_equal(wq_task_state_name(a[1].state), "dead");
    assert_int_equal(a[2].duplicate, 1);
    assert_int_equal(a[3].duplicate, 0);
    /* only "fresh" needed a receipt: the others have rows */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.accepted"),
        1);
    /* another submit of "fresh", even within the same millisecond: a
     * duplicate of the task its receipt stands for */
    if (wq_store_accept(s, &a[3], 1, err, sizeof err) != 0)
        fail_msg("accept duplicate: %s", err);
    assert_int_equal(a[3].duplicate, 1);
    assert_string_equal(wq_task_state_name(a[3].state), "queued");
    wq_store_close(s);
}

/* Runs of receipts listing their ids out of order, or whose first_id
 * and last_id are not their least and greatest: none, when all is well. */
#define RUNS_OUT_OF_ORDER_SQL \
    "SELECT count(*) FROM workq.accepted_runs r, LATERAL (" \
    "  SELECT coalesce(bool_and(substring(r.ids FROM g * 16 + 1 FOR 16)" \
    "    < substring(r.ids FROM g * 16 + 17 FOR 16)), true) AS sorted" \
    "  FROM generate_series(0, octet_length(r.ids) / 16 - 2) g) x" \
    " WHERE octet_length(r.ids) > 0 AND (NOT x.sorted" \
    "  OR r.first_id <> encode(substring(r.ids FROM 1 FOR 16), 'hex')::uuid" \
    "  OR r.last_id <> encode(substring(r.ids FROM octet_length(r.ids)" \
    "    - 15 FOR 16), 'hex')::uuid)"

/* The tasks the runs of receipts stand for: listed, or ranges. */
#define RUN_TASKS_SQL \
    "SELECT coalesce(sum(CASE WHEN octet_length(ids) = 0" \
    "  THEN workq.uuid_rand_b(last_id) - workq.uuid_rand_b(first_id) + 1" \
    "  ELSE octet_length(ids) / 16 END), 0) FROM workq.accepted_runs"

/*
 * Fills v[0..n) with fresh tasks of queue "pq" in the order a batch
 * confirmed by three partitions comes: ids made in order, dealt to three
 * streams, and the streams interleaved in chunks of 1 to 40.
 */
static void
fresh_interleaved(struct wq_accept *v, size_t n, unsigned seed)
{
    uint8_t (*ids)[16] = calloc(n, sizeof *ids);
    size_t next[3] = { 0, 1, 2 }, out = 0;

    for (size_t i = 0; i < n; i++)
        assert_int_equal(wq_uuid_v7(ids[i]), 0);
    while (out < n)
        for (int k = 0; k < 3; k++) {
            seed = seed * 1103515245u + 12345u;
            for (unsigned c = 1 + (seed >> 16) % 40; c > 0 && next[k] < n;
                c--, next[k] += 3) {
                memset(&v[out], 0, sizeof v[out]);
                memcpy(v[out].id, ids[next[k]], 16);
                v[out].queue = "pq";
                v[out].type = "noop";
                v[out].max_attempts = 3;
                v[out].created_at_ms = 1700000000000 + (int64_t)out;
                v[out].priority = 1;
                out++;
            }
        }
    free(ids);
}

/*
 * Fresh ids of one sequence (wq_uuid_seq_stamp, as the C client makes
 * them) are recorded as ranges, one row each and no ids listed: a gap in
 * the sequence (a task the broker refused) splits the range, and neither
 * the missing id nor an id of another origin between a range's ends
 * reads as accepted.
 */
static void
test_client_receipt_ranges(void **state)
{
    enum { N = 100, GAP = 40 };
    const char *conninfo = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(conninfo);
    struct wq_accept a[N];
    struct wq_uuid_seq seq = { 0, 0, 0 };
    uint8_t foreign[16];
    char err[WQ_ERRLEN], text[WQ_UUID_STRLEN];
    size_t n = 0;

    (void)state;
    for (int i = 0; i < N; i++) {
        uint8_t id[16];

        if (i == N / 2)     /* another origin, between the ids */
            assert_int_equal(wq_uuid_v7(foreign), 0);
        assert_int_equal(wq_uuid_v7(id), 0);
        wq_uuid_seq_stamp(&seq, id);
        if (i > 0)
            assert_true(wq_uuid_rand_b(id) == wq_uuid_rand_b(a[n - 1].id)
                + (i == GAP + 1 ? 2 : 1));
        if (i == GAP) {
            wq_uuid_format(id, text);       /* the refused one */
            continue;
        }
        memset(&a[n], 0, sizeof a[n]);
        memcpy(a[n].id, id, 16);
        a[n].queue = "rq";
        a[n].type = "noop";
        a[n].max_attempts = 3;
        a[n].created_at_ms = 1700000000000 + i;
        a[n].priority = 1;
        n++;
    }
    /* in the order two partitions would confirm them */
    for (size_t i = 0; i + 1 < n; i += 2) {
        struct wq_accept t = a[i];

        a[i] = a[i + 1];
        a[i + 1] = t;
    }
    if (wq_store_accept(s, a, n, err, sizeof err) != 0)
        fail_msg("accept: %s", err);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM"
        " workq.accepted_runs WHERE ids = ''"), 2);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM"
        " workq.accepted_runs"), 2);
    assert_int_equal(wq_test_pg_num(s, RUN_TASKS_SQL), N - 1);
    assert_string_equal(state_of(s, text, NULL), "none");
    wq_uuid_format(foreign, text);
    assert_string_equal(state_of(s, text, NULL), "none");
    for (size_t i = 0; i < n; i++) {
        int receipt = 0;

        wq_uuid_format(a[i].id, text);
        assert_string_equal(state_of(s, text, &receipt), "queued");
        assert_true(receipt);
    }
    wq_store_close(s);
}

/*
 * Two receipts sends under way at once on one connection (the second is
 * written while the first runs): each recv answers the oldest, with its
 * own duplicates; a third send waits; nothing else is served meanwhile.
 * Fresh ids confirmed out of order land in runs that are sorted, with
 * their least and greatest id as first_id and last_id (the handle lookup
 * and the scheduler's sweep count on it).  A send that fails takes the
 * ones after it along, and leaves the store free.
 */
static void
test_client_receipts_pipelined(void **state)
{
    enum { NA = 700, NB = 300 };
    const char *conninfo = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(conninfo);
    struct wq_accept *a = calloc(NA + 1, sizeof *a);
    struct wq_accept *b = calloc(NB + 1, sizeof *b), extra, bad;
    struct wq_task_row row;
    char err[WQ_ERRLEN], text[WQ_UUID_STRLEN], sql[256];

    (void)state;
    fresh_interleaved(a, NA, 7);
    fresh_interleaved(b, NB, 11);
    /* a keyed task in each: "seen" has a row of an earlier submit */
    a[NA] = b[NB] = a[0];
    a[NA].key = "seen";
    b[NB].key = "new";
    assert_int_equal(wq_uuid_for_key("pq", "seen", a[NA].id), 0);
    assert_int_equal(wq_uuid_for_key("pq", "new", b[NB].id), 0);
    wq_uuid_format(a[NA].id, text);
    snprintf(sql, sizeof sql, "INSERT INTO workq.tasks (id, queue, type,"
        " idempotency_key, state, attempt, max_attempts, finished_at)"
        " VALUES ('%s', 'pq', 'noop', 'seen', 'dead', 3, 3, now())", text);
    wq_test_pg_exec(s, sql);

    if (wq_store_accept_send(s, a, NA + 1, err, sizeof err) != 0)
        fail_msg("send a: %s", err);
    if (wq_store_accept_send(s, b, NB + 1, err, sizeof err) != 0)
        fail_msg("send b: %s", err);
    extra = a[1];
    assert_int_equal(wq_store_accept_send(s, &extra, 1, err, sizeof err),
        WQ_EINVAL);
    assert_int_equal(wq_store_task_get(s, a[0].id, &row, err, sizeof err),
        WQ_ESTORE);
    wq_task_row_free(&row);
    if (wq_store_accept_recv(s, a, NA + 1, 1, err, sizeof err) != 0)
        fail_msg("recv a: %s", err);
    assert_int_equal(a[NA].duplicate, 1);
    assert_string_equal(wq_task_state_name(a[NA].state), "dead");
    assert_int_equal(a[0].duplicate, 0);
    /* b is still under way */
    assert_int_equal(wq_store_task_get(s, a[0].id, &row, err, sizeof err),
        WQ_ESTORE);
    wq_task_row_free(&row);
    if (wq_store_accept_recv(s, b, NB + 1, 1, err, sizeof err) != 0)
        fail_msg("recv b: %s", err);
    assert_int_equal(b[NB].duplicate, 0);

    assert_int_equal(wq_test_pg_num(s, "SELECT coalesce(sum(octet_length("
        "ids) / 16), 0) FROM workq.accepted_runs"), NA + NB);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM"
        " workq.accepted_runs"), 2);
    assert_int_equal(wq_test_pg_num(s, RUNS_OUT_OF_ORDER_SQL), 0);
    for (int i = 0; i < NA; i += 37) {
        wq_uuid_format(a[i].id, text);
        assert_string_equal(state_of(s, text, NULL), "queued");
    }
    for (int i = 0; i < NB; i += 29) {
        wq_uuid_format(b[i].id, text);
        assert_string_equal(state_of(s, text, NULL), "queued");
    }

    /* a send that fails (a priority the table refuses) with one behind
     * it: both are answered, the second as dropped, and the store is
     * free again */
    bad = a[2];
    assert_int_equal(wq_uuid_v7(bad.id), 0);
    bad.priority = 7;
    fresh_interleaved(b, NB, 13);
    if (wq_store_accept_send(s, &bad, 1, err, sizeof err) != 0)
        fail_msg("send bad: %s", err);
    if (wq_store_accept_send(s, b, NB, err, sizeof err) != 0)
        fail_msg("send after bad: %s", err);
    /* refused: a check constraint reads as bad input */
    assert_int_equal(wq_store_accept_recv(s, &bad, 1, 1, err, sizeof err),
        WQ_EINVAL);
    assert_non_null(strstr(err, "record accepted tasks"));
    wq_uuid_format(a[0].id, text);
    assert_string_equal(state_of(s, text, NULL), "queued");
    wq_store_close(s);
    free(a);
    free(b);
}

/*
 * A slow stream of async submits that is never flushed still hears of
 * its tasks: each callback comes from inside a later submit, within a
 * bound of its own submit (the receipts are sent once the first task
 * confirmed has waited 50 ms), with the task recorded, so its id
 * resolves.  Before, the callbacks waited for 1024 publishes or a flush.
 */
struct slow_task {
    uint64_t submitted_ns, done_ns;
    int status, untracked;
    char id[WQ_CLIENT_ID_LEN];
};

static void
slow_done(void *user, const struct wq_client_result *r)
{
    struct slow_task *t = user;

    t->done_ns = wq_clock_mono_ns();
    t->status = r->status;
    t->untracked = r->untracked;
}

static void
check_slow_stream(int kind)
{
    enum { N = 100, GAP_MS = 10, BOUND_MS = 500 };
    const char *conninfo = wq_test_pg_create_migrated_db();
    const char *queue = wq_test_queue(kind, "client-slow");
    struct wq_client_task t = { .queue = queue, .type = "noop" };
    struct slow_task *v = calloc(N, sizeof *v);
    struct wq_envelope env[N + 1];
    struct wq_test_consumer *cons;
    char err[WQ_ERRLEN];
    uint64_t end_ns;
    int checked = 0;
    wq_client *c = client_open(kind, conninfo);
    wq_store *s = wq_test_pg_open(conninfo);

    /* the first submit declares the queue: not part of the stream */
    submit_plain(c, queue, "noop");
    for (int i = 0; i < N; i++) {
        v[i].submitted_ns = wq_clock_mono_ns();
        if (wq_client_submit_async(c, &t, slow_done, &v[i], v[i].id, err,
            sizeof err) != 0)
            fail_msg("async %d: %s", i, err);
        usleep(GAP_MS * 1000);
    }
    end_ns = wq_clock_mono_ns();
    /* no flush yet: every task submitted BOUND_MS before the end has
     * been answered, in time, and its receipt is in */
    for (int i = 0; i < N; i++) {
        if (v[i].submitted_ns + BOUND_MS * 1000000ull > end_ns)
            break;
        if (v[i].done_ns == 0)
            fail_msg("task %d: no callback %llu ms after its submit", i,
                (unsigned long long)((end_ns - v[i].submitted_ns)
                / 1000000));
        if (v[i].done_ns - v[i].submitted_ns > BOUND_MS * 1000000ull)
            fail_msg("task %d: callback after %llu ms (bound %d)", i,
                (unsigned long long)((v[i].done_ns - v[i].submitted_ns)
                / 1000000), BOUND_MS);
        assert_int_equal(v[i].status, 0);
        assert_int_equal(v[i].untracked, 0);
        assert_string_equal(state_of(s, v[i].id, NULL), "queued");
        checked++;
    }
    assert_true(checked >= N / 2);
    if (wq_client_flush(c, -1, err, sizeof err) != 0)
        fail_msg("flush: %s", err);
    for (int i = 0; i < N; i++)
        assert_true(v[i].done_ns != 0);
    wq_client_free(c);
    cons = wq_test_consumer_open(kind, queue);
    /* the stream and the first submit */
    assert_int_equal(wq_test_consumer_recv(cons, env, N + 1, RECV_MS),
        N + 1);
    for (int i = 0; i < N + 1; i++)
        wq_envelope_free(&env[i]);
    wq_test_consumer_close(cons);
    wq_store_close(s);
    free(v);
}

static void test_client_slow_stream_kafka(void **state)
{ (void)state; check_slow_stream(WQ_TRANSPORT_KAFKA); }
static void test_client_slow_stream_rabbitmq(void **state)
{ (void)state; check_slow_stream(WQ_TRANSPORT_RABBITMQ); }

/*
 * A flush that waits for many confirmations records receipts between
 * slices of its wait (broker_wait in client.c): whichever slice a task
 * was confirmed in, once the flush has returned every task's callback
 * said accepted and tracked, and every id resolves from its receipt.
 * 30,000 tasks in one flush: several slices on both brokers.
 */
struct big_flush {
    int ok, untracked, failed;
};

static void
big_flush_done(void *user, const struct wq_client_result *r)
{
    struct big_flush *b = user;

    if (r->status != 0)
        b->failed++;
    else if (r->untracked)
        b->untracked++;
    else
        b->ok++;
}

static void
check_big_flush(int kind)
{
    enum { N = 30000 };
    const char *conninfo = wq_test_pg_create_migrated_db();
    const char *queue = wq_test_queue(kind, "client-bigflush");
    struct wq_client_task t = { .queue = queue, .type = "noop",
        .payload = "x", .payload_len = 1 };
    struct big_flush b = { 0, 0, 0 };
    char err[WQ_ERRLEN], (*ids)[WQ_CLIENT_ID_LEN] = calloc(N, sizeof *ids);
    char sql[256];
    struct wq_test_consumer *cons;
    struct wq_envelope *env = calloc(N, sizeof *env);
    size_t got;
    wq_client *c = client_open(kind, conninfo);
    wq_store *s = wq_test_pg_open(conninfo);
    long long listed;

    /* the first submit declares the queue and opens the store */
    submit_plain(c, queue, "noop");
    b.ok = 0;
    for (int i = 0; i < N; i++)
        if (wq_client_submit_async(c, &t, big_flush_done, &b, ids[i], err,
            sizeof err) != 0)
            fail_msg("async %d: %s", i, err);
    if (wq_client_flush(c, -1, err, sizeof err) != 0)
        fail_msg("flush: %s", err);
    assert_int_equal(b.failed, 0);
    assert_int_equal(b.untracked, 0);
    assert_int_equal(b.ok, N);
    /* every id of the stream (and the first submit's) has its receipt,
     * and ranges hold them (some may be listed: a receipt sent while
     * the submits still went on waits at most SETTLE_HOLD_NS for the
     * fates before it, and a slow run, under ASan in CI, listed 5,614
     * of 30,000; receipt_ranges checks the ranges themselves) */
    assert_int_equal(wq_test_pg_num(s, RUN_TASKS_SQL), N + 1);
    listed = wq_test_pg_num(s, "SELECT coalesce(sum(octet_length(ids)), 0)"
        " / 16 FROM workq.accepted_runs");
    print_message("  %s: %lld of %d ids listed, the rest in ranges\n",
        wq_test_kind_name(kind), listed, N);
    if (wq_test_pg_num(s, "SELECT count(*) FROM workq.accepted_runs WHERE "
        "octet_length(ids) = 0") < 1)
        fail_msg("no receipt of the stream is a range");
    for (int i = 0; i < N; i += N / 10 - 1)
        assert_string_equal(state_of(s, ids[i], NULL), "queued");
    assert_string_equal(state_of(s, ids[N - 1], NULL), "queued");
    /* one run holds it */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM workq.accepted_runs r"
        " WHERE r.first_id <= '%s' AND r.last_id >= '%s' AND"
        " workq.run_holds(r.first_id, r.last_id, r.ids, '%s')",
        ids[N / 2], ids[N / 2], ids[N / 2]);
    assert_int_equal(wq_test_pg_num(s, sql), 1);
    assert_int_equal(wq_test_pg_num(s, RUNS_OUT_OF_ORDER_SQL), 0);
    wq_client_free(c);
    cons = wq_test_consumer_open(kind, queue);
    got = wq_test_consumer_recv(cons, env, N, RECV_MS);
    for (size_t i = 0; i < got; i++)
        wq_envelope_free(&env[i]);
    wq_test_consumer_close(cons);
    if (got != N)
        fail_msg("%zu of %d tasks arrived", got, N);
    wq_store_close(s);
    free(env);
    free(ids);
}

static void test_client_big_flush_kafka(void **state)
{ (void)state; check_big_flush(WQ_TRANSPORT_KAFKA); }
static void test_client_big_flush_rabbitmq(void **state)
{ (void)state; check_big_flush(WQ_TRANSPORT_RABBITMQ); }

/*
 * Receipts off (wq_client_conf.receipts = -1): immediate tasks need no
 * PostgreSQL at all, even an unreachable one, and are answered as
 * accepted, not as untracked (nothing was supposed to be recorded);
 * their ids resolve only once a worker claims them.
 */
static void
check_receipts_off(int kind)
{
    const char *queue = wq_test_queue(kind, "client-noreceipts");
    struct wq_client_conf conf = {
        .transport = wq_test_kind_name(kind),
        .kafka_brokers = WQ_TEST_KAFKA_BROKERS(),
        .rabbitmq_url = WQ_TEST_AMQP_URL(),
        .postgres_conninfo = "host=127.0.0.1 port=1 dbname=none "
            "connect_timeout=2",
        .client_id = "test-client",
        .kafka_linger_ms = 1,
        .receipts = -1,
    };
    struct wq_client_task t = { .queue = queue, .type = "noop" };
    struct wq_client_result r[3];
    struct wq_client_task batch[3] = { t, t, t };
    struct wq_test_consumer *cons;
    struct wq_envelope env[3];
    char err[WQ_ERRLEN];
    wq_client *c = NULL;

    if (wq_client_open_conf(&conf, &c, err, sizeof err) != 0)
        fail_msg("wq_client_open_conf(%s): %s", conf.transport, err);
    if (wq_client_submit_batch(c, batch, 3, r, err, sizeof err) != 0)
        fail_msg("batch: %s", err);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].status, 0);
        assert_int_equal(r[i].untracked, 0);
        assert_string_equal(r[i].state, "queued");
    }
    /* a delayed task still needs PostgreSQL, and says so */
    t.delay_ms = 5000;
    assert_int_equal(wq_client_submit(c, &t, NULL, err, sizeof err),
        WQ_ESTORE);
    wq_client_free(c);
    cons = wq_test_consumer_open(kind, queue);
    assert_int_equal(wq_test_consumer_recv(cons, env, 3, RECV_MS), 3);
    for (int i = 0; i < 3; i++)
        wq_envelope_free(&env[i]);
    wq_test_consumer_close(cons);
}

static void test_client_receipts_off_kafka(void **state)
{ (void)state; check_receipts_off(WQ_TRANSPORT_KAFKA); }
static void test_client_receipts_off_rabbitmq(void **state)
{ (void)state; check_receipts_off(WQ_TRANSPORT_RABBITMQ); }

/* wq_client_open reads a configuration file like the daemons. */
static void
test_client_open_config_file(void **state)
{
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "client-file");
    struct wq_test_consumer *cons;
    struct wq_envelope env;
    char err[WQ_ERRLEN], text[WQ_UUID_STRLEN], id[WQ_CLIENT_ID_LEN];
    FILE *f = fopen("workq.conf", "w");
    wq_client *c;

    (void)state;
    assert_non_null(f);
    fprintf(f, "transport = \"rabbitmq\";\nrabbitmq = { url = \"%s\"; };\n"
        "queue_policies = ( { name = \"%s\"; max_attempts = 4; } );\n",
        WQ_TEST_AMQP_URL(), queue);
    fclose(f);
    if (wq_client_open("workq.conf", &c, err, sizeof err) != 0)
        fail_msg("open: %s", err);
    snprintf(id, sizeof id, "%s", submit_plain(c, queue, "noop"));
    wq_client_free(c);
    cons = wq_test_consumer_open(WQ_TRANSPORT_RABBITMQ, queue);
    assert_int_equal(wq_test_consumer_recv(cons, &env, 1, RECV_MS), 1);
    wq_uuid_format(env.id, text);
    assert_string_equal(text, id);
    /* the queue's policy gives tasks without a number of their own */
    assert_int_equal(env.max_attempts, 4);
    wq_envelope_free(&env);
    wq_test_consumer_close(cons);

    assert_int_equal(wq_client_open("no-such.conf", &c, err, sizeof err),
        WQ_ECONFIG);
    assert_non_null(strstr(err, "no-such.conf"));
}

/* --- the broker restarts under an open client --------------------------- */

/*
 * The connection dies under the client (a broker restart, or an idle
 * connection closed for want of heartbeats): the next submit fails while
 * the broker is away, and succeeds once it is back, on a new connection,
 * without reopening the client.
 */
static void
test_client_survives_broker_restart(void **state)
{
    const char *queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, "client-restart");
    struct wq_client_task t = { .queue = queue, .type = "t" };
    struct wq_test_consumer *cons;
    struct wq_envelope env[3];
    char err[WQ_ERRLEN], id[3][WQ_CLIENT_ID_LEN];
    wq_client *c = client_open(WQ_TRANSPORT_RABBITMQ, NULL);

    (void)state;
    if (wq_client_submit(c, &t, id[0], err, sizeof err) != 0)
        fail_msg("before: %s", err);
    wq_test_service("stop", "rabbitmq");
    assert_int_equal(wq_client_submit(c, &t, NULL, err, sizeof err),
        WQ_EBROKER);
    wq_test_service("start", "rabbitmq");
    if (wq_client_submit(c, &t, id[1], err, sizeof err) != 0)
        fail_msg("after the restart: %s", err);
    /* a restart the client does not see: its connection is dead, and the
     * first submit finds out, reconnects and succeeds */
    wq_test_service("restart", "rabbitmq");
    if (wq_client_submit(c, &t, id[2], err, sizeof err) != 0)
        fail_msg("after an unseen restart: %s", err);
    wq_client_free(c);
    cons = wq_test_consumer_open(WQ_TRANSPORT_RABBITMQ, queue);
    assert_int_equal(wq_test_consumer_recv(cons, env, 3, RECV_MS), 3);
    for (int i = 0; i < 3; i++)
        wq_envelope_free(&env[i]);
    wq_test_consumer_close(cons);
}

/* --- priorities ----------------------------------------------------------- */

/*
 * wq_client_set_priority: the next submits go to the band (high, then
 * low via a batch), the envelope still names the queue; back to normal,
 * the queue itself; a value out of range is WQ_EINVAL and changes
 * nothing.
 */
static void
check_priority(int kind)
{
    const char *queue = wq_test_queue(kind, "client-prio");
    char hi[200], lo[200], err[WQ_ERRLEN], id[3][WQ_CLIENT_ID_LEN], text[40];
    struct wq_client_task t = { .queue = queue, .type = "job",
        .payload = "p", .payload_len = 1 };
    struct wq_client_result r;
    struct wq_test_consumer *cons;
    struct wq_envelope env;
    const char *band[3];
    wq_client *c = client_open(kind, NULL);

    snprintf(hi, sizeof hi, "%s.priority-high", queue);
    snprintf(lo, sizeof lo, "%s.priority-low", queue);
    band[0] = hi;
    band[1] = lo;
    band[2] = queue;
    assert_int_equal(wq_client_set_priority(c, WQ_CLIENT_PRIORITY_HIGH, err,
        sizeof err), 0);
    if (wq_client_submit(c, &t, id[0], err, sizeof err) != 0)
        fail_msg("submit: %s", err);
    assert_int_equal(wq_client_set_priority(c, WQ_CLIENT_PRIORITY_LOW, err,
        sizeof err), 0);
    if (wq_client_submit_batch(c, &t, 1, &r, err, sizeof err) != 0)
        fail_msg("batch: %s", err);
    memcpy(id[1], r.id, sizeof id[1]);
    assert_int_equal(wq_client_set_priority(c, 3, err, sizeof err),
        WQ_EINVAL);
    assert_int_equal(wq_client_set_priority(c, WQ_CLIENT_PRIORITY_NORMAL,
        err, sizeof err), 0);
    if (wq_client_submit(c, &t, id[2], err, sizeof err) != 0)
        fail_msg("submit: %s", err);
    wq_client_free(c);

    for (int i = 0; i < 3; i++) {
        cons = wq_test_consumer_open(kind, band[i]);
        assert_int_equal(wq_test_consumer_recv(cons, &env, 1, RECV_MS), 1);
        wq_uuid_format(env.id, text);
        assert_string_equal(text, id[i]);
        assert_string_equal(env.queue, queue);
        wq_envelope_free(&env);
        wq_test_consumer_close(cons);
    }
}

static void
test_client_priority_kafka(void **state)
{
    (void)state;
    check_priority(WQ_TRANSPORT_KAFKA);
}

static void
test_client_priority_rabbitmq(void **state)
{
    (void)state;
    check_priority(WQ_TRANSPORT_RABBITMQ);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_client_fields_kafka),
    cmocka_unit_test(test_client_fields_rabbitmq),
    cmocka_unit_test(test_client_defaults_kafka),
    cmocka_unit_test(test_client_defaults_rabbitmq),
    cmocka_unit_test(test_client_batch_1000_kafka),
    cmocka_unit_test(test_client_batch_1000_rabbitmq),
    cmocka_unit_test(test_client_async_kafka),
    cmocka_unit_test(test_client_async_rabbitmq),
    cmocka_unit_test(test_client_delayed_kafka),
    cmocka_unit_test(test_client_delayed_rabbitmq),
    cmocka_unit_test(test_client_invalid_tasks_send_nothing),
    cmocka_unit_test(test_client_unreachable_broker),
    cmocka_unit_test(test_client_store_unreachable),
    cmocka_unit_test(test_client_handles_kafka),
    cmocka_unit_test(test_client_handles_rabbitmq),
    cmocka_unit_test(test_client_receipt_rules),
    cmocka_unit_test(test_client_receipts_pipelined),
    cmocka_unit_test(test_client_receipt_ranges),
    cmocka_unit_test(test_client_slow_stream_kafka),
    cmocka_unit_test(test_client_slow_stream_rabbitmq),
    cmocka_unit_test(test_client_big_flush_kafka),
    cmocka_unit_test(test_client_big_flush_rabbitmq),
    cmocka_unit_test(test_client_receipts_off_kafka),
    cmocka_unit_test(test_client_receipts_off_rabbitmq),
    cmocka_unit_test(test_client_open_config_file),
    cmocka_unit_test(test_client_survives_broker_restart),
    cmocka_unit_test(test_client_priority_kafka),
    cmocka_unit_test(test_client_priority_rabbitmq),
};

WQ_TEST_MAIN("client", tests)

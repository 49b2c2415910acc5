/*
 * test_scheduler_flow.c - whole task lives through the real binaries:
 * workq-worker runs the tasks, workq-scheduler brings them back, the
 * `workq` CLI operates, on both transports, against the private servers
 * of tests/services and a fresh database per test.
 *
 * Tasks are submitted as a producer would: an envelope published on the
 * queue (confirmed), or through the C client for delayed ones.  Handlers
 * are the worker's built-ins: "fail" with payload "until=N" fails every
 * attempt below N, "sleep" sleeps the payload's milliseconds, "noop".
 * Backoff is short and without jitter, so the gaps between attempts can
 * be checked against the policy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_test.h"
#include "workq.h"

#define K WQ_TRANSPORT_KAFKA
#define R WQ_TRANSPORT_RABBITMQ

/* Worker and scheduler share it: the backoff is 300 ms, 600 ms, 1.2 s. */
static const char conf[] =
    "worker = { lease = \"2s\"; };\n"
    "scheduler = { batch_size = 50; publish_timeout = \"10s\"; };\n"
    "queue_policies = ( { name = \"*\"; max_attempts = 5;\n"
    "    backoff_base = \"300ms\"; backoff_factor = 2;\n"
    "    backoff_cap = \"5s\"; backoff_jitter = \"none\"; } );\n";

/* How late a retry may start after its backoff: the scheduler's wake-up,
 * a publish with confirms and a delivery to the worker. */
#define SLACK_MS 2000

/* Publishes one task as a producer does; returns its id (static). */
static const char *
submit(int kind, const char *queue, const char *type, const char *key,
    const char *payload, uint32_t max_attempts)
{
    static char id[WQ_UUID_STRLEN];
    struct wq_transport_conf tc;
    struct wq_buf buf = WQ_BUF_INIT;
    struct wq_envelope e;
    char err[WQ_ERRLEN];
    wq_transport *t;

    if (wq_envelope_init(&e, queue, type, key, payload, strlen(payload), err,
        sizeof err) != 0)
        fail_msg("%s", err);
    e.max_attempts = max_attempts;
    wq_uuid_format(e.id, id);
    assert_int_equal(wq_envelope_encode(&e, &buf, err, sizeof err), 0);
    wq_test_transport_conf(kind, &tc);
    assert_int_equal(wq_transport_open(&tc, &t, err, sizeof err), 0);
    if (wq_transport_publish(t, queue, e.key, strlen(e.key), buf.data,
        buf.len, NULL, err, sizeof err) != 0
        || wq_transport_flush(t, 30000, err, sizeof err) != 0)
        fail_msg("publish: %s", err);
    wq_transport_close(t, 5000);
    wq_buf_free(&buf);
    wq_envelope_free(&e);
    return id;
}

static void
start(struct proc *p, const char *bin, int kind, const char *ci,
    const char *queue)
{
    const char *args[] = { "--queue", queue, NULL };

    proc_start(p, bin, kind, ci, conf, NULL,
        strcmp(bin, "workq-worker") == 0 ? args : NULL);
}

static long long
wait_state(wq_store *s, const char *id, const char *state, int timeout_ms)
{
    char sql[256];

    snprintf(sql, sizeof sql, "SELECT count(*) FROM workq.tasks WHERE id = "
        "'%s' AND state = '%s'", id, state);
    return wait_num(s, 1, timeout_ms, sql);
}

/* Milliseconds from attempt n's end to attempt n+1's start. */
static long long
gap_ms(wq_store *s, const char *id, int n)
{
    return wq_test_pg_numf(s, "SELECT (extract(epoch FROM b.started_at - "
        "a.finished_at) * 1000)::int8 FROM workq.attempt_history a JOIN "
        "workq.attempt_history b ON b.task_id = a.task_id AND b.attempt = "
        "a.attempt + 1 WHERE a.task_id = '%s' AND a.attempt = %d", id, n);
}

/* ---- fails twice, then succeeds ------------------------------------------------ */

static void
fail_twice(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("flow");
    wq_store *s = wq_test_pg_open(ci);
    struct proc w, sch;
    char id[40];
    long long g1, g2;

    declare_queue(kind, q);
    start(&sch, "workq-scheduler", kind, ci, q);
    start(&w, "workq-worker", kind, ci, q);
    snprintf(id, sizeof id, "%s", submit(kind, q, "fail", "ft", "until=3",
        5));
    check(wait_state(s, id, "succeeded", 90000) == 1, "task %s did not "
        "succeed: %s", id, textf(s, "SELECT state || ' ' || attempt FROM "
        "workq.tasks WHERE id = '%s'", id));
    assert_string_equal(textf(s, "SELECT string_agg(outcome, ',' ORDER BY "
        "attempt) FROM workq.attempt_history WHERE task_id = '%s'", id),
        "failed,failed,succeeded");
    assert_int_equal(wq_test_pg_numf(s, "SELECT attempt FROM workq.tasks "
        "WHERE id = '%s'", id), 3);
    g1 = gap_ms(s, id, 1);
    g2 = gap_ms(s, id, 2);
    check(g1 >= 300 && g1 <= 300 + SLACK_MS, "gap after attempt 1: %lld ms, "
        "want 300 ms + at most %d", g1, SLACK_MS);
    check(g2 >= 600 && g2 <= 600 + SLACK_MS, "gap after attempt 2: %lld ms, "
        "want 600 ms + at most %d", g2, SLACK_MS);
    assert_true(metric(&sch, "workq_scheduler_published_total"
        "{kind=\"retry\"} ") == 2);
    proc_stop(&w, 30000);
    proc_stop(&sch, 10000);
    wq_store_close(s);
}

static void test_flow_fail_twice_kafka(void **st) { (void)st; fail_twice(K); }
static void test_flow_fail_twice_rabbitmq(void **st)
{
    (void)st;
    fail_twice(R);
}

/* ---- always failing: dead, on workq.Q.dead, in the DLQ, replayed ------------- */

static void
dead_and_replay(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("dlq");
    wq_store *s = wq_test_pg_open(ci);
    struct wq_test_consumer *dead;
    struct wq_envelope env[2];
    char id[40], dq[WQ_QUEUE_MAX + 8], text[WQ_UUID_STRLEN], out[16384];
    struct proc w, sch;
    size_t n;

    declare_queue(kind, q);
    snprintf(dq, sizeof dq, "%s.dead", q);
    dead = wq_test_consumer_open(kind, dq);
    start(&sch, "workq-scheduler", kind, ci, q);
    start(&w, "workq-worker", kind, ci, q);
    /* fails attempts 1..4; it has 3 */
    snprintf(id, sizeof id, "%s", submit(kind, q, "fail", "doomed",
        "until=5", 3));
    check(wait_state(s, id, "dead", 90000) == 1, "task %s is not dead: %s",
        id, textf(s, "SELECT state || ' ' || attempt FROM workq.tasks WHERE "
        "id = '%s'", id));
    assert_string_equal(textf(s, "SELECT string_agg(outcome, ',' ORDER BY "
        "attempt) FROM workq.attempt_history WHERE task_id = '%s'", id),
        "failed,failed,failed");

    /* the copy on workq.Q.dead */
    n = wq_test_consumer_recv(dead, env, 1, 60000);
    check(n == 1, "no copy on %s", dq);
    wq_uuid_format(env[0].id, text);
    assert_string_equal(text, id);
    assert_int_equal(env[0].attempt, 3);
    assert_string_equal(env[0].type, "fail");
    wq_envelope_free(&env[0]);

    /* listed by `workq dlq list` */
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "dlq", "list",
        "--queue", q, NULL), 0);
    assert_contains(out, id);
    assert_contains(out, "\"copy_published\":true");
    assert_int_equal(workq_cli(ci, out, sizeof out, "dlq", "list", "--queue",
        q, "--error", "no-such-error", NULL), 0);
    check(strstr(out, id) == NULL, "the error filter let it through");

    /* `workq dlq replay` runs it again: a new series, attempt 5 succeeds */
    assert_int_equal(workq_cli(ci, out, sizeof out, "dlq", "replay",
        "--queue", q, NULL), 0);
    assert_contains(out, "replayed 1 dead task(s)");
    check(wait_state(s, id, "succeeded", 90000) == 1, "replayed task %s did "
        "not succeed: %s", id, textf(s, "SELECT state || ' ' || attempt FROM "
        "workq.tasks WHERE id = '%s'", id));
    assert_string_equal(textf(s, "SELECT string_agg(outcome, ',' ORDER BY "
        "attempt) FROM workq.attempt_history WHERE task_id = '%s'", id),
        "failed,failed,failed,failed,succeeded");
    assert_string_equal(textf(s, "SELECT attempt_base || '/' || max_attempts "
        "FROM workq.tasks WHERE id = '%s'", id), "3/6");
    /* no second copy: it did not die again */
    assert_int_equal(wq_test_consumer_recv(dead, env, 1, 1000), 0);
    proc_stop(&w, 30000);
    proc_stop(&sch, 10000);
    wq_test_consumer_close(dead);
    wq_store_close(s);
}

static void test_flow_dead_replay_kafka(void **st)
{
    (void)st;
    dead_and_replay(K);
}

static void test_flow_dead_replay_rabbitmq(void **st)
{
    (void)st;
    dead_and_replay(R);
}

/* ---- a worker killed mid-task ---------------------------------------------------- */

static void
killed_worker(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("kill");
    wq_store *s = wq_test_pg_open(ci);
    struct proc w1, w2, sch;
    char id[40];

    declare_queue(kind, q);
    start(&sch, "workq-scheduler", kind, ci, q);
    start(&w1, "workq-worker", kind, ci, q);
    snprintf(id, sizeof id, "%s", submit(kind, q, "sleep", "napper", "3000",
        3));
    check(wait_state(s, id, "running", 60000) == 1, "task %s never ran", id);
    proc_kill9(&w1);
    start(&w2, "workq-worker", kind, ci, q);
    check(wait_state(s, id, "succeeded", 90000) == 1, "task %s did not "
        "succeed after its worker died: %s", id, textf(s, "SELECT state || "
        "' ' || attempt FROM workq.tasks WHERE id = '%s'", id));
    assert_string_equal(textf(s, "SELECT outcome FROM workq.attempt_history "
        "WHERE task_id = '%s' AND attempt = 1", id), "lease_expired");
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM "
        "workq.attempt_history WHERE task_id = '%s' AND outcome = "
        "'succeeded'", id), 1);
    assert_true(wq_test_pg_numf(s, "SELECT attempt FROM workq.tasks WHERE "
        "id = '%s'", id) >= 2);
    proc_stop(&w2, 30000);
    proc_stop(&sch, 10000);
    wq_store_close(s);
}

static void test_flow_killed_worker_kafka(void **st)
{
    (void)st;
    killed_worker(K);
}

static void test_flow_killed_worker_rabbitmq(void **st)
{
    (void)st;
    killed_worker(R);
}

/* ---- delayed tasks: not before their time, within a second after ---------------- */

static void
delayed(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("later");
    wq_store *s = wq_test_pg_open(ci);
    struct wq_client_conf cc;
    struct wq_client_task t;
    wq_client *client;
    struct proc w, sch;
    char err[WQ_ERRLEN], id[WQ_CLIENT_ID_LEN], key[40];
    long long late;

    declare_queue(kind, q);
    start(&sch, "workq-scheduler", kind, ci, q);
    start(&w, "workq-worker", kind, ci, q);
    /* a first task, so that the worker consumes (a Kafka group has
     * joined) before the clock of the delayed ones starts */
    snprintf(key, sizeof key, "%s", submit(kind, q, "noop", "warm", "", 1));
    check(wait_state(s, key, "succeeded", 60000) == 1, "the worker does "
        "not run tasks");
    sqlf(s, "DELETE FROM workq.tasks");
    memset(&cc, 0, sizeof cc);
    cc.transport = wq_test_kind_name(kind);
    cc.kafka_brokers = WQ_TEST_KAFKA_BROKERS();
    cc.rabbitmq_url = WQ_TEST_AMQP_URL();
    cc.postgres_conninfo = ci;
    if (wq_client_open_conf(&cc, &client, err, sizeof err) != 0)
        fail_msg("client: %s", err);
    for (int i = 0; i < 3; i++) {
        memset(&t, 0, sizeof t);
        snprintf(key, sizeof key, "d%d", i);
        t.queue = q;
        t.type = "noop";
        t.idempotency_key = key;
        /* from 3 s: on a loaded machine the three submits and the
         * client's close once took over a second, and the first task
         * had left 'scheduled' before the count below */
        t.delay_ms = 3000 + 700 * i;
        if (wq_client_submit(client, &t, id, err, sizeof err) != 0)
            fail_msg("submit: %s", err);
    }
    wq_client_free(client);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'scheduled'"), 3);
    check(wait_num(s, 3, 60000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'succeeded'") == 3, "delayed tasks did not run");
    /* run_at is cleared by the claim; the delay is measured from the
     * submit (created_at) */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks t "
        "JOIN workq.attempt_history a ON a.task_id = t.id WHERE a.started_at "
        "< t.created_at + (3000 + 700 * substr(t.idempotency_key, 2)::int) * "
        "interval '1 millisecond'"), 0);
    late = wq_test_pg_num(s, "SELECT max((extract(epoch FROM a.started_at - "
        "t.created_at) * 1000)::int8 - (3000 + 700 * "
        "substr(t.idempotency_key, 2)::int)) FROM workq.tasks t JOIN "
        "workq.attempt_history a ON a.task_id = t.id");
    check(late >= 0 && late < 1000, "a delayed task started %lld ms after "
        "its time", late);
    proc_stop(&w, 30000);
    proc_stop(&sch, 10000);
    wq_store_close(s);
}

static void test_flow_delayed_kafka(void **st) { (void)st; delayed(K); }
static void test_flow_delayed_rabbitmq(void **st) { (void)st; delayed(R); }

/* ---- two schedulers: nothing lost, nothing run twice ------------------------------ */

static void
two_schedulers(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("pair");
    wq_store *s = wq_test_pg_open(ci);
    struct proc w, a, b;
    double pa, pb;

    declare_queue(kind, q);
    start(&a, "workq-scheduler", kind, ci, q);
    start(&b, "workq-scheduler", kind, ci, q);
    start(&w, "workq-worker", kind, ci, q);
    check(proc_log_wait(&a, "listening on workq_scheduler", 20000)
        && proc_log_wait(&b, "listening on workq_scheduler", 20000),
        "schedulers did not start");
    sqlf(s, "INSERT INTO workq.tasks (id, queue, type, idempotency_key, "
        "state, max_attempts, run_at) SELECT workq.uuid_v7(), '%s', 'noop', "
        "'k' || i, 'scheduled', 3, now() + (i %% 10) * interval '100 ms' "
        "FROM generate_series(1, 200) AS i", q);
    check(wait_num(s, 200, 90000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'succeeded'") == 200, "not every task ran: %s",
        textf(s, "SELECT string_agg(state || ':' || n, ' ') FROM (SELECT "
        "state, count(*) n FROM workq.tasks GROUP BY state) x"));
    /* each ran exactly once */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE attempt <> 1"), 0);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.attempt_history"), 200);
    pa = metric(&a, "workq_scheduler_published_total{kind=\"delayed\"} ");
    pb = metric(&b, "workq_scheduler_published_total{kind=\"delayed\"} ");
    check(pa + pb == 200, "published %g + %g, want 200 in all", pa, pb);
    proc_stop(&w, 30000);
    proc_stop(&a, 10000);
    proc_stop(&b, 10000);
    wq_store_close(s);
}

static void test_flow_two_schedulers_kafka(void **st)
{
    (void)st;
    two_schedulers(K);
}

static void test_flow_two_schedulers_rabbitmq(void **st)
{
    (void)st;
    two_schedulers(R);
}

/* ---- `workq cancel` on a running task ------------------------------------------ */

static void
cancel_running(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("stop");
    wq_store *s = wq_test_pg_open(ci);
    struct proc w, sch;
    char id[40], out[4096];

    declare_queue(kind, q);
    start(&sch, "workq-scheduler", kind, ci, q);
    start(&w, "workq-worker", kind, ci, q);
    snprintf(id, sizeof id, "%s", submit(kind, q, "sleep", "long", "60000",
        3));
    check(wait_state(s, id, "running", 60000) == 1, "task %s never ran", id);
    usleep(500000);     /* the worker's LISTEN is in place */
    assert_int_equal(workq_cli(ci, out, sizeof out, "cancel", id, NULL), 1);
    assert_contains(out, "asked its worker to stop it");
    check(wait_state(s, id, "cancelled", 15000) == 1, "task %s was not "
        "cancelled: %s", id, textf(s, "SELECT state FROM workq.tasks WHERE "
        "id = '%s'", id));
    assert_string_equal(textf(s, "SELECT outcome FROM workq.attempt_history "
        "WHERE task_id = '%s'", id), "cancelled");
    assert_int_equal(workq_cli(ci, out, sizeof out, "cancel", id, NULL), 1);
    assert_contains(out, "is cancelled already");
    proc_stop(&w, 30000);
    proc_stop(&sch, 10000);
    wq_store_close(s);
}

static void test_flow_cancel_running_kafka(void **st)
{
    (void)st;
    cancel_running(K);
}

static void test_flow_cancel_running_rabbitmq(void **st)
{
    (void)st;
    cancel_running(R);
}


/* ---- a type no worker knows ------------------------------------------------- */

/*
 * A task of a type without a handler gets 3 attempts (the queue's first
 * backoff steps), not its 25, and dies with an error that says what to
 * configure.
 */
static void
unknown_type(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("flow-unknown");
    wq_store *s = wq_test_pg_open(ci);
    struct proc w, sch;
    char id[40], want[256];

    declare_queue(kind, q);
    start(&sch, "workq-scheduler", kind, ci, q);
    start(&w, "workq-worker", kind, ci, q);
    snprintf(id, sizeof id, "%s", submit(kind, q, "no-such-type", "ut", "",
        25));
    check(wait_state(s, id, "dead", 60000) == 1, "task %s is not dead: %s",
        id, textf(s, "SELECT state || ' ' || attempt FROM workq.tasks WHERE "
        "id = '%s'", id));
    assert_int_equal(wq_test_pg_numf(s, "SELECT attempt FROM workq.tasks "
        "WHERE id = '%s'", id), 3);
    assert_string_equal(textf(s, "SELECT string_agg(outcome, ',' ORDER BY "
        "attempt) FROM workq.attempt_history WHERE task_id = '%s'", id),
        "failed,failed,failed");
    snprintf(want, sizeof want, "no handler for type \"no-such-type\" on "
        "queue \"%s\" (configure one in handlers: { type = "
        "\"no-such-type\"; ... })", q);
    assert_contains(textf(s, "SELECT last_error FROM workq.tasks WHERE id = "
        "'%s'", id), want);
    assert_contains(textf(s, "SELECT last_error FROM workq.tasks WHERE id = "
        "'%s'", id), "; dead: no attempt found a worker that knows the type");
    proc_stop(&w, 30000);
    proc_stop(&sch, 10000);
    wq_store_close(s);
}

static void test_flow_unknown_type_rabbitmq(void **st)
{
    (void)st;
    unknown_type(R);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_flow_fail_twice_kafka),
    cmocka_unit_test(test_flow_fail_twice_rabbitmq),
    cmocka_unit_test(test_flow_dead_replay_kafka),
    cmocka_unit_test(test_flow_dead_replay_rabbitmq),
    cmocka_unit_test(test_flow_killed_worker_kafka),
    cmocka_unit_test(test_flow_killed_worker_rabbitmq),
    cmocka_unit_test(test_flow_delayed_kafka),
    cmocka_unit_test(test_flow_delayed_rabbitmq),
    cmocka_unit_test(test_flow_two_schedulers_kafka),
    cmocka_unit_test(test_flow_two_schedulers_rabbitmq),
    cmocka_unit_test(test_flow_cancel_running_kafka),
    cmocka_unit_test(test_flow_cancel_running_rabbitmq),
    cmocka_unit_test(test_flow_unknown_type_rabbitmq),
};

WQ_TEST_MAIN("scheduler_flow", tests)

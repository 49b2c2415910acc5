/*
 * test_flow.c - flow control end to end (README "Flow control"), on both
 * transports, with the real binaries and a fresh database per test:
 * concurrency keys and rate limits enforced across two workers, waiting
 * tasks neither lost nor counted as attempts; a retry that keeps its
 * concurrency key through the scheduler; unique windows through the C
 * client (wq_client_set_flow).  Tasks with flow control are submitted
 * with `workq submit --batch`, so that the CLI's options and the task
 * JSON (taskspec.h) are what is tested.
 *
 * Overlap is measured from the task rows: a task runs from its claim
 * (started_at) to its record (finished_at), and a hold stays live until
 * the record commits, so for one key at most its limit of these
 * intervals may overlap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_test.h"
#include "workq.h"

#define BOTH(name)                                                        \
    static void name##_kafka(void **s)                                    \
    { (void)s; name(WQ_TRANSPORT_KAFKA); }                                \
    static void name##_rabbitmq(void **s)                                 \
    { (void)s; name(WQ_TRANSPORT_RABBITMQ); }

#define TESTS(name) cmocka_unit_test(name##_kafka), \
    cmocka_unit_test(name##_rabbitmq)

static const char *
queue_for(int kind, const char *what)
{
    char p[64];

    snprintf(p, sizeof p, "fl-%s-%s", kind == WQ_TRANSPORT_KAFKA ? "k" : "r",
        what);
    return wq_test_queue(kind, p);
}

/* `workq ARGS...` (NULL-ended) on `kind`, with `input` on stdin; the
 * exit status, output in out. */
static int
cli(int kind, const char *ci, const char *input, char *out, size_t outlen,
    ...)
{
    const char *argv[32], *env[16];
    va_list ap;
    size_t n = 0;
    int rc;

    argv[n++] = strdup(wq_test_bin("workq"));
    va_start(ap, outlen);
    while (n + 1 < WQ_ARRAY_LEN(argv)
        && (argv[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    argv[n] = NULL;
    wq_test_env_for(kind, ci, env, WQ_ARRAY_LEN(env));
    rc = wq_test_cmd(argv, env, input, out, outlen);
    free((char *)argv[0]);
    return rc;
}

/* The most tasks whose keys match `like` that ran at one time. */
static long long
max_overlap(wq_store *s, const char *like)
{
    return wq_test_pg_numf(s, "SELECT coalesce(max(n), 0) FROM (SELECT "
        "(SELECT count(*) FROM workq.tasks b WHERE b.idempotency_key LIKE "
        "'%s' AND b.started_at <= a.started_at AND b.finished_at > "
        "a.started_at) AS n FROM workq.tasks a WHERE a.idempotency_key "
        "LIKE '%s') x", like, like);
}

static void
start_worker(struct proc *w, int kind, const char *ci, const char *q,
    const char *conf, const char *concurrency)
{
    const char *args[] = { "--queue", q, "--concurrency", concurrency, NULL };
    const char *extra[] = { "WORKQ_METRICS_LISTEN=127.0.0.1:0", NULL };

    proc_start(w, "workq-worker", kind, ci, conf, extra, args);
}

/* ---- concurrency keys ---------------------------------------------------- */

/*
 * Two workers of 6 slots each, on two queues (a concurrency key is the
 * fleet's, whatever the queue), 10 tasks of key cust-a (limit 2) and 6
 * of cust-b (limit 1), 150 ms each, half on each queue: never more than
 * the limit of a key at once across both workers, the limit reached,
 * and every task ran once, in one attempt, however often it waited.
 */
static void
concurrency_keys(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    char q[2][128], lines[4096], out[8192];
    wq_store *s = wq_test_pg_open(ci);
    size_t off = 0;
    struct proc w1, w2;
    double waits;
    int rc;

    snprintf(q[0], sizeof q[0], "%s", queue_for(kind, "ck1"));
    snprintf(q[1], sizeof q[1], "%s", queue_for(kind, "ck2"));
    declare_queue(kind, q[0]);
    declare_queue(kind, q[1]);
    for (int i = 0; i < 10; i++)
        off += (size_t)snprintf(lines + off, sizeof lines - off,
            "{\"queue\":\"%s\",\"type\":\"sleep\",\"payload\":\"ms=150\","
            "\"idempotency_key\":\"a%d\",\"concurrency_key\":\"cust-a\","
            "\"concurrency_limit\":2}\n", q[i % 2], i);
    for (int i = 0; i < 6; i++)
        off += (size_t)snprintf(lines + off, sizeof lines - off,
            "{\"queue\":\"%s\",\"type\":\"sleep\",\"payload\":\"ms=150\","
            "\"idempotency_key\":\"b%d\"}\n", q[i % 2], i);
    start_worker(&w1, kind, ci, q[0], NULL, "6");
    start_worker(&w2, kind, ci, q[1], NULL, "6");
    /* the b lines take the key from the options */
    rc = cli(kind, ci, lines, out, sizeof out, "submit", "--batch", "-",
        "--concurrency-key", "cust-b", (char *)NULL);
    check(rc == 0, "workq submit --batch: %d: %s", rc, out);
    check(wait_num(s, 16, 60000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'succeeded'") == 16, "not all 16 tasks succeeded");
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE attempt <> 1"), 0);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.attempt_history"), 16);
    check(max_overlap(s, "a%") == 2, "cust-a: %lld ran at once, limit 2",
        max_overlap(s, "a%"));
    check(max_overlap(s, "b%") == 1, "cust-b: %lld ran at once, limit 1",
        max_overlap(s, "b%"));
    /* the b tasks cannot all have run on their first admission */
    waits = metric(&w1, "workq_worker_flow_waits_total ")
        + metric(&w2, "workq_worker_flow_waits_total ");
    check(waits > 0, "no delivery waited (flow_waits %g)", waits);
    /* both workers ran tasks of the keys: the limit is the fleet's */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(DISTINCT worker) FROM "
        "workq.tasks"), 2);
    proc_stop(&w1, 30000);
    proc_stop(&w2, 30000);
    wq_store_close(s);
}
BOTH(concurrency_keys)

/* ---- rate limits ---------------------------------------------------------- */

/*
 * Type noop of the queue is limited to 20 a second (burst 1), echo is
 * not: 40 noop tasks take about 2 s to start over two workers, never
 * more than 22 in a second, while the 20 echo tasks all run at once;
 * every task ran once, in one attempt.
 */
static void
rate_limit(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = queue_for(kind, "rl");
    wq_store *s = wq_test_pg_open(ci);
    char conf[512], lines[8192], out[8192];
    size_t off = 0;
    struct proc w1, w2;
    long long spread, peak, echo_end, noop_end;
    int rc;

    snprintf(conf, sizeof conf, "rate_limits = ( { queue = \"%s\"; "
        "type = \"noop\"; rate = 20; burst = 1; } );\n", q);
    declare_queue(kind, q);
    for (int i = 0; i < 40; i++)
        off += (size_t)snprintf(lines + off, sizeof lines - off,
            "{\"type\":\"noop\",\"idempotency_key\":\"n%d\"}\n", i);
    for (int i = 0; i < 20; i++)
        off += (size_t)snprintf(lines + off, sizeof lines - off,
            "{\"type\":\"echo\",\"idempotency_key\":\"e%d\"}\n", i);
    start_worker(&w1, kind, ci, q, conf, "8");
    start_worker(&w2, kind, ci, q, conf, "8");
    check(wait_num(s, 2, 30000, "SELECT count(*) FROM workq.workers") == 2,
        "the workers did not register");
    rc = cli(kind, ci, lines, out, sizeof out, "submit", "--batch", "-",
        "--queue", q, (char *)NULL);
    check(rc == 0, "workq submit --batch: %d: %s", rc, out);
    check(wait_num(s, 60, 60000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'succeeded'") == 60, "not all 60 tasks succeeded");
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE attempt <> 1"), 0);
    spread = wq_test_pg_num(s, "SELECT (extract(epoch FROM max(started_at) "
        "- min(started_at)) * 1000)::int8 FROM workq.tasks WHERE type = "
        "'noop'");
    peak = wq_test_pg_num(s, "SELECT max((SELECT count(*) FROM workq.tasks "
        "b WHERE b.type = 'noop' AND b.started_at >= a.started_at AND "
        "b.started_at < a.started_at + interval '1 second')) FROM "
        "workq.tasks a WHERE a.type = 'noop'");
    echo_end = wq_test_pg_num(s, "SELECT (extract(epoch FROM "
        "max(started_at)) * 1000)::int8 FROM workq.tasks WHERE type = "
        "'echo'");
    noop_end = wq_test_pg_num(s, "SELECT (extract(epoch FROM "
        "max(started_at)) * 1000)::int8 FROM workq.tasks WHERE type = "
        "'noop'");
    fprintf(stderr, "rate limit 20/s: 40 tasks started over %lld ms, at "
        "most %lld in a second; the unlimited type ended %lld ms before\n",
        spread, peak, noop_end - echo_end);
    /* 40 tokens at 20/s after a burst of 1: 39 refills, 1.95 s */
    check(spread >= 1800, "40 tasks at 20/s started within %lld ms", spread);
    check(peak <= 22, "%lld noop tasks started within one second", peak);
    check(noop_end - echo_end >= 1000, "the unlimited type waited: its last "
        "start was %lld ms before the limited type's", noop_end - echo_end);
    proc_stop(&w1, 30000);
    proc_stop(&w2, 30000);
    wq_store_close(s);
}
BOTH(rate_limit)

/* ---- a retry keeps its concurrency key ------------------------------------ */

/*
 * A task of key solo fails its first attempt; the scheduler publishes
 * the retry from workq.tasks, and the envelope it publishes still
 * carries the concurrency key and limit (workq.flow_tasks): a raw
 * consumer reads it off the queue.  Once the task succeeds, the key is
 * forgotten.
 */
static const char retry_conf[] =
    "worker = { lease = \"2s\"; };\n"
    "queue_policies = ( { name = \"*\"; max_attempts = 5;\n"
    "    backoff_base = \"300ms\"; backoff_jitter = \"none\"; } );\n";

static void
retry_keeps_key(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = queue_for(kind, "rk");
    wq_store *s = wq_test_pg_open(ci);
    struct wq_test_consumer *tc;
    struct wq_envelope e[2];
    struct proc w, sch;
    char out[4096];
    /* Kafka: the new group reads the topic from the start, the first
     * attempt's message too */
    size_t want = kind == WQ_TRANSPORT_KAFKA ? 2 : 1, got;
    int rc;

    declare_queue(kind, q);
    start_worker(&w, kind, ci, q, retry_conf, "2");
    rc = cli(kind, ci, NULL, out, sizeof out, "submit", "-q", q, "-t",
        "fail", "-k", "r1", "--concurrency-key", "solo",
        "--concurrency-limit", "3", "until=2", (char *)NULL);
    check(rc == 0, "workq submit: %d: %s", rc, out);
    check(wait_num(s, 1, 30000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'retry_wait'") == 1, "the first attempt did not fail");
    proc_stop(&w, 30000);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.flow_tasks WHERE concurrency_key = 'solo' AND "
        "concurrency_limit = 3"), 1);
    tc = wq_test_consumer_open(kind, q);
    proc_start(&sch, "workq-scheduler", kind, ci, retry_conf, NULL, NULL);
    memset(e, 0, sizeof e);
    got = wq_test_consumer_recv(tc, e, want, 30000);
    wq_test_consumer_close(tc);
    proc_stop(&sch, 30000);
    check(got == want, "%zu of %zu messages (the scheduler published no "
        "retry?)", got, want);
    /* the retry: attempt 2, with the key and the limit */
    assert_int_equal(e[got - 1].attempt, 2);
    for (size_t i = 0; i < got; i++) {
        assert_int_equal(e[i].version, 2);
        assert_non_null(e[i].concurrency_key);
        assert_string_equal(e[i].concurrency_key, "solo");
        assert_int_equal(e[i].concurrency_limit, 3);
        wq_envelope_free(&e[i]);
    }
    wq_store_close(s);
}
BOTH(retry_keeps_key)

/* ---- unique windows -------------------------------------------------------- */

static wq_client *
client_open(int kind, const char *ci)
{
    struct wq_client_conf conf = {
        .transport = wq_test_kind_name(kind),
        .kafka_brokers = WQ_TEST_KAFKA_BROKERS(),
        .rabbitmq_url = WQ_TEST_AMQP_URL(),
        .postgres_conninfo = ci,
        .client_id = "test-flow",
        .kafka_linger_ms = 1,
    };
    char err[WQ_ERRLEN];
    wq_client *c = NULL;

    if (wq_client_open_conf(&conf, &c, err, sizeof err) != 0)
        fail_msg("wq_client_open_conf: %s", err);
    return c;
}

static void
submit_key(wq_client *c, const char *q, const char *key, char *id)
{
    struct wq_client_task t = { .queue = q, .type = "noop",
        .idempotency_key = key };
    char err[WQ_ERRLEN];

    if (wq_client_submit(c, &t, id, err, sizeof err) != 0)
        fail_msg("submit %s: %s", key, err);
}

/*
 * --unique-for 1.5s: two submits of key u1 inside the window are one
 * task (one id, one run); after the window the key runs again, as a new
 * task; a submit without a key is refused.
 */
static void
unique_window(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = queue_for(kind, "uw");
    wq_store *s = wq_test_pg_open(ci);
    struct wq_client_flow flow = { .unique_for_ms = 1500 };
    struct wq_client_task nokey = { .queue = q, .type = "noop" };
    char id1[WQ_CLIENT_ID_LEN], id2[WQ_CLIENT_ID_LEN], id3[WQ_CLIENT_ID_LEN];
    char id4[WQ_CLIENT_ID_LEN], err[WQ_ERRLEN];
    wq_client *c;
    struct proc w;

    declare_queue(kind, q);
    c = client_open(kind, ci);
    assert_int_equal(wq_client_set_flow(c, &flow, err, sizeof err), 0);
    submit_key(c, q, "u1", id1);
    submit_key(c, q, "u1", id2);
    assert_string_equal(id1, id2);
    assert_int_equal(wq_client_submit(c, &nokey, id3, err, sizeof err),
        WQ_EINVAL);
    assert_non_null(strstr(err, "needs an idempotency"));
    wq_test_sleep_ms(1700);
    submit_key(c, q, "u1", id3);
    check(strcmp(id1, id3) != 0, "a submit after the window got the old "
        "task %s", id3);
    submit_key(c, q, "u1", id4);
    assert_string_equal(id3, id4);
    wq_client_free(c);
    start_worker(&w, kind, ci, q, NULL, "4");
    check(wait_num(s, 2, 30000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'succeeded' AND idempotency_key LIKE 'u1@w%'") == 2,
        "the two windows' tasks did not both run");
    proc_stop(&w, 30000);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks"),
        2);
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM workq.tasks "
        "WHERE id IN ('%s', '%s')", id1, id3), 2);
    wq_store_close(s);
}
BOTH(unique_window)

/* ---- the CLI refuses what makes no sense ----------------------------------- */

static void
cli_usage(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    char out[32768];
    int rc;

    (void)state;
    rc = cli(WQ_TRANSPORT_RABBITMQ, ci, NULL, out, sizeof out, "submit",
        "-q", "x", "-t", "noop", "--unique-for", "1h", "{}", (char *)NULL);
    assert_int_equal(rc, 64);
    assert_non_null(strstr(out, "--unique-for needs --key"));
    rc = cli(WQ_TRANSPORT_RABBITMQ, ci, NULL, out, sizeof out, "submit",
        "-q", "x", "-t", "noop", "--concurrency-limit", "2", "{}",
        (char *)NULL);
    assert_int_equal(rc, 64);
    assert_non_null(strstr(out, "--concurrency-limit goes with"));
    rc = cli(WQ_TRANSPORT_RABBITMQ, ci, NULL, out, sizeof out, "submit",
        "-q", "x", "-t", "noop", "--concurrency-key", "k",
        "--concurrency-limit", "0", "{}", (char *)NULL);
    assert_int_equal(rc, 64);
    rc = cli(WQ_TRANSPORT_RABBITMQ, ci, NULL, out, sizeof out, "help",
        "submit", (char *)NULL);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "--concurrency-key KEY"));
    assert_non_null(strstr(out, "--unique-for DURATION"));
}

static const struct CMUnitTest tests[] = {
    TESTS(concurrency_keys),
    TESTS(rate_limit),
    TESTS(retry_keeps_key),
    TESTS(unique_window),
    cmocka_unit_test(cli_usage),
};

WQ_TEST_MAIN("flow", tests)

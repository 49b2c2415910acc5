/*
 * test_pgbouncer.c - workq through PgBouncer in transaction pooling mode
 * (postgres.pooler = "transaction"), on RabbitMQ, with the private
 * PgBouncer of tests/services (127.0.0.1:56432, 2 server connections per
 * database, so that the clients of the worker, the scheduler and the
 * submitting client really share them).
 *
 * The real worker and scheduler connect through PgBouncer; what needs a
 * session (LISTEN: cancels, the scheduler's wake-ups) goes straight to
 * PostgreSQL on postgres.listen_conninfo.  Tasks are submitted with the
 * client library through PgBouncer too (receipts, a delayed task), and a
 * running task is cancelled with `workq cancel` through PgBouncer (its
 * NOTIFY is sent at commit, which works in any pooling mode).  The
 * counts: every task succeeded exactly once, or is dead or cancelled
 * with its history.  The other cases: "transaction" without
 * listen_conninfo is refused at start, and a worker through PgBouncer
 * without the setting says what to set once its named statements are
 * missing, and goes on with unnamed ones.
 */
#include "wq_test.h"
#include "sched_test.h"
#include "workq.h"

#define N_OK      240           /* noop */
#define N_FLAKY    40           /* fail the first two attempts */
#define N_DOOMED   15           /* fail every attempt: dead after 3 */

/* The conninfo of database `ci` through the test PgBouncer (libpq takes
 * the last of a repeated keyword). Static. */
static const char *
via_pgbouncer(const char *ci)
{
    static char out[1200];

    snprintf(out, sizeof out, "%s port=%s", ci,
        wq_test_env("WORKQ_TEST_PGBOUNCER_PORT", "56432"));
    return out;
}

/*
 * The configuration of every process of a test; `pooler` NULL: none set.
 * The scheduler polls only every 20 s: retries and the delayed task are
 * on time only if its LISTEN (on listen_conninfo) works.
 */
static const char *
config_text(const char *queue, const char *pooler, const char *listen_ci)
{
    static char text[4096];

    snprintf(text, sizeof text,
        "transport = \"rabbitmq\";\n"
        "rabbitmq = { url = \"%s\"; };\n"
        "postgres = { pool_size = 3; %s%s%s%s%s%s };\n"
        "worker = { queues = [ \"%s\" ]; concurrency = 32; lease = \"6s\"; };\n"
        "scheduler = { poll_interval = \"20s\"; };\n"
        "queue_policies = ( { name = \"%s\"; backoff_base = \"100ms\";\n"
        "    backoff_cap = \"200ms\"; } );\n"
        "handlers = (\n"
        "  { type = \"ok\"; builtin = \"noop\"; },\n"
        "  { type = \"flaky\"; builtin = \"fail\"; options = \"until=3\"; },\n"
        "  { type = \"doomed\"; builtin = \"fail\"; },\n"
        "  { type = \"slow\"; builtin = \"sleep\"; }\n"
        ");\n",
        WQ_TEST_AMQP_URL(),
        pooler != NULL ? "pooler = \"" : "", pooler != NULL ? pooler : "",
        pooler != NULL ? "\"; " : "",
        listen_ci != NULL ? "listen_conninfo = \"" : "",
        listen_ci != NULL ? listen_ci : "",
        listen_ci != NULL ? "\";" : "",
        queue, queue);
    return text;
}

/*
 * What each test starts from: a migrated database (ci, direct), a
 * declared queue "<name>-...", its conninfo through PgBouncer (pgb) and
 * the configuration file `file` (config_text's `pooler`; with `listen`,
 * listen_conninfo is the direct database, named workq-listen).
 */
struct bed {
    const char *ci, *queue;
    char pgb[1200], listen_ci[1300], conf[300];
};

static void
bed_open(struct bed *b, const char *name, const char *file,
    const char *pooler, int listen)
{
    b->ci = wq_test_pg_create_migrated_db();
    b->queue = wq_test_queue(WQ_TRANSPORT_RABBITMQ, name);
    snprintf(b->pgb, sizeof b->pgb, "%s", via_pgbouncer(b->ci));
    snprintf(b->listen_ci, sizeof b->listen_ci,
        "%s application_name=workq-listen", b->ci);
    declare_queue(WQ_TRANSPORT_RABBITMQ, b->queue);
    snprintf(b->conf, sizeof b->conf, "%s", write_file(file,
        config_text(b->queue, pooler, listen ? b->listen_ci : NULL)));
}

/* Submits n tasks of `type` (max_attempts attempts, delay_ms later) in one
 * batch through client c; the ids into ids (n * WQ_CLIENT_ID_LEN). */
static void
submit(wq_client *c, const char *queue, const char *type, int n,
    int max_attempts, int64_t delay_ms, const char *payload,
    char (*ids)[WQ_CLIENT_ID_LEN])
{
    struct wq_client_task *t = calloc((size_t)n, sizeof *t);
    struct wq_client_result *r = calloc((size_t)n, sizeof *r);
    char err[WQ_ERRLEN];

    for (int i = 0; i < n; i++) {
        t[i].queue = queue;
        t[i].type = type;
        t[i].payload = payload;
        t[i].payload_len = strlen(payload);
        t[i].max_attempts = max_attempts;
        t[i].delay_ms = delay_ms;
    }
    if (wq_client_submit_batch(c, t, (size_t)n, r, err, sizeof err) != 0)
        check(0, "submit %d %s: %s", n, type, err);
    for (int i = 0; i < n; i++) {
        check(!r[i].untracked, "%s: receipt not recorded", r[i].id);
        if (ids != NULL)
            memcpy(ids[i], r[i].id, WQ_CLIENT_ID_LEN);
    }
    free(t);
    free(r);
}

/* Server connections PgBouncer holds to the test's database now (its
 * own listening connections are named workq-listen). */
static long long
pooled_backends(wq_store *s)
{
    return wq_test_pg_num(s, "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend' "
        "AND application_name NOT LIKE 'workq-listen%'");
}

/*
 * A real worker and scheduler through PgBouncer (transaction pooling, 2
 * server connections): a few hundred tasks, retries, dead ones, a delayed
 * one and a cancel of a running one; each ends exactly once.
 */
static void
test_pgbouncer_transaction_pooling(void **state)
{
    static struct proc sched, worker;
    static struct bed b;
    const char *ci, *queue, *pgb = b.pgb, *conf = b.conf;
    char out[4096];
    char delayed[1][WQ_CLIENT_ID_LEN], slow[1][WQ_CLIENT_ID_LEN];
    const char *args[] = { "--config", conf, NULL };
    wq_store *s;
    char err[WQ_ERRLEN];
    long long peak = 0, total = N_OK + N_FLAKY + N_DOOMED + 2, n;
    int64_t t0;
    wq_client *c;

    (void)state;
    atexit(proc_kill_all);
    bed_open(&b, "pgb", "workq.conf", "transaction", 1);
    ci = b.ci;
    queue = b.queue;
    s = wq_test_pg_open(ci);
    /* the client library reads the file; the daemons get conninfo from
     * the environment too (proc_start), both PgBouncer's */
    setenv("WORKQ_POSTGRES_CONNINFO", pgb, 1);

    proc_start(&sched, "workq-scheduler", WQ_TRANSPORT_RABBITMQ, pgb, NULL,
        NULL, args);
    proc_start(&worker, "workq-worker", WQ_TRANSPORT_RABBITMQ, pgb, NULL,
        NULL, args);
    check(proc_log_wait(&worker, "consuming", 15000),
        "worker did not start");

    t0 = wq_test_now_ms();
    if (wq_client_open(conf, &c, err, sizeof err) != 0)
        check(0, "client: %s", err);
    submit(c, queue, "slow", 1, 1, 0, "60000", slow);
    submit(c, queue, "ok", N_OK, 3, 0, "", NULL);
    submit(c, queue, "flaky", N_FLAKY, 5, 0, "", NULL);
    submit(c, queue, "doomed", N_DOOMED, 3, 0, "", NULL);
    submit(c, queue, "ok", 1, 3, 1500, "", delayed);
    wq_client_free(c);

    /* the slow one runs: cancel it through PgBouncer; the worker hears
     * the NOTIFY on its direct listening connection */
    check(wait_num(s, 1, 10000, "SELECT count(*) FROM workq.tasks WHERE "
        "type = 'slow' AND state = 'running'") == 1, "slow task not running");
    n = workq_cli(pgb, out, sizeof out, "--config", conf, "cancel", slow[0],
        NULL);
    check(n == 1 && strstr(out, "is running on") != NULL,
        "cancel: status %lld: %s", n, out);

    while (wq_test_now_ms() - t0 < 25000) {
        long long p = pooled_backends(s);

        if (p > peak)
            peak = p;
        n = wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks WHERE "
            "state IN ('succeeded', 'dead', 'cancelled')");
        if (n == total)
            break;
        usleep(50000);
    }
    check(n == total, "%lld of %lld tasks final after 25 s", n, total);
    printf("# %lld tasks final in %.1f s through PgBouncer; at most "
        "%lld pooled server connections seen\n", total,
        (double)(wq_test_now_ms() - t0) / 1000, peak);

    /* the counts */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks"),
        total);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'succeeded'"), N_OK + N_FLAKY + 1);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'dead'"), N_DOOMED);
    assert_string_equal(textf(s, "SELECT state FROM workq.tasks WHERE id = "
        "'%s'", slow[0]), "cancelled");
    /* exactly one success per succeeded task, none for the others */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.attempt_history WHERE outcome = 'succeeded'"),
        N_OK + N_FLAKY + 1);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM (SELECT task_id "
        "FROM workq.attempt_history WHERE outcome = 'succeeded' "
        "GROUP BY task_id HAVING count(*) > 1) d"), 0);
    /* retries: the flaky ones on their third attempt, the doomed after 3 */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE type = 'flaky' AND attempt = 3"), N_FLAKY);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks t "
        "WHERE type = 'doomed' AND attempt = 3 AND (SELECT count(*) FROM "
        "workq.attempt_history a WHERE a.task_id = t.id AND a.outcome = "
        "'failed') = 3"), N_DOOMED);
    /* the delayed one ran after its delay */
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM workq.tasks "
        "WHERE id = '%s' AND state = 'succeeded' AND started_at >= "
        "created_at + interval '1400 ms'", delayed[0]), 1);
    /* PgBouncer never gave the database more than its pool */
    check(peak <= 2, "%lld server connections through PgBouncer (pool 2)",
        peak);
    /* the listening connections are the direct ones */
    assert_true(wq_test_pg_num(s, "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = "
        "'workq-listen' AND query LIKE 'LISTEN%'") >= 2);

    proc_stop(&worker, 15000);
    proc_stop(&sched, 15000);
    wq_store_close(s);
}

/*
 * postgres.pooler "transaction" without listen_conninfo is refused at
 * start (exit 78, the key named): LISTEN needs a session.  (Without the
 * pooler setting, two workers' named statements can meet each other's
 * server connections and the store's error then names the setting; that
 * depends on which server connection PgBouncer hands out, so it is not
 * tested here: a test must not pass or fail by luck.)
 */
static void
test_pgbouncer_refuses_without_listen_conninfo(void **state)
{
    static struct proc refused;
    static struct bed b;
    const char *args2[] = { "--config", b.conf, NULL };
    char *log;

    (void)state;
    atexit(proc_kill_all);
    bed_open(&b, "pgb-bad", "refused.conf", "transaction", 0);
    proc_start(&refused, "workq-worker", WQ_TRANSPORT_RABBITMQ, b.pgb, NULL,
        NULL, args2);
    check(proc_wait(&refused, 10000) == 78, "exit status %d, not 78",
        refused.status);
    log = proc_log(&refused);
    assert_contains(log, "postgres.listen_conninfo: required when "
        "postgres.pooler is \"transaction\"");
    free(log);
}

/*
 * Without postgres.pooler, a worker's named statements live on the server
 * connections it prepared them on.  Through a transaction-mode PgBouncer
 * they meet other server connections: at once when its pool's clients
 * share PgBouncer's two (which depends on what PgBouncer hands out), and
 * surely when those end under it while it idles (as PgBouncer's
 * server_lifetime, a restart of PostgreSQL or a failover would end them):
 * the client connections to PgBouncer stay, the next transactions get
 * new server connections, and a named statement is not there (SQLSTATE
 * 26000).  The worker's log must name the setting, and the worker must
 * go on unnamed: every task succeeds, once.
 */
static void
test_pgbouncer_without_setting_names_it(void **state)
{
    static struct proc worker;
    static struct bed b;
    const char *ci, *queue, *pgb = b.pgb, *conf = b.conf;
    char err[WQ_ERRLEN];
    const char *args[] = { "--config", conf, NULL };
    wq_store *s;
    long long n;
    wq_client *c;

    (void)state;
    atexit(proc_kill_all);
    bed_open(&b, "pgb-named", "named.conf", NULL, 0);
    ci = b.ci;
    queue = b.queue;
    s = wq_test_pg_open(ci);
    setenv("WORKQ_POSTGRES_CONNINFO", ci, 1);   /* the client: direct */
    proc_start(&worker, "workq-worker", WQ_TRANSPORT_RABBITMQ, pgb, NULL,
        NULL, args);
    check(proc_log_wait(&worker, "consuming", 15000),
        "worker did not start");
    if (wq_client_open(conf, &c, err, sizeof err) != 0)
        check(0, "client: %s", err);
    /* named statements prepared and used (or found out already) */
    submit(c, queue, "ok", 20, 3, 0, "", NULL);
    check(wait_num(s, 20, 15000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'succeeded'") == 20, "the first 20 tasks did not succeed");
    usleep(300000);     /* the worker idles: no transaction open */
    n = wq_test_pg_num(s, "SELECT count(pg_terminate_backend(pid)) FROM "
        "pg_stat_activity WHERE datname = current_database() AND pid <> "
        "pg_backend_pid() AND backend_type = 'client backend'");
    check(n >= 1, "no server connection of PgBouncer's to end");
    submit(c, queue, "ok", 5, 3, 0, "", NULL);
    wq_client_free(c);
/* (the log escapes the quotes around "transaction") */
#define HINT "is a pooler in transaction mode (PgBouncer) between workq " \
    "and PostgreSQL? This connection sends its statements unnamed from " \
    "now on; set postgres.pooler = "
    check(proc_log_wait(&worker, HINT, 15000), "no hint in the worker's log");
    check(wait_num(s, 25, 15000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'succeeded'") == 25, "the worker did not go on unnamed");
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.attempt_history WHERE outcome = 'succeeded'"), 25);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks"),
        25);
    proc_kill9(&worker);
    wq_store_close(s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_pgbouncer_transaction_pooling),
    cmocka_unit_test(test_pgbouncer_refuses_without_listen_conninfo),
    cmocka_unit_test(test_pgbouncer_without_setting_names_it),
};

WQ_TEST_MAIN("pgbouncer", tests)

/*
 * test_scheduler.c - workq-scheduler on its own, with the private servers
 * of tests/services and the real binary (wq_test_bin("workq-scheduler")).
 *
 * Rows are put in the states the producer and the worker leave them in
 * (scheduled, retry_wait, running with a lease, dead, outbox rows, cron
 * ticks) in a fresh database per test; what the scheduler publishes is
 * taken off the broker with the raw consumer of wq_test_broker.h.  Where
 * the broker matters a scenario runs on both transports (_kafka and
 * _rabbitmq).  The flows with the real worker are in
 * test_scheduler_flow.c.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_test.h"
#include "store_int.h"
#include "workq_outbox.h"

#define K WQ_TRANSPORT_KAFKA
#define R WQ_TRANSPORT_RABBITMQ

/* A quick scheduler: short backoff after lost leases, small batches. */
static const char conf_quick[] =
    "scheduler = { poll_interval = \"1s\"; batch_size = 25;\n"
    "    publish_timeout = \"10s\"; };\n"
    "queue_policies = ( { name = \"*\"; backoff_base = \"400ms\";\n"
    "    backoff_factor = 1; backoff_jitter = \"none\"; } );\n";

static void
start_scheduler(struct proc *p, int kind, const char *ci, const char *conf)
{
    proc_start(p, "workq-scheduler", kind, ci, conf, NULL, NULL);
    check(proc_log_wait(p, "listening on workq_scheduler", 20000),
        "the scheduler did not connect to PostgreSQL");
}

/* Takes envelopes off c until `want` arrived or timeout_ms passed, then
 * waits quiet_ms more for any extra; returns the count (<= max). */
static size_t
recv_n(struct wq_test_consumer *c, struct wq_envelope *env, size_t max,
    size_t want, int timeout_ms, int quiet_ms)
{
    size_t n = wq_test_consumer_recv(c, env, want, timeout_ms);

    if (n == want && quiet_ms > 0 && n < max)
        n += wq_test_consumer_recv(c, env + n, max - n, quiet_ms);
    return n;
}

static const struct wq_envelope *
find_env(const struct wq_envelope *env, size_t n, const char *id)
{
    char text[WQ_UUID_STRLEN];

    for (size_t i = 0; i < n; i++) {
        wq_uuid_format(env[i].id, text);
        if (strcmp(text, id) == 0)
            return &env[i];
    }
    fail_msg("no message for task %s among %zu", id, n);
    return NULL;
}

static const char *
header(const struct wq_envelope *e, const char *name)
{
    for (size_t i = 0; i < e->nheaders; i++)
        if (strcmp(e->headers[i].name, name) == 0)
            return e->headers[i].value;
    return NULL;
}

static void
free_envs(struct wq_envelope *env, size_t n)
{
    for (size_t i = 0; i < n; i++)
        wq_envelope_free(&env[i]);
}

/* ---- delayed tasks and retries ------------------------------------------------ */

static void
delayed(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("delay");
    wq_store *s = wq_test_pg_open(ci);
    struct wq_test_consumer *c;
    struct wq_envelope env[8];
    const struct wq_envelope *e;
    char a[40], b[40], d[40], r[40];
    struct proc sch;
    size_t n;

    declare_queue(kind, q);
    c = wq_test_consumer_open(kind, q);
    start_scheduler(&sch, kind, ci, conf_quick);
    snprintf(a, sizeof a, "%s", insert_task(s, q, "noop", "k-a",
        "scheduled", 0, 5, "now() + interval '1500 ms'",
        ", payload, headers", ", '\\x0001ff'::bytea, '{\"trace\": \"abc\"}'"));
    snprintf(b, sizeof b, "%s", insert_task(s, q, "noop", "k-b",
        "scheduled", 0, 5, "now() + interval '2500 ms'", "", ""));
    snprintf(d, sizeof d, "%s", insert_task(s, q, "echo", "k-d",
        "scheduled", 0, 2, "now() - interval '1 second'", "", ""));
    /* a retry: attempt 2 failed, the next one is 3 */
    snprintf(r, sizeof r, "%s", insert_task(s, q, "fail", "k-r",
        "retry_wait", 2, 5, "now() + interval '300 ms'",
        ", last_error", ", 'boom'"));

    n = recv_n(c, env, WQ_ARRAY_LEN(env), 4, 60000, 1500);
    check(n == 4, "%zu messages, want 4", n);
    e = find_env(env, n, a);
    assert_int_equal(e->attempt, 1);
    assert_int_equal(e->max_attempts, 5);
    assert_string_equal(e->queue, q);
    assert_string_equal(e->type, "noop");
    assert_string_equal(e->key, "k-a");
    assert_int_equal(e->payload_len, 3);
    assert_memory_equal(e->payload, "\x00\x01\xff", 3);
    assert_non_null(header(e, "trace"));
    assert_string_equal(header(e, "trace"), "abc");
    e = find_env(env, n, r);
    assert_int_equal(e->attempt, 3);
    assert_string_equal(e->type, "fail");
    find_env(env, n, b);
    find_env(env, n, d);
    if (kind == K)
        assert_non_null(wq_test_consumer_last_key(c));

    /* never before run_at (the claim's WHERE), and within a second */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'queued' AND updated_at >= run_at"), 4);
    check(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks WHERE "
        "updated_at < greatest(run_at, created_at) + interval '1 second'")
        == 4, "due tasks published more than a second late");
    /* the one already due when it was inserted is the only one late */
    check(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks WHERE "
        "updated_at < run_at + interval '100 milliseconds'") >= 3,
        "the timer missed the due times");
    assert_true(metric(&sch, "workq_scheduler_published_total"
        "{kind=\"delayed\"} ") == 3);
    assert_true(metric(&sch, "workq_scheduler_published_total"
        "{kind=\"retry\"} ") == 1);
    proc_stop(&sch, 10000);
    free_envs(env, n);
    wq_test_consumer_close(c);
    wq_store_close(s);
}

static void test_scheduler_delayed_kafka(void **st) { (void)st; delayed(K); }
static void test_scheduler_delayed_rabbitmq(void **st) { (void)st; delayed(R); }

/*
 * Priorities: a retry of a high task and a delayed low task go back to
 * their bands ("Q.priority-high", "Q.priority-low"), one message each,
 * and nothing to "Q" but a normal task (the sentinel).
 */
static void
priority_bands(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("prio");
    wq_store *s = wq_test_pg_open(ci);
    struct wq_test_consumer *ch, *cl, *cn;
    struct wq_envelope env[4];
    char hi[200], lo[200], r[40], d[40], n[40];
    struct proc sch;
    size_t got;

    snprintf(hi, sizeof hi, "%s.priority-high", q);
    snprintf(lo, sizeof lo, "%s.priority-low", q);
    declare_queue(kind, q);
    declare_queue(kind, hi);
    declare_queue(kind, lo);
    ch = wq_test_consumer_open(kind, hi);
    cl = wq_test_consumer_open(kind, lo);
    cn = wq_test_consumer_open(kind, q);
    start_scheduler(&sch, kind, ci, conf_quick);
    /* a high task's retry: attempt 1 failed, the next one is 2 */
    snprintf(r, sizeof r, "%s", insert_task(s, q, "fail", "k-r",
        "retry_wait", 1, 5, "now() + interval '300 ms'",
        ", priority", ", 2"));
    snprintf(d, sizeof d, "%s", insert_task(s, q, "noop", "k-d",
        "scheduled", 0, 5, "now() + interval '300 ms'",
        ", priority", ", 0"));
    snprintf(n, sizeof n, "%s", insert_task(s, q, "noop", "k-n",
        "scheduled", 0, 5, "now() + interval '300 ms'", "", ""));

    got = recv_n(ch, env, WQ_ARRAY_LEN(env), 1, 60000, 1500);
    check(got == 1, "%zu messages on the high band, want 1", got);
    find_env(env, got, r);
    assert_int_equal(env[0].attempt, 2);
    assert_string_equal(env[0].queue, q);
    free_envs(env, got);
    got = recv_n(cl, env, WQ_ARRAY_LEN(env), 1, 60000, 1500);
    check(got == 1, "%zu messages on the low band, want 1", got);
    find_env(env, got, d);
    free_envs(env, got);
    wq_test_expect_only(cn, n, 1500);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'queued'"), 3);
    proc_stop(&sch, 10000);
    wq_test_consumer_close(ch);
    wq_test_consumer_close(cl);
    wq_test_consumer_close(cn);
    wq_store_close(s);
}

static void test_scheduler_priority_kafka(void **st)
{ (void)st; priority_bands(K); }
static void test_scheduler_priority_rabbitmq(void **st)
{ (void)st; priority_bands(R); }

/* ---- lost leases ------------------------------------------------------------- */

static void
leases(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("lease");
    char dq[WQ_QUEUE_MAX + 8], a[40], b[40], live[40];
    wq_store *s = wq_test_pg_open(ci);
    struct wq_test_consumer *c, *cd;
    struct wq_envelope env[4], denv[4];
    struct proc sch;
    size_t n;

    declare_queue(kind, q);
    snprintf(dq, sizeof dq, "%s.dead", q);
    c = wq_test_consumer_open(kind, q);
    cd = wq_test_consumer_open(kind, dq);
    /* a: attempt 1 of 3, its worker died; b: attempt 3 of 3, too */
    snprintf(a, sizeof a, "%s", insert_task(s, q, "noop", "k-a", "running",
        1, 3, NULL, ", lease_owner, lease_expires_at, started_at, worker",
        ", 'w-dead', now() - interval '1 second', now() - interval '5 s', "
        "'w-dead'"));
    sqlf(s, "INSERT INTO workq.attempts (task_id, attempt, started_at, "
        "worker) VALUES ('%s', 1, now() - interval '5 s', 'w-dead')", a);
    snprintf(b, sizeof b, "%s", insert_task(s, q, "noop", "k-b", "running",
        3, 3, NULL, ", lease_owner, lease_expires_at, started_at, worker",
        ", 'w-gone', now() - interval '2 seconds', now() - interval '9 s', "
        "'w-gone'"));
    sqlf(s, "INSERT INTO workq.attempts (task_id, attempt, started_at, "
        "finished_at, outcome, error, worker) VALUES "
        "('%s', 1, now(), now(), 'failed', 'x', 'w1'), "
        "('%s', 2, now(), now(), 'failed', 'y', 'w1')", b, b);
    sqlf(s, "INSERT INTO workq.attempts (task_id, attempt, started_at, "
        "worker) VALUES ('%s', 3, now(), 'w-gone')", b);
    /* a live lease stays */
    snprintf(live, sizeof live, "%s", insert_task(s, q, "noop", "k-live",
        "running", 1, 3, NULL, ", lease_owner, lease_expires_at, worker",
        ", 'w-alive', now() + interval '1 hour', 'w-alive'"));

    start_scheduler(&sch, kind, ci, conf_quick);
    n = recv_n(c, env, WQ_ARRAY_LEN(env), 1, 60000, 1500);
    check(n == 1, "%zu messages on %s, want 1 (the retry)", n, q);
    find_env(env, n, a);
    assert_int_equal(env[0].attempt, 2);
    n = recv_n(cd, denv, WQ_ARRAY_LEN(denv), 1, 60000, 1000);
    check(n == 1, "%zu messages on %s, want 1 (the dead one)", n, dq);
    find_env(denv, n, b);
    assert_contains(header(&denv[0], "workq-dead-reason"),
        "lease expired: worker w-gone");
    assert_string_equal(header(&denv[0], "workq-attempts"), "3");
    assert_non_null(header(&denv[0], "workq-dead-at"));

    /* the lost attempts, with the queue's backoff (400 ms, no jitter) */
    assert_string_equal(textf(s, "SELECT outcome || ':' || error FROM "
        "workq.attempts WHERE task_id = '%s' AND attempt = 1", a),
        "lease_expired:lease expired: worker w-dead stopped renewing it");
    assert_string_equal(textf(s, "SELECT (extract(epoch FROM t.run_at - "
        "a.finished_at) * 1000)::int FROM workq.tasks t JOIN "
        "workq.attempt_history a ON a.task_id = t.id WHERE t.id = '%s'", a),
        "400");
    assert_string_equal(textf(s, "SELECT state FROM workq.tasks WHERE id = "
        "'%s'", a), "queued");
    assert_string_equal(textf(s, "SELECT state || ' ' || (finished_at IS "
        "NOT NULL) || ' ' || (dead_published_at IS NOT NULL) FROM "
        "workq.tasks WHERE id = '%s'", b), "dead true true");
    assert_string_equal(textf(s, "SELECT string_agg(outcome, ',' ORDER BY "
        "attempt) FROM workq.attempt_history WHERE task_id = '%s'", b),
        "failed,failed,lease_expired");
    assert_string_equal(textf(s, "SELECT state || ' ' || lease_owner FROM "
        "workq.tasks WHERE id = '%s'", live), "running w-alive");
    assert_true(metric(&sch, "workq_scheduler_lease_expiries_total"
        "{outcome=\"retry\"} ") == 1);
    assert_true(metric(&sch, "workq_scheduler_lease_expiries_total"
        "{outcome=\"dead\"} ") == 1);
    assert_true(metric(&sch, "workq_scheduler_dead_total ") == 1);
    proc_stop(&sch, 10000);
    free_envs(env, 1);
    free_envs(denv, 1);
    wq_test_consumer_close(c);
    wq_test_consumer_close(cd);
    wq_store_close(s);
}

static void test_scheduler_leases_kafka(void **st) { (void)st; leases(K); }
static void test_scheduler_leases_rabbitmq(void **st) { (void)st; leases(R); }

/* ---- dead-letter copies: once, also across a restart ---------------------------- */

static void
dead_once(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("dead");
    char dq[WQ_QUEUE_MAX + 8], d[40], sentinel[40];
    wq_store *s = wq_test_pg_open(ci);
    struct wq_test_consumer *c;
    struct wq_envelope env[4];
    struct proc sch;
    size_t n;

    declare_queue(kind, q);
    snprintf(dq, sizeof dq, "%s.dead", q);
    c = wq_test_consumer_open(kind, dq);
    snprintf(d, sizeof d, "%s", insert_task(s, q, "fail", "k-d", "dead", 2,
        2, NULL, ", finished_at, last_error, payload",
        ", now(), 'boom: exit 1', 'data'"));
    start_scheduler(&sch, kind, ci, conf_quick);
    n = recv_n(c, env, WQ_ARRAY_LEN(env), 1, 60000, 0);
    check(n == 1, "no copy on %s", dq);
    find_env(env, n, d);
    assert_int_equal(env[0].attempt, 2);
    assert_string_equal(env[0].queue, q);
    assert_string_equal(header(&env[0], "workq-dead-reason"), "boom: exit 1");
    assert_int_equal(wait_num(s, 1, 5000, "SELECT count(*) FROM workq.tasks "
        "WHERE dead_published_at IS NOT NULL"), 1);
    free_envs(env, n);

    /* a restart publishes nothing again; a new dead task goes out once */
    proc_stop(&sch, 10000);
    start_scheduler(&sch, kind, ci, conf_quick);
    snprintf(sentinel, sizeof sentinel, "%s", insert_task(s, q, "fail",
        "k-s", "dead", 1, 1, NULL, ", finished_at", ", now()"));
    wq_test_expect_only(c, sentinel, 2000);
    proc_stop(&sch, 10000);
    wq_test_consumer_close(c);
    wq_store_close(s);
}

static void test_scheduler_dead_once_kafka(void **st) { (void)st; dead_once(K); }
static void test_scheduler_dead_once_rabbitmq(void **st)
{
    (void)st;
    dead_once(R);
}

/* A row that makes no envelope (a header that is not a string) cannot be
 * published: dead, with the reason, and no copy. */
static void
test_scheduler_unpublishable(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("bad");
    wq_store *s = wq_test_pg_open(ci);
    struct proc sch;
    char id[40];

    (void)state;
    declare_queue(R, q);
    snprintf(id, sizeof id, "%s", insert_task(s, q, "noop", NULL,
        "scheduled", 0, 3, "now()", ", headers", ", '{\"n\": 5}'"));
    start_scheduler(&sch, R, ci, conf_quick);
    check(wait_num(s, 1, 10000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'dead' AND dead_published_at IS NOT NULL") == 1,
        "the unpublishable task is not dead");
    assert_contains(textf(s, "SELECT last_error FROM workq.tasks WHERE id = "
        "'%s'", id), "header 'n' is not a string");
    assert_true(metric(&sch, "workq_scheduler_unpublishable_total ") == 1);
    proc_stop(&sch, 10000);
    wq_store_close(s);
}

/* ---- two schedulers at once ----------------------------------------------------- */

static void
two_schedulers(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("ha");
    wq_store *s = wq_test_pg_open(ci);
    struct wq_test_consumer *c;
    struct wq_envelope *env = calloc(500, sizeof *env);
    struct proc a, b;
    double pa, pb;
    size_t n;

    declare_queue(kind, q);
    c = wq_test_consumer_open(kind, q);
    start_scheduler(&a, kind, ci, conf_quick);
    start_scheduler(&b, kind, ci, conf_quick);
    /* 300 due now (one notification wakes both), 100 a little later */
    sqlf(s, "INSERT INTO workq.tasks (id, queue, type, idempotency_key, "
        "state, max_attempts, run_at) SELECT workq.uuid_v7(), '%s', 'noop', "
        "'k' || i, 'scheduled', 3, now() + (CASE WHEN i > 300 THEN i - 300 "
        "ELSE 0 END) * interval '15 ms' FROM generate_series(1, 400) AS i",
        q);
    n = recv_n(c, env, 500, 400, 90000, 2000);
    check(n == 400, "%zu messages, want 400", n);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            check(memcmp(env[i].id, env[j].id, 16) != 0,
                "task published twice");
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'queued'"), 400);
    pa = metric(&a, "workq_scheduler_published_total{kind=\"delayed\"} ");
    pb = metric(&b, "workq_scheduler_published_total{kind=\"delayed\"} ");
    check(pa + pb == 400, "published %g + %g, want 400 in all", pa, pb);
    proc_stop(&a, 10000);
    proc_stop(&b, 10000);
    free_envs(env, n);
    free(env);
    wq_test_consumer_close(c);
    wq_store_close(s);
}

static void test_scheduler_two_kafka(void **st) { (void)st; two_schedulers(K); }
static void test_scheduler_two_rabbitmq(void **st)
{
    (void)st;
    two_schedulers(R);
}

/* ---- periodic tasks ---------------------------------------------------------------- */

/*
 * Ticks missed within the catch-up window are enqueued once by two
 * schedulers, and a restart neither skips nor repeats one: the recorded
 * ticks form an unbroken run of minutes from the seed, each with exactly
 * one task, each task published once.
 */
static void
cron_restart(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("cron");
    wq_store *s = wq_test_pg_open(ci);
    struct wq_test_consumer *c;
    struct wq_envelope env[64];
    struct proc a, b;
    char conf[1024];
    double ticks = 0;
    long long nticks, ntasks;
    size_t n;

    declare_queue(kind, q);
    c = wq_test_consumer_open(kind, q);
    snprintf(conf, sizeof conf,
        "scheduler = { cron_catchup = \"1h\"; };\n"
        "periodic = ( { name = \"every-minute\"; schedule = \"* * * * *\";\n"
        "    queue = \"%s\"; type = \"noop\"; payload = \"tick\"; } );\n",
        q);
    sqlf(s, "INSERT INTO workq.cron_ticks (name, tick_at) VALUES "
        "('every-minute', date_trunc('minute', now()) - interval '5 min')");
    start_scheduler(&a, kind, ci, conf);
    start_scheduler(&b, kind, ci, conf);
    check(wait_num(s, 5, 10000, "SELECT count(*) FROM workq.tasks") >= 5,
        "missed ticks were not caught up");
    ticks += metric(&a, "workq_scheduler_cron_ticks_total ");
    proc_stop(&a, 10000);
    start_scheduler(&a, kind, ci, conf);
    usleep(1500000);
    ticks += metric(&a, "workq_scheduler_cron_ticks_total ")
        + metric(&b, "workq_scheduler_cron_ticks_total ");
    proc_stop(&a, 10000);
    proc_stop(&b, 10000);

    nticks = wq_test_pg_num(s, "SELECT count(*) FROM workq.cron_ticks");
    ntasks = wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks");
    check(nticks == ntasks + 1, "%lld ticks (with the seed), %lld tasks",
        nticks, ntasks);
    /* an unbroken run of minutes up to now, each with its task */
    assert_int_equal(wq_test_pg_num(s, "SELECT (extract(epoch FROM "
        "max(tick_at) - min(tick_at)) / 60)::int + 1 FROM workq.cron_ticks"),
        nticks);
    /* ... up to the current minute (or the one before, if a minute
     * began after the schedulers stopped) */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.cron_ticks HAVING max(tick_at) >= date_trunc('minute', "
        "now()) - interval '1 minute'"), nticks);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.cron_ticks c JOIN workq.tasks t ON t.id = c.task_id AND "
        "t.run_at = c.tick_at AND t.idempotency_key = 'cron:every-minute@' "
        "|| to_char(c.tick_at AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI\"Z\"')"), ntasks);
    check(ticks == (double)ntasks, "the schedulers counted %g ticks, the "
        "database has %lld tasks", ticks, ntasks);

    n = recv_n(c, env, WQ_ARRAY_LEN(env), (size_t)ntasks, 60000, 1500);
    check(n == (size_t)ntasks, "%zu messages, want %lld", n, ntasks);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(header(&env[i], "workq-cron"), "every-minute");
        assert_int_equal(env[i].payload_len, 4);
    }
    free_envs(env, n);
    wq_test_consumer_close(c);
    wq_store_close(s);
}

static void test_scheduler_cron_restart_kafka(void **st)
{
    (void)st;
    cron_restart(K);
}

static void test_scheduler_cron_restart_rabbitmq(void **st)
{
    (void)st;
    cron_restart(R);
}

/*
 * A periodic entry's priority: its tasks' rows carry it and their
 * messages go to its band ("Q.priority-high"), none to "Q".
 */
static void
cron_priority(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("cronprio");
    wq_store *s = wq_test_pg_open(ci);
    struct wq_test_consumer *ch, *cn;
    struct wq_envelope env[16];
    char conf[1024], hi[200];
    struct proc a;
    long long ntasks;
    size_t n;

    snprintf(hi, sizeof hi, "%s.priority-high", q);
    declare_queue(kind, q);
    declare_queue(kind, hi);
    ch = wq_test_consumer_open(kind, hi);
    cn = wq_test_consumer_open(kind, q);
    snprintf(conf, sizeof conf,
        "scheduler = { cron_catchup = \"1h\"; };\n"
        "periodic = ( { name = \"urgent\"; schedule = \"* * * * *\";\n"
        "    queue = \"%s\"; type = \"noop\"; priority = \"high\"; } );\n",
        q);
    sqlf(s, "INSERT INTO workq.cron_ticks (name, tick_at) VALUES "
        "('urgent', date_trunc('minute', now()) - interval '2 min')");
    start_scheduler(&a, kind, ci, conf);
    check(wait_num(s, 2, 10000, "SELECT count(*) FROM workq.tasks") >= 2,
        "missed ticks were not caught up");
    check(wait_num(s, 0, 10000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'scheduled'") == 0, "the ticks were not published");
    proc_stop(&a, 10000);
    ntasks = wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks");
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE priority = 2"), ntasks);
    n = recv_n(ch, env, WQ_ARRAY_LEN(env), (size_t)ntasks, 60000, 1500);
    check(n == (size_t)ntasks, "%zu messages on the high band, want %lld", n,
        ntasks);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(header(&env[i], "workq-cron"), "urgent");
    free_envs(env, n);
    n = recv_n(cn, env, WQ_ARRAY_LEN(env), 1, 1500, 1500);
    check(n == 0, "%zu messages on the queue itself, want 0", n);
    free_envs(env, n);
    wq_test_consumer_close(ch);
    wq_test_consumer_close(cn);
    wq_store_close(s);
}

static void test_scheduler_cron_priority_kafka(void **st)
{ (void)st; cron_priority(K); }
static void test_scheduler_cron_priority_rabbitmq(void **st)
{ (void)st; cron_priority(R); }

/* Ticks older than the catch-up window are skipped; a new entry starts
 * with its next tick. */
static void
test_scheduler_cron_catchup_window(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("catch");
    wq_store *s = wq_test_pg_open(ci);
    char conf[1024], started[64];
    struct proc a;
    long long n;

    (void)state;
    declare_queue(R, q);
    snprintf(conf, sizeof conf,
        "scheduler = { cron_catchup = \"10m\"; };\n"
        "periodic = (\n"
        "  { name = \"old\"; schedule = \"* * * * *\"; queue = \"%s\";\n"
        "    type = \"noop\"; },\n"
        "  { name = \"new\"; schedule = \"* * * * *\"; queue = \"%s\";\n"
        "    type = \"noop\"; max_attempts = 2; } );\n", q, q);
    sqlf(s, "INSERT INTO workq.cron_ticks (name, tick_at) VALUES "
        "('old', date_trunc('minute', now()) - interval '90 min')");
    snprintf(started, sizeof started, "%s", textf(s, "SELECT now()"));
    start_scheduler(&a, R, ci, conf);
    n = wait_num(s, 10, 10000, "SELECT count(*) FROM workq.cron_ticks "
        "WHERE name = 'old' AND task_id IS NOT NULL");
    usleep(500000);
    n = wq_test_pg_num(s, "SELECT count(*) FROM workq.cron_ticks WHERE "
        "name = 'old' AND task_id IS NOT NULL");
    check(n == 10 || n == 11, "%lld ticks caught up, want those of the last "
        "10 minutes", n);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.cron_ticks WHERE name = 'old' AND task_id IS NOT NULL AND "
        "tick_at < now() - interval '11 minutes'"), 0);
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM "
        "workq.cron_ticks WHERE name = 'new' AND tick_at < '%s'", started),
        0);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE max_attempts = 25 AND headers->>'workq-cron' = 'old'"), n);
    proc_stop(&a, 10000);
    wq_store_close(s);
}

/* Invalid entries are refused at start with file:line and the reason. */
static void
test_scheduler_cron_config_errors(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    struct proc a;
    char *log;

    (void)state;
    proc_start(&a, "workq-scheduler", R, ci,
        "periodic = (\n"
        "  { name = \"a\"; schedule = \"61 * * * *\"; queue = \"q\";\n"
        "    type = \"t\"; },\n"
        "  { name = \"a\"; schedule = \"@daily\"; queue = \"q\"; type = \"t\"; },\n"
        "  { name = \"b\"; schedule = \"@daily\"; queue = \"q/x\";\n"
        "    type = \"t\"; } );\n", NULL, NULL);
    assert_int_equal(proc_wait(&a, 10000), 78);
    log = proc_log(&a);
    assert_contains(log, ":2: periodic[1] (a): field 1 (minute): 61 is out "
        "of range 0-59");
    assert_contains(log, ":4: periodic[2] (a): name is used by an earlier "
        "entry");
    assert_contains(log, ":5: periodic[3] (b): queue name has invalid "
        "character");
    free(log);
}

/* ---- the outbox --------------------------------------------------------------- */

static void
outbox(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("obx");
    wq_store *s = wq_test_pg_open(ci), *app = wq_test_pg_open(ci);
    PGconn *conn = wq_store_conn(app);
    struct wq_client_header hdr[1] = { { "trace", "t-1" } };
    struct wq_client_task t;
    struct wq_test_consumer *c;
    struct wq_envelope env[8];
    const struct wq_envelope *e;
    char id1[WQ_CLIENT_ID_LEN], id2[40], err[WQ_ERRLEN];
    struct proc sch;
    size_t n;

    declare_queue(kind, q);
    c = wq_test_consumer_open(kind, q);
    start_scheduler(&sch, kind, ci, conf_quick);
    wq_test_pg_exec(app, "CREATE TABLE orders (n int)");

    /* rolled back: no task */
    wq_test_pg_exec(app, "BEGIN");
    wq_test_pg_exec(app, "INSERT INTO orders VALUES (1)");
    sqlf(app, "SELECT workq.enqueue('%s', 'noop', 'x'::bytea, "
        "idempotency_key => 'k-rolled')", q);
    memset(&t, 0, sizeof t);
    t.queue = q;
    t.type = "noop";
    t.idempotency_key = "k-rolled-c";
    assert_int_equal(wq_client_enqueue_tx(conn, &t, id1, err, sizeof err), 0);
    wq_test_pg_exec(app, "ROLLBACK");

    /* committed: exactly one task each, from C and from SQL */
    wq_test_pg_exec(app, "BEGIN");
    wq_test_pg_exec(app, "INSERT INTO orders VALUES (2)");
    memset(&t, 0, sizeof t);
    t.queue = q;
    t.type = "echo";
    t.payload = "\0\1binary";
    t.payload_len = 8;
    t.idempotency_key = "k-c";
    t.max_attempts = 7;
    t.headers = hdr;
    t.nheaders = 1;
    if (wq_client_enqueue_tx(conn, &t, id1, err, sizeof err) != 0)
        fail_msg("enqueue: %s", err);
    snprintf(id2, sizeof id2, "%s", textf(app, "SELECT workq.enqueue('%s', "
        "'noop', idempotency_key => 'k-sql')", q));
    /* nothing is published before the commit */
    n = wq_test_consumer_recv(c, env, 1, 1500);
    check(n == 0, "a message was published before the commit");
    wq_test_pg_exec(app, "COMMIT");

    n = recv_n(c, env, WQ_ARRAY_LEN(env), 2, 60000, 2000);
    check(n == 2, "%zu messages, want 2", n);
    e = find_env(env, n, id1);
    assert_string_equal(e->type, "echo");
    assert_string_equal(e->key, "k-c");
    assert_int_equal(e->attempt, 1);
    assert_int_equal(e->max_attempts, 7);
    assert_int_equal(e->payload_len, 8);
    assert_memory_equal(e->payload, "\0\1binary", 8);
    assert_string_equal(header(e, "trace"), "t-1");
    e = find_env(env, n, id2);
    assert_string_equal(e->key, "k-sql");
    assert_int_equal(e->max_attempts, 25);
    assert_int_equal(e->payload_len, 0);
    assert_int_equal(wait_num(s, 0, 5000, "SELECT count(*) FROM "
        "workq.outbox"), 0);
    assert_true(metric(&sch, "workq_scheduler_relayed_total ") == 2);
    proc_stop(&sch, 10000);
    free_envs(env, n);
    wq_test_consumer_close(c);
    wq_store_close(app);
    wq_store_close(s);
}

static void test_scheduler_outbox_kafka(void **st) { (void)st; outbox(K); }
static void test_scheduler_outbox_rabbitmq(void **st) { (void)st; outbox(R); }

/*
 * workq.enqueue's envelope in SQL is byte for byte what the C encoder
 * writes: decode it strictly, encode it again, compare - at every size
 * boundary of msgpack's encodings.
 */
static void
test_scheduler_enqueue_envelope_bytes(void **state)
{
    static const struct {
        int keylen, typelen, payload, nheaders, max;
    } cases[] = {
        { 1, 1, 0, 0, 1 }, { 31, 31, 31, 1, 127 }, { 32, 32, 255, 15, 128 },
        { 255, 128, 256, 16, 255 }, { 256, 5, 65535, 64, 256 },
        { 512, 7, 65536, 3, 65535 }, { 40, 9, 70000, 2, 65536 },
        { 10, 10, 1048576, 0, 1000000 },
    };
    const char *ci = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(ci);
    PGconn *conn = wq_store_conn(s);
    struct wq_buf again = WQ_BUF_INIT;
    char err[WQ_ERRLEN];

    (void)state;
    for (size_t i = 0; i < WQ_ARRAY_LEN(cases); i++) {
        struct wq_client_header h[64];
        struct wq_client_task t;
        struct wq_envelope e;
        char key[600], type[200], names[64][300], id[WQ_CLIENT_ID_LEN];
        char *payload = malloc((size_t)cases[i].payload + 1);
        const char *params[1];
        size_t blen;
        unsigned char *body;
        PGresult *r;

        memset(key, 'k', sizeof key);
        key[cases[i].keylen] = '\0';
        memset(type, 't', sizeof type);
        type[cases[i].typelen] = '\0';
        for (int p = 0; p < cases[i].payload; p++)
            payload[p] = (char)(p * 7);
        for (int k = 0; k < cases[i].nheaders; k++) {
            snprintf(names[k], sizeof names[k], "h%03d%s", k,
                k == 1 ? "-with-a-name-longer-than-thirty-two-bytes" : "");
            h[k].name = names[k];
            h[k].value = k == 0 ? "" : k == 2 ? "\xc3\xa9t\xc3\xa9" : "v";
        }
        memset(&t, 0, sizeof t);
        t.queue = "bytes";
        t.type = type;
        t.payload = payload;
        t.payload_len = (size_t)cases[i].payload;
        t.idempotency_key = key;
        t.max_attempts = cases[i].max;
        t.headers = h;
        t.nheaders = (size_t)cases[i].nheaders;
        if (wq_client_enqueue_tx(conn, &t, id, err, sizeof err) != 0)
            fail_msg("case %zu: %s", i, err);
        params[0] = id;
        r = PQexecParams(conn, "SELECT body FROM workq.outbox WHERE task_id "
            "= $1::uuid", 1, NULL, params, NULL, NULL, 1);
        assert_int_equal(PQntuples(r), 1);
        body = (unsigned char *)PQgetvalue(r, 0, 0);
        blen = (size_t)PQgetlength(r, 0, 0);
        if (wq_envelope_decode(body, blen, &e, err, sizeof err) != 0)
            fail_msg("case %zu: the SQL envelope does not decode: %s", i,
                err);
        assert_string_equal(e.key, key);
        assert_string_equal(e.type, type);
        assert_int_equal(e.payload_len, (size_t)cases[i].payload);
        assert_int_equal(e.max_attempts, (uint32_t)cases[i].max);
        assert_int_equal(e.nheaders, (size_t)cases[i].nheaders);
        assert_int_equal(e.attempt, 1);
        assert_true(e.created_at_ms > wq_clock_wall_ms() - 60000);
        wq_buf_reset(&again);
        assert_int_equal(wq_envelope_encode(&e, &again, err, sizeof err), 0);
        if (again.len != blen || memcmp(again.data, body, blen) != 0)
            fail_msg("case %zu: SQL and C encodings differ (%zu and %zu "
                "bytes)", i, blen, again.len);
        wq_envelope_free(&e);
        PQclear(r);
        free(payload);
    }
    wq_buf_free(&again);
    wq_store_close(s);
}

/* Rules, duplicates and delays of workq.enqueue and its C call. */
static void
test_scheduler_enqueue_rules(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(ci);
    PGconn *conn = wq_store_conn(s);
    struct wq_client_header dup[2] = { { "a", "1" }, { "a", "2" } };
    struct wq_client_task t;
    char id[WQ_CLIENT_ID_LEN], id2[WQ_CLIENT_ID_LEN], err[WQ_ERRLEN];
    PGresult *r;

    (void)state;
    memset(&t, 0, sizeof t);
    t.queue = "bad/q";
    t.type = "x";
    assert_int_equal(wq_client_enqueue_tx(conn, &t, id, err, sizeof err),
        WQ_EINVAL);
    assert_contains(err, "queue 'bad/q'");
    t.queue = "q.dead";
    assert_int_equal(wq_client_enqueue_tx(conn, &t, id, err, sizeof err),
        WQ_EINVAL);
    t.queue = "q";
    t.type = "";
    assert_int_equal(wq_client_enqueue_tx(conn, &t, id, err, sizeof err),
        WQ_EINVAL);
    assert_contains(err, "type must be 1..128 bytes");
    t.type = "x";
    t.headers = dup;
    t.nheaders = 2;
    assert_int_equal(wq_client_enqueue_tx(conn, &t, id, err, sizeof err),
        WQ_EINVAL);
    assert_contains(err, "given twice");
    t.headers = NULL;
    t.nheaders = 0;
    t.payload_len = WQ_PAYLOAD_MAX + 1;
    t.payload = "";
    assert_int_equal(wq_client_enqueue_tx(conn, &t, id, err, sizeof err),
        WQ_ETOOBIG);
    t.payload_len = 0;
    r = PQexec(conn, "SELECT workq.enqueue('q', 'x', headers => "
        "'{\"n\": 1}')");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22023");
    assert_contains(PQresultErrorMessage(r), "header 'n' must be a string");
    PQclear(r);

    /* a failed transaction is refused, not made worse */
    wq_test_pg_exec(s, "BEGIN");
    PQclear(PQexec(conn, "SELECT 1/0"));
    assert_int_equal(wq_client_enqueue_tx(conn, &t, id, err, sizeof err),
        WQ_ESTORE);
    assert_contains(err, "already failed");
    wq_test_pg_exec(s, "ROLLBACK");

    /* delayed: a scheduled task, stored once per key */
    t.idempotency_key = "later";
    t.delay_ms = 60000;
    assert_int_equal(wq_client_enqueue_tx(conn, &t, id, err, sizeof err), 0);
    t.delay_ms = 0;
    t.run_at_ms = wq_clock_wall_ms() + 120000;
    assert_int_equal(wq_client_enqueue_tx(conn, &t, id2, err, sizeof err), 0);
    assert_string_equal(id, id2);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'scheduled' AND run_at > now() + interval '50 s' AND "
        "run_at < now() + interval '70 s'"), 1);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.outbox"),
        0);
    /* outside a transaction block it commits by itself */
    t.run_at_ms = 0;
    t.idempotency_key = NULL;
    assert_int_equal(wq_client_enqueue_tx(conn, &t, id, err, sizeof err), 0);
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM workq.outbox "
        "WHERE task_id = '%s' AND msg_key = convert_to('%s', 'UTF8')", id,
        id), 1);
    wq_store_close(s);
}

/* ---- retention ------------------------------------------------------------------ */

/*
 * The rows of flow control, workflows and completion hooks
 * (migrations 0007-0009), for the retention test: each kind with rows
 * that must go and rows that must stay.  In queue q, the task keys
 * "sched-key" (scheduled, kept) and "run-key" (running under a live
 * lease) exist; "gone-key" has no task.
 */
static void
insert_feature_rows(wq_store *s, const char *q)
{
    insert_task(s, q, "noop", "run-key", "running", 1, 3, NULL,
        ", lease_owner, lease_expires_at, worker",
        ", 'w', now() + interval '1 day', 'w'");
    /* flow_tasks: the key of a gone task goes; of a task, and of an
     * admission (a hold, the claim to come), they stay */
    sqlf(s, "INSERT INTO workq.flow_tasks VALUES ('%s', 'gone-key', 'c', 1),"
        " ('%s', 'sched-key', 'c', 1), ('%s', 'held-key', 'c', 1)", q, q, q);
    /* holds: an old dead one goes; a fresh one and an old one whose task
     * runs under a live lease stay */
    sqlf(s, "INSERT INTO workq.flow_holds VALUES "
        "('%s', 'old-key', 'c', 'w', now() - interval '2 days'),"
        "('%s', 'held-key', 'c', 'w', now()),"
        "('%s', 'run-key', 'c', 'w', now() - interval '2 days')", q, q, q);
    /* unique windows: an ended one goes, an open one stays */
    sqlf(s, "INSERT INTO workq.unique_windows VALUES "
        "('%s', 'ended', now() - interval '2 hours', now() - interval "
        "'1 hour'), ('%s', 'open', now() - interval '2 hours', now() + "
        "interval '1 hour')", q, q);
    /* workflows: one finished 2 h ago goes (with its 2 nodes, 1 edge);
     * one finished 10 min ago, one with a node still started and an
     * open batch stay */
    sqlf(s, "INSERT INTO workq.workflows (id, kind, name, open, created_at)"
        " VALUES ('00000000-0000-7000-8000-000000000001', 'chain', 'old', "
        "false, now() - interval '3 hours'), "
        "('00000000-0000-7000-8000-000000000002', 'chain', 'recent', false, "
        "now() - interval '3 hours'), "
        "('00000000-0000-7000-8000-000000000003', 'chain', 'running', false,"
        " now() - interval '3 hours'), "
        "('00000000-0000-7000-8000-000000000004', 'batch', 'open', true, "
        "now() - interval '3 hours')");
    sqlf(s, "INSERT INTO workq.workflow_nodes (workflow_id, node, task_id, "
        "role, queue, type, max_attempts, input, run_when, waiting, state, "
        "ended_at) SELECT w, n, workq.uuid_v7(), 'task', '%s', 'noop', 1, "
        "'payload', 'success', 0, st, ended FROM (VALUES "
        "('00000000-0000-7000-8000-000000000001'::uuid, 0, 'succeeded', "
        "  now() - interval '2 hours 10 minutes'),"
        "('00000000-0000-7000-8000-000000000001', 1, 'dead', "
        "  now() - interval '2 hours'),"
        "('00000000-0000-7000-8000-000000000002', 0, 'succeeded', "
        "  now() - interval '2 hours'),"
        "('00000000-0000-7000-8000-000000000002', 1, 'succeeded', "
        "  now() - interval '10 minutes'),"
        "('00000000-0000-7000-8000-000000000003', 0, 'succeeded', "
        "  now() - interval '2 hours'),"
        "('00000000-0000-7000-8000-000000000003', 1, 'started', NULL),"
        "('00000000-0000-7000-8000-000000000004', 0, 'succeeded', "
        "  now() - interval '2 hours')) AS v(w, n, st, ended)", q);
    sqlf(s, "INSERT INTO workq.workflow_edges SELECT id, 0, 1 FROM "
        "workq.workflows WHERE kind = 'chain'");
    /* a hook still owed, its task long gone: never pruned */
    sqlf(s, "INSERT INTO workq.hook_deliveries (id, task_id, created_at, "
        "next_at, url, body) VALUES (workq.uuid_v7(), workq.uuid_v7(), "
        "now() - interval '3 days', now() + interval '1 day', "
        "'https://127.0.0.1:9/x', '{}')");
}

static void
check_feature_rows(wq_store *s, const char *q)
{
    check(wait_num(s, 2, 10000, "SELECT count(*) FROM workq.flow_tasks")
        == 2, "retention left %lld concurrency keys, want 2",
        wq_test_pg_num(s, "SELECT count(*) FROM workq.flow_tasks"));
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM "
        "workq.flow_tasks WHERE queue = '%s' AND idempotency_key IN "
        "('sched-key', 'held-key')", q), 2);
    check(wait_num(s, 2, 10000, "SELECT count(*) FROM workq.flow_holds")
        == 2, "retention left %lld holds, want 2",
        wq_test_pg_num(s, "SELECT count(*) FROM workq.flow_holds"));
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.flow_holds WHERE idempotency_key IN ('held-key', "
        "'run-key')"), 2);
    check(wait_num(s, 1, 10000, "SELECT count(*) FROM workq.unique_windows")
        == 1, "retention left %lld unique windows, want 1",
        wq_test_pg_num(s, "SELECT count(*) FROM workq.unique_windows"));
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.unique_windows WHERE idempotency_key = 'open'"), 1);
    check(wait_num(s, 3, 10000, "SELECT count(*) FROM workq.workflows")
        == 3, "retention left %lld workflows, want 3",
        wq_test_pg_num(s, "SELECT count(*) FROM workq.workflows"));
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.workflows WHERE name = 'old'"), 0);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.workflow_nodes"), 5);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.workflow_edges"), 2);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.hook_deliveries"), 1);
}

static void
test_scheduler_retention(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *qa = wq_test_unique("keep"), *qb = wq_test_unique("short");
    wq_store *s = wq_test_pg_open(ci);
    char conf[1024], old_id[40];
    struct proc sch;

    (void)state;
    snprintf(conf, sizeof conf,
        "scheduler = { retention = \"1h\"; dead_retention = \"2h\";\n"
        "    retention_interval = \"1s\"; batch_size = 2; };\n"
        "queue_policies = ( { name = \"%s\"; retention = \"30m\"; } );\n",
        qb);
#define DONE(q, state, ago) insert_task(s, q, "noop", NULL, state, 1, 3, \
    NULL, ", finished_at", ", now() - interval '" ago "'")
    snprintf(old_id, sizeof old_id, "%s", DONE(qa, "succeeded", "2 hours"));
    sqlf(s, "INSERT INTO workq.attempts (task_id, attempt, finished_at, "
        "outcome) VALUES ('%s', 1, now(), 'succeeded')", old_id);
    DONE(qa, "succeeded", "2 hours");
    DONE(qa, "succeeded", "3 hours");
    DONE(qa, "cancelled", "2 hours");
    DONE(qa, "succeeded", "10 minutes");                   /* kept */
    DONE(qb, "succeeded", "40 minutes");
    DONE(qb, "succeeded", "10 minutes");                   /* kept */
    insert_task(s, qa, "noop", NULL, "dead", 3, 3, NULL,
        ", finished_at, dead_published_at",
        ", now() - interval '3 hours', now()");
    insert_task(s, qa, "noop", NULL, "dead", 3, 3, NULL,     /* kept */
        ", finished_at, dead_published_at",
        ", now() - interval '1 hour', now()");
    insert_task(s, qa, "noop", "sched-key", "scheduled", 0, 3, /* kept */
        "now() + interval '1 day'", "", "");
    sqlf(s, "INSERT INTO workq.cron_ticks (name, tick_at) VALUES "
        "('x', now() - interval '3 days'), ('x', now() - interval '2 days')");
    sqlf(s, "INSERT INTO workq.workers (id, pid, hostname, version, "
        "heartbeat_at, stopped_at) VALUES ('gone', 1, 'h', 'v', now() - "
        "interval '2 days', now() - interval '2 days'), ('here', 2, 'h', "
        "'v', now(), NULL)");

    insert_feature_rows(s, qa);

    proc_start(&sch, "workq-scheduler", R, ci, conf, NULL, NULL);
    check(wait_num(s, 5, 20000, "SELECT count(*) FROM workq.tasks") == 5,
        "retention left %lld tasks, want 5",
        wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks"));
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM workq.tasks "
        "WHERE queue = '%s' AND state = 'succeeded'", qa), 1);
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM workq.tasks "
        "WHERE queue = '%s'", qb), 1);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state IN ('dead', 'scheduled', 'running')"), 3);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.attempts"), 0);
    assert_int_equal(wait_num(s, 1, 5000, "SELECT count(*) FROM "
        "workq.cron_ticks"), 1);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.cron_ticks"
        " WHERE tick_at > now() - interval '49 hours'"), 1);
    assert_int_equal(wait_num(s, 1, 5000, "SELECT count(*) FROM "
        "workq.workers"), 1);
    check_feature_rows(s, qa);
    /* 6 tasks (their attempt goes by cascade), a tick, a worker, a
     * concurrency key, a hold, a window, a workflow and its 2 nodes */
    assert_true(metric(&sch, "workq_scheduler_pruned_total ") >= 14);
    proc_stop(&sch, 10000);
    wq_store_close(s);
#undef DONE
}

/* ---- receipts ------------------------------------------------------------------- */

/* A receipt (workq.accepted) whose task has a row is swept; one whose
 * task waits on the broker unclaimed stays.  A range run (migration
 * 0012) goes once each of its ids has a row, and a row between its ends
 * of another origin (another rand_b) does not count for it. */
static void
test_scheduler_receipts_sweep(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("receipts");
    wq_store *s = wq_test_pg_open(ci);
    char claimed[40];
    struct proc sch;

    (void)state;
    snprintf(claimed, sizeof claimed, "%s", insert_task(s, q, "noop", NULL,
        "succeeded", 1, 3, NULL, ", finished_at", ", now()"));
    sqlf(s, "INSERT INTO workq.accepted (id, created_at, max_attempts, "
        "queue, type, idempotency_key) VALUES "
        "('%s', now(), 3, '%s', 'noop', 'a'), "
        "('0190a5f8-7c1e-7a3b-9c4d-5e6f708192a3', now(), 3, '%s', 'noop', "
        "'b')", claimed, q, q);
    /* runs: one all claimed (deleted), one half claimed (rewritten) */
    sqlf(s, "INSERT INTO workq.accepted_runs (first_id, last_id, created_at,"
        " max_attempts, queue, type, ids, next_check) VALUES"
        " ('%s', '%s', now(), 3, '%s', 'noop', uuid_send('%s'), now()),"
        " ('0190a5f8-7c1e-7a3b-9c4d-5e6f708192a4', '%s', now(), 3, '%s',"
        "  'noop', uuid_send('0190a5f8-7c1e-7a3b-9c4d-5e6f708192a4')"
        "  || uuid_send('%s'), now())",
        claimed, claimed, q, claimed, claimed, q, claimed);
    /* ranges of R1, R2, R3 (rand_b 0x10, 0x11, 0x12): R1 and R2 have
     * rows, and so has F, between R1 and R3 but of another origin */
#define R1 "0190a5f8-7c1e-7b01-8000-000000000010"
#define R2 "0190a5f8-7c1e-7b02-8000-000000000011"
#define R3 "0190a5f8-7c1e-7b03-8000-000000000012"
#define F  "0190a5f8-7c1e-7b02-8000-0000deadbeef"
    sqlf(s, "INSERT INTO workq.tasks (id, queue, type, idempotency_key,"
        " state, attempt, max_attempts, finished_at) VALUES"
        " ('" R1 "', '%s', 'noop', '" R1 "', 'succeeded', 1, 3, now()),"
        " ('" R2 "', '%s', 'noop', '" R2 "', 'succeeded', 1, 3, now()),"
        " ('" F "', '%s', 'noop', '" F "', 'succeeded', 1, 3, now())",
        q, q, q);
    sqlf(s, "INSERT INTO workq.accepted_runs (first_id, last_id, created_at,"
        " max_attempts, queue, type, ids, next_check) VALUES"
        " ('" R1 "', '" R2 "', now(), 3, '%s', 'noop', '', now()),"
        " ('" R1 "', '" R3 "', now(), 3, '%s', 'noop', '', now())", q, q);
    proc_start(&sch, "workq-scheduler", R, ci, "", NULL, NULL);
    check(wait_num(s, 1, 20000, "SELECT count(*) FROM workq.accepted") == 1,
        "%lld receipts left, want 1",
        wq_test_pg_num(s, "SELECT count(*) FROM workq.accepted"));
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM "
        "workq.accepted WHERE id = '%s'", claimed), 0);
    check(wait_num(s, 2, 20000, "SELECT count(*) FROM workq.accepted_runs")
        == 2, "%lld runs left, want 2",
        wq_test_pg_num(s, "SELECT count(*) FROM workq.accepted_runs"));
    assert_int_equal(wait_num(s, 16, 20000, "SELECT octet_length(ids) FROM "
        "workq.accepted_runs WHERE octet_length(ids) > 0"), 16);
    /* the range R1..R3 stays (R3 waits), checked again later */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.accepted_runs WHERE ids = '' AND last_id = '" R3 "'"
        " AND check_ms > 2000"), 1);
    /* R3's row: the range goes too */
    sqlf(s, "INSERT INTO workq.tasks (id, queue, type, idempotency_key,"
        " state, attempt, max_attempts, finished_at) VALUES"
        " ('" R3 "', '%s', 'noop', '" R3 "', 'succeeded', 1, 3, now())", q);
    wq_test_pg_exec(s, "UPDATE workq.accepted_runs SET next_check = now()");
    check(wait_num(s, 1, 20000, "SELECT count(*) FROM workq.accepted_runs")
        == 1, "%lld runs left, want 1",
        wq_test_pg_num(s, "SELECT count(*) FROM workq.accepted_runs"));
#undef R1
#undef R2
#undef R3
#undef F
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.accepted_runs WHERE first_id = last_id AND first_id = "
        "'0190a5f8-7c1e-7a3b-9c4d-5e6f708192a4'"), 1);
    proc_stop(&sch, 10000);
    wq_store_close(s);
}

/* ---- wakeups: NOTIFY, not polling ------------------------------------------------ */

static void
test_scheduler_idle_and_notify(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("idle");
    wq_store *s = wq_test_pg_open(ci);
    struct proc sch;
    double w0, w1;

    (void)state;
    declare_queue(R, q);
    start_scheduler(&sch, R, ci, "scheduler = { poll_interval = \"1h\"; };\n"
        "rabbitmq = { heartbeat = \"0s\"; };\n");
    usleep(1000000);
    w0 = metric(&sch, "workq_scheduler_wakeups_total ");
    usleep(3000000);
    w1 = metric(&sch, "workq_scheduler_wakeups_total ");
    check(w1 - w0 <= 1, "%g wakeups in 3 idle seconds", w1 - w0);
    /* only a notification can wake it now */
    insert_task(s, q, "noop", NULL, "scheduled", 0, 3, "now()", "", "");
    check(wait_num(s, 1, 1000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'queued'") == 1, "a due task waited for the poll interval");
    /* a timer at the next due time, also without polling */
    insert_task(s, q, "noop", NULL, "scheduled", 0, 3,
        "now() + interval '1500 ms'", "", "");
    check(wait_num(s, 2, 3000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'queued'") == 2, "a delayed task missed its time");
    proc_stop(&sch, 10000);
    wq_store_close(s);
}

/* A PostgreSQL connection killed under it: reconnects, LISTENs again. */
static void
test_scheduler_pg_reconnect(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("recon");
    wq_store *s = wq_test_pg_open(ci);
    struct proc sch;

    (void)state;
    declare_queue(R, q);
    start_scheduler(&sch, R, ci, "scheduler = { poll_interval = \"1h\"; };\n");
    assert_true(wq_test_pg_num(s, "SELECT count(pg_terminate_backend(pid)) "
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
        "pg_backend_pid()") >= 1);
    check(proc_log_wait(&sch, "reconnecting", 10000), "the lost connection "
        "went unnoticed");
    check(proc_log_wait(&sch, "connected to PostgreSQL, listening", 10000),
        "no reconnect");
    usleep(300000);
    insert_task(s, q, "noop", NULL, "scheduled", 0, 3, "now()", "", "");
    check(wait_num(s, 1, 5000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'queued'") == 1, "nothing published after the reconnect");
    proc_stop(&sch, 10000);
    wq_store_close(s);
}

/* ---- a broker that goes away ------------------------------------------------------- */

/*
 * A TCP proxy in a child process, in front of the test RabbitMQ: killing
 * it drops every connection through it and closes the port (connection
 * refused), starting it again on the same port brings the broker back,
 * without touching the shared server.
 */
static pid_t
proxy_start(int port, int upstream)
{
    struct sockaddr_in sa;
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
    pid_t pid;

    assert_true(lfd >= 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 16), 0);
    fflush(NULL);
    if ((pid = fork()) == 0) {
        struct pollfd p[65];
        int peer[65], n = 1;

        p[0].fd = lfd;
        p[0].events = POLLIN;
        for (;;) {
            if (poll(p, (nfds_t)n, -1) < 0)
                continue;
            if ((p[0].revents & POLLIN) && n + 2 <= 65) {
                int c = accept(lfd, NULL, NULL), u;

                sa.sin_port = htons((uint16_t)upstream);
                u = socket(AF_INET, SOCK_STREAM, 0);
                if (c >= 0 && u >= 0 && connect(u, (struct sockaddr *)&sa,
                    sizeof sa) == 0) {
                    p[n].fd = c;
                    p[n].events = POLLIN;
                    peer[n++] = u;
                    p[n].fd = u;
                    p[n].events = POLLIN;
                    peer[n++] = c;
                } else {
                    if (c >= 0)
                        close(c);
                    if (u >= 0)
                        close(u);
                }
            }
            for (int i = 1; i < n; i++) {
                char buf[65536];
                ssize_t r;

                if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP
                    | POLLERR)))
                    continue;
                r = read(p[i].fd, buf, sizeof buf);
                if (r <= 0 || write(peer[i], buf, (size_t)r) != r) {
                    /* one side went: close the pair */
                    for (int k = 1; k < n; k++)
                        if (p[k].fd == peer[i])
                            p[k].fd = -1;
                    close(peer[i]);
                    close(p[i].fd);
                    p[i].fd = -1;
                }
            }
        }
    }
    assert_true(pid > 0);
    close(lfd);
    return pid;
}

static int
free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void
test_scheduler_broker_outage(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("outage");
    wq_store *s = wq_test_pg_open(ci);
    struct wq_test_consumer *c;
    struct wq_envelope env[4];
    char url[128], env_url[160], *body;
    const char *extra[2] = { env_url, NULL };
    const char *amqp = WQ_TEST_AMQP_URL();
    int port = free_port(), upstream = atoi(strrchr(amqp, ':') + 1), status;
    pid_t proxy;
    struct proc sch;
    size_t n;

    (void)state;
    declare_queue(R, q);
    c = wq_test_consumer_open(R, q);
    snprintf(url, sizeof url, "amqp://guest:guest@127.0.0.1:%d", port);
    snprintf(env_url, sizeof env_url, "WORKQ_RABBITMQ_URL=%s", url);
    proxy = proxy_start(port, upstream);
    proc_start(&sch, "workq-scheduler", R, ci, conf_quick, extra, NULL);
    check(proc_log_wait(&sch, "listening on workq_scheduler", 20000),
        "the scheduler did not start");
    insert_task(s, q, "noop", "before", "scheduled", 0, 3, "now()", "", "");
    check(wait_num(s, 1, 10000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'queued'") == 1, "nothing published through the proxy");

    /* the broker goes away: the due task waits, nothing crashes */
    kill(proxy, SIGKILL);
    waitpid(proxy, &status, 0);
    insert_task(s, q, "noop", "during", "scheduled", 0, 3, "now()", "", "");
    check(proc_log_wait(&sch, "closing the broker connection", 15000),
        "the lost broker went unnoticed");
    usleep(1000000);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'scheduled'"), 1);
    body = wq_test_http_get(proc_port(&sch), "/healthz");
    assert_contains(body, "503");
    assert_contains(body, "no broker connection");
    free(body);
    assert_int_equal(proc_wait(&sch, 0), -1);

    /* it comes back: the task goes out */
    proxy = proxy_start(port, upstream);
    check(wait_num(s, 2, 40000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'queued'") == 2, "the task did not go out after the broker "
        "came back");
    n = wq_test_consumer_recv(c, env, 2, 30000);
    check(n == 2, "%zu messages, want 2", n);
    free_envs(env, n);
    proc_stop(&sch, 10000);
    kill(proxy, SIGKILL);
    waitpid(proxy, &status, 0);
    wq_test_consumer_close(c);
    wq_store_close(s);
}

/* ---- the process ------------------------------------------------------------------- */

static void
test_scheduler_health_and_stop(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    struct proc sch;
    char *body;

    (void)state;
    start_scheduler(&sch, R, ci, NULL);
    body = wq_test_http_get(proc_port(&sch), "/healthz");
    assert_contains(body, "200");
    assert_contains(body, "\"ok\"");
    free(body);
    body = wq_test_http_get(proc_port(&sch), "/metrics");
    assert_contains(body, "workq_scheduler_published_total{kind=\"retry\"} 0");
    assert_contains(body, "workq_scheduler_lag_seconds_bucket");
    assert_contains(body, "workq_scheduler_store_up 1");
    assert_contains(body, "workq_scheduler_broker_up 1");
    free(body);
    proc_stop(&sch, 5000);
    check(proc_log_wait(&sch, "stopped", 100), "no clean stop in the log");
}

/*
 * The broker's backlog of a configured queue on /metrics: N messages
 * published with no consumer show as workq_broker_waiting_messages N
 * (RabbitMQ ready count, Kafka lag of group workq.Q), refreshed every
 * scheduler.backlog_interval by the scheduler's backlog thread.  With
 * messages in the high band too, the queue's figure is the sum of its
 * bands, and workq_broker_band_waiting_messages gives each band's.
 */
static void
backlog_metrics(int kind)
{
    enum { N = 6, HIGH = 3 };
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("sched-backlog");
    char band[300];
    static char queues[200];
    const char *extra[] = { queues, "WORKQ_SCHEDULER_BACKLOG_INTERVAL=200ms",
        NULL };
    struct wq_transport_conf tc;
    char err[WQ_ERRLEN], line[300];
    wq_transport *t;
    struct proc sch;
    double v = -1;

    wq_test_forget_queue(kind, q);
    wq_test_transport_conf(kind, &tc);
    if (wq_transport_open(&tc, &t, err, sizeof err) != 0
        || wq_transport_declare(t, q, err, sizeof err) != 0)
        fail_msg("%s", err);
    snprintf(band, sizeof band, "%s.priority-high", q);
    if (wq_transport_declare(t, band, err, sizeof err) != 0)
        fail_msg("%s", err);
    for (int i = 0; i < N + HIGH; i++) {
        char key[16];

        snprintf(key, sizeof key, "k%d", i);
        if (wq_transport_publish(t, i < N ? q : band, key, strlen(key), "x",
            1, NULL, err, sizeof err) != 0)
            fail_msg("publish: %s", err);
    }
    if (wq_transport_flush(t, 30000, err, sizeof err) != 0)
        fail_msg("flush: %s", err);
    wq_transport_close(t, 5000);

    snprintf(queues, sizeof queues, "WORKQ_WORKER_QUEUES=%s", q);
    proc_start(&sch, "workq-scheduler", kind, ci, NULL, extra, NULL);
    check(proc_log_wait(&sch, "listening on workq_scheduler", 20000),
        "the scheduler did not connect to PostgreSQL");
    snprintf(line, sizeof line, "workq_broker_waiting_messages{queue=\"%s\"} ",
        q);
    for (int i = 0; i < 100 && v != N + HIGH; i++) {
        v = metric(&sch, line);
        if (v != N + HIGH)
            usleep(200000);
    }
    check(v == N + HIGH, "%s%g, want %d", line, v, N + HIGH);
    check(metric(&sch, "workq_scheduler_backlog_up ") == 1,
        "workq_scheduler_backlog_up is not 1");
    /* each band on its own */
    for (int p = 0; p < 3; p++) {
        static const char *const names[] = { "high", "normal", "low" };
        const int want[] = { HIGH, N, 0 };

        snprintf(line, sizeof line, "workq_broker_band_waiting_messages{"
            "queue=\"%s\",priority=\"%s\"} ", q, names[p]);
        v = metric(&sch, line);
        check(v == want[p], "%s%g, want %d", line, v, want[p]);
    }
    if (kind == K) {
        char *body = wq_test_http_get(proc_port(&sch), "/metrics");

        snprintf(line, sizeof line,
            "workq_broker_oldest_waiting_seconds{queue=\"%s\"} ", q);
        check(strstr(body, line) != NULL, "no %s", line);
        free(body);
    }
    proc_stop(&sch, 10000);
}

static void
test_scheduler_backlog_metrics_rabbitmq(void **state)
{
    (void)state;
    backlog_metrics(R);
}

static void
test_scheduler_backlog_metrics_kafka(void **state)
{
    (void)state;
    backlog_metrics(K);
}

/* An old schema is waited for, not a crash loop. */
static void
test_scheduler_waits_for_migrate(void **state)
{
    const char *ci = wq_test_pg_create_db();
    struct proc sch;
    char out[4096];

    (void)state;
    proc_start(&sch, "workq-scheduler", R, ci, NULL, NULL, NULL);
    check(proc_log_wait(&sch, "workq migrate", 10000), "no hint to migrate");
    assert_int_equal(proc_wait(&sch, 500), -1);
    assert_int_equal(workq_cli(ci, out, sizeof out, "migrate", NULL), 0);
    check(proc_log_wait(&sch, "listening on workq_scheduler", 20000),
        "the scheduler did not start after the migration");
    proc_stop(&sch, 5000);
}

static void
test_scheduler_usage(void **state)
{
    const char *argv[4] = { NULL, NULL, NULL, NULL };
    char out[16384], bin[512];

    (void)state;
    snprintf(bin, sizeof bin, "%s", wq_test_bin("workq-scheduler"));
    argv[0] = bin;
    argv[1] = "--help";
    assert_int_equal(wq_test_cmd(argv, NULL, NULL, out, sizeof out), 0);
    assert_contains(out, "NAME\n    workq-scheduler");
    assert_contains(out, "SYNOPSIS");
    assert_contains(out, "EXIT STATUS");
    argv[1] = "--version";
    assert_int_equal(wq_test_cmd(argv, NULL, NULL, out, sizeof out), 0);
    assert_contains(out, "workq-scheduler ");
    argv[1] = "--bogus";
    assert_int_equal(wq_test_cmd(argv, NULL, NULL, out, sizeof out), 64);
    argv[1] = "extra";
    assert_int_equal(wq_test_cmd(argv, NULL, NULL, out, sizeof out), 64);
    argv[1] = "--config";
    argv[2] = write_file("bad.conf", "scheduler = { batch_size = 0; };\n");
    assert_int_equal(wq_test_cmd(argv, NULL, NULL, out, sizeof out), 78);
    assert_contains(out, "bad.conf:1: scheduler.batch_size");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_scheduler_delayed_kafka),
    cmocka_unit_test(test_scheduler_delayed_rabbitmq),
    cmocka_unit_test(test_scheduler_priority_kafka),
    cmocka_unit_test(test_scheduler_priority_rabbitmq),
    cmocka_unit_test(test_scheduler_cron_priority_kafka),
    cmocka_unit_test(test_scheduler_cron_priority_rabbitmq),
    cmocka_unit_test(test_scheduler_leases_kafka),
    cmocka_unit_test(test_scheduler_leases_rabbitmq),
    cmocka_unit_test(test_scheduler_dead_once_kafka),
    cmocka_unit_test(test_scheduler_dead_once_rabbitmq),
    cmocka_unit_test(test_scheduler_unpublishable),
    cmocka_unit_test(test_scheduler_two_kafka),
    cmocka_unit_test(test_scheduler_two_rabbitmq),
    cmocka_unit_test(test_scheduler_cron_restart_kafka),
    cmocka_unit_test(test_scheduler_cron_restart_rabbitmq),
    cmocka_unit_test(test_scheduler_cron_catchup_window),
    cmocka_unit_test(test_scheduler_cron_config_errors),
    cmocka_unit_test(test_scheduler_outbox_kafka),
    cmocka_unit_test(test_scheduler_outbox_rabbitmq),
    cmocka_unit_test(test_scheduler_enqueue_envelope_bytes),
    cmocka_unit_test(test_scheduler_enqueue_rules),
    cmocka_unit_test(test_scheduler_retention),
    cmocka_unit_test(test_scheduler_receipts_sweep),
    cmocka_unit_test(test_scheduler_idle_and_notify),
    cmocka_unit_test(test_scheduler_pg_reconnect),
    cmocka_unit_test(test_scheduler_broker_outage),
    cmocka_unit_test(test_scheduler_health_and_stop),
    cmocka_unit_test(test_scheduler_backlog_metrics_rabbitmq),
    cmocka_unit_test(test_scheduler_backlog_metrics_kafka),
    cmocka_unit_test(test_scheduler_waits_for_migrate),
    cmocka_unit_test(test_scheduler_usage),
};

WQ_TEST_MAIN("scheduler", tests)

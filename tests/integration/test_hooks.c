/*
 * test_hooks.c - completion hooks (issue 18, migration 0009,
 * scheduler/hooks.c) through the real binaries on both transports: a
 * workq-worker runs the tasks, a workq-scheduler POSTs the hooks to
 * tests/http_receiver.py (HTTPS with the test's own CA, checking every
 * signature), and the test reads the receiver's log and the database.
 *
 *   - a task's own hook (header workq-hook) and a queue's (queue_policies
 *     hook_url) are POSTed once the task succeeded or died, signed, with
 *     the outcome in the body and the delivery id in X-Workq-Delivery;
 *     a task without a hook writes no delivery row;
 *   - receiver down: the task's outcome is recorded all the same, the
 *     delivery fails and waits; the scheduler is killed (-9), the
 *     receiver comes back on the same port, a new scheduler delivers it
 *     with the same delivery id;
 *   - the scheduler killed (-9) while the receiver holds a POST: the next
 *     scheduler sends it again, same delivery id, and it is delivered;
 *   - a receiver that hangs holds only the hooks' thread: a delayed task
 *     due meanwhile runs on time, the hook is delivered on its next try;
 *     the thread's own connection lost, it reconnects and delivers on; a
 *     stop waits for a hanging POST, a second SIGTERM cuts it short and
 *     the next scheduler delivers it.
 *
 * test_hooks_migration runs migration 0009 on a populated database of
 * version 6 and checks the trigger: one row per ending of a task with a
 * hook, none without, and an outcome that commits even when its hook
 * cannot be recorded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_test.h"
#include "clock.h"
#include "migrate.h"

#define K WQ_TRANSPORT_KAFKA
#define R WQ_TRANSPORT_RABBITMQ
#define PYTHON "/usr/bin/python3"

static void
declare(int kind, const char *queue)
{
    struct wq_transport_conf tc;
    char err[WQ_ERRLEN];
    wq_transport *t;

    wq_test_transport_conf(kind, &tc);
    if (wq_transport_open(&tc, &t, err, sizeof err) != 0)
        fail_msg("cannot reach the %s test broker: %s (tests/services/ctl "
            "start)", wq_test_kind_name(kind), err);
    if (wq_transport_declare(t, queue, err, sizeof err) != 0)
        fail_msg("declare %s: %s", queue, err);
    wq_transport_close(t, 5000);
    wq_test_forget_queue(kind, queue);
}

/* Publishes one task as a producer does, with a hook header when `hook`
 * is not NULL and a traceparent. */
static void
submit(int kind, const char *queue, const char *type, const char *key,
    const char *hook, uint32_t max_attempts)
{
    struct wq_header h[2] = {
        { "traceparent",
          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
        { WQ_HOOK_HEADER, (char *)hook },
    };
    struct wq_transport_conf tc;
    struct wq_buf buf = WQ_BUF_INIT;
    struct wq_envelope e;
    char err[WQ_ERRLEN];
    wq_transport *t;

    if (wq_envelope_init(&e, queue, type, key, "x", 1, err, sizeof err) != 0)
        fail_msg("%s", err);
    e.max_attempts = max_attempts;
    e.headers = h;
    e.nheaders = hook != NULL ? 2 : 1;
    assert_int_equal(wq_envelope_encode(&e, &buf, err, sizeof err), 0);
    e.headers = NULL;
    e.nheaders = 0;
    wq_test_transport_conf(kind, &tc);
    assert_int_equal(wq_transport_open(&tc, &t, err, sizeof err), 0);
    if (wq_transport_publish(t, queue, e.key, strlen(e.key), buf.data,
        buf.len, NULL, err, sizeof err) != 0
        || wq_transport_flush(t, 30000, err, sizeof err) != 0)
        fail_msg("publish: %s", err);
    wq_transport_close(t, 5000);
    wq_buf_free(&buf);
    wq_envelope_free(&e);
}

/* ---- the receiver ---------------------------------------------------------- */

struct receiver {
    pid_t pid;
    int port;
    char out[300], log[300], cert[320], key[320], ca[320];
};

static struct receiver *receiver_;

static void
receiver_kill(struct receiver *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
}

static void
receiver_atexit(void)
{
    if (receiver_ != NULL)
        receiver_kill(receiver_);
}

/* Starts the receiver on r->port (0: a free one, then r->port is set). */
static void
receiver_start(struct receiver *r)
{
    const char *argv[8];
    char port[16];
    int got = 0;

    snprintf(port, sizeof port, "%d", r->port);
    argv[0] = PYTHON;
    argv[1] = WQ_SOURCE_DIR "/tests/http_receiver.py";
    argv[2] = r->cert;
    argv[3] = r->key;
    argv[4] = "s3cret";
    argv[5] = r->log;
    argv[6] = port;
    argv[7] = NULL;
    if (unlink(r->out) != 0)
        (void)0;
    r->pid = wq_test_spawn(argv, NULL, NULL, r->out);
    for (int i = 0; i < 500 && got == 0; i++) {
        char *text = wq_test_read_file(r->out), *p = strstr(text, "PORT ");

        got = p != NULL ? atoi(p + 5) : 0;
        free(text);
        if (got == 0)
            usleep(20000);
    }
    check(got > 0, "the receiver did not start");
    r->port = got;
}

static void
receiver_init(struct receiver *r)
{
    const char *dir = getenv("WQ_TEST_TMPDIR");
    char tls[300], cmd[600];

    memset(r, 0, sizeof *r);
    snprintf(tls, sizeof tls, "%s/tls", dir);
    snprintf(cmd, sizeof cmd, "sh %s/tests/services/mkcerts.sh %s",
        WQ_SOURCE_DIR, tls);
    assert_int_equal(system(cmd), 0);
    snprintf(r->cert, sizeof r->cert, "%s/server.pem", tls);
    snprintf(r->key, sizeof r->key, "%s/server.key", tls);
    snprintf(r->ca, sizeof r->ca, "%s/ca.pem", tls);
    snprintf(r->log, sizeof r->log, "%s/requests.jsonl", dir);
    snprintf(r->out, sizeof r->out, "%s/receiver.out", dir);
    receiver_ = r;
    atexit(receiver_atexit);
}

/* Lines of the receiver's log that contain every one of the needles
 * (NULL-terminated). */
static int
lines_with(const struct receiver *r, ...)
{
    char *text = wq_test_read_file(r->log), *line = text, *nl;
    int n = 0;

    for (; line != NULL && *line != '\0'; line = nl != NULL ? nl + 1 : NULL) {
        const char *needle;
        int all = 1;
        va_list ap;

        if ((nl = strchr(line, '\n')) != NULL)
            *nl = '\0';
        va_start(ap, r);
        while ((needle = va_arg(ap, const char *)) != NULL)
            all &= strstr(line, needle) != NULL;
        va_end(ap);
        n += all;
    }
    free(text);
    return n;
}

static int
wait_lines(const struct receiver *r, int want, int timeout_ms,
    const char *a, const char *b, const char *c)
{
    int n = 0;

    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        if ((n = lines_with(r, a, b, c, (const char *)NULL)) >= want)
            return n;
        usleep(50000);
    }
    return n;
}

/* ---- the flow ---------------------------------------------------------------- */

static void
hooks_flow(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    char q[64], q2[64], conf[2048], url[128], needle[200], id[40], d2[40],
        d3[40];
    struct receiver rcv;
    struct proc w, sch;
    wq_store *s = wq_test_pg_open(ci);

    snprintf(q, sizeof q, "%s", wq_test_unique("hooks"));
    snprintf(q2, sizeof q2, "%s", wq_test_unique("hookq"));
    declare(kind, q);
    declare(kind, q2);
    receiver_init(&rcv);
    receiver_start(&rcv);
    snprintf(conf, sizeof conf,
        "worker = { lease = \"5s\"; queues = [\"%s\", \"%s\"]; };\n"
        "hooks = { secret = \"s3cret\"; tls_ca = \"%s\"; timeout = \"5s\";\n"
        "    backoff_base = \"200ms\"; backoff_cap = \"500ms\"; };\n"
        "queue_policies = (\n"
        "  { name = \"%s\"; max_attempts = 1;\n"
        "    hook_url = \"https://127.0.0.1:%d/queue\"; },\n"
        "  { name = \"*\"; max_attempts = 1; } );\n",
        q, q2, rcv.ca, q2, rcv.port);
    proc_start(&sch, "workq-scheduler", kind, ci, conf, NULL, NULL);
    proc_start(&w, "workq-worker", kind, ci, conf, NULL, NULL);

    /* 1. the task's own hook, on success and on death; the queue's; none */
    snprintf(url, sizeof url, "https://127.0.0.1:%d/task", rcv.port);
    submit(kind, q, "noop", "ok1", url, 1);
    submit(kind, q, "fail", "dead1", url, 1);
    submit(kind, q, "noop", "nohook", NULL, 1);
    submit(kind, q2, "noop", "qh", NULL, 1);
    check(wait_lines(&rcv, 3, 60000, "\"status\": 200", "\"sig_ok\": true",
        "task.ended") >= 3, "3 hooks were not delivered");
    check(wait_num(s, 0, 10000, "SELECT count(*) FROM "
        "workq.hook_deliveries") == 0, "delivered hooks left rows");
    assert_int_equal(lines_with(&rcv, "\"path\": \"/task\"",
        "\\\"idempotency_key\\\": \\\"ok1\\\"",
        "\\\"state\\\": \\\"succeeded\\\"", "traceparent\\\": \\\"00-4bf9",
        (const char *)NULL), 1);
    assert_int_equal(lines_with(&rcv, "\"path\": \"/task\"",
        "\\\"idempotency_key\\\": \\\"dead1\\\"",
        "\\\"state\\\": \\\"dead\\\"", "\\\"error\\\": \\\"", (const char *)NULL),
        1);
    assert_int_equal(lines_with(&rcv, "\"path\": \"/queue\"",
        "\\\"idempotency_key\\\": \\\"qh\\\"", (const char *)NULL), 1);
    assert_int_equal(lines_with(&rcv, "nohook", (const char *)NULL), 0);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE idempotency_key = 'nohook' AND state = 'succeeded'"), 1);
    /* the header names the delivery in the body */
    snprintf(id, sizeof id, "%s", textf(s, "SELECT id::text FROM "
        "workq.tasks WHERE idempotency_key = 'ok1'"));
    {
        char *text = wq_test_read_file(rcv.log), *p, dv[40];

        p = strstr(text, "\"X-Workq-Delivery\": \"");
        assert_non_null(p);
        snprintf(dv, sizeof dv, "%.36s", p + strlen("\"X-Workq-Delivery\": \""));
        free(text);
        snprintf(needle, sizeof needle, "\\\"delivery_id\\\": \\\"%s\\\"", dv);
        assert_int_equal(lines_with(&rcv, needle, (const char *)NULL), 1);
    }

    /* 2. receiver down: the outcome stands, the hook waits; the scheduler
     * is killed; receiver and scheduler come back: same delivery id */
    receiver_kill(&rcv);
    snprintf(url, sizeof url, "https://127.0.0.1:%d/task2", rcv.port);
    submit(kind, q, "noop", "ok2", url, 1);
    check(wait_num(s, 1, 60000, "SELECT count(*) FROM workq.hook_deliveries "
        "d JOIN workq.tasks t ON t.id = d.task_id WHERE t.idempotency_key = "
        "'ok2' AND t.state = 'succeeded' AND d.attempts >= 2 AND "
        "d.last_error IS NOT NULL") == 1, "the hook of ok2 did not fail");
    snprintf(d2, sizeof d2, "%s", textf(s, "SELECT id::text FROM "
        "workq.hook_deliveries"));
    proc_kill9(&sch);
    receiver_start(&rcv);
    proc_start(&sch, "workq-scheduler", kind, ci, conf, NULL, NULL);
    snprintf(needle, sizeof needle, "\"X-Workq-Delivery\": \"%s\"", d2);
    check(wait_lines(&rcv, 1, 30000, needle, "\"path\": \"/task2\"",
        "\"status\": 200") == 1, "ok2's hook was not delivered");
    assert_int_equal(lines_with(&rcv, "\"path\": \"/task2\"",
        (const char *)NULL), 1);
    check(wait_num(s, 0, 10000, "SELECT count(*) FROM "
        "workq.hook_deliveries") == 0, "ok2's delivery row stayed");
    /* retried: the POST that got through was not the first */
    assert_int_equal(lines_with(&rcv, needle, "\"X-Workq-Attempt\": \"1\"",
        (const char *)NULL), 0);

    /* 3. the scheduler killed while the receiver holds the POST */
    snprintf(url, sizeof url, "https://127.0.0.1:%d/slow", rcv.port);
    submit(kind, q, "noop", "ok3", url, 1);
    check(wait_lines(&rcv, 1, 60000, "\"path\": \"/slow\"", "\"status\": 0",
        "task.ended") == 1, "ok3's hook was not sent");
    proc_kill9(&sch);
    snprintf(d3, sizeof d3, "%s", textf(s, "SELECT id::text FROM "
        "workq.hook_deliveries"));
    snprintf(needle, sizeof needle, "\"X-Workq-Delivery\": \"%s\"", d3);
    assert_int_equal(lines_with(&rcv, needle, "\"status\": 0",
        (const char *)NULL), 1);
    proc_start(&sch, "workq-scheduler", kind, ci, conf, NULL, NULL);
    check(wait_lines(&rcv, 2, 30000, needle, "\"status\": 0",
        "\"path\": \"/slow\"") == 2, "ok3's hook was not sent again");
    check(wait_num(s, 0, 30000, "SELECT count(*) FROM "
        "workq.hook_deliveries") == 0, "ok3's hook was not delivered");
    /* every request signed, every task as its handler left it */
    assert_int_equal(lines_with(&rcv, "\"sig_ok\": false", (const char *)NULL),
        0);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'succeeded'"), 5);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'dead'"), 1);
    check(metric(&sch, "workq_scheduler_hooks_total{result=\"delivered\"} ")
        >= 1, "no delivery counted");

    proc_stop(&w, 30000);
    proc_stop(&sch, 30000);
    receiver_kill(&rcv);
    wq_store_close(s);
}

/* ---- a hanging receiver ------------------------------------------------------ */

/*
 * A receiver that holds the POST without answering (for less than
 * hooks.timeout) holds the hooks' thread only: a delayed task that
 * becomes due meanwhile is published and run on time, and the hook is
 * delivered once the receiver answers again (its next try).
 */
static void
hooks_hang(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    char q[64], conf[2048], url[128];
    struct receiver rcv;
    struct proc w, sch;
    wq_store *s = wq_test_pg_open(ci);
    uint64_t t0, ms;

    snprintf(q, sizeof q, "%s", wq_test_unique("hookhang"));
    declare(kind, q);
    receiver_init(&rcv);
    receiver_start(&rcv);
    snprintf(conf, sizeof conf,
        "worker = { lease = \"5s\"; queues = [\"%s\"]; };\n"
        "scheduler = { poll_interval = \"1s\"; };\n"
        "hooks = { secret = \"s3cret\"; tls_ca = \"%s\"; timeout = \"12s\";\n"
        "    backoff_base = \"200ms\"; backoff_cap = \"500ms\"; };\n"
        "queue_policies = ( { name = \"*\"; max_attempts = 1; } );\n",
        q, rcv.ca);
    proc_start(&sch, "workq-scheduler", kind, ci, conf, NULL, NULL);
    proc_start(&w, "workq-worker", kind, ci, conf, NULL, NULL);

    snprintf(url, sizeof url, "https://127.0.0.1:%d/hangonce", rcv.port);
    submit(kind, q, "noop", "hung", url, 1);
    check(wait_lines(&rcv, 1, 60000, "\"path\": \"/hangonce\"",
        "\"status\": 0", "task.ended") == 1, "the hook was not sent");

    /* the receiver holds it; a delayed task due in 1 s runs on time */
    t0 = wq_clock_mono_ns();
    insert_task(s, q, "noop", "later", "scheduled", 0, 1,
        "now() + interval '1 second'", "", "");
    check(wait_num(s, 1, 6000, "SELECT count(*) FROM workq.tasks WHERE "
        "idempotency_key = 'later' AND state = 'succeeded'") == 1,
        "the delayed task did not run within 6 s while the hook hung");
    ms = (wq_clock_mono_ns() - t0) / 1000000u;
    print_message("delayed task due in 1 s ran after %llu ms, the hook "
        "held\n", (unsigned long long)ms);
    /* ... while the POST was still held */
    assert_int_equal(lines_with(&rcv, "\"path\": \"/hangonce\"",
        "\"status\": 200", (const char *)NULL), 0);

    /* the receiver answers the next try: delivered, the row gone */
    check(wait_lines(&rcv, 1, 40000, "\"path\": \"/hangonce\"",
        "\"status\": 200", "task.ended") == 1,
        "the hook was not delivered after the receiver recovered");
    check(wait_num(s, 0, 10000, "SELECT count(*) FROM "
        "workq.hook_deliveries") == 0, "the delivered hook left its row");
    assert_int_equal(lines_with(&rcv, "\"path\": \"/hangonce\"",
        "\"X-Workq-Attempt\": \"2\"", "\"status\": 200",
        (const char *)NULL), 1);
    check(metric(&sch, "workq_scheduler_hooks_total{result=\"failed\"} ")
        >= 1, "the timed-out POST was not counted failed");
    check(metric(&sch, "workq_scheduler_hooks_total{result=\"delivered\"} ")
        >= 1, "no delivery counted");

    /* the hooks' own connection lost: it reconnects and delivers on */
    assert_true(wq_test_pg_num(s, "SELECT count(pg_terminate_backend(pid)) "
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
        "pg_backend_pid()") >= 2);
    check(proc_log_wait(&sch, "hooks: PostgreSQL", 10000), "the hooks "
        "thread did not notice its lost connection");
    snprintf(url, sizeof url, "https://127.0.0.1:%d/after", rcv.port);
    submit(kind, q, "noop", "after", url, 1);
    check(wait_lines(&rcv, 1, 60000, "\"path\": \"/after\"",
        "\"status\": 200", "task.ended") == 1,
        "no hook delivered after the connections were lost");
    check(wait_num(s, 0, 10000, "SELECT count(*) FROM "
        "workq.hook_deliveries") == 0, "the hook after left its row");

    /* a stop while a POST hangs: the first SIGTERM waits for it (up to
     * hooks.timeout), a second cuts it short; the row stays, and the
     * next scheduler delivers it */
    snprintf(url, sizeof url, "https://127.0.0.1:%d/hangonce-stop",
        rcv.port);
    submit(kind, q, "noop", "stop", url, 1);
    check(wait_lines(&rcv, 1, 60000, "\"path\": \"/hangonce-stop\"",
        "\"status\": 0", "task.ended") == 1, "the last hook was not sent");
    kill(sch.pid, SIGTERM);
    check(proc_wait(&sch, 1500) == -1, "the stop did not wait for the "
        "POST under way");
    t0 = wq_clock_mono_ns();
    kill(sch.pid, SIGTERM);
    check(proc_wait(&sch, 5000) == 0, "a second SIGTERM did not stop the "
        "scheduler cleanly: %d", sch.status);
    ms = (wq_clock_mono_ns() - t0) / 1000000u;
    check(ms < 3000, "the second SIGTERM took %llu ms",
        (unsigned long long)ms);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.hook_deliveries"), 1);
    proc_start(&sch, "workq-scheduler", kind, ci, conf, NULL, NULL);
    check(wait_lines(&rcv, 1, 30000, "\"path\": \"/hangonce-stop\"",
        "\"status\": 200", "task.ended") == 1,
        "the hook cut short by the stop was not delivered later");
    check(wait_num(s, 0, 10000, "SELECT count(*) FROM "
        "workq.hook_deliveries") == 0, "the last hook left its row");

    proc_stop(&w, 30000);
    proc_stop(&sch, 30000);
    receiver_kill(&rcv);
    wq_store_close(s);
}

static void
test_hooks_hang_kafka(void **state)
{
    (void)state;
    hooks_hang(K);
}

static void
test_hooks_hang_rabbitmq(void **state)
{
    (void)state;
    hooks_hang(R);
}

static void
test_hooks_kafka(void **state)
{
    (void)state;
    hooks_flow(K);
}

static void
test_hooks_rabbitmq(void **state)
{
    (void)state;
    hooks_flow(R);
}

/* ---- migration 0009 on a populated database -------------------------------- */

static void
test_hooks_migration(void **state)
{
    const char *ci = wq_test_pg_create_db();
    wq_store *s = wq_test_pg_open(ci);
    char err[WQ_ERRLEN], longurl[3100];
    int from = -1, to = -1;

    (void)state;
    if (wq_migrate_to(s, 6, NULL, NULL, err, sizeof err) != 0)
        fail_msg("migrate to 6: %s", err);
    memset(longurl, 'a', sizeof longurl - 1);
    longurl[sizeof longurl - 1] = '\0';
    memcpy(longurl, "https://", 8);
    sqlf(s, "INSERT INTO workq.tasks (id, queue, type, idempotency_key, "
        "state, attempt, max_attempts, started_at, lease_owner, "
        "lease_expires_at, worker, headers) VALUES "
        "(workq.uuid_v7(), 'mq', 'noop', 'with', 'running', 1, 3, now(), "
        "'w', now() + interval '1 h', 'w', "
        "'{\"workq-hook\": \"https://example.com/h\"}'), "
        "(workq.uuid_v7(), 'mq', 'noop', 'without', 'running', 1, 3, now(), "
        "'w', now() + interval '1 h', 'w', '{}'), "
        "(workq.uuid_v7(), 'mq', 'noop', 'toolong', 'running', 1, 3, now(), "
        "'w', now() + interval '1 h', 'w', "
        "jsonb_build_object('workq-hook', '%s'))", longurl);
    if (wq_migrate_run(s, &from, &to, err, sizeof err) != 0)
        fail_msg("migrate: %s", err);
    assert_int_equal(from, 6);
    assert_int_equal(to, wq_migrate_latest());
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks"),
        3);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.hook_deliveries"), 0);

    /* the outcomes, as the worker records them */
    sqlf(s, "UPDATE workq.tasks SET state = 'succeeded', finished_at = "
        "now(), lease_owner = NULL, lease_expires_at = NULL, result = "
        "'\\x6869' WHERE queue = 'mq'");
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'succeeded'"), 3);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.hook_deliveries"), 1);
    assert_string_equal(textf(s, "SELECT d.url || ' ' || (d.body::jsonb->>"
        "'state') || ' ' || (d.body::jsonb->>'result_base64') || ' ' || "
        "(d.body::jsonb->>'delivery_id' = d.id::text) || ' ' || "
        "(d.task_id = t.id) FROM workq.hook_deliveries d, workq.tasks t "
        "WHERE t.idempotency_key = 'with'"),
        "https://example.com/h succeeded aGk= true true");
    /* an update that leaves the state alone writes no second row */
    sqlf(s, "UPDATE workq.tasks SET state = 'succeeded', updated_at = now() "
        "WHERE queue = 'mq'");
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.hook_deliveries"), 1);
    /* a new ending (a replayed task dies) is a new delivery */
    sqlf(s, "UPDATE workq.tasks SET state = 'dead', last_error = 'boom' "
        "WHERE idempotency_key = 'with'");
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.hook_deliveries WHERE body::jsonb->>'state' = 'dead' AND "
        "body::jsonb->>'error' = 'boom'"), 1);

    /* progress, as the worker writes it, read by `workq status` */
    sqlf(s, "UPDATE workq.tasks SET progress = 40, progress_message = "
        "'resized 4 of 10', progress_at = now() WHERE idempotency_key = "
        "'without'");
    {
        char id[40], out[8192];

        snprintf(id, sizeof id, "%s", textf(s, "SELECT id::text FROM "
            "workq.tasks WHERE idempotency_key = 'without'"));
        assert_int_equal(workq_cli(ci, out, sizeof out, "status", id,
            (const char *)NULL), 0);
        assert_contains(out, "progress    40% resized 4 of 10 (reported ");
        assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "status",
            id, (const char *)NULL), 0);
        assert_contains(out, "\"progress\":{");
        assert_contains(out, "\"percent\":40");
        assert_contains(out, "\"message\":\"resized 4 of 10\"");
        snprintf(id, sizeof id, "%s", textf(s, "SELECT id::text FROM "
            "workq.tasks WHERE idempotency_key = 'with'"));
        assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "status",
            id, (const char *)NULL), 0);
        assert_contains(out, "\"progress\":null");
    }
    /* the CHECK holds for new values */
    assert_int_equal(wq_store_exec(s, "UPDATE workq.tasks SET progress = "
        "101 WHERE idempotency_key = 'with'", err, sizeof err), WQ_EINVAL);
    wq_store_close(s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_hooks_migration),
    cmocka_unit_test(test_hooks_kafka),
    cmocka_unit_test(test_hooks_rabbitmq),
    cmocka_unit_test(test_hooks_hang_kafka),
    cmocka_unit_test(test_hooks_hang_rabbitmq),
};

WQ_TEST_MAIN("hooks", tests)

/*
 * test_worker_http.c - the http handler kind end to end: a real
 * workq-worker POSTs tasks to tests/http_receiver.py, an HTTPS receiver
 * with a certificate of the test's own CA (tests/services/mkcerts.sh)
 * that checks each request's signature as a service should, answers as
 * each task's payload says, and logs what it got.  Tasks are published
 * with the transport API, on each transport (one case each); outcomes
 * are read from a fresh PostgreSQL database.  No scheduler runs, so a retryable failure stays
 * in retry_wait after its first attempt, where its run_at shows the
 * Retry-After.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sched_test.h"

#define PYTHON "/usr/bin/python3"
#define NOK    20

/* Static: proc_kill_all reaches them at exit. */
static struct proc receiver, worker;

/* The receiver's port from its first line, 0 while it has none. */
static int
receiver_port(void)
{
    char *out = proc_log(&receiver), *p = strstr(out, "PORT ");
    int port = p != NULL ? atoi(p + 5) : 0;

    free(out);
    return port;
}

static void
publish(wq_transport *t, struct wq_buf *buf, const char *queue,
    const char *type, const char *key, const char *payload, int trace)
{
    struct wq_header h = { "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" };
    struct wq_envelope e;
    char err[WQ_ERRLEN];

    if (wq_envelope_init(&e, queue, type, key, payload, strlen(payload),
        err, sizeof err) != 0)
        fail_msg("%s", err);
    if (trace) {
        e.headers = &h;
        e.nheaders = 1;
    }
    wq_buf_reset(buf);
    if (wq_envelope_encode(&e, buf, err, sizeof err) != 0
        || wq_transport_publish(t, queue, key, strlen(key), buf->data,
            buf->len, NULL, err, sizeof err) != 0)
        fail_msg("publish: %s", err);
    e.headers = NULL;
    e.nheaders = 0;
    wq_envelope_free(&e);
}

static long long WQ_PRINTFLIKE(2, 3)
num(wq_store *s, const char *fmt, ...)
{
    va_list ap;
    char sql[1024];

    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return wq_test_pg_num(s, sql);
}

static void
http_handler(int kind)
{
    static int atexit_done;
    const char *ci = wq_test_pg_create_migrated_db();
    const char *tmp = getenv("WQ_TEST_TMPDIR");
    const char *q = wq_test_queue(kind, "http");
    char dir[200], tls[300], cert[320], key[320], ca[320], other[320], rlog[300];
    char conf[2048], cmd[600], err[WQ_ERRLEN], k[64], p[64];
    const char *argv[7];
    const char *wargs[] = { "--queue", q, "--concurrency", "2", NULL };
    struct wq_transport_conf tc;
    struct wq_buf buf = WQ_BUF_INIT;
    wq_store *s = wq_test_pg_open(ci);
    wq_transport *t;
    char *text;
    int port;

    if (!atexit_done++)
        atexit(proc_kill_all);
    /* a folder per case: the receiver's log and certificates */
    snprintf(dir, sizeof dir, "%s/%s", tmp, wq_test_kind_name(kind));
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(tls, sizeof tls, "%s/tls", dir);
    snprintf(cmd, sizeof cmd, "sh %s/tests/services/mkcerts.sh %s",
        WQ_SOURCE_DIR, tls);
    assert_int_equal(system(cmd), 0);
    snprintf(cert, sizeof cert, "%s/server.pem", tls);
    snprintf(key, sizeof key, "%s/server.key", tls);
    snprintf(ca, sizeof ca, "%s/ca.pem", tls);
    snprintf(other, sizeof other, "%s/other-ca.pem", tls);
    snprintf(rlog, sizeof rlog, "%s/requests.jsonl", dir);
    argv[0] = PYTHON;
    argv[1] = WQ_SOURCE_DIR "/tests/http_receiver.py";
    argv[2] = cert;
    argv[3] = key;
    argv[4] = "s3cret";
    argv[5] = rlog;
    argv[6] = NULL;
    proc_spawn(&receiver, "receiver", argv, NULL, NULL);
    check(wq_test_waited((port = receiver_port()) > 0, 10000),
        "the receiver did not start");

    /* everything on the queue before the worker starts */
    wq_test_transport_conf(kind, &tc);
    if (wq_transport_open(&tc, &t, err, sizeof err) != 0
        || wq_transport_declare(t, q, err, sizeof err) != 0)
        fail_msg("broker: %s", err);
    for (int i = 0; i < NOK; i++) {
        snprintf(k, sizeof k, "ok-%d", i);
        snprintf(p, sizeof p, "ok:%d", i);
        publish(t, &buf, q, "push", k, p, i == 0);
    }
    publish(t, &buf, q, "push", "e404", "status:404", 0);
    publish(t, &buf, q, "push", "e302", "status:302", 0);
    publish(t, &buf, q, "push", "e500", "status:500", 0);
    publish(t, &buf, q, "push", "e408", "status:408", 0);
    publish(t, &buf, q, "push", "e429", "status:429:ra=120", 0);
    publish(t, &buf, q, "push", "e503", "status:503:ra=300", 0);
    publish(t, &buf, q, "push", "slow", "slow", 0);
    publish(t, &buf, q, "push", "hang", "hang", 0);
    publish(t, &buf, q, "push", "cut", "cut", 0);
    publish(t, &buf, q, "push-badca", "badca", "ok:x", 0);
    publish(t, &buf, q, "push-nosig", "nosig", "ok:y", 0);
    if (wq_transport_flush(t, 30000, err, sizeof err) != 0)
        fail_msg("flush: %s", err);
    wq_transport_close(t, 5000);
    wq_buf_free(&buf);

    snprintf(conf, sizeof conf,
        "handlers = (\n"
        "  { type = \"push\"; kind = \"http\"; url = "
        "\"https://127.0.0.1:%d/task\"; secret = \"s3cret\"; tls_ca = "
        "\"%s\"; timeout = \"2s\"; },\n"
        "  { type = \"push-badca\"; kind = \"http\"; url = "
        "\"https://127.0.0.1:%d/task\"; secret = \"s3cret\"; tls_ca = "
        "\"%s\"; timeout = \"2s\"; },\n"
        "  { type = \"push-nosig\"; kind = \"http\"; url = "
        "\"https://localhost:%d/task\"; tls_ca = \"%s\"; timeout = "
        "\"2s\"; }\n"
        ");\n", port, ca, port, other, port, ca);
    proc_start(&worker, "workq-worker", kind, ci, conf, NULL, wargs);

    /* every task has had its first attempt */
    check(wq_test_waited(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.attempt_history WHERE outcome IS NOT NULL") >= NOK + 11, 60000),
        "not every task had an attempt");
    proc_stop(&worker, 30000);

    /* 2xx: succeeded, the answer's body is the result */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE idempotency_key LIKE 'ok-%' AND state = 'succeeded' AND "
        "convert_from(result, 'UTF8') = 'done:' || convert_from(payload, "
        "'UTF8')"), NOK);
    assert_int_equal(num(s, "SELECT count(*) FROM workq.tasks WHERE "
        "idempotency_key = '%s' AND state = 'succeeded'", "slow"), 1);
    /* 4xx other than 408 and 429, and a redirect: dead, with status and
     * the start of the body */
    assert_int_equal(num(s, "SELECT count(*) FROM workq.tasks WHERE "
        "idempotency_key = '%s' AND state = 'dead' AND last_error LIKE "
        "'%%HTTP 404: refused by receiver%%'", "e404"), 1);
    assert_int_equal(num(s, "SELECT count(*) FROM workq.tasks WHERE "
        "idempotency_key = '%s' AND state = 'dead' AND last_error LIKE "
        "'%%HTTP 302 (a redirect, not followed%%'", "e302"), 1);
    /* 408, 429, 5xx: retried; Retry-After sets the next attempt's time
     * (the queue's first backoff is 15 s at most) */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE idempotency_key IN ('e500', 'e408', 'e429', 'e503') AND "
        "state = 'retry_wait' AND attempt = 1"), 4);
    assert_int_equal(num(s, "SELECT count(*) FROM workq.tasks WHERE "
        "idempotency_key = '%s' AND run_at > now() + interval '100 s' AND "
        "run_at < now() + interval '121 s'", "e429"), 1);
    assert_int_equal(num(s, "SELECT count(*) FROM workq.tasks WHERE "
        "idempotency_key = '%s' AND run_at > now() + interval '280 s'",
        "e503"), 1);
    assert_int_equal(num(s, "SELECT count(*) FROM workq.tasks WHERE "
        "idempotency_key = '%s' AND run_at < now() + interval '16 s'",
        "e500"), 1);
    /* a receiver that hangs: the attempt times out, to be retried */
    assert_int_equal(num(s, "SELECT count(*) FROM workq.attempt_history a JOIN "
        "workq.tasks t ON t.id = a.task_id WHERE t.idempotency_key = '%s' "
        "AND a.outcome = 'timeout' AND t.state = 'retry_wait'", "hang"), 1);
    /* one that closes mid-body: failed, retried */
    assert_int_equal(num(s, "SELECT count(*) FROM workq.attempt_history a JOIN "
        "workq.tasks t ON t.id = a.task_id WHERE t.idempotency_key = '%s' "
        "AND a.outcome = 'failed' AND t.state = 'retry_wait' AND "
        "t.last_error LIKE '%%POST https://%%'", "cut"), 1);
    /* a receiver whose certificate the CA does not sign: never reached */
    assert_int_equal(num(s, "SELECT count(*) FROM workq.tasks WHERE "
        "idempotency_key = '%s' AND state = 'retry_wait' AND last_error "
        "ILIKE '%%certificate%%'", "badca"), 1);
    /* no secret, no signature: the receiver refuses it (401, for good) */
    assert_int_equal(num(s, "SELECT count(*) FROM workq.tasks WHERE "
        "idempotency_key = '%s' AND state = 'dead' AND last_error LIKE "
        "'%%HTTP 401%%'", "nosig"), 1);

    /* what the receiver saw: signed requests with the task's headers,
     * over a few kept-alive connections */
    text = wq_test_read_file(rlog);
    assert_contains(text, "\"X-Workq-Key\": \"ok-3\"");
    assert_contains(text, "\"X-Workq-Attempt\": \"1\"");
    assert_contains(text, "\"X-Workq-Type\": \"push\"");
    assert_contains(text, "\"traceparent\": \"00-4bf92f3577b34da6a3ce929d0e"
        "0e4736-00f067aa0ba902b7-01\"");
    {
        size_t nsigned = 0, nreq = 0, nports = 0;
        int ports[64];
        const char *l = text;

        while ((l = strstr(l, "\"sig_ok\": ")) != NULL) {
            const char *pp = strstr(l, "\"port\": ");
            int pt = pp != NULL ? atoi(pp + 8) : 0, seen = 0;

            nreq++;
            nsigned += strncmp(l + 10, "true", 4) == 0;
            for (size_t i = 0; i < nports; i++)
                seen |= ports[i] == pt;
            if (!seen && nports < WQ_ARRAY_LEN(ports))
                ports[nports++] = pt;
            l += 10;
        }
        /* all but the unsigned one, which is refused */
        check(nreq >= NOK + 10 && nsigned == nreq - 1, "%zu requests, %zu "
            "signed", nreq, nsigned);
        /* keep-alive: 2 handler threads; new connections only after a
         * hang, a cut or a refusal closed one */
        check(nports <= 8, "%zu connections for %zu requests", nports,
            nreq);
    }
    free(text);
    wq_store_close(s);
    proc_kill_all();             /* the receiver: the next case starts its own */
}

static void
test_http_handler_kafka(void **state)
{
    (void)state;
    http_handler(WQ_TRANSPORT_KAFKA);
}

static void
test_http_handler_rabbitmq(void **state)
{
    (void)state;
    http_handler(WQ_TRANSPORT_RABBITMQ);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_http_handler_kafka),
    cmocka_unit_test(test_http_handler_rabbitmq),
};

WQ_TEST_MAIN("worker_http", tests)

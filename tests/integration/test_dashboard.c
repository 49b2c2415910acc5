/*
 * test_dashboard.c - the dashboard (/ui of workq-producer) in a real
 * browser: Debian's headless Chromium driven by playwright-core
 * (tests/browser/dashboard.js), against a real workq-producer,
 * workq-worker and workq-scheduler on the private servers, on both
 * transports, with a fresh database per test.
 *
 * The test makes the tasks (through the producer's HTTP API, as a client
 * would), waits until PostgreSQL holds them in the states it wants, then
 * runs the browser script with what it should find; the script prints
 * one "ok - " line per assertion and exits non-zero at the first that
 * fails.  Afterwards the test checks in PostgreSQL what the clicks did:
 * the replayed dead task succeeded, the cancelled task is cancelled.
 * The dead-letter page also lists an undecodable message (bytes that are
 * no envelope, published straight to the broker), and its download
 * button saves them byte for byte.
 * Screenshots of every page go to $WORKQ_BUILD/test-artifacts/ui/.
 *
 * Needs node and npm ci in tests/browser (make deps); it fails, loudly,
 * when they or Chromium are missing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "sched_test.h"
#include "token.h"
#include "wq_test_producer.h"

#define K WQ_TRANSPORT_KAFKA
#define R WQ_TRANSPORT_RABBITMQ

#define ADMIN "ui-admin-token-0123456789abcdef"
#define READ  "ui-read-token-0123456789abcdef"

/* Markup in every field a task's submitter controls. */
#define XSS_PAYLOAD "<script>window.__pwned=1;document.title='pwned'</script>"
#define XSS_KEY     "<img src=x onerror=\"window.__pwned=2\">"
#define XSS_ERROR   "<svg onload=\"window.__pwned=3\"></svg><script>window.__pwned=4</script>"
#define XSS_HEADER  "<iframe src=\"javascript:window.__pwned=5\"></iframe>"

/* The configuration of all three daemons: short backoff; the queue no
 * worker takes is named, so that the stats list it for its backlog on
 * the broker (it has no row in PostgreSQL until a worker claims a task);
 * a periodic task for the periodic page. */
static const char conf_fmt[] =
    "worker = { lease = \"5s\"; };\n"
    "queue_policies = ( { name = \"*\"; max_attempts = 5;\n"
    "    backoff_base = \"200ms\"; backoff_factor = 2;\n"
    "    backoff_cap = \"2s\"; backoff_jitter = \"none\"; },\n"
    "  { name = \"%s\"; max_attempts = 3; } );\n"
    "periodic = ( { name = \"nightly-report\"; schedule = \"0 3 * * *\";\n"
    "    queue = \"%s\"; type = \"noop\"; } );\n";

/* Bytes that are no envelope, published as a careless producer would:
 * the worker keeps them in workq.dead_letters. */
static const unsigned char junk[] = "\x00\xffnot an envelope "
    "<script>window.__pwned=6</script>\r\n\x93";

static void
publish_junk(int kind, const char *queue)
{
    struct wq_transport_conf tc;
    char err[WQ_ERRLEN];
    wq_transport *t;

    wq_test_transport_conf(kind, &tc);
    if (wq_transport_open(&tc, &t, err, sizeof err) != 0
        || wq_transport_publish(t, queue, "junk", 4, junk, sizeof junk - 1,
            NULL, err, sizeof err) != 0
        || wq_transport_flush(t, 30000, err, sizeof err) != 0)
        fail_msg("publish junk on %s: %s", queue, err);
    wq_transport_close(t, 5000);
}

/* "sha256:HEX SCOPES" lines for the two tokens. */
static const char *
tokens_file(void)
{
    static char buf[1024];
    char a[WQ_TOKEN_ENTRY_LEN], r[WQ_TOKEN_ENTRY_LEN];

    assert_int_equal(wq_token_entry(ADMIN, strlen(ADMIN), a), 0);
    assert_int_equal(wq_token_entry(READ, strlen(READ), r), 0);
    snprintf(buf, sizeof buf, "%s admin # dashboard test\n%s read\n", a, r);
    return write_file("tokens", buf);
}

static int
healthy(int port, void *arg)
{
    (void)arg;
    return wq_test_http_request(port, "GET", "/healthz", NULL, NULL, NULL,
        NULL, 0, NULL, 0) == 200;
}

/* POST /v1/queues/Q/tasks with `task` (taken); returns the id (copied
 * into id). */
static void
submit(int port, const char *queue, json_t *task, char *id, size_t idlen)
{
    char path[256], resp[4096], *body = json_dumps(task, JSON_COMPACT);
    json_t *j;
    int st;

    snprintf(path, sizeof path, "/v1/queues/%s/tasks", queue);
    st = wq_test_http_request(port, "POST", path, "application/json", ADMIN,
        NULL, body, strlen(body), resp, sizeof resp);
    check(st == 202, "submit %s: %d %s", body, st, resp);
    j = json_loads(resp, 0, NULL);
    assert_non_null(j);
    snprintf(id, idlen, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    json_decref(task);
    free(body);
}

static long long
count_state(wq_store *s, const char *queue, const char *state)
{
    return wq_test_pg_numf(s, "SELECT count(*) FROM workq.tasks WHERE "
        "queue = '%s' AND state = '%s'", queue, state);
}

static void
wait_count(wq_store *s, const char *queue, const char *state, long long want)
{
    char sql[512];

    snprintf(sql, sizeof sql, "SELECT count(*) FROM workq.tasks WHERE "
        "queue = '%s' AND state = '%s'", queue, state);
    check(wait_num(s, want, 90000, sql) == want, "queue %s: %lld %s tasks, "
        "want %lld", queue, count_state(s, queue, state), state, want);
}

static void
dashboard(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("ui");
    const char *idle = wq_test_unique("uiwait");
    wq_store *s = wq_test_pg_open(ci);
    const char *build = wq_test_env("WORKQ_BUILD", "build");
    char conf[1024], confpath[300], tokpath[300], tokenv[400];
    char replay_id[40], cancel_id[40], xss_id[40], id[40];
    char artifacts[600], specpath[400], script[600], mods[600], out[1 << 16];
    char junk_hex[2 * sizeof junk + 1];
    long long junk_id;
    const char *env[24], *pargs[] = { "--config", confpath, NULL };
    const char *wargs[] = { "--queue", q, NULL };
    struct proc w, sch;
    pid_t ppid;
    int port, rc;
    size_t n;
    json_t *spec, *dead_ids;
    FILE *f;

    /* the browser's tools first: missing ones fail here, loudly */
    snprintf(script, sizeof script, "%s/tests/browser/dashboard.js",
        WQ_SOURCE_DIR);
    snprintf(mods, sizeof mods, "%s/tests/browser/node_modules/"
        "playwright-core/package.json", WQ_SOURCE_DIR);
    check(access("/usr/bin/node", X_OK) == 0, "no /usr/bin/node: the "
        "browser tests need nodejs (make deps)");
    check(access(mods, R_OK) == 0, "no %s: run make deps (npm ci in "
        "tests/browser)", mods);
    check(access("/usr/bin/chromium", X_OK) == 0, "no /usr/bin/chromium: "
        "the browser tests need Debian's chromium (make deps)");

    declare_queue(kind, q);
    declare_queue(kind, idle);
    snprintf(conf, sizeof conf, conf_fmt, idle, q);
    snprintf(confpath, sizeof confpath, "%s", write_file("workq.conf",
        conf));
    snprintf(tokpath, sizeof tokpath, "%s", tokens_file());

    proc_start(&sch, "workq-scheduler", kind, ci, conf, NULL, NULL);
    proc_start(&w, "workq-worker", kind, ci, conf, NULL, wargs);
    n = wq_test_env_for(kind, ci, env, 16);
    snprintf(tokenv, sizeof tokenv, "WORKQ_PRODUCER_TOKENS_FILE=%s",
        tokpath);
    env[n++] = tokenv;
    env[n++] = "WORKQ_PRODUCER_QUEUES=*";
    env[n] = NULL;
    wq_test_producer_start("127.0.0.1", env, pargs, healthy, NULL, &ppid,
        &port);

    /* 3 that succeed, 1 dead that a replay makes succeed (attempt 2 of
     * "until=2"), 1 dead with markup everywhere, 1 waiting an hour (low
     * priority, which its page shows), and
     * on a queue no worker takes 2 waiting on the broker and 1 for an
     * hour */
    for (int i = 0; i < 3; i++)
        submit(port, q, json_pack("{s:s, s:s}", "type", "noop", "payload",
            "fine"), id, sizeof id);
    submit(port, q, json_pack("{s:s, s:s, s:s, s:i}", "type", "fail",
        "idempotency_key", "replay-me", "payload", "until=2",
        "max_attempts", 1), replay_id, sizeof replay_id);
    submit(port, q, json_pack("{s:s, s:s, s:s, s:i, s:{s:s}}", "type",
        "fail", "idempotency_key", XSS_KEY, "payload", XSS_PAYLOAD,
        "max_attempts", 1, "headers", "x-note", XSS_HEADER), xss_id,
        sizeof xss_id);
    submit(port, q, json_pack("{s:s, s:s, s:s, s:s}", "type", "noop",
        "payload", "later", "delay", "1h", "priority", "low"), cancel_id,
        sizeof cancel_id);
    for (int i = 0; i < 2; i++)
        submit(port, idle, json_pack("{s:s}", "type", "noop"), id,
            sizeof id);
    submit(port, idle, json_pack("{s:s, s:s}", "type", "noop", "delay",
        "1h"), id, sizeof id);

    publish_junk(kind, q);

    wait_count(s, q, "succeeded", 3);
    wait_count(s, q, "dead", 2);
    wait_count(s, q, "scheduled", 1);
    wait_count(s, idle, "scheduled", 1);
    /* an error with markup, as a handler could write it */
    sqlf(s, "UPDATE workq.tasks SET last_error = '%s' WHERE id = '%s'",
        XSS_ERROR, xss_id);
    sqlf(s, "UPDATE workq.attempts SET error = '%s' WHERE task_id = '%s'",
        XSS_ERROR, xss_id);

    snprintf(artifacts, sizeof artifacts, "%s/%s/test-artifacts/ui",
        WQ_SOURCE_DIR, build);
    /* the undecodable message, as the worker kept it */
    check(wq_test_waited(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.dead_letters") == 1, 30000), "the junk was not kept in "
        "workq.dead_letters");
    junk_id = wq_test_pg_num(s, "SELECT id FROM workq.dead_letters");
    for (size_t i = 0; i + 1 < sizeof junk; i++)
        snprintf(junk_hex + 2 * i, 3, "%02x", junk[i]);
    dead_ids = json_pack("[s, s]", replay_id, xss_id);
    spec = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s,"
        " s:s, s:s, s:s, s:o, s:i, s:s}",
        "port", port, "kind", wq_test_kind_name(kind), "admin", ADMIN,
        "read", READ, "artifacts", artifacts, "queue", q,
        "replay_id", replay_id, "cancel_id", cancel_id, "xss_id", xss_id,
        "xss_payload", XSS_PAYLOAD, "xss_key", XSS_KEY,
        "xss_error", XSS_ERROR, "periodic", "nightly-report",
        "dead_ids", dead_ids, "succeeded", 3, "idle", idle);
    json_object_set_new(spec, "undecodable", json_pack("{s:I, s:s, s:I}",
        "id", (json_int_t)junk_id, "hex", junk_hex, "bytes",
        (json_int_t)(sizeof junk - 1)));
    json_object_set_new(spec, "overview", json_pack(
        "{s:{s:s, s:s, s:s}, s:{s:s, s:s}}",
        q, "succeeded", "3", "dead", "2", "scheduled", "1",
        idle, "waiting", "2", "scheduled", "1"));
    snprintf(specpath, sizeof specpath, "%s/spec.json",
        getenv("WQ_TEST_TMPDIR"));
    assert_non_null(f = fopen(specpath, "w"));
    json_dumpf(spec, f, JSON_INDENT(2));
    fclose(f);
    json_decref(spec);

    {
        const char *argv[] = { "/usr/bin/node", script, specpath, NULL };
        char nodepath[700];
        const char *nenv[] = { nodepath, NULL };

        snprintf(nodepath, sizeof nodepath, "NODE_PATH=%s/tests/browser/"
            "node_modules", WQ_SOURCE_DIR);
        rc = wq_test_cmd(argv, nenv, NULL, out, sizeof out);
    }
    printf("%s", out);
    check(rc == 0, "the browser test failed (exit %d), above; the tasks "
        "by queue and state: %s", rc, textf(s, "SELECT string_agg(queue "
        "|| ' ' || state || ' ' || n, ', ') FROM (SELECT queue, state, "
        "count(*) AS n FROM workq.tasks GROUP BY 1, 2) x"));
    assert_contains(out, "assertions passed");

    /* what the clicks did, in PostgreSQL */
    assert_string_equal(textf(s, "SELECT state FROM workq.tasks WHERE id = "
        "'%s'", replay_id), "succeeded");
    assert_string_equal(textf(s, "SELECT string_agg(outcome, ',' ORDER BY "
        "attempt) FROM workq.attempt_history WHERE task_id = '%s'", replay_id),
        "failed,succeeded");
    assert_string_equal(textf(s, "SELECT state FROM workq.tasks WHERE id = "
        "'%s'", cancel_id), "cancelled");
    /* the page showed the undecodable message and did not touch it */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.dead_letters WHERE replayed_at IS NULL"), 1);
    /* the read token's attempts changed nothing */
    assert_string_equal(textf(s, "SELECT state FROM workq.tasks WHERE id = "
        "'%s'", xss_id), "dead");

    assert_int_equal(wq_test_producer_stop(&ppid), 0);
    proc_stop(&w, 30000);
    proc_stop(&sch, 10000);
    wq_store_close(s);
}

static void
test_dashboard_rabbitmq(void **state)
{
    (void)state;
    dashboard(R);
}

static void
test_dashboard_kafka(void **state)
{
    (void)state;
    dashboard(K);
}

/* The /ui answers themselves: public, typed, with the security header
 * fields, also on a 404; /v1/whoami names the scopes. */
static void
test_dashboard_assets(void **state)
{
    static const char *const scripts[] = { "/ui/dom.js", "/ui/api.js",
        "/ui/app.js" };
    static const char *const markup_calls[] = { "innerHTML", "outerHTML",
        "insertAdjacentHTML", "document.write", "eval(", "new Function",
        "setTimeout('", "srcdoc" };
    const char *ci = wq_test_pg_create_migrated_db();
    const char *env[24];
    char tokenv[400], resp[4096], *a;
    pid_t ppid;
    int port;
    size_t n;

    (void)state;
    n = wq_test_env_for(R, ci, env, 16);
    snprintf(tokenv, sizeof tokenv, "WORKQ_PRODUCER_TOKENS_FILE=%s",
        tokens_file());
    env[n++] = tokenv;
    env[n] = NULL;
    wq_test_producer_start("127.0.0.1", env, NULL, healthy, NULL, &ppid,
        &port);
    a = wq_test_http_get(port, "/ui/");
    assert_contains(a, "HTTP/1.1 200 OK");
    assert_contains(a, "Content-Type: text/html; charset=utf-8");
    assert_contains(a, "Content-Security-Policy: default-src 'self'; "
        "script-src 'self'; style-src 'self';");
    assert_contains(a, "frame-ancestors 'none'");
    assert_contains(a, "X-Content-Type-Options: nosniff");
    assert_contains(a, "Referrer-Policy: no-referrer");
    assert_contains(a, "<script src=\"/ui/app.js\"");
    check(strstr(a, "Set-Cookie") == NULL, "a cookie: %s", a);
    free(a);
    /* no script parses markup: everything from data is text */
    for (size_t i = 0; i < WQ_ARRAY_LEN(scripts); i++) {
        a = wq_test_http_get(port, scripts[i]);
        assert_contains(a, "Content-Type: text/javascript");
        for (size_t k = 0; k < WQ_ARRAY_LEN(markup_calls); k++)
            check(strstr(a, markup_calls[k]) == NULL, "%s uses %s",
                scripts[i], markup_calls[k]);
        free(a);
    }
    a = wq_test_http_get(port, "/ui/app.css");
    assert_contains(a, "Content-Type: text/css");
    free(a);
    a = wq_test_http_get(port, "/ui/../etc/passwd");
    check(strstr(a, " 404 ") != NULL, "%s", a);
    free(a);
    a = wq_test_http_get(port, "/ui/nope.js");
    assert_contains(a, " 404 ");
    assert_contains(a, "Content-Security-Policy:");
    free(a);
    a = wq_test_http_get(port, "/uinope");
    assert_contains(a, " 404 ");
    free(a);

    assert_int_equal(wq_test_http_request(port, "GET", "/v1/whoami", NULL,
        READ, NULL, NULL, 0, resp, sizeof resp), 200);
    assert_string_equal(resp, "{\"scopes\":[\"read\"]}");
    assert_int_equal(wq_test_http_request(port, "GET", "/v1/whoami", NULL,
        ADMIN, NULL, NULL, 0, resp, sizeof resp), 200);
    assert_string_equal(resp, "{\"scopes\":[\"submit\",\"read\",\"admin\"]}");
    assert_int_equal(wq_test_http_request(port, "GET", "/v1/whoami", NULL,
        "wrong", NULL, NULL, 0, resp, sizeof resp), 401);
    assert_int_equal(wq_test_producer_stop(&ppid), 0);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dashboard_assets),
        cmocka_unit_test(test_dashboard_rabbitmq),
        cmocka_unit_test(test_dashboard_kafka),
    };

    return wq_test_run("dashboard", tests, WQ_ARRAY_LEN(tests), argc, argv);
}

/*
 * test_workflow.c - workflows (chains, groups with a callback, batches)
 * through the real binaries on both transports: documents submitted with
 * the `workq` CLI or the C client (workq_outbox.h), workq-scheduler
 * relaying the outbox, workq-worker running the steps with its
 * built-ins ("echo" answers its payload, "fail" with payload "permanent"
 * is dead at once), and the graph read back with `workq workflow show`.
 *
 * The crash case kills workers with SIGKILL while chains and groups
 * finish, and counts: every last step and callback ran (0 lost), each
 * node has one task (0 published twice), and an exec callback that
 * appends "TASK ATTEMPT" to a file shows no attempt run twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sched_test.h"
#include "workq_outbox.h"

#define K WQ_TRANSPORT_KAFKA
#define R WQ_TRANSPORT_RABBITMQ

static const char conf[] =
    "worker = { lease = \"2s\"; };\n"
    "scheduler = { batch_size = 50; publish_timeout = \"10s\"; };\n"
    "queue_policies = ( { name = \"*\"; max_attempts = 5;\n"
    "    backoff_base = \"300ms\"; backoff_factor = 2;\n"
    "    backoff_cap = \"5s\"; backoff_jitter = \"none\"; } );\n";

static void
start(struct proc *p, const char *bin, int kind, const char *ci,
    const char *queue, const char *config)
{
    const char *args[] = { "--queue", queue, NULL };

    proc_start(p, bin, kind, ci, config != NULL ? config : conf, NULL,
        strcmp(bin, "workq-worker") == 0 ? args : NULL);
}

/* `workq workflow submit` of `doc` (its "%s" replaced by the queue);
 * returns the workflow id (static). */
static const char *
submit_doc(const char *ci, const char *queue, const char *doc)
{
    static char id[64];
    char text[4096], out[4096];

    const char *at = strstr(doc, "%s");

    assert_non_null(at);
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - doc), doc, queue,
        at + 2);
    assert_int_equal(workq_cli(ci, out, sizeof out, "workflow", "submit",
        write_file("wf.json", text), NULL), 0);
    assert_int_equal(strlen(out), 37);
    snprintf(id, sizeof id, "%.36s", out);
    return id;
}

/* Waits until the workflow has no node pending or started. */
static void
wait_done(wq_store *s, const char *wf, int timeout_ms)
{
    char sql[256];

    snprintf(sql, sizeof sql, "SELECT count(*) FROM workq.workflow_nodes "
        "WHERE workflow_id = '%s' AND state IN ('pending', 'started')", wf);
    check(wait_num(s, 0, timeout_ms, sql) == 0, "workflow %s did not end: "
        "%s", wf, textf(s, "SELECT string_agg(node || ':' || state, ' ' "
        "ORDER BY node) FROM workq.workflow_nodes WHERE workflow_id = '%s'",
        wf));
}

/* The node's field (a column of workq.workflow_nodes or workq.tasks, as
 * an SQL expression over n and t). */
static const char *
node_text(wq_store *s, const char *wf, int node, const char *expr)
{
    return textf(s, "SELECT %s FROM workq.workflow_nodes n LEFT JOIN "
        "workq.tasks t ON t.id = n.task_id WHERE n.workflow_id = '%s' AND "
        "n.node = %d", expr, wf, node);
}

/* ---- chains ------------------------------------------------------------------ */

static void
chain(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("chain");
    wq_store *s = wq_test_pg_open(ci);
    struct proc w, sch;
    char wf[64], wf2[64], out[16384];
    json_t *doc;

    declare_queue(kind, q);
    start(&sch, "workq-scheduler", kind, ci, q, NULL);
    start(&w, "workq-worker", kind, ci, q, NULL);

    /* A -> B -> C: each gets the result of the one before */
    snprintf(wf, sizeof wf, "%s", submit_doc(ci, q, "{\"queue\":\"%s\","
        "\"name\":\"pipe\",\"chain\":[{\"type\":\"echo\",\"payload\":"
        "\"hello\"},{\"type\":\"echo\"},{\"type\":\"echo\",\"name\":"
        "\"last\"}]}"));
    wait_done(s, wf, 60000);
    for (int i = 0; i < 3; i++)
        assert_string_equal(node_text(s, wf, i, "t.state"), "succeeded");
    assert_string_equal(node_text(s, wf, 2, "convert_from(t.result, "
        "'UTF8')"), "hello");
    assert_string_equal(node_text(s, wf, 2, "t.headers->>'workq-workflow'"),
        wf);
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "workflow",
        "show", wf, NULL), 0);
    assert_non_null(doc = json_loads(out, 0, NULL));
    assert_string_equal(json_string_value(json_object_get(doc, "state")),
        "succeeded");
    assert_string_equal(json_string_value(json_object_get(doc, "kind")),
        "chain");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc,
        "progress"), "succeeded")), 3);
    json_decref(doc);
    /* the page for people, through `workq status` */
    assert_int_equal(workq_cli(ci, out, sizeof out, "status", wf, NULL), 0);
    check(strstr(out, "state      succeeded") != NULL
        && strstr(out, "name: last") != NULL, "status page:\n%s", out);

    /* A -> B (dead) -> C: C is cancelled with the reason, never runs */
    snprintf(wf2, sizeof wf2, "%s", submit_doc(ci, q, "{\"queue\":\"%s\","
        "\"chain\":[{\"type\":\"echo\",\"payload\":\"x\"},{\"type\":"
        "\"fail\",\"payload\":\"permanent\",\"name\":\"breaks\"},"
        "{\"type\":\"echo\"}]}"));
    wait_done(s, wf2, 60000);
    assert_string_equal(node_text(s, wf2, 1, "n.state"), "dead");
    assert_string_equal(node_text(s, wf2, 2, "n.state"), "cancelled");
    check(strstr(node_text(s, wf2, 2, "n.reason"), "node 1 (breaks) ended "
        "dead") != NULL, "reason: %s", node_text(s, wf2, 2, "n.reason"));
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM workq.tasks "
        "WHERE workflow_id = '%s'", wf2), 2);
    assert_int_equal(workq_cli(ci, out, sizeof out, "workflow", "show", wf2,
        NULL), 0);
    check(strstr(out, "state      failed") != NULL
        && strstr(out, "cancelled") != NULL
        && strstr(out, "error: node 1 (breaks) ended dead") != NULL,
        "show:\n%s", out);
    /* a task id of the workflow finds it too */
    assert_int_equal(workq_cli(ci, out, sizeof out, "status",
        node_text(s, wf2, 2, "n.task_id::text"), NULL), 0);
    check(strstr(out, wf2) != NULL, "status of a pending node:\n%s", out);

    proc_stop(&w, 30000);
    proc_stop(&sch, 10000);
    wq_store_close(s);
}

static void test_workflow_chain_kafka(void **st) { (void)st; chain(K); }
static void test_workflow_chain_rabbitmq(void **st) { (void)st; chain(R); }

/* ---- groups ------------------------------------------------------------------ */

static void
group(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("group");
    wq_store *s = wq_test_pg_open(ci);
    struct proc w, sch;
    char wf[64], wf2[64];
    json_t *cb, *outcomes;
    const char *text;

    declare_queue(kind, q);
    start(&sch, "workq-scheduler", kind, ci, q, NULL);
    start(&w, "workq-worker", kind, ci, q, NULL);

    /* any-ending callback: runs once, with every outcome */
    snprintf(wf, sizeof wf, "%s", submit_doc(ci, q, "{\"queue\":\"%s\","
        "\"group\":[{\"type\":\"echo\",\"payload\":\"one\"},{\"type\":"
        "\"fail\",\"payload\":\"permanent\"},{\"type\":\"echo\","
        "\"payload\":{\"n\":3}}],\"callback\":{\"type\":\"echo\"},"
        "\"callback_when\":\"complete\"}"));
    wait_done(s, wf, 60000);
    assert_string_equal(node_text(s, wf, 3, "t.state"), "succeeded");
    text = node_text(s, wf, 3, "convert_from(t.result, 'UTF8')");
    assert_non_null(cb = json_loads(text, 0, NULL));
    assert_string_equal(json_string_value(json_object_get(cb, "workflow")),
        wf);
    outcomes = json_object_get(cb, "outcomes");
    assert_int_equal(json_array_size(outcomes), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(
        outcomes, 0), "result")), "one");
    assert_string_equal(json_string_value(json_object_get(json_array_get(
        outcomes, 1), "state")), "dead");
    assert_non_null(json_object_get(json_array_get(outcomes, 1), "error"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(
        outcomes, 2), "result")), "{\"n\": 3}");
    json_decref(cb);
    assert_int_equal(wq_test_pg_numf(s, "SELECT attempt FROM workq.tasks t "
        "JOIN workq.workflow_nodes n ON n.task_id = t.id WHERE "
        "n.workflow_id = '%s' AND n.role = 'callback'", wf), 1);

    /* success-only callback and a dead member: cancelled, not run */
    snprintf(wf2, sizeof wf2, "%s", submit_doc(ci, q, "{\"queue\":\"%s\","
        "\"group\":[{\"type\":\"echo\"},{\"type\":\"fail\",\"payload\":"
        "\"permanent\"}],\"callback\":{\"type\":\"echo\"}}"));
    wait_done(s, wf2, 60000);
    assert_string_equal(node_text(s, wf2, 2, "n.state"), "cancelled");
    assert_string_equal(node_text(s, wf2, 2, "coalesce(t.state, 'none')"),
        "none");
    check(strstr(node_text(s, wf2, 2, "n.reason"), "ended dead") != NULL,
        "reason: %s", node_text(s, wf2, 2, "n.reason"));

    proc_stop(&w, 30000);
    proc_stop(&sch, 10000);
    wq_store_close(s);
}

static void test_workflow_group_kafka(void **st) { (void)st; group(K); }
static void test_workflow_group_rabbitmq(void **st) { (void)st; group(R); }

/* ---- batches ----------------------------------------------------------------- */

static void
batch(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("batch");
    wq_store *s = wq_test_pg_open(ci);
    struct proc w, sch;
    char wf[64], out[16384], tasks[512], err[WQ_ERRLEN], id2[64], sql[512];
    char *ids = NULL, *graph = NULL;
    json_t *doc, *prog;
    int closed = -1;

    declare_queue(kind, q);
    start(&sch, "workq-scheduler", kind, ci, q, NULL);
    start(&w, "workq-worker", kind, ci, q, NULL);

    snprintf(wf, sizeof wf, "%s", submit_doc(ci, q, "{\"queue\":\"%s\","
        "\"batch\":\"nightly\",\"open\":true,\"tasks\":[{\"type\":\"echo\","
        "\"payload\":\"a\"},{\"type\":\"echo\",\"payload\":\"b\"}],"
        "\"on_success\":{\"type\":\"echo\"},\"on_complete\":{\"type\":"
        "\"echo\"}}"));
    snprintf(sql, sizeof sql, "SELECT count(*) FROM workq.workflow_nodes "
        "WHERE workflow_id = '%s' AND state = 'succeeded'", wf);
    check(wait_num(s, 2, 60000, sql) == 2, "batch tasks did not succeed");
    /* open: the callbacks wait although every task ended */
    assert_string_equal(node_text(s, wf, 2, "n.state"), "pending");
    assert_string_equal(node_text(s, wf, 3, "n.state"), "pending");

    /* add one through the CLI, one through the C client */
    snprintf(tasks, sizeof tasks, "[{\"type\":\"echo\",\"queue\":\"%s\","
        "\"payload\":\"c\"}]", q);
    assert_int_equal(workq_cli(ci, out, sizeof out, "workflow", "add", wf,
        write_file("add.json", tasks), NULL), 0);
    assert_int_equal(strlen(out), 37);
    snprintf(tasks, sizeof tasks, "[{\"type\":\"fail\",\"queue\":\"%s\","
        "\"payload\":\"permanent\"}]", q);
    assert_int_equal(wq_client_workflow_add_tx(wq_store_libpq(s), wf, tasks,
        &ids, err, sizeof err), 0);
    assert_non_null(strstr(ids, "-"));
    free(ids);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM workq.workflow_nodes "
        "WHERE workflow_id = '%s' AND role = 'task' AND state IN "
        "('pending', 'started')", wf);
    check(wait_num(s, 0, 60000, sql) == 0, "added tasks did not end");

    /* progress while open */
    assert_int_equal(wq_client_workflow_get(wq_store_libpq(s), wf, &graph,
        err, sizeof err), 0);
    assert_non_null(doc = json_loads(graph, 0, NULL));
    free(graph);
    prog = json_object_get(doc, "progress");
    assert_int_equal(json_integer_value(json_object_get(prog, "total")), 4);
    assert_int_equal(json_integer_value(json_object_get(prog, "succeeded")),
        3);
    assert_int_equal(json_integer_value(json_object_get(prog, "dead")), 1);
    assert_int_equal(json_integer_value(json_object_get(prog, "pending")), 0);
    assert_string_equal(json_string_value(json_object_get(doc, "state")),
        "open");
    json_decref(doc);
    /* on_success was cancelled by the dead task already */
    assert_string_equal(node_text(s, wf, 2, "n.state"), "cancelled");

    /* close: on_complete runs, once */
    assert_int_equal(wq_client_workflow_close_tx(wq_store_libpq(s), wf,
        &closed, err, sizeof err), 0);
    assert_int_equal(closed, 1);
    assert_int_equal(workq_cli(ci, out, sizeof out, "workflow", "close", wf,
        NULL), 0);
    check(strstr(out, "closed already") != NULL, "%s", out);
    wait_done(s, wf, 60000);
    assert_string_equal(node_text(s, wf, 3, "t.state"), "succeeded");
    assert_int_equal(wq_test_pg_numf(s, "SELECT json_array_length(convert_"
        "from(t.result, 'UTF8')::json->'outcomes') FROM workq.tasks t JOIN "
        "workq.workflow_nodes n ON n.task_id = t.id WHERE n.workflow_id = "
        "'%s' AND n.node = 3", wf), 4);
    /* a closed, finished batch takes no more */
    assert_int_equal(wq_client_workflow_add_tx(wq_store_libpq(s), wf, tasks,
        NULL, err, sizeof err), WQ_ECLOSED);
    assert_int_equal(workq_cli(ci, out, sizeof out, "workflow", "add", wf,
        write_file("add.json", tasks), NULL), 1);

    /* the C client submits in the caller's transaction; a key is
     * idempotent; a bad document says what is wrong */
    snprintf(tasks, sizeof tasks, "{\"key\":\"k1\",\"queue\":\"%s\","
        "\"batch\":\"b2\",\"tasks\":[{\"type\":\"noop\"}]}", q);
    assert_int_equal(wq_client_workflow_submit_tx(wq_store_libpq(s), tasks,
        id2, err, sizeof err), 0);
    assert_int_equal(wq_client_workflow_submit_tx(wq_store_libpq(s), tasks,
        out, err, sizeof err), 0);
    assert_string_equal(out, id2);
    assert_int_equal(wq_client_workflow_submit_tx(wq_store_libpq(s),
        "{\"chain\":[{\"type\":\"x\"}]}", out, err, sizeof err), WQ_EINVAL);
    check(strstr(err, "queue") != NULL, "%s", err);
    assert_int_equal(wq_client_workflow_get(wq_store_libpq(s),
        "00000000-0000-7000-8000-000000000000", &graph, err, sizeof err),
        WQ_ENOENT);
    assert_int_equal(workq_cli(ci, out, sizeof out, "submit", "--workflow",
        write_file("bad.json", "{\"group\":[]}"), NULL), 65);
    check(strstr(out, "has no tasks") != NULL, "%s", out);

    proc_stop(&w, 30000);
    proc_stop(&sch, 10000);
    wq_store_close(s);
}

static void test_workflow_batch_kafka(void **st) { (void)st; batch(K); }
static void test_workflow_batch_rabbitmq(void **st) { (void)st; batch(R); }

/* ---- crash: kill -9 workers while chains and groups finish ------------------------ */

/* Reads the callback's "TASK ATTEMPT" lines: how many, how many tasks,
 * how many (task, attempt) pairs appear more than once. */
static void
count_runs(const char *path, long long *n, long long *tasks,
    long long *twice)
{
    static char lines[512][64];
    FILE *f = fopen(path, "r");
    int m = 0;

    *n = *tasks = *twice = 0;
    assert_non_null(f);
    while (m < 512 && fgets(lines[m], sizeof lines[m], f) != NULL)
        m++;
    fclose(f);
    *n = m;
    for (int i = 0; i < m; i++) {
        int first_task = 1, first_pair = 1;

        for (int j = 0; j < i; j++) {
            if (strncmp(lines[i], lines[j], 36) == 0)
                first_task = 0;
            if (strcmp(lines[i], lines[j]) == 0)
                first_pair = 0;
        }
        *tasks += first_task;
        *twice += !first_pair;
    }
}

#define CHAINS 20
#define GROUPS 20

static void
crash(int kind)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("wfcrash");
    wq_store *s = wq_test_pg_open(ci);
    struct proc w[2], sch;
    char config[2048], runs[300], doc[1024], sql[512];
    long long lost, twice, rows, reruns, extra, nruns, distinct;
    uint64_t end;
    int kills = 0;

    snprintf(runs, sizeof runs, "%s/callback-runs", getenv("WQ_TEST_TMPDIR"));
    snprintf(config, sizeof config, "%shandlers = ( { type = \"cb\"; kind = "
        "\"exec\"; argv = [ \"/bin/sh\", \"-c\", \"sleep 0.05; echo "
        "\\\"$WORKQ_TASK_ID $WORKQ_ATTEMPT\\\" >> %s\" ]; } );\n", conf,
        runs);
    declare_queue(kind, q);
    start(&sch, "workq-scheduler", kind, ci, q, config);
    start(&w[0], "workq-worker", kind, ci, q, config);
    start(&w[1], "workq-worker", kind, ci, q, config);
    for (int i = 0; i < CHAINS; i++) {
        snprintf(doc, sizeof doc, "{\"queue\":\"%%s\",\"chain\":["
            "{\"type\":\"sleep\",\"payload\":\"%d\"},{\"type\":\"sleep\","
            "\"payload\":\"400\"},{\"type\":\"cb\"}]}", 200 + i * 60);
        submit_doc(ci, q, doc);
    }
    for (int i = 0; i < GROUPS; i++) {
        snprintf(doc, sizeof doc, "{\"queue\":\"%%s\",\"group\":["
            "{\"type\":\"sleep\",\"payload\":\"%d\"},{\"type\":\"sleep\","
            "\"payload\":\"600\"},{\"type\":\"sleep\",\"payload\":\"900\"}],"
            "\"callback\":{\"type\":\"cb\"},\"callback_when\":\"%s\"}",
            300 + i * 70, i % 2 ? "success" : "complete");
        submit_doc(ci, q, doc);
    }
    /* kill a worker every 400 ms (16 times), start a new one, until all
     * are done */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM workq.workflow_nodes "
        "WHERE state IN ('pending', 'started')");
    end = wq_clock_mono_ns() + 240ull * 1000000000u;
    while (wq_test_pg_num(s, sql) > 0 && wq_clock_mono_ns() < end) {
        int v = kills % 2;

        usleep(400000);
        if (kills < 16) {
            proc_kill9(&w[v]);
            start(&w[v], "workq-worker", kind, ci, q, config);
            kills++;
        }
    }
    check(wq_test_pg_num(s, sql) == 0, "workflows did not finish: %lld "
        "nodes open", wq_test_pg_num(s, sql));

    /* 0 lost: every last step and callback has succeeded */
    lost = wq_test_pg_num(s, "SELECT count(*) FROM workq.workflow_nodes n "
        "WHERE n.type = 'cb' AND n.state <> 'succeeded'");
    /* 0 published twice: one task per node, one row per (queue, key) */
    rows = wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks t JOIN "
        "workq.workflow_nodes n ON n.task_id = t.id WHERE n.type = 'cb'");
    extra = wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE workflow_id IS NOT NULL") - wq_test_pg_num(s, "SELECT "
        "count(*) FROM workq.workflow_nodes WHERE state <> 'cancelled'");
    /* 0 run twice: no (task, attempt) ran twice; attempts after a kill
     * mid-run (lease expired) are counted apart */
    count_runs(runs, &nruns, &distinct, &twice);
    reruns = nruns - distinct;
    fprintf(stderr, "workflow crash (%s): %d chains + %d groups, %d workers "
        "killed; callbacks expected %d, succeeded %lld, lost %lld; "
        "callback tasks %lld, extra task rows %lld; handler runs %lld, of "
        "one attempt twice %lld, re-run after a kill %lld; callbacks with "
        "a succeeded attempt: %lld\n", wq_test_kind_name(kind), CHAINS,
        GROUPS, kills, CHAINS + GROUPS, CHAINS + GROUPS - lost, lost, rows,
        extra, nruns, twice,
        reruns, wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.attempt_history a JOIN workq.workflow_nodes n ON n.task_id "
        "= a.task_id WHERE n.type = 'cb' AND a.outcome = 'succeeded'"));
    assert_true(kills >= 8);
    assert_int_equal(lost, 0);
    assert_int_equal(rows, CHAINS + GROUPS);
    assert_int_equal(extra, 0);
    assert_int_equal(twice, 0);
    assert_int_equal(distinct, CHAINS + GROUPS);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.attempt_history a JOIN workq.workflow_nodes n ON n.task_id "
        "= a.task_id WHERE n.type = 'cb' AND a.outcome = 'succeeded'"),
        CHAINS + GROUPS);
    proc_stop(&w[0], 30000);
    proc_stop(&w[1], 30000);
    proc_stop(&sch, 10000);
    wq_store_close(s);
}

static void test_workflow_crash_kafka(void **st) { (void)st; crash(K); }
static void test_workflow_crash_rabbitmq(void **st) { (void)st; crash(R); }

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_workflow_chain_kafka),
    cmocka_unit_test(test_workflow_chain_rabbitmq),
    cmocka_unit_test(test_workflow_group_kafka),
    cmocka_unit_test(test_workflow_group_rabbitmq),
    cmocka_unit_test(test_workflow_batch_kafka),
    cmocka_unit_test(test_workflow_batch_rabbitmq),
    cmocka_unit_test(test_workflow_crash_kafka),
    cmocka_unit_test(test_workflow_crash_rabbitmq),
};

WQ_TEST_MAIN("workflow", tests)

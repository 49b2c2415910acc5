/*
 * test_cli_ops.c - the operator commands of `workq` as a user runs them
 * (status, list, retry, cancel, dlq, stats, workers), against a fresh
 * database per test holding rows in the states the worker and the
 * scheduler leave them in.  Output is checked as text and as JSON (parsed
 * with jansson), and exit codes are part of the interface.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "sched_test.h"
#include "store_int.h"
#include "uuid.h"

static char out[1 << 16];

/* The JSON document that is the first line of out. */
static json_t *
json_of(const char *text)
{
    json_error_t e;
    json_t *j = json_loadb(text, strcspn(text, "\n"), 0, &e);

    if (j == NULL)
        fail_msg("not JSON (%s): %s", e.text, text);
    return j;
}

/* Lines of out that are JSON objects. */
static int
json_lines(const char *text)
{
    int n = 0;

    for (const char *p = text; *p != '\0'; p = strchr(p, '\n') != NULL
        ? strchr(p, '\n') + 1 : p + strlen(p))
        n += *p == '{';
    return n;
}

static const char *
jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_string(v))
        fail_msg("no string \"%s\" in %s", key, json_dumps(o, 0));
    return json_string_value(v);
}

/* A dead task with two failed attempts, a result and a header. */
static const char *
dead_task(wq_store *s, const char *q, const char *type, const char *error,
    const char *ago)
{
    static char id[40];
    char extra[512];

    snprintf(extra, sizeof extra, ", now() - interval '%s', '%s', "
        "'{\"trace\": \"t\"}', now()", ago, error);
    snprintf(id, sizeof id, "%s", insert_task(s, q, type, NULL, "dead", 2, 2,
        NULL, ", finished_at, last_error, headers, dead_published_at",
        extra));
    sqlf(s, "INSERT INTO workq.attempts (task_id, attempt, started_at, "
        "finished_at, duration_ms, worker, outcome, error) VALUES "
        "('%s', 1, now(), now(), 12, 'w1', 'failed', 'first'), "
        "('%s', 2, now(), now(), 34, 'w2', 'failed', '%s')", id, id, error);
    return id;
}

/* ---- status --------------------------------------------------------------------- */

static void
test_cli_status(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(ci);
    char id[40], oid[40];
    json_t *j, *att;

    (void)state;
    snprintf(id, sizeof id, "%s", dead_task(s, "mail", "send", "smtp 550",
        "1 hour"));
    sqlf(s, "UPDATE workq.tasks SET result = 'ok' WHERE id = '%s'", id);
    assert_int_equal(workq_cli(ci, out, sizeof out, "status", id, NULL), 0);
    assert_contains(out, "state       dead");
    assert_contains(out, "attempts    2 of 2");
    assert_contains(out, "last error  smtp 550");
    assert_contains(out, "OUTCOME");
    assert_contains(out, "34 ms");
    assert_contains(out, "result      2 bytes");

    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "status", id,
        NULL), 0);
    j = json_of(out);
    assert_string_equal(jstr(j, "id"), id);
    assert_string_equal(jstr(j, "state"), "dead");
    assert_string_equal(jstr(j, "queue"), "mail");
    assert_string_equal(jstr(j, "result"), "ok");
    assert_string_equal(jstr(json_object_get(j, "headers"), "trace"), "t");
    assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 2);
    att = json_object_get(j, "attempts");
    assert_int_equal(json_array_size(att), 2);
    assert_string_equal(jstr(json_array_get(att, 1), "error"), "smtp 550");
    assert_string_equal(jstr(json_array_get(att, 1), "outcome"), "failed");
    json_decref(j);

    /* by queue and key */
    assert_int_equal(workq_cli(ci, out, sizeof out, "status", "--queue",
        "mail", "--key", id, NULL), 0);
    assert_contains(out, id);
    assert_int_equal(workq_cli(ci, out, sizeof out, "status", "--queue",
        "mail", "--key", "nope", NULL), 66);
    assert_contains(out, "no task with key 'nope'");

    /* enqueued, not relayed yet */
    snprintf(oid, sizeof oid, "%s", textf(s, "SELECT workq.enqueue('mail', "
        "'send')"));
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "status", oid,
        NULL), 0);
    j = json_of(out);
    assert_string_equal(jstr(j, "state"), "outbox");
    json_decref(j);

    assert_int_equal(workq_cli(ci, out, sizeof out, "status",
        "0190a5f8-7c1e-7a3b-9c4d-5e6f708192a3", NULL), 66);
    assert_int_equal(workq_cli(ci, out, sizeof out, "status", "not-an-id",
        NULL), 64);
    assert_contains(out, "is not a task id");
    assert_int_equal(workq_cli(ci, out, sizeof out, "status", NULL), 64);
    assert_int_equal(workq_cli(ci, out, sizeof out, "status", id, "--queue",
        "mail", NULL), 64);
    assert_int_equal(workq_cli("host=127.0.0.1 port=1 dbname=x", out,
        sizeof out, "status", id, NULL), 69);
    wq_store_close(s);
}

/* ---- list ------------------------------------------------------------------------ */

static void
test_cli_list(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(ci);
    json_t *j;

    (void)state;
    dead_task(s, "a", "t1", "boom", "1 hour");
    dead_task(s, "a", "t2", "bang", "2 hours");
    dead_task(s, "b", "t1", "boom", "1 hour");
    insert_task(s, "a", "t1", NULL, "scheduled", 0, 3, "now() + interval "
        "'1 hour'", "", "");
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "list",
        "--queue", "a", "--state", "dead", NULL), 0);
    assert_int_equal(json_lines(out), 2);
    j = json_of(out);
    assert_string_equal(jstr(j, "queue"), "a");
    assert_string_equal(jstr(j, "state"), "dead");
    json_decref(j);
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "list",
        "--type", "t1", NULL), 0);
    assert_int_equal(json_lines(out), 3);
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "list",
        "--limit", "1", NULL), 0);
    assert_int_equal(json_lines(out), 1);
    /* newest first: the scheduled one was inserted last */
    assert_contains(out, "\"state\":\"scheduled\"");
    assert_int_equal(workq_cli(ci, out, sizeof out, "list", NULL), 0);
    assert_contains(out, "ID");
    assert_contains(out, "LAST ERROR");
    assert_contains(out, "boom");
    assert_int_equal(workq_cli(ci, out, sizeof out, "list", "--state",
        "exploded", NULL), 64);
    assert_int_equal(workq_cli(ci, out, sizeof out, "list", "--limit", "0",
        NULL), 64);
    wq_store_close(s);
}

/* ---- retry ------------------------------------------------------------------------- */

static void
test_cli_retry(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(ci);
    char d1[40], d2[40], ok[40], run[40], wait[40];
    json_t *j;

    (void)state;
    snprintf(d1, sizeof d1, "%s", dead_task(s, "q", "t", "x", "1 hour"));
    snprintf(d2, sizeof d2, "%s", dead_task(s, "q", "t", "x", "1 hour"));
    snprintf(ok, sizeof ok, "%s", insert_task(s, "q", "t", NULL, "succeeded",
        1, 3, NULL, ", finished_at", ", now()"));
    snprintf(run, sizeof run, "%s", insert_task(s, "q", "t", NULL, "running",
        1, 3, NULL, ", lease_owner, lease_expires_at",
        ", 'w', now() + interval '1 hour'"));
    snprintf(wait, sizeof wait, "%s", insert_task(s, "q", "t", NULL,
        "retry_wait", 1, 3, "now() + interval '1 hour'", "", ""));

    assert_int_equal(workq_cli(ci, out, sizeof out, "retry", d1, NULL), 0);
    assert_contains(out, "with a new attempt series");
    assert_string_equal(textf(s, "SELECT state || ' ' || attempt || ' ' || "
        "attempt_base || ' ' || max_attempts || ' ' || (finished_at IS NULL) "
        "|| ' ' || (dead_published_at IS NULL) || ' ' || (run_at <= now()) "
        "FROM workq.tasks WHERE id = '%s'", d1),
        "retry_wait 2 2 4 true true true");
    /* history kept */
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM "
        "workq.attempt_history WHERE task_id = '%s'", d1), 2);
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "retry",
        "--attempts", "5", d2, NULL), 0);
    j = json_of(out);
    assert_true(json_is_true(json_object_get(j, "new_series")));
    assert_int_equal(json_integer_value(json_object_get(j, "max_attempts")),
        7);
    json_decref(j);
    /* a waiting task is made due now, same series */
    assert_int_equal(workq_cli(ci, out, sizeof out, "retry", wait, NULL), 0);
    assert_string_equal(textf(s, "SELECT state || ' ' || max_attempts || ' '"
        " || (run_at <= now()) FROM workq.tasks WHERE id = '%s'", wait),
        "retry_wait 3 true");
    /* refused */
    assert_int_equal(workq_cli(ci, out, sizeof out, "retry", ok, NULL), 1);
    assert_contains(out, "it succeeded");
    assert_int_equal(workq_cli(ci, out, sizeof out, "retry", run, NULL), 1);
    assert_contains(out, "is running");
    assert_int_equal(workq_cli(ci, out, sizeof out, "retry",
        "0190a5f8-7c1e-7a3b-9c4d-5e6f708192a3", NULL), 66);
    assert_int_equal(workq_cli(ci, out, sizeof out, "retry", NULL), 64);
    assert_int_equal(workq_cli(ci, out, sizeof out, "retry", "--attempts",
        "0", d1, NULL), 64);
    wq_store_close(s);
}

/* ---- cancel ---------------------------------------------------------------------- */

static void
test_cli_cancel(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(ci), *l = wq_test_pg_open(ci);
    char sched[40], queued[40], run[40], done[40];
    PGnotify *n;
    json_t *j;

    (void)state;
    snprintf(sched, sizeof sched, "%s", insert_task(s, "q", "t", NULL,
        "scheduled", 0, 3, "now() + interval '1 hour'", "", ""));
    snprintf(queued, sizeof queued, "%s", insert_task(s, "q", "t", NULL,
        "queued", 0, 3, NULL, "", ""));
    snprintf(run, sizeof run, "%s", insert_task(s, "q", "t", NULL, "running",
        1, 3, NULL, ", lease_owner, lease_expires_at",
        ", 'w-7', now() + interval '1 hour'"));
    snprintf(done, sizeof done, "%s", insert_task(s, "q", "t", NULL,
        "succeeded", 1, 3, NULL, ", finished_at", ", now()"));
    wq_test_pg_exec(l, "LISTEN workq_cancel");

    assert_int_equal(workq_cli(ci, out, sizeof out, "cancel", sched, NULL),
        0);
    assert_contains(out, "cancelled (it was scheduled)");
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "cancel",
        queued, NULL), 0);
    j = json_of(out);
    assert_string_equal(jstr(j, "state"), "cancelled");
    assert_string_equal(jstr(j, "previous_state"), "queued");
    json_decref(j);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'cancelled' AND finished_at IS NOT NULL"), 2);

    /* running: its worker is asked to stop it */
    assert_int_equal(workq_cli(ci, out, sizeof out, "cancel", run, NULL), 1);
    assert_contains(out, "is running on w-7");
    usleep(100000);
    assert_int_equal(PQconsumeInput(wq_store_conn(l)), 1);
    n = PQnotifies(wq_store_conn(l));
    assert_non_null(n);
    assert_string_equal(n->relname, "workq_cancel");
    assert_string_equal(n->extra, run);
    PQfreemem(n);
    assert_string_equal(textf(s, "SELECT state FROM workq.tasks WHERE id = "
        "'%s'", run), "running");

    assert_int_equal(workq_cli(ci, out, sizeof out, "cancel", done, NULL), 1);
    assert_contains(out, "is succeeded already");
    assert_int_equal(workq_cli(ci, out, sizeof out, "cancel",
        "0190a5f8-7c1e-7a3b-9c4d-5e6f708192a3", NULL), 66);
    assert_int_equal(workq_cli(ci, out, sizeof out, "cancel", NULL), 64);
    wq_store_close(l);
    wq_store_close(s);
}

/*
 * A task the broker holds and no worker claimed yet has only its receipt
 * (workq.accepted, written by the submitter, here by the test): status
 * answers it as queued, by id and by key, and cancel makes it cancelled
 * (its row is written, so the worker that gets the message acks it as a
 * duplicate and runs nothing).
 */
static void
test_cli_receipts(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(ci);
    uint8_t bin[16];
    char id[WQ_UUID_STRLEN];
    json_t *j;

    (void)state;
    assert_int_equal(wq_uuid_for_key("q", "order-1", bin), 0);
    wq_uuid_format(bin, id);
    sqlf(s, "INSERT INTO workq.accepted (id, created_at, max_attempts, "
        "queue, type, idempotency_key) VALUES ('%s', now(), 5, 'q', 'send', "
        "'order-1')", id);

    assert_int_equal(workq_cli(ci, out, sizeof out, "status", id, NULL), 0);
    assert_contains(out, "accepted by the broker, not claimed");
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "status", id,
        NULL), 0);
    j = json_of(out);
    assert_string_equal(jstr(j, "state"), "queued");
    assert_true(json_is_false(json_object_get(j, "claimed")));
    json_decref(j);
    assert_int_equal(workq_cli(ci, out, sizeof out, "status", "--queue", "q",
        "--key", "order-1", NULL), 0);
    assert_contains(out, id);

    assert_int_equal(workq_cli(ci, out, sizeof out, "cancel", id, NULL), 0);
    assert_contains(out, "cancelled (it was queued)");
    assert_string_equal(textf(s, "SELECT state FROM workq.tasks WHERE id = "
        "'%s'", id), "cancelled");
    assert_int_equal(workq_cli(ci, out, sizeof out, "cancel", id, NULL), 1);
    assert_contains(out, "is cancelled already");
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "status", id,
        NULL), 0);
    j = json_of(out);
    assert_string_equal(jstr(j, "state"), "cancelled");
    assert_null(json_object_get(j, "claimed"));
    json_decref(j);

    /* an id that was never accepted */
    assert_int_equal(workq_cli(ci, out, sizeof out, "status",
        "0190a5f8-7c1e-7a3b-9c4d-5e6f708192a3", NULL), 66);

    /* tasks without a key have their receipts in runs (ids end to end) */
    sqlf(s, "INSERT INTO workq.accepted_runs (first_id, last_id, created_at,"
        " max_attempts, queue, type, ids) VALUES"
        " ('0190a5f8-7c1e-7a3b-9c4d-000000000001',"
        "  '0190a5f8-7c1e-7a3b-9c4d-000000000003', now(), 4, 'q', 'resize',"
        "  uuid_send('0190a5f8-7c1e-7a3b-9c4d-000000000001')"
        "  || uuid_send('0190a5f8-7c1e-7a3b-9c4d-000000000003'))");
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "status",
        "0190a5f8-7c1e-7a3b-9c4d-000000000003", NULL), 0);
    j = json_of(out);
    assert_string_equal(jstr(j, "state"), "queued");
    assert_string_equal(jstr(j, "type"), "resize");
    assert_string_equal(jstr(j, "idempotency_key"),
        "0190a5f8-7c1e-7a3b-9c4d-000000000003");
    json_decref(j);
    /* between the two: in the run's range, not in it */
    assert_int_equal(workq_cli(ci, out, sizeof out, "status",
        "0190a5f8-7c1e-7a3b-9c4d-000000000002", NULL), 66);
    assert_int_equal(workq_cli(ci, out, sizeof out, "cancel",
        "0190a5f8-7c1e-7a3b-9c4d-000000000001", NULL), 0);
    assert_contains(out, "cancelled (it was queued)");
    assert_string_equal(textf(s, "SELECT state || ' ' || max_attempts FROM "
        "workq.tasks WHERE id = '0190a5f8-7c1e-7a3b-9c4d-000000000001'"),
        "cancelled 4");
    wq_store_close(s);
}

/* ---- dlq ---------------------------------------------------------------------------- */

static void
test_cli_dlq(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(ci);
    char a1[40], a2[40], b1[40], old[40];
    json_t *j;

    (void)state;
    snprintf(a1, sizeof a1, "%s", dead_task(s, "a", "send", "SMTP 550 "
        "mailbox full", "10 minutes"));
    snprintf(a2, sizeof a2, "%s", dead_task(s, "a", "resize", "bad image",
        "3 hours"));
    snprintf(b1, sizeof b1, "%s", dead_task(s, "b", "send", "smtp 421",
        "20 minutes"));
    snprintf(old, sizeof old, "%s", dead_task(s, "b", "send", "timeout",
        "10 days"));
    insert_task(s, "a", "send", NULL, "succeeded", 1, 3, NULL,
        ", finished_at", ", now()");

    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "dlq", "list",
        NULL), 0);
    assert_int_equal(json_lines(out), 4);
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "dlq", "list",
        "--queue", "a", NULL), 0);
    assert_int_equal(json_lines(out), 2);
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "dlq", "list",
        "--error", "smtp", NULL), 0);
    assert_int_equal(json_lines(out), 2);
    assert_contains(out, a1);
    assert_contains(out, b1);
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "dlq", "list",
        "--type", "send", "--older-than", "1h", NULL), 0);
    assert_int_equal(json_lines(out), 1);
    assert_contains(out, old);
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "dlq", "list",
        "--newer-than", "30m", NULL), 0);
    assert_int_equal(json_lines(out), 2);
    assert_int_equal(workq_cli(ci, out, sizeof out, "dlq", "list", NULL), 0);
    assert_contains(out, "COPY");
    assert_contains(out, "mailbox full");
    assert_int_equal(workq_cli(ci, out, sizeof out, "dlq", "show", a2, NULL),
        0);
    assert_contains(out, "last error  bad image");

    /* replay and purge want a filter or --all */
    assert_int_equal(workq_cli(ci, out, sizeof out, "dlq", "replay", NULL),
        64);
    assert_contains(out, "--all");
    assert_int_equal(workq_cli(ci, out, sizeof out, "dlq", "purge", NULL),
        64);

    /* --dry-run counts and changes nothing */
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "dlq",
        "replay", "--error", "SMTP", "--dry-run", NULL), 0);
    j = json_of(out);
    assert_int_equal(json_integer_value(json_object_get(j, "matched")), 2);
    json_decref(j);
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'dead'"), 4);

    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "dlq",
        "replay", "--error", "SMTP", NULL), 0);
    j = json_of(out);
    assert_int_equal(json_integer_value(json_object_get(j, "replayed")), 2);
    assert_int_equal(json_array_size(json_object_get(j, "ids")), 2);
    json_decref(j);
    assert_int_equal(wq_test_pg_numf(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'retry_wait' AND attempt_base = 2 AND max_attempts = "
        "4 AND id IN ('%s', '%s')", a1, b1), 2);

    assert_int_equal(workq_cli(ci, out, sizeof out, "dlq", "purge",
        "--older-than", "2h", "--dry-run", NULL), 0);
    assert_contains(out, "2 dead task(s) would be purged");
    assert_int_equal(workq_cli(ci, out, sizeof out, "dlq", "purge",
        "--older-than", "2h", "--limit", "1", "--yes", NULL), 0);
    assert_contains(out, "purged 1 dead task(s)");
    assert_contains(out, "are not removed from the broker");
    assert_int_equal(workq_cli(ci, out, sizeof out, "dlq", "purge", "--all",
        "--yes", NULL), 0);
    assert_contains(out, "purged 1 dead task(s)");
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'dead'"), 0);
    /* the history went with them; the replayed tasks keep theirs */
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM "
        "workq.attempts"), 4);

    assert_int_equal(workq_cli(ci, out, sizeof out, "dlq", NULL), 64);
    assert_int_equal(workq_cli(ci, out, sizeof out, "dlq", "explode", NULL),
        64);
    assert_int_equal(workq_cli(ci, out, sizeof out, "dlq", "list",
        "--older-than", "soon", NULL), 64);
    assert_int_equal(workq_cli(ci, out, sizeof out, "dlq", "show", NULL), 64);
    wq_store_close(s);
}

/*
 * `workq dlq purge --all` through a terminal (script(1) gives it a pty)
 * with `answer` typed at the prompt; returns its exit status.
 */
static int
purge_on_tty(const char *ci, const char *answer)
{
    char cmd[1400], env_ci[1200];
    const char *argv[] = { "/usr/bin/script", "-qec", cmd, "/dev/null",
        NULL };
    const char *env[] = { env_ci, NULL };

    snprintf(env_ci, sizeof env_ci, "WORKQ_POSTGRES_CONNINFO=%s", ci);
    snprintf(cmd, sizeof cmd, "%s dlq purge --all", wq_test_bin("workq"));
    return wq_test_cmd(argv, env, answer, out, sizeof out);
}

/*
 * purge cannot be undone: without a terminal it wants --yes (64, and
 * nothing is deleted); on a terminal it shows the count and what happens
 * to the broker's copies, and purges only on "y".
 */
static void
test_cli_dlq_purge_confirms(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(ci);

    (void)state;
    dead_task(s, "mail", "send", "boom", "1 hour");
    dead_task(s, "mail", "send", "boom", "2 hours");

    assert_int_equal(workq_cli(ci, out, sizeof out, "dlq", "purge", "--all",
        NULL), 64);
    assert_contains(out, "--yes");
    assert_contains(out, "no terminal");
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'dead'"), 2);

    assert_int_equal(purge_on_tty(ci, "n\n"), 1);
    assert_contains(out, "This deletes 2 dead task(s)");
    assert_contains(out, "are not removed from the broker");
    assert_contains(out, "[y/N]");
    assert_contains(out, "nothing purged");
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'dead'"), 2);

    assert_int_equal(purge_on_tty(ci, "y\n"), 0);
    assert_contains(out, "purged 2 dead task(s)");
    assert_int_equal(wq_test_pg_num(s, "SELECT count(*) FROM workq.tasks "
        "WHERE state = 'dead'"), 0);

    /* --json: what happens to the copies is part of the answer */
    dead_task(s, "mail", "send", "boom", "1 hour");
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "dlq", "purge",
        "--all", "--yes", NULL), 0);
    {
        json_t *j = json_of(out);

        assert_int_equal(json_integer_value(json_object_get(j, "purged")),
            1);
        if (strstr(jstr(j, "broker_copies"), "not removed") == NULL)
            fail_msg("broker_copies: %s", jstr(j, "broker_copies"));
        json_decref(j);
    }
    wq_store_close(s);
}

/* ---- stats and workers ---------------------------------------------------------- */

static void
test_cli_stats(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(ci);
    json_t *j, *a, *counts;

    (void)state;
    for (int i = 0; i < 3; i++)
        insert_task(s, "a", "t", NULL, "succeeded", 1, 3, NULL,
            ", finished_at", ", now() - interval '10 seconds'");
    insert_task(s, "a", "t", NULL, "succeeded", 1, 3, NULL, ", finished_at",
        ", now() - interval '1 hour'");
    insert_task(s, "a", "t", NULL, "queued", 0, 3, "now() - interval '90 s'",
        "", "");
    insert_task(s, "a", "t", NULL, "retry_wait", 1, 3,
        "now() + interval '1 hour'", "", "");
    dead_task(s, "b", "t", "x", "1 minute");
    textf(s, "SELECT workq.enqueue('c', 't')");

    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "stats", NULL),
        0);
    j = json_of(out);
    assert_int_equal(json_array_size(j), 3);
    a = json_array_get(j, 0);
    assert_string_equal(jstr(a, "queue"), "a");
    counts = json_object_get(a, "counts");
    assert_int_equal(json_integer_value(json_object_get(counts, "succeeded")),
        4);
    assert_int_equal(json_integer_value(json_object_get(counts,
        "retry_wait")), 1);
    assert_int_equal(json_integer_value(json_object_get(a,
        "succeeded_last_minute")), 3);
    assert_true(json_real_value(json_object_get(a, "rate_per_second"))
        == 3.0 / 60);
    assert_true(json_integer_value(json_object_get(a,
        "oldest_waiting_seconds")) >= 89);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 1),
        "dead")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 2),
        "outbox")), 1);
    json_decref(j);
    assert_int_equal(workq_cli(ci, out, sizeof out, "stats", "--queue", "a",
        NULL), 0);
    assert_contains(out, "OLDEST WAIT");
    check(strstr(out, "\nb ") == NULL, "--queue a shows queue b:\n%s", out);
    wq_store_close(s);
}

/*
 * `workq --json stats --queue Q` against the private broker of `kind`;
 * returns the "broker" object of Q (a new reference) once its "waiting"
 * is `want`, or fails the test after 20 s with the last answer.
 */
static json_t *
broker_stats(int kind, const char *ci, const char *queue, long long want)
{
    const char *argv[] = { NULL, "--json", "stats", "--queue", queue, NULL };
    char bin[1024];
    json_t *j = NULL, *b = NULL;

    snprintf(bin, sizeof bin, "%s", wq_test_bin("workq"));
    argv[0] = bin;
    for (int i = 0; i < 100; i++) {
        const char *env[16];

        wq_test_env_for(kind, ci, env, WQ_ARRAY_LEN(env));
        if (wq_test_cmd(argv, env, NULL, out, sizeof out) != 0)
            fail_msg("workq stats failed: %s", out);
        j = json_of(out);
        b = json_object_get(json_array_get(j, 0), "broker");
        if (b != NULL && json_integer_value(json_object_get(b, "waiting"))
            == want && json_is_integer(json_object_get(b, "waiting"))) {
            json_incref(b);
            json_decref(j);
            return b;
        }
        json_decref(j);
        usleep(200000);
    }
    fail_msg("%s: broker waiting never became %lld: %s",
        wq_test_kind_name(kind), want, out);
    return NULL;
}

/*
 * The broker's backlog in `workq stats`: N messages on a fresh queue
 * with no consumer show as waiting N (RabbitMQ: ready; Kafka: lag of
 * group workq.Q counted from the low watermark, as it has committed
 * nothing), and consuming 3 brings it to N - 3 (Kafka: once the
 * consumer committed them).  No PostgreSQL row exists for any of them.
 * Messages in the high and low bands add to the queue's figures and show
 * in its "bands" (and under `workq stats`'s table); a consumer in the
 * queue's group that takes the high band empties it (Kafka: the band's
 * lag is the queue's group's).
 */
/* Publishes n messages to the band `priority` of queue q. */
static void
publish_n(int kind, const char *q, const char *priority, int n)
{
    struct wq_transport_conf tc;
    wq_transport *t;
    char err[WQ_ERRLEN], band[300], key[32];

    snprintf(band, sizeof band, "%s.priority-%s", q, priority);
    wq_test_transport_conf(kind, &tc);
    if (wq_transport_open(&tc, &t, err, sizeof err) != 0
        || wq_transport_declare(t, band, err, sizeof err) != 0)
        fail_msg("%s: %s", band, err);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%s%d", priority, i);
        if (wq_transport_publish(t, band, key, strlen(key), "x", 1, NULL, err,
            sizeof err) != 0)
            fail_msg("publish: %s", err);
    }
    if (wq_transport_flush(t, 30000, err, sizeof err) != 0)
        fail_msg("flush: %s", err);
    wq_transport_close(t, 5000);
}

/* `workq stats --queue q` (text) against the broker of `kind`, into out. */
static int
stats_text(int kind, const char *ci, const char *q)
{
    const char *argv[] = { NULL, "stats", "--queue", q, NULL }, *env[16];
    char bin[1024];

    snprintf(bin, sizeof bin, "%s", wq_test_bin("workq"));
    argv[0] = bin;
    wq_test_env_for(kind, ci, env, WQ_ARRAY_LEN(env));
    return wq_test_cmd(argv, env, NULL, out, sizeof out);
}

/* The "bands" member `name` of a broker object says `want` ready. */
static void
band_ready(const json_t *b, const char *name, long long want)
{
    const json_t *x = json_object_get(json_object_get(b, "bands"), name);

    if (!json_is_integer(json_object_get(x, "ready"))
        || json_integer_value(json_object_get(x, "ready")) != want)
        fail_msg("band %s: ready is not %lld: %s", name, want, out);
}

static void
stats_backlog(int kind)
{
    enum { N = 9, TAKE = 3, HIGH = 4, LOW = 2 };
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("stats-backlog");
    struct wq_transport_conf tc;
    wq_transport *t;
    wq_delivery *d;
    char err[WQ_ERRLEN], key[300], band[300];
    const char *bandp;
    json_t *b;
    int got = 0;

    wq_test_forget_queue(kind, q);
    wq_test_transport_conf(kind, &tc);
    if (wq_transport_open(&tc, &t, err, sizeof err) != 0
        || wq_transport_declare(t, q, err, sizeof err) != 0)
        fail_msg("%s: %s", wq_test_kind_name(kind), err);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "k%d", i);
        if (wq_transport_publish(t, q, key, strlen(key), "x", 1, NULL, err,
                sizeof err) != 0)
            fail_msg("publish: %s", err);
    }
    if (wq_transport_flush(t, 30000, err, sizeof err) != 0)
        fail_msg("flush: %s", err);
    wq_transport_close(t, 5000);

    b = broker_stats(kind, ci, q, N);
    if (kind == WQ_TRANSPORT_KAFKA) {
        json_t *parts = json_object_get(b, "partitions");
        long long sum = 0;

        assert_int_equal(json_integer_value(json_object_get(b, "lag")), N);
        snprintf(key, sizeof key, "workq.%s", q);
        if (strcmp(jstr(b, "group"), key) != 0)
            fail_msg("group %s, want %s", jstr(b, "group"), key);
        assert_true(json_array_size(parts) >= 1);
        for (size_t i = 0; i < json_array_size(parts); i++) {
            json_t *p = json_array_get(parts, i);

            assert_true(json_is_null(json_object_get(p, "committed")));
            sum += json_integer_value(json_object_get(p, "lag"));
        }
        assert_int_equal(sum, N);
        /* the message at the first uncommitted offset tells its age */
        assert_true(json_is_integer(json_object_get(b,
            "oldest_waiting_seconds")));
    } else {
        assert_int_equal(json_integer_value(json_object_get(b, "consumers")),
            0);
        assert_true(json_is_null(json_object_get(b, "unacked")));
        assert_true(json_is_null(json_object_get(b,
            "oldest_waiting_seconds")));
    }
    json_decref(b);

    /* a consumer of the queue's own group takes and acks TAKE */
    wq_test_transport_conf(kind, &tc);
    tc.kafka_group_id = NULL;
    if (wq_transport_open(&tc, &t, err, sizeof err) != 0
        || wq_transport_subscribe(t, &q, 1, err, sizeof err) != 0)
        fail_msg("consume: %s", err);
    for (int i = 0; i < 600 && got < TAKE; i++) {
        int rc = wq_transport_poll(t, &d, 100, err, sizeof err);

        if (rc == WQ_EAGAIN)
            continue;
        if (rc != 0)
            fail_msg("poll: %s", err);
        if (wq_transport_ack(t, d, err, sizeof err) != 0)
            fail_msg("ack: %s", err);
        got++;
    }
    assert_int_equal(got, TAKE);
    wq_transport_close(t, 10000);
    b = broker_stats(kind, ci, q, N - TAKE);
    if (kind == WQ_TRANSPORT_KAFKA) {
        json_t *parts = json_object_get(b, "partitions");
        int committed = 0;

        for (size_t i = 0; i < json_array_size(parts); i++)
            committed += json_is_integer(json_object_get(
                json_array_get(parts, i), "committed"));
        assert_true(committed >= 1);
    }
    json_decref(b);

    /* the priority bands: the queue's figures are their sums, and each
     * band has its own; Kafka reads a band's lag in the queue's group */
    publish_n(kind, q, "high", HIGH);
    publish_n(kind, q, "low", LOW);
    b = broker_stats(kind, ci, q, N - TAKE + HIGH + LOW);
    band_ready(b, "high", HIGH);
    band_ready(b, "normal", N - TAKE);
    band_ready(b, "low", LOW);
    if (kind == WQ_TRANSPORT_KAFKA) {
        json_t *parts = json_object_get(b, "partitions");
        long long sum = 0;

        for (size_t i = 0; i < json_array_size(parts); i++)
            sum += json_integer_value(json_object_get(json_array_get(parts,
                i), "lag"));
        assert_int_equal(sum, N - TAKE + HIGH + LOW);
    }
    json_decref(b);
    assert_int_equal(stats_text(kind, ci, q), 0);
    snprintf(key, sizeof key, "%s: broker waiting by priority: high %d, "
        "normal %d, low %d\n", q, HIGH, N - TAKE, LOW);
    assert_contains(out, key);

    /* a consumer in the queue's group takes the high band */
    wq_test_transport_conf(kind, &tc);
    snprintf(key, sizeof key, "workq.%s", q);
    tc.kafka_group_id = key;
    snprintf(band, sizeof band, "%s.priority-high", q);
    bandp = band;
    if (wq_transport_open(&tc, &t, err, sizeof err) != 0
        || wq_transport_subscribe(t, &bandp, 1, err, sizeof err) != 0)
        fail_msg("consume: %s", err);
    for (int i = 0, n = 0; i < 600 && n < HIGH; i++) {
        int rc = wq_transport_poll(t, &d, 100, err, sizeof err);

        if (rc == WQ_EAGAIN)
            continue;
        if (rc != 0)
            fail_msg("poll: %s", err);
        if (wq_transport_ack(t, d, err, sizeof err) != 0)
            fail_msg("ack: %s", err);
        n++;
    }
    wq_transport_close(t, 10000);
    b = broker_stats(kind, ci, q, N - TAKE + LOW);
    band_ready(b, "high", 0);
    json_decref(b);
}

static void
test_cli_stats_backlog_rabbitmq(void **state)
{
    (void)state;
    stats_backlog(WQ_TRANSPORT_RABBITMQ);
}

static void
test_cli_stats_backlog_kafka(void **state)
{
    (void)state;
    stats_backlog(WQ_TRANSPORT_KAFKA);
}

static void
test_cli_workers(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(ci);
    json_t *j;

    (void)state;
    sqlf(s, "INSERT INTO workq.workers (id, pid, hostname, version, queues, "
        "in_flight, heartbeat_at, stopped_at) VALUES "
        "('w-live', 10, 'h1', 'v1', '{mail,sms}', 3, now(), NULL), "
        "('w-stale', 11, 'h2', 'v1', '{mail}', 1, now() - interval '5 min', "
        "NULL), "
        "('w-stopped', 12, 'h3', 'v1', '{mail}', 0, now(), now())");
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "workers",
        NULL), 0);
    assert_int_equal(json_lines(out), 2);
    j = json_of(out);
    assert_string_equal(jstr(j, "id"), "w-live");
    assert_string_equal(jstr(j, "status"), "live");
    assert_int_equal(json_array_size(json_object_get(j, "queues")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "in_flight")), 3);
    json_decref(j);
    assert_contains(out, "\"status\":\"stale\"");
    assert_int_equal(workq_cli(ci, out, sizeof out, "workers", "--all",
        NULL), 0);
    assert_contains(out, "w-stopped");
    assert_contains(out, "stopped");
    assert_contains(out, "HEARTBEAT");
    assert_contains(out, "mail,sms");
    wq_store_close(s);
}

/* ---- help ---------------------------------------------------------------------------- */

static void
test_cli_ops_help(void **state)
{
    static const char *const cmds[] = {
        "status", "list", "retry", "cancel", "dlq", "stats", "workers",
    };

    (void)state;
    assert_int_equal(workq_cli("", out, sizeof out, "--help", NULL), 0);
    for (size_t i = 0; i < WQ_ARRAY_LEN(cmds); i++) {
        char name[64];

        assert_contains(out, cmds[i]);
        snprintf(name, sizeof name, "NAME\n    workq %s - ", cmds[i]);
        assert_int_equal(workq_cli("", out + 32768, sizeof out - 32768,
            cmds[i], "--help", NULL), 0);
        assert_contains(out + 32768, name);
        assert_contains(out + 32768, "SYNOPSIS");
        assert_contains(out + 32768, "EXIT STATUS");
        assert_int_equal(workq_cli("", out + 32768, sizeof out - 32768,
            "help", cmds[i], NULL), 0);
        assert_contains(out + 32768, name);
    }
}


/* ---- task data on a terminal ---------------------------------------------------- */

/* No control byte but the line ends, no C1 control, and valid UTF-8. */
static void
assert_no_raw_controls(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0';
        p++) {
        if ((*p < 0x20 && *p != '\n') || *p == 0x7f)
            fail_msg("raw control byte 0x%02x in:\n%s", *p, text);
        if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
            fail_msg("raw C1 control in:\n%s", text);
    }
}

/* No line of text starts with `start`: nothing forged a line. */
static void
assert_no_line_starts(const char *text, const char *start)
{
    for (const char *p = text; p != NULL; p = strchr(p, '\n'),
        p = p != NULL ? p + 1 : NULL)
        if (strncmp(p, start, strlen(start)) == 0)
            fail_msg("a line starts with '%s':\n%s", start, text);
}

static void
test_cli_escapes_task_data(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    wq_store *s = wq_test_pg_open(ci);
    const char *views[][3] = {
        { "status", NULL, NULL }, { "dlq", "show", NULL },
    };
    char id[40];
    json_t *j;

    (void)state;
    snprintf(id, sizeof id, "%s", dead_task(s, "mail", "send", "x",
        "1 hour"));
    sqlf(s, "UPDATE workq.tasks SET type = E'ty\\npe\\x1b[31m',"
        " idempotency_key = E'k\\ney\\x1b[31m',"
        " last_error = E'err\\nstate       succeeded\\x1b[31m',"
        " worker = E'w\\x1b]0;title\\x07',"
        " result = convert_to(E'res\\n\\x1b[31mult', 'UTF8'),"
        " payload = convert_to(E'{\"a\":\"\\u0085\"}\\x1b[2J', 'UTF8')"
        " WHERE id = '%s'", id);
    sqlf(s, "UPDATE workq.attempts SET error = E'att\\n\\x1b[31m',"
        " worker = E'w\\r2' WHERE task_id = '%s'", id);

    for (size_t v = 0; v < WQ_ARRAY_LEN(views); v++) {
        if (views[v][1] == NULL)
            assert_int_equal(workq_cli(ci, out, sizeof out, views[v][0], id,
                NULL), 0);
        else
            assert_int_equal(workq_cli(ci, out, sizeof out, views[v][0],
                views[v][1], id, NULL), 0);
        assert_no_raw_controls(out);
        assert_no_line_starts(out, "state       succeeded");
        assert_no_line_starts(out, "pe");
        assert_contains(out, "type        ty\\npe\\e[31m");
        assert_contains(out, "key         k\\ney\\e[31m");
        assert_contains(out, "last error  err\\nstate       succeeded"
            "\\e[31m");
        assert_contains(out, "worker      w\\e]0;title\\x07");
        assert_contains(out, "result      12 bytes: res\\n\\e[31mult");
        assert_contains(out, "payload     14 bytes: {\"a\":\"\\u0085\"}"
            "\\e[2J");
        assert_contains(out, "att\\n\\e[31m");
        assert_contains(out, "w\\r2");
    }

    /* list and dlq list: one row a task, escaped as well */
    assert_int_equal(workq_cli(ci, out, sizeof out, "list", NULL), 0);
    assert_no_raw_controls(out);
    assert_contains(out, "ty\\npe\\e[31m");
    assert_contains(out, "res\\n\\e[31mult");
    assert_contains(out, "{\"a\":\"\\u0085\"}\\e[2J");
    assert_int_equal(workq_cli(ci, out, sizeof out, "dlq", "list", NULL), 0);
    assert_no_raw_controls(out);
    assert_contains(out, "err\\nstate       succeeded\\e[31m");

    /* --json carries the exact text */
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "status", id,
        NULL), 0);
    j = json_of(out);
    assert_string_equal(jstr(j, "type"), "ty\npe\x1b[31m");
    assert_string_equal(jstr(j, "result"), "res\n\x1b[31mult");
    assert_string_equal(jstr(j, "payload"), "{\"a\":\"\xc2\x85\"}\x1b[2J");
    json_decref(j);

    /* bytes that are not UTF-8: hex on the page, base64 in JSON */
    sqlf(s, "UPDATE workq.tasks SET result = '\\xff00'::bytea,"
        " payload = decode(repeat('61', 3000), 'hex') WHERE id = '%s'", id);
    assert_int_equal(workq_cli(ci, out, sizeof out, "status", id, NULL), 0);
    assert_contains(out, "result      2 bytes: hex: ff 00\n");
    assert_contains(out, "payload     3000 bytes: aaaa");
    assert_contains(out, "a ... (3000 bytes, truncated; --json for all)\n");
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "status", id,
        NULL), 0);
    j = json_of(out);
    assert_string_equal(jstr(j, "result_base64"), "/wA=");
    assert_null(json_object_get(j, "result"));
    assert_int_equal(strlen(jstr(j, "payload")), 3000);
    json_decref(j);
    assert_int_equal(workq_cli(ci, out, sizeof out, "--json", "list", NULL),
        0);
    j = json_of(out);
    assert_string_equal(jstr(j, "result_base64"), "/wA=");
    assert_int_equal(strlen(jstr(j, "payload")), 3000);
    json_decref(j);
    assert_int_equal(workq_cli(ci, out, sizeof out, "list", NULL), 0);
    assert_contains(out, "hex: ff 00");
    assert_contains(out, "aaaaaaaa...");
    wq_store_close(s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cli_status),
    cmocka_unit_test(test_cli_escapes_task_data),
    cmocka_unit_test(test_cli_list),
    cmocka_unit_test(test_cli_retry),
    cmocka_unit_test(test_cli_cancel),
    cmocka_unit_test(test_cli_receipts),
    cmocka_unit_test(test_cli_dlq),
    cmocka_unit_test(test_cli_dlq_purge_confirms),
    cmocka_unit_test(test_cli_stats),
    cmocka_unit_test(test_cli_stats_backlog_rabbitmq),
    cmocka_unit_test(test_cli_stats_backlog_kafka),
    cmocka_unit_test(test_cli_workers),
    cmocka_unit_test(test_cli_ops_help),
};

WQ_TEST_MAIN("cli_ops", tests)

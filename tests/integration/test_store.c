/*
 * test_store.c - the store and migrate against a real PostgreSQL (the
 * private server of tests/services, WORKQ_TEST_PG_CONNINFO).
 *
 * The schema name is fixed (workq), so each test gets a database of its
 * own: the setup creates wqtest_<pid>_<n> from the maintenance connection
 * and the teardown drops it (WITH (FORCE), so a child still connected
 * cannot keep it).  A missing server fails every test: these tests never
 * skip.  Values are checked through the store's API where it has one and
 * with plain libpq where it has none yet (dead letters are write-only).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "clock.h"
#include "migrate.h"
#include "store.h"
#include "store_claims.h"
#include "store_flow.h"
#include "store_sched.h"
#include "store_int.h"
#include "uuid.h"
#include "wq_test.h"
#include "wq_test_pg.h"

/* The test's own database (tests/wq_test_pg.h drops it at exit). */
static struct {
    char conninfo[1024];
} db;

#define open_or_fail(conninfo) wq_test_pg_open(conninfo)
#define exec_ok(s, sql) wq_test_pg_exec((s), (sql))
#define query_num(s, sql) wq_test_pg_num((s), (sql))

static int
db_setup(void **state)
{
    (void)state;
    snprintf(db.conninfo, sizeof db.conninfo, "%s", wq_test_pg_create_db());
    return 0;
}

/* A store on this test's database, migrated to the latest version. */
static wq_store *
open_migrated(void)
{
    char err[WQ_ERRLEN];
    wq_store *s = open_or_fail(db.conninfo);

    if (wq_migrate_run(s, NULL, NULL, err, sizeof err) != 0)
        fail_msg("migrate: %s", err);
    return s;
}

/* A random UUIDv7-shaped id. */
static void
make_id(uint8_t id[16])
{
    static unsigned seed;

    if (seed == 0)
        seed = (unsigned)time(NULL) ^ (unsigned)getpid() << 8;
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(rand_r(&seed) >> 7);
    id[6] = (uint8_t)((id[6] & 0x0f) | 0x70);
    id[8] = (uint8_t)((id[8] & 0x3f) | 0x80);
}

/* A port on 127.0.0.1 that nobody listens on (bound, then released). */
static int
closed_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_true(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* --- migrate --------------------------------------------------------- */

static void
test_store_migrate_empty_db(void **state)
{
    static const char *const tables[] = { "schema_migrations", "tasks",
        "attempts", "dead_letters", "workers", "cron_ticks", "outbox" };
    char err[WQ_ERRLEN], sql[160];
    int version = -1, from = -1, to = -1;
    wq_store *s = open_or_fail(db.conninfo);

    (void)state;
    assert_int_equal(wq_migrate_version(s, &version, err, sizeof err), 0);
    assert_int_equal(version, 0);
    /* a daemon must not start on a database never migrated */
    assert_int_equal(wq_migrate_check(s, err, sizeof err), WQ_ESTORE);
    assert_non_null(strstr(err, "workq migrate"));

    if (wq_migrate_run(s, &from, &to, err, sizeof err) != 0)
        fail_msg("migrate: %s", err);
    assert_int_equal(from, 0);
    assert_int_equal(to, wq_migrate_latest());
    assert_int_equal(wq_migrate_version(s, &version, err, sizeof err), 0);
    assert_int_equal(version, wq_migrate_latest());
    assert_int_equal(wq_migrate_check(s, err, sizeof err), 0);
    for (size_t i = 0; i < WQ_ARRAY_LEN(tables); i++) {
        snprintf(sql, sizeof sql, "SELECT (to_regclass('workq.%s') "
            "IS NOT NULL)::int", tables[i]);
        if (query_num(s, sql) != 1)
            fail_msg("table workq.%s missing after migrate", tables[i]);
    }
    assert_int_equal(query_num(s, "SELECT count(*) FROM "
        "workq.schema_migrations WHERE checksum ~ '^[0-9a-f]{64}$'"),
        wq_migrate_latest());
    wq_store_close(s);
}

static void
test_store_migrate_twice_is_noop(void **state)
{
    char err[WQ_ERRLEN];
    int from = -1, to = -1;
    long long rows;
    wq_store *s = open_migrated();

    (void)state;
    rows = query_num(s, "SELECT count(*) FROM workq.schema_migrations");
    assert_int_equal(rows, wq_migrate_latest());
    if (wq_migrate_run(s, &from, &to, err, sizeof err) != 0)
        fail_msg("second migrate: %s", err);
    assert_int_equal(from, wq_migrate_latest());
    assert_int_equal(to, wq_migrate_latest());
    assert_int_equal(query_num(s,
        "SELECT count(*) FROM workq.schema_migrations"), rows);
    /* the store is usable after migrate: no transaction left open */
    assert_int_equal(PQtransactionStatus(wq_store_conn(s)), PQTRANS_IDLE);
    wq_store_close(s);
}

/* In a child: migrate, write "rc from to" to fd, exit. */
static void
migrate_child(int fd)
{
    char err[WQ_ERRLEN], line[64];
    int from = -1, to = -1, rc;
    wq_store *s;

    if ((rc = wq_store_open(db.conninfo, NULL, &s, err, sizeof err)) == 0) {
        rc = wq_migrate_run(s, &from, &to, err, sizeof err);
        wq_store_close(s);
    }
    if (rc != 0)
        fprintf(stderr, "child migrate: %s\n", err);
    snprintf(line, sizeof line, "%d %d %d\n", rc, from, to);
    if (write(fd, line, strlen(line)) < 0)
        _exit(3);
    _exit(rc == 0 ? 0 : 1);
}

static void
test_store_migrate_concurrent(void **state)
{
    char lock[96], buf[128] = "";
    int fds[2], status, waiting = 0, applied = 0, runs = 0;
    pid_t pids[2];
    /* static: the children inherit it and _exit without closing it (that
     * would end the parent's session), so it must stay reachable */
    static wq_store *holder;
    size_t got = 0;
    ssize_t n;

    (void)state;
    holder = open_or_fail(db.conninfo);
    /* Hold the migrate lock so that both children queue on it, then let
     * them race for it. */
    snprintf(lock, sizeof lock, "BEGIN; SELECT pg_advisory_xact_lock(%lld)",
        (long long)WQ_MIGRATE_LOCK_KEY);
    exec_ok(holder, lock);
    assert_int_equal(pipe(fds), 0);
    for (int i = 0; i < 2; i++) {
        fflush(NULL);
        assert_true((pids[i] = fork()) >= 0);
        if (pids[i] == 0) {
            close(fds[0]);
            migrate_child(fds[1]);
        }
    }
    close(fds[1]);
    for (int i = 0; i < 3000 && waiting < 2; i++) {
        waiting = (int)query_num(holder, "SELECT count(*) FROM pg_locks "
            "WHERE locktype = 'advisory' AND NOT granted AND database = "
            "(SELECT oid FROM pg_database "
            "WHERE datname = current_database())");
        if (waiting < 2)
            usleep(10000);
    }
    exec_ok(holder, "COMMIT");
    assert_int_equal(waiting, 2);

    for (int i = 0; i < 2; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    while ((n = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    close(fds[0]);
    buf[got] = '\0';
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        int rc, from, to;

        assert_int_equal(sscanf(line, "%d %d %d", &rc, &from, &to), 3);
        assert_int_equal(rc, 0);
        assert_int_equal(to, wq_migrate_latest());
        applied += from == 0;
        runs++;
    }
    /* Both reached the latest version and one started from nothing.  The
     * runs may take turns migration by migration (each holds the lock
     * for one transaction), but each migration was applied once: the
     * version table has one row per migration (its primary key would
     * have refused a second) and neither run failed. */
    assert_int_equal(applied, 1);
    assert_int_equal(runs, 2);
    assert_int_equal(query_num(holder,
        "SELECT count(*) FROM workq.schema_migrations"),
        wq_migrate_latest());
    wq_store_close(holder);
}

static void
test_store_migrate_future_refused(void **state)
{
    char err[WQ_ERRLEN], sql[160];
    int from = -1, to = -1, latest = wq_migrate_latest();
    wq_store *s = open_migrated();

    (void)state;
    snprintf(sql, sizeof sql, "INSERT INTO workq.schema_migrations "
        "(version, name, checksum) VALUES (%d, 'from_the_future', 'x')",
        latest + 1);
    exec_ok(s, sql);
    assert_int_equal(wq_migrate_run(s, &from, &to, err, sizeof err),
        WQ_ESTORE);
    if (strstr(err, "newer") == NULL)
        fail_msg("error does not say the schema is newer: %s", err);
    assert_int_equal(to, latest + 1);
    /* nothing was changed and no transaction is left open */
    assert_int_equal(PQtransactionStatus(wq_store_conn(s)), PQTRANS_IDLE);
    assert_int_equal(query_num(s,
        "SELECT count(*) FROM workq.schema_migrations"), latest + 1);
    /* daemons may run on a newer schema (migrations keep them working) */
    assert_int_equal(wq_migrate_check(s, err, sizeof err), 0);
    wq_store_close(s);
}

static void
test_store_migrate_refuses_open_transaction(void **state)
{
    char err[WQ_ERRLEN];
    wq_store *s = open_or_fail(db.conninfo);

    (void)state;
    exec_ok(s, "BEGIN");
    assert_int_equal(wq_migrate_run(s, NULL, NULL, err, sizeof err),
        WQ_EINVAL);
    exec_ok(s, "ROLLBACK");
    wq_store_close(s);
}

/* --- tasks ----------------------------------------------------------- */

static void
test_store_task_insert_duplicate_key(void **state)
{
    char err[WQ_ERRLEN];
    struct wq_task_new t = { .queue = "emails", .type = "send",
        .idempotency_key = "order-17", .payload = "a", .payload_len = 1,
        .state = WQ_TASK_QUEUED, .max_attempts = 3 };
    struct wq_task_row row;
    uint8_t first[16];
    int inserted = -1;
    wq_store *s = open_migrated();

    (void)state;
    make_id(t.id);
    memcpy(first, t.id, 16);
    if (wq_store_task_insert(s, &t, &inserted, err, sizeof err) != 0)
        fail_msg("insert: %s", err);
    assert_int_equal(inserted, 1);

    /* the same key under a new id (a client retrying its submit) */
    make_id(t.id);
    t.payload = "b";
    if (wq_store_task_insert(s, &t, &inserted, err, sizeof err) != 0)
        fail_msg("second insert: %s", err);
    assert_int_equal(inserted, 0);
    assert_int_equal(wq_store_task_get(s, t.id, &row, err, sizeof err),
        WQ_ENOENT);
    wq_task_row_free(&row);

    /* the first row is untouched */
    if (wq_store_task_get(s, first, &row, err, sizeof err) != 0)
        fail_msg("get: %s", err);
    assert_memory_equal(row.payload, "a", 1);
    wq_task_row_free(&row);

    /* the same key in another queue is another task */
    t.queue = "sms";
    assert_int_equal(wq_store_task_insert(s, &t, &inserted, err,
        sizeof err), 0);
    assert_int_equal(inserted, 1);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.tasks"), 2);
    wq_store_close(s);
}

static void
test_store_task_get_fields(void **state)
{
    static const uint8_t payload[] = { 'p', 0, 1, 0xff, 0, 'q' };
    char err[WQ_ERRLEN], sql[512], idtext[37];
    struct wq_task_new t = { .queue = "video.encode-2", .type = "transcode",
        .idempotency_key = "clip/42", .payload = payload,
        .payload_len = sizeof payload,
        .headers_json = "{\"traceparent\": \"00-abc-01\", \"n\": 1}",
        .state = WQ_TASK_SCHEDULED, .attempt = 0, .max_attempts = 5,
        .run_at_ms = 4102444800123, .created_at_ms = 1700000000456 };
    struct wq_task_row row, again;
    int inserted;
    wq_store *s = open_migrated();

    (void)state;
    make_id(t.id);
    if (wq_store_task_insert(s, &t, &inserted, err, sizeof err) != 0)
        fail_msg("insert: %s", err);
    assert_int_equal(inserted, 1);
    if (wq_store_task_get(s, t.id, &row, err, sizeof err) != 0)
        fail_msg("get: %s", err);
    assert_memory_equal(row.id, t.id, 16);
    assert_string_equal(row.queue, t.queue);
    assert_string_equal(row.type, t.type);
    assert_string_equal(row.idempotency_key, t.idempotency_key);
    assert_int_equal(row.payload_len, sizeof payload);
    assert_memory_equal(row.payload, payload, sizeof payload);
    assert_string_equal(row.headers_json,
        "{\"n\": 1, \"traceparent\": \"00-abc-01\"}");  /* jsonb order */
    assert_int_equal(row.state, WQ_TASK_SCHEDULED);
    assert_int_equal(row.attempt, 0);
    assert_int_equal(row.max_attempts, 5);
    assert_int_equal(row.run_at_ms, t.run_at_ms);
    assert_int_equal(row.created_at_ms, t.created_at_ms);
    assert_true(row.updated_at_ms > 1700000000000);
    assert_int_equal(row.started_at_ms, 0);
    assert_int_equal(row.finished_at_ms, 0);
    assert_int_equal(row.lease_expires_at_ms, 0);
    assert_null(row.lease_owner);
    assert_null(row.worker);
    assert_null(row.last_error);
    assert_null(row.result);
    assert_int_equal(row.result_len, 0);

    /* the same row by its key */
    if (wq_store_task_get_by_key(s, t.queue, t.idempotency_key, &again, err,
        sizeof err) != 0)
        fail_msg("get by key: %s", err);
    assert_memory_equal(again.id, t.id, 16);
    wq_task_row_free(&again);

    /* what a worker records on success comes back too */
    for (int i = 0; i < 16; i++)
        snprintf(idtext + 2 * i, 3, "%02x", row.id[i]);
    snprintf(sql, sizeof sql, "UPDATE workq.tasks SET state = 'succeeded', "
        "attempt = 1, worker = 'w-1', started_at = now() - interval '2s', "
        "finished_at = now(), result = '\\x6f6b006b'::bytea, "
        "last_error = 'first try: boom', updated_at = now() "
        "WHERE id = '%s'", idtext);
    exec_ok(s, sql);
    wq_task_row_free(&row);
    if (wq_store_task_get(s, t.id, &row, err, sizeof err) != 0)
        fail_msg("get: %s", err);
    assert_int_equal(row.state, WQ_TASK_SUCCEEDED);
    assert_int_equal(row.attempt, 1);
    assert_string_equal(row.worker, "w-1");
    assert_string_equal(row.last_error, "first try: boom");
    assert_int_equal(row.result_len, 4);
    assert_memory_equal(row.result, "ok\0k", 4);
    assert_true(row.finished_at_ms - row.started_at_ms >= 1999);
    wq_task_row_free(&row);
    wq_task_row_free(&row);     /* twice is fine */

    /* no key: the id's text form, as DESIGN.md says */
    make_id(t.id);
    t.idempotency_key = NULL;
    t.headers_json = NULL;
    t.payload = NULL;
    t.payload_len = 0;
    t.state = WQ_TASK_QUEUED;
    t.run_at_ms = 0;
    t.created_at_ms = 0;
    if (wq_store_task_insert(s, &t, &inserted, err, sizeof err) != 0)
        fail_msg("insert: %s", err);
    if (wq_store_task_get(s, t.id, &row, err, sizeof err) != 0)
        fail_msg("get: %s", err);
    assert_int_equal(strlen(row.idempotency_key), 36);
    for (int i = 0, k = 0; i < 16; i++, k += 2) {
        char hex[3];

        if (k == 8 || k == 13 || k == 18 || k == 23)
            k++;
        snprintf(hex, sizeof hex, "%02x", t.id[i]);
        assert_memory_equal(row.idempotency_key + k, hex, 2);
    }
    assert_string_equal(row.headers_json, "{}");
    assert_non_null(row.payload);
    assert_int_equal(row.payload_len, 0);
    assert_int_equal(row.run_at_ms, 0);
    assert_true(row.created_at_ms > 1700000000000);
    wq_task_row_free(&row);

    assert_int_equal(wq_store_task_get_by_key(s, "nope", "nope", &row, err,
        sizeof err), WQ_ENOENT);
    wq_store_close(s);
}

/* Inserts t expecting the schema to refuse it with `sqlstate`. */
static void
insert_refused(wq_store *s, const struct wq_task_new *t, const char *sqlstate,
    const char *mention)
{
    char err[WQ_ERRLEN];
    int inserted = -1, rc;

    rc = wq_store_task_insert(s, t, &inserted, err, sizeof err);
    if (rc != WQ_EINVAL)
        fail_msg("queue \"%s\": want WQ_EINVAL, got %d (%s)", t->queue, rc,
            rc != 0 ? err : "inserted");
    assert_int_equal(inserted, 0);
    assert_string_equal(wq_store_last_sqlstate(s), sqlstate);
    if (mention != NULL && strstr(err, mention) == NULL)
        fail_msg("error does not mention %s: %s", mention, err);
}

static void
test_store_task_checks(void **state)
{
    char err[WQ_ERRLEN];
    struct wq_task_new t = { .queue = "q", .type = "noop",
        .state = WQ_TASK_QUEUED, .max_attempts = 1 };
    int rc;
    wq_store *s = open_migrated();

    (void)state;
    rc = wq_store_exec(s, "INSERT INTO workq.tasks (id, queue, type, "
        "idempotency_key, state, max_attempts) VALUES (gen_random_uuid(), "
        "'q', 'noop', 'k', 'bogus', 1)", err, sizeof err);
    assert_int_equal(rc, WQ_EINVAL);
    assert_string_equal(wq_store_last_sqlstate(s), "23514");
    if (strstr(err, "tasks_state_check") == NULL)
        fail_msg("error does not name the constraint: %s", err);

    make_id(t.id);
    t.queue = "has space";
    insert_refused(s, &t, "23514", "tasks_queue_check");
    t.queue = "emails.dead";    /* would collide with queue emails' DLQ */
    insert_refused(s, &t, "23514", "tasks_queue_check");
    t.queue = "q";
    t.headers_json = "[1, 2]";
    insert_refused(s, &t, "23514", "tasks_headers_check");
    t.headers_json = "{not json";
    insert_refused(s, &t, "22P02", NULL);
    t.headers_json = NULL;
    t.max_attempts = 0;
    insert_refused(s, &t, "23514", "tasks_max_attempts_check");
    t.max_attempts = 1;
    t.state = WQ_TASK_RUNNING;      /* no lease */
    insert_refused(s, &t, "23514", "tasks_running_check");
    t.state = WQ_TASK_RETRY_WAIT;   /* no run_at */
    insert_refused(s, &t, "23514", "tasks_due_check");
    t.state = WQ_TASK_DEAD;         /* no finished_at */
    insert_refused(s, &t, "23514", "tasks_final_check");

    /* a lease exists only while running: recording an outcome must
     * close it (DESIGN.md step 6) */
    exec_ok(s, "INSERT INTO workq.tasks (id, queue, type, idempotency_key, "
        "state, attempt, max_attempts, lease_owner, lease_expires_at, "
        "started_at) VALUES ('01890000-0000-7000-8000-000000000001', 'q', "
        "'noop', 'leased', 'running', 1, 3, 'w-1', "
        "now() + interval '30 s', now())");
    rc = wq_store_exec(s, "UPDATE workq.tasks SET state = 'succeeded', "
        "finished_at = now() WHERE idempotency_key = 'leased'", err,
        sizeof err);
    assert_int_equal(rc, WQ_EINVAL);
    if (strstr(err, "tasks_lease_check") == NULL)
        fail_msg("error does not name the constraint: %s", err);
    exec_ok(s, "UPDATE workq.tasks SET state = 'succeeded', "
        "finished_at = now(), lease_owner = NULL, lease_expires_at = NULL, "
        "worker = 'w-1', updated_at = now() "
        "WHERE idempotency_key = 'leased'");
    exec_ok(s, "DELETE FROM workq.tasks WHERE idempotency_key = 'leased'");

    /* refused in C before the server */
    t.state = (enum wq_task_state)42;
    assert_int_equal(wq_store_task_insert(s, &t, NULL, err, sizeof err),
        WQ_EINVAL);
    t.state = WQ_TASK_QUEUED;
    t.payload = "x";
    t.payload_len = WQ_PAYLOAD_MAX + 1;
    assert_int_equal(wq_store_task_insert(s, &t, NULL, err, sizeof err),
        WQ_ETOOBIG);

    /* after all that, the connection still works and nothing went in */
    t.payload_len = 1;
    assert_int_equal(wq_store_task_insert(s, &t, NULL, err, sizeof err), 0);
    assert_string_equal(wq_store_last_sqlstate(s), "");
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.tasks"), 1);
    wq_store_close(s);
}

/* --- dead letters ---------------------------------------------------- */

/* Reads dead letter `id`'s raw bytes (binary result) into a malloc'd
 * buffer; *len gets the length. */
static uint8_t *
dead_letter_raw(wq_store *s, int64_t id, size_t *len, char *error,
    size_t errorlen)
{
    char idtext[24];
    const char *values[1] = { idtext };
    PGresult *r;
    uint8_t *raw;

    snprintf(idtext, sizeof idtext, "%lld", (long long)id);
    r = PQexecParams(wq_store_conn(s), "SELECT raw, error FROM "
        "workq.dead_letters WHERE id = $1::int8", 1, NULL, values, NULL,
        NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        PQclear(r);
        fail_msg("dead letter %lld not found", (long long)id);
    }
    *len = (size_t)PQgetlength(r, 0, 0);
    raw = malloc(*len + 1);
    assert_non_null(raw);
    memcpy(raw, PQgetvalue(r, 0, 0), *len);
    snprintf(error, errorlen, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    return raw;
}

static void
test_store_dead_letter_keeps_bytes(void **state)
{
    uint8_t raw[512], *back;
    char err[WQ_ERRLEN], reason[128];
    struct wq_dead_letter dl = { .transport = "kafka", .queue = "emails",
        .raw = raw, .raw_len = sizeof raw, .key = "k\0ey", .keylen = 4,
        .partition = 3, .offset = 42, .error = "msgpack: truncated map",
        .worker = "w-1" };
    int64_t id = -1, id2 = -1;
    size_t len;
    wq_store *s = open_migrated();

    (void)state;
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)(i * 7);  /* every byte value, NULs included */
    raw[0] = 0;
    raw[sizeof raw - 1] = 0;
    if (wq_store_dead_letter_insert(s, &dl, &id, err, sizeof err) != 0)
        fail_msg("insert: %s", err);
    assert_true(id > 0);
    back = dead_letter_raw(s, id, &len, reason, sizeof reason);
    assert_int_equal(len, sizeof raw);
    assert_memory_equal(back, raw, sizeof raw);
    free(back);
    assert_string_equal(reason, "msgpack: truncated map");
    assert_int_equal(query_num(s, "SELECT (msg_key = '\\x6b006579'::bytea "
        "AND src_partition = 3 AND src_offset = 42)::int "
        "FROM workq.dead_letters"), 1);

    /* Kafka redelivers the same message after a crash: stored once */
    assert_int_equal(wq_store_dead_letter_insert(s, &dl, &id2, err,
        sizeof err), 0);
    assert_int_equal(id2, 0);
    /* other bytes at the same offset (a recreated topic): kept too */
    raw[1] ^= 1;
    assert_int_equal(wq_store_dead_letter_insert(s, &dl, &id2, err,
        sizeof err), 0);
    assert_true(id2 > id);

    /* RabbitMQ: no partition, a delivery tag; a redelivery is kept
     * again; an empty body and a reason that is not UTF-8 still go in */
    dl.transport = "rabbitmq";
    dl.key = NULL;
    dl.keylen = 0;
    dl.partition = -1;
    dl.offset = 7;
    dl.raw_len = 0;
    dl.error = "bad byte \xff\xfe here \xc3\xa9";
    dl.worker = NULL;
    assert_int_equal(wq_store_dead_letter_insert(s, &dl, &id, err,
        sizeof err), 0);
    dl.redelivered = 1;
    assert_int_equal(wq_store_dead_letter_insert(s, &dl, &id2, err,
        sizeof err), 0);
    assert_true(id > 0 && id2 > id);
    back = dead_letter_raw(s, id2, &len, reason, sizeof reason);
    assert_int_equal(len, 0);
    free(back);
    assert_string_equal(reason, "bad byte ?? here \xc3\xa9");
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.dead_letters "
        "WHERE transport = 'rabbitmq' AND src_partition IS NULL "
        "AND src_offset = 7 AND msg_key IS NULL"), 2);

    dl.transport = "carrier-pigeon";
    assert_int_equal(wq_store_dead_letter_insert(s, &dl, &id, err,
        sizeof err), WQ_EINVAL);
    dl.transport = NULL;
    assert_int_equal(wq_store_dead_letter_insert(s, &dl, &id, err,
        sizeof err), WQ_EINVAL);
    wq_store_close(s);
}

/* --- connection ------------------------------------------------------ */

static void
expect_open_error(const char *conninfo, const char *password,
    const char *const *want, const char *const *never)
{
    char err[WQ_ERRLEN];
    wq_store *s = (wq_store *)&err;     /* must be reset to NULL */
    int rc = wq_store_open(conninfo, password, &s, err, sizeof err);

    if (rc != WQ_ESTORE)
        fail_msg("open(%s): want WQ_ESTORE, got %d", conninfo, rc);
    assert_null(s);
    for (; want != NULL && *want != NULL; want++)
        if (strstr(err, *want) == NULL)
            fail_msg("open(%s): error lacks \"%s\": %s", conninfo, *want,
                err);
    for (; never != NULL && *never != NULL; never++)
        if (strstr(err, *never) != NULL)
            fail_msg("open(%s): error shows \"%s\": %s", conninfo, *never,
                err);
}

static void
test_store_open_errors(void **state)
{
    char ci[256], portstr[16];
    int port = closed_port();
    const char *never[] = { "s3cr3t", "hunter", "cret", NULL };

    (void)state;
    snprintf(portstr, sizeof portstr, "%d", port);
    {
        const char *want[] = { "127.0.0.1", portstr, NULL };

        snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=postgres "
            "password=s3cr3t dbname=workq connect_timeout=5", port);
        expect_open_error(ci, NULL, want, never);
        expect_open_error(ci, "hunter2", want, never);
        snprintf(ci, sizeof ci,
            "postgresql://postgres:s3cr3t@127.0.0.1:%d/workq", port);
        expect_open_error(ci, NULL, want, never);
    }
    {
        /* libpq quotes pieces of a malformed string: here of a password */
        const char *want[] = { "conninfo", NULL };

        expect_open_error("host=127.0.0.1 password=se cret", NULL, want,
            never);
        expect_open_error("host=127.0.0.1 password='s3cr3t", NULL, want,
            never);
        /* quotes inside the password must not shift any redaction */
        expect_open_error("host=127.0.0.1 password=a\"s3cr3t\"b c", NULL,
            want, never);
    }
    {
        /* without a password, or with one libpq could parse, the
         * details stay */
        const char *want[] = { "\"5x\"", "\"port\"", NULL };

        expect_open_error("host=127.0.0.1 port=5x", NULL, want, NULL);
        expect_open_error("postgresql://postgres:s3cr3t@127.0.0.1:5x/db",
            NULL, want, never);
    }
}

static void
test_store_open_settings(void **state)
{
    char err[WQ_ERRLEN], ci[1100];
    wq_store *s;
    PGresult *r;

    (void)state;
    /* a password argument is passed on (trust auth ignores it) */
    if (wq_store_open(db.conninfo, "unused", &s, err, sizeof err) != 0)
        fail_msg("open: %s", err);
    r = PQexec(wq_store_conn(s), "SELECT current_setting('application_name'),"
        " current_setting('client_encoding')");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "workq");
    assert_string_equal(PQgetvalue(r, 0, 1), "UTF8");
    PQclear(r);
    assert_int_equal(wq_store_ping(s, err, sizeof err), 0);
    wq_store_close(s);
    wq_store_close(NULL);

    /* the conninfo's own application_name wins over workq's default */
    snprintf(ci, sizeof ci, "%s application_name=workq-worker-3",
        db.conninfo);
    s = open_or_fail(ci);
    r = PQexec(wq_store_conn(s), "SHOW application_name");
    assert_string_equal(PQgetvalue(r, 0, 0), "workq-worker-3");
    PQclear(r);
    wq_store_close(s);
}

static void
test_store_reconnects(void **state)
{
    char err[WQ_ERRLEN], sql[96];
    struct wq_task_new t = { .queue = "q", .type = "noop",
        .state = WQ_TASK_QUEUED, .max_attempts = 1 };
    struct wq_task_row row;
    uint8_t first[16];
    wq_store *s = open_migrated(), *killer = open_or_fail(db.conninfo);

    (void)state;
    make_id(t.id);
    memcpy(first, t.id, 16);
    assert_int_equal(wq_store_task_insert(s, &t, NULL, err, sizeof err), 0);
    assert_int_equal(wq_store_task_get(s, t.id, &row, err, sizeof err), 0);
    wq_task_row_free(&row);

    /* the server drops the connection (restart, failover, idle kill)
     * in the middle of a transaction */
    exec_ok(s, "BEGIN");
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)",
        PQbackendPID(wq_store_conn(s)));
    exec_ok(killer, sql);
    usleep(100000);
    make_id(t.id);
    t.idempotency_key = "lost";
    assert_int_equal(wq_store_task_insert(s, &t, NULL, err, sizeof err),
        WQ_ESTORE);
    /* the transaction is gone: its COMMIT must not succeed somewhere */
    assert_int_equal(wq_store_exec(s, "COMMIT", err, sizeof err),
        WQ_ESTORE);
    if (strstr(err, "lost") == NULL)
        fail_msg("COMMIT after the loss: %s", err);
    if (wq_store_ping(s, err, sizeof err) != 0)
        fail_msg("ping after the backend was killed: %s", err);
    assert_int_equal(query_num(killer, "SELECT count(*) FROM workq.tasks "
        "WHERE idempotency_key = 'lost'"), 0);
    /* prepared statements are prepared again on the new connection */
    if (wq_store_task_get(s, first, &row, err, sizeof err) != 0)
        fail_msg("get after reconnect: %s", err);
    assert_memory_equal(row.id, first, 16);
    wq_task_row_free(&row);
    make_id(t.id);
    t.idempotency_key = "after";
    if (wq_store_task_insert(s, &t, NULL, err, sizeof err) != 0)
        fail_msg("insert after reconnect: %s", err);
    wq_store_close(killer);
    wq_store_close(s);
}

/* --- plans ---------------------------------------------------------- */

/*
 * seq_scan of `table` (workq.attempts, workq.tasks) as the server's
 * statistics have it, after making s's backend publish its own counters
 * (PostgreSQL 15 keeps a backend's counts to itself for up to a second
 * otherwise).
 */
static long long
seq_scans(wq_store *s, const char *table)
{
    char sql[160];

    exec_ok(s, "SELECT pg_stat_force_next_flush()");
    snprintf(sql, sizeof sql, "SELECT seq_scan FROM pg_stat_user_tables "
        "WHERE relid = '%s'::regclass", table);
    return query_num(s, sql);
}

/* Index entries of workq.tasks read so far (as seq_scans). */
static long long
index_reads(wq_store *s)
{
    exec_ok(s, "SELECT pg_stat_force_next_flush()");
    return query_num(s, "SELECT coalesce(sum(idx_tup_read), 0) FROM"
        " pg_stat_user_indexes WHERE relid = 'workq.tasks'::regclass");
}

/* Claims n new tasks of queue "plan" in one round, then records them as
 * succeeded (with a small result) in the next; `unclaimed`: as first
 * deliveries, which run unclaimed (store_claims.h). */
static void
claim_and_record_as(wq_store *s, struct wq_claim_bufs *bufs, size_t n,
    int unclaimed)
{
    static unsigned serial;
    struct wq_envelope *envs = calloc(n, sizeof *envs);
    struct wq_claim *claims = calloc(n, sizeof *claims);
    struct wq_record *recs = calloc(n, sizeof *recs);
    static const char payload[] = "{\"id\":1,\"user\":\"u1\",\"amount\":42,"
        "\"note\":\"hello world\"}";
    char err[WQ_ERRLEN], key[64];

    assert_non_null(envs);
    assert_non_null(claims);
    assert_non_null(recs);
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof key, "plan-%u", serial++);
        assert_int_equal(wq_envelope_init(&envs[i], "plan", "noop", key,
            payload, sizeof payload - 1, err, sizeof err), 0);
        claims[i].env = &envs[i];
        claims[i].unclaimed_ok = unclaimed;
    }
    if (wq_claim_round(s, bufs, "w-plan", 60000, NULL, 0, claims, n, err,
        sizeof err) != 0)
        fail_msg("claim: %s", err);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(claims[i].status, WQ_CLAIM_RUN);
        assert_int_equal(claims[i].unclaimed, unclaimed);
        if (unclaimed)
            recs[i].env = &envs[i];
        memcpy(recs[i].task_id, claims[i].task_id, 16);
        recs[i].attempt = claims[i].attempt;
        recs[i].outcome = "succeeded";
        recs[i].state = "succeeded";
        recs[i].result = "{\"ok\":true}";
        recs[i].result_len = 11;
    }
    if (wq_claim_round(s, bufs, "w-plan", 60000, recs, n, NULL, 0, err,
        sizeof err) != 0)
        fail_msg("record: %s", err);
    for (size_t i = 0; i < n; i++) {
        assert_true(recs[i].recorded);
        wq_envelope_free(&envs[i]);
    }
    free(envs);
    free(claims);
    free(recs);
}

static void
claim_and_record(wq_store *s, struct wq_claim_bufs *bufs, size_t n)
{
    claim_and_record_as(s, bufs, n, 0);
}

/*
 * No statement of a worker's or the scheduler's rounds reads the whole
 * of workq.attempts once it is big (issue 14: hundreds of sequential
 * scans of it after a benchmark, although (task_id, attempt) is its
 * primary key).  The table gets 20,000 finished attempts and fresh
 * statistics, then rounds of every size the worker makes run against
 * it, and the scheduler's lease and retention rounds.
 */
static void
test_store_attempts_not_scanned(void **state)
{
    struct wq_claim_bufs bufs = { 0 };
    static const size_t sizes[] = { 1, 3, 40, 300, 1000 };
    const char *v[2], *v4[4];
    char err[WQ_ERRLEN];
    struct pg_result *r;
    wq_store *s = open_migrated();
    long long before, after;

    (void)state;
    exec_ok(s, "INSERT INTO workq.tasks (id, attempt, max_attempts, state,"
        " queue, type, idempotency_key, headers, created_at, finished_at)"
        " SELECT gen_random_uuid(), 1, 3, 'succeeded', 'old', 'noop',"
        "   'old-' || g, '{}', now() - interval '30 days',"
        "   now() - interval '30 days'"
        " FROM generate_series(1, 20000) g");
    exec_ok(s, "INSERT INTO workq.attempts (task_id, attempt, started_at,"
        " finished_at, outcome, worker)"
        " SELECT id, 1, created_at, finished_at, 'succeeded', 'w-old'"
        " FROM workq.tasks");
    exec_ok(s, "ANALYZE workq.tasks, workq.attempts");
    before = seq_scans(s, "workq.attempts");
    for (size_t i = 0; i < WQ_ARRAY_LEN(sizes); i++)
        claim_and_record(s, &bufs, sizes[i]);
    after = seq_scans(s, "workq.attempts");
    assert_int_equal(after, before);

    /* five workers' leases lost, then the scheduler's rounds */
    exec_ok(s, "UPDATE workq.tasks SET state = 'running', lease_owner ="
        " 'w-gone', lease_expires_at = now() - interval '1 second',"
        " finished_at = NULL WHERE id IN (SELECT id FROM workq.tasks"
        " WHERE queue = 'plan' ORDER BY id LIMIT 5)");
    exec_ok(s, "UPDATE workq.attempts SET outcome = NULL, finished_at = NULL"
        " WHERE task_id IN (SELECT id FROM workq.tasks WHERE state ="
        " 'running')");
    before = seq_scans(s, "workq.attempts");
    v[0] = "100";
    assert_int_equal(wq_store_sched_query(s, WQ_SCHED_SQL_LEASE_SELECT, v,
        &r, err, sizeof err), 0);
    assert_int_equal(wq_store_nrows(r), 5);
    wq_store_rows_free(r);
    {
        PGresult *q = PQexec(wq_store_conn(s), "SELECT array_agg(id)::text"
            " FROM workq.tasks WHERE state = 'running'"
            " AND lease_expires_at < now()");
        char ids[8192];

        assert_int_equal(PQresultStatus(q), PGRES_TUPLES_OK);
        snprintf(ids, sizeof ids, "%s", PQgetvalue(q, 0, 0));
        PQclear(q);
        v[0] = ids;
        v[1] = "{1000,1000,1000,1000,1000}";
        assert_int_equal(wq_store_sched_query(s, WQ_SCHED_SQL_LEASE_RECOVER,
            v, &r, err, sizeof err), 0);
        assert_int_equal(wq_store_nrows(r), 5);
        wq_store_rows_free(r);
    }
    v4[0] = "604800000";        /* a week */
    v4[1] = NULL;
    v4[2] = "{}";
    v4[3] = "1000";
    assert_int_equal(wq_store_sched_query(s, WQ_SCHED_SQL_PRUNE_DONE, v4, &r,
        err, sizeof err), 0);
    wq_store_rows_free(r);
    after = seq_scans(s, "workq.attempts");
    assert_int_equal(after, before);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.attempts"
        " WHERE outcome = 'lease_expired'"), 5);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.tasks"
        " WHERE queue = 'old'"), 19000);
    wq_claim_bufs_free(&bufs);
    wq_store_close(s);
}

/* Claims the one delivery of key `key` (queue "plan"); its status. */
static enum wq_claim_status
claim_key(wq_store *s, struct wq_claim_bufs *bufs, const char *key)
{
    struct wq_envelope env;
    struct wq_claim claim = { .env = &env };
    char err[WQ_ERRLEN];

    assert_int_equal(wq_envelope_init(&env, "plan", "noop", key, "{}", 2,
        err, sizeof err), 0);
    if (wq_claim_round(s, bufs, "w-plan", 60000, NULL, 0, &claim, 1, err,
        sizeof err) != 0)
        fail_msg("claim %s: %s", key, err);
    wq_envelope_free(&env);
    return claim.status;
}

/*
 * Named statements planned while workq.tasks was empty (a fresh install,
 * a benchmark's first seconds) must not keep reading the whole table by
 * sequential scan once it has grown (store_claims.c, the plan guard).
 * Small rounds on the empty table, more than enough for PostgreSQL to
 * settle on generic plans (at about the sixth execution): claims,
 * records, and claims of a running key (classified busy); then 20,000
 * rows without ANALYZE; then the same rounds read workq.tasks by index
 * only.  So do unclaimed runs, whose probe of (queue, key) must stay one
 * index probe a delivery: a generic plan made young once hashed the
 * whole table per round, and once read the whole queue per probe
 * through tasks_queue_created_idx, neither of them a sequential scan.
 */
static void
test_store_plans_made_young(void **state)
{
    struct wq_claim_bufs bufs = { 0 };
    wq_store *s = open_migrated();
    long long before, reads;

    (void)state;
    /* statistics that say "empty", as autovacuum leaves them on a fresh
     * install (never analyzed, PostgreSQL guesses ten pages instead) */
    exec_ok(s, "ANALYZE workq.tasks");
    assert_int_equal(claim_key(s, &bufs, "young"), WQ_CLAIM_RUN);
    for (int i = 0; i < 10; i++) {
        claim_and_record(s, &bufs, 3);
        /* rounds bigger than a generic plan's guess of an array (10
         * elements), so that PostgreSQL settles on that plan */
        claim_and_record_as(s, &bufs, 40, 1);
        assert_int_equal(claim_key(s, &bufs, "young"), WQ_CLAIM_BUSY);
    }
    exec_ok(s, "INSERT INTO workq.tasks (id, attempt, max_attempts, state,"
        " queue, type, idempotency_key, headers, created_at, finished_at)"
        " SELECT gen_random_uuid(), 1, 3, 'succeeded', 'plan', 'noop',"
        "   'old-' || g, '{}', now(), now()"
        " FROM generate_series(1, 20000) g");
    before = seq_scans(s, "workq.tasks");
    for (int i = 0; i < 3; i++) {
        claim_and_record(s, &bufs, 3);
        assert_int_equal(claim_key(s, &bufs, "young"), WQ_CLAIM_BUSY);
    }
    assert_int_equal(seq_scans(s, "workq.tasks"), before);
    reads = index_reads(s);
    for (int i = 0; i < 3; i++)
        claim_and_record_as(s, &bufs, 40, 1);
    assert_int_equal(seq_scans(s, "workq.tasks"), before);
    reads = index_reads(s) - reads;
    if (reads > 1000)
        fail_msg("3 rounds of 40 unclaimed runs read %lld index entries of "
            "workq.tasks", reads);
    wq_claim_bufs_free(&bufs);
    wq_store_close(s);
}

/*
 * Deliveries of one key in one batch: the first one is claimed and the
 * rest stay pending, whatever the sort does with equal keys (qsort_r
 * promises no stability).  Twelve copies of a key among 52 others.
 */
static void
test_store_claim_first_delivery_wins(void **state)
{
    enum { N = 64 };
    struct wq_claim_bufs bufs = { 0 };
    struct wq_envelope envs[N];
    struct wq_claim claims[N];
    char err[WQ_ERRLEN], key[32], payload[32];
    wq_store *s = open_migrated();
    int first = -1;

    (void)state;
    memset(claims, 0, sizeof claims);
    for (int i = 0; i < N; i++) {
        int dup = i % 5 == 3 && i < 60;

        snprintf(key, sizeof key, dup ? "dup" : "one-%d", i);
        snprintf(payload, sizeof payload, "copy-%d", i);
        if (dup && first < 0)
            first = i;
        assert_int_equal(wq_envelope_init(&envs[i], "order", "noop", key,
            payload, strlen(payload), err, sizeof err), 0);
        claims[i].env = &envs[i];
    }
    if (wq_claim_round(s, &bufs, "w-order", 60000, NULL, 0, claims, N, err,
        sizeof err) != 0)
        fail_msg("claim: %s", err);
    for (int i = 0; i < N; i++) {
        int dup = strcmp(envs[i].key, "dup") == 0;

        if (!dup || i == first)
            assert_int_equal(claims[i].status, WQ_CLAIM_RUN);
        else
            assert_int_equal(claims[i].status, WQ_CLAIM_PENDING);
    }
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.tasks"
        " WHERE idempotency_key = 'dup' AND payload = 'copy-3'"), 1);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.tasks"),
        N - 11);
    for (int i = 0; i < N; i++)
        wq_envelope_free(&envs[i]);
    wq_claim_bufs_free(&bufs);
    wq_store_close(s);
}

/* --- migration 0004: lean tasks ----------------------------------------- */

/* The tasks of lean_fixture, by key: id suffix, state, and the history
 * a binary of release 0003 left (an attempts row opened at claim, closed
 * at record). */
static const struct lean_task {
    const char *key;
    const char *state;
} lean_tasks[] = {
    { "sched", "scheduled" }, { "queued", "queued" },
    { "run-live", "running" }, { "run-lost", "running" },
    { "retry", "retry_wait" }, { "ok", "succeeded" },
    { "ok-retried", "succeeded" }, { "dead", "dead" },
    { "cancel", "cancelled" },
};

/* Tasks in every state, written as release 0003's binaries wrote them. */
static void
lean_fixture(wq_store *s)
{
    exec_ok(s, "INSERT INTO workq.tasks (id, queue, type, idempotency_key,"
        " state, attempt, max_attempts, run_at, started_at, finished_at,"
        " lease_owner, lease_expires_at, worker, last_error, result)"
        " VALUES"
        " ('00000000-0000-7000-8000-000000000001', 'lean', 'noop', 'sched',"
        "  'scheduled', 0, 3, now() + interval '1 hour', NULL, NULL, NULL,"
        "  NULL, NULL, NULL, NULL),"
        " ('00000000-0000-7000-8000-000000000002', 'lean', 'noop', 'queued',"
        "  'queued', 0, 3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
        " ('00000000-0000-7000-8000-000000000003', 'lean', 'noop',"
        "  'run-live', 'running', 2, 3, NULL, now() - interval '1 s', NULL,"
        "  'w-old', now() + interval '1 hour', 'w-old', 'boom', NULL),"
        " ('00000000-0000-7000-8000-000000000004', 'lean', 'noop',"
        "  'run-lost', 'running', 1, 3, NULL, now() - interval '2 min',"
        "  NULL, 'w-gone', now() - interval '1 min', 'w-gone', NULL, NULL),"
        " ('00000000-0000-7000-8000-000000000005', 'lean', 'noop', 'retry',"
        "  'retry_wait', 1, 3, now() - interval '1 s', now() - interval"
        "  '1 min', NULL, NULL, NULL, 'w-old', 'boom', NULL),"
        " ('00000000-0000-7000-8000-000000000006', 'lean', 'noop', 'ok',"
        "  'succeeded', 1, 3, NULL, now() - interval '1 min', now(), NULL,"
        "  NULL, 'w-old', NULL, '\\x6f6b'),"
        " ('00000000-0000-7000-8000-000000000007', 'lean', 'noop',"
        "  'ok-retried', 'succeeded', 2, 3, NULL, now() - interval '1 min',"
        "  now(), NULL, NULL, 'w-old', 'boom', '\\x6f6b'),"
        " ('00000000-0000-7000-8000-000000000008', 'lean', 'noop', 'dead',"
        "  'dead', 2, 2, NULL, now() - interval '1 min', now(), NULL, NULL,"
        "  'w-old', 'bad data', NULL),"
        " ('00000000-0000-7000-8000-000000000009', 'lean', 'noop', 'cancel',"
        "  'cancelled', 1, 3, NULL, now() - interval '1 min', now(), NULL,"
        "  NULL, 'w-old', NULL, NULL)");
    exec_ok(s, "INSERT INTO workq.attempts (task_id, attempt, started_at,"
        " finished_at, duration_ms, worker, outcome, error)"
        " SELECT ('00000000-0000-7000-8000-00000000000' || n)::uuid, a,"
        "   timestamptz '2026-01-01' + n * interval '1 min' + a * interval"
        "   '1 s', CASE WHEN o IS NOT NULL THEN timestamptz '2026-01-02' END,"
        "   CASE WHEN o IS NOT NULL THEN 10 * n + a END, 'w-old', o, e"
        " FROM (VALUES (3, 1, 'failed', 'boom'), (3, 2, NULL, NULL),"
        "   (4, 1, NULL, NULL), (5, 1, 'failed', 'boom'),"
        "   (6, 1, 'succeeded', NULL), (7, 1, 'timeout', 'slow'),"
        "   (7, 2, 'succeeded', 'stdout cut at 5 of 9 bytes'),"
        "   (8, 1, 'failed', 'boom'), (8, 2, 'permanent_failure', 'bad data'),"
        "   (9, 1, 'cancelled', 'cancelled by workq cancel'))"
        "   AS v(n, a, o, e)");
}

/* The history of task n of lean_fixture as 0003 stored it. */
static void
lean_history_sql(wq_store *s, int n, char *out, size_t len)
{
    char sql[1024];
    PGresult *r;

    snprintf(sql, sizeof sql, "SELECT coalesce(string_agg(format("
        "'%%s:%%s:%%s:%%s:%%s:%%s:%%s', attempt, coalesce(outcome, '-'),"
        " worker, floor(extract(epoch FROM started_at) * 1000)::int8,"
        " coalesce(floor(extract(epoch FROM finished_at) * 1000)::int8, 0),"
        " coalesce(duration_ms, -1), coalesce(error, '-')), ','"
        " ORDER BY attempt), '') FROM workq.attempts WHERE task_id ="
        " '00000000-0000-7000-8000-00000000000%d'", n);
    r = PQexec(wq_store_conn(s), sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

/* The history of a task as its readers see it (wq_store_task_attempts),
 * in lean_history_sql's form. */
static void
lean_history(wq_store *s, const uint8_t id[16], char *out, size_t len)
{
    struct wq_task_attempt *v;
    size_t n, at = 0;
    char err[WQ_ERRLEN];

    if (wq_store_task_attempts(s, id, &v, &n, err, sizeof err) != 0)
        fail_msg("attempts: %s", err);
    out[0] = '\0';
    for (size_t i = 0; i < n && at < len; i++)
        at += (size_t)snprintf(out + at, len - at, "%s%d:%s:%s:%lld:%lld:"
            "%lld:%s", i > 0 ? "," : "", v[i].attempt,
            v[i].outcome != NULL ? v[i].outcome : "-",
            v[i].worker != NULL ? v[i].worker : "",
            (long long)v[i].started_at_ms, (long long)v[i].finished_at_ms,
            (long long)v[i].duration_ms,
            v[i].error != NULL ? v[i].error : "-");
    wq_task_attempts_free(v, n);
}

/* Claims the lean task with key `key` as worker w; returns its status. */
static enum wq_claim_status
lean_claim(wq_store *s, struct wq_claim_bufs *bufs, const char *w,
    const char *key, struct wq_claim *c)
{
    struct wq_envelope env;
    char err[WQ_ERRLEN];

    assert_int_equal(wq_envelope_init(&env, "lean", "noop", key, NULL, 0,
        err, sizeof err), 0);
    env.max_attempts = 3;
    memset(c, 0, sizeof *c);
    c->env = &env;
    if (wq_claim_round(s, bufs, w, 60000, NULL, 0, c, 1, err, sizeof err)
        != 0)
        fail_msg("claim %s: %s", key, err);
    c->env = NULL;
    wq_envelope_free(&env);
    return c->status;
}

/* Records attempt `attempt` of task id as worker w; 1 if it was. */
static int
lean_record(wq_store *s, struct wq_claim_bufs *bufs, const char *w,
    const uint8_t id[16], uint32_t attempt, const char *outcome,
    const char *state, const char *error)
{
    struct wq_record r = { .attempt = attempt, .outcome = outcome,
        .state = state, .error = error, .delay_ms = 60000,
        .duration_ms = 7 };
    char err[WQ_ERRLEN];

    memcpy(r.task_id, id, 16);
    if (wq_claim_round(s, bufs, w, 60000, &r, 1, NULL, 0, err, sizeof err)
        != 0)
        fail_msg("record: %s", err);
    return r.recorded;
}

/* --- unclaimed runs (store_claims.h) ------------------------------------ */

/* One claim of `env` by worker w, unclaimed_ok as given. */
static void
claim_one(wq_store *s, struct wq_claim_bufs *bufs, const char *w,
    const struct wq_envelope *env, int unclaimed_ok, struct wq_claim *c)
{
    char err[WQ_ERRLEN];

    memset(c, 0, sizeof *c);
    c->env = env;
    c->unclaimed_ok = unclaimed_ok;
    if (wq_claim_round(s, bufs, w, 60000, NULL, 0, c, 1, err, sizeof err)
        != 0)
        fail_msg("claim %s: %s", env->key, err);
}

/* The record of an unclaimed run of `env`; 1 if its row was written. */
static int
record_unclaimed(wq_store *s, struct wq_claim_bufs *bufs, const char *w,
    const struct wq_envelope *env, const char *outcome, const char *state,
    const char *result, const char *error)
{
    struct wq_record r = { .attempt = 1, .outcome = outcome, .state = state,
        .result = result, .result_len = result != NULL ? strlen(result) : 0,
        .error = error, .delay_ms = 60000, .duration_ms = 12, .env = env,
        .hook_url = "http://127.0.0.1:9/hook", .priority = 2,
        .started_ms = wq_clock_wall_ms() - 12 };
    char err[WQ_ERRLEN];

    memcpy(r.task_id, env->id, 16);
    if (wq_claim_round(s, bufs, w, 60000, &r, 1, NULL, 0, err, sizeof err)
        != 0)
        fail_msg("record %s: %s", env->key, err);
    return r.recorded;
}

/*
 * A first delivery whose key has no row runs unclaimed: the claim writes
 * nothing, and the record inserts the row once, final (one row version:
 * its ctid is the table's first slot), with its history when it failed.
 * A row that appeared meanwhile (another delivery's claim, a cancel)
 * wins, and the outcome is not recorded.  A key with a row is claimed as
 * always, and a late claim (no unclaimed_ok) inserts the running row.
 */
static void
test_store_unclaimed_runs(void **state)
{
    struct wq_claim_bufs bufs = { 0 };
    struct wq_envelope ok, fail, raced, late, cancelled;
    struct wq_claim c;
    char err[WQ_ERRLEN];
    wq_store *s = open_migrated();

    (void)state;
    assert_int_equal(wq_envelope_init(&ok, "un", "noop", "ok", "{\"a\":1}",
        7, err, sizeof err), 0);
    assert_int_equal(wq_envelope_init(&fail, "un", "noop", "fail", "p", 1,
        err, sizeof err), 0);
    assert_int_equal(wq_envelope_init(&raced, "un", "noop", "raced", NULL,
        0, err, sizeof err), 0);
    assert_int_equal(wq_envelope_init(&late, "un", "noop", "late", NULL, 0,
        err, sizeof err), 0);
    assert_int_equal(wq_envelope_init(&cancelled, "un", "noop", "cancel",
        NULL, 0, err, sizeof err), 0);
    fail.max_attempts = 4;

    /* no row: RUN unclaimed, attempt 1, nothing written */
    claim_one(s, &bufs, "w-un", &ok, 1, &c);
    assert_int_equal(c.status, WQ_CLAIM_RUN);
    assert_true(c.unclaimed);
    assert_int_equal(c.attempt, 1);
    assert_memory_equal(c.task_id, ok.id, 16);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.tasks"), 0);
    assert_int_equal(record_unclaimed(s, &bufs, "w-un", &ok, "succeeded",
        "succeeded", "done", NULL), 1);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.tasks WHERE"
        " idempotency_key = 'ok' AND state = 'succeeded' AND attempt = 1"
        " AND worker = 'w-un' AND result = 'done' AND payload = '{\"a\":1}'"
        " AND duration_ms = 12 AND finished_at IS NOT NULL"
        " AND started_at <= finished_at AND lease_owner IS NULL"
        " AND priority = 2 AND headers->>'workq-hook' ="
        " 'http://127.0.0.1:9/hook' AND ctid = '(0,1)'"), 1);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.attempts"), 0);
    /* the hook's row came with the insert, as with an update */
    assert_int_equal(query_num(s, "SELECT count(*) FROM"
        " workq.hook_deliveries"), 1);
    /* now it has a row: a duplicate, whatever unclaimed_ok says */
    claim_one(s, &bufs, "w-un", &ok, 1, &c);
    assert_int_equal(c.status, WQ_CLAIM_FINAL);

    /* a failure: retry_wait with its history, claimed as any retry */
    claim_one(s, &bufs, "w-un", &fail, 1, &c);
    assert_true(c.unclaimed);
    assert_int_equal(record_unclaimed(s, &bufs, "w-un", &fail, "failed",
        "retry_wait", NULL, "boom"), 1);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.tasks WHERE"
        " idempotency_key = 'fail' AND state = 'retry_wait' AND attempt = 1"
        " AND max_attempts = 4 AND last_error = 'boom' AND payload = 'p'"
        " AND run_at > now() + interval '50 seconds' AND result IS NULL"),
        1);
    assert_int_equal(query_num(s, "SELECT count(*) FROM"
        " workq.attempt_history WHERE outcome = 'failed' AND attempt = 1"
        " AND error = 'boom' AND worker = 'w-un'"), 1);
    exec_ok(s, "UPDATE workq.tasks SET run_at = now() WHERE"
        " idempotency_key = 'fail'");
    claim_one(s, &bufs, "w-un", &fail, 1, &c);
    assert_int_equal(c.status, WQ_CLAIM_RUN);
    assert_false(c.unclaimed);
    assert_int_equal(c.attempt, 2);

    /* another delivery claimed the key while this one ran unclaimed */
    claim_one(s, &bufs, "w-un", &raced, 1, &c);
    assert_true(c.unclaimed);
    claim_one(s, &bufs, "w-other", &raced, 0, &c);
    assert_int_equal(c.status, WQ_CLAIM_RUN);
    assert_false(c.unclaimed);
    assert_int_equal(record_unclaimed(s, &bufs, "w-un", &raced, "succeeded",
        "succeeded", "mine", NULL), 0);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.tasks WHERE"
        " idempotency_key = 'raced' AND state = 'running'"
        " AND lease_owner = 'w-other' AND result IS NULL"), 1);

    /* an operator's cancel wrote the row: it stays cancelled */
    claim_one(s, &bufs, "w-un", &cancelled, 1, &c);
    assert_true(c.unclaimed);
    exec_ok(s, "INSERT INTO workq.tasks (id, queue, type, idempotency_key,"
        " state, attempt, max_attempts, finished_at) VALUES (gen_random_uuid(),"
        " 'un', 'noop', 'cancel', 'cancelled', 0, 25, now())");
    assert_int_equal(record_unclaimed(s, &bufs, "w-un", &cancelled,
        "succeeded", "succeeded", NULL, NULL), 0);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.tasks WHERE"
        " idempotency_key = 'cancel' AND state = 'cancelled'"), 1);

    /* a late claim: the running row of attempt 1, recorded as claimed */
    claim_one(s, &bufs, "w-un", &late, 1, &c);
    assert_true(c.unclaimed);
    claim_one(s, &bufs, "w-un", &late, 0, &c);
    assert_int_equal(c.status, WQ_CLAIM_RUN);
    assert_false(c.unclaimed);
    assert_int_equal(c.attempt, 1);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.tasks WHERE"
        " idempotency_key = 'late' AND state = 'running'"
        " AND lease_owner = 'w-un'"), 1);
    assert_int_equal(lean_record(s, &bufs, "w-un", c.task_id, 1,
        "succeeded", "succeeded", NULL), 1);

    wq_envelope_free(&ok);
    wq_envelope_free(&fail);
    wq_envelope_free(&raced);
    wq_envelope_free(&late);
    wq_envelope_free(&cancelled);
    wq_claim_bufs_free(&bufs);
    wq_store_close(s);
}

/*
 * Migration 0004 on a populated database: tasks in every state, with the
 * history release 0003's binaries wrote (rows opened at claim, one still
 * open for a live lease and one for a lost one), read the same after the
 * migration, and the worker's claim and record go on from there: the
 * open rows are closed, new attempts live in the task row.
 */
static void
test_store_migrate_lean_tasks(void **state)
{
    struct wq_claim_bufs bufs = { 0 };
    char err[WQ_ERRLEN], before[9][512], after[512];
    int st_before[9], at_before[9], from = -1, to = -1;
    struct wq_task_row row;
    struct wq_claim c;
    uint8_t ids[9][16];
    wq_store *s = open_or_fail(db.conninfo);

    (void)state;
    if (wq_migrate_to(s, 3, NULL, NULL, err, sizeof err) != 0)
        fail_msg("migrate to 3: %s", err);
    lean_fixture(s);
    for (int i = 0; i < 9; i++) {
        char text[40];

        snprintf(text, sizeof text, "00000000-0000-7000-8000-00000000000%d",
            i + 1);
        assert_int_equal(wq_uuid_parse(text, ids[i]), 0);
        lean_history_sql(s, i + 1, before[i], sizeof before[i]);
        /* by SQL: the store reads the columns of the latest schema */
        {
            char sql[200];
            PGresult *r;

            snprintf(sql, sizeof sql, "SELECT state, attempt FROM"
                " workq.tasks WHERE id = '%s'", text);
            r = PQexec(wq_store_conn(s), sql);
            if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
                fail_msg("get %s: %s", lean_tasks[i].key,
                    PQresultErrorMessage(r));
            st_before[i] = wq_task_state_parse(PQgetvalue(r, 0, 0));
            at_before[i] = atoi(PQgetvalue(r, 0, 1));
            PQclear(r);
        }
    }

    if (wq_migrate_run(s, &from, &to, err, sizeof err) != 0)
        fail_msg("migrate: %s", err);
    assert_int_equal(from, 3);
    assert_int_equal(to, wq_migrate_latest());
    for (int i = 0; i < 9; i++) {
        if (wq_store_task_get(s, ids[i], &row, err, sizeof err) != 0)
            fail_msg("get %s: %s", lean_tasks[i].key, err);
        assert_int_equal((int)row.state, st_before[i]);
        assert_int_equal(row.attempt, at_before[i]);
        wq_task_row_free(&row);
        lean_history(s, ids[i], after, sizeof after);
        if (strcmp(after, before[i]) != 0)
            fail_msg("%s: history %s after the migration, %s before",
                lean_tasks[i].key, after, before[i]);
    }
    /* the queue's CHECK says what it said */
    assert_int_equal(wq_store_exec(s, "UPDATE workq.tasks SET queue ="
        " 'lean.dead' WHERE idempotency_key = 'queued'", err, sizeof err),
        WQ_EINVAL);
    assert_non_null(strstr(err, "tasks_queue_check"));
    assert_int_equal(wq_store_exec(s, "UPDATE workq.tasks SET queue ="
        " 'le an' WHERE idempotency_key = 'queued'", err, sizeof err),
        WQ_EINVAL);
    assert_non_null(strstr(err, "tasks_queue_check"));

    /* not claimable: final, busy, not due */
    assert_int_equal(lean_claim(s, &bufs, "w-new", "ok", &c), WQ_CLAIM_FINAL);
    assert_int_equal(lean_claim(s, &bufs, "w-new", "dead", &c),
        WQ_CLAIM_FINAL);
    assert_int_equal(lean_claim(s, &bufs, "w-new", "cancel", &c),
        WQ_CLAIM_FINAL);
    assert_int_equal(lean_claim(s, &bufs, "w-new", "run-live", &c),
        WQ_CLAIM_BUSY);
    assert_int_equal(lean_claim(s, &bufs, "w-new", "sched", &c),
        WQ_CLAIM_NOT_DUE);

    /* the old worker records the attempt it holds: its open row closes */
    assert_true(lean_record(s, &bufs, "w-old", ids[2], 2, "succeeded",
        "succeeded", NULL));
    lean_history(s, ids[2], after, sizeof after);
    if (strncmp(after, before[2], strlen("1:failed")) != 0
        || strstr(after, ",2:succeeded:w-old:") == NULL
        || strstr(after, ":7:-") == NULL)
        fail_msg("run-live after record: %s", after);

    /* a lost lease with an open row: closed as lease_expired */
    assert_int_equal(lean_claim(s, &bufs, "w-new", "run-lost", &c),
        WQ_CLAIM_RUN);
    assert_int_equal(c.attempt, 2);
    lean_history(s, ids[3], after, sizeof after);
    if (strncmp(after, "1:lease_expired:w-old:", 22) != 0
        || strstr(after, ",2:-:w-new:") == NULL)
        fail_msg("run-lost after claim: %s", after);
    assert_true(lean_record(s, &bufs, "w-new", ids[3], 2, "failed",
        "retry_wait", "boom"));
    lean_history(s, ids[3], after, sizeof after);
    if (strstr(after, ",2:failed:w-new:") == NULL)
        fail_msg("run-lost after record: %s", after);

    /* due and queued: claimed, the new attempt in the task row only */
    assert_int_equal(lean_claim(s, &bufs, "w-new", "retry", &c),
        WQ_CLAIM_RUN);
    assert_int_equal(c.attempt, 2);
    assert_true(lean_record(s, &bufs, "w-new", ids[4], 2, "succeeded",
        "succeeded", NULL));
    assert_int_equal(lean_claim(s, &bufs, "w-new", "queued", &c),
        WQ_CLAIM_RUN);
    assert_int_equal(c.attempt, 1);
    lean_history(s, ids[1], after, sizeof after);
    if (strncmp(after, "1:-:w-new:", 10) != 0
        || strstr(after, ":0:-1:-") == NULL)
        fail_msg("queued after claim: %s", after);
    /* a record that lost its lease writes nothing */
    assert_false(lean_record(s, &bufs, "w-other", ids[1], 1, "succeeded",
        "succeeded", NULL));
    assert_true(lean_record(s, &bufs, "w-new", ids[1], 1, "succeeded",
        "succeeded", NULL));
    lean_history(s, ids[4], after, sizeof after);
    if (strncmp(after, before[4], strlen(before[4])) != 0
        || strstr(after, ",2:succeeded:w-new:") == NULL)
        fail_msg("retry after record: %s", after);
    lean_history(s, ids[1], after, sizeof after);
    if (strncmp(after, "1:succeeded:w-new:", 18) != 0
        || strstr(after, ":7:-") == NULL || strchr(after, ',') != NULL)
        fail_msg("queued after record: %s", after);
    /* the successes of this release wrote no attempts row */
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.attempts"
        " WHERE task_id IN ('00000000-0000-7000-8000-000000000002',"
        " '00000000-0000-7000-8000-000000000005') AND attempt = 2"), 0);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.attempts"
        " WHERE task_id = '00000000-0000-7000-8000-000000000002'"), 0);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.attempts"
        " WHERE outcome IS NULL"), 0);
    wq_claim_bufs_free(&bufs);
    wq_store_close(s);
}

/*
 * Migration 0007 (flow control) on a populated database of release 6:
 * the tasks stay as they were, and the new admission works at once: a
 * concurrency key of limit 1 admits one of two tasks and the other after
 * the first is recorded; a rate bucket of burst 2 admits two of three;
 * a unique window gives one start to every submit inside it.
 */
static void
test_store_migrate_flow_control(void **state)
{
    struct wq_flow_bufs fb = { 0 };
    struct wq_flow_candidate c[3];
    char err[WQ_ERRLEN];
    int from = -1, to = -1;
    int64_t w1 = 0, w2 = 0;
    wq_store *s = open_or_fail(db.conninfo);

    (void)state;
    if (wq_migrate_to(s, 6, NULL, NULL, err, sizeof err) != 0)
        fail_msg("migrate to 6: %s", err);
    lean_fixture(s);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.tasks"), 9);
    if (wq_migrate_run(s, &from, &to, err, sizeof err) != 0)
        fail_msg("migrate: %s", err);
    assert_int_equal(from, 6);
    assert_int_equal(to, wq_migrate_latest());
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.tasks"), 9);

    memset(c, 0, sizeof c);
    for (int i = 0; i < 2; i++) {
        c[i].queue = "lean";
        c[i].key = i == 0 ? "queued" : "new-one";
        c[i].ckey = "cust";
        c[i].climit = 1;
    }
    if (wq_store_flow_admit(s, &fb, "w1", 30000, c, 2, NULL, 0, err,
        sizeof err) != 0)
        fail_msg("admit: %s", err);
    assert_int_equal(c[0].admitted, 1);
    assert_int_equal(c[1].admitted, 0);
    assert_true(c[1].wait_ms > 0);
    /* the first one's attempt ends (its row changes after the hold) */
    exec_ok(s, "UPDATE workq.tasks SET state = 'retry_wait', run_at ="
        " now() + interval '1 hour', updated_at = clock_timestamp()"
        " WHERE idempotency_key = 'queued'");
    if (wq_store_flow_admit(s, &fb, "w1", 30000, &c[1], 1, NULL, 0, err,
        sizeof err) != 0)
        fail_msg("admit: %s", err);
    assert_int_equal(c[1].admitted, 1);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.flow_tasks"),
        2);

    memset(c, 0, sizeof c);
    for (int i = 0; i < 3; i++) {
        c[i].queue = "lean";
        c[i].key = "r";
        c[i].ckey = "";
        c[i].bucket[0] = "q:lean";
        c[i].rate[0] = 1;
        c[i].burst[0] = 2;
    }
    if (wq_store_flow_admit(s, &fb, "w1", 30000, c, 3, NULL, 0, err,
        sizeof err) != 0)
        fail_msg("admit: %s", err);
    assert_int_equal(c[0].admitted + c[1].admitted + c[2].admitted, 2);
    assert_int_equal(c[2].admitted, 0);
    assert_true(c[2].wait_ms > 0 && c[2].wait_ms <= 1000);

    if (wq_store_unique_window(s, "lean", "u", 60000, &w1, err, sizeof err)
        != 0 || wq_store_unique_window(s, "lean", "u", 60000, &w2, err,
        sizeof err) != 0)
        fail_msg("window: %s", err);
    assert_true(w1 > 0);
    assert_true(w1 == w2);
    wq_flow_bufs_free(&fb);
    wq_store_close(s);
}

/* The one value of `sql` as text into out ("" for NULL). */
static void
query_text(wq_store *s, const char *sql, char *out, size_t outlen)
{
    PGresult *r = PQexec(wq_store_conn(s), sql);

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    snprintf(out, outlen, "%s", PQgetisnull(r, 0, 0) ? ""
        : PQgetvalue(r, 0, 0));
    PQclear(r);
}

/*
 * Migration 0008 (workflows) on a populated database: the tasks of every
 * state keep their state and get no workflow; a task outside a workflow
 * is claimed and recorded as before and writes nothing in the workflow
 * tables; a chain submitted afterwards steps on the worker's own record:
 * the record of node 0's success starts node 1 (its task row queued, its
 * message in the outbox) in the same transaction.
 */
static void
test_store_migrate_workflows(void **state)
{
    struct wq_claim_bufs bufs = { 0 };
    char err[WQ_ERRLEN], states[512], key[40], wf[40];
    struct wq_claim c;
    wq_store *s = open_or_fail(db.conninfo);

    (void)state;
    if (wq_migrate_to(s, 3, NULL, NULL, err, sizeof err) != 0)
        fail_msg("migrate to 3: %s", err);
    lean_fixture(s);
    if (wq_migrate_to(s, 7, NULL, NULL, err, sizeof err) != 0)
        fail_msg("migrate to 7: %s", err);
    query_text(s, "SELECT string_agg(idempotency_key || ':' || state, ','"
        " ORDER BY idempotency_key) FROM workq.tasks", states,
        sizeof states);
    if (wq_migrate_run(s, NULL, NULL, err, sizeof err) != 0)
        fail_msg("migrate: %s", err);
    {
        char after[512];

        query_text(s, "SELECT string_agg(idempotency_key || ':' || state,"
            " ',' ORDER BY idempotency_key) FROM workq.tasks", after,
            sizeof after);
        assert_string_equal(after, states);
    }
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.tasks"
        " WHERE workflow_id IS NOT NULL"), 0);

    /* a task outside any workflow: as before, nothing in the new tables */
    assert_int_equal(lean_claim(s, &bufs, "w-new", "queued", &c),
        WQ_CLAIM_RUN);
    assert_true(lean_record(s, &bufs, "w-new", c.task_id, c.attempt,
        "succeeded", "succeeded", NULL));
    assert_int_equal(query_num(s, "SELECT count(*) FROM"
        " workq.workflow_nodes"), 0);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.outbox"), 0);

    /* a chain: node 0 goes out through the outbox at once */
    query_text(s, "SELECT workq.workflow_submit('{\"queue\": \"lean\","
        " \"chain\": [{\"type\": \"noop\", \"payload\": \"p\"},"
        " {\"type\": \"noop\"}]}')", wf, sizeof wf);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.outbox"), 1);
    query_text(s, "SELECT task_id FROM workq.workflow_nodes WHERE node = 0",
        key, sizeof key);
    assert_int_equal(lean_claim(s, &bufs, "w-new", key, &c), WQ_CLAIM_RUN);
    assert_true(lean_record(s, &bufs, "w-new", c.task_id, c.attempt,
        "succeeded", "succeeded", NULL));
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.outbox"), 2);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.tasks t JOIN"
        " workq.workflow_nodes n ON n.task_id = t.id WHERE n.node = 1"
        " AND t.state = 'queued' AND n.state = 'started'"), 1);
    /* the same record again (a duplicate) changes nothing */
    assert_false(lean_record(s, &bufs, "w-new", c.task_id, c.attempt,
        "succeeded", "succeeded", NULL));
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.outbox"), 2);
    wq_claim_bufs_free(&bufs);
    wq_store_close(s);
}

/*
 * Migration 0011 (the priority of receipts) on a database of release 10
 * holding receipts, one of its own (a client key) and a run: they read
 * as normal afterwards, as their tasks were published; receipts written
 * afterwards keep their priority, in runs of one priority each; a task
 * row reads its own.
 */
static void
test_store_migrate_receipt_priority(void **state)
{
    struct wq_accept a[3];
    struct wq_task_row row;
    char err[WQ_ERRLEN];
    uint8_t old_keyed[16], old_run[16];
    int from = -1, to = -1;
    wq_store *s = open_or_fail(db.conninfo);

    (void)state;
    if (wq_migrate_to(s, 10, NULL, NULL, err, sizeof err) != 0)
        fail_msg("migrate to 10: %s", err);
    assert_int_equal(wq_uuid_parse("0190a5f8-7c1e-7a3b-9c4d-000000000001",
        old_keyed), 0);
    assert_int_equal(wq_uuid_parse("0190a5f8-7c1e-7a3b-9c4d-000000000002",
        old_run), 0);
    exec_ok(s, "INSERT INTO workq.accepted (id, created_at, max_attempts,"
        " queue, type, idempotency_key) VALUES"
        " ('0190a5f8-7c1e-7a3b-9c4d-000000000001', now(), 5, 'p', 'send',"
        " 'old')");
    exec_ok(s, "INSERT INTO workq.accepted_runs (first_id, last_id,"
        " created_at, max_attempts, queue, type, ids) VALUES"
        " ('0190a5f8-7c1e-7a3b-9c4d-000000000002',"
        "  '0190a5f8-7c1e-7a3b-9c4d-000000000002', now(), 4, 'p', 'send',"
        "  uuid_send('0190a5f8-7c1e-7a3b-9c4d-000000000002'))");
    if (wq_migrate_run(s, &from, &to, err, sizeof err) != 0)
        fail_msg("migrate: %s", err);
    assert_int_equal(from, 10);
    assert_int_equal(to, wq_migrate_latest());
    for (int i = 0; i < 2; i++) {
        if (wq_store_task_get(s, i == 0 ? old_keyed : old_run, &row, err,
            sizeof err) != 0)
            fail_msg("get old receipt %d: %s", i, err);
        assert_true(row.receipt);
        assert_int_equal(row.priority, 1);
        wq_task_row_free(&row);
    }

    /* new receipts: keyed high, and two without a key (low, high) */
    memset(a, 0, sizeof a);
    for (int i = 0; i < 3; i++) {
        a[i].queue = "p";
        a[i].type = "send";
        a[i].max_attempts = 3;
        a[i].created_at_ms = 1700000000123;
        make_id(a[i].id);
    }
    a[0].key = "new";
    assert_int_equal(wq_uuid_for_key("p", "new", a[0].id), 0);
    a[0].priority = 2;
    a[1].priority = 0;
    a[2].priority = 2;
    if (wq_store_accept(s, a, 3, err, sizeof err) != 0)
        fail_msg("accept: %s", err);
    assert_int_equal(query_num(s, "SELECT count(*) FROM workq.accepted_runs"
        " WHERE priority IN (0, 2)"), 2);
    for (int i = 0; i < 3; i++) {
        if (wq_store_task_get(s, a[i].id, &row, err, sizeof err) != 0)
            fail_msg("get receipt %d: %s", i, err);
        assert_true(row.receipt);
        assert_int_equal(row.priority, a[i].priority);
        wq_task_row_free(&row);
    }
    if (wq_store_task_get_by_key(s, "p", "new", &row, err, sizeof err) != 0)
        fail_msg("get by key: %s", err);
    assert_int_equal(row.priority, 2);
    wq_task_row_free(&row);

    /* a row reads its own */
    exec_ok(s, "INSERT INTO workq.tasks (id, queue, type, idempotency_key,"
        " state, attempt, max_attempts, priority) VALUES"
        " ('0190a5f8-7c1e-7a3b-9c4d-000000000009', 'p', 'send', 'row',"
        " 'queued', 0, 3, 0)");
    if (wq_store_task_get_by_key(s, "p", "row", &row, err, sizeof err) != 0)
        fail_msg("get row: %s", err);
    assert_false(row.receipt);
    assert_int_equal(row.priority, 0);
    wq_task_row_free(&row);
    wq_store_close(s);
}

#define DB_TEST(f) cmocka_unit_test_setup(f, db_setup)

static const struct CMUnitTest tests[] = {
    DB_TEST(test_store_migrate_empty_db),
    DB_TEST(test_store_migrate_twice_is_noop),
    DB_TEST(test_store_migrate_lean_tasks),
    DB_TEST(test_store_migrate_flow_control),
    DB_TEST(test_store_migrate_workflows),
    DB_TEST(test_store_migrate_receipt_priority),
    DB_TEST(test_store_migrate_concurrent),
    DB_TEST(test_store_migrate_future_refused),
    DB_TEST(test_store_migrate_refuses_open_transaction),
    DB_TEST(test_store_task_insert_duplicate_key),
    DB_TEST(test_store_task_get_fields),
    DB_TEST(test_store_task_checks),
    DB_TEST(test_store_dead_letter_keeps_bytes),
    cmocka_unit_test(test_store_open_errors),
    DB_TEST(test_store_open_settings),
    DB_TEST(test_store_reconnects),
    DB_TEST(test_store_attempts_not_scanned),
    DB_TEST(test_store_claim_first_delivery_wins),
    DB_TEST(test_store_unclaimed_runs),
    DB_TEST(test_store_plans_made_young),
};

WQ_TEST_MAIN("store", tests)

/*
 * cli_ops.c - helpers of the operator commands (see cli_ops.h): queries,
 * tables, JSON, times, and the task view of `status` and `dlq show`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "alloc.h"
#include "clock.h"
#include "cli_ops.h"
#include "config.h"
#include "textout.h"
#include "uuid.h"

int
cli_ops_query(wq_store *s, const char *cmd, const char *sql, int n,
    const char *const *params, PGresult **out)
{
    char err[WQ_ERRLEN];
    PGresult *r;
    int rc;

    r = PQexecParams(wq_store_conn(s), sql, n, NULL, params, NULL, NULL, 0);
    if ((rc = wq_store_result_check(s, r, cmd, err, sizeof err)) != 0) {
        PQclear(r);
        *out = NULL;
        cli_err(cmd, "%s", err);
        return rc == WQ_EINVAL ? CLI_DATAERR : CLI_UNAVAILABLE;
    }
    *out = r;
    return CLI_OK;
}

/* ---- tables ------------------------------------------------------------------ */

void
cli_table_init(struct cli_table *t, size_t ncols, const char *const *head)
{
    if (ncols > 32)
        abort();    /* cli_table_print's widths: a bug, not input */
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    t->head = head;
}

void
cli_table_add(struct cli_table *t, const char *const *row)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap == 0 ? 16 : t->cap * 2;
        t->cells = xreallocarray(t->cells, t->cap * t->ncols,
            sizeof *t->cells);
    }
    for (size_t c = 0; c < t->ncols; c++) {
        const char *v = row[c] != NULL && row[c][0] != '\0' ? row[c] : "-";
        /* one line per row: task data escaped (textout.h) */
        char *cell = wq_text_escape_str(v, 0);

        if (cell == NULL)
            abort();    /* alloc.h: the CLI aborts on exhaustion */
        t->cells[t->nrows * t->ncols + c] = cell;
    }
    t->nrows++;
}

void
cli_table_print(const struct cli_table *t, FILE *f)
{
    size_t w[32] = { 0 };

    for (size_t c = 0; c < t->ncols && c < 32; c++) {
        w[c] = strlen(t->head[c]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t n = strlen(t->cells[r * t->ncols + c]);

            if (n > w[c])
                w[c] = n;
        }
    }
    for (size_t r = 0; r <= t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            const char *v = r == 0 ? t->head[c]
                : t->cells[(r - 1) * t->ncols + c];

            if (c + 1 < t->ncols)
                fprintf(f, "%-*s  ", (int)w[c], v);
            else
                fprintf(f, "%s\n", v);
        }
}

void
cli_table_free(struct cli_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

/* ---- task data for people ------------------------------------------------- */

void
cli_print_escaped(FILE *f, const char *s)
{
    char *e = wq_text_escape_str(s != NULL ? s : "-", 0);

    if (e == NULL)
        abort();    /* alloc.h */
    fputs(e, f);
    free(e);
}

void
cli_print_bytes(FILE *f, const void *p, size_t n, size_t max)
{
    struct wq_buf b = WQ_BUF_INIT;

    if (wq_text_preview(&b, p, n, 0, max, 0) != 0
        || wq_buf_append(&b, "", 1) != 0)
        abort();    /* alloc.h */
    fputs(b.data, f);
    wq_buf_free(&b);
}

char *
cli_bytea_preview(const char *hex, size_t total, size_t max, int flags)
{
    struct wq_buf b = WQ_BUF_INIT;
    unsigned char *v;
    size_t n;

    if (hex == NULL)
        return NULL;
    if ((v = PQunescapeBytea((const unsigned char *)hex, &n)) == NULL)
        abort();    /* alloc.h */
    if (wq_text_preview(&b, v, n, total, max, flags) != 0
        || wq_buf_append(&b, "", 1) != 0)
        abort();
    PQfreemem(v);
    return b.data;
}

int
cli_json_bytea(json_t *o, const char *name, const char *hex)
{
    unsigned char *v;
    size_t n;
    int rc;

    if (hex == NULL)
        return json_object_set_new(o, name, json_null()) == 0 ? 0
            : WQ_ENOMEM;
    if ((v = PQunescapeBytea((const unsigned char *)hex, &n)) == NULL)
        return WQ_ENOMEM;
    rc = wq_text_json_set_bytes(o, name, v, n);
    PQfreemem(v);
    return rc;
}

/* ---- JSON, times, numbers --------------------------------------------------- */

void
cli_json_print(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);

    if (s != NULL) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    json_decref(o);
}

json_t *
cli_json_str(const char *s)
{
    json_t *j;

    if (s == NULL)
        return json_null();
    if ((j = json_string(s)) == NULL)   /* not UTF-8: should not happen */
        j = json_string("(not UTF-8)");
    return j;
}

const char *
cli_time(const char *ms, char *buf, size_t len)
{
    if (ms == NULL || ms[0] == '\0')
        return "-";
    return wq_clock_format_rfc3339(strtoll(ms, NULL, 10), buf, len);
}

json_t *
cli_json_time(const char *ms)
{
    char buf[40];

    if (ms == NULL || ms[0] == '\0')
        return json_null();
    return json_string(cli_time(ms, buf, sizeof buf));
}

const char *
cli_age(int64_t s, char *buf, size_t len)
{
    if (s < 0)
        s = 0;
    if (s < 120)
        snprintf(buf, len, "%llds", (long long)s);
    else if (s < 7200)
        snprintf(buf, len, "%lldm", (long long)(s / 60));
    else if (s < 172800)
        snprintf(buf, len, "%lldh", (long long)(s / 3600));
    else
        snprintf(buf, len, "%lldd", (long long)(s / 86400));
    return buf;
}

int
cli_parse_age(const char *s, int64_t *ms)
{
    char *end;
    long long n;
    size_t len;

    if (s == NULL || *s == '\0')
        return WQ_EINVAL;
    len = strlen(s);
    if (s[len - 1] == 'd' || s[len - 1] == 'w') {
        n = strtoll(s, &end, 10);
        if (end != s + len - 1 || n < 0 || n > 36500)
            return WQ_EINVAL;
        *ms = n * 86400000LL * (s[len - 1] == 'w' ? 7 : 1);
        return 0;
    }
    return wq_config_parse_duration(s, ms);
}

int
cli_parse_int(const char *cmd, const char *opt, const char *s, long min,
    long max, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < min || v > max) {
        cli_err(cmd, "%s wants a number from %ld to %ld, not '%s'", opt, min,
            max, s);
        return CLI_USAGE;
    }
    *out = v;
    return CLI_OK;
}

int
cli_check_id(const char *cmd, const char *s)
{
    uint8_t id[16];

    if (wq_uuid_parse(s, id) != 0) {
        cli_err(cmd, "'%s' is not a task id (a UUID such as "
            "0190a5f8-7c1e-7a3b-9c4d-5e6f708192a3)", s);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* ---- the task view -------------------------------------------------------------- */

#define MS(col) "(floor(extract(epoch FROM " col ") * 1000))::int8"

enum {
    T_ID, T_QUEUE, T_TYPE, T_KEY, T_STATE, T_ATTEMPT, T_MAX, T_BASE,
    T_RUN_AT, T_CREATED, T_UPDATED, T_STARTED, T_FINISHED, T_LEASE,
    T_LEASE_OWNER, T_WORKER, T_ERROR, T_PAYLOAD_LEN, T_RESULT, T_HEADERS,
    T_DEAD_PUB, T_PAYLOAD, T_RECEIPT,
};

/* Bytes of a result or payload a page shows; --json gives all. */
#define SHOW_BYTES 1024

#define TASK_SELECT \
    "SELECT id::text, queue, type, idempotency_key, state, attempt," \
    "  max_attempts, attempt_base, " MS("run_at") ", " MS("created_at") "," \
    "  " MS("updated_at") ", " MS("started_at") ", " MS("finished_at") "," \
    "  " MS("lease_expires_at") ", lease_owner, worker, last_error," \
    "  octet_length(payload), result, headers::text," \
    "  " MS("dead_published_at") ", payload, false" \
    "  FROM workq.tasks"

/* By id: the task's row, or the receipt of a task that the broker holds
 * and no worker has claimed yet (migration 0003, workq.task_handle). */
#define TASK_HANDLE_SELECT \
    "SELECT id::text, queue, type, idempotency_key, state, attempt," \
    "  max_attempts, attempt_base, " MS("run_at") ", " MS("created_at") "," \
    "  " MS("updated_at") ", " MS("started_at") ", " MS("finished_at") "," \
    "  " MS("lease_expires_at") ", lease_owner, worker, last_error," \
    "  octet_length(payload), result, headers::text," \
    "  " MS("dead_published_at") ", payload, receipt" \
    "  FROM workq.task_handle($1::uuid)"

static const char by_id_sql[] = TASK_HANDLE_SELECT;
static const char by_key_sql[] =
    TASK_SELECT " WHERE queue = $1 AND idempotency_key = $2";

static const char attempts_sql[] =
    "SELECT attempt, " MS("started_at") ", " MS("finished_at") ","
    "  duration_ms, worker, outcome, error"
    "  FROM workq.attempts WHERE task_id = $1::uuid ORDER BY attempt";

static const char outbox_sql[] =
    "SELECT id, queue, kind, " MS("created_at") ", octet_length(body)"
    "  FROM workq.outbox WHERE task_id = $1::uuid ORDER BY id LIMIT 1";

static const char *
val(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* A line "label       value" of the task page, the value escaped. */
static void
field(const char *label, const char *v)
{
    printf("%-12s", label);
    cli_print_escaped(stdout, v);
    putchar('\n');
}

/* "payload     17 bytes: {...}": a bytea column's size and preview. */
static void
bytes_field(const char *label, const char *hex)
{
    char *v = cli_bytea_preview(hex, 0, SHOW_BYTES, 0);
    size_t n = hex != NULL && strlen(hex) >= 2 ? (strlen(hex) - 2) / 2 : 0;

    if (v == NULL)
        return;
    printf("%-12s%zu bytes%s%s\n", label, n, n > 0 ? ": " : "", v);
    free(v);
}

static int
show_outbox(struct cli *cli, wq_store *s, const char *cmd, const char *id)
{
    const char *params[1] = { id };
    char when[40];
    PGresult *r;
    int rc;

    if ((rc = cli_ops_query(s, cmd, outbox_sql, 1, params, &r)) != 0)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        cli_err(cmd, "no task %s", id);
        return CLI_NOINPUT;
    }
    if (cli->json) {
        json_t *o = json_object();

        json_object_set_new(o, "id", json_string(id));
        json_object_set_new(o, "queue", cli_json_str(val(r, 0, 1)));
        json_object_set_new(o, "state", json_string("outbox"));
        json_object_set_new(o, "enqueued_at", cli_json_time(val(r, 0, 3)));
        cli_json_print(o);
    } else {
        field("id", id);
        field("queue", val(r, 0, 1));
        printf("state       outbox (enqueued in a transaction at %s, waiting "
            "for the scheduler's relay)\n",
            cli_time(val(r, 0, 3), when, sizeof when));
    }
    PQclear(r);
    return CLI_OK;
}

/* 1 if row 0 is the receipt of a task no worker has claimed yet. */
static int
is_receipt(const PGresult *r)
{
    return PQnfields(r) > T_RECEIPT && !PQgetisnull(r, 0, T_RECEIPT)
        && strcmp(PQgetvalue(r, 0, T_RECEIPT), "t") == 0;
}

int
cli_show_task(struct cli *cli, wq_store *s, const char *cmd,
    const char *id, const char *queue, const char *key)
{
    const char *params[2];
    PGresult *r = NULL, *a = NULL;
    char buf[40], idtext[40];
    int rc;

    if (id != NULL) {
        params[0] = id;
        rc = cli_ops_query(s, cmd, by_id_sql, 1, params, &r);
    } else {
        params[0] = queue;
        params[1] = key;
        rc = cli_ops_query(s, cmd, by_key_sql, 2, params, &r);
    }
    if (rc == 0 && PQntuples(r) == 0 && id == NULL) {
        uint8_t kid[WQ_UUID_LEN];

        /* not claimed yet: the receipt, under the key's own id */
        PQclear(r);
        r = NULL;
        (void)wq_uuid_for_key(queue, key, kid);
        wq_uuid_format(kid, idtext);
        params[0] = idtext;
        rc = cli_ops_query(s, cmd, by_id_sql, 1, params, &r);
    }
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        if (id != NULL)
            return show_outbox(cli, s, cmd, id);
        cli_err(cmd, "no task with key '%s' in queue '%s'", key, queue);
        return CLI_NOINPUT;
    }
    snprintf(idtext, sizeof idtext, "%s", val(r, 0, T_ID));
    params[0] = idtext;
    if ((rc = cli_ops_query(s, cmd, attempts_sql, 1, params, &a)) != 0) {
        PQclear(r);
        return rc;
    }

    if (cli->json) {
        json_t *o = json_object(), *hist = json_array(), *h;
        json_error_t jerr;

        json_object_set_new(o, "id", json_string(idtext));
        json_object_set_new(o, "queue", cli_json_str(val(r, 0, T_QUEUE)));
        json_object_set_new(o, "type", cli_json_str(val(r, 0, T_TYPE)));
        json_object_set_new(o, "idempotency_key",
            cli_json_str(val(r, 0, T_KEY)));
        json_object_set_new(o, "state", cli_json_str(val(r, 0, T_STATE)));
        if (is_receipt(r))
            json_object_set_new(o, "claimed", json_false());
        json_object_set_new(o, "attempt",
            json_integer(atoll(val(r, 0, T_ATTEMPT))));
        json_object_set_new(o, "max_attempts",
            json_integer(atoll(val(r, 0, T_MAX))));
        json_object_set_new(o, "run_at", cli_json_time(val(r, 0, T_RUN_AT)));
        json_object_set_new(o, "created_at",
            cli_json_time(val(r, 0, T_CREATED)));
        json_object_set_new(o, "updated_at",
            cli_json_time(val(r, 0, T_UPDATED)));
        json_object_set_new(o, "started_at",
            cli_json_time(val(r, 0, T_STARTED)));
        json_object_set_new(o, "finished_at",
            cli_json_time(val(r, 0, T_FINISHED)));
        json_object_set_new(o, "lease_expires_at",
            cli_json_time(val(r, 0, T_LEASE)));
        json_object_set_new(o, "lease_owner",
            cli_json_str(val(r, 0, T_LEASE_OWNER)));
        json_object_set_new(o, "worker", cli_json_str(val(r, 0, T_WORKER)));
        json_object_set_new(o, "last_error",
            cli_json_str(val(r, 0, T_ERROR)));
        json_object_set_new(o, "payload_bytes",
            json_integer(atoll(val(r, 0, T_PAYLOAD_LEN))));
        if (cli_json_bytea(o, "result", val(r, 0, T_RESULT)) != 0
            || cli_json_bytea(o, "payload", val(r, 0, T_PAYLOAD)) != 0)
            abort();    /* alloc.h */
        h = json_loads(val(r, 0, T_HEADERS), 0, &jerr);
        json_object_set_new(o, "headers", h != NULL ? h : json_object());
        if (strcmp(val(r, 0, T_STATE), "dead") == 0)
            json_object_set_new(o, "dead_published_at",
                cli_json_time(val(r, 0, T_DEAD_PUB)));
        for (int i = 0; i < PQntuples(a); i++) {
            json_t *x = json_object();

            json_object_set_new(x, "attempt",
                json_integer(atoll(val(a, i, 0))));
            json_object_set_new(x, "started_at", cli_json_time(val(a, i, 1)));
            json_object_set_new(x, "finished_at",
                cli_json_time(val(a, i, 2)));
            json_object_set_new(x, "duration_ms", val(a, i, 3) != NULL
                ? json_integer(atoll(val(a, i, 3))) : json_null());
            json_object_set_new(x, "worker", cli_json_str(val(a, i, 4)));
            json_object_set_new(x, "outcome", cli_json_str(val(a, i, 5)));
            json_object_set_new(x, "error", cli_json_str(val(a, i, 6)));
            json_array_append_new(hist, x);
        }
        json_object_set_new(o, "attempts", hist);
        cli_json_print(o);
    } else {
        static const char *const head[] = {
            "#", "STARTED", "DURATION", "WORKER", "OUTCOME", "ERROR",
        };
        struct cli_table t;
        int base = atoi(val(r, 0, T_BASE));

        field("id", idtext);
        field("queue", val(r, 0, T_QUEUE));
        field("type", val(r, 0, T_TYPE));
        field("key", val(r, 0, T_KEY));
        field("state", val(r, 0, T_STATE));
        if (is_receipt(r))
            printf("            accepted by the broker, not claimed by a "
                "worker yet; the payload is on the broker\n");
        printf("attempts    %s of %s", val(r, 0, T_ATTEMPT),
            val(r, 0, T_MAX));
        if (base > 0)
            printf(" (retried by hand after attempt %d)", base);
        printf("\n");
        printf("created     %s\n", cli_time(val(r, 0, T_CREATED), buf,
            sizeof buf));
        if (val(r, 0, T_RUN_AT) != NULL)
            printf("run at      %s\n", cli_time(val(r, 0, T_RUN_AT), buf,
                sizeof buf));
        if (val(r, 0, T_STARTED) != NULL)
            printf("started     %s\n", cli_time(val(r, 0, T_STARTED), buf,
                sizeof buf));
        if (val(r, 0, T_FINISHED) != NULL)
            printf("finished    %s\n", cli_time(val(r, 0, T_FINISHED), buf,
                sizeof buf));
        if (val(r, 0, T_LEASE_OWNER) != NULL) {
            printf("lease       ");
            cli_print_escaped(stdout, val(r, 0, T_LEASE_OWNER));
            printf(" until %s\n", cli_time(val(r, 0, T_LEASE), buf,
                sizeof buf));
        }
        if (val(r, 0, T_WORKER) != NULL)
            field("worker", val(r, 0, T_WORKER));
        if (!is_receipt(r))
            bytes_field("payload", val(r, 0, T_PAYLOAD));
        if (val(r, 0, T_RESULT) != NULL)
            bytes_field("result", val(r, 0, T_RESULT));
        if (strcmp(val(r, 0, T_HEADERS), "{}") != 0)
            field("headers", val(r, 0, T_HEADERS));
        if (val(r, 0, T_ERROR) != NULL)
            field("last error", val(r, 0, T_ERROR));
        if (PQntuples(a) > 0) {
            printf("\n");
            cli_table_init(&t, WQ_ARRAY_LEN(head), head);
            for (int i = 0; i < PQntuples(a); i++) {
                char started[40], dur[32];
                const char *row[6];

                snprintf(dur, sizeof dur, "%s%s", val(a, i, 3) != NULL
                    ? val(a, i, 3) : "", val(a, i, 3) != NULL ? " ms" : "");
                row[0] = val(a, i, 0);
                row[1] = cli_time(val(a, i, 1), started, sizeof started);
                row[2] = dur;
                row[3] = val(a, i, 4);
                row[4] = val(a, i, 5) != NULL ? val(a, i, 5) : "(running)";
                row[5] = val(a, i, 6);
                cli_table_add(&t, row);
            }
            cli_table_print(&t, stdout);
            cli_table_free(&t);
        }
    }
    PQclear(a);
    PQclear(r);
    return CLI_OK;
}

/*
 * cli_ops.c - helpers of the operator commands (see cli_ops.h): queries,
 * tables, JSON, times, and the task view of `status` and `dlq show`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "cli_ops.h"
#include "config.h"
#include "priority.h"
#include "task_json.h"
#include "textout.h"
#include "uuid.h"

int
cli_ops_query(wq_store *s, const char *cmd, enum wq_admin_sql q,
    const char *const *params, struct pg_result **out)
{
    char err[WQ_ERRLEN];
    int rc;

    if ((rc = wq_store_admin_query(s, q, params, out, cmd, err,
        sizeof err)) != 0) {
        cli_err(cmd, "%s", err);
        return rc == WQ_EINVAL ? CLI_DATAERR : CLI_UNAVAILABLE;
    }
    return CLI_OK;
}

int
cli_ops_failed(const char *cmd, int rc, const char *err)
{
    cli_err(cmd, "%s", err);
    return rc == WQ_EINVAL ? CLI_DATAERR : rc == WQ_ENOENT ? CLI_NOINPUT
        : CLI_UNAVAILABLE;
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
    if ((v = wq_store_bytea_decode(hex, &n)) == NULL)
        abort();    /* alloc.h */
    if (wq_text_preview(&b, v, n, total, max, flags) != 0
        || wq_buf_append(&b, "", 1) != 0)
        abort();
    free(v);
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
    if ((v = wq_store_bytea_decode(hex, &n)) == NULL)
        return WQ_ENOMEM;
    rc = wq_text_json_set_bytes(o, name, v, n);
    free(v);
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

void
cli_json_lines(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);

    for (size_t i = 0; i < json_array_size(v); i++)
        cli_json_print(json_incref(json_array_get(v, i)));
    json_decref(o);
}

json_t *
cli_json_str(const char *s)
{
    return wq_task_json_str(s);
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

/* Bytes of a result or payload a page shows; --json gives all. */
#define SHOW_BYTES 1024

/* An epoch-milliseconds time (0: none) as RFC 3339 into buf, or "-". */
static const char *
tm(int64_t ms, char *buf, size_t len)
{
    return ms == 0 ? "-" : wq_clock_format_rfc3339(ms, buf, len);
}

/* A line "label       value" of the task page, the value escaped. */
static void
field(const char *label, const char *v)
{
    printf("%-12s", label);
    cli_print_escaped(stdout, v);
    putchar('\n');
}

/* "payload     17 bytes: {...}": a byte column's size and preview. */
static void
bytes_field(const char *label, const void *p, size_t n)
{
    printf("%-12s%zu bytes%s", label, n, n > 0 ? ": " : "");
    cli_print_bytes(stdout, p, n, SHOW_BYTES);
    putchar('\n');
}

/* Maps a store failure to an exit code, with the message. */
static int
store_fail(const char *cmd, int rc, const char *err)
{
    cli_err(cmd, "%s", err);
    return rc == WQ_EINVAL ? CLI_DATAERR : CLI_UNAVAILABLE;
}

static int
show_outbox(struct cli *cli, wq_store *s, const char *cmd, const char *id)
{
    char err[WQ_ERRLEN], when[40], *queue;
    uint8_t bin[WQ_UUID_LEN];
    int64_t created;
    int rc;

    (void)wq_uuid_parse(id, bin);
    rc = wq_store_outbox_get(s, bin, &queue, &created, err, sizeof err);
    if (rc == WQ_ENOENT) {
        /* a workflow's id, or a workflow task not started yet */
        if ((rc = cli_workflow_show(cli, s, id)) != CLI_NOINPUT)
            return rc;
        cli_err(cmd, "no task %s", id);
        return CLI_NOINPUT;
    }
    if (rc == WQ_ENOMEM)
        abort();    /* alloc.h */
    if (rc != 0)
        return store_fail(cmd, rc, err);
    if (cli->json) {
        json_t *o = json_object();

        json_object_set_new(o, "id", json_string(id));
        json_object_set_new(o, "queue", cli_json_str(queue));
        json_object_set_new(o, "state", json_string("outbox"));
        /* the relay publishes to the queue itself (README "Priorities") */
        json_object_set_new(o, "priority", json_string(wq_priority_name(
            WQ_PRIORITY_NORMAL)));
        json_object_set_new(o, "enqueued_at", created != 0
            ? json_string(tm(created, when, sizeof when)) : json_null());
        cli_json_print(o);
    } else {
        field("id", id);
        field("queue", queue);
        printf("state       outbox (enqueued in a transaction at %s, waiting "
            "for the scheduler's relay)\n", tm(created, when, sizeof when));
        field("priority", wq_priority_name(WQ_PRIORITY_NORMAL));
    }
    free(queue);
    return CLI_OK;
}

/* The page for people: the row, then the attempts as a table. */
static void
print_task(const struct wq_task_row *row, const char *idtext,
    const struct wq_task_attempt *att, size_t natt)
{
    static const char *const head[] = {
        "#", "STARTED", "DURATION", "WORKER", "OUTCOME", "ERROR",
    };
    struct cli_table t;
    char buf[40];

    field("id", idtext);
    field("queue", row->queue);
    field("type", row->type);
    field("key", row->idempotency_key);
    field("state", wq_task_state_name(row->state));
    field("priority", wq_priority_name(row->priority));
    if (row->receipt)
        printf("            accepted by the broker, not claimed by a "
            "worker yet; the payload is on the broker\n");
    if (row->has_progress)
        printf("progress    %d%%%s%s (reported %s)\n", row->progress,
            row->progress_message != NULL ? " " : "",
            row->progress_message != NULL ? row->progress_message : "",
            tm(row->progress_at_ms, buf, sizeof buf));
    printf("attempts    %d of %d", row->attempt, row->max_attempts);
    if (row->attempt_base > 0)
        printf(" (retried by hand after attempt %d)", row->attempt_base);
    printf("\n");
    printf("created     %s\n", tm(row->created_at_ms, buf, sizeof buf));
    if (row->run_at_ms != 0)
        printf("run at      %s\n", tm(row->run_at_ms, buf, sizeof buf));
    if (row->started_at_ms != 0)
        printf("started     %s\n", tm(row->started_at_ms, buf, sizeof buf));
    if (row->finished_at_ms != 0)
        printf("finished    %s\n", tm(row->finished_at_ms, buf,
            sizeof buf));
    if (row->lease_owner != NULL) {
        printf("lease       ");
        cli_print_escaped(stdout, row->lease_owner);
        printf(" until %s\n", tm(row->lease_expires_at_ms, buf, sizeof buf));
    }
    if (row->worker != NULL)
        field("worker", row->worker);
    if (!row->receipt && row->payload != NULL)
        bytes_field("payload", row->payload, row->payload_len);
    if (row->result != NULL)
        bytes_field("result", row->result, row->result_len);
    if (row->headers_json != NULL && strcmp(row->headers_json, "{}") != 0)
        field("headers", row->headers_json);
    if (row->last_error != NULL)
        field("last error", row->last_error);
    if (natt == 0)
        return;
    printf("\n");
    cli_table_init(&t, WQ_ARRAY_LEN(head), head);
    for (size_t i = 0; i < natt; i++) {
        char num[16], started[40], dur[32];
        const char *cells[6];

        snprintf(num, sizeof num, "%d", att[i].attempt);
        if (att[i].duration_ms >= 0)
            snprintf(dur, sizeof dur, "%lld ms",
                (long long)att[i].duration_ms);
        else
            dur[0] = '\0';
        cells[0] = num;
        cells[1] = tm(att[i].started_at_ms, started, sizeof started);
        cells[2] = dur;
        cells[3] = att[i].worker;
        cells[4] = att[i].outcome != NULL ? att[i].outcome : "(running)";
        cells[5] = att[i].error;
        cli_table_add(&t, cells);
    }
    cli_table_print(&t, stdout);
    cli_table_free(&t);
}

int
cli_show_task(struct cli *cli, wq_store *s, const char *cmd,
    const char *id, const char *queue, const char *key)
{
    struct wq_task_attempt *att = NULL;
    struct wq_task_row row;
    char err[WQ_ERRLEN], idtext[WQ_UUID_STRLEN];
    uint8_t bin[WQ_UUID_LEN];
    size_t natt = 0;
    int rc;

    if (id != NULL) {
        (void)wq_uuid_parse(id, bin);
        rc = wq_store_task_get(s, bin, &row, err, sizeof err);
    } else {
        /* the row, or the receipt under the key's own id */
        rc = wq_store_task_get_by_key(s, queue, key, &row, err, sizeof err);
    }
    if (rc == WQ_ENOENT) {
        if (id != NULL)
            return show_outbox(cli, s, cmd, id);
        cli_err(cmd, "no task with key '%s' in queue '%s'", key, queue);
        return CLI_NOINPUT;
    }
    if (rc == 0)
        rc = wq_store_task_attempts(s, row.id, &att, &natt, err, sizeof err);
    if (rc == 0)
        rc = wq_store_task_progress(s, &row, err, sizeof err);
    if (rc == WQ_ENOMEM)
        abort();    /* alloc.h */
    if (rc != 0) {
        wq_task_row_free(&row);
        return store_fail(cmd, rc, err);
    }
    wq_uuid_format(row.id, idtext);
    if (cli->json) {
        json_t *o = wq_task_json(&row, att, natt);

        if (o == NULL)
            abort();    /* alloc.h */
        cli_json_print(o);
    } else {
        print_task(&row, idtext, att, natt);
    }
    wq_task_attempts_free(att, natt);
    wq_task_row_free(&row);
    return CLI_OK;
}

/*
 * cli_submit.c - `workq submit`: submits one task (payload from an
 * argument, a file or stdin) or a stream of JSON lines (--batch), through
 * the C client API (workq.h), and with --wait follows the task in
 * PostgreSQL until it has an outcome.
 *
 * One task: the client blocks until the broker confirmed (or PostgreSQL
 * stored a delayed task) and the id is printed.  A batch: every line is
 * parsed as a task object (taskspec.h) and handed to the client's async
 * path, so thousands of messages are in flight while the file is still
 * being read; one flush at the end.  A line that does not parse is
 * reported with its number on stderr and skipped; the good lines still
 * go.  The exit code says what went wrong first by severity: the broker
 * or PostgreSQL (69) before a bad line (65).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "clock.h"
#include "envelope.h"
#include "priority.h"
#include "store.h"
#include "taskspec.h"
#include "textout.h"
#include "uuid.h"
#include "workq.h"

#define CMD "submit"
#define WAIT_FIRST_MS 10        /* --wait: first poll interval ... */
#define WAIT_MAX_MS   1000      /* ... growing by half up to this */

struct opts {
    const char *queue, *type, *file, *key, *batch, *workflow;
    const char *payload_arg;
    int max_attempts;
    int64_t delay_ms, run_at_ms;
    int wait;
    int64_t timeout_ms;         /* --wait deadline; 0: none */
    int json, quiet;
    struct wq_client_header headers[WQ_HEADERS_MAX];
    size_t nheaders;
    struct wq_client_flow flow; /* --concurrency-key, --unique-for, ... */
    int priority;               /* --priority; WQ_PRIORITY_NORMAL */
};

/* Long options without a short form. */
enum { OPT_CKEY = 1000, OPT_CLIMIT, OPT_UNIQUE_FOR, OPT_HOOK, OPT_PRIORITY };

/* --- reading input ------------------------------------------------------- */

/* Reads all of f (at most `max` bytes) into *out (malloc'd, NUL after). */
static int
read_all(FILE *f, size_t max, char **out, size_t *len)
{
    size_t cap = 4096, n = 0, r;
    char *buf = malloc(cap), *grown;

    if (buf == NULL)
        return WQ_ENOMEM;
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            if ((grown = realloc(buf, cap)) == NULL) {
                free(buf);
                return WQ_ENOMEM;
            }
            buf = grown;
        }
        r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n > max) {
            free(buf);
            return WQ_ETOOBIG;
        }
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        return WQ_EIO;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* The payload of a single submit: argument, --file or stdin ("-"). */
static int
load_payload(const struct opts *o, char **buf, size_t *len)
{
    const char *path = o->file;
    FILE *f;
    int rc;

    *buf = NULL;
    *len = 0;
    if (path == NULL && o->payload_arg != NULL
        && strcmp(o->payload_arg, "-") != 0) {
        if ((*buf = strdup(o->payload_arg)) == NULL)
            return CLI_SOFTWARE;
        *len = strlen(*buf);
        return CLI_OK;
    }
    if (path == NULL && o->payload_arg == NULL)
        return CLI_OK;      /* an empty payload */
    if (path == NULL || strcmp(path, "-") == 0) {
        f = stdin;
        path = "stdin";
    } else if ((f = fopen(path, "rb")) == NULL) {
        cli_err(CMD, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? CLI_NOINPUT : CLI_DATAERR;
    }
    rc = read_all(f, WQ_PAYLOAD_MAX, buf, len);
    if (f != stdin)
        fclose(f);
    if (rc == WQ_ETOOBIG) {
        cli_err(CMD, "%s: payload larger than %u bytes", path,
            WQ_PAYLOAD_MAX);
        return CLI_DATAERR;
    }
    if (rc != 0) {
        cli_err(CMD, "%s: %s", path, rc == WQ_EIO ? strerror(errno)
            : wq_strerror(rc));
        return rc == WQ_EIO ? CLI_DATAERR : CLI_SOFTWARE;
    }
    return CLI_OK;
}

/* --- output -------------------------------------------------------------- */

static void
json_print(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);

    if (s != NULL) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    json_decref(o);
}

/* A line of task data for people: escaped text or hex, 1024 bytes. */
static void
print_preview(const void *p, size_t n)
{
    struct wq_buf b = WQ_BUF_INIT;

    if (wq_text_preview(&b, p, n, 0, 1024, 0) == 0)
        fwrite(b.data != NULL ? b.data : "", 1, b.len, stdout);
    fputc('\n', stdout);
    wq_buf_free(&b);
}

static void
print_accepted(const struct opts *o, const char *queue, const char *key,
    const struct wq_client_result *r)
{
    char when[40];
    json_t *j;

    if (!o->json) {
        printf("%s\n", r->id);
        if (r->duplicate && !o->quiet)
            cli_err(CMD, "the key was submitted before: task %s is %s; "
                "nothing new was submitted", r->id, r->state[0] != '\0'
                ? r->state : "queued");
        if (r->untracked && !o->quiet)
            cli_err(CMD, "task %s is on the broker, but PostgreSQL could "
                "not record its receipt: `workq status` knows it once a "
                "worker claims it", r->id);
        return;
    }
    j = json_pack("{s:s, s:s, s:s, s:s}", "id", r->id, "queue", queue,
        "idempotency_key", key != NULL ? key : r->id, "state",
        r->state[0] != '\0' ? r->state : r->scheduled ? "scheduled"
        : "queued");
    if (r->untracked)
        json_object_set_new(j, "untracked", json_true());
    if (r->scheduled)
        json_object_set_new(j, "run_at", json_string(
            wq_clock_format_rfc3339(r->run_at_ms, when, sizeof when)));
    if (r->duplicate)
        json_object_set_new(j, "duplicate", json_true());
    if (!o->wait)
        json_print(j);
    else
        json_decref(j);
}

/* --- --wait -------------------------------------------------------------- */

static void
sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/*
 * Polls PostgreSQL by (queue, key) until the task is final or the
 * deadline passes.  The key, not the id: a task whose key existed runs
 * under the first task's row.  Immediate tasks have no row until a
 * worker claims them.
 */
static int
wait_outcome(struct cli *cli, const struct opts *o, const char *queue,
    const char *key, const struct wq_client_result *r)
{
    uint64_t deadline = o->timeout_ms > 0
        ? wq_clock_mono_ns() + (uint64_t)o->timeout_ms * 1000000u : 0;
    struct wq_task_row row;
    char err[WQ_ERRLEN], idtext[WQ_UUID_STRLEN];
    wq_store *store;
    int interval = WAIT_FIRST_MS, rc, left;
    json_t *j;

    if ((rc = cli_store(cli, &store)) != CLI_OK)
        return rc;
    for (;;) {
        memset(&row, 0, sizeof row);
        rc = wq_store_task_get_by_key(store, queue, key, &row, err,
            sizeof err);
        if (rc == 0 && wq_task_state_is_final(row.state))
            break;
        wq_task_row_free(&row);
        if (rc == WQ_ESTORE && wq_store_ping(store, NULL, 0) != 0) {
            cli_err(CMD, "PostgreSQL: %s", err);
            wq_store_close(store);
            return CLI_UNAVAILABLE;
        }
        if (rc != 0 && rc != WQ_ENOENT && rc != WQ_ESTORE) {
            cli_err(CMD, "%s", err);
            wq_store_close(store);
            return cli_exit_code(rc);
        }
        if (deadline != 0 && (left = wq_clock_ms_until(deadline)) == 0) {
            wq_store_close(store);
            if (o->json) {
                j = json_pack("{s:s, s:s, s:s, s:s}", "id", r->id, "queue",
                    queue, "idempotency_key", key, "state", "timeout");
                json_print(j);
            }
            cli_err(CMD, "task %s has no outcome after %" PRId64 " ms",
                r->id, o->timeout_ms);
            return CLI_TEMPFAIL;
        }
        if (deadline != 0 && left < interval)
            sleep_ms(left);
        else
            sleep_ms(interval);
        interval = interval * 3 / 2 > WAIT_MAX_MS ? WAIT_MAX_MS
            : interval * 3 / 2;
    }
    wq_store_close(store);

    wq_uuid_format(row.id, idtext);
    if (o->json) {
        j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "id", idtext,
            "queue", row.queue, "idempotency_key", row.idempotency_key,
            "state", wq_task_state_name(row.state), "attempt", row.attempt,
            "max_attempts", row.max_attempts);
        if (row.result != NULL)
            (void)wq_text_json_set_bytes(j, "result", row.result,
                row.result_len);
        if (row.last_error != NULL)
            json_object_set_new(j, "error", json_string(row.last_error));
        json_print(j);
    } else {
        printf("%s after %d attempt%s\n", wq_task_state_name(row.state),
            row.attempt, row.attempt == 1 ? "" : "s");
        /* task data: escaped, a preview (textout.h); --json has it all */
        if (row.state == WQ_TASK_SUCCEEDED && row.result != NULL) {
            size_t n = row.result_len;

            if (n > 0 && row.result[n - 1] == '\n')
                n--;    /* the usual end of a program's output */
            print_preview(row.result, n);
        } else if (row.last_error != NULL) {
            fputs("error: ", stdout);
            print_preview(row.last_error, strlen(row.last_error));
        }
    }
    rc = row.state == WQ_TASK_SUCCEEDED ? CLI_OK : CLI_NO;
    wq_task_row_free(&row);
    return rc;
}

/* --- one task ------------------------------------------------------------ */

static int
open_client(struct cli *cli, wq_client **c)
{
    char err[WQ_ERRLEN];
    int rc;

    if ((rc = cli_config(cli)) != CLI_OK)
        return rc;
    if ((rc = wq_client_open_config(&cli->cfg, c, err, sizeof err)) != 0) {
        cli_err(CMD, "%s", err);
        return cli_exit_code(rc);
    }
    return CLI_OK;
}

static int
submit_one(struct cli *cli, const struct opts *o)
{
    struct wq_client_task t;
    struct wq_client_result r;
    char err[WQ_ERRLEN], *payload;
    size_t len;
    wq_client *c;
    int rc;

    if ((rc = load_payload(o, &payload, &len)) != CLI_OK)
        return rc;
    memset(&t, 0, sizeof t);
    t.queue = o->queue;
    t.type = o->type;
    t.payload = payload;
    t.payload_len = len;
    t.idempotency_key = o->key;
    t.max_attempts = o->max_attempts;
    t.delay_ms = o->delay_ms;
    t.run_at_ms = o->run_at_ms;
    t.headers = o->headers;
    t.nheaders = o->nheaders;
    if ((rc = open_client(cli, &c)) != CLI_OK) {
        free(payload);
        return rc;
    }
    if ((rc = wq_client_set_flow(c, &o->flow, err, sizeof err)) != 0
        || (rc = wq_client_set_priority(c, o->priority, err, sizeof err))
        != 0) {
        wq_client_free(c);
        free(payload);
        cli_err(CMD, "%s", err);
        return cli_exit_code(rc);
    }
    rc = wq_client_submit_batch(c, &t, 1, &r, err, sizeof err);
    wq_client_free(c);
    free(payload);
    if (rc != 0) {
        cli_err(CMD, "%s", r.error);
        return cli_exit_code(rc);
    }
    print_accepted(o, o->queue, o->key, &r);
    fflush(stdout);
    if (!o->wait)
        return CLI_OK;
    return wait_outcome(cli, o, o->queue, o->key != NULL ? o->key : r.id, &r);
}

/* --- a batch ------------------------------------------------------------- */

struct batch {
    const struct opts *o;
    size_t read, accepted, rejected, failed;
    int worst;                  /* exit code of the worst failure */
    int progress;               /* stderr is a terminal: show progress */
    int shown;                  /* a progress line is on the screen */
    uint64_t start_ns, shown_ns;
};

#define PROGRESS_EVERY_NS 250000000u    /* at most 4 updates a second */

/*
 * The progress line of a batch on a terminal, rewritten in place ("\r",
 * then erase to the end of the line): lines read, confirmed by the
 * broker, refused (invalid or not confirmed), and the rate of
 * confirmations.  Throttled unless `force`; nothing when stderr is not a
 * terminal.
 */
static void
progress_show(struct batch *b, int force)
{
    uint64_t now;
    double secs;

    if (!b->progress)
        return;
    now = wq_clock_mono_ns();
    if (!force && b->shown && now - b->shown_ns < PROGRESS_EVERY_NS)
        return;
    secs = (double)(now - b->start_ns) / 1e9;
    fprintf(stderr, "\r\033[Kworkq submit: %zu lines read, %zu confirmed, "
        "%zu refused, %.0f tasks/s", b->read, b->accepted,
        b->rejected + b->failed, secs > 0 ? (double)b->accepted / secs : 0.0);
    fflush(stderr);
    b->shown = 1;
    b->shown_ns = now;
}

/* Erases the progress line, before a message or at the end. */
static void
progress_clear(struct batch *b)
{
    if (b->shown) {
        fputs("\r\033[K", stderr);
        b->shown = 0;
    }
}

static void
batch_worst(struct batch *b, int code)
{
    /* unavailable and timeouts outrank rejected input */
    if (b->worst == CLI_OK || (b->worst == CLI_DATAERR && code != CLI_OK))
        b->worst = code;
}

static void
line_error(struct batch *b, size_t line, const char *error,
    const char *detail)
{
    json_t *j;

    char *e = wq_text_escape_str(detail, 0);

    progress_clear(b);
    cli_err(CMD, "line %zu: %s", line, e != NULL ? e : detail);
    free(e);
    if (b->o->json) {
        j = json_pack("{s:I, s:s, s:s}", "line", (json_int_t)line, "error",
            error, "detail", detail);
        json_print(j);
    }
}

static struct batch *cur_batch;     /* for line_done: one batch at a time */

static void
line_done(void *user, const struct wq_client_result *r)
{
    struct batch *b = cur_batch;
    size_t line = (size_t)(uintptr_t)user;
    json_t *j;

    if (r->status != 0) {
        b->failed++;
        batch_worst(b, cli_exit_code(r->status));
        line_error(b, line, "unavailable", r->error);
        return;
    }
    b->accepted++;
    if (b->o->json) {
        j = json_pack("{s:I, s:s, s:s}", "line", (json_int_t)line, "id",
            r->id, "state", r->state[0] != '\0' ? r->state : r->scheduled
            ? "scheduled" : "queued");
        if (r->duplicate)
            json_object_set_new(j, "duplicate", json_true());
        if (r->untracked)
            json_object_set_new(j, "untracked", json_true());
        json_print(j);
    } else if (!b->o->quiet) {
        printf("%zu %s\n", line, r->id);
    }
    progress_show(b, 0);
}

static int
submit_batch(struct cli *cli, const struct opts *o)
{
    struct wq_taskspec_defaults def = {
        .queue = o->queue, .allow_queue = 1, .type = o->type,
        .max_attempts = o->max_attempts, .headers = o->headers,
        .nheaders = o->nheaders,
    };
    struct batch b = { .o = o, .worst = CLI_OK };
    struct wq_taskspec spec;
    char err[WQ_ERRLEN], *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    wq_client *c;
    FILE *f;
    int rc;

    if (strcmp(o->batch, "-") == 0)
        f = stdin;
    else if ((f = fopen(o->batch, "r")) == NULL) {
        cli_err(CMD, "%s: %s", o->batch, strerror(errno));
        return errno == ENOENT ? CLI_NOINPUT : CLI_DATAERR;
    }
    if ((rc = open_client(cli, &c)) != CLI_OK) {
        if (f != stdin)
            fclose(f);
        return rc;
    }
    cur_batch = &b;
    b.progress = !o->quiet && isatty(STDERR_FILENO);
    b.start_ns = wq_clock_mono_ns();
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        b.read = lineno;
        progress_show(&b, 0);
        if (strspn(line, " \t\r\n") == (size_t)n)
            continue;       /* blank lines are no tasks */
        /* one line: its end is no part of the task (nor of an error's
         * position in it) */
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        rc = wq_taskspec_parse(line, (size_t)n, &def, &spec, err,
            sizeof err);
        if (rc == 0) {
            if (spec.task.delay_ms == 0 && spec.task.run_at_ms == 0) {
                spec.task.delay_ms = o->delay_ms;
                spec.task.run_at_ms = o->run_at_ms;
            }
            /* flow control: the line's own, else the options' */
            if (spec.flow.concurrency_key == NULL) {
                spec.flow.concurrency_key = o->flow.concurrency_key;
                spec.flow.concurrency_limit = o->flow.concurrency_limit;
            }
            if (spec.flow.unique_for_ms == 0)
                spec.flow.unique_for_ms = o->flow.unique_for_ms;
            rc = wq_client_set_flow(c, &spec.flow, err, sizeof err);
            /* the line's priority, else --priority */
            if (rc == 0)
                rc = wq_client_set_priority(c, spec.priority >= 0
                    ? spec.priority : o->priority, err, sizeof err);
            if (rc == 0)
                rc = wq_client_submit_async(c, &spec.task, line_done,
                    (void *)(uintptr_t)lineno, NULL, err, sizeof err);
            wq_taskspec_free(&spec);
            if (rc == WQ_EBROKER || rc == WQ_ESTORE || rc == WQ_ETIMEOUT
                || rc == WQ_ENACK || rc == WQ_ECLOSED || rc == WQ_EIO) {
                /* the rest would fail the same way: stop, and say where */
                b.failed++;
                batch_worst(&b, cli_exit_code(rc));
                line_error(&b, lineno, "unavailable", err);
                progress_clear(&b);
                cli_err(CMD, "stopped at line %zu: the lines after it were "
                    "not submitted", lineno);
                break;
            }
        }
        if (rc != 0) {
            b.rejected++;
            batch_worst(&b, CLI_DATAERR);
            line_error(&b, lineno, rc == WQ_EDECODE ? "invalid_json"
                : rc == WQ_ETOOBIG ? "too_large" : "invalid_task", err);
        }
    }
    if (ferror(f)) {
        cli_err(CMD, "%s: %s", o->batch, strerror(errno));
        batch_worst(&b, CLI_DATAERR);
    }
    free(line);
    if (f != stdin)
        fclose(f);
    (void)wq_client_flush(c, -1, NULL, 0);
    wq_client_free(c);
    cur_batch = NULL;
    fflush(stdout);
    progress_clear(&b);     /* the summary below says it all */
    if (!o->quiet)
        fprintf(stderr, "workq submit: %zu task%s accepted, %zu line%s "
            "rejected, %zu not confirmed\n", b.accepted,
            b.accepted == 1 ? "" : "s", b.rejected,
            b.rejected == 1 ? "" : "s", b.failed);
    return b.worst;
}

/* --- options ------------------------------------------------------------- */

static int usage_error(const char *fmt, ...) WQ_PRINTFLIKE(1, 2);

static int
usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "workq submit: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (workq help submit)\n");
    return CLI_USAGE;
}

static int
parse_opts(struct cli *cli, int argc, char **argv, struct opts *o)
{
    static const struct option lopts[] = {
        { "queue", required_argument, NULL, 'q' },
        { "type", required_argument, NULL, 't' },
        { "file", required_argument, NULL, 'f' },
        { "key", required_argument, NULL, 'k' },
        { "delay", required_argument, NULL, 'd' },
        { "at", required_argument, NULL, 'a' },
        { "max-attempts", required_argument, NULL, 'm' },
        { "header", required_argument, NULL, 'H' },
        { "json", no_argument, NULL, 'j' },
        { "wait", no_argument, NULL, 'w' },
        { "timeout", required_argument, NULL, 'T' },
        { "batch", required_argument, NULL, 'b' },
        { "concurrency-key", required_argument, NULL, OPT_CKEY },
        { "concurrency-limit", required_argument, NULL, OPT_CLIMIT },
        { "unique-for", required_argument, NULL, OPT_UNIQUE_FOR },
        { "hook", required_argument, NULL, OPT_HOOK },
        { "priority", required_argument, NULL, OPT_PRIORITY },
        { "workflow", required_argument, NULL, 'W' },
        { NULL, 0, NULL, 0 },
    };
    char *end, *eq, why[WQ_ERRLEN];
    const char *hook = NULL;
    long v;
    int ch;

    memset(o, 0, sizeof *o);
    o->priority = WQ_PRIORITY_NORMAL;
    o->json = cli->json;
    o->quiet = cli->quiet;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":q:t:f:k:d:a:m:H:jwT:b:W:", lopts,
        NULL)) != -1) {
        switch (ch) {
        case 'q': o->queue = optarg; break;
        case 't': o->type = optarg; break;
        case 'f': o->file = optarg; break;
        case 'k': o->key = optarg; break;
        case 'b': o->batch = optarg; break;
        case 'W': o->workflow = optarg; break;
        case 'j': o->json = 1; break;
        case 'w': o->wait = 1; break;
        case 'd':
            if (wq_taskspec_parse_delay(optarg, &o->delay_ms) != 0)
                return usage_error("--delay '%s': want a duration such as "
                    "30s, 5m, 1h30m or 500ms", optarg);
            break;
        case 'a':
            if (wq_taskspec_parse_rfc3339(optarg, &o->run_at_ms) != 0
                || o->run_at_ms <= 0)
                return usage_error("--at '%s': want an RFC 3339 time such "
                    "as 2026-11-28T07:43:06Z", optarg);
            break;
        case 'T':
            if (wq_taskspec_parse_delay(optarg, &o->timeout_ms) != 0
                || o->timeout_ms == 0)
                return usage_error("--timeout '%s': want a duration such "
                    "as 30s", optarg);
            break;
        case 'm':
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || end == optarg || v < 1
                || v > 1000000)
                return usage_error("--max-attempts '%s': want an integer "
                    "from 1 to 1000000", optarg);
            o->max_attempts = (int)v;
            break;
        case 'H':
            if ((eq = strchr(optarg, '=')) == NULL || eq == optarg)
                return usage_error("--header '%s': want NAME=VALUE",
                    optarg);
            if (o->nheaders == WQ_HEADERS_MAX)
                return usage_error("--header '%s': too many headers",
                    optarg);
            *eq = '\0';
            o->headers[o->nheaders].name = optarg;
            o->headers[o->nheaders++].value = eq + 1;
            break;
        case OPT_CKEY:
            if (optarg[0] == '\0'
                || strlen(optarg) > WQ_CONCURRENCY_KEY_MAX)
                return usage_error("--concurrency-key: want 1 to %d bytes",
                    WQ_CONCURRENCY_KEY_MAX);
            o->flow.concurrency_key = optarg;
            break;
        case OPT_CLIMIT:
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || end == optarg || v < 1
                || v > WQ_CONCURRENCY_LIMIT_MAX)
                return usage_error("--concurrency-limit '%s': want an "
                    "integer from 1 to %d", optarg,
                    WQ_CONCURRENCY_LIMIT_MAX);
            o->flow.concurrency_limit = (int)v;
            break;
        case OPT_UNIQUE_FOR:
            if (wq_taskspec_parse_delay(optarg, &o->flow.unique_for_ms) != 0
                || o->flow.unique_for_ms <= 0)
                return usage_error("--unique-for '%s': want a duration such "
                    "as 1h or 30m", optarg);
            break;
        case OPT_HOOK:
            if (wq_taskspec_check_hook(optarg, why, sizeof why) != 0)
                return usage_error("--hook: %s", why);
            hook = optarg;
            break;
        case OPT_PRIORITY:
            if (wq_priority_parse(optarg, &o->priority) != 0)
                return usage_error("--priority '%s': want high, normal or "
                    "low (or 2, 1, 0)", optarg);
            break;
        case ':':
            return usage_error("option '%s' needs a value",
                argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (hook != NULL) {
        /* the task's completion hook is its header workq-hook */
        for (size_t i = 0; i < o->nheaders; i++)
            if (strcmp(o->headers[i].name, WQ_HOOK_HEADER) == 0)
                return usage_error("%s", "give --hook or --header "
                    WQ_HOOK_HEADER "=URL, not both");
        if (o->nheaders == WQ_HEADERS_MAX)
            return usage_error("%s", "--hook: too many headers");
        o->headers[o->nheaders].name = WQ_HOOK_HEADER;
        o->headers[o->nheaders++].value = hook;
    }
    if (optind < argc)
        o->payload_arg = argv[optind++];
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (o->delay_ms > 0 && o->run_at_ms > 0)
        return usage_error("%s", "give --delay or --at, not both");
    if (o->flow.concurrency_limit > 0 && o->flow.concurrency_key == NULL)
        return usage_error("%s", "--concurrency-limit goes with "
            "--concurrency-key");
    if (o->flow.unique_for_ms > 0 && o->key == NULL && o->batch == NULL)
        return usage_error("%s", "--unique-for needs --key (the key it "
            "keeps unique)");
    if (o->timeout_ms > 0 && !o->wait)
        return usage_error("%s", "--timeout goes with --wait");
    if (o->workflow != NULL) {
        if (argc != 3 && !(argc == 4 && o->json))
            return usage_error("%s", "--workflow takes its tasks from the "
                "document: no other option or argument");
        return CLI_OK;
    }
    if (o->batch != NULL) {
        if (o->payload_arg != NULL || o->file != NULL || o->key != NULL
            || o->wait)
            return usage_error("%s", "--batch takes each task from its "
                "line: no payload, --file, --key or --wait");
        return CLI_OK;
    }
    if (o->queue == NULL || o->type == NULL)
        return usage_error("%s", "--queue and --type are required");
    if (o->payload_arg != NULL && o->file != NULL)
        return usage_error("%s", "give the payload as an argument or "
            "with --file, not both");
    return CLI_OK;
}

static int
run(struct cli *cli, int argc, char **argv)
{
    struct opts o;
    int rc;

    if ((rc = parse_opts(cli, argc, argv, &o)) != CLI_OK)
        return rc;
    if (o.workflow != NULL) {
        cli->json = o.json;
        return cli_workflow_submit(cli, o.workflow);
    }
    return o.batch != NULL ? submit_batch(cli, &o) : submit_one(cli, &o);
}

const struct cli_command cli_cmd_submit = {
    "submit",
    "submit a task, or many from JSON lines",
    "NAME\n"
    "    workq submit - submit a background task\n"
    "\n"
    "SYNOPSIS\n"
    "    workq [GLOBAL OPTIONS] submit --queue Q --type T [OPTIONS]\n"
    "                                  [PAYLOAD | - | --file PATH]\n"
    "    workq [GLOBAL OPTIONS] submit --batch FILE|- [--queue Q] [--type T]\n"
    "                                  [OPTIONS]\n"
    "    workq [GLOBAL OPTIONS] submit --workflow FILE|-\n"
    "\n"
    "DESCRIPTION\n"
    "    Puts a task on queue Q for the handler named T and prints its id\n"
    "    once the broker has confirmed it (transport in the\n"
    "    configuration: Kafka topic or RabbitMQ queue \"workq.Q\", created\n"
    "    on first use).  A task with --delay or --at is stored in\n"
    "    PostgreSQL as scheduled instead, and the scheduler publishes it\n"
    "    when due.\n"
    "\n"
    "    The id always resolves: `workq status ID` answers at once (queued\n"
    "    until a worker claims it; a receipt in PostgreSQL, see\n"
    "    producer.receipts).  A task with --key has the key's own id, so\n"
    "    submitting a key again prints the same id, says on stderr that the\n"
    "    key was submitted before and in which state its task is, and\n"
    "    submits nothing new (--json: \"duplicate\": true).\n"
    "\n"
    "    The payload is the argument PAYLOAD as given, the content of\n"
    "    --file PATH, or standard input when PAYLOAD or PATH is \"-\"; with\n"
    "    none of them it is empty.  At most 1 MiB, any bytes.\n"
    "\n"
    "    With --batch, each line of FILE (\"-\": standard input) is one task\n"
    "    as a JSON object, the same as the HTTP API's request body plus an\n"
    "    optional \"queue\":\n"
    "        {\"queue\":\"mail\",\"type\":\"send\",\"payload\":{\"to\":\"a@b\"},\n"
    "         \"idempotency_key\":\"k1\",\"max_attempts\":5,\"delay\":\"30s\",\n"
    "         \"run_at\":\"2026-11-28T07:43:06Z\",\"headers\":{\"k\":\"v\"},\n"
    "         \"concurrency_key\":\"c7\",\"concurrency_limit\":2,\n"
    "         \"unique_for\":\"1h\",\"hook\":\"https://app/done\",\n"
    "         \"priority\":\"high\"}\n"
    "    (\"payload\": a string is taken as its bytes, any other JSON value\n"
    "    as its JSON text; \"payload_base64\" for binary.)  --queue, --type,\n"
    "    --max-attempts, --header, --delay, --at, --concurrency-key,\n"
    "    --concurrency-limit, --unique-for, --hook and --priority give\n"
    "    defaults for the lines.  All lines are sent at full speed with many\n"
    "    messages in flight.  Each accepted line prints \"LINE ID\"; a\n"
    "    line that is not a valid task is reported on stderr with its\n"
    "    number and skipped, and the other lines are still submitted.\n"
    "    Blank lines are ignored.\n"
    "    When stderr is a terminal (and without --quiet), a progress line\n"
    "    on stderr is updated in place, at most 4 times a second: lines\n"
    "    read, tasks confirmed by the broker, lines refused (invalid or\n"
    "    not confirmed) and confirmations per second.  When stderr is not\n"
    "    a terminal (a pipe, a file, a log) there is no progress line.\n"
    "    Lines count from 1, blank ones too; invalid JSON is placed by its\n"
    "    column within the line (\"line 4: invalid JSON at column 12\").\n"
    "\n"
    "    With --workflow, FILE (\"-\": standard input) is one JSON document\n"
    "    describing a chain, a group with a callback or a batch; it is\n"
    "    stored in PostgreSQL and its id printed, as `workq workflow\n"
    "    submit` does (see `workq help workflow`, docs/workflows.md).\n"
    "\n"
    "    A broker that cannot be reached, or does not answer within\n"
    "    broker.connect_timeout (default 5s; when every Kafka broker\n"
    "    refuses the connection, at once), fails the command with one line\n"
    "    that names it, exit 69.\n"
    "\n"
    "OPTIONS\n"
    "    -q, --queue Q          queue name: [A-Za-z0-9_.-], up to 128 bytes\n"
    "    -t, --type T           task type: the handler that runs it\n"
    "    -f, --file PATH        read the payload from PATH (\"-\": stdin)\n"
    "    -k, --key KEY          idempotency key (default: the task id); a\n"
    "                           key runs at most once per queue\n"
    "    -d, --delay DURATION   run after this long: 30s, 5m, 1h30m, 500ms\n"
    "    -a, --at TIME          run at this RFC 3339 time,\n"
    "                           e.g. 2026-11-28T07:43:06Z\n"
    "    -m, --max-attempts N   attempts before the task is dead\n"
    "                           (default 25)\n"
    "    -H, --header NAME=VALUE\n"
    "                           a task header; repeat for more (up to 64)\n"
    "    -j, --json             print a JSON object per task\n"
    "    -w, --wait             wait until the task has an outcome in\n"
    "                           PostgreSQL and print it (polls with\n"
    "                           backoff: 10 ms growing to 1 s)\n"
    "    -T, --timeout DURATION with --wait: give up after this long\n"
    "                           (default: wait for ever)\n"
    "    -b, --batch FILE|-     submit one task per JSON line\n"
    "    -W, --workflow FILE|-  submit a workflow (chain, group, batch)\n"
    "    --hook URL             completion hook: the scheduler POSTs the\n"
    "                           outcome, signed, to this https:// URL once\n"
    "                           the task succeeded, died or was cancelled\n"
    "                           (at least once; README \"Completion hooks\").\n"
    "                           Sets the header workq-hook (a queue\n"
    "                           policy's hook_url is used without it);\n"
    "                           https only, up to 2048 bytes\n"
    "    --priority P           high, normal (default) or low (or 2, 1,\n"
    "                           0): when workers are behind, high tasks\n"
    "                           run first and low ones still progress\n"
    "                           (README \"Priorities\"); the task goes to\n"
    "                           \"workq.Q.priority-high\" or\n"
    "                           \"workq.Q.priority-low\" (normal: \"workq.Q\")\n"
    "\n"
    "  Flow control (README \"Flow control\"; rate limits are the\n"
    "  workers' configuration, rate_limits in workq.conf):\n"
    "    --concurrency-key KEY  at most --concurrency-limit tasks with this\n"
    "                           key run at once, across every worker (one\n"
    "                           per customer, say); waiting tasks stay\n"
    "                           queued and make no attempt\n"
    "    --concurrency-limit N  with --concurrency-key: 1..100000\n"
    "                           (default 1)\n"
    "    --unique-for DURATION  with --key: every submit of the key within\n"
    "                           DURATION of the first is that same task\n"
    "                           (one id, runs once); the first submit after\n"
    "                           it is a new task.  The task's key becomes\n"
    "                           KEY@wSTART (START: the window's start, epoch\n"
    "                           ms)\n"
    "\n"
    "OUTPUT\n"
    "    The task id, one line.  With --wait, then \"STATE after N\n"
    "    attempts\" and the result (succeeded) or \"error: ...\", one line\n"
    "    escaped as `workq status` shows task data (one final newline of\n"
    "    the result left out; hex when not UTF-8; cut after 1024 bytes).\n"
    "    With --json, one object: {\"id\",\"queue\",\"idempotency_key\",\n"
    "    \"state\"} (\"run_at\" when scheduled; with --wait the final\n"
    "    \"state\", \"attempt\", the exact \"result\" - \"result_base64\"\n"
    "    when not UTF-8 - or \"error\").  --batch --json prints\n"
    "    {\"line\",\"id\",\"state\"} or {\"line\",\"error\",\"detail\"} per line.\n"
    "\n"
    "EXAMPLES\n"
    "    workq submit -q mail -t send '{\"to\":\"a@example.com\"}'\n"
    "    workq submit -q reports -t build --delay 10m --file job.json\n"
    "    tar c dir | workq submit -q backup -t store -\n"
    "    workq submit -q mail -t send --wait --timeout 30s '{}'\n"
    "    workq submit --batch tasks.jsonl --queue mail\n"
    "    workq submit -q partner -t sync --concurrency-key customer-7 '{}'\n"
    "    workq submit -q mail -t send --priority high '{}'\n"
    "    workq submit -q reports -t daily --key acme --unique-for 1h '{}'\n"
    "    workq submit --workflow thumbnails.json\n"
    "    workq submit -q invoices -t render --hook https://app/done '{}'\n"
    "\n"
    "EXIT STATUS\n"
    "    0 accepted (with --wait: succeeded); 1 --wait: the task is dead\n"
    "    or cancelled; 64 usage error; 65 rejected input (an invalid task,\n"
    "    payload, or a bad --batch line); 66 no such file; 69 broker or\n"
    "    PostgreSQL unavailable (including a broker that did not answer\n"
    "    within broker.connect_timeout), or the broker refused the task;\n"
    "    75 --wait timed out; 78 configuration error.\n",
    run,
};

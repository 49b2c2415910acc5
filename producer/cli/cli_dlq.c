/*
 * cli_dlq.c - `workq dlq list|show|replay|purge`: the dead-letter queue,
 * which is the set of dead tasks (state dead, with their history; each
 * also copied onto "workq.Q.dead" by the scheduler).
 *
 * Filters select dead tasks by queue, type, error text (a case-blind
 * substring of last_error) and age (since they died).  replay gives each
 * match a new attempt series due now, as `workq retry` does; purge
 * deletes them with their history.  Both work in batches of BATCH rows,
 * one short transaction each (FOR UPDATE SKIP LOCKED), and --dry-run
 * only counts and lists what they would touch.
 *
 * purge asks for confirmation on a terminal (--yes skips it) and refuses
 * without one unless --yes is given: it cannot be undone.  It never
 * touches the copies on workq.Q.dead (the broker has no delete by task):
 * they expire by the dead queue's bounds (queue_policies dead_ttl and
 * dead_max_length), and purge says so.
 *
 * list and show also cover undecodable messages (workq.dead_letters:
 * broker messages that were no envelope), numbered rather than task ids;
 * `show --raw N` writes one's bytes whole.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "cli_ops.h"
#include "textout.h"

#define CMD "dlq"
#define BATCH 1000
#define EX_IOERR 74             /* sysexits(3) */

struct filter {
    const char *queue, *type, *error;
    char older[24], newer[24];  /* ms, "" when not given */
    long limit;                 /* 0: no limit */
    long attempts;              /* replay: --attempts, 0: default */
    int dry_run, all;
    int yes;                    /* purge: --yes, no confirmation */
};

/* What purge leaves on the broker, said after each purge. */
#define BROKER_COPIES \
    "the copies on workq.QUEUE.dead are not removed from the broker: " \
    "they expire by the queue's dead_ttl and dead_max_length " \
    "(queue_policies)"

/* The filter as ops.h takes it. */
static struct wq_ops_dead_filter
filter_of(const struct filter *f)
{
    struct wq_ops_dead_filter o = {
        f->queue, f->type, f->error,
        f->older[0] != '\0' ? strtoll(f->older, NULL, 10) : WQ_OPS_NONE,
        f->newer[0] != '\0' ? strtoll(f->newer, NULL, 10) : WQ_OPS_NONE,
        NULL, 0,
    };

    return o;
}

static int
has_filter(const struct filter *f)
{
    return f->queue != NULL || f->type != NULL || f->error != NULL
        || f->older[0] != '\0' || f->newer[0] != '\0';
}

static int
do_list(struct cli *cli, wq_store *s, const struct filter *f)
{
    static const char *const head[] = {
        "ID", "QUEUE", "TYPE", "ATTEMPTS", "DIED", "COPY", "LAST ERROR",
    };
    struct wq_ops_dead_filter of = filter_of(f);
    char err[WQ_ERRLEN];
    json_t *page, *v;
    int rc;

    /* the page of GET /v1/dead */
    if ((rc = wq_ops_dead_page(s, &of, f->limit > 0 ? f->limit : 50, NULL,
        &page, err, sizeof err)) != 0)
        return cli_ops_failed(CMD, rc, err);
    v = json_object_get(page, "tasks");
    if (cli->json) {
        cli_json_lines(page, "tasks");
        return CLI_OK;
    }
    if (json_array_size(v) > 0) {
        struct cli_table t;

        cli_table_init(&t, WQ_ARRAY_LEN(head), head);
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *o = json_array_get(v, i);
            char att[24], *err1;
            const char *row[7];

            /* 60 bytes of it, escaped (textout.h), "..." when cut */
            err1 = wq_text_escape_str(json_string_value(json_object_get(o,
                "last_error")), 60);
            snprintf(att, sizeof att, "%lld", (long long)json_integer_value(
                json_object_get(o, "attempt")));
            row[0] = json_string_value(json_object_get(o, "id"));
            row[1] = json_string_value(json_object_get(o, "queue"));
            row[2] = json_string_value(json_object_get(o, "type"));
            row[3] = att;
            row[4] = json_string_value(json_object_get(o, "finished_at"));
            row[5] = json_is_true(json_object_get(o, "copy_published"))
                ? "yes" : "pending";
            row[6] = err1;
            cli_table_add(&t, row);
            free(err1);
        }
        cli_table_print(&t, stdout);
        cli_table_free(&t);
    } else if (!cli->quiet) {
        fprintf(stderr, "no dead tasks match\n");
    }
    json_decref(page);
    return CLI_OK;
}

/*
 * Asks on the terminal before a purge: the count of the matches, what
 * happens to the broker's copies, then [y/N] on stdin.  CLI_OK to go on,
 * CLI_NO when declined (or stdin ends), or the query's error.
 */
static int
confirm_purge(wq_store *s, const struct filter *f)
{
    struct wq_ops_dead_filter of = filter_of(f);
    char line[64], err[WQ_ERRLEN];
    long n;
    int rc;

    if ((rc = wq_ops_dead_count(s, &of, f->limit, &n, err, sizeof err))
        != 0)
        return cli_ops_failed(CMD, rc, err);
    if (n == 0)
        return CLI_OK;
    fprintf(stderr, "This deletes %ld dead task(s) and their history from "
        "PostgreSQL for good.\nThe copies on workq.QUEUE.dead are not "
        "removed from the broker: they expire by\nthe queue's dead_ttl "
        "and dead_max_length (queue_policies).\nPurge %ld dead task(s)? "
        "[y/N] ", n, n);
    fflush(stderr);
    if (fgets(line, sizeof line, stdin) == NULL
        || (strcmp(line, "y\n") != 0 && strcmp(line, "yes\n") != 0
        && strcmp(line, "Y\n") != 0)) {
        fprintf(stderr, "nothing purged\n");
        return CLI_NO;
    }
    return CLI_OK;
}

/* replay or purge: in batches until nothing matches or the limit. */
static int
do_change(struct cli *cli, wq_store *s, const struct filter *f,
    int purge)
{
    struct wq_ops_dead_filter of = filter_of(f);
    char err[WQ_ERRLEN];
    long total;
    json_t *o;
    int rc;

    if (f->dry_run) {
        if ((rc = wq_ops_dead_count(s, &of, f->limit, &total, err,
            sizeof err)) != 0)
            return cli_ops_failed(CMD, rc, err);
        if (cli->json)
            cli_json_print(json_pack("{s:s, s:b, s:I}", "action",
                purge ? "purge" : "replay", "dry_run", 1, "matched",
                (json_int_t)total));
        else
            printf("%ld dead task(s) would be %s\n", total,
                purge ? "purged" : "replayed");
        return CLI_OK;
    }
    /* the answer of POST /v1/dead:replay and :purge */
    rc = wq_ops_dead_change(s, &of, f->limit, f->attempts, purge, &o, err,
        sizeof err);
    if (rc != 0)
        cli_err(CMD, "%s", err);
    if (o == NULL)
        return rc == WQ_EINVAL ? CLI_DATAERR : CLI_UNAVAILABLE;
    total = (long)json_integer_value(json_object_get(o, purge ? "purged"
        : "replayed"));
    if (cli->json) {
        cli_json_print(o);
    } else {
        json_decref(o);
        if (!cli->quiet)
            printf("%s %ld dead task(s)%s\n", purge ? "purged" : "replayed",
                total, rc != 0 ? " before the error" : "");
        if (!cli->quiet && purge)
            printf("%s\n", BROKER_COPIES);
    }
    return rc == 0 ? CLI_OK : rc == WQ_EINVAL ? CLI_DATAERR
        : CLI_UNAVAILABLE;
}

/* ---- undecodable messages (workq.dead_letters) -------------------------- */

/*
 * Messages a worker could not read an envelope from (docs/wire-format.md,
 * "What the worker does"): kept whole in workq.dead_letters, numbered by
 * that table's id.  They have no task, type or attempts, so only the
 * queue, error and age filters apply (--type selects none of them);
 * replay and purge leave them alone.
 */

/* 1 if s is a dead-letter number (digits only), not a task id. */
static int
is_number(const char *s)
{
    if (*s == '\0' || strlen(s) > 18)
        return 0;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static int
list_undecodable(struct cli *cli, wq_store *s, const struct filter *f,
    int after_tasks)
{
    static const char *const head[] = {
        "UNDECODABLE", "QUEUE", "TRANSPORT", "RECEIVED", "BYTES", "ERROR",
    };
    const char *p[5];
    char limit[24];
    struct pg_result *r;
    int rc;

    if (f->type != NULL)
        return CLI_OK;
    p[0] = f->queue;
    p[1] = f->error;
    p[2] = f->older[0] != '\0' ? f->older : NULL;
    p[3] = f->newer[0] != '\0' ? f->newer : NULL;
    snprintf(limit, sizeof limit, "%ld", f->limit > 0 ? f->limit : 50);
    p[4] = limit;
    if ((rc = cli_ops_query(s, CMD, WQ_ADMIN_SQL_UNDECODABLE_LIST, p, &r))
        != CLI_OK)
        return rc;
    if (cli->json) {
        for (int i = 0; i < wq_store_nrows(r); i++)
            cli_json_print(json_pack("{s:I, s:s, s:s, s:o, s:I, s:o}",
                "undecodable", (json_int_t)atoll(wq_store_value(r, i, 0)),
                "queue", wq_store_value(r, i, 1), "transport",
                wq_store_value(r, i, 2), "received_at",
                cli_json_time(wq_store_value(r, i, 3)), "bytes",
                (json_int_t)atoll(wq_store_value(r, i, 4)), "error",
                cli_json_str(wq_store_value(r, i, 5))));
    } else if (wq_store_nrows(r) > 0) {
        struct cli_table t;

        if (after_tasks)
            putchar('\n');
        cli_table_init(&t, WQ_ARRAY_LEN(head), head);
        for (int i = 0; i < wq_store_nrows(r); i++) {
            char when[40], *err = wq_text_escape_str(wq_store_value(r, i, 5),
                60);
            const char *row[6];

            row[0] = wq_store_value(r, i, 0);
            row[1] = wq_store_value(r, i, 1);
            row[2] = wq_store_value(r, i, 2);
            row[3] = cli_time(wq_store_value(r, i, 3), when, sizeof when);
            row[4] = wq_store_value(r, i, 4);
            row[5] = err;
            cli_table_add(&t, row);
            free(err);
        }
        cli_table_print(&t, stdout);
        cli_table_free(&t);
        fflush(stdout);     /* the note after the table, on a terminal */
        if (!cli->quiet)
            fprintf(stderr, "undecodable messages are kept whole: `workq "
                "dlq show N` shows one, `workq dlq show --raw N > FILE` "
                "writes its bytes\n");
    }
    wq_store_rows_free(r);
    return CLI_OK;
}

/*
 * `dlq show N`: one undecodable message, with a preview of its bytes;
 * with `raw`, its bytes alone on stdout, which must not be a terminal.
 */
static int
show_undecodable(struct cli *cli, wq_store *s, const char *id, int raw)
{
    const char *p[1] = { id };
    unsigned char *bytes;
    struct pg_result *r;
    size_t n;
    int rc;

    if ((rc = cli_ops_query(s, CMD, WQ_ADMIN_SQL_UNDECODABLE_GET, p, &r))
        != CLI_OK)
        return rc;
    if (wq_store_nrows(r) == 0) {
        wq_store_rows_free(r);
        cli_err(CMD, "no undecodable message %s (see `workq dlq list`)", id);
        return CLI_NOINPUT;
    }
    if ((bytes = wq_store_bytea_decode(wq_store_value(r, 0, 11), &n))
        == NULL)
        abort();    /* alloc.h */
    if (raw) {
        if (fwrite(bytes, 1, n, stdout) != n || fflush(stdout) != 0) {
            cli_err(CMD, "cannot write the message's %zu bytes", n);
            rc = EX_IOERR;
        }
    } else if (cli->json) {
        json_t *o = json_pack("{s:I, s:s, s:s, s:o, s:I, s:s, s:o, s:b}",
            "undecodable", (json_int_t)atoll(wq_store_value(r, 0, 0)),
            "queue", wq_store_value(r, 0, 1), "transport",
            wq_store_value(r, 0, 2), "received_at",
            cli_json_time(wq_store_value(r, 0, 3)), "bytes",
            (json_int_t)n, "error", wq_store_value(r, 0, 5), "worker",
            cli_json_str(wq_store_isnull(r, 0, 6) ? NULL
            : wq_store_value(r, 0, 6)), "redelivered",
            strcmp(wq_store_value(r, 0, 9), "t") == 0);

        if (!wq_store_isnull(r, 0, 7)) {
            json_object_set_new(o, "kafka_partition",
                json_integer(atoll(wq_store_value(r, 0, 7))));
            json_object_set_new(o, "kafka_offset",
                json_integer(atoll(wq_store_value(r, 0, 8))));
        }
        if (!wq_store_isnull(r, 0, 10))
            cli_json_bytea(o, "kafka_key", wq_store_value(r, 0, 10));
        /* "raw" (UTF-8) or "raw_base64", as payloads are */
        wq_text_json_set_bytes(o, "raw", bytes, n);
        cli_json_print(o);
    } else {
        char when[40];

        printf("undecodable message %s\n", wq_store_value(r, 0, 0));
        printf("queue:       ");
        cli_print_escaped(stdout, wq_store_value(r, 0, 1));
        printf("\ntransport:   %s\n", wq_store_value(r, 0, 2));
        printf("received:    %s%s\n", cli_time(wq_store_value(r, 0, 3),
            when, sizeof when), strcmp(wq_store_value(r, 0, 9), "t") == 0
            ? " (redelivered)" : "");
        printf("worker:      ");
        cli_print_escaped(stdout, wq_store_isnull(r, 0, 6) ? NULL
            : wq_store_value(r, 0, 6));
        if (!wq_store_isnull(r, 0, 7))
            printf("\nkafka:       partition %s, offset %s",
                wq_store_value(r, 0, 7), wq_store_value(r, 0, 8));
        if (!wq_store_isnull(r, 0, 10)) {
            char *key = cli_bytea_preview(wq_store_value(r, 0, 10), 0, 200,
                0);

            printf("\nkafka key:   %s", key);
            free(key);
        }
        printf("\nerror:       ");
        cli_print_escaped(stdout, wq_store_value(r, 0, 5));
        printf("\nbytes:       %zu (`workq dlq show --raw %s > FILE` writes "
            "them)\n", n, wq_store_value(r, 0, 0));
        printf("raw:         ");
        cli_print_bytes(stdout, bytes, n, 512);
        putchar('\n');
    }
    free(bytes);
    wq_store_rows_free(r);
    return rc;
}

static int
run(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "queue", required_argument, NULL, 'q' },
        { "type", required_argument, NULL, 't' },
        { "error", required_argument, NULL, 'e' },
        { "older-than", required_argument, NULL, 'o' },
        { "newer-than", required_argument, NULL, 'N' },
        { "limit", required_argument, NULL, 'n' },
        { "attempts", required_argument, NULL, 'a' },
        { "dry-run", no_argument, NULL, 'd' },
        { "all", no_argument, NULL, 'A' },
        { "yes", no_argument, NULL, 'y' },
        { "raw", no_argument, NULL, 'R' },
        { NULL, 0, NULL, 0 },
    };
    struct filter f;
    const char *action;
    int64_t ms;
    wq_store *s;
    int ch, rc, raw = 0;

    if (argc < 2 || argv[1][0] == '-') {
        cli_err(CMD, "which action? list, show, replay or purge");
        return CLI_USAGE;
    }
    action = argv[1];
    if (strcmp(action, "list") != 0 && strcmp(action, "show") != 0
        && strcmp(action, "replay") != 0 && strcmp(action, "purge") != 0) {
        cli_err(CMD, "unknown action '%s' (list, show, replay, purge)",
            action);
        return CLI_USAGE;
    }
    memset(&f, 0, sizeof f);
    optind = 1;
    argc--;
    argv++;
    while ((ch = getopt_long(argc, argv, "q:t:e:o:N:n:a:dAy", opts, NULL))
        != -1) {
        switch (ch) {
        case 'q': f.queue = optarg; break;
        case 't': f.type = optarg; break;
        case 'e': f.error = optarg; break;
        case 'o':
        case 'N':
            if (cli_parse_age(optarg, &ms) != 0) {
                cli_err(CMD, "%s wants an age such as 30m, 12h or 7d, not "
                    "'%s'", ch == 'o' ? "--older-than" : "--newer-than",
                    optarg);
                return CLI_USAGE;
            }
            snprintf(ch == 'o' ? f.older : f.newer, sizeof f.older, "%lld",
                (long long)ms);
            break;
        case 'n':
            if ((rc = cli_parse_int(CMD, "--limit", optarg, 1, 1000000000L,
                &f.limit)) != CLI_OK)
                return rc;
            break;
        case 'a':
            if ((rc = cli_parse_int(CMD, "--attempts", optarg, 1, 1000000,
                &f.attempts)) != CLI_OK)
                return rc;
            break;
        case 'd': f.dry_run = 1; break;
        case 'A': f.all = 1; break;
        case 'y': f.yes = 1; break;
        case 'R': raw = 1; break;
        default:
            return cli_bad_option(cli_cmd_dlq.name, "q:t:e:o:N:n:a:dA", argv);
        }
    }
    if (strcmp(action, "show") == 0) {
        if (optind + 1 != argc) {
            cli_err(CMD, "show wants one task id");
            return CLI_USAGE;
        }
        if (is_number(argv[optind])) {
            if (raw && isatty(STDOUT_FILENO)) {
                cli_err(CMD, "--raw writes the message's bytes as they "
                    "are: redirect them to a file (> FILE)");
                return CLI_USAGE;
            }
        } else if (raw) {
            cli_err(CMD, "--raw is for undecodable messages (a number "
                "from `workq dlq list`); a task's payload is in `workq "
                "--json dlq show ID`");
            return CLI_USAGE;
        } else if ((rc = cli_check_id(CMD, argv[optind])) != CLI_OK) {
            return rc;
        }
    } else if (raw) {
        cli_err(CMD, "--raw is an option of show");
        return CLI_USAGE;
    } else if (optind < argc) {
        cli_err(CMD, "unexpected argument '%s'", argv[optind]);
        return CLI_USAGE;
    }
    if ((strcmp(action, "replay") == 0 || strcmp(action, "purge") == 0)
        && !has_filter(&f) && !f.all && !f.dry_run) {
        cli_err(CMD, "%s touches every dead task matching the filters; "
            "give a filter (--queue, --type, --error, --older-than, "
            "--newer-than) or --all", action);
        return CLI_USAGE;
    }
    if (strcmp(action, "purge") == 0 && !f.dry_run && !f.yes
        && !isatty(STDIN_FILENO)) {
        cli_err(CMD, "purge deletes dead tasks for good and there is no "
            "terminal to confirm on: pass --yes to purge without asking");
        return CLI_USAGE;
    }
    if ((rc = cli_store(cli, &s)) != CLI_OK)
        return rc;
    if (strcmp(action, "purge") == 0 && !f.dry_run && !f.yes
        && (rc = confirm_purge(s, &f)) != CLI_OK) {
        wq_store_close(s);
        return rc;
    }
    if (strcmp(action, "list") == 0) {
        rc = do_list(cli, s, &f);
        if (rc == CLI_OK)
            rc = list_undecodable(cli, s, &f, 1);
    } else if (strcmp(action, "show") == 0 && is_number(argv[optind])) {
        rc = show_undecodable(cli, s, argv[optind], raw);
    } else if (strcmp(action, "show") == 0) {
        rc = cli_show_task(cli, s, CMD, argv[optind], NULL, NULL);
    } else {
        rc = do_change(cli, s, &f, strcmp(action, "purge") == 0);
    }
    wq_store_close(s);
    return rc;
}

const struct cli_command cli_cmd_dlq = {
    "dlq",
    "list, show, replay or purge dead tasks",
    "NAME\n"
    "    workq dlq - the dead-letter queue: list, show, replay, purge\n"
    "\n"
    "SYNOPSIS\n"
    "    workq [--json] dlq list [FILTERS] [--limit N]\n"
    "    workq [--json] dlq show ID | N\n"
    "    workq dlq show --raw N > FILE\n"
    "    workq [--json] dlq replay (FILTERS | --all) [--limit N]\n"
    "                              [--attempts N] [--dry-run]\n"
    "    workq [--json] dlq purge (FILTERS | --all) [--limit N] [--dry-run]\n"
    "                             [--yes]\n"
    "\n"
    "DESCRIPTION\n"
    "    A task is dead when its attempts are spent or its failure was\n"
    "    permanent; it keeps its whole attempt history, and the scheduler\n"
    "    publishes a copy on workq.QUEUE.dead for consumers that react to\n"
    "    failures.  Nothing in workq reads those copies: they are for\n"
    "    alerts and audits outside it, and PostgreSQL is the record.  They\n"
    "    are bounded by the queue's policy: dead_ttl (RabbitMQ\n"
    "    x-message-ttl, Kafka retention.ms, default 14 days) and\n"
    "    dead_max_length (RabbitMQ x-max-length, default 100000).\n"
    "\n"
    "    list     the dead tasks that match, most recent first (default\n"
    "             50): id, queue, type, attempts, when it died, whether\n"
    "             its copy is on workq.QUEUE.dead, the last error.\n"
    "    show     one task with its attempts, payload and result, as\n"
    "             `workq status`; or undecodable message N.\n"
    "    replay   gives every match a new series of attempts, due now;\n"
    "             the scheduler publishes them again.  History is kept.\n"
    "    purge    deletes every match with its history.  It cannot be\n"
    "             undone: on a terminal it shows the count and asks first\n"
    "             (--yes does not ask); without a terminal it refuses\n"
    "             unless --yes is given.  The copies on workq.QUEUE.dead\n"
    "             are not removed (a broker cannot delete a message by\n"
    "             task): they expire by the bounds above, and purge says\n"
    "             so.\n"
    "\n"
    "    Undecodable messages: a message on a queue that was no valid\n"
    "    envelope (docs/wire-format.md: a wrong version, a field of a newer\n"
    "    one, not msgpack, another queue's task) has no task; the worker\n"
    "    keeps its bytes whole in workq.dead_letters with the reason, acks\n"
    "    it and goes on.  list shows them after the dead tasks (number N,\n"
    "    queue, transport, when received, size, reason; --queue, --error\n"
    "    and the ages filter them, --type leaves them out), show N shows\n"
    "    one with a preview of its bytes, and show --raw N writes its\n"
    "    bytes, exactly, to stdout (not to a terminal).  replay and purge\n"
    "    do not touch them.\n"
    "\n"
    "    replay and purge work in batches of 1000, each its own short\n"
    "    transaction, so they can run on a busy system; they want a\n"
    "    filter or --all.\n"
    "\n"
    "FILTERS\n"
    "    -q, --queue QUEUE      only this queue\n"
    "    -t, --type TYPE        only this task type\n"
    "    -e, --error TEXT       last error contains TEXT (any case)\n"
    "    -o, --older-than AGE   died longer ago than AGE (30m, 12h, 7d, 2w)\n"
    "    -N, --newer-than AGE   died within AGE\n"
    "\n"
    "OPTIONS\n"
    "    -n, --limit N          at most N tasks\n"
    "    -a, --attempts N       replay: attempts of the new series (default:\n"
    "                           as many as the previous series allowed)\n"
    "    -d, --dry-run          replay, purge: only count the matches\n"
    "    -A, --all              replay, purge: every dead task\n"
    "    -y, --yes              purge: do not ask for confirmation\n"
    "        --raw              show N: the message's bytes only\n"
    "\n"
    "OUTPUT\n"
    "    Task data (type, error, payload, result) is escaped on a\n"
    "    terminal as `workq status` describes.\n"
    "    list: a table, or one JSON object per line (an undecodable\n"
    "    message: {\"undecodable\": N, \"queue\", \"transport\",\n"
    "    \"received_at\", \"bytes\", \"error\"}).  show: as `workq\n"
    "    status`; show N with --json adds \"raw\" (UTF-8) or \"raw_base64\".\n"
    "    replay and purge:\n"
    "    the count; with --json {\"action\", \"dry_run\", \"replayed\" or\n"
    "    \"purged\", \"ids\"} (purge also \"broker_copies\", what happens\n"
    "    to them) or, for --dry-run, {\"matched\"}.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 done (also when nothing matched); 1 purge declined at the\n"
    "    prompt; 64 usage error (also purge without a terminal and\n"
    "    without --yes, and show --raw to a terminal); 66 (show) no such\n"
    "    task or message; 69 PostgreSQL\n"
    "    unavailable; 78 configuration error.\n",
    run,
};

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
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "cli_ops.h"
#include "textout.h"

#define CMD "dlq"

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
        { NULL, 0, NULL, 0 },
    };
    struct filter f;
    const char *action;
    int64_t ms;
    wq_store *s;
    int ch, rc;

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
        default:
            return cli_bad_option(cli_cmd_dlq.name, "q:t:e:o:N:n:a:dA", argv);
        }
    }
    if (strcmp(action, "show") == 0) {
        if (optind + 1 != argc) {
            cli_err(CMD, "show wants one task id");
            return CLI_USAGE;
        }
        if ((rc = cli_check_id(CMD, argv[optind])) != CLI_OK)
            return rc;
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
    if (strcmp(action, "list") == 0)
        rc = do_list(cli, s, &f);
    else if (strcmp(action, "show") == 0)
        rc = cli_show_task(cli, s, CMD, argv[optind], NULL, NULL);
    else
        rc = do_change(cli, s, &f, strcmp(action, "purge") == 0);
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
    "    workq [--json] dlq show ID\n"
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
    "             `workq status`.\n"
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
    "\n"
    "OUTPUT\n"
    "    Task data (type, error, payload, result) is escaped on a\n"
    "    terminal as `workq status` describes.\n"
    "    list: a table, or one JSON object per line.  show: as `workq\n"
    "    status`.  replay and purge:\n"
    "    the count; with --json {\"action\", \"dry_run\", \"replayed\" or\n"
    "    \"purged\", \"ids\"} (purge also \"broker_copies\", what happens\n"
    "    to them) or, for --dry-run, {\"matched\"}.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 done (also when nothing matched); 1 purge declined at the\n"
    "    prompt; 64 usage error (also purge without a terminal and\n"
    "    without --yes); 66 (show) no such task; 69 PostgreSQL\n"
    "    unavailable; 78 configuration error.\n",
    run,
};

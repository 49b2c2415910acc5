/*
 * cli_list.c - `workq list`: tasks by queue, state and type, newest
 * first, as a table or JSON lines.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_ops.h"
#include "priority.h"
#include "textout.h"

#define CMD "list"
#define CELL 40     /* bytes of error, payload and result in a row */

static int
run(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "queue", required_argument, NULL, 'q' },
        { "state", required_argument, NULL, 's' },
        { "type", required_argument, NULL, 't' },
        { "limit", required_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 },
    };
    static const char *const head[] = {
        "ID", "QUEUE", "TYPE", "STATE", "PRIORITY", "ATTEMPT", "UPDATED",
        "RUN AT", "LAST ERROR", "PAYLOAD", "RESULT",
    };
    const char *params[10] = { NULL };
    char limit[24];
    long n = 50;
    struct pg_result *r;
    wq_store *s;
    int ch, rc;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "q:s:t:n:", opts, NULL)) != -1) {
        switch (ch) {
        case 'q': params[0] = optarg; break;
        case 's':
            if (wq_task_state_parse(optarg) < 0) {
                cli_err(CMD, "unknown state '%s' (scheduled, queued, "
                    "running, retry_wait, succeeded, dead, cancelled)",
                    optarg);
                return CLI_USAGE;
            }
            params[1] = optarg;
            break;
        case 't': params[2] = optarg; break;
        case 'n':
            if ((rc = cli_parse_int(CMD, "--limit", optarg, 1, 100000, &n))
                != CLI_OK)
                return rc;
            break;
        default:
            return cli_bad_option(cli_cmd_list.name, "q:s:t:n:", argv);
        }
    }
    if (optind < argc) {
        cli_err(CMD, "unexpected argument '%s'", argv[optind]);
        return CLI_USAGE;
    }
    snprintf(limit, sizeof limit, "%ld", n);
    params[3] = limit;
    params[4] = "preview";
    if ((rc = cli_store(cli, &s)) != CLI_OK)
        return rc;
    if (cli->json) {
        /* the objects of GET /v1/tasks, with the whole payload and result */
        struct wq_ops_tasks_query q = {
            params[0], params[1], params[2], NULL, WQ_OPS_NONE, WQ_OPS_NONE,
            n, NULL, WQ_OPS_BODIES_ALL,
        };
        char err[WQ_ERRLEN];
        json_t *page;

        rc = wq_ops_tasks_page(s, &q, &page, err, sizeof err);
        wq_store_close(s);
        if (rc != 0)
            return cli_ops_failed(CMD, rc, err);
        cli_json_lines(page, "tasks");
        return CLI_OK;
    }
    if ((rc = cli_ops_query(s, CMD, WQ_ADMIN_SQL_LIST, params, &r)) != CLI_OK) {
        wq_store_close(s);
        return rc;
    }
    if (wq_store_nrows(r) > 0) {
        struct cli_table t;

        cli_table_init(&t, WQ_ARRAY_LEN(head), head);
        for (int i = 0; i < wq_store_nrows(r); i++) {
            char att[40], upd[40], runat[40], *err, *pay, *res;
            const char *row[11];

            snprintf(att, sizeof att, "%s/%s", wq_store_value(r, i, 4),
                wq_store_value(r, i, 5));
            err = wq_text_escape_str(wq_store_value(r, i, 8), CELL);
            pay = cli_bytea_preview(wq_store_isnull(r, i, 9) ? NULL
                : wq_store_value(r, i, 9),
                (size_t)atoll(wq_store_value(r, i, 10)), CELL, WQ_TEXT_SHORT);
            res = cli_bytea_preview(wq_store_isnull(r, i, 11) ? NULL
                : wq_store_value(r, i, 11),
                (size_t)atoll(wq_store_value(r, i, 12)), CELL, WQ_TEXT_SHORT);
            row[0] = wq_store_value(r, i, 0);
            row[1] = wq_store_value(r, i, 1);
            row[2] = wq_store_value(r, i, 2);
            row[3] = wq_store_value(r, i, 3);
            row[4] = wq_priority_name(atoi(wq_store_value(r, i, 17)));
            row[5] = att;
            row[6] = cli_time(wq_store_value(r, i, 6), upd, sizeof upd);
            row[7] = cli_time(wq_store_value(r, i, 7), runat, sizeof runat);
            row[8] = err;
            row[9] = pay;
            row[10] = res;
            /* escaped already; cli_table_add's escape changes nothing
             * in text that has been through it once */
            cli_table_add(&t, row);
            free(err);
            free(pay);
            free(res);
        }
        cli_table_print(&t, stdout);
        cli_table_free(&t);
    } else if (!cli->quiet) {
        fprintf(stderr, "no tasks\n");
    }
    wq_store_rows_free(r);
    wq_store_close(s);
    return CLI_OK;
}

const struct cli_command cli_cmd_list = {
    "list",
    "list tasks by queue, state and type",
    "NAME\n"
    "    workq list - list tasks by queue, state and type, newest first\n"
    "\n"
    "SYNOPSIS\n"
    "    workq [--json] list [--queue QUEUE] [--state STATE] [--type TYPE]\n"
    "                        [--limit N]\n"
    "\n"
    "DESCRIPTION\n"
    "    Lists the tasks PostgreSQL holds, newest first (task ids are\n"
    "    UUIDv7, ordered by creation): id, queue, type, state, priority\n"
    "    (high, normal, low), attempts started of allowed, last change,\n"
    "    next run, and the start of the last error, the payload and the\n"
    "    result (40 bytes each, \"...\" when cut; text escaped as in\n"
    "    `workq status`, \"hex:\" when not UTF-8).  Tasks submitted for\n"
    "    now appear once a worker claimed them; finished ones disappear\n"
    "    with retention.\n"
    "\n"
    "OPTIONS\n"
    "    -q, --queue QUEUE   only this queue\n"
    "    -s, --state STATE   only this state: scheduled, queued, running,\n"
    "                        retry_wait, succeeded, dead or cancelled\n"
    "    -t, --type TYPE     only this task type\n"
    "    -n, --limit N       at most N tasks (default 50)\n"
    "\n"
    "OUTPUT\n"
    "    A table; with --json one object per line, those of the HTTP API's\n"
    "    GET /v1/tasks (id, queue, type, idempotency_key, state, priority,\n"
    "    attempt, max_attempts, created_at, updated_at, run_at,\n"
    "    finished_at, last_error, payload_bytes) and the whole payload\n"
    "    and result:\n"
    "    \"payload\" and \"result\" are strings when the bytes are UTF-8,\n"
    "    else \"payload_base64\" and \"result_base64\" hold them in\n"
    "    base64; a missing result is null).\n"
    "\n"
    "EXIT STATUS\n"
    "    0 listed (also when nothing matched); 64 usage error; 69\n"
    "    PostgreSQL unavailable; 78 configuration error.\n",
    run,
};

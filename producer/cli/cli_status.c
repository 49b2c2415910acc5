/*
 * cli_status.c - `workq status`: one task, by id or by queue and
 * idempotency key, with its attempt history (the view of cli_ops.c).
 */
#include <getopt.h>
#include <stdio.h>

#include "cli_ops.h"

#define CMD "status"

static int
run(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "queue", required_argument, NULL, 'q' },
        { "key", required_argument, NULL, 'k' },
        { NULL, 0, NULL, 0 },
    };
    const char *queue = NULL, *key = NULL, *id = NULL;
    wq_store *s;
    int ch, rc;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "q:k:", opts, NULL)) != -1) {
        switch (ch) {
        case 'q': queue = optarg; break;
        case 'k': key = optarg; break;
        default:
            return cli_bad_option(cli_cmd_status.name, "q:k:", argv);
        }
    }
    if (optind < argc)
        id = argv[optind++];
    if (optind < argc) {
        cli_err(CMD, "unexpected argument '%s'", argv[optind]);
        return CLI_USAGE;
    }
    if ((id == NULL) == (queue == NULL || key == NULL)
        || (id != NULL && (queue != NULL || key != NULL))) {
        cli_err(CMD, "give a task id, or --queue and --key");
        return CLI_USAGE;
    }
    if (id != NULL && (rc = cli_check_id(CMD, id)) != CLI_OK)
        return rc;
    if ((rc = cli_store(cli, &s)) != CLI_OK)
        return rc;
    rc = cli_show_task(cli, s, CMD, id, queue, key);
    wq_store_close(s);
    return rc;
}

const struct cli_command cli_cmd_status = {
    "status",
    "show a task, its state and its attempts",
    "NAME\n"
    "    workq status - show a task, its state and its attempt history\n"
    "\n"
    "SYNOPSIS\n"
    "    workq [--json] status ID\n"
    "    workq [--json] status --queue QUEUE --key KEY\n"
    "\n"
    "DESCRIPTION\n"
    "    Prints what PostgreSQL knows of one task: queue, type, key,\n"
    "    state (scheduled, queued, running, retry_wait, succeeded, dead,\n"
    "    cancelled), priority (high, normal or low: the broker band it\n"
    "    goes to, README \"Priorities\"; also for a task not claimed\n"
    "    yet), attempts started and allowed, times, the lease of a\n"
    "    running task, the last error, the payload and the result, and\n"
    "    one line per attempt (worker, outcome, error).  A task enqueued with\n"
    "    workq.enqueue() that the scheduler has not relayed yet shows as\n"
    "    \"outbox\".  A task submitted for now that no worker has claimed\n"
    "    yet shows as queued from its receipt (producer.receipts), with a\n"
    "    line that says so (--json: \"claimed\": false); its payload is on\n"
    "    the broker.  An id that was never accepted is not found (66).\n"
    "    A running task whose handler reports progress shows its last\n"
    "    report (percent, message, when; --json: \"progress\").\n"
    "\n"
    "    The id of a workflow (`workq workflow`), or of a workflow task\n"
    "    that has not started yet, shows the workflow's graph instead, as\n"
    "    `workq workflow show ID` does.\n"
    "\n"
    "OPTIONS\n"
    "    -q, --queue QUEUE   with --key: find the task by its queue and\n"
    "    -k, --key KEY       idempotency key instead of its id\n"
    "\n"
    "OUTPUT\n"
    "    On a page, task data is escaped so that it cannot move the\n"
    "    cursor or forge lines: a newline shows as \\n, a tab as \\t, a\n"
    "    carriage return as \\r, ESC as \\e, other control bytes and\n"
    "    bytes that are not UTF-8 as \\xNN, C1 controls and bidirectional\n"
    "    marks as \\uNNNN.  The payload and the result show as such\n"
    "    text when UTF-8, as \"hex:\" and their first bytes otherwise,\n"
    "    cut after 1024 bytes with \"... (N bytes, truncated; --json for\n"
    "    all)\".\n"
    "\n"
    "    --json prints one object: the fields above, the whole payload\n"
    "    and result, \"headers\" and an array \"attempts\".  Bytes are\n"
    "    \"payload\" and \"result\" (JSON strings) when they are UTF-8,\n"
    "    else \"payload_base64\" and \"result_base64\" (standard base64);\n"
    "    GET /v1/tasks/ID answers with the same encoding.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 shown; 64 usage error; 66 no such task; 69 PostgreSQL\n"
    "    unavailable; 78 configuration error.\n",
    run,
};

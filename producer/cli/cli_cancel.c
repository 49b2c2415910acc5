/*
 * cli_cancel.c - `workq cancel`: stops a task that has not run to its
 * end.
 *
 * A scheduled, queued or retry_wait task becomes cancelled (final) in
 * one statement guarded by those states (a queued task that only has its
 * receipt, workq.accepted, gets its row written as cancelled); a message of it still on the
 * broker is then acked by the worker's claim as a duplicate and runs
 * nothing.  A running task cannot be taken from its worker here: cancel
 * sends NOTIFY workq_cancel with the task id, which a worker that runs it
 * answers by stopping the handler (an exec handler's process group is
 * signalled) and recording the attempt as cancelled
 * (docs/task-states.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_ops.h"
#include "textout.h"

#define CMD "cancel"

static int
run(struct cli *cli, int argc, char **argv)
{
    const char *params[1];
    struct pg_result *r;
    wq_store *s;
    int rc;

    if (argc != 2 || argv[1][0] == '-') {
        if (argc == 2)
            cli_err(CMD, "unknown option '%s' (workq help %s)", argv[1],
                CMD);
        else
            cli_err(CMD, argc < 2 ? "which task? give its id"
                : "one task id at a time");
        return CLI_USAGE;
    }
    if ((rc = cli_check_id(CMD, argv[1])) != CLI_OK)
        return rc;
    params[0] = argv[1];
    if ((rc = cli_store(cli, &s)) != CLI_OK)
        return rc;
    for (int tries = 0;; tries++) {
        if ((rc = cli_ops_query(s, CMD, WQ_ADMIN_SQL_CANCEL, params, &r))
            != CLI_OK) {
            wq_store_close(s);
            return rc;
        }
        /* a worker claimed it between the statement's snapshot and its
         * insert: the task row is there now, so once more */
        if (wq_store_nrows(r) > 0 || tries > 0)
            break;
        wq_store_rows_free(r);
    }
    if (wq_store_nrows(r) == 0) {
        cli_err(CMD, "no task %s", argv[1]);
        rc = CLI_NOINPUT;
    } else {
        const char *state = wq_store_value(r, 0, 0);
        int done = strcmp(wq_store_value(r, 0, 2), "t") == 0;
        int running = strcmp(state, "running") == 0;

        if (cli->json)
            cli_json_print(json_pack("{s:s, s:s, s:s, s:b, s:b}", "id",
                argv[1], "previous_state", state, "state",
                done ? "cancelled" : state, "cancelled", done,
                "stop_requested", running));
        else if (done && !cli->quiet)
            printf("task %s cancelled (it was %s)\n", argv[1], state);
        if (running) {
            /* the worker's name is task data: escaped (textout.h) */
            char *w = wq_text_escape_str(wq_store_value(r, 0, 1), 0);

            cli_err(CMD, "task %s is running on %s: asked its worker to "
                "stop it (NOTIFY workq_cancel); `workq status` shows when "
                "it ended", argv[1], w != NULL ? w : "?");
            free(w);
        }
        else if (!done)
            cli_err(CMD, "task %s is %s already", argv[1], state);
        rc = done ? CLI_OK : CLI_NO;
    }
    wq_store_rows_free(r);
    wq_store_close(s);
    return rc;
}

const struct cli_command cli_cmd_cancel = {
    "cancel",
    "cancel a task that has not finished",
    "NAME\n"
    "    workq cancel - cancel a task that has not finished\n"
    "\n"
    "SYNOPSIS\n"
    "    workq [--json] cancel ID\n"
    "\n"
    "DESCRIPTION\n"
    "    A task that waits - scheduled, queued, or retry_wait between\n"
    "    attempts - becomes cancelled, a final state: it never runs (a\n"
    "    message of it still on the broker is acknowledged and dropped by\n"
    "    the worker that receives it).  A running task is asked to stop:\n"
    "    the command sends NOTIFY workq_cancel with its id to the workers,\n"
    "    and the one running it stops the handler (an exec handler's\n"
    "    process group gets SIGTERM) and records the attempt as cancelled.\n"
    "    Succeeded, dead and cancelled tasks are final already.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 cancelled; 1 not cancelled (running: a stop was requested; or\n"
    "    final already); 64 usage error; 66 no such task; 69 PostgreSQL\n"
    "    unavailable; 78 configuration error.\n",
    run,
};

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
    char err[WQ_ERRLEN];
    const char *state;
    json_t *o;
    wq_store *s;
    int rc, done;

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
    if ((rc = cli_store(cli, &s)) != CLI_OK)
        return rc;
    /* the answer of POST /v1/tasks/ID:cancel */
    rc = wq_ops_cancel(s, argv[1], &o, err, sizeof err);
    wq_store_close(s);
    if (rc != 0)
        return cli_ops_failed(CMD, rc, err);
    state = json_string_value(json_object_get(o, "previous_state"));
    done = json_is_true(json_object_get(o, "cancelled"));
    if (done && !cli->json && !cli->quiet)
        printf("task %s cancelled (it was %s)\n", argv[1], state);
    if (json_is_true(json_object_get(o, "stop_requested"))) {
        /* the worker's name is task data: escaped (textout.h) */
        char *w = wq_text_escape_str(json_string_value(json_object_get(o,
            "worker")), 0);

        cli_err(CMD, "task %s is running on %s: asked its worker to "
            "stop it (NOTIFY workq_cancel); `workq status` shows when "
            "it ended", argv[1], w != NULL ? w : "?");
        free(w);
    } else if (!done) {
        cli_err(CMD, "task %s is %s already", argv[1], state);
    }
    if (cli->json)
        cli_json_print(o);
    else
        json_decref(o);
    return done ? CLI_OK : CLI_NO;
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

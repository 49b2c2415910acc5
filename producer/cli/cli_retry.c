/*
 * cli_retry.c - `workq retry`: runs a task again now.
 *
 * A dead or cancelled task gets a new attempt series: attempt_base =
 * attempt and max_attempts = attempt + N (N: --attempts, default the
 * length of its previous series), state retry_wait due now; attempt
 * numbers keep growing, so its whole history stays in workq.attempts,
 * and the scheduler publishes it (migration 0002's trigger wakes it).  A
 * task waiting for its next attempt (retry_wait) or its run_at
 * (scheduled) is made due now, in the same series.  One statement,
 * guarded by the state it leaves (docs/task-states.md).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_ops.h"

#define CMD "retry"

static int
run(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "attempts", required_argument, NULL, 'a' },
        { NULL, 0, NULL, 0 },
    };
    const char *params[2] = { NULL, NULL };
    char attempts[24];
    long n = 0;
    struct pg_result *r;
    wq_store *s;
    int ch, rc;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "a:", opts, NULL)) != -1) {
        if (ch != 'a') {
            return cli_bad_option(cli_cmd_retry.name, "a:", argv);
        }
        if ((rc = cli_parse_int(CMD, "--attempts", optarg, 1, 1000000, &n))
            != CLI_OK)
            return rc;
        snprintf(attempts, sizeof attempts, "%ld", n);
        params[1] = attempts;
    }
    if (optind + 1 != argc) {
        cli_err(CMD, optind >= argc ? "which task? give its id"
            : "one task id at a time");
        return CLI_USAGE;
    }
    if ((rc = cli_check_id(CMD, argv[optind])) != CLI_OK)
        return rc;
    params[0] = argv[optind];
    if ((rc = cli_store(cli, &s)) != CLI_OK)
        return rc;
    if ((rc = cli_ops_query(s, CMD, WQ_ADMIN_SQL_RETRY, params, &r))
        != CLI_OK) {
        wq_store_close(s);
        return rc;
    }
    if (wq_store_nrows(r) == 0) {
        cli_err(CMD, "no task %s", argv[optind]);
        rc = CLI_NOINPUT;
    } else if (strcmp(wq_store_value(r, 0, 3), "t") != 0) {
        const char *state = wq_store_value(r, 0, 0);

        if (cli->json)
            cli_json_print(json_pack("{s:s, s:s, s:b}", "id", argv[optind],
                "state", state, "retried", 0));
        cli_err(CMD, "task %s is %s: %s", argv[optind], state,
            strcmp(state, "succeeded") == 0 ? "it succeeded; submit it "
            "again under a new key to run it once more"
            : "it is on its way already (queued or running)");
        rc = CLI_NO;
    } else {
        const char *old = wq_store_value(r, 0, 0);
        int fresh = strcmp(old, "dead") == 0
            || strcmp(old, "cancelled") == 0;

        if (cli->json)
            cli_json_print(json_pack("{s:s, s:s, s:s, s:b, s:b, s:I, s:I}",
                "id", argv[optind], "previous_state", old, "state",
                strcmp(old, "scheduled") == 0 ? "scheduled" : "retry_wait",
                "retried", 1, "new_series", fresh,
                "attempt", (json_int_t)atoll(wq_store_value(r, 0, 2)),
                "max_attempts", (json_int_t)atoll(wq_store_value(r, 0, 1))));
        else if (!cli->quiet)
            printf("task %s was %s; due now%s (attempts %s of %s so far)\n",
                argv[optind], old, fresh ? " with a new attempt series" : "",
                wq_store_value(r, 0, 2), wq_store_value(r, 0, 1));
        rc = CLI_OK;
    }
    wq_store_rows_free(r);
    wq_store_close(s);
    return rc;
}

const struct cli_command cli_cmd_retry = {
    "retry",
    "run a dead, cancelled or waiting task again now",
    "NAME\n"
    "    workq retry - run a dead, cancelled or waiting task again now\n"
    "\n"
    "SYNOPSIS\n"
    "    workq [--json] retry [--attempts N] ID\n"
    "\n"
    "DESCRIPTION\n"
    "    A dead or cancelled task gets a new series of attempts and is due\n"
    "    at once: the scheduler publishes it within moments.  Its attempt\n"
    "    history is kept; the attempts of the new series are numbered on\n"
    "    from the last one.  A task waiting for a retry (retry_wait) or\n"
    "    for its run-at time (scheduled) is made due now, with the\n"
    "    attempts it has left.  Queued and running tasks are on their way\n"
    "    and a succeeded task is final: those are refused.  For many dead\n"
    "    tasks at once, see `workq dlq replay`.\n"
    "\n"
    "OPTIONS\n"
    "    -a, --attempts N   attempts of the new series (default: as many as\n"
    "                       the task's previous series allowed)\n"
    "\n"
    "EXIT STATUS\n"
    "    0 retried; 1 refused because of the task's state; 64 usage\n"
    "    error; 66 no such task; 69 PostgreSQL unavailable; 78\n"
    "    configuration error.\n",
    run,
};

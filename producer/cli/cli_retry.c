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
    char err[WQ_ERRLEN];
    const char *old;
    long n = 0;
    json_t *o;
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
    }
    if (optind + 1 != argc) {
        cli_err(CMD, optind >= argc ? "which task? give its id"
            : "one task id at a time");
        return CLI_USAGE;
    }
    if ((rc = cli_check_id(CMD, argv[optind])) != CLI_OK)
        return rc;
    if ((rc = cli_store(cli, &s)) != CLI_OK)
        return rc;
    /* the answer of POST /v1/tasks/ID:retry */
    rc = wq_ops_retry(s, argv[optind], n, &o, err, sizeof err);
    wq_store_close(s);
    if (rc != 0)
        return cli_ops_failed(CMD, rc, err);
    old = json_string_value(json_object_get(o, "previous_state"));
    if (!json_is_true(json_object_get(o, "retried"))) {
        cli_err(CMD, "task %s is %s: %s", argv[optind], old,
            json_string_value(json_object_get(o, "reason")));
        rc = CLI_NO;
    } else if (!cli->json && !cli->quiet) {
        printf("task %s was %s; due now%s (attempts %lld of %lld so far)\n",
            argv[optind], old, json_is_true(json_object_get(o, "new_series"))
            ? " with a new attempt series" : "",
            (long long)json_integer_value(json_object_get(o, "attempt")),
            (long long)json_integer_value(json_object_get(o,
            "max_attempts")));
    }
    if (cli->json)
        cli_json_print(o);
    else
        json_decref(o);
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

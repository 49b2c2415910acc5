/*
 * cli_workers.c - `workq workers`: the worker processes PostgreSQL knows
 * of (workq.workers, one row each, refreshed by every heartbeat).
 *
 * A worker is "live" while its heartbeat is younger than worker.lease
 * (it beats every third of that), "stale" when older (it died without
 * stopping, or cannot reach PostgreSQL: its leases are expiring too), and
 * "stopped" after a clean shutdown.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_ops.h"

#define CMD "workers"

static int
run(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "all", no_argument, NULL, 'a' },
        { NULL, 0, NULL, 0 },
    };
    static const char *const head[] = {
        "ID", "STATUS", "HOST", "PID", "QUEUES", "IN FLIGHT", "HEARTBEAT",
        "STARTED", "VERSION",
    };
    const char *params[2];
    char lease[24];
    struct pg_result *r;
    wq_store *s;
    int ch, rc, all = 0;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "a", opts, NULL)) != -1) {
        if (ch != 'a') {
            return cli_bad_option(cli_cmd_workers.name, "a", argv);
        }
        all = 1;
    }
    if (optind < argc) {
        cli_err(CMD, "unexpected argument '%s'", argv[optind]);
        return CLI_USAGE;
    }
    if ((rc = cli_store(cli, &s)) != CLI_OK)
        return rc;
    snprintf(lease, sizeof lease, "%lld", (long long)cli->cfg.worker.lease_ms);
    params[0] = all ? "true" : "false";
    params[1] = lease;
    if (cli->json) {
        /* the objects of GET /v1/workers */
        char err[WQ_ERRLEN];
        json_t *o;

        rc = wq_ops_workers(s, all, cli->cfg.worker.lease_ms, &o, err,
            sizeof err);
        wq_store_close(s);
        if (rc != 0)
            return cli_ops_failed(CMD, rc, err);
        cli_json_lines(o, "workers");
        return CLI_OK;
    }
    if ((rc = cli_ops_query(s, CMD, WQ_ADMIN_SQL_WORKERS, params, &r))
        != CLI_OK) {
        wq_store_close(s);
        return rc;
    }
    if (wq_store_nrows(r) > 0) {
        struct cli_table t;

        cli_table_init(&t, WQ_ARRAY_LEN(head), head);
        for (int i = 0; i < wq_store_nrows(r); i++) {
            char beat[40], started[40];
            const char *row[9];

            snprintf(beat, sizeof beat, "%s ago", cli_age(atoll(
                wq_store_value(r, i, 7)), started, sizeof started));
            row[0] = wq_store_value(r, i, 0);
            row[1] = wq_store_value(r, i, 8);
            row[2] = wq_store_value(r, i, 1);
            row[3] = wq_store_value(r, i, 2);
            row[4] = wq_store_value(r, i, 3);
            row[5] = wq_store_value(r, i, 4);
            row[6] = beat;
            row[7] = cli_time(wq_store_value(r, i, 5), started, sizeof started);
            row[8] = wq_store_value(r, i, 9);
            cli_table_add(&t, row);
        }
        cli_table_print(&t, stdout);
        cli_table_free(&t);
    } else if (!cli->quiet) {
        fprintf(stderr, "no workers%s\n", all ? "" : " running (--all "
            "shows stopped ones too)");
    }
    wq_store_rows_free(r);
    wq_store_close(s);
    return CLI_OK;
}

const struct cli_command cli_cmd_workers = {
    "workers",
    "list worker processes and their heartbeats",
    "NAME\n"
    "    workq workers - list worker processes and their heartbeats\n"
    "\n"
    "SYNOPSIS\n"
    "    workq [--json] workers [--all]\n"
    "\n"
    "DESCRIPTION\n"
    "    Lists the workers that have not stopped: id, status, host, pid,\n"
    "    queues, tasks in flight, the age of the last heartbeat, start\n"
    "    time and version.  A worker beats every third of worker.lease;\n"
    "    status is \"live\" while its last heartbeat is younger than\n"
    "    worker.lease, \"stale\" when older (it died or cannot reach\n"
    "    PostgreSQL; its tasks come back when their leases expire), and\n"
    "    \"stopped\" after a clean shutdown.  Rows of workers gone for a\n"
    "    day are pruned by the scheduler.\n"
    "\n"
    "OPTIONS\n"
    "    -a, --all   also workers that stopped\n"
    "\n"
    "OUTPUT\n"
    "    A table; with --json one object per line, those of the HTTP\n"
    "    API's GET /v1/workers (id, status, hostname, pid, queues,\n"
    "    in_flight, started_at, heartbeat_at, heartbeat_age_s (also as\n"
    "    heartbeat_age_seconds), version).\n"
    "\n"
    "EXIT STATUS\n"
    "    0 listed (also when there are none); 64 usage error; 69\n"
    "    PostgreSQL unavailable; 78 configuration error.\n",
    run,
};

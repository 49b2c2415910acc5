/*
 * cli_stats.c - `workq stats`: per queue, the tasks by state, the rate of
 * successes over the last minute, the age of the oldest waiting task and
 * what waits in the outbox.
 *
 * One aggregate over workq.tasks (GROUP BY queue) and one over
 * workq.outbox.  On a large table this reads every row; retention keeps
 * the table to what is recent.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cli_ops.h"

#define CMD "stats"

static const char *const states[] = {
    "scheduled", "queued", "running", "retry_wait", "succeeded", "dead",
    "cancelled",
};

/*
 * Waiting: queued rows (published, not yet claimed) and scheduled or
 * retry_wait rows already due; their age counts from when they became
 * due.  Tasks submitted straight to the broker have no row until claimed,
 * so the broker's own depth is not seen here.
 */
static const char stats_sql[] =
    "WITH q AS ("
    "  SELECT queue,"
    "    count(*) FILTER (WHERE state = 'scheduled') AS scheduled,"
    "    count(*) FILTER (WHERE state = 'queued') AS queued,"
    "    count(*) FILTER (WHERE state = 'running') AS running,"
    "    count(*) FILTER (WHERE state = 'retry_wait') AS retry_wait,"
    "    count(*) FILTER (WHERE state = 'succeeded') AS succeeded,"
    "    count(*) FILTER (WHERE state = 'dead') AS dead,"
    "    count(*) FILTER (WHERE state = 'cancelled') AS cancelled,"
    "    count(*) FILTER (WHERE state = 'succeeded'"
    "      AND finished_at > now() - interval '1 minute') AS ok_1m,"
    "    count(*) FILTER (WHERE state = 'dead'"
    "      AND finished_at > now() - interval '1 minute') AS dead_1m,"
    "    floor(extract(epoch FROM now() - min(CASE"
    "      WHEN state = 'queued' THEN coalesce(run_at, updated_at)"
    "      WHEN state IN ('scheduled', 'retry_wait') AND run_at <= now()"
    "        THEN run_at END)))::int8 AS oldest_s"
    "  FROM workq.tasks"
    "  WHERE $1::text IS NULL OR queue = $1"
    "  GROUP BY queue"
    "), o AS ("
    "  SELECT queue, count(*) AS outbox FROM workq.outbox"
    "  WHERE $1::text IS NULL OR queue = $1 GROUP BY queue"
    ")"
    "SELECT coalesce(q.queue, o.queue), coalesce(q.scheduled, 0),"
    "  coalesce(q.queued, 0), coalesce(q.running, 0),"
    "  coalesce(q.retry_wait, 0), coalesce(q.succeeded, 0),"
    "  coalesce(q.dead, 0), coalesce(q.cancelled, 0),"
    "  coalesce(q.ok_1m, 0), coalesce(q.dead_1m, 0), q.oldest_s,"
    "  coalesce(o.outbox, 0)"
    "  FROM q FULL JOIN o ON o.queue = q.queue"
    "  ORDER BY 1";

static int
run(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "queue", required_argument, NULL, 'q' },
        { NULL, 0, NULL, 0 },
    };
    static const char *const head[] = {
        "QUEUE", "SCHEDULED", "QUEUED", "RUNNING", "RETRY_WAIT",
        "SUCCEEDED", "DEAD", "CANCELLED", "OUTBOX", "OK/MIN", "OLDEST WAIT",
    };
    const char *params[1] = { NULL };
    PGresult *r;
    wq_store *s;
    int ch, rc;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "q:", opts, NULL)) != -1) {
        if (ch != 'q') {
            return cli_bad_option(cli_cmd_stats.name, "q:", argv);
        }
        params[0] = optarg;
    }
    if (optind < argc) {
        cli_err(CMD, "unexpected argument '%s'", argv[optind]);
        return CLI_USAGE;
    }
    if ((rc = cli_store(cli, &s)) != CLI_OK)
        return rc;
    if ((rc = cli_ops_query(s, CMD, stats_sql, 1, params, &r)) != CLI_OK) {
        wq_store_close(s);
        return rc;
    }
    if (cli->json) {
        json_t *all = json_array();

        for (int i = 0; i < PQntuples(r); i++) {
            json_t *o = json_object(), *counts = json_object();

            json_object_set_new(o, "queue", cli_json_str(PQgetvalue(r, i,
                0)));
            for (int k = 0; k < 7; k++)
                json_object_set_new(counts, states[k],
                    json_integer(atoll(PQgetvalue(r, i, 1 + k))));
            json_object_set_new(o, "counts", counts);
            json_object_set_new(o, "dead", json_integer(atoll(
                PQgetvalue(r, i, 6))));
            json_object_set_new(o, "outbox", json_integer(atoll(
                PQgetvalue(r, i, 11))));
            json_object_set_new(o, "succeeded_last_minute",
                json_integer(atoll(PQgetvalue(r, i, 8))));
            json_object_set_new(o, "dead_last_minute",
                json_integer(atoll(PQgetvalue(r, i, 9))));
            json_object_set_new(o, "rate_per_second",
                json_real(atof(PQgetvalue(r, i, 8)) / 60.0));
            json_object_set_new(o, "oldest_waiting_seconds",
                PQgetisnull(r, i, 10) ? json_null()
                : json_integer(atoll(PQgetvalue(r, i, 10))));
            json_array_append_new(all, o);
        }
        cli_json_print(all);
    } else if (PQntuples(r) > 0) {
        struct cli_table t;

        cli_table_init(&t, WQ_ARRAY_LEN(head), head);
        for (int i = 0; i < PQntuples(r); i++) {
            char age[32];
            const char *row[11];

            for (int k = 0; k < 8; k++)
                row[k] = PQgetvalue(r, i, k);
            row[8] = PQgetvalue(r, i, 11);
            row[9] = PQgetvalue(r, i, 8);
            row[10] = PQgetisnull(r, i, 10) ? "-"
                : cli_age(atoll(PQgetvalue(r, i, 10)), age, sizeof age);
            cli_table_add(&t, row);
        }
        cli_table_print(&t, stdout);
        cli_table_free(&t);
    } else if (!cli->quiet) {
        fprintf(stderr, "no tasks\n");
    }
    PQclear(r);
    wq_store_close(s);
    return CLI_OK;
}

const struct cli_command cli_cmd_stats = {
    "stats",
    "tasks per queue and state, rates, oldest waiting",
    "NAME\n"
    "    workq stats - tasks per queue: states, rate, oldest waiting\n"
    "\n"
    "SYNOPSIS\n"
    "    workq [--json] stats [--queue QUEUE]\n"
    "\n"
    "DESCRIPTION\n"
    "    For each queue with tasks in PostgreSQL: how many are in each\n"
    "    state, how many succeeded in the last minute (OK/MIN), how long\n"
    "    the oldest waiting task has waited since it became due (queued,\n"
    "    or scheduled and retry_wait past their run-at time), and how many\n"
    "    enqueued tasks wait in the outbox for the scheduler's relay.\n"
    "    Tasks submitted for now have no row until a worker claims them,\n"
    "    so what waits on the broker itself is not counted here; see the\n"
    "    broker's own queue depth for that.\n"
    "\n"
    "OPTIONS\n"
    "    -q, --queue QUEUE   only this queue\n"
    "\n"
    "OUTPUT\n"
    "    A table; with --json an array of {queue, counts{state: n}, dead,\n"
    "    outbox, succeeded_last_minute, dead_last_minute, rate_per_second,\n"
    "    oldest_waiting_seconds}.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 shown; 64 usage error; 69 PostgreSQL unavailable; 78\n"
    "    configuration error.\n",
    run,
};

/*
 * cli_stats.c - `workq stats`: per queue, the tasks by state, the rate of
 * successes over the last minute, the age of the oldest waiting task,
 * what waits in the outbox, and what the broker holds (the transport's
 * backlog op: RabbitMQ ready count, Kafka consumer-group lag).
 *
 * One aggregate over workq.tasks (GROUP BY queue) and one over
 * workq.outbox.  On a large table this reads every row; retention keeps
 * the table to what is recent.  Then one backlog() per queue on one
 * broker connection.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cli_ops.h"
#include "transport.h"

#define CMD "stats"

/* One queue of the report: its PostgreSQL row (or none) and its broker
 * backlog. */
struct qstat {
    const char *queue;
    int row;                    /* index in the result, -1: no row */
    int brc;                    /* backlog(): 0, WQ_ENOENT, other WQ_E* */
    char berr[WQ_ERRLEN];
    struct wq_backlog b;
};

static int
qstat_cmp(const void *a, const void *b)
{
    return strcmp(((const struct qstat *)a)->queue,
        ((const struct qstat *)b)->queue);
}

/* Adds `queue` to the report unless it is there already. */
static void
qstat_add(struct qstat **v, size_t *n, size_t *cap, const char *queue,
    int row)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i].queue, queue) == 0)
            return;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = xreallocarray(*v, *cap, sizeof **v);
    }
    memset(&(*v)[*n], 0, sizeof **v);
    (*v)[*n].queue = queue;
    (*v)[(*n)++].row = row;
}

/*
 * Asks the broker for the backlog of every queue of the report.  A
 * broker that cannot be reached marks every queue with its error (the
 * PostgreSQL part is still shown); each queue is asked once, in order,
 * and the first unreachable answer stops the asking.
 */
static void
broker_backlog(struct cli *cli, struct qstat *v, size_t n)
{
    struct wq_transport_conf tc;
    wq_transport *t = NULL;
    char err[WQ_ERRLEN];
    int rc;

    if ((rc = wq_config_transport_conf(&cli->cfg, &tc, err, sizeof err))
        == 0)
        rc = wq_transport_open(&tc, &t, err, sizeof err);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            v[i].brc = wq_transport_backlog(t, v[i].queue, &v[i].b,
                v[i].berr, sizeof v[i].berr);
            if (v[i].brc != 0 && v[i].brc != WQ_ENOENT
                && v[i].brc != WQ_EINVAL) {
                rc = v[i].brc;
                snprintf(err, sizeof err, "%s", v[i].berr);
            }
            continue;
        }
        v[i].brc = rc;
        snprintf(v[i].berr, sizeof v[i].berr, "%s", err);
    }
    if (rc != 0)
        cli_err(CMD, "broker backlog unknown: %s", err);
    wq_transport_close(t, 1000);
}

/* wq_ops_backlog_fn: one broker connection, asked for each queue in
 * turn; the first unreachable answer stops the asking. */
static void
ops_backlog(void *user, const char *const *queues, size_t n,
    struct wq_backlog *b, int *brc, char (*berr)[WQ_ERRLEN])
{
    struct cli *cli = user;
    struct wq_transport_conf tc;
    wq_transport *t = NULL;
    char err[WQ_ERRLEN];
    int rc;

    if ((rc = wq_config_transport_conf(&cli->cfg, &tc, err, sizeof err))
        == 0)
        rc = wq_transport_open(&tc, &t, err, sizeof err);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            brc[i] = wq_transport_backlog(t, queues[i], &b[i], berr[i],
                sizeof berr[i]);
            if (brc[i] != 0 && brc[i] != WQ_ENOENT && brc[i] != WQ_EINVAL) {
                rc = brc[i];
                snprintf(err, sizeof err, "%s", berr[i]);
            }
            continue;
        }
        brc[i] = rc;
        snprintf(berr[i], sizeof berr[i], "%s", err);
    }
    wq_transport_close(t, 1000);
}

/* --json: the answer of GET /v1/stats; its "queues" printed. */
static int
print_json(struct cli *cli, wq_store *s, const char *queue, int no_broker)
{
    char err[WQ_ERRLEN];
    json_t *o, *be;
    int rc;

    rc = wq_ops_stats(s, &cli->cfg, queue, no_broker ? NULL : ops_backlog,
        cli, &o, err, sizeof err);
    if (rc != 0)
        return cli_ops_failed(CMD, rc, err);
    if ((be = json_object_get(o, "broker_error")) != NULL
        && json_is_string(be))
        cli_err(CMD, "broker backlog unknown: %s", json_string_value(be));
    cli_json_print(json_incref(json_object_get(o, "queues")));
    json_decref(o);
    return CLI_OK;
}

/* A table cell: the count, "-" when unknown, "?" on an error. */
static const char *
cell_count(const struct qstat *q, int64_t v, char *buf, size_t len)
{
    if (q->brc == WQ_ENOENT)
        return "0";
    if (q->brc != 0)
        return "?";
    if (v < 0)
        return "-";
    snprintf(buf, len, "%lld", (long long)v);
    return buf;
}

static int
run(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "queue", required_argument, NULL, 'q' },
        { "no-broker", no_argument, NULL, 'B' },
        { NULL, 0, NULL, 0 },
    };
    static const char *const head[] = {
        "QUEUE", "SCHEDULED", "QUEUED", "RUNNING", "RETRY_WAIT",
        "SUCCEEDED", "DEAD", "CANCELLED", "OUTBOX", "OK/MIN", "OLDEST WAIT",
        "BROKER WAITING", "UNACKED", "BROKER OLDEST",
    };
    const char *params[1] = { NULL };
    struct qstat *v = NULL;
    size_t n = 0, cap = 0;
    struct pg_result *r;
    wq_store *s;
    int ch, rc, no_broker = 0;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "q:", opts, NULL)) != -1) {
        if (ch == 'q') {
            params[0] = optarg;
        } else if (ch == 'B') {
            no_broker = 1;
        } else {
            return cli_bad_option(cli_cmd_stats.name, "q:", argv);
        }
    }
    if (optind < argc) {
        cli_err(CMD, "unexpected argument '%s'", argv[optind]);
        return CLI_USAGE;
    }
    if ((rc = cli_store(cli, &s)) != CLI_OK)
        return rc;
    if (cli->json) {
        rc = print_json(cli, s, params[0], no_broker);
        wq_store_close(s);
        return rc;
    }
    if ((rc = cli_ops_query(s, CMD, WQ_ADMIN_SQL_STATS, params, &r))
        != CLI_OK) {
        wq_store_close(s);
        return rc;
    }

    /*
     * The queues: those with rows, and the one asked for or else every
     * queue the configuration names (tasks sent straight to the broker
     * have no row until claimed: their queue may have none at all).
     */
    for (int i = 0; i < wq_store_nrows(r); i++)
        qstat_add(&v, &n, &cap, wq_store_value(r, i, 0), i);
    if (params[0] != NULL) {
        qstat_add(&v, &n, &cap, params[0], -1);
    } else {
        const struct wq_config_queue_policy *qp = cli->cfg.queue_policies.v;
        const struct wq_config_periodic *pe = cli->cfg.periodic.v;

        for (size_t i = 0; i < cli->cfg.worker.queues.n; i++)
            qstat_add(&v, &n, &cap, cli->cfg.worker.queues.v[i], -1);
        for (size_t i = 0; i < cli->cfg.queue_policies.n; i++)
            if (strcmp(qp[i].name, "*") != 0)
                qstat_add(&v, &n, &cap, qp[i].name, -1);
        for (size_t i = 0; i < cli->cfg.periodic.n; i++)
            qstat_add(&v, &n, &cap, pe[i].queue, -1);
    }
    if (!no_broker)
        broker_backlog(cli, v, n);
    /* a configured queue without rows is shown when the broker holds
     * something for it (or it was asked for) */
    for (size_t i = 0; i < n; i++) {
        if (v[i].row >= 0 || params[0] != NULL
            || (v[i].brc == 0 && (v[i].b.ready > 0 || v[i].b.unacked > 0)))
            continue;
        wq_backlog_free(&v[i].b);
        v[i--] = v[--n];
    }
    if (n > 0)
        qsort(v, n, sizeof *v, qstat_cmp);

    if (n > 0) {
        struct cli_table t;

        cli_table_init(&t, no_broker ? WQ_ARRAY_LEN(head) - 3
            : WQ_ARRAY_LEN(head), head);
        for (size_t q = 0; q < n; q++) {
            char age[32], bage[32], c1[32], c2[32];
            const char *row[14];
            int i = v[q].row;

            row[0] = v[q].queue;
            for (int k = 1; k < 8; k++)
                row[k] = i >= 0 ? wq_store_value(r, i, k) : "0";
            row[8] = i >= 0 ? wq_store_value(r, i, 11) : "0";
            row[9] = i >= 0 ? wq_store_value(r, i, 8) : "0";
            row[10] = i < 0 || wq_store_isnull(r, i, 10) ? "-"
                : cli_age(atoll(wq_store_value(r, i, 10)), age, sizeof age);
            row[11] = cell_count(&v[q], v[q].b.ready, c1, sizeof c1);
            row[12] = cell_count(&v[q], v[q].b.unacked, c2, sizeof c2);
            row[13] = v[q].brc == 0 && v[q].b.oldest_ms >= 0
                ? cli_age(v[q].b.oldest_ms / 1000, bage, sizeof bage)
                : v[q].brc != 0 && v[q].brc != WQ_ENOENT ? "?" : "-";
            cli_table_add(&t, row);
        }
        cli_table_print(&t, stdout);
        cli_table_free(&t);
        /* Kafka: the lag of each partition, for the queues that lag */
        for (size_t q = 0; q < n && !no_broker; q++) {
            if (v[q].brc != 0 || v[q].b.nparts == 0 || v[q].b.ready <= 0)
                continue;
            printf("%s: lag of group %s by partition:", v[q].queue,
                v[q].b.group);
            for (size_t k = 0; k < v[q].b.nparts; k++)
                printf(" %d=%lld", (int)v[q].b.parts[k].partition,
                    (long long)v[q].b.parts[k].lag);
            printf("\n");
        }
    } else if (!cli->quiet) {
        fprintf(stderr, "no tasks\n");
    }
    for (size_t q = 0; q < n; q++)
        wq_backlog_free(&v[q].b);
    free(v);
    wq_store_rows_free(r);
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
    "    workq [--json] stats [--queue QUEUE] [--no-broker]\n"
    "\n"
    "DESCRIPTION\n"
    "    For each queue with tasks in PostgreSQL: how many are in each\n"
    "    state, how many succeeded in the last minute (OK/MIN), how long\n"
    "    the oldest waiting task has waited since it became due (queued,\n"
    "    or scheduled and retry_wait past their run-at time), and how many\n"
    "    enqueued tasks wait in the outbox for the scheduler's relay.\n"
    "\n"
    "    Beside them, what the broker holds for the queue.  Tasks\n"
    "    submitted for now have no row until a worker claims them, so\n"
    "    only the broker sees them:\n"
    "      RabbitMQ  BROKER WAITING is the queue's ready count (not yet\n"
    "                delivered to a worker).  UNACKED is \"-\": AMQP does\n"
    "                not tell it (only the management plugin does, which\n"
    "                workq does not require); the tasks workers hold are\n"
    "                RUNNING, from PostgreSQL.  BROKER OLDEST is \"-\": only\n"
    "                taking the head message would show its age.\n"
    "      Kafka     BROKER WAITING is the lag of the queue's consumer\n"
    "                group (workq.QUEUE, the worker's group when QUEUE is\n"
    "                the first of its worker.queues): per partition, the\n"
    "                high watermark minus the group's committed offset, or\n"
    "                minus the low watermark where the group has committed\n"
    "                nothing (a new group starts at the oldest message).\n"
    "                Messages a worker holds count until it commits them.\n"
    "                The lag of each partition is printed under the\n"
    "                table.  BROKER OLDEST is the age of the message at the\n"
    "                first uncommitted offset (its timestamp), read with a\n"
    "                short-lived consumer that never joins the group.\n"
    "    \"?\" means the broker could not be asked (the reason goes to\n"
    "    stderr; the PostgreSQL columns are still shown).  A queue the\n"
    "    broker does not have counts 0.  Queues named in the\n"
    "    configuration (worker.queues, queue_policies, periodic) are\n"
    "    listed when the broker holds messages for them, even with no\n"
    "    row; --queue always lists its queue.\n"
    "\n"
    "OPTIONS\n"
    "    -q, --queue QUEUE   only this queue\n"
    "    --no-broker         do not ask the broker (PostgreSQL only)\n"
    "\n"
    "OUTPUT\n"
    "    A table; with --json the \"queues\" array of the HTTP API's\n"
    "    GET /v1/stats: per queue {queue, one count per state, succeeded_1m,\n"
    "    dead_1m, oldest_waiting_s, outbox, broker}, and under the names\n"
    "    of before {counts{state: n}, succeeded_last_minute,\n"
    "    dead_last_minute, rate_per_second, oldest_waiting_seconds}.\n"
    "    broker is {transport, exists, ready (also as waiting), unacked,\n"
    "    consumers, lag, oldest_age_s (also as oldest_waiting_seconds)}\n"
    "    (null where the broker cannot tell), with Kafka also {group,\n"
    "    partitions: [{partition, low, high, committed, lag}]}; null when\n"
    "    the broker could not be asked (the reason goes to stderr);\n"
    "    {transport, exists: false, ready: 0} for a queue it does not have.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 shown (also when only the broker could not be asked); 64\n"
    "    usage error; 69 PostgreSQL unavailable; 78 configuration error.\n",
    run,
};

/*
 * cli_stats.c - `workq stats`: per queue, the tasks by state, the rate of
 * successes over the last minute, the age of the oldest waiting task,
 * what waits in the outbox, and what the broker holds (the transport's
 * backlog op: RabbitMQ ready count, Kafka consumer-group lag).
 *
 * Both forms come from wq_ops_stats (shared/ops.c), the answer of GET
 * /v1/stats: --json prints its "queues", the table is made from them,
 * so the three cannot disagree.  It runs one aggregate over workq.tasks
 * (GROUP BY queue) and one over workq.outbox (on a large table this
 * reads every row; retention keeps the table to what is recent), then
 * ops_backlog asks for every queue's backlog on one broker connection.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli_ops.h"
#include "transport.h"

#define CMD "stats"

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

/* An integer member of o as table text: "-" when it is null or absent. */
static const char *
cell_int(const json_t *o, const char *name, char *buf, size_t len)
{
    const json_t *v = json_object_get(o, name);

    if (!json_is_integer(v))
        return "-";
    snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    return buf;
}

/* A seconds member of o as an age ("-" when null or absent). */
static const char *
cell_age(const json_t *o, const char *name, char *buf, size_t len)
{
    const json_t *v = json_object_get(o, name);

    return json_is_integer(v) ? cli_age(json_integer_value(v), buf, len)
        : "-";
}

/*
 * The broker's three cells of one queue from its "broker" object: "?"
 * for all when the broker could not be asked (null), 0 waiting and
 * unacked for a queue it does not have, "-" where it cannot tell.
 */
static void
broker_cells(const json_t *b, const char **row, char (*buf)[32])
{
    if (!json_is_object(b)) {
        row[0] = row[1] = row[2] = "?";
        return;
    }
    if (json_is_false(json_object_get(b, "exists"))) {
        row[0] = row[1] = "0";
        row[2] = "-";
        return;
    }
    row[0] = cell_int(b, "ready", buf[0], sizeof buf[0]);
    row[1] = cell_int(b, "unacked", buf[1], sizeof buf[1]);
    row[2] = cell_age(b, "oldest_age_s", buf[2], sizeof buf[2]);
}

/* Kafka: the lag of each partition, for the queues that lag. */
static void
print_lags(const json_t *queues)
{
    const json_t *q;
    size_t i;

    json_array_foreach(queues, i, q) {
        const json_t *b = json_object_get(q, "broker");
        const json_t *parts = json_object_get(b, "partitions");
        const json_t *p;
        size_t k;

        if (json_array_size(parts) == 0
            || json_integer_value(json_object_get(b, "ready")) <= 0)
            continue;
        printf("%s: lag of group %s by partition:",
            json_string_value(json_object_get(q, "queue")),
            json_string_value(json_object_get(b, "group")));
        json_array_foreach(parts, k, p) {
            const char *band = json_string_value(json_object_get(p,
                "priority"));

            /* the bands' topics other than the queue's own: "high/0=3" */
            printf(" %s%s%d=%lld", band != NULL && strcmp(band, "normal")
                != 0 ? band : "", band != NULL && strcmp(band, "normal")
                != 0 ? "/" : "",
                (int)json_integer_value(json_object_get(p, "partition")),
                (long long)json_integer_value(json_object_get(p, "lag")));
        }
        printf("\n");
    }
}

/*
 * The broker's waiting messages of each priority band, for the queues
 * with any in a band other than normal ("-" where it cannot tell).
 */
static void
print_bands(const json_t *queues)
{
    static const char *const names[] = { "high", "normal", "low" };
    const json_t *q;
    size_t i;

    json_array_foreach(queues, i, q) {
        const json_t *bands = json_object_get(json_object_get(q, "broker"),
            "bands");
        char buf[WQ_ARRAY_LEN(names)][32];
        int other = 0;

        if (!json_is_object(bands))
            continue;
        for (size_t k = 0; k < WQ_ARRAY_LEN(names); k++)
            if (strcmp(names[k], "normal") != 0)
                other |= json_integer_value(json_object_get(
                    json_object_get(bands, names[k]), "ready")) > 0;
        if (!other)
            continue;
        printf("%s: broker waiting by priority:",
            json_string_value(json_object_get(q, "queue")));
        for (size_t k = 0; k < WQ_ARRAY_LEN(names); k++)
            printf(" %s %s%s", names[k], cell_int(json_object_get(bands,
                names[k]), "ready", buf[k], sizeof buf[k]),
                k + 1 < WQ_ARRAY_LEN(names) ? "," : "");
        printf("\n");
    }
}

/*
 * The human form of wq_ops_stats's "queues": a table (without the
 * broker's columns when it was not asked), then the Kafka lags.
 */
static void
print_table(const json_t *queues, int no_broker)
{
    static const char *const head[] = {
        "QUEUE", "SCHEDULED", "QUEUED", "RUNNING", "RETRY_WAIT",
        "SUCCEEDED", "DEAD", "CANCELLED", "OUTBOX", "OK/MIN", "OLDEST WAIT",
        "BROKER WAITING", "UNACKED", "BROKER OLDEST",
    };
    static const char *const pg[] = {
        "scheduled", "queued", "running", "retry_wait", "succeeded", "dead",
        "cancelled", "outbox", "succeeded_1m",
    };
    struct cli_table t;
    const json_t *q;
    size_t i;

    cli_table_init(&t, no_broker ? WQ_ARRAY_LEN(head) - 3
        : WQ_ARRAY_LEN(head), head);
    json_array_foreach(queues, i, q) {
        char buf[WQ_ARRAY_LEN(head)][32];
        const char *row[WQ_ARRAY_LEN(head)];

        row[0] = json_string_value(json_object_get(q, "queue"));
        for (size_t k = 0; k < WQ_ARRAY_LEN(pg); k++)
            row[1 + k] = cell_int(q, pg[k], buf[1 + k], sizeof buf[1 + k]);
        row[10] = cell_age(q, "oldest_waiting_s", buf[10], sizeof buf[10]);
        if (!no_broker)
            broker_cells(json_object_get(q, "broker"), &row[11], &buf[11]);
        cli_table_add(&t, row);
    }
    cli_table_print(&t, stdout);
    cli_table_free(&t);
    if (!no_broker) {
        print_bands(queues);
        print_lags(queues);
    }
}

static int
run(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "queue", required_argument, NULL, 'q' },
        { "no-broker", no_argument, NULL, 'B' },
        { NULL, 0, NULL, 0 },
    };
    const char *queue = NULL;
    char err[WQ_ERRLEN];
    json_t *o, *be, *queues;
    wq_store *s;
    int ch, rc, no_broker = 0;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "q:", opts, NULL)) != -1) {
        if (ch == 'q') {
            queue = optarg;
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
    rc = wq_ops_stats(s, &cli->cfg, queue, no_broker ? NULL : ops_backlog,
        cli, &o, err, sizeof err);
    wq_store_close(s);
    if (rc != 0)
        return cli_ops_failed(CMD, rc, err);
    if ((be = json_object_get(o, "broker_error")) != NULL
        && json_is_string(be))
        cli_err(CMD, "broker backlog unknown: %s", json_string_value(be));
    queues = json_object_get(o, "queues");
    if (cli->json)
        cli_json_print(json_incref(queues));
    else if (json_array_size(queues) > 0)
        print_table(queues, no_broker);
    else if (!cli->quiet)
        fprintf(stderr, "no tasks\n");
    json_decref(o);
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
    "    A queue's tasks wait in three broker queues or topics, one per\n"
    "    priority (README \"Priorities\"): the broker's columns add them\n"
    "    up, and a line under the table gives each band's waiting\n"
    "    messages for the queues with any at high or low priority.\n"
    "    Kafka's lag per partition names the band of a topic other than\n"
    "    the queue's own (\"high/0=3\").\n"
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
    "    (null where the broker cannot tell), the sums of the queue's\n"
    "    three bands, and bands: {high, normal, low}, each {exists, ready,\n"
    "    waiting, unacked, consumers, lag, oldest_age_s,\n"
    "    oldest_waiting_seconds} of its own; with Kafka also {group,\n"
    "    partitions: [{priority, partition, low, high, committed, lag}]}\n"
    "    (the partitions of all three bands); null when\n"
    "    the broker could not be asked (the reason goes to stderr);\n"
    "    {transport, exists: false, ready: 0} for a queue it does not have.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 shown (also when only the broker could not be asked); 64\n"
    "    usage error; 69 PostgreSQL unavailable; 78 configuration error.\n",
    run,
};

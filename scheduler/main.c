/*
 * scheduler/main.c - workq-scheduler: flags, configuration, signals and
 * the loop that owns time (DESIGN.md step 7).
 *
 * One loop thread, one PostgreSQL connection, one broker connection
 * (completion hooks and the broker backlog gauges have threads and
 * connections of their own: hooks.c, backlog.c).  The loop
 * sleeps in poll(2) on the connection's socket (LISTEN workq_scheduler:
 * migration 0002's triggers notify it of new scheduled, retry_wait and
 * dead tasks and of outbox rows) and on the signal self-pipe, with a
 * timeout at the earliest time it knows of: the next run_at, the next
 * lease deadline, the next cron tick, the next retention pass, a
 * reconnect, a heartbeat; scheduler.poll_interval at most.  When it
 * wakes it asks PostgreSQL what is due (one "probe" query on the partial
 * indexes) and runs the rounds that have work (sched.h): expired leases,
 * periodic ticks, due tasks, dead-letter copies, the outbox, retention,
 * receipts.
 * A round that filled its batch runs again at once; a round that found
 * nothing although the probe said there was work (rows held by another
 * scheduler, messages the broker refuses) backs off, so nothing spins.
 * Idle, the process makes one small query per poll_interval.
 *
 * High availability: any number of schedulers may run against the same
 * database.  Every round takes its rows with FOR UPDATE SKIP LOCKED in a
 * short transaction, so two schedulers never hold the same row, and
 * periodic ticks are gated by workq.cron_ticks.  There is no leader and
 * so no failover delay; a scheduler that dies mid-round leaves its rows
 * unlocked (its transaction is rolled back), and the next round of any
 * scheduler takes them.
 *
 * Failures: a lost PostgreSQL connection or broker is reconnected with
 * backoff (100 ms doubling to 30 s); the process never exits for them.
 *
 * Shutdown, in the order of STYLE.md habit 10: SIGTERM (or SIGINT) stops
 * the loop between rounds (a round under way finishes: at most
 * publish_timeout), STOPPING=1 is sent, the broker connection is closed
 * in the library's order, then PostgreSQL's, and the process exits 0.  A
 * second signal skips the rest of the rounds.  SIGHUP reopens the log.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "backlog.h"
#include "clock.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "migrate.h"
#include "reconnect.h"
#include "sched.h"

#define COMPONENT "scheduler"

/* sysexits.h codes, as the CLI uses them */
#define EXIT_USAGE    64
#define EXIT_SOFTWARE 70
#define EXIT_CONFIG   78

#define BACKOFF_MIN_MS   100
#define BACKOFF_MAX_MS   30000
#define IDLE_BACKOFF_MIN 50     /* a round that found its work held */
#define STATUS_EVERY_MS  10000
#define SCHEMA_RETRY_MS  10000

static const char help_text[] =
    "NAME\n"
    "    workq-scheduler - publish due retries and delayed tasks, recover\n"
    "    lost leases, dead-letter, run periodic tasks, relay the outbox,\n"
    "    prune old tasks, deliver completion hooks\n"
    "\n"
    "SYNOPSIS\n"
    "    workq-scheduler [-c PATH]\n"
    "    workq-scheduler --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    Owns time for workq.  It publishes tasks whose run_at has come\n"
    "    (delayed submits, periodic ticks, retries after their backoff) to\n"
    "    the broker with attempt+1 and marks them queued once the broker\n"
    "    confirmed them; turns running tasks whose lease expired (their\n"
    "    worker died) into a failed attempt, retried after the queue's\n"
    "    backoff or dead; publishes a copy of every dead task on\n"
    "    workq.QUEUE.dead; enqueues periodic tasks (cron schedules in UTC,\n"
    "    each tick once, missed ticks caught up within\n"
    "    scheduler.cron_catchup); relays workq.outbox rows written by\n"
    "    workq.enqueue() inside applications' transactions; and prunes\n"
    "    finished tasks after their retention, finished workflows with\n"
    "    them, and what flow control leaves behind (ended unique\n"
    "    windows, dead holds, the concurrency keys of tasks gone); a\n"
    "    completion hook still owed is never pruned.  Copies on\n"
    "    workq.QUEUE.dead are bounded by the queue's policy (dead_ttl,\n"
    "    dead_max_length), set when the queue or topic is created.\n"
    "\n"
    "    It also delivers completion hooks: when a task that names one\n"
    "    (header workq-hook, or its queue policy's hook_url) ends, the\n"
    "    transaction that records the outcome writes a delivery row; the\n"
    "    scheduler POSTs its JSON to the https URL, signed with\n"
    "    hooks.secret (X-Workq-Timestamp, X-Workq-Signature), retries\n"
    "    with backoff until a 2xx, and deletes it.  At least once: a\n"
    "    crash sends it again with the same X-Workq-Delivery id.  The\n"
    "    POSTs go out from a thread of their own with its own PostgreSQL\n"
    "    connection, so a slow or hanging receiver never delays retries,\n"
    "    lease recovery or periodic tasks.\n"
    "\n"
    "    Every scheduler.backlog_interval a thread of its own asks the\n"
    "    broker what it holds for each queue the configuration names\n"
    "    (worker.queues, queue_policies, periodic) and exports it on\n"
    "    /metrics: workq_broker_waiting_messages{queue} (RabbitMQ ready\n"
    "    count, Kafka lag of group workq.QUEUE, summed over the queue's\n"
    "    priority bands), workq_broker_band_waiting_messages{queue,\n"
    "    priority} (each band's) and, on Kafka,\n"
    "    workq_broker_oldest_waiting_seconds{queue}.\n"
    "\n"
    "    It sleeps until something is due or PostgreSQL notifies it\n"
    "    (LISTEN workq_scheduler; behind a transaction-mode pooler, on\n"
    "    postgres.listen_conninfo), never polling faster than\n"
    "    scheduler.poll_interval when idle.  Run two or more for high\n"
    "    availability: they share the work row by row (FOR UPDATE SKIP\n"
    "    LOCKED), with no leader to elect.\n"
    "\n"
    "OPTIONS\n"
    "    -c, --config PATH   configuration file (default "
    WQ_SYSCONFDIR "/workq/workq.conf;\n"
    "                        without it, defaults and WORKQ_* variables)\n"
    "    -h, --help          this page\n"
    "    -V, --version       print the version\n"
    "\n"
    "CONFIGURATION\n"
    "    The keys that matter here: transport, kafka.*, rabbitmq.*,\n"
    "    postgres.*, scheduler.* (poll_interval, batch_size,\n"
    "    publish_timeout, cron_catchup, retention, dead_retention,\n"
    "    retention_interval, backlog_interval), queue_policies (backoff\n"
    "    after a lost lease, retention and dead-letter bounds per queue),\n"
    "    periodic (cron entries), hooks.* (secret, tls_ca, timeout,\n"
    "    concurrency, backoff_base, backoff_cap), metrics.listen\n"
    "    (/healthz and /metrics; empty: off), log.*.  Every key is\n"
    "    documented in the example workq.conf; `workq config` prints them.\n"
    "\n"
    "SIGNALS\n"
    "    SIGTERM, SIGINT  finish the round under way (at most\n"
    "                     scheduler.publish_timeout), close the\n"
    "                     connections, exit 0.  A second one skips the\n"
    "                     remaining rounds.\n"
    "    SIGHUP           reopen log.file (after rotation).\n"
    "\n"
    "SYSTEMD\n"
    "    Type=notify: READY=1 when the loop starts, STATUS= with the\n"
    "    connections and counts, WATCHDOG=1 while the loop turns (set\n"
    "    WatchdogSec= above scheduler.publish_timeout), STOPPING=1 when a\n"
    "    stop begins.\n"
    "\n"
    "METRICS\n"
    "    workq_scheduler_published_total{kind=retry|delayed},\n"
    "    workq_scheduler_relayed_total, workq_scheduler_dead_total,\n"
    "    workq_scheduler_lease_expiries_total{outcome=retry|dead},\n"
    "    workq_scheduler_cron_ticks_total, workq_scheduler_pruned_total,\n"
    "    workq_scheduler_lag_seconds (due to confirmed),\n"
    "    workq_scheduler_oldest_due_seconds, workq_scheduler_wakeups_total,\n"
    "    workq_scheduler_hooks_total{result=delivered|failed|rejected},\n"
    "    workq_scheduler_store_up, workq_scheduler_broker_up.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 stopped cleanly; 64 usage error; 70 internal error; 78\n"
    "    configuration error.  A broker or PostgreSQL that is down, or a\n"
    "    schema that needs `workq migrate`, is waited for, never an exit.\n"
    "\n"
    "ENVIRONMENT\n"
    "    WORKQ_<GROUP>_<KEY> overrides any configuration key, e.g.\n"
    "    WORKQ_SCHEDULER_BATCH_SIZE, WORKQ_POSTGRES_CONNINFO;\n"
    "    NOTIFY_SOCKET and WATCHDOG_USEC come from systemd.\n";

/* The rounds, in the order one turn of the loop runs them. */
enum { R_LEASES, R_PERIODIC, R_PUBLISH, R_DEAD, R_OUTBOX, R_RETENTION,
    R_RECEIPTS, R_COUNT };

typedef int round_fn(struct wq_sched *, int *, int *, char *, size_t);

static const struct {
    const char *name;
    round_fn *fn;
    int needs_broker;
} rounds[R_COUNT] = {
    [R_LEASES] = { "lease recovery", wq_sched_lease_recover, 0 },
    [R_PERIODIC] = { "periodic ticks", wq_sched_periodic_tick, 0 },
    [R_PUBLISH] = { "publishing due tasks", wq_sched_publish_due, 1 },
    [R_DEAD] = { "dead-letter copies", wq_sched_dead_publish, 1 },
    [R_OUTBOX] = { "outbox relay", wq_sched_outbox_relay, 1 },
    [R_RETENTION] = { "retention", wq_sched_retention_prune, 0 },
    [R_RECEIPTS] = { "receipts sweep", wq_sched_receipts_sweep, 0 },
};

struct round_state {
    int more;                   /* filled its batch: run again now */
    uint64_t hold_until_ns;     /* found nothing though due: wait */
    int64_t hold_ms;
};

/* What the probe found; ms < 0 means none. */
struct probe {
    int64_t due_ms;             /* until the earliest run_at (<= 0: due) */
    int64_t lease_ms;           /* until the earliest lease deadline */
    int dead;                   /* dead tasks owe a copy */
    int outbox;                 /* outbox rows wait */
    int receipts;               /* receipts exist (some may be swept) */
};

struct loop {
    struct wq_sched s;
    int store_up;
    struct wq_reconnect store_retry;
    int schema_ok;
    struct round_state rs[R_COUNT];
    struct probe pr;
    uint64_t status_ns, watchdog_ns;
    int broker_warned;
};

/* ---- PostgreSQL ------------------------------------------------------------ */

static void
store_down(struct loop *l, const char *why)
{
    if (l->store_up)
        wq_log_warn(COMPONENT, "PostgreSQL: %s; reconnecting", why);
    l->store_up = 0;
    wq_reconnect_ok(&l->store_retry);
    wq_reconnect_hold(&l->store_retry, BACKOFF_MIN_MS);
    wq_metric_set(l->s.st->store_up, 0);
}

/* Opens or reconnects the connection, checks the schema and LISTENs. */
static void
store_up(struct loop *l)
{
    struct wq_store_opts so;
    char err[WQ_ERRLEN];
    int rc;

    if (!wq_reconnect_due(&l->store_retry))
        return;
    wq_config_store_opts(l->s.cfg, &so);
    if (l->s.store == NULL)
        rc = wq_store_open_opts(&so, &l->s.store, err, sizeof err);
    else
        rc = wq_store_ping(l->s.store, err, sizeof err);
    if (rc == 0 && (rc = wq_migrate_check(l->s.store, err, sizeof err))
        != 0) {
        if (l->schema_ok || l->store_retry.step_ms <= BACKOFF_MIN_MS)
            wq_log_error(COMPONENT, "%s (checking again every %d s)", err,
                SCHEMA_RETRY_MS / 1000);
        l->schema_ok = 0;
        l->store_retry.step_ms = SCHEMA_RETRY_MS;
        wq_reconnect_hold(&l->store_retry, SCHEMA_RETRY_MS);
        return;
    }
    if (rc == 0)
        rc = wq_store_listen(l->s.store, "workq_scheduler", err,
            sizeof err);
    if (rc != 0) {
        if (l->store_retry.step_ms <= BACKOFF_MIN_MS
            || l->store_retry.step_ms >= BACKOFF_MAX_MS)
            wq_log_warn(COMPONENT, "PostgreSQL: %s", err);
        wq_reconnect_failed(&l->store_retry);
        return;
    }
    l->schema_ok = 1;
    l->store_up = 1;
    wq_reconnect_ok(&l->store_retry);
    wq_metric_set(l->s.st->store_up, 1);
    wq_log_info(COMPONENT, "connected to PostgreSQL, listening on "
        "workq_scheduler");
}

static void
log_notify(const char *channel, const char *payload, void *user)
{
    (void)user;
    wq_log_debug(COMPONENT, "notified: %s %s", channel, payload);
}

/* Takes the notifications received; 1 if there were any. */
static int
drain_notifies(struct loop *l)
{
    return wq_store_notifies(l->s.store, log_notify, NULL) > 0;
}

static int
probe(struct loop *l, char *err, size_t errlen)
{
    struct pg_result *r;
    int rc;

    if ((rc = wq_store_sched_query(l->s.store, WQ_SCHED_SQL_PROBE, NULL,
        &r, err, errlen)) != 0)
        return rc;
    l->pr.due_ms = wq_store_isnull(r, 0, 0) ? -1 : wq_sched_rows_i64(r, 0, 0);
    if (!wq_store_isnull(r, 0, 0) && l->pr.due_ms < 0)
        l->pr.due_ms = 0;
    l->pr.lease_ms = wq_store_isnull(r, 0, 1) ? -1 : wq_sched_rows_i64(r, 0, 1);
    if (!wq_store_isnull(r, 0, 1) && l->pr.lease_ms < 0)
        l->pr.lease_ms = 0;
    l->pr.dead = *wq_store_value(r, 0, 2) != 0;
    l->pr.outbox = *wq_store_value(r, 0, 3) != 0;
    l->pr.receipts = *wq_store_value(r, 0, 4) != 0;
    wq_metric_set(l->s.st->oldest_due_seconds, wq_store_isnull(r, 0, 0) ? 0
        : wq_sched_rows_i64(r, 0, 0) < 0
        ? -wq_sched_rows_i64(r, 0, 0) / 1000 : 0);
    wq_store_rows_free(r);
    return 0;
}

/* ---- the broker -------------------------------------------------------------- */

/*
 * Keeps the broker connection: heartbeats while it is up, a reconnect
 * (with the broker module's backoff) when it is down, also while there is
 * nothing to publish, so that /healthz tells the truth and the first
 * due task does not wait for a connect.
 */
static void
broker_tend(struct loop *l)
{
    char err[WQ_ERRLEN];
    int rc;

    if (wq_broker_is_up(l->s.broker)) {
        wq_broker_keepalive(l->s.broker);
    } else if (wq_broker_retry_ms(l->s.broker) == 0) {
        rc = wq_broker_ready(l->s.broker, err, sizeof err);
        if (rc == 0 && l->broker_warned)
            wq_log_info(COMPONENT, "broker reachable again");
        else if (rc != 0 && rc != WQ_EAGAIN && !l->broker_warned)
            wq_log_warn(COMPONENT, "broker: %s (retrying)", err);
        l->broker_warned = rc != 0 && (l->broker_warned || rc != WQ_EAGAIN);
    }
    wq_metric_set(l->s.st->broker_up, wq_broker_is_up(l->s.broker));
}

/* ---- the rounds -------------------------------------------------------------- */

/* Whether round i has work now, by the probe and its own state. */
static int
wanted(const struct loop *l, int i)
{
    if (wq_clock_mono_ns() < l->rs[i].hold_until_ns)
        return 0;
    if (l->rs[i].more)
        return 1;
    switch (i) {
    case R_LEASES:    return l->pr.lease_ms == 0;
    case R_PERIODIC:  return wq_sched_periodic_next_ms(l->s.periodic) == 0;
    case R_PUBLISH:   return l->pr.due_ms == 0;
    case R_DEAD:      return l->pr.dead;
    case R_OUTBOX:    return l->pr.outbox;
    case R_RETENTION: return wq_sched_retention_next_ms(l->s.retention) == 0;
    case R_RECEIPTS:  return l->pr.receipts
                          && wq_sched_receipts_next_ms(l->s.retention) == 0;
    }
    return 0;
}

/* Runs the rounds that have work; returns how many ran. */
static int
run_rounds(struct loop *l)
{
    char err[WQ_ERRLEN];
    int ran = 0;

    for (int i = 0; i < R_COUNT && l->store_up; i++) {
        struct round_state *rs = &l->rs[i];
        int more = 0, done = 0, rc;

        if (wq_daemon_stop_requested() > 1)
            return ran;
        if (!wanted(l, i))
            continue;
        if (rounds[i].needs_broker && !wq_broker_is_up(l->s.broker)) {
            rs->more = 0;   /* broker_tend() reconnects; the rows wait */
            continue;
        }
        ran++;
        rc = rounds[i].fn(&l->s, &more, &done, err, sizeof err);
        rs->more = more;
        wq_metric_set(l->s.st->broker_up, wq_broker_is_up(l->s.broker));
        if (rc == WQ_ESTORE) {
            store_down(l, err);
            return ran;
        }
        if (rc != 0)
            wq_log_warn(COMPONENT, "%s: %s", rounds[i].name, err);
        if ((rc != 0 && rc != WQ_EBROKER) || (rc == 0 && done == 0 && !more
            && i != R_PERIODIC && i != R_RETENTION && i != R_RECEIPTS)) {
            /* a failure, or the probe saw work the round could not take
             * (held by another scheduler, refused by the broker): wait,
             * a little longer each time, up to poll_interval */
            rs->more = 0;
            rs->hold_ms = rs->hold_ms == 0 ? IDLE_BACKOFF_MIN
                : rs->hold_ms * 2;
            if (rs->hold_ms > l->s.cfg->scheduler.poll_interval_ms)
                rs->hold_ms = l->s.cfg->scheduler.poll_interval_ms;
            rs->hold_until_ns = wq_clock_mono_ns()
                + (uint64_t)rs->hold_ms * 1000000u;
        } else if (done > 0) {
            rs->hold_ms = 0;
            rs->hold_until_ns = 0;
        }
    }
    return ran;
}

/* ---- the loop ------------------------------------------------------------------ */

static int64_t
min_ms(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

/* How long poll() may sleep, in milliseconds. */
static int
sleep_ms(const struct loop *l)
{
    const struct wq_sched *s = &l->s;
    int64_t ms = s->cfg->scheduler.poll_interval_ms, hold = -1;
    uint64_t wd = wq_daemon_watchdog_usec();

    for (int i = 0; i < R_COUNT; i++) {
        if (l->rs[i].more && wq_clock_mono_ns() >= l->rs[i].hold_until_ns)
            return 0;
        if (l->rs[i].hold_until_ns != 0)
            hold = min_ms(hold, wq_clock_ms_until(l->rs[i].hold_until_ns));
    }
    if (wd > 0)
        ms = min_ms(ms, (int64_t)(wd / 4000));
    if (!wq_broker_is_up(s->broker))
        ms = min_ms(ms, wq_broker_retry_ms(s->broker));
    else if (wq_broker_keepalive_ms(s->broker) > 0)
        ms = min_ms(ms, wq_broker_keepalive_ms(s->broker));
    if (!l->store_up)
        ms = min_ms(ms, wq_reconnect_wait_ms(&l->store_retry));
    else {
        if (l->pr.due_ms > 0)
            ms = min_ms(ms, l->pr.due_ms);
        if (l->pr.lease_ms > 0)
            ms = min_ms(ms, l->pr.lease_ms);
        if (hold >= 0)
            ms = min_ms(ms, hold > 0 ? hold : 1);
        ms = min_ms(ms, wq_sched_periodic_next_ms(s->periodic));
        ms = min_ms(ms, wq_sched_retention_next_ms(s->retention));
        if (l->pr.receipts)
            ms = min_ms(ms, wq_sched_receipts_next_ms(s->retention));
    }
    if (ms > INT_MAX)
        ms = INT_MAX;
    return ms < 0 ? 0 : (int)ms;
}

static void
notify_status(struct loop *l)
{
    const struct wq_sched_stats *st = l->s.st;

    wq_daemon_notify_status("%s, %s; published %lld, relayed %lld, dead "
        "%lld, leases %lld, ticks %lld",
        l->store_up ? "PostgreSQL up" : "PostgreSQL down",
        wq_broker_is_up(l->s.broker) ? "broker up" : "broker down",
        (long long)(wq_metric_value(st->published_retry)
            + wq_metric_value(st->published_delayed)),
        (long long)wq_metric_value(st->relayed),
        (long long)wq_metric_value(st->dead_copies),
        (long long)(wq_metric_value(st->lease_retry)
            + wq_metric_value(st->lease_dead)),
        (long long)wq_metric_value(st->cron_ticks));
}

static void
run(struct loop *l)
{
    char err[WQ_ERRLEN];
    uint64_t wd = wq_daemon_watchdog_usec();

    wq_daemon_notify_ready("starting: connecting to PostgreSQL and the "
        "broker");
    for (;;) {
        struct pollfd pfd[2];
        int nfd = 1, timeout, again = 0;
        uint64_t now;

        if (wq_daemon_stop_requested() > 0)
            break;
        if (wq_daemon_reload_requested() && wq_log_reopen() != 0)
            wq_log_error(COMPONENT, "cannot reopen the log file");
        now = wq_clock_mono_ns();
        atomic_store(&l->s.st->loop_ns, now);
        wq_metric_inc(l->s.st->wakeups, 1);
        /* the loop wakes at least every quarter of the period, so two
         * WATCHDOG=1 are never more than half of it apart */
        if (wd > 0 && now - l->watchdog_ns >= wd * 1000 / 4) {
            wq_daemon_notify_watchdog();
            l->watchdog_ns = now;
        }
        if (now - l->status_ns >= (uint64_t)STATUS_EVERY_MS * 1000000u) {
            notify_status(l);
            l->status_ns = now;
        }

        if (!l->store_up)
            store_up(l);
        broker_tend(l);
        if (l->store_up) {
            drain_notifies(l);
            if (probe(l, err, sizeof err) != 0)
                store_down(l, err);
        }
        /* After rounds ran, the probe is stale: probe again before
         * choosing how long to sleep. */
        if (l->store_up && run_rounds(l) > 0)
            again = 1;
        if (l->store_up && drain_notifies(l))
            again = 1;  /* something committed while the rounds ran */
        if (wq_daemon_stop_requested() > 0)
            break;

        timeout = again ? 0 : sleep_ms(l);
        pfd[0].fd = wq_daemon_wakeup_fd();
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;
        if (l->store_up && wq_store_socket(l->s.store) >= 0) {
            pfd[1].fd = wq_store_socket(l->s.store);
            pfd[1].events = POLLIN;
            pfd[1].revents = 0;
            nfd = 2;
        }
        if (poll(pfd, (nfds_t)nfd, timeout) < 0 && errno != EINTR) {
            wq_log_error(COMPONENT, "poll: %s", strerror(errno));
            sleep(1);
        }
        if (pfd[0].revents != 0)
            wq_daemon_drain_wakeup();
        if (nfd == 2 && pfd[1].revents != 0
            && wq_store_consume(l->s.store, err, sizeof err) != 0)
            store_down(l, err);
    }
}

/* ---- main ----------------------------------------------------------------------- */

static int
parse_args(int argc, char **argv, const char **config)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            *config = optarg;
            break;
        case 'h':
            fputs(help_text, stdout);
            return -1;
        case 'V':
            printf("workq-scheduler %s\n", WQ_VERSION);
            return -1;
        default:
            fputs("usage: workq-scheduler [-c PATH]; --help for more\n",
                stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "workq-scheduler: unexpected argument \"%s\"\n",
            argv[optind]);
        return EXIT_USAGE;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    static char cerr[WQ_CONFIG_ERRLEN];
    struct wq_config cfg;
    struct wq_sched_stats stats;
    wq_sched_backlog *backlog = NULL;
    struct loop *l = NULL;
    const char *config = NULL;
    char err[WQ_ERRLEN], host[HOST_NAME_MAX + 1], *id = NULL;
    int rc, port, status = EXIT_CONFIG, hooks_failed = 0;

    memset(&cfg, 0, sizeof cfg);
    memset(&stats, 0, sizeof stats);
    if ((rc = parse_args(argc, argv, &config)) != 0)
        return rc < 0 ? 0 : rc;
    if (wq_config_load(config, &cfg, cerr, sizeof cerr) != 0) {
        fprintf(stderr, "workq-scheduler: configuration rejected:\n%s\n",
            cerr);
        goto out_cfg;
    }
    if (wq_config_setup_log(&cfg, "workq-scheduler", err, sizeof err) != 0)
        fprintf(stderr, "workq-scheduler: %s\n", err);
    l = xcalloc(1, sizeof *l);
    l->s.cfg = &cfg;
    l->s.batch = cfg.scheduler.batch_size;
    l->s.publish_timeout_ms = (int)cfg.scheduler.publish_timeout_ms;
    if (wq_sched_periodic_new(&cfg, &l->s.periodic, cerr, sizeof cerr) != 0) {
        fprintf(stderr, "workq-scheduler: periodic entries rejected:\n%s\n",
            cerr);
        goto out_cfg;
    }
    if (wq_daemon_signals_init(err, sizeof err) != 0) {
        wq_log_error(COMPONENT, "%s", err);
        status = EXIT_SOFTWARE;
        goto out_periodic;
    }
    wq_sched_stats_init(&stats);
    l->s.st = &stats;
    /* its metrics are registered before the HTTP server's threads */
    backlog = wq_sched_backlog_new(&cfg, stats.reg);
    stats.stale_ns = (uint64_t)(cfg.scheduler.publish_timeout_ms
        + 2 * cfg.scheduler.poll_interval_ms + 60000) * 1000000u;
    if (wq_sched_stats_serve(&stats, cfg.metrics.listen, &port, err,
        sizeof err) != 0) {
        wq_log_error(COMPONENT, "metrics.listen: %s", err);
        goto out_stats;
    }
    if (port > 0)
        wq_log_info(COMPONENT, "serving /healthz and /metrics on port %d",
            port);
    if (wq_sched_hooks_new(&cfg, &stats, &l->s.hooks, err, sizeof err) != 0) {
        wq_log_error(COMPONENT, "completion hooks: %s", err);
        status = EXIT_SOFTWARE;
        goto out_stats;
    }

    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    id = xasprintf("workq-scheduler-%s-%ld", host, (long)getpid());
    l->s.broker = wq_broker_new(&cfg, id);
    l->s.retention = wq_sched_retention_new(&cfg);
    wq_log_info(COMPONENT, "scheduler %s %s on %s: batch %d, poll "
        "interval %lld ms, %zu periodic entr%s", id, WQ_VERSION,
        wq_transport_kind_name(cfg.transport),
        l->s.batch, (long long)cfg.scheduler.poll_interval_ms,
        cfg.periodic.n, cfg.periodic.n == 1 ? "y" : "ies");
    wq_reconnect_init(&l->store_retry, BACKOFF_MIN_MS, BACKOFF_MAX_MS,
        WQ_JITTER_EQUAL);
    {
        char berr[WQ_ERRLEN];

        if (wq_broker_ready(l->s.broker, berr, sizeof berr) != 0)
            wq_log_warn(COMPONENT, "broker: %s (retrying)", berr);
        wq_metric_set(stats.broker_up, wq_broker_is_up(l->s.broker));
    }

    if (wq_sched_hooks_start(l->s.hooks, err, sizeof err) != 0) {
        wq_log_error(COMPONENT, "%s", err);
        wq_daemon_request_stop();
        hooks_failed = 1;
    }

    run(l);

    wq_log_info(COMPONENT, "stopping");
    wq_daemon_notify_stopping();
    /* the hooks' thread finishes its round (at most hooks.timeout) */
    wq_sched_hooks_free(l->s.hooks);
    l->s.hooks = NULL;
    wq_broker_free(l->s.broker, l->s.publish_timeout_ms);
    wq_store_close(l->s.store);
    wq_sched_retention_free(l->s.retention);
    wq_buf_free(&l->s.buf);
    wq_log_info(COMPONENT, "stopped");
    status = hooks_failed ? EXIT_SOFTWARE : 0;
out_stats:
    wq_sched_backlog_free(backlog);
    if (status != 0)
        wq_sched_hooks_free(l->s.hooks);
    wq_sched_stats_free(&stats);
out_periodic:
    wq_sched_periodic_free(l->s.periodic);
out_cfg:
    free(l);
    free(id);
    wq_config_free(&cfg);
    return status;
}

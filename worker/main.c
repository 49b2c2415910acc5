/*
 * worker/main.c - workq-worker: flags, configuration, signals and the
 * process's life around the consumer loop (consumer.c).
 *
 * Threads: this main thread only waits for signals (daemon.h's
 * self-pipe) and for the consumer thread to end; the consumer thread owns
 * the broker and its PostgreSQL connection; the lease thread (worker_lease.c)
 * renews leases on a connection of its own; handler threads (pool.c) run
 * tasks; libmicrohttpd serves /healthz and /metrics on its own thread.
 *
 * Shutdown, the order of STYLE.md habit 10: SIGTERM (or SIGINT) asks the
 * consumer to drain (it stops taking deliveries, sends STOPPING=1, lets
 * running tasks finish within worker.drain_timeout, records and acks
 * them, closes the broker in the library's order, closes its store); a
 * second one means now.  Then the lease thread marks the worker stopped
 * and closes its connection, the handler threads are joined, plugins
 * unloaded, and the process exits 0.  SIGHUP reopens the log file.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "config.h"
#include "consumer.h"
#include "daemon.h"
#include "flow_control.h"
#include "envelope.h"
#include "handler.h"
#include "worker_lease.h"
#include "log.h"
#include "worker_stats.h"
#include "progress.h"

/* sysexits.h codes, as the CLI uses them */
#define EXIT_USAGE    64
#define EXIT_SOFTWARE 70
#define EXIT_CONFIG   78

static const char help_text[] =
    "NAME\n"
    "    workq-worker - run workq tasks: consume, claim, run, record, ack\n"
    "\n"
    "SYNOPSIS\n"
    "    workq-worker [-c PATH] [-q QUEUE]... [-n N] [-i ID]\n"
    "    workq-worker --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    Takes tasks of one or more queues off Kafka or RabbitMQ (config\n"
    "    `transport`), claims them in PostgreSQL under a lease so that\n"
    "    each idempotency key runs to one committed outcome, runs them\n"
    "    with the handler configured for their type (built-in, a program\n"
    "    per task, a pool of long-lived programs, a plugin, or an HTTPS\n"
    "    POST to a service), records the outcome (success with its result,\n"
    "    or failure with the next attempt's time from the queue's backoff,\n"
    "    or dead) and only then acks the message.  Claims and records travel\n"
    "    in batches, one round trip each.  Many workers may share a queue.\n"
    "\n"
    "    A running task can report progress: an exec program writes lines\n"
    "    \"PERCENT [MESSAGE]\" on descriptor 3 (WORKQ_PROGRESS_FD), a\n"
    "    process handler calls task.progress(), a plugin host->progress().\n"
    "    The latest report is written to the task's row at most once a\n"
    "    second; `workq status` and GET /v1/tasks/ID show it.  Every log\n"
    "    line about a task carries task=ID and, when the task has one, its\n"
    "    W3C traceparent, which exec programs also get as TRACEPARENT.\n"
    "\n"
    "OPTIONS\n"
    "    -c, --config PATH     configuration file (default "
    WQ_SYSCONFDIR "/workq/workq.conf;\n"
    "                          without it, defaults and WORKQ_* variables)\n"
    "    -q, --queue QUEUE     consume QUEUE instead of worker.queues; give\n"
    "                          it again, or \"a,b\", for several\n"
    "    -n, --concurrency N   handler slots: tasks run at once\n"
    "                          (worker.concurrency)\n"
    "    -i, --id ID           this worker's name in PostgreSQL (worker.id;\n"
    "                          default hostname-pid); must be unique\n"
    "    -h, --help            this page\n"
    "    -V, --version         print the version\n"
    "\n"
    "CONFIGURATION\n"
    "    The keys that matter here: transport, kafka.*, rabbitmq.*,\n"
    "    postgres.*, worker.* (queues, concurrency, lease, drain_timeout,\n"
    "    id, batch_max, claim_after, batch_wait, builtin_handlers,\n"
    "    priority_weight_*),\n"
    "    handlers (type -> builtin, exec, process, plugin or http),\n"
    "    queue_policies (backoff per queue),\n"
    "    rate_limits (tasks a second of a queue or type, across all\n"
    "    workers), metrics.listen (/healthz and /metrics; empty: off),\n"
    "    log.*.  Every key is documented in the example workq.conf;\n"
    "    `workq config` prints them.\n"
    "\n"
    "FLOW CONTROL\n"
    "    A task of a queue or type with a rate limit, or with a\n"
    "    concurrency key (workq submit --concurrency-key), is admitted in\n"
    "    PostgreSQL before its claim; one that may not start yet stays\n"
    "    unclaimed in the worker, unacked, and asks again later: not\n"
    "    lost, no attempt counted (workq_worker_flow_waits_total).\n"
    "\n"
    "PRIORITIES\n"
    "    For each queue Q the worker consumes three bands, Q.priority-high,\n"
    "    Q and Q.priority-low (workq submit --priority), and declares them\n"
    "    at start.  When more tasks wait than slots are free it claims\n"
    "    them in weighted rounds, worker.priority_weight_high, _normal and\n"
    "    _low (default 6, 3, 1): high first, low still progresses.\n"
    "\n"
    "SIGNALS\n"
    "    SIGTERM, SIGINT  stop taking tasks, let running ones finish within\n"
    "                     worker.drain_timeout, record and ack them, close\n"
    "                     the stdin of process handlers' programs (SIGKILL\n"
    "                     kill_grace later), exit 0;\n"
    "                     tasks still running then are stopped and left to\n"
    "                     lease expiry.  A second one: stop now.  A stop\n"
    "                     never takes longer than drain_timeout + 10 s (10 s\n"
    "                     after a second signal), whatever blocks.\n"
    "    NOTIFY workq_cancel, '<task id>' (PostgreSQL; `workq cancel`)\n"
    "                     stops that task if this worker runs it (exec:\n"
    "                     SIGTERM to its process group, SIGKILL after\n"
    "                     kill_grace; process: a cancel frame; plugin:\n"
    "                     host->cancelled() turns 1) and records it\n"
    "                     cancelled, once.\n"
    "    SIGHUP           reopen log.file (after rotation).\n"
    "\n"
    "SYSTEMD\n"
    "    Type=notify: READY=1 when the loop starts, STATUS= with in-flight,\n"
    "    done and failed counts, WATCHDOG=1 while the loop turns (set\n"
    "    WatchdogSec=), STOPPING=1 when a stop begins.\n"
    "\n"
    "PROCESS HANDLERS\n"
    "    A handler of kind process starts `processes` programs with the\n"
    "    worker and feeds each up to `max_in_flight` tasks at once as JSON\n"
    "    lines on stdin, answers on stdout (docs/handler-protocol.md;\n"
    "    libraries for Python and Node.js in worker/handlers/).  A program\n"
    "    that exits, breaks the protocol or overruns a task's timeout is\n"
    "    killed with its process group and restarted with backoff; its\n"
    "    tasks fail as attempts with the reason.  Five quick failures in a\n"
    "    row: crash-looping, /healthz 503, metric\n"
    "    workq_worker_process_crashloop.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 stopped cleanly (also after abandoning tasks at the deadline);\n"
    "    64 usage error; 70 internal error; 78 configuration error.  A\n"
    "    broker or PostgreSQL that is down is waited for, never an exit.\n"
    "\n"
    "ENVIRONMENT\n"
    "    WORKQ_<GROUP>_<KEY> overrides any configuration key, e.g.\n"
    "    WORKQ_WORKER_QUEUES=mail,sms, WORKQ_POSTGRES_CONNINFO;\n"
    "    NOTIFY_SOCKET and WATCHDOG_USEC come from systemd.\n";

struct opts {
    const char *config;
    char **queues;
    size_t nqueues;
    int concurrency;
    const char *id;
};

static int
parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "queue", required_argument, NULL, 'q' },
        { "concurrency", required_argument, NULL, 'n' },
        { "id", required_argument, NULL, 'i' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    char *end, *s, *save, *tok;
    long v;
    int ch;

    while ((ch = getopt_long(argc, argv, "c:q:n:i:hV", longopts, NULL))
        != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case 'q':
            s = xstrdup(optarg);
            for (tok = strtok_r(s, ",", &save); tok != NULL;
                tok = strtok_r(NULL, ",", &save)) {
                o->queues = xreallocarray(o->queues, o->nqueues + 2,
                    sizeof *o->queues);
                o->queues[o->nqueues++] = xstrdup(tok);
                o->queues[o->nqueues] = NULL;
            }
            free(s);
            break;
        case 'n':
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || v < 1 || v > 4096) {
                fprintf(stderr, "workq-worker: --concurrency wants 1..4096, "
                    "not \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            o->concurrency = (int)v;
            break;
        case 'i':
            o->id = optarg;
            break;
        case 'h':
            fputs(help_text, stdout);
            return -1;
        case 'V':
            printf("workq-worker %s\n", WQ_VERSION);
            return -1;
        default:
            fputs("usage: workq-worker [-c PATH] [-q QUEUE]... [-n N] "
                "[-i ID]; --help for more\n", stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "workq-worker: unexpected argument \"%s\"\n",
            argv[optind]);
        return EXIT_USAGE;
    }
    return 0;
}

/* The consumer threads: one per transport handle (consumer.h). */
struct runner {
    wq_consumer *consumer;
    pthread_t thread;
    int started;
    int done_fd;                /* eventfd, shared: a thread ended */
    int abandoned;
};

static atomic_int ready_sent;

static void
on_ready(void *arg)
{
    (void)arg;
    if (atomic_exchange(&ready_sent, 1) == 0)
        wq_daemon_notify_ready("starting: connecting to the broker and "
            "PostgreSQL");
}

static void *
run_consumer(void *arg)
{
    struct runner *r = arg;
    uint64_t one = 1;

    r->abandoned = wq_consumer_run(r->consumer, on_ready, NULL);
    if (write(r->done_fd, &one, sizeof one) < 0)
        (void)0;
    return NULL;
}

/*
 * Waits for signals until the consumer thread ends.  A stop is bounded:
 * the drain, then CLOSE_GRACE_MS for the last records and the broker's
 * close; a second stop signal leaves NOW_GRACE_MS.  A library that blocks
 * longer (librdkafka's synchronous commit and group leave wait for a
 * coordinator that may be gone) is not waited for: the process exits.
 * Every outcome recorded is committed by then; acks that did not go out
 * only make the broker redeliver, and the claim absorbs that.
 */
/* consumer.c's FINAL_RECORD_MS + CLOSE_TIMEOUT_MS; with the default drain
 * of 30 s it stays inside the unit's TimeoutStopSec=45s */
#define CLOSE_GRACE_MS 10000
#define NOW_GRACE_MS   10000

/*
 * The systemd watchdog is fed from here, and only while every consumer
 * loop has gone round within half the watchdog period: the loops wake at
 * least every third of it, so one that is stuck (in a library call that
 * does not return) stops the pings, and systemd restarts the worker.
 */
static void
feed_watchdog(struct wq_worker_stats *st, uint64_t usec, uint64_t *last)
{
    uint64_t now = wq_clock_mono_ns();

    if (usec == 0 || now - *last < usec * 1000 / 3)
        return;
    if (now - wq_worker_stats_oldest_turn(st) < usec * 1000 / 2) {
        wq_daemon_notify_watchdog();
        *last = now;
    }
}

static void
wait_for_end(struct runner *r, size_t nr, int done_fd, int64_t drain_ms,
    struct wq_worker_stats *st, uint64_t wd_usec)
{
    struct pollfd pfd[2];
    int stops_seen = 0, wait;
    uint64_t deadline = 0, ended = 0, v, wd_last = 0;
    char err[WQ_ERRLEN];

    pfd[0].fd = wq_daemon_wakeup_fd();
    pfd[0].events = POLLIN;
    pfd[1].fd = done_fd;
    pfd[1].events = POLLIN;
    for (;;) {
        int stops;

        wait = deadline != 0 ? wq_clock_ms_until(deadline) + 1 : -1;
        if (wd_usec > 0 && (wait < 0 || wait > (int)(wd_usec / 6000)))
            wait = (int)(wd_usec / 6000);
        if (poll(pfd, 2, wait) < 0 && errno != EINTR) {
            wq_log_error("main", "poll: %s", strerror(errno));
            sleep(1);
        }
        feed_watchdog(st, wd_usec, &wd_last);
        if (pfd[1].revents != 0 && read(done_fd, &v, sizeof v) == sizeof v
            && (ended += v) >= nr)
            return;
        if (deadline != 0 && wq_clock_mono_ns() >= deadline) {
            wq_log_error("main", "the stop did not finish in time (a broker "
                "or PostgreSQL call blocks); exiting without it");
            wq_daemon_notify_stopping();
            fflush(NULL);
            _exit(0);
        }
        wq_daemon_drain_wakeup();
        stops = wq_daemon_stop_requested();
        if (stops > stops_seen) {
            wq_log_info("main", "%s: %s", stops == 1 ? "stop requested"
                : "second stop signal", stops == 1 ? "draining"
                : "stopping now");
            for (size_t i = 0; i < nr; i++)
                wq_consumer_stop(r[i].consumer, stops > 1);
            stops_seen = stops;
            {
                uint64_t now = wq_clock_mono_ns(), d = now
                    + (uint64_t)(stops > 1 ? NOW_GRACE_MS : drain_ms
                    + CLOSE_GRACE_MS) * 1000000u;

                if (deadline == 0 || d < deadline)
                    deadline = d;
            }
        }
        if (wq_daemon_reload_requested() && wq_log_reopen() != 0) {
            snprintf(err, sizeof err, "cannot reopen the log file");
            wq_log_error("main", "%s", err);
        }
    }
}

/* "hostname-pid" */
static char *
default_id(void)
{
    char host[HOST_NAME_MAX + 1];

    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    return xasprintf("%s-%ld", host, (long)getpid());
}

int
main(int argc, char **argv)
{
    static char cerr[WQ_CONFIG_ERRLEN];
    struct wq_config cfg;
    struct wq_consumer_conf cc;
    struct wq_worker_info info;
    struct wq_store_opts so;
    struct opts o;
    struct runner *r = NULL;
    size_t nr = 0;
    atomic_size_t busy;
    wq_pool *pool = NULL;
    int done_fd = -1, abandoned = 0;
    struct wq_worker_stats stats;
    wq_handlers *handlers = NULL;
    wq_worker_lease *lease = NULL;
    char err[WQ_ERRLEN], host[HOST_NAME_MAX + 1], *id = NULL;
    const char *const *queues;
    const struct wq_transport_backend *backend;
    size_t nqueues;
    int rc, port, status = EXIT_CONFIG;

    memset(&o, 0, sizeof o);
    atomic_init(&busy, 0);
    memset(&cfg, 0, sizeof cfg);
    memset(&stats, 0, sizeof stats);
    if ((rc = parse_args(argc, argv, &o)) != 0) {
        status = rc < 0 ? 0 : rc;
        goto out_args;
    }
    if (wq_config_load(o.config, &cfg, cerr, sizeof cerr) != 0) {
        fprintf(stderr, "workq-worker: configuration rejected:\n%s\n", cerr);
        goto out_args;
    }
    if (o.concurrency > 0)
        cfg.worker.concurrency = o.concurrency;
    id = xstrdup(o.id != NULL ? o.id : cfg.worker.id);
    if (id[0] == '\0') {
        free(id);
        id = default_id();
    }
    free(cfg.worker.id);
    cfg.worker.id = xstrdup(id);
    queues = o.nqueues > 0 ? (const char *const *)o.queues
        : (const char *const *)cfg.worker.queues.v;
    nqueues = o.nqueues > 0 ? o.nqueues : cfg.worker.queues.n;
    for (size_t i = 0; i < nqueues; i++)
        if (wq_queue_name_valid(queues[i], err, sizeof err) != 0) {
            fprintf(stderr, "workq-worker: queue \"%s\": %s\n", queues[i],
                err);
            goto out_cfg;
        }
    if (wq_config_setup_log(&cfg, "workq-worker", err, sizeof err) != 0)
        fprintf(stderr, "workq-worker: %s\n", err);
    if (wq_daemon_signals_init(err, sizeof err) != 0) {
        wq_log_error("main", "%s", err);
        status = EXIT_SOFTWARE;
        goto out_cfg;
    }
    if (wq_handlers_new(&cfg, &handlers, cerr, sizeof cerr) != 0) {
        fprintf(stderr, "workq-worker: handlers rejected:\n%s\n", cerr);
        goto out_cfg;
    }
    if (wq_flow_check_config(&cfg, cerr, sizeof cerr) != 0) {
        fprintf(stderr, "workq-worker: %s\n", cerr);
        wq_handlers_free(handlers);
        goto out_cfg;
    }

    wq_worker_stats_init(&stats);
    /* the process handlers' programs start now, so that a crash loop
     * shows on /healthz before any task comes */
    if (wq_handlers_start(handlers, stats.reg, id, err, sizeof err) != 0) {
        wq_log_error("main", "handlers: %s", err);
        status = EXIT_SOFTWARE;
        goto out_handlers;
    }
    stats.extra_why = wq_handlers_unhealthy;
    stats.extra_user = handlers;
    if (wq_worker_stats_serve(&stats, cfg.metrics.listen, &port, err,
        sizeof err) != 0) {
        wq_log_error("main", "metrics.listen: %s", err);
        goto out_handlers;
    }
    if (port > 0)
        wq_log_info("main", "serving /healthz and /metrics on port %d", port);

    memset(&cc, 0, sizeof cc);
    if (wq_config_transport_conf(&cfg, &cc.tconf, err, sizeof err) != 0) {
        wq_log_error("main", "%s", err);
        goto out_stats;
    }
    cc.tconf.client_id = id;
    /* Kafka: while another band waits, a band's backlog holds at most
     * the slots and half a batch, so other bands' deliveries still reach
     * the worker (priority.h; transport_kafka.c, struct topic_hold) */
    cc.tconf.kafka_topic_hold_max = cfg.worker.concurrency
        + (cfg.worker.batch_max + 1) / 2;
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    memset(&info, 0, sizeof info);
    info.id = id;
    info.hostname = host;
    info.version = WQ_VERSION;
    info.pid = (int)getpid();
    info.queues = queues;
    info.nqueues = nqueues;
    wq_config_store_opts(&cfg, &so);
    if (wq_worker_lease_start(&info, &so, cfg.worker.lease_ms, &lease, err,
        sizeof err) != 0) {
        wq_log_error("main", "%s", err);
        status = EXIT_SOFTWARE;
        goto out_stats;
    }

    wq_progress_set_metrics(wq_worker_lease_progress(lease),
        stats.progress_reports, stats.progress_writes);

    cc.cfg = &cfg;
    cc.worker_id = id;
    cc.queues = queues;
    cc.nqueues = nqueues;
    cc.concurrency = cfg.worker.concurrency;
    cc.lease_ms = cfg.worker.lease_ms;
    cc.drain_timeout_ms = cfg.worker.drain_timeout_ms;
    cc.batch_max = cfg.worker.batch_max;
    cc.claim_after_ms = cfg.worker.claim_after_ms;
    cc.batch_wait_ms = cfg.worker.batch_wait_ms;
    cc.handlers = handlers;
    cc.lease = lease;
    cc.stats = &stats;
    cc.watchdog_usec = wq_daemon_watchdog_usec();
    backend = wq_transport_backend(cfg.transport);
    if (backend->check_worker != NULL)
        backend->check_worker(&cfg);
    wq_log_info("main", "worker %s %s: %zu queue(s) on %s, concurrency %d, "
        "lease %lld ms", id, WQ_VERSION, nqueues,
        wq_transport_kind_name(cfg.transport), cfg.worker.concurrency,
        (long long)cfg.worker.lease_ms);

    /* A consumer per queue where the backend says so (Kafka: a group
     * "workq.<queue>" each), else one consumer, one subscription per
     * queue (RabbitMQ: a basic.consume each).  The slots are shared. */
    pool = wq_pool_new((size_t)cfg.worker.concurrency, 0,
        wq_consumer_run_task, NULL);
    cc.pool = pool;
    cc.busy = &busy;
    nr = backend->consumer_per_queue ? nqueues : 1;
    if (nr > WQ_STATS_LOOPS) {
        wq_log_error("main", "at most %d queues per %s worker, not %zu",
            WQ_STATS_LOOPS, wq_transport_kind_name(cfg.transport), nr);
        nr = 0;
        goto out_runners;
    }
    r = xcalloc(nr, sizeof *r);
    if ((done_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
        wq_log_error("main", "eventfd: %s", strerror(errno));
        status = EXIT_SOFTWARE;
        goto out_runners;
    }
    for (size_t i = 0; i < nr; i++) {
        struct wq_consumer_conf one = cc;

        if (nr > 1) {
            one.queues = &queues[i];
            one.nqueues = 1;
        }
        r[i].consumer = wq_consumer_new(&one);
        r[i].done_fd = done_fd;
        if ((rc = pthread_create(&r[i].thread, NULL, run_consumer, &r[i]))
            != 0) {
            wq_log_error("main", "cannot start a consumer thread: %s",
                strerror(rc));
            status = EXIT_SOFTWARE;
            for (size_t j = 0; j < i; j++)
                wq_consumer_stop(r[j].consumer, 1);
            nr = i + 1;     /* r[i] made, not started */
            break;
        }
        r[i].started = 1;
    }
    if (status != EXIT_SOFTWARE)
        wait_for_end(r, nr, done_fd, cfg.worker.drain_timeout_ms, &stats,
            cc.watchdog_usec);
    for (size_t i = 0; i < nr; i++)
        if (r[i].started) {
            pthread_join(r[i].thread, NULL);
            abandoned += r[i].abandoned;
        }
    if (status != EXIT_SOFTWARE)
        status = 0;
    if (abandoned > 0 || wq_pool_stop(pool, 1000) != 0) {
        /* Handler threads may still be inside a plugin, using the
         * consumer, the metrics, the configuration: leave all of it to
         * the exit, without atexit handlers running under them. */
        wq_worker_lease_stop(lease, 1);
        if (stats.http != NULL)
            wq_http_stop(stats.http);
        wq_log_info("main", "stopped; %d task(s) left to lease expiry",
            abandoned);
        fflush(NULL);
        _exit(status);
    }
    wq_pool_free(pool);
    pool = NULL;
    wq_worker_lease_stop(lease, 1);
    lease = NULL;
    if (status == 0)
        wq_log_info("main", "stopped");

out_runners:
    for (size_t i = 0; i < nr; i++)
        wq_consumer_free(r[i].consumer);
    free(r);
    if (done_fd >= 0)
        close(done_fd);
    if (pool != NULL && wq_pool_stop(pool, 1000) == 0)
        wq_pool_free(pool);
    wq_worker_lease_stop(lease, 0);
out_handlers:
    /* /healthz asks the handlers: the server stops first */
    if (stats.http != NULL)
        wq_http_stop(stats.http);
    stats.http = NULL;
    wq_handlers_free(handlers);
out_stats:
    wq_worker_stats_free(&stats);
out_cfg:
    free(id);
    wq_config_free(&cfg);
out_args:
    for (size_t i = 0; i < o.nqueues; i++)
        free(o.queues[i]);
    free(o.queues);
    return status;
}

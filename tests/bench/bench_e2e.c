/*
 * bench_e2e.c - the end-to-end benchmark of workq on one machine: the
 * broker's own ceiling, then workq's throughput and latency on the same
 * broker with real workq-worker processes and PostgreSQL, the workers'
 * memory at load and their CPU at idle.  tests/bench/bench_e2e.sh runs
 * it for both transports against a durable PostgreSQL of its own.
 *
 *   bench_e2e KIND CONNINFO [options]
 *     KIND        kafka | rabbitmq (the private brokers of tests/services)
 *     CONNINFO    a PostgreSQL database, migrated here
 *     -n N        tasks of the throughput run (default 100000)
 *     -w W        workers (default 2)
 *     -c C        worker.concurrency (default 256)
 *     -r R        tasks/s of the latency run (default 2000)
 *     -s S        seconds of the latency run (default 10)
 *     -i S        seconds of the idle CPU sample (default 10)
 *     -C          submit runs 2 and 3 through the C client (workq.h), as
 *                 a user's program does: with receipts (producer.receipts)
 *                 in PostgreSQL, and a workq-scheduler that sweeps them;
 *                 without -C the tasks go straight to the transport
 *
 * 1. Ceiling: one client publishes N messages of the size of a noop
 *    envelope with broker confirms while another consumes them with acks
 *    (the transport API: the same librdkafka/rabbitmq-c code and batching
 *    workq uses; no PostgreSQL, no handler).
 * 2. Throughput: W workers wait on a fresh queue; N noop tasks are
 *    published as fast as the broker confirms them; the time from the
 *    first task's creation to the last commit of an outcome (PostgreSQL's
 *    own timestamps) gives tasks/s.
 * 3. Latency below saturation: R tasks/s for S seconds, paced; p50 and
 *    p99 of finished_at - created_at.  finished_at is now() of the
 *    recording transaction, which commits a little later (the worker's
 *    workq_worker_record_seconds shows by how much).
 * 4. Memory: the workers' peak RSS (VmHWM) after the runs.  Idle CPU: the
 *    workers' CPU time over I seconds with nothing to do.
 *
 * The broker settings are durable ones: RabbitMQ classic durable queues
 * with persistent messages and publisher confirms; Kafka acks=all with
 * the idempotent producer.  PostgreSQL is whatever CONNINFO points to
 * (the script's has fsync, synchronous_commit and full_page_writes on).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "wq_test_broker.h"
#include "clock.h"
#include "envelope.h"
#include "migrate.h"
#include "store.h"
#include "transport.h"
#include "workq.h"

#define KAFKA_BROKERS "127.0.0.1:59092"
#define AMQP_URL      "amqp://guest:guest@127.0.0.1:55672"
#define MAX_WORKERS   8

static int kind;
static const char *conninfo;
static long n_tasks = 100000, rate = 2000, lat_s = 10, idle_s = 10;
static int nworkers = 2, concurrency = 256;

static pid_t workers[MAX_WORKERS];

static void WQ_PRINTFLIKE(1, 2)
die(const char *fmt, ...)
{
    va_list ap;

    for (int i = 0; i < MAX_WORKERS; i++)
        if (workers[i] > 0)
            kill(workers[i], SIGTERM);

    va_start(ap, fmt);
    fputs("bench_e2e: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double
now_s(void)
{
    return (double)wq_clock_mono_ns() / 1e9;
}

static const char *
kind_name(void)
{
    return kind == WQ_TRANSPORT_KAFKA ? "kafka" : "rabbitmq";
}

static void
tconf(struct wq_transport_conf *tc)
{
    memset(tc, 0, sizeof *tc);
    tc->kind = (enum wq_transport_kind)kind;
    tc->client_id = "bench";
    tc->kafka_brokers = KAFKA_BROKERS;
    tc->kafka_partitions = 4;
    tc->kafka_replication = 1;
    tc->kafka_linger_ms = 1;
    tc->kafka_session_timeout_ms = 6000;
    tc->amqp_url = AMQP_URL;
    tc->amqp_quorum = 0;            /* classic durable queues */
    tc->amqp_prefetch = 2000;
    tc->amqp_heartbeat_s = 0;
}

static wq_transport *
topen(const char *queue)
{
    struct wq_transport_conf tc;
    wq_transport *t;
    char err[WQ_ERRLEN];

    tconf(&tc);
    if (wq_transport_open(&tc, &t, err, sizeof err) != 0)
        die("%s: %s", kind_name(), err);
    if (queue != NULL && wq_transport_declare(t, queue, err, sizeof err) != 0)
        die("declare %s: %s", queue, err);
    return t;
}

/* ---- 1. the broker's ceiling -------------------------------------------- */

struct ceil_consumer {
    const char *queue;
    long want, got;
    double end;
    pthread_t th;
};

static void *
ceil_consume(void *arg)
{
    struct ceil_consumer *c = arg;
    wq_transport *t = topen(NULL);
    char err[WQ_ERRLEN];
    wq_delivery *d;

    if (wq_transport_subscribe(t, &c->queue, 1, err, sizeof err) != 0)
        die("subscribe: %s", err);
    while (c->got < c->want) {
        int rc = wq_transport_poll(t, &d, 1000, err, sizeof err);

        if (rc == WQ_EAGAIN)
            continue;
        if (rc != 0)
            die("poll: %s", err);
        if (wq_transport_ack(t, d, err, sizeof err) != 0)
            die("ack: %s", err);
        c->got++;
    }
    c->end = now_s();
    wq_transport_close(t, 10000);
    return NULL;
}

static double
ceiling(size_t size)
{
    char queue[64], err[WQ_ERRLEN], key[32], *body = malloc(size);
    struct ceil_consumer c;
    wq_transport *t;
    double start;

    snprintf(queue, sizeof queue, "bench-ceil-%ld", (long)getpid());
    t = topen(queue);
    memset(body, 'x', size);
    memset(&c, 0, sizeof c);
    c.queue = queue;
    c.want = n_tasks;
    pthread_create(&c.th, NULL, ceil_consume, &c);
    sleep(kind == WQ_TRANSPORT_KAFKA ? 4 : 1);      /* group join */
    start = now_s();
    for (long i = 0; i < n_tasks; i++) {
        snprintf(key, sizeof key, "k%ld", i);
        if (wq_transport_publish(t, queue, key, strlen(key), body, size,
            NULL, err, sizeof err) != 0)
            die("publish: %s", err);
    }
    if (wq_transport_flush(t, 120000, err, sizeof err) != 0)
        die("flush: %s", err);
    printf("  ceiling: published %ld in %.2f s (%.0f/s)\n", n_tasks,
        now_s() - start, (double)n_tasks / (now_s() - start));
    pthread_join(c.th, NULL);
    wq_transport_close(t, 10000);
    wq_test_delete_queue(kind, queue);
    free(body);
    return (double)n_tasks / (c.end - start);
}

/* ---- workers ------------------------------------------------------------ */

static void
start_workers(const char *queue)
{
    const char *build = getenv("WORKQ_BUILD");
    char bin[1024], conc[32], env_ci[2048], id[64];

    snprintf(bin, sizeof bin, "%s/%s/workq-worker", WQ_SOURCE_DIR,
        build != NULL ? build : "build");
    if (build != NULL && build[0] == '/')
        snprintf(bin, sizeof bin, "%s/workq-worker", build);
    snprintf(conc, sizeof conc, "%d", concurrency);
    snprintf(env_ci, sizeof env_ci, "WORKQ_POSTGRES_CONNINFO=%s", conninfo);
    for (int i = 0; i < nworkers; i++) {
        snprintf(id, sizeof id, "bench-%s-%d", kind_name(), i);
        if ((workers[i] = fork()) == 0) {
            putenv(kind == WQ_TRANSPORT_KAFKA ? "WORKQ_TRANSPORT=kafka"
                : "WORKQ_TRANSPORT=rabbitmq");
            putenv("WORKQ_KAFKA_BROKERS=" KAFKA_BROKERS);
            putenv("WORKQ_RABBITMQ_URL=" AMQP_URL);
            putenv("WORKQ_RABBITMQ_QUEUE_TYPE=classic");
            putenv("WORKQ_RABBITMQ_PREFETCH=2000");
            putenv("WORKQ_WORKER_BATCH_MAX=1000");
            putenv("WORKQ_LOG_LEVEL=warn");
            putenv(env_ci);
            execl(bin, bin, "--queue", queue, "--concurrency", conc, "--id",
                id, (char *)NULL);
            _exit(127);
        }
    }
}

static void
stop_workers(void)
{
    for (int i = 0; i < nworkers; i++)
        kill(workers[i], SIGTERM);
    for (int i = 0; i < nworkers; i++) {
        int status;

        waitpid(workers[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fprintf(stderr, "bench_e2e: worker %d ended with status %d\n", i,
                status);
    }
}

/* A field of /proc/PID/status in kB ("VmHWM"). */
static long
proc_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    long v = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, strlen(field)) == 0
            && line[strlen(field)] == ':')
            v = strtol(line + strlen(field) + 1, NULL, 10);
    fclose(f);
    return v;
}

/* utime + stime of a process, in clock ticks. */
static long
proc_ticks(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut, st;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    if ((p = strrchr(buf, ')')) == NULL)
        return -1;
    /* fields after the name: state ppid pgrp session tty tpgid flags
     * minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
        &ut, &st) != 2)
        return -1;
    return (long)(ut + st);
}

/* ---- PostgreSQL --------------------------------------------------------- */

static PGconn *db;

static double
qnum(const char *sql)
{
    PGresult *r = PQexec(db, sql);
    double v;

    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        die("%s: %s", sql, PQerrorMessage(db));
    v = PQgetisnull(r, 0, 0) ? -1 : strtod(PQgetvalue(r, 0, 0), NULL);
    PQclear(r);
    return v;
}

static void
wait_done(const char *where, long want, int timeout_s)
{
    char sql[512];
    double end = now_s() + timeout_s, n = 0;

    snprintf(sql, sizeof sql, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'succeeded' AND %s", where);
    while (now_s() < end) {
        if ((n = qnum(sql)) >= want)
            return;
        /* the count scans the table: keep its cost out of the figures
         * (they come from the rows' timestamps, not from this loop) */
        usleep(500000);
    }
    die("only %.0f of %ld tasks recorded after %d s", n, want, timeout_s);
}

/* ---- 2 and 3. workq ----------------------------------------------------- */

static int use_client;          /* -C */
static wq_client *client;
static pid_t scheduler_pid;

/* -C: the C client, and a scheduler that sweeps the receipts. */
static void
client_start(void)
{
    const char *build = getenv("WORKQ_BUILD");
    struct wq_client_conf conf = {
        .transport = kind_name(),
        .kafka_brokers = KAFKA_BROKERS,
        .rabbitmq_url = AMQP_URL,
        .rabbitmq_queue_type = "classic",
        .postgres_conninfo = conninfo,
        .client_id = "bench-e2e",
        .kafka_linger_ms = 1,
    };
    char err[WQ_ERRLEN], bin[1024], env_ci[2048];

    if (wq_client_open_conf(&conf, &client, err, sizeof err) != 0)
        die("client: %s", err);
    snprintf(bin, sizeof bin, "%s/%s/workq-scheduler", WQ_SOURCE_DIR,
        build != NULL ? build : "build");
    if (build != NULL && build[0] == '/')
        snprintf(bin, sizeof bin, "%s/workq-scheduler", build);
    snprintf(env_ci, sizeof env_ci, "WORKQ_POSTGRES_CONNINFO=%s", conninfo);
    if ((scheduler_pid = fork()) == 0) {
        putenv(kind == WQ_TRANSPORT_KAFKA ? "WORKQ_TRANSPORT=kafka"
            : "WORKQ_TRANSPORT=rabbitmq");
        putenv("WORKQ_KAFKA_BROKERS=" KAFKA_BROKERS);
        putenv("WORKQ_RABBITMQ_URL=" AMQP_URL);
        putenv("WORKQ_RABBITMQ_QUEUE_TYPE=classic");
        putenv("WORKQ_LOG_LEVEL=warn");
        putenv(env_ci);
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
}

static void
client_stop(void)
{
    int status;

    wq_client_free(client);
    if (scheduler_pid > 0) {
        kill(scheduler_pid, SIGTERM);
        waitpid(scheduler_pid, &status, 0);
    }
}

static void
publish_task(wq_transport *t, const char *queue, const char *key,
    struct wq_buf *buf)
{
    struct wq_envelope e;
    char err[WQ_ERRLEN];

    if (wq_envelope_init(&e, queue, "noop", key, NULL, 0, err, sizeof err)
        != 0)
        die("%s", err);
    wq_buf_reset(buf);
    if (wq_envelope_encode(&e, buf, err, sizeof err) != 0)
        die("%s", err);
    if (wq_transport_publish(t, queue, key, strlen(key), buf->data, buf->len,
        NULL, err, sizeof err) != 0)
        die("publish: %s", err);
    wq_envelope_free(&e);
}

/* Publishes "<prefix><i>" for i < n at `per_s` tasks/s (0: at once). */
static void
publish_many(wq_transport *t, const char *queue, const char *prefix, long n,
    long per_s)
{
    struct wq_buf buf = WQ_BUF_INIT;
    char key[64], err[WQ_ERRLEN];
    double start = now_s();

    if (use_client) {
        for (long i = 0; i < n; i++) {
            struct wq_client_task task = { .queue = queue, .type = "noop",
                .idempotency_key = key };

            if (per_s > 0) {
                double wait = start + (double)i / (double)per_s - now_s();

                if (wait > 0.0002)
                    usleep((useconds_t)(wait * 1e6));
            }
            snprintf(key, sizeof key, "%s%ld", prefix, i);
            if (wq_client_submit_async(client, &task, NULL, NULL, NULL, err,
                sizeof err) != 0)
                die("submit: %s", err);
        }
        if (wq_client_flush(client, 300000, err, sizeof err) != 0)
            die("flush: %s", err);
        return;
    }
    for (long i = 0; i < n; i++) {
        if (per_s > 0) {
            double due = start + (double)i / (double)per_s, wait = due
                - now_s();

            if (wait > 0.0002)
                usleep((useconds_t)(wait * 1e6));
            if (kind == WQ_TRANSPORT_RABBITMQ)
                (void)wq_transport_flush(t, 0, err, sizeof err);
        }
        snprintf(key, sizeof key, "%s%ld", prefix, i);
        publish_task(t, queue, key, &buf);
    }
    if (wq_transport_flush(t, 300000, err, sizeof err) != 0)
        die("flush: %s", err);
    wq_buf_free(&buf);
}

static size_t
envelope_size(void)
{
    struct wq_buf buf = WQ_BUF_INIT;
    struct wq_envelope e;
    char err[WQ_ERRLEN];
    size_t n;

    wq_envelope_init(&e, "bench-e2e-12345", "noop", "t12345", NULL, 0, err,
        sizeof err);
    if (wq_envelope_encode(&e, &buf, err, sizeof err) != 0)
        die("%s", err);
    n = buf.len;
    wq_envelope_free(&e);
    wq_buf_free(&buf);
    return n;
}

int
main(int argc, char **argv)
{
    char queue[64], err[WQ_ERRLEN], sql[1024];
    double ceil_rate, tput, p50, p99, p50l, span;
    long rss_kb = 0, ticks0[MAX_WORKERS], idle_ticks = 0;
    wq_transport *t;
    wq_store *s;
    int opt;

    if (argc < 3)
        die("usage: bench_e2e kafka|rabbitmq CONNINFO [-n N] [-w W] [-c C] "
            "[-r R] [-s S] [-i S]");
    kind = strcmp(argv[1], "kafka") == 0 ? WQ_TRANSPORT_KAFKA
        : WQ_TRANSPORT_RABBITMQ;
    conninfo = argv[2];
    optind = 3;
    while ((opt = getopt(argc, argv, "n:w:c:r:s:i:C")) != -1) {
        switch (opt) {
        case 'n': n_tasks = atol(optarg); break;
        case 'w': nworkers = atoi(optarg); break;
        case 'c': concurrency = atoi(optarg); break;
        case 'r': rate = atol(optarg); break;
        case 's': lat_s = atol(optarg); break;
        case 'i': idle_s = atol(optarg); break;
        case 'C': use_client = 1; break;
        default: die("bad option");
        }
    }
    if (nworkers < 1 || nworkers > MAX_WORKERS)
        die("1..%d workers", MAX_WORKERS);
    signal(SIGPIPE, SIG_IGN);
    if (wq_store_open(conninfo, NULL, &s, err, sizeof err) != 0
        || wq_migrate_run(s, NULL, NULL, err, sizeof err) != 0)
        die("%s", err);
    wq_store_close(s);
    if ((db = PQconnectdb(conninfo)) == NULL || PQstatus(db) != CONNECTION_OK)
        die("%s", PQerrorMessage(db));
    PQclear(PQexec(db, "TRUNCATE workq.tasks, workq.attempts, "
        "workq.workers, workq.accepted, workq.accepted_runs"));
    printf("%s: %ld tasks, %d worker(s) x concurrency %d, envelope %zu "
        "bytes\n", kind_name(), n_tasks, nworkers, concurrency,
        envelope_size());
    {
        PGresult *r = PQexec(db, "SELECT current_setting('fsync'), "
            "current_setting('synchronous_commit'), "
            "current_setting('full_page_writes')");

        printf("  PostgreSQL: fsync=%s synchronous_commit=%s "
            "full_page_writes=%s\n", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
            PQgetvalue(r, 0, 2));
        PQclear(r);
    }

    /* 1 (-n 0: only the latency run) */
    ceil_rate = n_tasks > 0 ? ceiling(envelope_size()) : 1;
    printf("  ceiling: %.0f msg/s (publish with confirms + consume with acks)"
        "\n", ceil_rate);

    /* 2 */
    snprintf(queue, sizeof queue, "bench-e2e-%ld", (long)getpid());
    t = topen(queue);
    if (use_client)
        client_start();
    start_workers(queue);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM workq.workers");
    for (int i = 0; i < 100 && qnum(sql) < nworkers; i++)
        usleep(100000);
    publish_many(t, queue, "warm", 100, 0);
    wait_done("idempotency_key LIKE 'warm%'", 100, 60);
    sleep(kind == WQ_TRANSPORT_KAFKA ? 3 : 1);
    publish_many(t, queue, "t", n_tasks, 0);
    wait_done("idempotency_key LIKE 't%'", n_tasks, 900);
    span = n_tasks > 0 ? qnum("SELECT extract(epoch FROM max(finished_at) - "
        "min(created_at)) FROM workq.tasks WHERE idempotency_key LIKE 't%'")
        : 1;
    tput = (double)n_tasks / span;
    for (int i = 0; i < nworkers; i++) {
        long kb = proc_kb(workers[i], "VmHWM");

        if (kb > rss_kb)
            rss_kb = kb;
    }
    printf("  workq: %ld tasks in %.2f s: %.0f tasks/s = %.0f%% of the "
        "ceiling\n", n_tasks, span, tput, 100.0 * tput / ceil_rate);
    if (n_tasks > 0)
        printf("  workq: %.0f record transactions (%.1f tasks each)\n",
            qnum("SELECT count(DISTINCT finished_at) FROM workq.tasks WHERE "
            "idempotency_key LIKE 't%'"), (double)n_tasks / qnum("SELECT "
            "count(DISTINCT finished_at) FROM workq.tasks WHERE "
            "idempotency_key LIKE 't%'"));

    /* 3 */
    publish_many(t, queue, "l", rate * lat_s, rate);
    wait_done("idempotency_key LIKE 'l%'", rate * lat_s, 300);
    p50 = qnum("SELECT 1000 * extract(epoch FROM percentile_cont(0.5) WITHIN "
        "GROUP (ORDER BY finished_at - created_at)) FROM workq.tasks WHERE "
        "idempotency_key LIKE 'l%'");
    p99 = qnum("SELECT 1000 * extract(epoch FROM percentile_cont(0.99) "
        "WITHIN GROUP (ORDER BY finished_at - created_at)) FROM workq.tasks "
        "WHERE idempotency_key LIKE 'l%'");
    p50l = qnum("SELECT 1000 * extract(epoch FROM max(finished_at - "
        "created_at)) FROM workq.tasks WHERE idempotency_key LIKE 'l%'");
    printf("  latency at %ld tasks/s: p50 %.2f ms, p99 %.2f ms, max %.2f ms "
        "(created -> recorded)\n", rate, p50, p99, p50l);
    for (int i = 0; i < nworkers; i++) {
        long kb = proc_kb(workers[i], "VmHWM");

        if (kb > rss_kb)
            rss_kb = kb;
    }
    printf("  worker peak RSS: %.1f MB (largest of %d)\n", (double)rss_kb
        / 1024, nworkers);

    /* 4 */
    sleep(2);
    for (int i = 0; i < nworkers; i++)
        ticks0[i] = proc_ticks(workers[i]);
    sleep((unsigned)idle_s);
    for (int i = 0; i < nworkers; i++)
        idle_ticks += proc_ticks(workers[i]) - ticks0[i];
    printf("  idle CPU: %.3f%% per worker over %ld s\n", 100.0
        * (double)idle_ticks / (double)sysconf(_SC_CLK_TCK) / (double)idle_s
        / nworkers, idle_s);
    printf("RESULT %s submit=%s ceiling=%.0f workq=%.0f ratio=%.2f "
        "p50_ms=%.2f p99_ms=%.2f rss_mb=%.1f\n", kind_name(), use_client
        ? "client" : "transport", ceil_rate, tput,
        tput / ceil_rate, p50, p99, (double)rss_kb / 1024);

    stop_workers();
    if (use_client) {
        printf("  receipts left unswept: %.0f (client submits, scheduler "
            "sweeps)\n", qnum("SELECT count(*) FROM workq.accepted"));
        client_stop();
    }
    wq_transport_close(t, 10000);
    wq_test_delete_queue(kind, queue);
    PQfinish(db);
    return 0;
}

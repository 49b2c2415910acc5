/*
 * bench_e2e.c - the end-to-end benchmark of workq on one machine: the
 * broker's own ceiling, then workq's throughput and latency on the same
 * broker with real workq-worker processes and PostgreSQL, the workers'
 * memory at load and their CPU at idle.  tests/bench/bench_e2e.sh runs
 * it for both transports against a durable PostgreSQL of its own.  The
 * latency run comes after a VACUUM (ANALYZE) of the tables the throughput
 * run filled, so that it measures the steady state, not autovacuum's
 * pass over the throughput run's dead rows (the time it took is printed).
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
 *     -z          the old workload: noop tasks without payload or result
 *                 (default: type ack, a payload of about 70 bytes of JSON
 *                 and a result of about 30, see task_payload())
 *     -q          RabbitMQ quorum queues (workq's default); without -q
 *                 classic durable queues, as the peers' benchmarks use
 *     -o PREFIX   also write the run's data for tests/bench/report.sh:
 *                 PREFIX.tput.csv (second of the throughput run, tasks
 *                 finished in it), PREFIX.lat.csv (latency run:
 *                 percentile, ms) and PREFIX.result (the RESULT line)
 *     -C          submit runs 2 and 3 through the C client (workq.h), as
 *                 a user's program does: with receipts (producer.receipts)
 *                 in PostgreSQL, and a workq-scheduler that sweeps them;
 *                 without -C the tasks go straight to the transport
 *
 * 1. Ceiling: one client publishes N messages of the size of a noop
 *    envelope with broker confirms while another consumes them with acks
 *    (the transport API: the same librdkafka/rabbitmq-c code and batching
 *    workq uses; no PostgreSQL, no handler).
 * 2. Throughput: W workers wait on a fresh queue; N tasks are published
 *    as fast as the broker confirms them (the submit side's rate is
 *    printed too); the time from the first task's creation to the last
 *    commit of an outcome (PostgreSQL's own timestamps) gives tasks/s.
 *    The cost model follows: per task, the CPU time of each class of
 *    process (PostgreSQL's backends, the broker, the workers, this
 *    client; /proc), PostgreSQL's WAL bytes, WAL syncs and row and index
 *    writes in workq.* (pg_stat_*), all as deltas over the run.
 * 3. Latency below saturation: R tasks/s for S seconds, paced; p50 and
 *    p99 of finished_at - created_at.  finished_at is now() of the
 *    recording transaction, which commits a little later (the worker's
 *    workq_worker_record_seconds shows by how much).  PostgreSQL's and
 *    the workers' CPU time a task in this run, beside run 2's: at a
 *    paced rate a round of claims and records carries a few tasks, and
 *    its fixed cost falls on them.
 * 4. Memory: the workers' peak RSS (VmHWM) after the runs.  Idle CPU: the
 *    workers' CPU time over I seconds with nothing to do.
 *
 * The broker settings are durable ones: RabbitMQ durable queues (classic,
 * or quorum with -q) with persistent messages and publisher confirms; Kafka acks=all with
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
#include <dirent.h>
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
static int bare;                /* -z: noop, no payload, no result */
static int quorum;              /* -q: RabbitMQ quorum queues */
static const char *out_prefix;  /* -o */

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
    tc->amqp_quorum = quorum;
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
            putenv(quorum ? "WORKQ_RABBITMQ_QUEUE_TYPE=quorum"
                : "WORKQ_RABBITMQ_QUEUE_TYPE=classic");
            putenv("WORKQ_RABBITMQ_PREFETCH=2000");
            putenv("WORKQ_WORKER_BATCH_MAX=1000");
            /* WORKQ_BENCH_LOG_LEVEL: the workers' log level (default
             * warn), to read a slow run's rounds at debug */
            if (getenv("WORKQ_BENCH_LOG_LEVEL") != NULL)
                setenv("WORKQ_LOG_LEVEL", getenv("WORKQ_BENCH_LOG_LEVEL"), 1);
            else
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

/* The fields of /proc/PID/stat after the command's name (state, ppid,
 * ...), in buf; NULL if there is no such process. */
static const char *
proc_stat(const char *pid, char *buf, size_t size)
{
    char path[300], *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return NULL;
    n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (p = strrchr(buf, ')')) != NULL && p[1] == ' ' ? p + 2 : NULL;
}

/* utime + stime of a process, in clock ticks. */
static long
proc_ticks(pid_t pid)
{
    char id[24], buf[1024];
    const char *p;
    unsigned long ut, st;

    snprintf(id, sizeof id, "%ld", (long)pid);
    /* fields after the name: state ppid pgrp session tty tpgid flags
     * minflt cminflt majflt cmajflt utime stime */
    if ((p = proc_stat(id, buf, sizeof buf)) == NULL || sscanf(p, "%*c %*d "
        "%*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long)(ut + st);
}

/* The parent of pid (the postmaster of a backend); 0 if unknown. */
static long
proc_ppid(pid_t pid)
{
    char id[24], buf[1024];
    const char *p;
    int ppid = 0;

    snprintf(id, sizeof id, "%ld", (long)pid);
    if ((p = proc_stat(id, buf, sizeof buf)) == NULL
        || sscanf(p, "%*c %d", &ppid) != 1)
        return 0;
    return ppid;
}

/*
 * CPU ticks (utime + stime + cutime + cstime) of pid and of every live
 * process below it: what the tree has used, children that ended
 * included.  One pass over /proc; -1 if pid is gone.
 */
static long
tree_ticks(pid_t root)
{
    enum { MAXP = 32768 };
    static pid_t pids[MAXP], ppids[MAXP];
    static long ticks[MAXP];
    static char in_tree[MAXP];
    size_t n = 0;
    long sum = -1;
    DIR *d = opendir("/proc");
    struct dirent *de;
    int grew = 1;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL && n < MAXP) {
        char buf[1024];
        const char *p;
        unsigned long ut, st;
        long cut, cst;
        int ppid;

        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        if ((p = proc_stat(de->d_name, buf, sizeof buf)) == NULL
            || sscanf(p, "%*c %d %*d "
            "%*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %ld %ld", &ppid, &ut,
            &st, &cut, &cst) != 5)
            continue;
        pids[n] = (pid_t)atol(de->d_name);
        ppids[n] = (pid_t)ppid;
        ticks[n] = (long)(ut + st) + cut + cst;
        in_tree[n] = pids[n] == root;
        n++;
    }
    closedir(d);
    while (grew) {              /* descendants, by parents in the tree */
        grew = 0;
        for (size_t i = 0; i < n; i++)
            if (!in_tree[i])
                for (size_t j = 0; j < n; j++)
                    if (in_tree[j] && ppids[i] == pids[j]) {
                        in_tree[i] = grew = 1;
                        break;
                    }
    }
    for (size_t i = 0; i < n; i++)
        if (in_tree[i])
            sum = (sum < 0 ? 0 : sum) + ticks[i];
    return sum;
}

/* The process listening on 127.0.0.1 or any address at TCP `port` (the
 * broker), from /proc/net/tcp{,6} and the processes' descriptors; 0 if
 * none is found (e.g. another user's process). */
static pid_t
listener_pid(int port)
{
    static const char *const tables[] = { "/proc/net/tcp", "/proc/net/tcp6" };
    char line[512], want[32], link[64], path[600];
    unsigned long inode = 0;
    pid_t found = 0;
    DIR *d;
    struct dirent *de;

    for (size_t t = 0; t < 2 && inode == 0; t++) {
        FILE *f = fopen(tables[t], "r");
        unsigned lport, state;
        unsigned long ino;

        if (f == NULL)
            continue;
        while (fgets(line, sizeof line, f) != NULL)
            if (sscanf(line, " %*d: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x "
                "%*s %*s %*s %*s %*s %lu", &lport, &state, &ino) == 3
                && (int)lport == port && state == 0x0A) {
                inode = ino;
                break;
            }
        fclose(f);
    }
    if (inode == 0 || (d = opendir("/proc")) == NULL)
        return 0;
    snprintf(want, sizeof want, "socket:[%lu]", inode);
    while (found == 0 && (de = readdir(d)) != NULL) {
        DIR *fds;
        struct dirent *fe;

        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/fd", de->d_name);
        if ((fds = opendir(path)) == NULL)
            continue;
        while ((fe = readdir(fds)) != NULL) {
            ssize_t m;

            snprintf(path, sizeof path, "/proc/%s/fd/%s", de->d_name,
                fe->d_name);
            if ((m = readlink(path, link, sizeof link - 1)) <= 0)
                continue;
            link[m] = '\0';
            if (strcmp(link, want) == 0) {
                found = (pid_t)atol(de->d_name);
                break;
            }
        }
        closedir(fds);
    }
    closedir(d);
    return found;
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

/* Runs sql, which answers one row, into v[0..n). */
static void
qrow(const char *sql, double *v, int n)
{
    PGresult *r = PQexec(db, sql);

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        die("%s: %s", sql, PQerrorMessage(db));
    for (int i = 0; i < n; i++)
        v[i] = PQgetisnull(r, 0, i) ? 0 : strtod(PQgetvalue(r, 0, i), NULL);
    PQclear(r);
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

/* ---- the cost model ----------------------------------------------------- */

enum { C_PG, C_BROKER, C_WORKERS, C_CLIENT, C_NCLASS };
enum { R_INS, R_UPD, R_HOT, R_DEL, R_IDX };
enum { I_SCAN, I_READ, I_BYTES };

static const char *const class_names[C_NCLASS] = {
    "PostgreSQL", "broker", "workers", "bench client"
};

/* What a run cost, read before and after it; the model is the deltas. */
struct costs {
    long ticks[C_NCLASS];
    char lsn[64];
    double wal_sync, wal_write;     /* pg_stat_wal; -1: not there */
    /* pg_stat_user_tables over workq.*: rows inserted, updated, HOT
     * updated, deleted, and index entries written (inserts and non-HOT
     * updates times the table's indexes) */
    double rows[5];
    /* pg_stat_user_indexes over workq.*: scans, entries read, bytes */
    double idx[3];
    /* sequential scans of workq.attempts, and the rows they read (the
     * benchmark's own queries read workq.tasks, never this table) */
    double seq[2];
};

static pid_t pg_postmaster, broker_pid, scheduler_pid;

/*
 * The counters of pg_stat_* come from each backend, which publishes its
 * own at most once a second while busy and, on PostgreSQL 15, up to 10 s
 * after it went idle: they are read 11 s after the run has ended (after)
 * and 11 s after the warm-up (before), while CPU time and the WAL
 * position are read at the run's edges.
 */
#define STATS_LAG_US 11000000

static void costs_read_stats(struct costs *c);

/* The CPU ticks of each process class so far, into c->ticks. */
static void
costs_ticks(struct costs *c)
{
    memset(c->ticks, 0, sizeof c->ticks);
    c->ticks[C_PG] = pg_postmaster > 0 ? tree_ticks(pg_postmaster) : -1;
    c->ticks[C_BROKER] = broker_pid > 0 ? tree_ticks(broker_pid) : -1;
    for (int i = 0; i < nworkers; i++)
        c->ticks[C_WORKERS] += tree_ticks(workers[i]);
    if (scheduler_pid > 0)
        c->ticks[C_WORKERS] += tree_ticks(scheduler_pid);
    c->ticks[C_CLIENT] = proc_ticks(getpid());
}

static void
costs_read(struct costs *c, int after)
{
    PGresult *r;

    memset(c, 0, sizeof *c);
    if (!after) {
        usleep(STATS_LAG_US);
        costs_read_stats(c);
    }
    costs_ticks(c);
    r = PQexec(db, "SELECT pg_current_wal_lsn()::text");
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        snprintf(c->lsn, sizeof c->lsn, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (after) {
        usleep(STATS_LAG_US);
        costs_read_stats(c);
    }
}

/* The pg_stat_* part of costs_read. */
static void
costs_read_stats(struct costs *c)
{
    PGresult *r;

    PQclear(PQexec(db, "SELECT pg_stat_clear_snapshot()"));
    r = PQexec(db, "SELECT wal_sync, wal_write FROM pg_stat_wal");
    c->wal_sync = c->wal_write = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        c->wal_sync = strtod(PQgetvalue(r, 0, 0), NULL);
        c->wal_write = strtod(PQgetvalue(r, 0, 1), NULL);
    }
    PQclear(r);
    qrow("SELECT sum(n_tup_ins), sum(n_tup_upd), sum(n_tup_hot_upd), "
        "sum(n_tup_del), sum((n_tup_ins + n_tup_upd - n_tup_hot_upd) "
        "* (SELECT count(*) FROM pg_index i WHERE i.indrelid = t.relid)) "
        "FROM pg_stat_user_tables t WHERE schemaname = 'workq'", c->rows, 5);
    qrow("SELECT sum(idx_scan), sum(idx_tup_read), "
        "sum(pg_relation_size(indexrelid)) FROM pg_stat_user_indexes "
        "WHERE schemaname = 'workq'", c->idx, 3);
    qrow("SELECT seq_scan, seq_tup_read FROM pg_stat_user_tables "
        "WHERE relid = 'workq.attempts'::regclass", c->seq, 2);
}

/* The model's headline figures, for the RESULT line (-1: not measured). */
static double cost_us[C_NCLASS] = { -1, -1, -1, -1 };
static double cost_wal = -1, cost_rows = -1, cost_index = -1;

/* Prints the cost model of n tasks: the deltas from a to b per task. */
static void
costs_print(const struct costs *a, const struct costs *b, long n)
{
    double us_per_tick = 1e6 / (double)sysconf(_SC_CLK_TCK), total = 0;
    char sql[256];

    if (n <= 0)
        return;
    printf("  cost per task (throughput run, deltas over %ld tasks):\n", n);
    printf("    CPU us:");
    for (int k = 0; k < C_NCLASS; k++) {
        double us;

        if (a->ticks[k] < 0 || b->ticks[k] < 0) {
            printf(" %s n/a,", class_names[k]);
            continue;
        }
        us = (double)(b->ticks[k] - a->ticks[k]) * us_per_tick / (double)n;
        cost_us[k] = us;
        total += us;
        printf(" %s %.1f,", class_names[k], us);
    }
    printf(" total %.1f\n", total);
    snprintf(sql, sizeof sql, "SELECT pg_wal_lsn_diff('%s', '%s')", b->lsn,
        a->lsn);
    cost_wal = qnum(sql) / (double)n;
    printf("    WAL: %.0f bytes", cost_wal);
    if (a->wal_sync >= 0 && b->wal_sync >= 0)
        printf(", %.3f syncs (fsyncs), %.3f writes", (b->wal_sync
            - a->wal_sync) / (double)n, (b->wal_write - a->wal_write)
            / (double)n);
    printf("\n");
#define PER(f, i) ((b->f[i] - a->f[i]) / (double)n)
    cost_rows = PER(rows, R_INS) + PER(rows, R_UPD);
    cost_index = PER(rows, R_IDX);
    printf("    rows (workq.*): %.2f inserted, %.2f updated (%.2f HOT, "
        "%.2f not), %.2f deleted\n", PER(rows, R_INS), PER(rows, R_UPD),
        PER(rows, R_HOT), PER(rows, R_UPD) - PER(rows, R_HOT),
        PER(rows, R_DEL));
    printf("    index entries written: %.2f (inserts and non-HOT updates x "
        "indexes; partial indexes counted as full), index bytes %+.0f; "
        "index scans %.2f reading %.2f entries\n", PER(rows, R_IDX),
        PER(idx, I_BYTES), PER(idx, I_SCAN), PER(idx, I_READ));
#undef PER
    printf("    sequential scans of workq.attempts: %.0f reading %.0f rows "
        "(in all, not per task)\n", b->seq[0] - a->seq[0],
        b->seq[1] - a->seq[1]);
}

/*
 * Before the latency run: the throughput run leaves n_tasks dead row
 * versions, and autovacuum's pass over them (a few seconds of a core and
 * WAL on this machine) otherwise lands in the latency run at a time of
 * its choosing: p50 from 5 to 450 ms from one run to the next
 * (2026-12-06).  So that pass is made here, timed.
 */
static void
vacuum_tables(void)
{
    double v0 = now_s();
    PGresult *r = PQexec(db, "VACUUM (ANALYZE) workq.tasks, "
        "workq.attempts, workq.accepted, workq.accepted_runs");

    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die("vacuum: %s", PQerrorMessage(db));
    PQclear(r);
    printf("  vacuum after the throughput run: %.2f s (before the "
        "latency run)\n", now_s() - v0);
}

/*
 * PostgreSQL's and the workers' CPU a task of the paced run (a to b, n
 * tasks), beside the throughput run's (issue 14: no more a task at
 * 2,000/s than at full speed); wait_done's polls are in both.
 */
static void
paced_print(const struct costs *a, const struct costs *b, long n,
    double *pg_us, double *workers_us)
{
    double us_per_tick = 1e6 / (double)sysconf(_SC_CLK_TCK);

    if (a->ticks[C_PG] >= 0 && b->ticks[C_PG] >= 0)
        *pg_us = (double)(b->ticks[C_PG] - a->ticks[C_PG]) * us_per_tick
            / (double)n;
    *workers_us = (double)(b->ticks[C_WORKERS] - a->ticks[C_WORKERS])
        * us_per_tick / (double)n;
    printf("  cost per task at %ld tasks/s: CPU us: PostgreSQL %.1f, "
        "workers %.1f (throughput run: %.1f, %.1f)\n", rate, *pg_us,
        *workers_us, cost_us[C_PG], cost_us[C_WORKERS]);
}

/* ---- 2 and 3. workq ----------------------------------------------------- */

static int use_client;          /* -C */
static wq_client *client;

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
        putenv(quorum ? "WORKQ_RABBITMQ_QUEUE_TYPE=quorum"
            : "WORKQ_RABBITMQ_QUEUE_TYPE=classic");
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

/*
 * The task's type and payload: by default the ack handler (a result of
 * about 30 bytes) and about 70 bytes of JSON such as
 * {"id":1,"user":"u1","amount":42,"note":"hello world"}; with -z noop
 * and nothing.  Returns the payload's length (0 with -z).
 */
static size_t
task_payload(long i, char *buf, size_t size, const char **type)
{
    int n;

    *type = bare ? "noop" : "ack";
    if (bare)
        return 0;
    n = snprintf(buf, size, "{\"id\":%ld,\"user\":\"u%ld\",\"amount\":%ld,"
        "\"note\":\"hello world\"}", i, i % 1000, 42 + i % 100);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

static void
publish_task(wq_transport *t, const char *queue, const char *key, long i,
    struct wq_buf *buf)
{
    struct wq_envelope e;
    char err[WQ_ERRLEN], payload[128];
    const char *type;
    size_t len = task_payload(i, payload, sizeof payload, &type);

    if (wq_envelope_init(&e, queue, type, key, payload, len, err, sizeof err)
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

/* Publishes "<prefix><i>" for i < n at `per_s` tasks/s (0: at once).
 * Returns the submit side's rate: tasks/s until the last confirm. */
static double
publish_many(wq_transport *t, const char *queue, const char *prefix, long n,
    long per_s)
{
    struct wq_buf buf = WQ_BUF_INIT;
    char key[64], err[WQ_ERRLEN];
    double start = now_s();

    if (use_client) {
        for (long i = 0; i < n; i++) {
            char payload[128];
            struct wq_client_task task = { .queue = queue,
                .idempotency_key = key };

            task.payload = payload;
            task.payload_len = task_payload(i, payload, sizeof payload,
                &task.type);

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
        return (double)n / (now_s() - start);
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
        publish_task(t, queue, key, i, &buf);
    }
    if (wq_transport_flush(t, 300000, err, sizeof err) != 0)
        die("flush: %s", err);
    wq_buf_free(&buf);
    return (double)n / (now_s() - start);
}

static size_t
envelope_size(void)
{
    struct wq_buf buf = WQ_BUF_INIT;
    struct wq_envelope e;
    char err[WQ_ERRLEN], payload[128];
    const char *type;
    size_t n = task_payload(12345, payload, sizeof payload, &type);

    wq_envelope_init(&e, "bench-e2e-12345", type, "t12345", payload, n, err,
        sizeof err);
    if (wq_envelope_encode(&e, &buf, err, sizeof err) != 0)
        die("%s", err);
    n = buf.len;
    wq_envelope_free(&e);
    wq_buf_free(&buf);
    return n;
}

/*
 * -o: the run's data for the report (tests/bench/report.sh): tasks
 * finished per second of the throughput run, the latency run's
 * percentiles, and the RESULT line.
 */
static void
write_file(const char *prefix, const char *suffix, const char *sql,
    const char *header)
{
    char path[1024];
    PGresult *r;
    FILE *f;

    snprintf(path, sizeof path, "%s%s", prefix, suffix);
    if ((f = fopen(path, "w")) == NULL)
        die("%s: cannot write", path);
    fprintf(f, "%s\n", header);
    if (sql != NULL) {
        r = PQexec(db, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            die("%s", PQerrorMessage(db));
        for (int i = 0; i < PQntuples(r); i++)
            fprintf(f, "%s,%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
        PQclear(r);
    }
    if (fclose(f) != 0)
        die("%s: write failed", path);
}

static void
write_data(const char *prefix, const char *result)
{
    write_file(prefix, ".tput.csv",
        "WITH t AS (SELECT finished_at, min(created_at) OVER () AS t0"
        "  FROM workq.tasks WHERE idempotency_key LIKE 't%')"
        "SELECT floor(extract(epoch FROM finished_at - t0))::int8, count(*)"
        "  FROM t GROUP BY 1 ORDER BY 1", "second,finished");
    write_file(prefix, ".lat.csv",
        "WITH p AS (SELECT array_agg(x / 1000.0 ORDER BY x) AS ps"
        "  FROM generate_series(0, 1000, 5) x)"
        "SELECT unnest(p.ps) * 100, unnest(percentile_cont(p.ps) WITHIN"
        "  GROUP (ORDER BY 1000 * extract(epoch FROM finished_at"
        "  - created_at)))"
        "  FROM workq.tasks, p WHERE idempotency_key LIKE 'l%' GROUP BY p.ps",
        "percentile,ms");
    write_file(prefix, ".result", NULL, result);
}

int
main(int argc, char **argv)
{
    char queue[64], err[WQ_ERRLEN], sql[1024], result[1024];
    double ceil_rate, tput, p50, p95, p99, p50l, span, submit_rate;
    double pg_us_paced = -1, workers_us_paced = -1;
    struct costs cost0, cost1, lat0, lat1;
    long rss_kb = 0, ticks0[MAX_WORKERS], idle_ticks = 0;
    wq_transport *t;
    wq_store *s;
    int opt;

    if (argc < 3)
        die("usage: bench_e2e kafka|rabbitmq CONNINFO [-n N] [-w W] [-c C] "
            "[-r R] [-s S] [-i S] [-C] [-z] [-q] [-o PREFIX]");
    kind = strcmp(argv[1], "kafka") == 0 ? WQ_TRANSPORT_KAFKA
        : WQ_TRANSPORT_RABBITMQ;
    conninfo = argv[2];
    optind = 3;
    while ((opt = getopt(argc, argv, "n:w:c:r:s:i:Czqo:")) != -1) {
        switch (opt) {
        case 'n': n_tasks = atol(optarg); break;
        case 'w': nworkers = atoi(optarg); break;
        case 'c': concurrency = atoi(optarg); break;
        case 'r': rate = atol(optarg); break;
        case 's': lat_s = atol(optarg); break;
        case 'i': idle_s = atol(optarg); break;
        case 'C': use_client = 1; break;
        case 'z': bare = 1; break;
        case 'q': quorum = 1; break;
        case 'o': out_prefix = optarg; break;
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
    pg_postmaster = (pid_t)proc_ppid((pid_t)qnum("SELECT pg_backend_pid()"));
    broker_pid = listener_pid(kind == WQ_TRANSPORT_KAFKA ? 59092 : 55672);
    costs_read(&cost0, 0);
    submit_rate = publish_many(t, queue, "t", n_tasks, 0);
    wait_done("idempotency_key LIKE 't%'", n_tasks, 900);
    costs_read(&cost1, 1);
    span = n_tasks > 0 ? qnum("SELECT extract(epoch FROM max(finished_at) - "
        "min(created_at)) FROM workq.tasks WHERE idempotency_key LIKE 't%'")
        : 1;
    tput = (double)n_tasks / span;
    for (int i = 0; i < nworkers; i++) {
        long kb = proc_kb(workers[i], "VmHWM");

        if (kb > rss_kb)
            rss_kb = kb;
    }
    printf("  submit: %ld tasks published in %.0f tasks/s (until the last "
        "confirm)\n", n_tasks, submit_rate);
    printf("  workq: %ld tasks in %.2f s: %.0f tasks/s = %.0f%% of the "
        "ceiling\n", n_tasks, span, tput, 100.0 * tput / ceil_rate);
    if (n_tasks > 0)
        printf("  workq: %.0f record transactions (%.1f tasks each)\n",
            qnum("SELECT count(DISTINCT finished_at) FROM workq.tasks WHERE "
            "idempotency_key LIKE 't%'"), (double)n_tasks / qnum("SELECT "
            "count(DISTINCT finished_at) FROM workq.tasks WHERE "
            "idempotency_key LIKE 't%'"));

    costs_print(&cost0, &cost1, n_tasks);

    /* 3 */
    vacuum_tables();
    costs_ticks(&lat0);
    publish_many(t, queue, "l", rate * lat_s, rate);
    wait_done("idempotency_key LIKE 'l%'", rate * lat_s, 300);
    costs_ticks(&lat1);
    paced_print(&lat0, &lat1, rate * lat_s, &pg_us_paced,
        &workers_us_paced);
    p50 = qnum("SELECT 1000 * extract(epoch FROM percentile_cont(0.5) WITHIN "
        "GROUP (ORDER BY finished_at - created_at)) FROM workq.tasks WHERE "
        "idempotency_key LIKE 'l%'");
    p95 = qnum("SELECT 1000 * extract(epoch FROM percentile_cont(0.95) "
        "WITHIN GROUP (ORDER BY finished_at - created_at)) FROM workq.tasks "
        "WHERE idempotency_key LIKE 'l%'");
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
    snprintf(result, sizeof result, "RESULT %s submit=%s queues=%s "
        "workers=%d ceiling=%.0f workq=%.0f ratio=%.2f p50_ms=%.2f "
        "p95_ms=%.2f p99_ms=%.2f rss_mb=%.1f submit_per_s=%.0f pg_us=%.1f "
        "broker_us=%.1f workers_us=%.1f client_us=%.1f wal_bytes=%.0f "
        "rows=%.2f index_entries=%.2f pg_us_paced=%.1f "
        "workers_us_paced=%.1f", kind_name(),
        use_client ? "client" : "transport", kind == WQ_TRANSPORT_KAFKA
        ? "kafka" : quorum ? "quorum" : "classic", nworkers, ceil_rate, tput,
        tput / ceil_rate, p50, p95, p99, (double)rss_kb / 1024, submit_rate,
        cost_us[C_PG], cost_us[C_BROKER], cost_us[C_WORKERS],
        cost_us[C_CLIENT], cost_wal, cost_rows, cost_index, pg_us_paced,
        workers_us_paced);
    printf("%s\n", result);
    if (out_prefix != NULL)
        write_data(out_prefix, result);

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

/*
 * sched_test.h - helpers shared by the integration tests that run the
 * daemons (test_scheduler.c, test_scheduler_flow.c, test_dashboard.c,
 * test_worker_http.c, test_cli_ops.c and others): queues declared on
 * the test broker, workq daemons and other programs as child processes
 * with their logs in the test's directory, their /metrics, SQL with
 * printf-style text, waiting for conditions, and running the `workq`
 * CLI.
 *
 * Header-only (static functions), because each integration test is one
 * source file linked with the harness only.  Include after wq_test.h.
 */
#ifndef WQ_SCHED_TEST_H
#define WQ_SCHED_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "store_int.h"
#include "wq_test.h"
#include "wq_test_broker.h"
#include "wq_test_http.h"
#include "wq_test_pg.h"
#include "clock.h"
#include "envelope.h"
#include "transport.h"
#include "uuid.h"

/* ---- queues -------------------------------------------------------------- */

/* Creates queue (and its dead-letter queue) and forgets them at exit. */
static WQ_UNUSED void
declare_queue(int kind, const char *queue)
{
    struct wq_transport_conf tc;
    char err[WQ_ERRLEN], dead[WQ_QUEUE_MAX + 8];
    wq_transport *t;

    wq_test_transport_conf(kind, &tc);
    if (wq_transport_open(&tc, &t, err, sizeof err) != 0)
        fail_msg("cannot reach the %s test broker: %s (tests/services/ctl "
            "start)", wq_test_kind_name(kind), err);
    snprintf(dead, sizeof dead, "%s.dead", queue);
    if (wq_transport_declare(t, queue, err, sizeof err) != 0
        || wq_transport_declare(t, dead, err, sizeof err) != 0)
        fail_msg("declare %s: %s", queue, err);
    wq_transport_close(t, 5000);
    wq_test_forget_queue(kind, queue);
    wq_test_forget_queue(kind, dead);
}

/* ---- daemons ------------------------------------------------------------- */

struct proc {
    pid_t pid;
    char name[32];
    char log[256];
    int port;                   /* metrics port, 0 until read */
    int status;                 /* exit status once reaped */
};

static struct proc *procs_[16];
static int nprocs_;

/* Prints the tail of every daemon log (when a test fails). */
static WQ_UNUSED void
show_logs(void)
{
    for (int i = 0; i < nprocs_; i++) {
        char cmd[400];

        fprintf(stderr, "---- %s (last 40 lines) ----\n", procs_[i]->log);
        snprintf(cmd, sizeof cmd, "tail -n 40 %s >&2", procs_[i]->log);
        if (system(cmd) != 0)
            (void)0;
    }
}

#define check(cond, ...) do {                                             \
    if (!(cond)) {                                                        \
        show_logs();                                                      \
        fail_msg(__VA_ARGS__);                                            \
    }                                                                     \
} while (0)

/* Writes `text` to a file in the test directory; returns its path
 * (static, valid until the next call). */
static WQ_UNUSED const char *
write_file(const char *name, const char *text)
{
    static char path[300];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", getenv("WQ_TEST_TMPDIR"), name);
    assert_non_null(f = fopen(path, "w"));
    fputs(text, f);
    fclose(f);
    return path;
}

/*
 * Starts argv (NULL-ended, argv[0] a path) as the test's process `name`,
 * with the entries of env, then of extra, added to its environment (both
 * NULL-ended, may be NULL) and its output in a log of the test directory
 * that show_logs prints when a check fails.
 */
static WQ_UNUSED void
proc_spawn(struct proc *p, const char *name, const char *const *argv,
    const char *const *env, const char *const *extra)
{
    static int seq;

    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->log, sizeof p->log, "%s/%s-%d.log", getenv("WQ_TEST_TMPDIR"),
        name, seq++);
    p->pid = wq_test_spawn(argv, env, extra, p->log);
    if (nprocs_ < (int)WQ_ARRAY_LEN(procs_))
        procs_[nprocs_++] = p;
}

/*
 * Starts `bin` ("workq-scheduler", "workq-worker") against `kind` and the
 * database `conninfo`, with `config` (may be NULL) as its --config file,
 * `extra` environment entries and `args` (both NULL-ended, may be NULL).
 * Metrics listen on a free port (read with proc_port).
 */
static WQ_UNUSED void
proc_start(struct proc *p, const char *bin, int kind, const char *conninfo,
    const char *config, const char *const *extra, const char *const *args)
{
    static int seq;
    const char *env[16], *argv[24];
    char conf[64], binp[512], confp[300];
    size_t n = 0, ne;

    snprintf(conf, sizeof conf, "%s-%d.conf", bin, seq++);
    snprintf(binp, sizeof binp, "%s", wq_test_bin(bin));
    argv[n++] = binp;
    if (config != NULL) {
        snprintf(confp, sizeof confp, "%s", write_file(conf, config));
        argv[n++] = "--config";
        argv[n++] = confp;
    }
    for (; args != NULL && *args != NULL && n + 1 < WQ_ARRAY_LEN(argv);
        args++)
        argv[n++] = *args;
    argv[n] = NULL;
    ne = wq_test_env_for(kind, conninfo, env, WQ_ARRAY_LEN(env) - 3);
    env[ne++] = "WORKQ_KAFKA_SESSION_TIMEOUT_MS=6000";
    env[ne++] = "WORKQ_METRICS_LISTEN=127.0.0.1:0";
    env[ne++] = "WORKQ_LOG_LEVEL=debug";
    env[ne] = NULL;
    proc_spawn(p, bin, argv, env, extra);
}

/* SIGKILL to every process still running, and reaps it: at exit, so
 * that none outlives its test (atexit(proc_kill_all), with every struct
 * proc static). */
static WQ_UNUSED void
proc_kill_all(void)
{
    for (int i = 0; i < nprocs_; i++)
        if (procs_[i]->pid > 0) {
            kill(procs_[i]->pid, SIGKILL);
            waitpid(procs_[i]->pid, NULL, 0);
            procs_[i]->pid = 0;
        }
}

/* Waits up to timeout_ms for the process to exit; its status (128+N for
 * signal N), or -1 if it still runs. */
static WQ_UNUSED int
proc_wait(struct proc *p, int timeout_ms)
{
    int rc;

    if (p->pid <= 0)
        return p->status;
    if ((rc = wq_test_reap(&p->pid, timeout_ms)) >= 0)
        p->status = rc;
    return rc;
}

/* SIGTERM, then the clean exit status 0 within timeout_ms. */
static WQ_UNUSED void
proc_stop(struct proc *p, int timeout_ms)
{
    int rc;

    if (p->pid <= 0)
        return;
    kill(p->pid, SIGTERM);
    rc = proc_wait(p, timeout_ms);
    if (rc < 0) {
        kill(p->pid, SIGKILL);
        proc_wait(p, 5000);
    }
    check(rc == 0, "%s did not stop cleanly: status %d", p->name, rc);
}

static WQ_UNUSED void
proc_kill9(struct proc *p)
{
    kill(p->pid, SIGKILL);
    assert_int_equal(proc_wait(p, 10000), 128 + SIGKILL);
}

/* The whole log (malloc'd). */
static WQ_UNUSED char *
proc_log(const struct proc *p)
{
    return wq_test_read_file(p->log);
}

/* Waits up to timeout_ms for `text` in the log; 1 if it appeared. */
static WQ_UNUSED int
proc_log_wait(const struct proc *p, const char *text, int timeout_ms)
{
    uint64_t end = wq_clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;

    do {
        char *log = proc_log(p);
        int found = strstr(log, text) != NULL;

        free(log);
        if (found)
            return 1;
        usleep(20000);
    } while (wq_clock_mono_ns() < end);
    return 0;
}

/* The metrics port from the log ("/metrics on port N"). */
static WQ_UNUSED int
proc_port(struct proc *p)
{
    for (int i = 0; i < 500 && p->port == 0; i++) {
        char *log = proc_log(p), *s = strstr(log, "/metrics on port ");

        if (s != NULL)
            p->port = atoi(s + strlen("/metrics on port "));
        free(log);
        if (p->port == 0)
            usleep(20000);
    }
    check(p->port > 0, "no metrics port in %s", p->log);
    return p->port;
}

/* The value of the metric line that starts with `line_start` ("name "
 * or "name{labels} ") on p's metrics port, 0 if absent. */
static WQ_UNUSED double
metric(struct proc *p, const char *line_start)
{
    return wq_test_http_metric(proc_port(p), line_start);
}

/* ---- SQL ------------------------------------------------------------------- */

static WQ_UNUSED void WQ_PRINTFLIKE(2, 3)
sqlf(wq_store *s, const char *fmt, ...)
{
    char sql[8192];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    wq_test_pg_exec(s, sql);
}

/* The first column of the single row of a query as text (static). */
static WQ_UNUSED const char * WQ_PRINTFLIKE(2, 3)
textf(wq_store *s, const char *fmt, ...)
{
    static char out[4096];
    char sql[8192];
    PGresult *r;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    r = PQexec(wq_store_conn(s), sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        snprintf(out, sizeof out, "%s", PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("%s: %s", sql, out);
    }
    snprintf(out, sizeof out, "%s", PQgetisnull(r, 0, 0) ? ""
        : PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

/* Waits up to timeout_ms until the query's number reaches `want`;
 * returns the last value seen. */
static WQ_UNUSED long long
wait_num(wq_store *s, long long want, int timeout_ms, const char *sql)
{
    uint64_t end = wq_clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    long long v;

    for (;;) {
        v = wq_test_pg_num(s, sql);
        if (v == want || wq_clock_mono_ns() >= end)
            return v;
        usleep(20000);
    }
}

/*
 * Inserts a task row.  `state` and the SQL expressions `run_at` and
 * `extra_cols`/`extra_vals` (", col" / ", value" pairs or "") complete
 * it; returns the new id (static).
 */
static WQ_UNUSED const char *
insert_task(wq_store *s, const char *queue, const char *type,
    const char *key, const char *state, int attempt, int max_attempts,
    const char *run_at, const char *extra_cols, const char *extra_vals)
{
    static char id[40];

    snprintf(id, sizeof id, "%s", textf(s, "SELECT workq.uuid_v7()"));
    sqlf(s, "INSERT INTO workq.tasks (id, queue, type, idempotency_key, "
        "state, attempt, max_attempts, run_at%s) VALUES ('%s', '%s', '%s', "
        "'%s', '%s', %d, %d, %s%s)", extra_cols, id, queue, type,
        key != NULL ? key : id, state, attempt, max_attempts,
        run_at != NULL ? run_at : "NULL", extra_vals);
    return id;
}

/* ---- the CLI -------------------------------------------------------------------- */

/*
 * Runs `workq ARGS...` (NULL-ended) against `conninfo` and the private
 * RabbitMQ; stdout and stderr in out.  Returns the exit status.
 */
static WQ_UNUSED int
workq_cli(const char *conninfo, char *out, size_t outlen, ...)
{
    const char *argv[32], *env[16];
    va_list ap;
    size_t n = 0;

    argv[n++] = wq_test_bin("workq");
    argv[0] = strdup(argv[0]);
    va_start(ap, outlen);
    while (n + 1 < WQ_ARRAY_LEN(argv)
        && (argv[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    argv[n] = NULL;
    /* the private broker too: `workq stats` asks it for the backlog, and
     * the default (127.0.0.1:5672) may be a server of this machine's own,
     * or none */
    wq_test_env_for(WQ_TRANSPORT_RABBITMQ, conninfo, env, WQ_ARRAY_LEN(env));
    n = (size_t)wq_test_cmd(argv, env, NULL, out, outlen);
    free((char *)argv[0]);
    return (int)n;
}

#endif

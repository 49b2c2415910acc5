/*
 * bench_process.c - the process handler against the exec handler, with
 * the same trivial Python handler, driven through the worker's handler
 * code (handler.h) from T threads as the worker's handler slots would,
 * without broker or PostgreSQL: what the handler kind itself costs.
 *
 *   bench_process [-n TASKS] [-t THREADS] [-p PROCESSES] [-m IN_FLIGHT]
 *                 [-L python|python-async|node]
 *
 * Each calling thread hands the handler what consumer.c gives a handler
 * slot: the worker's drain descriptor and the thread's own eventfd for
 * an operator's cancel, drained before each task.
 *
 * Prints tasks/s of each kind, and for the process kind the CPU time of
 * this process (the worker's side: handler threads, supervisor thread,
 * framing, pipes) per task, user and system, from getrusage(2)
 * RUSAGE_SELF, split into the supervisor thread (/proc/self/task) and
 * the calling threads, with the wakeups a task of each (its voluntary
 * context switches: a sleep ended by a wakeup); the programs' own CPU
 * (RUSAGE_CHILDREN once reaped) is printed apart.  A benchmark: it prints figures and never fails on
 * them.  make bench-process builds and runs it.
 */
#include <dirent.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "bench_threads.h"
#include "clock.h"
#include "handler.h"

#define PY_LIB WQ_SOURCE_DIR "/worker/handlers/python"
#define JS_LIB WQ_SOURCE_DIR "/worker/handlers/node"

static const char exec_py[] =
    "import sys\n"
    "sys.stdout.buffer.write(sys.stdin.buffer.read().upper())\n";
static const char proc_py[] =
    "import sys\n"
    "sys.path.insert(0, '" PY_LIB "')\n"
    "import workq_handler\n"
    "workq_handler.run(lambda task: task.payload.upper())\n";
static const char proc_py_async[] =
    "import sys\n"
    "sys.path.insert(0, '" PY_LIB "')\n"
    "import workq_handler\n"
    "async def upper(task):\n"
    "    return task.payload.upper()\n"
    "workq_handler.run_async(upper)\n";
static const char proc_js[] =
    "require('" JS_LIB "/workq_handler.js')"
    ".run((task) => task.text.toUpperCase());\n";

/* -L: the reference library that runs the process kind's handler */
static const struct {
    const char *name, *interpreter, *file, *source;
} libraries[] = {
    { "python", "/usr/bin/python3", "proc.py", proc_py },
    { "python-async", "/usr/bin/python3", "proc.py", proc_py_async },
    { "node", "/usr/bin/node", "proc.js", proc_js },
};

/* What the calling threads run: the exec kind or the process kind. */
struct kind {
    const struct wq_exec_conf *exec;    /* exec; NULL for process */
    struct wq_proc_pool *pool;
};

/* Runs n tasks through one kind (arg: struct kind). */
static long
run_tasks(const void *arg, long n)
{
    const struct kind *k = arg;
    struct wq_envelope env;
    char err[WQ_ERRLEN];
    /* as consumer.c gives a handler slot: the worker's drain descriptor
     * and the thread's own eventfd for an operator's cancel, drained
     * before each task */
    int drain_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int thread_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    atomic_int cancelled = 0;
    long failed = 0;

    if (drain_fd < 0 || thread_fd < 0) {
        perror("eventfd");
        exit(1);
    }
    if (wq_envelope_init(&env, "bench", "upper", NULL, "hello", 5, err,
        sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    for (long i = 0; i < n; i++) {
        struct wq_handler_ctx ctx;
        struct wq_handler_result res;
        uint64_t stale;

        memset(&ctx, 0, sizeof ctx);
        memset(&res, 0, sizeof res);
        ctx.env = &env;
        ctx.task_id = "bench";
        ctx.attempt = 1;
        ctx.max_attempts = 1;
        if (read(thread_fd, &stale, sizeof stale) < 0)
            (void)0;    /* EAGAIN: nothing stale */
        ctx.cancel_fd = drain_fd;
        ctx.task_cancel_fd = thread_fd;
        ctx.cancelled = &cancelled;
        if (k->exec != NULL)
            wq_handler_exec_run(k->exec, &ctx, &res);
        else
            wq_handler_process_run(k->pool, &ctx, &res);
        if (res.outcome != WQ_OUTCOME_SUCCEEDED || res.result.len != 5) {
            if (failed++ == 0)
                fprintf(stderr, "failed: %s\n", res.error != NULL
                    ? res.error : "wrong result");
        }
        wq_handler_result_free(&res);
    }
    wq_envelope_free(&env);
    close(drain_fd);
    close(thread_fd);
    return failed;
}

/* What the supervisor threads (named "wq-process") used so far, from
 * /proc/self/task/TID: CPU seconds (stat: utime + stime, clock ticks)
 * and sleeps (status: voluntary_ctxt_switches, a wakeup each). */
struct use {
    double cpu_s;
    long sleeps;
};

static struct use
supervisor_use(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    struct use u = { 0, 0 };

    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[300], buf[2048], *p;
        unsigned long ut, st;
        FILE *f;
        size_t n;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        if (strstr(buf, "(wq-process)") == NULL
            || (p = strrchr(buf, ')')) == NULL)
            continue;
        /* after ")": state ppid pgrp session tty tpgid flags minflt
         * cminflt majflt cmajflt utime stime */
        if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu "
            "%lu", &ut, &st) == 2)
            u.cpu_s += (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
        snprintf(path, sizeof path, "/proc/self/task/%s/status",
            e->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        if ((p = strstr(buf, "\nvoluntary_ctxt_switches:")) != NULL)
            u.sleeps += atol(p + strlen("\nvoluntary_ctxt_switches:"));
    }
    if (d != NULL)
        closedir(d);
    return u;
}

/* Runs n tasks over t threads; prints the figures. */
static void
measure(const char *name, const struct wq_exec_conf *ec,
    struct wq_proc_pool *pool, long n, int t)
{
    struct kind k = { ec, pool };
    struct bench_figures f;
    struct use u0 = supervisor_use(), u1;
    double sup;

    bench_threads(run_tasks, &k, n, t, &f);
    u1 = supervisor_use();
    sup = u1.cpu_s - u0.cpu_s;
    bench_print(name, n, t, &f);
    if (pool != NULL)
        printf("         of which the supervisor thread (framing, pipes, "
            "wakeups) %.1f us/task, the calling threads (queueing, waiting) "
            "%.1f; supervisor wakeups %.2f a task\n", sup * 1e6 / (double)n,
            (f.user_s + f.sys_s - sup) * 1e6 / (double)n,
            (double)(u1.sleeps - u0.sleeps) / (double)n);
    fflush(stdout);
}

/*
 * The worker's way since issue 16 (consumer.c start_async): one thread
 * keeps `m` tasks in flight through wq_handler_process_start, and the
 * answers come back through a done callback that pushes them on a list
 * and writes an eventfd only when the thread sleeps, as consumer.c wakes
 * its loop.
 */
struct slot {
    struct wq_handler_ctx ctx;
    struct wq_handler_result res;
    struct wq_proc_req *req;
    struct slot *next;
    struct events *ev;
};

struct events {
    pthread_mutex_t lock;
    struct slot *done;
    int sleeping;
    int fd;
};

static void
event_done(void *arg)
{
    struct slot *sl = arg;
    struct events *ev = sl->ev;
    uint64_t one = 1;

    pthread_mutex_lock(&ev->lock);
    sl->next = ev->done;
    ev->done = sl;
    if (ev->sleeping) {
        ev->sleeping = 0;
        if (write(ev->fd, &one, sizeof one) < 0)
            (void)0;
    }
    pthread_mutex_unlock(&ev->lock);
}

static void
measure_events(struct wq_proc_pool *pool, long n, int m, int cork)
{
    struct events ev = { PTHREAD_MUTEX_INITIALIZER, NULL, 0, -1 };
    struct slot *slots = calloc((size_t)m, sizeof *slots), *free_list = NULL;
    struct bench_figures f;
    struct rusage r0, r1, me0, me1;
    struct wq_envelope env;
    char err[WQ_ERRLEN];
    long started = 0, ended = 0;
    uint64_t t0;
    struct use u0 = supervisor_use(), u1;
    double sup;

    ev.fd = eventfd(0, EFD_CLOEXEC);
    if (slots == NULL || ev.fd < 0 || wq_envelope_init(&env, "bench",
        "upper", NULL, "hello", 5, err, sizeof err) != 0) {
        fprintf(stderr, "measure_events: setup failed\n");
        exit(1);
    }
    for (int i = 0; i < m; i++) {
        slots[i].ev = &ev;
        slots[i].next = free_list;
        free_list = &slots[i];
    }
    f.failed = 0;
    getrusage(RUSAGE_THREAD, &me0);
    getrusage(RUSAGE_SELF, &r0);
    t0 = wq_clock_mono_ns();
    while (ended < n) {
        struct slot *got;
        uint64_t v;

        if (cork)
            wq_proc_pool_cork(pool);
        while (free_list != NULL && started < n) {
            struct slot *sl = free_list;

            free_list = sl->next;
            memset(&sl->ctx, 0, sizeof sl->ctx);
            memset(&sl->res, 0, sizeof sl->res);
            sl->ctx.env = &env;
            sl->ctx.task_id = "bench";
            sl->ctx.attempt = 1;
            sl->ctx.max_attempts = 1;
            sl->ctx.cancel_fd = sl->ctx.task_cancel_fd = -1;
            started++;
            sl->req = wq_handler_process_start(pool, &sl->ctx, &sl->res,
                event_done, sl);
            if (sl->req == NULL)
                event_done(sl);
        }
        if (cork)
            wq_proc_pool_uncork(pool);
        pthread_mutex_lock(&ev.lock);
        if (ev.done == NULL) {
            ev.sleeping = 1;
            pthread_mutex_unlock(&ev.lock);
            if (read(ev.fd, &v, sizeof v) < 0)
                (void)0;
            pthread_mutex_lock(&ev.lock);
        }
        got = ev.done;
        ev.done = NULL;
        pthread_mutex_unlock(&ev.lock);
        while (got != NULL) {
            struct slot *sl = got;

            got = sl->next;
            if (sl->res.outcome != WQ_OUTCOME_SUCCEEDED
                || sl->res.result.len != 5) {
                if (f.failed++ == 0)
                    fprintf(stderr, "failed: %s\n", sl->res.error != NULL
                        ? sl->res.error : "wrong result");
            }
            wq_handler_result_free(&sl->res);
            wq_proc_req_free(sl->req);
            sl->next = free_list;
            free_list = sl;
            ended++;
        }
    }
    f.wall_s = (double)(wq_clock_mono_ns() - t0) / 1e9;
    getrusage(RUSAGE_SELF, &r1);
    getrusage(RUSAGE_THREAD, &me1);
    f.user_s = bench_tv_s(r1.ru_utime) - bench_tv_s(r0.ru_utime);
    f.sys_s = bench_tv_s(r1.ru_stime) - bench_tv_s(r0.ru_stime);
    u1 = supervisor_use();
    sup = u1.cpu_s - u0.cpu_s;
    bench_print(cork ? "corked" : "events", n, m, &f);
    printf("         (one thread, %d in flight) of which the supervisor "
        "thread %.1f us/task, the submitting thread %.1f; wakeups a task: "
        "supervisor %.2f, submitting thread %.2f\n", m,
        sup * 1e6 / (double)n, (f.user_s + f.sys_s - sup) * 1e6 / (double)n,
        (double)(u1.sleeps - u0.sleeps) / (double)n,
        (double)(me1.ru_nvcsw - me0.ru_nvcsw) / (double)n);
    fflush(stdout);
    wq_envelope_free(&env);
    close(ev.fd);
    free(slots);
}

int
main(int argc, char **argv)
{
    long n = 20000, nexec = 0;
    int t = 8, procs = 2, inflight = 8, opt;
    size_t lib = 0;
    char dir[] = "/tmp/bench_process.XXXXXX", execf[256], procf[256];
    char *exec_argv[3], *proc_argv[3];
    struct wq_exec_conf ec;
    struct wq_proc_conf pc;
    struct wq_proc_pool *pool;
    struct rusage rc;
    char err[WQ_ERRLEN];
    FILE *f;

    signal(SIGPIPE, SIG_IGN);       /* as the worker */
    while ((opt = getopt(argc, argv, "n:e:t:p:m:L:")) != -1)
        switch (opt) {
        case 'L':
            for (lib = 0; lib < sizeof libraries / sizeof *libraries; lib++)
                if (strcmp(optarg, libraries[lib].name) == 0)
                    break;
            if (lib == sizeof libraries / sizeof *libraries) {
                fprintf(stderr, "bench_process: -L %s: python, "
                    "python-async or node\n", optarg);
                return 64;
            }
            break;
        case 'n': n = atol(optarg); break;
        case 'e': nexec = atol(optarg); break;
        case 't': t = atoi(optarg); break;
        case 'p': procs = atoi(optarg); break;
        case 'm': inflight = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: bench_process [-n TASKS] [-e EXEC_TASKS] "
                "[-t THREADS] [-p PROCESSES] [-m IN_FLIGHT] "
                "[-L python|python-async|node]\n");
            return 64;
        }
    if (nexec == 0)
        nexec = n / 20 > 200 ? n / 20 : 200;
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(execf, sizeof execf, "%s/exec.py", dir);
    snprintf(procf, sizeof procf, "%s/%s", dir, libraries[lib].file);
    if ((f = fopen(execf, "w")) == NULL)
        return 1;
    fputs(exec_py, f);
    fclose(f);
    if ((f = fopen(procf, "w")) == NULL)
        return 1;
    fputs(libraries[lib].source, f);
    fclose(f);
    exec_argv[0] = "/usr/bin/python3";
    proc_argv[0] = (char *)libraries[lib].interpreter;
    exec_argv[1] = execf;
    proc_argv[1] = procf;
    exec_argv[2] = proc_argv[2] = NULL;

    memset(&ec, 0, sizeof ec);
    ec.max_output = 1 << 20;
    ec.max_stderr = 4096;
    ec.kill_grace_ms = 1000;
    ec.umask = 077;
    ec.argv = exec_argv;
    printf("trivial handler (upper-case a 5-byte payload; exec: Python, "
        "process: the %s library); %ld cores online, load %s",
        libraries[lib].name, sysconf(_SC_NPROCESSORS_ONLN), "");
    fflush(stdout);
    if (system("cat /proc/loadavg") != 0)
        printf("\n");
    measure("exec", &ec, NULL, nexec, t);

    memset(&pc, 0, sizeof pc);
    pc.type = "upper";
    pc.exec = ec;
    pc.exec.argv = proc_argv;
    pc.processes = (size_t)procs;
    pc.max_in_flight = (size_t)inflight;
    pc.worker_id = "bench";
    if (wq_proc_pool_new(&pc, &pool, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    measure("warm-up", NULL, pool, 200, t);
    measure("process", NULL, pool, n, t);
    measure_events(pool, n, t, 0);
    measure_events(pool, n, t, 1);
    wq_proc_pool_free(pool);
    getrusage(RUSAGE_CHILDREN, &rc);
    printf("programs' CPU, both kinds, all runs: %.2f s (user %.2f, sys "
        "%.2f)\n", bench_tv_s(rc.ru_utime) + bench_tv_s(rc.ru_stime), bench_tv_s(rc.ru_utime),
        bench_tv_s(rc.ru_stime));
    unlink(execf);
    unlink(procf);
    rmdir(dir);
    return 0;
}

/*
 * bench_threads.h - the harness of the handler-kind benchmarks
 * (bench_process.c, bench_http.c): T threads standing for the worker's
 * handler slots run a share of n tasks each, and the process's CPU time
 * over the run gives the worker's side of the cost per task.
 */
#ifndef WQ_BENCH_THREADS_H
#define WQ_BENCH_THREADS_H

struct timeval;

/* A timeval in seconds. */
double bench_tv_s(struct timeval tv);

/* Runs `n` tasks through `run` in the calling thread with the
 * benchmark's `arg`; returns how many failed. */
typedef long bench_tasks_fn(const void *arg, long n);

/* What a run measured. */
struct bench_figures {
    double wall_s;              /* from the first thread's start to the
                                   last one's end */
    double user_s, sys_s;       /* this process's CPU over the run
                                   (getrusage RUSAGE_SELF) */
    long failed;
};

/* Runs n tasks over t threads (each its share of n through run) and
 * measures them. */
void bench_threads(bench_tasks_fn *run, const void *arg, long n, int t,
    struct bench_figures *out);

/* Prints one line: tasks/s and the CPU per task, user and system. */
void bench_print(const char *name, long n, int t,
    const struct bench_figures *f);

#endif

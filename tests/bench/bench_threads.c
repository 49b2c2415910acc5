/*
 * bench_threads.c - see bench_threads.h.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>

#include "bench_threads.h"
#include "clock.h"

struct share {
    bench_tasks_fn *run;
    const void *arg;
    long n;
    long failed;
};

static void *
share_main(void *p)
{
    struct share *s = p;

    s->failed = s->run(s->arg, s->n);
    return NULL;
}

double
bench_tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

void
bench_threads(bench_tasks_fn *run, const void *arg, long n, int t,
    struct bench_figures *out)
{
    struct share *s = calloc((size_t)t, sizeof *s);
    pthread_t *th = calloc((size_t)t, sizeof *th);
    struct rusage r0, r1;
    uint64_t t0;

    if (s == NULL || th == NULL) {
        perror("bench_threads");
        exit(1);
    }
    out->failed = 0;
    getrusage(RUSAGE_SELF, &r0);
    t0 = wq_clock_mono_ns();
    for (int i = 0; i < t; i++) {
        s[i] = (struct share){ run, arg, n / t + (i < n % t), 0 };
        if (pthread_create(&th[i], NULL, share_main, &s[i]) != 0) {
            perror("pthread_create");
            exit(1);
        }
    }
    for (int i = 0; i < t; i++) {
        pthread_join(th[i], NULL);
        out->failed += s[i].failed;
    }
    out->wall_s = (double)(wq_clock_mono_ns() - t0) / 1e9;
    getrusage(RUSAGE_SELF, &r1);
    out->user_s = bench_tv_s(r1.ru_utime) - bench_tv_s(r0.ru_utime);
    out->sys_s = bench_tv_s(r1.ru_stime) - bench_tv_s(r0.ru_stime);
    free(s);
    free(th);
}

void
bench_print(const char *name, long n, int t, const struct bench_figures *f)
{
    printf("%-8s %7ld tasks %3d threads  %8.2f s  %9.0f tasks/s  "
        "worker CPU %6.1f us/task (user %.1f, sys %.1f)  failed %ld\n",
        name, n, t, f->wall_s, (double)n / f->wall_s,
        (f->user_s + f->sys_s) * 1e6 / (double)n, f->user_s * 1e6 / (double)n,
        f->sys_s * 1e6 / (double)n, f->failed);
}

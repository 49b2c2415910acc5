/*
 * test_handler_process.c - the process handler's pool (handler_process.c)
 * driven directly, without a broker: the Python reference library runs
 * tasks from several threads, several at once in one program; a program
 * that crashes, hangs past a deadline, writes garbage or cannot start is
 * killed and restarted, its tasks failing with the reason; a crash loop
 * is reported; a task given up at the drain deadline returns at once.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "wq_test.h"
#include "clock.h"
#include "handler.h"

#define PY_LIB WQ_SOURCE_DIR "/worker/handlers/python"

static struct wq_proc_pool *
pool_new(char *const *argv, size_t nproc, size_t in_flight)
{
    struct wq_proc_conf c;
    struct wq_proc_pool *p;
    char err[WQ_ERRLEN];

    memset(&c, 0, sizeof c);
    c.type = "t";
    c.exec.argv = argv;
    c.exec.max_output = 1 << 20;
    c.exec.max_stderr = 4096;
    c.exec.kill_grace_ms = 1000;
    c.exec.umask = 077;
    c.processes = nproc;
    c.max_in_flight = in_flight;
    c.worker_id = "w";
    if (wq_proc_pool_new(&c, &p, err, sizeof err) != 0)
        fail_msg("%s", err);
    return p;
}

struct call {
    struct wq_proc_pool *p;
    struct wq_envelope env;
    struct wq_handler_ctx ctx;
    struct wq_handler_result res;
    pthread_t th;
};

static void
call_init(struct call *c, struct wq_proc_pool *p, const char *payload,
    int64_t timeout_ms)
{
    char err[WQ_ERRLEN];

    memset(c, 0, sizeof *c);
    c->p = p;
    if (wq_envelope_init(&c->env, "q", "t", NULL, payload, strlen(payload),
        err, sizeof err) != 0)
        fail_msg("%s", err);
    c->ctx.env = &c->env;
    c->ctx.task_id = "task";
    c->ctx.attempt = 1;
    c->ctx.max_attempts = 3;
    c->ctx.cancel_fd = -1;
    c->ctx.task_cancel_fd = -1;
    if (timeout_ms > 0) {
        c->ctx.deadline_ns = wq_clock_mono_ns()
            + (uint64_t)timeout_ms * 1000000u;
        c->ctx.deadline_ms = wq_clock_wall_ms() + timeout_ms;
    }
}

static void
call_done(struct call *c)
{
    wq_handler_result_free(&c->res);
    wq_envelope_free(&c->env);
}

static void *
call_main(void *arg)
{
    struct call *c = arg;

    wq_handler_process_run(c->p, &c->ctx, &c->res);
    return NULL;
}

/* Runs one task on this thread; the result stays in c. */
static void
run1(struct call *c, struct wq_proc_pool *p, const char *payload,
    int64_t timeout_ms)
{
    call_init(c, p, payload, timeout_ms);
    wq_handler_process_run(p, &c->ctx, &c->res);
}

static void
test_handler_process_python(void **state)
{
    char *const sync_argv[] = { "/usr/bin/python3", PY_LIB
        "/example_sync.py", NULL };
    char *const async_argv[] = { "/usr/bin/python3", PY_LIB
        "/example_async.py", NULL };
    struct wq_proc_pool *p = pool_new(sync_argv, 2, 4);
    struct call c[16];
    uint64_t t0;

    (void)state;
    signal(SIGPIPE, SIG_IGN);       /* as the worker: a dead program's pipe */
    for (int i = 0; i < 16; i++) {
        call_init(&c[i], p, i == 3 ? "fail" : "abc", 0);
        assert_int_equal(pthread_create(&c[i].th, NULL, call_main, &c[i]), 0);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(c[i].th, NULL);
        if (i == 3) {
            assert_int_equal(c[i].res.outcome, WQ_OUTCOME_PERMANENT);
            assert_contains(c[i].res.error, "told to fail");
        } else {
            if (c[i].res.outcome != WQ_OUTCOME_SUCCEEDED)
                fail_msg("task %d: %s", i, c[i].res.error);
            assert_int_equal(c[i].res.result.len, 3);
            assert_memory_equal(c[i].res.result.data, "ABC", 3);
        }
        call_done(&c[i]);
    }
    /* dies mid-task: FAILED with the reason; the next one runs */
    run1(&c[0], p, "crash", 0);
    assert_int_equal(c[0].res.outcome, WQ_OUTCOME_FAILED);
    assert_contains(c[0].res.error, "exited with status 3");
    call_done(&c[0]);
    run1(&c[0], p, "xyz", 0);
    assert_int_equal(c[0].res.outcome, WQ_OUTCOME_SUCCEEDED);
    call_done(&c[0]);
    assert_null(wq_proc_pool_unhealthy(p));
    wq_proc_pool_free(p);

    /* 6 naps of 600 ms in one program at once: about 600 ms in all */
    p = pool_new(async_argv, 1, 8);
    run1(&c[0], p, "0", 0);         /* started and past its hello */
    call_done(&c[0]);
    t0 = wq_clock_mono_ns();
    for (int i = 0; i < 6; i++) {
        call_init(&c[i], p, "600", 0);
        assert_int_equal(pthread_create(&c[i].th, NULL, call_main, &c[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(c[i].th, NULL);
        assert_int_equal(c[i].res.outcome, WQ_OUTCOME_SUCCEEDED);
        call_done(&c[i]);
    }
    if (wq_clock_mono_ns() - t0 > 2000000000ull)
        fail_msg("6 naps of 600 ms took %llu ms: not concurrent",
            (unsigned long long)((wq_clock_mono_ns() - t0) / 1000000u));
    wq_proc_pool_free(p);
}

static void
test_handler_process_supervision(void **state)
{
    char *const hang_argv[] = { "/bin/sh", "-c",
        "echo '{\"t\":\"hello\",\"protocol\":1}'; exec sleep 100", NULL };
    char *const garbage_argv[] = { "/bin/sh", "-c",
        "echo '{\"t\":\"hello\",\"protocol\":1}'; read h; read t; "
        "echo garbage; exec sleep 100", NULL };
    char *const false_argv[] = { "/bin/false", NULL };
    char *const v2_argv[] = { "/bin/sh", "-c",
        "echo '{\"t\":\"hello\",\"protocol\":2}'; exec sleep 100", NULL };
    struct wq_proc_pool *p;
    struct call c;
    uint64_t t0;
    int fd;

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    p = pool_new(hang_argv, 1, 2);
    t0 = wq_clock_mono_ns();
    run1(&c, p, "x", 300);
    assert_int_equal(c.res.outcome, WQ_OUTCOME_TIMEOUT);
    assert_contains(c.res.error, "past its deadline; process group killed");
    assert_true(wq_clock_mono_ns() - t0 < 3000000000ull);
    call_done(&c);
    /* given up at the drain deadline: at once, ABANDONED */
    call_init(&c, p, "x", 0);
    fd = eventfd(1, EFD_CLOEXEC);
    c.ctx.cancel_fd = fd;
    wq_handler_process_run(p, &c.ctx, &c.res);
    assert_int_equal(c.res.outcome, WQ_OUTCOME_ABANDONED);
    call_done(&c);
    close(fd);
    wq_proc_pool_free(p);

    p = pool_new(garbage_argv, 1, 1);
    run1(&c, p, "x", 0);
    assert_int_equal(c.res.outcome, WQ_OUTCOME_FAILED);
    assert_contains(c.res.error, "broke the protocol: not JSON");
    call_done(&c);
    wq_proc_pool_free(p);

    /* never starts, or speaks another version: a crash loop, reported */
    p = pool_new(false_argv, 1, 1);
    if (!wq_test_waited(wq_proc_pool_unhealthy(p) != NULL, 10000))
        fail_msg("no crash loop reported for /bin/false");
    run1(&c, p, "x", 0);
    assert_int_equal(c.res.outcome, WQ_OUTCOME_FAILED);
    assert_contains(c.res.error, "crash loop");
    call_done(&c);
    wq_proc_pool_free(p);
    p = pool_new(v2_argv, 1, 1);
    if (!wq_test_waited(wq_proc_pool_unhealthy(p) != NULL, 10000))
        fail_msg("no crash loop reported for protocol 2");
    run1(&c, p, "x", 0);
    assert_contains(c.res.error, "speaks protocol version 2");
    call_done(&c);
    wq_proc_pool_free(p);
}

/* Event-driven starts (wq_handler_process_start): done calls counted. */
struct evq {
    pthread_mutex_t lock;
    int done[32];               /* done calls per call index */
    int ndone;
};

struct evcall {
    struct call c;
    struct evq *q;
    int idx;
    struct wq_proc_req *r;
};

static void
ev_done(void *arg)
{
    struct evcall *e = arg;

    pthread_mutex_lock(&e->q->lock);
    e->q->done[e->idx]++;
    e->q->ndone++;
    pthread_mutex_unlock(&e->q->lock);
}

static int
ev_count(struct evq *q)
{
    int n;

    pthread_mutex_lock(&q->lock);
    n = q->ndone;
    pthread_mutex_unlock(&q->lock);
    return n;
}

/*
 * The worker's way: twelve tasks started from one thread under a cork
 * (each program gets its frames in one write) finish through done, once
 * each, with their results; a cancel of a running nap ends it at once as
 * CANCELLED (done called by the cancel, once) and a late cancel changes
 * nothing; a pending task given up is ABANDONED; the program then runs
 * the next task.
 */
static void
test_handler_process_events(void **state)
{
    char *const sync_argv[] = { "/usr/bin/python3", PY_LIB
        "/example_sync.py", NULL };
    char *const async_argv[] = { "/usr/bin/python3", PY_LIB
        "/example_async.py", NULL };
    static struct evq q = { PTHREAD_MUTEX_INITIALIZER, { 0 }, 0 };
    static struct evcall e[16];
    struct wq_proc_pool *p = pool_new(sync_argv, 2, 4);
    uint64_t t0;

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    wq_proc_pool_cork(p);
    for (int i = 0; i < 12; i++) {
        e[i].q = &q;
        e[i].idx = i;
        call_init(&e[i].c, p, i == 5 ? "fail" : "abc", 0);
        e[i].r = wq_handler_process_start(p, &e[i].c.ctx, &e[i].c.res,
            ev_done, &e[i]);
        assert_non_null(e[i].r);
    }
    wq_proc_pool_uncork(p);
    if (!wq_test_waited(ev_count(&q) == 12, 20000))
        fail_msg("%d of 12 started tasks ended", ev_count(&q));
    for (int i = 0; i < 12; i++) {
        assert_int_equal(q.done[i], 1);
        if (i == 5) {
            assert_int_equal(e[i].c.res.outcome, WQ_OUTCOME_PERMANENT);
        } else {
            if (e[i].c.res.outcome != WQ_OUTCOME_SUCCEEDED)
                fail_msg("task %d: %s", i, e[i].c.res.error);
            assert_memory_equal(e[i].c.res.result.data, "ABC", 3);
        }
        /* a cancel after the answer changes nothing */
        wq_proc_req_cancel(p, e[i].r, WQ_OUTCOME_CANCELLED, "late");
        assert_int_equal(q.done[i], 1);
        wq_proc_req_free(e[i].r);
        call_done(&e[i].c);
    }
    wq_proc_pool_free(p);

    /* one program, one slot: a nap runs, a second waits in line */
    memset(q.done, 0, sizeof q.done);
    q.ndone = 0;
    p = pool_new(async_argv, 1, 1);
    for (int i = 0; i < 2; i++) {
        e[i].q = &q;
        e[i].idx = i;
        call_init(&e[i].c, p, "30000", 0);
        e[i].r = wq_handler_process_start(p, &e[i].c.ctx, &e[i].c.res,
            ev_done, &e[i]);
        assert_non_null(e[i].r);
    }
    usleep(300000);
    t0 = wq_clock_mono_ns();
    wq_proc_req_cancel(p, e[0].r, WQ_OUTCOME_CANCELLED, "cancelled by an "
        "operator");
    wq_proc_req_cancel(p, e[1].r, WQ_OUTCOME_ABANDONED, "given up");
    assert_true(wq_clock_mono_ns() - t0 < 1000000000ull);
    assert_int_equal(q.done[0], 1);
    assert_int_equal(q.done[1], 1);
    assert_int_equal(e[0].c.res.outcome, WQ_OUTCOME_CANCELLED);
    assert_contains(e[0].c.res.error, "cancelled by an operator");
    assert_int_equal(e[1].c.res.outcome, WQ_OUTCOME_ABANDONED);
    wq_proc_req_cancel(p, e[0].r, WQ_OUTCOME_CANCELLED, "twice");
    assert_int_equal(q.done[0], 1);
    /* the program is still good for the next task */
    call_done(&e[0].c);
    wq_proc_req_free(e[0].r);
    call_init(&e[0].c, p, "0", 0);
    e[0].r = wq_handler_process_start(p, &e[0].c.ctx, &e[0].c.res, ev_done,
        &e[0]);
    if (!wq_test_waited(ev_count(&q) == 3, 20000))
        fail_msg("the task after the cancel did not end");
    assert_int_equal(e[0].c.res.outcome, WQ_OUTCOME_SUCCEEDED);
    for (int i = 0; i < 2; i++) {
        wq_proc_req_free(e[i].r);
        call_done(&e[i].c);
    }
    wq_proc_pool_free(p);
}

/* pool_free in a thread, so that a hang fails the test, not the alarm */
static void *
free_main(void *arg)
{
    struct wq_proc_pool **pp = arg;

    wq_proc_pool_free(*pp);
    *pp = NULL;
    return NULL;
}

static uint64_t
free_within(struct wq_proc_pool *p, int ms)
{
    static struct wq_proc_pool *volatile held;
    pthread_t th;
    uint64_t t0 = wq_clock_mono_ns();

    held = p;
    assert_int_equal(pthread_create(&th, NULL, free_main, (void *)&held),
        0);
    if (!wq_test_waited(held == NULL, ms))
        fail_msg("wq_proc_pool_free still runs after %d ms", ms);
    pthread_join(th, NULL);
    return (wq_clock_mono_ns() - t0) / 1000000u;
}

/*
 * The stop: a program that ignores its stdin closing is killed after
 * kill_grace and the stop returns (it once slept on, the last program
 * down with nothing left to wake it); one that was never ready is let go
 * without a protocol complaint; a task cancelled in the same write as its
 * frame (before its first step in the program) does not hold the
 * program's exit.
 */
static void
test_handler_process_stop(void **state)
{
    char *const deaf_argv[] = { "/bin/sh", "-c",
        "trap '' TERM; echo '{\"t\":\"hello\",\"protocol\":1}'; "
        "exec sleep 100", NULL };
    char *const async_argv[] = { "/usr/bin/python3", PY_LIB
        "/example_async.py", NULL };
    struct wq_proc_pool *p;
    struct call c;
    static struct evq q = { PTHREAD_MUTEX_INITIALIZER, { 0 }, 0 };
    static struct evcall e;
    uint64_t ms;

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    p = pool_new(deaf_argv, 1, 1);
    usleep(300000);                 /* started, past its hello */
    ms = free_within(p, 10000);
    if (ms < 900)
        fail_msg("the stop took %llu ms: a program that ignores EOF is "
            "given kill_grace (1000 ms)", (unsigned long long)ms);

    /* never ready: stopped while python starts */
    p = pool_new(async_argv, 1, 1);
    free_within(p, 10000);

    p = pool_new(async_argv, 1, 4);
    run1(&c, p, "0", 0);            /* started and past its hello */
    assert_int_equal(c.res.outcome, WQ_OUTCOME_SUCCEEDED);
    call_done(&c);
    wq_proc_pool_cork(p);
    e.q = &q;
    call_init(&e.c, p, "30000", 0);
    e.r = wq_handler_process_start(p, &e.c.ctx, &e.c.res, ev_done, &e);
    assert_non_null(e.r);
    wq_proc_req_cancel(p, e.r, WQ_OUTCOME_CANCELLED, "at once");
    wq_proc_pool_uncork(p);         /* task and cancel in one write */
    assert_int_equal(q.done[0], 1);
    assert_int_equal(e.c.res.outcome, WQ_OUTCOME_CANCELLED);
    ms = free_within(p, 10000);
    if (ms >= 900)
        fail_msg("the program held a task cancelled before it started: "
            "its exit took %llu ms (kill_grace 1000 ms)",
            (unsigned long long)ms);
    wq_proc_req_free(e.r);
    call_done(&e.c);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_handler_process_python),
    cmocka_unit_test(test_handler_process_supervision),
    cmocka_unit_test(test_handler_process_events),
    cmocka_unit_test(test_handler_process_stop),
};

WQ_TEST_MAIN("handler_process", tests)

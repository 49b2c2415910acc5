/*
 * test_handler_builtin.c - the built-in handlers noop, echo, ack, sleep and
 * fail: their options, the payload overrides, cancellation and the
 * deadline, and the rejection of unknown names and options.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "wq_test.h"
#include "clock.h"
#include "handler.h"

struct fixture {
    struct wq_envelope env;
    struct wq_handler_ctx ctx;
    struct wq_handler_result res;
    struct wq_builtin *b;
};

static void
setup(struct fixture *f, const char *name, const char *options,
    const char *payload, uint32_t attempt)
{
    char err[WQ_ERRLEN];

    memset(f, 0, sizeof *f);
    if (wq_envelope_init(&f->env, "q", name, NULL, payload,
        payload != NULL ? strlen(payload) : 0, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (wq_handler_builtin_new(name, options, 1 << 20, &f->b, err,
        sizeof err) != 0)
        fail_msg("%s", err);
    f->ctx.env = &f->env;
    f->ctx.task_id = "t";
    f->ctx.attempt = attempt;
    f->ctx.max_attempts = 25;
    f->ctx.cancel_fd = -1;
    f->ctx.task_cancel_fd = -1;
}

static void
teardown(struct fixture *f)
{
    wq_handler_result_free(&f->res);
    wq_handler_builtin_free(f->b);
    wq_envelope_free(&f->env);
}

static enum wq_outcome
run(struct fixture *f)
{
    wq_handler_result_free(&f->res);
    wq_handler_builtin_run(f->b, &f->ctx, &f->res);
    return f->res.outcome;
}

static void
test_handler_builtin_noop_echo(void **state)
{
    struct fixture f;
    char err[WQ_ERRLEN];
    struct wq_builtin *small;

    (void)state;
    setup(&f, "noop", "", "ignored", 1);
    assert_int_equal(run(&f), WQ_OUTCOME_SUCCEEDED);
    assert_int_equal(f.res.result.len, 0);
    teardown(&f);

    setup(&f, "echo", "", "bytes\001back", 1);
    assert_int_equal(run(&f), WQ_OUTCOME_SUCCEEDED);
    assert_int_equal(f.res.result.len, 10);
    assert_memory_equal(f.res.result.data, "bytes\001back", 10);
    assert_null(f.res.note);
    /* a result over max_output is cut and the note says so */
    assert_int_equal(wq_handler_builtin_new("echo", "", 4, &small, err,
        sizeof err), 0);
    wq_handler_result_free(&f.res);
    wq_handler_builtin_run(small, &f.ctx, &f.res);
    assert_int_equal(f.res.result.len, 4);
    assert_non_null(f.res.note);
    wq_handler_builtin_free(small);
    teardown(&f);

    /* ack: a small result whatever the payload */
    setup(&f, "ack", "", "{\"id\":1,\"user\":\"u1\"}", 1);
    assert_int_equal(run(&f), WQ_OUTCOME_SUCCEEDED);
    assert_int_equal(f.res.result.len, 34);
    assert_memory_equal(f.res.result.data,
        "{\"status\":\"ok\",\"payload_bytes\":20}", 34);
    teardown(&f);
}

static void
test_handler_builtin_sleep(void **state)
{
    struct fixture f;
    uint64_t t0, one = 1;
    int fd;

    (void)state;
    setup(&f, "sleep", "ms=60", NULL, 1);
    t0 = wq_clock_mono_ns();
    assert_int_equal(run(&f), WQ_OUTCOME_SUCCEEDED);
    assert_true(wq_clock_mono_ns() - t0 >= 60000000ull);
    teardown(&f);

    /* from the payload: "40" or "ms=40" */
    setup(&f, "sleep", "", "40", 1);
    t0 = wq_clock_mono_ns();
    assert_int_equal(run(&f), WQ_OUTCOME_SUCCEEDED);
    assert_true(wq_clock_mono_ns() - t0 >= 40000000ull);
    teardown(&f);

    /* a deadline before the end is a timeout */
    setup(&f, "sleep", "", "ms=5000", 1);
    f.ctx.deadline_ns = wq_clock_mono_ns() + 50000000ull;
    t0 = wq_clock_mono_ns();
    assert_int_equal(run(&f), WQ_OUTCOME_TIMEOUT);
    assert_true(wq_clock_mono_ns() - t0 < 1000000000ull);
    teardown(&f);

    /* the worker's cancel ends it at once */
    setup(&f, "sleep", "ms=5000", NULL, 1);
    fd = eventfd(0, EFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, &one, sizeof one), (ssize_t)sizeof one);
    f.ctx.cancel_fd = fd;
    t0 = wq_clock_mono_ns();
    assert_int_equal(run(&f), WQ_OUTCOME_ABANDONED);
    assert_true(wq_clock_mono_ns() - t0 < 1000000000ull);
    close(fd);
    teardown(&f);

    /* an operator's cancel of this task; a wakeup without the flag is
     * ignored */
    {
        atomic_int flag;

        atomic_init(&flag, 0);
        setup(&f, "sleep", "ms=300", NULL, 1);
        fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_int_equal(write(fd, &one, sizeof one), (ssize_t)sizeof one);
        f.ctx.task_cancel_fd = fd;
        f.ctx.cancelled = &flag;
        assert_int_equal(run(&f), WQ_OUTCOME_SUCCEEDED);
        atomic_store(&flag, 1);
        assert_int_equal(write(fd, &one, sizeof one), (ssize_t)sizeof one);
        f.ctx.env = &f.env;
        {
            struct wq_builtin *b = f.b;

            wq_handler_result_free(&f.res);
            wq_handler_builtin_run(b, &f.ctx, &f.res);
        }
        assert_int_equal(f.res.outcome, WQ_OUTCOME_CANCELLED);
        close(fd);
        teardown(&f);
    }
}

static void
test_handler_builtin_fail(void **state)
{
    struct fixture f;

    (void)state;
    /* no option: always */
    setup(&f, "fail", "", NULL, 7);
    assert_int_equal(run(&f), WQ_OUTCOME_FAILED);
    teardown(&f);

    /* until=3: attempts 1 and 2 fail, 3 succeeds */
    setup(&f, "fail", "until=3", NULL, 1);
    assert_int_equal(run(&f), WQ_OUTCOME_FAILED);
    f.ctx.attempt = 2;
    assert_int_equal(run(&f), WQ_OUTCOME_FAILED);
    f.ctx.attempt = 3;
    assert_int_equal(run(&f), WQ_OUTCOME_SUCCEEDED);
    teardown(&f);

    /* the payload overrides the options */
    setup(&f, "fail", "until=3", "until=2", 2);
    assert_int_equal(run(&f), WQ_OUTCOME_SUCCEEDED);
    teardown(&f);
    setup(&f, "fail", "", "permanent", 1);
    assert_int_equal(run(&f), WQ_OUTCOME_PERMANENT);
    teardown(&f);

    /* probabilities 0 and 1 */
    setup(&f, "fail", "p=0", NULL, 1);
    for (int i = 0; i < 100; i++)
        assert_int_equal(run(&f), WQ_OUTCOME_SUCCEEDED);
    teardown(&f);
    setup(&f, "fail", "p=1", NULL, 1);
    for (int i = 0; i < 100; i++)
        assert_int_equal(run(&f), WQ_OUTCOME_FAILED);
    teardown(&f);
    /* p=0.5 fails some and passes some */
    setup(&f, "fail", "p=0.5", NULL, 1);
    {
        int failed = 0;

        for (int i = 0; i < 400; i++)
            failed += run(&f) == WQ_OUTCOME_FAILED;
        assert_true(failed > 100 && failed < 300);
    }
    teardown(&f);
    /* a payload that is not settings is ignored */
    setup(&f, "fail", "p=0", "{\"json\": true}", 1);
    assert_int_equal(run(&f), WQ_OUTCOME_SUCCEEDED);
    teardown(&f);
}

static void
test_handler_builtin_rejects(void **state)
{
    struct wq_builtin *b = NULL;
    char err[WQ_ERRLEN];

    (void)state;
    assert_int_equal(wq_handler_builtin_new("dance", "", 10, &b, err,
        sizeof err), WQ_ECONFIG);
    assert_null(b);
    assert_non_null(strstr(err, "unknown builtin"));
    assert_int_equal(wq_handler_builtin_new("sleep", "ms=abc", 10, &b, err,
        sizeof err), WQ_ECONFIG);
    assert_non_null(strstr(err, "ms=abc"));
    assert_int_equal(wq_handler_builtin_new("fail", "p=2", 10, &b, err,
        sizeof err), WQ_ECONFIG);
    assert_int_equal(wq_handler_builtin_new("noop", "until=3", 10, &b, err,
        sizeof err), WQ_ECONFIG);
    assert_int_equal(wq_handler_builtin_new("echo", "ms=3", 10, &b, err,
        sizeof err), WQ_ECONFIG);
    assert_int_equal(wq_handler_builtin_new("fail", "until=2, p=0.1", 10, &b,
        err, sizeof err), 0);
    wq_handler_builtin_free(b);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_handler_builtin_noop_echo),
    cmocka_unit_test(test_handler_builtin_sleep),
    cmocka_unit_test(test_handler_builtin_fail),
    cmocka_unit_test(test_handler_builtin_rejects),
};

WQ_TEST_MAIN("handler_builtin", tests)

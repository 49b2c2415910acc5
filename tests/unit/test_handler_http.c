/*
 * test_handler_http.c - unit tests of worker/handler_http.c without a
 * worker: the signature against a digest computed elsewhere (Python's
 * hmac), and a transfer to a receiver that never answers, stopped by
 * the worker's cancel descriptor and by an operator's cancel at once
 * rather than at the timeout.  The receiver is a listening socket of
 * this test that accepts nothing, so no TLS is needed: http:// to
 * 127.0.0.1 is allowed.  (tests/integration/test_worker_http.c covers
 * the answers, TLS and the signature check on a real receiver.)
 */
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wq_test.h"
#include "clock.h"
#include "handler.h"

static void
test_handler_http_signature(void **state)
{
    char out[65];

    (void)state;
    /* python3: hmac.new(b"key", b"1700000000.hello", sha256) */
    wq_handler_http_sign("key", "1700000000", "hello", 5, out);
    assert_string_equal(out, "4d583a269f4f276a3fa80ff31b5a01879a848096983"
        "222a17893d198418939aa");
}

/* A listening socket on 127.0.0.1 that never accepts; its port. */
static int
silent_listener(int *fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;

    *fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*fd >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(*fd, 8), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* Runs one task against the silent receiver; `which` 0: the worker's
 * cancel_fd fires, 1: an operator's cancel.  Returns the outcome. */
static enum wq_outcome
run_cancelled(int which, int64_t *ms)
{
    struct wq_envelope env;
    struct wq_handler_ctx ctx;
    struct wq_handler_result res;
    struct wq_httph_conf c;
    char url[64], err[WQ_ERRLEN];
    atomic_int cancelled = 0;
    int lfd, port = silent_listener(&lfd);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    uint64_t one = 1, t0;
    enum wq_outcome o;
    pid_t pid;

    assert_int_equal(wq_handler_http_global_init(err, sizeof err), 0);
    assert_int_equal(wq_envelope_init(&env, "q", "push", "k1", "x", 1, err,
        sizeof err), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/task", port);
    memset(&c, 0, sizeof c);
    c.url = url;
    c.secret = "s";
    c.tls_ca = "";
    c.max_output = 1024;
    memset(&ctx, 0, sizeof ctx);
    ctx.env = &env;
    ctx.task_id = "t";
    ctx.attempt = 1;
    ctx.max_attempts = 3;
    ctx.cancel_fd = which == 0 ? efd : -1;
    ctx.task_cancel_fd = which == 1 ? efd : -1;
    ctx.cancelled = &cancelled;
    ctx.deadline_ns = wq_clock_mono_ns() + 20000000000ull;  /* 20 s */
    /* a child fires the descriptor 300 ms from now */
    if ((pid = fork()) == 0) {
        wq_test_sleep_ms(300);
        if (write(efd, &one, sizeof one) < 0)
            _exit(1);
        _exit(0);
    }
    if (which == 1)
        atomic_store(&cancelled, 1);    /* the flag is set before the fd */
    memset(&res, 0, sizeof res);
    t0 = wq_clock_mono_ns();
    wq_handler_http_run(&c, &ctx, &res);
    *ms = (int64_t)((wq_clock_mono_ns() - t0) / 1000000u);
    o = res.outcome;
    wq_handler_result_free(&res);
    wq_envelope_free(&env);
    close(efd);
    close(lfd);
    return o;
}

static void
test_handler_http_abandoned_at_drain(void **state)
{
    int64_t ms;

    (void)state;
    assert_int_equal(run_cancelled(0, &ms), WQ_OUTCOME_ABANDONED);
    assert_true(ms >= 250 && ms < 5000);
}

static void
test_handler_http_operator_cancel(void **state)
{
    int64_t ms;

    (void)state;
    assert_int_equal(run_cancelled(1, &ms), WQ_OUTCOME_CANCELLED);
    assert_true(ms >= 250 && ms < 5000);
}

/* No receiver at all (a closed port): a retryable failure, at once. */
static void
test_handler_http_refused(void **state)
{
    struct wq_envelope env;
    struct wq_handler_ctx ctx;
    struct wq_handler_result res;
    struct wq_httph_conf c;
    char url[64], err[WQ_ERRLEN];
    int lfd, port = silent_listener(&lfd);

    (void)state;
    close(lfd);     /* nobody listens there now */
    assert_int_equal(wq_handler_http_global_init(err, sizeof err), 0);
    assert_int_equal(wq_envelope_init(&env, "q", "push", "k1", "x", 1, err,
        sizeof err), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/task", port);
    memset(&c, 0, sizeof c);
    c.url = url;
    c.secret = "";
    c.tls_ca = "";
    c.max_output = 1024;
    memset(&ctx, 0, sizeof ctx);
    ctx.env = &env;
    ctx.task_id = "t";
    ctx.attempt = 1;
    ctx.max_attempts = 3;
    ctx.cancel_fd = -1;
    ctx.task_cancel_fd = -1;
    memset(&res, 0, sizeof res);
    wq_handler_http_run(&c, &ctx, &res);
    assert_int_equal(res.outcome, WQ_OUTCOME_FAILED);
    assert_contains(res.error, url);
    wq_handler_result_free(&res);
    wq_envelope_free(&env);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_handler_http_signature),
    cmocka_unit_test(test_handler_http_abandoned_at_drain),
    cmocka_unit_test(test_handler_http_operator_cancel),
    cmocka_unit_test(test_handler_http_refused),
};

WQ_TEST_MAIN("handler_http", tests)

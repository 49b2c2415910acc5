/*
 * test_handler_exec.c - the exec handler without any server: real child
 * processes (/bin/sh, /bin/cat, /usr/bin/env, ...) for success, exit
 * codes, the clean environment, closed descriptors, the process group,
 * timeouts that kill grandchildren, bounded and binary output, large
 * input, programs that cannot start, and cancellation.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wq_test.h"
#include "clock.h"
#include "handler.h"
#include "log.h"

#define assert_contains(hay, needle) do {                                 \
    const char *h_ = (hay), *n_ = (needle);                               \
    if (h_ == NULL || strstr(h_, n_) == NULL)                             \
        fail_msg("\"%s\"\n    does not contain \"%s\"", h_ ? h_ : "(null)", \
            n_);                                                          \
} while (0)

static const int permanent_default[] = { 65 };

/* A task and an exec configuration to run it with. */
struct fixture {
    struct wq_envelope env;
    struct wq_handler_ctx ctx;
    struct wq_exec_conf conf;
    struct wq_handler_result res;
};

static void
setup(struct fixture *f, const char *const *argv, const void *payload,
    size_t len)
{
    char err[WQ_ERRLEN];

    memset(f, 0, sizeof *f);
    /* the daemon ignores SIGPIPE; so must a process that runs programs */
    signal(SIGPIPE, SIG_IGN);
    if (wq_envelope_init(&f->env, "q-exec", "resize", "key 1/ü", payload,
        len, err, sizeof err) != 0)
        fail_msg("%s", err);
    f->ctx.env = &f->env;
    f->ctx.task_id = "0190a5f8-7c1e-7a3b-9c4d-5e6f708192a3";
    f->ctx.attempt = 3;
    f->ctx.max_attempts = 5;
    f->ctx.worker_id = "w-test";
    f->ctx.cancel_fd = -1;
    f->ctx.task_cancel_fd = -1;
    f->conf.argv = (char *const *)argv;
    f->conf.timeout_ms = 20000;
    f->conf.kill_grace_ms = 1000;
    f->conf.permanent = permanent_default;
    f->conf.npermanent = 1;
    f->conf.max_output = 1 << 20;
    f->conf.max_stderr = 4096;
}

static void
run(struct fixture *f)
{
    wq_handler_exec_run(&f->conf, &f->ctx, &f->res);
}

static void
teardown(struct fixture *f)
{
    wq_handler_result_free(&f->res);
    wq_envelope_free(&f->env);
}

/* The result as a NUL-terminated string (results are bytes). */
static const char *
result_str(struct fixture *f)
{
    if (wq_buf_append(&f->res.result, "", 1) != 0)
        fail_msg("out of memory");
    f->res.result.len--;
    return f->res.result.data;
}

/* 1 if the process is gone (no such pid, or a zombie nobody reaped). */
static int
process_gone(pid_t pid)
{
    char path[64], buf[256], *p;
    FILE *fp;
    size_t n;

    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 1;
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if ((fp = fopen(path, "r")) == NULL)
        return 1;
    n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' && p[2] == 'Z';
}

static void
test_handler_exec_success_stdin_to_stdout(void **state)
{
    const char *const argv[] = { "/bin/cat", NULL };
    struct fixture f;

    (void)state;
    setup(&f, argv, "hello, world", 12);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_int_equal(f.res.result.len, 12);
    assert_memory_equal(f.res.result.data, "hello, world", 12);
    assert_null(f.res.error);
    assert_null(f.res.note);
    teardown(&f);
}

static void
test_handler_exec_clean_environment(void **state)
{
    const char *const argv[] = { "/usr/bin/env", NULL };
    char *const extra[] = { "LANG=C.UTF-8", NULL };
    struct fixture f;
    const char *out;
    int lines = 0;

    (void)state;
    setenv("SECRET_OF_THE_WORKER", "leak", 1);
    setup(&f, argv, NULL, 0);
    f.conf.env = extra;
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    out = result_str(&f);
    assert_contains(out, "PATH=/usr/bin:/bin\n");
    assert_contains(out,
        "WORKQ_TASK_ID=0190a5f8-7c1e-7a3b-9c4d-5e6f708192a3\n");
    assert_contains(out, "WORKQ_KEY=key 1/ü\n");
    assert_contains(out, "WORKQ_ATTEMPT=3\n");
    assert_contains(out, "WORKQ_QUEUE=q-exec\n");
    assert_contains(out, "WORKQ_TYPE=resize\n");
    assert_contains(out, "LANG=C.UTF-8\n");
    if (strstr(out, "SECRET_OF_THE_WORKER") != NULL)
        fail_msg("the worker's environment leaked:\n%s", out);
    for (const char *p = out; *p != '\0'; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 7);
    teardown(&f);
}

static void
test_handler_exec_other_fds_closed(void **state)
{
    const char *const argv[] = { "/bin/ls", "/proc/self/fd", NULL };
    struct fixture f;
    const char *out;
    int fd;

    (void)state;
    /* a descriptor without O_CLOEXEC, as a careless library leaves them */
    fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(dup2(fd, 77), 77);
    setup(&f, argv, NULL, 0);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    out = result_str(&f);
    /* 0, 1, 2 and ls's own directory descriptor, nothing else */
    assert_string_equal(out, "0\n1\n2\n3\n");
    close(77);
    close(fd);
    teardown(&f);
}

static void
test_handler_exec_own_process_group(void **state)
{
    const char *const argv[] = { "/bin/sh", "-c",
        "echo $$; cut -d' ' -f5 /proc/$$/stat", NULL };
    struct fixture f;
    long pid, pgid;

    (void)state;
    setup(&f, argv, NULL, 0);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_int_equal(sscanf(result_str(&f), "%ld %ld", &pid, &pgid), 2);
    assert_int_equal(pid, pgid);
    assert_int_not_equal(pgid, (long)getpgrp());
    teardown(&f);
}

static void
test_handler_exec_exit_codes(void **state)
{
    const char *const tempfail[] = { "/bin/sh", "-c",
        "echo 'try later' >&2; exit 75", NULL };
    const char *const dataerr[] = { "/bin/sh", "-c",
        "echo 'bad input' >&2; exit 65", NULL };
    const char *const custom[] = { "/bin/sh", "-c", "exit 3", NULL };
    const char *const killed[] = { "/bin/sh", "-c", "kill -KILL $$", NULL };
    static const int perm3[] = { 3, 4 };
    struct fixture f;

    (void)state;
    setup(&f, tempfail, NULL, 0);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_FAILED);
    assert_contains(f.res.error, "exit status 75");
    assert_contains(f.res.error, "try later");
    teardown(&f);

    setup(&f, dataerr, NULL, 0);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_PERMANENT);
    assert_contains(f.res.error, "exit status 65 (permanent)");
    assert_contains(f.res.error, "bad input");
    teardown(&f);

    setup(&f, custom, NULL, 0);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_FAILED);
    teardown(&f);
    setup(&f, custom, NULL, 0);
    f.conf.permanent = perm3;
    f.conf.npermanent = 2;
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_PERMANENT);
    teardown(&f);

    setup(&f, killed, NULL, 0);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_FAILED);
    assert_contains(f.res.error, "killed by signal 9 (SIGKILL)");
    teardown(&f);
}

static void
test_handler_exec_timeout_kills_group(void **state)
{
    /* the grandchild ignores SIGTERM: only SIGKILL after the grace
     * period ends it, and it must end with its parent */
    const char *const argv[] = { "/bin/sh", "-c",
        "sh -c 'trap \"\" TERM; echo $$ > grandchild.pid; exec sleep 100' &"
        " wait", NULL };
    struct fixture f;
    uint64_t t0;
    FILE *fp;
    long gc = 0;

    (void)state;
    setup(&f, argv, NULL, 0);
    f.conf.timeout_ms = 500;
    f.conf.kill_grace_ms = 300;
    t0 = wq_clock_mono_ns();
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_TIMEOUT);
    assert_contains(f.res.error, "timed out after 500 ms");
    assert_true(wq_clock_mono_ns() - t0 < 5000000000ull);
    fp = fopen("grandchild.pid", "r");
    assert_non_null(fp);
    assert_int_equal(fscanf(fp, "%ld", &gc), 1);
    fclose(fp);
    for (int i = 0; i < 100 && !process_gone((pid_t)gc); i++)
        usleep(20000);
    if (!process_gone((pid_t)gc))
        fail_msg("grandchild %ld outlived the timeout", gc);
    teardown(&f);
}

static void
test_handler_exec_leftovers_killed_after_exit(void **state)
{
    /* a program that leaves a background child holding stdout: the task
     * ends when the program ends, and the leftover goes too */
    const char *const argv[] = { "/bin/sh", "-c",
        "sleep 100 & echo $! > left.pid; echo done", NULL };
    struct fixture f;
    uint64_t t0;
    FILE *fp;
    long pid = 0;

    (void)state;
    setup(&f, argv, NULL, 0);
    t0 = wq_clock_mono_ns();
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_string_equal(result_str(&f), "done\n");
    assert_true(wq_clock_mono_ns() - t0 < 3000000000ull);
    fp = fopen("left.pid", "r");
    assert_non_null(fp);
    assert_int_equal(fscanf(fp, "%ld", &pid), 1);
    fclose(fp);
    for (int i = 0; i < 100 && !process_gone((pid_t)pid); i++)
        usleep(20000);
    assert_true(process_gone((pid_t)pid));
    teardown(&f);
}

static void
test_handler_exec_output_bounded(void **state)
{
    const char *const argv[] = { "/bin/sh", "-c",
        "head -c 3000000 /dev/zero; head -c 100000 /dev/zero >&2", NULL };
    struct fixture f;

    (void)state;
    setup(&f, argv, NULL, 0);
    f.conf.max_output = 1 << 20;
    f.conf.max_stderr = 1000;
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_int_equal(f.res.result.len, 1 << 20);
    assert_non_null(f.res.note);
    assert_contains(f.res.note, "stdout cut at 1048576 of 3000000 bytes");
    teardown(&f);
}

static void
test_handler_exec_binary_output(void **state)
{
    static const unsigned char want[] = { 0xff, 0xfe, 0x00, 'a', 0xc3, 0x28,
        0x80, '\n', 0x00 };
    const char *const argv[] = { "/usr/bin/printf",
        "\\377\\376\\000a\\303\\050\\200\\n\\000", NULL };
    struct fixture f;

    (void)state;
    setup(&f, argv, NULL, 0);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_int_equal(f.res.result.len, sizeof want);
    assert_memory_equal(f.res.result.data, want, sizeof want);
    teardown(&f);
}

static void
test_handler_exec_binary_stderr_sanitized(void **state)
{
    const char *const argv[] = { "/bin/sh", "-c",
        "printf 'bad \\377\\000 byte\\n' >&2; exit 1", NULL };
    struct fixture f;

    (void)state;
    setup(&f, argv, NULL, 0);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_FAILED);
    assert_contains(f.res.error, "bad \\xff\\x00 byte");
    teardown(&f);
}

static void
test_handler_exec_large_input(void **state)
{
    const char *const argv[] = { "/bin/cat", NULL };
    size_t n = WQ_PAYLOAD_MAX;
    char *payload = malloc(n);
    struct fixture f;

    (void)state;
    assert_non_null(payload);
    for (size_t i = 0; i < n; i++)
        payload[i] = (char)(i * 7 + i / 251);
    setup(&f, argv, payload, n);
    f.conf.max_output = n;
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_int_equal(f.res.result.len, n);
    assert_memory_equal(f.res.result.data, payload, n);
    teardown(&f);
    free(payload);
}

static void
test_handler_exec_ignores_stdin(void **state)
{
    /* exits without reading a large stdin: our write gets EPIPE */
    const char *const argv[] = { "/bin/true", NULL };
    size_t n = WQ_PAYLOAD_MAX;
    char *payload = calloc(1, n);
    struct fixture f;

    (void)state;
    assert_non_null(payload);
    setup(&f, argv, payload, n);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    teardown(&f);
    free(payload);
}

static void
test_handler_exec_cannot_start(void **state)
{
    const char *const argv[] = { "/nonexistent/program", NULL };
    struct fixture f;

    (void)state;
    setup(&f, argv, NULL, 0);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_FAILED);
    assert_contains(f.res.error, "/nonexistent/program");
    teardown(&f);
}

static void
test_handler_exec_cancel(void **state)
{
    const char *const argv[] = { "/bin/sleep", "100", NULL };
    struct fixture f;
    uint64_t one = 1, t0;
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    (void)state;
    assert_true(fd >= 0);
    setup(&f, argv, NULL, 0);
    f.ctx.cancel_fd = fd;
    assert_int_equal(write(fd, &one, sizeof one), (ssize_t)sizeof one);
    t0 = wq_clock_mono_ns();
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_ABANDONED);
    assert_true(wq_clock_mono_ns() - t0 < 2000000000ull);
    teardown(&f);
    close(fd);
}

static void
test_handler_exec_operator_cancel(void **state)
{
    /* the program ignores SIGTERM: SIGKILL follows after the grace */
    const char *const argv[] = { "/bin/sh", "-c",
        "trap '' TERM; sleep 100 & wait", NULL };
    struct fixture f;
    atomic_int flag;
    uint64_t one = 1, t0;
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    (void)state;
    assert_true(fd >= 0);
    atomic_init(&flag, 0);
    setup(&f, argv, NULL, 0);
    f.conf.kill_grace_ms = 200;
    f.ctx.task_cancel_fd = fd;
    f.ctx.cancelled = &flag;
    /* a stale wakeup (flag clear) changes nothing */
    assert_int_equal(write(fd, &one, sizeof one), (ssize_t)sizeof one);
    f.conf.timeout_ms = 400;
    t0 = wq_clock_mono_ns();
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_TIMEOUT);
    teardown(&f);

    setup(&f, argv, NULL, 0);
    f.conf.kill_grace_ms = 200;
    f.ctx.task_cancel_fd = fd;
    f.ctx.cancelled = &flag;
    atomic_store(&flag, 1);
    assert_int_equal(write(fd, &one, sizeof one), (ssize_t)sizeof one);
    t0 = wq_clock_mono_ns();
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_CANCELLED);
    assert_contains(f.res.error, "cancelled by an operator");
    assert_true(wq_clock_mono_ns() - t0 < 3000000000ull);
    teardown(&f);
    close(fd);
}

static void
test_handler_exec_many_at_once(void **state)
{
    /* sequential runs must not leak descriptors or children */
    const char *const argv[] = { "/bin/cat", NULL };
    struct fixture f;
    int before, after;

    (void)state;
    before = dup(0);
    close(before);
    for (int i = 0; i < 50; i++) {
        setup(&f, argv, "x", 1);
        run(&f);
        assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
        teardown(&f);
    }
    after = dup(0);
    close(after);
    assert_int_equal(before, after);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_handler_exec_success_stdin_to_stdout),
    cmocka_unit_test(test_handler_exec_clean_environment),
    cmocka_unit_test(test_handler_exec_other_fds_closed),
    cmocka_unit_test(test_handler_exec_own_process_group),
    cmocka_unit_test(test_handler_exec_exit_codes),
    cmocka_unit_test(test_handler_exec_timeout_kills_group),
    cmocka_unit_test(test_handler_exec_leftovers_killed_after_exit),
    cmocka_unit_test(test_handler_exec_output_bounded),
    cmocka_unit_test(test_handler_exec_binary_output),
    cmocka_unit_test(test_handler_exec_binary_stderr_sanitized),
    cmocka_unit_test(test_handler_exec_large_input),
    cmocka_unit_test(test_handler_exec_ignores_stdin),
    cmocka_unit_test(test_handler_exec_cannot_start),
    cmocka_unit_test(test_handler_exec_cancel),
    cmocka_unit_test(test_handler_exec_operator_cancel),
    cmocka_unit_test(test_handler_exec_many_at_once),
};

WQ_TEST_MAIN("handler_exec", tests)

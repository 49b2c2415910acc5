/*
 * test_handler_exec.c - the exec handler without any server: real child
 * processes (/bin/sh, /bin/cat, /usr/bin/env, ...) for success, exit
 * codes, the clean environment, closed descriptors, the process group,
 * timeouts that kill grandchildren, bounded and binary output, large
 * input, programs that cannot start, and cancellation; and what the
 * child is given before execve, read back from its /proc/self: resource
 * limits (and programs that exceed them), no_new_privs, signal
 * dispositions and mask, the umask, and a payload that stays out of
 * argv and the environment.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wq_test.h"
#include "clock.h"
#include "config.h"
#include "handler.h"
#include "log.h"

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
    /* what a worker's environment may hold: none of it may reach the
     * program */
    setenv("SECRET_OF_THE_WORKER", "leak", 1);
    setenv("WORKQ_POSTGRES_CONNINFO", "host=db password=hunter2", 1);
    setenv("WORKQ_POSTGRES_PASSWORD_FILE", "/run/credentials/pg", 1);
    setenv("WORKQ_TEST_SECRET", "s3cret", 1);
    setenv("PGPASSWORD", "hunter2", 1);
    setenv("LD_PRELOAD", "/nonexistent/evil.so", 1);
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
    if (strstr(out, "SECRET_OF_THE_WORKER") != NULL
        || strstr(out, "POSTGRES") != NULL || strstr(out, "hunter2") != NULL
        || strstr(out, "WORKQ_TEST_SECRET") != NULL
        || strstr(out, "PGPASSWORD") != NULL
        || strstr(out, "LD_PRELOAD") != NULL)
        fail_msg("the worker's environment leaked:\n%s", out);
    /* exactly the documented variables and the configured one */
    for (const char *p = out; *p != '\0'; p++) {
        static const char *const allowed[] = { "PATH=", "WORKQ_TASK_ID=",
            "WORKQ_KEY=", "WORKQ_ATTEMPT=", "WORKQ_QUEUE=", "WORKQ_TYPE=",
            "LANG=" };
        const char *nl = strchr(p, '\n');
        size_t i;

        for (i = 0; i < WQ_ARRAY_LEN(allowed); i++)
            if (strncmp(p, allowed[i], strlen(allowed[i])) == 0)
                break;
        if (i == WQ_ARRAY_LEN(allowed))
            fail_msg("unexpected variable in the program's environment: "
                "%.*s", nl != NULL ? (int)(nl - p) : (int)strlen(p), p);
        lines++;
        if (nl == NULL)
            break;
        p = nl;
    }
    assert_int_equal(lines, 7);
    teardown(&f);
}

static void
test_handler_exec_other_fds_closed(void **state)
{
    const char *const argv[] = { "/bin/ls", "/proc/self/fd", NULL };
    /* -l: where each descriptor leads; ls reads the directory through a
     * descriptor of its own, the lowest free one */
    const char *const argv_l[] = { "/bin/ls", "-l", "/proc/self/fd", NULL };
    struct fixture f;
    const char *out, *p;
    int fd, sv[2], pp[2], seen[4] = { 0 }, n = 0;

    (void)state;
    /* descriptors without O_CLOEXEC, as a careless library leaves them:
     * a file (on the lowest free number, 3 in a test), a copy of it high
     * up, a socket pair and a pipe */
    fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(dup2(fd, 77), 77);
    assert_int_equal(dup2(fd, 1000), 1000);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(pipe(pp), 0);
    setup(&f, argv, NULL, 0);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    out = result_str(&f);
    /* 0, 1, 2 and ls's own directory descriptor, nothing else */
    assert_string_equal(out, "0\n1\n2\n3\n");
    teardown(&f);

    setup(&f, argv_l, NULL, 0);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    out = result_str(&f);
    /* lines "lr-x------ 1 u g 64 DATE 0 -> pipe:[123]" after "total 0" */
    for (p = strchr(out, '\n'); p != NULL && p[1] != '\0';
        p = strchr(p + 1, '\n')) {
        const char *arrow = strstr(p + 1, " -> "), *num;
        const char *eol = strchr(p + 1, '\n');
        long no;

        if (arrow == NULL || (eol != NULL && arrow > eol))
            fail_msg("cannot read this ls -l line: %.*s",
                eol != NULL ? (int)(eol - p - 1) : 80, p + 1);
        for (num = arrow; num > p + 1 && num[-1] != ' '; num--)
            ;
        no = strtol(num, NULL, 10);
        if (no >= 0 && no <= 3)
            seen[no] = 1;
        else
            fail_msg("descriptor %ld is open in the program:\n%s", no, out);
        n++;
        if (no <= 2 && strncmp(arrow + 4, "pipe:[", 6) != 0)
            fail_msg("descriptor %ld is not one of our pipes:\n%s", no,
                out);
        if (no == 3 && (strncmp(arrow + 4, "/proc/", 6) != 0
            || strncmp(eol - 3, "/fd", 3) != 0))
            fail_msg("descriptor 3 is not ls's own directory:\n%s", out);
    }
    assert_int_equal(n, 4);
    assert_true(seen[0] && seen[1] && seen[2] && seen[3]);
    teardown(&f);
    close(pp[0]);
    close(pp[1]);
    close(sv[0]);
    close(sv[1]);
    close(1000);
    close(77);
    close(fd);
}

/* A worker started with stdin closed: our pipes may then get 0, 1 or 2
 * themselves, and must still end up on the right numbers, inheritable. */
static void
test_handler_exec_worker_without_stdin(void **state)
{
    const char *const argv[] = { "/bin/cat", NULL };
    struct fixture f;

    (void)state;
    close(0);
    setup(&f, argv, "through fd 0", 12);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_int_equal(f.res.result.len, 12);
    assert_memory_equal(f.res.result.data, "through fd 0", 12);
    teardown(&f);
}

/*
 * The payload reaches the program on stdin only: the program prints its
 * own command line and environment, then its stdin; the marker must be
 * in the last part alone.
 */
static void
test_handler_exec_payload_not_in_argv_or_env(void **state)
{
    static const char script[] = "cat /proc/$$/cmdline; printf '\\n--\\n';"
        " cat /proc/$$/environ; printf '\\n--\\n'; cat";
    const char *const argv[] = { "/bin/sh", "-c", script, NULL };
    static const char marker[] = "PAYLOAD-MARKER-7f3a91";
    static const char want_cmdline[] = "/bin/sh\0-c\0";
    struct fixture f;
    const char *data, *sep1, *sep2, *end;

    (void)state;
    setup(&f, argv, marker, strlen(marker));
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    data = f.res.result.data;
    end = data + f.res.result.len;
    sep1 = memmem(data, f.res.result.len, "\n--\n", 4);
    assert_non_null(sep1);
    sep2 = memmem(sep1 + 4, (size_t)(end - sep1 - 4), "\n--\n", 4);
    assert_non_null(sep2);
    /* argv is the configured one, byte for byte */
    assert_int_equal((size_t)(sep1 - data),
        sizeof want_cmdline - 1 + sizeof script);
    assert_memory_equal(data, want_cmdline, sizeof want_cmdline - 1);
    assert_memory_equal(data + sizeof want_cmdline - 1, script,
        sizeof script);
    if (memmem(data, (size_t)(sep2 - data), marker, strlen(marker)) != NULL)
        fail_msg("the payload is in the program's argv or environment");
    /* and it did arrive, on stdin */
    assert_int_equal((size_t)(end - sep2 - 4), strlen(marker));
    assert_memory_equal(sep2 + 4, marker, strlen(marker));
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
test_handler_exec_dies_with_worker(void **state)
{
    /* a worker killed with SIGKILL cannot kill its programs: the kernel
     * does (PR_SET_PDEATHSIG), so no orphan goes on with a task that
     * will run again elsewhere */
    const char *const argv[] = { "/bin/sh", "-c",
        "echo $$ > prog.pid.tmp; mv prog.pid.tmp prog.pid; exec sleep 60",
        NULL };
    struct fixture f;
    pid_t worker;
    FILE *fp = NULL;
    long pid = 0;
    int st;

    (void)state;
    worker = fork();
    assert_true(worker >= 0);
    if (worker == 0) {
        setup(&f, argv, NULL, 0);
        run(&f);
        _exit(1);               /* not reached: killed while it runs */
    }
    for (int i = 0; i < 250 && (fp = fopen("prog.pid", "r")) == NULL; i++)
        usleep(20000);
    assert_non_null(fp);
    assert_int_equal(fscanf(fp, "%ld", &pid), 1);
    fclose(fp);
    assert_false(process_gone((pid_t)pid));
    assert_int_equal(kill(worker, SIGKILL), 0);
    assert_int_equal(waitpid(worker, &st, 0), worker);
    for (int i = 0; i < 100 && !process_gone((pid_t)pid); i++)
        usleep(20000);
    assert_true(process_gone((pid_t)pid));
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

/* ---- what the child gets before execve --------------------------------- */

/*
 * The soft and hard values of one line of /proc/PID/limits ("Max open
 * files            1024                 1048576              files"),
 * as written there ("unlimited" or a number).
 */
static void
limit_of(const char *limits, const char *name, char soft[32],
    char hard[32])
{
    const char *p = strstr(limits, name);

    if (p == NULL || (p != limits && p[-1] != '\n'))
        fail_msg("no \"%s\" line in:\n%s", name, limits);
    /* the name is padded to 26 columns */
    if (sscanf(p + 26, "%31s %31s", soft, hard) != 2)
        fail_msg("cannot read the \"%s\" line in:\n%s", name, limits);
}

static void
assert_limit(const char *limits, const char *name, const char *soft,
    const char *hard)
{
    char s[32], h[32];

    limit_of(limits, name, s, h);
    if (strcmp(s, soft) != 0 || strcmp(h, hard) != 0)
        fail_msg("%s: soft %s, hard %s; expected %s, %s", name, s, h, soft,
            hard);
}

/* The whole of a (small) file, NUL-terminated; caller frees. */
static char *
slurp(const char *path)
{
    char *buf = malloc(65536);
    size_t n;
    FILE *fp;

    assert_non_null(buf);
    fp = fopen(path, "r");
    if (fp == NULL)
        fail_msg("cannot open %s", path);
    n = fread(buf, 1, 65535, fp);
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

static void
test_handler_exec_limits_in_child(void **state)
{
    const char *const argv[] = { "/bin/cat", "/proc/self/limits", NULL };
    struct fixture f;
    const char *out;
    char *mine, s[32], h[32];

    (void)state;
    setup(&f, argv, NULL, 0);
    f.conf.limit_as = 512u << 20;
    f.conf.limit_cpu_s = 30;
    f.conf.limit_nofile = 100;
    f.conf.limit_nproc = 5000;
    f.conf.limit_fsize = 8u << 20;
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    out = result_str(&f);
    assert_limit(out, "Max address space", "536870912", "536870912");
    /* SIGXCPU at the soft limit, SIGKILL a second later */
    assert_limit(out, "Max cpu time", "30", "31");
    assert_limit(out, "Max open files", "100", "100");
    assert_limit(out, "Max processes", "5000", "5000");
    assert_limit(out, "Max file size", "8388608", "8388608");
    assert_limit(out, "Max core file size", "0", "0");
    teardown(&f);

    /* nothing configured: the worker's limits, but no core dumps; with
     * core_dumps, the worker's core limit too */
    mine = slurp("/proc/self/limits");
    for (int core = 0; core <= 1; core++) {
        static const char *const names[] = { "Max address space",
            "Max cpu time", "Max open files", "Max processes",
            "Max file size", "Max core file size" };

        setup(&f, argv, NULL, 0);
        f.conf.core_dumps = core;
        run(&f);
        assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
        out = result_str(&f);
        for (size_t i = 0; i < WQ_ARRAY_LEN(names); i++) {
            if (i == 5 && !core) {
                assert_limit(out, names[i], "0", "0");
                continue;
            }
            limit_of(mine, names[i], s, h);
            assert_limit(out, names[i], s, h);
        }
        teardown(&f);
    }
    free(mine);
}

static void
test_handler_exec_file_size_exceeded(void **state)
{
    /* head itself writes the file and gets SIGXFSZ at 1 MiB */
    const char *const argv[] = { "/bin/sh", "-c",
        "exec head -c 2097152 /dev/zero > big", NULL };
    struct fixture f;
    struct stat st;

    (void)state;
    setup(&f, argv, NULL, 0);
    f.conf.limit_fsize = 1u << 20;
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_FAILED);
    assert_contains(f.res.error, "killed by signal 25 (SIGXFSZ)");
    assert_int_equal(stat("big", &st), 0);
    assert_int_equal(st.st_size, 1 << 20);
    teardown(&f);

    /* the same program without the limit succeeds */
    setup(&f, argv, NULL, 0);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_int_equal(stat("big", &st), 0);
    assert_int_equal(st.st_size, 2 << 20);
    teardown(&f);
}

static void
test_handler_exec_memory_exceeded(void **state)
{
    /* tail -c N of a pipe keeps N bytes in memory: 64 MiB does not fit
     * in an address space of 32 MiB */
    const char *const argv[] = { "/bin/sh", "-c",
        "head -c 67108864 /dev/zero | tail -c 67108000 > /dev/null", NULL };
    struct fixture f;

    (void)state;
    setup(&f, argv, NULL, 0);
    f.conf.limit_as = 32u << 20;
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_FAILED);
    assert_contains(f.res.error, "exit status 1");
    assert_contains(f.res.error, "memory exhausted");
    teardown(&f);

    setup(&f, argv, NULL, 0);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    teardown(&f);
}

static void
test_handler_exec_cpu_exceeded(void **state)
{
    const char *const argv[] = { "/bin/sh", "-c", "while :; do :; done",
        NULL };
    struct fixture f;
    uint64_t t0;

    (void)state;
    setup(&f, argv, NULL, 0);
    f.conf.limit_cpu_s = 1;
    t0 = wq_clock_mono_ns();
    run(&f);
    /* the soft limit's SIGXCPU, not the hard limit's SIGKILL, nor the
     * 20 s timeout */
    assert_int_equal(f.res.outcome, WQ_OUTCOME_FAILED);
    assert_contains(f.res.error, "killed by signal 24 (SIGXCPU)");
    assert_true(wq_clock_mono_ns() - t0 < 10000000000ull);
    teardown(&f);
}

static void
test_handler_exec_limit_cannot_be_set(void **state)
{
    const char *const argv[] = { "/bin/true", NULL };
    struct fixture f;
    char *nr_open = slurp("/proc/sys/fs/nr_open"), want[160];
    unsigned long long above = strtoull(nr_open, NULL, 10) + 1;

    (void)state;
    /* above fs.nr_open: refused even to root */
    setup(&f, argv, NULL, 0);
    f.conf.limit_nofile = above;
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_FAILED);
    snprintf(want, sizeof want, "cannot start /bin/true: "
        "setrlimit(RLIMIT_NOFILE, %llu): %s", above, strerror(EPERM));
    assert_contains(f.res.error, want);
    teardown(&f);
    free(nr_open);
}

/* One "Name:\tvalue" line of /proc/PID/status text, into buf. */
static const char *
status_field(const char *status, const char *name, char *buf, size_t len)
{
    char key[64];
    const char *p;
    size_t n;

    snprintf(key, sizeof key, "\n%s:\t", name);
    if ((p = strstr(status, key)) == NULL)
        fail_msg("no %s in:\n%s", name, status);
    p += strlen(key);
    n = strcspn(p, "\n");
    snprintf(buf, len, "%.*s", (int)n, p);
    return buf;
}

static void
test_handler_exec_no_new_privs_and_signals(void **state)
{
    const char *const argv[] = { "/bin/cat", "/proc/self/status", NULL };
    struct fixture f;
    struct sigaction sa;
    sigset_t block;
    char v[64];

    (void)state;
    /* the worker ignores SIGPIPE (setup does too), handles SIGTERM and
     * may have signals blocked in the calling thread: none of it may
     * reach the program */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGRTMIN + 1, &sa, NULL);
#if defined(__x86_64__) || defined(__aarch64__)
    {
        /* glibc's own 32 and 33 ignored, as GNU make leaves them to its
         * children: only the system call can set them (the kernel struct
         * sigaction starts with the handler on these ABIs) */
        unsigned long ksa[4] = { (unsigned long)SIG_IGN, 0, 0, 0 };

        assert_int_equal(syscall(SYS_rt_sigaction, 33, ksa, NULL,
            (size_t)(_NSIG - 1) / 8), 0);
    }
#endif
    sa.sa_handler = SIG_DFL;
    sigaction(SIGHUP, &sa, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, NULL);
    setup(&f, argv, NULL, 0);
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_string_equal(status_field(result_str(&f), "NoNewPrivs", v,
        sizeof v), "1");
    assert_string_equal(status_field(result_str(&f), "SigIgn", v, sizeof v),
        "0000000000000000");
    assert_string_equal(status_field(result_str(&f), "SigBlk", v, sizeof v),
        "0000000000000000");
    teardown(&f);
    /* and the worker's own state is as it was */
    sigprocmask(SIG_BLOCK, NULL, &block);
    assert_true(sigismember(&block, SIGUSR2));
}

static void
test_handler_exec_umask(void **state)
{
    const char *const argv[] = { "/bin/sh", "-c",
        "grep '^Umask:' /proc/self/status; touch made; stat -c %a made",
        NULL };
    struct fixture f;

    (void)state;
    umask(0);       /* the worker's own umask is not the program's */
    setup(&f, argv, NULL, 0);
    f.conf.umask = 0077;
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_string_equal(result_str(&f), "Umask:\t0077\n600\n");
    teardown(&f);
    unlink("made");

    setup(&f, argv, NULL, 0);
    f.conf.umask = 0027;
    run(&f);
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_string_equal(result_str(&f), "Umask:\t0027\n640\n");
    teardown(&f);
    assert_int_equal(umask(022), 0);
}

/*
 * Runs the task of f through a handler configured from `group` (the
 * inside of one element of `handlers`, type "resize"), the way the
 * worker does: config, registry, wq_handlers_run.
 */
static void
run_configured(struct fixture *f, const char *group)
{
    struct wq_config cfg;
    wq_handlers *h = NULL;
    const struct wq_handler *x;
    char err[WQ_CONFIG_ERRLEN], *text;

    text = malloc(strlen(group) + 64);
    assert_non_null(text);
    sprintf(text, "handlers = ( { type = \"resize\"; %s } );\n", group);
    if (wq_config_load_string(text, "exec.conf", &cfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (wq_handlers_new(&cfg, &h, err, sizeof err) != 0)
        fail_msg("%s", err);
    x = wq_handlers_find(h, "q-exec", "resize");
    assert_non_null(x);
    assert_int_equal(x->kind, WQ_HANDLER_EXEC);
    wq_handlers_run(x, &f->ctx, &f->res);
    wq_handlers_free(h);
    wq_config_free(&cfg);
    free(text);
}

/* The defaults a configured handler gets: umask 0077, no core dumps, 1G
 * of address space, 300 s of CPU, 1024 descriptors and processes (0: the
 * worker's own); and configured values reach the program. */
static void
test_handler_exec_configured_defaults_and_limits(void **state)
{
    struct fixture f;
    const char *out;
    char *mine, s[32], h[32], v[64];

    (void)state;
    unsetenv("WORKQ_HANDLERS");
    umask(022);
    setup(&f, NULL, NULL, 0);
    run_configured(&f, "kind = \"exec\"; argv = [ \"/bin/sh\", \"-c\", "
        "\"cat /proc/self/status /proc/self/limits\" ];");
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    out = result_str(&f);
    assert_string_equal(status_field(out, "Umask", v, sizeof v), "0077");
    assert_string_equal(status_field(out, "NoNewPrivs", v, sizeof v), "1");
    assert_limit(strstr(out, "Limit "), "Max core file size", "0", "0");
    assert_limit(strstr(out, "Limit "), "Max open files", "1024", "1024");
    assert_limit(strstr(out, "Limit "), "Max address space", "1073741824",
        "1073741824");
    assert_limit(strstr(out, "Limit "), "Max processes", "1024", "1024");
    assert_limit(strstr(out, "Limit "), "Max cpu time", "300", "301");
    teardown(&f);

    /* 0: the worker's own limits */
    setup(&f, NULL, NULL, 0);
    run_configured(&f, "kind = \"exec\"; argv = [ \"/bin/sh\", \"-c\", "
        "\"cat /proc/self/status /proc/self/limits\" ];\n"
        "limit_memory = 0; limit_files = 0;");
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    out = result_str(&f);
    mine = slurp("/proc/self/limits");
    limit_of(mine, "Max open files", s, h);
    assert_limit(strstr(out, "Limit "), "Max open files", s, h);
    limit_of(mine, "Max address space", s, h);
    assert_limit(strstr(out, "Limit "), "Max address space", s, h);
    free(mine);
    teardown(&f);

    setup(&f, NULL, NULL, 0);
    run_configured(&f, "kind = \"exec\"; argv = [ \"/bin/sh\", \"-c\", "
        "\"cat /proc/self/status /proc/self/limits\" ];\n"
        "limit_memory = \"1G\"; limit_cpu = \"1500ms\"; limit_files = 64;\n"
        "limit_processes = 4000; limit_file_size = \"16M\";\n"
        "core_dumps = true; umask = \"0027\";");
    assert_int_equal(f.res.outcome, WQ_OUTCOME_SUCCEEDED);
    out = result_str(&f);
    assert_string_equal(status_field(out, "Umask", v, sizeof v), "0027");
    out = strstr(out, "Limit ");
    assert_limit(out, "Max address space", "1073741824", "1073741824");
    assert_limit(out, "Max cpu time", "2", "3");     /* rounded up */
    assert_limit(out, "Max open files", "64", "64");
    assert_limit(out, "Max processes", "4000", "4000");
    assert_limit(out, "Max file size", "16777216", "16777216");
    mine = slurp("/proc/self/limits");
    limit_of(mine, "Max core file size", s, h);
    assert_limit(out, "Max core file size", s, h);
    free(mine);
    teardown(&f);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_handler_exec_success_stdin_to_stdout),
    cmocka_unit_test(test_handler_exec_clean_environment),
    cmocka_unit_test(test_handler_exec_other_fds_closed),
    cmocka_unit_test(test_handler_exec_worker_without_stdin),
    cmocka_unit_test(test_handler_exec_payload_not_in_argv_or_env),
    cmocka_unit_test(test_handler_exec_own_process_group),
    cmocka_unit_test(test_handler_exec_exit_codes),
    cmocka_unit_test(test_handler_exec_timeout_kills_group),
    cmocka_unit_test(test_handler_exec_leftovers_killed_after_exit),
    cmocka_unit_test(test_handler_exec_dies_with_worker),
    cmocka_unit_test(test_handler_exec_output_bounded),
    cmocka_unit_test(test_handler_exec_binary_output),
    cmocka_unit_test(test_handler_exec_binary_stderr_sanitized),
    cmocka_unit_test(test_handler_exec_large_input),
    cmocka_unit_test(test_handler_exec_ignores_stdin),
    cmocka_unit_test(test_handler_exec_cannot_start),
    cmocka_unit_test(test_handler_exec_cancel),
    cmocka_unit_test(test_handler_exec_operator_cancel),
    cmocka_unit_test(test_handler_exec_many_at_once),
    cmocka_unit_test(test_handler_exec_limits_in_child),
    cmocka_unit_test(test_handler_exec_file_size_exceeded),
    cmocka_unit_test(test_handler_exec_memory_exceeded),
    cmocka_unit_test(test_handler_exec_cpu_exceeded),
    cmocka_unit_test(test_handler_exec_limit_cannot_be_set),
    cmocka_unit_test(test_handler_exec_no_new_privs_and_signals),
    cmocka_unit_test(test_handler_exec_umask),
    cmocka_unit_test(test_handler_exec_configured_defaults_and_limits),
};

WQ_TEST_MAIN("handler_exec", tests)

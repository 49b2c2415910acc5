/*
 * wq_test.c - runs each cmocka test in a forked child with its own
 * temporary directory and time limit (see wq_test.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wq_test.h"
#include "clock.h"

#define TEST_TIMEOUT_S 300

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static int
selected(const char *name, int argc, char **argv)
{
    if (argc <= 1)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i]) != NULL)
            return 1;
    return 0;
}

const char *
wq_test_env(const char *name, const char *fallback)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? v : fallback;
}

const char *
wq_test_unique(const char *prefix)
{
    static char buf[8][160];
    static unsigned n;
    char *b = buf[n % 8];

    snprintf(b, sizeof buf[0], "%s-%ld-%u-%u", prefix, (long)getpid(),
        (unsigned)time(NULL) % 100000, n);
    n++;
    return b;
}

int64_t
wq_test_now_ms(void)
{
    return (int64_t)(wq_clock_mono_ns() / 1000000);
}

void
wq_test_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The services this test process left stopped or paused, and the verb
 * that brings each back ("start" or "resume"); undone at exit. */
#define SERVICES_MAX 4
static struct {
    char service[32];
    const char *undo;
} down[SERVICES_MAX];

static int
service_ctl(const char *verb, const char *service)
{
    char cmd[1024];

    snprintf(cmd, sizeof cmd, "%s/tests/services/ctl %s %s >>ctl.log 2>&1",
        WQ_SOURCE_DIR, verb, service);
    return system(cmd) == 0 ? 0 : -1;
}

static void
services_restore(void)
{
    int failed = 0;

    for (int i = 0; i < SERVICES_MAX; i++) {
        if (down[i].undo == NULL)
            continue;
        if (service_ctl(down[i].undo, down[i].service) != 0) {
            fprintf(stderr, "could not %s %s again (see ctl.log): this "
                "test fails\n", down[i].undo, down[i].service);
            failed = 1;
        }
        down[i].undo = NULL;
    }
    if (failed)
        _exit(1);
}

void
wq_test_service(const char *verb, const char *service)
{
    static int registered;
    const char *undo = NULL;
    int slot = -1;

    int stays_down = 1;

    /* what brings the service back if the command leaves it down */
    if (strcmp(verb, "stop") == 0 || strcmp(verb, "kill9") == 0)
        undo = "start";
    else if (strcmp(verb, "pause") == 0)
        undo = "resume";
    else if (strcmp(verb, "restart") == 0) {
        undo = "start";         /* if it fails between stop and start */
        stays_down = 0;
    }
    for (int i = 0; i < SERVICES_MAX; i++) {
        if (down[i].undo != NULL && strcmp(down[i].service, service) == 0)
            slot = i;
        else if (slot < 0 && down[i].undo == NULL)
            slot = i;
    }
    assert_true(slot >= 0);
    if (!registered) {
        registered = 1;
        atexit(services_restore);
    }
    /* recorded first: a stop that fails half-way is undone too */
    if (undo != NULL) {
        snprintf(down[slot].service, sizeof down[slot].service, "%s",
            service);
        down[slot].undo = undo;
    }
    if (service_ctl(verb, service) != 0)
        fail_msg("`tests/services/ctl %s %s` failed; see ctl.log", verb,
            service);
    if ((undo == NULL || !stays_down)
        && strcmp(down[slot].service, service) == 0)
        down[slot].undo = NULL;
}

#define OUTPUT_FILE "test-output.txt"

/* WQ_TEST_VERBOSE=1 lets each test print straight to the terminal. */
static int verbose;

static void
show_output(const char *dir)
{
    char path[256], buf[4096];
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "%s/%s", dir, OUTPUT_FILE);
    if ((f = fopen(path, "r")) == NULL)
        return;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stderr);
    fclose(f);
}

const char *
wq_test_bin(const char *name)
{
    static char path[1024];
    const char *build = wq_test_env("WORKQ_BUILD", "build");

#ifndef WQ_SOURCE_DIR
#define WQ_SOURCE_DIR "."
#endif
    if (build[0] == '/')
        snprintf(path, sizeof path, "%s/%s", build, name);
    else
        snprintf(path, sizeof path, "%s/%s/%s", WQ_SOURCE_DIR, build, name);
    return path;
}

int
wq_test_cmd(const char *const *argv, const char *const *env,
    const char *input, char *out, size_t outlen)
{
    int in[2], outp[2], status;
    size_t got = 0;
    pid_t pid;
    ssize_t n;

    if (pipe(in) != 0 || pipe(outp) != 0)
        return -1;
    fflush(NULL);
    if ((pid = fork()) < 0)
        return -1;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(outp[1], 1);
        dup2(outp[1], 2);
        close(in[0]); close(in[1]); close(outp[0]); close(outp[1]);
        for (; env != NULL && *env != NULL; env++)
            putenv((char *)*env);
        alarm(120);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(outp[1]);
    if (input != NULL && write(in[1], input, strlen(input)) < 0)
        (void)0;    /* the command may not read stdin: not an error */
    close(in[1]);
    while ((n = read(outp[0], out + got, outlen - 1 - got)) > 0) {
        got += (size_t)n;
        if (got == outlen - 1) {
            char sink[4096];
            while (read(outp[0], sink, sizeof sink) > 0)
                ;
            break;
        }
    }
    out[got] = '\0';
    close(outp[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

pid_t
wq_test_spawn(const char *const *argv, const char *const *env,
    const char *const *env2, const char *log)
{
    pid_t pid;
    int fd;

    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if ((fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        for (; env != NULL && *env != NULL; env++)
            putenv((char *)*env);
        for (; env2 != NULL && *env2 != NULL; env2++)
            putenv((char *)*env2);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

int
wq_test_reap(pid_t *pid, int timeout_ms)
{
    int status;

    if (*pid <= 0)
        return -1;
    if (!wq_test_waited(waitpid(*pid, &status, WNOHANG) == *pid,
        timeout_ms))
        return -1;
    *pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

char *
wq_test_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (f == NULL)
        return strdup("");
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = calloc(1, (size_t)n + 1);
    assert_non_null(buf);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n)
        (void)0;
    fclose(f);
    return buf;
}

/*
 * The runner is a child subreaper (wq_test_run), so the workq daemons a
 * test started and did not stop (it failed before its cleanup) become
 * its children when the test's process ends.  They are killed here and
 * named: left running, they held the servers' queues and the callers'
 * locks (an inherited descriptor of a flock) for minutes.  Only workq's
 * own binaries: a test that restarted a private server (tests/services)
 * leaves it running on purpose.
 */
static int
kill_leftovers(const char *test)
{
    char path[64], exe[4096], *base;
    struct dirent *de;
    int n = 0, status;
    DIR *d;

    if ((d = opendir("/proc")) == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        long pid = strtol(de->d_name, NULL, 10), ppid = -1;
        char stat[512], *p;
        FILE *f;
        ssize_t len;

        if (pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        if (fgets(stat, sizeof stat, f) != NULL
            && (p = strrchr(stat, ')')) != NULL)
            sscanf(p + 1, " %*c %ld", &ppid);
        fclose(f);
        if (ppid != (long)getpid())
            continue;
        snprintf(path, sizeof path, "/proc/%ld/exe", pid);
        if ((len = readlink(path, exe, sizeof exe - 1)) <= 0)
            continue;
        exe[len] = '\0';
        base = strrchr(exe, '/') != NULL ? strrchr(exe, '/') + 1 : exe;
        if (strncmp(base, "workq-", 6) != 0)
            continue;
        fprintf(stderr, "[ LEFTOVER ] %s left %s (pid %ld) running: "
            "killed\n", test, exe, pid);
        kill((pid_t)pid, SIGKILL);
        while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
            ;
        n++;
    }
    closedir(d);
    return n;
}

static int
run_one(const struct CMUnitTest *t)
{
    char dir[] = "/tmp/wq-test-XXXXXX";
    pid_t pid;
    int status, failed;

    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    fflush(NULL);
    if ((pid = fork()) < 0) {
        fprintf(stderr, "fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        setenv("WQ_TEST_TMPDIR", dir, 1);
        if (chdir(dir) != 0)
            _exit(2);
        /* quiet unless it fails: the parent shows this file then */
        if (!verbose && (freopen(OUTPUT_FILE, "w", stdout) == NULL ||
            dup2(fileno(stdout), 2) < 0))
            _exit(2);
        alarm(TEST_TIMEOUT_S);
        /* exit(), not _exit(): LeakSanitizer checks at exit */
        exit(_cmocka_run_group_tests(t->name, t, 1, NULL, NULL) == 0
            ? 0 : 1);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    kill_leftovers(t->name);
    if (failed && !verbose)
        show_output(dir);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "[  CRASHED ] %s: killed by signal %d%s\n", t->name,
            WTERMSIG(status),
            WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    }
    printf("%s %s\n", failed ? "FAIL" : "ok  ", t->name);
    return failed;
}

int
wq_test_run(const char *suite, const struct CMUnitTest *tests, size_t n,
    int argc, char **argv)
{
    int passed = 0, failed = 0;

    verbose = getenv("WQ_TEST_VERBOSE") != NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* orphans of a test come here, not to init (kill_leftovers) */
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    for (size_t i = 0; i < n; i++) {
        if (!selected(tests[i].name, argc, argv))
            continue;
        if (run_one(&tests[i]) == 0)
            passed++;
        else {
            failed++;
            fprintf(stderr, "FAILED: %s/%s\n", suite, tests[i].name);
        }
    }
    printf("%s: %d passed, %d failed\n", suite, passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}

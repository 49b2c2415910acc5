/*
 * test_systemd.c - workq under systemd, checked on what `make install`
 * puts on a host (issue 6):
 *
 *  - `systemd-analyze verify` accepts every installed unit, and the
 *    worker template through instance names, without a word of output
 *    (unknown keys are only warnings there); every absolute path of every
 *    ExecStart= exists, and the sandbox's exposure score stays low
 *    (`systemd-analyze security --offline`);
 *  - the package layout (DESTDIR, PREFIX=/usr): the files, their modes,
 *    the paths inside the units, the worker's /bin/sh wrapper run for real
 *    on instance names, a workq.conf that a second install keeps, and an
 *    uninstall that leaves only the configuration;
 *  - the man pages made from --help render without warnings and have a
 *    NAME line that apropos can read;
 *  - each daemon, started with the very command line of its installed
 *    unit (the worker's through its /bin/sh wrapper), speaks the notify
 *    protocol as Type=notify, NotifyAccess=main and WatchdogSec= expect:
 *    READY=1 first, then WATCHDOG=1 never further apart than
 *    WATCHDOG_USEC, then STOPPING=1 after SIGTERM and not before, every
 *    message from the main PID; and it exits 0 within TimeoutStopSec=;
 *  - a worker whose consume loop hangs in a PostgreSQL call (the server
 *    stopped answering: a TCP relay of the test stops relaying) stops
 *    sending WATCHDOG=1, so systemd would restart it; it sends again, and
 *    finishes the task, once the server answers.
 *
 * Installs go into the test's own directory, with PREFIX and SYSCONFDIR
 * pointing there and no DESTDIR, so the units name real paths on this
 * machine: verify checks that the binaries are there and the daemons run
 * from where they were installed.  `make install` builds nothing here: it
 * finds BUILD (WORKQ_BUILD) up to date.  The daemons use RabbitMQ and a
 * fresh PostgreSQL database of tests/services; the notify protocol does
 * not depend on the broker (test_worker covers both for the worker).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "wq_test.h"
#include "wq_test_broker.h"
#include "wq_test_pg.h"
#include "buf.h"
#include "clock.h"
#include "envelope.h"
#include "transport.h"

#define OUT_MAX     (256 * 1024)
#define MAX_ARGS    32
#define WD_USEC     2000000     /* WATCHDOG_USEC of the notify tests */
#define STUCK_USEC  1000000     /* ... and of the stuck worker */

static char out[OUT_MAX];

/* ---- small helpers ------------------------------------------------------- */

static uint64_t
now_ms(void)
{
    return wq_clock_mono_ns() / 1000000u;
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    n = (long)fread(buf, 1, (size_t)n, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void
spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The last 4 KB of a file, for failure messages (static). */
static const char *
tail_of(const char *path)
{
    static char buf[4096];
    char *all = slurp(path);
    size_t n;

    if (all == NULL)
        return "(no log)";
    n = strlen(all);
    snprintf(buf, sizeof buf, "%s", n > sizeof buf - 1
        ? all + n - (sizeof buf - 1) : all);
    free(all);
    return buf;
}

static const char *
tmpdir(void)
{
    return wq_test_env("WQ_TEST_TMPDIR", ".");
}

/*
 * Runs `make -C SOURCE BUILD=... args...` with the output in `out`.  The
 * test may itself run under make: its jobserver variables must not leak
 * into this one.
 */
static int
run_make(const char *const *args)
{
    static char cdir[1100], build[1100];
    const char *argv[MAX_ARGS];
    const char *b = wq_test_env("WORKQ_BUILD", "build");
    size_t n = 0;

    unsetenv("MAKEFLAGS");
    unsetenv("MFLAGS");
    unsetenv("MAKELEVEL");
    unsetenv("MAKEOVERRIDES");
    snprintf(cdir, sizeof cdir, "%s", WQ_SOURCE_DIR);
    snprintf(build, sizeof build, "BUILD=%s", b);
    argv[n++] = access("/usr/bin/make", X_OK) == 0 ? "/usr/bin/make"
        : "/bin/make";
    argv[n++] = "-s";
    argv[n++] = "-C";
    argv[n++] = cdir;
    argv[n++] = build;
    /* a sanitizer build's objects are only up to date with its flags */
    if (strstr(b, "san") != NULL)
        argv[n++] = "SAN=1";
    for (; *args != NULL && n + 1 < MAX_ARGS; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    return wq_test_cmd(argv, NULL, NULL, out, sizeof out);
}

/*
 * Installs into TMPDIR/root with PREFIX=root/usr and SYSCONFDIR=root/etc
 * and no DESTDIR: the units then name paths that exist.  Returns root
 * (static).
 */
static const char *
install_here(void)
{
    static char root[512], prefix[600], sysconf[600];
    const char *args[] = { prefix, sysconf, "SYSTEMD_SETUP=no", "install",
        NULL };
    int rc;

    snprintf(root, sizeof root, "%s/root", tmpdir());
    snprintf(prefix, sizeof prefix, "PREFIX=%s/usr", root);
    snprintf(sysconf, sizeof sysconf, "SYSCONFDIR=%s/etc", root);
    if ((rc = run_make(args)) != 0)
        fail_msg("make install failed (status %d):\n%s", rc, out);
    return root;
}

static char *
unit_text(const char *root, const char *file)
{
    char path[1024];
    char *t;

    snprintf(path, sizeof path, "%s/usr/lib/systemd/system/%s", root, file);
    if ((t = slurp(path)) == NULL)
        fail_msg("%s was not installed", path);
    return t;
}

/* The value of the one line "key=..." of a unit (static), or fails. */
static const char *
unit_value(const char *text, const char *key)
{
    static char val[2048];
    const char *p = text, *hit = NULL;
    size_t klen = strlen(key), n;

    for (; *p != '\0'; p = strchr(p, '\n') != NULL ? strchr(p, '\n') + 1
        : p + strlen(p)) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            if (hit != NULL)
                fail_msg("%s= is set twice", key);
            hit = p + klen + 1;
        }
    }
    if (hit == NULL)
        fail_msg("no %s= in the unit:\n%s", key, text);
    n = strcspn(hit, "\n");
    if (n >= sizeof val)
        fail_msg("%s= is too long", key);
    memcpy(val, hit, n);
    val[n] = '\0';
    return val;
}

/* "45s", "2min", "1min 30s" or plain seconds -> seconds. */
static int
unit_seconds(const char *text, const char *key)
{
    const char *v = unit_value(text, key);
    int total = 0;

    while (*v != '\0') {
        char *end;
        long n = strtol(v, &end, 10);

        if (end == v)
            fail_msg("%s=%s: not a time span this test reads", key, v);
        if (strncmp(end, "min", 3) == 0) {
            total += (int)n * 60;
            end += 3;
        } else if (*end == 's') {
            total += (int)n;
            end++;
        } else if (*end == '\0' || *end == ' ') {
            total += (int)n;
        } else {
            fail_msg("%s=%s: not a time span this test reads", key, v);
        }
        while (*end == ' ')
            end++;
        v = end;
    }
    return total;
}

/*
 * The argv systemd would run for ExecStart= of `text` as instance
 * `instance`: specifiers %i and %% resolved (any other fails the test, so
 * that a unit cannot use one this test would get wrong), "$$" made "$",
 * words split at blanks with '...' and "..." quoting.  Strings are
 * malloc'ed; argv is NULL-terminated.
 */
static void
exec_start_argv(const char *text, const char *instance, char **argv)
{
    const char *v = unit_value(text, "ExecStart");
    char *exp = malloc(strlen(v) * 2 + 1024), *q, *w;
    size_t n = 0;

    assert_non_null(exp);
    if (*v == '-' || *v == '@' || *v == ':' || *v == '+' || *v == '!')
        fail_msg("ExecStart= prefix '%c' is not expected here", *v);
    for (q = exp; *v != '\0'; v++) {
        if (v[0] == '%') {
            if (v[1] == '%')
                *q++ = '%';
            else if (v[1] == 'i' && instance != NULL)
                q += sprintf(q, "%s", instance);
            else
                fail_msg("ExecStart= uses specifier %%%c", v[1]);
            v++;
        } else if (v[0] == '$' && v[1] == '$') {
            *q++ = '$';
            v++;
        } else if (v[0] == '$') {
            fail_msg("ExecStart= uses an environment variable: %s", v);
        } else if (v[0] == '\\') {
            fail_msg("ExecStart= uses a backslash escape: %s", v);
        } else {
            *q++ = *v;
        }
    }
    *q = '\0';
    for (q = exp; *q != '\0' && n + 1 < MAX_ARGS;) {
        char quote = 0;

        while (*q == ' ' || *q == '\t')
            q++;
        if (*q == '\0')
            break;
        w = malloc(strlen(q) + 1);
        assert_non_null(w);
        argv[n] = w;
        for (; *q != '\0' && (quote != 0 || (*q != ' ' && *q != '\t')); q++) {
            if (quote == 0 && (*q == '\'' || *q == '"'))
                quote = *q;
            else if (quote != 0 && *q == quote)
                quote = 0;
            else
                *w++ = *q;
        }
        if (quote != 0)
            fail_msg("ExecStart=: unbalanced quote");
        *w = '\0';
        n++;
    }
    argv[n] = NULL;
    free(exp);
}

static void
argv_free(char **argv)
{
    for (; *argv != NULL; argv++)
        free(*argv);
}

/* ---- 1. systemd-analyze verify and security ------------------------------ */

/* Runs systemd-analyze with MANPATH at the installed man pages. */
static int
analyze(const char *root, const char *const *args)
{
    static char manpath[600];
    const char *argv[MAX_ARGS], *env[] = { manpath, NULL };
    size_t n = 0;

    snprintf(manpath, sizeof manpath, "MANPATH=%s/usr/share/man", root);
    argv[n++] = access("/usr/bin/systemd-analyze", X_OK) == 0
        ? "/usr/bin/systemd-analyze" : "/bin/systemd-analyze";
    for (; *args != NULL && n + 1 < MAX_ARGS; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    return wq_test_cmd(argv, env, NULL, out, sizeof out);
}

static void
test_systemd_verify(void **state)
{
    static const char *const files[] = { "workq-producer.service",
        "workq-scheduler.service", "workq-worker@.service", "workq.target" };
    /* how systemd would load each: the template as instances too
     * ("PATH:NAME" loads the file at PATH under the name NAME) */
    static const char *const names[][2] = {
        { "workq-producer.service", NULL },
        { "workq-scheduler.service", NULL },
        { "workq.target", NULL },
        { "workq-worker@.service", NULL },
        { "workq-worker@.service", "workq-worker@default.service" },
        { "workq-worker@.service", "workq-worker@emails.service" },
        { "workq-worker@.service", "workq-worker@emails:2.service" },
        { "workq-worker@.service", "workq-worker@a.b-c_d:17.service" },
    };
    const char *root = install_here();
    char path[1024], arg[1200];
    int rc;

    (void)state;
    for (size_t i = 0; i < WQ_ARRAY_LEN(names); i++) {
        const char *args[] = { "verify", arg, NULL };

        snprintf(path, sizeof path, "%s/usr/lib/systemd/system/%s", root,
            names[i][0]);
        if (names[i][1] != NULL)
            snprintf(arg, sizeof arg, "%s:%s", path, names[i][1]);
        else
            snprintf(arg, sizeof arg, "%s", path);
        rc = analyze(root, args);
        if (rc != 0 || out[0] != '\0')
            fail_msg("systemd-analyze verify %s: status %d, output:\n%s",
                names[i][1] != NULL ? names[i][1] : names[i][0], rc, out);
    }

    /* No placeholder left anywhere; every path of every ExecStart= there
     * (the worker's binary is an argument of its /bin/sh wrapper, out of
     * verify's sight); the binaries executable. */
    for (size_t i = 0; i < WQ_ARRAY_LEN(files); i++) {
        char *text = unit_text(root, files[i]), *argv[MAX_ARGS];
        int nbin = 0;

        if (strstr(text, "@BINDIR@") != NULL
            || strstr(text, "@SYSCONFDIR@") != NULL
            || strstr(text, "@DOCDIR@") != NULL)
            fail_msg("%s keeps a placeholder:\n%s", files[i], text);
        if (strstr(files[i], ".service") == NULL) {
            free(text);
            continue;
        }
        exec_start_argv(text, "emails:1", argv);
        for (char **a = argv; *a != NULL; a++) {
            if ((*a)[0] != '/')
                continue;
            if (access(*a, F_OK) != 0)
                fail_msg("%s: ExecStart= names %s, which is not there",
                    files[i], *a);
            if (strncmp(*a, root, strlen(root)) == 0
                && strstr(*a, "/usr/bin/") != NULL) {
                if (access(*a, X_OK) != 0)
                    fail_msg("%s: %s is not executable", files[i], *a);
                nbin++;
            }
        }
        if (nbin != 1)
            fail_msg("%s: ExecStart= runs %d installed binaries, not 1",
                files[i], nbin);
        argv_free(argv);
        free(text);
    }

    /* The sandbox: exposure at most 2.0 of 10 (each is about 1.5 now). */
    for (size_t i = 0; i < 3; i++) {
        const char *args[] = { "security", "--offline=yes", "--threshold=20",
            path, NULL };

        snprintf(path, sizeof path, "%s/usr/lib/systemd/system/%s", root,
            files[i]);
        if ((rc = analyze(root, args)) != 0)
            fail_msg("systemd-analyze security %s: status %d:\n%s", files[i],
                rc, out);
    }
}

/* ---- 2. the package layout, reinstall, uninstall ------------------------- */

static const struct { const char *path; int mode; } layout[] = {
    { "/usr/bin/workq", 0755 },
    { "/usr/bin/workq-producer", 0755 },
    { "/usr/bin/workq-worker", 0755 },
    { "/usr/bin/workq-scheduler", 0755 },
    { "/usr/lib/systemd/system/workq-producer.service", 0644 },
    { "/usr/lib/systemd/system/workq-scheduler.service", 0644 },
    { "/usr/lib/systemd/system/workq-worker@.service", 0644 },
    { "/usr/lib/systemd/system/workq.target", 0644 },
    { "/usr/lib/sysusers.d/workq.conf", 0644 },
    { "/usr/lib/tmpfiles.d/workq.conf", 0644 },
    { "/usr/share/man/man1/workq.1", 0644 },
    { "/usr/share/man/man8/workq-producer.8", 0644 },
    { "/usr/share/man/man8/workq-worker.8", 0644 },
    { "/usr/share/man/man8/workq-scheduler.8", 0644 },
    { "/usr/share/doc/workq/README.md", 0644 },
    { "/usr/share/doc/workq/production.md", 0644 },
    { "/usr/share/doc/workq/task-states.md", 0644 },
    { "/usr/share/doc/workq/operator-api.md", 0644 },
    { "/usr/share/doc/workq/openapi.json", 0644 },
    { "/usr/share/doc/workq/dashboard.md", 0644 },
    { "/usr/share/doc/workq/dashboard.png", 0644 },
    { "/usr/share/doc/workq/workflows.md", 0644 },
    { "/etc/workq/workq.conf", 0640 },
    { "/etc/workq/workq.conf.example", 0644 },
    /* the C SDK (make install-sdk); the symlinks' targets' modes, and
     * libworkq.so.X.Y.Z, named by the version, checked apart */
    { "/usr/include/workq.h", 0644 },
    { "/usr/include/workq_outbox.h", 0644 },
    { "/usr/include/workq_plugin.h", 0644 },
    { "/usr/lib/libworkq.a", 0644 },
    { "/usr/lib/libworkq.so", 0644 },
    { "/usr/lib/libworkq.so.0", 0644 },
    { "/usr/lib/pkgconfig/workq.pc", 0644 },
};

static const char *walk_root;
static char walk_list[8192];

static int
walk_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)ftw;
    if (flag == FTW_F || flag == FTW_SL) {
        size_t n = strlen(walk_list);

        snprintf(walk_list + n, sizeof walk_list - n, "%s\n",
            path + strlen(walk_root));
    }
    return 0;
}

/* Every file under dest, one path (relative to it) a line, sorted by
 * nftw's order; compared as a set below. */
static const char *
files_under(const char *dest)
{
    walk_root = dest;
    walk_list[0] = '\0';
    nftw(dest, walk_one, 16, FTW_PHYS);
    return walk_list;
}

static int
count_lines(const char *s)
{
    int n = 0;

    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

static void
test_systemd_install_layout(void **state)
{
    static char destdir[600];
    const char *args[] = { destdir, "PREFIX=/usr", "SYSCONFDIR=/etc",
        "install", NULL };
    const char *uargs[] = { destdir, "PREFIX=/usr", "SYSCONFDIR=/etc",
        "uninstall", NULL };
    char dest[512], path[1024], line[256], *t, *conf;
    const char *list;
    struct stat st;
    int rc;

    (void)state;
    snprintf(dest, sizeof dest, "%s/dest", tmpdir());
    snprintf(destdir, sizeof destdir, "DESTDIR=%s", dest);
    if ((rc = run_make(args)) != 0)
        fail_msg("make install failed (status %d):\n%s", rc, out);

    list = files_under(dest);
    for (size_t i = 0; i < WQ_ARRAY_LEN(layout); i++) {
        snprintf(path, sizeof path, "%s%s", dest, layout[i].path);
        if (stat(path, &st) != 0)
            fail_msg("%s was not installed; installed:\n%s", layout[i].path,
                list);
        if ((int)(st.st_mode & 07777) != layout[i].mode)
            fail_msg("%s has mode %04o, not %04o", layout[i].path,
                (unsigned)(st.st_mode & 07777), (unsigned)layout[i].mode);
        snprintf(line, sizeof line, "%s\n", layout[i].path);
        if (strstr(list, line) == NULL)
            fail_msg("%s missing from the walk", layout[i].path);
    }
    /* "0.9.0+g1234abc" -> /usr/lib/libworkq.so.0.9.0 */
    snprintf(line, sizeof line, "/usr/lib/libworkq.so.%.*s\n",
        (int)strspn(WQ_VERSION, "0123456789."), WQ_VERSION);
    if (strstr(list, line) == NULL)
        fail_msg("no %sinstalled:\n%s", line, list);
    if (count_lines(list) != (int)WQ_ARRAY_LEN(layout) + 1)
        fail_msg("install put %d files, expected %zu:\n%s", count_lines(list),
            WQ_ARRAY_LEN(layout) + 1, list);
    snprintf(path, sizeof path, "%s/etc/workq", dest);
    assert_int_equal(stat(path, &st), 0);
    if ((st.st_mode & 07777) != 0750)
        fail_msg("/etc/workq has mode %04o, not 0750",
            (unsigned)(st.st_mode & 07777));

    /* The units name the installed paths, for a package's PREFIX. */
    t = unit_text(dest, "workq-producer.service");
    assert_string_equal(unit_value(t, "ExecStart"),
        "/usr/bin/workq-producer --config /etc/workq/workq.conf");
    assert_non_null(strstr(t, "\nEnvironmentFile=-/etc/workq/workq.env\n"));
    assert_non_null(strstr(t, "file:/usr/share/doc/workq/production.md"));
    free(t);
    t = unit_text(dest, "workq-scheduler.service");
    assert_string_equal(unit_value(t, "ExecStart"),
        "/usr/bin/workq-scheduler --config /etc/workq/workq.conf");
    free(t);
    t = unit_text(dest, "workq-worker@.service");
    {
        char *argv[MAX_ARGS];

        exec_start_argv(t, "emails:3", argv);
        assert_string_equal(argv[0], "/bin/sh");
        assert_string_equal(argv[1], "-c");
        assert_string_equal(argv[2], "exec \"$0\" --config "
            "/etc/workq/workq.conf --queue \"${1%%:*}\"");
        assert_string_equal(argv[3], "/usr/bin/workq-worker");
        assert_string_equal(argv[4], "emails:3");
        assert_null(argv[5]);
        argv_free(argv);
    }
    /* The wrapper run for real, with echo in the worker's place: the
     * queue is the instance up to its first ':'. */
    {
        static const char *const cases[][2] = {
            { "emails", "emails" }, { "emails:3", "emails" },
            { "a.b-c_D:x:y", "a.b-c_D" },
        };

        for (size_t i = 0; i < WQ_ARRAY_LEN(cases); i++) {
            char *argv[MAX_ARGS], want[256];

            exec_start_argv(t, cases[i][0], argv);
            free(argv[3]);
            argv[3] = strdup("/bin/echo");
            rc = wq_test_cmd((const char *const *)argv, NULL, NULL, out,
                sizeof out);
            snprintf(want, sizeof want, "--config /etc/workq/workq.conf "
                "--queue %s\n", cases[i][1]);
            if (rc != 0 || strcmp(out, want) != 0)
                fail_msg("instance %s: status %d, the worker would get "
                    "\"%s\", not \"%s\"", cases[i][0], rc, out, want);
            argv_free(argv);
        }
    }
    free(t);
    snprintf(path, sizeof path, "%s/usr/lib/tmpfiles.d/workq.conf", dest);
    t = slurp(path);
    assert_non_null(strstr(t, "\nd     /etc/workq "));
    free(t);

    /* A second install keeps the local workq.conf and refreshes the
     * example. */
    snprintf(path, sizeof path, "%s/etc/workq/workq.conf", dest);
    conf = slurp(path);
    spit(path, "transport = \"kafka\";  # local edit\n");
    if ((rc = run_make(args)) != 0)
        fail_msg("second make install failed (status %d):\n%s", rc, out);
    t = slurp(path);
    assert_string_equal(t, "transport = \"kafka\";  # local edit\n");
    free(t);
    snprintf(path, sizeof path, "%s/etc/workq/workq.conf.example", dest);
    t = slurp(path);
    assert_string_equal(t, conf);
    free(t);
    free(conf);

    /* Uninstall: only the configuration stays. */
    if ((rc = run_make(uargs)) != 0)
        fail_msg("make uninstall failed (status %d):\n%s", rc, out);
    list = files_under(dest);
    assert_string_equal(list, "/etc/workq/workq.conf\n");
}

/* ---- 3. man pages -------------------------------------------------------- */

static void
test_systemd_man_pages(void **state)
{
    static const char *const pages[] = { "man1/workq.1",
        "man8/workq-producer.8", "man8/workq-worker.8",
        "man8/workq-scheduler.8" };
    const char *root = install_here();
    char path[1024], cmd[1400], name[64];
    int rc;

    (void)state;
    for (size_t i = 0; i < WQ_ARRAY_LEN(pages); i++) {
        const char *lex[] = { "/usr/bin/lexgrog", path, NULL };
        const char *sh[] = { "/bin/sh", "-c", cmd, NULL };
        const char *env[] = { "MANWIDTH=80", "LC_ALL=C.UTF-8", NULL };
        const char *base = strrchr(pages[i], '/') + 1;

        snprintf(path, sizeof path, "%s/usr/share/man/%s", root, pages[i]);
        snprintf(name, sizeof name, "%.*s - ", (int)(strrchr(base, '.') - base),
            base);
        rc = wq_test_cmd(lex, NULL, NULL, out, sizeof out);
        if (rc != 0 || strstr(out, name) == NULL)
            fail_msg("lexgrog %s (status %d) finds no \"%s...\" NAME "
                "line:\n%s", pages[i], rc, name, out);
        /* warnings on stderr only; the page itself is thrown away */
        snprintf(cmd, sizeof cmd, "man --warnings -l -P cat '%s' 2>&1 "
            ">/dev/null", path);
        rc = wq_test_cmd(sh, env, NULL, out, sizeof out);
        if (rc != 0 || out[0] != '\0')
            fail_msg("man -l %s: status %d, warnings:\n%s", pages[i], rc,
                out);
    }
}

/* ---- the notify socket --------------------------------------------------- */

struct note {
    uint64_t t_ms;              /* arrival, monotonic */
    pid_t pid;                  /* sender, from SCM_CREDENTIALS */
    char text[256];
};

struct notify {
    int fd;
    char path[108];
    char env[160];              /* NOTIFY_SOCKET=... */
    struct note notes[2048];
    size_t n;
};

static void
notify_open(struct notify *nt)
{
    struct sockaddr_un sa;
    int one = 1;

    memset(nt, 0, sizeof *nt);
    snprintf(nt->path, sizeof nt->path, "%s/notify", tmpdir());
    snprintf(nt->env, sizeof nt->env, "NOTIFY_SOCKET=%s", nt->path);
    nt->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(nt->fd >= 0);
    /* as systemd does: the sender's credentials come with each message */
    assert_int_equal(setsockopt(nt->fd, SOL_SOCKET, SO_PASSCRED, &one,
        sizeof one), 0);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", nt->path);
    assert_int_equal(bind(nt->fd, (struct sockaddr *)&sa, sizeof sa), 0);
}

/* Waits up to timeout_ms for one message; returns it or NULL. */
static const struct note *
notify_next(struct notify *nt, int timeout_ms)
{
    struct pollfd pfd = { nt->fd, POLLIN, 0 };
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(struct ucred))];
    } cm;
    struct note *no;
    struct msghdr mh;
    struct iovec iov;
    struct cmsghdr *c;
    ssize_t n;

    if (nt->n == WQ_ARRAY_LEN(nt->notes))
        fail_msg("more than %zu notify messages", nt->n);
    if (poll(&pfd, 1, timeout_ms < 0 ? 0 : timeout_ms) <= 0)
        return NULL;
    no = &nt->notes[nt->n];
    memset(no, 0, sizeof *no);
    iov.iov_base = no->text;
    iov.iov_len = sizeof no->text - 1;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cm.buf;
    mh.msg_controllen = sizeof cm.buf;
    if ((n = recvmsg(nt->fd, &mh, MSG_DONTWAIT)) < 0)
        return NULL;
    no->text[n] = '\0';
    no->t_ms = now_ms();
    for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred uc;

            memcpy(&uc, CMSG_DATA(c), sizeof uc);
            no->pid = uc.pid;
        }
    nt->n++;
    return no;
}

/* 1 if the message has the line `line` ("READY=1"). */
static int
has_line(const struct note *no, const char *line)
{
    size_t n = strlen(line);
    const char *p = no->text;

    for (; p != NULL && *p != '\0'; p = strchr(p, '\n') ? strchr(p, '\n') + 1
        : NULL)
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return 1;
    return 0;
}

/* The transcript, for failure messages (static). */
static const char *
transcript(const struct notify *nt, uint64_t t0)
{
    static char buf[16384];
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = nt->n > 100 ? nt->n - 100 : 0; i < nt->n
        && len + 300 < sizeof buf; i++) {
        char one[256], *p;

        snprintf(one, sizeof one, "%s", nt->notes[i].text);
        for (p = one; *p != '\0'; p++)
            if (*p == '\n')
                *p = '|';
        len += (size_t)snprintf(buf + len, sizeof buf - len,
            "  +%5llu ms pid %ld: %s\n",
            (unsigned long long)(nt->notes[i].t_ms - t0),
            (long)nt->notes[i].pid, one);
    }
    return buf;
}

/* ---- a daemon from its unit ---------------------------------------------- */

struct daemon {
    pid_t pid;
    char log[512];
    int status;                 /* after it ended */
};

/*
 * Starts argv with `env` added, its output to TMPDIR/NAME.log, and
 * WATCHDOG_PID set to its own PID (systemd sets the main PID there; a
 * process that is not that PID must not send WATCHDOG=1).
 */
static void
daemon_start(struct daemon *d, const char *name, char **argv,
    const char *const *env)
{
    int fd;

    memset(d, 0, sizeof *d);
    snprintf(d->log, sizeof d->log, "%s/%s.log", tmpdir(), name);
    fflush(NULL);
    d->pid = fork();
    assert_true(d->pid >= 0);
    if (d->pid == 0) {
        char wpid[64];

        /* dies with the test, whichever way the test ends */
        prctl(PR_SET_PDEATHSIG, SIGKILL);

        if ((fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        for (; env != NULL && *env != NULL; env++)
            putenv((char *)*env);
        snprintf(wpid, sizeof wpid, "WATCHDOG_PID=%ld", (long)getpid());
        putenv(wpid);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
}

/* 1 and d->status set if it ended (reaped), else 0. */
static int
daemon_ended(struct daemon *d)
{
    int st;

    if (d->pid <= 0)
        return 1;
    if (waitpid(d->pid, &st, WNOHANG) != d->pid)
        return 0;
    d->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    d->pid = 0;
    return 1;
}

static void
daemon_kill(struct daemon *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
    }
}

/*
 * The environment of a daemon of the tests: the private servers
 * (RabbitMQ, database `conninfo`), the notify socket, WATCHDOG_USEC, then
 * `extra`.  Static.
 */
static const char **
daemon_env(const char *conninfo, const struct notify *nt, long wd_usec,
    const char *const *extra)
{
    static const char *env[24];
    static char wd[64];
    size_t n = wq_test_env_for(WQ_TRANSPORT_RABBITMQ, conninfo, env, 8);

    snprintf(wd, sizeof wd, "WATCHDOG_USEC=%ld", wd_usec);
    env[n++] = nt->env;
    env[n++] = wd;
    env[n++] = "WORKQ_LOG_LEVEL=info";
    for (; extra != NULL && *extra != NULL && n + 1 < WQ_ARRAY_LEN(env);
        extra++)
        env[n++] = *extra;
    env[n] = NULL;
    return env;
}

/* ---- 4. the notify contract of each daemon ------------------------------- */

/*
 * Starts `unit` (the file; `instance` for a template) from the installed
 * tree as systemd would and checks the protocol; see the top of the file.
 */
static void
notify_contract(const char *name, const char *file, const char *instance,
    const char *const *extra)
{
    const char *root = install_here();
    const char *ci = wq_test_pg_create_migrated_db();
    char *unit = unit_text(root, file), *argv[MAX_ARGS];
    int stop_s = unit_seconds(unit, "TimeoutStopSec");
    int wd_unit_s = unit_seconds(unit, "WatchdogSec");
    const struct note *no;
    struct notify nt;
    struct daemon d;
    uint64_t t0, last_wd = 0, ready_at = 0, term_at = 0, end;
    int dogs = 0, stopping = 0;

    if (strcmp(unit_value(unit, "Type"), "notify") != 0
        || strcmp(unit_value(unit, "NotifyAccess"), "main") != 0)
        fail_msg("%s is not Type=notify with NotifyAccess=main", file);
    if (wd_unit_s <= 0)
        fail_msg("%s has no WatchdogSec=", file);
    exec_start_argv(unit, instance, argv);
    notify_open(&nt);
    t0 = now_ms();
    daemon_start(&d, name, argv, daemon_env(ci, &nt, WD_USEC, extra));

    /* READY=1 first, then WATCHDOG=1 at least 3 times, never more than
     * WATCHDOG_USEC apart (systemd would kill it then). */
    end = t0 + 60000;
    while (dogs < 4 && now_ms() < end) {
        if ((no = notify_next(&nt, 200)) == NULL) {
            if (daemon_ended(&d))
                fail_msg("%s exited with status %d before READY=1 and 4 "
                    "WATCHDOG=1; notify messages:\n%s\nlog:\n%s", name,
                    d.status, transcript(&nt, t0), tail_of(d.log));
            continue;
        }
        if (no->pid != d.pid)
            fail_msg("%s: a message from PID %ld, not the main PID %ld "
                "(NotifyAccess=main would drop it):\n%s", name,
                (long)no->pid, (long)d.pid, transcript(&nt, t0));
        if (has_line(no, "STOPPING=1"))
            fail_msg("%s: STOPPING=1 before any SIGTERM:\n%s", name,
                transcript(&nt, t0));
        if (has_line(no, "READY=1")) {
            if (ready_at != 0)
                fail_msg("%s: READY=1 twice:\n%s", name, transcript(&nt, t0));
            ready_at = last_wd = no->t_ms;
        }
        if (has_line(no, "WATCHDOG=1")) {
            if (ready_at == 0)
                fail_msg("%s: WATCHDOG=1 before READY=1:\n%s", name,
                    transcript(&nt, t0));
            if ((no->t_ms - last_wd) * 1000 >= (uint64_t)WD_USEC)
                fail_msg("%s: %llu ms without WATCHDOG=1 (WATCHDOG_USEC=%d "
                    "us):\n%s", name, (unsigned long long)(no->t_ms - last_wd),
                    WD_USEC, transcript(&nt, t0));
            last_wd = no->t_ms;
            dogs++;
        }
        if (ready_at != 0 && (now_ms() - last_wd) * 1000 >= (uint64_t)WD_USEC)
            fail_msg("%s: %llu ms without WATCHDOG=1 (WATCHDOG_USEC=%d us):"
                "\n%s", name, (unsigned long long)(now_ms() - last_wd),
                WD_USEC, transcript(&nt, t0));
    }
    if (ready_at == 0 || dogs < 4) {
        daemon_kill(&d);
        fail_msg("%s: READY=1 %s, %d WATCHDOG=1 in 60 s:\n%s\nlog:\n%s", name,
            ready_at != 0 ? "came" : "never came", dogs, transcript(&nt, t0),
            tail_of(d.log));
    }

    /* SIGTERM: STOPPING=1, then exit 0 within the unit's TimeoutStopSec. */
    kill(d.pid, SIGTERM);
    term_at = now_ms();
    end = term_at + (uint64_t)stop_s * 1000;
    while (now_ms() < end) {
        if ((no = notify_next(&nt, 100)) != NULL) {
            if (no->pid != d.pid)
                fail_msg("%s: a message from PID %ld, not the main PID %ld:"
                    "\n%s", name, (long)no->pid, (long)d.pid,
                    transcript(&nt, t0));
            if (has_line(no, "READY=1"))
                fail_msg("%s: READY=1 again while stopping:\n%s", name,
                    transcript(&nt, t0));
            stopping |= has_line(no, "STOPPING=1");
            continue;
        }
        if (daemon_ended(&d))
            break;
    }
    while ((no = notify_next(&nt, 0)) != NULL)
        stopping |= has_line(no, "STOPPING=1");
    if (d.pid > 0) {
        daemon_kill(&d);
        fail_msg("%s did not exit within TimeoutStopSec=%ds of SIGTERM "
            "(systemd would SIGKILL it):\n%s\nlog:\n%s", name, stop_s,
            transcript(&nt, t0), tail_of(d.log));
    }
    if (!stopping || d.status != 0)
        fail_msg("%s: after SIGTERM STOPPING=1 %s, exit status %d:\n%s\n"
            "log:\n%s", name, stopping ? "came" : "never came", d.status,
            transcript(&nt, t0), tail_of(d.log));
    argv_free(argv);
    free(unit);
    close(nt.fd);
}

static void
test_systemd_notify_producer(void **state)
{
    const char *extra[] = { "WORKQ_PRODUCER_LISTEN=127.0.0.1:0",
        "WORKQ_PRODUCER_AUTH=none", NULL };

    (void)state;
    notify_contract("workq-producer", "workq-producer.service", NULL, extra);
}

static void
test_systemd_notify_scheduler(void **state)
{
    (void)state;
    notify_contract("workq-scheduler", "workq-scheduler.service", NULL,
        NULL);
}

static void
test_systemd_notify_worker(void **state)
{
    char instance[200];
    const char *q = wq_test_unique("sysd");

    (void)state;
    wq_test_forget_queue(WQ_TRANSPORT_RABBITMQ, q);
    /* "QUEUE:N": the unit's wrapper must cut ":1" off */
    snprintf(instance, sizeof instance, "%s:1", q);
    notify_contract("workq-worker", "workq-worker@.service", instance, NULL);
}

/* ---- 5. a stuck consume loop stops the watchdog -------------------------- */

/*
 * A TCP relay to PostgreSQL in a child process.  SIGUSR1 freezes it: it
 * keeps every connection open and relays nothing more, the way a server
 * that hangs (or a network that drops everything) looks to libpq.
 * SIGUSR2 thaws it.
 */
static volatile sig_atomic_t relay_frozen;

static void
on_relay_signal(int sig)
{
    relay_frozen = sig == SIGUSR1;
}

static int
connect_to(const char *host, int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    a.sin_port = htons((uint16_t)port);
    if (fd < 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1
        || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void
relay_main(int lfd, const char *host, int port)
{
    struct pollfd pfd[129];
    int fds[128];               /* pairs: client 2k, server 2k+1 */
    int n = 0;
    struct sigaction sa;
    sigset_t block, orig;

    /* The signals stay blocked but while waiting (sigsuspend, ppoll), so
     * none is lost between a look at the flag and the wait. */
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigprocmask(SIG_BLOCK, &block, &orig);
    sigdelset(&orig, SIGUSR1);
    sigdelset(&orig, SIGUSR2);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_relay_signal;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    for (;;) {
        int np = 0;

        if (relay_frozen) {
            sigsuspend(&orig);
            continue;
        }
        pfd[np++] = (struct pollfd){ lfd, POLLIN, 0 };
        for (int i = 0; i < n; i++)
            pfd[np++] = (struct pollfd){ fds[i], POLLIN, 0 };
        if (ppoll(pfd, (nfds_t)np, NULL, &orig) < 0 || relay_frozen)
            continue;
        if (pfd[0].revents & POLLIN) {
            int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), s;

            if (c >= 0 && n + 2 <= 128 && (s = connect_to(host, port)) >= 0) {
                fds[n++] = c;
                fds[n++] = s;
            } else if (c >= 0) {
                close(c);
            }
        }
        for (int i = 1; i < np; i++) {
            char buf[65536];
            int me = i - 1, peer = me ^ 1;
            ssize_t r, w;

            if (pfd[i].revents == 0 || fds[me] < 0)
                continue;
            r = read(fds[me], buf, sizeof buf);
            for (ssize_t off = 0; r > 0 && off < r; off += w)
                if ((w = write(fds[peer], buf + off, (size_t)(r - off))) <= 0)
                    break;
            if (r <= 0) {
                close(fds[me]);
                close(fds[peer]);
                fds[me] = fds[peer] = -1;
            }
        }
        /* drop closed pairs */
        for (int i = 0; i < n;) {
            if (fds[i] < 0) {
                fds[i] = fds[n - 2];
                fds[i + 1] = fds[n - 1];
                n -= 2;
            } else {
                i += 2;
            }
        }
    }
}

/* Starts the relay to the server of `conninfo`; returns its pid and the
 * conninfo that goes through it (static). */
static pid_t
relay_start(const char *conninfo, const char **via)
{
    static char buf[2048];
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL), *o;
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof a;
    char host[256] = "127.0.0.1";
    int port = 5432, lfd;
    size_t len = 0;
    pid_t pid;

    assert_non_null(opts);
    for (o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        if (strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr")
            == 0) {
            if (o->val[0] == '/')
                fail_msg("the test server's conninfo names a socket "
                    "directory (%s): this test relays TCP", o->val);
            snprintf(host, sizeof host, "%s", o->val);
            continue;
        }
        if (strcmp(o->keyword, "port") == 0) {
            port = atoi(o->val);
            continue;
        }
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s='%s' ",
            o->keyword, o->val);
    }
    PQconninfoFree(opts);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 64), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    snprintf(buf + len, sizeof buf - len, "host=127.0.0.1 port=%d",
        ntohs(a.sin_port));
    *via = buf;
    fflush(NULL);
    if ((pid = fork()) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        relay_main(lfd, host, port);
        _exit(0);
    }
    assert_true(pid > 0);
    close(lfd);
    return pid;
}

/* Publishes one noop task with idempotency key `key` and waits for the
 * broker's confirmation. */
static void
publish_noop(const char *queue, const char *key)
{
    struct wq_transport_conf tc;
    struct wq_envelope e;
    struct wq_buf b = WQ_BUF_INIT;
    wq_transport *t;
    char err[WQ_ERRLEN];

    wq_test_transport_conf(WQ_TRANSPORT_RABBITMQ, &tc);
    if (wq_transport_open(&tc, &t, err, sizeof err) != 0)
        fail_msg("cannot reach the test broker: %s (tests/services/ctl "
            "start)", err);
    if (wq_transport_declare(t, queue, err, sizeof err) != 0)
        fail_msg("declare %s: %s", queue, err);
    if (wq_envelope_init(&e, queue, "noop", key, NULL, 0, err, sizeof err)
        != 0 || wq_envelope_encode(&e, &b, err, sizeof err) != 0)
        fail_msg("envelope: %s", err);
    if (wq_transport_publish(t, queue, key, strlen(key), b.data, b.len, NULL,
        err, sizeof err) != 0
        || wq_transport_flush(t, 30000, err, sizeof err) != 0)
        fail_msg("publish: %s", err);
    wq_transport_close(t, 5000);
    wq_envelope_free(&e);
    wq_buf_free(&b);
}

/* Waits up to timeout_ms for task `key` to have succeeded; 1 if so.
 * Keeps reading the notify socket meanwhile. */
static int
wait_succeeded(wq_store *s, const char *key, struct notify *nt,
    int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;

    while (now_ms() < end) {
        if (wq_test_pg_numf(s, "SELECT count(*) FROM workq.tasks WHERE "
            "idempotency_key = '%s' AND state = 'succeeded'", key) == 1)
            return 1;
        while (notify_next(nt, 100) != NULL)
            ;
    }
    return 0;
}

static void
test_systemd_worker_stuck_watchdog(void **state)
{
    const char *root = install_here();
    const char *ci = wq_test_pg_create_migrated_db(), *via;
    const char *q = wq_test_unique("sysd-stuck");
    char *unit = unit_text(root, "workq-worker@.service"), *argv[MAX_ARGS];
    char instance[200], key_a[200], key_b[200], env_ci[2200];
    const char *extra[] = { env_ci, NULL };
    const struct note *no;
    struct notify nt;
    struct daemon d;
    wq_store *s = wq_test_pg_open(ci);
    uint64_t t0, last_wd = 0, end, frozen_at;
    pid_t relay;
    int ready = 0, dogs, stopping = 0;
    size_t mark;

    (void)state;
    wq_test_forget_queue(WQ_TRANSPORT_RABBITMQ, q);
    snprintf(key_a, sizeof key_a, "%s-a", q);
    snprintf(key_b, sizeof key_b, "%s-b", q);
    snprintf(instance, sizeof instance, "%s:1", q);
    relay = relay_start(ci, &via);
    /* after wq_test_env_for's entry, so it wins */
    snprintf(env_ci, sizeof env_ci, "WORKQ_POSTGRES_CONNINFO=%s", via);
    exec_start_argv(unit, instance, argv);
    notify_open(&nt);
    publish_noop(q, key_a);     /* declares the queue too */
    t0 = now_ms();
    daemon_start(&d, "workq-worker", argv,
        daemon_env(ci, &nt, STUCK_USEC, extra));

    /* Healthy: READY=1, WATCHDOG=1, and task a done through the relay. */
    end = t0 + 60000;
    for (dogs = 0; dogs < 3 && now_ms() < end;) {
        if ((no = notify_next(&nt, 200)) == NULL) {
            if (daemon_ended(&d))
                fail_msg("the worker exited (%d):\n%s", d.status,
                    tail_of(d.log));
            continue;
        }
        ready |= has_line(no, "READY=1");
        dogs += ready && has_line(no, "WATCHDOG=1");
    }
    if (!ready || dogs < 3 || !wait_succeeded(s, key_a, &nt, 60000)) {
        daemon_kill(&d);
        kill(relay, SIGKILL);
        fail_msg("no healthy start (READY=%d, %d WATCHDOG=1, task a not "
            "done):\n%s\nlog:\n%s", ready, dogs, transcript(&nt, t0),
            tail_of(d.log));
    }

    /* PostgreSQL stops answering; task b makes the loop call it. */
    kill(relay, SIGUSR1);
    usleep(100000);
    frozen_at = now_ms();
    publish_noop(q, key_b);
    mark = nt.n;
    last_wd = now_ms();
    end = now_ms() + 30000;
    while (now_ms() < end && (now_ms() - last_wd) * 1000
        < 3ull * STUCK_USEC) {
        if ((no = notify_next(&nt, 100)) != NULL
            && has_line(no, "WATCHDOG=1"))
            last_wd = no->t_ms;
    }
    if ((now_ms() - last_wd) * 1000 < 3ull * STUCK_USEC) {
        daemon_kill(&d);
        kill(relay, SIGKILL);
        fail_msg("the worker kept sending WATCHDOG=1 for 30 s while its "
            "consume loop should hang in PostgreSQL (frozen at +%llu ms):"
            "\n%s\nlog:\n%s", (unsigned long long)(frozen_at - t0),
            transcript(&nt, t0), tail_of(d.log));
    }
    if (daemon_ended(&d))
        fail_msg("the worker exited (%d) while PostgreSQL hung:\n%s",
            d.status, tail_of(d.log));

    /* PostgreSQL answers again: WATCHDOG=1 again and task b done. */
    kill(relay, SIGUSR2);
    mark = nt.n;
    end = now_ms() + 30000;
    for (dogs = 0; dogs < 2 && now_ms() < end;)
        if ((no = notify_next(&nt, 200)) != NULL)
            dogs += has_line(no, "WATCHDOG=1");
    if (dogs < 2 || !wait_succeeded(s, key_b, &nt, 60000)) {
        daemon_kill(&d);
        kill(relay, SIGKILL);
        fail_msg("after PostgreSQL came back: %d WATCHDOG=1 (from message "
            "%zu), task b %s:\n%s\nlog:\n%s", dogs, mark,
            dogs < 2 ? "not checked" : "not done", transcript(&nt, t0),
            tail_of(d.log));
    }

    kill(d.pid, SIGTERM);
    end = now_ms() + (uint64_t)unit_seconds(unit, "TimeoutStopSec") * 1000;
    while (now_ms() < end && !daemon_ended(&d))
        if ((no = notify_next(&nt, 100)) != NULL)
            stopping |= has_line(no, "STOPPING=1");
    while ((no = notify_next(&nt, 0)) != NULL)
        stopping |= has_line(no, "STOPPING=1");
    kill(relay, SIGKILL);
    waitpid(relay, NULL, 0);
    if (d.pid > 0) {
        daemon_kill(&d);
        fail_msg("the worker did not stop in time:\n%s", tail_of(d.log));
    }
    if (!stopping || d.status != 0)
        fail_msg("stop: STOPPING=1 %d, status %d:\n%s", stopping, d.status,
            tail_of(d.log));
    wq_store_close(s);
    argv_free(argv);
    free(unit);
    close(nt.fd);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_systemd_verify),
    cmocka_unit_test(test_systemd_install_layout),
    cmocka_unit_test(test_systemd_man_pages),
    cmocka_unit_test(test_systemd_notify_producer),
    cmocka_unit_test(test_systemd_notify_worker),
    cmocka_unit_test(test_systemd_notify_scheduler),
    cmocka_unit_test(test_systemd_worker_stuck_watchdog),
};

WQ_TEST_MAIN("systemd", tests)

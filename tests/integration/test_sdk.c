/*
 * test_sdk.c - the C SDK as a user gets it: `make install-sdk` into a
 * temporary prefix (headers, libworkq.a, libworkq.so.X and its links,
 * workq.pc), the README's C example (the ```c block after "In C") built
 * outside the tree with `cc send.c $(pkg-config --cflags --libs workq)`
 * against that prefix only, then run with the shipped configuration
 * (the private servers' addresses from WORKQ_* environment, the queue
 * renamed per test): it prints "task ID accepted" once the broker
 * confirmed, and a real workq-worker records that task as succeeded.
 *
 * In the sanitizer builds the installed library is the instrumented one,
 * so the example is built with the same -fsanitize flags
 * (WQ_TEST_SANFLAGS, from the Makefile).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_test.h"
#include "workq.h"

#ifndef WQ_TEST_SANFLAGS
#define WQ_TEST_SANFLAGS ""
#endif
#ifndef WQ_TEST_MAKEVARS
#define WQ_TEST_MAKEVARS "SAN=0"
#endif

#define R WQ_TRANSPORT_RABBITMQ

static char out[1 << 16];

/* Writes the README's C example to path, with "emails" replaced by queue. */
static void
readme_example(const char *path, const char *queue)
{
    char *readme = wq_test_read_file(WQ_SOURCE_DIR "/README.md");
    const char *p = strstr(readme, "\nIn C"), *end;
    FILE *f;

    if (p == NULL || (p = strstr(p, "\n```c\n")) == NULL)
        fail_msg("README.md has no ```c block after \"In C\"");
    p += strlen("\n```c\n");
    if ((end = strstr(p, "\n```")) == NULL)
        fail_msg("README.md: the C block does not end");
    assert_non_null(f = fopen(path, "w"));
    for (; p <= end; p++) {
        if (strncmp(p, "\"emails\"", 8) == 0) {
            fprintf(f, "\"%s\"", queue);
            p += 7;
        } else {
            fputc(*p, f);
        }
    }
    assert_int_equal(fclose(f), 0);
    free(readme);
}

static void
declare(const char *queue)
{
    struct wq_transport_conf tc;
    char err[WQ_ERRLEN];
    wq_transport *t;

    wq_test_transport_conf(R, &tc);
    if (wq_transport_open(&tc, &t, err, sizeof err) != 0)
        fail_msg("cannot reach the test broker: %s (tests/services/ctl "
            "start)", err);
    if (wq_transport_declare(t, queue, err, sizeof err) != 0)
        fail_msg("declare %s: %s", queue, err);
    wq_transport_close(t, 5000);
    wq_test_forget_queue(R, queue);
}

/* Runs a shell command line with env; fails the test unless it exits 0. */
static void
shell(const char *cmd, const char *const *env)
{
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    int rc = wq_test_cmd(argv, env, NULL, out, sizeof out);

    if (rc != 0)
        fail_msg("exit %d: %s\n%s", rc, cmd, out);
}

static void
test_sdk_readme_example_installed(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("sdk");
    const char *wargs[] = { "--queue", q, NULL };
    const char *env[20];
    char dir[512], cmd[4096], pcpath[700], ldpath[700], id[64] = "";
    char sql[512], *conf, *line;
    wq_store *s = wq_test_pg_open(ci);
    struct proc w;
    size_t ne;

    (void)state;
    assert_non_null(getcwd(dir, sizeof dir));
    /* the SDK into DIR/prefix, from this build; nothing else of workq
     * is installed there */
    snprintf(cmd, sizeof cmd, "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "
        "-u MAKEOVERRIDES make -s -C '%s' BUILD='%s' %s PREFIX='%s/prefix' "
        "LDCONFIG=true install-sdk", WQ_SOURCE_DIR,
        wq_test_env("WORKQ_BUILD", "build"), WQ_TEST_MAKEVARS, dir);
    shell(cmd, NULL);
    snprintf(pcpath, sizeof pcpath, "PKG_CONFIG_PATH=%s/prefix/lib/pkgconfig",
        dir);
    snprintf(ldpath, sizeof ldpath, "LD_LIBRARY_PATH=%s/prefix/lib", dir);

    /* built outside the tree, from the installed header and library */
    readme_example("send.c", q);
    env[0] = pcpath;
    env[1] = NULL;
    shell("pkg-config --cflags --libs workq", env);
    snprintf(cmd, sizeof cmd, "-I%s/prefix/include", dir);
    assert_contains(out, cmd);
    snprintf(cmd, sizeof cmd, "cc %s -Wall -Wextra -Werror send.c "
        "$(pkg-config --cflags --libs workq) -o send", WQ_TEST_SANFLAGS);
    shell(cmd, env);
    shell("readelf -d send", NULL);
    assert_contains(out, "Shared library: [libworkq.so.");

    /* a worker of the queue, then the example against the servers */
    conf = wq_test_read_file(WQ_SOURCE_DIR "/config/workq.conf");
    declare(q);
    proc_start(&w, "workq-worker", R, ci, conf, NULL, wargs);
    ne = wq_test_env_for(R, ci, env, 16);
    env[ne++] = ldpath;
    env[ne] = NULL;
    snprintf(cmd, sizeof cmd, "./send '%s/config/workq.conf'", WQ_SOURCE_DIR);
    shell(cmd, env);
    line = strstr(out, "task ");
    check(line != NULL && sscanf(line, "task %63s accepted", id) == 1
        && strlen(id) == WQ_CLIENT_ID_LEN - 1, "send printed:\n%s", out);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM workq.tasks WHERE "
        "id = '%s' AND state = 'succeeded' AND result = "
        "convert_to('{\"to\":\"a@b.example\"}', 'UTF8')", id);
    check(wait_num(s, 1, 60000, sql) == 1,
        "the worker did not record task %s as succeeded", id);
    proc_stop(&w, 30000);
    wq_store_close(s);
    free(conf);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sdk_readme_example_installed),
};

WQ_TEST_MAIN("sdk", tests)

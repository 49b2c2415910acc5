/*
 * test_readme.c - the README's first examples run as written against the
 * shipped configuration (config/workq.conf): the `workq` lines of the
 * first sh block under "## Using workq" are run by /bin/sh, in order,
 * with `workq` the built binary given --config config/workq.conf, a
 * worker and a scheduler started with that same file, and only the
 * private servers' addresses overridden by WORKQ_* environment (and the
 * queue renamed per test, as the servers are shared).  The curl line
 * needs a producer and a token and is left out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_test.h"

#define R WQ_TRANSPORT_RABBITMQ

static char out[1 << 16];

/* The whole file at path (malloc'd), or fails. */
static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (f == NULL)
        fail_msg("%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/*
 * Appends to script the commands of the first ```sh block after "##
 * Using workq" in readme, but those starting with "curl" (with their
 * continuation lines), with "emails" replaced by queue.  Returns how
 * many commands it took.
 */
static int
readme_commands(const char *readme, const char *queue, char *script,
    size_t len)
{
    const char *p = strstr(readme, "\n## Using workq\n"), *end;
    int n = 0, skip = 0;

    if (p == NULL || (p = strstr(p, "\n```sh\n")) == NULL)
        fail_msg("README.md has no sh block under \"## Using workq\"");
    p += strlen("\n```sh\n");
    if ((end = strstr(p, "\n```")) == NULL)
        fail_msg("README.md: the sh block does not end");
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        int cont = l > 0 && p[l - 1] == '\\';

        if (!skip && strncmp(p, "curl ", 5) == 0)
            skip = 1;
        if (!skip) {
            for (size_t i = 0; i < l; i++) {
                if (strncmp(p + i, "emails", 6) == 0) {
                    strncat(script, queue, len - strlen(script) - 1);
                    i += 5;
                } else {
                    strncat(script, p + i, 1);
                }
            }
            strncat(script, "\n", len - strlen(script) - 1);
            n += !cont;
        }
        if (!cont)
            skip = 0;
        p += l + 1;
    }
    return n;
}

static void
declare(const char *queue)
{
    struct wq_transport_conf tc;
    char err[WQ_ERRLEN], dead[WQ_QUEUE_MAX + 8];
    wq_transport *t;

    wq_test_transport_conf(R, &tc);
    if (wq_transport_open(&tc, &t, err, sizeof err) != 0)
        fail_msg("cannot reach the test broker: %s (tests/services/ctl "
            "start)", err);
    snprintf(dead, sizeof dead, "%s.dead", queue);
    if (wq_transport_declare(t, queue, err, sizeof err) != 0
        || wq_transport_declare(t, dead, err, sizeof err) != 0)
        fail_msg("declare %s: %s", queue, err);
    wq_transport_close(t, 5000);
    wq_test_forget_queue(R, queue);
    wq_test_forget_queue(R, dead);
}

static void
test_readme_first_examples(void **state)
{
    const char *ci = wq_test_pg_create_migrated_db();
    const char *q = wq_test_unique("readme");
    const char *wargs[] = { "--queue", q, NULL };
    const char *argv[4], *env[16];
    char *readme, *conf, script[8192], bin[1024];
    wq_store *s = wq_test_pg_open(ci);
    struct proc w, sch;
    int n, rc;

    (void)state;
    readme = slurp(WQ_SOURCE_DIR "/README.md");
    conf = slurp(WQ_SOURCE_DIR "/config/workq.conf");
    declare(q);
    proc_start(&sch, "workq-scheduler", R, ci, conf, NULL, NULL);
    proc_start(&w, "workq-worker", R, ci, conf, NULL, wargs);

    snprintf(bin, sizeof bin, "%s", wq_test_bin("workq"));
    snprintf(script, sizeof script, "set -ex\nworkq() { '%s' --config "
        "'%s/config/workq.conf' \"$@\"; }\n", bin, WQ_SOURCE_DIR);
    n = readme_commands(readme, q, script, sizeof script);
    check(n >= 3, "only %d commands in the README's first block:\n%s", n,
        script);
    argv[0] = "/bin/sh";
    argv[1] = "-c";
    argv[2] = script;
    argv[3] = NULL;
    env[wq_test_env_for(R, ci, env, 15)] = NULL;
    rc = wq_test_cmd(argv, env, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("the README's commands failed (exit %d):\n%s\n---\n%s", rc,
            script, out);
    /* --wait saw the delayed task's result, status the first task's */
    assert_contains(out, "succeeded after 1 attempt\n{\"to\":\"c@d.example\"}");
    assert_contains(out, "state       succeeded");
    assert_contains(out, "result      20 bytes: {\"to\":\"a@b.example\"}");
    assert_contains(out, "3 tasks accepted, 0 lines rejected");
    /* and every task of the block ran */
    check(wait_num(s, 5, 60000, "SELECT count(*) FROM workq.tasks WHERE "
        "state = 'succeeded'") == 5, "not all 5 tasks succeeded:\n%s", out);
    proc_stop(&w, 30000);
    proc_stop(&sch, 10000);
    wq_store_close(s);
    free(readme);
    free(conf);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_readme_first_examples),
};

WQ_TEST_MAIN("readme", tests)

/*
 * test_worker_config.c - the worker's configuration: the lists of groups
 * `handlers` and `queue_policies` (file, environment, errors with
 * file:line, dump round trip, documentation of every key of a group in
 * config/workq.conf, the exec resource limits) and the handler registry
 * built from them (checks, lookup order, built-ins).
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "wq_test.h"
#include "buf.h"
#include "envelope.h"
#include "backoff.h"
#include "store_claims.h"
#include "config.h"
#include "handler.h"

#ifndef WQ_SOURCE_DIR
#define WQ_SOURCE_DIR "."
#endif

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

/* Writes text to path, loads it and builds the registry; fails on any
 * error. */
static wq_handlers *
load_registry(const char *path, const char *text, struct wq_config *c)
{
    char err[WQ_CONFIG_ERRLEN];
    wq_handlers *h = NULL;

    write_file(path, text);
    if (wq_config_load(path, c, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (wq_handlers_new(c, &h, err, sizeof err) != 0)
        fail_msg("%s", err);
    return h;
}

static char *
read_whole(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (f == NULL)
        fail_msg("cannot open %s", path);
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

static void
clean_env(void)
{
    unsetenv("WORKQ_HANDLERS");
    unsetenv("WORKQ_QUEUE_POLICIES");
    unsetenv("WORKQ_WORKER_BUILTIN_HANDLERS");
}

static const char good_conf[] =
    "worker = { batch_max = 64; };\n"
    "handlers = (\n"
    "    { type = \"resize\"; kind = \"exec\";\n"
    "      argv = [ \"/bin/cat\", \"-\" ]; env = [ \"A=1\" ];\n"
    "      timeout = \"2m\"; kill_grace = \"1s\";\n"
    "      permanent_exit_codes = [ 65, 78 ]; max_output = 4096;\n"
    "      limit_memory = \"512M\"; limit_cpu = 90; limit_files = 256;\n"
    "      limit_processes = 100; limit_file_size = 1073741824;\n"
    "      core_dumps = true; umask = \"0027\"; },\n"
    "    { type = \"resize\"; queue = \"img\"; kind = \"builtin\";\n"
    "      builtin = \"echo\"; },\n"
    "    { type = \"*\"; kind = \"builtin\"; builtin = \"fail\";\n"
    "      options = \"until=2\"; }\n"
    ");\n"
    "queue_policies = (\n"
    "    { name = \"mail\"; max_attempts = 5; backoff_base = \"2s\";\n"
    "      backoff_factor = 3; backoff_cap = \"1h\";\n"
    "      backoff_jitter = \"full\"; },\n"
    "    { name = \"*\"; backoff_jitter = \"none\"; }\n"
    ");\n";

static void
test_worker_config_groups_load(void **state)
{
    struct wq_config c;
    const struct wq_config_handler *h;
    const struct wq_config_queue_policy *p;
    char err[WQ_CONFIG_ERRLEN];

    (void)state;
    clean_env();
    write_file("w.conf", good_conf);
    if (wq_config_load("w.conf", &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.worker.batch_max, 64);
    assert_int_equal(c.worker.builtin_handlers, 1);
    assert_int_equal(c.handlers.n, 3);
    h = c.handlers.v;
    assert_string_equal(h[0].type, "resize");
    assert_string_equal(h[0].queue, "");
    assert_int_equal(h[0].kind, WQ_HANDLER_EXEC);
    assert_int_equal(h[0].argv.n, 2);
    assert_string_equal(h[0].argv.v[0], "/bin/cat");
    assert_null(h[0].argv.v[2]);
    assert_string_equal(h[0].env.v[0], "A=1");
    assert_int_equal(h[0].timeout_ms, 120000);
    assert_int_equal(h[0].kill_grace_ms, 1000);
    assert_int_equal(h[0].permanent_exit_codes.n, 2);
    assert_int_equal(h[0].permanent_exit_codes.v[1], 78);
    assert_int_equal(h[0].max_output, 4096);
    assert_int_equal(h[0].max_stderr, 65536);
    assert_int_equal(h[0].limit_memory, 512LL << 20);
    assert_int_equal(h[0].limit_cpu_ms, 90000);
    assert_int_equal(h[0].limit_files, 256);
    assert_int_equal(h[0].limit_processes, 100);
    assert_int_equal(h[0].limit_file_size, 1LL << 30);
    assert_int_equal(h[0].core_dumps, 1);
    assert_int_equal(h[0].umask, 027);
    assert_string_equal(h[0].where, "w.conf:3");
    /* defaults of the keys not given */
    assert_int_equal(h[1].kind, WQ_HANDLER_BUILTIN);
    assert_string_equal(h[1].queue, "img");
    assert_int_equal(h[1].permanent_exit_codes.n, 1);
    assert_int_equal(h[1].permanent_exit_codes.v[0], 65);
    assert_int_equal(h[1].timeout_ms, 0);
    assert_int_equal(h[1].argv.n, 0);
    /* exec programs are limited unless a handler says otherwise */
    assert_int_equal(h[1].limit_memory, 1LL << 30);
    assert_int_equal(h[1].limit_memory, WQ_EXEC_LIMIT_MEMORY);
    assert_int_equal(h[1].limit_cpu_ms, WQ_EXEC_LIMIT_CPU_MS);
    assert_int_equal(h[1].limit_files, WQ_EXEC_LIMIT_FILES);
    assert_int_equal(h[1].limit_processes, WQ_EXEC_LIMIT_PROCESSES);
    assert_int_equal(h[1].limit_cpu_ms, 300000);
    assert_int_equal(h[1].limit_files, 1024);
    assert_int_equal(h[1].limit_file_size, 0);
    assert_int_equal(h[1].core_dumps, 0);
    assert_int_equal(h[1].umask, 077);
    assert_string_equal(h[2].options, "until=2");
    assert_int_equal(c.queue_policies.n, 2);
    p = c.queue_policies.v;
    assert_string_equal(p[0].name, "mail");
    assert_int_equal(p[0].max_attempts, 5);
    assert_int_equal(p[0].backoff_base_ms, 2000);
    assert_int_equal(p[0].backoff_factor, 3);
    assert_int_equal(p[0].backoff_cap_ms, 3600000);
    assert_int_equal(p[0].backoff_jitter, WQ_JITTER_FULL);
    assert_int_equal(p[1].max_attempts, 25);
    assert_int_equal(p[1].backoff_jitter, WQ_JITTER_NONE);
    wq_config_free(&c);
}

static void
test_worker_config_groups_errors(void **state)
{
    struct wq_config c;
    char err[WQ_CONFIG_ERRLEN];

    (void)state;
    clean_env();
    write_file("bad.conf",
        "handlers = (\n"
        "    { tpye = \"x\"; kind = \"exec\"; },\n"
        "    { type = \"y\"; kind = \"shell\"; timeout = \"soon\"; },\n"
        "    \"not a group\",\n"
        "    { type = 3; permanent_exit_codes = ( 0, \"1\" ); }\n"
        ");\n"
        "queue_policies = { name = \"x\"; };\n");
    assert_int_equal(wq_config_load("bad.conf", &c, err, sizeof err),
        WQ_ECONFIG);
    assert_contains(err, "bad.conf:2: handlers[1].tpye: unknown key (did you "
        "mean type?)");
    assert_contains(err, "bad.conf:2: handlers[1]: type is required");
    assert_contains(err, "bad.conf:3: handlers[2].kind: \"shell\" is not one "
        "of builtin|exec|plugin");
    assert_contains(err, "handlers[2].timeout:");
    assert_contains(err, "handlers[3]: expected a group");
    assert_contains(err, "handlers[4].type: expected a string");
    assert_contains(err, "handlers[4].permanent_exit_codes:");
    assert_contains(err, "queue_policies: expected a list of groups");
    wq_config_free(&c);
}

static void
test_worker_config_groups_env(void **state)
{
    struct wq_config c;
    const struct wq_config_handler *h;
    char err[WQ_CONFIG_ERRLEN];

    (void)state;
    clean_env();
    setenv("WORKQ_HANDLERS", "( { type = \"t\"; kind = \"exec\"; "
        "argv = [ \"/bin/true\" ]; } )", 1);
    setenv("WORKQ_QUEUE_POLICIES", "( { name = \"*\"; max_attempts = 3; } )",
        1);
    /* the environment beats the file */
    write_file("w.conf", good_conf);
    if (wq_config_load("w.conf", &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.handlers.n, 1);
    h = c.handlers.v;
    assert_string_equal(h[0].type, "t");
    assert_string_equal(h[0].argv.v[0], "/bin/true");
    assert_contains(h[0].where, "environment WORKQ_HANDLERS");
    assert_int_equal(((const struct wq_config_queue_policy *)
        c.queue_policies.v)[0].max_attempts, 3);
    wq_config_free(&c);

    setenv("WORKQ_HANDLERS", "( { type = ", 1);
    assert_int_equal(wq_config_load("w.conf", &c, err, sizeof err),
        WQ_ECONFIG);
    assert_contains(err, "environment WORKQ_HANDLERS: handlers: not a list");
    wq_config_free(&c);
    setenv("WORKQ_HANDLERS", "( { type = \"t\"; nope = 1; } )", 1);
    assert_int_equal(wq_config_load("w.conf", &c, err, sizeof err),
        WQ_ECONFIG);
    assert_contains(err, "handlers[1].nope: unknown key");
    wq_config_free(&c);
    /* empty: no handlers */
    setenv("WORKQ_HANDLERS", "", 1);
    assert_int_equal(wq_config_load("w.conf", &c, err, sizeof err), 0);
    assert_int_equal(c.handlers.n, 0);
    wq_config_free(&c);
    clean_env();
}

static char *
dump(const struct wq_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    wq_config_dump(c, f);
    fclose(f);
    return buf;
}

static void
test_worker_config_groups_dump(void **state)
{
    struct wq_config c, d;
    char err[WQ_CONFIG_ERRLEN], *a, *b;

    (void)state;
    clean_env();
    write_file("w.conf", good_conf);
    if (wq_config_load("w.conf", &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    a = dump(&c);
    assert_contains(a, "handlers = (\n    {\n        type = \"resize\";\n");
    assert_contains(a, "        permanent_exit_codes = [ 65, 78 ];\n");
    assert_contains(a, "        limit_memory = \"512M\";\n");
    assert_contains(a, "        limit_cpu = \"1m30s\";\n");
    assert_contains(a, "        limit_file_size = \"1G\";\n");
    assert_contains(a, "        core_dumps = true;\n");
    assert_contains(a, "        umask = \"0027\";\n");
    assert_contains(a, "        umask = \"0077\";\n");     /* a default */
    assert_contains(a, "queue_policies = (\n");
    write_file("dumped.conf", a);
    if (wq_config_load("dumped.conf", &d, err, sizeof err) != 0)
        fail_msg("%s\n%s", err, a);
    b = dump(&d);
    assert_string_equal(a, b);
    free(a);
    free(b);
    wq_config_free(&c);
    wq_config_free(&d);
}

/* Every key of a group's table is documented ("#   key = ") in the
 * comment of config/workq.conf, next to its list. */
static void
test_worker_config_groups_documented(void **state)
{
    char path[PATH_MAX], pat[160], *text;
    const char *dir = getenv("WORKQ_SOURCE_DIR");

    (void)state;
    snprintf(path, sizeof path, "%s/config/workq.conf",
        dir != NULL && dir[0] != '\0' ? dir : WQ_SOURCE_DIR);
    text = read_whole(path);
    for (size_t i = 0; i < wq_config_nkeys; i++) {
        const struct wq_config_key *k = &wq_config_keys[i];

        if (k->type != WQ_CONFIG_GROUPS)
            continue;
        snprintf(pat, sizeof pat, "\n%s = ( );\n", k->key);
        assert_contains(text, pat);
        for (size_t j = 0; j < k->nsub; j++) {
            snprintf(pat, sizeof pat, "\n#   %s = ", k->sub[j].key);
            if (strstr(text, pat) == NULL)
                fail_msg("config/workq.conf does not document %s[].%s",
                    k->key, k->sub[j].key);
            assert_true(strlen(k->sub[j].doc) > 10);
        }
    }
    free(text);
}

static void
test_worker_config_registry(void **state)
{
    struct wq_config c;
    wq_handlers *h = NULL;
    const struct wq_handler *x;
    char err[WQ_CONFIG_ERRLEN];

    (void)state;
    clean_env();
    h = load_registry("w.conf", good_conf, &c);
    /* exact queue and type first, then any queue, then "*" */
    x = wq_handlers_find(h, "img", "resize");
    assert_non_null(x);
    assert_int_equal(x->kind, WQ_HANDLER_BUILTIN);
    x = wq_handlers_find(h, "other", "resize");
    assert_int_equal(x->kind, WQ_HANDLER_EXEC);
    assert_int_equal(x->exec.timeout_ms, 120000);
    assert_int_equal(x->exec.npermanent, 2);
    x = wq_handlers_find(h, "other", "unknown");
    assert_string_equal(x->type, "*");
    /* "*" wins over the built-ins: they come last */
    x = wq_handlers_find(h, "q", "noop");
    assert_string_equal(x->type, "*");
    wq_handlers_free(h);
    wq_config_free(&c);

    /* without "*", the built-ins answer their names, unless turned off */
    write_file("b.conf",
        "handlers = ( { type = \"t\"; builtin = \"echo\"; } );\n");
    assert_int_equal(wq_config_load("b.conf", &c, err, sizeof err), 0);
    assert_int_equal(wq_handlers_new(&c, &h, err, sizeof err), 0);
    assert_non_null(wq_handlers_find(h, "q", "sleep"));
    assert_string_equal(wq_handlers_find(h, "q", "noop")->type, "noop");
    assert_null(wq_handlers_find(h, "q", "resize"));
    wq_handlers_free(h);
    wq_config_free(&c);
    setenv("WORKQ_WORKER_BUILTIN_HANDLERS", "false", 1);
    assert_int_equal(wq_config_load("b.conf", &c, err, sizeof err), 0);
    assert_int_equal(wq_handlers_new(&c, &h, err, sizeof err), 0);
    assert_null(wq_handlers_find(h, "q", "noop"));
    assert_non_null(wq_handlers_find(h, "q", "t"));
    wq_handlers_free(h);
    wq_config_free(&c);
    clean_env();
}

/*
 * An exec handler that sets no limit runs with the defaults: 1 GiB of
 * address space, 300 s of CPU, 1024 descriptors, 1024 processes; 0
 * still means the worker's own limit.
 */
static void
test_worker_config_exec_default_limits(void **state)
{
    struct wq_config c;
    wq_handlers *h;
    const struct wq_handler *x;
    struct wq_envelope env;
    struct wq_handler_ctx ctx;
    struct wq_handler_result res;
    char err[WQ_ERRLEN], mine[64];
    struct rlimit rl;

    (void)state;
    clean_env();
    signal(SIGPIPE, SIG_IGN);
    h = load_registry("d.conf", "handlers = (\n"
        "  { type = \"lim\"; kind = \"exec\"; argv = [ \"/bin/sh\", \"-c\",\n"
        "    \"echo $(ulimit -v) $(ulimit -t) $(ulimit -n) $(ulimit -p)\" ]; },\n"
        "  { type = \"own\"; kind = \"exec\"; limit_memory = 0;\n"
        "    limit_files = 0; argv = [ \"/bin/sh\", \"-c\",\n"
        "    \"echo $(ulimit -v) $(ulimit -n)\" ]; }\n"
        ");\n", &c);
    if (wq_envelope_init(&env, "q", "lim", "k", "", 0, err, sizeof err) != 0)
        fail_msg("%s", err);
    memset(&ctx, 0, sizeof ctx);
    ctx.env = &env;
    ctx.task_id = "0190a5f8-7c1e-7a3b-9c4d-5e6f708192a3";
    ctx.attempt = 1;
    ctx.max_attempts = 1;
    ctx.worker_id = "w";
    ctx.cancel_fd = ctx.task_cancel_fd = -1;

    x = wq_handlers_find(h, "q", "lim");
    assert_non_null(x);
    memset(&res, 0, sizeof res);
    wq_handlers_run(x, &ctx, &res);
    assert_int_equal(res.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_int_equal(wq_buf_append(&res.result, "", 1), 0);
    /* ulimit -v is in KiB */
    assert_string_equal(res.result.data, "1048576 300 1024 1024\n");
    wq_handler_result_free(&res);

    /* 0: the worker's own */
    x = wq_handlers_find(h, "q", "own");
    assert_non_null(x);
    memset(&res, 0, sizeof res);
    wq_handlers_run(x, &ctx, &res);
    assert_int_equal(res.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_int_equal(wq_buf_append(&res.result, "", 1), 0);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_int_equal(getrlimit(RLIMIT_AS, &rl), 0);
    if (rl.rlim_cur == RLIM_INFINITY)
        snprintf(mine, sizeof mine, "unlimited ");
    else
        snprintf(mine, sizeof mine, "%llu ",
            (unsigned long long)rl.rlim_cur / 1024);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    snprintf(mine + strlen(mine), sizeof mine - strlen(mine), "%llu\n",
        (unsigned long long)rl.rlim_cur);
    assert_string_equal(res.result.data, mine);
    wq_handler_result_free(&res);
    wq_envelope_free(&env);
    wq_handlers_free(h);
    wq_config_free(&c);
}

/* The exec limits: every form of value, and bad ones with FILE:LINE: KEY. */
static void
test_worker_config_exec_limits(void **state)
{
    struct wq_config c;
    const struct wq_config_handler *h;
    char err[WQ_CONFIG_ERRLEN];

    (void)state;
    clean_env();
    write_file("l.conf",
        "handlers = (\n"
        "  { type = \"a\"; kind = \"exec\"; argv = [ \"/bin/true\" ];\n"
        "    limit_memory = 8589934592L; limit_file_size = \"64KiB\";\n"
        "    limit_cpu = \"1500ms\"; umask = \"22\"; },\n"
        "  { type = \"b\"; kind = \"exec\"; argv = [ \"/bin/true\" ];\n"
        "    limit_memory = \"2g\"; limit_file_size = 1000;\n"
        "    limit_files = 1048576; limit_processes = 0; umask = \"0\";\n"
        "    core_dumps = false; },\n"
        "  { type = \"c\"; kind = \"exec\"; argv = [ \"/bin/true\" ];\n"
        "    limit_memory = \"1T\"; umask = \"0777\"; }\n"
        ");\n");
    if (wq_config_load("l.conf", &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    h = c.handlers.v;
    assert_int_equal(h[0].limit_memory, 8LL << 30);
    assert_int_equal(h[0].limit_file_size, 64 << 10);
    assert_int_equal(h[0].limit_cpu_ms, 1500);
    assert_int_equal(h[0].umask, 022);
    assert_int_equal(h[1].limit_memory, 2LL << 30);
    assert_int_equal(h[1].limit_file_size, 1000);
    assert_int_equal(h[1].limit_files, 1048576);
    assert_int_equal(h[1].umask, 0);
    assert_int_equal(h[1].core_dumps, 0);
    assert_int_equal(h[2].limit_memory, 1LL << 40);
    assert_int_equal(h[2].umask, 0777);
    wq_config_free(&c);

    /* from the environment, in libconfig syntax as ever */
    setenv("WORKQ_HANDLERS", "( { type = \"t\"; kind = \"exec\"; "
        "argv = [ \"/bin/true\" ]; limit_memory = \"256M\"; "
        "umask = \"0007\"; } )", 1);
    if (wq_config_load("l.conf", &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    h = c.handlers.v;
    assert_int_equal(h[0].limit_memory, 256 << 20);
    assert_int_equal(h[0].umask, 07);
    wq_config_free(&c);
    clean_env();

    write_file("bad.conf",
        "handlers = (\n"
        "  { type = \"a\"; kind = \"exec\"; argv = [ \"/bin/true\" ];\n"
        "    limit_memory = \"12X\";\n"
        "    limit_file_size = -1;\n"
        "    limit_files = 2000000;\n"
        "    limit_processes = \"many\";\n"
        "    limit_cpu = \"forever\";\n"
        "    umask = 0077;\n"
        "    core_dumps = \"yes\"; },\n"
        "  { type = \"b\"; kind = \"exec\"; argv = [ \"/bin/true\" ];\n"
        "    umask = \"0088\";\n"
        "    limit_memory = \"2000T\";\n"
        "    limit_file_size = 1.5; },\n"
        "  { type = \"c\"; kind = \"exec\"; argv = [ \"/bin/true\" ];\n"
        "    umask = \"01777\"; },\n"
        "  { type = \"d\"; kind = \"exec\"; argv = [ \"/bin/true\" ];\n"
        "    umask = \"\"; limit_memory = \"1.5G\"; }\n"
        ");\n");
    assert_int_equal(wq_config_load("bad.conf", &c, err, sizeof err),
        WQ_ECONFIG);
    assert_contains(err, "bad.conf:3: handlers[1].limit_memory: \"12X\" is "
        "not a size: integer bytes or a string like \"512M\"");
    assert_contains(err, "bad.conf:4: handlers[1].limit_file_size: -1 is "
        "out of range 0..1024T");
    assert_contains(err, "bad.conf:5: handlers[1].limit_files: 2000000 is "
        "out of range 0..1048576");
    assert_contains(err, "bad.conf:6: handlers[1].limit_processes: expected "
        "an integer, got a string");
    assert_contains(err, "bad.conf:7: handlers[1].limit_cpu: \"forever\" is "
        "not a duration");
    assert_contains(err, "bad.conf:8: handlers[1].umask: expected an octal "
        "string, like \"0077\", got an integer (write it in quotes");
    assert_contains(err, "bad.conf:9: handlers[1].core_dumps: expected true "
        "or false, got a string");
    assert_contains(err, "bad.conf:11: handlers[2].umask: \"0088\" is not an "
        "octal string");
    assert_contains(err, "bad.conf:12: handlers[2].limit_memory: 2000T is "
        "out of range 0..1024T");
    assert_contains(err, "bad.conf:13: handlers[2].limit_file_size: expected "
        "a size");
    assert_contains(err, "got a float");
    assert_contains(err, "bad.conf:15: handlers[3].umask: 1777 is out of "
        "range 0000..0777");
    assert_contains(err, "bad.conf:17: handlers[4].umask: \"\" is not an "
        "octal string");
    assert_contains(err, "bad.conf:17: handlers[4].limit_memory: \"1.5G\" "
        "is not a size");
    wq_config_free(&c);

    setenv("WORKQ_HANDLERS", "( { type = \"t\"; umask = \"abc\"; } )", 1);
    assert_int_equal(wq_config_load("l.conf", &c, err, sizeof err),
        WQ_ECONFIG);
    assert_contains(err, "environment WORKQ_HANDLERS: handlers: environment "
        "WORKQ_HANDLERS:1: handlers[1].umask: \"abc\" is not an octal "
        "string");
    wq_config_free(&c);
    clean_env();
}

/* The registry turns the limits into the exec configuration, and refuses
 * them on kinds that run inside the worker. */
static void
test_worker_config_exec_limits_registry(void **state)
{
    struct wq_config c;
    wq_handlers *h = NULL;
    const struct wq_handler *x;
    char err[WQ_CONFIG_ERRLEN];

    (void)state;
    clean_env();
    h = load_registry("l.conf",
        "handlers = (\n"
        "  { type = \"a\"; kind = \"exec\"; argv = [ \"/bin/true\" ];\n"
        "    limit_memory = \"1G\"; limit_cpu = \"1500ms\";\n"
        "    limit_files = 64; limit_processes = 50;\n"
        "    limit_file_size = \"1M\"; core_dumps = true;\n"
        "    umask = \"0027\"; },\n"
        "  { type = \"b\"; kind = \"exec\"; argv = [ \"/bin/true\" ]; }\n"
        ");\n", &c);
    x = wq_handlers_find(h, "q", "a");
    assert_int_equal(x->exec.limit_as, 1ULL << 30);
    assert_int_equal(x->exec.limit_cpu_s, 2);       /* rounded up */
    assert_int_equal(x->exec.limit_nofile, 64);
    assert_int_equal(x->exec.limit_nproc, 50);
    assert_int_equal(x->exec.limit_fsize, 1 << 20);
    assert_int_equal(x->exec.core_dumps, 1);
    assert_int_equal(x->exec.umask, 027);
    x = wq_handlers_find(h, "q", "b");
    /* none set: the defaults (issue 12), not the worker's own limits */
    assert_int_equal(x->exec.limit_as, 1ULL << 30);
    assert_int_equal(x->exec.limit_cpu_s, 300);
    assert_int_equal(x->exec.limit_nofile, 1024);
    assert_int_equal(x->exec.limit_nproc, 1024);
    assert_int_equal(x->exec.limit_fsize, 0);
    assert_int_equal(x->exec.core_dumps, 0);
    assert_int_equal(x->exec.umask, 077);
    wq_handlers_free(h);
    wq_config_free(&c);

    write_file("k.conf",
        "handlers = (\n"
        "  { type = \"a\"; builtin = \"noop\"; limit_memory = \"2G\"; },\n"
        "  { type = \"b\"; builtin = \"echo\"; core_dumps = true; }\n"
        ");\n");
    assert_int_equal(wq_config_load("k.conf", &c, err, sizeof err), 0);
    assert_int_equal(wq_handlers_new(&c, &h, err, sizeof err), WQ_ECONFIG);
    assert_null(h);
    assert_contains(err, "k.conf:2: handlers[1]: limit_* and core_dumps "
        "apply to kinds exec and process only (a builtin runs inside the "
        "worker)");
    assert_contains(err, "k.conf:3: handlers[2]: limit_* and core_dumps "
        "apply to kinds exec and process only");
    wq_config_free(&c);
}

static void
test_worker_config_registry_errors(void **state)
{
    struct wq_config c;
    wq_handlers *h = NULL;
    char err[WQ_CONFIG_ERRLEN], text[2048];

    (void)state;
    clean_env();
    snprintf(text, sizeof text,
        "handlers = (\n"
        "  { type = \"a\"; kind = \"exec\"; argv = [ \"cat\" ]; },\n"
        "  { type = \"b\"; kind = \"exec\"; argv = [ \"/nonexistent/x\" ]; },\n"
        "  { type = \"c\"; kind = \"exec\"; },\n"
        "  { type = \"d\"; builtin = \"dance\"; },\n"
        "  { type = \"a\"; builtin = \"noop\"; },\n"
        "  { type = \"e\"; kind = \"plugin\"; plugin = \"%s\"; },\n"
        "  { type = \"f\"; kind = \"exec\"; argv = [ \"/bin/true\" ];\n"
        "    env = [ \"NOEQUALS\" ]; options = \"x\"; },\n"
        "  { type = \"g\"; queue = \"bad/queue\"; }\n"
        ");\n", wq_test_bin("tests/plugins/bad_abi.so"));
    write_file("r.conf", text);
    assert_int_equal(wq_config_load("r.conf", &c, err, sizeof err), 0);
    assert_int_equal(wq_handlers_new(&c, &h, err, sizeof err), WQ_ECONFIG);
    assert_null(h);
    assert_contains(err, "r.conf:2: handlers[1].argv: \"cat\" is not an "
        "absolute path");
    assert_contains(err, "r.conf:3: handlers[2].argv: /nonexistent/x is not "
        "an executable file");
    assert_contains(err, "r.conf:4: handlers[3].argv: kind exec needs a "
        "program");
    assert_contains(err, "r.conf:5: handlers[4]: unknown builtin \"dance\"");
    assert_contains(err, "r.conf:6: handlers[5]: type \"a\" is handled "
        "already by handlers[1]");
    assert_contains(err, "r.conf:7: handlers[6].plugin:");
    assert_contains(err, "ABI version");
    assert_contains(err, "handlers[7].env: \"NOEQUALS\" is not NAME=value");
    assert_contains(err, "handlers[7]: plugin, options and builtin do not "
        "apply to kind exec");
    assert_contains(err, "handlers[8].queue:");
    wq_config_free(&c);
}

/* Kind process: its keys, defaults and checks (nothing is started). */
static void
test_worker_config_process(void **state)
{
    struct wq_config c;
    wq_handlers *h = NULL;
    const struct wq_handler *x;
    char err[WQ_CONFIG_ERRLEN];

    (void)state;
    clean_env();
    write_file("p.conf",
        "handlers = (\n"
        "  { type = \"a\"; kind = \"process\"; argv = [ \"/bin/cat\" ]; },\n"
        "  { type = \"b\"; kind = \"process\"; argv = [ \"/bin/cat\" ];\n"
        "    processes = 4; max_in_flight = 32; workdir = \"/tmp\";\n"
        "    limit_cpu = \"1h\"; timeout = \"3s\"; }\n"
        ");\n");
    assert_int_equal(wq_config_load("p.conf", &c, err, sizeof err), 0);
    if (wq_handlers_new(&c, &h, err, sizeof err) != 0)
        fail_msg("%s", err);
    x = wq_handlers_find(h, "q", "a");
    assert_int_equal(x->kind, WQ_HANDLER_PROCESS);
    assert_int_equal(x->processes, 2);
    assert_int_equal(x->max_in_flight, 8);
    /* the exec default of limit_cpu is per task: not for a whole life */
    assert_int_equal(x->exec.limit_cpu_s, 0);
    assert_int_equal(x->exec.limit_as, 1 << 30);
    assert_string_equal(x->exec.workdir, "");
    assert_null(x->proc);   /* started by wq_handlers_start only */
    x = wq_handlers_find(h, "q", "b");
    assert_int_equal(x->processes, 4);
    assert_int_equal(x->max_in_flight, 32);
    assert_int_equal(x->exec.limit_cpu_s, 3600);
    assert_int_equal(x->timeout_ms, 3000);
    assert_string_equal(x->exec.workdir, "/tmp");
    assert_null(wq_handlers_unhealthy(h));
    wq_handlers_free(h);
    wq_config_free(&c);

    write_file("pe.conf",
        "handlers = (\n"
        "  { type = \"a\"; kind = \"process\"; },\n"
        "  { type = \"b\"; kind = \"process\"; argv = [ \"/bin/cat\" ];\n"
        "    workdir = \"srv\"; permanent_exit_codes = [ 3, 4 ]; },\n"
        "  { type = \"c\"; builtin = \"noop\"; workdir = \"/tmp\"; }\n"
        ");\n");
    assert_int_equal(wq_config_load("pe.conf", &c, err, sizeof err), 0);
    assert_int_equal(wq_handlers_new(&c, &h, err, sizeof err), WQ_ECONFIG);
    assert_contains(err, "pe.conf:2: handlers[1].argv: kind process needs a "
        "program");
    assert_contains(err, "handlers[2].workdir: \"srv\" is not an absolute "
        "path");
    assert_contains(err, "handlers[2].permanent_exit_codes: kind process "
        "answers with frames");
    assert_contains(err, "handlers[3].workdir: applies to kinds exec and "
        "process only");
    wq_config_free(&c);
    write_file("pr.conf", "handlers = ( { type = \"a\"; kind = \"process\";\n"
        "  argv = [ \"/bin/cat\" ]; processes = 0; } );\n");
    assert_int_equal(wq_config_load("pr.conf", &c, err, sizeof err),
        WQ_ECONFIG);
    assert_contains(err, "processes");
    wq_config_free(&c);
}

static void
test_worker_config_text_sanitize(void **state)
{
    char *s;

    (void)state;
    s = wq_handler_text_sanitize("ok \xc3\xa9 \xff\x00 \xed\xa0\x80!", 13,
        100);
    assert_string_equal(s, "ok \xc3\xa9 \\xff\\x00 \\xed\\xa0\\x80!");
    free(s);
    s = wq_handler_text_sanitize("abcdefghij", 10, 8);
    assert_string_equal(s, "abcde...");
    free(s);
}

static void
test_worker_config_headers_json(void **state)
{
    struct wq_header hdr[2] = {
        { "traceparent", "00-abc-01" },
        { "q\"uote\\", "line\nbreak\x01 é" },
    };
    struct wq_envelope env;
    struct wq_buf b = WQ_BUF_INIT;

    (void)state;
    memset(&env, 0, sizeof env);
    assert_int_equal(wq_claim_headers_json(&env, &b), 0);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.data, "{}", 2);
    wq_buf_reset(&b);
    env.headers = hdr;
    env.nheaders = 2;
    assert_int_equal(wq_claim_headers_json(&env, &b), 0);
    assert_int_equal(wq_buf_append(&b, "", 1), 0);
    assert_string_equal(b.data, "{\"traceparent\":\"00-abc-01\","
        "\"q\\\"uote\\\\\":\"line\\u000abreak\\u0001 é\"}");
    wq_buf_free(&b);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_worker_config_groups_load),
    cmocka_unit_test(test_worker_config_groups_errors),
    cmocka_unit_test(test_worker_config_groups_env),
    cmocka_unit_test(test_worker_config_groups_dump),
    cmocka_unit_test(test_worker_config_groups_documented),
    cmocka_unit_test(test_worker_config_registry),
    cmocka_unit_test(test_worker_config_exec_default_limits),
    cmocka_unit_test(test_worker_config_exec_limits),
    cmocka_unit_test(test_worker_config_exec_limits_registry),
    cmocka_unit_test(test_worker_config_registry_errors),
    cmocka_unit_test(test_worker_config_process),
    cmocka_unit_test(test_worker_config_text_sanitize),
    cmocka_unit_test(test_worker_config_headers_json),
};

WQ_TEST_MAIN("worker_config", tests)

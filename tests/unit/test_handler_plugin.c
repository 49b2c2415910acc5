/*
 * test_handler_plugin.c - the plugin loader and runner against the
 * sample plugins of tests/plugins (built by the Makefile next to the
 * test binaries): a good plugin's results, failures and bounded output,
 * concurrent runs, and refusals (another ABI version, no entry point, no
 * file, an init that refuses).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wq_test.h"
#include "handler.h"
#include "workq_plugin.h"

static char *
plugin_path(const char *name)
{
    char rel[128];

    snprintf(rel, sizeof rel, "tests/plugins/%s.so", name);
    return strdup(wq_test_bin(rel));
}

static void
run_payload(struct wq_plugin *p, const char *payload,
    struct wq_handler_result *res)
{
    struct wq_envelope env;
    struct wq_handler_ctx ctx;
    char err[WQ_ERRLEN];

    if (wq_envelope_init(&env, "pq", "geo", "k", payload, strlen(payload),
        err, sizeof err) != 0)
        fail_msg("%s", err);
    memset(&ctx, 0, sizeof ctx);
    ctx.env = &env;
    ctx.task_id = "id-1";
    ctx.attempt = 2;
    ctx.max_attempts = 3;
    ctx.worker_id = "w";
    ctx.cancel_fd = -1;
    ctx.task_cancel_fd = -1;
    memset(res, 0, sizeof *res);
    wq_handler_plugin_run(p, &ctx, res);
    wq_envelope_free(&env);
}

static void
test_handler_plugin_runs(void **state)
{
    struct wq_handler_result res;
    struct wq_plugin *p = NULL;
    char err[WQ_ERRLEN], *path = plugin_path("sample");

    (void)state;
    if (wq_handler_plugin_load(path, "opt=1", 1 << 20, &p, err, sizeof err)
        != 0)
        fail_msg("%s", err);
    run_payload(p, "hello", &res);
    assert_int_equal(res.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_int_equal(res.result.len, strlen("sample(opt=1) pq/geo attempt 2: "
        "hello"));
    assert_memory_equal(res.result.data, "sample(opt=1) pq/geo attempt 2: "
        "hello", res.result.len);
    wq_handler_result_free(&res);

    run_payload(p, "fail", &res);
    assert_int_equal(res.outcome, WQ_OUTCOME_FAILED);
    assert_string_equal(res.error, "sample: asked to fail");
    wq_handler_result_free(&res);

    run_payload(p, "permanent", &res);
    assert_int_equal(res.outcome, WQ_OUTCOME_PERMANENT);
    wq_handler_result_free(&res);
    wq_handler_plugin_unload(p);

    /* the bound: 3 MiB written, 1 MiB kept, and said */
    if (wq_handler_plugin_load(path, "", 1 << 20, &p, err, sizeof err) != 0)
        fail_msg("%s", err);
    run_payload(p, "big", &res);
    assert_int_equal(res.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_int_equal(res.result.len, 1 << 20);
    assert_non_null(res.note);
    wq_handler_result_free(&res);
    wq_handler_plugin_unload(p);
    free(path);
}

static void *
hammer(void *arg)
{
    struct wq_handler_result res;

    for (int i = 0; i < 200; i++) {
        run_payload(arg, "x", &res);
        if (res.outcome != WQ_OUTCOME_SUCCEEDED)
            abort();
        wq_handler_result_free(&res);
    }
    return NULL;
}

static void
test_handler_plugin_threads(void **state)
{
    struct wq_plugin *p = NULL;
    char err[WQ_ERRLEN], *path = plugin_path("sample");
    pthread_t th[4];

    (void)state;
    if (wq_handler_plugin_load(path, "", 1 << 20, &p, err, sizeof err) != 0)
        fail_msg("%s", err);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, p), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    wq_handler_plugin_unload(p);
    free(path);
}

static void
test_handler_plugin_refusals(void **state)
{
    struct wq_plugin *p = NULL;
    char err[WQ_ERRLEN], *path;

    (void)state;
    path = plugin_path("bad_abi");
    assert_int_equal(wq_handler_plugin_load(path, "", 100, &p, err,
        sizeof err), WQ_ECONFIG);
    assert_null(p);
    assert_contains(err, "ABI version 42");
    assert_contains(err, "speaks version 1");
    free(path);

    path = plugin_path("no_entry");
    assert_int_equal(wq_handler_plugin_load(path, "", 100, &p, err,
        sizeof err), WQ_ECONFIG);
    assert_contains(err, "workq_plugin_entry");
    free(path);

    assert_int_equal(wq_handler_plugin_load("/nonexistent/x.so", "", 100, &p,
        err, sizeof err), WQ_ECONFIG);
    assert_contains(err, "/nonexistent/x.so");

    path = plugin_path("sample");
    assert_int_equal(wq_handler_plugin_load(path, "refuse", 100, &p, err,
        sizeof err), WQ_ECONFIG);
    assert_contains(err, "told to refuse");
    free(path);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_handler_plugin_runs),
    cmocka_unit_test(test_handler_plugin_threads),
    cmocka_unit_test(test_handler_plugin_refusals),
};

WQ_TEST_MAIN("handler_plugin", tests)

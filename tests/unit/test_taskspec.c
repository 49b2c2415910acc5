/*
 * test_taskspec.c - the JSON task schema shared by the HTTP API and
 * `workq submit --batch` (shared/taskspec.c): every field and its type
 * errors, defaults, payload forms, RFC 3339 times and delays, and the
 * conversion to an envelope.  Pure: no server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "taskspec.h"
#include "uuid.h"
#include "wq_test.h"

static int
parse(const char *json, const struct wq_taskspec_defaults *def,
    struct wq_taskspec *spec, char *err, size_t errlen)
{
    return wq_taskspec_parse(json, strlen(json), def, spec, err, errlen);
}

static void
expect_error(const char *json, int code, const char *needle)
{
    struct wq_taskspec_defaults def = { .queue = "q" };
    struct wq_taskspec spec;
    char err[WQ_ERRLEN] = "";
    int rc = parse(json, &def, &spec, err, sizeof err);

    if (rc != code)
        fail_msg("%s: %d (%s), want %d", json, rc, err, code);
    if (needle != NULL && strstr(err, needle) == NULL)
        fail_msg("%s: error '%s' lacks '%s'", json, err, needle);
    wq_taskspec_free(&spec);
}

static void
test_taskspec_full(void **state)
{
    struct wq_taskspec_defaults def = { .queue = "mail", .allow_queue = 1 };
    struct wq_taskspec spec;
    char err[WQ_ERRLEN];

    (void)state;
    if (parse("  {\"queue\":\"reports\",\"type\":\"send\",\"payload\":"
        "\"hi\\u0000there\",\"idempotency_key\":\"k1\",\"max_attempts\":5,"
        "\"delay\":\"1m30s\",\"headers\":{\"a\":\"1\",\"b\":\"\"}}\n",
        &def, &spec, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(spec.task.queue, "reports");
    assert_string_equal(spec.task.type, "send");
    assert_int_equal(spec.task.payload_len, 8);
    assert_memory_equal(spec.task.payload, "hi\0there", 8);
    assert_string_equal(spec.task.idempotency_key, "k1");
    assert_int_equal(spec.task.max_attempts, 5);
    assert_int_equal(spec.task.delay_ms, 90000);
    assert_int_equal(spec.task.run_at_ms, 0);
    assert_int_equal(spec.task.nheaders, 2);
    assert_string_equal(spec.task.headers[0].name, "a");
    assert_string_equal(spec.task.headers[0].value, "1");
    assert_string_equal(spec.task.headers[1].value, "");
    wq_taskspec_free(&spec);
    wq_taskspec_free(&spec);    /* twice is fine */
}

static void
test_taskspec_defaults(void **state)
{
    struct wq_client_header dh[] = { { "a", "default" }, { "c", "3" } };
    struct wq_taskspec_defaults def = { .queue = "mail", .type = "send",
        .max_attempts = 9, .headers = dh, .nheaders = 2 };
    struct wq_taskspec spec;
    char err[WQ_ERRLEN];

    (void)state;
    assert_int_equal(parse("{\"headers\":{\"a\":\"own\"}}", &def, &spec,
        err, sizeof err), 0);
    assert_string_equal(spec.task.queue, "mail");
    assert_string_equal(spec.task.type, "send");
    assert_int_equal(spec.task.max_attempts, 9);
    assert_null(spec.task.payload);
    assert_int_equal(spec.task.payload_len, 0);
    assert_null(spec.task.idempotency_key);
    /* the object's own header wins, the other default is added */
    assert_int_equal(spec.task.nheaders, 2);
    assert_string_equal(spec.task.headers[0].value, "own");
    assert_string_equal(spec.task.headers[1].name, "c");
    wq_taskspec_free(&spec);

    /* "queue" only where allowed */
    assert_int_equal(parse("{\"queue\":\"x\"}", &def, &spec, err,
        sizeof err), WQ_EINVAL);
    assert_non_null(strstr(err, "unknown field 'queue'"));
    /* no queue at all */
    def.queue = NULL;
    def.allow_queue = 1;
    assert_int_equal(parse("{}", &def, &spec, err, sizeof err), WQ_EINVAL);
    assert_non_null(strstr(err, "'queue'"));
}

static void
test_taskspec_payload_forms(void **state)
{
    struct wq_taskspec_defaults def = { .queue = "q", .type = "t" };
    struct wq_taskspec spec;
    char err[WQ_ERRLEN];

    (void)state;
    assert_int_equal(parse("{\"payload\":{\"b\": [1, 2.5, null, true]}}",
        &def, &spec, err, sizeof err), 0);
    assert_int_equal(spec.task.payload_len,
        strlen("{\"b\":[1,2.5,null,true]}"));
    assert_memory_equal(spec.task.payload, "{\"b\":[1,2.5,null,true]}",
        spec.task.payload_len);
    wq_taskspec_free(&spec);
    assert_int_equal(parse("{\"payload\":42}", &def, &spec, err,
        sizeof err), 0);
    assert_memory_equal(spec.task.payload, "42", 2);
    wq_taskspec_free(&spec);
    assert_int_equal(parse("{\"payload_base64\":\"AP8BAg==\"}", &def, &spec,
        err, sizeof err), 0);
    assert_int_equal(spec.task.payload_len, 4);
    assert_memory_equal(spec.task.payload, "\x00\xff\x01\x02", 4);
    wq_taskspec_free(&spec);
    assert_int_equal(parse("{\"payload_base64\":\"\"}", &def, &spec, err,
        sizeof err), 0);
    assert_int_equal(spec.task.payload_len, 0);
    wq_taskspec_free(&spec);
    assert_int_equal(parse("{\"payload\":\"\\u00e9\"}", &def, &spec, err,
        sizeof err), 0);
    assert_memory_equal(spec.task.payload, "\xc3\xa9", 2);
    wq_taskspec_free(&spec);
}

static void
test_taskspec_errors(void **state)
{
    char big[(1 << 20) + 64];
    size_t off;

    (void)state;
    /* one line: a column in it (its line is the caller's to name) */
    expect_error("{\"type\":", WQ_EDECODE, "invalid JSON at column 8:");
    /* a text of several lines: line and column */
    expect_error("{\n\"type\":", WQ_EDECODE, "invalid JSON at line 2 column");
    expect_error("", WQ_EDECODE, NULL);
    expect_error("[1]", WQ_EINVAL, "JSON object");
    expect_error("\"str\"", WQ_EDECODE, NULL);
    expect_error("{\"type\":\"a\",\"type\":\"b\"}", WQ_EDECODE,
        "duplicate");
    expect_error("{}", WQ_EINVAL, "field 'type': missing");
    expect_error("{\"type\":5}", WQ_EINVAL, "field 'type': must be a "
        "string");
    expect_error("{\"type\":\"a\\u0000b\"}", WQ_EINVAL, "NUL");
    expect_error("{\"type\":\"t\",\"idempotency_key\":7}", WQ_EINVAL,
        "'idempotency_key'");
    expect_error("{\"type\":\"t\",\"max_attempts\":\"3\"}", WQ_EINVAL,
        "'max_attempts'");
    expect_error("{\"type\":\"t\",\"max_attempts\":0}", WQ_EINVAL,
        "'max_attempts'");
    expect_error("{\"type\":\"t\",\"max_attempts\":2.5}", WQ_EINVAL,
        "'max_attempts'");
    expect_error("{\"type\":\"t\",\"max_attempts\":3000000000}", WQ_EINVAL,
        "'max_attempts'");
    expect_error("{\"type\":\"t\",\"delay\":-1}", WQ_EINVAL, "'delay'");
    expect_error("{\"type\":\"t\",\"delay\":\"soon\"}", WQ_EINVAL,
        "'delay'");
    expect_error("{\"type\":\"t\",\"delay\":true}", WQ_EINVAL, "'delay'");
    expect_error("{\"type\":\"t\",\"run_at\":5}", WQ_EINVAL, "'run_at'");
    expect_error("{\"type\":\"t\",\"run_at\":\"2026-02-30T00:00:00Z\"}",
        WQ_EINVAL, "'run_at'");
    expect_error("{\"type\":\"t\",\"delay\":1,\"run_at\":"
        "\"2030-01-01T00:00:00Z\"}", WQ_EINVAL, "not both");
    expect_error("{\"type\":\"t\",\"payload\":1,\"payload_base64\":\"\"}",
        WQ_EINVAL, "not both");
    expect_error("{\"type\":\"t\",\"payload_base64\":\"abc\"}", WQ_EINVAL,
        "base64");
    expect_error("{\"type\":\"t\",\"payload_base64\":\"a*==\"}", WQ_EINVAL,
        "base64");
    expect_error("{\"type\":\"t\",\"headers\":[]}", WQ_EINVAL,
        "'headers'");
    expect_error("{\"type\":\"t\",\"headers\":{\"a\":1}}", WQ_EINVAL,
        "'headers'");
    expect_error("{\"type\":\"t\",\"headers\":{\"\":\"x\"}}", WQ_EINVAL,
        "empty");
    expect_error("{\"type\":\"t\",\"extra\":1}", WQ_EINVAL,
        "unknown field 'extra'");

    off = (size_t)snprintf(big, sizeof big, "{\"type\":\"t\",\"payload\":\"");
    memset(big + off, 'x', (1 << 20) + 1);
    snprintf(big + off + (1 << 20) + 1, 4, "\"}");
    expect_error(big, WQ_ETOOBIG, "at most 1048576");
    {
        char many[4096];

        off = (size_t)snprintf(many, sizeof many, "{\"type\":\"t\","
            "\"headers\":{");
        for (int i = 0; i < 65; i++)
            off += (size_t)snprintf(many + off, sizeof many - off,
                "%s\"h%d\":\"v\"", i ? "," : "", i);
        snprintf(many + off, sizeof many - off, "}}");
        expect_error(many, WQ_ETOOBIG, "at most 64");
    }
}

static void
test_taskspec_rfc3339(void **state)
{
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {
        { "1970-01-01T00:00:00Z", 0 },
        { "2026-11-28T07:43:06Z", 1795851786000LL },
        { "2026-11-28t07:43:06.123z", 1795851786123LL },
        { "2026-11-28T07:43:06.1Z", 1795851786100LL },
        { "2026-11-28T07:43:06.123456789Z", 1795851786123LL },
        { "2026-11-28T09:43:06+02:00", 1795851786000LL },
        { "2026-11-28T02:13:06-05:30", 1795851786000LL },
        { "2024-02-29T00:00:00Z", 1709164800000LL },
        { "2026-11-28 07:43:06Z", 1795851786000LL },
    };
    static const char *const bad[] = {
        "", "2026-11-28", "2026-11-28T07:43:06", "2026-11-28T07:43Z",
        "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
        "2026-11-28T24:00:00Z", "2026-11-28T07:60:00Z",
        "2026-11-28T07:43:06.Z", "2026-11-28T07:43:06+0200",
        "2026-11-28T07:43:06Z ", "26-11-28T07:43:06Z", "tomorrow",
        "2026-11-28T07:43:06+24:00",
    };
    int64_t ms;

    (void)state;
    for (size_t i = 0; i < WQ_ARRAY_LEN(good); i++) {
        if (wq_taskspec_parse_rfc3339(good[i].s, &ms) != 0)
            fail_msg("'%s' refused", good[i].s);
        if (ms != good[i].ms)
            fail_msg("'%s': %lld, want %lld", good[i].s, (long long)ms,
                (long long)good[i].ms);
    }
    for (size_t i = 0; i < WQ_ARRAY_LEN(bad); i++)
        if (wq_taskspec_parse_rfc3339(bad[i], &ms) == 0)
            fail_msg("'%s' accepted", bad[i]);
    assert_int_equal(wq_taskspec_parse_rfc3339(NULL, &ms), WQ_EINVAL);
}

static void
test_taskspec_delay(void **state)
{
    struct wq_taskspec_defaults def = { .queue = "q", .type = "t" };
    struct wq_taskspec spec;
    char err[WQ_ERRLEN];
    int64_t ms;

    (void)state;
    assert_int_equal(wq_taskspec_parse_delay("30s", &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(wq_taskspec_parse_delay("1h30m", &ms), 0);
    assert_int_equal(ms, 5400000);
    assert_int_equal(wq_taskspec_parse_delay("500ms", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(wq_taskspec_parse_delay("45", &ms), 0);
    assert_int_equal(ms, 45000);
    assert_int_equal(wq_taskspec_parse_delay("-5s", &ms), WQ_EINVAL);
    assert_int_equal(wq_taskspec_parse_delay("5 s", &ms), WQ_EINVAL);
    assert_int_equal(wq_taskspec_parse_delay("", &ms), WQ_EINVAL);
    assert_int_equal(wq_taskspec_parse_delay("999999999h", &ms), WQ_EINVAL);
    assert_int_equal(parse("{\"delay\":1.25}", &def, &spec, err,
        sizeof err), 0);
    assert_int_equal(spec.task.delay_ms, 1250);
    wq_taskspec_free(&spec);
    assert_int_equal(parse("{\"delay\":0}", &def, &spec, err, sizeof err),
        0);
    assert_int_equal(spec.task.delay_ms, 0);
    wq_taskspec_free(&spec);
}

static void
test_taskspec_envelope(void **state)
{
    struct wq_client_header h = { "k", "v" };
    struct wq_client_task t = { .queue = "q", .type = "t", .payload = "p",
        .payload_len = 1, .headers = &h, .nheaders = 1 };
    struct wq_header hdrs[WQ_HEADERS_MAX];
    struct wq_envelope env;
    char id[WQ_CLIENT_ID_LEN], id2[WQ_CLIENT_ID_LEN], err[WQ_ERRLEN];
    int64_t run_at, now = wq_clock_wall_ms();
    char *json;

    (void)state;
    assert_int_equal(wq_taskspec_envelope(&t, NULL, &env, hdrs, id, &run_at,
        err, sizeof err), 0);
    assert_int_equal(run_at, 0);
    assert_string_equal(env.key, id);       /* no key: the id */
    assert_int_equal(env.attempt, 1);
    assert_int_equal(env.max_attempts, WQ_MAX_ATTEMPTS_DEFAULT);
    assert_true(env.created_at_ms >= now);
    assert_int_equal(env.nheaders, 1);
    json = wq_taskspec_headers_json(&env);
    assert_string_equal(json, "{\"k\":\"v\"}");
    free(json);
    /* ids ascend */
    assert_int_equal(wq_taskspec_envelope(&t, NULL, &env, hdrs, id2, &run_at,
        err, sizeof err), 0);
    assert_true(strcmp(id, id2) < 0);

    t.delay_ms = 60000;
    assert_int_equal(wq_taskspec_envelope(&t, NULL, &env, hdrs, id, &run_at,
        err, sizeof err), 0);
    assert_true(run_at >= now + 60000 && run_at <= wq_clock_wall_ms()
        + 60000);
    assert_int_equal(env.run_at_ms, run_at);
    /* a run_at already past is due now */
    t.delay_ms = 0;
    t.run_at_ms = now - 1000;
    assert_int_equal(wq_taskspec_envelope(&t, NULL, &env, hdrs, id, &run_at,
        err, sizeof err), 0);
    assert_int_equal(run_at, 0);
    t.run_at_ms = now + 3600000;
    assert_int_equal(wq_taskspec_envelope(&t, NULL, &env, hdrs, id, &run_at,
        err, sizeof err), 0);
    assert_int_equal(run_at, now + 3600000);

    t.run_at_ms = 0;
    t.queue = "bad queue";
    assert_int_equal(wq_taskspec_envelope(&t, NULL, &env, hdrs, id, &run_at,
        err, sizeof err), WQ_EINVAL);
    assert_non_null(strstr(err, "queue name"));
    t.queue = "q";
    t.type = "";
    assert_int_equal(wq_taskspec_envelope(&t, NULL, &env, hdrs, id, &run_at,
        err, sizeof err), WQ_EINVAL);
    t.type = "t";
    t.delay_ms = 1;
    t.run_at_ms = 1;
    assert_int_equal(wq_taskspec_envelope(&t, NULL, &env, hdrs, id, &run_at,
        err, sizeof err), WQ_EINVAL);
    assert_int_equal(wq_taskspec_envelope(NULL, NULL, &env, hdrs, id, &run_at,
        err, sizeof err), WQ_EINVAL);
}

/* With a sequence, tasks without a key due now take its ids, one after
 * another (a range receipt); keyed, delayed and refused tasks take
 * none. */
static void
test_taskspec_envelope_sequence(void **state)
{
    struct wq_client_task t = { .queue = "q", .type = "t" };
    struct wq_header hdrs[WQ_HEADERS_MAX];
    struct wq_envelope env;
    struct wq_uuid_seq seq = { 0, 0, 0 };
    uint8_t first[16], keyed[16];
    char id[WQ_CLIENT_ID_LEN], err[WQ_ERRLEN];
    int64_t run_at;
    uint64_t r0;

    (void)state;
    assert_int_equal(wq_taskspec_envelope(&t, &seq, &env, hdrs, id, &run_at,
        err, sizeof err), 0);
    memcpy(first, env.id, 16);
    r0 = wq_uuid_rand_b(first);
    assert_string_equal(env.key, id);       /* the key follows the id */
    assert_int_equal(wq_taskspec_envelope(&t, &seq, &env, hdrs, id, &run_at,
        err, sizeof err), 0);
    assert_int_equal(wq_uuid_rand_b(env.id), r0 + 1);
    assert_true(memcmp(first, env.id, 16) < 0);
    assert_string_equal(env.key, id);

    t.delay_ms = 60000;                     /* a row, not a receipt */
    assert_int_equal(wq_taskspec_envelope(&t, &seq, &env, hdrs, id, &run_at,
        err, sizeof err), 0);
    assert_true(wq_uuid_rand_b(env.id) != r0 + 2);
    t.delay_ms = 0;
    t.idempotency_key = "k";                /* the key's own id */
    assert_int_equal(wq_taskspec_envelope(&t, &seq, &env, hdrs, id, &run_at,
        err, sizeof err), 0);
    (void)wq_uuid_for_key("q", "k", keyed);
    assert_memory_equal(env.id, keyed, 16);
    t.idempotency_key = NULL;
    t.type = "";                            /* refused: takes none */
    assert_int_equal(wq_taskspec_envelope(&t, &seq, &env, hdrs, id, &run_at,
        err, sizeof err), WQ_EINVAL);
    t.type = "t";                           /* the sequence goes on */
    assert_int_equal(wq_taskspec_envelope(&t, &seq, &env, hdrs, id, &run_at,
        err, sizeof err), 0);
    assert_int_equal(wq_uuid_rand_b(env.id), r0 + 2);
}

/* "hook": checked, the header workq-hook; a default hook yields to it. */
static void
test_taskspec_hook(void **state)
{
    struct wq_client_header dh[] = { { "workq-hook", "https://dflt/" } };
    struct wq_taskspec_defaults def = { .queue = "q", .type = "t",
        .headers = dh, .nheaders = 1 };
    struct wq_taskspec spec;
    char err[WQ_ERRLEN], big[WQ_HOOK_URL_MAX + 2];

    (void)state;
    assert_int_equal(parse("{\"hook\":\"HTTPS://app/done\","
        "\"headers\":{\"a\":\"1\"}}", &def, &spec, err, sizeof err), 0);
    assert_int_equal(spec.task.nheaders, 2);
    assert_string_equal(spec.task.headers[1].name, "workq-hook");
    assert_string_equal(spec.task.headers[1].value, "HTTPS://app/done");
    wq_taskspec_free(&spec);
    /* without its own, the default */
    assert_int_equal(parse("{}", &def, &spec, err, sizeof err), 0);
    assert_int_equal(spec.task.nheaders, 1);
    assert_string_equal(spec.task.headers[0].value, "https://dflt/");
    wq_taskspec_free(&spec);

    expect_error("{\"type\":\"t\",\"hook\":\"http://app/\"}", WQ_EINVAL,
        "field 'hook': hook URL 'http://app/': want https://");
    expect_error("{\"type\":\"t\",\"hook\":\"https://\"}", WQ_EINVAL,
        "no host");
    expect_error("{\"type\":\"t\",\"hook\":\"https://a\\tb/\"}",
        WQ_EINVAL, "control characters");
    expect_error("{\"type\":\"t\",\"hook\":5}", WQ_EINVAL,
        "field 'hook': must be a string");
    expect_error("{\"type\":\"t\",\"hook\":\"https://a/\",\"headers\":"
        "{\"workq-hook\":\"https://b/\"}}", WQ_EINVAL, "not both");

    assert_int_equal(wq_taskspec_check_hook("https://h/p", err, sizeof err),
        0);
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "https://", 8);
    big[sizeof big - 1] = '\0';
    assert_int_equal(wq_taskspec_check_hook(big, err, sizeof err),
        WQ_EINVAL);
    assert_non_null(strstr(err, "the limit is 2048"));
    big[WQ_HOOK_URL_MAX] = '\0';
    assert_int_equal(wq_taskspec_check_hook(big, err, sizeof err), 0);
}

static void
test_taskspec_max_attempts_policy(void **state)
{
    struct wq_config cfg;
    struct wq_config_queue_policy pol[2];

    (void)state;
    wq_config_defaults(&cfg);
    assert_int_equal(wq_taskspec_max_attempts(&cfg, "any"),
        WQ_MAX_ATTEMPTS_DEFAULT);
    memset(pol, 0, sizeof pol);
    pol[0].name = (char *)"*";
    pol[0].max_attempts = 10;
    pol[1].name = (char *)"mail";
    pol[1].max_attempts = 3;
    {
        struct wq_config_groups saved = cfg.queue_policies;

        cfg.queue_policies.v = pol;
        cfg.queue_policies.n = 2;
        assert_int_equal(wq_taskspec_max_attempts(&cfg, "mail"), 3);
        assert_int_equal(wq_taskspec_max_attempts(&cfg, "other"), 10);
        cfg.queue_policies = saved;
    }
    wq_config_free(&cfg);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_taskspec_full),
    cmocka_unit_test(test_taskspec_defaults),
    cmocka_unit_test(test_taskspec_payload_forms),
    cmocka_unit_test(test_taskspec_errors),
    cmocka_unit_test(test_taskspec_rfc3339),
    cmocka_unit_test(test_taskspec_delay),
    cmocka_unit_test(test_taskspec_envelope),
    cmocka_unit_test(test_taskspec_envelope_sequence),
    cmocka_unit_test(test_taskspec_max_attempts_policy),
    cmocka_unit_test(test_taskspec_hook),
};

WQ_TEST_MAIN("taskspec", tests)

/*
 * test_handler_proto.c - the frames of the process handler protocol
 * (handler_proto.h): the worker's hello, task and cancel lines as JSON
 * other languages read, and the program's hello and result lines,
 * including every malformed form the worker must refuse.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "wq_test.h"
#include "handler_proto.h"

/* The one line in b, parsed (checks it is one line ending in \n). */
static json_t *
line_json(const struct wq_buf *b)
{
    json_error_t je;
    json_t *o;

    assert_true(b->len > 1);
    assert_int_equal(b->data[b->len - 1], '\n');
    assert_null(memchr(b->data, '\n', b->len - 1));
    o = json_loadb(b->data, b->len - 1, 0, &je);
    if (o == NULL)
        fail_msg("not JSON: %s", je.text);
    return o;
}

static void
test_handler_proto_task(void **state)
{
    static const uint8_t bin[] = { 0xff, 0x00, 'a', '\n' };
    struct wq_envelope e;
    struct wq_header h[2] = { { "traceparent", "00-abc-def-01" },
        { "x-line", "two\nlines" } };
    struct wq_handler_ctx ctx;
    struct wq_buf b = WQ_BUF_INIT;
    char err[WQ_ERRLEN];
    json_t *o;

    (void)state;
    if (wq_envelope_init(&e, "mail", "send", "k-1", "héllo\n\"x\"", 10, err,
        sizeof err) != 0)
        fail_msg("%s", err);
    e.headers = h;
    e.nheaders = 2;
    memset(&ctx, 0, sizeof ctx);
    ctx.env = &e;
    ctx.task_id = "0190a0b0-0000-7000-8000-000000000001";
    ctx.attempt = 2;
    ctx.max_attempts = 5;
    assert_int_equal(wq_proto_task(&b, 42, &ctx, 1700000000123LL), 0);
    o = line_json(&b);
    assert_string_equal(json_string_value(json_object_get(o, "t")), "task");
    assert_int_equal(json_integer_value(json_object_get(o, "id")), 42);
    assert_string_equal(json_string_value(json_object_get(o, "task_id")),
        ctx.task_id);
    assert_string_equal(json_string_value(json_object_get(o, "queue")),
        "mail");
    assert_string_equal(json_string_value(json_object_get(o, "type")), "send");
    assert_string_equal(json_string_value(json_object_get(o, "key")), "k-1");
    assert_int_equal(json_integer_value(json_object_get(o, "attempt")), 2);
    assert_int_equal(json_integer_value(json_object_get(o, "max_attempts")),
        5);
    assert_true(json_integer_value(json_object_get(o, "deadline_ms"))
        == 1700000000123LL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o,
        "headers"), "traceparent")), "00-abc-def-01");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o,
        "headers"), "x-line")), "two\nlines");
    assert_string_equal(json_string_value(json_object_get(o, "payload")),
        "héllo\n\"x\"");
    assert_null(json_object_get(o, "payload_base64"));
    json_decref(o);

    /* not UTF-8: base64; no deadline: null */
    wq_buf_reset(&b);
    e.payload = (uint8_t *)bin;
    e.payload_len = sizeof bin;
    e.nheaders = 0;
    assert_int_equal(wq_proto_task(&b, 43, &ctx, 0), 0);
    o = line_json(&b);
    assert_string_equal(json_string_value(json_object_get(o,
        "payload_base64")), "/wBhCg==");
    assert_null(json_object_get(o, "payload"));
    assert_true(json_is_null(json_object_get(o, "deadline_ms")));
    assert_int_equal(json_object_size(json_object_get(o, "headers")), 0);
    json_decref(o);

    /* hello and cancel */
    wq_buf_reset(&b);
    assert_int_equal(wq_proto_hello(&b, 8, "w1", "send"), 0);
    assert_int_equal(wq_proto_cancel(&b, 43), 0);
    assert_int_equal(wq_buf_append(&b, "", 1), 0);
    assert_string_equal(strchr(b.data, '\n') + 1,
        "{\"t\":\"cancel\",\"id\":43}\n");
    *strchr(b.data, '\n') = '\0';
    assert_string_equal(b.data, "{\"t\":\"hello\",\"protocol\":1,"
        "\"max_in_flight\":8,\"worker\":\"w1\",\"type\":\"send\","
        "\"features\":[\"progress\"]}");
    wq_buf_free(&b);
    e.payload = NULL;
    e.headers = NULL;
    wq_envelope_free(&e);
}

/* The task frame, written by hand, is byte for byte what jansson's
 * compact dump of the same object gives (escapes, member order, a header
 * given twice), and refuses what jansson refuses. */
static void
test_handler_proto_task_as_jansson(void **state)
{
    static const char payload[] = "a\x01\x1f\x7f\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f"
        "\x98\x80";
    struct wq_envelope e;
    struct wq_header h[3] = { { "k", "first" }, { "tab\t", "\x02" },
        { "k", "last \"one\"" } };
    struct wq_handler_ctx ctx;
    struct wq_buf b = WQ_BUF_INIT;
    char err[WQ_ERRLEN], *want;
    json_t *o, *hs;

    (void)state;
    if (wq_envelope_init(&e, "q1", "type", "key", payload,
        sizeof payload - 1, err, sizeof err) != 0)
        fail_msg("%s", err);
    /* texts a decoded envelope would not hold, to see them escaped
     * (wq_envelope_free frees e.mem only) */
    e.queue = "q\n1";
    e.type = "ty\\pe";
    e.key = "k\"ey/";
    e.headers = h;
    e.nheaders = 3;
    memset(&ctx, 0, sizeof ctx);
    ctx.env = &e;
    ctx.task_id = "t\x1b" "1";
    ctx.attempt = 3;
    ctx.max_attempts = 9;
    assert_int_equal(wq_proto_task(&b, 18446744073709ull, &ctx,
        1700000000123LL), 0);
    o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "t",
        "task", "id", (json_int_t)18446744073709ll, "task_id", ctx.task_id,
        "queue", e.queue, "type", e.type, "key", e.key, "attempt",
        (json_int_t)3, "max_attempts", (json_int_t)9, "deadline_ms",
        (json_int_t)1700000000123LL);
    assert_non_null(o);
    hs = json_object();
    for (size_t i = 0; i < 3; i++)
        json_object_set_new(hs, h[i].name, json_string(h[i].value));
    json_object_set_new(o, "headers", hs);
    json_object_set_new(o, "payload", json_stringn(payload,
        sizeof payload - 1));
    want = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    assert_int_equal(b.len, strlen(want) + 1);
    assert_memory_equal(b.data, want, b.len - 1);
    assert_int_equal(b.data[b.len - 1], '\n');
    free(want);

    /* not UTF-8, even in a header a later one replaces: refused, b as
     * it was */
    wq_buf_reset(&b);
    h[0].value = "\xff";
    assert_int_equal(wq_proto_task(&b, 1, &ctx, 0), WQ_EINVAL);
    h[0].value = "first";
    ctx.task_id = "\xed\xa0\x80";        /* a surrogate */
    assert_int_equal(wq_proto_task(&b, 1, &ctx, 0), WQ_EINVAL);
    assert_int_equal(b.len, 0);
    wq_buf_free(&b);
    e.headers = NULL;
    wq_envelope_free(&e);
}

static void
parse_ok(const char *line, struct wq_proto_msg *m)
{
    char err[WQ_ERRLEN];

    if (wq_proto_parse(line, strlen(line), m, err, sizeof err) != 0)
        fail_msg("%s: %s", line, err);
}

static void
test_handler_proto_answers(void **state)
{
    struct wq_proto_msg m;

    (void)state;
    parse_ok("{\"t\":\"hello\",\"protocol\":1,\"library\":\"x/1\"}", &m);
    assert_int_equal(m.kind, WQ_PROTO_HELLO);
    assert_int_equal(m.protocol, 1);
    assert_string_equal(m.library, "x/1");
    wq_proto_msg_free(&m);
    parse_ok("{\"t\":\"hello\",\"protocol\":7}", &m);
    assert_int_equal(m.protocol, 7);
    assert_null(m.library);
    wq_proto_msg_free(&m);

    /* progress: clamped, the message sanitized */
    parse_ok("{\"t\":\"progress\",\"id\":4,\"percent\":140,"
        "\"message\":\"half\\nway\"}", &m);
    assert_int_equal(m.kind, WQ_PROTO_PROGRESS);
    assert_int_equal(m.id, 4);
    assert_int_equal(m.percent, 100);
    assert_non_null(m.error);
    assert_non_null(strstr(m.error, "half"));
    wq_proto_msg_free(&m);
    parse_ok("{\"t\":\"progress\",\"id\":5,\"percent\":7}", &m);
    assert_int_equal(m.percent, 7);
    assert_null(m.error);
    wq_proto_msg_free(&m);

    parse_ok("{\"t\":\"result\",\"id\":9,\"status\":\"ok\",\"result\":"
        "\"d\\u00e9j\\u00e0\"}", &m);
    assert_int_equal(m.kind, WQ_PROTO_RESULT);
    assert_int_equal(m.id, 9);
    assert_int_equal(m.outcome, WQ_OUTCOME_SUCCEEDED);
    assert_int_equal(m.result.len, 6);
    assert_memory_equal(m.result.data, "déjà", 6);
    wq_proto_msg_free(&m);
    parse_ok("{\"t\":\"result\",\"id\":10,\"status\":\"ok\","
        "\"result_base64\":\"/wBhCg==\"}", &m);
    assert_int_equal(m.result.len, 4);
    assert_memory_equal(m.result.data, "\xff\0a\n", 4);
    wq_proto_msg_free(&m);
    parse_ok("{\"t\":\"result\",\"id\":11,\"status\":\"ok\"}", &m);
    assert_int_equal(m.result.len, 0);
    wq_proto_msg_free(&m);
    parse_ok("{\"t\":\"result\",\"id\":12,\"status\":\"retry\",\"error\":"
        "\"db down\"}", &m);
    assert_int_equal(m.outcome, WQ_OUTCOME_FAILED);
    assert_string_equal(m.error, "db down");
    wq_proto_msg_free(&m);
    parse_ok("{\"t\":\"result\",\"id\":13,\"status\":\"fail\",\"error\":"
        "\"bad\\u0000input\",\"extra\":[1,2]}", &m);
    assert_int_equal(m.outcome, WQ_OUTCOME_PERMANENT);
    assert_string_equal(m.error, "bad\\x00input");    /* text-safe */
    wq_proto_msg_free(&m);
}

static void
test_handler_proto_refuses(void **state)
{
    static const char *const bad[] = {
        "this is not a frame",
        "[1,2]",
        "{\"id\":1,\"status\":\"ok\"}",
        "{\"t\":\"bye\"}",
        "{\"t\":\"hello\"}",
        "{\"t\":\"hello\",\"protocol\":\"1\"}",
        "{\"t\":\"result\",\"status\":\"ok\"}",
        "{\"t\":\"result\",\"id\":-1,\"status\":\"ok\"}",
        "{\"t\":\"result\",\"id\":1}",
        "{\"t\":\"result\",\"id\":1,\"status\":\"OK\"}",
        "{\"t\":\"result\",\"id\":1,\"status\":\"ok\",\"result\":5}",
        "{\"t\":\"result\",\"id\":1,\"status\":\"ok\","
            "\"result_base64\":\"abc\"}",
        "{\"t\":\"result\",\"id\":1,\"status\":\"ok\","
            "\"result_base64\":\"a=bc\"}",
        "{\"t\":\"result\",\"id\":1,\"status\":\"ok\","
            "\"result_base64\":\"ab!c\"}",
        "{\"t\":\"result\",\"id\":1,\"status\":\"ok\",\"result\":\"a\","
            "\"result_base64\":\"YQ==\"}",
        "{\"t\":\"result\",\"id\":1,\"status\":\"fail\",\"error\":{}}",
        "{\"t\":\"result\",\"id\":1,\"id\":2,\"status\":\"ok\"}",
        "{\"t\":\"result\",\"id\":1,\"status\":\"ok\"",
    };
    struct wq_proto_msg m;
    char err[WQ_ERRLEN];

    (void)state;
    for (size_t i = 0; i < WQ_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        if (wq_proto_parse(bad[i], strlen(bad[i]), &m, err, sizeof err)
            != WQ_EINVAL)
            fail_msg("accepted: %s", bad[i]);
        assert_true(err[0] != '\0');
        assert_null(m.error);
        assert_null(m.result.data);
    }
    assert_int_equal(wq_proto_parse("garbage", 7, &m, err, sizeof err),
        WQ_EINVAL);
    assert_contains(err, "not JSON");
}

/* Parses line as the full parser does: through jansson, with the result
 * frame's fields read from the tree.  The reference for the hand-read
 * plain answer. */
static int
parse_by_jansson(const char *line, uint64_t *id, char **result)
{
    json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
    json_t *r;
    int ok;

    ok = o != NULL && json_is_object(o)
        && json_is_integer(json_object_get(o, "id"))
        && json_is_string(r = json_object_get(o, "result"));
    if (ok) {
        *id = (uint64_t)json_integer_value(json_object_get(o, "id"));
        *result = strdup(json_string_value(r));
    }
    json_decref(o);
    return ok;
}

/*
 * The plain answer {"t":"result","id":N,"status":"ok","result":"TEXT"},
 * read by hand (parse_plain_result), gives what jansson gives; and what
 * is not exactly that plain shape still goes through jansson, which
 * refuses what is not JSON or not UTF-8.
 */
static void
test_handler_proto_plain_result(void **state)
{
    static const char *const same[] = {
        "{\"t\":\"result\",\"id\":0,\"status\":\"ok\",\"result\":\"\"}",
        "{\"t\":\"result\",\"id\":7,\"status\":\"ok\",\"result\":\"HELLO\"}",
        "{\"t\":\"result\",\"id\":123456789012345678,\"status\":\"ok\","
            "\"result\":\"x\"}",
        "{\"t\":\"result\",\"id\":1234567890123456789,\"status\":\"ok\","
            "\"result\":\"19 digits: jansson's\"}",
        "{\"t\":\"result\",\"id\":42,\"status\":\"ok\",\"result\":"
            "\"d\u00e9j\u00e0 \\\"q\\\" \\\\ \\n\"}",
        "{\"t\":\"result\",\"id\":3,\"status\":\"ok\",\"result\":"
            "\"{\\\"slept_ms\\\": 5}\"}",
        "{\"t\":\"result\",\"id\":5,\"status\":\"ok\",\"result\":\"\xc3\xa9t\xc3\xa9\"}",
        "{ \"t\":\"result\",\"id\":6,\"status\":\"ok\",\"result\":\"sp\"}",
        "{\"id\":8,\"t\":\"result\",\"status\":\"ok\",\"result\":\"order\"}",
    };
    static const char *const refused[] = {
        /* not UTF-8, a raw control character, a leading zero, cut short,
         * trailing bytes */
        "{\"t\":\"result\",\"id\":1,\"status\":\"ok\",\"result\":\"\xff\"}",
        "{\"t\":\"result\",\"id\":1,\"status\":\"ok\",\"result\":\"a\tb\"}",
        "{\"t\":\"result\",\"id\":01,\"status\":\"ok\",\"result\":\"a\"}",
        "{\"t\":\"result\",\"id\":1,\"status\":\"ok\",\"result\":\"a\"",
        "{\"t\":\"result\",\"id\":1,\"status\":\"ok\",\"result\":\"a\"}x",
    };
    struct wq_proto_msg m;
    char err[WQ_ERRLEN], *want = NULL;
    uint64_t id = 0;

    (void)state;
    for (size_t i = 0; i < WQ_ARRAY_LEN(same); i++) {
        if (!parse_by_jansson(same[i], &id, &want))
            fail_msg("jansson refuses %s", same[i]);
        parse_ok(same[i], &m);
        assert_int_equal(m.kind, WQ_PROTO_RESULT);
        assert_int_equal(m.outcome, WQ_OUTCOME_SUCCEEDED);
        assert_true(m.id == id);
        assert_int_equal(m.result.len, strlen(want));
        assert_memory_equal(m.result.data, want, strlen(want));
        assert_null(m.error);
        wq_proto_msg_free(&m);
        free(want);
    }
    for (size_t i = 0; i < WQ_ARRAY_LEN(refused); i++)
        if (wq_proto_parse(refused[i], strlen(refused[i]), &m, err,
            sizeof err) != WQ_EINVAL)
            fail_msg("accepted: %s", refused[i]);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_handler_proto_task),
    cmocka_unit_test(test_handler_proto_task_as_jansson),
    cmocka_unit_test(test_handler_proto_answers),
    cmocka_unit_test(test_handler_proto_refuses),
    cmocka_unit_test(test_handler_proto_plain_result),
};

WQ_TEST_MAIN("handler_proto", tests)

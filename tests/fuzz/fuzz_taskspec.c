/*
 * fuzz_taskspec.c - libFuzzer target for the JSON task parser
 * (taskspec.h), through each entry point its callers use, on every input:
 *
 *   1. the body of POST /v1/queues/Q/tasks: wq_taskspec_parse with the
 *      queue from the path, then wq_taskspec_envelope as the producer
 *      does;
 *   2. the body of POST .../tasks:batch: one JSON document holding
 *      {"tasks": [...]} or an array, each element through
 *      wq_taskspec_from_json;
 *   3. a line of `workq submit --batch`: wq_taskspec_parse with the CLI's
 *      defaults (queue allowed in the object, a default type, default
 *      headers, a default max_attempts);
 *   4. the input as text for wq_taskspec_parse_delay and
 *      wq_taskspec_parse_rfc3339.
 *
 * Beyond "no crash, no leak, no undefined behaviour", each accepted task
 * must keep the promises of the header: a queue, a type, a payload within
 * WQ_PAYLOAD_MAX, at most WQ_HEADERS_MAX headers; the envelope made from
 * it validates, encodes, decodes back equal; its headers' JSON reloads to
 * the same headers.  A rejection has a known code and a reason.  A parsed
 * time prints and parses back to the same millisecond.  Any breach
 * aborts with a line saying which.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "clock.h"
#include "envelope.h"
#include "taskspec.h"
#include "uuid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, what) do {                                              \
    if (!(cond)) {                                                          \
        fprintf(stderr, "fuzz_taskspec: %s (%s:%d)\n", (what), __FILE__,    \
            __LINE__);                                                      \
        abort();                                                            \
    }                                                                       \
} while (0)

static void
check_rejection(int rc, const char *err, int decode_allowed)
{
    CHECK(rc == WQ_EINVAL || rc == WQ_ETOOBIG
        || (decode_allowed && rc == WQ_EDECODE), "unexpected error code");
    CHECK(err[0] != '\0', "a rejection without a reason");
}

/* What the producer and the CLI do with a parsed task. */
static struct wq_uuid_seq seq;

static void
check_task(struct wq_taskspec *spec, const char *want_queue)
{
    struct wq_header hdrs[WQ_HEADERS_MAX];
    struct wq_envelope env, back;
    struct wq_buf b = WQ_BUF_INIT;
    char err[WQ_ERRLEN] = "", idtext[WQ_CLIENT_ID_LEN];
    int64_t run_at;
    int rc;

    CHECK(spec->task.type != NULL, "accepted without a type");
    CHECK(spec->task.queue != NULL, "accepted without a queue");
    if (want_queue != NULL)
        CHECK(strcmp(spec->task.queue, want_queue) == 0,
            "the object changed a queue it may not name");
    CHECK(spec->task.payload_len <= WQ_PAYLOAD_MAX, "payload over the max");
    CHECK(spec->task.payload_len == 0 || spec->task.payload != NULL,
        "a payload length without a payload");
    CHECK(spec->task.nheaders <= WQ_HEADERS_MAX, "too many headers");
    CHECK(spec->task.delay_ms == 0 || spec->task.run_at_ms == 0,
        "both delay and run_at");

    /* a sequence, as the C client and an HTTP batch pass one */
    rc = wq_taskspec_envelope(&spec->task, &seq, &env, hdrs, idtext,
        &run_at, err, sizeof err);
    if (rc != 0) {
        check_rejection(rc, err, 0);
        return;
    }
    CHECK(wq_envelope_validate(&env, err, sizeof err) == 0,
        "an envelope made from a task does not validate");
    CHECK(run_at >= 0, "a negative due time");
    if (env.nheaders > 0) {
        char *hj = wq_taskspec_headers_json(&env);
        json_t *o;

        CHECK(hj != NULL, "headers do not make JSON");
        o = json_loads(hj, 0, NULL);
        CHECK(o != NULL && json_object_size(o) <= env.nheaders,
            "headers JSON does not reload");
        for (size_t i = 0; i < env.nheaders; i++) {
            json_t *v = json_object_get(o, env.headers[i].name);

            CHECK(json_is_string(v), "a header is missing from its JSON");
        }
        json_decref(o);
        free(hj);
    }
    rc = wq_envelope_encode(&env, &b, err, sizeof err);
    if (rc == 0) {
        rc = wq_envelope_decode(b.data, b.len, &back, err, sizeof err);
        CHECK(rc == 0, "an encoded task does not decode");
        CHECK(wq_envelope_equal(&env, &back), "decode(encode(task)) differs");
        wq_envelope_free(&back);
    } else {
        CHECK(rc == WQ_ETOOBIG, "a valid envelope fails to encode");
    }
    wq_buf_free(&b);
}

static void
one_body(const uint8_t *data, size_t size)
{
    struct wq_taskspec_defaults def = { .queue = "fuzzq" };
    struct wq_taskspec spec;
    char err[WQ_ERRLEN] = "";
    int rc;

    rc = wq_taskspec_parse((const char *)data, size, &def, &spec, err,
        sizeof err);
    if (rc != 0) {
        check_rejection(rc, err, 1);
        wq_taskspec_free(&spec);
        return;
    }
    check_task(&spec, "fuzzq");
    wq_taskspec_free(&spec);
    wq_taskspec_free(&spec);    /* safe twice, by contract */
}

static void
batch_body(const uint8_t *data, size_t size)
{
    struct wq_taskspec_defaults def = { .queue = "fuzzq" };
    json_t *root, *tasks;
    json_error_t je;

    root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES
        | JSON_ALLOW_NUL, &je);
    if (root == NULL)
        return;
    tasks = json_is_array(root) ? root : json_object_get(root, "tasks");
    if (json_is_array(tasks)) {
        for (size_t i = 0; i < json_array_size(tasks) && i < 64; i++) {
            struct wq_taskspec spec;
            char err[WQ_ERRLEN] = "";
            int rc = wq_taskspec_from_json(json_array_get(tasks, i), &def,
                &spec, err, sizeof err);

            if (rc != 0)
                check_rejection(rc, err, 0);
            else
                check_task(&spec, "fuzzq");
            wq_taskspec_free(&spec);
        }
    }
    json_decref(root);
}

static void
cli_line(const uint8_t *data, size_t size)
{
    static const struct wq_client_header dh[] = {
        { "x-default", "1" }, { "traceparent", "00-default" },
    };
    struct wq_taskspec_defaults def = {
        .queue = "default", .allow_queue = 1, .type = "deftype",
        .max_attempts = 3, .headers = dh, .nheaders = 2,
    };
    struct wq_taskspec spec;
    char err[WQ_ERRLEN] = "";
    int rc;

    rc = wq_taskspec_parse((const char *)data, size, &def, &spec, err,
        sizeof err);
    if (rc != 0) {
        check_rejection(rc, err, 1);
        return;
    }
    CHECK(spec.task.max_attempts >= 1, "max_attempts below 1");
    check_task(&spec, NULL);
    wq_taskspec_free(&spec);
}

static void
times(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), buf[64];
    int64_t ms, again;

    memcpy(s, data, size);
    s[size] = '\0';
    if (wq_taskspec_parse_delay(s, &ms) == 0)
        CHECK(ms >= 0, "a negative delay");
    if (wq_taskspec_parse_rfc3339(s, &ms) == 0 && ms >= 0
        && ms < 253402300800000LL) {    /* printable: before year 10000 */
        wq_clock_format_rfc3339(ms, buf, sizeof buf);
        CHECK(wq_taskspec_parse_rfc3339(buf, &again) == 0,
            "a formatted time does not parse");
        CHECK(again == ms, "a time does not survive print and parse");
    }
    free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one_body(data, size);
    batch_body(data, size);
    cli_line(data, size);
    if (size < 128)
        times(data, size);
    return 0;
}

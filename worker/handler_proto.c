/*
 * handler_proto.c - encoding and decoding the frames of the process
 * handler protocol (see handler_proto.h and docs/handler-protocol.md).
 *
 * Built on jansson, which the worker links already: a frame is a JSON
 * object written compactly on one line (jansson escapes newlines inside
 * strings, so a line is always a whole frame).  Base64 is done here, the
 * standard alphabet with padding, strict on decode.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"
#include "handler_proto.h"
#include "textout.h"
#include "uuid.h"

/* Appends a compact dump of o and a newline to b. */
static int
dump_cb(const char *p, size_t n, void *arg)
{
    return wq_buf_append(arg, p, n) == 0 ? 0 : -1;
}

static int
put_line(struct wq_buf *b, json_t *o)
{
    size_t len = b->len;
    int rc = 0;

    if (o == NULL)
        return WQ_ENOMEM;
    if (json_dump_callback(o, dump_cb, b, JSON_COMPACT) != 0
        || wq_buf_append(b, "\n", 1) != 0) {
        b->len = len;
        rc = WQ_ENOMEM;
    }
    json_decref(o);
    return rc;
}

int
wq_proto_hello(struct wq_buf *b, unsigned max_in_flight,
    const char *worker_id, const char *type)
{
    /* "features": frames beyond protocol 1's that this worker reads, so
     * that a library sends them only to a worker that knows them */
    return put_line(b, json_pack("{s:s, s:i, s:I, s:s?, s:s?, s:[s]}", "t",
        "hello", "protocol", WQ_PROTO_VERSION, "max_in_flight",
        (json_int_t)max_in_flight, "worker", worker_id, "type", type,
        "features", "progress"));
}

int
wq_proto_task(struct wq_buf *b, uint64_t id, const struct wq_handler_ctx *ctx,
    int64_t deadline_ms)
{
    const struct wq_envelope *e = ctx->env;
    json_t *o, *h;

    o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:I}", "t", "task",
        "id", (json_int_t)id, "task_id", ctx->task_id != NULL ? ctx->task_id
        : "", "queue", e->queue, "type", e->type, "key", e->key, "attempt",
        (json_int_t)ctx->attempt, "max_attempts",
        (json_int_t)ctx->max_attempts);
    if (o == NULL)
        return WQ_EINVAL;       /* a string that is not UTF-8 */
    if (json_object_set_new(o, "deadline_ms", deadline_ms > 0
        ? json_integer(deadline_ms) : json_null()) != 0)
        goto nomem;
    if ((h = json_object()) == NULL || json_object_set_new(o, "headers", h)
        != 0)
        goto nomem;
    for (size_t i = 0; i < e->nheaders; i++)
        if (json_object_set_new(h, e->headers[i].name,
            json_string(e->headers[i].value)) != 0) {
            json_decref(o);
            return WQ_EINVAL;
        }
    if (wq_text_json_set_bytes(o, "payload", e->payload, e->payload_len)
        != 0)
        goto nomem;
    return put_line(b, o);

nomem:
    json_decref(o);
    return WQ_ENOMEM;
}

int
wq_proto_cancel(struct wq_buf *b, uint64_t id)
{
    return put_line(b, json_pack("{s:s, s:I}", "t", "cancel", "id",
        (json_int_t)id));
}

/* ---- decoding ------------------------------------------------------------ */

static int
b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict standard base64 with padding; appends to out.  0 or -1. */
static int
b64_decode(const char *s, size_t n, struct wq_buf *out)
{
    if (n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        unsigned char o[3];

        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
                continue;
            }
            if (pad > 0 || (v[j] = b64val((unsigned char)s[i + j])) < 0)
                return -1;
        }
        o[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        o[1] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
        o[2] = (unsigned char)((v[2] & 3) << 6 | v[3]);
        if (wq_buf_append(out, o, (size_t)(3 - pad)) != 0)
            return -1;
    }
    return 0;
}

/* An optional string member: NULL if absent or null, -1 if another
 * type. */
static int
opt_string(json_t *o, const char *name, json_t **out)
{
    json_t *v = json_object_get(o, name);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *out = v;
    return 0;
}

int
wq_proto_parse(const char *line, size_t len, struct wq_proto_msg *m,
    char *err, size_t errlen)
{
    json_error_t je;
    json_t *o, *t, *v, *s;
    const char *what;
    int rc = WQ_EINVAL;

    memset(m, 0, sizeof *m);
    o = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (o == NULL) {
        wq_seterr(err, errlen, WQ_EINVAL, "not JSON: %s (column %d)",
            je.text, je.column);
        return WQ_EINVAL;
    }
    if (!json_is_object(o)) {
        wq_seterr(err, errlen, WQ_EINVAL, "not a JSON object");
        goto out;
    }
    t = json_object_get(o, "t");
    if (!json_is_string(t)) {
        wq_seterr(err, errlen, WQ_EINVAL, "no frame type (\"t\")");
        goto out;
    }
    what = json_string_value(t);
    if (strcmp(what, "hello") == 0) {
        m->kind = WQ_PROTO_HELLO;
        v = json_object_get(o, "protocol");
        if (!json_is_integer(v)) {
            wq_seterr(err, errlen, WQ_EINVAL, "hello: no integer "
                "\"protocol\"");
            goto out;
        }
        m->protocol = (long)json_integer_value(v);
        if (opt_string(o, "library", &s) != 0) {
            wq_seterr(err, errlen, WQ_EINVAL, "hello: \"library\" is not a "
                "string");
            goto out;
        }
        if (s != NULL)
            m->library = xstrdup(json_string_value(s));
        rc = 0;
        goto out;
    }
    if (strcmp(what, "progress") == 0) {
        m->kind = WQ_PROTO_PROGRESS;
        v = json_object_get(o, "id");
        s = json_object_get(o, "percent");
        if (!json_is_integer(v) || json_integer_value(v) < 0
            || !json_is_number(s)) {
            wq_seterr(err, errlen, WQ_EINVAL, "progress: no integer \"id\" "
                "and number \"percent\"");
            goto out;
        }
        m->id = (uint64_t)json_integer_value(v);
        m->percent = json_number_value(s) < 0 ? 0 : json_number_value(s) > 100
            ? 100 : (int)json_number_value(s);
        if (opt_string(o, "message", &s) != 0) {
            wq_seterr(err, errlen, WQ_EINVAL, "progress: \"message\" is not "
                "a string");
            goto out;
        }
        if (s != NULL)
            m->error = wq_handler_text_sanitize(json_string_value(s),
                json_string_length(s), 200);
        rc = 0;
        goto out;
    }
    if (strcmp(what, "result") != 0) {
        wq_seterr(err, errlen, WQ_EINVAL, "unknown frame type \"%.40s\"",
            what);
        goto out;
    }
    m->kind = WQ_PROTO_RESULT;
    v = json_object_get(o, "id");
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        wq_seterr(err, errlen, WQ_EINVAL, "result: no integer \"id\"");
        goto out;
    }
    m->id = (uint64_t)json_integer_value(v);
    v = json_object_get(o, "status");
    what = json_is_string(v) ? json_string_value(v) : "";
    if (strcmp(what, "ok") == 0)
        m->outcome = WQ_OUTCOME_SUCCEEDED;
    else if (strcmp(what, "retry") == 0)
        m->outcome = WQ_OUTCOME_FAILED;
    else if (strcmp(what, "fail") == 0)
        m->outcome = WQ_OUTCOME_PERMANENT;
    else {
        wq_seterr(err, errlen, WQ_EINVAL, "result %llu: \"status\" is not "
            "\"ok\", \"retry\" or \"fail\"", (unsigned long long)m->id);
        goto out;
    }
    if (opt_string(o, "error", &s) != 0) {
        wq_seterr(err, errlen, WQ_EINVAL, "result %llu: \"error\" is not a "
            "string", (unsigned long long)m->id);
        goto out;
    }
    if (s != NULL)
        m->error = wq_handler_text_sanitize(json_string_value(s),
            json_string_length(s), 2048);
    if (opt_string(o, "result", &s) != 0) {
        wq_seterr(err, errlen, WQ_EINVAL, "result %llu: \"result\" is not a "
            "string", (unsigned long long)m->id);
        goto out;
    }
    if (s != NULL && wq_buf_append(&m->result, json_string_value(s),
        json_string_length(s)) != 0)
        abort();
    if (opt_string(o, "result_base64", &v) != 0 || (v != NULL
        && (s != NULL || b64_decode(json_string_value(v),
        json_string_length(v), &m->result) != 0))) {
        wq_seterr(err, errlen, WQ_EINVAL, "result %llu: \"result_base64\" "
            "is not one padded standard base64 string (or comes with "
            "\"result\")", (unsigned long long)m->id);
        goto out;
    }
    rc = 0;

out:
    json_decref(o);
    if (rc != 0)
        wq_proto_msg_free(m);
    return rc;
}

void
wq_proto_msg_free(struct wq_proto_msg *m)
{
    wq_buf_free(&m->result);
    free(m->library);
    free(m->error);
    memset(m, 0, sizeof *m);
}

/*
 * handler_proto.c - encoding and decoding the frames of the process
 * handler protocol (see handler_proto.h and docs/handler-protocol.md).
 *
 * Built on jansson, which the worker links already: a frame is a JSON
 * object written compactly on one line (newlines inside strings are
 * escaped, so a line is always a whole frame).  The task frame, one per
 * task, is written by hand (the bytes jansson would write, see
 * wq_proto_task); the others and all decoding go through jansson.
 * Base64 is done here, the standard alphabet with padding, strict on
 * decode.
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

/* ---- the task frame, written by hand ------------------------------------
 *
 * The one frame sent per task is written here directly rather than
 * through a jansson tree (a tree built and freed per task was a sixth of
 * the worker's CPU per task): the same bytes jansson's compact dump
 * gives, the members in the same order, and the same refusals (a text
 * that is not UTF-8: WQ_EINVAL).
 */

/* Appends a string literal. */
#define PUT_LIT(b, lit) wq_buf_append((b), (lit), sizeof (lit) - 1)

/* Appends s (n bytes, valid UTF-8) as a JSON string, escaped as jansson
 * does: quote, backslash and control characters; nothing else. */
static int
put_string(struct wq_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t run = 0;

    if (wq_buf_reserve(b, n + 2) != 0 || wq_buf_append(b, "\"", 1) != 0)
        return WQ_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t k = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            k = 6;
        }
        if (wq_buf_append(b, s + run, i - run) != 0
            || wq_buf_append(b, esc, k) != 0)
            return WQ_ENOMEM;
        run = i + 1;
    }
    if (wq_buf_append(b, s + run, n - run) != 0
        || wq_buf_append(b, "\"", 1) != 0)
        return WQ_ENOMEM;
    return 0;
}

/* Appends ,"name": then the text s (NULL or not UTF-8: WQ_EINVAL, as
 * json_pack refuses it). */
static int
put_text(struct wq_buf *b, const char *name, const char *s)
{
    size_t n;

    if (s == NULL || !wq_text_is_utf8(s, n = strlen(s)))
        return WQ_EINVAL;
    if (wq_buf_append(b, ",\"", 2) != 0
        || wq_buf_append(b, name, strlen(name)) != 0
        || wq_buf_append(b, "\":", 2) != 0)
        return WQ_ENOMEM;
    return put_string(b, s, n);
}

/* Appends ,"name":N. */
static int
put_int(struct wq_buf *b, const char *name, long long v)
{
    char num[32];
    int k = snprintf(num, sizeof num, ",\"%s\":%lld", name, v);

    return k > 0 && (size_t)k < sizeof num
        && wq_buf_append(b, num, (size_t)k) == 0 ? 0 : WQ_ENOMEM;
}

/* Appends the payload: "payload" as text when it is UTF-8, else
 * "payload_base64" (as wq_text_json_set_bytes sets it). */
static int
put_payload(struct wq_buf *b, const uint8_t *p, size_t n)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out;

    if (wq_text_is_utf8(p, n))
        return PUT_LIT(b, ",\"payload\":") != 0 ? WQ_ENOMEM
            : put_string(b, (const char *)p, n);
    if (n > (SIZE_MAX - 64) / 4 * 3
        || PUT_LIT(b, ",\"payload_base64\":\"") != 0
        || wq_buf_reserve(b, (n + 2) / 3 * 4 + 1) != 0)
        return WQ_ENOMEM;
    out = b->data + b->len;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)p[i] << 16
            | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0)
            | (i + 2 < n ? p[i + 2] : 0);

        *out++ = b64[x >> 18 & 63];
        *out++ = b64[x >> 12 & 63];
        *out++ = i + 1 < n ? b64[x >> 6 & 63] : '=';
        *out++ = i + 2 < n ? b64[x & 63] : '=';
    }
    *out++ = '"';
    b->len = (size_t)(out - b->data);
    return 0;
}

/* The headers as an object; a name given twice keeps its first place
 * and its last value, as json_object_set_new does. */
static int
put_headers(struct wq_buf *b, const struct wq_envelope *e)
{
    int first = 1;

    for (size_t i = 0; i < e->nheaders; i++)
        if (e->headers[i].value == NULL || !wq_text_is_utf8(
            e->headers[i].name, strlen(e->headers[i].name))
            || !wq_text_is_utf8(e->headers[i].value,
            strlen(e->headers[i].value)))
            return WQ_EINVAL;   /* even one a later header replaces */
    if (PUT_LIT(b, ",\"headers\":{") != 0)
        return WQ_ENOMEM;
    for (size_t i = 0; i < e->nheaders; i++) {
        const char *name = e->headers[i].name, *value;
        size_t j, last = i;

        for (j = 0; j < i && strcmp(e->headers[j].name, name) != 0; j++)
            ;
        if (j < i)
            continue;       /* written at its first place */
        for (j = i + 1; j < e->nheaders; j++)
            if (strcmp(e->headers[j].name, name) == 0)
                last = j;
        value = e->headers[last].value;
        if ((!first && wq_buf_append(b, ",", 1) != 0)
            || put_string(b, name, strlen(name)) != 0
            || wq_buf_append(b, ":", 1) != 0
            || put_string(b, value, strlen(value)) != 0)
            return WQ_ENOMEM;
        first = 0;
    }
    return wq_buf_append(b, "}", 1) != 0 ? WQ_ENOMEM : 0;
}

int
wq_proto_task(struct wq_buf *b, uint64_t id, const struct wq_handler_ctx *ctx,
    int64_t deadline_ms)
{
    const struct wq_envelope *e = ctx->env;
    size_t len = b->len;
    int rc;

    if (PUT_LIT(b, "{\"t\":\"task\"") != 0)
        return WQ_ENOMEM;
    if ((rc = put_int(b, "id", (long long)id)) != 0
        || (rc = put_text(b, "task_id", ctx->task_id != NULL
        ? ctx->task_id : "")) != 0
        || (rc = put_text(b, "queue", e->queue)) != 0
        || (rc = put_text(b, "type", e->type)) != 0
        || (rc = put_text(b, "key", e->key)) != 0
        || (rc = put_int(b, "attempt", (long long)ctx->attempt)) != 0
        || (rc = put_int(b, "max_attempts", (long long)ctx->max_attempts))
        != 0)
        goto fail;
    if (deadline_ms > 0)
        rc = put_int(b, "deadline_ms", (long long)deadline_ms);
    else
        rc = PUT_LIT(b, ",\"deadline_ms\":null") != 0
            ? WQ_ENOMEM : 0;
    if (rc != 0 || (rc = put_headers(b, e)) != 0
        || (rc = put_payload(b, e->payload, e->payload_len)) != 0)
        goto fail;
    if (wq_buf_append(b, "}\n", 2) != 0) {
        rc = WQ_ENOMEM;
        goto fail;
    }
    return 0;

fail:
    b->len = len;
    return rc;
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

/*
 * The answer most programs write most of the time, exactly as the
 * reference libraries write it: {"t":"result","id":N,"status":"ok",
 * "result":"TEXT"} with no whitespace and TEXT free of escapes and
 * control characters.  Read by hand, that costs the worker's supervisor
 * a scan instead of jansson's tree (a third of its CPU per task in
 * bench_process).  Returns 1 with *m set, or 0 for anything else, which
 * the full parser then reads (and judges).
 */
static int
parse_plain_result(const char *line, size_t len, struct wq_proto_msg *m)
{
    static const char head[] = "{\"t\":\"result\",\"id\":";
    static const char mid[] = ",\"status\":\"ok\",\"result\":\"";
    const char *p = line + sizeof head - 1, *end = line + len, *text;
    uint64_t id = 0;
    int digits = 0;

    if (len < sizeof head - 1 + sizeof mid - 1 + 3
        || memcmp(line, head, sizeof head - 1) != 0)
        return 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 18) {
        id = id * 10 + (uint64_t)(*p++ - '0');
        digits++;
    }
    if (digits == 0 || (digits > 1 && line[sizeof head - 1] == '0')
        || (size_t)(end - p) < sizeof mid - 1 + 2
        || memcmp(p, mid, sizeof mid - 1) != 0)
        return 0;
    text = p += sizeof mid - 1;
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
        p++;
    /* the closing quote and brace end the line; the text is UTF-8 */
    if (end - p != 2 || p[0] != '"' || p[1] != '}'
        || !wq_text_is_utf8(text, (size_t)(p - text)))
        return 0;
    m->kind = WQ_PROTO_RESULT;
    m->id = id;
    m->outcome = WQ_OUTCOME_SUCCEEDED;
    if (wq_buf_append(&m->result, text, (size_t)(p - text)) != 0)
        abort();
    return 1;
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
    if (parse_plain_result(line, len, m))
        return 0;
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

/*
 * taskspec.c - a JSON task object into a struct wq_client_task (see
 * taskspec.h for the schema).  Strings point into the jansson tree, which
 * the spec keeps a reference on; only a payload that is not a JSON string
 * (re-serialized) or that is base64 (decoded) is copied.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "clock.h"
#include "config.h"
#include "priority.h"
#include "uuid.h"
#include "taskspec.h"
#include "wq.h"

/* 100 years: far enough for any delay, far from int64 overflow. */
#define DELAY_MAX_MS (100LL * 366 * 24 * 3600 * 1000)

/* --- time ----------------------------------------------------------------- */

static int
digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int
leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int
wq_taskspec_parse_rfc3339(const char *s, int64_t *ms)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
        30, 31 };
    int y, mo, d, h, mi, sec, oh = 0, om = 0, frac = 0, sign = 0;
    struct tm tm;
    time_t t;
    const char *p;

    if (s == NULL || strlen(s) < 20)
        return WQ_EINVAL;
    if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo)
        || s[7] != '-' || digits(s + 8, 2, &d)
        || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        || digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi)
        || s[16] != ':' || digits(s + 17, 2, &sec))
        return WQ_EINVAL;
    if (mo < 1 || mo > 12 || d < 1
        || d > mdays[mo - 1] + (mo == 2 && leap(y)) || h > 23 || mi > 59
        || sec > 60)
        return WQ_EINVAL;
    p = s + 19;
    if (*p == '.') {
        int n = 0;

        for (p++; *p >= '0' && *p <= '9'; p++, n++)
            if (n < 3)
                frac = frac * 10 + (*p - '0');
        if (n == 0)
            return WQ_EINVAL;
        for (; n < 3; n++)
            frac *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om)
            || oh > 23 || om > 59)
            return WQ_EINVAL;
        p += 6;
    } else {
        return WQ_EINVAL;
    }
    if (*p != '\0')
        return WQ_EINVAL;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec == 60 ? 59 : sec;   /* a leap second: its second 59 */
    if ((t = timegm(&tm)) == (time_t)-1 && y != 1969)
        return WQ_EINVAL;
    *ms = ((int64_t)t - (int64_t)sign * (oh * 3600 + om * 60)) * 1000
        + frac;
    return 0;
}

int
wq_taskspec_parse_delay(const char *s, int64_t *ms)
{
    int64_t v;

    if (s == NULL || wq_config_parse_duration(s, &v) != 0 || v < 0
        || v > DELAY_MAX_MS)
        return WQ_EINVAL;
    *ms = v;
    return 0;
}

/* --- base64 --------------------------------------------------------------- */

static int
b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes standard base64 with padding; *out is malloc'd (may be empty). */
static int
b64_decode(const char *s, size_t n, char **out, size_t *outlen)
{
    size_t pad = 0, o = 0;
    char *buf;
    uint32_t acc = 0;

    if (n % 4 != 0)
        return WQ_EINVAL;
    if (n > 0 && s[n - 1] == '=')
        pad++;
    if (n > 1 && s[n - 2] == '=')
        pad++;
    if ((buf = malloc(n / 4 * 3 + 1)) == NULL)
        return WQ_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int v = i >= n - pad ? 0 : b64_value((unsigned char)s[i]);

        if (v < 0) {
            free(buf);
            return WQ_EINVAL;
        }
        acc = acc << 6 | (uint32_t)v;
        if (i % 4 == 3) {
            buf[o++] = (char)(acc >> 16);
            buf[o++] = (char)(acc >> 8);
            buf[o++] = (char)acc;
            acc = 0;
        }
    }
    *out = buf;
    *outlen = o - pad;
    return 0;
}

/* --- fields --------------------------------------------------------------- */

/* A JSON string as a C string: no NUL inside. */
static int
cstring(json_t *v, const char *field, const char **out, char *err,
    size_t errlen)
{
    if (!json_is_string(v))
        return wq_seterr(err, errlen, WQ_EINVAL,
            "field '%s': must be a string", field);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return wq_seterr(err, errlen, WQ_EINVAL,
            "field '%s': contains a NUL character", field);
    *out = json_string_value(v);
    return 0;
}

static int
field_delay(json_t *v, int64_t *ms, char *err, size_t errlen)
{
    double d;

    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);

        if (i < 0 || i > DELAY_MAX_MS / 1000)
            return wq_seterr(err, errlen, WQ_EINVAL, "field 'delay': %lld "
                "seconds is out of range", (long long)i);
        *ms = (int64_t)i * 1000;
        return 0;
    }
    if (json_is_real(v)) {
        d = json_real_value(v);
        if (!(d >= 0) || d > (double)(DELAY_MAX_MS / 1000))
            return wq_seterr(err, errlen, WQ_EINVAL,
                "field 'delay': %g seconds is out of range", d);
        *ms = (int64_t)llround(d * 1000.0);
        return 0;
    }
    if (json_is_string(v)) {
        if (wq_taskspec_parse_delay(json_string_value(v), ms) != 0)
            return wq_seterr(err, errlen, WQ_EINVAL, "field 'delay': "
                "\"%.64s\" is not a duration (\"30s\", \"5m\", \"1h30m\", "
                "\"500ms\")", json_string_value(v));
        return 0;
    }
    return wq_seterr(err, errlen, WQ_EINVAL,
        "field 'delay': must be seconds (a number) or a duration string");
}

static int
field_payload(struct wq_taskspec *out, json_t *v, int base64, char *err,
    size_t errlen)
{
    size_t len;
    int rc;

    if (base64) {
        if (!json_is_string(v))
            return wq_seterr(err, errlen, WQ_EINVAL,
                "field 'payload_base64': must be a string");
        rc = b64_decode(json_string_value(v), json_string_length(v),
            &out->owned_payload, &len);
        if (rc == WQ_EINVAL)
            return wq_seterr(err, errlen, rc,
                "field 'payload_base64': not valid base64");
        if (rc != 0)
            return wq_seterr(err, errlen, rc, "out of memory");
        out->task.payload = out->owned_payload;
    } else if (json_is_string(v)) {
        out->task.payload = json_string_value(v);
        len = json_string_length(v);
    } else {
        out->owned_payload = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (out->owned_payload == NULL)
            return wq_seterr(err, errlen, WQ_ENOMEM, "out of memory");
        out->task.payload = out->owned_payload;
        len = strlen(out->owned_payload);
    }
    if (len > WQ_PAYLOAD_MAX)
        return wq_seterr(err, errlen, WQ_ETOOBIG, "field '%s': %zu bytes; "
            "at most %u", base64 ? "payload_base64" : "payload", len,
            WQ_PAYLOAD_MAX);
    out->task.payload_len = len;
    return 0;
}

static int
field_headers(struct wq_taskspec *out, json_t *v, char *err, size_t errlen)
{
    const char *name;
    json_t *val;
    int rc;

    if (!json_is_object(v))
        return wq_seterr(err, errlen, WQ_EINVAL,
            "field 'headers': must be an object of strings");
    if (json_object_size(v) > WQ_HEADERS_MAX)
        return wq_seterr(err, errlen, WQ_ETOOBIG, "field 'headers': %zu "
            "headers; at most %d", json_object_size(v), WQ_HEADERS_MAX);
    json_object_foreach(v, name, val) {
        struct wq_client_header *h = &out->headers[out->task.nheaders];

        if (name[0] == '\0')
            return wq_seterr(err, errlen, WQ_EINVAL,
                "field 'headers': a header name is empty");
        if ((rc = cstring(val, "headers", &h->value, err, errlen)) != 0)
            return wq_seterr(err, errlen, rc, "field 'headers': the value "
                "of '%.64s' must be a string without NUL characters", name);
        h->name = name;
        out->task.nheaders++;
    }
    return 0;
}

/* Adds the default headers the object did not set. */
static int
merge_headers(struct wq_taskspec *out, const struct wq_taskspec_defaults *def,
    char *err, size_t errlen)
{
    size_t own = out->task.nheaders;

    for (size_t i = 0; i < def->nheaders; i++) {
        size_t j;

        for (j = 0; j < own; j++)
            if (strcmp(out->headers[j].name, def->headers[i].name) == 0)
                break;
        if (j < own)
            continue;
        if (out->task.nheaders == WQ_HEADERS_MAX)
            return wq_seterr(err, errlen, WQ_ETOOBIG,
                "field 'headers': more than %d headers with the defaults",
                WQ_HEADERS_MAX);
        out->headers[out->task.nheaders++] = def->headers[i];
    }
    return 0;
}

/* "priority": "high", "normal", "low", or 2, 1, 0 (priority.h). */
static int
field_priority(json_t *v, int *out, char *err, size_t errlen)
{
    char num[24];

    if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
            json_integer_value(v));
        if (wq_priority_parse(num, out) == 0)
            return 0;
    } else if (json_is_string(v)
        && wq_priority_parse(json_string_value(v), out) == 0) {
        return 0;
    }
    return wq_seterr(err, errlen, WQ_EINVAL, "field 'priority': must be "
        "\"high\", \"normal\" or \"low\" (or 2, 1, 0)");
}

int
wq_taskspec_check_hook(const char *url, char *err, size_t errlen)
{
    size_t len = strlen(url);

    if (strncasecmp(url, "https://", 8) != 0)
        return wq_seterr(err, errlen, WQ_EINVAL, "hook URL '%.64s': want "
            "https:// (completion hooks are sent over TLS only)", url);
    if (len == 8 || url[8] == '/' || url[8] == '?' || url[8] == '#')
        return wq_seterr(err, errlen, WQ_EINVAL, "hook URL '%.64s': no "
            "host", url);
    if (len > WQ_HOOK_URL_MAX)
        return wq_seterr(err, errlen, WQ_EINVAL, "hook URL: %zu bytes, "
            "the limit is %d", len, WQ_HOOK_URL_MAX);
    for (const unsigned char *c = (const unsigned char *)url; *c; c++)
        if (*c <= ' ' || *c == 0x7f)
            return wq_seterr(err, errlen, WQ_EINVAL, "hook URL '%.64s': "
                "spaces and control characters are not allowed (encode "
                "them)", url);
    return 0;
}

/* The hook field: checked, added as the header workq-hook. */
static int
field_hook(struct wq_taskspec *out, const char *url, char *err,
    size_t errlen)
{
    int rc;

    if ((rc = wq_taskspec_check_hook(url, err, errlen)) != 0) {
        char why[WQ_ERRLEN];

        snprintf(why, sizeof why, "%s", err);
        return wq_seterr(err, errlen, rc, "field 'hook': %s", why);
    }
    for (size_t i = 0; i < out->task.nheaders; i++)
        if (strcmp(out->headers[i].name, WQ_HOOK_HEADER) == 0)
            return wq_seterr(err, errlen, WQ_EINVAL, "give either 'hook' "
                "or the header '" WQ_HOOK_HEADER "', not both");
    if (out->task.nheaders == WQ_HEADERS_MAX)
        return wq_seterr(err, errlen, WQ_ETOOBIG, "field 'hook': more than "
            "%d headers with it", WQ_HEADERS_MAX);
    out->headers[out->task.nheaders].name = WQ_HOOK_HEADER;
    out->headers[out->task.nheaders++].value = url;
    return 0;
}

int
wq_taskspec_from_json(json_t *obj, const struct wq_taskspec_defaults *def,
    struct wq_taskspec *out, char *err, size_t errlen)
{
    static const struct wq_taskspec_defaults none;
    json_t *v, *payload = NULL, *payload64 = NULL;
    const char *k, *hook = NULL;
    int64_t ms;
    int rc;

    memset(out, 0, sizeof *out);
    if (def == NULL)
        def = &none;
    if (!json_is_object(obj))
        return wq_seterr(err, errlen, WQ_EINVAL,
            "a task must be a JSON object");
    out->priority = -1;
    out->root = json_incref(obj);
    out->task.queue = def->queue;
    out->task.type = def->type;
    out->task.max_attempts = def->max_attempts;

    json_object_foreach(obj, k, v) {
        if (strcmp(k, "type") == 0) {
            rc = cstring(v, k, &out->task.type, err, errlen);
        } else if (strcmp(k, "queue") == 0 && def->allow_queue) {
            rc = cstring(v, k, &out->task.queue, err, errlen);
        } else if (strcmp(k, "idempotency_key") == 0) {
            rc = cstring(v, k, &out->task.idempotency_key, err, errlen);
        } else if (strcmp(k, "payload") == 0) {
            payload = v;
            rc = 0;
        } else if (strcmp(k, "payload_base64") == 0) {
            payload64 = v;
            rc = 0;
        } else if (strcmp(k, "max_attempts") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1
                || json_integer_value(v) > INT_MAX)
                rc = wq_seterr(err, errlen, WQ_EINVAL, "field "
                    "'max_attempts': must be an integer from 1 to %d",
                    INT_MAX);
            else
                out->task.max_attempts = (int)json_integer_value(v), rc = 0;
        } else if (strcmp(k, "delay") == 0) {
            rc = field_delay(v, &out->task.delay_ms, err, errlen);
        } else if (strcmp(k, "run_at") == 0) {
            if (!json_is_string(v))
                rc = wq_seterr(err, errlen, WQ_EINVAL,
                    "field 'run_at': must be an RFC 3339 time string");
            else if (wq_taskspec_parse_rfc3339(json_string_value(v), &ms)
                != 0 || ms <= 0)
                rc = wq_seterr(err, errlen, WQ_EINVAL, "field 'run_at': "
                    "\"%.64s\" is not an RFC 3339 time "
                    "(2026-11-28T07:43:06Z)", json_string_value(v));
            else
                out->task.run_at_ms = ms, rc = 0;
        } else if (strcmp(k, "headers") == 0) {
            rc = field_headers(out, v, err, errlen);
        } else if (strcmp(k, "concurrency_key") == 0) {
            rc = cstring(v, k, &out->flow.concurrency_key, err, errlen);
        } else if (strcmp(k, "concurrency_limit") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1
                || json_integer_value(v) > WQ_CONCURRENCY_LIMIT_MAX)
                rc = wq_seterr(err, errlen, WQ_EINVAL, "field "
                    "'concurrency_limit': must be an integer from 1 to %d",
                    WQ_CONCURRENCY_LIMIT_MAX);
            else
                out->flow.concurrency_limit = (int)json_integer_value(v),
                    rc = 0;
        } else if (strcmp(k, "hook") == 0) {
            rc = cstring(v, k, &hook, err, errlen);
        } else if (strcmp(k, "priority") == 0) {
            rc = field_priority(v, &out->priority, err, errlen);
        } else if (strcmp(k, "unique_for") == 0) {
            rc = field_delay(v, &out->flow.unique_for_ms, err, errlen);
            if (rc == 0 && out->flow.unique_for_ms <= 0)
                rc = wq_seterr(err, errlen, WQ_EINVAL,
                    "field 'unique_for': must be longer than 0");
            if (rc != 0)
                snprintf(err, errlen, "field 'unique_for': must be a "
                    "duration (\"1h\", \"30m\") or seconds, above 0");
        } else {
            rc = wq_seterr(err, errlen, WQ_EINVAL, "unknown field '%.64s'",
                k);
        }
        if (rc != 0)
            goto fail;
    }
    if (payload != NULL && payload64 != NULL) {
        rc = wq_seterr(err, errlen, WQ_EINVAL,
            "give either 'payload' or 'payload_base64', not both");
        goto fail;
    }
    if ((payload != NULL || payload64 != NULL)
        && (rc = field_payload(out, payload64 != NULL ? payload64 : payload,
            payload64 != NULL, err, errlen)) != 0)
        goto fail;
    if (json_object_get(obj, "delay") != NULL
        && json_object_get(obj, "run_at") != NULL) {
        rc = wq_seterr(err, errlen, WQ_EINVAL,
            "give either 'delay' or 'run_at', not both");
        goto fail;
    }
    if (out->task.type == NULL) {
        rc = wq_seterr(err, errlen, WQ_EINVAL,
            "field 'type': missing (the handler's name)");
        goto fail;
    }
    if (out->task.queue == NULL) {
        rc = wq_seterr(err, errlen, WQ_EINVAL, "field 'queue': missing");
        goto fail;
    }
    if ((rc = wq_taskspec_flow_check(&out->flow, out->task.idempotency_key,
        err, errlen)) != 0)
        goto fail;
    if (hook != NULL && (rc = field_hook(out, hook, err, errlen)) != 0)
        goto fail;
    if ((rc = merge_headers(out, def, err, errlen)) != 0)
        goto fail;
    out->task.headers = out->task.nheaders > 0 ? out->headers : NULL;
    return 0;

fail:
    wq_taskspec_free(out);
    return rc;
}

int
wq_taskspec_parse(const char *text, size_t len,
    const struct wq_taskspec_defaults *def, struct wq_taskspec *out,
    char *err, size_t errlen)
{
    json_error_t je;
    json_t *root;
    int rc;

    memset(out, 0, sizeof *out);
    if (text == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "no text");
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
        &je);
    /* A one-line text (a line of a batch) has no line of its own to
     * name: the caller names it, jansson's count would only confuse. */
    if (root == NULL && memchr(text, '\n', len) == NULL)
        return wq_seterr(err, errlen, WQ_EDECODE, "invalid JSON at column "
            "%d: %s", je.column, je.text);
    if (root == NULL)
        return wq_seterr(err, errlen, WQ_EDECODE, "invalid JSON at line %d "
            "column %d: %s", je.line, je.column, je.text);
    rc = wq_taskspec_from_json(root, def, out, err, errlen);
    json_decref(root);
    return rc;
}

void
wq_taskspec_free(struct wq_taskspec *spec)
{
    if (spec == NULL)
        return;
    if (spec->root != NULL)
        json_decref(spec->root);
    free(spec->owned_payload);
    memset(spec, 0, sizeof *spec);
}

/* --- to an envelope ------------------------------------------------------ */

int
wq_taskspec_envelope(const struct wq_client_task *task,
    struct wq_uuid_seq *seq, struct wq_envelope *env, struct wq_header *hdrs,
    char idtext[WQ_CLIENT_ID_LEN], int64_t *run_at, char *err,
    size_t errlen)
{
    struct wq_uuid_seq kept;
    int64_t now;
    int rc, stamped = 0;

    memset(env, 0, sizeof *env);
    *run_at = 0;
    if (task == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "task is NULL");
    if (task->queue == NULL || task->type == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "task %s is NULL",
            task->queue == NULL ? "queue" : "type");
    if ((rc = wq_queue_name_valid(task->queue, err, errlen)) != 0)
        return rc;
    if (task->payload == NULL && task->payload_len > 0)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "payload is NULL with length %zu", task->payload_len);
    if (task->max_attempts < 0)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "max_attempts %d is negative", task->max_attempts);
    if (task->delay_ms < 0 || task->run_at_ms < 0)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "delay and run_at must not be negative");
    if (task->delay_ms > 0 && task->run_at_ms > 0)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "give either a delay or a run_at time, not both");
    if (task->nheaders > WQ_HEADERS_MAX)
        return wq_seterr(err, errlen, WQ_ETOOBIG,
            "%zu headers; at most %d", task->nheaders, WQ_HEADERS_MAX);
    if (task->nheaders > 0 && task->headers == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "headers is NULL");
    for (size_t i = 0; i < task->nheaders; i++) {
        if (task->headers[i].name == NULL || task->headers[i].value == NULL)
            return wq_seterr(err, errlen, WQ_EINVAL,
                "header %zu has a NULL name or value", i);
        hdrs[i].name = (char *)(uintptr_t)task->headers[i].name;
        hdrs[i].value = (char *)(uintptr_t)task->headers[i].value;
    }
    now = wq_clock_wall_ms();
    /* A time already past is due now: it goes to the broker at once. */
    if (task->run_at_ms > now)
        *run_at = task->run_at_ms;
    else if (task->delay_ms > 0)
        *run_at = now + task->delay_ms;
    /* A key names its task: the id follows from (queue, key), so every
     * submit of the key answers with the same handle (uuid.h). */
    if (task->idempotency_key != NULL)
        (void)wq_uuid_for_key(task->queue, task->idempotency_key, env->id);
    else if (wq_uuid_v7(env->id) != 0)
        return wq_seterr(err, errlen, WQ_EIO, "no random bytes for an id");
    else if ((stamped = seq != NULL && *run_at == 0)) {
        kept = *seq;
        wq_uuid_seq_stamp(seq, env->id);    /* due now: a receipt's id */
    }
    wq_uuid_format(env->id, idtext);

    env->version = WQ_ENVELOPE_VERSION;
    env->queue = (char *)(uintptr_t)task->queue;
    env->type = (char *)(uintptr_t)task->type;
    env->key = (char *)(uintptr_t)(task->idempotency_key != NULL
        ? task->idempotency_key : idtext);
    env->payload = (uint8_t *)(uintptr_t)(task->payload_len > 0
        ? task->payload : NULL);
    env->payload_len = task->payload_len;
    env->attempt = 1;
    env->max_attempts = task->max_attempts > 0
        ? (uint32_t)task->max_attempts : WQ_MAX_ATTEMPTS_DEFAULT;
    env->created_at_ms = now;
    env->headers = task->nheaders > 0 ? hdrs : NULL;
    env->nheaders = task->nheaders;
    env->run_at_ms = *run_at;
    /* a refused task takes no id of the sequence: a gap would split the
     * ranges of the receipts around it (struct fates in client.c) */
    if ((rc = wq_envelope_validate(env, err, errlen)) != 0 && stamped)
        *seq = kept;
    return rc;
}

int
wq_taskspec_flow_check(const struct wq_client_flow *flow, const char *key,
    char *err, size_t errlen)
{
    if (flow == NULL)
        return 0;
    if (flow->concurrency_key == NULL && flow->concurrency_limit != 0)
        return wq_seterr(err, errlen, WQ_EINVAL, "field 'concurrency_limit': "
            "given without a concurrency_key");
    if (flow->concurrency_limit < 0
        || flow->concurrency_limit > WQ_CONCURRENCY_LIMIT_MAX)
        return wq_seterr(err, errlen, WQ_EINVAL, "field 'concurrency_limit': "
            "%d is not in 1..%d", flow->concurrency_limit,
            WQ_CONCURRENCY_LIMIT_MAX);
    if (flow->concurrency_key != NULL && (flow->concurrency_key[0] == '\0'
        || strlen(flow->concurrency_key) > WQ_CONCURRENCY_KEY_MAX))
        return wq_seterr(err, errlen, WQ_EINVAL, "field 'concurrency_key': "
            "must be 1..%d bytes", WQ_CONCURRENCY_KEY_MAX);
    if (flow->unique_for_ms < 0 || flow->unique_for_ms > DELAY_MAX_MS)
        return wq_seterr(err, errlen, WQ_EINVAL, "field 'unique_for': out "
            "of range");
    if (flow->unique_for_ms > 0 && key == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "field 'unique_for': a "
            "unique window needs an idempotency_key (the key it keeps "
            "unique)");
    return 0;
}

int
wq_taskspec_flow_apply(const struct wq_client_flow *flow,
    struct wq_envelope *env, char *err, size_t errlen)
{
    if (flow == NULL || flow->concurrency_key == NULL)
        return 0;
    env->concurrency_key = (char *)(uintptr_t)flow->concurrency_key;
    env->concurrency_limit = flow->concurrency_limit > 0
        ? (uint32_t)flow->concurrency_limit : 1;
    env->version = 0;           /* as the fields need (envelope.h) */
    return wq_envelope_validate(env, err, errlen);
}

int
wq_taskspec_unique_key(const char *key, int64_t start_ms, char *out,
    size_t outlen, char *err, size_t errlen)
{
    int n = snprintf(out, outlen, "%s@w%lld", key, (long long)start_ms);

    if (n < 0 || (size_t)n >= outlen || n > WQ_KEY_MAX)
        return wq_seterr(err, errlen, WQ_ETOOBIG, "idempotency key: with "
            "its unique window (\"@w%lld\") it is over %d bytes",
            (long long)start_ms, WQ_KEY_MAX);
    return 0;
}

int
wq_taskspec_max_attempts(const struct wq_config *cfg, const char *queue)
{
    const struct wq_config_queue_policy *p = cfg->queue_policies.v;
    int any = 0;

    for (size_t i = 0; i < cfg->queue_policies.n; i++) {
        if (strcmp(p[i].name, queue) == 0)
            return p[i].max_attempts;
        if (strcmp(p[i].name, "*") == 0)
            any = p[i].max_attempts;
    }
    return any > 0 ? any : WQ_MAX_ATTEMPTS_DEFAULT;
}

char *
wq_taskspec_headers_json(const struct wq_envelope *env)
{
    json_t *o = json_object();
    char *s;

    if (o == NULL)
        return NULL;
    for (size_t i = 0; i < env->nheaders; i++)
        if (json_object_set_new(o, env->headers[i].name,
            json_string(env->headers[i].value)) != 0) {
            json_decref(o);
            return NULL;
        }
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

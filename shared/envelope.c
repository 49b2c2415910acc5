/*
 * envelope.c - encoding, strict decoding and validation of the task
 * envelope (the wire format is specified in envelope.h).
 *
 * Three parts share one set of rules.  Validation works on a `struct
 * view`: every field as a pointer and a length, whether it comes from a
 * caller's struct (validate, encode, init, copy) or straight from the
 * input bytes (decode), so one function, check_view(), decides what a
 * valid envelope is.  Encoding is msgpack-c's packer writing into a
 * reserved struct wq_buf.  Decoding is a small reader of exactly the
 * msgpack this schema allows (see envelope.h for why not msgpack-c's
 * unpacker): it walks the input once, records views into it, checks them,
 * and only then makes the one allocation that the decoded envelope owns:
 * the header array first, then every string and the payload, each
 * followed by a NUL.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "clock.h"
#include "envelope.h"
#include "priority.h"
#include "uuid.h"

/* The fields in wire order; F_R, F_H and those of version 2 are
 * optional. */
enum {
    F_V, F_ID, F_Q, F_T, F_K, F_P, F_A, F_M, F_C, F_R, F_H,
    /* version 2, flow control: concurrency key and limit */
    F_FC, F_FN,
    F_COUNT
};
static const char *const field_key[F_COUNT] = {
    "v", "id", "q", "t", "k", "p", "a", "m", "c", "r", "h",
    "fc", "fn",
};
#define REQUIRED_FIELDS ((1u << F_R) - 1)

#if defined(__GNUC__)
#define COLD __attribute__((cold, noinline))
#else
#define COLD
#endif

/* A borrowed byte range: a field in the input, or a caller's string. */
struct span {
    const uint8_t *p;
    size_t n;
};

/* Every field of an envelope, borrowed. */
struct view {
    uint64_t version;
    const uint8_t *id;
    struct span q, t, k, p;
    uint64_t attempt, max_attempts;
    int64_t created_at_ms, run_at_ms;
    /* version 2, flow control */
    struct span fc;             /* concurrency key; p NULL: none */
    uint64_t fn;                /* concurrency limit; 0: absent (1) */
    size_t nh;
    struct span hname[WQ_HEADERS_MAX], hvalue[WQ_HEADERS_MAX];
};

/* --- rules ---------------------------------------------------------------- */

/* True if any byte of `w` is zero (the classic bit trick). */
#define HAS_ZERO_BYTE(w) \
    ((((w) - 0x0101010101010101ull) & ~(w) & 0x8080808080808080ull) != 0)

/*
 * Returns the offset of the first byte that is NUL or does not start a
 * valid UTF-8 sequence (RFC 3629: shortest form, no surrogates, at most
 * U+10FFFF), or `n` if s[0..n) is clean.  ASCII goes 8 bytes at a time.
 */
static size_t
text_bad_at(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint32_t cp, min;
        size_t more;
        uint8_t c;

        for (; n - i >= 8; i += 8) {
            uint64_t w;

            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ull) != 0 || HAS_ZERO_BYTE(w))
                break;
        }
        while (i < n && (uint8_t)(s[i] - 1) < 0x7f)    /* 0x01..0x7f */
            i++;
        if (i == n)
            break;
        c = s[i];
        if (c >= 0xc2 && c <= 0xdf) {
            more = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return i;       /* NUL, a continuation byte, 0xc0, 0xc1, 0xf5.. */
        }
        if (n - i <= more)
            return i;
        for (size_t j = 1; j <= more; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += more + 1;
    }
    return n;
}

/*
 * Checks a string field: min..max bytes, no NUL, valid UTF-8.  The reason
 * reads "field 'k': key is ..." or, for idx >= 0, "field 'h': header 2
 * name is ..."; it is formatted only on failure.
 */
static int
check_text(char field, const char *what, long idx, struct span s,
    size_t min, size_t max, char *err, size_t errlen)
{
    char label[64];
    size_t bad = 0;

    if (s.n >= min && s.n <= max && (bad = text_bad_at(s.p, s.n)) == s.n)
        return 0;
    /* the reason: too long, empty, or `bad` is a NUL or invalid byte */
    if (idx >= 0)
        snprintf(label, sizeof label, "field '%c': header %ld %s", field,
            idx, what);
    else
        snprintf(label, sizeof label, "field '%c': %s", field, what);
    if (s.n > max)
        return wq_seterr(err, errlen, WQ_ETOOBIG,
            "%s is %zu bytes, limit %zu", label, s.n, max);
    if (s.n < min)
        return wq_seterr(err, errlen, WQ_EINVAL, "%s is empty", label);
    if (s.p[bad] == 0)
        return wq_seterr(err, errlen, WQ_EINVAL, "%s has a NUL byte at %zu",
            label, bad);
    return wq_seterr(err, errlen, WQ_EINVAL,
        "%s is not valid UTF-8 at byte %zu (0x%02x)", label, bad, s.p[bad]);
}

static int
check_queue(const char *pre, struct span q, char *err, size_t errlen)
{
    static const char dead[] = ".dead";
    static const char *const bands[] = {
        WQ_PRIORITY_HIGH_SUFFIX, WQ_PRIORITY_LOW_SUFFIX,
    };
    const size_t ndead = sizeof dead - 1;

    if (q.n == 0)
        return wq_seterr(err, errlen, WQ_EINVAL, "%squeue name is empty", pre);
    if (q.n > WQ_QUEUE_MAX)
        return wq_seterr(err, errlen, WQ_ETOOBIG,
            "%squeue name is %zu bytes, limit %d", pre, q.n, WQ_QUEUE_MAX);
    for (size_t i = 0; i < q.n; i++) {
        uint8_t c = q.p[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')
            continue;
        return wq_seterr(err, errlen, WQ_EINVAL,
            "%squeue name has invalid character 0x%02x at %zu "
            "(allowed: A-Z a-z 0-9 _ . -)", pre, c, i);
    }
    if (q.p[0] == '.')
        return wq_seterr(err, errlen, WQ_EINVAL,
            "%squeue name starts with '.'", pre);
    if (q.n >= ndead && memcmp(q.p + q.n - ndead, dead, ndead) == 0)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "%squeue name ends in '.dead', reserved for dead-letter queues",
            pre);
    for (size_t i = 0; i < WQ_ARRAY_LEN(bands); i++) {
        size_t nb = strlen(bands[i]);

        if (q.n >= nb && memcmp(q.p + q.n - nb, bands[i], nb) == 0)
            return wq_seterr(err, errlen, WQ_EINVAL,
                "%squeue name ends in '%s', reserved for priority bands",
                pre, bands[i]);
    }
    return 0;
}

static int
check_headers(const struct view *v, char *err, size_t errlen)
{
    int rc;

    if (v->nh > WQ_HEADERS_MAX)
        return wq_seterr(err, errlen, WQ_ETOOBIG,
            "field 'h': %zu headers, limit %d", v->nh, WQ_HEADERS_MAX);
    for (size_t i = 0; i < v->nh; i++) {
        if ((rc = check_text('h', "name", (long)i, v->hname[i], 1,
            WQ_HEADER_NAME_MAX, err, errlen)) != 0)
            return rc;
        if ((rc = check_text('h', "value", (long)i, v->hvalue[i], 0,
            WQ_HEADER_VALUE_MAX, err, errlen)) != 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (v->hname[j].n == v->hname[i].n &&
                memcmp(v->hname[j].p, v->hname[i].p, v->hname[i].n) == 0)
                return wq_seterr(err, errlen, WQ_EINVAL,
                    "field 'h': header %zu name repeats header %zu", i, j);
    }
    return 0;
}

/* Flow control (version 2): "fc" a concurrency key, "fn" its limit,
 * only with "fc". */
static int
check_flow(const struct view *v, char *err, size_t errlen)
{
    int rc;

    if (v->fc.p == NULL) {
        if (v->fn != 0)
            return wq_seterr(err, errlen, WQ_EINVAL, "field 'fn': a "
                "concurrency limit without a concurrency key ('fc')");
        return 0;
    }
    if (v->version < 2)
        return wq_seterr(err, errlen, WQ_EINVAL, "field 'fc': needs "
            "envelope version 2, the envelope says %" PRIu64, v->version);
    if ((rc = check_text('f', "concurrency key", -1, v->fc, 1,
        WQ_CONCURRENCY_KEY_MAX, err, errlen)) != 0)
        return rc;
    if (v->fn > WQ_CONCURRENCY_LIMIT_MAX)
        return wq_seterr(err, errlen, WQ_EINVAL, "field 'fn': concurrency "
            "limit is %" PRIu64 ", want 1..%d", v->fn,
            WQ_CONCURRENCY_LIMIT_MAX);
    return 0;
}

/* All rules of the wire format on one view.  WQ_EINVAL or WQ_ETOOBIG. */
static int
check_view(const struct view *v, char *err, size_t errlen)
{
    int rc;

    if (v->version < WQ_ENVELOPE_VERSION
        || v->version > WQ_ENVELOPE_VERSION_MAX)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "field 'v': unsupported envelope version %" PRIu64
            " (this build reads versions %d to %d)", v->version,
            WQ_ENVELOPE_VERSION, WQ_ENVELOPE_VERSION_MAX);
    if ((rc = check_flow(v, err, errlen)) != 0)
        return rc;
    if ((rc = check_queue("field 'q': ", v->q, err, errlen)) != 0)
        return rc;
    if ((rc = check_text('t', "type", -1, v->t, 1, WQ_TYPE_MAX, err,
        errlen)) != 0)
        return rc;
    if ((rc = check_text('k', "key", -1, v->k, 1, WQ_KEY_MAX, err,
        errlen)) != 0)
        return rc;
    /* a UUIDv7, or the key's own UUIDv5 (uuid.h, wq_uuid_for_key) */
    if (wq_uuid_v7_time_ms(v->id) < 0) {
        uint8_t own[16];

        wq_uuid_for_key_n((const char *)v->q.p, v->q.n,
            (const char *)v->k.p, v->k.n, own);
        if (memcmp(own, v->id, sizeof own) != 0)
            return wq_seterr(err, errlen, WQ_EINVAL, "field 'id': neither "
                "a UUIDv7 nor its key's UUIDv5 (version %u, variant bits "
                "%u%u)", v->id[6] >> 4, v->id[8] >> 7, (v->id[8] >> 6) & 1);
    }
    if (v->p.n > WQ_PAYLOAD_MAX)
        return wq_seterr(err, errlen, WQ_ETOOBIG,
            "field 'p': payload is %zu bytes, limit %u", v->p.n,
            WQ_PAYLOAD_MAX);
    if (v->attempt < 1 || v->attempt > UINT32_MAX)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "field 'a': attempt is %" PRIu64 ", want 1..%" PRIu32,
            v->attempt, UINT32_MAX);
    if (v->max_attempts < 1 || v->max_attempts > UINT32_MAX)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "field 'm': max_attempts is %" PRIu64 ", want 1..%" PRIu32,
            v->max_attempts, UINT32_MAX);
    if (v->created_at_ms < 0)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "field 'c': created_at_ms is negative (%" PRId64 ")",
            v->created_at_ms);
    if (v->run_at_ms < 0)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "field 'r': run_at_ms is negative (%" PRId64 ")", v->run_at_ms);
    return check_headers(v, err, errlen);
}

static struct span
cspan(const char *s)
{
    struct span sp = { (const uint8_t *)s, s != NULL ? strlen(s) : 0 };

    return sp;
}

/* Borrows the fields of a caller's envelope into a view. */
static int
view_of(const struct wq_envelope *e, struct view *v, char *err,
    size_t errlen)
{
    if (e == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "envelope is NULL");
    if (e->queue == NULL || e->type == NULL || e->key == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "field '%s': is NULL",
            e->queue == NULL ? "q" : e->type == NULL ? "t" : "k");
    if (e->payload == NULL && e->payload_len > 0)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "field 'p': payload is NULL with length %zu", e->payload_len);
    if (e->nheaders > WQ_HEADERS_MAX)
        return wq_seterr(err, errlen, WQ_ETOOBIG,
            "field 'h': %zu headers, limit %d", e->nheaders, WQ_HEADERS_MAX);
    if (e->headers == NULL && e->nheaders > 0)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "field 'h': headers is NULL with %zu entries", e->nheaders);
    v->version = e->version <= WQ_ENVELOPE_VERSION
        ? (uint64_t)wq_envelope_version_needed(e) : e->version;
    v->id = e->id;
    v->fc.p = (const uint8_t *)e->concurrency_key;
    v->fc.n = e->concurrency_key != NULL ? strlen(e->concurrency_key) : 0;
    v->fn = e->concurrency_key != NULL && e->concurrency_limit > 1
        ? e->concurrency_limit : 0;
    v->q = cspan(e->queue);
    v->t = cspan(e->type);
    v->k = cspan(e->key);
    v->p.p = e->payload;
    v->p.n = e->payload_len;
    v->attempt = e->attempt;
    v->max_attempts = e->max_attempts;
    v->created_at_ms = e->created_at_ms;
    v->run_at_ms = e->run_at_ms;
    v->nh = e->nheaders;
    for (size_t i = 0; i < v->nh; i++) {
        if (e->headers[i].name == NULL || e->headers[i].value == NULL)
            return wq_seterr(err, errlen, WQ_EINVAL,
                "field 'h': header %zu %s is NULL", i,
                e->headers[i].name == NULL ? "name" : "value");
        v->hname[i] = cspan(e->headers[i].name);
        v->hvalue[i] = cspan(e->headers[i].value);
    }
    return 0;
}

/*
 * Makes the one allocation of an owned envelope and copies the borrowed
 * strings, payload and headers of `v` into it.  Sets the pointer fields
 * and `mem` of `out`; the scalars are the caller's.  0 or WQ_ENOMEM.
 */
static int
own(struct wq_envelope *out, const struct view *v)
{
    size_t size = v->nh * sizeof(struct wq_header);
    char *mem, *s;

    size += v->q.n + 1 + v->t.n + 1 + v->k.n + 1 + v->p.n + 1;
    size += v->fc.p != NULL ? v->fc.n + 1 : 0;
    for (size_t i = 0; i < v->nh; i++)
        size += v->hname[i].n + 1 + v->hvalue[i].n + 1;
    if ((mem = malloc(size)) == NULL)
        return WQ_ENOMEM;

    out->mem = mem;
    out->headers = v->nh > 0 ? (struct wq_header *)mem : NULL;
    out->nheaders = v->nh;
    s = mem + v->nh * sizeof(struct wq_header);
#define PLACE(dst, sp) do {                                                 \
        (dst) = s;                                                          \
        if ((sp).n > 0)                                                     \
            memcpy(s, (sp).p, (sp).n);                                      \
        s[(sp).n] = '\0';                                                   \
        s += (sp).n + 1;                                                    \
    } while (0)
    PLACE(out->queue, v->q);
    PLACE(out->type, v->t);
    PLACE(out->key, v->k);
    out->payload = (uint8_t *)s;
    out->payload_len = v->p.n;
    if (v->p.n > 0)
        memcpy(s, v->p.p, v->p.n);
    s[v->p.n] = '\0';
    s += v->p.n + 1;
    for (size_t i = 0; i < v->nh; i++) {
        PLACE(out->headers[i].name, v->hname[i]);
        PLACE(out->headers[i].value, v->hvalue[i]);
    }
    out->concurrency_key = NULL;
    if (v->fc.p != NULL)
        PLACE(out->concurrency_key, v->fc);
    out->concurrency_limit = v->fc.p == NULL ? 0 : v->fn > 0
        ? (uint32_t)v->fn : 1;
#undef PLACE
    return 0;
}

/* --- public: values ------------------------------------------------------- */

int
wq_queue_name_valid(const char *q, char *err, size_t errlen)
{
    if (q == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "queue name is NULL");
    return check_queue("", cspan(q), err, errlen);
}

int
wq_envelope_validate(const struct wq_envelope *env, char *err,
    size_t errlen)
{
    struct view v;
    int rc;

    if ((rc = view_of(env, &v, err, errlen)) != 0)
        return rc;
    return check_view(&v, err, errlen);
}

int
wq_envelope_init(struct wq_envelope *env, const char *queue,
    const char *type, const char *key, const void *payload, size_t len,
    char *err, size_t errlen)
{
    char idtext[WQ_UUID_STRLEN];
    struct view v;
    int rc;

    if (env == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "envelope is NULL");
    memset(env, 0, sizeof *env);
    if (queue == NULL || type == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "field '%s': is NULL",
            queue == NULL ? "q" : "t");
    if (payload == NULL && len > 0)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "field 'p': payload is NULL with length %zu", len);
    if (key != NULL)
        (void)wq_uuid_for_key(queue, key, env->id);    /* as taskspec.c */
    else if (wq_uuid_v7(env->id) != 0)
        return wq_seterr(err, errlen, WQ_EIO,
            "field 'id': getrandom failed, no id");
    if (key == NULL) {
        wq_uuid_format(env->id, idtext);
        key = idtext;
    }
    env->version = WQ_ENVELOPE_VERSION;
    env->attempt = 1;
    env->max_attempts = WQ_MAX_ATTEMPTS_DEFAULT;
    env->created_at_ms = wq_clock_wall_ms();

    memset(&v, 0, offsetof(struct view, hname));
    v.version = env->version;
    v.id = env->id;
    v.q = cspan(queue);
    v.t = cspan(type);
    v.k = cspan(key);
    v.p.p = payload;
    v.p.n = len;
    v.attempt = env->attempt;
    v.max_attempts = env->max_attempts;
    v.created_at_ms = env->created_at_ms;
    if ((rc = check_view(&v, err, errlen)) != 0 ||
        (rc = own(env, &v)) != 0) {
        if (rc == WQ_ENOMEM)
            wq_seterr(err, errlen, rc, "out of memory");
        memset(env, 0, sizeof *env);
        return rc;
    }
    return 0;
}

int
wq_envelope_copy(struct wq_envelope *dst, const struct wq_envelope *src,
    char *err, size_t errlen)
{
    struct view v;
    int rc;

    if (dst == NULL || dst == src)
        return wq_seterr(err, errlen, WQ_EINVAL,
            "copy: destination is NULL or the source");
    memset(dst, 0, sizeof *dst);
    if ((rc = view_of(src, &v, err, errlen)) != 0 ||
        (rc = check_view(&v, err, errlen)) != 0)
        return rc;
    if (own(dst, &v) != 0) {
        memset(dst, 0, sizeof *dst);
        return wq_seterr(err, errlen, WQ_ENOMEM, "out of memory");
    }
    dst->version = (uint32_t)v.version;
    memcpy(dst->id, src->id, sizeof dst->id);
    dst->attempt = src->attempt;
    dst->max_attempts = src->max_attempts;
    dst->created_at_ms = src->created_at_ms;
    dst->run_at_ms = src->run_at_ms;
    return 0;
}

void
wq_envelope_free(struct wq_envelope *env)
{
    if (env == NULL)
        return;
    free(env->mem);
    memset(env, 0, sizeof *env);
}

static int
str_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

int
wq_envelope_equal(const struct wq_envelope *a, const struct wq_envelope *b)
{
    if (a->version != b->version || memcmp(a->id, b->id, 16) != 0 ||
        !str_equal(a->queue, b->queue) || !str_equal(a->type, b->type) ||
        !str_equal(a->key, b->key) || a->payload_len != b->payload_len ||
        a->attempt != b->attempt || a->max_attempts != b->max_attempts ||
        a->created_at_ms != b->created_at_ms ||
        a->run_at_ms != b->run_at_ms || a->nheaders != b->nheaders ||
        !str_equal(a->concurrency_key, b->concurrency_key) ||
        (a->concurrency_key != NULL
         && a->concurrency_limit != b->concurrency_limit))
        return 0;
    if (a->payload_len > 0 &&
        memcmp(a->payload, b->payload, a->payload_len) != 0)
        return 0;
    for (size_t i = 0; i < a->nheaders; i++)
        if (!str_equal(a->headers[i].name, b->headers[i].name) ||
            !str_equal(a->headers[i].value, b->headers[i].value))
            return 0;
    return 1;
}

/* --- encode --------------------------------------------------------------- */

/* msgpack-c's write callback.  encode reserved room for the worst case
 * first, so this only copies; -1 would mean the bound was wrong. */
static int
pack_write(void *data, const char *p, size_t n)
{
    struct wq_buf *b = data;

    if (n == 0)                 /* an empty body comes as (NULL, 0) */
        return 0;
    if (b->cap - b->len < n)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static int
pack_key(msgpack_packer *pk, int f)
{
    size_t n = field_key[f][1] == '\0' ? 1 : 2;   /* keys are 1 or 2 */

    return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk,
        field_key[f], n);
}

static int
pack_str(msgpack_packer *pk, struct span s)
{
    return msgpack_pack_str(pk, s.n) | msgpack_pack_str_body(pk, s.p, s.n);
}

int
wq_envelope_version_needed(const struct wq_envelope *env)
{
    /* version 2, flow control */
    if (env->concurrency_key != NULL)
        return 2;
    return WQ_ENVELOPE_VERSION;
}

int
wq_envelope_encode(const struct wq_envelope *env, struct wq_buf *buf,
    char *err, size_t errlen)
{
    msgpack_packer pk;
    struct view v;
    size_t start, bound;
    int rc, bad = 0;

    if (buf == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "buffer is NULL");
    if ((rc = view_of(env, &v, err, errlen)) != 0 ||
        (rc = check_view(&v, err, errlen)) != 0)
        return rc;

    /* Worst case: 1 map byte, 3 per key, 9 per int, 5 per length. */
    bound = 1 + F_COUNT * 3 + 5 * 9 + (5 + 16) + (5 + v.q.n) + (5 + v.t.n) +
        (5 + v.k.n) + (5 + v.p.n) + 5 + (5 + v.fc.n);
    for (size_t i = 0; i < v.nh; i++)
        bound += 10 + v.hname[i].n + v.hvalue[i].n;
    if (wq_buf_reserve(buf, bound) != 0)
        return wq_seterr(err, errlen, WQ_ENOMEM,
            "out of memory growing the buffer by %zu bytes", bound);
    start = buf->len;

    msgpack_packer_init(&pk, buf, pack_write);
    bad |= msgpack_pack_map(&pk, F_R + (v.run_at_ms != 0) + (v.nh > 0)
        + (v.fc.p != NULL) + (v.fn != 0));
    bad |= pack_key(&pk, F_V) | msgpack_pack_uint32(&pk,
        (uint32_t)v.version);
    bad |= pack_key(&pk, F_ID) | msgpack_pack_bin(&pk, 16) |
        msgpack_pack_bin_body(&pk, v.id, 16);
    bad |= pack_key(&pk, F_Q) | pack_str(&pk, v.q);
    bad |= pack_key(&pk, F_T) | pack_str(&pk, v.t);
    bad |= pack_key(&pk, F_K) | pack_str(&pk, v.k);
    bad |= pack_key(&pk, F_P) | msgpack_pack_bin(&pk, v.p.n) |
        msgpack_pack_bin_body(&pk, v.p.p, v.p.n);
    bad |= pack_key(&pk, F_A) | msgpack_pack_uint32(&pk,
        (uint32_t)v.attempt);
    bad |= pack_key(&pk, F_M) | msgpack_pack_uint32(&pk,
        (uint32_t)v.max_attempts);
    bad |= pack_key(&pk, F_C) | msgpack_pack_int64(&pk, v.created_at_ms);
    if (v.run_at_ms != 0)
        bad |= pack_key(&pk, F_R) | msgpack_pack_int64(&pk, v.run_at_ms);
    if (v.nh > 0) {
        bad |= pack_key(&pk, F_H) | msgpack_pack_map(&pk, v.nh);
        for (size_t i = 0; i < v.nh; i++)
            bad |= pack_str(&pk, v.hname[i]) | pack_str(&pk, v.hvalue[i]);
    }
    /* version 2, flow control */
    if (v.fc.p != NULL)
        bad |= pack_key(&pk, F_FC) | pack_str(&pk, v.fc);
    if (v.fn != 0)
        bad |= pack_key(&pk, F_FN) | msgpack_pack_uint32(&pk,
            (uint32_t)v.fn);
    if (bad != 0) {
        buf->len = start;
        return wq_seterr(err, errlen, WQ_ENOMEM,
            "encode: size bound of %zu bytes was too small", bound);
    }
    return 0;
}

/* --- decode --------------------------------------------------------------- */

/*
 * The reader: a cursor over the input and what it is reading, so that a
 * failure can name the field without any formatting on the good path.
 */
struct rd {
    const uint8_t *base, *p, *end;
    int field;              /* F_* whose value is being read, or -1 */
    long hidx;              /* header index in field 'h', or -1 */
    const char *hpart;      /* "name" or "value" */
    char *err;
    size_t errlen;
};

static int fail(struct rd *r, const char *fmt, ...) WQ_PRINTFLIKE(2, 3);

/* Fills err with "field 'x': [header N name ]<message>"; WQ_EDECODE. */
static int
fail(struct rd *r, const char *fmt, ...)
{
    va_list ap;
    int n = 0;

    if (r->err == NULL || r->errlen == 0)
        return WQ_EDECODE;
    if (r->field >= 0 && r->hidx >= 0)
        n = snprintf(r->err, r->errlen, "field '%s': header %ld %s ",
            field_key[r->field], r->hidx, r->hpart);
    else if (r->field >= 0)
        n = snprintf(r->err, r->errlen, "field '%s': ",
            field_key[r->field]);
    if (n < 0 || (size_t)n >= r->errlen)
        return WQ_EDECODE;
    va_start(ap, fmt);
    vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return WQ_EDECODE;
}

static size_t
at(const struct rd *r)
{
    return (size_t)(r->p - r->base);
}

static const char *
type_name(uint8_t b)
{
    if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3))
        return "int";
    if (b <= 0x8f || b == 0xde || b == 0xdf)
        return "map";
    if (b <= 0x9f || b == 0xdc || b == 0xdd)
        return "array";
    if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb))
        return "str";
    switch (b) {
    case 0xc0: return "nil";
    case 0xc1: return "the never-used type 0xc1";
    case 0xc2: case 0xc3: return "bool";
    case 0xc4: case 0xc5: case 0xc6: return "bin";
    case 0xca: case 0xcb: return "float";
    default: return "ext";
    }
}

static int
is_map(uint8_t b)
{
    return (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
}

static int
is_str(uint8_t b)
{
    return (b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb);
}

static uint64_t
be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/*
 * The failures of the primitives below, kept out of line so that the
 * good path stays short.  `pos` is the offset where `n` bytes are missing.
 */
static int COLD
fail_short(struct rd *r, size_t pos, size_t n)
{
    return fail(r, "truncated at byte %zu: %zu more bytes needed, %zu left",
        pos, n, (size_t)(r->end - r->base) - pos);
}

static int COLD
fail_type(struct rd *r, const char *want)
{
    return fail(r, "has type %s at byte %zu, want %s", type_name(*r->p),
        at(r), want);
}

/* The kinds of length-prefixed value the schema uses. */
enum kind { K_STR, K_BIN, K_MAP };

/*
 * Reads the type byte and the length or count of a str, bin or map.  For
 * str and bin, also checks that the body is there and steps over it.
 * On success s->n is the length or count and, but for maps, s->p the
 * body.
 */
static int
rd_span(struct rd *r, enum kind want, struct span *s)
{
    static const uint8_t first[] = { 0xd9, 0xc4, 0xde };    /* 8/16/32 */
    const uint8_t *p = r->p;
    size_t left = (size_t)(r->end - p), w;
    uint64_t n;
    uint8_t b;

    if (left == 0)
        return fail_short(r, at(r), 1);
    b = *p;
    if (want == K_STR && b >= 0xa0 && b <= 0xbf) {
        n = b & 0x1f, w = 0;
    } else if (want == K_MAP && b >= 0x80 && b <= 0x8f) {
        n = b & 0x0f, w = 0;
    } else {
        uint8_t f = first[want];

        if (b < f || b > f + (want == K_MAP ? 1 : 2))
            return fail_type(r, want == K_STR ? "str" :
                want == K_BIN ? "bin" : "map");
        w = want == K_MAP ? (size_t)2 << (b - f) : (size_t)1 << (b - f);
        if (left < 1 + w)
            return fail_short(r, at(r) + 1, w);
        n = be(p + 1, w);
    }
    p += 1 + w;
    left -= 1 + w;
    if (want != K_MAP) {
        if (n > left)
            return fail_short(r, (size_t)(p - r->base), (size_t)n);
        s->p = p;
        p += n;
    }
    s->n = (size_t)n;
    r->p = p;
    return 0;
}

/* Reads any msgpack int and checks that it lies in 0..max. */
static int
rd_uint(struct rd *r, uint64_t max, uint64_t *out)
{
    size_t left = (size_t)(r->end - r->p), w;
    uint8_t b;
    uint64_t u;

    if (left == 0)
        return fail_short(r, at(r), 1);
    b = *r->p;
    if (b <= 0x7f) {
        u = b, w = 0;
    } else if (b >= 0xcc && b <= 0xd3) {
        w = (size_t)1 << ((b - 0xcc) & 3);
        if (left < 1 + w)
            return fail_short(r, at(r) + 1, w);
        u = be(r->p + 1, w);
        /* int 8..64: sign-extend from w bytes */
        if (b >= 0xd0 && (u >> (8 * w - 1)) != 0) {
            if (w < 8)
                u |= ~(uint64_t)0 << (8 * w);
            return fail(r, "is negative (%" PRId64 ") at byte %zu",
                (int64_t)u, at(r));
        }
    } else if (b >= 0xe0) {
        return fail(r, "is negative (%d) at byte %zu", (int)(int8_t)b,
            at(r));
    } else {
        return fail_type(r, "int");
    }
    if (u > max)
        return fail(r, "is %" PRIu64 " at byte %zu, above %" PRIu64, u,
            at(r), max);
    r->p += 1 + w;
    *out = u;
    return 0;
}

/* Quotes untrusted bytes for a reason text: printable ASCII as is,
 * everything else as \xNN, at most 32 bytes shown. */
static const char *
quote(char *dst, size_t dstlen, const uint8_t *s, size_t n)
{
    size_t o = 0;

    for (size_t i = 0; i < n && i < 32 && o + 5 < dstlen; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\'' && s[i] != '\\')
            dst[o++] = (char)s[i];
        else
            o += (size_t)snprintf(dst + o, dstlen - o, "\\x%02x", s[i]);
    }
    if (n > 32 && o + 4 < dstlen) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
    return dst;
}

/* The F_* of a field name, or -1; keep in step with field_key[]. */
static int
lookup(struct span k)
{
    if (k.n == 2 && k.p[0] == 'i' && k.p[1] == 'd')
        return F_ID;
    /* version 2, flow control */
    if (k.n == 2 && k.p[0] == 'f' && k.p[1] == 'c')
        return F_FC;
    if (k.n == 2 && k.p[0] == 'f' && k.p[1] == 'n')
        return F_FN;
    if (k.n != 1)
        return -1;
    switch (k.p[0]) {
    case 'v': return F_V;
    case 'q': return F_Q;
    case 't': return F_T;
    case 'k': return F_K;
    case 'p': return F_P;
    case 'a': return F_A;
    case 'm': return F_M;
    case 'c': return F_C;
    case 'r': return F_R;
    case 'h': return F_H;
    default: return -1;
    }
}

static int
rd_headers(struct rd *r, struct view *v)
{
    struct span m;
    size_t n;
    int rc;

    if ((rc = rd_span(r, K_MAP, &m)) != 0)
        return rc;
    n = m.n;
    if (n > WQ_HEADERS_MAX)
        return fail(r, "%zu headers, limit %d", n, WQ_HEADERS_MAX);
    for (size_t i = 0; i < n; i++) {
        r->hidx = (long)i;
        r->hpart = "name";
        if ((rc = rd_span(r, K_STR, &v->hname[i])) != 0)
            return rc;
        r->hpart = "value";
        if ((rc = rd_span(r, K_STR, &v->hvalue[i])) != 0)
            return rc;
    }
    r->hidx = -1;
    v->nh = n;
    return 0;
}

/* Reads the whole envelope into `v`: structure and types, not rules. */
static int
rd_envelope(struct rd *r, struct view *v)
{
    char q[160];
    unsigned seen = 0;
    uint64_t u;
    size_t count;
    struct span key, m;
    int f, rc;

    if (r->p == r->end)
        return fail(r, "truncated: empty input");
    if (!is_map(*r->p))
        return fail(r, "not an envelope: the input starts with %s "
            "(0x%02x), not a map", type_name(*r->p), *r->p);
    if ((rc = rd_span(r, K_MAP, &m)) != 0)
        return rc;
    count = m.n;
    if (count > F_COUNT)
        return fail(r, "envelope map has %zu entries, version %d "
            "has %d fields", count, WQ_ENVELOPE_VERSION_MAX, F_COUNT);

    for (size_t i = 0; i < count; i++) {
        size_t kat = at(r);

        r->field = -1;
        if (r->p < r->end && !is_str(*r->p))
            return fail(r, "field name at byte %zu has type %s, want str",
                kat, type_name(*r->p));
        if ((rc = rd_span(r, K_STR, &key)) != 0)
            return rc;
        if ((f = lookup(key)) < 0)
            return fail(r, "unknown field '%s' at byte %zu (version %d "
                "has v id q t k p a m c r h fc fn)",
                quote(q, sizeof q, key.p, key.n), kat,
                WQ_ENVELOPE_VERSION_MAX);
        if (seen & (1u << f))
            return fail(r, "field '%s' appears twice (again at byte %zu)",
                field_key[f], kat);
        seen |= 1u << f;
        r->field = f;

        switch (f) {
        case F_V:
            if ((rc = rd_uint(r, UINT32_MAX, &v->version)) != 0)
                return rc;
            /* before any other field: a newer writer's envelope says so */
            if (v->version < WQ_ENVELOPE_VERSION
                || v->version > WQ_ENVELOPE_VERSION_MAX)
                return fail(r, "unsupported envelope version %" PRIu64
                    " (this build reads versions %d to %d)", v->version,
                    WQ_ENVELOPE_VERSION, WQ_ENVELOPE_VERSION_MAX);
            break;
        case F_ID: {
            struct span id;

            if ((rc = rd_span(r, K_BIN, &id)) != 0)
                return rc;
            if (id.n != WQ_UUID_LEN)
                return fail(r, "id is %zu bytes, want %d", id.n,
                    WQ_UUID_LEN);
            v->id = id.p;
            break;
        }
        case F_Q:
            rc = rd_span(r, K_STR, &v->q);
            break;
        case F_T:
            rc = rd_span(r, K_STR, &v->t);
            break;
        case F_K:
            rc = rd_span(r, K_STR, &v->k);
            break;
        case F_P:
            rc = rd_span(r, K_BIN, &v->p);
            break;
        case F_A:
            rc = rd_uint(r, UINT32_MAX, &v->attempt);
            break;
        case F_M:
            rc = rd_uint(r, UINT32_MAX, &v->max_attempts);
            break;
        case F_C:
            rc = rd_uint(r, INT64_MAX, &u);
            v->created_at_ms = (int64_t)u;
            break;
        case F_R:
            rc = rd_uint(r, INT64_MAX, &u);
            v->run_at_ms = (int64_t)u;
            break;
        case F_H:
            rc = rd_headers(r, v);
            break;
        /* version 2, flow control */
        case F_FC:
            rc = rd_span(r, K_STR, &v->fc);
            break;
        case F_FN:
            rc = rd_uint(r, UINT32_MAX, &v->fn);
            if (rc == 0 && v->fn == 0)
                return fail(r, "concurrency limit is 0, want 1..%d",
                    WQ_CONCURRENCY_LIMIT_MAX);
            break;
        }
        if (rc != 0)
            return rc;
    }
    r->field = -1;
    if ((seen & REQUIRED_FIELDS) != REQUIRED_FIELDS) {
        for (f = 0; f < F_R; f++)
            if (!(seen & (1u << f)))
                break;
        return fail(r, "missing required field '%s'", field_key[f]);
    }
    if (r->p != r->end)
        return fail(r, "%zu trailing byte%s after the envelope map, "
            "at byte %zu", (size_t)(r->end - r->p),
            r->end - r->p == 1 ? "" : "s", at(r));
    return 0;
}

int
wq_envelope_decode(const void *data, size_t len, struct wq_envelope *out,
    char *err, size_t errlen)
{
    struct rd r;
    struct view v;
    int rc;

    if (out == NULL || (data == NULL && len > 0))
        return wq_seterr(err, errlen, WQ_EINVAL,
            "decode: NULL %s", out == NULL ? "envelope" : "data");
    memset(out, 0, sizeof *out);
    if (len > WQ_ENVELOPE_MAX)
        return wq_seterr(err, errlen, WQ_EDECODE,
            "envelope is %zu bytes, limit %u", len, WQ_ENVELOPE_MAX);

    r.base = r.p = data != NULL ? data : (const void *)"";  /* NULL + 0 is UB */
    r.end = r.base + len;
    r.field = -1;
    r.hidx = -1;
    r.hpart = "";
    r.err = err;
    r.errlen = errlen;
    /* the header arrays are filled only up to v.nh */
    memset(&v, 0, offsetof(struct view, hname));
    if ((rc = rd_envelope(&r, &v)) != 0)
        return rc;
    if (check_view(&v, err, errlen) != 0)
        return WQ_EDECODE;
    if (own(out, &v) != 0) {
        memset(out, 0, sizeof *out);
        return wq_seterr(err, errlen, WQ_ENOMEM, "out of memory");
    }
    out->version = (uint32_t)v.version;
    memcpy(out->id, v.id, sizeof out->id);
    out->attempt = (uint32_t)v.attempt;
    out->max_attempts = (uint32_t)v.max_attempts;
    out->created_at_ms = v.created_at_ms;
    out->run_at_ms = v.run_at_ms;
    return 0;
}

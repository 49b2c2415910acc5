/*
 * test_envelope.c - unit tests of shared/envelope.c: round trips at the
 * edges of every limit, and one test per reason the strict decoder gives
 * for rejecting an input, each asserting the code and the reason text.
 *
 * Malformed inputs are written by raw_pack(), which packs the fields of
 * a struct wq_envelope with msgpack-c but without any validation, and can
 * leave a field out, write it twice, add an unknown one, replace one
 * value with anything, use the widest encodings or reverse the order.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "wq_test.h"

#include "buf.h"
#include "clock.h"
#include "envelope.h"
#include "uuid.h"

/* --- helpers -------------------------------------------------------------- */

/* RFC 9562 appendix A.6, a valid v7 id. */
static const uint8_t test_id[16] = {
    0x01, 0x7f, 0x22, 0xe2, 0x79, 0xb0, 0x7c, 0xc3,
    0x98, 0xc4, 0xdc, 0x0c, 0x0c, 0x07, 0x39, 0x8f,
};

static struct wq_header std_headers[] = {
    { "traceparent",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
    { "x-user", "alice" },
};

/* A valid envelope whose fields are borrowed from static storage. */
static void
std_env(struct wq_envelope *e)
{
    memset(e, 0, sizeof *e);
    e->version = WQ_ENVELOPE_VERSION;
    memcpy(e->id, test_id, 16);
    e->queue = "emails";
    e->type = "send";
    e->key = "order-42";
    e->payload = (uint8_t *)"hello, world";
    e->payload_len = 12;
    e->attempt = 1;
    e->max_attempts = 25;
    e->created_at_ms = 1700000000123LL;
    e->headers = std_headers;
    e->nheaders = WQ_ARRAY_LEN(std_headers);
}

/* The same without headers: 9 fields, room to add or repeat two. */
static void
bare_env(struct wq_envelope *e)
{
    std_env(e);
    e->headers = NULL;
    e->nheaders = 0;
}

static int
buf_cb(void *data, const char *p, size_t n)
{
    return wq_buf_append(data, p, n) == 0 ? 0 : -1;
}

static void
raw(msgpack_packer *pk, const void *p, size_t n)
{
    assert_int_equal(pk->callback(pk->data, p, n), 0);
}

/* Writes a type byte and a big-endian length of `w` bytes. */
static void
raw_head(msgpack_packer *pk, uint8_t type, uint64_t n, size_t w)
{
    uint8_t b[9];

    b[0] = type;
    for (size_t i = 0; i < w; i++)
        b[1 + i] = (uint8_t)(n >> (8 * (w - 1 - i)));
    raw(pk, b, 1 + w);
}

static void
pk_str(msgpack_packer *pk, const char *s, size_t n, int wide)
{
    if (wide)
        raw_head(pk, 0xdb, n, 4);
    else
        assert_int_equal(msgpack_pack_str(pk, n), 0);
    assert_int_equal(msgpack_pack_str_body(pk, s, n), 0);
}

static void
pk_cstr(msgpack_packer *pk, const char *s, int wide)
{
    pk_str(pk, s, strlen(s), wide);
}

static void
pk_bin(msgpack_packer *pk, const void *p, size_t n, int wide)
{
    if (wide)
        raw_head(pk, 0xc6, n, 4);
    else
        assert_int_equal(msgpack_pack_bin(pk, n), 0);
    assert_int_equal(msgpack_pack_bin_body(pk, p, n), 0);
}

static void
pk_uint(msgpack_packer *pk, uint64_t v, int wide)
{
    if (wide)
        raw_head(pk, 0xcf, v, 8);
    else
        assert_int_equal(msgpack_pack_uint64(pk, v), 0);
}

typedef void (*packfn)(msgpack_packer *pk);

struct mod {
    const char *skip;       /* leave this field out */
    const char *twice;      /* write this field twice */
    const char *extra;      /* add an unknown field, value nil, at the end */
    const char *bad;        /* write this field's value with badfn */
    packfn badfn;
    int wide;               /* widest encodings everywhere */
    int reverse;            /* fields in reverse order */
};

static const char *const keys[] = {
    "v", "id", "q", "t", "k", "p", "a", "m", "c", "r", "h",
    "fc", "fn",     /* version 2, flow control */
};
#define NKEYS ((int)WQ_ARRAY_LEN(keys))

static int
is(const char *a, const char *b)
{
    return a != NULL && strcmp(a, b) == 0;
}

static int
included(const struct wq_envelope *e, const struct mod *m, const char *k)
{
    if (is(m->skip, k))
        return 0;
    if (is(k, "r"))
        return e->run_at_ms != 0 || is(m->twice, k) || is(m->bad, k);
    if (is(k, "h"))
        return e->nheaders > 0 || is(m->twice, k) || is(m->bad, k);
    if (is(k, "fc"))
        return e->concurrency_key != NULL || is(m->twice, k)
            || is(m->bad, k);
    if (is(k, "fn"))
        return e->concurrency_limit > 1 || is(m->twice, k) || is(m->bad, k);
    return 1;
}

static void
pack_value(msgpack_packer *pk, const struct wq_envelope *e,
    const struct mod *m, const char *k)
{
    int w = m->wide;

    if (is(m->bad, k)) {
        m->badfn(pk);
    } else if (is(k, "v")) {
        pk_uint(pk, e->version, w);
    } else if (is(k, "id")) {
        pk_bin(pk, e->id, 16, w);
    } else if (is(k, "q")) {
        pk_cstr(pk, e->queue, w);
    } else if (is(k, "t")) {
        pk_cstr(pk, e->type, w);
    } else if (is(k, "k")) {
        pk_cstr(pk, e->key, w);
    } else if (is(k, "p")) {
        pk_bin(pk, e->payload, e->payload_len, w);
    } else if (is(k, "a")) {
        pk_uint(pk, e->attempt, w);
    } else if (is(k, "m")) {
        pk_uint(pk, e->max_attempts, w);
    } else if (is(k, "c")) {
        if (w || e->created_at_ms < 0)
            raw_head(pk, 0xd3, (uint64_t)e->created_at_ms, 8);
        else
            assert_int_equal(msgpack_pack_int64(pk, e->created_at_ms), 0);
    } else if (is(k, "r")) {
        if (w || e->run_at_ms < 0)
            raw_head(pk, 0xd3, (uint64_t)e->run_at_ms, 8);
        else
            assert_int_equal(msgpack_pack_int64(pk, e->run_at_ms), 0);
    } else if (is(k, "fc")) {
        pk_cstr(pk, e->concurrency_key != NULL ? e->concurrency_key : "ck",
            w);
    } else if (is(k, "fn")) {
        pk_uint(pk, e->concurrency_limit > 1 ? e->concurrency_limit : 2, w);
    } else if (is(k, "h")) {
        if (w)
            raw_head(pk, 0xdf, e->nheaders, 4);
        else
            assert_int_equal(msgpack_pack_map(pk, e->nheaders), 0);
        for (size_t i = 0; i < e->nheaders; i++) {
            pk_cstr(pk, e->headers[i].name, w);
            pk_cstr(pk, e->headers[i].value, w);
        }
    }
}

/* Packs `e` as an envelope map, changed as `m` says, without checks. */
static void
raw_pack(struct wq_buf *b, const struct wq_envelope *e, const struct mod *m)
{
    static const struct mod none;
    msgpack_packer pk;
    size_t n = 0;

    if (m == NULL)
        m = &none;
    for (int i = 0; i < NKEYS; i++)
        n += (size_t)included(e, m, keys[i]) + is(m->twice, keys[i]);
    n += m->extra != NULL;
    msgpack_packer_init(&pk, b, buf_cb);
    if (m->wide)
        raw_head(&pk, 0xdf, n, 4);
    else
        assert_int_equal(msgpack_pack_map(&pk, n), 0);
    for (int j = 0; j < NKEYS; j++) {
        const char *k = keys[m->reverse ? NKEYS - 1 - j : j];

        if (!included(e, m, k))
            continue;
        for (int rep = 0; rep < 1 + is(m->twice, k); rep++) {
            pk_cstr(&pk, k, m->wide);
            pack_value(&pk, e, m, k);
        }
    }
    if (m->extra != NULL) {
        pk_cstr(&pk, m->extra, m->wide);
        assert_int_equal(msgpack_pack_nil(&pk), 0);
    }
}

#define assert_reason(err, sub) do {                                        \
    if (strstr((err), (sub)) == NULL)                                       \
        fail_msg("reason \"%s\" lacks \"%s\"", (err), (sub));               \
} while (0)

static int
is_zero(const struct wq_envelope *e)
{
    static const struct wq_envelope zero;

    return memcmp(e, &zero, sizeof zero) == 0;
}

/* Decodes and expects a rejection with `code` and `sub` in the reason. */
static void
expect_reject_len(const void *data, size_t len, int code, const char *sub)
{
    struct wq_envelope out;
    char err[WQ_ERRLEN] = "";
    int rc;

    memset(&out, 0x5a, sizeof out);
    rc = wq_envelope_decode(data, len, &out, err, sizeof err);
    if (rc != code)
        fail_msg("decode returned %d (%s), want %d; reason \"%s\"", rc,
            wq_strerror(rc), code, err);
    assert_reason(err, sub);
    assert_true(is_zero(&out));
    wq_envelope_free(&out);
}

static void
expect_reject(const struct wq_buf *b, const char *sub)
{
    expect_reject_len(b->data, b->len, WQ_EDECODE, sub);
}

static void
reject_mod(const struct wq_envelope *e, const struct mod *m, const char *sub)
{
    struct wq_buf b = WQ_BUF_INIT;

    raw_pack(&b, e, m);
    expect_reject(&b, sub);
    wq_buf_free(&b);
}

/* Packs `e` raw and expects decode to reject it with `sub`. */
static void
reject_env(const struct wq_envelope *e, const char *sub)
{
    reject_mod(e, NULL, sub);
}

/* Encodes, decodes, compares, and encodes again to the same bytes. */
static void
roundtrip(const struct wq_envelope *e)
{
    struct wq_buf b1 = WQ_BUF_INIT, b2 = WQ_BUF_INIT;
    struct wq_envelope d;
    char err[WQ_ERRLEN] = "";
    int rc;

    rc = wq_envelope_encode(e, &b1, err, sizeof err);
    if (rc != 0)
        fail_msg("encode: %d %s", rc, err);
    assert_true(b1.len <= WQ_ENVELOPE_MAX);
    rc = wq_envelope_decode(b1.data, b1.len, &d, err, sizeof err);
    if (rc != 0)
        fail_msg("decode: %d %s", rc, err);
    assert_true(wq_envelope_equal(e, &d));
    assert_non_null(d.mem);
    assert_non_null(d.payload);
    assert_int_equal(d.payload[d.payload_len], 0);
    assert_int_equal(wq_envelope_encode(&d, &b2, err, sizeof err), 0);
    assert_int_equal(b1.len, b2.len);
    assert_memory_equal(b1.data, b2.data, b1.len);
    wq_envelope_free(&d);
    wq_buf_free(&b1);
    wq_buf_free(&b2);
}

static char *
filled(size_t n, char c)
{
    char *s = malloc(n + 1);

    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* --- round trips ---------------------------------------------------------- */

static void
test_envelope_roundtrip_basic(void **state)
{
    struct wq_envelope e;

    (void)state;
    std_env(&e);
    roundtrip(&e);
    bare_env(&e);
    roundtrip(&e);
}

static void
test_envelope_roundtrip_empty_payload(void **state)
{
    struct wq_envelope e;

    (void)state;
    std_env(&e);
    e.payload = NULL;
    e.payload_len = 0;
    roundtrip(&e);
}

static void
test_envelope_roundtrip_binary_payload(void **state)
{
    uint8_t p[512];
    struct wq_envelope e;

    (void)state;
    for (size_t i = 0; i < sizeof p; i++)
        p[i] = (uint8_t)(i * 7);            /* every byte, NULs included */
    p[0] = 0;
    p[sizeof p - 1] = 0;
    std_env(&e);
    e.payload = p;
    e.payload_len = sizeof p;
    roundtrip(&e);
}

static void
test_envelope_roundtrip_max_sizes(void **state)
{
    struct wq_header h[WQ_HEADERS_MAX];
    char *q = filled(WQ_QUEUE_MAX, 'q'), *t = filled(WQ_TYPE_MAX, 't');
    char *k = filled(WQ_KEY_MAX, 'k');
    char *names[WQ_HEADERS_MAX];
    char *value = filled(WQ_HEADER_VALUE_MAX, 'v');
    uint8_t *p = malloc(WQ_PAYLOAD_MAX);
    struct wq_envelope e;

    (void)state;
    assert_non_null(p);
    memset(p, 0xa5, WQ_PAYLOAD_MAX);
    for (int i = 0; i < WQ_HEADERS_MAX; i++) {
        names[i] = filled(WQ_HEADER_NAME_MAX, 'n');
        snprintf(names[i], 8, "h%02d", i);
        names[i][strlen(names[i])] = 'n';
        h[i].name = names[i];
        h[i].value = value;
    }
    std_env(&e);
    e.queue = q;
    e.type = t;
    e.key = k;
    e.payload = p;
    e.payload_len = WQ_PAYLOAD_MAX;
    e.attempt = UINT32_MAX;
    e.max_attempts = UINT32_MAX;
    e.created_at_ms = INT64_MAX;
    e.run_at_ms = INT64_MAX;
    e.headers = h;
    e.nheaders = WQ_HEADERS_MAX;
    roundtrip(&e);

    for (int i = 0; i < WQ_HEADERS_MAX; i++)
        free(names[i]);
    free(value);
    free(p);
    free(k);
    free(t);
    free(q);
}

static void
test_envelope_roundtrip_many_headers(void **state)
{
    struct wq_header h[WQ_HEADERS_MAX];
    char names[WQ_HEADERS_MAX][16], values[WQ_HEADERS_MAX][16];
    struct wq_envelope e;

    (void)state;
    for (int i = 0; i < WQ_HEADERS_MAX; i++) {
        snprintf(names[i], sizeof names[i], "x-h%d", i);
        snprintf(values[i], sizeof values[i], "%d", i * i);
        h[i].name = names[i];
        h[i].value = i == 3 ? "" : values[i];
    }
    std_env(&e);
    e.headers = h;
    e.nheaders = WQ_HEADERS_MAX;
    e.run_at_ms = 1700000060000LL;
    e.key = "cl\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";    /* UTF-8 */
    roundtrip(&e);
    e.key = "abcdefgh\xc3\xa9" "abcdefgh\xf0\x9f\x98\x80" "abcdefgh"
        "\xef\xbf\xbf\xf4\x8f\xbf\xbf\xed\x9f\xbf\x7f";   /* range edges */
    roundtrip(&e);
}

static void
test_envelope_small_values(void **state)
{
    struct wq_envelope e;

    (void)state;
    std_env(&e);
    e.queue = "a";
    e.type = "t";
    e.key = "k";
    e.created_at_ms = 0;
    roundtrip(&e);
}

/* Non-minimal msgpack widths and any key order decode the same. */
static void
test_envelope_wide_encodings(void **state)
{
    struct mod wide = { .wide = 1 }, rev = { .reverse = 1 };
    struct wq_buf b = WQ_BUF_INIT;
    struct wq_envelope e, d;
    char err[WQ_ERRLEN] = "";

    (void)state;
    std_env(&e);
    e.run_at_ms = 5;
    raw_pack(&b, &e, &wide);
    assert_int_equal(wq_envelope_decode(b.data, b.len, &d, err, sizeof err),
        0);
    assert_true(wq_envelope_equal(&e, &d));
    wq_envelope_free(&d);
    wq_buf_reset(&b);
    raw_pack(&b, &e, &rev);
    assert_int_equal(wq_envelope_decode(b.data, b.len, &d, err, sizeof err),
        0);
    assert_true(wq_envelope_equal(&e, &d));
    wq_envelope_free(&d);
    wq_buf_free(&b);
}

static void
pk_int8_three(msgpack_packer *pk)
{
    raw(pk, "\xd0\x03", 2);
}

static void
pk_int64_c(msgpack_packer *pk)
{
    raw_head(pk, 0xd3, 1700000000123ULL, 8);
}

static void
pk_uint16_two(msgpack_packer *pk)
{
    raw(pk, "\xcd\x00\x03", 3);     /* 3: no version this build reads */
}

/* Signed msgpack ints with values in range are ints like any other. */
static void
test_envelope_signed_int_forms(void **state)
{
    struct mod m = { .bad = "a", .badfn = pk_int8_three };
    struct wq_buf b = WQ_BUF_INIT;
    struct wq_envelope e, d;
    char err[WQ_ERRLEN] = "";

    (void)state;
    std_env(&e);
    raw_pack(&b, &e, &m);
    assert_int_equal(wq_envelope_decode(b.data, b.len, &d, err, sizeof err),
        0);
    assert_int_equal(d.attempt, 3);
    wq_envelope_free(&d);
    m.bad = "c";
    m.badfn = pk_int64_c;
    wq_buf_reset(&b);
    raw_pack(&b, &e, &m);
    assert_int_equal(wq_envelope_decode(b.data, b.len, &d, err, sizeof err),
        0);
    assert_true(wq_envelope_equal(&e, &d));
    wq_envelope_free(&d);
    m.bad = "v";
    m.badfn = pk_uint16_two;
    wq_buf_reset(&b);
    raw_pack(&b, &e, &m);
    expect_reject(&b, "field 'v': unsupported envelope version 3");
    wq_buf_free(&b);
}

/* Our bytes are plain msgpack: msgpack-c reads back the same values. */
static void
test_envelope_msgpack_c_agrees(void **state)
{
    struct wq_buf b = WQ_BUF_INIT;
    struct wq_envelope e;
    msgpack_unpacked u;
    msgpack_object_kv *kv;
    size_t off = 0;

    (void)state;
    std_env(&e);
    assert_int_equal(wq_envelope_encode(&e, &b, NULL, 0), 0);
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, b.data, b.len, &off),
        MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, b.len);
    assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(u.data.via.map.size, 10);
    kv = u.data.via.map.ptr;
    assert_memory_equal(kv[0].key.via.str.ptr, "v", 1);
    assert_int_equal(kv[0].val.via.u64, 1);
    assert_int_equal(kv[1].val.type, MSGPACK_OBJECT_BIN);
    assert_memory_equal(kv[1].val.via.bin.ptr, test_id, 16);
    assert_int_equal(kv[2].val.via.str.size, 6);
    assert_memory_equal(kv[2].val.via.str.ptr, "emails", 6);
    assert_int_equal(kv[5].val.type, MSGPACK_OBJECT_BIN);
    assert_int_equal(kv[8].val.via.u64, 1700000000123ULL);
    assert_int_equal(kv[9].val.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(kv[9].val.via.map.size, 2);
    msgpack_unpacked_destroy(&u);
    wq_buf_free(&b);
}

static void
test_envelope_init_defaults(void **state)
{
    struct wq_envelope e;
    char idtext[37], err[WQ_ERRLEN] = "";
    int64_t before, after;

    (void)state;
    before = wq_clock_wall_ms();
    assert_int_equal(wq_envelope_init(&e, "emails", "send", NULL, "x\0y", 3,
        err, sizeof err), 0);
    after = wq_clock_wall_ms();
    assert_int_equal(e.version, WQ_ENVELOPE_VERSION);
    assert_true(wq_uuid_v7_time_ms(e.id) >= before);
    wq_uuid_format(e.id, idtext);
    assert_string_equal(e.key, idtext);
    assert_string_equal(e.queue, "emails");
    assert_string_equal(e.type, "send");
    assert_int_equal(e.payload_len, 3);
    assert_memory_equal(e.payload, "x\0y", 3);
    assert_int_equal(e.attempt, 1);
    assert_int_equal(e.max_attempts, WQ_MAX_ATTEMPTS_DEFAULT);
    assert_true(e.created_at_ms >= before && e.created_at_ms <= after);
    assert_int_equal(e.run_at_ms, 0);
    assert_int_equal(e.nheaders, 0);
    assert_non_null(e.mem);
    roundtrip(&e);
    wq_envelope_free(&e);

    assert_int_equal(wq_envelope_init(&e, "q", "t", "my-key", NULL, 0, err,
        sizeof err), 0);
    assert_string_equal(e.key, "my-key");
    assert_int_equal(e.payload_len, 0);
    roundtrip(&e);
    wq_envelope_free(&e);
}

static void
test_envelope_init_rejects(void **state)
{
    struct wq_envelope e;
    char err[WQ_ERRLEN] = "";
    char *k = filled(WQ_KEY_MAX + 1, 'k');

    (void)state;
    assert_int_equal(wq_envelope_init(&e, "a/b", "t", NULL, NULL, 0, err,
        sizeof err), WQ_EINVAL);
    assert_reason(err, "field 'q': queue name has invalid character 0x2f at 1");
    assert_true(is_zero(&e));
    assert_int_equal(wq_envelope_init(&e, "q", "", NULL, NULL, 0, err,
        sizeof err), WQ_EINVAL);
    assert_reason(err, "field 't': type is empty");
    assert_int_equal(wq_envelope_init(&e, "q", NULL, NULL, NULL, 0, err,
        sizeof err), WQ_EINVAL);
    assert_reason(err, "field 't'");
    assert_int_equal(wq_envelope_init(&e, "q", "t", k, NULL, 0, err,
        sizeof err), WQ_ETOOBIG);
    assert_reason(err, "field 'k': key is 513 bytes, limit 512");
    assert_int_equal(wq_envelope_init(&e, "q", "t", NULL, NULL, 5, err,
        sizeof err), WQ_EINVAL);
    assert_reason(err, "field 'p'");
    assert_int_equal(wq_envelope_init(&e, "q", "t", NULL, "x",
        WQ_PAYLOAD_MAX + 1, err, sizeof err), WQ_ETOOBIG);
    assert_reason(err, "field 'p': payload is 1048577 bytes");
    assert_true(is_zero(&e));
    wq_envelope_free(&e);
    free(k);
}

static void
test_envelope_copy(void **state)
{
    struct wq_envelope e, c;
    char err[WQ_ERRLEN] = "";

    (void)state;
    std_env(&e);
    e.run_at_ms = 42;
    assert_int_equal(wq_envelope_copy(&c, &e, err, sizeof err), 0);
    assert_true(wq_envelope_equal(&e, &c));
    assert_ptr_not_equal(c.queue, e.queue);
    assert_ptr_not_equal(c.headers, e.headers);
    roundtrip(&c);
    wq_envelope_free(&c);

    e.queue = ".hidden";
    assert_int_equal(wq_envelope_copy(&c, &e, err, sizeof err), WQ_EINVAL);
    assert_reason(err, "field 'q': queue name starts with '.'");
    assert_true(is_zero(&c));
    assert_int_equal(wq_envelope_copy(&e, &e, err, sizeof err), WQ_EINVAL);
}

/* The producer's hot path: one buffer, reset per envelope, no growth
 * after the first; a failed encode leaves the buffer as it was. */
static void
test_envelope_encode_reuses_buffer(void **state)
{
    struct wq_buf b = WQ_BUF_INIT;
    struct wq_envelope e;
    char err[WQ_ERRLEN] = "";
    char *data;
    size_t cap, len;

    (void)state;
    std_env(&e);
    assert_int_equal(wq_envelope_encode(&e, &b, err, sizeof err), 0);
    data = b.data;
    cap = b.cap;
    len = b.len;
    for (int i = 0; i < 10000; i++) {
        wq_buf_reset(&b);
        e.attempt = (uint32_t)(i % 100) + 1;
        assert_int_equal(wq_envelope_encode(&e, &b, err, sizeof err), 0);
        assert_int_equal(b.len, len);
    }
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);

    /* appending two envelopes, then a failure, which leaves both */
    assert_int_equal(wq_envelope_encode(&e, &b, err, sizeof err), 0);
    assert_int_equal(b.len, 2 * len);
    e.attempt = 0;
    assert_int_equal(wq_envelope_encode(&e, &b, err, sizeof err), WQ_EINVAL);
    assert_reason(err, "field 'a': attempt is 0");
    assert_int_equal(b.len, 2 * len);
    wq_buf_free(&b);
    wq_buf_free(&b);
}

static void
test_envelope_encode_validates(void **state)
{
    struct wq_header dup[2] = { { "a", "1" }, { "a", "2" } };
    struct wq_buf b = WQ_BUF_INIT;
    struct wq_envelope e;
    char err[WQ_ERRLEN] = "";

    (void)state;
    std_env(&e);
    e.version = 3;
    assert_int_equal(wq_envelope_encode(&e, &b, err, sizeof err), WQ_EINVAL);
    assert_reason(err, "field 'v': unsupported envelope version 3");
    std_env(&e);
    e.id[6] = 0x40;
    assert_int_equal(wq_envelope_encode(&e, &b, err, sizeof err), WQ_EINVAL);
    assert_reason(err, "field 'id': neither a UUIDv7 nor its key's UUIDv5 "
        "(version 4");
    std_env(&e);
    e.key = "bad \xc0\xaf";
    assert_int_equal(wq_envelope_encode(&e, &b, err, sizeof err), WQ_EINVAL);
    assert_reason(err, "field 'k': key is not valid UTF-8 at byte 4");
    std_env(&e);
    e.headers = dup;
    e.nheaders = 2;
    assert_int_equal(wq_envelope_encode(&e, &b, err, sizeof err), WQ_EINVAL);
    assert_reason(err, "field 'h': header 1 name repeats header 0");
    std_env(&e);
    e.nheaders = WQ_HEADERS_MAX + 1;
    assert_int_equal(wq_envelope_encode(&e, &b, err, sizeof err),
        WQ_ETOOBIG);
    assert_reason(err, "field 'h': 65 headers, limit 64");
    std_env(&e);
    e.queue = NULL;
    assert_int_equal(wq_envelope_encode(&e, &b, err, sizeof err), WQ_EINVAL);
    assert_reason(err, "field 'q': is NULL");
    std_env(&e);
    e.created_at_ms = -1;
    assert_int_equal(wq_envelope_encode(&e, &b, err, sizeof err), WQ_EINVAL);
    assert_reason(err, "field 'c': created_at_ms is negative");
    std_env(&e);
    e.max_attempts = 0;
    assert_int_equal(wq_envelope_encode(&e, &b, err, sizeof err), WQ_EINVAL);
    assert_reason(err, "field 'm': max_attempts is 0");
    assert_int_equal(b.len, 0);
    /* version 0 means the current one */
    std_env(&e);
    e.version = 0;
    assert_int_equal(wq_envelope_encode(&e, &b, err, sizeof err), 0);
    wq_buf_free(&b);
}

static void
test_envelope_free_idempotent(void **state)
{
    struct wq_envelope e;
    char err[WQ_ERRLEN];

    (void)state;
    memset(&e, 0, sizeof e);
    wq_envelope_free(&e);
    wq_envelope_free(&e);
    wq_envelope_free(NULL);
    assert_int_equal(wq_envelope_init(&e, "q", "t", NULL, "p", 1, err,
        sizeof err), 0);
    wq_envelope_free(&e);
    assert_true(is_zero(&e));
    wq_envelope_free(&e);
    std_env(&e);                /* borrowed fields are not freed */
    wq_envelope_free(&e);
    assert_true(is_zero(&e));
}

static void
test_envelope_queue_name_valid(void **state)
{
    static const char *const good[] = {
        "a", "emails", "Emails_2", "a.b-c_d", "x.deadline", "dead", "a.",
        "0", "-", "_x",
    };
    static const struct { const char *q; int code; const char *why; } bad[] = {
        { "", WQ_EINVAL, "queue name is empty" },
        { "a/b", WQ_EINVAL, "invalid character 0x2f at 1" },
        { "a b", WQ_EINVAL, "invalid character 0x20 at 1" },
        { "caf\xc3\xa9", WQ_EINVAL, "invalid character 0xc3 at 3" },
        { "a:b", WQ_EINVAL, "invalid character 0x3a at 1" },
        { "q\n", WQ_EINVAL, "invalid character 0x0a at 1" },
        { ".a", WQ_EINVAL, "starts with '.'" },
        { "..", WQ_EINVAL, "starts with '.'" },
        { "emails.dead", WQ_EINVAL, "reserved for dead-letter" },
        { ".dead", WQ_EINVAL, "starts with '.'" },
    };
    char err[WQ_ERRLEN], *longq = filled(WQ_QUEUE_MAX + 1, 'a');

    (void)state;
    for (size_t i = 0; i < WQ_ARRAY_LEN(good); i++)
        if (wq_queue_name_valid(good[i], err, sizeof err) != 0)
            fail_msg("rejected good queue \"%s\": %s", good[i], err);
    for (size_t i = 0; i < WQ_ARRAY_LEN(bad); i++) {
        assert_int_equal(wq_queue_name_valid(bad[i].q, err, sizeof err),
            bad[i].code);
        assert_reason(err, bad[i].why);
    }
    assert_int_equal(wq_queue_name_valid(longq, err, sizeof err),
        WQ_ETOOBIG);
    assert_reason(err, "queue name is 129 bytes, limit 128");
    longq[WQ_QUEUE_MAX] = '\0';
    assert_int_equal(wq_queue_name_valid(longq, err, sizeof err), 0);
    assert_int_equal(wq_queue_name_valid(NULL, err, sizeof err), WQ_EINVAL);
    assert_int_equal(wq_queue_name_valid("a/b", NULL, 0), WQ_EINVAL);
    free(longq);
}

/* --- rejections ----------------------------------------------------------- */

static void
test_envelope_truncated(void **state)
{
    struct wq_buf b = WQ_BUF_INIT;
    struct wq_envelope e;

    (void)state;
    std_env(&e);
    e.run_at_ms = 1700000060000LL;
    assert_int_equal(wq_envelope_encode(&e, &b, NULL, 0), 0);
    for (size_t n = 0; n < b.len; n++) {
        /* a private copy of the prefix, so ASan sees any overread */
        char *p = malloc(n ? n : 1);

        assert_non_null(p);
        memcpy(p, b.data, n);
        expect_reject_len(p, n, WQ_EDECODE, "truncated");
        free(p);
    }
    wq_buf_free(&b);
}

static void
pk_nil(msgpack_packer *pk)
{
    assert_int_equal(msgpack_pack_nil(pk), 0);
}
static void
pk_true(msgpack_packer *pk)
{
    assert_int_equal(msgpack_pack_true(pk), 0);
}
static void
pk_float(msgpack_packer *pk)
{
    assert_int_equal(msgpack_pack_double(pk, 1.5), 0);
}
static void
pk_one(msgpack_packer *pk)
{
    assert_int_equal(msgpack_pack_int(pk, 1), 0);
}
static void
pk_s(msgpack_packer *pk)
{
    pk_cstr(pk, "x", 0);
}
static void
pk_b(msgpack_packer *pk)
{
    pk_bin(pk, "x", 1, 0);
}
static void
pk_arr(msgpack_packer *pk)
{
    assert_int_equal(msgpack_pack_array(pk, 1), 0);
    assert_int_equal(msgpack_pack_int(pk, 1), 0);
}
static void
pk_map0(msgpack_packer *pk)
{
    assert_int_equal(msgpack_pack_map(pk, 0), 0);
}
static void
pk_ext(msgpack_packer *pk)
{
    raw(pk, "\xd4\x01\x00", 3);
}

static void
test_envelope_wrong_type(void **state)
{
    static const struct { packfn fn; const char *type; } wrong[] = {
        { pk_nil, "nil" }, { pk_true, "bool" }, { pk_float, "float" },
        { pk_one, "int" }, { pk_s, "str" }, { pk_b, "bin" },
        { pk_arr, "array" }, { pk_map0, "map" }, { pk_ext, "ext" },
    };
    /* the msgpack type each field wants */
    static const char *const want[] = {
        "int", "bin", "str", "str", "str", "bin", "int", "int", "int", "int",
        "map", "str", "int",
    };
    struct wq_envelope e;
    char sub[128];

    (void)state;
    bare_env(&e);
    for (int f = 0; f < NKEYS; f++) {
        for (size_t w = 0; w < WQ_ARRAY_LEN(wrong); w++) {
            struct mod m = { .bad = keys[f], .badfn = wrong[w].fn };

            if (strcmp(wrong[w].type, want[f]) == 0)
                continue;
            snprintf(sub, sizeof sub, "field '%s': has type %s", keys[f],
                wrong[w].type);
            reject_mod(&e, &m, sub);
            snprintf(sub, sizeof sub, "want %s", want[f]);
            reject_mod(&e, &m, sub);
        }
    }
}

static void
test_envelope_missing_field(void **state)
{
    struct wq_envelope e;
    char sub[64];

    (void)state;
    std_env(&e);
    for (int f = 0; f < 9; f++) {           /* v id q t k p a m c */
        struct mod m = { .skip = keys[f] };

        snprintf(sub, sizeof sub, "missing required field '%s'", keys[f]);
        reject_mod(&e, &m, sub);
    }
}

static void
test_envelope_duplicate_field(void **state)
{
    struct wq_envelope e;
    char sub[64];

    (void)state;
    bare_env(&e);
    for (int f = 0; f < NKEYS; f++) {
        struct mod m = { .twice = keys[f] };

        snprintf(sub, sizeof sub, "field '%s' appears twice", keys[f]);
        reject_mod(&e, &m, sub);
    }
}

static void
test_envelope_unknown_field(void **state)
{
    struct mod m = { .extra = "priority" };
    struct wq_envelope e;
    char *longkey = filled(300, 'z');

    (void)state;
    bare_env(&e);
    reject_mod(&e, &m, "unknown field 'priority' at byte");
    m.extra = "V";
    reject_mod(&e, &m, "unknown field 'V'");
    m.extra = "";
    reject_mod(&e, &m, "unknown field ''");
    /* untrusted bytes are quoted, and cut short */
    m.extra = "\x01'\xff";
    reject_mod(&e, &m, "unknown field '\\x01\\x27\\xff'");
    m.extra = longkey;
    reject_mod(&e, &m, "unknown field 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz...'");
    free(longkey);
}

static void
test_envelope_field_name_not_str(void **state)
{
    struct wq_buf b = WQ_BUF_INIT;
    msgpack_packer pk;

    (void)state;
    msgpack_packer_init(&pk, &b, buf_cb);
    assert_int_equal(msgpack_pack_map(&pk, 1), 0);
    assert_int_equal(msgpack_pack_int(&pk, 1), 0);
    assert_int_equal(msgpack_pack_int(&pk, 1), 0);
    expect_reject(&b, "field name at byte 1 has type int, want str");
    wq_buf_reset(&b);
    assert_int_equal(msgpack_pack_map(&pk, 1), 0);
    pk_bin(&pk, "v", 1, 0);
    assert_int_equal(msgpack_pack_int(&pk, 1), 0);
    expect_reject(&b, "field name at byte 1 has type bin, want str");
    wq_buf_free(&b);
}

static void
test_envelope_bad_version(void **state)
{
    struct mod first = { .extra = "new_in_v2" };
    struct wq_envelope e;

    (void)state;
    std_env(&e);
    e.version = 3;
    reject_env(&e, "field 'v': unsupported envelope version 3 "
        "(this build reads versions 1 to 2)");
    e.version = 0;
    reject_env(&e, "field 'v': unsupported envelope version 0");
    e.version = UINT32_MAX;
    reject_env(&e, "unsupported envelope version 4294967295");
    /* a version-3 envelope with a field new in version 3: "v" comes
     * first, so the reason is the version, not the unknown field */
    e.version = 3;
    reject_mod(&e, &first, "unsupported envelope version 3");
}

static void
pk_big_uint(msgpack_packer *pk)
{
    assert_int_equal(msgpack_pack_uint64(pk, (uint64_t)UINT32_MAX + 1), 0);
}

static void
pk_huge_uint(msgpack_packer *pk)
{
    assert_int_equal(msgpack_pack_uint64(pk, UINT64_MAX), 0);
}

static void
pk_minus_one(msgpack_packer *pk)
{
    assert_int_equal(msgpack_pack_int(pk, -1), 0);
}

static void
pk_minus_big(msgpack_packer *pk)
{
    assert_int_equal(msgpack_pack_int64(pk, INT64_MIN), 0);
}

static void
test_envelope_int_ranges(void **state)
{
    struct wq_envelope e;
    struct mod m = { 0 };

    (void)state;
    std_env(&e);
    e.attempt = 0;
    reject_env(&e, "field 'a': attempt is 0, want 1..4294967295");
    std_env(&e);
    e.max_attempts = 0;
    reject_env(&e, "field 'm': max_attempts is 0, want 1..");

    m.badfn = pk_big_uint;
    m.bad = "a";
    reject_mod(&e, &m, "field 'a': is 4294967296 at byte");
    m.bad = "v";
    reject_mod(&e, &m, "field 'v': is 4294967296 at byte 3, above 4294967295");
    m.badfn = pk_huge_uint;
    m.bad = "c";
    reject_mod(&e, &m, "field 'c': is 18446744073709551615 at byte");
    m.bad = "r";
    reject_mod(&e, &m, "field 'r': is 18446744073709551615");
    m.badfn = pk_minus_one;
    m.bad = "m";
    reject_mod(&e, &m, "field 'm': is negative (-1)");
    m.badfn = pk_minus_big;
    m.bad = "c";
    reject_mod(&e, &m, "field 'c': is negative (-9223372036854775808)");
    std_env(&e);
    e.run_at_ms = -5;                       /* packed as int 64 */
    reject_env(&e, "field 'r': is negative (-5)");
}

static void
pk_id15(msgpack_packer *pk)
{
    pk_bin(pk, test_id, 15, 0);
}
static void
pk_id17(msgpack_packer *pk)
{
    uint8_t id[17] = { 0 };

    memcpy(id, test_id, 16);
    pk_bin(pk, id, 17, 0);
}

static void
test_envelope_bad_id(void **state)
{
    struct mod m = { .bad = "id", .badfn = pk_id15 };
    struct wq_envelope e;

    (void)state;
    std_env(&e);
    reject_mod(&e, &m, "field 'id': id is 15 bytes, want 16");
    m.badfn = pk_id17;
    reject_mod(&e, &m, "field 'id': id is 17 bytes, want 16");
    e.id[6] = (uint8_t)(0x40 | (e.id[6] & 0x0f));
    reject_env(&e, "field 'id': neither a UUIDv7 nor its key's UUIDv5 "
        "(version 4, variant bits 10)");
    std_env(&e);
    e.id[8] &= 0x3f;
    reject_env(&e, "field 'id': neither a UUIDv7 nor its key's UUIDv5 "
        "(version 7, variant bits 00)");
    /* a UUIDv5 that is not the key's own */
    std_env(&e);
    assert_int_equal(wq_uuid_for_key("emails", "order-43", e.id), 0);
    reject_env(&e, "field 'id': neither a UUIDv7 nor its key's UUIDv5 "
        "(version 5, variant bits 10)");
}

/* A task with a client-given key carries the key's own UUIDv5, and it
 * decodes (wq_envelope_init makes it so too). */
static void
test_envelope_key_id_decodes(void **state)
{
    struct wq_buf b = WQ_BUF_INIT;
    struct wq_envelope e, d;
    char err[WQ_ERRLEN] = "";
    uint8_t own[16];

    (void)state;
    std_env(&e);
    assert_int_equal(wq_uuid_for_key("emails", "order-42", e.id), 0);
    assert_int_equal(wq_envelope_encode(&e, &b, err, sizeof err), 0);
    if (wq_envelope_decode(b.data, b.len, &d, err, sizeof err) != 0)
        fail_msg("decode: %s", err);
    assert_memory_equal(d.id, e.id, 16);
    wq_envelope_free(&d);
    assert_int_equal(wq_envelope_init(&d, "emails", "send", "order-42",
        NULL, 0, err, sizeof err), 0);
    assert_int_equal(wq_uuid_for_key("emails", "order-42", own), 0);
    assert_memory_equal(d.id, own, 16);
    wq_envelope_free(&d);
    wq_buf_free(&b);
}

static void
test_envelope_oversize_payload(void **state)
{
    struct wq_envelope e;
    uint8_t *p = calloc(1, WQ_PAYLOAD_MAX + 1);

    (void)state;
    assert_non_null(p);
    std_env(&e);
    e.payload = p;
    e.payload_len = WQ_PAYLOAD_MAX + 1;
    reject_env(&e, "field 'p': payload is 1048577 bytes, limit 1048576");
    free(p);
}

static void
test_envelope_oversize_queue(void **state)
{
    struct wq_envelope e;
    char *q = filled(WQ_QUEUE_MAX + 1, 'q');

    (void)state;
    std_env(&e);
    e.queue = q;
    reject_env(&e, "field 'q': queue name is 129 bytes, limit 128");
    free(q);
}

static void
test_envelope_oversize_type(void **state)
{
    struct wq_envelope e;
    char *t = filled(WQ_TYPE_MAX + 1, 't');

    (void)state;
    std_env(&e);
    e.type = t;
    reject_env(&e, "field 't': type is 129 bytes, limit 128");
    free(t);
}

static void
test_envelope_oversize_key(void **state)
{
    struct wq_envelope e;
    char *k = filled(WQ_KEY_MAX + 1, 'k');

    (void)state;
    std_env(&e);
    e.key = k;
    reject_env(&e, "field 'k': key is 513 bytes, limit 512");
    free(k);
}

static void
test_envelope_oversize_headers(void **state)
{
    struct wq_header h[WQ_HEADERS_MAX + 1];
    char names[WQ_HEADERS_MAX + 1][8];
    char *longname = filled(WQ_HEADER_NAME_MAX + 1, 'n');
    char *longvalue = filled(WQ_HEADER_VALUE_MAX + 1, 'v');
    struct wq_envelope e;

    (void)state;
    for (int i = 0; i <= WQ_HEADERS_MAX; i++) {
        snprintf(names[i], sizeof names[i], "h%d", i);
        h[i].name = names[i];
        h[i].value = "v";
    }
    std_env(&e);
    e.headers = h;
    e.nheaders = WQ_HEADERS_MAX + 1;
    reject_env(&e, "field 'h': 65 headers, limit 64");
    e.nheaders = 3;
    h[2].name = longname;
    reject_env(&e, "field 'h': header 2 name is 257 bytes, limit 256");
    h[2].name = names[2];
    h[1].value = longvalue;
    reject_env(&e, "field 'h': header 1 value is 4097 bytes, limit 4096");
    free(longname);
    free(longvalue);
}

static void
test_envelope_oversize_input(void **state)
{
    size_t n = WQ_ENVELOPE_MAX + 1;
    char *p = calloc(1, n), sub[64];

    (void)state;
    assert_non_null(p);
    snprintf(sub, sizeof sub, "envelope is %zu bytes, limit %u", n,
        WQ_ENVELOPE_MAX);
    expect_reject_len(p, n, WQ_EDECODE, sub);
    free(p);
}

static void
test_envelope_invalid_queue_chars(void **state)
{
    static const struct { const char *q; const char *why; } bad[] = {
        { "ema/ls", "field 'q': queue name has invalid character 0x2f at 3" },
        { "a b", "field 'q': queue name has invalid character 0x20 at 1" },
        { "\xff", "field 'q': queue name has invalid character 0xff at 0" },
        { ".q", "field 'q': queue name starts with '.'" },
        { "", "field 'q': queue name is empty" },
        { "x.dead", "field 'q': queue name ends in '.dead'" },
    };
    struct wq_envelope e;

    (void)state;
    std_env(&e);
    for (size_t i = 0; i < WQ_ARRAY_LEN(bad); i++) {
        e.queue = (char *)bad[i].q;
        reject_env(&e, bad[i].why);
    }
}

static void
pk_key_nul(msgpack_packer *pk)
{
    pk_str(pk, "ab\0c", 4, 0);
}
static void
pk_key_nul_late(msgpack_packer *pk)
{
    pk_str(pk, "abcdefghij\0klmnopq", 18, 0);
}

static void
pk_hval_nul(msgpack_packer *pk)
{
    assert_int_equal(msgpack_pack_map(pk, 1), 0);
    pk_cstr(pk, "x-a", 0);
    pk_str(pk, "1\0002", 3, 0);
}

static void
test_envelope_invalid_utf8_key(void **state)
{
    static const struct { const char *k; const char *why; } bad[] = {
        { "\xff", "at byte 0 (0xff)" },
        { "ab\x80", "at byte 2 (0x80)" },               /* lone continuation */
        { "a\xc3", "at byte 1 (0xc3)" },                /* cut sequence */
        { "a\xc3(", "at byte 1 (0xc3)" },               /* bad continuation */
        { "\xc0\xaf", "at byte 0 (0xc0)" },             /* overlong '/' */
        { "\xe0\x80\xaf", "at byte 0 (0xe0)" },         /* overlong 3 */
        { "\xf0\x80\x80\xaf", "at byte 0 (0xf0)" },     /* overlong 4 */
        { "x\xed\xa0\x80", "at byte 1 (0xed)" },        /* surrogate */
        { "\xf4\x90\x80\x80", "at byte 0 (0xf4)" },     /* > U+10FFFF */
        { "\xf5\x80\x80\x80", "at byte 0 (0xf5)" },
        { "abcdefghijklmnop\xc3", "at byte 16 (0xc3)" }, /* after words */
        { "abcdefgh\xc3\xa9" "abcdefgh\xed\xbf\xbf", "at byte 18 (0xed)" },
    };
    struct mod m = { .bad = "k", .badfn = pk_key_nul };
    struct wq_envelope e;
    char sub[128];

    (void)state;
    std_env(&e);
    for (size_t i = 0; i < WQ_ARRAY_LEN(bad); i++) {
        e.key = (char *)bad[i].k;
        snprintf(sub, sizeof sub, "field 'k': key is not valid UTF-8 %s",
            bad[i].why);
        reject_env(&e, sub);
    }
    std_env(&e);
    reject_mod(&e, &m, "field 'k': key has a NUL byte at 2");
    m.badfn = pk_key_nul_late;
    reject_mod(&e, &m, "field 'k': key has a NUL byte at 10");
    e.key = "";
    reject_env(&e, "field 'k': key is empty");
    std_env(&e);
    e.type = "";
    reject_env(&e, "field 't': type is empty");
    e.type = "a\xff";
    reject_env(&e, "field 't': type is not valid UTF-8 at byte 1");
}

static void
test_envelope_header_rules(void **state)
{
    struct wq_header h[3] = { { "a", "1" }, { "b", "2" }, { "a", "3" } };
    struct mod m = { .bad = "h", .badfn = pk_hval_nul };
    struct wq_envelope e;

    (void)state;
    std_env(&e);
    e.headers = h;
    e.nheaders = 3;
    reject_env(&e, "field 'h': header 2 name repeats header 0");
    h[2].name = "";
    reject_env(&e, "field 'h': header 2 name is empty");
    h[2].name = "c";
    h[1].value = "\xc3";
    reject_env(&e, "field 'h': header 1 value is not valid UTF-8 at byte 0");
    reject_mod(&e, &m, "field 'h': header 0 value has a NUL byte at 1");
}

static void
pk_hdr_int_value(msgpack_packer *pk)
{
    assert_int_equal(msgpack_pack_map(pk, 1), 0);
    pk_cstr(pk, "x-a", 0);
    assert_int_equal(msgpack_pack_int(pk, 7), 0);
}

static void
pk_hdr_bin_name(msgpack_packer *pk)
{
    assert_int_equal(msgpack_pack_map(pk, 2), 0);
    pk_cstr(pk, "x-a", 0);
    pk_cstr(pk, "1", 0);
    pk_bin(pk, "x-b", 3, 0);
    pk_cstr(pk, "2", 0);
}

static void
test_envelope_header_types(void **state)
{
    struct mod m = { .bad = "h", .badfn = pk_hdr_int_value };
    struct wq_envelope e;

    (void)state;
    std_env(&e);
    reject_mod(&e, &m, "field 'h': header 0 value has type int");
    m.badfn = pk_hdr_bin_name;
    reject_mod(&e, &m, "field 'h': header 1 name has type bin");
}

static void
test_envelope_trailing_garbage(void **state)
{
    struct wq_buf b = WQ_BUF_INIT;
    struct wq_envelope e;
    size_t len;
    char sub[64];

    (void)state;
    std_env(&e);
    assert_int_equal(wq_envelope_encode(&e, &b, NULL, 0), 0);
    len = b.len;
    assert_int_equal(wq_buf_append(&b, "\0", 1), 0);
    snprintf(sub, sizeof sub, "1 trailing byte after the envelope map, "
        "at byte %zu", len);
    expect_reject(&b, sub);
    /* a second envelope after the first is trailing bytes too */
    b.len = len;
    assert_int_equal(wq_envelope_encode(&e, &b, NULL, 0), 0);
    snprintf(sub, sizeof sub, "%zu trailing bytes", len);
    expect_reject(&b, sub);
    wq_buf_free(&b);
}

static void
test_envelope_not_a_map(void **state)
{
    static const struct { const char *in; size_t n; const char *why; } bad[] = {
        { "\x91\x01", 2, "the input starts with array (0x91), not a map" },
        { "\x01", 1, "the input starts with int (0x01), not a map" },
        { "\xc0", 1, "the input starts with nil (0xc0), not a map" },
        { "\xa1v", 2, "the input starts with str (0xa1), not a map" },
        { "\xc1", 1, "never-used type 0xc1" },
        { "{\"v\":1}", 7, "not a map" },
        { "", 0, "truncated: empty input" },
    };

    (void)state;
    for (size_t i = 0; i < WQ_ARRAY_LEN(bad); i++)
        expect_reject_len(bad[i].in, bad[i].n, WQ_EDECODE, bad[i].why);
    expect_reject_len(NULL, 0, WQ_EDECODE, "truncated: empty input");
}

static void
test_envelope_too_many_entries(void **state)
{
    struct mod m = { .extra = "x" };
    struct wq_envelope e;

    (void)state;
    std_env(&e);
    e.run_at_ms = 1;
    e.version = 2;
    e.concurrency_key = "customer-7";   /* version 2: "fc" and "fn" */
    e.concurrency_limit = 2;
    /* 13 fields + 1 */
    reject_mod(&e, &m, "envelope map has 14 entries, version 2 has 13 fields");
    expect_reject_len("\xdf\xff\xff\xff\xff", 5, WQ_EDECODE,
        "envelope map has 4294967295 entries");
}

/*
 * Lengths and counts that promise far more than the input holds are
 * caught before anything is allocated (msgpack-c's unpacker would
 * allocate for them first).
 */
static void
test_envelope_huge_declared_lengths(void **state)
{
    (void)state;
    expect_reject_len("\x81\xa1p\xc6\xff\xff\xff\xff", 8, WQ_EDECODE,
        "field 'p': truncated at byte 8: 4294967295 more bytes needed, "
        "0 left");
    expect_reject_len("\x81\xa1h\xdf\xff\xff\xff\xff", 8, WQ_EDECODE,
        "field 'h': 4294967295 headers, limit 64");
    expect_reject_len("\x81\xdb\xff\xff\xff\xff", 6, WQ_EDECODE,
        "truncated at byte 6");
    expect_reject_len("\x81\xa1q\xdb\x7f\xff\xff\xff" "abc", 11, WQ_EDECODE,
        "field 'q': truncated");
}

static void
pk_deep_map(msgpack_packer *pk)
{
    assert_int_equal(msgpack_pack_map(pk, 1), 0);
    pk_cstr(pk, "x-a", 0);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(msgpack_pack_map(pk, 1), 0);
        pk_cstr(pk, "a", 0);
    }
    assert_int_equal(msgpack_pack_nil(pk), 0);
}

static void
pk_deep_array(msgpack_packer *pk)
{
    for (int i = 0; i < 100000; i++)
        raw(pk, "\x91", 1);
    assert_int_equal(msgpack_pack_nil(pk), 0);
}

/*
 * The schema's depth is two (the map of fields, the map of headers), and
 * any container where the schema has none is a wrong type, so nesting is
 * rejected at the first level too deep, without recursion.
 */
static void
test_envelope_nested_too_deep(void **state)
{
    struct mod m = { .bad = "h", .badfn = pk_deep_map };
    struct wq_buf b = WQ_BUF_INIT;
    msgpack_packer pk;
    struct wq_envelope e;

    (void)state;
    std_env(&e);
    reject_mod(&e, &m, "field 'h': header 0 value has type map");
    m.bad = "q";
    m.badfn = pk_deep_array;
    reject_mod(&e, &m, "field 'q': has type array");
    m.bad = "h";
    reject_mod(&e, &m, "field 'h': has type array");
    /* the whole input deeply nested */
    msgpack_packer_init(&pk, &b, buf_cb);
    pk_deep_array(&pk);
    expect_reject(&b, "not a map");
    wq_buf_reset(&b);
    for (int i = 0; i < 100000; i++)
        raw(&pk, "\x81", 1);
    expect_reject(&b, "field name at byte 1 has type map, want str");
    wq_buf_free(&b);
}

static void
test_envelope_decode_args(void **state)
{
    struct wq_buf b = WQ_BUF_INIT;
    struct wq_envelope e, out;
    char err[WQ_ERRLEN], tiny[8];

    (void)state;
    std_env(&e);
    assert_int_equal(wq_envelope_encode(&e, &b, NULL, 0), 0);
    assert_int_equal(wq_envelope_decode(NULL, 5, &out, err, sizeof err),
        WQ_EINVAL);
    assert_int_equal(wq_envelope_decode(b.data, b.len, NULL, err,
        sizeof err), WQ_EINVAL);
    /* no err buffer, or a tiny one, is fine */
    b.data[2] = 'x';                            /* "v" -> "x" */
    assert_int_equal(wq_envelope_decode(b.data, b.len, &out, NULL, 0),
        WQ_EDECODE);
    assert_int_equal(wq_envelope_decode(b.data, b.len, &out, tiny,
        sizeof tiny), WQ_EDECODE);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    wq_buf_free(&b);
}

/* --- the test vectors of docs/wire-format.md ------------------------------ */

/*
 * The document's vectors are read from the document itself, so that it
 * cannot drift from the code: each "<!-- vector NAME -->" marker is
 * followed by a ```json block (the fields, or {"reject": "reason"}) and
 * a ```hex block (the bytes).  For an accepted vector, the fields must
 * encode to exactly those bytes and the bytes decode back to the fields;
 * a rejected one must fail to decode with the reason given.
 */
#define WIRE_DOC WQ_SOURCE_DIR "/docs/wire-format.md"

/* The text of the fenced block of `lang` after `from` (malloc'd), or NULL. */
static char *
fenced_after(const char *from, const char *lang)
{
    char open[32];
    const char *p, *end;
    char *out;

    snprintf(open, sizeof open, "```%s\n", lang);
    if ((p = strstr(from, open)) == NULL)
        return NULL;
    p += strlen(open);
    if ((end = strstr(p, "```")) == NULL)
        return NULL;
    out = malloc((size_t)(end - p) + 1);
    assert_non_null(out);
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return out;
}

/* Hex digits (whitespace between them allowed) into bytes; the count. */
static size_t
unhex(const char *s, uint8_t *out, size_t max)
{
    size_t n = 0;
    int hi = -1;

    for (; *s != '\0'; s++) {
        int v = 0;

        if (*s == ' ' || *s == '\n' || *s == '\t')
            continue;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else
            fail_msg("not a hex digit: '%c'", *s);
        if (hi < 0) {
            hi = v;
            continue;
        }
        assert_true(n < max);
        out[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    assert_int_equal(hi, -1);
    return n;
}

struct vector {
    char *json, *hex;
};

/* Finds vector `name` in the document or fails the test. */
static struct vector
vector_get(const char *doc, const char *name)
{
    char marker[80];
    const char *at;
    struct vector v = { NULL, NULL };

    snprintf(marker, sizeof marker, "<!-- vector %s -->", name);
    if ((at = strstr(doc, marker)) == NULL)
        fail_msg("%s has no %s", WIRE_DOC, marker);
    v.json = fenced_after(at, "json");
    v.hex = fenced_after(at, "hex");
    if (v.json == NULL || v.hex == NULL)
        fail_msg("%s: vector %s lacks its json or hex block", WIRE_DOC, name);
    return v;
}

/* Fills `e` (borrowing from `j`, and payload/headers from the arrays). */
static void
vector_envelope(json_t *j, struct wq_envelope *e, uint8_t *payload,
    size_t pmax, struct wq_header *h, size_t hmax)
{
    json_t *hj = json_object_get(j, "h"), *pair;
    size_t i;

    memset(e, 0, sizeof *e);
    e->version = (uint32_t)json_integer_value(json_object_get(j, "v"));
    assert_int_equal(wq_uuid_parse(json_string_value(json_object_get(j,
        "id")), e->id), 0);
    e->queue = (char *)json_string_value(json_object_get(j, "q"));
    e->type = (char *)json_string_value(json_object_get(j, "t"));
    e->key = (char *)json_string_value(json_object_get(j, "k"));
    assert_non_null(e->queue);
    assert_non_null(e->type);
    assert_non_null(e->key);
    e->payload = payload;
    e->payload_len = unhex(json_string_value(json_object_get(j, "p_hex")),
        payload, pmax);
    e->attempt = (uint32_t)json_integer_value(json_object_get(j, "a"));
    e->max_attempts = (uint32_t)json_integer_value(json_object_get(j, "m"));
    e->created_at_ms = json_integer_value(json_object_get(j, "c"));
    e->run_at_ms = json_integer_value(json_object_get(j, "r"));
    /* version 2, flow control */
    e->concurrency_key = (char *)json_string_value(json_object_get(j, "fc"));
    e->concurrency_limit = (uint32_t)json_integer_value(json_object_get(j,
        "fn"));
    json_array_foreach(hj, i, pair) {
        assert_true(i < hmax);
        h[i].name = (char *)json_string_value(json_array_get(pair, 0));
        h[i].value = (char *)json_string_value(json_array_get(pair, 1));
        e->nheaders = i + 1;
    }
    e->headers = e->nheaders > 0 ? h : NULL;
}

static void
check_vector(const char *doc, const char *name)
{
    struct vector v = vector_get(doc, name);
    uint8_t bytes[4096], payload[1024];
    struct wq_header h[16];
    struct wq_envelope e, d;
    struct wq_buf buf = WQ_BUF_INIT;
    char err[WQ_ERRLEN], *got;
    json_error_t jerr;
    json_t *j = json_loads(v.json, 0, &jerr);
    size_t n = unhex(v.hex, bytes, sizeof bytes);

    if (j == NULL)
        fail_msg("vector %s: bad json: %s", name, jerr.text);
    if (json_object_get(j, "reject") != NULL) {
        assert_int_equal(wq_envelope_decode(bytes, n, &d, err, sizeof err),
            WQ_EDECODE);
        assert_contains(err, json_string_value(json_object_get(j,
            "reject")));
    } else {
        vector_envelope(j, &e, payload, sizeof payload, h, WQ_ARRAY_LEN(h));
        if (wq_envelope_encode(&e, &buf, err, sizeof err) != 0)
            fail_msg("vector %s: %s", name, err);
        got = malloc(2 * buf.len + 1);
        assert_non_null(got);
        for (size_t i = 0; i < buf.len; i++)
            snprintf(got + 2 * i, 3, "%02x", ((uint8_t *)buf.data)[i]);
        /* the encoder's bytes are the document's, byte for byte */
        if (buf.len != n || memcmp(buf.data, bytes, n) != 0)
            fail_msg("vector %s: the encoder writes\n%s\nthe document "
                "says\n%s", name, got, v.hex);
        free(got);
        if (wq_envelope_decode(bytes, n, &d, err, sizeof err) != 0)
            fail_msg("vector %s: %s", name, err);
        assert_true(wq_envelope_equal(&d, &e));
        wq_envelope_free(&d);
        wq_buf_free(&buf);
    }
    json_decref(j);
    free(v.json);
    free(v.hex);
}

static void
test_envelope_wire_format_vectors(void **state)
{
    char *doc = wq_test_read_file(WIRE_DOC);
    struct vector v = { NULL, NULL };
    json_t *j;
    uint8_t id[16], own[16];

    (void)state;
    if (doc[0] == '\0')
        fail_msg("cannot read %s", WIRE_DOC);
    check_vector(doc, "minimal");
    check_vector(doc, "full");
    check_vector(doc, "version-3");
    check_vector(doc, "flow-control");
    check_vector(doc, "flow-control-limit-1");
    check_vector(doc, "version-1-with-fc");
    check_vector(doc, "unknown-field");
    /* the minimal vector's id is its key's UUIDv5, as the text says */
    v = vector_get(doc, "minimal");
    j = json_loads(v.json, 0, NULL);
    assert_non_null(j);
    assert_int_equal(wq_uuid_parse(json_string_value(json_object_get(j,
        "id")), id), 0);
    assert_int_equal(wq_uuid_for_key(json_string_value(json_object_get(j,
        "q")), json_string_value(json_object_get(j, "k")), own), 0);
    assert_memory_equal(id, own, 16);
    json_decref(j);
    free(v.json);
    free(v.hex);
    free(doc);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_envelope_key_id_decodes),
    cmocka_unit_test(test_envelope_roundtrip_basic),
    cmocka_unit_test(test_envelope_roundtrip_empty_payload),
    cmocka_unit_test(test_envelope_roundtrip_binary_payload),
    cmocka_unit_test(test_envelope_roundtrip_max_sizes),
    cmocka_unit_test(test_envelope_roundtrip_many_headers),
    cmocka_unit_test(test_envelope_small_values),
    cmocka_unit_test(test_envelope_wide_encodings),
    cmocka_unit_test(test_envelope_signed_int_forms),
    cmocka_unit_test(test_envelope_msgpack_c_agrees),
    cmocka_unit_test(test_envelope_init_defaults),
    cmocka_unit_test(test_envelope_init_rejects),
    cmocka_unit_test(test_envelope_copy),
    cmocka_unit_test(test_envelope_encode_reuses_buffer),
    cmocka_unit_test(test_envelope_encode_validates),
    cmocka_unit_test(test_envelope_free_idempotent),
    cmocka_unit_test(test_envelope_queue_name_valid),
    cmocka_unit_test(test_envelope_truncated),
    cmocka_unit_test(test_envelope_wrong_type),
    cmocka_unit_test(test_envelope_missing_field),
    cmocka_unit_test(test_envelope_duplicate_field),
    cmocka_unit_test(test_envelope_unknown_field),
    cmocka_unit_test(test_envelope_field_name_not_str),
    cmocka_unit_test(test_envelope_bad_version),
    cmocka_unit_test(test_envelope_int_ranges),
    cmocka_unit_test(test_envelope_bad_id),
    cmocka_unit_test(test_envelope_oversize_payload),
    cmocka_unit_test(test_envelope_oversize_queue),
    cmocka_unit_test(test_envelope_oversize_type),
    cmocka_unit_test(test_envelope_oversize_key),
    cmocka_unit_test(test_envelope_oversize_headers),
    cmocka_unit_test(test_envelope_oversize_input),
    cmocka_unit_test(test_envelope_invalid_queue_chars),
    cmocka_unit_test(test_envelope_invalid_utf8_key),
    cmocka_unit_test(test_envelope_header_rules),
    cmocka_unit_test(test_envelope_header_types),
    cmocka_unit_test(test_envelope_trailing_garbage),
    cmocka_unit_test(test_envelope_not_a_map),
    cmocka_unit_test(test_envelope_too_many_entries),
    cmocka_unit_test(test_envelope_huge_declared_lengths),
    cmocka_unit_test(test_envelope_nested_too_deep),
    cmocka_unit_test(test_envelope_decode_args),
    cmocka_unit_test(test_envelope_wire_format_vectors),
};

WQ_TEST_MAIN("envelope", tests)

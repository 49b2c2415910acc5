/*
 * fuzz_envelope.c - libFuzzer target for wq_envelope_decode().
 *
 * Every input must be either rejected with WQ_EDECODE, a reason and a
 * zeroed envelope, or accepted; the sanitizers catch crashes, reads out
 * of bounds and leaks.  An accepted input must also
 *   - mean the same to msgpack-c's own unpacker (safe to call here, as
 *     our decoder has bounded every length and count): one map, nothing
 *     after it, each value equal to the decoded field;
 *   - survive a round trip: encode, decode again, compare, and encode to
 *     the same bytes once more.
 * Any difference aborts with a line saying what differed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "buf.h"
#include "envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, what) do {                                              \
    if (!(cond)) {                                                          \
        fprintf(stderr, "fuzz_envelope: %s (%s:%d)\n", (what), __FILE__,    \
            __LINE__);                                                      \
        abort();                                                            \
    }                                                                       \
} while (0)

static int
obj_is_str(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);

    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
        memcmp(o->via.str.ptr, s, n) == 0;
}

static int
obj_is_bin(const msgpack_object *o, const void *p, size_t n)
{
    return o->type == MSGPACK_OBJECT_BIN && o->via.bin.size == n &&
        (n == 0 || memcmp(o->via.bin.ptr, p, n) == 0);
}

static int
obj_is_uint(const msgpack_object *o, uint64_t v)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == v;
}

/* msgpack-c must read the accepted bytes as the same envelope. */
static void
check_against_msgpack_c(const uint8_t *data, size_t size,
    const struct wq_envelope *e)
{
    msgpack_unpacked u;
    size_t off = 0;
    int rc;

    msgpack_unpacked_init(&u);
    rc = msgpack_unpack_next(&u, (const char *)data, size, &off);
    CHECK(rc == MSGPACK_UNPACK_SUCCESS, "msgpack-c rejects what we accept");
    CHECK(off == size, "msgpack-c sees trailing bytes");
    CHECK(u.data.type == MSGPACK_OBJECT_MAP, "msgpack-c: not a map");
    for (uint32_t i = 0; i < u.data.via.map.size; i++) {
        const msgpack_object *k = &u.data.via.map.ptr[i].key;
        const msgpack_object *v = &u.data.via.map.ptr[i].val;
        int ok;

        if (obj_is_str(k, "v"))
            ok = obj_is_uint(v, e->version);
        else if (obj_is_str(k, "id"))
            ok = obj_is_bin(v, e->id, 16);
        else if (obj_is_str(k, "q"))
            ok = obj_is_str(v, e->queue);
        else if (obj_is_str(k, "t"))
            ok = obj_is_str(v, e->type);
        else if (obj_is_str(k, "k"))
            ok = obj_is_str(v, e->key);
        else if (obj_is_str(k, "p"))
            ok = obj_is_bin(v, e->payload, e->payload_len);
        else if (obj_is_str(k, "a"))
            ok = obj_is_uint(v, e->attempt);
        else if (obj_is_str(k, "m"))
            ok = obj_is_uint(v, e->max_attempts);
        else if (obj_is_str(k, "c"))
            ok = obj_is_uint(v, (uint64_t)e->created_at_ms);
        else if (obj_is_str(k, "r"))
            ok = obj_is_uint(v, (uint64_t)e->run_at_ms);
        else if (obj_is_str(k, "h")) {
            ok = v->type == MSGPACK_OBJECT_MAP &&
                v->via.map.size == e->nheaders;
            for (uint32_t j = 0; ok && j < v->via.map.size; j++)
                ok = obj_is_str(&v->via.map.ptr[j].key,
                    e->headers[j].name) &&
                    obj_is_str(&v->via.map.ptr[j].val,
                    e->headers[j].value);
        } else
            ok = 0;
        CHECK(ok, "msgpack-c reads a field differently");
    }
    msgpack_unpacked_destroy(&u);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct wq_envelope zero;
    struct wq_buf b1 = WQ_BUF_INIT, b2 = WQ_BUF_INIT;
    struct wq_envelope e, d;
    char err[WQ_ERRLEN] = "";
    int rc;

    rc = wq_envelope_decode(data, size, &e, err, sizeof err);
    if (rc != 0) {
        CHECK(rc == WQ_EDECODE, "decode failed with a code not EDECODE");
        CHECK(err[0] != '\0', "a rejection without a reason");
        CHECK(memcmp(&e, &zero, sizeof e) == 0, "rejected, not zeroed");
        wq_envelope_free(&e);
        return 0;
    }
    check_against_msgpack_c(data, size, &e);

    rc = wq_envelope_encode(&e, &b1, err, sizeof err);
    CHECK(rc == 0, "a decoded envelope does not encode");
    rc = wq_envelope_decode(b1.data, b1.len, &d, err, sizeof err);
    CHECK(rc == 0, "an encoded envelope does not decode");
    CHECK(wq_envelope_equal(&e, &d), "decode(encode(e)) != e");
    rc = wq_envelope_encode(&d, &b2, err, sizeof err);
    CHECK(rc == 0 && b1.len == b2.len &&
        memcmp(b1.data, b2.data, b1.len) == 0, "encoding is not stable");

    wq_envelope_free(&d);
    wq_envelope_free(&e);
    wq_buf_free(&b1);
    wq_buf_free(&b2);
    return 0;
}

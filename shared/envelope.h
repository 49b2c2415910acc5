/*
 * envelope.h - the task envelope: what travels through the broker for
 * every task, as a versioned msgpack map.  This module owns the wire format, its strict and bounded
 * decoder and the rules for valid field values; it leaves transport,
 * storage and the meaning of payload and headers to others.
 *
 * Wire format, version 1
 * ----------------------
 * docs/wire-format.md is the contract for programs that publish
 * envelopes themselves, in any language: this table, the broker
 * topology, the version rules and test vectors that
 * tests/unit/test_envelope.c checks against this encoder.  A change
 * here is a change there, and a new version.
 *
 * An envelope is exactly one msgpack map (fixmap, map 16 or map 32) and
 * nothing after it, at most WQ_ENVELOPE_MAX bytes in all.  Keys are
 * msgpack str; each may appear once, in any order:
 *
 *   key  field           msgpack type     value
 *   "v"  version         int              1 (WQ_ENVELOPE_VERSION)
 *   "id" id              bin, 16 bytes    a UUIDv7 (version 7, variant 10),
 *                                         or the key's UUIDv5 (uuid.h)
 *   "q"  queue           str              see wq_queue_name_valid()
 *   "t"  type            str              handler name, 1..WQ_TYPE_MAX bytes
 *   "k"  key             str              idempotency key, 1..WQ_KEY_MAX bytes
 *   "p"  payload         bin              0..WQ_PAYLOAD_MAX bytes, any bytes
 *   "a"  attempt         int              1..2^32-1; 1 for the first run
 *   "m"  max_attempts    int              1..2^32-1
 *   "c"  created_at_ms   int              0..2^63-1, ms since the epoch
 *   "r"  run_at_ms       int, optional    0..2^63-1; absent or 0 = now
 *   "h"  headers         map, optional    str -> str, see below
 *
 * Version 2 adds optional fields; "v" is 2 when one of them is present
 * (and may be 2 without any).  Flow control (README "Flow control"):
 *
 *   "fc" concurrency_key str, optional    1..WQ_CONCURRENCY_KEY_MAX bytes:
 *                                         at most "fn" tasks of the key
 *                                         run at once, fleet-wide
 *   "fn" concurrency_lim int, optional    1..WQ_CONCURRENCY_LIMIT_MAX,
 *                                         only with "fc"; absent = 1
 *
 * Fields v, id, q, t, k, p, a, m and c are required.  Strings (t, k,
 * header names and values) are valid UTF-8 (RFC 3629: no overlong forms,
 * no surrogates) without NUL bytes, so that they are C strings and
 * PostgreSQL text.  Headers: at most WQ_HEADERS_MAX entries; names
 * 1..WQ_HEADER_NAME_MAX bytes and distinct (byte-wise); values
 * 0..WQ_HEADER_VALUE_MAX bytes.  An int may use any msgpack integer
 * encoding (fixint, uint 8..64, int 8..64) whose value is in range; str,
 * bin and map any of their widths.  Any other type (nil, bool, float,
 * array, ext, str for bin or bin for str) is an error.
 *
 * Unknown keys are rejected, not ignored.  A reader that skipped a field
 * it does not know would run the task without what the writer meant by it
 * (a deadline, a priority), silently.  So a new field means a new
 * version, which old readers reject with a reason naming the version, and
 * the raw bytes go to the dead-letter record, whole.  Writers put "v"
 * first so a reader meets the version before any new field.
 *
 * The encoder writes the keys in the order of the table, with msgpack-c's
 * smallest encodings, and leaves out "r" when it is 0 and "h" when there
 * are no headers.  decode(encode(e)) equals e, and encode(decode(b))
 * equals b for every b the encoder produced.
 *
 * Why decoding is not msgpack-c's unpacker: msgpack_unpack_next()
 * allocates count x sizeof(msgpack_object) for every array or map header
 * before it checks that the elements exist, so a 5-byte input asks for
 * gigabytes (under ASan, an abort), and the C API has no limits.  The
 * envelope is a fixed schema of depth two, so decode reads it directly
 * in one bounded pass that never recurses and allocates once.  The fuzz
 * target checks every accepted input against msgpack-c's unpacker.
 *
 * All functions are reentrant and never block; distinct envelopes may be
 * used from different threads at once.
 */
#ifndef WQ_ENVELOPE_H
#define WQ_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "wq.h"

#define WQ_ENVELOPE_VERSION     1   /* written when no v2 field is set */
#define WQ_ENVELOPE_VERSION_MAX 2   /* the newest version this build reads */
/* version 2, flow control */
#define WQ_CONCURRENCY_KEY_MAX   256
#define WQ_CONCURRENCY_LIMIT_MAX 100000
#define WQ_HEADERS_MAX          64
#define WQ_HEADER_NAME_MAX      256
#define WQ_HEADER_VALUE_MAX     4096
#define WQ_MAX_ATTEMPTS_DEFAULT 25
/* Largest encoded envelope: the payload plus room for every other field
 * at its limit (headers alone: 64 x (5 + 256 + 5 + 4096) bytes). */
#define WQ_ENVELOPE_MAX         (WQ_PAYLOAD_MAX + (288u << 10))

struct wq_header {
    char *name;
    char *value;
};

struct wq_envelope {
    uint32_t version;           /* 1 or 2; 0 or 1: as needed (encode) */
    uint8_t id[16];             /* UUIDv7 */
    char *queue;                /* NUL-terminated */
    char *type;
    char *key;
    uint8_t *payload;           /* bytes, may contain NULs */
    size_t payload_len;
    uint32_t attempt;           /* 1 for the first run */
    uint32_t max_attempts;
    int64_t created_at_ms;      /* epoch ms */
    int64_t run_at_ms;          /* 0 = now; for delayed tasks */
    struct wq_header *headers;
    size_t nheaders;
    /* version 2, flow control (flow_control.h in the worker) */
    char *concurrency_key;      /* NULL: none */
    uint32_t concurrency_limit; /* with concurrency_key: 1.. (0 taken as
                                   1); ignored without it */
    /*
     * The one allocation holding the strings, payload and headers above
     * when decode, init or copy filled the envelope; wq_envelope_free()
     * releases it.  NULL when the caller set the fields to memory of its
     * own (to encode without copying); such fields stay the caller's.
     */
    void *mem;
};

/*
 * wq_envelope_init fills `env` for a new task: version 1, a fresh UUIDv7
 * id (the key's own id, wq_uuid_for_key, when `key` is given), copies of `queue`, `type`, `key` and the `len` bytes at `payload`,
 * attempt 1, max_attempts WQ_MAX_ATTEMPTS_DEFAULT, created_at_ms now,
 * run_at_ms 0, no headers.  `key` NULL means the id in text form.
 * `payload` may be NULL when `len` is 0.  `env` is overwritten, not freed.
 *
 * Returns 0, and `env` then owns its memory (wq_envelope_free); or a
 * negative code with `env` zeroed and err filled: WQ_EINVAL for a NULL or
 * invalid argument (the queue name, an empty type), WQ_ETOOBIG for a value
 * over its limit, WQ_EIO if no random bytes could be had, WQ_ENOMEM.
 */
int wq_envelope_init(struct wq_envelope *env, const char *queue,
    const char *type, const char *key, const void *payload, size_t len,
    char *err, size_t errlen);

/*
 * wq_envelope_copy makes `dst` a deep copy of the valid envelope `src`
 * (one allocation; version set to WQ_ENVELOPE_VERSION).  `dst` is
 * overwritten, not freed, and must not be `src`.  Use it to own an
 * envelope built from borrowed fields, e.g. after setting headers.
 * Returns 0, or as wq_envelope_validate() or WQ_ENOMEM, with `dst` zeroed.
 */
int wq_envelope_copy(struct wq_envelope *dst, const struct wq_envelope *src,
    char *err, size_t errlen);

/*
 * wq_envelope_validate checks that `env` obeys every rule of the wire
 * format, so that it encodes and decodes back.  `version` 0 is taken as
 * WQ_ENVELOPE_VERSION.  Returns 0; WQ_ETOOBIG if a size limit is exceeded
 * (payload, type, key, header count, name or value); WQ_EINVAL for any
 * other violation; err says which field and why.  Does not modify `env`.
 */
int wq_envelope_validate(const struct wq_envelope *env, char *err,
    size_t errlen);

/*
 * wq_envelope_version_needed returns the version `env` is written as: 2
 * when a field of version 2 is set, else 1, so that an envelope without
 * them stays byte for byte what version 1 wrote.  Pure.
 */
int wq_envelope_version_needed(const struct wq_envelope *env);

/*
 * wq_envelope_encode validates `env` and appends its msgpack encoding to
 * `buf`.  The envelope is not modified and its fields may be borrowed.
 * To encode many envelopes without allocating, reuse one buffer:
 * wq_buf_reset(&buf) before each call; it grows at most to the largest
 * envelope seen.  Returns 0; WQ_EINVAL or WQ_ETOOBIG as
 * wq_envelope_validate(); WQ_ENOMEM if the buffer cannot grow.  On
 * failure `buf` holds what it held before the call.
 */
int wq_envelope_encode(const struct wq_envelope *env, struct wq_buf *buf,
    char *err, size_t errlen);

/*
 * wq_envelope_decode reads one envelope from the `len` bytes at `data`
 * with every rule above, in one bounded pass; it never reads outside
 * data[0..len), never recurses, and allocates once, only on success.
 * `out` is overwritten, not freed.
 *
 * Returns 0, and `out` then owns its memory (release with
 * wq_envelope_free); strings are NUL-terminated and the payload is
 * followed by a NUL byte not counted in payload_len.  On failure `out` is
 * zeroed and: WQ_EDECODE for any input that is not a valid envelope
 * (err names the field and the reason, e.g. "field 'q': queue name has
 * invalid character 0x2f at 3"), WQ_EINVAL if `data` is NULL with `len`
 * > 0 or `out` is NULL, WQ_ENOMEM.
 */
int wq_envelope_decode(const void *data, size_t len, struct wq_envelope *out,
    char *err, size_t errlen);

/*
 * wq_envelope_free releases the memory `env` owns (see `mem`) and zeroes
 * it.  Safe on a zeroed envelope, on an envelope with borrowed fields
 * (which it does not free) and twice in a row; `env` may be NULL.
 */
void wq_envelope_free(struct wq_envelope *env);

/*
 * wq_envelope_equal returns 1 if `a` and `b` hold the same values (all
 * fields except `mem`; headers in the same order), else 0.  A predicate,
 * not an error code.  NULL strings equal only NULL strings.
 */
int wq_envelope_equal(const struct wq_envelope *a,
    const struct wq_envelope *b);

/*
 * wq_queue_name_valid checks a queue name: 1..WQ_QUEUE_MAX bytes of
 * [A-Za-z0-9_.-], not starting with '.', and not ending in ".dead" (the
 * suffix of dead-letter queues: "workq.Q.dead" must not be the queue of
 * another name) nor in ".priority-high" or ".priority-low" (the suffixes
 * of priority bands, priority.h).  Returns 0 if valid, WQ_ETOOBIG if too long, WQ_EINVAL
 * otherwise (also for NULL), with err saying why ("queue name has invalid
 * character 0x2f at 3").  Pure and thread-safe; for the CLI and HTTP API.
 */
int wq_queue_name_valid(const char *q, char *err, size_t errlen);

#endif

/*
 * uuid.h - UUID version 7 (RFC 9562): the ids of workq tasks.
 *
 * A v7 UUID is 16 bytes, big-endian: a 48-bit Unix timestamp in
 * milliseconds, the version nibble 7, a 12-bit counter (rand_a), the
 * variant bits 10 and 62 random bits (rand_b).  Ids made by one process
 * sort strictly ascending, byte-wise and as text, because rand_a is used
 * as the counter of RFC 9562 section 6.2 method 1: it starts at a random
 * value below 2048 in each new millisecond and goes up by one per id
 * within the same millisecond; when the clock stands still or goes back,
 * the previous timestamp is kept, and when the counter is spent the
 * timestamp moves one millisecond ahead of the clock.  The randomness
 * comes from getrandom(2), read in blocks and thrown away in a forked
 * child, so parent and child never share random bits.
 *
 * This module owns the per-process generator state (behind a mutex); it
 * leaves the storage and meaning of ids to its callers.
 */
#ifndef WQ_UUID_H
#define WQ_UUID_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

#include "wq.h"

/* Bytes of a UUID, and of its text form including the NUL. */
#define WQ_UUID_LEN     16
#define WQ_UUID_STRLEN  37

/*
 * wq_uuid_v7 writes a new version 7 UUID, greater than every id this
 * process made before, into `out`.  Returns 0, or WQ_EIO if getrandom(2)
 * fails (a kernel without it; it never fails on Linux >= 3.17 once the
 * entropy pool is ready, and blocks only before that, early at boot).
 * Thread-safe; fork-safe.
 */
int wq_uuid_v7(uint8_t out[16]) WQ_MUSTCHECK;

/*
 * A sequence of v7 ids whose rand_b counts up by one from a random start
 * (RFC 9562 section 6.2 allows the random part to be incremented): ids
 * made by one sequence, one after the other, form a range that their
 * first and last id describe whole - every id between them, byte-wise,
 * whose rand_b lies between theirs (wq_uuid_rand_b).  An id of any other
 * origin falls in such a range only if its 62 random bits land in the
 * range's width, about 2^-48 for a range of 10,000.  Receipts record a
 * batch of such ids as one range (store_tasks.c).  The start has 61
 * random bits, so a sequence never wraps; a sequence belongs to one
 * process (a forked child starts its own).  Zero-initialise it.
 */
struct wq_uuid_seq {
    uint64_t next;
    int seeded;
    unsigned forks;                 /* uuid.c's count when seeded */
};

/*
 * wq_uuid_seq_stamp gives `id`, just made by wq_uuid_v7, the next rand_b
 * of `seq` (its first id seeds it).  The order of ids stays that of
 * wq_uuid_v7, which the bytes before rand_b decide.  Not thread-safe for
 * one `seq`.
 */
void wq_uuid_seq_stamp(struct wq_uuid_seq *seq, uint8_t id[16]);

/* The 62 bits of rand_b of a v7 id (the variant bits cleared). */
static inline uint64_t
wq_uuid_rand_b(const uint8_t in[16])
{
    uint64_t b;

    memcpy(&b, in + 8, sizeof b);
    return be64toh(b) & ((UINT64_C(1) << 62) - 1);
}

/*
 * wq_uuid_for_key writes the version 5 UUID (RFC 9562 section 5.5: SHA-1
 * of a namespace and a name) of the task with idempotency key `key` on
 * queue `queue` into `out`: the name is "QUEUE:KEY" (a queue name holds
 * no ':'), the namespace WQ_UUID_KEY_NAMESPACE.  The same (queue, key)
 * always gives the same id, so every submit of a key - first, retried
 * or duplicate, immediate or delayed, from any producer - answers with
 * the id of the one task that runs for it.  Returns 0, or WQ_EINVAL when
 * queue or key is NULL.  Pure and thread-safe.
 */
int wq_uuid_for_key(const char *queue, const char *key, uint8_t out[16]);

/* wq_uuid_for_key for counted strings (they need no NUL); never fails. */
void wq_uuid_for_key_n(const char *queue, size_t qlen, const char *key,
    size_t klen, uint8_t out[16]);

/* The namespace of wq_uuid_for_key, fixed for ever (ids are stored). */
#define WQ_UUID_KEY_NAMESPACE "5c0b8f1e-6a2d-4f3b-9e7c-1d2a3b4c5d6e"

/*
 * wq_uuid_format writes the canonical lowercase text form
 * "0190a5f8-7c1e-7a3b-9c4d-5e6f708192a3" and its NUL into `out`.  Never
 * fails; pure and thread-safe.
 */
void wq_uuid_format(const uint8_t in[16], char out[37]);

/*
 * wq_uuid_parse reads the canonical text form: exactly 36 characters,
 * hyphens at 8, 13, 18 and 23, hex digits (either case) everywhere else,
 * nothing before or after; no braces, no "urn:uuid:" prefix.  It does not
 * check the version.  Returns 0 and fills `out`, or WQ_EINVAL and leaves
 * `out` untouched.  `s` may be NULL (WQ_EINVAL).  Pure and thread-safe.
 */
int wq_uuid_parse(const char *s, uint8_t out[16]);

/*
 * wq_uuid_v7_time_ms returns the timestamp of a version 7 UUID in
 * milliseconds since the Unix epoch (0 .. 2^48-1), or WQ_EINVAL if `in`
 * does not carry version 7 and variant 10.  Pure and thread-safe.
 */
int64_t wq_uuid_v7_time_ms(const uint8_t in[16]);

#endif

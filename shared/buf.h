/*
 * buf.h - a growable byte buffer, the place encoders append to.
 *
 * A struct wq_buf is a value (STYLE.md habit 2): `data` holds `len` bytes
 * of content inside `cap` bytes of allocation.  The buffer owns `data`.
 * It exists so that hot paths (the producer encoding 100k envelopes a
 * second) reuse one allocation: wq_buf_reset() empties it without freeing,
 * and after a few calls the buffer has grown to the working size and no
 * call allocates again.  Growth doubles, so appends are amortised O(1).
 *
 * Allocation failures return WQ_ENOMEM rather than aborting, so the public
 * client API can use the buffer too (habit 7).  A buffer is not
 * thread-safe: one thread uses it at a time.
 */
#ifndef WQ_BUF_H
#define WQ_BUF_H

#include <stddef.h>

#include "wq.h"

struct wq_buf {
    char *data;     /* NULL until the first append or reserve */
    size_t len;     /* bytes of content */
    size_t cap;     /* bytes allocated at data */
};

/* An empty buffer; no allocation until something is appended. */
#define WQ_BUF_INIT { NULL, 0, 0 }

/*
 * wq_buf_reserve makes room for at least `n` more bytes after `len`, so
 * that the next appends of up to `n` bytes cannot fail.  Returns 0, or
 * WQ_ENOMEM (the buffer is then unchanged).  Never blocks.
 */
int wq_buf_reserve(struct wq_buf *b, size_t n) WQ_MUSTCHECK;

/*
 * wq_buf_append copies `n` bytes from `p` to the end of the buffer.
 * Returns 0, or WQ_ENOMEM (the buffer is then unchanged).  `p` may be
 * NULL when `n` is 0.
 */
int wq_buf_append(struct wq_buf *b, const void *p, size_t n) WQ_MUSTCHECK;

/* wq_buf_reset empties the buffer and keeps its allocation for reuse. */
void wq_buf_reset(struct wq_buf *b);

/*
 * wq_buf_free releases the allocation and leaves an empty buffer, equal
 * to WQ_BUF_INIT.  Safe on an empty or already freed buffer.
 */
void wq_buf_free(struct wq_buf *b);

#endif

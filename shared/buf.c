/*
 * buf.c - the growable byte buffer of buf.h.  It owns nothing but the one
 * allocation at `data`; what the bytes mean is the caller's business.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* Smallest allocation: enough for a typical envelope without a regrow. */
#define BUF_MIN_CAP 256

int
wq_buf_reserve(struct wq_buf *b, size_t n)
{
    size_t need, cap;
    char *p;

    if (n > SIZE_MAX - b->len)
        return WQ_ENOMEM;
    need = b->len + n;
    if (need <= b->cap)
        return 0;
    cap = b->cap > BUF_MIN_CAP ? b->cap : BUF_MIN_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if ((p = realloc(b->data, cap)) == NULL)
        return WQ_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int
wq_buf_append(struct wq_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (b->cap - b->len < n && wq_buf_reserve(b, n) != 0)
        return WQ_ENOMEM;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void
wq_buf_reset(struct wq_buf *b)
{
    b->len = 0;
}

void
wq_buf_free(struct wq_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

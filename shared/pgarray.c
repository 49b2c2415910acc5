/*
 * pgarray.c - binary PostgreSQL arrays (see pgarray.h).
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "pgarray.h"

static void
put(struct wq_buf *b, const void *p, size_t n)
{
    if (wq_buf_append(b, p, n) != 0)
        abort();    /* out of memory: the daemons' policy (alloc.h) */
}

static void
put32(struct wq_buf *b, uint32_t v)
{
    v = htobe32(v);
    put(b, &v, 4);
}

static void
put64(struct wq_buf *b, uint64_t v)
{
    v = htobe64(v);
    put(b, &v, 8);
}

void
wq_pgarray_begin(struct wq_buf *b, uint32_t elem, size_t n)
{
    wq_buf_reset(b);
    put32(b, 1);                /* ndim */
    put32(b, 0);                /* no NULLs */
    put32(b, elem);
    put32(b, (uint32_t)n);      /* dimension */
    put32(b, 1);                /* lower bound */
}

void
wq_pgarray_bytes(struct wq_buf *b, const void *p, size_t n)
{
    put32(b, (uint32_t)n);
    put(b, p, n);
}

void
wq_pgarray_elem(struct wq_buf *b, size_t n)
{
    put32(b, (uint32_t)n);
}

void
wq_pgarray_str(struct wq_buf *b, const char *s)
{
    wq_pgarray_bytes(b, s, strlen(s));
}

void
wq_pgarray_i32(struct wq_buf *b, int32_t v)
{
    put32(b, 4);
    put32(b, (uint32_t)v);
}

void
wq_pgarray_i64(struct wq_buf *b, int64_t v)
{
    put32(b, 8);
    put64(b, (uint64_t)v);
}

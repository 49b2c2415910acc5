/*
 * pgarray.h - PostgreSQL one-dimensional arrays in binary form, for
 * batch statements that unnest() their parameters into rows.
 *
 * The format is array_send's: ndim, has-null flag, element type OID,
 * dimension and lower bound, then per element a 4-byte length and the
 * element's binary form (uuid as its 16 bytes, text and bytea as their
 * bytes, int4/int8 big-endian).  Nothing is escaped, so keys and payloads
 * of any bytes travel as they are.  Pass the buffer with format 1
 * (binary) and the array type's OID.
 *
 * Owns nothing: the bytes go into the caller's struct wq_buf.  Running
 * out of memory aborts, as xmalloc does (alloc.h).
 */
#ifndef WQ_PGARRAY_H
#define WQ_PGARRAY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Type OIDs (pg_type.dat; stable across versions). */
#define WQ_OID_BOOL    16
#define WQ_OID_BYTEA   17
#define WQ_OID_INT8    20
#define WQ_OID_INT4    23
#define WQ_OID_TEXT    25
#define WQ_OID_UUID    2950
#define WQ_OID_BOOL_A  1000
#define WQ_OID_BYTEA_A 1001
#define WQ_OID_INT4_A  1007
#define WQ_OID_TEXT_A  1009
#define WQ_OID_INT8_A  1016
#define WQ_OID_UUID_A  2951

/* Empties b and starts an array of n elements of type `elem` (an OID). */
void wq_pgarray_begin(struct wq_buf *b, uint32_t elem, size_t n);

/* Appends one element: n bytes at p (uuid, bytea, text). */
void wq_pgarray_bytes(struct wq_buf *b, const void *p, size_t n);

/* Appends the length of an element of n bytes, which the caller then
 * appends itself (a large element built in place, not copied twice). */
void wq_pgarray_elem(struct wq_buf *b, size_t n);

/* Appends one text element, s without its NUL. */
void wq_pgarray_str(struct wq_buf *b, const char *s);

/* Appends one int4 or int8 element. */
void wq_pgarray_i32(struct wq_buf *b, int32_t v);
void wq_pgarray_i64(struct wq_buf *b, int64_t v);

#endif

/*
 * textout.h - task data shown to people and carried in JSON.
 *
 * Task types, keys, errors, results and payloads come from submitters and
 * handlers, so they may hold anything: a newline that forges a line of an
 * operator's screen, an ESC sequence that recolours or retitles the
 * terminal, bytes that are not UTF-8.  Every human (non-JSON) output of
 * task data goes through wq_text_escape, which writes such characters as
 * visible escapes; JSON output carries bytes with wq_text_json_set_bytes,
 * one encoding for the CLI and the HTTP API:
 *
 *   "NAME": "text"          the bytes are valid UTF-8 (JSON escapes the
 *                           control characters), or
 *   "NAME_base64": "AAEC"   they are not: standard base64 with padding.
 *
 * The functions keep no state and may run on any thread.
 */
#ifndef WQ_TEXTOUT_H
#define WQ_TEXTOUT_H

#include <stddef.h>

#include <jansson.h>

#include "buf.h"
#include "wq.h"

/*
 * wq_text_escape appends p[0..n) to b with every character that could
 * move the cursor, start a terminal sequence or fool the eye written as a
 * visible escape:
 *
 *   \n \r \t        newline, carriage return, tab
 *   \e              ESC (0x1b)
 *   \xNN            any other C0 control, DEL (0x7f), NUL, and every
 *                   byte that is not part of valid UTF-8
 *   \uNNNN          a C1 control (U+0080..U+009F), a line or paragraph
 *                   separator (U+2028, U+2029), a bidirectional
 *                   control (U+200E, U+200F, U+202A..U+202E,
 *                   U+2066..U+2069) or U+FEFF
 *
 * Everything else, printable UTF-8 and the backslash included, is copied
 * as it is (the escape is for safety, not a reversible encoding: --json
 * gives the exact bytes).  `max` (0: no limit) bounds the bytes appended;
 * an escape or a character that would not fit is not started.  Returns
 * the number of input bytes consumed (n when all fit), or WQ_ENOMEM
 * (negative; b may then hold a part).
 */
long wq_text_escape(struct wq_buf *b, const void *p, size_t n, size_t max)
    WQ_MUSTCHECK;

/*
 * wq_text_escape_str returns a malloc'd, NUL-terminated escaped copy of
 * the string s (NULL gives NULL), cut after `max` bytes (0: whole) with
 * "..." appended when cut.  Returns NULL also when memory runs out.
 */
char *wq_text_escape_str(const char *s, size_t max);

/* 1 when p[0..n) is valid UTF-8 (no overlongs, no surrogates, nothing
 * above U+10FFFF), else 0. */
int wq_text_is_utf8(const void *p, size_t n);

/*
 * wq_text_preview appends a one-line view of the bytes p[0..n) for
 * people: as escaped text (wq_text_escape) when they are UTF-8 without
 * NUL, else "hex: " and the first bytes in hex; at most about `max`
 * bytes of output (max >= 16).  When not everything fit, or p holds only
 * the first n of `total` bytes (total > n; 0 means n), it is followed by
 * " ... (TOTAL bytes, truncated; --json for all)", or with WQ_TEXT_SHORT
 * in flags by "..." alone (for table cells).  Returns 0 or WQ_ENOMEM.
 */
#define WQ_TEXT_SHORT 1
int wq_text_preview(struct wq_buf *b, const void *p, size_t n, size_t total,
    size_t max, int flags) WQ_MUSTCHECK;

/*
 * wq_text_json_set_bytes sets the bytes p[0..n) on object o under `name`
 * as a string when they are UTF-8, else under "NAME_base64" (see above).
 * Returns 0, or WQ_ENOMEM (o unchanged).
 */
int wq_text_json_set_bytes(json_t *o, const char *name, const void *p,
    size_t n);

#endif

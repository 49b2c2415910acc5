/*
 * textout.c - escaping task data for terminals, previews, and the one
 * JSON encoding of bytes (textout.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textout.h"

/*
 * The valid UTF-8 character at p[0..n): its length (1 to 4) with *cp
 * set, or 0 when p does not start one (a stray continuation byte, an
 * overlong form, a surrogate, above U+10FFFF, or cut short).
 */
static size_t
utf8_char(const unsigned char *p, size_t n, uint32_t *cp)
{
    uint32_t c = p[0], min;
    size_t len;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        c &= 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        c &= 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        c &= 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

int
wq_text_is_utf8(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint32_t cp;
    size_t len;

    for (size_t i = 0; i < n; i += len)
        if ((len = utf8_char(s + i, n - i, &cp)) == 0)
            return 0;
    return 1;
}

/* Code points written as \uNNNN although they are valid UTF-8. */
static int
hidden(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029
        || cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e)
        || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

long
wq_text_escape(struct wq_buf *b, const void *p, size_t n, size_t max)
{
    const unsigned char *s = p;
    size_t i = 0, used = 0;

    while (i < n) {
        char esc[16];
        const char *out = esc;
        size_t len, olen;
        uint32_t cp;

        if ((len = utf8_char(s + i, n - i, &cp)) == 0) {
            len = 1;
            olen = (size_t)snprintf(esc, sizeof esc, "\\x%02x", s[i]);
        } else if (cp == '\n' || cp == '\r' || cp == '\t' || cp == 0x1b) {
            esc[0] = '\\';
            esc[1] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : cp == '\t' ? 't'
                : 'e';
            olen = 2;
        } else if (cp < 0x20 || cp == 0x7f) {
            olen = (size_t)snprintf(esc, sizeof esc, "\\x%02x", (unsigned)cp);
        } else if (hidden(cp)) {
            olen = (size_t)snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
        } else {
            out = (const char *)s + i;
            olen = len;
        }
        if (max > 0 && used + olen > max)
            break;
        if (wq_buf_append(b, out, olen) != 0)
            return WQ_ENOMEM;
        used += olen;
        i += len;
    }
    return (long)i;
}

char *
wq_text_escape_str(const char *s, size_t max)
{
    struct wq_buf b = WQ_BUF_INIT;
    size_t n;
    long used;

    if (s == NULL)
        return NULL;
    n = strlen(s);
    if ((used = wq_text_escape(&b, s, n, max)) < 0
        || ((size_t)used < n && wq_buf_append(&b, "...", 3) != 0)
        || wq_buf_append(&b, "", 1) != 0) {
        wq_buf_free(&b);
        return NULL;
    }
    return b.data;
}

int
wq_text_preview(struct wq_buf *b, const void *p, size_t n, size_t total,
    size_t max, int flags)
{
    const unsigned char *s = p;
    size_t shown;
    char note[96];

    if (max < 16)
        max = 16;
    if (total < n)
        total = n;
    if (total > n) {
        /* a cut copy may end inside a character: leave out its tail */
        size_t cut = n;

        while (cut > 0 && n - cut < 3 && (s[cut - 1] & 0xc0) == 0x80)
            cut--;
        if (cut > 0 && s[cut - 1] >= 0xc0)
            cut--;
        if (wq_text_is_utf8(p, cut))
            n = cut;
    }
    if (memchr(p, '\0', n) == NULL && wq_text_is_utf8(p, n)) {
        long used = wq_text_escape(b, p, n, max);

        if (used < 0)
            return WQ_ENOMEM;
        shown = (size_t)used;
    } else {
        if (wq_buf_append(b, "hex:", 4) != 0)
            return WQ_ENOMEM;
        for (shown = 0; shown < n && (shown + 1) * 3 + 4 <= max; shown++) {
            char hx[4];

            snprintf(hx, sizeof hx, " %02x", s[shown]);
            if (wq_buf_append(b, hx, 3) != 0)
                return WQ_ENOMEM;
        }
    }
    if (shown < total) {
        if (flags & WQ_TEXT_SHORT)
            snprintf(note, sizeof note, "...");
        else
            snprintf(note, sizeof note, " ... (%zu bytes, truncated; --json "
                "for all)", total);
        if (wq_buf_append(b, note, strlen(note)) != 0)
            return WQ_ENOMEM;
    }
    return 0;
}

int
wq_text_json_set_bytes(json_t *o, const char *name, const void *p, size_t n)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = p;
    char key[128], *out;
    size_t k = 0;
    json_t *v;

    if (wq_text_is_utf8(p, n)) {
        if ((v = json_stringn((const char *)p, n)) == NULL
            || json_object_set_new(o, name, v) != 0)
            return WQ_ENOMEM;
        return 0;
    }
    if (n > (SIZE_MAX - 1) / 4 * 3 - 2
        || (out = malloc((n + 2) / 3 * 4 + 1)) == NULL)
        return WQ_ENOMEM;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)s[i] << 16
            | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0)
            | (i + 2 < n ? s[i + 2] : 0);

        out[k++] = b64[x >> 18 & 63];
        out[k++] = b64[x >> 12 & 63];
        out[k++] = i + 1 < n ? b64[x >> 6 & 63] : '=';
        out[k++] = i + 2 < n ? b64[x & 63] : '=';
    }
    out[k] = '\0';
    snprintf(key, sizeof key, "%s_base64", name);
    v = json_string(out);
    free(out);
    if (v == NULL || json_object_set_new(o, key, v) != 0)
        return WQ_ENOMEM;
    return 0;
}

/*
 * wq.c - the error-code table and the error-buffer helper of wq.h.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"
#include "wq.h"

const char *
wq_strerror(int code)
{
    switch (code) {
    case WQ_OK:       return "success";
    case WQ_EINVAL:   return "invalid argument";
    case WQ_ENOMEM:   return "out of memory";
    case WQ_EIO:      return "I/O error";
    case WQ_ECONFIG:  return "configuration error";
    case WQ_EBROKER:  return "broker error";
    case WQ_ESTORE:   return "store error";
    case WQ_ETIMEOUT: return "timed out";
    case WQ_ETOOBIG:  return "too big";
    case WQ_ENOENT:   return "not found";
    case WQ_EDECODE:  return "malformed envelope";
    case WQ_EAGAIN:   return "try again";
    case WQ_ENACK:    return "rejected by broker";
    case WQ_ECLOSED:  return "closed";
    default:          return "unknown error";
    }
}

int
wq_seterr(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        /* an error may quote a connection string: no password in it */
        wq_redact_inplace(err, errlen);
    }
    return code;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if none. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
    size_t len;
    uint32_t cp;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) { len = 2; cp = p[0] & 0x1f; }
    else if ((p[0] & 0xf0) == 0xe0) { len = 3; cp = p[0] & 0x0f; }
    else if (p[0] >= 0xf0 && p[0] <= 0xf4) { len = 4; cp = p[0] & 0x07; }
    else return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

char *
wq_utf8_sanitize(const char *s)
{
    size_t n = strlen(s), i = 0, k;
    char *out = malloc(n + 1);

    if (out == NULL)
        return NULL;
    while (i < n) {
        if ((k = utf8_seq((const unsigned char *)s + i, n - i)) == 0) {
            out[i++] = '?';
            continue;
        }
        memcpy(out + i, s + i, k);
        i += k;
    }
    out[n] = '\0';
    return out;
}

void
wq_wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

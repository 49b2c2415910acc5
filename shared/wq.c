/*
 * wq.c - the error-code table and the error-buffer helper of wq.h.
 */
#include <stdarg.h>
#include <stdio.h>

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
    }
    return code;
}

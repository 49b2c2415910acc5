/*
 * sign.h - the HMAC-SHA256 signature that workq puts on the requests it
 * sends to other services: the http handler kind's POSTs
 * (worker/handler_http.c) and completion hooks (scheduler/hooks.c).
 *
 * The signed message is TIMESTAMP "." BODY, where TIMESTAMP is the
 * request's X-Workq-Timestamp (Unix seconds, decimal); the header
 * X-Workq-Signature carries "v1=" followed by the lowercase hex digest.
 * A receiver recomputes it with the shared secret, compares in constant
 * time and refuses old timestamps (replays).  Pure; thread-safe.
 *
 * Both senders build their header lists for libcurl here too.
 */
#ifndef WQ_SIGN_H
#define WQ_SIGN_H

#include <stddef.h>

#include "wq.h"

struct curl_slist;

/*
 * wq_sign_hmac_sha256 writes the hex HMAC-SHA256 (64 characters and a
 * NUL) of TIMESTAMP "." BODY under `secret` into out.  `body` may be
 * NULL when len is 0.  Aborts on an allocation or OpenSSL failure (the
 * daemons' convention, STYLE.md habit 7).
 */
void wq_sign_hmac_sha256(const char *secret, const char *timestamp,
    const void *body, size_t len, char out[65]);

/*
 * wq_header_add appends one header line, formatted from fmt (cut at
 * 2 KiB), to libcurl's list l (NULL starts a list) and returns the list.
 * Aborts when out of memory.
 */
struct curl_slist *wq_header_add(struct curl_slist *l, const char *fmt, ...)
    WQ_PRINTFLIKE(2, 3);

/*
 * wq_sign_headers appends X-Workq-Timestamp (now) and X-Workq-Signature
 * for `body` under `secret` to l; nothing when secret is NULL or empty.
 */
struct curl_slist *wq_sign_headers(struct curl_slist *l, const char *secret,
    const void *body, size_t len);

#endif

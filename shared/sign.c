/*
 * sign.c - the HMAC-SHA256 signature of outgoing requests (see sign.h),
 * moved here from worker/handler_http.c so that the scheduler's
 * completion hooks sign the same way.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "alloc.h"
#include "sign.h"

void
wq_sign_hmac_sha256(const char *secret, const char *timestamp,
    const void *body, size_t len, char out[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t tn = strlen(timestamp);
    unsigned char *msg = xmalloc(tn + 1 + len + 1);

    /* the signed message: TIMESTAMP "." BODY */
    memcpy(msg, timestamp, tn);
    msg[tn] = '.';
    if (len > 0)
        memcpy(msg + tn + 1, body, len);
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, tn + 1 + len,
        mac, &maclen) == NULL || maclen != 32)
        abort();
    free(msg);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

struct curl_slist *
wq_header_add(struct curl_slist *l, const char *fmt, ...)
{
    char buf[2048];
    struct curl_slist *n;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if ((n = curl_slist_append(l, buf)) == NULL)
        abort();
    return n;
}

struct curl_slist *
wq_sign_headers(struct curl_slist *l, const char *secret, const void *body,
    size_t len)
{
    char ts[24], sig[65];

    if (secret == NULL || secret[0] == '\0')
        return l;
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    wq_sign_hmac_sha256(secret, ts, body, len, sig);
    l = wq_header_add(l, "X-Workq-Timestamp: %s", ts);
    return wq_header_add(l, "X-Workq-Signature: v1=%s", sig);
}

/*
 * sign.c - the HMAC-SHA256 signature of outgoing requests (see sign.h),
 * moved here from worker/handler_http.c so that the scheduler's
 * completion hooks sign the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

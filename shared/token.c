/*
 * token.c - bearer tokens: generation, SHA-256 entries, the tokens file
 * parser and the constant-time check (see token.h).
 *
 * Hashing and the constant-time compare are OpenSSL's (EVP_Digest,
 * CRYPTO_memcmp); randomness is getrandom(2).  The parser keeps only
 * hashes and scopes: plaintext lines are hashed as they are read, and the
 * loader wipes the file's text before freeing it.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "alloc.h"
#include "secfile.h"
#include "token.h"

#define ENTRY_PREFIX "sha256:"
#define FILE_MAX     (16u << 20)    /* bytes in a tokens file */
#define ERRS_MAX     20             /* errors listed before "..." */

struct entry {
    uint8_t hash[WQ_TOKEN_HASH_LEN];
    unsigned scopes;
};

struct wq_tokens {
    struct entry *v;
    size_t n, cap;
    size_t plaintext;
};

static const struct {
    const char *name;
    unsigned mask;
} scope_names[] = {
    { "submit", WQ_TOKEN_SCOPE_SUBMIT },
    { "read", WQ_TOKEN_SCOPE_READ },
    { "admin", WQ_TOKEN_SCOPES_ALL },
};

/* --- tokens and entries --------------------------------------------------- */

/* A token can travel in "Authorization: Bearer ...": visible ASCII only. */
static int
token_text_ok(const char *s, size_t n)
{
    if (n == 0 || n > WQ_TOKEN_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static int
sha256(const void *p, size_t n, uint8_t out[WQ_TOKEN_HASH_LEN])
{
    unsigned int len = 0;

    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1
        || len != WQ_TOKEN_HASH_LEN)
        return WQ_EIO;
    return 0;
}

int
wq_token_generate(char out[WQ_TOKEN_NEW_LEN])
{
    uint8_t raw[32];
    unsigned char b64[48];
    size_t got = 0;
    int n;

    while (got < sizeof raw) {
        ssize_t r = getrandom(raw + got, sizeof raw - got, 0);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return WQ_EIO;
        got += (size_t)r;
    }
    /* 32 bytes are 44 base64 characters, the last one "=" padding */
    n = EVP_EncodeBlock(b64, raw, (int)sizeof raw);
    OPENSSL_cleanse(raw, sizeof raw);
    if (n != 44)
        return WQ_EIO;
    memcpy(out, "wq_", 3);
    for (int i = 0; i < 43; i++)
        out[3 + i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_'
            : (char)b64[i];
    out[3 + 43] = '\0';
    OPENSSL_cleanse(b64, sizeof b64);
    return 0;
}

int
wq_token_entry(const char *token, size_t len, char out[WQ_TOKEN_ENTRY_LEN])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t h[WQ_TOKEN_HASH_LEN];

    if (token == NULL || !token_text_ok(token, len))
        return WQ_EINVAL;
    if (sha256(token, len, h) != 0)
        return WQ_EIO;
    memcpy(out, ENTRY_PREFIX, strlen(ENTRY_PREFIX));
    for (size_t i = 0; i < sizeof h; i++) {
        out[7 + 2 * i] = hex[h[i] >> 4];
        out[7 + 2 * i + 1] = hex[h[i] & 15];
    }
    out[WQ_TOKEN_ENTRY_LEN - 1] = '\0';
    return 0;
}

/* --- scopes ------------------------------------------------------------- */

/* Parses n bytes of "a,b"; returns 0 or WQ_EINVAL with the bad name. */
static int
scopes_parse(const char *s, size_t n, unsigned *out, char *err,
    size_t errlen)
{
    unsigned mask = 0;
    size_t i = 0;

    while (i <= n) {
        size_t j = i, k;

        while (j < n && s[j] != ',')
            j++;
        for (k = 0; k < WQ_ARRAY_LEN(scope_names); k++)
            if (strlen(scope_names[k].name) == j - i
                && strncasecmp(s + i, scope_names[k].name, j - i) == 0)
                break;
        if (k == WQ_ARRAY_LEN(scope_names))
            return wq_seterr(err, errlen, WQ_EINVAL, "unknown scope "
                "'%.*s' (submit, read, admin)", (int)(j - i > 64 ? 64
                : j - i), s + i);
        mask |= scope_names[k].mask;
        i = j + 1;
    }
    *out = mask;
    return 0;
}

int
wq_token_scopes_parse(const char *s, unsigned *scopes, char *err,
    size_t errlen)
{
    if (s == NULL)
        return wq_seterr(err, errlen, WQ_EINVAL, "no scopes");
    return scopes_parse(s, strlen(s), scopes, err, errlen);
}

const char *
wq_token_scopes_text(unsigned scopes, char *buf, size_t len)
{
    size_t off = 0;

    if (len == 0)
        return buf;
    buf[0] = '\0';
    if ((scopes & WQ_TOKEN_SCOPES_ALL) == WQ_TOKEN_SCOPES_ALL) {
        snprintf(buf, len, "admin");
        return buf;
    }
    for (size_t k = 0; k < 2; k++)
        if (scopes & scope_names[k].mask) {
            int w = snprintf(buf + off, len - off, "%s%s", off ? "," : "",
                scope_names[k].name);

            if (w < 0 || (size_t)w >= len - off)
                break;
            off += (size_t)w;
        }
    return buf;
}

/* --- the file ------------------------------------------------------------ */

struct errs {
    char *buf;
    size_t len, off;
    int n;
};

static void WQ_PRINTFLIKE(4, 5)
errs_add(struct errs *e, const char *name, size_t line, const char *fmt, ...)
{
    va_list ap;
    int w;

    if (e->n++ >= ERRS_MAX || e->buf == NULL || e->len == 0)
        return;
    if (e->off > 0 && e->off + 1 < e->len)
        e->buf[e->off++] = '\n';
    if (e->off >= e->len)
        return;
    w = snprintf(e->buf + e->off, e->len - e->off, "%s:%zu: ", name, line);
    if (w < 0 || (size_t)w >= e->len - e->off) {
        e->off = e->len - 1;
        return;
    }
    e->off += (size_t)w;
    va_start(ap, fmt);
    w = vsnprintf(e->buf + e->off, e->len - e->off, fmt, ap);
    va_end(ap);
    e->off = w < 0 || (size_t)w >= e->len - e->off ? e->len - 1
        : e->off + (size_t)w;
}

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static void
add(wq_tokens *t, const uint8_t hash[WQ_TOKEN_HASH_LEN], unsigned scopes)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 8;
        t->v = xreallocarray(t->v, t->cap, sizeof *t->v);
    }
    memcpy(t->v[t->n].hash, hash, WQ_TOKEN_HASH_LEN);
    t->v[t->n].scopes = scopes;
    t->n++;
}

/* One line (without its '\n'); errors go to e. */
static void
parse_line(wq_tokens *t, const char *p, size_t n, const char *name,
    size_t lineno, struct errs *e)
{
    const char *w1, *w2 = NULL;
    size_t i = 0, n1, n2 = 0;
    uint8_t hash[WQ_TOKEN_HASH_LEN];
    unsigned scopes = WQ_TOKEN_SCOPES_DEFAULT;
    char msg[160];

    if (memchr(p, '\0', n) != NULL) {
        errs_add(e, name, lineno, "a NUL byte");
        return;
    }
    while (i < n && is_blank(p[i]))
        i++;
    if (i == n || p[i] == '#')
        return;
    w1 = p + i;
    while (i < n && !is_blank(p[i]))
        i++;
    n1 = (size_t)(p + i - w1);
    while (i < n && is_blank(p[i]))
        i++;
    if (i < n && p[i] != '#') {
        w2 = p + i;
        while (i < n && !is_blank(p[i]))
            i++;
        n2 = (size_t)(p + i - w2);
        while (i < n && is_blank(p[i]))
            i++;
        if (i < n && p[i] != '#') {
            errs_add(e, name, lineno, "unexpected text after the scopes "
                "(a comment starts with '#')");
            return;
        }
    }
    if (w2 != NULL && scopes_parse(w2, n2, &scopes, msg, sizeof msg) != 0) {
        errs_add(e, name, lineno, "%s", msg);
        return;
    }
    if (n1 >= strlen(ENTRY_PREFIX)
        && memcmp(w1, ENTRY_PREFIX, strlen(ENTRY_PREFIX)) == 0) {
        const char *h = w1 + strlen(ENTRY_PREFIX);

        if (n1 - strlen(ENTRY_PREFIX) != 2 * WQ_TOKEN_HASH_LEN) {
            errs_add(e, name, lineno, "sha256: must be followed by %d hex "
                "digits", 2 * WQ_TOKEN_HASH_LEN);
            return;
        }
        for (size_t k = 0; k < WQ_TOKEN_HASH_LEN; k++) {
            int hi = hexval((unsigned char)h[2 * k]);
            int lo = hexval((unsigned char)h[2 * k + 1]);

            if (hi < 0 || lo < 0) {
                errs_add(e, name, lineno, "sha256: must be followed by "
                    "%d hex digits", 2 * WQ_TOKEN_HASH_LEN);
                return;
            }
            hash[k] = (uint8_t)(hi << 4 | lo);
        }
    } else {
        /* a plaintext token: hashed now, its text is not kept */
        if (!token_text_ok(w1, n1)) {
            errs_add(e, name, lineno, "a token is 1 to %d visible ASCII "
                "characters", WQ_TOKEN_MAX);
            return;
        }
        if (sha256(w1, n1, hash) != 0) {
            errs_add(e, name, lineno, "cannot hash the token");
            return;
        }
        t->plaintext++;
    }
    add(t, hash, scopes);
    OPENSSL_cleanse(hash, sizeof hash);
}

int
wq_tokens_parse(const char *text, size_t len, const char *name,
    wq_tokens **out, char *err, size_t errlen)
{
    struct errs e = { err, errlen, 0, 0 };
    wq_tokens *t = xcalloc(1, sizeof *t);
    size_t lineno = 0, off = 0;

    *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (name == NULL)
        name = "tokens";
    while (off < len) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t n = nl != NULL ? (size_t)(nl - (text + off)) : len - off;

        parse_line(t, text + off, n, name, ++lineno, &e);
        off += n + (nl != NULL);
    }
    if (e.n > ERRS_MAX)
        errs_add(&(struct errs){ err, errlen, e.off, 0 }, name, lineno,
            "... and %d more errors", e.n - ERRS_MAX);
    if (e.n > 0) {
        wq_tokens_free(t);
        return WQ_EINVAL;
    }
    *out = t;
    return 0;
}

int
wq_tokens_load(const char *path, wq_tokens **out, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    FILE *f;
    int rc;

    *out = NULL;
    if ((f = fopen(path, "re")) == NULL)
        return wq_seterr(err, errlen, WQ_EIO, "%s: %s", path,
            strerror(errno));
    /* whoever may write it may add a token: refused; read: a warning */
    if ((rc = wq_secfile_check(fileno(f), path, NULL, 1, err, errlen)) != 0)
        goto out;
    for (;;) {
        size_t got;

        if (len == cap) {
            char *nb;

            if (cap >= FILE_MAX) {
                rc = wq_seterr(err, errlen, WQ_EINVAL, "%s: larger than %u "
                    "bytes", path, FILE_MAX);
                goto out;
            }
            /* grow by hand so that no copy of a secret is left behind */
            nb = xmalloc(cap ? cap * 2 : 4096);
            if (buf != NULL) {
                memcpy(nb, buf, len);
                OPENSSL_cleanse(buf, cap);
                free(buf);
            }
            buf = nb;
            cap = cap ? cap * 2 : 4096;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        rc = wq_seterr(err, errlen, WQ_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    rc = wq_tokens_parse(buf != NULL ? buf : "", len, path, out, err,
        errlen);
out:
    fclose(f);
    if (buf != NULL) {
        OPENSSL_cleanse(buf, cap);
        free(buf);
    }
    return rc;
}

size_t
wq_tokens_count(const wq_tokens *t)
{
    return t != NULL ? t->n : 0;
}

size_t
wq_tokens_plaintext(const wq_tokens *t)
{
    return t != NULL ? t->plaintext : 0;
}

unsigned
wq_tokens_check(const wq_tokens *t, const char *presented, size_t len)
{
    uint8_t h[WQ_TOKEN_HASH_LEN];
    unsigned scopes = 0;

    if (t == NULL || presented == NULL || len == 0 || len > WQ_TOKEN_MAX
        || sha256(presented, len, h) != 0)
        return 0;
    /* every entry, no early exit; the match selects its scopes without
     * a branch on it */
    for (size_t i = 0; i < t->n; i++) {
        unsigned eq = (unsigned)(CRYPTO_memcmp(h, t->v[i].hash,
            WQ_TOKEN_HASH_LEN) == 0);

        scopes |= (0u - eq) & t->v[i].scopes;
    }
    OPENSSL_cleanse(h, sizeof h);
    return scopes;
}

void
wq_tokens_free(wq_tokens *t)
{
    if (t == NULL)
        return;
    if (t->v != NULL) {
        OPENSSL_cleanse(t->v, t->cap * sizeof *t->v);
        free(t->v);
    }
    free(t);
}

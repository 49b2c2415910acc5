/*
 * redact.c - password redaction inside free text (see redact.h).
 *
 * The scan is byte by byte and keeps no state between calls.  It errs
 * towards hiding: "password" followed by '=' anywhere after a key
 * boundary is taken as a key, whatever the format around it.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "redact.h"

struct out {
    char *p;
    size_t cap, n;
};

static void
put(struct out *o, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (o->cap > 0 && o->n + 1 < o->cap)
            o->p[o->n] = s[i];
        o->n++;
    }
}

/*
 * If s+i starts the authority of a URI ("://" just before), the length
 * of its userinfo password and where it starts; else 0.
 */
static size_t
uri_password(const char *s, size_t i, size_t *start)
{
    size_t end = i, at = 0, colon = 0;
    int have_at = 0;

    while (s[end] != '\0' && strchr("/?#", s[end]) == NULL
        && !isspace((unsigned char)s[end]))
        end++;
    for (size_t k = i; k < end; k++)
        if (s[k] == '@') {
            at = k;
            have_at = 1;
        }
    if (!have_at)
        return 0;
    for (colon = i; colon < at && s[colon] != ':'; colon++)
        ;
    if (colon >= at)
        return 0;
    /* the placeholder of help texts ("amqp://user:password@host") */
    if (at - colon - 1 == 8 && strncasecmp(s + colon + 1, "password", 8) == 0)
        return 0;
    *start = colon + 1;
    return at - colon - 1;
}

/* Is s[i] the start of a key (after a boundary)? */
static int
key_boundary(const char *s, size_t i)
{
    if (i == 0)
        return 1;
    return isspace((unsigned char)s[i - 1]) != 0
        || strchr("?&;,.\"'{(_", s[i - 1]) != NULL;
}

/*
 * If a key ending in "password" starts at s+i: the offset of its value
 * and (through *vlen) the value's length; else 0.
 */
static size_t
key_password(const char *s, size_t i, size_t *vlen)
{
    size_t k = i, v, e;
    char q;
    int in_query;

    if (!key_boundary(s, i))
        return 0;
    /* the key: letters, digits, '.', '_', '-', ending in "password" */
    while (isalnum((unsigned char)s[k]) || s[k] == '.' || s[k] == '_'
        || s[k] == '-')
        k++;
    if (k - i < 8 || strncasecmp(s + k - 8, "password", 8) != 0)
        return 0;
    in_query = i > 0 && (s[i - 1] == '?' || s[i - 1] == '&');
    v = k;
    while (s[v] == ' ' || s[v] == '\t')
        v++;
    if (s[v] != '=')
        return 0;
    v++;
    while (s[v] == ' ' || s[v] == '\t')
        v++;
    e = v;
    if (s[v] == '\'' || s[v] == '"') {
        q = s[v];
        for (e = v + 1; s[e] != '\0' && s[e] != q; e++)
            if (s[e] == '\\' && s[e + 1] != '\0')
                e++;
        if (s[e] == q)
            e++;
    } else {
        for (; s[e] != '\0' && !isspace((unsigned char)s[e]); e++) {
            if (in_query && (s[e] == '&' || s[e] == '#'))
                break;
            if (s[e] == '\\' && s[e + 1] != '\0')
                e++;
        }
    }
    *vlen = e - v;
    return v;
}

size_t
wq_redact(char *out, size_t cap, const char *s)
{
    struct out o = { out, cap, 0 };
    size_t i = 0, copied = 0;

    if (s == NULL)
        s = "";
    while (s[i] != '\0') {
        size_t start, len, v;

        if (i >= 3 && memcmp(s + i - 3, "://", 3) == 0
            && (len = uri_password(s, i, &start)) > 0) {
            put(&o, s + copied, start - copied);
            put(&o, WQ_REDACTED, strlen(WQ_REDACTED));
            i = copied = start + len;
            continue;
        }
        if ((v = key_password(s, i, &len)) > 0 && len > 0) {
            put(&o, s + copied, v - copied);
            put(&o, WQ_REDACTED, strlen(WQ_REDACTED));
            i = copied = v + len;
            continue;
        }
        i++;
    }
    put(&o, s + copied, i - copied);
    if (cap > 0)
        out[o.n < cap ? o.n : cap - 1] = '\0';
    return o.n;
}

char *
wq_redact_dup(const char *s)
{
    size_t n = wq_redact(NULL, 0, s);
    char *p = malloc(n + 1);

    if (p != NULL)
        wq_redact(p, n + 1, s);
    return p;
}

int
wq_redact_inplace(char *buf, size_t cap)
{
    char *r;
    size_t n;

    if (buf == NULL || cap == 0)
        return 0;
    /* the common case, a line without a secret, allocates nothing */
    if (strstr(buf, "://") == NULL && strcasestr(buf, "password") == NULL)
        return 0;
    if ((r = wq_redact_dup(buf)) == NULL)
        return 0;
    if (strcmp(r, buf) == 0) {
        free(r);
        return 0;
    }
    n = strlen(r) < cap - 1 ? strlen(r) : cap - 1;
    memcpy(buf, r, n);
    buf[n] = '\0';
    free(r);
    return 1;
}

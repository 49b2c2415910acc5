/*
 * alloc.c - aborting allocators for daemons (see alloc.h).
 */
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static void WQ_NORETURN
oom(size_t n)
{
    fprintf(stderr, "workq: out of memory allocating %zu bytes\n", n);
    abort();
}

void *
xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (p == NULL)
        oom(size);
    return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

    if (p == NULL)
        oom(nmemb * size);
    return p;
}

void *
xreallocarray(void *ptr, size_t nmemb, size_t size)
{
    void *p;

    if (size != 0 && nmemb > SIZE_MAX / size) {
        fprintf(stderr, "workq: allocation overflow (%zu x %zu)\n", nmemb,
            size);
        abort();
    }
    p = realloc(ptr, (nmemb * size) != 0 ? nmemb * size : 1);
    if (p == NULL)
        oom(nmemb * size);
    return p;
}

char *
xstrdup(const char *s)
{
    return xmemdup(s, strlen(s) + 1);
}

char *
xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *
xmemdup(const void *src, size_t n)
{
    void *p = xmalloc(n);

    if (n > 0)
        memcpy(p, src, n);
    return p;
}

char *
xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    return s;
}

void
wq_alloc_keep_heap(void)
{
    /* also ends glibc's dynamic threshold, which only ever rises with
     * freed mmap()ed chunks (mallopt(3)) */
    (void)mallopt(M_TRIM_THRESHOLD, (int)WQ_ALLOC_KEEP);
}

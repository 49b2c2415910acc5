/*
 * alloc.h - allocation for the daemons and the CLI (STYLE.md habit 7).
 *
 * Every function aborts the process with a message on exhaustion or on a
 * size overflow, so callers never check for NULL; systemd restarts a daemon
 * that dies this way.  The public client API (workq.h) must not use these
 * for its own state: it returns WQ_ENOMEM instead.  The modules below it
 * (config, both transport backends) do use them, as librdkafka aborts on
 * exhaustion itself: one policy for the brokers' code.
 */
#ifndef WQ_ALLOC_H
#define WQ_ALLOC_H

#include <stddef.h>

#include "wq.h"

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
/* xasprintf returns a newly allocated formatted string; caller frees. */
char *xasprintf(const char *fmt, ...) WQ_PRINTFLIKE(1, 2);

#endif

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

/*
 * wq_alloc_keep_heap tells glibc's malloc to keep up to WQ_ALLOC_KEEP
 * bytes free at the top of each arena instead of handing memory back to
 * the kernel as soon as 128 kB are free (mallopt(3), M_TRIM_THRESHOLD).
 * librdkafka's lz4 codec allocates and frees its state (tens of kB) for
 * every message set a broker thread compresses.  With the default, each
 * free gave the pages back (madvise, a TLB flush on every core) and the
 * next message set faulted them in again: half of the producer's Kafka
 * thread's CPU under single-task HTTP POSTs, whose message sets are
 * small and many (issue 11).  Large batches (workq submit --batch)
 * showed no difference, so only workq-producer calls it, from main()
 * before its threads start.  A library (the C client) leaves this to
 * its application.
 */
#define WQ_ALLOC_KEEP (8u << 20)
void wq_alloc_keep_heap(void);

#endif

/*
 * progress.c - the latest progress of each running task, written to
 * PostgreSQL at most once a second per task (see progress.h).
 *
 * A small array of entries under one mutex: a handler thread's report
 * overwrites its task's entry and marks it pending; the lease thread's
 * flush takes the pending entries whose last write is a period old,
 * writes them in one UPDATE and stamps them.  Entries of tasks that stop
 * reporting are dropped a period after their last write, so the array
 * holds at most the tasks that reported within the last two periods.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "metrics.h"
#include "progress.h"
#include "store_claims.h"

#define PERIOD_NS ((uint64_t)WQ_PROGRESS_PERIOD_MS * 1000000u)

struct entry {
    char id[40];
    uint32_t attempt;
    int percent;
    int pending;
    uint64_t last_write_ns;     /* 0: never written */
    char msg[WQ_PROGRESS_MSG_MAX + 1];
};

struct wq_progress {
    pthread_mutex_t lock;
    struct entry *v;
    size_t n, cap;
    int wake_fd;
    uint64_t writes;
    wq_metric *m_reports, *m_writes;
};

void
wq_progress_set_metrics(wq_progress *p, struct wq_metric *reports,
    struct wq_metric *writes)
{
    p->m_reports = reports;
    p->m_writes = writes;
}

wq_progress *
wq_progress_new(int wake_fd)
{
    wq_progress *p = xcalloc(1, sizeof *p);

    pthread_mutex_init(&p->lock, NULL);
    p->wake_fd = wake_fd;
    return p;
}

void
wq_progress_free(wq_progress *p)
{
    if (p == NULL)
        return;
    pthread_mutex_destroy(&p->lock);
    free(p->v);
    free(p);
}

/* Copies a message: control characters become spaces, cut at a UTF-8
 * character boundary. */
static void
copy_message(char *dst, const char *src)
{
    size_t n = 0;

    if (src != NULL)
        for (; src[n] != '\0' && n < WQ_PROGRESS_MSG_MAX; n++)
            dst[n] = (unsigned char)src[n] < 0x20 || src[n] == 0x7f ? ' '
                : src[n];
    if (src != NULL && src[n] != '\0')
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
            n--;        /* src[n] continues a character: cut before it */
    dst[n] = '\0';
}

static uint64_t
due_ns(const struct entry *e)
{
    return e->last_write_ns == 0 ? 0 : e->last_write_ns + PERIOD_NS;
}

void
wq_progress_report(wq_progress *p, const char *task_id, uint32_t attempt,
    int percent, const char *message)
{
    struct entry *e = NULL;
    uint64_t one = 1;
    int wake;

    if (percent < 0)
        percent = 0;
    if (percent > 100)
        percent = 100;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n && e == NULL; i++)
        if (strcmp(p->v[i].id, task_id) == 0)
            e = &p->v[i];
    if (e == NULL) {
        if (p->n == p->cap) {
            p->cap = p->cap == 0 ? 16 : p->cap * 2;
            p->v = xreallocarray(p->v, p->cap, sizeof *p->v);
        }
        e = &p->v[p->n++];
        memset(e, 0, sizeof *e);
        snprintf(e->id, sizeof e->id, "%s", task_id);
    }
    e->attempt = attempt;
    e->percent = percent;
    copy_message(e->msg, message);
    wake = !e->pending;
    e->pending = 1;
    pthread_mutex_unlock(&p->lock);
    if (p->m_reports != NULL)
        wq_metric_inc(p->m_reports, 1);
    /* the flusher's timer handles a report inside its task's period */
    if (wake && p->wake_fd >= 0 && write(p->wake_fd, &one, sizeof one) < 0)
        (void)0;
}

/* Appends s to a text array literal, quoted and escaped. */
static void
array_add(struct wq_buf *b, const char *s)
{
    if (b->len > 1 && wq_buf_append(b, ",", 1) != 0)
        abort();
    if (wq_buf_append(b, "\"", 1) != 0)
        abort();
    for (; *s != '\0'; s++) {
        if ((*s == '"' || *s == '\\') && wq_buf_append(b, "\\", 1) != 0)
            abort();
        if (wq_buf_append(b, s, 1) != 0)
            abort();
    }
    if (wq_buf_append(b, "\"", 1) != 0)
        abort();
}

int
wq_progress_flush(wq_progress *p, wq_store *s, const char *worker,
    char *err, size_t errlen)
{
    struct wq_buf a[4] = { WQ_BUF_INIT, WQ_BUF_INIT, WQ_BUF_INIT,
        WQ_BUF_INIT };
    uint64_t now = wq_clock_mono_ns();
    size_t taken = 0, keep = 0;
    int rc = 0;

    for (int k = 0; k < 4; k++)
        if (wq_buf_append(&a[k], "{", 1) != 0)
            abort();
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n; i++) {
        struct entry *e = &p->v[i];
        char num[16];

        if (e->pending && now >= due_ns(e)) {
            array_add(&a[0], e->id);
            snprintf(num, sizeof num, "%u", e->attempt);
            array_add(&a[1], num);
            snprintf(num, sizeof num, "%d", e->percent);
            array_add(&a[2], num);
            array_add(&a[3], e->msg);
            e->pending = 0;
            e->last_write_ns = now;
            taken++;
        }
        /* an entry idle for a period is dropped: its next report is due
         * at once again */
        if (e->pending || now < due_ns(e))
            p->v[keep++] = *e;
    }
    p->n = keep;
    p->writes += taken;
    pthread_mutex_unlock(&p->lock);
    if (p->m_writes != NULL && taken > 0)
        wq_metric_inc(p->m_writes, taken);
    for (int k = 0; k < 4; k++)
        if (wq_buf_append(&a[k], "}", 2) != 0)  /* with the NUL */
            abort();
    if (taken > 0)
        rc = wq_claim_progress(s, a[0].data, a[1].data, a[2].data,
            a[3].data, worker, err, errlen);
    for (int k = 0; k < 4; k++)
        wq_buf_free(&a[k]);
    return rc;
}

void
wq_progress_again(wq_progress *p, const char *task_id)
{
    uint64_t one = 1;
    int found = 0;

    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->v[i].id, task_id) == 0) {
            p->v[i].pending = 1;
            p->v[i].last_write_ns = 0;
            found = 1;
        }
    pthread_mutex_unlock(&p->lock);
    if (found && p->wake_fd >= 0 && write(p->wake_fd, &one, sizeof one) < 0)
        (void)0;
}

int64_t
wq_progress_next_ms(wq_progress *p)
{
    uint64_t now = wq_clock_mono_ns(), next = UINT64_MAX;

    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].pending && due_ns(&p->v[i]) < next)
            next = due_ns(&p->v[i]);
    pthread_mutex_unlock(&p->lock);
    if (next == UINT64_MAX)
        return -1;
    return next <= now ? 0 : (int64_t)((next - now + 999999) / 1000000);
}

uint64_t
wq_progress_writes(wq_progress *p)
{
    uint64_t n;

    pthread_mutex_lock(&p->lock);
    n = p->writes;
    pthread_mutex_unlock(&p->lock);
    return n;
}

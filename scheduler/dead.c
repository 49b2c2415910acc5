/*
 * dead.c - copies of dead tasks on "workq.<queue>.dead" (DESIGN.md step
 * 7, docs/task-states.md "Dead letters").
 *
 * A task becomes dead in PostgreSQL (the worker's record or claim, or
 * lease recovery); its copy is owed until tasks.dead_published_at is set.
 * One round locks up to a batch of owed rows, publishes each task's
 * envelope with three headers added - workq-dead-reason (last_error, cut
 * to the header limit), workq-dead-at (RFC 3339) and workq-attempts - and
 * marks the confirmed ones, in one transaction.  So each dead task is
 * copied once, or (after a crash between the confirmation and the commit)
 * twice, never not at all.  Consumers of the dead queue should key on
 * the envelope id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "sched.h"

#define COMPONENT "dead"

/* Columns after the task columns (WQ_SCHED_ROWS_TASK_NCOLS). */
enum { C_ERROR = WQ_SCHED_ROWS_TASK_NCOLS, C_FINISHED_MS };

/* Cuts s to at most max bytes at a UTF-8 character boundary, into buf. */
static const char *
cut_utf8(const char *s, size_t max, char *buf)
{
    size_t n = strlen(s);

    if (n <= max)
        return s;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

int
wq_sched_dead_publish(struct wq_sched *s, int *more, int *done, char *err,
    size_t errlen)
{
    static char reason_buf[WQ_HEADER_VALUE_MAX + 1];
    struct wq_broker_msg *msgs = NULL;
    char **names = NULL;
    size_t *off = NULL, n = 0, nok = 0;
    int *rowof = NULL;
    struct wq_buf ids = WQ_BUF_INIT;
    struct pg_result *r;
    char id[37], why[WQ_ERRLEN];
    int rc, rows, nmark = 0;

    *more = 0;
    *done = 0;
    if ((rc = wq_sched_rows_round_begin(s->store, WQ_SCHED_SQL_DEAD_SELECT,
        s->batch, &r, err, errlen)) != 0 || r == NULL)
        return rc;
    rows = wq_store_nrows(r);
    *more = rows == s->batch;
    msgs = xcalloc((size_t)rows, sizeof *msgs);
    names = xcalloc((size_t)rows, sizeof *names);
    off = xcalloc((size_t)rows + 1, sizeof *off);
    rowof = xcalloc((size_t)rows, sizeof *rowof);
    wq_sched_rows_array_begin(&ids);
    wq_buf_reset(&s->buf);
    for (int i = 0; i < rows; i++) {
        struct wq_header extra[3];
        const char *queue = wq_sched_rows_text(r, i, 1);
        const char *error = wq_sched_rows_text(r, i, C_ERROR);
        char at[40], attempts[16];
        int32_t attempt = wq_sched_rows_i32(r, i, 6);

        wq_sched_rows_uuid(r, i, 0, id);
        if (strlen(queue) + strlen(".dead") > WQ_QUEUE_MAX) {
            /* "workq.Q.dead" would be too long a name for the brokers */
            wq_log_warn(COMPONENT, "task %s: queue '%s' is too long for a "
                "dead-letter queue; no copy published", id, queue);
            wq_sched_rows_array_add(&ids, id);
            nmark++;
            continue;
        }
        wq_clock_format_rfc3339(wq_sched_rows_i64(r, i, C_FINISHED_MS), at,
            sizeof at);
        snprintf(attempts, sizeof attempts, "%d", (int)attempt);
        extra[0].name = (char *)"workq-dead-reason";
        extra[0].value = (char *)cut_utf8(error != NULL ? error : "",
            WQ_HEADER_VALUE_MAX, reason_buf);
        extra[1].name = (char *)"workq-dead-at";
        extra[1].value = at;
        extra[2].name = (char *)"workq-attempts";
        extra[2].value = attempts;
        off[n] = s->buf.len;
        if (wq_sched_rows_envelope(r, i, attempt > 0 ? (uint32_t)attempt : 1,
            extra, 3, &s->buf, why, sizeof why) != 0) {
            wq_log_warn(COMPONENT, "task %s makes no valid envelope; no "
                "copy published: %s", id, why);
            wq_sched_rows_array_add(&ids, id);
            nmark++;
            continue;
        }
        names[n] = xasprintf("%s.dead", queue);
        rowof[n] = i;
        msgs[n].queue = names[n];
        msgs[n].key = wq_sched_rows_text(r, i, 3);
        msgs[n].keylen = strlen(msgs[n].key);
        n++;
    }
    off[n] = s->buf.len;
    for (size_t i = 0; i < n; i++) {
        msgs[i].body = s->buf.data + off[i];
        msgs[i].len = off[i + 1] - off[i];
    }
    if (n > 0)
        rc = wq_broker_publish(s->broker, msgs, n, s->publish_timeout_ms,
            &nok, err, errlen);
    for (size_t i = 0; i < n; i++)
        if (msgs[i].status == 0) {
            wq_sched_rows_uuid(r, rowof[i], 0, id);
            wq_sched_rows_array_add(&ids, id);
            nmark++;
        }
    wq_sched_rows_array_end(&ids);
    {
        int src = wq_sched_rows_round_settle(s->store, WQ_SCHED_SQL_DEAD_MARK,
            &ids, (size_t)nmark, err, errlen);

        if (src != 0) {
            rc = src;
            goto fail;
        }
    }
    wq_metric_inc(s->st->dead_copies, nok);
    if (nok < n)
        wq_metric_inc(s->st->publish_failures, n - nok);
    if (nok < n)
        *more = 0;
    *done = nmark;
    if (nok > 0)
        wq_log_debug(COMPONENT, "published %zu dead-letter cop%s", nok,
            nok == 1 ? "y" : "ies");
    goto out;

fail:
    wq_sched_rows_rollback(s->store);
out:
    wq_store_rows_free(r);
    wq_buf_free(&ids);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(msgs);
    free(off);
    free(rowof);
    return rc;
}

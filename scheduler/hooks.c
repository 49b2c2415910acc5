/*
 * hooks.c - completion hooks: a signed POST to an https URL when a task
 * ends (issue 18; migration 0009, docs/task-states.md "Completion
 * hooks").
 *
 * PostgreSQL owns the durability: the transaction that records a task's
 * final state also writes its row in workq.hook_deliveries (a trigger),
 * with the JSON body and a delivery id fixed once.  This module sends
 * them.  One round locks up to hooks.concurrency due rows (FOR UPDATE
 * SKIP LOCKED, so several schedulers share them), POSTs them all at once
 * on libcurl's multi interface, each with at most hooks.timeout, then in
 * the same transaction deletes the rows answered 2xx and moves the
 * others' next_at back by the hook backoff (exponential, equal jitter,
 * capped).  A crash before the commit leaves every row as it was: it is
 * POSTed again with the same body and delivery id, so delivery is at
 * least once and a receiver dedupes on X-Workq-Delivery.  Nothing here
 * writes to workq.tasks: a hook's failures never change its task.
 *
 * The request: body = the row's JSON; headers Content-Type
 * application/json, X-Workq-Delivery (the delivery id), X-Workq-Event
 * (task.ended), X-Workq-Attempt (1 for the first POST of the delivery)
 * and, with hooks.secret, X-Workq-Timestamp and X-Workq-Signature as the
 * http handler signs (shared/sign.h).  https only, TLS verified, no
 * redirects.  A URL that is not https is dropped with a warning (its
 * author must fix it; retrying would not help).
 *
 * A thread of its own, with its own PostgreSQL connection, sends them:
 * a receiver that is slow or hangs holds that thread (each POST for at
 * most hooks.timeout), never the scheduler's loop, whose retries, lease
 * recovery and periodic ticks go on.  The thread LISTENs on
 * workq_scheduler for the trigger's "hooks" notification and otherwise
 * sleeps until the earliest next_at (scheduler.poll_interval at most);
 * a lost connection is reopened with backoff (100 ms doubling to 30 s).
 *
 * The multi handle lives as long as the scheduler, so connections to a
 * receiver are kept between rounds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include <curl/curl.h>

#include "alloc.h"
#include "clock.h"
#include "daemon.h"
#include "log.h"
#include "migrate.h"
#include "reconnect.h"
#include "sched.h"
#include "sign.h"

#define COMPONENT          "hooks"
#define CONNECT_TIMEOUT_MS 5000
#define ERROR_BODY_MAX     200      /* bytes of a refusal kept as error */
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     30000
#define HOLD_MIN_MS        50       /* a round that failed: wait */

struct wq_sched_hooks {
    const struct wq_config *cfg;
    struct wq_sched_stats *st;
    CURLM *multi;
    wq_store *store;            /* the thread's own connection */
    int store_up;
    struct wq_reconnect retry;
    pthread_t thread;
    int started;
    atomic_int stop;            /* finish the round, then exit */
    atomic_int cut;             /* a second stop signal: cut POSTs short */
    atomic_int ended;           /* the thread is about to return */
    int wake[2];                /* a byte here wakes the thread */
    int notified;               /* a "hooks" notification came */
    int64_t hold_ms;
};

/* Columns of WQ_SCHED_SQL_HOOKS_SELECT. */
enum { C_ID, C_URL, C_BODY, C_ATTEMPTS };

struct post {
    CURL *easy;
    struct curl_slist *hdr;
    int row;
    int started;
    long status;
    CURLcode code;
    char answer[ERROR_BODY_MAX + 1];
    size_t nanswer;
    char curl_err[CURL_ERROR_SIZE];
};

int
wq_sched_hooks_new(const struct wq_config *cfg, struct wq_sched_stats *st,
    struct wq_sched_hooks **out, char *err, size_t errlen)
{
    struct wq_sched_hooks *h;

    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return wq_seterr(err, errlen, WQ_EIO, "libcurl: global init failed");
    h = xcalloc(1, sizeof *h);
    h->cfg = cfg;
    h->st = st;
    h->wake[0] = h->wake[1] = -1;
    if ((h->multi = curl_multi_init()) == NULL) {
        free(h);
        curl_global_cleanup();
        return wq_seterr(err, errlen, WQ_EIO, "libcurl: no multi handle");
    }
    if (pipe2(h->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        curl_multi_cleanup(h->multi);
        free(h);
        curl_global_cleanup();
        return wq_seterr(err, errlen, WQ_EIO, "pipe: %s", strerror(errno));
    }
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
    wq_reconnect_init(&h->retry, BACKOFF_MIN_MS, BACKOFF_MAX_MS,
        WQ_JITTER_EQUAL);
    *out = h;
    return 0;
}

void
wq_sched_hooks_free(struct wq_sched_hooks *h)
{
    if (h == NULL)
        return;
    if (h->started) {
        atomic_store(&h->stop, 1);
        if (write(h->wake[1], "x", 1) < 0)
            (void)0;    /* full: it is awake already */
        /* its round finishes (at most hooks.timeout) unless a second
         * stop signal comes meanwhile: signals are this thread's, so it
         * watches for one and tells the hooks thread */
        while (!atomic_load(&h->ended)) {
            struct pollfd pfd = { wq_daemon_wakeup_fd(), POLLIN, 0 };

            if (wq_daemon_stop_requested() > 1)
                atomic_store(&h->cut, 1);
            if (poll(&pfd, pfd.fd >= 0 ? 1 : 0, 100) > 0)
                wq_daemon_drain_wakeup();
        }
        pthread_join(h->thread, NULL);
    }
    wq_store_close(h->store);
    curl_multi_cleanup(h->multi);
    close(h->wake[0]);
    close(h->wake[1]);
    free(h);
    curl_global_cleanup();
}

/* Keeps the start of the receiver's answer (for the error text). */
static size_t
on_body(char *data, size_t size, size_t n, void *user)
{
    struct post *p = user;
    size_t len = size * n, room = ERROR_BODY_MAX - p->nanswer;

    if (room > len)
        room = len;
    memcpy(p->answer + p->nanswer, data, room);
    p->nanswer += room;
    p->answer[p->nanswer] = '\0';
    return len;
}

/* Prepares the POST of row i; 0, or -1 if its URL is not https. */
static int
post_prepare(const struct wq_config *cfg, const struct pg_result *r, int i,
    struct post *p)
{
    const char *url = wq_store_value(r, i, C_URL);
    const char *body = wq_store_value(r, i, C_BODY);
    size_t len = strlen(body);

    p->row = i;
    if (strncasecmp(url, "https://", 8) != 0)
        return -1;
    if ((p->easy = curl_easy_init()) == NULL)
        abort();
    p->hdr = wq_header_add(NULL, "Content-Type: application/json");
    p->hdr = wq_header_add(p->hdr, "X-Workq-Delivery: %s",
        wq_store_value(r, i, C_ID));
    p->hdr = wq_header_add(p->hdr, "X-Workq-Event: task.ended");
    p->hdr = wq_header_add(p->hdr, "X-Workq-Attempt: %d",
        atoi(wq_store_value(r, i, C_ATTEMPTS)) + 1);
    p->hdr = wq_sign_headers(p->hdr, cfg->hooks.secret, body, len);
    p->hdr = wq_header_add(p->hdr, "Expect:");
    curl_easy_setopt(p->easy, CURLOPT_URL, url);
    curl_easy_setopt(p->easy, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(p->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(p->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(p->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, p->hdr);
    curl_easy_setopt(p->easy, CURLOPT_USERAGENT, "workq-scheduler");
    curl_easy_setopt(p->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(p->easy, CURLOPT_TIMEOUT_MS, (long)cfg->hooks.timeout_ms);
    curl_easy_setopt(p->easy, CURLOPT_CONNECTTIMEOUT_MS,
        (long)(cfg->hooks.timeout_ms < CONNECT_TIMEOUT_MS
        ? cfg->hooks.timeout_ms : CONNECT_TIMEOUT_MS));
    curl_easy_setopt(p->easy, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(p->easy, CURLOPT_SSL_VERIFYHOST, 2L);
    if (cfg->hooks.tls_ca != NULL && cfg->hooks.tls_ca[0] != '\0')
        curl_easy_setopt(p->easy, CURLOPT_CAINFO, cfg->hooks.tls_ca);
    curl_easy_setopt(p->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(p->easy, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(p->easy, CURLOPT_ERRORBUFFER, p->curl_err);
    curl_easy_setopt(p->easy, CURLOPT_PRIVATE, p);
    return 0;
}

/* Runs the prepared transfers to their end (each bounded by its timeout;
 * a second stop signal cuts them short: the rows are then retried). */
static void
post_all(struct wq_sched_hooks *h, struct post *p, int n)
{
    int running = 0, left;
    CURLMsg *m;

    for (int i = 0; i < n; i++)
        if (p[i].easy != NULL && curl_multi_add_handle(h->multi, p[i].easy)
            == CURLM_OK)
            p[i].started = 1;
    do {
        if (curl_multi_perform(h->multi, &running) != CURLM_OK)
            break;
        while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
            struct post *q = NULL;

            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
            q->code = m->data.result;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE,
                &q->status);
        }
        if (running > 0 && atomic_load(&h->cut))
            break;
        if (running > 0)
            curl_multi_poll(h->multi, NULL, 0, 500, NULL);
    } while (running > 0);
    for (int i = 0; i < n; i++)
        if (p[i].started)
            curl_multi_remove_handle(h->multi, p[i].easy);
}

static void
post_free(struct post *p)
{
    if (p->easy != NULL)
        curl_easy_cleanup(p->easy);
    curl_slist_free_all(p->hdr);
}

/* Why a POST did not deliver, into buf. */
static const char *
post_error(const struct post *p, char *buf, size_t len)
{
    if (!p->started)
        snprintf(buf, len, "not sent (libcurl refused the transfer)");
    else if (p->code != CURLE_OK)
        snprintf(buf, len, "%s", p->curl_err[0] != '\0' ? p->curl_err
            : curl_easy_strerror(p->code));
    else if (p->status == 0)
        snprintf(buf, len, "no answer (stopped)");
    else
        snprintf(buf, len, "HTTP %ld: %s", p->status, p->answer);
    return buf;
}

/*
 * One round: POSTs up to hooks.concurrency due completion hooks at once,
 * deletes those answered 2xx and postpones the others by the hook
 * backoff, in one transaction.  Blocks for at most hooks.timeout.  *more:
 * the batch was full; *done: rows settled.
 */
static int
deliver(struct wq_sched_hooks *h, int *more, int *done, char *err,
    size_t errlen)
{
    const struct wq_config *cfg = h->cfg;
    struct wq_buf ok = WQ_BUF_INIT, ids = WQ_BUF_INIT, delays = WQ_BUF_INIT,
        errors = WQ_BUF_INIT;
    struct post *p = NULL;
    struct pg_result *r, *u = NULL;
    size_t nok = 0, nretry = 0;
    int rc, rows;

    *more = 0;
    *done = 0;
    if ((rc = wq_sched_rows_round_begin(h->store, WQ_SCHED_SQL_HOOKS_SELECT,
        cfg->hooks.concurrency, &r, err, errlen)) != 0 || r == NULL)
        return rc;
    rows = wq_store_nrows(r);
    *more = rows == cfg->hooks.concurrency;
    p = xcalloc((size_t)rows, sizeof *p);
    wq_sched_rows_array_begin(&ok);
    wq_sched_rows_array_begin(&ids);
    wq_sched_rows_array_begin(&delays);
    wq_sched_rows_array_begin(&errors);
    for (int i = 0; i < rows; i++)
        if (post_prepare(cfg, r, i, &p[i]) != 0) {
            wq_log_warn(COMPONENT, "delivery %s: hook URL '%s' is not "
                "https; dropped", wq_store_value(r, i, C_ID),
                wq_store_value(r, i, C_URL));
            wq_sched_rows_array_add(&ok, wq_store_value(r, i, C_ID));
            wq_metric_inc(h->st->hooks_rejected, 1);
            nok++;
        }
    post_all(h, p, rows);
    for (int i = 0; i < rows; i++) {
        const char *id = wq_store_value(r, i, C_ID);
        struct wq_backoff b = {
            .base_ms = cfg->hooks.backoff_base_ms,
            .cap_ms = cfg->hooks.backoff_cap_ms,
            .factor = 2, .jitter = WQ_JITTER_EQUAL, .max_attempts = 0,
        };
        int attempts = atoi(wq_store_value(r, i, C_ATTEMPTS)) + 1;
        char why[WQ_ERRLEN], delay[24];
        int64_t ms;

        if (p[i].easy == NULL)
            continue;
        if (p[i].started && p[i].code == CURLE_OK && p[i].status >= 200
            && p[i].status < 300) {
            wq_sched_rows_array_add(&ok, id);
            wq_metric_inc(h->st->hooks_delivered, 1);
            nok++;
            continue;
        }
        ms = wq_backoff_delay_ms(&b, (uint32_t)attempts,
            wq_backoff_rand01());
        snprintf(delay, sizeof delay, "%lld", (long long)ms);
        post_error(&p[i], why, sizeof why);
        wq_log_warn(COMPONENT, "delivery %s to %s failed (attempt %d): %s; "
            "next in %lld ms", id, wq_store_value(r, i, C_URL), attempts,
            why, (long long)ms);
        wq_sched_rows_array_add(&ids, id);
        wq_sched_rows_array_add(&delays, delay);
        wq_sched_rows_array_add(&errors, why);
        wq_metric_inc(h->st->hooks_failed, 1);
        nretry++;
    }
    wq_sched_rows_array_end(&ok);
    wq_sched_rows_array_end(&ids);
    wq_sched_rows_array_end(&delays);
    wq_sched_rows_array_end(&errors);
    if (nretry > 0) {
        const char *v[3] = { ids.data, delays.data, errors.data };

        rc = wq_store_sched_query(h->store, WQ_SCHED_SQL_HOOKS_RETRY, v, &u,
            err, errlen);
        wq_store_rows_free(u);
        if (rc != 0) {
            wq_sched_rows_rollback(h->store);
            goto out;
        }
        *more = 0;      /* the failed ones are not due again at once */
    }
    if ((rc = wq_sched_rows_round_settle(h->store,
        WQ_SCHED_SQL_HOOKS_DELIVERED, &ok, nok, err, errlen)) != 0) {
        wq_sched_rows_rollback(h->store);
        goto out;
    }
    *done = (int)(nok + nretry);
    if (nok > 0)
        wq_log_debug(COMPONENT, "delivered %zu completion hook(s)", nok);
out:
    for (int i = 0; i < rows; i++)
        post_free(&p[i]);
    free(p);
    wq_store_rows_free(r);
    wq_buf_free(&ok);
    wq_buf_free(&ids);
    wq_buf_free(&delays);
    wq_buf_free(&errors);
    return rc;
}

/* ---- the thread ------------------------------------------------------------ */

static void
on_notify(const char *channel, const char *payload, void *user)
{
    struct wq_sched_hooks *h = user;

    (void)channel;
    if (payload != NULL && strcmp(payload, "hooks") == 0)
        h->notified = 1;
}

static void
store_down(struct wq_sched_hooks *h, const char *why)
{
    if (h->store_up)
        wq_log_warn(COMPONENT, "PostgreSQL: %s; reconnecting", why);
    h->store_up = 0;
    wq_reconnect_ok(&h->retry);
    wq_reconnect_hold(&h->retry, BACKOFF_MIN_MS);
}

/* Opens or checks the connection, its schema, and LISTENs. */
static void
store_up(struct wq_sched_hooks *h)
{
    struct wq_store_opts so;
    char err[WQ_ERRLEN];
    int rc;

    if (!wq_reconnect_due(&h->retry))
        return;
    wq_config_store_opts(h->cfg, &so);
    if (h->store == NULL)
        rc = wq_store_open_opts(&so, &h->store, err, sizeof err);
    else
        rc = wq_store_ping(h->store, err, sizeof err);
    if (rc == 0)        /* the loop logs a schema that needs migrating */
        rc = wq_migrate_check(h->store, err, sizeof err);
    if (rc == 0)
        rc = wq_store_listen(h->store, "workq_scheduler", err,
            sizeof err);
    if (rc != 0) {
        if (h->retry.step_ms >= BACKOFF_MAX_MS)
            wq_log_debug(COMPONENT, "PostgreSQL: %s", err);
        wq_reconnect_failed(&h->retry);
        return;
    }
    h->store_up = 1;
    h->notified = 1;        /* look at once */
    wq_reconnect_ok(&h->retry);
}

/* Milliseconds until the earliest delivery is due (0: now), -1: none. */
static int64_t
next_ms(struct wq_sched_hooks *h, char *err, size_t errlen)
{
    struct pg_result *r;
    int64_t ms;
    int rc;

    if ((rc = wq_store_sched_query(h->store, WQ_SCHED_SQL_HOOKS_NEXT, NULL,
        &r, err, errlen)) != 0)
        return rc == WQ_ESTORE ? -2 : -3;
    ms = wq_store_isnull(r, 0, 0) ? -1
        : strtoll(wq_store_value(r, 0, 0), NULL, 10);
    wq_store_rows_free(r);
    return ms < -1 ? 0 : ms;
}

static void *
thread_main(void *arg)
{
    struct wq_sched_hooks *h = arg;
    char err[WQ_ERRLEN], drain[64];

    wq_daemon_block_signals();      /* signals are the main thread's */
    while (!atomic_load(&h->stop)) {
        int64_t ms = h->cfg->scheduler.poll_interval_ms, due;
        struct pollfd pfd[2];
        int nfd = 1;

        if (!h->store_up)
            store_up(h);
        if (h->store_up) {
            int more = 0, done = 0, rc = 0;

            wq_store_notifies(h->store, on_notify, h);
            h->notified = 0;
            if ((due = next_ms(h, err, sizeof err)) == -2)
                store_down(h, err);
            else if (due == -3)
                rc = -1;
            else if (due == 0)
                rc = deliver(h, &more, &done, err, sizeof err);
            if (rc == WQ_ESTORE)
                store_down(h, err);
            else if (rc != 0) {
                if (due != -3)
                    wq_log_warn(COMPONENT, "completion hooks: %s", err);
                h->hold_ms = h->hold_ms == 0 ? HOLD_MIN_MS : h->hold_ms * 2;
                if (h->hold_ms > h->cfg->scheduler.poll_interval_ms)
                    h->hold_ms = h->cfg->scheduler.poll_interval_ms;
                ms = h->hold_ms;
            } else if (due == 0 && done == 0) {
                /* due rows held by another scheduler's round: wait, a
                 * little longer each time */
                h->hold_ms = h->hold_ms == 0 ? HOLD_MIN_MS : h->hold_ms * 2;
                if (h->hold_ms > h->cfg->scheduler.poll_interval_ms)
                    h->hold_ms = h->cfg->scheduler.poll_interval_ms;
                ms = h->hold_ms;
            } else {
                h->hold_ms = 0;
                if (more)
                    continue;   /* a full batch: on at once */
                if (due > 0 && due < ms)
                    ms = due;
                else if (due == 0)
                    ms = 0;     /* look again (the failed ones moved) */
            }
        }
        if (!h->store_up) {
            int64_t w = wq_reconnect_wait_ms(&h->retry);

            ms = w < ms ? w : ms;
        }
        if (atomic_load(&h->stop))
            break;
        if (h->store_up && ms > 0) {
            /* what arrived while the round ran (libpq read it) */
            wq_store_notifies(h->store, on_notify, h);
            if (h->notified)
                continue;
        }
        pfd[0].fd = h->wake[0];
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;
        if (h->store_up && wq_store_socket(h->store) >= 0) {
            pfd[1].fd = wq_store_socket(h->store);
            pfd[1].events = POLLIN;
            pfd[1].revents = 0;
            nfd = 2;
        }
        /* sleeps until due, or a "hooks" notification (others, which
         * the loop's channel carries too, only drain) */
        {
            uint64_t until = wq_clock_mono_ns() + (uint64_t)ms * 1000000u;

            for (;;) {
                int64_t left = wq_clock_ms_until(until);

                if (left < 0)
                    left = 0;
                if (poll(pfd, (nfds_t)nfd, (int)left) < 0 && errno != EINTR)
                    break;
                if (pfd[0].revents != 0) {
                    while (read(h->wake[0], drain, sizeof drain) > 0)
                        ;
                    break;
                }
                if (nfd == 2 && pfd[1].revents != 0) {
                    if (wq_store_consume(h->store, err, sizeof err) != 0) {
                        store_down(h, err);
                        break;
                    }
                    wq_store_notifies(h->store, on_notify, h);
                    if (h->notified)
                        break;
                }
                if (left == 0)
                    break;
            }
        }
    }
    atomic_store(&h->ended, 1);
    return NULL;
}

int
wq_sched_hooks_start(struct wq_sched_hooks *h, char *err, size_t errlen)
{
    int rc;

    if ((rc = pthread_create(&h->thread, NULL, thread_main, h)) != 0)
        return wq_seterr(err, errlen, WQ_EIO, "completion hooks: cannot "
            "start a thread: %s", strerror(rc));
    h->started = 1;
    return 0;
}

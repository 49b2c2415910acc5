/*
 * handler_http.c - the http handler kind (handler.h): each task is POSTed
 * to the handler's URL, and the answer is its outcome.
 *
 * Transfers run on libcurl's multi interface, one multi handle per
 * handler thread (a thread-local, freed when the thread ends): the
 * thread drives its transfer with curl_multi_poll(), which also waits on
 * the task's cancel descriptors, so a cancel or the worker's drain stops
 * a transfer at once.  The multi handle keeps the thread's connections
 * open between tasks (keep-alive): CACHE_CONNECTIONS at most, one per
 * host at a time, so the worker holds at most concurrency x
 * CACHE_CONNECTIONS connections to receivers.
 *
 * The request: body = the payload, headers X-Workq-Id, X-Workq-Key and
 * X-Workq-Type (percent-encoded: a key may hold any UTF-8, and a header
 * must not), X-Workq-Queue, X-Workq-Attempt, X-Workq-Max-Attempts,
 * traceparent (the task's own, when it is well-formed), and, with a
 * secret, X-Workq-Timestamp (Unix seconds) and X-Workq-Signature
 * "v1=" + hex HMAC-SHA256(secret, TIMESTAMP "." BODY), so that a
 * receiver can tell the task came from a worker that knows the secret
 * and refuse replays of old timestamps.  TLS is verified (peer and
 * host), only http and https are spoken, redirects are followed only when
 * configured (and then only to https, at most 3).
 *
 * The outcome: 2xx succeeds with the body as result (max_output bytes
 * kept, a note when cut); 408, 429 and 5xx, a timeout and every
 * transport error (refused, reset, closed mid-body, TLS) fail and are
 * retried, at Retry-After when the answer has one (res->retry_after_ms);
 * 3xx not followed and other 4xx fail for good with the status and the
 * start of the body.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "alloc.h"
#include "clock.h"
#include "handler.h"
#include "log.h"
#include "sign.h"
#include "trace.h"

#define COMPONENT          "http"
#define CACHE_CONNECTIONS  4
#define DEFAULT_TIMEOUT_MS 60000    /* a handler without a timeout */
#define CONNECT_TIMEOUT_MS 10000
#define ERROR_BODY_MAX     200      /* bytes of a refusal in the error */
#define MAX_REDIRECTS      3

static pthread_key_t multi_key;
static pthread_once_t multi_once = PTHREAD_ONCE_INIT;

static void
multi_free(void *m)
{
    curl_multi_cleanup(m);
}

static void
multi_key_init(void)
{
    if (pthread_key_create(&multi_key, multi_free) != 0)
        abort();
}

/* This thread's multi handle, made on first use. */
static CURLM *
thread_multi(void)
{
    CURLM *m;

    pthread_once(&multi_once, multi_key_init);
    if ((m = pthread_getspecific(multi_key)) != NULL)
        return m;
    if ((m = curl_multi_init()) == NULL)
        abort();    /* alloc.h */
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)CACHE_CONNECTIONS);
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
    if (pthread_setspecific(multi_key, m) != 0)
        abort();
    return m;
}

int
wq_handler_http_global_init(char *err, size_t errlen)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);

    if (rc != CURLE_OK)
        return wq_seterr(err, errlen, WQ_ECONFIG, "libcurl: %s",
            curl_easy_strerror(rc));
    return 0;
}

/* What the answer brings while it arrives. */
struct answer {
    struct wq_buf *body;
    size_t max, total;
};

static size_t
on_body(char *p, size_t size, size_t n, void *user)
{
    struct answer *a = user;
    size_t len = size * n, keep = 0;

    if (a->body->len < a->max)
        keep = a->max - a->body->len < len ? a->max - a->body->len : len;
    if (keep > 0 && wq_buf_append(a->body, p, keep) != 0)
        abort();    /* alloc.h */
    a->total += len;
    return len;
}

/* A header value: percent-encoded text (curl_easy_escape), malloc'd. */
static char *
escaped(CURL *e, const char *s)
{
    char *x = curl_easy_escape(e, s, 0), *out;

    if (x == NULL)
        abort();
    out = xstrdup(x);
    curl_free(x);
    return out;
}

void
wq_handler_http_sign(const char *secret, const char *timestamp,
    const void *body, size_t len, char out[65])
{
    wq_sign_hmac_sha256(secret, timestamp, body, len, out);
}

/* Drains an eventfd-like descriptor (a stale wakeup). */
static void
drain(int fd)
{
    uint64_t v;

    if (read(fd, &v, sizeof v) < 0)
        (void)0;
}

void
wq_handler_http_run(const struct wq_httph_conf *c,
    const struct wq_handler_ctx *ctx, struct wq_handler_result *res)
{
    const struct wq_envelope *env = ctx->env;
    CURLM *m = thread_multi();
    CURL *e = curl_easy_init();
    struct curl_slist *hdr = NULL;
    struct curl_waitfd wfd[2];
    struct answer ans;
    char *key, *type, errbuf[CURL_ERROR_SIZE] = "";
    const char *trace = NULL;
    int64_t left_ms, timeout_ms;
    unsigned nwfd = 0;
    long status = 0;
    curl_off_t retry_after = 0;
    CURLcode done = CURLE_OK;
    CURLMsg *msg;
    int running, got = 0, qn;
    enum wq_outcome stop = WQ_OUTCOME_SUCCEEDED;

    if (e == NULL)
        abort();
    memset(&ans, 0, sizeof ans);
    ans.body = &res->result;
    ans.max = c->max_output;

    key = escaped(e, env->key);
    type = escaped(e, env->type);
    hdr = wq_header_add(hdr, "Content-Type: application/octet-stream");
    hdr = wq_header_add(hdr, "Expect:");   /* no 100-continue round trip */
    hdr = wq_header_add(hdr, "X-Workq-Id: %s", ctx->task_id);
    hdr = wq_header_add(hdr, "X-Workq-Key: %s", key);
    hdr = wq_header_add(hdr, "X-Workq-Queue: %s", env->queue);
    hdr = wq_header_add(hdr, "X-Workq-Type: %s", type);
    hdr = wq_header_add(hdr, "X-Workq-Attempt: %" PRIu32, ctx->attempt);
    hdr = wq_header_add(hdr, "X-Workq-Max-Attempts: %" PRIu32,
        ctx->max_attempts);
    if ((trace = wq_trace_parent(env)) != NULL)
        hdr = wq_header_add(hdr, "traceparent: %s", trace);
    hdr = wq_sign_headers(hdr, c->secret, env->payload, env->payload_len);
    free(key);
    free(type);

    timeout_ms = DEFAULT_TIMEOUT_MS;
    if (ctx->deadline_ns != 0) {
        uint64_t now = wq_clock_mono_ns();

        timeout_ms = ctx->deadline_ns > now
            ? (int64_t)((ctx->deadline_ns - now) / 1000000u) : 1;
        if (timeout_ms < 1)
            timeout_ms = 1;
    }
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, env->payload_len > 0
        ? (const char *)env->payload : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
        (curl_off_t)env->payload_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "workq-worker/" WQ_VERSION);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &ans);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms
        < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS));
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->tls_ca != NULL && c->tls_ca[0] != '\0')
        curl_easy_setopt(e, CURLOPT_CAINFO, c->tls_ca);
    if (c->follow_redirects) {
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
        curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    }
    if (curl_multi_add_handle(m, e) != CURLM_OK)
        abort();

    if (ctx->cancel_fd >= 0) {
        wfd[nwfd].fd = ctx->cancel_fd;
        wfd[nwfd].events = CURL_WAIT_POLLIN;
        wfd[nwfd++].revents = 0;
    }
    if (ctx->task_cancel_fd >= 0) {
        wfd[nwfd].fd = ctx->task_cancel_fd;
        wfd[nwfd].events = CURL_WAIT_POLLIN;
        wfd[nwfd++].revents = 0;
    }
    for (;;) {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        while ((msg = curl_multi_info_read(m, &qn)) != NULL)
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == e) {
                done = msg->data.result;
                got = 1;
            }
        if (got)
            break;
        left_ms = 1000;
        for (unsigned i = 0; i < nwfd; i++)
            wfd[i].revents = 0;
        if (curl_multi_poll(m, wfd, nwfd, (int)left_ms, NULL) != CURLM_OK)
            break;
        if (ctx->cancel_fd >= 0 && wfd[0].revents != 0) {
            stop = WQ_OUTCOME_ABANDONED;
            break;
        }
        if (ctx->task_cancel_fd >= 0 && wfd[nwfd - 1].revents != 0) {
            if (ctx->cancelled != NULL && atomic_load(ctx->cancelled)) {
                stop = WQ_OUTCOME_CANCELLED;
                break;
            }
            drain(ctx->task_cancel_fd);
        }
    }
    if (got && done == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &retry_after);
    }
    curl_multi_remove_handle(m, e);

    if (stop == WQ_OUTCOME_ABANDONED) {
        wq_handler_result_fail(res, stop, "the worker stopped waiting for "
            "%s", c->url);
    } else if (stop == WQ_OUTCOME_CANCELLED) {
        wq_handler_result_fail(res, stop, "cancelled by an operator");
    } else if (!got) {
        wq_handler_result_fail(res, WQ_OUTCOME_FAILED, "POST %s: libcurl's "
            "multi interface failed", c->url);
    } else if (done == CURLE_OPERATION_TIMEDOUT) {
        wq_handler_result_fail(res, WQ_OUTCOME_TIMEOUT, "POST %s: no whole "
            "answer within %lld ms: %s", c->url, (long long)timeout_ms,
            errbuf[0] != '\0' ? errbuf : curl_easy_strerror(done));
    } else if (done != CURLE_OK) {
        wq_handler_result_fail(res, WQ_OUTCOME_FAILED, "POST %s: %s", c->url,
            errbuf[0] != '\0' ? errbuf : curl_easy_strerror(done));
    } else if (status >= 200 && status <= 299) {
        res->outcome = WQ_OUTCOME_SUCCEEDED;
        if (ans.total > res->result.len)
            res->note = xasprintf("answer cut at max_output: %zu of %zu "
                "bytes kept", res->result.len, ans.total);
    } else {
        char *start = wq_handler_text_sanitize(res->result.data,
            res->result.len, ERROR_BODY_MAX);
        int again = status == 408 || status == 429 || status >= 500;

        wq_handler_result_fail(res, again ? WQ_OUTCOME_FAILED
            : WQ_OUTCOME_PERMANENT, "POST %s: HTTP %ld%s%s%s", c->url,
            status, status >= 300 && status <= 399 ? " (a redirect, not "
            "followed: follow_redirects is false)" : "",
            start[0] != '\0' ? ": " : "", start);
        free(start);
        if (again && retry_after > 0)
            res->retry_after_ms = (int64_t)retry_after * 1000;
    }
    if (res->outcome != WQ_OUTCOME_SUCCEEDED)
        wq_buf_free(&res->result);
    curl_easy_cleanup(e);
    curl_slist_free_all(hdr);
}

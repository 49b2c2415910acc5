/*
 * handler_builtin.c - the handlers built into the worker, for tests,
 * demos and benchmarks: noop, echo, ack, sleep and fail (see handler.h).
 * ack answers a small JSON result whatever the payload (the benchmark's
 * handler: a task that takes data in and gives a little back).
 *
 * Each is configured by an options string of "key=value" words, and sleep
 * and fail also read their settings from the task's payload, so that one
 * configured type serves many test cases ("until=3" fails the first two
 * attempts).  They own nothing but their settings and run on the calling
 * thread; sleep is the only one that waits, and it wakes for the worker's
 * cancel descriptor and the task's deadline.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "backoff.h"
#include "clock.h"
#include "handler.h"

enum builtin_kind { B_NOOP, B_ECHO, B_SLEEP, B_FAIL, B_ACK };

struct wq_builtin {
    enum builtin_kind kind;
    size_t max_output;
    int64_t ms;             /* sleep: -1 = from the payload */
    long until;             /* fail: fail while attempt < until; 0: off */
    double p;               /* fail: probability; < 0: off */
    int permanent;          /* fail: for good */
};

/* Settings a string can carry; -1 / < 0 where not given. */
struct settings {
    int64_t ms;
    long until;
    double p;
    int permanent;
};

static int
is_sep(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ','
        || c == ';';
}

/*
 * parse_settings reads "ms=100 until=3, p=0.5 permanent" (words split by
 * blanks, commas or semicolons) from the n bytes at s.  Returns 0, or -1
 * with the offending word in bad (at most badlen bytes).
 */
static int
parse_settings(const char *s, size_t n, struct settings *out, char *bad,
    size_t badlen)
{
    const char *p = s, *end = s + n;

    out->ms = -1;
    out->until = -1;
    out->p = -1;
    out->permanent = 0;
    while (p < end) {
        const char *w = p, *eq;
        char word[64], *e;
        size_t len;

        while (w < end && is_sep(*w))
            w++;
        if (w == end)
            break;
        p = w;
        while (p < end && !is_sep(*p))
            p++;
        len = (size_t)(p - w);
        if (len >= sizeof word || memchr(w, '\0', len) != NULL)
            goto bad;
        memcpy(word, w, len);
        word[len] = '\0';
        eq = strchr(word, '=');
        errno = 0;
        if (strcmp(word, "permanent") == 0) {
            out->permanent = 1;
        } else if (eq != NULL && strncmp(word, "ms=", 3) == 0) {
            long long v = strtoll(eq + 1, &e, 10);

            if (errno != 0 || *e != '\0' || e == eq + 1 || v < 0)
                goto bad;
            out->ms = v;
        } else if (eq != NULL && strncmp(word, "until=", 6) == 0) {
            long v = strtol(eq + 1, &e, 10);

            if (errno != 0 || *e != '\0' || e == eq + 1 || v < 0)
                goto bad;
            out->until = v;
        } else if (eq != NULL && strncmp(word, "p=", 2) == 0) {
            double v = strtod(eq + 1, &e);

            if (errno != 0 || *e != '\0' || e == eq + 1 || !(v >= 0)
                || v > 1)
                goto bad;
            out->p = v;
        } else {
            goto bad;
        }
        continue;
bad:
        if (bad != NULL && badlen > 0) {
            size_t m = len < badlen - 1 ? len : badlen - 1;

            memcpy(bad, w, m);
            bad[m] = '\0';
        }
        return -1;
    }
    return 0;
}

int
wq_handler_builtin_new(const char *name, const char *options,
    size_t max_output, struct wq_builtin **out, char *err, size_t errlen)
{
    static const char *const names[] = { "noop", "echo", "sleep", "fail",
        "ack" };
    struct settings st;
    struct wq_builtin *b;
    char bad[64];
    int kind = -1;

    *out = NULL;
    for (size_t i = 0; i < WQ_ARRAY_LEN(names); i++)
        if (strcmp(name, names[i]) == 0)
            kind = (int)i;
    if (kind < 0)
        return wq_seterr(err, errlen, WQ_ECONFIG, "unknown builtin \"%s\" "
            "(noop, echo, ack, sleep, fail)", name);
    if (parse_settings(options, strlen(options), &st, bad, sizeof bad) != 0)
        return wq_seterr(err, errlen, WQ_ECONFIG, "builtin %s: bad option "
            "\"%s\" (ms=N, until=N, p=0..1, permanent)", name, bad);
    if ((kind != B_SLEEP && st.ms >= 0)
        || (kind != B_FAIL && (st.until >= 0 || st.p >= 0 || st.permanent)))
        return wq_seterr(err, errlen, WQ_ECONFIG, "builtin %s: options \"%s\" "
            "do not apply to it", name, options);
    b = xcalloc(1, sizeof *b);
    b->kind = (enum builtin_kind)kind;
    b->max_output = max_output;
    b->ms = st.ms;
    b->until = st.until > 0 ? st.until : 0;
    b->p = st.p;
    b->permanent = st.permanent;
    *out = b;
    return 0;
}

void
wq_handler_builtin_free(struct wq_builtin *b)
{
    free(b);
}

/* The payload as sleep's milliseconds: "250" or "ms=250"; -1 if not. */
static int64_t
payload_ms(const struct wq_envelope *env)
{
    struct settings st;
    size_t n = env->payload_len;
    const char *p = (const char *)env->payload;
    int64_t v = 0;
    size_t i;

    if (n == 0 || n > 32)
        return -1;
    for (i = 0; i < n && p[i] >= '0' && p[i] <= '9'; i++)
        v = v * 10 + (p[i] - '0');
    if (i == n)
        return v;
    if (parse_settings(p, n, &st, NULL, 0) == 0 && st.ms >= 0)
        return st.ms;
    return -1;
}

static void
run_sleep(const struct wq_builtin *b, const struct wq_handler_ctx *ctx,
    struct wq_handler_result *res)
{
    int64_t ms = b->ms >= 0 ? b->ms : payload_ms(ctx->env);
    uint64_t end;
    int timed_out = 0;

    if (ms < 0)
        ms = 0;
    end = wq_clock_mono_ns() + (uint64_t)ms * 1000000u;
    if (ctx->deadline_ns != 0 && ctx->deadline_ns < end) {
        end = ctx->deadline_ns;
        timed_out = 1;
    }
    for (;;) {
        struct pollfd pfd[2] = {
            { ctx->cancel_fd, POLLIN, 0 },
            { ctx->task_cancel_fd, POLLIN, 0 },
        };
        int left = wq_clock_ms_until(end);
        uint64_t v;

        /* ms_until rounds down: wait out the last partial millisecond */
        if (left == 0 && wq_clock_mono_ns() < end)
            left = 1;
        if (left == 0)
            break;
        /* a negative fd is ignored by poll(2) */
        if (poll(pfd, 2, left) <= 0)
            continue;
        if (pfd[0].revents != 0) {
            wq_handler_result_fail(res, WQ_OUTCOME_ABANDONED,
                "sleep: the worker is stopping");
            return;
        }
        if (pfd[1].revents != 0) {
            if (read(ctx->task_cancel_fd, &v, sizeof v) < 0)
                (void)0;    /* EAGAIN: drained already */
            if (ctx->cancelled != NULL && atomic_load(ctx->cancelled)) {
                wq_handler_result_fail(res, WQ_OUTCOME_CANCELLED,
                    "sleep: cancelled");
                return;
            }
        }
    }
    if (timed_out) {
        wq_handler_result_fail(res, WQ_OUTCOME_TIMEOUT,
            "sleep: %lld ms did not fit before the timeout", (long long)ms);
        return;
    }
    res->outcome = WQ_OUTCOME_SUCCEEDED;
}

static void
run_fail(const struct wq_builtin *b, const struct wq_handler_ctx *ctx,
    struct wq_handler_result *res)
{
    struct settings st;
    long until = b->until;
    double p = b->p;
    int permanent = b->permanent;

    /* The payload may say it too ("until=3"); it wins over options. */
    if (ctx->env->payload_len > 0 && ctx->env->payload_len < 256
        && parse_settings((const char *)ctx->env->payload,
        ctx->env->payload_len, &st, NULL, 0) == 0) {
        if (st.until >= 0)
            until = st.until;
        if (st.p >= 0)
            p = st.p;
        permanent |= st.permanent;
    }
    if (permanent) {
        wq_handler_result_fail(res, WQ_OUTCOME_PERMANENT,
            "fail: permanent failure (attempt %u)", ctx->attempt);
        return;
    }
    if (until > 0 && ctx->attempt < (uint32_t)until) {
        wq_handler_result_fail(res, WQ_OUTCOME_FAILED,
            "fail: attempt %u of the %ld that fail", ctx->attempt,
            until - 1);
        return;
    }
    if (until <= 0 && p < 0) {
        /* "fail" with nothing said fails, always: it is its name. */
        wq_handler_result_fail(res, WQ_OUTCOME_FAILED, "fail: always fails");
        return;
    }
    if (p > 0 && wq_backoff_rand01() < p) {
        wq_handler_result_fail(res, WQ_OUTCOME_FAILED,
            "fail: failed with probability %g", p);
        return;
    }
    res->outcome = WQ_OUTCOME_SUCCEEDED;
}

void
wq_handler_builtin_run(const struct wq_builtin *b,
    const struct wq_handler_ctx *ctx, struct wq_handler_result *res)
{
    size_t n;

    switch (b->kind) {
    case B_NOOP:
        res->outcome = WQ_OUTCOME_SUCCEEDED;
        break;
    case B_ECHO:
        n = ctx->env->payload_len;
        if (n > b->max_output) {
            n = b->max_output;
            res->note = xasprintf("result cut at %zu of %zu bytes", n,
                ctx->env->payload_len);
        }
        if (wq_buf_append(&res->result, ctx->env->payload, n) != 0)
            abort();    /* out of memory: as xmalloc would */
        res->outcome = WQ_OUTCOME_SUCCEEDED;
        break;
    case B_ACK: {
        /* {"status":"ok","payload_bytes":N}: about 30 bytes */
        char ack[64];
        int len = snprintf(ack, sizeof ack, "{\"status\":\"ok\","
            "\"payload_bytes\":%zu}", ctx->env->payload_len);

        n = (size_t)len < b->max_output ? (size_t)len : b->max_output;
        if (wq_buf_append(&res->result, ack, n) != 0)
            abort();    /* out of memory: as xmalloc would */
        res->outcome = WQ_OUTCOME_SUCCEEDED;
        break;
    }
    case B_SLEEP:
        run_sleep(b, ctx, res);
        break;
    case B_FAIL:
        run_fail(b, ctx, res);
        break;
    }
}

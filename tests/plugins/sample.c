/*
 * sample.c - a workq handler plugin for the tests, written the way a
 * plugin author would: against shared/workq_plugin.h alone, in C99.
 *
 * init keeps its options string; run answers by payload: "fail" fails
 * (retryable), "permanent" fails for good, "sleep" sleeps 50 ms, "big"
 * writes 3 MiB (to test the result bound), "trace" answers the task's
 * traceparent, "long" reports progress every 50 ms and polls for a
 * cancel for up to 60 s (the host functions of workq 0.10); anything else
 * succeeds with the result "sample(<options>) <queue>/<type> attempt
 * <n>: <payload>".
 */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "workq_plugin.h"

struct state {
    char *options;
    const struct workq_plugin_host *host;
};

static int
sample_init(void **state, const char *options,
    const struct workq_plugin_host *host, char *err, size_t errlen)
{
    struct state *s;

    if (strcmp(options, "refuse") == 0) {
        snprintf(err, errlen, "told to refuse");
        return 1;
    }
    if ((s = calloc(1, sizeof *s)) == NULL || (s->options =
        malloc(strlen(options) + 1)) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return 1;
    }
    strcpy(s->options, options);
    s->host = host;
    host->log(1, "sample plugin ready");
    *state = s;
    return 0;
}

static int
is(const struct workq_plugin_task *t, const char *word)
{
    return t->payload_len == strlen(word)
        && memcmp(t->payload, word, t->payload_len) == 0;
}

static int
sample_run(void *state, const struct workq_plugin_task *t,
    struct workq_plugin_output *out)
{
    struct state *s = state;
    char head[512];
    int n;

    if (t->struct_size < sizeof *t)
        return WORKQ_PLUGIN_PERMANENT;
    if (is(t, "fail")) {
        s->host->error(out, "sample: asked to fail");
        return WORKQ_PLUGIN_RETRY;
    }
    if (is(t, "permanent")) {
        s->host->error(out, "sample: asked to fail for good");
        return WORKQ_PLUGIN_PERMANENT;
    }
    if (is(t, "sleep")) {
        struct timespec ts = { 0, 50 * 1000000L };

        nanosleep(&ts, NULL);
    }
    if (is(t, "trace")) {
        const char *tp = t->traceparent != NULL ? t->traceparent : "none";

        s->host->write(out, tp, strlen(tp));
        return WORKQ_PLUGIN_OK;
    }
    if (is(t, "long")) {
        struct timespec ts = { 0, 50 * 1000000L };
        char msg[64];

        if (s->host->struct_size < offsetof(struct workq_plugin_host,
            cancelled) + sizeof s->host->cancelled)
            return WORKQ_PLUGIN_PERMANENT;
        for (int i = 0; i < 1200; i++) {
            if (s->host->cancelled(out)) {
                s->host->error(out, "sample: stopped at a cancel");
                return WORKQ_PLUGIN_RETRY;
            }
            snprintf(msg, sizeof msg, "step %d of 1200", i);
            s->host->progress(out, i / 12, msg);
            nanosleep(&ts, NULL);
        }
        return WORKQ_PLUGIN_OK;
    }
    if (is(t, "big")) {
        static char block[65536];

        memset(block, 'x', sizeof block);
        for (int i = 0; i < 48; i++)
            if (s->host->write(out, block, sizeof block) != 0)
                break;      /* over the bound: stop producing */
        return WORKQ_PLUGIN_OK;
    }
    n = snprintf(head, sizeof head, "sample(%s) %s/%s attempt %u: ",
        s->options, t->queue, t->type, (unsigned)t->attempt);
    s->host->write(out, head, (size_t)n);
    s->host->write(out, t->payload, t->payload_len);
    return WORKQ_PLUGIN_OK;
}

static void
sample_fini(void *state)
{
    struct state *s = state;

    free(s->options);
    free(s);
}

static const struct workq_plugin plugin = {
    WORKQ_PLUGIN_ABI_VERSION,
    WORKQ_PLUGIN_THREAD_SAFE,
    "sample",
    sample_init,
    sample_run,
    sample_fini,
};

const struct workq_plugin *workq_plugin_entry(void);

const struct workq_plugin *
workq_plugin_entry(void)
{
    return &plugin;
}

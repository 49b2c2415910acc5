/*
 * bad_abi.c - a plugin built for another ABI version, which the worker
 * must refuse at load (test_handler_plugin.c).
 */
#include <stddef.h>

#include "workq_plugin.h"

static int
run(void *state, const struct workq_plugin_task *t,
    struct workq_plugin_output *out)
{
    (void)state;
    (void)t;
    (void)out;
    return WORKQ_PLUGIN_OK;
}

static const struct workq_plugin plugin = {
    WORKQ_PLUGIN_ABI_VERSION + 41, 0, "bad_abi", NULL, run, NULL,
};

const struct workq_plugin *workq_plugin_entry(void);

const struct workq_plugin *
workq_plugin_entry(void)
{
    return &plugin;
}

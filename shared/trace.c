/*
 * trace.c - the task's W3C traceparent, checked (see trace.h).
 */
#include <string.h>

#include "trace.h"

int
wq_trace_ok(const char *s)
{
    size_t n = strlen(s);

    if (n < 16 || n > 128)
        return 0;
    for (; *s != '\0'; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')
            || *s == '-'))
            return 0;
    return 1;
}

const char *
wq_trace_parent(const struct wq_envelope *env)
{
    for (size_t i = 0; i < env->nheaders; i++)
        if (strcmp(env->headers[i].name, "traceparent") == 0)
            return wq_trace_ok(env->headers[i].value)
                ? env->headers[i].value : NULL;
    return NULL;
}

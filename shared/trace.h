/*
 * trace.h - the W3C Trace Context of a task (issue 18, "Trace context").
 *
 * A traceparent given to the HTTP API, the CLI or the C client travels as
 * the envelope header "traceparent" (docs/wire-format.md).  This module
 * picks it out for those who pass it on: the exec handler (environment
 * variable TRACEPARENT), the http handler (its header), the log (every
 * line about the task, log.h wq_log_task_begin).  Plugins and process
 * handlers get it among the task's headers.  Pure; thread-safe.
 */
#ifndef WQ_TRACE_H
#define WQ_TRACE_H

#include "envelope.h"

/*
 * wq_trace_parent returns the task's traceparent header value when it is
 * well-formed enough to pass on (16..128 characters, lowercase hex digits
 * and dashes: no space, quote or newline can ride along), else NULL.  The
 * string belongs to env.
 */
const char *wq_trace_parent(const struct wq_envelope *env);

/* 1 if s has a traceparent's characters and length (as above). */
int wq_trace_ok(const char *s);

#endif

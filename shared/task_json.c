/*
 * task_json.c - a task as JSON (see task_json.h): the one builder behind
 * the CLI's `status --json` and the HTTP API's GET /v1/tasks/ID.
 */
#include <stdint.h>

#include "clock.h"
#include "priority.h"
#include "task_json.h"
#include "textout.h"
#include "uuid.h"

json_t *
wq_task_json_str(const char *s)
{
    json_t *j;

    if (s == NULL)
        return json_null();
    if ((j = json_string(s)) == NULL)
        j = json_string("(not UTF-8)");
    return j;
}

/* Short for the fields below. */
static json_t *
str(const char *s)
{
    return wq_task_json_str(s);
}

/* Epoch milliseconds as RFC 3339, or null for 0 (SQL NULL). */
static json_t *
when(int64_t ms)
{
    char buf[40];

    if (ms == 0)
        return json_null();
    return json_string(wq_clock_format_rfc3339(ms, buf, sizeof buf));
}

/* Bytes under "NAME" or "NAME_base64", or "NAME": null when absent. */
static int
bytes(json_t *o, const char *name, const void *p, size_t n)
{
    if (p == NULL)
        return json_object_set_new(o, name, json_null());
    return wq_text_json_set_bytes(o, name, p, n);
}

static json_t *
attempt_json(const struct wq_task_attempt *a)
{
    json_t *x = json_object();

    if (x == NULL)
        return NULL;
    if (json_object_set_new(x, "attempt", json_integer(a->attempt)) != 0
        || json_object_set_new(x, "started_at", when(a->started_at_ms)) != 0
        || json_object_set_new(x, "finished_at",
            when(a->finished_at_ms)) != 0
        || json_object_set_new(x, "duration_ms", a->duration_ms >= 0
            ? json_integer(a->duration_ms) : json_null()) != 0
        || json_object_set_new(x, "worker", str(a->worker)) != 0
        || json_object_set_new(x, "outcome", str(a->outcome)) != 0
        || json_object_set_new(x, "error", str(a->error)) != 0) {
        json_decref(x);
        return NULL;
    }
    return x;
}

json_t *
wq_task_json(const struct wq_task_row *row, const struct wq_task_attempt *v,
    size_t n)
{
    char id[WQ_UUID_STRLEN];
    json_t *o, *h = NULL, *hist;
    int fail = 0;

    if ((o = json_object()) == NULL)
        return NULL;
    wq_uuid_format(row->id, id);
    fail |= json_object_set_new(o, "id", json_string(id));
    fail |= json_object_set_new(o, "queue", str(row->queue));
    fail |= json_object_set_new(o, "type", str(row->type));
    fail |= json_object_set_new(o, "idempotency_key",
        str(row->idempotency_key));
    fail |= json_object_set_new(o, "state",
        str(wq_task_state_name(row->state)));
    fail |= json_object_set_new(o, "priority",
        json_string(wq_priority_name(row->priority)));
    if (row->receipt)       /* on the broker, no worker has claimed it */
        fail |= json_object_set_new(o, "claimed", json_false());
    fail |= json_object_set_new(o, "attempt", json_integer(row->attempt));
    fail |= json_object_set_new(o, "max_attempts",
        json_integer(row->max_attempts));
    fail |= json_object_set_new(o, "run_at", when(row->run_at_ms));
    fail |= json_object_set_new(o, "created_at", when(row->created_at_ms));
    fail |= json_object_set_new(o, "updated_at", when(row->updated_at_ms));
    fail |= json_object_set_new(o, "started_at", when(row->started_at_ms));
    fail |= json_object_set_new(o, "finished_at",
        when(row->finished_at_ms));
    fail |= json_object_set_new(o, "lease_expires_at",
        when(row->lease_expires_at_ms));
    fail |= json_object_set_new(o, "lease_owner", str(row->lease_owner));
    fail |= json_object_set_new(o, "worker", str(row->worker));
    fail |= json_object_set_new(o, "last_error", str(row->last_error));
    if (row->has_progress)
        fail |= json_object_set_new(o, "progress", json_pack("{s:i,s:o,s:o}",
            "percent", row->progress, "message",
            str(row->progress_message), "at", when(row->progress_at_ms)));
    else
        fail |= json_object_set_new(o, "progress", json_null());
    fail |= json_object_set_new(o, "payload_bytes", row->payload != NULL
        ? json_integer((json_int_t)row->payload_len) : json_null());
    fail |= bytes(o, "result", row->result, row->result_len);
    fail |= bytes(o, "payload", row->payload, row->payload_len);
    if (row->headers_json != NULL)
        h = json_loads(row->headers_json, 0, NULL);
    fail |= json_object_set_new(o, "headers", h != NULL ? h
        : json_object());
    if (row->state == WQ_TASK_DEAD)
        fail |= json_object_set_new(o, "dead_published_at",
            when(row->dead_published_at_ms));
    if ((hist = json_array()) == NULL)
        fail = 1;
    for (size_t i = 0; !fail && i < n; i++)
        fail |= json_array_append_new(hist, attempt_json(&v[i]));
    fail |= json_object_set_new(o, "attempts", hist);
    if (fail) {
        json_decref(o);
        return NULL;
    }
    return o;
}

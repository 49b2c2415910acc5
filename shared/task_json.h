/*
 * task_json.h - a task as JSON: the one object that `workq status --json`
 * (and `workq dlq show --json`) prints and GET /v1/tasks/ID answers.
 *
 * It owns the field names and their encodings; the rows come from the
 * store (wq_store_task_get, wq_store_task_attempts) and the output is the
 * caller's.  Bytes (result, payload) use textout.h's encoding: "NAME" for
 * UTF-8, "NAME_base64" otherwise.  Pure: no state, any thread.
 */
#ifndef WQ_TASK_JSON_H
#define WQ_TASK_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "store.h"

/*
 * wq_task_json returns a new object for `row` and its attempt history
 * v[0..n) (v may be NULL when n is 0):
 *
 *   id, queue, type, idempotency_key, state, priority ("high",
 *   "normal" or "low"); claimed (false, only for a
 *   task the broker holds that no worker has claimed yet); attempt,
 *   max_attempts; run_at, created_at, updated_at, started_at,
 *   finished_at, lease_expires_at (RFC 3339 or null); lease_owner,
 *   worker, last_error (text or null); payload_bytes; result and payload
 *   (or result_base64, payload_base64; null when absent); headers (an
 *   object, {} when none); dead_published_at (dead tasks only);
 *   attempts: [{attempt, started_at, finished_at, duration_ms, worker,
 *   outcome, error}].
 *
 * Returns NULL when out of memory (the caller owns the object otherwise:
 * json_decref it).
 */
json_t *wq_task_json(const struct wq_task_row *row,
    const struct wq_task_attempt *v, size_t n);

/* wq_task_json_str returns a text value as a JSON string, or JSON null
 * for NULL; text that is not UTF-8 (the store holds only UTF-8, so this
 * marks a bug, not data) becomes "(not UTF-8)".  NULL when out of
 * memory. */
json_t *wq_task_json_str(const char *s);

#endif

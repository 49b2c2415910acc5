/*
 * taskspec.h - a task described in JSON, as the HTTP API receives it in a
 * request body and `workq submit --batch` reads it from each line:
 *
 *   {"type": "send", "payload": {...}, "idempotency_key": "k1",
 *    "max_attempts": 5, "delay": "30s", "run_at": "2026-11-28T07:43:06Z",
 *    "headers": {"traceparent": "00-..."}, "queue": "emails"}
 *
 * This module owns the JSON schema of a task (which fields, which types)
 * and turns an object into a struct wq_client_task; it leaves the limits
 * of each value to the envelope (envelope.h), which the client and the
 * producer check when they encode, and the meaning of the task to others.
 *
 * Fields:
 *   queue            string; only where the caller allows it (batch lines;
 *                    in the HTTP API the queue is in the path)
 *   type             string, required unless the caller gives a default
 *   payload          any JSON value: a string is taken as its bytes (UTF-8),
 *                    anything else as its compact JSON text
 *   payload_base64   string, standard base64: binary payloads; excludes
 *                    payload
 *   idempotency_key  string
 *   max_attempts     integer 1..2147483647
 *   delay            seconds as a number (fractions allowed) or a duration
 *                    string ("500ms", "30s", "5m", "1h30m")
 *   run_at           RFC 3339 date-time string; excludes delay
 *   headers          object of string values
 *   concurrency_key  string: at most concurrency_limit tasks with this key
 *                    run at once, across every worker (flow control)
 *   concurrency_limit integer 1..100000, with concurrency_key; default 1
 *   unique_for       a unique window, as delay: submits of the same
 *                    idempotency key within it are one task; needs a key
 *   hook             string: the task's completion hook, an https:// URL
 *                    (wq_taskspec_check_hook) POSTed when it ends; sets
 *                    the header workq-hook, which it excludes
 * Unknown fields are rejected, so that a misspelt "max_attempt" never
 * passes silently.
 *
 * All functions are pure (no I/O) and thread-safe on distinct specs.
 */
#ifndef WQ_TASKSPEC_H
#define WQ_TASKSPEC_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "wq.h"
#include "workq.h"

struct json_t;
struct wq_uuid_seq;

/* What the caller supplies when a field is absent. */
struct wq_taskspec_defaults {
    const char *queue;          /* NULL: none */
    int allow_queue;            /* 1: the object may name its queue */
    const char *type;           /* NULL: "type" is required */
    int max_attempts;           /* 0: none (the client's default) */
    /* headers every task gets; the object's own win on equal names */
    const struct wq_client_header *headers;
    size_t nheaders;
};

struct wq_taskspec {
    struct wq_client_task task; /* points into this spec and its JSON */
    struct wq_client_header headers[WQ_HEADERS_MAX];
    struct wq_client_flow flow; /* points into the JSON; zero: none */
    int priority;               /* "priority": WQ_PRIORITY_* (priority.h),
                                   -1 when the task does not say */
    /* private */
    struct json_t *root;        /* a reference held on the parsed JSON */
    char *owned_payload;
};

/*
 * wq_taskspec_parse parses `len` bytes of text holding one JSON object
 * (surrounding whitespace allowed) into *out, applying `def` (may be
 * NULL).  Returns 0 and *out then holds references that
 * wq_taskspec_free() releases; or WQ_EDECODE when the text is not JSON
 * (err "line 1 column 7: ..."), WQ_EINVAL when a field is missing, of the
 * wrong type, unknown or malformed (err "field 'delay': ..."), WQ_ETOOBIG
 * when the payload exceeds WQ_PAYLOAD_MAX or there are too many headers,
 * WQ_ENOMEM.  On failure *out needs no freeing (it may still be freed).
 */
int wq_taskspec_parse(const char *text, size_t len,
    const struct wq_taskspec_defaults *def, struct wq_taskspec *out,
    char *err, size_t errlen);

/*
 * wq_taskspec_from_json is wq_taskspec_parse for an object already
 * parsed (an element of a batch array); it takes a reference of its own
 * on `obj`.  Errors as above, without WQ_EDECODE.
 */
int wq_taskspec_from_json(struct json_t *obj,
    const struct wq_taskspec_defaults *def, struct wq_taskspec *out,
    char *err, size_t errlen);

/* wq_taskspec_free releases what a parsed spec holds and zeroes it.  Safe
 * on a zeroed spec and twice. */
void wq_taskspec_free(struct wq_taskspec *spec);

/*
 * wq_taskspec_envelope fills `env` for a new task from `task`: a fresh
 * UUIDv7 id, attempt 1, created now, and the task's fields borrowed (not
 * copied: `env` is valid while `task` and `hdrs` are); `hdrs` must have
 * room for WQ_HEADERS_MAX entries.  `idtext` receives the id as text,
 * which is also the key when the task has none.  *run_at receives the due
 * time in epoch ms when the task is delayed (a delay, or a run_at in the
 * future), else 0 (a run_at already past is due now).  Then the envelope
 * is validated (wq_envelope_validate).  With `seq` (else NULL), a task
 * without a key that is due now takes the next id of that sequence
 * (uuid.h, wq_uuid_seq_stamp), so that a batch of them is recorded as
 * one range receipt (store.h, wq_store_accept); a refused task takes
 * none.  Returns 0, or
 * WQ_EINVAL / WQ_ETOOBIG with err naming the field, WQ_EIO if no id
 * could be made.  Thread-safe for distinct `seq`s.
 */
int wq_taskspec_envelope(const struct wq_client_task *task,
    struct wq_uuid_seq *seq, struct wq_envelope *env, struct wq_header *hdrs,
    char idtext[WQ_CLIENT_ID_LEN], int64_t *run_at, char *err,
    size_t errlen);

/*
 * wq_taskspec_check_hook checks a completion hook's URL as the scheduler
 * will send it (scheduler/hooks.c): "https://" (any case) and a host,
 * at most WQ_HOOK_URL_MAX bytes, no spaces or control characters.
 * Returns 0 or WQ_EINVAL with err saying why.  Pure.
 */
#define WQ_HOOK_URL_MAX 2048
int wq_taskspec_check_hook(const char *url, char *err, size_t errlen);

/*
 * wq_taskspec_flow_check checks the values of `flow` (NULL: none) for a
 * task whose idempotency key is `key` (NULL: none).  Returns 0 or
 * WQ_EINVAL with err naming the field.  Pure.
 */
int wq_taskspec_flow_check(const struct wq_client_flow *flow,
    const char *key, char *err, size_t errlen);

/*
 * wq_taskspec_flow_apply puts the concurrency key and limit of `flow`
 * (NULL: none; borrowed) into `env` and validates it again.  Returns 0,
 * or as wq_envelope_validate().
 */
int wq_taskspec_flow_apply(const struct wq_client_flow *flow,
    struct wq_envelope *env, char *err, size_t errlen);

/*
 * wq_taskspec_unique_key writes into out (outlen bytes) the key a task
 * of `key` runs under in the unique window that started at start_ms:
 * "KEY@wSTART".  Returns 0, or WQ_ETOOBIG when it would exceed the key's
 * limit (WQ_KEY_MAX).
 */
int wq_taskspec_unique_key(const char *key, int64_t start_ms, char *out,
    size_t outlen, char *err, size_t errlen);

/*
 * wq_taskspec_max_attempts returns the max_attempts a task of `queue`
 * gets when it was submitted without one: that of the queue's policy in
 * cfg->queue_policies, else of the policy named "*", else
 * WQ_MAX_ATTEMPTS_DEFAULT.  Pure; thread-safe on a loaded config.
 */
struct wq_config;
int wq_taskspec_max_attempts(const struct wq_config *cfg, const char *queue);

/*
 * wq_taskspec_headers_json returns the headers of `env` as a compact JSON
 * object, for workq.tasks.headers ("{}" without headers); the caller
 * frees it.  NULL when out of memory.
 */
char *wq_taskspec_headers_json(const struct wq_envelope *env);

/*
 * wq_taskspec_parse_rfc3339 reads an RFC 3339 date-time,
 * "2026-11-28T07:43:06Z" or "2026-11-28t07:43:06.5+02:00" (fractions
 * beyond milliseconds are truncated), into milliseconds since the epoch.
 * Returns 0, or WQ_EINVAL for anything else (also dates like Feb 30).
 */
int wq_taskspec_parse_rfc3339(const char *s, int64_t *ms);

/*
 * wq_taskspec_parse_delay reads a delay: a duration string ("30s",
 * "1h30m", "500ms", or bare seconds "45") into milliseconds.  Returns 0
 * or WQ_EINVAL.
 */
int wq_taskspec_parse_delay(const char *s, int64_t *ms);

#endif

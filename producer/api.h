/*
 * api.h - the routes of workq-producer's HTTP API, their validation and
 * their answers:
 *
 *   POST /v1/queues/{queue}/tasks        one task       -> 202 {id, queue,
 *                                                           idempotency_key,
 *                                                           state}
 *   POST /v1/queues/{queue}/tasks:batch  {"tasks":[..]} -> 202 {"tasks":[..]}
 *   GET  /v1/tasks/{id}                  the task's row in PostgreSQL
 *   GET  /v1/whoami                      {"scopes": [...]} of the token
 *   GET  /healthz                        the process is alive
 *   GET  /readyz                         broker and PostgreSQL reachable
 *   GET  /metrics                        Prometheus text
 *
 * and the operator routes of api_ops.h (GET /v1/tasks, /v1/dead, ...),
 * and the dashboard's files under /ui (GET, no token: ui.h; not an API
 * route, so not in docs/openapi.json).
 *
 * /v1/ routes need "Authorization: Bearer TOKEN" when producer.tokens_file
 * is set, with the scope the route needs (token.h): POST of tasks needs
 * submit, GETs need read, the operator POSTs admin (which has every
 * scope); /healthz, /readyz, /metrics, /v1/openapi.json and /ui are
 * open.  Errors are {"error": CODE, "detail": TEXT} with 400
 * (invalid JSON, task, queue or id), 401 (no or unknown token), 403 (the
 * token lacks the scope), 404, 405, 413 (body, payload or batch too
 * large), 415 (not application/json), 429 (producer.rate_limit) and 503
 * (broker or PostgreSQL unavailable, not confirmed in time, stopping).  A
 * task is answered 202 only after the broker confirmed it, or PostgreSQL
 * committed it when it is delayed.
 *
 * HTTP threads run api_handle(): parse, validate, encode, then hand the
 * message to the publisher (or the job to the database thread) and return
 * WQ_EAGAIN; the answer is sent from that thread when the outcome is
 * known.  The module owns the bearer tokens, the rate limiter and the
 * request metrics; it leaves the broker to publisher.c and PostgreSQL to
 * db.c.
 */
#ifndef WQ_PRODUCER_API_H
#define WQ_PRODUCER_API_H

#include "config.h"
#include "db.h"
#include "http.h"
#include "metrics.h"
#include "publisher.h"

struct api;

struct api_conf {
    struct wq_config *cfg;      /* borrowed; outlives the api */
    struct publisher *pub;      /* may be NULL: see api_set_backends */
    struct dbq *db;
    wq_metrics *metrics;        /* the process's registry */
};

/*
 * api_new makes the API state and loads the tokens file.  Returns 0, or
 * WQ_ECONFIG (err says why) when producer.tokens_file cannot be read, or
 * when producer.auth would open the API to anyone: "tokens" without a
 * tokens file, "none" with one, "none" on a non-loopback
 * producer.listen without producer.auth_none_nonloopback.
 */
int api_new(const struct api_conf *conf, struct api **out, char *err,
    size_t errlen);

/* 1 if the host of a "host:port" listen address is loopback (127/8, ::1,
 * localhost), else 0.  Pure. */
int api_listen_is_loopback(const char *listen);

/*
 * api_set_backends gives the api its publisher and database thread.
 * api_new registers the request metrics, which must happen before any
 * thread runs (metrics.h), so the daemon makes the api first, then the
 * threads, then hands them over here, before the HTTP server starts.
 */
void api_set_backends(struct api *a, struct publisher *pub, struct dbq *db);

/*
 * api_receipts_round (a pub_round_fn, its user the api) sends the
 * receipts of the confirmations of a round of the publisher's verdicts
 * to the database thread as one job.  The daemon passes it to pub_start.
 */
void api_receipts_round(void *user);

/* api_reload_tokens reads the tokens file again (SIGHUP); on failure the
 * old tokens stay.  Returns 0 or WQ_ECONFIG.  Thread-safe. */
int api_reload_tokens(struct api *a, char *err, size_t errlen);

/* api_set_stopping makes every new task request fail with 503 (and
 * /readyz say so), for the shutdown sequence.  Thread-safe. */
void api_set_stopping(struct api *a);

/* The wq_http_handler of the daemon; `user` is the struct api. */
int api_handle(void *user, const struct wq_http_request *req, int *status,
    const char **content_type, char **body, size_t *body_len);

/* api_free frees the state; call after the HTTP server stopped. */
void api_free(struct api *a);

#endif

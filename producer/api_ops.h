/*
 * api_ops.h - the operator routes of workq-producer's HTTP API (issue
 * 15), beside api.c's task routes:
 *
 *   GET  /v1/tasks                 tasks, newest first, keyset pages
 *   POST /v1/tasks/{id}:retry      run it again now
 *   POST /v1/tasks/{id}:cancel     cancel it, or ask its worker to stop
 *   GET  /v1/dead                  dead tasks, newest finished first
 *   GET  /v1/dead/{id}             one dead task with its attempts
 *   POST /v1/dead:replay           a new attempt series for dead tasks
 *   POST /v1/dead:purge            delete dead tasks
 *   GET  /v1/undecodable           broker messages no envelope was read
 *                                  from (workq.dead_letters), newest first
 *   GET  /v1/undecodable/{id}/raw  one's bytes, application/octet-stream
 *   GET  /v1/stats                 per queue: states, rates, broker backlog
 *   GET  /v1/stats/history         per minute: succeeded, dead, failed
 *   GET  /v1/workers               worker processes and heartbeats
 *   GET  /v1/periodic              periodic tasks: last and next run
 *   GET  /v1/openapi.json          the OpenAPI 3.1 document (no token)
 *
 * GETs need the read scope, POSTs admin.  The answers are ops.h's
 * objects, built on the database thread (db.h), which answers each
 * request itself; docs/openapi.json describes them.  The broker's
 * backlog of /v1/stats is asked on one transport connection of this
 * module's own, and kept BACKLOG_TTL seconds.
 *
 * api.c authenticates and hands over; this file parses, checks and
 * answers.  The helpers it uses from api.c are declared here too.
 */
#ifndef WQ_PRODUCER_API_OPS_H
#define WQ_PRODUCER_API_OPS_H

#include <stddef.h>

#include "config.h"
#include "db.h"
#include "http.h"

struct api;
struct api_ops;

/* api_ops_new makes the routes' state (cfg borrowed; outlives it). */
struct api_ops *api_ops_new(struct wq_config *cfg);

/* api_ops_free closes the broker connection; call after the database
 * thread stopped.  NULL is allowed. */
void api_ops_free(struct api_ops *o);

/*
 * api_ops_handle answers `req` when its path is an operator route:
 * returns 0 (answered in status, ctype, body) or WQ_EAGAIN (the database
 * thread answers), as a wq_http_handler; WQ_ENOENT when the path is not
 * one of its routes (nothing answered).  `scopes`: the token's (token.h).
 */
int api_ops_handle(struct api_ops *o, struct api *a, struct dbq *db,
    const struct wq_http_request *req, unsigned scopes, int *status,
    const char **ctype, char **body, size_t *len);

/* api_ops_openapi answers GET /v1/openapi.json. */
int api_ops_openapi(const struct wq_http_request *req, int *status,
    const char **ctype, char **body, size_t *len);

/* --- from api.c ---------------------------------------------------------- */

/* An error answer {"error": reason, "detail"} counted under `reason`
 * (one of api.c's reason names); returns 0. */
int api_refuse(struct api *a, const char *reason, int code,
    const char *detail, int *status, const char **ctype, char **body,
    size_t *len);

/* The same, later, from another thread. */
void api_complete_error(struct api *a, wq_http_req *req, const char *reason,
    int code, const char *detail);

/* The answer to an operator action's failure `rc`: WQ_ENOENT 404,
 * WQ_EINVAL 400, WQ_ECLOSED 409 (conflict), anything else 503 with
 * PostgreSQL's `err`. */
void api_complete_store_error(struct api *a, wq_http_req *req, int rc,
    const char *err);

/* The answer of a job that found no database connection (the database
 * thread's `why`): 503 "PostgreSQL unavailable: why". */
void api_complete_unavailable(struct api *a, wq_http_req *req,
    const char *why);

/* 405 "use ALLOWED on this route"; 1 (it answered). */
int api_wrong_method(struct api *a, const char *allowed, int *status,
    const char **ctype, char **body, size_t *len);

/* 403 unless `scopes` hold `need`; 1 if it answered. */
int api_lacks_scope(struct api *a, unsigned scopes, unsigned need,
    int *status, const char **ctype, char **body, size_t *len);

/* The embedded docs/openapi.json (build/gen/openapi.c). */
extern const char wq_openapi_json[];
extern const size_t wq_openapi_json_len;

#endif

/*
 * api_workflow.h - the workflow routes of workq-producer's HTTP API
 * (docs/workflows.md), beside api.c's task routes and api_ops.c's
 * operator routes:
 *
 *   POST /v1/workflows                 submit a chain, group or batch
 *   GET  /v1/workflows/{id}            the graph, each node's state
 *   POST /v1/workflows/{id}/tasks      add tasks to a batch
 *   POST /v1/workflows/{id}:close      close an open batch
 *
 * GET needs the read scope, the POSTs submit.  Each request is checked
 * on the HTTP thread and run on the database thread (db.h) through the
 * functions of workq_outbox.h, which answer it.
 */
#ifndef WQ_PRODUCER_API_WORKFLOW_H
#define WQ_PRODUCER_API_WORKFLOW_H

#include <stddef.h>

#include "db.h"
#include "http.h"

struct api;

/*
 * api_workflow_handle answers `req` when its path is a workflow route:
 * returns 0 (answered in status, ctype, body) or WQ_EAGAIN (the database
 * thread answers), as a wq_http_handler; WQ_ENOENT when the path is not
 * one of its routes (nothing answered).  `scopes`: the token's.
 */
int api_workflow_handle(struct api *a, struct dbq *db,
    const struct wq_http_request *req, unsigned scopes, int *status,
    const char **ctype, char **body, size_t *len);

#endif

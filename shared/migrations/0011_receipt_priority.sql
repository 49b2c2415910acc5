-- 0011_receipt_priority.sql - the priority of a task not claimed yet
-- (issue 18, "Priorities").
--
-- Migration 0010 gave workq.tasks its priority, but a task submitted for
-- now has no row until a worker claims it: until then `workq status`,
-- GET /v1/tasks/ID and the dashboard read its receipt (workq.accepted,
-- workq.accepted_runs, migration 0003), which did not say.  Receipts now
-- keep the priority the submitter published the task at, and the view
-- workq.task_handles and workq.task_handle() return it, after the task
-- row's own.  A run of receipts holds tasks of one priority.
--
-- Receipts written by binaries of an earlier release read as normal,
-- which is what those binaries published (they knew no bands); adding a
-- column with a constant default rewrites nothing (PostgreSQL 11+).  The
-- view and the function are made again (a view cannot gain a column in
-- the middle, and the function returns the view's row type).
ALTER TABLE workq.accepted
    ADD COLUMN priority smallint NOT NULL DEFAULT 1
    CONSTRAINT accepted_priority_check CHECK (priority BETWEEN 0 AND 2);

ALTER TABLE workq.accepted_runs
    ADD COLUMN priority smallint NOT NULL DEFAULT 1
    CONSTRAINT accepted_runs_priority_check CHECK (priority BETWEEN 0 AND 2);

DROP FUNCTION workq.task_handle(uuid);
DROP VIEW workq.task_handles;

CREATE VIEW workq.task_handles AS
    SELECT id, attempt, max_attempts, created_at, updated_at, run_at,
           started_at, finished_at, lease_expires_at, state, queue, type,
           idempotency_key, lease_owner, worker, headers, payload,
           last_error, result, dead_published_at, attempt_base,
           false AS receipt, priority
      FROM workq.tasks
    UNION ALL
    SELECT a.id, 0, a.max_attempts, a.created_at, a.accepted_at, NULL,
           NULL, NULL, NULL, 'queued', a.queue, a.type,
           coalesce(a.idempotency_key, a.id::text), NULL, NULL,
           '{}'::jsonb, ''::bytea,
           NULL, NULL, NULL, 0,
           true, a.priority
      FROM workq.accepted a
     WHERE NOT EXISTS (SELECT 1 FROM workq.tasks t WHERE t.id = a.id);

COMMENT ON VIEW workq.task_handles IS
    'One task by id: its row in workq.tasks, else its receipt as queued.';

CREATE FUNCTION workq.task_handle(p uuid) RETURNS SETOF workq.task_handles
    LANGUAGE sql STABLE
    AS $$
    SELECT * FROM workq.task_handles WHERE id = p
    UNION ALL
    (SELECT p, 0, r.max_attempts, r.created_at, r.accepted_at,
            NULL::timestamptz, NULL::timestamptz, NULL::timestamptz,
            NULL::timestamptz, 'queued'::text, r.queue, r.type, p::text,
            NULL::text, NULL::text, '{}'::jsonb, ''::bytea, NULL::text,
            NULL::bytea, NULL::timestamptz, 0, true, r.priority
       FROM workq.accepted_runs r
      WHERE r.first_id <= p AND r.last_id >= p AND workq.ids_hold(r.ids, p)
        AND NOT EXISTS (SELECT 1 FROM workq.task_handles h WHERE h.id = p)
      LIMIT 1)
    $$;

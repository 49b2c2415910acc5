-- 0005_lean_tasks.sql - fewer row versions and index entries per task
-- (issue 14, "Cost per task").  A task that succeeds on its first
-- attempt used to write four row versions (insert and update of
-- workq.tasks and of workq.attempts) and eight index entries per tasks
-- version; with this migration it writes two row versions, both of
-- workq.tasks, and PostgreSQL evaluates a cheap CHECK instead of a
-- bounded-repetition regex that cost about 6 us per row version.
--
-- Like every migration it runs in one transaction under migrate.c's lock
-- and keeps the previous release's binaries working: a new nullable
-- column, a view, an equivalent constraint and one index dropped that no
-- statement needs.  Existing rows are not touched.

-- ---- attempts: rows for ended attempts that did not succeed --------------
--
-- workq.attempts now holds an attempt once it has ended, unless it
-- succeeded: the worker inserts the row when it records a failure,
-- timeout or cancellation, the claim or the scheduler's lease recovery
-- when a lease expired.  The attempt that is running, and the one that
-- succeeded, live in the task row: attempt, started_at, worker, and for a
-- success finished_at and duration_ms.  A task that succeeds at once thus
-- writes no attempts row at all.  Rows written before this migration (an
-- attempt row opened at claim, outcome NULL while running) stay valid:
-- where a row exists it is the attempt, and the binaries of this release
-- close such rows when they record or recover them.
--
-- While binaries of both releases run (a rolling upgrade), every task
-- still ends exactly once; what can be missing is history: an old worker
-- that takes over a task whose lease a new worker lost finds no open row
-- to close, so that lost attempt has no row, and an old `workq status`
-- reads workq.attempts alone and does not show attempts kept in the task
-- row.
--
-- duration_ms: the handler's run time of the last recorded attempt
-- (workq.attempts.duration_ms of the attempt whose row the task keeps).
ALTER TABLE workq.tasks ADD COLUMN duration_ms bigint;

-- Every reader of a task's history reads this view (wq_store_task_attempts,
-- `workq status`, GET /v1/tasks/ID, the chaos suite's count): the rows of
-- workq.attempts, and the task's current attempt made from its row when
-- it is running or succeeded and has no row of its own.  Its columns are
-- those of workq.attempts.
CREATE VIEW workq.attempt_history AS
    SELECT a.task_id, a.attempt, a.started_at, a.finished_at,
           a.duration_ms, a.worker, a.outcome, a.error
      FROM workq.attempts a
    UNION ALL
    SELECT t.id, t.attempt, coalesce(t.started_at, t.updated_at),
           CASE WHEN t.state = 'succeeded' THEN t.finished_at END,
           CASE WHEN t.state = 'succeeded' THEN t.duration_ms END,
           t.worker,
           CASE WHEN t.state = 'succeeded' THEN 'succeeded' END,
           NULL::text
      FROM workq.tasks t
     WHERE t.attempt >= 1 AND t.state IN ('running', 'succeeded')
       AND NOT EXISTS (SELECT 1 FROM workq.attempts x
                        WHERE x.task_id = t.id AND x.attempt = t.attempt);

COMMENT ON VIEW workq.attempt_history IS
    'Attempt history of each task: workq.attempts and the task''s running '
    'or succeeded attempt, which is kept in its row.';

-- ---- the queue name's CHECK ----------------------------------------------
--
-- The same rule as 0001's tasks_queue_check (1..128 bytes of
-- [A-Za-z0-9._-], not ending in ".dead"), written so that PostgreSQL does
-- not run a regex with a bounded repetition: '^[...]{1,128}$' cost about
-- 6 us per evaluation on the benchmark's machine, and a CHECK runs on
-- every insert and every update of a row (twice per task).  The forms
-- below cost about 0.3 us together.  The charset is ASCII, so bytes and
-- characters count alike.  NOT VALID: every existing row satisfied the
-- old constraint, which says the same, so validation (a scan under an
-- exclusive lock) would prove nothing; new and updated rows are checked.
ALTER TABLE workq.tasks DROP CONSTRAINT tasks_queue_check;
ALTER TABLE workq.tasks ADD CONSTRAINT tasks_queue_check
    CHECK (octet_length(queue) BETWEEN 1 AND 128
        AND queue ~ '^[A-Za-z0-9._-]+$' AND right(queue, 5) <> '.dead')
    NOT VALID;

-- ---- indexes -------------------------------------------------------------
--
-- tasks_queue_state_idx (queue, state) got an entry for every row version
-- of every task (two per task) and served no statement: `workq stats`
-- aggregates the whole table (or one queue, through `$1 IS NULL OR queue
-- = $1`, which no index condition matches) and reads run_at and
-- updated_at from the rows anyway; every other lookup of workq.tasks goes
-- by id, by (queue, idempotency_key), or by one of the partial indexes.
-- 0004_operator drops it first (written at the same time, it found the
-- same); IF EXISTS makes this a no-op after it.
DROP INDEX IF EXISTS workq.tasks_queue_state_idx;

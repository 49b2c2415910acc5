-- 0009_hooks.sql - completion hooks and progress (issue 18): an HTTPS
-- URL that gets a signed POST when a task ends, delivered at least once;
-- and the progress a running task's handler reports.
--
-- A task names its hook with the header "workq-hook" (its URL); a queue
-- names one with queue_policies' hook_url, which the worker's claim adds
-- to the task's headers when the task has none (store_claims.c).  The
-- header lives in workq.tasks.headers like every other header, so the
-- hook needs no new envelope field and no new tasks column: workers of
-- the previous release carry it too, and nothing in a worker has to
-- honour it.
--
-- The delivery is durable: when a task with a hook enters a final state
-- (succeeded, dead, cancelled), the trigger below writes a row into
-- workq.hook_deliveries in the same transaction that records the
-- outcome, whoever records it (the worker, the claim that finds attempts
-- exhausted, the scheduler's lease recovery, an operator's cancel).  The
-- scheduler (scheduler/hooks.c) POSTs each row's body, signed, and
-- deletes the row once the receiver answered 2xx; a failure moves
-- next_at back (backoff) and the row waits.  A crash of the scheduler
-- before the delete sends the same row again, with the same delivery id:
-- at least once, and the receiver dedupes on the id.
--
-- Cost for a task without a hook: the triggers' WHEN clauses, evaluated
-- without calling the function (a state comparison, then a jsonb key
-- test on the row's small headers).  The function runs only for tasks
-- with a hook.  Its insert sits in a block with an exception handler: a
-- hook that cannot be written (a URL over the limit, say) is reported as
-- a warning in PostgreSQL's log and never aborts the transaction that
-- records the outcome.
--
-- Like every migration it runs in one transaction under migrate.c's lock
-- and keeps the previous release's binaries working: a new table, a
-- function and two triggers; existing rows are not touched.

CREATE TABLE workq.hook_deliveries (
    id         uuid        PRIMARY KEY,   -- the delivery id (UUIDv7)
    task_id    uuid        NOT NULL,      -- no foreign key: retention may
                                          -- delete the task first
    attempts   integer     NOT NULL DEFAULT 0,  -- POSTs that failed
    created_at timestamptz NOT NULL DEFAULT now(),
    next_at    timestamptz NOT NULL DEFAULT now(),  -- due at
    url        text        NOT NULL,
    body       text        NOT NULL,      -- the JSON POSTed, fixed at
                                          -- insert so every try is equal
    last_error text,
    CONSTRAINT hook_deliveries_url_check CHECK (octet_length(url)
        BETWEEN 1 AND 2048)
);

COMMENT ON TABLE workq.hook_deliveries IS
    'Completion hooks owed: one row per task ending, deleted once delivered.';

-- The scheduler's due deliveries: ORDER BY next_at ... SKIP LOCKED.
CREATE INDEX hook_deliveries_due_idx ON workq.hook_deliveries (next_at);

CREATE FUNCTION workq.hook_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_id uuid := workq.uuid_v7();
BEGIN
    BEGIN
        INSERT INTO workq.hook_deliveries (id, task_id, url, body)
        VALUES (v_id, NEW.id, NEW.headers->>'workq-hook',
            jsonb_build_object(
                'delivery_id', v_id,
                'event', 'task.ended',
                'task_id', NEW.id,
                'queue', NEW.queue,
                'type', NEW.type,
                'idempotency_key', NEW.idempotency_key,
                'state', NEW.state,
                'attempt', NEW.attempt,
                'max_attempts', NEW.max_attempts,
                'created_at', NEW.created_at,
                'finished_at', NEW.finished_at,
                'error', CASE WHEN NEW.state <> 'succeeded'
                    THEN NEW.last_error END,
                'result_base64', translate(encode(NEW.result, 'base64'),
                    E'\n', ''),
                'traceparent', NEW.headers->>'traceparent')::text);
        PERFORM pg_notify('workq_scheduler', 'hooks');
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'workq: task %: completion hook not recorded: %',
            NEW.id, SQLERRM;
    END;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER tasks_hook_insert AFTER INSERT ON workq.tasks
    FOR EACH ROW WHEN (NEW.state IN ('succeeded', 'dead', 'cancelled')
        AND NEW.headers ? 'workq-hook')
    EXECUTE FUNCTION workq.hook_enqueue();

CREATE TRIGGER tasks_hook_update AFTER UPDATE OF state ON workq.tasks
    FOR EACH ROW WHEN (NEW.state IN ('succeeded', 'dead', 'cancelled')
        AND OLD.state IS DISTINCT FROM NEW.state
        AND NEW.headers ? 'workq-hook')
    EXECUTE FUNCTION workq.hook_enqueue();

-- ---- progress of a running task -----------------------------------------
--
-- A handler reports progress (a percentage and a short message: exec
-- handlers on descriptor 3, plugins through the host); the worker's lease
-- thread writes the latest report of each task at most once a second
-- (worker/progress.c), only while the attempt that reported it still
-- holds the lease.  The columns keep the last report, by whichever
-- attempt made it (progress_at tells when).  Nullable columns without a
-- default: adding them rewrites nothing, and a task that reports nothing
-- stores nothing.
ALTER TABLE workq.tasks ADD COLUMN progress smallint,
    ADD COLUMN progress_message text,
    ADD COLUMN progress_at timestamptz,
    ADD CONSTRAINT tasks_progress_check
        CHECK (progress IS NULL OR progress BETWEEN 0 AND 100) NOT VALID;

-- 0007_flow_control.sql - flow control (issue 18, README "Flow control"):
-- rate limits per queue and per type, concurrency keys and unique
-- windows, each enforced across every worker and producer through
-- PostgreSQL.  Only new tables and a function: the tables of the task's
-- life are not touched, and the binaries of the previous release neither
-- read nor write these (a task with a concurrency key is a version-2
-- envelope, which they keep as undecodable: upgrade the workers first).
--
-- Nothing here is on the path of a task without flow control: a worker
-- calls workq.flow_admit only for deliveries that have a concurrency key
-- or whose queue or type has a rate limit in its configuration, and a
-- submit reads workq.unique_windows only for a task with a unique window.

-- ---- rate limits: token buckets -----------------------------------------
--
-- One row per limited (queue) or (queue, type): `tokens` as of
-- updated_at.  The rate and burst are the workers' configuration
-- (rate_limits in workq.conf), passed with each call, so the row holds
-- only state; workers of one queue must agree on them.  A bucket refills
-- at `rate` tokens a second up to `burst`, and each task started takes
-- one: over any time T at most burst + rate x T tasks start.
CREATE TABLE workq.flow_buckets (
    bucket     text             PRIMARY KEY,  -- "q:QUEUE" or "t:QUEUE:TYPE"
    tokens     double precision NOT NULL,
    updated_at timestamptz      NOT NULL
);

COMMENT ON TABLE workq.flow_buckets IS
    'Token buckets of the rate limits (rate_limits in workq.conf).';

-- ---- concurrency keys: holds ---------------------------------------------
--
-- A hold is a task of a concurrency key that a worker admitted.  It
-- counts against the key's limit while it is live: its task is running
-- under a live lease, or the hold was taken less than the grace (a lease)
-- ago and the task has not ended an attempt since (admitted, about to be
-- claimed).  So the commit that records an outcome ends the hold, and a
-- worker that dies holding slots frees them when its leases expire,
-- without any sweep.  The next admission of the key deletes the dead
-- holds, and workers delete those of the tasks they recorded with their
-- next call.  One hold per task (queue, key).
CREATE TABLE workq.flow_holds (
    queue           text        NOT NULL,
    idempotency_key text        NOT NULL,
    concurrency_key text        NOT NULL,
    worker          text        NOT NULL,
    taken_at        timestamptz NOT NULL,
    PRIMARY KEY (queue, idempotency_key)
);

CREATE INDEX flow_holds_key_idx ON workq.flow_holds (concurrency_key);

COMMENT ON TABLE workq.flow_holds IS
    'Tasks of a concurrency key admitted to run (live while running).';

-- ---- the concurrency key of a task, for the scheduler -------------------
--
-- The envelope carries a task's concurrency key ("fc", "fn"), but the
-- scheduler publishes retries and delayed tasks from workq.tasks, which
-- has no column for it: this table keeps it, for tasks that have one
-- only, so the scheduler's statements find it by primary key (and
-- nothing for every other task).  Written when a worker admits such a
-- task and when a delayed one is submitted; deleted when a worker
-- releases the hold of a task that succeeded (a dead or cancelled task
-- may be retried by an operator, and keeps it).
CREATE TABLE workq.flow_tasks (
    queue             text    NOT NULL,
    idempotency_key   text    NOT NULL,
    concurrency_key   text    NOT NULL,
    concurrency_limit integer NOT NULL CHECK (concurrency_limit >= 1),
    PRIMARY KEY (queue, idempotency_key)
);

COMMENT ON TABLE workq.flow_tasks IS
    'Concurrency key and limit of tasks that have one (retries keep it).';

-- ---- unique windows --------------------------------------------------------
--
-- A task submitted with a unique window (`workq submit --unique-for 1h`)
-- runs under the idempotency key "KEY@w" || window_start_ms, the start
-- of the window the submit fell in: inside the window every submit of
-- (queue, KEY) maps to the same key, hence the same task id (the key's
-- UUIDv5), and the claim's guarantee holds unchanged; the first submit
-- after window_end opens a new window, a new key and a new task.
CREATE TABLE workq.unique_windows (
    queue           text        NOT NULL,
    idempotency_key text        NOT NULL,  -- the key the client gave
    window_start    timestamptz NOT NULL,
    window_end      timestamptz NOT NULL,
    PRIMARY KEY (queue, idempotency_key)
);

COMMENT ON TABLE workq.unique_windows IS
    'The open unique window of each (queue, key) submitted with one.';

-- ---- admission --------------------------------------------------------------
--
-- workq.flow_admit(...) decides, for the worker's candidates in order
-- (arrays of equal length, one element each), which may start now.  A
-- candidate needs its concurrency key's hold (p_ckey '': none) and a
-- token of each of its buckets (p_bucket, p_bucket2, '': none); it
-- gets all or nothing.  Returns one row per candidate: admitted, and if
-- not, wait_ms, when to ask again (a bucket's refill time; for a full
-- concurrency key 200 ms).  First it releases the holds of
-- p_release_queue/key that this worker recorded (unless their task runs
-- under a live lease again), and forgets the concurrency key of those
-- that succeeded (workq.flow_tasks).
--
-- Locks, always in this order so that workers cannot deadlock: the
-- concurrency keys' advisory transaction locks, sorted, then the bucket
-- rows, sorted.  The function is called in its own short transaction.
CREATE FUNCTION workq.flow_admit(
    p_queue text[], p_key text[], p_ckey text[], p_climit integer[],
    p_bucket text[], p_rate integer[], p_burst integer[],
    p_bucket2 text[], p_rate2 integer[], p_burst2 integer[],
    p_release_queue text[], p_release_key text[],
    p_worker text, p_grace_ms bigint)
RETURNS TABLE (ord integer, admitted boolean, wait_ms integer)
LANGUAGE plpgsql AS $$
DECLARE
    n      integer := coalesce(array_length(p_queue, 1), 0);
    grace  interval := p_grace_ms * interval '1 millisecond';
    ts     timestamptz;
    ok     boolean;
    w      integer;
    live   integer;
    held   boolean;
    took   text;
    b      text;
    r      double precision;
    bu     double precision;
    tok    double precision;
BEGIN
    IF coalesce(array_length(p_release_queue, 1), 0) > 0 THEN
        DELETE FROM workq.flow_holds h
         USING unnest(p_release_queue, p_release_key) AS x(queue, key)
         WHERE h.queue = x.queue AND h.idempotency_key = x.key
           AND h.worker = p_worker
           AND NOT EXISTS (SELECT 1 FROM workq.tasks t
                            WHERE t.queue = h.queue
                              AND t.idempotency_key = h.idempotency_key
                              AND t.state = 'running'
                              AND t.lease_expires_at >= now());
        DELETE FROM workq.flow_tasks f
         USING unnest(p_release_queue, p_release_key) AS x(queue, key),
               workq.tasks t
         WHERE f.queue = x.queue AND f.idempotency_key = x.key
           AND t.queue = f.queue AND t.idempotency_key = f.idempotency_key
           AND t.state = 'succeeded';
    END IF;
    IF n = 0 THEN
        RETURN;
    END IF;

    PERFORM pg_advisory_xact_lock(hashtextextended('workq.flow:' || c, 0))
       FROM (SELECT DISTINCT c FROM unnest(p_ckey) AS u(c)
              WHERE c <> '' ORDER BY c) s;
    INSERT INTO workq.flow_buckets (bucket, tokens, updated_at)
    SELECT x.b, max(x.burst), clock_timestamp()
      FROM (SELECT * FROM unnest(p_bucket, p_burst) AS u(b, burst)
            UNION ALL
            SELECT * FROM unnest(p_bucket2, p_burst2) AS u(b, burst)) x
     WHERE x.b <> ''
     GROUP BY x.b ORDER BY x.b
    ON CONFLICT (bucket) DO NOTHING;
    PERFORM 1 FROM workq.flow_buckets
     WHERE bucket = ANY (p_bucket || p_bucket2)
     ORDER BY bucket FOR UPDATE;
    ts := clock_timestamp();    -- after the locks: refills never go back

    FOR i IN 1 .. n LOOP
        ok := true;
        w := 0;
        held := false;
        took := NULL;
        IF p_ckey[i] <> '' THEN
            -- the dead holds of the key go; every hold left is live
            DELETE FROM workq.flow_holds h
             WHERE h.concurrency_key = p_ckey[i]
               AND NOT EXISTS (SELECT 1 FROM workq.tasks t
                                WHERE t.queue = h.queue
                                  AND t.idempotency_key = h.idempotency_key
                                  AND t.state = 'running'
                                  AND t.lease_expires_at >= ts)
               AND (h.taken_at <= ts - grace
                    OR EXISTS (SELECT 1 FROM workq.tasks t
                                WHERE t.queue = h.queue
                                  AND t.idempotency_key = h.idempotency_key
                                  AND t.state <> 'running'
                                  AND t.updated_at >= h.taken_at));
            -- a live hold of this very task (a redelivery): the claim
            -- will decide between them, no second hold
            IF NOT EXISTS (SELECT 1 FROM workq.flow_holds h
                            WHERE h.queue = p_queue[i]
                              AND h.idempotency_key = p_key[i]) THEN
                SELECT count(*) INTO live FROM workq.flow_holds h
                 WHERE h.concurrency_key = p_ckey[i];
                IF live >= p_climit[i] THEN
                    ok := false;
                    w := 200;
                ELSE
                    INSERT INTO workq.flow_holds (queue, idempotency_key,
                        concurrency_key, worker, taken_at)
                    VALUES (p_queue[i], p_key[i], p_ckey[i], p_worker, ts);
                    held := true;
                END IF;
            END IF;
        END IF;
        FOR j IN 1 .. 2 LOOP
            EXIT WHEN NOT ok;
            IF j = 1 THEN
                b := p_bucket[i]; r := p_rate[i]; bu := p_burst[i];
            ELSE
                b := p_bucket2[i]; r := p_rate2[i]; bu := p_burst2[i];
            END IF;
            CONTINUE WHEN b = '';
            UPDATE workq.flow_buckets f
               SET tokens = least(bu, f.tokens + r * greatest(0,
                       extract(epoch FROM ts - f.updated_at))),
                   updated_at = greatest(f.updated_at, ts)
             WHERE f.bucket = b
            RETURNING f.tokens INTO tok;
            IF tok >= 1 THEN
                UPDATE workq.flow_buckets SET tokens = tokens - 1
                 WHERE bucket = b;
                took := b;
            ELSE
                ok := false;
                w := greatest(w, ceil((1 - tok) / r * 1000)::integer);
            END IF;
        END LOOP;
        IF NOT ok THEN
            -- all or nothing: give back what this candidate took
            IF took IS NOT NULL THEN
                UPDATE workq.flow_buckets SET tokens = tokens + 1
                 WHERE bucket = took;
            END IF;
            IF held THEN
                DELETE FROM workq.flow_holds
                 WHERE queue = p_queue[i] AND idempotency_key = p_key[i];
            END IF;
        END IF;
        IF ok AND p_ckey[i] <> '' THEN
            INSERT INTO workq.flow_tasks AS f (queue, idempotency_key,
                concurrency_key, concurrency_limit)
            VALUES (p_queue[i], p_key[i], p_ckey[i], p_climit[i])
            ON CONFLICT (queue, idempotency_key) DO UPDATE
               SET concurrency_key = EXCLUDED.concurrency_key,
                   concurrency_limit = EXCLUDED.concurrency_limit
             WHERE f.concurrency_key <> EXCLUDED.concurrency_key
                OR f.concurrency_limit <> EXCLUDED.concurrency_limit;
        END IF;
        ord := i;
        admitted := ok;
        wait_ms := greatest(w, 1);
        RETURN NEXT;
    END LOOP;
END
$$;

COMMENT ON FUNCTION workq.flow_admit IS
    'Flow control: which candidate tasks may start now (rate limits, '
    'concurrency keys), all or nothing per task.';

-- 0012_receipt_ranges.sql - a batch of fresh ids recorded as a range
-- (issue 11: what receipts cost a batched submit).
--
-- A run of workq.accepted_runs listed its ids end to end in `ids`: 16
-- bytes a task, 160 kB for a batch of 10,000, which PostgreSQL receives,
-- stores out of line and writes to the WAL.  On the 2-core machine that
-- was most of what receipts cost the C client's batched submit on Kafka.
--
-- The C client now makes the ids of tasks without a key from a sequence
-- (uuid.h, wq_uuid_seq_stamp): rand_b, the 62 random bits of a v7 id,
-- starts at a random value and goes up by one per id.  A batch of such
-- ids confirmed one after another is a range that its first and last id
-- describe whole: every id between them byte-wise whose rand_b lies
-- between theirs.  Such a run has an empty `ids`; a run whose ids come
-- from many origins still lists them (the writer chooses per run).  An
-- id of another origin falls in a range only if its own 62 random bits
-- land within the range's width: about 2^-48 for a range of 10,000.
--
-- Old runs stay as they are and read as before.  Binaries of an earlier
-- release read ranges through workq.task_handle() as well (the database
-- holds it), but their scheduler's sweep removes a range run at its
-- first check, so that its ids read as "no such task" until claimed:
-- upgrade the scheduler with the producers.
ALTER TABLE workq.accepted_runs DROP CONSTRAINT accepted_runs_ids_check;
ALTER TABLE workq.accepted_runs ADD CONSTRAINT accepted_runs_ids_check
    CHECK (octet_length(ids) % 16 = 0);

-- The 62 bits of rand_b of a v7 id, as uuid.c's wq_uuid_rand_b.
CREATE FUNCTION workq.uuid_rand_b(p uuid) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT ('x' || encode(substring(uuid_send(p) FROM 9 FOR 8),
                  'hex'))::bit(64)::bigint & 4611686018427387903 $$;

-- Whether the run (first_id, last_id, ids) holds p; the caller has
-- checked first_id <= p <= last_id.
CREATE FUNCTION workq.run_holds(first_id uuid, last_id uuid, ids bytea,
    p uuid) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT CASE WHEN octet_length(ids) = 0
                 THEN workq.uuid_rand_b(p) BETWEEN workq.uuid_rand_b(first_id)
                                               AND workq.uuid_rand_b(last_id)
                 ELSE workq.ids_hold(ids, p) END $$;

CREATE OR REPLACE FUNCTION workq.task_handle(p uuid)
    RETURNS SETOF workq.task_handles
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
      WHERE r.first_id <= p AND r.last_id >= p
        AND workq.run_holds(r.first_id, r.last_id, r.ids, p)
        AND NOT EXISTS (SELECT 1 FROM workq.task_handles h WHERE h.id = p)
      LIMIT 1)
    $$;

-- 0004_operator.sql - indexes of the operator HTTP API and `workq list`
-- (issue 15): every list is a bounded scan of an index in its order, so
-- a page costs the same with a million rows as with a hundred.
--
-- Only indexes are added (and one replaced by a wider one), so binaries
-- of the previous release run unchanged on this schema.  A plain CREATE
-- INDEX locks writes to the table while it builds (migrations run in a
-- transaction, so CONCURRENTLY is not possible here); on a large table
-- run `workq migrate` in a quiet moment.

-- Tasks newest first (GET /v1/tasks, `workq list`): keyset pagination on
-- (created_at, id), scanned backwards.
CREATE INDEX tasks_created_idx ON workq.tasks (created_at, id);
-- The same within one queue (?queue=): a queue's page must not sort every
-- row of a large queue.  A state filter (?state=) reads one of these two
-- in order and skips the other states: no index per state, because
-- every task changes state twice (claim, record) and each index on
-- workq.tasks costs an entry per change (issue 14's cost per task).  It
-- takes over from 0001's tasks_queue_state_idx (queue, state), which no
-- statement used.
CREATE INDEX tasks_queue_created_idx ON workq.tasks (queue, created_at, id);
DROP INDEX workq.tasks_queue_state_idx;

-- Dead tasks newest finished first (GET /v1/dead, `workq dlq list`), and
-- the dead per minute of GET /v1/stats/history; per queue with the
-- second index, which takes over from 0001's tasks_dead_idx (queue,
-- finished_at): the id makes the order total, for keyset pagination.
CREATE INDEX tasks_dead_page_idx ON workq.tasks (finished_at, id)
    WHERE state = 'dead';
CREATE INDEX tasks_dead_queue_page_idx ON workq.tasks (queue, finished_at, id)
    WHERE state = 'dead';
DROP INDEX workq.tasks_dead_idx;

-- Failed attempts per minute (GET /v1/stats/history): attempts by when
-- they ended.
CREATE INDEX attempts_finished_idx ON workq.attempts (finished_at);

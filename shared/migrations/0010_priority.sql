-- 0010_priority.sql - task priorities (issue 18, "Priorities"; see
-- shared/priority.h).
--
-- A task's priority: 0 low, 1 normal (the default), 2 high.  The broker
-- carries it as the band a message sits on ("workq.Q.priority-high",
-- "workq.Q", "workq.Q.priority-low"), not in the envelope; the row keeps
-- it so that the scheduler publishes a retry or a delayed task back to
-- its band, and status, the HTTP API and the dashboard show it.  The
-- worker's claim writes it from the band of the delivery; a producer
-- writes it for the rows it inserts itself (delayed tasks).  Rows of
-- earlier releases are normal.  Adding a column with a constant default
-- rewrites nothing (PostgreSQL 11+).
ALTER TABLE workq.tasks
    ADD COLUMN priority smallint NOT NULL DEFAULT 1
    CONSTRAINT tasks_priority_check CHECK (priority BETWEEN 0 AND 2);

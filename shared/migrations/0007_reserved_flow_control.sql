-- 0007_reserved_flow_control.sql - a placeholder that keeps the version
-- numbers contiguous (migrate.c and test_migrations want 1..N) on the
-- workflows branch, whose migration is 0008.  Version 7 belongs to the
-- flow-control work of issue 18, written at the same time: at the merge
-- its 0007_*.sql replaces this file.  It changes nothing.
SELECT 1;

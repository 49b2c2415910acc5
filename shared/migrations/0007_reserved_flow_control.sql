-- 0007_reserved_flow_control.sql - a placeholder that keeps the migration
-- numbers contiguous (migrate.c requires it) on the branch that brought
-- 0009_hooks.sql.  Issue 18's flow-control work owns number 0007: when
-- that branch is merged, its 0007_*.sql replaces this file.
SELECT 1;

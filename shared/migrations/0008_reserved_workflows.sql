-- 0008_reserved_workflows.sql - a placeholder that keeps the migration
-- numbers contiguous (migrate.c requires it) on the branch that brought
-- 0009_hooks.sql.  Issue 18's workflow work owns number 0008: when that
-- branch is merged, its 0008_*.sql replaces this file.
SELECT 1;

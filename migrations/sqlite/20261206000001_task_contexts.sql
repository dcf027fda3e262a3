-- A2A contexts (SQLite). Kept in step with ../postgres/20261206000001_task_contexts.sql.
--
-- A run started over A2A belongs to a context: the one its message named, or a new one.
-- GetTask and every stream answer with it, and ListTasks filters by it.
ALTER TABLE tasks ADD COLUMN context_id TEXT;
CREATE INDEX tasks_by_context ON tasks (tenant_id, context_id, created_at_ms, id) WHERE context_id IS NOT NULL;

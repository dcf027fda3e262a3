-- A2A contexts (SQLite). Kept in step with ../postgres/20261206000001_task_contexts.sql.
--
-- A run started over A2A belongs to a context: the one its message named, or a new one.
-- GetTask and every stream answer with it. (No index: nothing looks runs up by context
-- yet; A2A's ListTasks, which would, is not offered.)
ALTER TABLE tasks ADD COLUMN context_id TEXT;

-- Agent runs (PostgreSQL). Kept in step with ../sqlite/20261205000001_agent_runs.sql.
--
-- A run of an agent is a task whose target is the agent's version rather than a skill's:
-- exactly one of the two targets is set. A child run (an `agent` step) names its parent.
ALTER TABLE tasks ALTER COLUMN skill DROP NOT NULL;
ALTER TABLE tasks ALTER COLUMN version DROP NOT NULL;
ALTER TABLE tasks ADD COLUMN agent_id TEXT;
ALTER TABLE tasks ADD COLUMN agent_version BIGINT;
ALTER TABLE tasks ADD COLUMN parent_id TEXT;
ALTER TABLE tasks ADD CONSTRAINT tasks_one_target CHECK (
    (skill IS NOT NULL AND version IS NOT NULL AND agent_id IS NULL AND agent_version IS NULL)
    OR (skill IS NULL AND version IS NULL AND requirement IS NULL
        AND agent_id IS NOT NULL AND agent_version IS NOT NULL));
-- An agent's runs, newest or oldest first.
CREATE INDEX tasks_by_agent ON tasks (tenant_id, agent_id, created_at_ms, id) WHERE agent_id IS NOT NULL;
-- A run's children, woken and canceled with it.
CREATE INDEX tasks_children ON tasks (parent_id) WHERE parent_id IS NOT NULL;

ALTER TABLE task_events DROP CONSTRAINT task_events_kind_check;
ALTER TABLE task_events ADD CONSTRAINT task_events_kind_check CHECK (kind IN
    ('state', 'log', 'result', 'step-started', 'step-finished', 'retry-scheduled', 'breaker-open'));

-- A run's journal: one row per step (per item inside a `map`), written in the transaction
-- that appends the step's event, before the run moves on. `item` is the path of the
-- enclosing maps' item indexes ('' outside any map).
CREATE TABLE task_steps (
    task_id        TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    step           TEXT NOT NULL,
    item           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('skill', 'sequence', 'parallel', 'map', 'switch', 'agent')),
    state          TEXT NOT NULL CHECK (state IN ('running', 'waiting', 'succeeded', 'failed')),
    attempt        BIGINT NOT NULL,
    output         TEXT,
    error          TEXT,
    not_before_ms  BIGINT,
    child_id       TEXT,
    started_at_ms  BIGINT NOT NULL,
    finished_at_ms BIGINT,
    PRIMARY KEY (task_id, step, item)
);

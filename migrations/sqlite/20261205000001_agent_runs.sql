-- Agent runs (SQLite). Kept in step with ../postgres/20261205000001_agent_runs.sql: same
-- tables, columns and constraints; only the types differ.
--
-- A run of an agent is a task whose target is the agent's version rather than a skill's:
-- exactly one of the two targets is set. A child run (an `agent` step) names its parent.
--
-- SQLite cannot drop a NOT NULL or change a CHECK in place, so `tasks` and `task_events` are
-- rebuilt (SQLite's documented procedure, inside this migration's transaction). The old
-- tables are renamed first, so that dropping them later cascades into nothing: the rename
-- moves `task_events`' reference along to `tasks_old`, and `task_events_old` goes first.
ALTER TABLE task_events RENAME TO task_events_old;
ALTER TABLE tasks RENAME TO tasks_old;

CREATE TABLE tasks (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    skill            TEXT,
    requirement      TEXT,
    version          TEXT,
    agent_id         TEXT,
    agent_version    INTEGER,
    parent_id        TEXT,
    input            TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('submitted', 'working', 'completed', 'failed', 'canceled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    not_before_ms    INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    retry_of         TEXT,
    lease_owner      TEXT,
    lease_expires_ms INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    output           TEXT,
    error            TEXT,
    usage            TEXT,
    last_seq         INTEGER NOT NULL DEFAULT 0,
    created_by       TEXT NOT NULL,
    request_id       TEXT NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    started_at_ms    INTEGER,
    finished_at_ms   INTEGER,
    CONSTRAINT tasks_one_target CHECK (
        (skill IS NOT NULL AND version IS NOT NULL AND agent_id IS NULL AND agent_version IS NULL)
        OR (skill IS NULL AND version IS NULL AND requirement IS NULL
            AND agent_id IS NOT NULL AND agent_version IS NOT NULL))
);
INSERT INTO tasks (id, tenant_id, skill, requirement, version, input, state, priority,
    not_before_ms, attempts, retry_of, lease_owner, lease_expires_ms, cancel_requested, output,
    error, usage, last_seq, created_by, request_id, created_at_ms, started_at_ms, finished_at_ms)
SELECT id, tenant_id, skill, requirement, version, input, state, priority,
    not_before_ms, attempts, retry_of, lease_owner, lease_expires_ms, cancel_requested, output,
    error, usage, last_seq, created_by, request_id, created_at_ms, started_at_ms, finished_at_ms
FROM tasks_old;

CREATE TABLE task_events (
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN
        ('state', 'log', 'result', 'step-started', 'step-finished', 'retry-scheduled', 'breaker-open')),
    data    TEXT NOT NULL,
    at_ms   INTEGER NOT NULL,
    PRIMARY KEY (task_id, seq)
);
INSERT INTO task_events (task_id, seq, kind, data, at_ms)
SELECT task_id, seq, kind, data, at_ms FROM task_events_old;

DROP TABLE task_events_old;
DROP TABLE tasks_old;

-- The indexes of 20261203000001_tasks.sql (dropped with the old table), and the new ones.
CREATE INDEX tasks_queue ON tasks (tenant_id, priority DESC, created_at_ms, id) WHERE state = 'submitted';
CREATE INDEX tasks_by_created ON tasks (tenant_id, created_at_ms, id);
CREATE INDEX tasks_by_priority ON tasks (tenant_id, priority, id);
CREATE INDEX tasks_running ON tasks (tenant_id) WHERE state = 'working';
CREATE INDEX tasks_leases ON tasks (lease_expires_ms) WHERE state = 'working';
CREATE INDEX tasks_cancels ON tasks (lease_owner) WHERE cancel_requested = TRUE AND state = 'working';
CREATE INDEX tasks_finished ON tasks (finished_at_ms) WHERE finished_at_ms IS NOT NULL;
-- An agent's runs, newest or oldest first.
CREATE INDEX tasks_by_agent ON tasks (tenant_id, agent_id, created_at_ms, id) WHERE agent_id IS NOT NULL;
-- A run's children, woken and canceled with it.
CREATE INDEX tasks_children ON tasks (parent_id) WHERE parent_id IS NOT NULL;

-- A run's journal: one row per step (per item inside a `map`), written in the transaction
-- that appends the step's event, before the run moves on. `item` is the path of the
-- enclosing maps' item indexes ('' outside any map).
CREATE TABLE task_steps (
    task_id        TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    step           TEXT NOT NULL,
    item           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('skill', 'sequence', 'parallel', 'map', 'switch', 'agent')),
    state          TEXT NOT NULL CHECK (state IN ('running', 'waiting', 'succeeded', 'failed')),
    attempt        INTEGER NOT NULL,
    output         TEXT,
    error          TEXT,
    not_before_ms  INTEGER,
    child_id       TEXT,
    started_at_ms  INTEGER NOT NULL,
    finished_at_ms INTEGER,
    PRIMARY KEY (task_id, step, item)
);

-- Durable tasks (PostgreSQL). Kept in step with ../sqlite/20261203000001_tasks.sql: same
-- tables, columns and constraints; only the types differ. Times are unix milliseconds.
--
-- A task is one asynchronous run of a skill. Workers in every `serve` process claim queued
-- tasks with a lease (`lease_owner` until `lease_expires_ms`) and extend it while they run; a
-- task whose lease expired is put back in the queue by any process's sweep and runs again
-- as a new attempt.
CREATE TABLE tasks (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    skill            TEXT NOT NULL,
    -- The version requirement as asked (NULL: the newest), and the version resolved.
    requirement      TEXT,
    version          TEXT NOT NULL,
    input            TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('submitted', 'working', 'completed', 'failed', 'canceled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    not_before_ms    BIGINT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    retry_of         TEXT,
    lease_owner      TEXT,
    lease_expires_ms BIGINT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    output           TEXT,
    error            TEXT,
    usage            TEXT,
    -- The last event's sequence number: appending an event increments it in the same
    -- transaction, so concurrent writers of one task's events never take the same number.
    last_seq         BIGINT NOT NULL DEFAULT 0,
    created_by       TEXT NOT NULL,
    request_id       TEXT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    started_at_ms    BIGINT,
    finished_at_ms   BIGINT
);
-- The queue of one tenant, in claiming order.
CREATE INDEX tasks_queue ON tasks (tenant_id, priority DESC, created_at_ms, id) WHERE state = 'submitted';
-- Listing a tenant's tasks, newest or oldest first.
CREATE INDEX tasks_by_created ON tasks (tenant_id, created_at_ms, id);
CREATE INDEX tasks_by_priority ON tasks (tenant_id, priority, id);
-- A tenant's running tasks, counted against its limit when claiming.
CREATE INDEX tasks_running ON tasks (tenant_id) WHERE state = 'working';
-- Expired leases, found by the sweep.
CREATE INDEX tasks_leases ON tasks (lease_expires_ms) WHERE state = 'working';
-- Cancels a worker must act on.
CREATE INDEX tasks_cancels ON tasks (lease_owner) WHERE cancel_requested = TRUE AND state = 'working';
-- Finished tasks, purged after the retention.
CREATE INDEX tasks_finished ON tasks (finished_at_ms) WHERE finished_at_ms IS NOT NULL;

CREATE TABLE task_events (
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('state', 'log', 'result')),
    data    TEXT NOT NULL,
    at_ms   BIGINT NOT NULL,
    PRIMARY KEY (task_id, seq)
);

-- Idempotency keys of task creation, per tenant: the same key with the same body answers the
-- same task; they are forgotten after the configured time (at least 24 hours).
CREATE TABLE task_idempotency (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    key           TEXT NOT NULL,
    body_sha256   TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX task_idempotency_by_age ON task_idempotency (created_at_ms);

-- Per tenant, for fair claiming: whether it has queued tasks (set by a submission that finds
-- it unset, so submissions do not all write one row; cleared by a claim that finds none,
-- and recomputed by every sweep) and when a worker last claimed from it (the least recently
-- served waiting tenant is claimed from first). Claims of one tenant lock its row, so its
-- running limit holds across replicas.
CREATE TABLE task_tenants (
    tenant_id     TEXT PRIMARY KEY REFERENCES tenants (id),
    waiting       BOOLEAN NOT NULL DEFAULT FALSE,
    last_claim_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX task_tenants_waiting ON task_tenants (last_claim_ms) WHERE waiting = TRUE;

-- Agents (SQLite). Kept in step with ../postgres/20261204000001_agents.sql: same tables,
-- same columns, engine types only.

-- An agent: its current version and what listings show. Deleting is soft: a deleted agent
-- keeps its row (its runs still name it) and frees its name.
CREATE TABLE agents (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL,
    public        INTEGER NOT NULL CHECK (public IN (0, 1)),
    version       INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    deleted_at_ms INTEGER,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX agents_by_name ON agents (tenant_id, name) WHERE deleted_at_ms IS NULL;
CREATE INDEX agents_by_created ON agents (tenant_id, created_at_ms, id);

-- Every saved version's definition (JSON: the workflow or single skill, the schemas, what
-- the card advertises), so a run keeps the version it started with.
CREATE TABLE agent_versions (
    tenant_id     TEXT NOT NULL,
    agent_id      TEXT NOT NULL,
    version       INTEGER NOT NULL,
    definition    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, version),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id)
);

-- A version's lockfile: each (skill, requirement) it uses, pinned to the exact version and
-- component digest it resolved to when saved.
CREATE TABLE agent_pins (
    tenant_id      TEXT NOT NULL,
    agent_id       TEXT NOT NULL,
    version        INTEGER NOT NULL,
    skill          TEXT NOT NULL,
    requirement    TEXT NOT NULL,
    skill_id       TEXT NOT NULL REFERENCES skills (id),
    pinned_version TEXT NOT NULL,
    digest         TEXT NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, version, skill, requirement),
    FOREIGN KEY (tenant_id, agent_id, version) REFERENCES agent_versions (tenant_id, agent_id, version)
);
CREATE INDEX agent_pins_by_skill ON agent_pins (tenant_id, skill);

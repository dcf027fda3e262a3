-- Publishing, discovery, installations, skill key-value data, tenant policies and usage
-- (SQLite). Kept in step with ../postgres/20261124000002_skills.sql.

-- The skill row mirrors its newest published version (description, keywords, categories as
-- published, the permission kinds it asks for, its README), so listing and search read one row.
ALTER TABLE skills ADD COLUMN keywords TEXT NOT NULL DEFAULT '[]';
ALTER TABLE skills ADD COLUMN permissions TEXT NOT NULL DEFAULT '[]';
ALTER TABLE skills ADD COLUMN readme TEXT NOT NULL DEFAULT '';
ALTER TABLE skills ADD COLUMN latest_version TEXT;
CREATE INDEX skills_by_visibility ON skills (visibility, namespace, name);

-- The input schema as published (it may come from a file in the package), JSON or NULL.
ALTER TABLE skill_versions ADD COLUMN input_schema TEXT;
-- The signing key id when the package carried a signature.
ALTER TABLE skill_versions ADD COLUMN signature_key_id TEXT;

-- Full-text search over name, description and keywords, kept current by triggers.
CREATE VIRTUAL TABLE skills_fts USING fts5 (
    skill_id UNINDEXED,
    name,
    description,
    keywords,
    tokenize = 'unicode61'
);
CREATE TRIGGER skills_fts_insert AFTER INSERT ON skills BEGIN
    INSERT INTO skills_fts (skill_id, name, description, keywords)
    VALUES (new.id, new.namespace || ' ' || new.name, new.description, new.keywords);
END;
CREATE TRIGGER skills_fts_update AFTER UPDATE OF namespace, name, description, keywords ON skills
BEGIN
    DELETE FROM skills_fts WHERE skill_id = old.id;
    INSERT INTO skills_fts (skill_id, name, description, keywords)
    VALUES (new.id, new.namespace || ' ' || new.name, new.description, new.keywords);
END;

-- A tenant's use of another tenant's public skill: the requirement it follows and the
-- permissions it accepted (JSON of the manifest's [permissions]).
CREATE TABLE installations (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id),
    skill_id             TEXT NOT NULL REFERENCES skills (id),
    version_req          TEXT NOT NULL,
    accepted_permissions TEXT NOT NULL,
    created_at_ms        INTEGER NOT NULL,
    updated_at_ms        INTEGER NOT NULL,
    UNIQUE (tenant_id, skill_id)
);

-- The `kv` capability's data, scoped to (tenant, skill name); keys compare bytewise.
CREATE TABLE kv_entries (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    skill         TEXT NOT NULL,
    key           TEXT NOT NULL,
    value         BLOB NOT NULL,
    size_bytes    INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, skill, key)
);

-- Per-tenant limits and quotas (JSON); a tenant without a row has the platform defaults.
CREATE TABLE tenant_policies (
    tenant_id     TEXT PRIMARY KEY REFERENCES tenants (id),
    policy        TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

-- Usage per tenant and quota period (`2026-11` for a month, `2026-11-24` for a day), added
-- to by the server's periodic flush.
CREATE TABLE usage_counters (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    period        TEXT NOT NULL,
    invocations   INTEGER NOT NULL DEFAULT 0,
    fuel          INTEGER NOT NULL DEFAULT 0,
    wall_ms       INTEGER NOT NULL DEFAULT 0,
    failures      INTEGER NOT NULL DEFAULT 0,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, period)
);

-- Publishing, discovery, installations, skill key-value data, tenant policies and usage
-- (PostgreSQL). Kept in step with ../sqlite/20261124000002_skills.sql.

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

-- Full-text search over name, description and keywords.
ALTER TABLE skills ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', namespace || ' ' || name || ' ' || description || ' ' || keywords)
) STORED;
CREATE INDEX skills_search ON skills USING GIN (search);

-- A tenant's use of another tenant's public skill: the requirement it follows and the
-- permissions it accepted (JSON of the manifest's [permissions]).
CREATE TABLE installations (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id),
    skill_id             TEXT NOT NULL REFERENCES skills (id),
    version_req          TEXT NOT NULL,
    accepted_permissions TEXT NOT NULL,
    created_at_ms        BIGINT NOT NULL,
    updated_at_ms        BIGINT NOT NULL,
    UNIQUE (tenant_id, skill_id)
);

-- The `kv` capability's data, scoped to (tenant, skill name); keys compare bytewise.
CREATE TABLE kv_entries (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    skill         TEXT NOT NULL,
    key           TEXT COLLATE "C" NOT NULL,
    value         BYTEA NOT NULL,
    size_bytes    BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, skill, key)
);

-- Per-tenant limits and quotas (JSON); a tenant without a row has the platform defaults.
CREATE TABLE tenant_policies (
    tenant_id     TEXT PRIMARY KEY REFERENCES tenants (id),
    policy        TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Usage per tenant and quota period (`2026-11` for a month, `2026-11-24` for a day), added
-- to by the server's periodic flush.
CREATE TABLE usage_counters (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    period        TEXT NOT NULL,
    invocations   BIGINT NOT NULL DEFAULT 0,
    fuel          BIGINT NOT NULL DEFAULT 0,
    wall_ms       BIGINT NOT NULL DEFAULT 0,
    failures      BIGINT NOT NULL DEFAULT 0,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, period)
);

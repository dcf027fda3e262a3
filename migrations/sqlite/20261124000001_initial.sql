-- Initial schema (SQLite). Kept in step with ../postgres/20261124000001_initial.sql: same
-- tables, columns and constraints; only the types differ. Times are unix milliseconds.

CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    slug          TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

CREATE TABLE users (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    email             TEXT NOT NULL,
    display_name      TEXT NOT NULL DEFAULT '',
    is_platform_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_platform_admin IN (0, 1)),
    status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at_ms     INTEGER NOT NULL,
    UNIQUE (tenant_id, email)
);

CREATE TABLE role_bindings (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    role          TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'operator', 'viewer')),
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id, role)
);

-- API keys: `ofk_<prefix>_<secret>`; only the argon2id hash of the secret is stored, found by
-- its indexed public prefix.
CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    user_id         TEXT NOT NULL REFERENCES users (id),
    name            TEXT NOT NULL,
    prefix          TEXT NOT NULL UNIQUE,
    secret_hash     TEXT NOT NULL,
    scopes          TEXT NOT NULL DEFAULT '[]',
    created_at_ms   INTEGER NOT NULL,
    expires_at_ms   INTEGER,
    revoked_at_ms   INTEGER,
    last_used_at_ms INTEGER
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at_ms);

CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     TEXT REFERENCES tenants (id),
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    details       TEXT NOT NULL DEFAULT '{}',
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, id);

-- A namespace belongs to the first tenant that publishes into it.
CREATE TABLE namespaces (
    namespace     TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE skills (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    namespace     TEXT NOT NULL REFERENCES namespaces (namespace),
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    visibility    TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'public')),
    categories    TEXT NOT NULL DEFAULT '[]',
    downloads     INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    deleted_at_ms INTEGER,
    UNIQUE (namespace, name)
);
CREATE INDEX skills_by_tenant ON skills (tenant_id, updated_at_ms);

-- Published versions are immutable; `yanked` is the only column that changes.
CREATE TABLE skill_versions (
    skill_id         TEXT NOT NULL REFERENCES skills (id),
    version          TEXT NOT NULL,
    major            INTEGER NOT NULL,
    minor            INTEGER NOT NULL,
    patch            INTEGER NOT NULL,
    pre              TEXT NOT NULL DEFAULT '',
    package_sha256   TEXT NOT NULL,
    component_sha256 TEXT NOT NULL,
    manifest         TEXT NOT NULL,
    size_bytes       INTEGER NOT NULL,
    yanked           INTEGER NOT NULL DEFAULT 0 CHECK (yanked IN (0, 1)),
    published_by     TEXT NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    PRIMARY KEY (skill_id, version)
);

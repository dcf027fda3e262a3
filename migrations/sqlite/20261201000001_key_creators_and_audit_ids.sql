-- Step 6 (security): who minted each API key, and audit event ids that reveal nothing about
-- other tenants (SQLite). Kept in step with ../postgres/20261201000001_key_creators_and_audit_ids.sql.

-- The user who created a key; NULL when the system did (bootstrap, a tenant's first key). A
-- key minted for another user names both users in the audit events of what it does.
ALTER TABLE api_keys ADD COLUMN created_by TEXT REFERENCES users (id);

-- Audit event ids were one integer sequence shared by all tenants, so the gaps between one
-- tenant's ids measured the others' activity. They become `aud_` + a UUIDv7 in hex: opaque
-- and ordered by time. Existing rows get an id of the same shape built from their time and
-- old id (version 7, variant 8), which keeps their order.
CREATE TABLE audit_events_opaque (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT REFERENCES tenants (id),
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    details       TEXT NOT NULL DEFAULT '{}',
    created_at_ms INTEGER NOT NULL
);
INSERT INTO audit_events_opaque (id, tenant_id, actor, action, resource_type, resource_id,
                                 request_id, details, created_at_ms)
    SELECT 'aud_' || printf('%012x', created_at_ms) || '7000' || '8' || printf('%015x', id),
           tenant_id, actor, action, resource_type, resource_id, request_id, details,
           created_at_ms
    FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_opaque RENAME TO audit_events;
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, id);

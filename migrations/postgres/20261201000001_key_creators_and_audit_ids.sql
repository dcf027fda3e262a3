-- Step 6 (security): who minted each API key, and audit event ids that reveal nothing about
-- other tenants (PostgreSQL). Kept in step with ../sqlite/20261201000001_key_creators_and_audit_ids.sql.

-- The user who created a key; NULL when the system did (bootstrap, a tenant's first key). A
-- key minted for another user names both users in the audit events of what it does.
ALTER TABLE api_keys ADD COLUMN created_by TEXT REFERENCES users (id);

-- Audit event ids were one integer sequence shared by all tenants, so the gaps between one
-- tenant's ids measured the others' activity. They become `aud_` + a UUIDv7 in hex: opaque
-- and ordered by time (byte order: collation "C"). Existing rows get an id of the same shape
-- built from their time and old id (version 7, variant 8), which keeps their order.
ALTER TABLE audit_events ALTER COLUMN id DROP IDENTITY IF EXISTS;
ALTER TABLE audit_events ALTER COLUMN id TYPE TEXT COLLATE "C"
    USING 'aud_' || lpad(to_hex(created_at_ms), 12, '0') || '7000' || '8' || lpad(to_hex(id), 15, '0');

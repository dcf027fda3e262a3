-- Tenant secrets (PostgreSQL). Kept in step with ../sqlite/20261207000001_secrets.sql.
--
-- A value is only ever stored sealed: XChaCha20-Poly1305 under the server's key-encryption
-- key, which `key_id` names by fingerprint, with the tenant and the name as associated data,
-- so a sealed value copied into another row does not open. Rotating the key re-seals rows
-- in place (`omniforge admin rotate-secrets-key`), finding them by `key_id`.
CREATE TABLE secrets (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    name          TEXT NOT NULL,
    sealed        BYTEA NOT NULL,
    key_id        TEXT NOT NULL,
    version       BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    updated_by    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE INDEX secrets_by_key ON secrets (key_id);

-- kv storage charged per entry and counted as running totals (SQLite). Kept in step with
-- ../postgres/20261201000002_kv_usage.sql.
--
-- An entry is charged its key, its value and a fixed 256 bytes for the row and its index
-- entry (docs/runtime.md; measured on both engines). Totals per skill and per tenant are kept
-- up to date by every write, so a write checks its quotas by reading two rows instead of
-- summing the scope inside the write lock.
UPDATE kv_entries SET size_bytes = length(key) + length(value) + 256;

CREATE TABLE kv_usage (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    skill     TEXT NOT NULL,
    bytes     INTEGER NOT NULL,
    entries   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, skill)
);
INSERT INTO kv_usage (tenant_id, skill, bytes, entries)
    SELECT tenant_id, skill, SUM(size_bytes), COUNT(*) FROM kv_entries GROUP BY tenant_id, skill;

CREATE TABLE kv_tenant_usage (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    bytes     INTEGER NOT NULL,
    entries   INTEGER NOT NULL
);
INSERT INTO kv_tenant_usage (tenant_id, bytes, entries)
    SELECT tenant_id, SUM(size_bytes), COUNT(*) FROM kv_entries GROUP BY tenant_id;

-- kv keys are stored as their UTF-8 bytes, as on PostgreSQL: one comparison rule (memcmp)
-- for every key, U+0000 included. SQLite cannot change a column's type, so the table is
-- rebuilt.
CREATE TABLE kv_entries_binary (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    skill         TEXT NOT NULL,
    key           BLOB NOT NULL,
    value         BLOB NOT NULL,
    size_bytes    INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, skill, key)
);
INSERT INTO kv_entries_binary (tenant_id, skill, key, value, size_bytes, updated_at_ms)
    SELECT tenant_id, skill, CAST(key AS BLOB), value, size_bytes, updated_at_ms FROM kv_entries;
DROP TABLE kv_entries;
ALTER TABLE kv_entries_binary RENAME TO kv_entries;

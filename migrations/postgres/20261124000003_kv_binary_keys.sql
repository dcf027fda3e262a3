-- kv keys are stored as their UTF-8 bytes: any string a skill passes is a valid key (TEXT
-- cannot hold U+0000), and byte order is the only order, whatever the collation.
ALTER TABLE kv_entries ALTER COLUMN key TYPE BYTEA USING convert_to(key, 'UTF8');

-- The output JSON Schema as published (it may come from a file in the package), JSON or NULL.
-- Invocations check outputs against it (502 `invalid-output`); versions published before
-- this column existed have none and are not checked.
ALTER TABLE skill_versions ADD COLUMN output_schema TEXT;

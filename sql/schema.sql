-- Reject tables. Written by package load; one column per field of the Arrow
-- schemas in schema.go, in the same order (load's DDL check test enforces it).
--
-- No PRIMARY KEY / UNIQUE constraints: on DuckDB 1.1.3 they break the merge
-- (list columns cannot be updated through ON CONFLICT, and deleting then
-- re-inserting a key in one transaction trips the index). The loader keeps
-- the key (_source, <id>) unique: every commit deletes the keys it brings
-- and inserts one row per key, the newest by _extracted_at.

-- The data tables (contacts, tasks, notes, appointments) and the custom field
-- tables are generated from the mapping (mapping.yaml; see TablesDDL in ddl.go).

-- Records rejected whole (no usable id). Keyed by
-- (_source, _location_id, resource, reject_key): a re-read replaces the row.
CREATE TABLE IF NOT EXISTS rejects (
    resource            VARCHAR NOT NULL,
    record_id           VARCHAR,
    contact_id          VARCHAR,
    reason              VARCHAR NOT NULL,
    raw_json            VARCHAR,   -- valid UTF-8, at most RejectRawMax bytes
    raw_bytes           BIGINT NOT NULL,
    _source             VARCHAR NOT NULL,
    _location_id        VARCHAR NOT NULL,
    _run_id             VARCHAR NOT NULL,
    _extracted_at       TIMESTAMPTZ NOT NULL,
    reject_key          VARCHAR    -- sql.RejectKey(resource, contact_id, raw)
);

-- Fields of landed records that could not be mapped (column NULL) or were
-- mended (invalid UTF-8 replaced, value_landed). Keyed by
-- (_source, resource, record_id, field): a re-read replaces the row.
CREATE TABLE IF NOT EXISTS field_rejects (
    resource            VARCHAR NOT NULL,
    record_id           VARCHAR NOT NULL,
    contact_id          VARCHAR,
    field               VARCHAR NOT NULL,   -- the API's JSON field
    column_name         VARCHAR,            -- the warehouse column
    raw_value           VARCHAR,            -- JSON text as sent; non-UTF-8 bytes as \xNN
    reason              VARCHAR NOT NULL,
    value_landed        BOOLEAN NOT NULL,
    _source             VARCHAR NOT NULL,
    _location_id        VARCHAR NOT NULL,
    _run_id             VARCHAR NOT NULL,
    _extracted_at       TIMESTAMPTZ NOT NULL
);

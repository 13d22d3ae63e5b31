-- Data tables. Written by package load; one column per field of the Arrow
-- schemas in schema.go, in the same order (load's DDL check test enforces it).
--
-- No PRIMARY KEY / UNIQUE constraints: on DuckDB 1.1.3 they break the merge
-- (list columns cannot be updated through ON CONFLICT, and deleting then
-- re-inserting a key in one transaction trips the index). The loader keeps
-- the key (_source, <id>) unique: every commit deletes the keys it brings
-- and inserts one row per key, the newest by _extracted_at.

CREATE TABLE IF NOT EXISTS contacts (
    contact_id          VARCHAR NOT NULL,
    location_id         VARCHAR,
    first_name          VARCHAR,
    last_name           VARCHAR,
    name                VARCHAR,
    email               VARCHAR,
    phone               VARCHAR,
    company_name        VARCHAR,
    tags                VARCHAR[],
    lead_source         VARCHAR,
    type                VARCHAR,
    assigned_to         VARCHAR,
    address1            VARCHAR,
    city                VARCHAR,
    state               VARCHAR,
    postal_code         VARCHAR,
    country             VARCHAR,
    website             VARCHAR,
    timezone            VARCHAR,
    dnd                 BOOLEAN,
    dnd_settings        VARCHAR,   -- JSON text
    date_of_birth       DATE,
    created_at          TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ,
    last_activity       TIMESTAMPTZ,
    custom_fields       VARCHAR,   -- JSON text
    attribution_source  VARCHAR,   -- JSON text
    additional_emails   VARCHAR[],
    additional_phones   VARCHAR[],
    followers           VARCHAR[],
    _source             VARCHAR NOT NULL,
    _location_id        VARCHAR NOT NULL,
    _run_id             VARCHAR NOT NULL,
    _extracted_at       TIMESTAMPTZ NOT NULL,
    _deleted_at         TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS tasks (
    task_id             VARCHAR NOT NULL,
    contact_id          VARCHAR,
    title               VARCHAR,
    body                VARCHAR,
    assigned_to         VARCHAR,
    due_date            TIMESTAMPTZ,
    completed           BOOLEAN,
    status              VARCHAR,   -- completed, overdue, pending
    _source             VARCHAR NOT NULL,
    _location_id        VARCHAR NOT NULL,
    _run_id             VARCHAR NOT NULL,
    _extracted_at       TIMESTAMPTZ NOT NULL,
    _deleted_at         TIMESTAMPTZ,
    body_contact_id     VARCHAR    -- the record's own contactId (contact_id is the request path's)
);

CREATE TABLE IF NOT EXISTS notes (
    note_id             VARCHAR NOT NULL,
    contact_id          VARCHAR,
    content             VARCHAR,
    user_id             VARCHAR,
    title               VARCHAR,
    color               VARCHAR,
    pinned              BOOLEAN,
    created_at          TIMESTAMPTZ,
    _source             VARCHAR NOT NULL,
    _location_id        VARCHAR NOT NULL,
    _run_id             VARCHAR NOT NULL,
    _extracted_at       TIMESTAMPTZ NOT NULL,
    _deleted_at         TIMESTAMPTZ,
    body_contact_id     VARCHAR
);

CREATE TABLE IF NOT EXISTS appointments (
    appointment_id      VARCHAR NOT NULL,
    contact_id          VARCHAR,
    calendar_id         VARCHAR,
    title               VARCHAR,
    status              VARCHAR,
    appointment_status  VARCHAR,
    assigned_user_id    VARCHAR,
    attendees           VARCHAR[],
    notes               VARCHAR,
    address             VARCHAR,
    group_id            VARCHAR,
    start_time          TIMESTAMPTZ,
    end_time            TIMESTAMPTZ,
    created_at          TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ,
    _source             VARCHAR NOT NULL,
    _location_id        VARCHAR NOT NULL,
    _run_id             VARCHAR NOT NULL,
    _extracted_at       TIMESTAMPTZ NOT NULL,
    _deleted_at         TIMESTAMPTZ,
    body_contact_id     VARCHAR,
    time_zone           VARCHAR    -- IANA zone used to read zone-less times; 'offset' when they carried one
);

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

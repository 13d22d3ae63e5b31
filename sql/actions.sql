-- Actions of `contacts-etl push` (see Actions in actions.go): one row per
-- action key, merged newest-wins by _extracted_at like the data tables.

CREATE TABLE IF NOT EXISTS actions (
    action_key      VARCHAR NOT NULL,
    action          VARCHAR NOT NULL,
    contact_id      VARCHAR,
    target_id       VARCHAR,
    args            VARCHAR,
    status          VARCHAR NOT NULL,
    message         VARCHAR,
    trace_id        VARCHAR,
    http_status     BIGINT,
    attempts        BIGINT NOT NULL,
    baseline        BIGINT,
    planned_at      TIMESTAMPTZ,
    sent_at         TIMESTAMPTZ,
    confirmed_at    TIMESTAMPTZ,
    _source         VARCHAR NOT NULL,
    _location_id    VARCHAR NOT NULL,
    _run_id         VARCHAR NOT NULL,
    _extracted_at   TIMESTAMPTZ NOT NULL
);

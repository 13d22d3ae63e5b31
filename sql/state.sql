-- Exporter state, written by package load in the same transaction as the
-- data it describes. Keys are kept unique by the loader (delete + insert),
-- not by constraints, for the reasons given in schema.sql.

-- One row per applied schema version; load refuses a warehouse whose
-- newest version is above the one it knows.
CREATE TABLE IF NOT EXISTS schema_version (
    version             INTEGER NOT NULL,
    applied_at          TIMESTAMPTZ NOT NULL
);

-- One row per execution of the exporter: inserted by Start (outcome
-- 'running'), completed by Finish.
CREATE TABLE IF NOT EXISTS runs (
    run_id              VARCHAR NOT NULL,
    source              VARCHAR NOT NULL,
    command             VARCHAR NOT NULL,   -- run, backfill, demo
    started_at          TIMESTAMPTZ NOT NULL,
    ended_at            TIMESTAMPTZ,
    outcome             VARCHAR NOT NULL,   -- running, ok, failed, partial
    error               VARCHAR,
    requests            BIGINT,
    retries             BIGINT,
    rate_limited        BIGINT,             -- 429 answers
    rows                JSON,               -- {"contacts": n, ...}
    rejects             BIGINT,
    duration_ms         BIGINT
);

-- High-water mark per (source, location_id, resource): everything updated
-- before value is committed.
CREATE TABLE IF NOT EXISTS watermarks (
    source              VARCHAR NOT NULL,
    location_id         VARCHAR NOT NULL,
    resource            VARCHAR NOT NULL,
    value               TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);

-- Window ledger: half-open intervals [window_start, window_end) of
-- dateUpdated, keyed by (source, location_id, resource, window_start).
CREATE TABLE IF NOT EXISTS windows (
    source              VARCHAR NOT NULL,
    location_id         VARCHAR NOT NULL,
    resource            VARCHAR NOT NULL,
    window_start        TIMESTAMPTZ NOT NULL,
    window_end          TIMESTAMPTZ NOT NULL,
    status              VARCHAR NOT NULL CHECK (status IN ('open', 'done')),
    cursor              VARCHAR,            -- JSON of the last committed page's cursor
    run_id              VARCHAR NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    CHECK (window_start < window_end)
);

-- Who opened a window: 'run' (incremental) or 'backfill'. Added after
-- version 1's first release, hence the ALTER.
ALTER TABLE windows ADD COLUMN IF NOT EXISTS kind VARCHAR;

-- Rolling sweep ledger: when the children of each contact were last read
-- in full, keyed by (source, location_id, contact_id).
CREATE TABLE IF NOT EXISTS sweeps (
    source              VARCHAR NOT NULL,
    location_id         VARCHAR NOT NULL,
    contact_id          VARCHAR NOT NULL,
    swept_at            TIMESTAMPTZ NOT NULL,
    run_id              VARCHAR NOT NULL
);

-- Id-only reconciliations (deletes), one row per location and pass.
CREATE TABLE IF NOT EXISTS reconciles (
    source              VARCHAR NOT NULL,
    location_id         VARCHAR NOT NULL,
    reconciled_at       TIMESTAMPTZ NOT NULL,
    run_id              VARCHAR NOT NULL,
    listed              BIGINT NOT NULL,
    deleted             BIGINT NOT NULL
);

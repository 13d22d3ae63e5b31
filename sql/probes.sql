-- Bulk probes a location's token was refused (no scope, unusable answer),
-- keyed by (source, location_id, token_id, resource): a run that finds one
-- younger than a day for the same token identity reads the resource per
-- contact without probing again. token_id is a non-secret identity of the
-- token (a salted hash prefix), never the token.
CREATE TABLE IF NOT EXISTS probes (
    source              VARCHAR NOT NULL,
    location_id         VARCHAR NOT NULL,
    token_id            VARCHAR NOT NULL,
    resource            VARCHAR NOT NULL,   -- tasks, appointments
    reason              VARCHAR,
    probed_at           TIMESTAMPTZ NOT NULL
);

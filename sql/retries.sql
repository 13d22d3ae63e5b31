-- Records rejected by the transform stage whose contacts later runs read
-- again, keyed by (source, location_id, contact_id): a row is inserted by
-- the commit that covers the reject (attempts 1), counted up by each later
-- reject of the same contact, and deleted once a re-read lands cleanly.
-- Rows with attempts at the run's limit stay, for `status`, until the
-- per-location cap drops them. Added after version 2's first release;
-- CREATE ... IF NOT EXISTS adds it to older warehouses.
CREATE TABLE IF NOT EXISTS retries (
    source              VARCHAR NOT NULL,
    location_id         VARCHAR NOT NULL,
    contact_id          VARCHAR NOT NULL,
    resource            VARCHAR NOT NULL,   -- the rejected record's resource
    record_id           VARCHAR,            -- the rejected record's id, when it had one
    reason              VARCHAR,
    run_id              VARCHAR NOT NULL,   -- the run of the latest attempt
    attempts            INTEGER NOT NULL,
    first_at            TIMESTAMPTZ NOT NULL,
    last_at             TIMESTAMPTZ NOT NULL
);

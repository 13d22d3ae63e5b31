-- Schema version 2: columns added to tables created by version 1. ALTER
-- TABLE appends them after the system columns, where schema.sql (and the
-- Arrow schemas) put them for a new warehouse, so both have one order.
-- field_rejects is new in version 2 and created by schema.sql.

ALTER TABLE tasks ADD COLUMN IF NOT EXISTS body_contact_id VARCHAR;
ALTER TABLE notes ADD COLUMN IF NOT EXISTS body_contact_id VARCHAR;
ALTER TABLE appointments ADD COLUMN IF NOT EXISTS body_contact_id VARCHAR;
ALTER TABLE appointments ADD COLUMN IF NOT EXISTS time_zone VARCHAR;
ALTER TABLE rejects ADD COLUMN IF NOT EXISTS reject_key VARCHAR;

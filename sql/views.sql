-- Analyst views. Plain SQL that DuckDB 1.1.3 (bundled) and current DuckDB
-- (1.5) both accept; recreated by the loader whenever it migrates.
-- Soft-deleted rows (_deleted_at set) stay in the tables; these views hide them.

CREATE OR REPLACE VIEW contacts_live AS
SELECT * FROM contacts WHERE _deleted_at IS NULL;

-- One row per (contact, tag) of the live contacts.
CREATE OR REPLACE VIEW contact_tags AS
SELECT _source, contact_id, tag
FROM (SELECT _source, contact_id, unnest(tags) AS tag FROM contacts WHERE _deleted_at IS NULL) t
WHERE tag IS NOT NULL;

CREATE OR REPLACE VIEW tasks_live AS
SELECT * FROM tasks WHERE _deleted_at IS NULL;

-- Live tasks not completed (status tells pending from overdue).
CREATE OR REPLACE VIEW tasks_open AS
SELECT * FROM tasks
WHERE _deleted_at IS NULL AND coalesce(completed, false) = false;

CREATE OR REPLACE VIEW notes_live AS
SELECT * FROM notes WHERE _deleted_at IS NULL;

CREATE OR REPLACE VIEW appointments_live AS
SELECT * FROM appointments WHERE _deleted_at IS NULL;

-- One row per live contact with counts of its live children.
CREATE OR REPLACE VIEW contact_activity AS
SELECT
    c._source,
    c.contact_id,
    c.name,
    c.email,
    c.last_activity,
    coalesce(t.tasks, 0)           AS tasks,
    coalesce(t.tasks_open, 0)      AS tasks_open,
    coalesce(t.tasks_overdue, 0)   AS tasks_overdue,
    coalesce(n.notes, 0)           AS notes,
    n.last_note_at,
    coalesce(a.appointments, 0)    AS appointments,
    a.first_appointment_at,
    a.last_appointment_at
FROM contacts c
LEFT JOIN (
    SELECT _source, contact_id,
           count(*) AS tasks,
           count(*) FILTER (WHERE coalesce(completed, false) = false) AS tasks_open,
           count(*) FILTER (WHERE status = 'overdue') AS tasks_overdue
    FROM tasks WHERE _deleted_at IS NULL
    GROUP BY _source, contact_id
) t ON t._source = c._source AND t.contact_id = c.contact_id
LEFT JOIN (
    SELECT _source, contact_id, count(*) AS notes, max(created_at) AS last_note_at
    FROM notes WHERE _deleted_at IS NULL
    GROUP BY _source, contact_id
) n ON n._source = c._source AND n.contact_id = c.contact_id
LEFT JOIN (
    SELECT _source, contact_id, count(*) AS appointments,
           min(start_time) AS first_appointment_at, max(start_time) AS last_appointment_at
    FROM appointments WHERE _deleted_at IS NULL
    GROUP BY _source, contact_id
) a ON a._source = c._source AND a.contact_id = c.contact_id
WHERE c._deleted_at IS NULL;

-- Latest run per source and command.
CREATE OR REPLACE VIEW runs_latest AS
SELECT * FROM runs
QUALIFY row_number() OVER (PARTITION BY source, command ORDER BY started_at DESC) = 1;

-- Analyst views. Plain SQL that the bundled DuckDB and a stock DuckDB 1.5
-- both accept; recreated by the DuckDB sink on its first session and
-- appended by the Parquet sink to its views.sql after the table views.
-- Soft-deleted rows (_deleted_at set) stay in the tables; these views hide them.
--
-- What depends on the clock (open vs overdue tasks, upcoming appointments)
-- is computed at query time, never taken from the status frozen at
-- extraction: each such view is a table macro <name>_at(as_of_ts) queried
-- at now(), so `SELECT * FROM overdue_tasks_at(TIMESTAMPTZ '2024-06-01')`
-- asks the same question at another instant. Times are compared as
-- instants (epoch()), never cast to a local zone.

CREATE OR REPLACE VIEW contacts_live AS
SELECT * FROM contacts WHERE _deleted_at IS NULL;

-- One row per (contact, tag) of the live contacts.
CREATE OR REPLACE VIEW contact_tags AS
SELECT _source, _location_id, contact_id, tag
FROM (SELECT _source, _location_id, contact_id, unnest(tags) AS tag FROM contacts WHERE _deleted_at IS NULL) t
WHERE tag IS NOT NULL;

CREATE OR REPLACE VIEW tasks_live AS
SELECT * FROM tasks WHERE _deleted_at IS NULL;

-- Live tasks not completed (tasks.status is the status at extraction;
-- open_tasks tells overdue from pending now).
CREATE OR REPLACE VIEW tasks_open AS
SELECT * FROM tasks
WHERE _deleted_at IS NULL AND coalesce(completed, false) = false;

CREATE OR REPLACE VIEW notes_live AS
SELECT * FROM notes WHERE _deleted_at IS NULL;

CREATE OR REPLACE VIEW appointments_live AS
SELECT * FROM appointments WHERE _deleted_at IS NULL;

-- Open tasks of live contacts at as_of_ts: not completed; overdue when due
-- before as_of_ts (a task without a due date is never overdue).
CREATE OR REPLACE MACRO open_tasks_at(as_of_ts) AS TABLE
SELECT t._source, t._location_id, t.task_id, t.contact_id, c.name AS contact_name,
       t.title, t.body, t.assigned_to, t.due_date,
       coalesce(t.due_date < as_of_ts, false) AS overdue,
       CASE WHEN t.due_date < as_of_ts
            THEN CAST(floor((epoch(as_of_ts) - epoch(t.due_date)) / 86400) AS BIGINT) END AS days_overdue,
       t._run_id, t._extracted_at
FROM tasks t
JOIN contacts c ON c._source = t._source AND c.contact_id = t.contact_id AND c._deleted_at IS NULL
WHERE t._deleted_at IS NULL AND coalesce(t.completed, false) = false;

CREATE OR REPLACE MACRO overdue_tasks_at(as_of_ts) AS TABLE
SELECT * FROM open_tasks_at(as_of_ts) WHERE overdue;

CREATE OR REPLACE VIEW open_tasks AS SELECT * FROM open_tasks_at(now());
CREATE OR REPLACE VIEW overdue_tasks AS SELECT * FROM overdue_tasks_at(now());

-- Appointments of live contacts that start at or after as_of_ts and are not
-- cancelled or invalid, soonest first.
CREATE OR REPLACE MACRO upcoming_appointments_at(as_of_ts) AS TABLE
SELECT a._source, a._location_id, a.appointment_id, a.contact_id, c.name AS contact_name,
       a.calendar_id, a.title, a.status, a.assigned_user_id, a.attendees,
       a.start_time, a.end_time, a.time_zone, a.address
FROM appointments a
JOIN contacts c ON c._source = a._source AND c.contact_id = a.contact_id AND c._deleted_at IS NULL
WHERE a._deleted_at IS NULL AND a.start_time >= as_of_ts
  AND coalesce(a.status, '') NOT IN ('cancelled', 'invalid')
ORDER BY a.start_time, a._source, a.appointment_id;

CREATE OR REPLACE VIEW upcoming_appointments AS SELECT * FROM upcoming_appointments_at(now());

-- One row per live contact: who, how to reach them, their open and overdue
-- tasks at as_of_ts, their last note and their next appointment.
CREATE OR REPLACE MACRO contact_360_at(as_of_ts) AS TABLE
SELECT
    c._source, c._location_id, c.contact_id, c.name, c.email, c.phone, c.tags,
    c.company_name, c.assigned_to, c.created_at, c.updated_at,
    coalesce(t.tasks_open, 0)     AS tasks_open,
    coalesce(t.tasks_overdue, 0)  AS tasks_overdue,
    t.next_due_date,
    coalesce(n.notes, 0)          AS notes,
    n.last_note_at,
    n.last_note,
    na.appointment_id             AS next_appointment_id,
    na.start_time                 AS next_appointment_at,
    na.title                      AS next_appointment_title,
    na.status                     AS next_appointment_status
FROM contacts c
LEFT JOIN (
    SELECT _source, contact_id,
           count(*) AS tasks_open,
           count(*) FILTER (WHERE due_date < as_of_ts) AS tasks_overdue,
           min(due_date) FILTER (WHERE due_date >= as_of_ts) AS next_due_date
    FROM tasks
    WHERE _deleted_at IS NULL AND coalesce(completed, false) = false
    GROUP BY _source, contact_id
) t ON t._source = c._source AND t.contact_id = c.contact_id
LEFT JOIN (
    SELECT _source, contact_id, created_at AS last_note_at, content AS last_note,
           count(*) OVER (PARTITION BY _source, contact_id) AS notes
    FROM notes
    WHERE _deleted_at IS NULL
    QUALIFY row_number() OVER (PARTITION BY _source, contact_id
                               ORDER BY created_at DESC NULLS LAST, note_id DESC) = 1
) n ON n._source = c._source AND n.contact_id = c.contact_id
LEFT JOIN (
    SELECT _source, contact_id, appointment_id, start_time, title, status
    FROM appointments
    WHERE _deleted_at IS NULL AND start_time >= as_of_ts
      AND coalesce(status, '') NOT IN ('cancelled', 'invalid')
    QUALIFY row_number() OVER (PARTITION BY _source, contact_id ORDER BY start_time, appointment_id) = 1
) na ON na._source = c._source AND na.contact_id = c.contact_id
WHERE c._deleted_at IS NULL;

CREATE OR REPLACE VIEW contact_360 AS SELECT * FROM contact_360_at(now());

-- Everything that happened to a live contact, one row per event, newest
-- first: the contact's creation, its notes, its tasks' due dates and its
-- appointments' starts.
CREATE OR REPLACE VIEW activity_timeline AS
SELECT e.* FROM (
    SELECT _source, _location_id, contact_id, created_at AS at, 'contact_created' AS kind,
           contact_id AS item_id, name AS title, CAST(NULL AS VARCHAR) AS detail
    FROM contacts WHERE _deleted_at IS NULL AND created_at IS NOT NULL
    UNION ALL
    SELECT _source, _location_id, contact_id, created_at, 'note', note_id, title, content
    FROM notes WHERE _deleted_at IS NULL AND created_at IS NOT NULL
    UNION ALL
    SELECT _source, _location_id, contact_id, due_date, 'task_due', task_id, title,
           CASE WHEN coalesce(completed, false) THEN 'completed' ELSE 'open' END
    FROM tasks WHERE _deleted_at IS NULL AND due_date IS NOT NULL
    UNION ALL
    SELECT _source, _location_id, contact_id, start_time, 'appointment', appointment_id, title, status
    FROM appointments WHERE _deleted_at IS NULL AND start_time IS NOT NULL
) e
JOIN contacts c ON c._source = e._source AND c.contact_id = e.contact_id AND c._deleted_at IS NULL
ORDER BY e.at DESC, e._source, e.contact_id, e.kind, e.item_id;

-- One row per live contact with counts of its live children; open and
-- overdue tasks are counted now.
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
    a.last_appointment_at,
    c._location_id
FROM contacts c
LEFT JOIN (
    SELECT _source, contact_id,
           count(*) AS tasks,
           count(*) FILTER (WHERE coalesce(completed, false) = false) AS tasks_open,
           count(*) FILTER (WHERE coalesce(completed, false) = false AND due_date < now()) AS tasks_overdue
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

-- Per (source, location) counts at as_of_ts: live and deleted contacts,
-- live children, open/overdue tasks, upcoming appointments, rejects.
CREATE OR REPLACE MACRO location_summary_at(as_of_ts) AS TABLE
WITH locs AS (
    SELECT DISTINCT _source, _location_id FROM contacts
    UNION SELECT DISTINCT _source, _location_id FROM rejects
    UNION SELECT DISTINCT _source, _location_id FROM field_rejects
)
SELECT l._source, l._location_id,
    (SELECT count(*) FROM contacts x WHERE x._source = l._source AND x._location_id = l._location_id AND x._deleted_at IS NULL) AS contacts,
    (SELECT count(*) FROM contacts x WHERE x._source = l._source AND x._location_id = l._location_id AND x._deleted_at IS NOT NULL) AS contacts_deleted,
    (SELECT count(*) FROM tasks x WHERE x._source = l._source AND x._location_id = l._location_id AND x._deleted_at IS NULL) AS tasks,
    (SELECT count(*) FROM open_tasks_at(as_of_ts) x WHERE x._source = l._source AND x._location_id = l._location_id) AS tasks_open,
    (SELECT count(*) FROM overdue_tasks_at(as_of_ts) x WHERE x._source = l._source AND x._location_id = l._location_id) AS tasks_overdue,
    (SELECT count(*) FROM notes x WHERE x._source = l._source AND x._location_id = l._location_id AND x._deleted_at IS NULL) AS notes,
    (SELECT count(*) FROM appointments x WHERE x._source = l._source AND x._location_id = l._location_id AND x._deleted_at IS NULL) AS appointments,
    (SELECT count(*) FROM upcoming_appointments_at(as_of_ts) x WHERE x._source = l._source AND x._location_id = l._location_id) AS appointments_upcoming,
    (SELECT count(*) FROM rejects x WHERE x._source = l._source AND x._location_id = l._location_id) AS rejects,
    (SELECT count(*) FROM field_rejects x WHERE x._source = l._source AND x._location_id = l._location_id) AS field_rejects,
    (SELECT max(_extracted_at) FROM contacts x WHERE x._source = l._source AND x._location_id = l._location_id) AS last_extracted_at
FROM locs l
ORDER BY l._source, l._location_id;

CREATE OR REPLACE VIEW location_summary AS SELECT * FROM location_summary_at(now());

-- Latest run per source, whatever its command (run, backfill, demo, ...).
CREATE OR REPLACE VIEW runs_latest AS
SELECT * FROM runs
QUALIFY row_number() OVER (PARTITION BY source ORDER BY started_at DESC, run_id DESC) = 1;

-- Per source: the sums of location_summary, and its last run and last
-- successful run.
CREATE OR REPLACE VIEW source_summary AS
SELECT s._source, s.locations, s.contacts, s.contacts_deleted, s.tasks, s.tasks_open, s.tasks_overdue,
       s.notes, s.appointments, s.appointments_upcoming, s.rejects, s.field_rejects,
       r.run_id AS last_run_id, r.command AS last_run_command, r.outcome AS last_run_outcome,
       r.started_at AS last_run_at,
       (SELECT max(ended_at) FROM runs o WHERE o.source = s._source AND o.outcome = 'ok') AS last_success_at
FROM (
    SELECT _source, count(*) AS locations, sum(contacts) AS contacts, sum(contacts_deleted) AS contacts_deleted,
           sum(tasks) AS tasks, sum(tasks_open) AS tasks_open, sum(tasks_overdue) AS tasks_overdue,
           sum(notes) AS notes, sum(appointments) AS appointments,
           sum(appointments_upcoming) AS appointments_upcoming,
           sum(rejects) AS rejects, sum(field_rejects) AS field_rejects
    FROM location_summary GROUP BY _source
) s
LEFT JOIN runs_latest r ON r.source = s._source
ORDER BY s._source;

-- Rejects of both kinds, grouped: whole records ('record', from rejects)
-- and unmappable fields of landed records ('field', from field_rejects).
CREATE OR REPLACE VIEW rejects_summary AS
SELECT _source, _location_id, kind, resource, field, reason,
       count(*) AS rejects, count(DISTINCT record_id) AS records,
       count(DISTINCT contact_id) AS contacts,
       min(_extracted_at) AS first_seen_at, max(_extracted_at) AS last_seen_at
FROM (
    SELECT _source, _location_id, 'record' AS kind, resource, CAST(NULL AS VARCHAR) AS field, reason,
           record_id, contact_id, _extracted_at
    FROM rejects
    UNION ALL
    SELECT _source, _location_id, 'field', resource, field, reason, record_id, contact_id, _extracted_at
    FROM field_rejects
) r
GROUP BY _source, _location_id, kind, resource, field, reason
ORDER BY _source, _location_id, kind, resource, field, reason;

-- The last change of every row of the data tables: one row per (table_name,
-- _source, id) with kind 'new' (its last change is its first write),
-- 'changed' (a write changed a value) or 'deleted' (soft-deleted), changed_at (its
-- _changed_at) and run_id (the run whose write made the change; NULL when a
-- later run re-read it unchanged, and for deletes). A re-read that changes
-- no value (tasks.status, derived from the clock, aside) moves neither, so
-- `SELECT * FROM changes_since(ts)` lists what changed at or after ts: a
-- run's writes carry its start (_extracted_at), so changes_since(a run's
-- started_at) includes that run's changes. Rows of
-- Parquet files written before the change columns existed count as changed
-- when last read (or deleted).
CREATE OR REPLACE VIEW changes AS
SELECT table_name, _source, _location_id, id, contact_id,
       CASE WHEN _deleted_at IS NOT NULL AND changed_at = _deleted_at THEN 'deleted'
            WHEN changed_at = coalesce(_first_seen_at, _extracted_at) THEN 'new'
            ELSE 'changed' END AS kind,
       changed_at,
       CASE WHEN (_deleted_at IS NULL OR changed_at <> _deleted_at) AND changed_at = _extracted_at THEN _run_id END AS run_id
FROM (
    SELECT *, coalesce(_changed_at, _deleted_at, _extracted_at) AS changed_at
    FROM (
        SELECT 'contacts' AS table_name, _source, _location_id, contact_id AS id, contact_id,
               _first_seen_at, _changed_at, _deleted_at, _extracted_at, _run_id
        FROM contacts
        UNION ALL
        SELECT 'tasks' AS table_name, _source, _location_id, task_id AS id, contact_id,
               _first_seen_at, _changed_at, _deleted_at, _extracted_at, _run_id
        FROM tasks
        UNION ALL
        SELECT 'notes' AS table_name, _source, _location_id, note_id AS id, contact_id,
               _first_seen_at, _changed_at, _deleted_at, _extracted_at, _run_id
        FROM notes
        UNION ALL
        SELECT 'appointments' AS table_name, _source, _location_id, appointment_id AS id, contact_id,
               _first_seen_at, _changed_at, _deleted_at, _extracted_at, _run_id
        FROM appointments
    ) u
) c;

CREATE OR REPLACE MACRO changes_since(ts) AS TABLE
SELECT * FROM changes WHERE changed_at >= ts
ORDER BY changed_at, table_name, _source, id;

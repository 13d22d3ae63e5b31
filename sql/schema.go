// Package sql is the warehouse model: one Arrow schema per table, defined
// once and shared by the transform stage (which builds records of it) and by
// both sinks, plus the DDL and analyst views embedded from *.sql files.
//
// Import it under an alias (e.g. whsql) next to database/sql.
package sql

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"

	"github.com/apache/arrow-go/v18/arrow"
)

// Files holds the DDL (the files DDL names) and the analyst views (views.sql).
//
//go:embed *.sql
var Files embed.FS

// System columns carried by every data row.
const (
	ColSource      = "_source"
	ColLocationID  = "_location_id"
	ColRunID       = "_run_id"
	ColExtractedAt = "_extracted_at"
	ColDeletedAt   = "_deleted_at"
)

// Table describes one warehouse table: its Arrow schema, its key columns
// (the merge key) and the column that orders versions of one key (newest wins).
type Table struct {
	Name    string
	Schema  *arrow.Schema
	Key     []string
	Version string
}

var (
	str  = arrow.BinaryTypes.String
	ts   = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	bln  = arrow.FixedWidthTypes.Boolean
	strs = arrow.ListOf(arrow.BinaryTypes.String)
	i64  = arrow.PrimitiveTypes.Int64
	date = arrow.FixedWidthTypes.Date32
)

func f(name string, t arrow.DataType, nullable bool) arrow.Field {
	return arrow.Field{Name: name, Type: t, Nullable: nullable}
}

func system() []arrow.Field {
	return []arrow.Field{
		f(ColSource, str, false),
		f(ColLocationID, str, false),
		f(ColRunID, str, false),
		f(ColExtractedAt, ts, false),
		f(ColDeletedAt, ts, true),
	}
}

func schema(fields ...arrow.Field) *arrow.Schema {
	return arrow.NewSchema(append(fields, system()...), nil)
}

// withAdded appends columns added after schema version 1 behind the system
// columns: ALTER TABLE ADD COLUMN (schema_v2.sql) puts them there in an
// existing warehouse, so a new and a migrated table have the same order.
func withAdded(s *arrow.Schema, added ...arrow.Field) *arrow.Schema {
	return arrow.NewSchema(append(s.Fields(), added...), nil)
}

// Contacts: one row per contact. custom_fields, dnd_settings and
// attribution_source hold JSON text; empty strings from the API load as NULL.
var Contacts = Table{
	Name: "contacts",
	Schema: schema(
		f("contact_id", str, false),
		f("location_id", str, true),
		f("first_name", str, true),
		f("last_name", str, true),
		f("name", str, true),
		f("email", str, true),
		f("phone", str, true),
		f("company_name", str, true),
		f("tags", strs, true),
		f("lead_source", str, true),
		f("type", str, true),
		f("assigned_to", str, true),
		f("address1", str, true),
		f("city", str, true),
		f("state", str, true),
		f("postal_code", str, true),
		f("country", str, true),
		f("website", str, true),
		f("timezone", str, true),
		f("dnd", bln, true),
		f("dnd_settings", str, true),
		f("date_of_birth", date, true),
		f("created_at", ts, true),
		f("updated_at", ts, true),
		f("last_activity", ts, true),
		f("custom_fields", str, true),
		f("attribution_source", str, true),
		f("additional_emails", strs, true),
		f("additional_phones", strs, true),
		f("followers", strs, true),
	),
	Key:     []string{ColSource, "contact_id"},
	Version: ColExtractedAt,
}

// Tasks of contacts. status is derived: completed, overdue (due before
// extraction) or pending. contact_id is the contact of the request path;
// body_contact_id is the record's own "contactId" as sent (it may differ,
// and never re-parents the row).
var Tasks = Table{
	Name: "tasks",
	Schema: withAdded(schema(
		f("task_id", str, false),
		f("contact_id", str, true),
		f("title", str, true),
		f("body", str, true),
		f("assigned_to", str, true),
		f("due_date", ts, true),
		f("completed", bln, true),
		f("status", str, true),
	), f(ColBodyContactID, str, true)),
	Key:     []string{ColSource, "task_id"},
	Version: ColExtractedAt,
}

// Notes of contacts; content is the note body. contact_id and
// body_contact_id as for Tasks.
var Notes = Table{
	Name: "notes",
	Schema: withAdded(schema(
		f("note_id", str, false),
		f("contact_id", str, true),
		f("content", str, true),
		f("user_id", str, true),
		f("title", str, true),
		f("color", str, true),
		f("pinned", bln, true),
		f("created_at", ts, true),
	), f(ColBodyContactID, str, true)),
	Key:     []string{ColSource, "note_id"},
	Version: ColExtractedAt,
}

// Appointments of contacts; attendees are the event's users. Times are
// stored as UTC. Times without a zone ("2021-07-16 11:00:00") are read in
// the location's zone, whose IANA name time_zone records; time_zone is
// ZoneOffset when every time carried its own offset, NULL when the event
// has no time. contact_id and body_contact_id as for Tasks.
var Appointments = Table{
	Name: "appointments",
	Schema: withAdded(schema(
		f("appointment_id", str, false),
		f("contact_id", str, true),
		f("calendar_id", str, true),
		f("title", str, true),
		f("status", str, true),
		f("appointment_status", str, true),
		f("assigned_user_id", str, true),
		f("attendees", strs, true),
		f("notes", str, true),
		f("address", str, true),
		f("group_id", str, true),
		f("start_time", ts, true),
		f("end_time", ts, true),
		f("created_at", ts, true),
		f("updated_at", ts, true),
	), f(ColBodyContactID, str, true), f("time_zone", str, true)),
	Key:     []string{ColSource, "appointment_id"},
	Version: ColExtractedAt,
}

// Rejects: records rejected whole (no usable id, not a JSON object, or a
// body the API sent that could not be split into records), with their raw
// JSON (made valid UTF-8, cut at RejectRawMax bytes) and the reason.
// record_id is the id when one could be read, contact_id the contact of the
// request path. reject_key identifies the record without an id: RejectKey
// of (resource, contact_id, raw JSON), so re-reading the same bad record
// replaces its reject instead of appending another (newest wins).
var Rejects = Table{
	Name: "rejects",
	Schema: arrow.NewSchema([]arrow.Field{
		f("resource", str, false),
		f("record_id", str, true),
		f("contact_id", str, true),
		f("reason", str, false),
		f("raw_json", str, true),
		f("raw_bytes", i64, false),
		f(ColSource, str, false),
		f(ColLocationID, str, false),
		f(ColRunID, str, false),
		f(ColExtractedAt, ts, false),
		f("reject_key", str, true),
	}, nil),
	Key:     []string{ColSource, ColLocationID, "resource", "reject_key"},
	Version: ColExtractedAt,
}

// FieldRejects: one row per field of a landed record that could not be
// mapped (its column is NULL) or was mended (invalid UTF-8 replaced by
// U+FFFD: value_landed is true and the mended value is in the column).
// field is the API's JSON field name, column_name the warehouse column.
// raw_value is the field's JSON text as sent, cut at RejectRawMax bytes;
// bytes that are not UTF-8 are written as \xNN. contact_id is the contact
// of the request path (the contact itself for contacts). Keyed by
// (_source, resource, record_id, field): a re-read replaces the row.
var FieldRejects = Table{
	Name: "field_rejects",
	Schema: arrow.NewSchema([]arrow.Field{
		f("resource", str, false),
		f("record_id", str, false),
		f("contact_id", str, true),
		f("field", str, false),
		f("column_name", str, true),
		f("raw_value", str, true),
		f("reason", str, false),
		f("value_landed", bln, false),
		f(ColSource, str, false),
		f(ColLocationID, str, false),
		f(ColRunID, str, false),
		f(ColExtractedAt, ts, false),
	}, nil),
	Key:     []string{ColSource, "resource", "record_id", "field"},
	Version: ColExtractedAt,
}

// ColBodyContactID holds a child's own "contactId" field.
const ColBodyContactID = "body_contact_id"

// ZoneOffset is appointments.time_zone when the times carried offsets.
const ZoneOffset = "offset"

// RejectRawMax bounds the raw JSON kept per reject.
const RejectRawMax = 64 << 10

// Data lists the resource tables in load order.
var Data = []Table{Contacts, Tasks, Notes, Appointments}

// Tables lists every table a sink writes, in load order: Data, then
// Rejects, FieldRejects and Actions (actions.go). All of them are keyed and merged newest-wins.
var Tables = []Table{Contacts, Tasks, Notes, Appointments, Rejects, FieldRejects, Actions}

// ByName finds a table of Tables.
func ByName(name string) (Table, bool) {
	for _, t := range Tables {
		if t.Name == name {
			return t, true
		}
	}
	return Table{}, false
}

// RejectKey is rejects.reject_key of a record rejected whole: the hex of
// the first 16 bytes of SHA-256 over resource, the path's contact id and
// the raw JSON. The same bad record read again has the same key.
func RejectKey(resource, contactID string, raw []byte) string {
	h := sha256.New()
	h.Write([]byte(resource))
	h.Write([]byte{0})
	h.Write([]byte(contactID))
	h.Write([]byte{0})
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

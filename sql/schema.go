// Package sql is the warehouse model: one Arrow schema per table, defined
// once and shared by the transform stage (which builds records of it) and by
// both sinks, plus the DDL and analyst views embedded from *.sql files.
//
// Import it under an alias (e.g. whsql) next to database/sql.
package sql

import (
	"embed"

	"github.com/apache/arrow-go/v18/arrow"
)

// Files holds the DDL (schema.sql, state.sql) and the analyst views (views.sql).
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
// extraction) or pending.
var Tasks = Table{
	Name: "tasks",
	Schema: schema(
		f("task_id", str, false),
		f("contact_id", str, true),
		f("title", str, true),
		f("body", str, true),
		f("assigned_to", str, true),
		f("due_date", ts, true),
		f("completed", bln, true),
		f("status", str, true),
	),
	Key:     []string{ColSource, "task_id"},
	Version: ColExtractedAt,
}

// Notes of contacts; content is the note body.
var Notes = Table{
	Name: "notes",
	Schema: schema(
		f("note_id", str, false),
		f("contact_id", str, true),
		f("content", str, true),
		f("user_id", str, true),
		f("title", str, true),
		f("color", str, true),
		f("pinned", bln, true),
		f("created_at", ts, true),
	),
	Key:     []string{ColSource, "note_id"},
	Version: ColExtractedAt,
}

// Appointments of contacts; attendees are the event's users. Times without
// a zone are read in the configured zone (UTC by default) and stored as UTC.
var Appointments = Table{
	Name: "appointments",
	Schema: schema(
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
	),
	Key:     []string{ColSource, "appointment_id"},
	Version: ColExtractedAt,
}

// Rejects: records that could not be mapped, with their raw JSON (made valid
// UTF-8, cut at RejectRawMax bytes) and the reason. Append-only.
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
	}, nil),
}

// RejectRawMax bounds the raw JSON kept per reject.
const RejectRawMax = 64 << 10

// Data lists the merged tables in load order.
var Data = []Table{Contacts, Tasks, Notes, Appointments}

// ByName finds a table of Data or Rejects.
func ByName(name string) (Table, bool) {
	for _, t := range append(Data, Rejects) {
		if t.Name == name {
			return t, true
		}
	}
	return Table{}, false
}

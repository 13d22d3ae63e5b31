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
	"slices"

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
	// The change columns of the data tables (see Table.CompareCols):
	// when the key was first written, and the _extracted_at of the write
	// that last changed a value (or the time a soft delete set it).
	ColFirstSeenAt = "_first_seen_at"
	ColChangedAt   = "_changed_at"
)

// Table describes one warehouse table: its Arrow schema, its key columns
// (the merge key) and the column that orders versions of one key (newest wins).
type Table struct {
	Name    string
	Schema  *arrow.Schema
	Key     []string
	Version string
	// Description of the table; Docs, of each field of Schema (the
	// warehouse carries them as comments).
	Description string
	Docs        []string
	// Cols are the mapping columns of the fields of Schema (nil for a
	// system column); nil for tables with a fixed schema.
	Cols []*Column
	// ReplaceByContact: writing a contact replaces all its rows here.
	ReplaceByContact bool
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

// Contacts, Tasks, Notes and Appointments are the data tables of the
// mapping in use (the embedded default unless Use replaced it): one row per
// record, the mapped columns around the system columns (see mapping.yaml).
var Contacts, Tasks, Notes, Appointments Table

// current is the mapping the data tables were built from.
var current *Mapping

func init() {
	if err := Use(DefaultMapping()); err != nil {
		panic("sql: " + err.Error())
	}
}

// CurrentMapping returns the mapping in use. Callers must not modify it.
func CurrentMapping() *Mapping { return current }

// Use makes m (validated) the mapping of the data tables: it rebuilds
// Contacts, Tasks, Notes, Appointments, Data and Tables. Call it once at
// start-up, before any stage or sink is made; it is not safe to call while
// one runs.
func Use(m *Mapping) error {
	if err := m.Validate(); err != nil {
		return err
	}
	var ts [4]Table
	for i, name := range dataNames {
		ts[i] = build(name, m.Tables[name])
	}
	current = m
	Contacts, Tasks, Notes, Appointments = ts[0], ts[1], ts[2], ts[3]
	Data = []Table{Contacts, Tasks, Notes, Appointments}
	Tables = []Table{Contacts, Tasks, Notes, Appointments, CustomFieldDefinitions, ContactCustomFields, Rejects, FieldRejects, Actions}
	return nil
}

// build makes the table of one mapping: the columns up to system_after,
// the system columns, then the rest (where ALTER TABLE ADD COLUMN puts
// columns added to an existing warehouse).
func build(name string, tm *TableMap) Table {
	t := Table{Name: name, Key: []string{ColSource, keyCols[name]}, Version: ColExtractedAt, Description: tm.Description}
	var fields []arrow.Field
	add := func(c *Column) {
		fields = append(fields, f(c.Name, arrowTypes[c.Type], c.Name != keyCols[name]))
		t.Cols = append(t.Cols, c)
		t.Docs = append(t.Docs, c.Description)
	}
	split := len(tm.Columns)
	if i := slices.IndexFunc(tm.Columns, func(c Column) bool { return c.Name == tm.SystemAfter }); i >= 0 {
		split = i + 1
	}
	for i := range tm.Columns[:split] {
		add(&tm.Columns[i])
	}
	for _, sf := range system() {
		fields = append(fields, sf)
		t.Cols = append(t.Cols, nil)
		t.Docs = append(t.Docs, systemDocs[sf.Name])
	}
	for i := range tm.Columns[split:] {
		add(&tm.Columns[split+i])
	}
	// The change columns come last, where ALTER TABLE ADD COLUMN puts them
	// in a warehouse of an older version.
	for _, name := range []string{ColFirstSeenAt, ColChangedAt} {
		fields = append(fields, f(name, ts, true))
		t.Cols = append(t.Cols, nil)
		t.Docs = append(t.Docs, systemDocs[name])
	}
	t.Schema = arrow.NewSchema(fields, nil)
	return t
}

var systemDocs = map[string]string{
	ColSource:      "The configured source name (key with the id).",
	ColLocationID:  "The location the record was read from.",
	ColRunID:       "The run that wrote the row.",
	ColExtractedAt: "When the run read the record (newest wins).",
	ColDeletedAt:   "When the record was found deleted upstream (soft delete); NULL while it exists.",
	ColFirstSeenAt: "When the key was first written (NULL for rows of a Parquet file written before the column existed).",
	ColChangedAt:   "The _extracted_at of the write that last changed a value of the row (derived-at-extraction columns such as tasks.status aside), or when _deleted_at was set; a re-read with equal values keeps it.",
}

// TracksChanges reports whether t carries _first_seen_at and _changed_at
// (the data tables).
func (t Table) TracksChanges() bool {
	_, ok := t.Schema.FieldsByName(ColChangedAt)
	return ok
}

// CompareCols are the columns a write is compared on to tell whether it
// changed the stored row: every mapped column except those derived from
// the clock at extraction (compute: task_status, i.e. tasks.status), and
// _deleted_at (a write of a soft-deleted key undeletes it).
func (t Table) CompareCols() []string {
	var out []string
	for i, c := range t.Cols {
		if c != nil && c.Compute != ComputeTaskStatus {
			out = append(out, t.Schema.Field(i).Name)
		}
	}
	return append(out, ColDeletedAt)
}

// withDocs sets the descriptions of a table with a fixed schema.
func withDocs(t Table, docs map[string]string) Table {
	for _, fl := range t.Schema.Fields() {
		d, ok := docs[fl.Name]
		if !ok {
			d = systemDocs[fl.Name]
		}
		t.Docs = append(t.Docs, d)
	}
	return t
}

// CustomFieldDefinitions are the custom fields each location defines
// (GET /locations/{locationId}/customFields), keyed by source, location and
// field id.
var CustomFieldDefinitions = withDocs(Table{
	Name:        "custom_field_definitions",
	Description: "The custom fields each location defines (GET /locations/{locationId}/customFields).",
	Schema: schema(
		f("field_id", str, false),
		f("name", str, true),
		f("field_key", str, true),
		f("data_type", str, true),
		f("model", str, true),
		f("placeholder", str, true),
		f("options", strs, true),
		f("position", i64, true),
	),
	Key:     []string{ColSource, ColLocationID, "field_id"},
	Version: ColExtractedAt,
}, map[string]string{
	"field_id": "The custom field's id (as contacts' customFields[].id).", "name": "Its display name.",
	"field_key": "Its key, e.g. contact.favourite_colour.", "data_type": "TEXT, NUMERICAL, DATE, CHECKBOX, MULTIPLE_OPTIONS, ...",
	"model": "The object it belongs to (contact).", "placeholder": "Placeholder text.", "options": "The choices of an option field.",
	"position": "Display position.",
})

// ContactCustomFields has one row per custom field value of a contact,
// keyed by source, contact and field id. A contact's rows are replaced as a
// whole whenever the contact is written (ReplaceByContact), so a value
// removed upstream disappears.
var ContactCustomFields = withDocs(Table{
	Name:        "contact_custom_fields",
	Description: "One row per custom field value of a contact; replaced with the contact.",
	Schema: schema(
		f("contact_id", str, false),
		f("field_id", str, false),
		f("field_key", str, true),
		f("field_name", str, true),
		f("data_type", str, true),
		f("value_text", str, true),
		f("value_json", str, true),
		f("value_number", arrow.PrimitiveTypes.Float64, true),
		f("value_date", date, true),
		f("value_bool", bln, true),
		f("value_list", strs, true),
	),
	Key:              []string{ColSource, "contact_id", "field_id"},
	Version:          ColExtractedAt,
	ReplaceByContact: true,
}, map[string]string{
	"contact_id": "The contact.", "field_id": "The custom field's id.",
	"field_key":  "Its key from the location's definitions (NULL when they could not be read).",
	"field_name": "Its name from the definitions.", "data_type": "Its data type from the definitions.",
	"value_text":   "The value as text: a string as is, anything else as JSON text.",
	"value_json":   "The value as JSON text, as sent.",
	"value_number": "The value as a number, for NUMERICAL and MONETORY fields that hold one.",
	"value_date":   "The value as a date, for DATE fields.", "value_bool": "The value as a boolean, for a single CHECKBOX-like yes/no.",
	"value_list": "The values of CHECKBOX and MULTIPLE_OPTIONS fields.",
})

// Rejects: records rejected whole (no usable id, not a JSON object, or a
// body the API sent that could not be split into records), with their raw
// JSON (made valid UTF-8, cut at RejectRawMax bytes) and the reason.
// record_id is the id when one could be read, contact_id the contact of the
// request path. reject_key identifies the record without an id: RejectKey
// of (resource, contact_id, raw JSON), so re-reading the same bad record
// replaces its reject instead of appending another (newest wins).
var Rejects = Table{
	Name:        "rejects",
	Description: "Records rejected whole (no usable id, not a JSON object), with their raw JSON and the reason.",
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
	Name:        "field_rejects",
	Description: "Fields of landed records that could not be mapped (column NULL) or were mended (value_landed).",
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

// Data lists the resource tables in load order (set by Use).
var Data []Table

// Tables lists every table a sink writes, in load order (set by Use): Data,
// then CustomFieldDefinitions, ContactCustomFields, Rejects, FieldRejects
// and Actions (actions.go). All of them are keyed and merged newest-wins.
var Tables []Table

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

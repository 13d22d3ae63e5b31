package sql

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// SchemaVersion is the warehouse schema this code writes. A loader refuses a
// warehouse whose schema_version is newer; an older one is migrated forward.
const SchemaVersion = 2

// DDL names the files of Files that create the tables, in the order they run.
// Every statement in them is idempotent (CREATE ... IF NOT EXISTS, ALTER
// TABLE ... ADD COLUMN IF NOT EXISTS), so running them all migrates a
// warehouse of any older version: schema_v2.sql adds version 2's columns
// to tables created by version 1.
var DDL = []string{"schema.sql", "state.sql", "runstats.sql", "schema_v2.sql", "retries.sql", "actions.sql", "probes.sql"}

// Views names the file of Files that (re)creates the analyst views.
const Views = "views.sql"

// Read returns the text of one embedded file.
func Read(name string) (string, error) {
	b, err := Files.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("read embedded %s: %w", name, err)
	}
	return string(b), nil
}

// Columns returns the table's column names in schema order.
func (t Table) Columns() []string {
	fs := t.Schema.Fields()
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	return names
}

// DuckDBType is the DuckDB type that holds an Arrow type of our schemas, spelt
// as DuckDB's information_schema.columns.data_type reports it. It returns
// false for a type the warehouse model does not use.
func DuckDBType(t arrow.DataType) (string, bool) {
	switch t := t.(type) {
	case *arrow.StringType:
		return "VARCHAR", true
	case *arrow.BooleanType:
		return "BOOLEAN", true
	case *arrow.Int64Type:
		return "BIGINT", true
	case *arrow.Int32Type:
		return "INTEGER", true
	case *arrow.Float64Type:
		return "DOUBLE", true
	case *arrow.Date32Type:
		return "DATE", true
	case *arrow.TimestampType:
		if t.Unit != arrow.Microsecond {
			return "", false
		}
		if t.TimeZone != "" {
			return "TIMESTAMP WITH TIME ZONE", true
		}
		return "TIMESTAMP", true
	case *arrow.ListType:
		elem, ok := DuckDBType(t.Elem())
		if !ok {
			return "", false
		}
		return elem + "[]", true
	}
	return "", false
}

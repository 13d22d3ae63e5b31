package sql

import (
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// SchemaVersion is the warehouse schema this code writes. A loader refuses a
// warehouse whose schema_version is newer; an older one is migrated forward.
const SchemaVersion = 3

// DDL names the files of Files that create the tables, in the order they run.
// Every statement in them is idempotent (CREATE ... IF NOT EXISTS, ALTER
// TABLE ... ADD COLUMN IF NOT EXISTS), so running them all migrates a
// warehouse of any older version: schema_v2.sql adds version 2's columns
// to tables created by version 1.
//
// TablesFile is not a file: Read generates it from the mapping in use (the
// data tables and the custom field tables, see TablesDDL).
var DDL = []string{TablesFile, "schema.sql", "state.sql", "runstats.sql", "schema_v2.sql", "retries.sql", "actions.sql", "probes.sql"}

// Views names the file of Files that (re)creates the analyst views.
const Views = "views.sql"

// Read returns the text of one embedded file.
func Read(name string) (string, error) {
	if name == TablesFile {
		return TablesDDL(), nil
	}
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

// TablesFile is the name under which Read returns TablesDDL.
const TablesFile = "tables.sql"

// mappedTables are the tables whose DDL is generated.
func mappedTables() []Table {
	return append(slices.Clone(Data), CustomFieldDefinitions, ContactCustomFields)
}

// TablesDDL creates the data tables of the mapping in use and the custom
// field tables, and migrates older ones in place: CREATE TABLE IF NOT
// EXISTS with every column, then ALTER TABLE ADD COLUMN IF NOT EXISTS for
// each column after the system columns (those a newer schema or mapping
// adds; ALTER puts them last, where CREATE puts them). Renames (a column's
// was) need to know the warehouse and are done by the loader first.
func TablesDDL() string {
	var b strings.Builder
	for _, t := range mappedTables() {
		fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", Ident(t.Name))
		for i, fl := range t.Schema.Fields() {
			typ, _ := DuckDBType(fl.Type)
			null := ""
			if !fl.Nullable {
				null = " NOT NULL"
			}
			sep := ","
			if i == t.Schema.NumFields()-1 {
				sep = ""
			}
			fmt.Fprintf(&b, "    %s %s%s%s\n", Ident(fl.Name), typ, null, sep)
		}
		b.WriteString(");\n")
		for _, fl := range t.Schema.Fields()[t.afterSystem():] {
			typ, _ := DuckDBType(fl.Type)
			fmt.Fprintf(&b, "ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s;\n", Ident(t.Name), Ident(fl.Name), typ)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// afterSystem is the index of the first field after the system columns
// (the number of fields when they come last).
func (t Table) afterSystem() int {
	i := t.Schema.FieldIndices(ColDeletedAt)
	if len(i) == 0 {
		return t.Schema.NumFields()
	}
	return i[0] + 1
}

// Renames are the (was, name) pairs of the mapped columns of t that have a
// former name.
func (t Table) Renames() [][2]string {
	var out [][2]string
	for _, c := range t.Cols {
		if c != nil && c.Was != "" && c.Was != c.Name {
			out = append(out, [2]string{c.Was, c.Name})
		}
	}
	return out
}

// CommentsDDL sets the description of every generated table and column as
// DuckDB comments (COMMENT ON TABLE / COLUMN).
func CommentsDDL() string {
	var b strings.Builder
	for _, t := range mappedTables() {
		if t.Description != "" {
			fmt.Fprintf(&b, "COMMENT ON TABLE %s IS %s;\n", Ident(t.Name), Literal(t.Description))
		}
		for i, fl := range t.Schema.Fields() {
			if i < len(t.Docs) && t.Docs[i] != "" {
				fmt.Fprintf(&b, "COMMENT ON COLUMN %s.%s IS %s;\n", Ident(t.Name), Ident(fl.Name), Literal(t.Docs[i]))
			}
		}
	}
	return b.String()
}

// Ident quotes an SQL identifier.
func Ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// Literal quotes an SQL string literal.
func Literal(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

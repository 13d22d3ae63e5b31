package load

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// views returns the SQL that defines the warehouse over the files l lists.
// Data tables read their folders by relative paths: run it from the
// warehouse directory (or SET file_search_path to it).
func (p *Parquet) views(l *ledger) (string, error) {
	var b strings.Builder
	b.WriteString("-- Written by the contacts-etl Parquet sink at each commit; do not edit.\n")
	b.WriteString("-- Paths are relative to this folder: cd into it, then .read views.sql in any DuckDB.\n")
	b.WriteString("-- The tables need no views: read_parquet('contacts/**/*.parquet', hive_partitioning = true) is one row per key.\n\n")
	for _, t := range whsql.Tables {
		sel := emptySelect(t.Schema, t.Columns())
		if files := l.paths(t.Name, ""); len(files) > 0 {
			proj, err := p.projection(t, files, t.Columns())
			if err != nil {
				return "", err
			}
			sel = fmt.Sprintf("SELECT %s FROM read_parquet(%s, union_by_name = true)", proj, sqlString(t.Name+"/*/*.parquet"))
		}
		fmt.Fprintf(&b, "CREATE OR REPLACE VIEW %s AS\n%s;\n\n", t.Name, sel)
	}
	b.WriteString(stateViews(l))
	b.WriteString(p.sweepViews(l))
	b.WriteString(retriesView(l))
	v, err := whsql.Read(whsql.Views)
	if err != nil {
		return "", err
	}
	b.WriteString(v)
	return b.String(), nil
}

// fileList is the SQL list of the absolute paths of rels; rel, when true,
// keeps them relative (for views.sql).
func (p *Parquet) fileList(rels []string, rel ...bool) string {
	q := make([]string, len(rels))
	for i, r := range rels {
		if len(rel) > 0 && rel[0] {
			q[i] = sqlString(filepath.ToSlash(r))
		} else {
			q[i] = sqlString(filepath.Join(p.dir, filepath.FromSlash(r)))
		}
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// paths are the published files of table, of location loc only when loc
// is not empty.
func (l *ledger) paths(table, loc string) []string {
	var out []string
	for _, f := range l.Tables[table] {
		if loc == "" || f.Location == loc {
			out = append(out, f.Path)
		}
	}
	return out
}

// mergedSelect is table t (columns cols) as the files l lists hold it: one
// row per key. where, when not empty, filters the rows.
func (p *Parquet) mergedSelect(t whsql.Table, l *ledger, cols []string, where string) string {
	files := l.paths(t.Name, "")
	if len(files) == 0 {
		return emptySelect(t.Schema, cols)
	}
	if where != "" {
		where = "\n    WHERE " + where
	}
	return fmt.Sprintf("SELECT %s FROM read_parquet(%s, union_by_name = true)%s", quoteList(cols), p.fileList(files), where)
}

// emptySelect is a query with the columns names of s and no rows.
func emptySelect(s *arrow.Schema, names []string) string {
	cols := make([]string, len(names))
	for i, n := range names {
		f, _ := s.FieldsByName(n)
		typ, _ := whsql.DuckDBType(f[0].Type)
		cols[i] = fmt.Sprintf("CAST(NULL AS %s) AS %s", typ, quote(n))
	}
	return "SELECT " + strings.Join(cols, ", ") + " WHERE false"
}

// valuesView is "SELECT * FROM (VALUES ...) v(cols)" typed by casts, or an
// empty select when there are no rows.
func valuesView(cols, types []string, rows [][]string) string {
	if len(rows) == 0 {
		c := make([]string, len(cols))
		for i := range cols {
			c[i] = fmt.Sprintf("CAST(NULL AS %s) AS %s", types[i], cols[i])
		}
		return "SELECT " + strings.Join(c, ", ") + " WHERE false"
	}
	vals := make([]string, len(rows))
	for i, r := range rows {
		vals[i] = "(" + strings.Join(r, ", ") + ")"
	}
	c := make([]string, len(cols))
	for i := range cols {
		c[i] = fmt.Sprintf("CAST(%s AS %s) AS %s", cols[i], types[i], cols[i])
	}
	return fmt.Sprintf("SELECT %s FROM (VALUES %s) v(%s)", strings.Join(c, ", "), strings.Join(vals, ", "), strings.Join(cols, ", "))
}

func lit(s string) string {
	if s == "" {
		return "NULL"
	}
	return sqlString(s)
}

func tlit(t time.Time) string {
	if t.IsZero() {
		return "NULL"
	}
	return sqlString(t.UTC().Format("2006-01-02 15:04:05.999999") + "+00")
}

func stateViews(l *ledger) string {
	var b strings.Builder
	var rows [][]string
	for _, w := range l.Watermarks {
		rows = append(rows, []string{lit(w.Source), lit(w.LocationID), lit(w.Resource), tlit(w.Value)})
	}
	fmt.Fprintf(&b, "CREATE OR REPLACE VIEW watermarks AS\n%s;\n\n", valuesView(
		[]string{"source", "location_id", "resource", "value"},
		[]string{"VARCHAR", "VARCHAR", "VARCHAR", "TIMESTAMPTZ"}, rows))
	rows = nil
	for _, w := range l.Windows {
		rows = append(rows, []string{lit(w.Source), lit(w.LocationID), lit(w.Resource), tlit(w.Start), tlit(w.End),
			lit(w.Status), lit(w.Cursor), lit(w.RunID)})
	}
	fmt.Fprintf(&b, "CREATE OR REPLACE VIEW windows AS\n%s;\n\n", valuesView(
		[]string{"source", "location_id", "resource", "window_start", "window_end", "status", "cursor", "run_id"},
		[]string{"VARCHAR", "VARCHAR", "VARCHAR", "TIMESTAMPTZ", "TIMESTAMPTZ", "VARCHAR", "VARCHAR", "VARCHAR"}, rows))
	b.WriteString(runsView(l))
	return b.String()
}

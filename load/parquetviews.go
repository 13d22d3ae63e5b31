package load

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// views returns the SQL that defines the warehouse over the files l lists.
func (p *Parquet) views(l *ledger) (string, error) {
	var b strings.Builder
	b.WriteString("-- Written by the contacts-etl Parquet sink at each commit; do not edit.\n")
	b.WriteString("-- Load it into any DuckDB (.read views.sql) to query the warehouse.\n\n")
	for _, t := range whsql.Tables {
		fmt.Fprintf(&b, "CREATE OR REPLACE VIEW %s AS\n%s;\n\n", t.Name, p.tableView(t, l))
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

func (p *Parquet) fileList(rels []string) string {
	q := make([]string, len(rels))
	for i, r := range rels {
		q[i] = sqlString(filepath.Join(p.dir, r))
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func (p *Parquet) tableView(t whsql.Table, l *ledger) string {
	return p.mergedSelect(t, l, t.Columns(), "")
}

// mergedSelect is the merge rule of table t over the files l lists: per key
// the row with the newest version (ties: the later commit, then the later
// row); _deleted_at, when the row has none, is set by the latest delete of
// its key (or of its contact_id, for deletes by contact) made in the row's
// commit or after it. It returns the columns cols. where, when not empty,
// filters the stored rows before the merge: it must keep or drop every
// version of a key together.
func (p *Parquet) mergedSelect(t whsql.Table, l *ledger, cols []string, where string) string {
	files := l.Files[t.Name]
	if len(files) == 0 {
		return emptySelect(t.Schema, cols)
	}
	src := fmt.Sprintf("read_parquet(%s, filename = true, file_row_number = true, union_by_name = true)", p.fileList(files))
	if where != "" {
		where = "\n    WHERE " + where
	}
	if len(t.Key) == 0 {
		return fmt.Sprintf("SELECT %s FROM %s%s", quoteList(cols), src, where)
	}
	dels, cdels := l.Deletes[t.Name], l.ContactDeletes[t.Name]
	idCol := t.Key[len(t.Key)-1]
	need := slices.Clone(cols)
	hasDeleted := slices.Contains(t.Columns(), whsql.ColDeletedAt)
	for _, c := range append(slices.Clone(t.Key), whsql.ColDeletedAt, "contact_id") {
		if (c == "contact_id" && len(cdels) == 0) || (c == whsql.ColDeletedAt && !hasDeleted) {
			continue
		}
		if _, ok := t.Schema.FieldsByName(c); !ok { // rejects and field_rejects have no _deleted_at
			continue
		}
		if !slices.Contains(need, c) {
			need = append(need, c)
		}
	}
	seq := `CAST(regexp_extract(filename, '([0-9]+)\.parquet$', 1) AS BIGINT)`
	latest := fmt.Sprintf(`SELECT %s, %s AS _seq FROM %s%s
    QUALIFY row_number() OVER (PARTITION BY %s ORDER BY %s DESC, %s DESC, file_row_number DESC) = 1`,
		quoteList(need), seq, src, where, quoteList(t.Key), quote(t.Version), seq)
	if len(dels)+len(cdels) == 0 || !hasDeleted {
		return fmt.Sprintf("SELECT %s FROM (%s)", quoteList(cols), latest)
	}
	// Each tombstone list keeps the latest delete per id; a delete applies
	// to a row stored by its own commit or an earlier one.
	tomb := func(files []string) string {
		return fmt.Sprintf(`(SELECT * FROM read_parquet(%s, union_by_name = true)
    QUALIFY row_number() OVER (PARTITION BY %s, id ORDER BY _seq DESC) = 1)`, p.fileList(files), quote(whsql.ColSource))
	}
	var joins []string
	del := "NULL"
	if len(dels) > 0 {
		joins = append(joins, fmt.Sprintf("LEFT JOIN %s d ON d.%s = l.%s AND d.id = l.%s AND d._seq >= l._seq",
			tomb(dels), quote(whsql.ColSource), quote(whsql.ColSource), quote(idCol)))
		del = "d." + quote(whsql.ColDeletedAt)
	}
	if len(cdels) > 0 {
		joins = append(joins, fmt.Sprintf("LEFT JOIN %s cd ON cd.%s = l.%s AND cd.id = l.contact_id AND cd._seq >= l._seq",
			tomb(cdels), quote(whsql.ColSource), quote(whsql.ColSource)))
		cdel := "cd." + quote(whsql.ColDeletedAt)
		if len(dels) > 0 {
			// Of two applicable deletes, the earlier commit's set the value.
			del = fmt.Sprintf("CASE WHEN d._seq IS NOT NULL AND (cd._seq IS NULL OR d._seq <= cd._seq) THEN %s ELSE %s END", del, cdel)
		} else {
			del = cdel
		}
	}
	sel := make([]string, 0, len(cols))
	for _, c := range cols {
		if c == whsql.ColDeletedAt {
			sel = append(sel, fmt.Sprintf("coalesce(l.%[1]s, %[2]s) AS %[1]s", quote(c), del))
		} else {
			sel = append(sel, "l."+quote(c))
		}
	}
	return fmt.Sprintf("SELECT %s\nFROM (%s) l\n%s", strings.Join(sel, ", "), latest, strings.Join(joins, "\n"))
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
	rows = nil
	for _, r := range l.Runs {
		row := []string{lit(r.ID), lit(r.Source), lit(r.Command), tlit(r.StartedAt), "NULL", "'running'", "NULL", "NULL", "NULL", "NULL", "NULL"}
		if res := r.Result; res != nil {
			row[4], row[5], row[6] = tlit(res.EndedAt), lit(res.Outcome), lit(res.Error)
			row[7], row[8], row[9], row[10] = fmt.Sprint(res.Requests), fmt.Sprint(res.Retries), fmt.Sprint(res.RateLimited), fmt.Sprint(res.Rejects)
		}
		rows = append(rows, row)
	}
	fmt.Fprintf(&b, "CREATE OR REPLACE VIEW runs AS\n%s;\n\n", valuesView(
		[]string{"run_id", "source", "command", "started_at", "ended_at", "outcome", "error", "requests", "retries", "rate_limited", "rejects"},
		[]string{"VARCHAR", "VARCHAR", "VARCHAR", "TIMESTAMPTZ", "TIMESTAMPTZ", "VARCHAR", "VARCHAR", "BIGINT", "BIGINT", "BIGINT", "BIGINT"}, rows))
	return b.String()
}

package load

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	_ "github.com/duckdb/duckdb-go/v2" // registers the duckdb driver

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

type column struct {
	name, typ string
	nullable  bool
}

func (c column) String() string {
	n := "NOT NULL"
	if c.nullable {
		n = "NULL"
	}
	return fmt.Sprintf("%s %s %s", c.name, c.typ, n)
}

func describe(t *testing.T, c *sql.Conn, table string) []column {
	t.Helper()
	rows, err := c.QueryContext(context.Background(), `SELECT column_name, data_type, is_nullable = 'YES'
		FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var col column
		if err := rows.Scan(&col.name, &col.typ, &col.nullable); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, col)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return cols
}

func memConn(t testing.TB) *sql.Conn {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestDDLMatchesArrowSchemas is the DDL check: every table of sql/schema.sql
// has exactly the columns of its Arrow schema, in order, with the DuckDB
// type DuckDB itself gives that Arrow type and NOT NULL where the field is
// not nullable.
func TestDDLMatchesArrowSchemas(t *testing.T) {
	ctx := context.Background()
	c := memConn(t)
	for _, name := range append(whsql.DDL, whsql.Views) {
		ddl, err := whsql.Read(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, ddl); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, tbl := range whsql.Tables {
		t.Run(tbl.Name, func(t *testing.T) {
			var want []column
			for _, f := range tbl.Schema.Fields() {
				typ, ok := whsql.DuckDBType(f.Type)
				if !ok {
					t.Fatalf("%s: no DuckDB type for %s", f.Name, f.Type)
				}
				want = append(want, column{f.Name, typ, f.Nullable})
			}
			got := describe(t, c, tbl.Name)
			if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
				t.Errorf("DDL of %s differs from its Arrow schema:\n got %s\nwant %s", tbl.Name, g, w)
			}
			// DuckDB's own reading of the Arrow types must agree with DuckDBType.
			b := array.NewRecordBuilder(mem, tbl.Schema)
			rec := b.NewRecordBatch()
			b.Release()
			defer rec.Release()
			stg := "arrow_" + tbl.Name
			if err := stageArrow(ctx, c, tbl, []arrow.RecordBatch{rec}, stg); err != nil {
				t.Fatal(err)
			}
			fromArrow := describe(t, c, stg)
			for i := range fromArrow {
				if fromArrow[i].typ != want[i].typ {
					t.Errorf("%s.%s: DuckDB reads Arrow %s as %s, DuckDBType says %s", tbl.Name, want[i].name,
						tbl.Schema.Field(i).Type, fromArrow[i].typ, want[i].typ)
				}
			}
		})
	}
	for _, view := range []string{"contacts_live", "contact_tags", "tasks_open", "contact_activity", "runs_latest"} {
		if _, err := c.ExecContext(ctx, "SELECT * FROM "+view+" LIMIT 0"); err != nil {
			t.Errorf("view %s: %v", view, err)
		}
	}
}

// TestDDLMigratesVersion1 runs the DDL over the version 1 tables (as
// version 1 created them, before the columns of schema_v2.sql) and expects
// the same columns, in the same order, as a new warehouse.
func TestDDLMigratesVersion1(t *testing.T) {
	ctx := context.Background()
	c := memConn(t)
	// The columns added by versions 2 (body_contact_id, time_zone,
	// reject_key) and 3 (the mapping's: normalised values, _extra), and
	// the change columns (_first_seen_at, _changed_at) of the data tables.
	v1 := map[string][]string{"tasks": {"body_contact_id", "_extra"}, "notes": {"body_contact_id", "_extra"},
		"appointments": {"body_contact_id", "time_zone", "_extra"}, "rejects": {"reject_key"},
		"contacts": {"email_normalized", "email_valid", "phone_e164", "phone_extension", "business_name", "_extra"}}
	for name, added := range v1 {
		tbl, _ := whsql.ByName(name)
		var cols []string
		for _, f := range tbl.Schema.Fields() {
			if slices.Contains(added, f.Name) || f.Name == whsql.ColFirstSeenAt || f.Name == whsql.ColChangedAt {
				continue // added later (the change columns by version 4 of this list)
			}
			typ, _ := whsql.DuckDBType(f.Type)
			cols = append(cols, f.Name+" "+typ)
		}
		if _, err := c.ExecContext(ctx, "CREATE TABLE "+name+" ("+strings.Join(cols, ", ")+")"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.ExecContext(ctx, `INSERT INTO contacts (contact_id, email, _source, _location_id, _run_id, _extracted_at)
		VALUES ('c1', ' A@B.com', 's', 'l', 'r', now())`); err != nil {
		t.Fatal(err)
	}
	for _, name := range whsql.DDL {
		ddl, err := whsql.Read(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, ddl); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for name := range v1 {
		tbl, _ := whsql.ByName(name)
		var got []string
		for _, col := range describe(t, c, name) {
			got = append(got, col.name)
		}
		if g, w := fmt.Sprint(got), fmt.Sprint(tbl.Columns()); g != w {
			t.Errorf("migrated %s:\n got %s\nwant %s", name, g, w)
		}
	}
	var email string
	var norm, extra any
	if err := c.QueryRowContext(ctx, `SELECT email, email_normalized, _extra FROM contacts`).Scan(&email, &norm, &extra); err != nil ||
		email != " A@B.com" || norm != nil || extra != nil {
		t.Errorf("the old row after migrating: %q %v %v, %v", email, norm, extra, err)
	}
}

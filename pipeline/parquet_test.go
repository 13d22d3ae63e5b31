package pipeline

import (
	"context"
	dsql "database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/contacts-etl/contacts-etl/load"
	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// parquetDB is an in-memory DuckDB whose tables are views of plain
// read_parquet globs over dir's folders, as any engine reads them.
func parquetDB(t *testing.T, dir string) *dsql.DB {
	t.Helper()
	views, err := os.ReadFile(filepath.Join(dir, load.ParquetViewsFile))
	if err != nil {
		t.Fatal(err)
	}
	db, err := dsql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	// The state views (runs, windows, …) and the analyst views of views.sql.
	if _, err := db.Exec("SET file_search_path = '" + dir + "';\n" + string(views)); err != nil {
		t.Fatalf("views.sql: %v", err)
	}
	for _, tb := range whsql.Tables {
		glob := filepath.Join(dir, tb.Name, "**", "*.parquet")
		if m, _ := filepath.Glob(filepath.Join(dir, tb.Name, "*", "*.parquet")); len(m) == 0 {
			continue // views.sql's empty table
		}
		if _, err := db.Exec(fmt.Sprintf(`CREATE OR REPLACE VIEW %s AS SELECT * FROM read_parquet('%s', hive_partitioning = true)`, tb.Name, glob)); err != nil {
			t.Fatal(err)
		}
		var bad int64
		if err := db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM %s WHERE location_id IS DISTINCT FROM _location_id`, tb.Name)).Scan(&bad); err != nil || bad != 0 {
			t.Errorf("%s: %d rows whose folder is not their _location_id (%v)", tb.Name, bad, err)
		}
	}
	return db
}

// checkParquetFiles reads every data file under dir with the Arrow Go
// Parquet reader, one by one: no (source, key) twice in the tree, each
// file's _location_id is its folder's, and the keys are those DuckDB reads.
func checkParquetFiles(t *testing.T, dir string, db *dsql.DB) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, tb := range whsql.Tables {
		seen := map[string]string{}
		files, _ := filepath.Glob(filepath.Join(dir, tb.Name, "*", "*.parquet"))
		for _, name := range files {
			folder := strings.TrimPrefix(filepath.Base(filepath.Dir(name)), "location_id=")
			rdr, err := file.OpenParquetFile(name, false)
			if err != nil {
				t.Fatal(err)
			}
			fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 4096}, mem)
			if err != nil {
				t.Fatal(err)
			}
			tbl, err := fr.ReadTable(context.Background())
			rdr.Close()
			if err != nil {
				t.Fatal(err)
			}
			tr := array.NewTableReader(tbl, 4096)
			for tr.Next() {
				rec := tr.RecordBatch()
				col := func(n string) *array.String {
					return rec.Column(rec.Schema().FieldIndices(n)[0]).(*array.String)
				}
				loc := col(whsql.ColLocationID)
				keys := make([]*array.String, len(tb.Key))
				for i, k := range tb.Key {
					keys[i] = col(k)
				}
				for i := range int(rec.NumRows()) {
					if loc.Value(i) != folder {
						t.Errorf("%s: _location_id %q in folder %q", name, loc.Value(i), folder)
					}
					var k []string
					for _, c := range keys {
						k = append(k, c.Value(i))
					}
					key := strings.Join(k, "\x00")
					if prev, dup := seen[key]; dup {
						t.Errorf("%s: key %q in %s and %s", tb.Name, key, prev, name)
					}
					seen[key] = name
				}
			}
			tr.Release()
			tbl.Release()
		}
		var n int
		if err := db.QueryRow("SELECT count(*) FROM " + tb.Name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != len(seen) {
			t.Errorf("%s: the Arrow reader finds %d keys, DuckDB %d rows", tb.Name, len(seen), n)
		}
	}
}

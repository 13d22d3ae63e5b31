package pipeline

import (
	"context"
	dsql "database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/contacts-etl/contacts-etl/extract/sim"
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
			// Folder names are escaped as Hive writes them (DuckDB, Spark and
			// pyarrow read them unescaped).
			folder, err := url.PathUnescape(strings.TrimPrefix(filepath.Base(filepath.Dir(name)), "location_id="))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
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

// A backfill over two windows on Parquet, a redo of both, then a change
// upstream and an incremental run: after each, plain read_parquet globs
// (and the Arrow reader, file by file) equal the simulator's truth, one
// row per key, and the redo leaves the same rows.
func TestParquetBackfillThenIncremental(t *testing.T) {
	epoch := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	e := newEnv(t, WarehouseParquet, sim.Config{Seed: 5, Contacts: 400, Locations: 2, Epoch: epoch})
	from := epoch.AddDate(-3, 0, -1) // the history is the three years before the epoch
	to := epoch.Add(24 * time.Hour)
	bf := Options{Backfill: true, From: from, To: to, Window: to.Sub(from)/2 + time.Hour} // two windows
	if _, err := e.run(bf, nil); err != nil {
		t.Fatal(err)
	}
	counts := e.compare()
	if counts["contacts"] != 400 {
		t.Errorf("backfill: %d contacts, want 400", counts["contacts"])
	}
	if n := e.count(`SELECT count(*) FROM windows WHERE status = 'done'`); n != 4 {
		t.Errorf("%d windows done after the backfill, want 2 per location", n)
	}
	files := func() int {
		m, _ := filepath.Glob(filepath.Join(e.path, "*", "*", "*.parquet"))
		return len(m)
	}
	before := files()
	redo := bf
	redo.Redo = true
	if _, err := e.run(redo, nil); err != nil {
		t.Fatal(err)
	}
	if again := e.compare(); fmt.Sprint(again) != fmt.Sprint(counts) {
		t.Errorf("redo of the backfill: %v, first pass %v", again, counts)
	}
	if after := files(); after != before {
		t.Errorf("redo changed the number of data files: %d, then %d", before, after)
	}
	sum := e.srv.Mutate(0.05, 11)
	if len(sum.Deleted) == 0 {
		t.Fatalf("mutation too small: %+v", sum)
	}
	// SweepRuns 1: the notes added to unchanged contacts are read too.
	if _, err := e.run(Options{Lookback: time.Minute, ReconcileEvery: 0, SweepRuns: 1}, nil); err != nil {
		t.Fatal(err)
	}
	counts = e.compare()
	if counts["contacts_deleted"] != len(sum.Deleted) {
		t.Errorf("incremental after backfill soft-deleted %d contacts, want %d", counts["contacts_deleted"], len(sum.Deleted))
	}
	if d := e.count(`SELECT count(*) - count(DISTINCT contact_id) FROM read_parquet('` + filepath.Join(e.path, "contacts", "**", "*.parquet") + `', hive_partitioning = true)`); d != 0 {
		t.Errorf("%d duplicate contact ids in the published files", d)
	}
	if _, err := os.Stat(filepath.Join(e.path, "_staging")); err == nil {
		t.Error("staging area left after the runs")
	}
}

package load

// Stack tests: each pins one behaviour of the bundled DuckDB (duckdb-go/v2
// v2.10506.0, DuckDB 1.5.6) that the loader's code or its docs rely on, as
// listed in ../shared/stack-notes.md. A driver bump that changes one of them
// fails here, by name, instead of somewhere deep in a merge.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	execpkg "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// TestStackVersion names the DuckDB these facts were measured on.
func TestStackVersion(t *testing.T) {
	var v string
	if err := memConn(t).QueryRowContext(context.Background(), `SELECT version()`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "v1.5.") {
		t.Errorf("DuckDB %s: the stack tests were written against v1.5.6; re-check stack-notes.md", v)
	}
}

func mustExec(t *testing.T, c *sql.Conn, q string, args ...any) {
	t.Helper()
	if _, err := c.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func count(t *testing.T, c *sql.Conn, q string) int64 {
	t.Helper()
	var n int64
	if err := c.QueryRowContext(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// listTable is a keyed table with a LIST column, like contacts.tags.
const listTable = `CREATE TABLE t (id VARCHAR PRIMARY KEY, v BIGINT, tags VARCHAR[])`

// TestStackArrowView: a registered Arrow view can be scanned once (the
// stream is consumed; a second scan returns no rows without an error), and
// it stays in the catalog after its release function runs, so stageArrow
// drops it itself.
func TestStackArrowView(t *testing.T) {
	ctx := context.Background()
	c := memConn(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(mem, schema)
	for i := range 1000 {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
	}
	rec := b.NewRecordBatch()
	b.Release()
	defer rec.Release()

	var first, second int64
	var inCatalog int64
	err := c.Raw(func(dc any) error {
		ar, err := duckdb.NewArrowFromConn(dc.(driver.Conn))
		if err != nil {
			return err
		}
		rr := &scanOnce{schema: schema, recs: []arrow.RecordBatch{rec}}
		defer rr.forget()
		release, err := ar.RegisterView(rr, "v_arrow")
		if err != nil {
			return err
		}
		q := func(dst *int64, sq string) error {
			rows, err := dc.(driver.QueryerContext).QueryContext(ctx, sq, nil)
			if err != nil {
				return err
			}
			defer rows.Close()
			vals := make([]driver.Value, 1)
			if err := rows.Next(vals); err != nil {
				return err
			}
			*dst = vals[0].(int64)
			return nil
		}
		if err := q(&first, `SELECT count(*) FROM v_arrow`); err != nil {
			return err
		}
		if err := q(&second, `SELECT count(*) FROM v_arrow`); err != nil {
			return err
		}
		release()
		return q(&inCatalog, `SELECT count(*) FROM duckdb_views() WHERE view_name = 'v_arrow'`)
	})
	if err != nil {
		t.Fatal(err)
	}
	if first != 1000 {
		t.Errorf("first scan of the Arrow view: %d rows, want 1000", first)
	}
	if second != 0 {
		t.Errorf("second scan of the Arrow view: %d rows, want 0 (the stream is consumed)", second)
	}
	if inCatalog != 1 {
		t.Errorf("view in catalog after release: %d, want 1 (stageArrow drops it)", inCatalog)
	}
	mustExec(t, c, `DROP VIEW IF EXISTS v_arrow`)
}

// TestStackUpsertList: on 1.5.6 ON CONFLICT DO UPDATE and INSERT OR REPLACE
// work on a table with a LIST column (1.1.3 failed: "List Update is not
// supported"), and a key twice in one statement is no error (1.1.3 failed)
// but silently keeps the FIRST row: a source must be collapsed to the
// newest row per key before any upsert.
func TestStackUpsertList(t *testing.T) {
	c := memConn(t)
	mustExec(t, c, listTable)
	mustExec(t, c, `INSERT INTO t VALUES ('a', 1, ['x'])`)
	mustExec(t, c, `INSERT INTO t VALUES ('a', 2, ['y', 'z']) ON CONFLICT (id) DO UPDATE SET v = excluded.v, tags = excluded.tags`)
	wantRows(t, c, `SELECT id, v, tags FROM t`, "[[a 2 [y z]]]")
	mustExec(t, c, `INSERT OR REPLACE INTO t VALUES ('a', 3, ['w'])`)
	wantRows(t, c, `SELECT id, v, tags FROM t`, "[[a 3 [w]]]")
	mustExec(t, c, `INSERT INTO t VALUES ('b', 1, ['x']), ('b', 2, ['y']) ON CONFLICT (id) DO UPDATE SET v = excluded.v, tags = excluded.tags`)
	wantRows(t, c, `SELECT id, v, tags FROM t WHERE id = 'b'`, "[[b 1 [x]]]")
	mustExec(t, c, `INSERT OR REPLACE INTO t VALUES ('a', 4, ['p']), ('a', 5, ['q'])`)
	wantRows(t, c, `SELECT id, v, tags FROM t WHERE id = 'a'`, "[[a 4 [p]]]")
}

// TestStackDeleteInsertSameKey: on 1.5.6 deleting a primary key and
// inserting it again in one transaction commits (1.1.3 tripped the index
// check).
func TestStackDeleteInsertSameKey(t *testing.T) {
	c := memConn(t)
	mustExec(t, c, listTable)
	mustExec(t, c, `INSERT INTO t VALUES ('a', 1, ['x'])`)
	mustExec(t, c, `BEGIN TRANSACTION`)
	mustExec(t, c, `DELETE FROM t WHERE id = 'a'`)
	mustExec(t, c, `INSERT INTO t VALUES ('a', 2, ['y'])`)
	mustExec(t, c, `COMMIT`)
	wantRows(t, c, `SELECT id, v, tags FROM t`, "[[a 2 [y]]]")
}

// TestStackCommitAfterFailure: after a failed statement DuckDB aborts the
// transaction; every later statement fails, and COMMIT returns NO error
// while it rolls everything back (same as 1.1.3). That is why inTx checks
// every statement's error and never trusts COMMIT alone.
func TestStackCommitAfterFailure(t *testing.T) {
	ctx := context.Background()
	c := memConn(t)
	mustExec(t, c, listTable)
	mustExec(t, c, `BEGIN TRANSACTION`)
	mustExec(t, c, `INSERT INTO t VALUES ('a', 1, ['x'])`)
	if _, err := c.ExecContext(ctx, `INSERT INTO t VALUES ('a', 2, ['y'])`); err == nil {
		t.Fatal("duplicate primary key accepted")
	}
	if _, err := c.ExecContext(ctx, `INSERT INTO t VALUES ('b', 2, ['y'])`); err == nil || !strings.Contains(err.Error(), "aborted") {
		t.Errorf("statement after a failure: %v, want a 'transaction is aborted' error", err)
	}
	if _, err := c.ExecContext(ctx, `COMMIT`); err != nil {
		t.Errorf("COMMIT of an aborted transaction: %v; stack-notes and inTx say it returns nil", err)
	}
	if n := count(t, c, `SELECT count(*) FROM t`); n != 0 {
		t.Errorf("%d rows after COMMIT of an aborted transaction, want 0 (rolled back)", n)
	}

	// The same through database/sql's Tx.
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(listTable); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO t VALUES ('a', 1, ['x'])`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO t VALUES ('a', 2, ['y'])`); err == nil {
		t.Fatal("duplicate primary key accepted")
	}
	if err := tx.Commit(); err != nil {
		t.Errorf("Tx.Commit of an aborted transaction: %v; stack-notes say it returns nil", err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 0 {
		t.Errorf("after Tx.Commit of an aborted transaction: %d rows (%v), want 0", n, err)
	}
}

// TestStackMergeList: MERGE INTO (new in 1.4) works with a LIST column and
// a version condition on the match; RETURNING merge_action tells updates
// from inserts. A key twice in the source is no error: on a table without
// a key constraint (ours) an unmatched key is inserted twice and a matched
// one updated once, so the source must be collapsed per key first.
func TestStackMergeList(t *testing.T) {
	c := memConn(t)
	mustExec(t, c, `CREATE TABLE t (id VARCHAR, v BIGINT, tags VARCHAR[])`)
	mustExec(t, c, `INSERT INTO t VALUES ('a', 1, ['x']), ('b', 5, ['old'])`)
	mustExec(t, c, `CREATE TEMP TABLE s AS SELECT * FROM (VALUES ('a', 2, ['y', 'z']), ('b', 4, ['stale']), ('c', 1, ['new'])) s(id, v, tags)`)
	merge := func(src string) string {
		return `MERGE INTO t USING ` + src + ` s ON t.id = s.id
			WHEN MATCHED AND t.v <= s.v THEN UPDATE SET v = s.v, tags = s.tags
			WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v, s.tags)`
	}
	res, err := c.ExecContext(context.Background(), merge("s"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 2 {
		t.Errorf("MERGE RowsAffected = %d (%v), want 2 (one update, one insert)", n, err)
	}
	wantRows(t, c, `SELECT id, v, tags FROM t ORDER BY id`, "[[a 2 [y z]] [b 5 [old]] [c 1 [new]]]")
	wantRows(t, c, merge("s")+` RETURNING merge_action, id`, "[[UPDATE a] [UPDATE c]]")

	mustExec(t, c, `CREATE TEMP TABLE s2 AS SELECT * FROM (VALUES ('a', 7, ['1']), ('a', 8, ['2']), ('n', 1, ['1']), ('n', 2, ['2'])) s(id, v, tags)`)
	mustExec(t, c, merge("s2"))
	if n := count(t, c, `SELECT count(*) FROM t WHERE id = 'n'`); n != 2 {
		t.Errorf("MERGE of an unmatched key twice: %d rows, stack-notes say 2 (collapse the source first)", n)
	}
	if n := count(t, c, `SELECT count(*) FROM t WHERE id = 'a'`); n != 1 {
		t.Errorf("MERGE of a matched key twice: %d rows, want 1", n)
	}
}

// TestStackExtensionsOffline: ICU (time zones), JSON and Parquet are linked
// into the static library, so time-zone functions work with no network and
// no extension download (1.1.3 had no ICU). The loader still stores UTC.
func TestStackExtensionsOffline(t *testing.T) {
	c := memConn(t)
	mustExec(t, c, `SET autoinstall_known_extensions = false`)
	wantRows(t, c, `SELECT extension_name, loaded, install_mode FROM duckdb_extensions()
		WHERE extension_name IN ('icu', 'json', 'parquet') ORDER BY 1`,
		"[[icu true STATICALLY_LINKED] [json true STATICALLY_LINKED] [parquet true STATICALLY_LINKED]]")
	wantRows(t, c, `SELECT strftime(timezone('America/New_York', TIMESTAMPTZ '2026-07-01 12:00:00+00'), '%Y-%m-%d %H:%M')`,
		"[[2026-07-01 08:00]]")
}

// TestStackOneProcessPerFile: while one process has a file open (read-write),
// another cannot open it even read-only: DuckDB's error names the holder.
// Within one process duckdb-go/v2 (unlike go-duckdb v1.8.5) keeps an
// instance cache: a second connector on the same path with the same options
// shares the first's database (no double open, no corruption), and one with
// other options (read_only while read_write is open) fails. The loader still
// takes turns per file (acquireFile), which also keeps the test's read-only
// connector from colliding with a sink.
func TestStackOneProcessPerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	db1, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db1.Close()
	if _, err := db1.Exec(`CREATE TABLE x AS SELECT 1 AS a`); err != nil {
		t.Fatal(err)
	}
	cmd := execpkg.Command(os.Args[0], "-test.run=^TestHelperProcess$", "--", "count")
	cmd.Env = append(os.Environ(), "LOAD_HELPER=1", "LOAD_HELPER_DUCKDB="+path)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("another process opened the held file read-only:\n%s", out)
	}
	if !strings.Contains(string(out), "Could not set lock on file") || !strings.Contains(string(out), "Conflicting lock") {
		t.Errorf("other process: %v\n%s\nwant DuckDB's lock conflict", err, out)
	}

	db2, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if _, err := db2.Exec(`INSERT INTO x VALUES (2)`); err != nil {
		t.Fatalf("second connector in the same process: %v", err)
	}
	var n int
	if err := db1.QueryRow(`SELECT count(*) FROM x`).Scan(&n); err != nil || n != 2 {
		t.Errorf("first connector sees %d rows (%v) after the second inserted, want 2 (one shared database)", n, err)
	}
	if db3, err := sql.Open("duckdb", path+"?access_mode=read_only"); err == nil {
		db3.Close()
		t.Error("read-only connector opened while a read-write one is open in this process")
	} else if !strings.Contains(err.Error(), "different configuration") {
		t.Errorf("read-only connector while read-write is open: %v, want 'different configuration'", err)
	}
}

func wantRows(t *testing.T, c *sql.Conn, q, want string) {
	t.Helper()
	if got := fmt.Sprint(queryRows(t, c, q)); got != want {
		t.Errorf("%s\n got %s\nwant %s", q, got, want)
	}
}

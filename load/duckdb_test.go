package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	duckdb "github.com/duckdb/duckdb-go/v2"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

func duckTarget(ingest Ingest) target {
	file := func(dir string) string { return filepath.Join(dir, "warehouse.duckdb") }
	return target{
		name: "duckdb-" + ingest.String(),
		open: func(t *testing.T, dir string) Sink {
			s, err := NewDuckDB(file(dir), WithIngest(ingest), WithLockTimeout(5*time.Second), WithTempDir(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		db: func(t *testing.T, dir string) *roDB {
			release, err := acquireFile(context.Background(), file(dir))
			if err != nil {
				t.Fatal(err)
			}
			c, err := duckdb.NewConnector(file(dir)+"?access_mode=read_only", nil)
			if err != nil {
				release()
				t.Fatal(err)
			}
			db := sql.OpenDB(c)
			conn, err := db.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			done := func() {
				if !closed {
					closed = true
					conn.Close()
					db.Close()
					release()
				}
			}
			t.Cleanup(done)
			return &roDB{Conn: conn, done: done}
		},
		run: func(t *testing.T, dir, id string) (string, bool) {
			c, err := duckdb.NewConnector(file(dir)+"?access_mode=read_only", nil)
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(c)
			defer db.Close()
			var outcome string
			var ended bool
			if err := db.QueryRow(`SELECT outcome, ended_at IS NOT NULL FROM runs WHERE run_id = ?`, id).Scan(&outcome, &ended); err != nil {
				t.Fatal(err)
			}
			return outcome, ended
		},
		hook: func(s Sink, fn func(string) error) { s.(*DuckDB).hook = fn },
		helperEnv: func(dir string) []string {
			return []string{"LOAD_HELPER_DUCKDB=" + file(dir)}
		},
	}
}

func TestDuckDBConformance(t *testing.T) {
	for _, in := range []Ingest{IngestArrow, IngestParquet, IngestAppender} {
		t.Run(in.String(), func(t *testing.T) { runConformance(t, duckTarget(in)) })
	}
}

func TestDuckDBWaitsForLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.duckdb")
	ctx := context.Background()
	s, err := NewDuckDB(path, WithLockTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(ctx, Run{ID: "r1", Source: "src"}); err != nil {
		t.Fatal(err)
	}
	// Another process holds the file for 1.5 s.
	env := []string{"LOAD_HELPER_DUCKDB=" + path, "LOAD_HELPER_RW=1"}
	done := make(chan string, 1)
	go func() { done <- helper(t, env, "hold", "1500ms") }()
	waitLocked(t, path)
	err = s.Finish(ctx, RunResult{RunID: "r1", Outcome: "ok"})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Finish while locked: %v, want ErrLocked naming %s", err, path)
	}
	s2, _ := NewDuckDB(path, WithLockTimeout(10*time.Second))
	began := time.Now()
	if err := s2.Finish(ctx, RunResult{RunID: "r1", Outcome: "ok"}); err != nil {
		t.Fatalf("Finish after waiting: %v", err)
	}
	if waited := time.Since(began); waited < 200*time.Millisecond {
		t.Errorf("did not wait for the lock (%s)", waited)
	}
	<-done
}

func waitLocked(t *testing.T, path string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, locked := lockHolder(path); locked {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("helper never locked the file")
}

// roDB is a read connection on a warehouse; Close frees the file.
type roDB struct {
	*sql.Conn
	done func()
}

func (r *roDB) Close() error { r.done(); return nil }

// TestDuckDBMergeStats checks the merge's counters and outcome against a
// hand-worked ground truth: new keys, a newer version, the same version
// (replaces), an older replay (dropped), duplicates inside one batch
// (newest wins; on a tie the later row).
func TestDuckDBMergeStats(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	contact := func(id, name string, at time.Time) row {
		return sys(row{"contact_id": id, "name": name, "tags": []string{name}}, "src", at)
	}
	for _, in := range []Ingest{IngestArrow, IngestParquet, IngestAppender} {
		t.Run(in.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			dir := t.TempDir()
			s, err := NewDuckDB(filepath.Join(dir, "warehouse.duckdb"), WithIngest(in), WithTempDir(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			steps := []struct {
				rows []row
				want TableStats
			}{
				{[]row{contact("c1", "a0", t0), contact("c2", "b0", t0)}, TableStats{Staged: 2, Written: 2}},
				{[]row{
					contact("c1", "a2", t2), contact("c1", "a1", t1), // newer, with an older duplicate
					contact("c2", "b0'", t0),                       // same version as stored: replaces
					contact("c3", "x", t1), contact("c3", "y", t1), // new, tie: the later row
				}, TableStats{Staged: 5, Written: 3, Replaced: 2}},
				{[]row{contact("c1", "old", t1), contact("c4", "d", t0)}, TableStats{Staged: 2, Written: 1}},
			}
			for i, st := range steps {
				rec := build(t, mem, whsql.Contacts, st.rows...)
				err := s.Commit(ctx, &Commit{Records: map[string][]arrow.RecordBatch{"contacts": {rec}}})
				rec.Release()
				if err != nil {
					t.Fatal(err)
				}
				if got := s.LastCommit().Tables["contacts"]; got != st.want {
					t.Errorf("commit %d: stats %+v, want %+v", i+1, got, st.want)
				}
			}
			db := duckTarget(in).db(t, dir)
			defer db.Close()
			got := fmt.Sprint(queryRows(t, db, `SELECT contact_id, name, tags FROM contacts ORDER BY contact_id`))
			if want := "[[c1 a2 [a2]] [c2 b0' [b0']] [c3 y [y]] [c4 d [d]]]"; got != want {
				t.Errorf("contacts = %s, want %s", got, want)
			}
		})
	}
}

// TestDuckDBBackfillsChangeColumns: a warehouse written before the change
// columns existed gets them, backfilled from _extracted_at (_deleted_at for
// a deleted row), and keeps them on an unchanged re-read.
func TestDuckDBBackfillsChangeColumns(t *testing.T) {
	ctx := context.Background()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	dir := t.TempDir()
	path := filepath.Join(dir, "warehouse.duckdb")
	commit := func(c *Commit) {
		t.Helper()
		s, err := NewDuckDB(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	contact := func(id string, at time.Time) []arrow.RecordBatch {
		return []arrow.RecordBatch{build(t, mem, whsql.Contacts, sys(row{"contact_id": id, "name": id, "tags": []string{"a"}}, "src", at))}
	}
	c1 := contact("c1", t0)
	commit(&Commit{Records: map[string][]arrow.RecordBatch{"contacts": c1}})
	c1[0].Release()
	c0 := contact("c0", t0)
	commit(&Commit{Records: map[string][]arrow.RecordBatch{"contacts": c0}})
	c0[0].Release()
	commit(&Commit{Deletes: []Delete{{Table: "contacts", Source: "src", IDs: []string{"c0"}, At: t1}}})
	// As an older exporter left it.
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`ALTER TABLE contacts DROP COLUMN _first_seen_at`, `ALTER TABLE contacts DROP COLUMN _changed_at`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	c1 = contact("c1", t2)
	commit(&Commit{Records: map[string][]arrow.RecordBatch{"contacts": c1}})
	c1[0].Release()
	rdb := duckTarget(IngestArrow).db(t, dir)
	defer rdb.Close()
	got := fmt.Sprint(queryRows(t, rdb, `SELECT contact_id, _first_seen_at, _changed_at, _extracted_at FROM contacts ORDER BY contact_id`))
	want := fmt.Sprint([][]any{{"c0", t0, t1, t0}, {"c1", t0, t0, t2}})
	if got != want {
		t.Errorf("migrated (id, first seen, changed, extracted) = %s, want %s", got, want)
	}
}

// Batch shares one session among the reads made with its context, and
// they answer as they do alone.
func TestDuckDBBatchOneSession(t *testing.T) {
	ctx := context.Background()
	d, err := NewDuckDB(filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Start(ctx, Run{ID: "r1", Source: "src"}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	if err := d.Commit(ctx, &Commit{RunID: "r1", Reconciled: []Reconcile{{Source: "src", LocationID: "loc1", At: at, RunID: "r1", Listed: 3}}}); err != nil {
		t.Fatal(err)
	}
	reads := func(ctx context.Context) (time.Time, error) {
		if _, err := liveContacts(ctx, d, "src", "loc1"); err != nil {
			return time.Time{}, err
		}
		if _, err := d.PendingRetries(ctx, "src", "loc1", 3); err != nil {
			return time.Time{}, err
		}
		return d.LastReconcile(ctx, "src", "loc1")
	}
	before := d.opens.Load()
	alone, err := reads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := d.opens.Load() - before; n != 3 {
		t.Errorf("three reads alone opened the file %d times, want 3", n)
	}
	var batched time.Time
	before = d.opens.Load()
	if err := Batch(ctx, d, func(ctx context.Context) error {
		var err error
		batched, err = reads(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := d.opens.Load() - before; n != 1 {
		t.Errorf("three reads in a Batch opened the file %d times, want 1", n)
	}
	if !alone.Equal(at) || !batched.Equal(at) {
		t.Errorf("last reconcile alone %v, batched %v, want %v", alone, batched, at)
	}
	// After the batch the file is closed: another sink on it can open it.
	other, _ := NewDuckDB(d.Path())
	if _, err := other.LastReconcile(ctx, "src", "loc1"); err != nil {
		t.Errorf("after Batch: %v", err)
	}
}

package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	duckdb "github.com/duckdb/duckdb-go/v2"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

func parquetTarget() target {
	return target{
		name: "parquet",
		open: func(t *testing.T, dir string) Sink {
			s, err := NewParquet(dir)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		db: func(t *testing.T, dir string) *roDB {
			c, err := duckdb.NewConnector("", nil)
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(c)
			conn, err := db.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			views, err := os.ReadFile(filepath.Join(dir, ParquetViewsFile))
			if err != nil {
				t.Fatal(err)
			}
			// views.sql names files relative to the directory.
			if _, err := conn.ExecContext(context.Background(), "SET file_search_path = "+sqlString(dir)+";\n"+string(views)); err != nil {
				t.Fatalf("views.sql: %v", err)
			}
			done := func() { conn.Close(); db.Close() }
			t.Cleanup(done)
			return &roDB{Conn: conn, done: func() {}}
		},
		run: func(t *testing.T, dir, id string) (string, bool) {
			s, _ := NewParquet(dir)
			l, err := s.load()
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range l.Runs {
				if r.ID == id {
					if r.Result == nil {
						return "running", false
					}
					return r.Result.Outcome, !r.Result.EndedAt.IsZero()
				}
			}
			t.Fatalf("no run %s", id)
			return "", false
		},
		hook:      func(s Sink, fn func(string) error) { s.(*Parquet).hook = fn },
		helperEnv: func(dir string) []string { return []string{"LOAD_HELPER_PARQUET=" + dir} },
	}
}

func TestParquetConformance(t *testing.T) { runConformance(t, parquetTarget()) }

// A ledger written before the sink kept sweeps, reconciles and deletes by
// contact loads, and the sink goes on from it.
func TestParquetOldLedgerLoads(t *testing.T) {
	ctx, dir := context.Background(), t.TempDir()
	old := `{"version": 1, "seq": 3, "files": {}, "deletes": {},
  "watermarks": [{"Source": "src", "LocationID": "loc1", "Resource": "contacts", "Value": "2024-03-01T10:00:00Z"}],
  "windows": [], "runs": [{"ID": "r0", "Source": "src", "Command": "run", "StartedAt": "2024-03-01T09:00:00Z"}]}`
	if err := os.WriteFile(filepath.Join(dir, ParquetLedgerFile), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := NewParquet(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Status(ctx, "src")
	if err != nil {
		t.Fatal(err)
	}
	if st.LastRun == nil || st.LastRun.ID != "r0" || len(st.Locations) != 1 || !st.Locations[0].Watermark.Equal(t0) {
		t.Fatalf("status of the old ledger = %+v %+v", st.LastRun, st.Locations)
	}
	if at, err := s.LastReconcile(ctx, "src", "loc1"); err != nil || !at.IsZero() {
		t.Fatalf("last reconcile = %v, %v", at, err)
	}
	if rs, err := s.PendingRetries(ctx, "src", "loc1", 3); err != nil || rs != nil {
		t.Fatalf("pending retries = %v, %v", rs, err)
	}
	if _, err := s.Start(ctx, Run{ID: "r1", Source: "src", StartedAt: t1}); err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := build(t, mem, whsql.Contacts, sys(row{"contact_id": "c1"}, "src", t1))
	defer rec.Release()
	if err := s.Commit(ctx, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{"contacts": {rec}},
		Swept:      []Swept{{Source: "src", LocationID: "loc1", ContactIDs: []string{"c1"}, At: t1, RunID: "r1"}},
		Reconciled: []Reconcile{{Source: "src", LocationID: "loc1", At: t1, RunID: "r1", Listed: 1}},
		Retries:    []Retry{{Source: "src", LocationID: "loc1", ContactID: "c2", Resource: "contacts", RunID: "r1", At: t1}}}); err != nil {
		t.Fatal(err)
	}
	s2, _ := NewParquet(dir)
	ids, live, err := s2.SweepCandidates(ctx, "src", "loc1", 10, t2)
	if err != nil || live != 1 || len(ids) != 1 {
		t.Errorf("candidates = %v, %d, %v", ids, live, err)
	}
	if at, err := s2.LastReconcile(ctx, "src", "loc1"); err != nil || !at.Equal(t1) {
		t.Errorf("last reconcile = %v, %v", at, err)
	}
	if rs, err := s2.PendingRetries(ctx, "src", "loc1", 3); err != nil || len(rs) != 1 || rs[0].ContactID != "c2" || rs[0].Attempts != 1 {
		t.Errorf("pending retries = %+v, %v", rs, err)
	}
}

// Files a commit wrote but never published (a crash before the ledger was
// replaced) are not part of the state, and the next Start removes them;
// sweep files stay few however many commits sweep.
func TestParquetUnpublishedState(t *testing.T) {
	ctx, dir := context.Background(), t.TempDir()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s, _ := NewParquet(dir)
	if _, err := s.Start(ctx, Run{ID: "r1", Source: "src"}); err != nil {
		t.Fatal(err)
	}
	rec := build(t, mem, whsql.Contacts, sys(row{"contact_id": "c1"}, "src", t0), sys(row{"contact_id": "c2"}, "src", t0))
	defer rec.Release()
	if err := s.Commit(ctx, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{"contacts": {rec}}}); err != nil {
		t.Fatal(err)
	}
	for i := range sweepCompactFiles + 3 {
		if err := s.Commit(ctx, &Commit{RunID: "r1", Swept: []Swept{{Source: "src", LocationID: "loc1",
			ContactIDs: []string{"c1"}, At: t0.Add(time.Duration(i) * time.Second), RunID: "r1"}}}); err != nil {
			t.Fatal(err)
		}
	}
	l, _ := s.load()
	if len(l.Sweeps) > sweepCompactFiles/2 {
		t.Errorf("ledger lists %d sweep files", len(l.Sweeps))
	}
	before := readAll(t, s)

	// What a crashed commit leaves: staged files and a sweep file the
	// manifest does not list (the hook stops the commit where a crash would).
	s.publishHook = func(step string) error {
		if step == "staged" {
			return errors.New("crash")
		}
		return nil
	}
	l, _ = s.load()
	if err := s.Commit(ctx, &Commit{RunID: "r1", Deletes: []Delete{{Table: "contacts", Source: "src", IDs: []string{"c1"}, At: t1}},
		Swept: []Swept{{Source: "src", LocationID: "loc1", ContactIDs: []string{"c2"}, At: t1, RunID: "r2"}}}); err == nil {
		t.Fatal("commit stopped before the manifest succeeded")
	}
	if got := readAll(t, s); !reflect.DeepEqual(got, before) {
		t.Errorf("unpublished files changed the answers: %v, want %v", got, before)
	}
	s2, _ := NewParquet(dir)
	if _, err := s2.Start(ctx, Run{ID: "r2", Source: "src"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, parquetStagingDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging area not removed by Start: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, parquetSweepsDir))
	l, _ = s2.load()
	if len(ents) != len(l.Sweeps) {
		t.Errorf("%d files in %s, ledger lists %d", len(ents), parquetSweepsDir, len(l.Sweeps))
	}
	if got := readAll(t, s2); !reflect.DeepEqual(got, before) {
		t.Errorf("answers after Start: %v, want %v", got, before)
	}
}

// readAll is what the Store answers of location loc1 of src.
func readAll(t *testing.T, s Store) []any {
	t.Helper()
	ctx := context.Background()
	live, err := liveContacts(ctx, s, "src", "loc1")
	if err != nil {
		t.Fatal(err)
	}
	ids, n, err := s.SweepCandidates(ctx, "src", "loc1", 10, t2)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Status(ctx, "src")
	if err != nil {
		t.Fatal(err)
	}
	return []any{live, ids, n, st.Locations}
}

// BenchmarkParquetStore reads the Store of one location of 100k contacts
// written by 20 commits, half of them swept over 40 commits. The peak RSS
// of the process (DuckDB's memory is not Go heap) is reported.
func BenchmarkParquetStore(b *testing.B) {
	const contacts, commits = 100_000, 20
	ctx, dir := context.Background(), b.TempDir()
	s, _ := NewParquet(dir)
	if _, err := s.Start(ctx, Run{ID: "r1", Source: "src"}); err != nil {
		b.Fatal(err)
	}
	for c := range commits {
		var rows []row
		for i := c; i < contacts; i += commits {
			rows = append(rows, sys(row{"contact_id": fmt.Sprintf("c%06d", i), "updated_at": t0}, "src", t0))
		}
		rec := build(b, memory.DefaultAllocator, whsql.Contacts, rows...)
		err := s.Commit(ctx, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{"contacts": {rec}}})
		rec.Release()
		if err != nil {
			b.Fatal(err)
		}
	}
	for c := range 2 * commits {
		var ids []string
		for i := c; i < contacts/2; i += 2 * commits {
			ids = append(ids, fmt.Sprintf("c%06d", i))
		}
		began := time.Now()
		if err := s.Commit(ctx, &Commit{RunID: "r1", Swept: []Swept{{Source: "src", LocationID: "loc1", ContactIDs: ids, At: t0, RunID: "r1"}}}); err != nil {
			b.Fatal(err)
		}
		if d := time.Since(began); d > 200*time.Millisecond {
			b.Logf("sweep commit %d took %s", c, d)
		}
	}
	b.ResetTimer()
	for range b.N {
		began := time.Now()
		live, err := liveContacts(ctx, s, "src", "loc1")
		if err != nil || len(live) != contacts {
			b.Fatalf("live = %d, %v", len(live), err)
		}
		b.ReportMetric(float64(time.Since(began).Milliseconds()), "live-ms")
		began = time.Now()
		ids, n, err := s.SweepCandidates(ctx, "src", "loc1", 1000, t1)
		if err != nil || n != contacts || len(ids) != 1000 {
			b.Fatalf("candidates = %d, %d, %v", len(ids), n, err)
		}
		b.ReportMetric(float64(time.Since(began).Milliseconds()), "sweep-ms")
		began = time.Now()
		if _, err := s.Status(ctx, "src"); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(began).Milliseconds()), "status-ms")
	}
	b.ReportMetric(float64(peakRSS()>>20), "peak-rss-MB")
}

// peakRSS is the process's peak resident set (VmHWM), 0 where unknown.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}

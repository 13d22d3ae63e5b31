package load

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
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

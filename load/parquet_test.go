package load

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	duckdb "github.com/duckdb/duckdb-go/v2"
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
			if _, err := conn.ExecContext(context.Background(), string(views)); err != nil {
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

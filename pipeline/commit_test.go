package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/load"
)

// Commits bounded by bytes: with a tiny CommitBytes every page mark starts
// a commit, each running while the next page is gathered; the warehouse
// still equals the truth and the result counts what landed.
func TestCommitsBoundedByBytes(t *testing.T) {
	for _, kind := range sinkKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind, sim.Config{Seed: 12, Contacts: 700, Locations: 2})
			res, err := e.run(Options{Lookback: time.Minute, ReconcileEvery: 0}, func(j *Job) {
				j.CommitRows, j.CommitBytes = 1_000_000, 1
			})
			if err != nil {
				t.Fatal(err)
			}
			counts := e.compare()
			// 350 contacts per location, pages of 100: 4 pages each, and
			// each page's mark commits.
			if res.Commits < 8 {
				t.Errorf("%d commits, want one per page (8) at least", res.Commits)
			}
			if res.Rows["contacts"] != int64(counts["contacts"]) || counts["contacts"] != 700 {
				t.Errorf("result %d contacts, warehouse %d", res.Rows["contacts"], counts["contacts"])
			}
		})
	}
}

// failingSink fails its commit number failAt (counting from 1).
type failingSink struct {
	load.Sink
	n, failAt int
}

var errInjected = errors.New("injected commit failure")

func (s *failingSink) Commit(ctx context.Context, c *load.Commit) error {
	s.n++
	if s.n == s.failAt {
		return errInjected
	}
	return s.Sink.Commit(ctx, c)
}

// A commit that fails in the background stops the location with that
// error, and the result counts only the rows of the commits that landed.
func TestBackgroundCommitFailure(t *testing.T) {
	e := newEnv(t, WarehouseDuckDB, sim.Config{Seed: 13, Contacts: 600})
	res, err := e.run(Options{Lookback: time.Minute, ReconcileEvery: -1}, func(j *Job) {
		j.CommitRows, j.CommitBytes = 1_000_000, 1
		j.Sink = &failingSink{Sink: j.Sink, failAt: 3}
	})
	if !errors.Is(err, errInjected) {
		t.Fatalf("err = %v, want the injected failure", err)
	}
	for _, table := range []string{"contacts", "tasks", "notes", "appointments"} {
		if n := e.count(`SELECT count(*) FROM ` + table); res.Rows[table] != n {
			t.Errorf("%s: result %d, warehouse %d", table, res.Rows[table], n)
		}
	}
	if n := e.count(`SELECT count(*) FROM contacts`); n != 200 {
		t.Errorf("%d contacts committed, want the two pages before the failed commit (200)", n)
	}
}

package pipeline

import (
	"context"
	dsql "database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/memory/mallocator"
	_ "github.com/duckdb/duckdb-go/v2" // reads the warehouse back
	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/internal/truth"
	"github.com/contacts-etl/contacts-etl/load"
	"github.com/contacts-etl/contacts-etl/transform"
)

// env is a simulator on loopback and a warehouse of one kind.
type env struct {
	t     *testing.T
	srv   *sim.Server
	base  string
	kind  string
	path  string
	runs  int
	srcTS map[string]oauth2.TokenSource
}

func newEnv(t *testing.T, kind string, cfg sim.Config) *env {
	return newEnvScopes(t, kind, cfg, api.ScopeContactsRO, api.ScopeLocationsRO)
}

func newEnvScopes(t *testing.T, kind string, cfg sim.Config, scopes ...string) *env {
	t.Helper()
	if cfg.Locations == 0 {
		cfg.Locations = 1
	}
	cfg.StaticTokens = map[string]sim.StaticToken{}
	probe := sim.New(sim.Config{Locations: cfg.Locations, LocationIDs: cfg.LocationIDs})
	e := &env{t: t, kind: kind, srcTS: map[string]oauth2.TokenSource{}}
	for i, loc := range probe.Locations() {
		tok := fmt.Sprintf("pit-test-%d", i)
		cfg.StaticTokens[tok] = sim.StaticToken{LocationID: loc, Scopes: scopes}
		e.srcTS[loc] = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok})
	}
	e.srv = sim.New(cfg)
	base, err := e.srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.srv.Close() })
	e.base = base
	e.path = filepath.Join(t.TempDir(), "w."+kind)
	return e
}

// run executes one run with opt, as the CLI would.
func (e *env) run(opt Options, mod func(*Job)) (Result, error) {
	e.t.Helper()
	e.runs++
	clients, err := Clients(e.srv.Locations(), e.srcTS, ClientOptions{BaseURL: e.base, Concurrency: 4,
		RateMax: 1_000_000, RateInterval: time.Second, MaxRetries: 3})
	if err != nil {
		e.t.Fatal(err)
	}
	sink, err := OpenSink(e.kind, e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer sink.Close(context.Background())
	id := fmt.Sprintf("run-%02d", e.runs)
	j := Job{
		Run:        load.Run{ID: id, Source: "sim", Command: "run", StartedAt: time.Now().UTC()},
		Sink:       sink,
		Options:    opt,
		CommitRows: 500,
		Stream:     extract.StreamOptions{Query: extract.Query{PageLimit: 100}, Concurrency: 4, Children: extract.ChildResources},
	}
	j.Transform = transform.Config{Source: "sim", RunID: id, ExtractedAt: j.Run.StartedAt, BatchRows: 300, NaiveZone: time.UTC}
	for _, c := range clients {
		j.Locations = append(j.Locations, Location{Client: c})
	}
	// Every run of these tests checks that it released all its Arrow
	// memory (the exporter's allocator is C malloc: a leak is never freed).
	mem := memory.NewCheckedAllocator(mallocator.NewMallocator())
	j.Transform.Mem = mem
	if mod != nil {
		mod(&j)
	}
	res, err := Run(context.Background(), j)
	if j.Transform.Mem == mem {
		if n := mem.CurrentAlloc(); n != 0 {
			e.t.Errorf("run %s (err %v) left %d bytes of Arrow memory unreleased", id, err, n)
		}
	}
	return res, err
}

// db opens the warehouse as an analyst would: the DuckDB file read-only, or
// the Parquet tree as plain read_parquet globs of the table folders (no
// merge, no file list: the published files are the tables), the state
// views from views.sql.
func (e *env) db() *dsql.DB {
	e.t.Helper()
	if e.kind == WarehouseDuckDB {
		return truth.OpenRO(e.t, e.path)
	}
	return parquetDB(e.t, e.path)
}

func (e *env) compare() map[string]int {
	e.t.Helper()
	db := e.db()
	defer db.Close()
	counts := truth.CompareDB(e.t, e.srv, db, "sim", e.srv.Locations())
	if e.kind == WarehouseParquet {
		checkParquetFiles(e.t, e.path, db)
	}
	return counts
}

func (e *env) count(q string) int64 {
	e.t.Helper()
	db := e.db()
	defer db.Close()
	var n int64
	if err := db.QueryRow(q).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

var sinkKinds = []string{WarehouseDuckDB, WarehouseParquet}

// Full, incremental (skip of unchanged contacts, sweep, reconciliation) and
// --full runs behave the same on both sinks, through the same code: the
// warehouse equals the simulator's truth after each.
func TestRunsOnBothSinks(t *testing.T) {
	for _, kind := range sinkKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind, sim.Config{Seed: 21, Contacts: 600, Locations: 3, Bad: sim.BadData{OddFields: 6, BodyContactIDs: 3}, ChildContactMismatch: 0.05})
			opt := Options{Lookback: time.Minute, SweepRuns: 2, ReconcileEvery: 0}
			res, err := e.run(opt, nil)
			if err != nil {
				t.Fatal(err)
			}
			counts := e.compare()
			if len(res.Zones) != 3 || res.Zones["loc-0001"].Source != ZoneFromAPI {
				t.Errorf("zones %v", res.Zones)
			}
			if res.Rows["contacts"] != int64(counts["contacts"]) || counts["contacts"] != 600 {
				t.Errorf("result says %d contacts committed, warehouse has %d", res.Rows["contacts"], counts["contacts"])
			}
			// Nothing changed: no contact is read again, only the sweep's
			// slice of children (half of the contacts with SweepRuns 2) and
			// the id listing.
			e.srv.ResetStats()
			if _, err := e.run(opt, nil); err != nil {
				t.Fatal(err)
			}
			st := e.srv.Stats()
			if st.ByKind["contact"] != 0 || st.ByKind["tasks"] != 300 || st.ByKind["notes"] != 300 || st.ByKind["appointments"] != 300 {
				t.Errorf("unchanged run fetched %v, want a sweep of 300 contacts' children", st.ByKind)
			}
			sum := e.srv.Mutate(0.05, 7)
			if len(sum.Deleted) == 0 || len(sum.NotesAdded) == 0 {
				t.Fatalf("mutation too small: %+v", sum)
			}
			for range 2 { // one sweep cycle brings the notes added to unchanged contacts
				if _, err := e.run(opt, nil); err != nil {
					t.Fatal(err)
				}
			}
			counts = e.compare()
			if counts["contacts_deleted"] != len(sum.Deleted) {
				t.Errorf("soft-deleted %d contacts, want %d", counts["contacts_deleted"], len(sum.Deleted))
			}
			// --full reads every contact and its children again.
			e.srv.ResetStats()
			full := opt
			full.Full, full.SweepRuns = true, 0
			if _, err := e.run(full, nil); err != nil {
				t.Fatal(err)
			}
			live := counts["contacts"]
			if st := e.srv.Stats(); st.ByKind["tasks"] < int64(live) || st.ByKind["notes"] < int64(live) {
				t.Errorf("--full fetched %v for %d live contacts", st.ByKind, live)
			}
			e.compare()
			// status reads the same state through the sink.
			sink, _ := OpenSink(kind, e.path)
			status, err := sink.Status(context.Background(), "sim")
			if err != nil {
				t.Fatal(err)
			}
			var statusLive int64
			for _, l := range status.Locations {
				statusLive += l.Live
				if l.Watermark.IsZero() || l.LastReconcile.IsZero() {
					t.Errorf("status of %s: %+v", l.LocationID, l)
				}
			}
			if statusLive != int64(live) || status.LastRun == nil || status.LastRun.Outcome != "ok" {
				t.Errorf("status: live %d (want %d), last run %+v", statusLive, live, status.LastRun)
			}
		})
	}
}

// A run that fails part-way counts only the rows it committed, and a
// location that fails does not lose what it committed before.
func TestFailedRunCountsCommittedRowsOnly(t *testing.T) {
	for _, kind := range sinkKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind, sim.Config{Seed: 8, Contacts: 1000, Bad: sim.BadData{SearchStuckAtPage: 4}})
			res, err := e.run(Options{Lookback: time.Minute, ReconcileEvery: -1}, nil)
			if !errors.Is(err, extract.ErrCursorStuck) {
				t.Fatalf("err = %v, want ErrCursorStuck", err)
			}
			got := e.count(`SELECT count(*) FROM contacts`)
			if got != 300 || res.Rows["contacts"] != got {
				t.Errorf("committed %d contacts (want the 3 good pages, 300); the result says %d", got, res.Rows["contacts"])
			}
			for _, table := range []string{"tasks", "notes", "appointments"} {
				if n := e.count(`SELECT count(*) FROM ` + table); res.Rows[table] != n {
					t.Errorf("%s: result %d, warehouse %d", table, res.Rows[table], n)
				}
			}
		})
	}
}

// Progress is reported after every commit with the rows committed so far.
func TestProgressFollowsCommits(t *testing.T) {
	e := newEnv(t, WarehouseDuckDB, sim.Config{Seed: 5, Contacts: 400})
	var last Progress
	calls := 0
	res, err := e.run(Options{ReconcileEvery: -1}, func(j *Job) {
		j.Progress = func(p Progress) { calls++; last = p }
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != res.Commits || last.Committed["contacts"] != 400 || last.Requests < 400*3 {
		t.Errorf("%d progress calls for %d commits; last %+v", calls, res.Commits, last)
	}
}

// Zone-less appointment times are read in each location's zone: from the
// API when the token may read it, else from the configuration; with
// neither, the default zone is used and said.
func TestLocationZones(t *testing.T) {
	cfg := sim.Config{Seed: 31, Contacts: 240, Locations: 3}
	t.Run("config", func(t *testing.T) {
		e := newEnvScopes(t, WarehouseDuckDB, cfg, api.ScopeContactsRO)
		res, err := e.run(Options{ReconcileEvery: -1}, func(j *Job) {
			for i := range j.Locations {
				z, err := time.LoadLocation(e.srv.TimeZone(j.Locations[i].Client.Location()))
				if err != nil {
					t.Fatal(err)
				}
				j.Locations[i].Zone = z
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		for loc, z := range res.Zones {
			if z.Source != ZoneFromConfig || z.Name != e.srv.TimeZone(loc) {
				t.Errorf("%s: %+v", loc, z)
			}
		}
		e.compare()
	})
	t.Run("default", func(t *testing.T) {
		e := newEnvScopes(t, WarehouseDuckDB, cfg, api.ScopeContactsRO)
		res, err := e.run(Options{ReconcileEvery: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for loc, z := range res.Zones {
			if z.Source != ZoneFromDefault || z.Name != "UTC" {
				t.Errorf("%s: %+v", loc, z)
			}
		}
	})
}

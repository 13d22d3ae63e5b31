package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/internal/truth"
	"github.com/contacts-etl/contacts-etl/pipeline"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// incTweak configures a test export for incremental runs.
func incTweak(sweepRuns int, extra func(*Config)) func(*Config) {
	return func(c *Config) {
		c.Incremental.Lookback = 5 * time.Minute
		c.Incremental.SweepRuns = sweepRuns
		c.Incremental.ReconcileEvery = 0
		if extra != nil {
			extra(c)
		}
	}
}

func searchPages(n, limit int) int64 { return int64(n/limit + 1) }

// TestIncrementalOnePercent changes 1% of the contacts between runs, then
// runs incrementally for one sweep cycle: the warehouse must equal the
// ground truth (deleted contacts and their children soft-deleted) and the
// incremental run must cost no more than 5% over the plan's minimum.
func TestIncrementalOnePercent(t *testing.T) {
	const contacts, sweepRuns = 4000, 4
	srv, base := startSim(t, sim.Config{Seed: 11, Contacts: contacts, Locations: 2})
	path := filepath.Join(t.TempDir(), "w.duckdb")
	tweak := incTweak(sweepRuns, nil)
	if _, err := testExport(t, srv, base, path, tweak); err != nil {
		t.Fatal(err)
	}
	truth.CompareWarehouse(t, srv, path, "sim", srv.Locations())

	sum := srv.Mutate(0.01, 42)
	t.Logf("mutated: %d updated, %d notes on unchanged contacts, %d deleted, %d added",
		len(sum.Updated), len(sum.NotesAdded), len(sum.Deleted), len(sum.Added))
	// The minimum the plan needs, per location: the window's search pages,
	// three child requests per changed contact, the id-only listing
	// (pageLimit 500), and three per contact of the sweep's slice.
	locOf := map[string]string{}
	live := map[string]int{}
	for _, loc := range srv.Locations() {
		for _, ct := range srv.Truth(loc) {
			locOf[ct.Contact.ID] = loc
			if !ct.Deleted {
				live[loc]++
			}
		}
	}
	changed := map[string]int{}
	for _, id := range append(slices.Clone(sum.Updated), sum.Added...) {
		changed[locOf[id]]++
	}
	var minimum int64
	for _, loc := range srv.Locations() {
		stored := live[loc] // after the reconciliation: the live ones
		sweep := min((stored+sweepRuns-1)/sweepRuns, stored-changed[loc])
		minimum += searchPages(changed[loc], 100) + 3*int64(changed[loc]) + searchPages(live[loc], 500) + 3*int64(sweep)
	}
	before := srv.Stats()
	res, err := testExport(t, srv, base, path, tweak)
	if err != nil {
		t.Fatal(err)
	}
	after := srv.Stats()
	var served int64
	for k, n := range after.ByLocation {
		served += n - before.ByLocation[k]
	}
	t.Logf("incremental run: %d requests (server saw %d), plan minimum %d (a full run: %d)", res.Requests, served, minimum, int64(contacts)*3+int64(contacts)/100)
	if float64(res.Requests) > 1.05*float64(minimum) || res.Requests < minimum {
		t.Errorf("incremental run made %d requests, minimum %d (allowed +5%%)", res.Requests, minimum)
	}
	for range sweepRuns - 1 { // the rest of the sweep cycle
		if _, err := testExport(t, srv, base, path, tweak); err != nil {
			t.Fatal(err)
		}
	}
	counts := truth.CompareWarehouse(t, srv, path, "sim", srv.Locations())
	if counts["contacts_deleted"] != len(sum.Deleted) {
		t.Errorf("soft-deleted contacts %d, want %d", counts["contacts_deleted"], len(sum.Deleted))
	}
	if counts["notes_deleted"] == 0 {
		t.Errorf("no notes of deleted contacts soft-deleted: %v", counts)
	}
}

// TestLateAndSkewedUpdates: an update that shows up late, dated inside the
// lookback before the previous run, is caught; so are updates from a source
// whose clock runs minutes ahead of or behind ours.
func TestLateAndSkewedUpdates(t *testing.T) {
	for _, tc := range []struct {
		name string
		skew time.Duration // source clock minus ours
	}{{"late", 0}, {"ahead", 2 * time.Minute}, {"behind", -2 * time.Minute}} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			offset := tc.skew
			now := func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) }
			srv, base := startSim(t, sim.Config{Seed: 12, Contacts: 300, Locations: 1, Now: now})
			path := filepath.Join(t.TempDir(), "w.duckdb")
			tweak := incTweak(0, nil)
			if _, err := testExport(t, srv, base, path, tweak); err != nil {
				t.Fatal(err)
			}
			ids := srv.Truth(srv.Locations()[0])
			if tc.name == "late" {
				// Becomes visible only now, dated 3 minutes before the
				// last run started: inside the 5-minute lookback.
				mu.Lock()
				offset = -3 * time.Minute
				mu.Unlock()
			}
			for _, ct := range ids[:5] {
				if err := srv.UpdateContact(ct.Contact.ID, func(c *api.Contact) { c.City = "Late " + tc.name }); err != nil {
					t.Fatal(err)
				}
			}
			res, err := testExport(t, srv, base, path, tweak)
			if err != nil {
				t.Fatal(err)
			}
			truth.CompareWarehouse(t, srv, path, "sim", srv.Locations())
			if res.Rows["contacts"] != 5 {
				t.Errorf("incremental run wrote %d contacts, want the 5 updated", res.Rows["contacts"])
			}
		})
	}
}

// TestBackfillWindows: disjoint backfills in any order give the full run's
// warehouse; a backfill over committed data rewrites only what changed;
// re-running a finished backfill reads nothing.
func TestBackfillWindows(t *testing.T) {
	srv, base := startSim(t, sim.Config{Seed: 13, Contacts: 1200, Locations: 2})
	path := filepath.Join(t.TempDir(), "w.duckdb")
	day := func(s string) time.Time { d, _ := time.Parse("2006-01-02", s); return d }
	redo := false
	backfill := func(from, to string) pipeline.Result {
		t.Helper()
		res, err := testExport(t, srv, base, path, incTweak(0, func(c *Config) {
			c.Incremental.backfill, c.Incremental.from, c.Incremental.to = true, day(from), day(to)
			c.Incremental.redo = redo
			c.Incremental.backfillWindow = 365 * 24 * time.Hour
		}))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	backfill("2023-06-01", "2030-01-01")
	backfill("2000-01-01", "2023-06-01")
	truth.CompareWarehouse(t, srv, path, "sim", srv.Locations())
	if res := backfill("2000-01-01", "2030-01-01"); res.Requests != 0 {
		// Same windows? No: different window boundaries, so they are read,
		// but every contact is unchanged: search pages only.
		if res.Rows["contacts"] != 0 || res.Rows["tasks"] != 0 {
			t.Errorf("backfill over unchanged data wrote rows: %v", res.Rows)
		}
	}
	if res := backfill("2023-06-01", "2030-01-01"); res.Requests != 0 {
		t.Errorf("re-running a finished backfill made %d requests", res.Requests)
	}

	// Change a few contacts, then backfill everything: only they change.
	runIDs := func() map[string]string {
		db := truth.OpenRO(t, path)
		defer db.Close()
		rows, err := db.Query(`SELECT contact_id, _run_id FROM contacts`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var id, run string
			if err := rows.Scan(&id, &run); err != nil {
				t.Fatal(err)
			}
			out[id] = run
		}
		return out
	}
	old := runIDs()
	var changed []string
	for _, ct := range srv.Truth(srv.Locations()[1])[:7] {
		changed = append(changed, ct.Contact.ID)
		if err := srv.UpdateContact(ct.Contact.ID, func(c *api.Contact) { c.Tags = append(c.Tags, "backfilled") }); err != nil {
			t.Fatal(err)
		}
	}
	redo = true // the ledger has these windows done: read them again
	res := backfill("2000-01-01", "2030-01-01")
	if res.Rows["contacts"] != int64(len(changed)) {
		t.Errorf("overlapping backfill wrote %d contacts, want %d", res.Rows["contacts"], len(changed))
	}
	var rewritten []string
	for id, run := range runIDs() {
		if run != old[id] {
			rewritten = append(rewritten, id)
		}
	}
	slices.Sort(rewritten)
	slices.Sort(changed)
	if !slices.Equal(rewritten, changed) {
		t.Errorf("rewritten contacts %v, want %v", rewritten, changed)
	}
	truth.CompareWarehouse(t, srv, path, "sim", srv.Locations())
}

// TestRunLock: a second run on a held warehouse fails with ErrLocked (exit
// code 4), or waits with --wait, saying what it waits for.
func TestRunLock(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultConfig()
	cfg.Warehouse.Path = filepath.Join(dir, "w.duckdb")
	unlock, err := pipeline.Lock(context.Background(), cfg.Warehouse.Type, cfg.Warehouse.Path, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONTACTS_ETL_TOKEN", "pit-test")
	var stderr strings.Builder
	code := dispatch(context.Background(), []string{"run", "--warehouse", cfg.Warehouse.Path, "--locations", "loc-0001",
		"--base-url", "http://127.0.0.1:1"}, io.Discard, &stderr)
	if code != exitLocked || !strings.Contains(stderr.String(), "another run holds the warehouse") {
		t.Errorf("exit code %d, want %d: %s", code, exitLocked, stderr.String())
	}
	logged := &notifyWriter{c: make(chan string, 16)}
	got := make(chan error, 1)
	go func() {
		u2, err := pipeline.Lock(context.Background(), cfg.Warehouse.Type, cfg.Warehouse.Path, true, newLogger(logged, "info"))
		if err == nil {
			u2()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("--wait took a held lock: %v", err)
	case line := <-logged.c: // the waiter says what it waits for
		if !strings.Contains(line, "waiting for the warehouse's run lock") {
			t.Errorf("waiting said %q", line)
		}
	}
	unlock() // the waiter gets the lock once it is released
	if err := <-got; err != nil {
		t.Fatalf("--wait: %v", err)
	}
}

// A refused run leaves no lock file and creates no folder.
func TestRefusedRunLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CONTACTS_ETL_TOKEN", "pit-test")
	for _, args := range [][]string{
		{"run", "--warehouse", filepath.Join(dir, "w.duckdb"), "--locations", "loc-0001", "--warehouse-type", "sqlite"},
		{"run", "--warehouse", filepath.Join(dir, "missing", "w.duckdb"), "--locations", "loc-0001"},
		{"run", "--warehouse", filepath.Join(dir, "w.duckdb"), "--locations", "loc-0001", "--log-level", "loud"},
	} {
		var stderr strings.Builder
		if code := dispatch(context.Background(), args, io.Discard, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, stderr.String())
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 0 {
			t.Errorf("%v left %v", args, ents)
		}
	}
}

// notifyWriter hands every write to c (dropping what c has no room for).
type notifyWriter struct{ c chan string }

func (w *notifyWriter) Write(p []byte) (int, error) {
	select {
	case w.c <- string(p):
	default:
	}
	return len(p), nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/internal/truth"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/load"
)

// flaky is the fault mix of issue 5: 5% 5xx, 2% resets, 1% truncated bodies
// and random bursts of 429s (with Retry-After), on a 1 s rate interval.
func flaky(seed int64, contacts, locations int) sim.Config {
	return sim.Config{
		Seed: seed, Contacts: contacts, Locations: locations,
		RateLimit:  sim.RateLimit{Interval: time.Second},
		RetryAfter: true,
		Faults: sim.Faults{
			Rate5xx: 0.05, RateReset: 0.02, RateTruncate: 0.01,
			Burst429: 0.002, BurstLen: 4,
		},
	}
}

func runLocations(t *testing.T, path, runID string) map[string]load.LocationStats {
	t.Helper()
	db := truth.OpenRO(t, path)
	defer db.Close()
	var raw []byte
	var js string
	if err := db.QueryRow(`SELECT locations::VARCHAR FROM runs WHERE run_id = ?`, runID).Scan(&js); err != nil {
		t.Fatal(err)
	}
	raw = []byte(js)
	out := map[string]load.LocationStats{}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func lastRun(t *testing.T, path string) (id, outcome, msg string) {
	t.Helper()
	db := truth.OpenRO(t, path)
	defer db.Close()
	if err := db.QueryRow(`SELECT run_id, outcome, coalesce(error, '') FROM runs ORDER BY started_at DESC LIMIT 1`).Scan(&id, &outcome, &msg); err != nil {
		t.Fatal(err)
	}
	return id, outcome, msg
}

// With faults on every endpoint, a full run and then a second run end with
// the warehouse equal to the simulator's truth, and the runs table counts
// the retries and 429s per location.
func TestFaultyAPIGivesTheSameWarehouse(t *testing.T) {
	srv, base := startSim(t, flaky(51, 1200, 3))
	path := filepath.Join(t.TempDir(), "w.duckdb")
	for i := range 2 {
		srv.ResetStats()
		res, err := testExport(t, srv, base, path, nil)
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		truth.CompareWarehouse(t, srv, path, "sim", srv.Locations())
		st := srv.Stats()
		if i == 0 && (st.Faults[sim.Fault5xx] == 0 || st.Faults[sim.FaultReset] == 0 || st.Faults[sim.FaultTruncate] == 0 || st.Faults[sim.Fault429] == 0) {
			t.Errorf("run %d: not every fault happened: %v", i+1, st.Faults)
		}
		id, outcome, _ := lastRun(t, path)
		if outcome != "ok" {
			t.Errorf("run %d outcome %s", i+1, outcome)
		}
		locs := runLocations(t, path, id)
		var req, retries, limited int64
		for _, loc := range srv.Locations() {
			ls, ok := locs[loc]
			if !ok || ls.Requests == 0 {
				t.Errorf("run %d: no stats for %s: %v", i+1, loc, locs)
			}
			req, retries, limited = req+ls.Requests, retries+ls.Retries, limited+ls.RateLimited
		}
		if req != res.Requests || retries != res.Retries || limited != res.Limited {
			t.Errorf("per-location sums %d/%d/%d, run totals %d/%d/%d", req, retries, limited, res.Requests, res.Retries, res.Limited)
		}
		if i == 0 && (retries == 0 || limited == 0) {
			t.Errorf("run 1 counted no retries or 429s: %+v", locs)
		}
		t.Logf("run %d: %d requests, %d retries, %d 429s; server faults %v", i+1, res.Requests, res.Retries, res.Limited, st.Faults)
	}
}

// simClock is a settable clock for the simulator (the day of its quota).
type simClock struct{ off atomic.Int64 }

func (c *simClock) now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// A run that would cross the daily reserve stops with exit code 3: what it
// fetched is committed and true, the run is "partial". After the quota
// resets, the next run completes the warehouse.
func TestDailyQuotaStopsPartialThenResumes(t *testing.T) {
	clk := new(simClock)
	const token = "pit-quota-test"
	srv, base := startSim(t, sim.Config{
		Seed: 52, Contacts: 600, Locations: 1, Now: clk.now,
		RateLimit:    sim.RateLimit{Daily: 1200},
		StaticTokens: map[string]sim.StaticToken{token: {LocationID: "loc-0001", Scopes: []string{api.ScopeContactsRO, api.ScopeLocationsRO}}},
	})
	path := filepath.Join(t.TempDir(), "w.duckdb")
	t.Setenv("CONTACTS_ETL_TOKEN", token)
	run := func() (int, string) {
		var out, errb bytes.Buffer
		code := dispatch(context.Background(), []string{"run", "--auth", "static", "--source", "sim", "--base-url", base,
			"--locations", strings.Join(srv.Locations(), ","), "--warehouse", path, "--page-limit", "100",
			"--commit-rows", "500", "--rate-max", "1000000", "--rate-interval", "1s", "--daily-reserve", "10%", "--log-level", "error"}, &out, &errb)
		if strings.Contains(out.String()+errb.String(), token) {
			t.Errorf("the token was printed")
		}
		return code, errb.String()
	}
	code, stderr := run()
	if code != exitPartial {
		t.Fatalf("exit code %d, want %d (partial); stderr:\n%s", code, exitPartial, stderr)
	}
	if !strings.Contains(stderr, "daily quota") {
		t.Errorf("stderr does not say why: %s", stderr)
	}
	id, outcome, msg := lastRun(t, path)
	if outcome != "partial" || !strings.Contains(msg, extract.ErrQuotaReserve.Error()) {
		t.Errorf("run row: %s %q", outcome, msg)
	}
	ls := runLocations(t, path, id)["loc-0001"]
	if ls.Stopped != "quota" || ls.DailyRemaining < 120 || ls.QuotaUsed > 1200-120 {
		t.Errorf("location stats %+v: want stopped by quota with >= 120 (the reserve) left", ls)
	}
	if used := srv.Stats().ByLocation["loc-0001"]; used > 1200-120 {
		t.Errorf("server counted %d requests: the reserve was spent", used)
	}
	// What was committed is complete and true.
	db := truth.OpenRO(t, path)
	want := truth.Tables(t, srv, srv.Locations())
	for _, table := range []string{"contacts", "tasks", "notes", "appointments"} {
		got := truth.ReadTable(t, db, table, "sim")
		if table == "contacts" && (len(got) == 0 || len(got) >= 600) {
			t.Errorf("partial run committed %d contacts, want some but not all", len(got))
		}
		for id, g := range got {
			w, ok := want[table][id]
			if !ok {
				t.Errorf("%s: unexpected row %s", table, id)
				continue
			}
			for col, wv := range w {
				if !truth.SameValue(col, wv, g[col]) {
					t.Errorf("%s %s.%s = %v, want %v", table, id, col, g[col], wv)
				}
			}
		}
	}
	db.Close()

	// The same day: nothing more may be spent, the run stops at once.
	if code, _ := run(); code != exitPartial {
		t.Errorf("second run on the same day: exit code %d, want partial", code)
	}
	// The next day the quota is back: the run completes.
	clk.off.Store(int64(24 * time.Hour))
	if code, stderr := run(); code != exitOK {
		t.Fatalf("run after the reset: exit code %d; stderr:\n%s", code, stderr)
	}
	truth.CompareWarehouse(t, srv, path, "sim", srv.Locations())
	if _, outcome, _ := lastRun(t, path); outcome != "ok" {
		t.Errorf("last run outcome %s", outcome)
	}
}

// plan spends one search per location (two with a watermark) and gets the
// numbers right.
func TestPlanEstimates(t *testing.T) {
	srv, base := startSim(t, sim.Config{Seed: 53, Contacts: 1001, Locations: 2,
		RateLimit: sim.RateLimit{Max: 50, Interval: time.Second, Daily: 2000}})
	path := filepath.Join(t.TempDir(), "w.duckdb")
	cfg := defaultConfig()
	cfg.Source, cfg.BaseURL, cfg.Locations, cfg.Warehouse.Path, cfg.PageLimit = "sim", base, srv.Locations(), path, 100
	sources, err := simTokenSources(context.Background(), srv, base, cfg.Locations)
	if err != nil {
		t.Fatal(err)
	}
	srv.ResetStats()
	var out bytes.Buffer
	plans, err := plan(context.Background(), cfg, sources, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if n := srv.Stats().ByKind["search"]; n != 2 {
		t.Errorf("plan sent %d searches, want 2", n)
	}
	want := truth.Tables(t, srv, srv.Locations())
	perLoc := map[string]int{}
	for _, r := range want["contacts"] {
		perLoc[r["_location_id"].(string)]++
	}
	for _, p := range plans {
		n := perLoc[p.Location]
		if p.Changed != n || p.Search != n/100+1 || p.FanOut != 3*n || p.Requests != p.Search+p.FanOut+p.Setup || p.Setup != 2 {
			t.Errorf("%s: %+v, want %d contacts", p.Location, p, n)
		}
		if !near(p.PerSecond, 50*(1-extract.RateMargin)) {
			t.Errorf("%s: rate %v", p.Location, p.PerSecond)
		}
		if p.DailyLeft != 1999 || p.DailyReserve != 200 || !p.Covered() {
			t.Errorf("%s: quota %d reserve %d covered %v", p.Location, p.DailyLeft, p.DailyReserve, p.Covered())
		}
		if want := time.Duration(float64(p.Requests) / p.PerSecond * float64(time.Second)); p.Duration != want {
			t.Errorf("%s: duration %v, want %v", p.Location, p.Duration, want)
		}
	}
	// A quota too small for the plan is said so.
	cfg.DailyReserve = extract.Reserve{Requests: 1500}
	out.Reset()
	plans, err = plan(context.Background(), cfg, sources, &out)
	if err != nil {
		t.Fatal(err)
	}
	if plans[0].Covered() || !strings.Contains(out.String(), "NO (~") {
		t.Errorf("quota shortfall not reported:\n%s", out.String())
	}
}

func near(a, b float64) bool { return a > b*0.999 && a < b*1.001 }

package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

// plan and check say which path each location's tasks and appointments
// take: bulk where the token has the optional scopes (fan-out = notes
// only, plus the task pages and event windows), per contact where it has
// not (three requests per contact, as before). check prints one paths line
// per location with what the bulk paths save.
func TestPlanCheckBulkPaths(t *testing.T) {
	locs := sim.New(sim.Config{Locations: 2}).Locations()
	toks := map[string]sim.StaticToken{
		"pit-bulk": {LocationID: locs[0], Scopes: []string{api.ScopeContactsRO, api.ScopeLocationsRO, api.ScopeTasksRO, api.ScopeCalendarsRO, api.ScopeEventsRO}},
		"pit-none": {LocationID: locs[1], Scopes: []string{api.ScopeContactsRO, api.ScopeLocationsRO}},
	}
	srv, base := startSim(t, sim.Config{Seed: 54, Contacts: 400, Locations: 2, StaticTokens: toks})
	sources := map[string]oauth2.TokenSource{
		locs[0]: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "pit-bulk"}),
		locs[1]: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "pit-none"}),
	}
	cfg := defaultConfig()
	cfg.Source, cfg.BaseURL, cfg.Locations, cfg.Warehouse.Path, cfg.PageLimit = "sim", base, locs, filepath.Join(t.TempDir(), "w.duckdb"), 100
	var out bytes.Buffer
	plans, err := plan(context.Background(), cfg, sources, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	for i, p := range plans {
		n := len(srv.Truth(p.Location))
		tasks := 0
		for _, ct := range srv.Truth(p.Location) {
			tasks += len(ct.Tasks)
		}
		if i == 0 {
			if p.Bulk.Tasks != pipeline.PathBulk || p.Bulk.Appointments != pipeline.PathBulk || p.FanOut != n ||
				p.Bulk.TaskPages != tasks/100+1 || p.Bulk.EventRequests != 1+len(sim.Calendars)*p.Bulk.Windows ||
				p.Requests != p.Search+p.FanOut+p.Bulk.TaskPages+p.Bulk.EventRequests+p.Setup || p.Setup != 2 {
				t.Errorf("%s with the bulk scopes: %+v (%d contacts, %d tasks)", p.Location, p, n, tasks)
			}
		} else if p.Bulk.Tasks != pipeline.PathPerContact || p.Bulk.Appointments != pipeline.PathPerContact ||
			p.FanOut != 3*n || p.Requests != p.Search+p.FanOut+p.Setup || p.Setup != 2 {
			t.Errorf("%s without them: %+v", p.Location, p)
		}
	}
	if !strings.Contains(out.String(), "bulk") || !strings.Contains(out.String(), "per-contact") {
		t.Errorf("plan does not name the paths:\n%s", out.String())
	}

	for i, loc := range locs {
		out.Reset()
		c := &checker{ctx: context.Background(), w: &out, cfg: cfg, loc: loc, base: base, version: api.VersionContacts, src: sources[loc]}
		c.run()
		var line string
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, " paths ") {
				if line != "" {
					t.Errorf("two paths lines:\n%s", out.String())
				}
				line = l
			}
		}
		t.Log(line)
		want := []string{"tasks bulk", "appointments bulk", "saving"}
		if i == 1 {
			want = []string{"tasks per-contact", "appointments per-contact", "saves nothing", api.ScopeTasksRO}
		}
		for _, w := range want {
			if !strings.Contains(line, w) {
				t.Errorf("%s: paths line %q lacks %q", loc, line, w)
			}
		}
	}
}

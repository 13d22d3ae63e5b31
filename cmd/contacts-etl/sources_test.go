package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/internal/truth"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

// brokenTokens is a token source whose credentials cannot work.
type brokenTokens struct{}

var errBrokenTokens = errors.New("no refresh token stored")

func (brokenTokens) Token() (*oauth2.Token, error) { return nil, errBrokenTokens }
func (brokenTokens) Usable() error                 { return errBrokenTokens }

// TestSourcesOverlappingIDs exports two simulators whose contact and
// location ids overlap (same seed) into one DuckDB and one Parquet
// warehouse, twice (the second run incremental, after changes to one of
// them): each source equals its own truth and the views count them apart.
// A third source without usable credentials makes the run partial
// without losing the others' commits.
func TestSourcesOverlappingIDs(t *testing.T) {
	for _, kind := range []string{pipeline.WarehouseDuckDB, pipeline.WarehouseParquet} {
		t.Run(kind, func(t *testing.T) {
			srvA, baseA := startSim(t, sim.Config{Seed: 60, Contacts: 300, Locations: 1})
			srvB, baseB := startSim(t, sim.Config{Seed: 60, Contacts: 200, Locations: 1})
			if srvA.Locations()[0] != srvB.Locations()[0] {
				t.Fatalf("locations do not overlap: %v %v", srvA.Locations(), srvB.Locations())
			}
			srvB.Mutate(0.2, 3) // same ids, other values
			ids := map[string]bool{}
			for _, c := range srvA.Truth(srvA.Locations()[0]) {
				ids[c.Contact.ID] = true
			}
			overlap := 0
			for _, c := range srvB.Truth(srvB.Locations()[0]) {
				if ids[c.Contact.ID] {
					overlap++
				}
			}
			if overlap < 100 {
				t.Fatalf("only %d contact ids overlap", overlap)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "w.duckdb")
			if kind == pipeline.WarehouseParquet {
				path = filepath.Join(dir, "w")
			}
			cfg := defaultConfig()
			cfg.Warehouse.Type, cfg.Warehouse.Path = kind, path
			cfg.CommitRows, cfg.BatchRows, cfg.PageLimit = 2000, 700, 100
			cfg.RateMax, cfg.RateInterval = 1_000_000, time.Second
			incTweak(1, nil)(&cfg)
			cfg.Sources = []SourceConfig{
				{Name: "a", BaseURL: baseA, Locations: srvA.Locations()},
				{Name: "b", BaseURL: baseB, Locations: srvB.Locations(), RateMax: 500_000},
				{Name: "broken", BaseURL: baseB, Locations: []string{"nowhere"}},
			}
			if err := cfg.validate(); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			sims := map[string]*sim.Server{"a": srvA, "b": srvB}
			run := func() error {
				var srcs []sourceRun
				for _, sc := range cfg.sourceConfigs() {
					s := sourceRun{cfg: sc, tokens: map[string]oauth2.TokenSource{"nowhere": brokenTokens{}}}
					if srv := sims[sc.Source]; srv != nil {
						var err error
						if s.tokens, err = simTokenSources(ctx, srv, sc.BaseURL, sc.Locations); err != nil {
							t.Fatal(err)
						}
					}
					srcs = append(srcs, s)
				}
				_, err := exportSources(ctx, cfg, "run", srcs, newLogger(io.Discard, "error"))
				return err
			}
			for i := range 2 {
				if i > 0 {
					srvA.Mutate(0.05, 9)
				}
				err := run()
				if !errors.Is(err, pipeline.ErrPartial) || exitCode(err) != exitPartial || !strings.Contains(err.Error(), "source broken") {
					t.Fatalf("run %d: %v (exit %d), want partial naming source broken", i, err, exitCode(err))
				}
			}
			// status goes through every source.
			conf := filepath.Join(dir, "c.yaml")
			writeFile(t, conf, "warehouse: {type: "+kind+", path: "+path+"}\nsources:\n"+
				"  - {name: a, base_url: "+baseA+", locations: ["+srvA.Locations()[0]+"]}\n"+
				"  - {name: b, base_url: "+baseB+", locations: ["+srvB.Locations()[0]+"]}\n")
			code, out := runCLI(t, "status", "--config", conf)
			if code != 0 || !strings.Contains(out, "source a") || !strings.Contains(out, "source b") {
				t.Errorf("status exit %d:\n%s", code, out)
			}
			db, err := openWarehouse(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for name, srv := range sims {
				counts := truth.CompareDB(t, srv, db, name, srv.Locations())
				var want int
				for _, c := range srv.Truth(srv.Locations()[0]) {
					if !c.Deleted {
						want++
					}
				}
				if counts["contacts"] != want {
					t.Errorf("source %s: %d live contacts, want %d", name, counts["contacts"], want)
				}
				var viewContacts, runs int
				if err := db.QueryRow(`SELECT contacts FROM source_summary WHERE _source = ?`, name).Scan(&viewContacts); err != nil || viewContacts != want {
					t.Errorf("source_summary of %s: %d contacts (%v), want %d", name, viewContacts, err, want)
				}
				if err := db.QueryRow(`SELECT count(*) FROM runs WHERE source = ?`, name).Scan(&runs); err != nil || runs != 2 {
					t.Errorf("source %s: %d runs (%v), want 2", name, runs, err)
				}
			}
		})
	}
}

func TestSourcesConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	writeFile(t, path, `
warehouse: {path: `+filepath.Join(dir, "w.duckdb")+`}
auth: {type: static}
rate_max: 50
sources:
  - name: eu
    base_url: https://eu.example.com
    auth: {static_token_env: EU_TOKEN}
    locations: [L1, L2]
    time_zones: {L1: Europe/Paris}
  - name: us
    locations: [L1]
    rate_max: 80
`)
	cfg, err := parseValidConfig("run", []string{"--config", path}, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	scs := cfg.sourceConfigs()
	if len(scs) != 2 || scs[0].Source != "eu" || scs[0].BaseURL != "https://eu.example.com" || scs[0].Auth.StaticTokenEnv != "EU_TOKEN" ||
		scs[0].RateMax != 50 || scs[0].TimeZones["L1"] != "Europe/Paris" ||
		scs[1].Source != "us" || scs[1].Auth.StaticTokenEnv != "CONTACTS_ETL_TOKEN" || scs[1].RateMax != 80 || scs[1].BaseURL != cfg.BaseURL {
		t.Fatalf("source configs %+v", scs)
	}
	writeFile(t, path, `
warehouse: {path: `+filepath.Join(dir, "w.duckdb")+`}
locations: [L9]
sources:
  - {name: eu, locations: [L1]}
  - {name: eu}
`)
	_, err = parseValidConfig("run", []string{"--config", path}, io.Discard, nil)
	for _, want := range []string{"locations and sources are both set", `source "eu" is listed twice`, "source eu: no locations"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

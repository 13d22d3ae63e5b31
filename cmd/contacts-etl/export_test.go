package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

// testExport runs one export of the simulator's locations into path.
func testExport(t *testing.T, srv *sim.Server, base, path string, tweak func(*Config)) (pipeline.Result, error) {
	t.Helper()
	cfg := defaultConfig()
	cfg.Source = "sim"
	cfg.BaseURL = base
	cfg.Locations = srv.Locations()
	cfg.Warehouse.Path = path
	cfg.CommitRows = 2000
	cfg.BatchRows = 700
	cfg.PageLimit = 100
	cfg.RateMax = 1_000_000
	cfg.RateInterval = time.Second
	if tweak != nil {
		tweak(&cfg)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sources, err := simTokenSources(ctx, srv, base, cfg.Locations)
	if err != nil {
		t.Fatal(err)
	}
	return export(ctx, cfg, "run", sources, newLogger(io.Discard, "error"))
}

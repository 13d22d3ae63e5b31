package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/contacts-etl/contacts-etl/internal/truth"

	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// TestParquetWarehouseMatchesTruth exports into Parquet files, twice, and
// reads them back through DuckDB with the views the sink writes.
func TestParquetWarehouseMatchesTruth(t *testing.T) {
	srv, base := startSim(t, sim.Config{Seed: 9, Contacts: 700, Locations: 2, Bad: sim.BadData{WrongTypes: 2, MalformedChildList: 1}})
	dir := filepath.Join(t.TempDir(), "pq")
	for i := 0; i < 2; i++ {
		if _, err := testExport(t, srv, base, dir, func(c *Config) { c.Warehouse.Type = "parquet" }); err != nil {
			t.Fatal(err)
		}
	}
	cfg := defaultConfig()
	cfg.Warehouse.Type, cfg.Warehouse.Path = "parquet", dir
	db, err := openWarehouse(context.Background(), cfg) // as `query` and the demo read it
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if counts := truth.CompareDB(t, srv, db, "sim", srv.Locations()); counts["contacts"] < 690 {
		t.Errorf("contacts %d", counts["contacts"])
	}
	var runs int
	if err := db.QueryRow(`SELECT count(*) FROM runs WHERE outcome = 'ok'`).Scan(&runs); err != nil || runs != 2 {
		t.Errorf("runs %d, %v", runs, err)
	}
}

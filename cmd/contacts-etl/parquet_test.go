package main

import (
	dsql "database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/contacts-etl/contacts-etl/internal/truth"

	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/load"
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
	views, err := os.ReadFile(filepath.Join(dir, load.ParquetViewsFile))
	if err != nil {
		t.Fatal(err)
	}
	db, err := dsql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(string(views)); err != nil {
		t.Fatalf("views.sql: %v", err)
	}
	if counts := truth.CompareDB(t, srv, db, "sim", srv.Locations()); counts["contacts"] < 690 {
		t.Errorf("contacts %d", counts["contacts"])
	}
	var runs int
	if err := db.QueryRow(`SELECT count(*) FROM runs WHERE outcome = 'ok'`).Scan(&runs); err != nil || runs != 2 {
		t.Errorf("runs %d, %v", runs, err)
	}
}

package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/internal/truth"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

// TestRemapAfterMappingChange: a run archived under the built-in mapping,
// remapped under a user mapping (two custom fields as typed columns,
// website renamed homepage), equals a fresh extract under that mapping,
// column for column, with no request to the simulator.
func TestRemapAfterMappingChange(t *testing.T) {
	const userMapping = `tables:
  contacts:
    columns:
      - {name: homepage, was: website, description: "The contact's website."}
      - {name: interest, custom_field: cf0Xk2LmQ9pR7sT4vW1yZ, type: string, description: The Interest custom field.}
      - {name: lifetime_value, custom_field: cf1Xk2LmQ9pR7sT4vW1yZ, type: float, description: The Lifetime value custom field.}
`
	for _, kind := range []string{pipeline.WarehouseDuckDB, pipeline.WarehouseParquet} {
		t.Run(kind, func(t *testing.T) {
			t.Cleanup(func() { _ = useMapping("") })
			srv, base := startSim(t, sim.Config{Seed: 33, Contacts: 150, Locations: 2})
			dir := t.TempDir()
			at := func(name string) string {
				if kind == pipeline.WarehouseParquet {
					return filepath.Join(dir, name)
				}
				return filepath.Join(dir, name+".duckdb")
			}
			archive, mapping := filepath.Join(dir, "archive"), filepath.Join(dir, "mapping.yaml")
			if err := os.WriteFile(mapping, []byte(userMapping), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := testExport(t, srv, base, at("old"), func(c *Config) { c.Archive, c.Warehouse.Type = archive, kind }); err != nil {
				t.Fatal(err)
			}
			if _, err := testExport(t, srv, base, at("fresh"), func(c *Config) { c.Warehouse.Type, c.Mapping = kind, mapping }); err != nil {
				t.Fatal(err)
			}

			cfg := defaultConfig()
			cfg.Source, cfg.Warehouse.Type, cfg.Warehouse.Path, cfg.Archive, cfg.Mapping = "sim", kind, at("old"), archive, mapping
			cfg.BatchRows, cfg.CommitRows = 700, 2000
			if err := useMapping(mapping); err != nil {
				t.Fatal(err)
			}
			before := srv.Stats().Requests
			if _, err := remap(context.Background(), cfg, at("remapped"), newLogger(io.Discard, "error")); err != nil {
				t.Fatal(err)
			}
			if n := srv.Stats().Requests - before; n != 0 {
				t.Errorf("remap made %d requests to the simulator, want 0", n)
			}

			contacts := func(path string) map[string]map[string]any {
				c := cfg
				c.Warehouse.Path = path
				db, err := openWarehouse(context.Background(), c)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				rows := truth.ReadTable(t, db, "contacts", "sim")
				for _, r := range rows {
					for col := range r {
						if strings.HasPrefix(col, "_") && col != "_extra" { // system columns: when and by which run
							delete(r, col)
						}
					}
				}
				return rows
			}
			fresh, remapped := contacts(at("fresh")), contacts(at("remapped"))
			if len(fresh) != 150 || len(remapped) != len(fresh) {
				t.Fatalf("%d contacts remapped, %d extracted fresh, want 150", len(remapped), len(fresh))
			}
			typed := map[string]int{}
			diffs := 0
			for id, want := range fresh {
				got := remapped[id]
				if !reflect.DeepEqual(want, got) && diffs < 5 {
					diffs++
					t.Errorf("contact %s: remapped %v, fresh %v", id, got, want)
				}
				if _, ok := got["website"]; ok {
					t.Fatalf("contact %s still has website after the rename", id)
				}
				for _, col := range []string{"homepage", "interest", "lifetime_value"} {
					if got[col] != nil {
						typed[col]++
					}
				}
			}
			for _, col := range []string{"homepage", "interest", "lifetime_value"} {
				if typed[col] == 0 {
					t.Errorf("no remapped contact has %s: the test would not see a mapping that did nothing", col)
				}
			}
		})
	}
}

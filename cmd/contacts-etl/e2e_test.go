package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contacts-etl/contacts-etl/internal/truth"
	"github.com/contacts-etl/contacts-etl/pipeline"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

func startSim(t *testing.T, cfg sim.Config) (*sim.Server, string) {
	t.Helper()
	srv := sim.New(cfg)
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv, base
}

func TestExportMatchesTruth(t *testing.T) {
	cases := []struct {
		name string
		cfg  sim.Config
	}{
		{"empty", sim.Config{Seed: 1, Contacts: 0, Locations: 2}},
		{"one", sim.Config{Seed: 2, Contacts: 1, Locations: 1}},
		{"exactly-full-pages", sim.Config{Seed: 3, Contacts: 200, Locations: 1}},
		{"several-locations", sim.Config{Seed: 4, Contacts: 1500, Locations: 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, base := startSim(t, c.cfg)
			path := filepath.Join(t.TempDir(), "w.duckdb")
			res, err := testExport(t, srv, base, path, nil)
			if err != nil {
				t.Fatal(err)
			}
			counts := truth.CompareWarehouse(t, srv, path, "sim", srv.Locations())
			if counts["contacts"] != c.cfg.Contacts {
				t.Errorf("contacts %d, want %d", counts["contacts"], c.cfg.Contacts)
			}
			if c.cfg.Contacts > 0 && (counts["tasks"] == 0 || counts["notes"] == 0 || counts["appointments"] == 0) && c.cfg.Contacts > 100 {
				t.Errorf("no children loaded: %v", counts)
			}
			// Request economy: one search page per 100 contacts (plus the
			// empty or short last one) and three children requests each.
			st := srv.Stats()
			if want := int64(3 * c.cfg.Contacts); st.ByKind["tasks"]+st.ByKind["notes"]+st.ByKind["appointments"] != want {
				t.Errorf("child requests %v, want %d", st.ByKind, want)
			}
			var api int64
			for _, n := range st.ByLocation {
				api += n
			}
			if res.Requests != api {
				t.Errorf("client counted %d requests, server saw %d API requests", res.Requests, api)
			}
		})
	}
}

func TestRerunIsIdempotent(t *testing.T) {
	srv, base := startSim(t, sim.Config{Seed: 5, Contacts: 400, Locations: 2})
	path := filepath.Join(t.TempDir(), "w.duckdb")
	for i := 0; i < 2; i++ {
		if _, err := testExport(t, srv, base, path, nil); err != nil {
			t.Fatal(err)
		}
	}
	truth.CompareWarehouse(t, srv, path, "sim", srv.Locations())
	db := truth.OpenRO(t, path)
	defer db.Close()
	var runs, ok int
	if err := db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE outcome = 'ok') FROM runs`).Scan(&runs, &ok); err != nil {
		t.Fatal(err)
	}
	if runs != 2 || ok != 2 {
		t.Fatalf("runs %d ok %d, want 2 and 2", runs, ok)
	}
}

// TestAnotherProcessReadsWarehouse opens the warehouse from a child process,
// read-only, after a run: the exporter must not hold it open.
func TestAnotherProcessReadsWarehouse(t *testing.T) {
	if p := os.Getenv("CETL_READ_WAREHOUSE"); p != "" {
		return // the child's work is done in TestMain
	}
	srv, base := startSim(t, sim.Config{Seed: 6, Contacts: 300, Locations: 1})
	path := filepath.Join(t.TempDir(), "w.duckdb")
	if _, err := testExport(t, srv, base, path, nil); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), "CETL_READ_WAREHOUSE="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, table := range []string{"contacts", "tasks", "notes", "appointments", "rejects", "runs"} {
		if !strings.Contains(string(out), "table "+table+" ") {
			t.Errorf("child did not see table %s:\n%s", table, out)
		}
	}
	if !strings.Contains(string(out), "table contacts 300\n") {
		t.Errorf("child saw wrong contact count:\n%s", out)
	}
}

func TestMain(m *testing.M) {
	if p := os.Getenv("CETL_READ_WAREHOUSE"); p != "" {
		os.Exit(readWarehouseChild(p))
	}
	os.Exit(m.Run())
}

func readWarehouseChild(path string) int {
	cfg := defaultConfig()
	cfg.Warehouse.Path = path
	db, err := openWarehouse(context.Background(), cfg)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	defer db.Close()
	for _, table := range []string{"contacts", "tasks", "notes", "appointments", "rejects", "runs"} {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
			fmt.Println("count:", err)
			return 1
		}
		fmt.Printf("table %s %d\n", table, n)
	}
	return 0
}

func TestBadInputIsRejectedNotFatal(t *testing.T) {
	srv, base := startSim(t, sim.Config{Seed: 7, Contacts: 600, Locations: 2, Bad: sim.BadData{
		WrongTypes: 4, InvalidUTF8: 4, HugeNote: true, MalformedChildList: 3, MissingID: 3,
	}})
	if n := len(srv.ExpectedRejects()); n < 10 {
		t.Fatalf("simulator spoilt only %d records", n)
	}
	path := filepath.Join(t.TempDir(), "w.duckdb")
	res, err := testExport(t, srv, base, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var whole, fields int64
	for _, b := range srv.ExpectedRejects() {
		if b.Whole() {
			whole++
		}
	}
	for _, f := range srv.ExpectedFieldRejects() {
		fields += int64(len(f.Fields))
	}
	if res.Rows["rejects"] != whole || res.Rows["field_rejects"] < fields || whole == 0 || fields == 0 {
		t.Errorf("rejects %d (want %d whole), field rejects %d (want at least %d)", res.Rows["rejects"], whole, res.Rows["field_rejects"], fields)
	}
	truth.CompareWarehouse(t, srv, path, "sim", srv.Locations())
	db := truth.OpenRO(t, path)
	defer db.Close()
	var longest int
	if err := db.QueryRow(`SELECT max(strlen(content)) FROM notes`).Scan(&longest); err != nil {
		t.Fatal(err)
	}
	if longest < 10<<20 {
		t.Errorf("the 10 MB note did not land: longest %d", longest)
	}
}

func TestStuckCursorStopsWithClearErrorKeepingRows(t *testing.T) {
	srv, base := startSim(t, sim.Config{Seed: 8, Contacts: 1000, Locations: 1, Bad: sim.BadData{SearchStuckAtPage: 4}})
	path := filepath.Join(t.TempDir(), "w.duckdb")
	_, err := testExport(t, srv, base, path, nil)
	if !errors.Is(err, extract.ErrCursorStuck) || !errors.Is(err, pipeline.ErrPartial) {
		t.Fatalf("err = %v, want a partial run stopped by ErrCursorStuck (exit 3)", err)
	}
	db := truth.OpenRO(t, path)
	defer db.Close()
	var contacts int
	var outcome, msg string
	if err := db.QueryRow(`SELECT count(*) FROM contacts`).Scan(&contacts); err != nil {
		t.Fatal(err)
	}
	if contacts != 300 {
		t.Errorf("contacts kept %d, want the 3 good pages (300)", contacts)
	}
	if err := db.QueryRow(`SELECT outcome, error FROM runs`).Scan(&outcome, &msg); err != nil {
		t.Fatal(err)
	}
	if outcome != "partial" || !strings.Contains(msg, "cursor did not advance") {
		t.Errorf("run row: %s %q", outcome, msg)
	}
}

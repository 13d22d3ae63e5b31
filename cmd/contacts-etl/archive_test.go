package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/internal/truth"
	"github.com/contacts-etl/contacts-etl/load"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

// TestArchiveRemapEqualsExtract archives two runs (a first load, then an
// incremental run over updates, adds and deletes, with odd data),
// then remaps the archive into a fresh warehouse: it must equal both the
// simulator's truth and the extracted warehouse, row for row and state
// for state, with no request to the simulator.
func TestArchiveRemapEqualsExtract(t *testing.T) {
	for _, kind := range []string{pipeline.WarehouseDuckDB, pipeline.WarehouseParquet} {
		t.Run(kind, func(t *testing.T) {
			const contacts = 400
			srv, base := startSim(t, sim.Config{Seed: 31, Contacts: contacts, Locations: 2,
				Bad: sim.BadData{WrongTypes: 2, MalformedChildList: 1}})
			dir := t.TempDir()
			path, out := filepath.Join(dir, "w.duckdb"), filepath.Join(dir, "remapped.duckdb")
			if kind == pipeline.WarehouseParquet {
				path, out = filepath.Join(dir, "w"), filepath.Join(dir, "remapped")
			}
			archive := filepath.Join(dir, "archive")
			tweak := incTweak(1, func(c *Config) { c.Archive, c.Warehouse.Type = archive, kind })
			var extractTook time.Duration
			for i := range 2 {
				if i > 0 {
					srv.Mutate(0.05, int64(40+i))
				}
				res, err := testExport(t, srv, base, path, tweak)
				if err != nil {
					t.Fatalf("run %d: %v", i, err)
				}
				extractTook += res.Duration
				if i == 0 {
					t.Logf("archive after the first load: %d bytes per 1,000 contacts (with children and request metadata)", dirSize(t, archive)*1000/contacts)
				}
			}
			cfg := defaultConfig()
			cfg.Source, cfg.Warehouse.Type, cfg.Warehouse.Path, cfg.Archive = "sim", kind, path, archive
			cfg.BatchRows, cfg.CommitRows = 700, 2000
			wantT, wantS := snapshot(t, srv, cfg)

			before := srv.Stats().Requests
			res, err := remap(context.Background(), cfg, out, newLogger(io.Discard, "error"))
			if err != nil {
				t.Fatal(err)
			}
			if n := srv.Stats().Requests - before; n != 0 {
				t.Errorf("remap made %d requests to the simulator, want 0", n)
			}
			if res.Runs != 2 || res.Records == 0 || res.Requests == 0 {
				t.Errorf("remap result %+v", res)
			}
			t.Logf("remap %s of 2 runs (%d records, %d archived requests, %d commits); the extracts took %s", res.Duration.Round(time.Millisecond),
				res.Records, res.Requests, res.Commits, extractTook.Round(time.Millisecond))
			rcfg := cfg
			rcfg.Warehouse.Path = out
			gotT, gotS := snapshot(t, srv, rcfg)
			sameSnapshots(t, wantT, gotT, wantS, gotS)
			assertArchiveClean(t, archive)
		})
	}
}

// TestRemapInPlaceAndUnarchivedRun: a remap refuses a warehouse with a run
// the archive lacks, naming it; in place, it replaces the warehouse with
// the rebuilt one.
func TestRemapInPlaceAndUnarchivedRun(t *testing.T) {
	srv, base := startSim(t, sim.Config{Seed: 32, Contacts: 250, Locations: 1})
	dir := t.TempDir()
	path, archive := filepath.Join(dir, "w.duckdb"), filepath.Join(dir, "archive")
	cfg := defaultConfig()
	cfg.Source, cfg.Warehouse.Path, cfg.Archive = "sim", path, archive
	ctx, log := context.Background(), newLogger(io.Discard, "error")

	if _, err := testExport(t, srv, base, path, incTweak(1, nil)); err != nil { // not archived
		t.Fatal(err)
	}
	first := lastRunID(t, path)
	srv.Mutate(0.05, 5)
	if _, err := testExport(t, srv, base, path, incTweak(1, func(c *Config) { c.Archive = archive })); err != nil {
		t.Fatal(err)
	}
	_, err := remap(ctx, cfg, "", log)
	if !errors.Is(err, pipeline.ErrNotArchived) || !strings.Contains(err.Error(), first) {
		t.Fatalf("remap with an unarchived first run: %v, want ErrNotArchived naming %s", err, first)
	}
	if _, err := os.Stat(path + ".remap"); err == nil {
		t.Error("a refused remap left a warehouse behind")
	}

	// A fresh warehouse whose every run is archived is rebuilt in place.
	path2 := filepath.Join(dir, "w2.duckdb")
	archive2 := filepath.Join(dir, "archive2")
	for i := range 2 {
		if i > 0 {
			srv.Mutate(0.05, 6)
		}
		if _, err := testExport(t, srv, base, path2, incTweak(1, func(c *Config) { c.Archive = archive2 })); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Warehouse.Path, cfg.Archive = path2, archive2
	code, outText := runCLI(t, "remap", "--warehouse", path2, "--archive", archive2, "--source", "sim", "--log-level", "error")
	if code != 0 {
		t.Fatalf("remap exit %d: %s", code, outText)
	}
	truth.CompareWarehouse(t, srv, path2, "sim", srv.Locations())
	if _, err := os.Stat(path2 + ".remap"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the rebuilt copy is still beside the warehouse: %v", err)
	}
}

func lastRunID(t *testing.T, path string) string {
	t.Helper()
	db := truth.OpenRO(t, path)
	defer db.Close()
	var id string
	if err := db.QueryRow(`SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// snapshot reads the tables of a warehouse (deletion as a flag: its time
// is the clock's, and so is _changed_at when the deletion set it) and its
// state per location.
func snapshot(t *testing.T, srv *sim.Server, cfg Config) (map[string]map[string]map[string]any, []load.LocationStatus) {
	t.Helper()
	ctx := context.Background()
	db, err := openWarehouse(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	truth.CompareDB(t, srv, db, cfg.Source, srv.Locations())
	tables := map[string]map[string]map[string]any{}
	for _, table := range []string{"contacts", "tasks", "notes", "appointments"} {
		rows := truth.ReadTable(t, db, table, cfg.Source)
		tables[table] = map[string]map[string]any{}
		for id, r := range rows {
			if del, ok := r["_deleted_at"].(time.Time); ok {
				if ch, ok := r["_changed_at"].(time.Time); ok && ch.Equal(del) {
					r["_changed_at"] = "when deleted"
				}
			}
			r["_deleted_at"] = r["_deleted_at"] != nil
			tables[table][id] = r
		}
	}
	db.Close()
	sink, err := pipeline.OpenSink(cfg.Warehouse.Type, cfg.Warehouse.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(ctx)
	st, err := sink.Status(ctx, cfg.Source)
	if err != nil {
		t.Fatal(err)
	}
	for i := range st.Locations {
		l := &st.Locations[i]
		l.OldestSweep, l.Retries = time.Time{}, nil // the clock's times
		for k := range l.Windows {
			l.Windows[k].Cursor = strings.ReplaceAll(l.Windows[k].Cursor, " ", "")
		}
	}
	return tables, st.Locations
}

func sameSnapshots(t *testing.T, wantT, gotT map[string]map[string]map[string]any, wantS, gotS []load.LocationStatus) {
	t.Helper()
	for table, want := range wantT {
		got := gotT[table]
		if len(got) != len(want) {
			t.Errorf("%s: %d rows remapped, %d extracted", table, len(got), len(want))
		}
		diffs := 0
		for id, w := range want {
			if g := got[id]; !reflect.DeepEqual(w, g) && diffs < 5 {
				diffs++
				t.Errorf("%s %s: remapped %v, extracted %v", table, id, g, w)
			}
		}
	}
	if !reflect.DeepEqual(wantS, gotS) {
		t.Errorf("state differs:\nremapped  %+v\nextracted %+v", gotS, wantS)
	}
}

// assertArchiveClean decompresses every archive file: no token, secret
// or Authorization header.
func assertArchiveClean(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	if len(files) == 0 {
		t.Fatal("no archive files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".zst") {
			d, _ := zstd.NewReader(bytes.NewReader(b))
			b, err = io.ReadAll(d)
			d.Close()
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
		for _, s := range []string{"Authorization", "Bearer", "access_token", "refresh_token", sim.DefaultClientSecret} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q", f, s)
			}
		}
	}
}

func dirSize(t *testing.T, dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/contacts-etl/contacts-etl/load"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

// cmdRemap rebuilds the warehouse's tables from the raw archive, with this
// build's mapping, making no API request.
func cmdRemap(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var out string
	cfg, err := parseRunFlags("remap", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "out", "", "build a new warehouse here instead of replacing --warehouse (which then is only read, to check that the archive holds all its runs)")
	})
	if err != nil {
		return err
	}
	if cfg.Archive == "" {
		return usageError{errors.New("remap needs the archive: set archive in the config or --archive")}
	}
	log := newLogger(stderr, cfg.LogLevel)
	res, err := remap(ctx, cfg, out, log)
	if err != nil {
		return err
	}
	target := cfg.Warehouse.Path
	if out != "" {
		target = out
	}
	fmt.Fprintf(stdout, "warehouse  %s (%s), rebuilt from %s\n", target, cfg.Warehouse.Type, cfg.Archive)
	fmt.Fprintf(stdout, "runs       %d replayed (%d archived records; the runs made %d API requests, the remap none)\n", res.Runs, res.Records, res.Requests)
	for _, t := range []string{"contacts", "tasks", "notes", "appointments", "rejects", "field_rejects"} {
		fmt.Fprintf(stdout, "  %-13s %9d rows\n", t, res.Rows[t])
	}
	fmt.Fprintf(stdout, "commits    %d\nduration   %s\n", res.Commits, res.Duration.Round(time.Millisecond))
	return nil
}

// remap rebuilds cfg's warehouse from cfg.Archive into out, or, when out
// is "", into a fresh warehouse beside it that then replaces it, under the
// run lock. It refuses when the warehouse has a run the archive lacks.
func remap(ctx context.Context, cfg Config, out string, log *slog.Logger) (pipeline.RemapResult, error) {
	var res pipeline.RemapResult
	runs, err := pipeline.ReadArchive(cfg.Archive)
	if err != nil {
		return res, err
	}
	if len(runs) == 0 {
		return res, fmt.Errorf("archive %s holds no run", cfg.Archive)
	}
	exists := false
	if _, err := os.Stat(cfg.Warehouse.Path); err == nil {
		exists = true
	}
	if exists {
		unlock, err := pipeline.Lock(ctx, cfg.Warehouse.Type, cfg.Warehouse.Path, cfg.Incremental.Wait, log)
		if err != nil {
			return res, err
		}
		defer unlock()
		ids, err := warehouseRuns(ctx, cfg)
		if err != nil {
			return res, fmt.Errorf("read the warehouse's runs: %w", err)
		}
		if err := pipeline.CheckArchived(runs, ids); err != nil {
			return res, err
		}
	}
	target := out
	if out == "" {
		target = cfg.Warehouse.Path + ".remap"
		if err := removeWarehouse(cfg.Warehouse.Type, target); err != nil {
			return res, err
		}
	} else if _, err := os.Stat(out); err == nil {
		return res, usageError{fmt.Errorf("--out %s exists: remap builds a fresh warehouse", out)}
	}
	if cfg.Warehouse.Type == pipeline.WarehouseParquet {
		if err := os.MkdirAll(target, 0o755); err != nil {
			return res, err
		}
	}
	sink, err := pipeline.OpenSink(cfg.Warehouse.Type, target, load.WithLogger(log))
	if err != nil {
		return res, usageError{err}
	}
	// The transform a run of this build would use: a mapping change made
	// for runs applies to the remap as well.
	tc := pipeline.NewJob(cfg.settings("remap", time.UTC), nil, sink, log).Transform
	res, err = pipeline.Remap(ctx, pipeline.RemapJob{Runs: runs, Sink: sink, Transform: tc, CommitRows: cfg.CommitRows, Log: log})
	if cerr := sink.Close(context.WithoutCancel(ctx)); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil || out != "" {
		return res, err
	}
	return res, replaceWarehouse(cfg.Warehouse.Type, target, cfg.Warehouse.Path, exists)
}

// warehouseRuns are the ids of the warehouse's runs, in the order they
// started.
func warehouseRuns(ctx context.Context, cfg Config) ([]string, error) {
	db, err := openWarehouse(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT run_id FROM runs ORDER BY started_at, run_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// replaceWarehouse moves the rebuilt warehouse over the old one: one
// rename for a DuckDB file (atomic); for a Parquet folder the old one is
// moved aside first, then removed.
func replaceWarehouse(kind, built, path string, exists bool) error {
	if kind != pipeline.WarehouseParquet || !exists {
		if err := os.Rename(built, path); err != nil {
			return err
		}
		_ = os.Remove(path + ".wal") // the old file's, if any
		return nil
	}
	old := path + ".before-remap"
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := os.Rename(path, old); err != nil {
		return err
	}
	if err := os.Rename(built, path); err != nil {
		return errors.Join(err, os.Rename(old, path))
	}
	return os.RemoveAll(old)
}

// removeWarehouse removes a leftover of an interrupted remap.
func removeWarehouse(kind, path string) error {
	if kind == pipeline.WarehouseParquet {
		return os.RemoveAll(path)
	}
	for _, p := range []string{path, path + ".wal", path + ".lock"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

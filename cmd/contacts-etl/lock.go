package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// errLocked reports that another run holds the warehouse's run lock; the
// command exits with exitLocked.
var errLocked = errors.New("another run holds the warehouse")

// lockPath is the run lock of a warehouse: a file beside it (DuckDB) or in
// it (a Parquet directory).
func lockPath(cfg Config) string {
	if cfg.Warehouse.Type == "parquet" {
		return filepath.Join(cfg.Warehouse.Path, ".contacts-etl.lock")
	}
	return cfg.Warehouse.Path + ".lock"
}

// lockWarehouse takes the run lock so that two runs never write one
// warehouse at once. Without wait it fails at once with errLocked when the
// lock is held; with wait it retries until ctx ends. The lock is an flock on
// a separate file, so it is released by the kernel when the process dies.
func lockWarehouse(ctx context.Context, cfg Config, wait bool) (unlock func(), err error) {
	p := lockPath(cfg)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("run lock: %w", err)
	}
	fl := flock.New(p)
	var ok bool
	if wait {
		ok, err = fl.TryLockContext(ctx, 250*time.Millisecond)
	} else {
		ok, err = fl.TryLock()
	}
	if err != nil {
		return nil, fmt.Errorf("run lock %s: %w", p, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w %s (lock file %s); try again later or pass --wait", errLocked, cfg.Warehouse.Path, p)
	}
	return func() { _ = fl.Unlock() }, nil
}

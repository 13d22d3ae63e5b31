package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// ErrLocked reports that another run holds the warehouse's run lock.
var ErrLocked = errors.New("another run holds the warehouse")

// lockPoll is how often a waiting Lock tries again; lockSay how often it
// says what it waits for.
const (
	lockPoll = 250 * time.Millisecond
	lockSay  = 5 * time.Second
)

// LockPath is the run lock of a warehouse: a file beside it (DuckDB) or in
// it (a Parquet directory).
func LockPath(kind, path string) string {
	if kind == WarehouseParquet {
		return filepath.Join(path, ".contacts-etl.lock")
	}
	return path + ".lock"
}

// Lock takes the run lock so that two runs (or a run and a push or a
// webhook apply) never write one warehouse at once. Without wait it fails
// at once with ErrLocked when the lock is held; with wait it retries until
// ctx ends, logging every few seconds what it waits for. The lock is an
// flock on a separate file, released by the kernel when the process dies.
// The warehouse's folder must exist: Lock creates no folders.
func Lock(ctx context.Context, kind, path string, wait bool, log *slog.Logger) (unlock func(), err error) {
	p := LockPath(kind, path)
	if st, err := os.Stat(filepath.Dir(p)); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("run lock: folder %s does not exist", filepath.Dir(p))
	}
	fl := flock.New(p)
	ok, err := fl.TryLock()
	if err == nil && !ok && wait {
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		began := time.Now()
		log.Info("waiting for the warehouse's run lock (another run holds it)", "lock", p)
		tick := time.NewTicker(lockPoll)
		defer tick.Stop()
		last := began
		for !ok && err == nil {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("run lock %s: %w", p, ctx.Err())
			case now := <-tick.C:
				ok, err = fl.TryLock()
				if !ok && now.Sub(last) >= lockSay {
					last = now
					log.Info("still waiting for the warehouse's run lock", "lock", p, "waited", now.Sub(began).Round(time.Second))
				}
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("run lock %s: %w", p, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w %s (lock file %s); try again later or pass --wait", ErrLocked, path, p)
	}
	return func() { _ = fl.Unlock() }, nil
}

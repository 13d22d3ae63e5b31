package load

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ErrLocked reports that another process held the warehouse file for longer
// than the sink's lock timeout.
var ErrLocked = errors.New("warehouse file is locked by another process")

// files serialises the use of one warehouse file within this process: DuckDB
// would open the same file twice as two independent databases.
var files = struct {
	sync.Mutex
	m map[string]chan struct{}
}{m: map[string]chan struct{}{}}

// acquireFile waits until no other sink in this process has path open.
func acquireFile(ctx context.Context, path string) (release func(), err error) {
	files.Lock()
	ch, ok := files.m[path]
	if !ok {
		ch = make(chan struct{}, 1)
		files.m[path] = ch
	}
	files.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for %s in this process: %w", path, ctx.Err())
	}
}

func absPath(path string) (string, error) {
	p, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("warehouse path %q: %w", path, err)
	}
	return filepath.Clean(p), nil
}

// lockSayEvery is how often a wait for the warehouse file is logged.
const lockSayEvery = 5 * time.Second

// retryLocked calls open until it succeeds, fails for a reason other than a
// lock held by another process, or timeout passes. Backoff doubles from 50 ms
// to 2 s with jitter.
// While it waits it logs, at once and then every lockSayEvery, who holds
// the file.
func retryLocked(ctx context.Context, path string, timeout time.Duration, log *slog.Logger, open func() error) error {
	began := time.Now()
	deadline := began.Add(timeout)
	var said time.Time
	wait := 50 * time.Millisecond
	retriedUnlocked := false
	for {
		err := open()
		if err == nil {
			return nil
		}
		pid, locked := lockHolder(path)
		if !locked {
			// The holder may have let go between the two calls: one more try.
			if retriedUnlocked {
				return err
			}
			retriedUnlocked = true
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("open %s: held by process %d for more than %s: %w (%v)", path, pid, timeout, ErrLocked, err)
		}
		if log != nil && time.Since(said) >= lockSayEvery {
			said = time.Now()
			log.Info("waiting for the warehouse file: another process holds it (an analyst's DuckDB?)",
				"file", path, "pid", pid, "waited", said.Sub(began).Round(time.Second), "gives up in", time.Until(deadline).Round(time.Second))
		}
		d := wait/2 + rand.N(wait/2+1)
		if rem := time.Until(deadline); d > rem {
			d = max(rem, time.Millisecond)
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("open %s (locked by process %d): %w", path, pid, ctx.Err())
		}
		wait = min(wait*2, 2*time.Second)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

// cmdBackfill reads [--from, --to) of dateUpdated window by window
// (concurrently across locations), records each window in the ledger
// without moving the incremental watermark, and skips the windows the
// ledger has done, so re-running the same command after a crash continues
// where it stopped.
func cmdBackfill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var from, to string
	var resources []string
	var window time.Duration
	var redo bool
	var rf reportFlags
	cfg, err := parseRunFlags("backfill", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&from, "from", "", "start of the range, inclusive (RFC 3339 or YYYY-MM-DD)")
		fs.StringVar(&to, "to", "", "end of the range, exclusive (RFC 3339 or YYYY-MM-DD)")
		fs.Var(listFlag{&resources}, "resources", "resources to read: contacts,tasks,notes,appointments (default all)")
		fs.DurationVar(&window, "window", pipeline.DefaultBackfillWindow, "window size: the unit of the ledger and of resumption")
		fs.BoolVar(&redo, "redo", false, "re-read windows the ledger already has done")
		rf.register(fs)
	})
	if err != nil {
		return err
	}
	inc := &cfg.Incremental
	inc.backfill, inc.backfillWindow, inc.redo = true, window, redo
	if inc.from, err = parseWhen(from); err != nil {
		return usageError{fmt.Errorf("--from: %w", err)}
	}
	if inc.to, err = parseWhen(to); err != nil {
		return usageError{fmt.Errorf("--to: %w", err)}
	}
	if resources != nil {
		var kids []string
		for _, r := range resources {
			switch {
			case r == "contacts":
			case slices.Contains(extract.ChildResources, r):
				kids = append(kids, r)
			default:
				return usageError{fmt.Errorf("unknown resource %q", r)}
			}
		}
		cfg.Children = kids
	}
	if err := cfg.validate(); err != nil {
		return usageError{err}
	}
	return exportReported(ctx, cfg, "backfill", rf, stdout, stderr)
}

func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("required")
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not RFC 3339 or YYYY-MM-DD", s)
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/contacts-etl/contacts-etl/pipeline"
)

// Incremental configures what a scheduled run reads besides new data.
type Incremental struct {
	// Lookback is re-read before the watermark: the search lags by seconds
	// and source clocks drift.
	Lookback time.Duration `yaml:"lookback"`
	// SweepRuns: the children of every unchanged contact are re-read once
	// every SweepRuns runs, a slice each run (0 = no sweep).
	SweepRuns int `yaml:"sweep_runs"`
	// ReconcileEvery is the cadence of the id-only reconciliation that finds
	// deletes (0 = every run, negative = never).
	ReconcileEvery time.Duration `yaml:"reconcile_every"`
	// Wait for another run's lock instead of exiting with code 4.
	Wait bool `yaml:"wait"`
	// RetryRejects: contacts with rejected records are read again by id in
	// up to this many later runs (0: never).
	RetryRejects int `yaml:"retry_rejects"`
	// Full reads every contact in the windows and its children even when the
	// warehouse already has it at the same dateUpdated.
	Full bool `yaml:"full"`

	backfill       bool
	from, to       time.Time
	backfillWindow time.Duration
	redo           bool
}

func defaultIncremental() Incremental {
	d := pipeline.DefaultOptions()
	return Incremental{Lookback: d.Lookback, SweepRuns: d.SweepRuns, ReconcileEvery: d.ReconcileEvery, backfillWindow: d.Window,
		RetryRejects: d.RetryAttempts}
}

func registerIncrementalFlags(fs *flag.FlagSet, c *Incremental) {
	fs.DurationVar(&c.Lookback, "lookback", c.Lookback, "re-read this much before the watermark (search lag, clock skew)")
	fs.IntVar(&c.SweepRuns, "sweep-runs", c.SweepRuns, "re-read the children of all unchanged contacts once every N runs, a slice per run (0: no sweep)")
	fs.Var(signedDuration{&c.ReconcileEvery}, "reconcile-every", "cadence of the id-only reconciliation that finds deletes, e.g. 24h (0: every run, negative such as -1: never)")
	fs.IntVar(&c.RetryRejects, "retry-rejects", c.RetryRejects, "read contacts whose records were rejected (whole or in part) again by id in up to N later runs (0: never)")
	fs.BoolVar(&c.Wait, "wait", c.Wait, "wait for another run holding the warehouse instead of exiting with code 4")
	fs.BoolVar(&c.Full, "full", c.Full, "full refresh: re-read every contact from the start and its children, also those the warehouse has at the same dateUpdated")
}

func (c Incremental) validate() error {
	var errs []error
	if c.Lookback < 0 {
		errs = append(errs, errors.New("lookback must not be negative"))
	}
	if c.RetryRejects < 0 {
		errs = append(errs, errors.New("retry rejects must not be negative"))
	}
	if c.SweepRuns < 0 {
		errs = append(errs, errors.New("sweep runs must not be negative"))
	}
	if c.backfill {
		if c.from.IsZero() || c.to.IsZero() || !c.from.Before(c.to) {
			errs = append(errs, errors.New("backfill needs --from before --to"))
		}
		if c.backfillWindow <= 0 {
			errs = append(errs, errors.New("backfill window must be positive"))
		}
	}
	return errors.Join(errs...)
}

func (c Incremental) options() pipeline.Options {
	return pipeline.Options{Backfill: c.backfill, From: c.from.UTC(), To: c.to.UTC(), Window: c.backfillWindow, Redo: c.redo,
		Full: c.Full, Lookback: c.Lookback, SweepRuns: c.SweepRuns, ReconcileEvery: c.ReconcileEvery, RetryAttempts: c.RetryRejects}
}

// signedDuration is a duration flag that also takes a bare number of
// seconds, so that "-1" (never) is accepted as the help says.
type signedDuration struct{ p *time.Duration }

func (d signedDuration) String() string {
	if d.p == nil {
		return "0s"
	}
	return d.p.String()
}

func (d signedDuration) Set(s string) error {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*d.p = time.Duration(n) * time.Second
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 24h, 0, -1)", s)
	}
	*d.p = v
	return nil
}

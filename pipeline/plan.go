package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/load"
)

// Defaults of Options.
const (
	DefaultLookback       = 10 * time.Minute
	DefaultSweepRuns      = 24
	DefaultReconcileEvery = 0 // every run: one request per 500 contacts
	DefaultBackfillWindow = 7 * 24 * time.Hour
	DefaultRetryAttempts  = 3
)

// epoch is where the first window of a location starts.
var epoch = time.Unix(0, 0).UTC()

// Options say which windows a run reads and what else it does.
type Options struct {
	// Backfill reads [From, To) in windows of Window, skipping windows the
	// ledger has done unless Redo; it never moves the watermark.
	Backfill bool
	From, To time.Time
	Window   time.Duration
	Redo     bool
	// Full reads every contact from the epoch, and its children, even when
	// the warehouse has it at the same dateUpdated (a full refresh; the
	// watermark still advances).
	Full bool
	// Lookback is re-read before the watermark: the search lags by seconds
	// and source clocks drift.
	Lookback time.Duration
	// SweepRuns: the children of every unchanged contact are re-read once
	// every SweepRuns runs, a slice each run (0: no sweep).
	SweepRuns int
	// ReconcileEvery is the cadence of the id-only reconciliation that
	// finds deletes (0: every run, negative: never).
	ReconcileEvery time.Duration
	// TargetsOnly reads each location's Targets by id and nothing else
	// (a webhook apply, a push's read-back): no windows, no watermark, no
	// sweep, no reconciliation.
	TargetsOnly bool
	// RetryAttempts bounds how often a contact whose record (or a child's)
	// was rejected, whole or in part, is read again by id in the next
	// runs (0: never). Records without a usable id cannot be read again.
	RetryAttempts int
}

// DefaultOptions are a scheduled incremental run's options.
func DefaultOptions() Options {
	return Options{Lookback: DefaultLookback, SweepRuns: DefaultSweepRuns, ReconcileEvery: DefaultReconcileEvery,
		Window: DefaultBackfillWindow, RetryAttempts: DefaultRetryAttempts}
}

// Window is a ledger window a location's pipeline reads.
type Window struct {
	load.Window
	// After is the cursor to resume after (nil: from the window's start).
	After []any
}

// PlanWindows decides the contact windows one location reads, from the
// state earlier runs committed (st), the run (its id, source and start
// time, which is "now") and the options. It is a pure function.
//
// A run resumes every open run window an earlier run left, from its
// committed cursor, then reads [watermark − lookback, run start) — from the
// epoch when there is no watermark, or with Full. A backfill splits [From, To) into
// windows of Window and leaves out those the ledger has done, unless Redo.
// The returned watermark is the location's current one (zero: none).
func PlanWindows(st *load.State, run load.Run, location string, opt Options) ([]*Window, time.Time, error) {
	src, res := run.Source, api.ResourceContacts
	var wm time.Time
	ledger := map[time.Time]load.Window{}
	if st != nil {
		for _, w := range st.Watermarks {
			if w.LocationID == location && w.Resource == res {
				wm = w.Value
			}
		}
		for _, w := range st.Windows {
			if w.LocationID == location && w.Resource == res {
				ledger[w.Start] = w
			}
		}
	}
	mk := func(start, end time.Time, kind string) (*Window, error) {
		nw := &Window{Window: load.Window{Source: src, LocationID: location, Resource: res, Start: start, End: end,
			Status: "open", RunID: run.ID, Kind: kind}}
		if old, ok := ledger[start]; ok && old.Status == "open" && old.End.Equal(end) && old.Cursor != "" {
			after, err := decodeCursor(old.Cursor)
			if err != nil {
				return nil, fmt.Errorf("window %s: %w", start.Format(time.RFC3339), err)
			}
			nw.After, nw.Cursor = after, old.Cursor
		}
		return nw, nil
	}
	var out []*Window
	if opt.Backfill {
		if opt.Window <= 0 {
			return nil, wm, fmt.Errorf("backfill window must be positive")
		}
		for s := opt.From.UTC(); s.Before(opt.To); s = s.Add(opt.Window) {
			e := minTime(s.Add(opt.Window), opt.To.UTC())
			if old, ok := ledger[s]; ok && old.Status == "done" && old.End.Equal(e) && !opt.Redo {
				continue
			}
			w, err := mk(s, e, KindBackfill)
			if err != nil {
				return nil, wm, err
			}
			out = append(out, w)
		}
		return out, wm, nil
	}
	expect := wm
	if st != nil {
		for _, old := range st.Windows {
			if old.LocationID != location || old.Resource != res || old.Status != "open" || old.Kind != KindRun {
				continue
			}
			w, err := mk(old.Start, old.End, KindRun)
			if err != nil {
				return nil, wm, err
			}
			out = append(out, w)
			expect = maxTime(expect, old.End.Add(-opt.Lookback))
		}
	}
	start := epoch
	if !expect.IsZero() && !opt.Full {
		start = maxTime(epoch, expect.Add(-opt.Lookback))
	}
	if end := run.StartedAt.UTC(); start.Before(end) {
		if _, dup := ledger[start]; !dup || ledger[start].Kind == KindRun {
			w, err := mk(start, end, KindRun)
			if err != nil {
				return nil, wm, err
			}
			if len(out) == 0 || !out[len(out)-1].Start.Equal(start) {
				out = append(out, w)
			}
		}
	}
	return out, wm, nil
}

// windowQuery is the search of window w. A run reads past its window's
// end: rows a source clock running ahead dated in our future are merged
// now, not after our clock catches up. Other windows read their range.
func windowQuery(q extract.Query, w *Window) extract.Query {
	q.UpdatedSince, q.After, q.UpdatedUntil = w.Start, w.After, time.Time{}
	if w.Kind != KindRun {
		q.UpdatedUntil = w.End
	}
	return q
}

func decodeCursor(s string) ([]any, error) {
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var v []any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode cursor %q: %w", s, err)
	}
	return v, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

package main

import (
	"context"
	dsql "database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/auth"
)

// reconcilePage is the page size of the id-only reconciliation (a search
// at the maximum page size).
const reconcilePage = extract.MaxPageLimit

func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseValidConfig("plan", args, stderr, nil)
	if err != nil {
		return err
	}
	sources, err := tokenSources(ctx, cfg)
	if err != nil {
		return err
	}
	_, err = plan(ctx, cfg, sources, stdout)
	return err
}

// locationPlan is the dry run's estimate for one location.
type locationPlan struct {
	Location     string
	Since        time.Time // zero: the full range
	Changed      int       // contacts in the window
	Total        int       // contacts in the location
	Search       int       // requests
	FanOut       int
	Sweep        int
	Reconcile    int
	Requests     int
	PerSecond    float64 // allowed rate, less the governor's margin
	Duration     time.Duration
	DailyLeft    int64 // -1: unknown
	DailyReserve int64
	Probes       int // requests the plan itself spent
}

func (p locationPlan) covered() bool {
	return p.DailyLeft < 0 || int64(p.Requests) <= p.DailyLeft-p.DailyReserve
}

// stored is what the warehouse already holds for a location.
type stored struct {
	watermark     time.Time
	live          int
	lastReconcile time.Time
}

// plan probes each location with one or two one-contact searches and prints
// what a run with cfg would do. It writes nothing.
func plan(ctx context.Context, cfg Config, sources map[string]oauth2.TokenSource, w io.Writer) ([]locationPlan, error) {
	state, warn := readStored(ctx, cfg)
	if warn != nil {
		fmt.Fprintf(w, "note: warehouse state not read (%v); planning full ranges\n", warn)
	}
	base := newTransport(len(cfg.Locations))
	var plans []locationPlan
	for _, loc := range cfg.Locations {
		hc := &http.Client{Transport: auth.NewTransport(sources[loc], base), Timeout: extract.DefaultTimeout}
		c, err := extract.NewClient(cfg.BaseURL, loc, hc,
			extract.WithGovernor(extract.NewRateGovernor(cfg.RateMax, cfg.RateInterval)), extract.WithRetries(2, nil))
		if err != nil {
			return nil, usageError{err}
		}
		p, err := planLocation(ctx, cfg, c, state[loc])
		if err != nil {
			return plans, fmt.Errorf("location %s: %w", loc, err)
		}
		plans = append(plans, p)
	}
	printPlan(w, cfg, plans)
	return plans, nil
}

func planLocation(ctx context.Context, cfg Config, c *extract.Client, st stored) (locationPlan, error) {
	p := locationPlan{Location: c.Location(), DailyLeft: -1}
	if !st.watermark.IsZero() {
		p.Since = st.watermark.Add(-cfg.Incremental.Lookback)
	}
	pr, err := c.Probe(ctx, extract.Query{UpdatedSince: p.Since})
	if err != nil {
		return p, err
	}
	p.Changed, p.Total = pr.Total, pr.Total
	reconcile := !st.watermark.IsZero() && cfg.Incremental.ReconcileEvery >= 0 &&
		(st.lastReconcile.IsZero() || time.Since(st.lastReconcile) >= cfg.Incremental.ReconcileEvery)
	if !p.Since.IsZero() {
		if all, err := c.Probe(ctx, extract.Query{}); err == nil {
			p.Total = all.Total
			pr.Limits = all.Limits
		}
	}
	p.Probes = int(c.Stats().Requests.Load())
	p.Search = extract.SearchPages(p.Changed, cfg.PageLimit)
	p.FanOut = p.Changed * len(cfg.Children)
	if reconcile {
		p.Reconcile = extract.SearchPages(p.Total, reconcilePage)
	}
	if n := cfg.Incremental.SweepRuns; n > 0 && st.live > 0 && !st.watermark.IsZero() {
		p.Sweep = (st.live + n - 1) / n * len(cfg.Children)
	}
	p.Requests = p.Search + p.FanOut + p.Sweep + p.Reconcile

	l := pr.Limits
	if l.PerSecond() == 0 {
		l.Max, l.Interval = int64(cfg.RateMax), cfg.RateInterval
	}
	p.PerSecond = l.PerSecond() * (1 - extract.RateMargin)
	p.Duration = time.Duration(float64(p.Requests) / p.PerSecond * float64(time.Second))
	p.DailyLeft = l.DailyRemaining
	daily := l.DailyLimit
	if daily <= 0 {
		daily = extract.DefaultDailyLimit
	}
	p.DailyReserve = cfg.DailyReserve.Of(daily)
	return p, nil
}

// readStored reads watermarks, live contact counts and the last
// reconciliation per location, read-only. A warehouse that does not exist
// yet has nothing stored.
func readStored(ctx context.Context, cfg Config) (map[string]stored, error) {
	out := map[string]stored{}
	if cfg.Warehouse.Type != "duckdb" {
		return out, nil
	}
	if _, err := os.Stat(cfg.Warehouse.Path); errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	db, err := dsql.Open("duckdb", cfg.Warehouse.Path+"?access_mode=read_only")
	if err != nil {
		return out, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT location_id, value FROM watermarks WHERE source = ? AND resource = ?`, cfg.Source, api.ResourceContacts)
	if err != nil {
		return out, err
	}
	for rows.Next() {
		var loc string
		var v time.Time
		if err := rows.Scan(&loc, &v); err != nil {
			rows.Close()
			return out, err
		}
		s := out[loc]
		s.watermark = v.UTC()
		out[loc] = s
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return out, err
	}
	rows, err = db.QueryContext(ctx, `SELECT _location_id, count(*) FROM contacts WHERE _source = ? AND _deleted_at IS NULL GROUP BY 1`, cfg.Source)
	if err != nil {
		return out, err
	}
	for rows.Next() {
		var loc string
		var n int
		if err := rows.Scan(&loc, &n); err != nil {
			rows.Close()
			return out, err
		}
		s := out[loc]
		s.live = n
		out[loc] = s
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return out, err
	}
	// The reconciliation ledger is newer than some warehouses: optional.
	if rows, err := db.QueryContext(ctx, `SELECT location_id, max(reconciled_at) FROM reconciles WHERE source = ? GROUP BY 1`, cfg.Source); err == nil {
		for rows.Next() {
			var loc string
			var v time.Time
			if rows.Scan(&loc, &v) == nil {
				s := out[loc]
				s.lastReconcile = v
				out[loc] = s
			}
		}
		rows.Close()
	}
	return out, nil
}

// runTime is how long the plans take with workers locations at once,
// longest first.
func runTime(plans []locationPlan, workers int) time.Duration {
	ds := make([]time.Duration, len(plans))
	for i, p := range plans {
		ds[i] = p.Duration
	}
	slices.Sort(ds)
	slices.Reverse(ds)
	lanes := make([]time.Duration, max(1, workers))
	for _, d := range ds {
		i := slices.Index(lanes, slices.Min(lanes))
		lanes[i] += d
	}
	return slices.Max(lanes)
}

func printPlan(w io.Writer, cfg Config, plans []locationPlan) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "location\twindow\tcontacts\tsearch\tfan-out\tsweep\treconcile\trequests\treq/s\ttime\tquota left\tcovered\t")
	probes, total := 0, 0
	for _, p := range plans {
		win := "full range"
		if !p.Since.IsZero() {
			win = "[" + p.Since.Format(time.RFC3339) + ", now)"
		}
		left, cov := "unknown", "yes"
		if p.DailyLeft >= 0 {
			left = fmt.Sprintf("%d-%d", p.DailyLeft, p.DailyReserve)
			if !p.covered() {
				days := math.Ceil(float64(p.Requests) / float64(max(1, p.DailyLeft-p.DailyReserve)))
				cov = fmt.Sprintf("NO (~%.0f days)", days)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.2f\t%s\t%s\t%s\t\n", p.Location, win, p.Changed, p.Search, p.FanOut,
			p.Sweep, p.Reconcile, p.Requests, p.PerSecond, p.Duration.Round(time.Second), left, cov)
		probes += p.Probes
		total += p.Requests
	}
	tw.Flush()
	fmt.Fprintf(w, "total %d requests, about %s with %d locations at once; the plan spent %d requests\n",
		total, runTime(plans, cfg.LocationWorkers).Round(time.Second), cfg.LocationWorkers, probes)
	fmt.Fprintln(w, "search = pages of the window; fan-out = contacts x children (an upper bound: unchanged contacts are skipped);")
	fmt.Fprintln(w, "sweep = the rolling re-read of unchanged contacts' children; reconcile = the id-only pass that finds deletes (0 when not due);")
	fmt.Fprintln(w, "quota left = today's remaining requests - the reserve kept for other apps; a run that would cross it stops early (exit 3, partial).")
}

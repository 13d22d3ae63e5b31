package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"text/tabwriter"
	"time"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/load"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseValidConfig("plan", args, stderr, nil)
	if err != nil {
		return err
	}
	for i, sc := range cfg.sourceConfigs() {
		if len(cfg.Sources) > 0 {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			fmt.Fprintf(stdout, "source %s\n", sc.Source)
		}
		sources, err := tokenSources(ctx, sc)
		if err != nil {
			return err
		}
		if _, err = plan(ctx, sc, sources, stdout); err != nil {
			return err
		}
	}
	return nil
}

// plan probes each location with one or two one-contact searches and prints
// what a run with cfg would do. It writes nothing to the API.
func plan(ctx context.Context, cfg Config, sources map[string]oauth2.TokenSource, w io.Writer) ([]pipeline.Estimate, error) {
	st, warn := readStatus(ctx, cfg)
	if warn != nil {
		fmt.Fprintf(w, "note: warehouse state not read (%v); planning full ranges\n", warn)
	}
	co := cfg.clientOptions()
	co.MaxRetries, co.RetryBudget, co.DailyReserve = 2, 0, extract.Reserve{}
	clients, err := pipeline.Clients(cfg.Locations, sources, co)
	if err != nil {
		return nil, usageError{err}
	}
	plans, err := pipeline.Forecast(ctx, clients, st, pipeline.EstimateOptions{
		Options: cfg.Incremental.options(), Source: cfg.Source, PageLimit: cfg.PageLimit, Children: cfg.Children,
		RateMax: cfg.RateMax, RateInterval: cfg.RateInterval, DailyReserve: cfg.DailyReserve,
		Scopes: grantedScopes(sources),
	})
	if err != nil {
		return plans, err
	}
	printPlan(w, cfg, plans)
	return plans, nil
}

// readStatus reads the warehouse's state through its sink; a warehouse that
// does not exist yet has nothing stored (and is not created).
func readStatus(ctx context.Context, cfg Config) (*load.Status, error) {
	if _, err := os.Stat(cfg.Warehouse.Path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	sink, err := pipeline.OpenSink(cfg.Warehouse.Type, cfg.Warehouse.Path)
	if err != nil {
		return nil, err
	}
	defer sink.Close(context.WithoutCancel(ctx))
	return sink.Status(ctx, cfg.Source)
}

func printPlan(w io.Writer, cfg Config, plans []pipeline.Estimate) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "location\twindow\tcontacts\tsearch\tfan-out\ttasks\tappointments\tbulk\tsweep\treconcile\trequests\treq/s\ttime\tquota left\tcovered\t")
	probes, total := 0, 0
	for _, p := range plans {
		win := "full range"
		if !p.Since.IsZero() {
			win = "[" + p.Since.Format(time.RFC3339) + ", now)"
		}
		left, cov := "unknown", "yes"
		if p.DailyLeft >= 0 {
			left = fmt.Sprintf("%d-%d", p.DailyLeft, p.DailyReserve)
			if !p.Covered() {
				days := math.Ceil(float64(p.Requests) / float64(max(1, p.DailyLeft-p.DailyReserve)))
				cov = fmt.Sprintf("NO (~%.0f days)", days)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%.2f\t%s\t%s\t%s\t\n", p.Location, win, p.Changed, p.Search, p.FanOut,
			orDash(p.Bulk.Tasks), orDash(p.Bulk.Appointments), p.Bulk.Requests(), p.Sweep, p.Reconcile, p.Requests, p.PerSecond, p.Duration.Round(time.Second), left, cov)
		probes += p.Probes
		total += p.Requests
	}
	tw.Flush()
	fmt.Fprintf(w, "total %d requests, about %s with %d locations at once; the plan spent %d requests\n",
		total, pipeline.RunTime(plans, cfg.LocationWorkers).Round(time.Second), cfg.LocationWorkers, probes)
	fmt.Fprintln(w, "search = pages of the window; fan-out = contacts x children (an upper bound: unchanged contacts are skipped);")
	fmt.Fprintln(w, "tasks, appointments = the path each takes (bulk: the location's listings; per-contact: without the scope or a usable answer);")
	fmt.Fprintln(w, "bulk = task pages + the calendar list + calendars x event windows; fan-out and sweep count the per-contact children only;")
	fmt.Fprintln(w, "requests also count each location's time zone and custom field definitions (one each; the second only with its scope);")
	fmt.Fprintln(w, "sweep = the rolling re-read of unchanged contacts' children; reconcile = the id-only pass that finds deletes (0 when not due);")
	fmt.Fprintln(w, "quota left = today's remaining requests - the reserve kept for other apps; a run that would cross it stops early (exit 3, partial).")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/contacts-etl/contacts-etl/load"
	"github.com/contacts-etl/contacts-etl/pipeline"
	"github.com/contacts-etl/contacts-etl/webhook"
)

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseRunFlags("status", args, stderr, nil)
	if err != nil {
		return err
	}
	sink, err := pipeline.OpenSink(cfg.Warehouse.Type, cfg.Warehouse.Path)
	if err != nil {
		return usageError{err}
	}
	defer sink.Close(context.WithoutCancel(ctx))
	for i, sc := range cfg.sourceConfigs() {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		st, err := sink.Status(ctx, sc.Source)
		if err != nil {
			return err
		}
		printStatus(stdout, sc, st)
	}
	if in, err := webhook.Status(cfg.Warehouse.Path); err != nil {
		fmt.Fprintf(stdout, "\nwebhook inbox: unreadable: %v\n", err)
	} else if in.Depth > 0 || in.Last != nil {
		fmt.Fprintf(stdout, "\nwebhook inbox  %d events unapplied", in.Depth)
		if !in.OldestReceived.IsZero() {
			fmt.Fprintf(stdout, ", oldest received %s", in.OldestReceived.UTC().Format(time.RFC3339))
		}
		if l := in.Last; l != nil {
			fmt.Fprintf(stdout, "; last apply %s: %d events, %d contacts, %d without a contact (left to the run)",
				l.At.UTC().Format(time.RFC3339), l.Events, l.Contacts, l.Unresolved)
		}
		fmt.Fprintln(stdout)
	}
	return nil
}

func printStatus(w io.Writer, cfg Config, st *load.Status) {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "warehouse  %s  source %s\n", cfg.Warehouse.Path, cfg.Source)
	if r := st.LastRun; r != nil {
		fmt.Fprintf(w, "last run   %s %s %s started %s ended %s requests %d\n", r.ID, r.Command, r.Outcome, ts(r.StartedAt), ts(r.EndedAt), r.Requests)
	} else {
		fmt.Fprintln(w, "last run   none")
	}
	for _, l := range st.Locations {
		fmt.Fprintf(w, "\nlocation %s / contacts (children follow their contacts)\n", l.LocationID)
		fmt.Fprintf(w, "  watermark      %s\n", ts(l.Watermark))
		var done, open int
		for _, win := range l.Windows {
			if win.Status == "done" {
				done++
			} else {
				open++
			}
		}
		fmt.Fprintf(w, "  windows        %d done, %d open\n", done, open)
		for _, win := range l.Windows {
			if win.Status == "open" {
				fmt.Fprintf(w, "    open  [%s, %s) %s cursor %s (run %s)\n", ts(win.Start), ts(win.End), win.Kind, win.Cursor, win.RunID)
			}
		}
		cov, gaps := coverage(l.Windows)
		for _, c := range cov {
			fmt.Fprintf(w, "    committed [%s, %s)\n", ts(c[0]), ts(c[1]))
		}
		for _, g := range gaps {
			fmt.Fprintf(w, "    gap       [%s, %s)\n", ts(g[0]), ts(g[1]))
		}
		fmt.Fprintf(w, "  rejects        %d\n", l.Rejects)
		pending := 0
		for _, r := range l.Retries {
			if r.Attempts <= cfg.Incremental.RetryRejects {
				pending++
			}
		}
		fmt.Fprintf(w, "  retries        %d contacts with rejected records, %d to be read again (up to %d times)\n", len(l.Retries), pending, cfg.Incremental.RetryRejects)
		for i, r := range l.Retries {
			if i == 20 {
				fmt.Fprintf(w, "    ... and %d more (SELECT * FROM retries)\n", len(l.Retries)-i)
				break
			}
			fmt.Fprintf(w, "    %s %s/%s attempts %d, last %s: %s\n", r.ContactID, r.Resource, r.RecordID, r.Attempts, ts(r.LastAt), r.Reason)
		}
		fmt.Fprintf(w, "  contacts       %d live, %d deleted; last reconciled %s\n", l.Live, l.Deleted, ts(l.LastReconcile))
		pct := 0.0
		if l.Live > 0 {
			pct = 100 * float64(l.Swept) / float64(l.Live)
		}
		fmt.Fprintf(w, "  sweep          %d of %d live contacts swept (%.0f%%), least recent %s, all every %d runs\n",
			l.Swept, l.Live, pct, ts(l.OldestSweep), cfg.Incremental.SweepRuns)
	}
}

// coverage merges the done windows into disjoint committed intervals and
// returns them with the gaps between them.
func coverage(ws []load.Window) (cov, gaps [][2]time.Time) {
	var done [][2]time.Time
	for _, w := range ws {
		if w.Status == "done" {
			done = append(done, [2]time.Time{w.Start, w.End})
		}
	}
	slices.SortFunc(done, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	for _, d := range done {
		if n := len(cov); n > 0 && !d[0].After(cov[n-1][1]) {
			cov[n-1][1] = later(cov[n-1][1], d[1])
			continue
		}
		if n := len(cov); n > 0 {
			gaps = append(gaps, [2]time.Time{cov[n-1][1], d[0]})
		}
		cov = append(cov, d)
	}
	return cov, gaps
}

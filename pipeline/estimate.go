package pipeline

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/load"
)

// reconcilePage is the page size of the id-only reconciliation (a search
// at the maximum page size).
const reconcilePage = extract.MaxPageLimit

// Estimate is a dry run's forecast for one location.
type Estimate struct {
	Location  string
	Since     time.Time // zero: the full range
	Changed   int       // contacts in the window
	Total     int       // contacts in the location
	Search    int       // requests
	FanOut    int
	Sweep     int
	Reconcile int
	// Setup is the location's time zone and its custom field definitions,
	// read once per run: one request each, the second only when the token
	// may have the scope (unknown scopes count it).
	Setup int
	// Bulk says which path tasks and appointments take and what their
	// bulk listings cost (counted in Requests); FanOut and Sweep count the
	// per-contact children only.
	Bulk         BulkForecast
	Requests     int
	PerSecond    float64 // allowed rate, less the governor's margin
	Duration     time.Duration
	DailyLeft    int64 // -1: unknown
	DailyReserve int64
	Probes       int // requests the estimate itself spent
}

// Covered says whether today's quota, less the reserve, covers the run.
func (e Estimate) Covered() bool {
	return e.DailyLeft < 0 || int64(e.Requests) <= e.DailyLeft-e.DailyReserve
}

// EstimateOptions are what a forecast needs besides the clients.
type EstimateOptions struct {
	Options      Options
	Source       string
	PageLimit    int
	Children     []string
	RateMax      int
	RateInterval time.Duration
	DailyReserve extract.Reserve
	Now          time.Time
	// Bulk is what the run would use (the zero value: the bulk paths
	// where the token may).
	Bulk BulkOptions
	// Scopes are the scopes each location's token was granted, where
	// known (from the token store); nil: unknown.
	Scopes map[string][]string
}

// Forecast probes each location with one or two one-contact searches and
// the bulk paths (ProbeBulk, as the run does), and estimates what a run
// would do, reading the warehouse's state through st (nil: nothing
// stored). It writes nothing.
func Forecast(ctx context.Context, clients []*extract.Client, st *load.Status, o EstimateOptions) ([]Estimate, error) {
	stored := map[string]load.LocationStatus{}
	if st != nil {
		for _, l := range st.Locations {
			stored[l.LocationID] = l
		}
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	var out []Estimate
	for _, c := range clients {
		e, err := forecast(ctx, c, stored[c.Location()], o)
		if err != nil {
			return out, fmt.Errorf("location %s: %w", c.Location(), err)
		}
		out = append(out, e)
	}
	return out, nil
}

func forecast(ctx context.Context, c *extract.Client, st load.LocationStatus, o EstimateOptions) (Estimate, error) {
	p := Estimate{Location: c.Location(), DailyLeft: -1}
	if !st.Watermark.IsZero() {
		p.Since = st.Watermark.Add(-o.Options.Lookback)
	}
	pr, err := c.Probe(ctx, extract.Query{UpdatedSince: p.Since})
	if err != nil {
		return p, err
	}
	p.Changed, p.Total = pr.Total, pr.Total
	reconcile := !st.Watermark.IsZero() && o.Options.ReconcileEvery >= 0 &&
		(st.LastReconcile.IsZero() || o.Now.Sub(st.LastReconcile) >= o.Options.ReconcileEvery)
	if !p.Since.IsZero() {
		if all, err := c.Probe(ctx, extract.Query{}); err == nil {
			p.Total = all.Total
			pr.Limits = all.Limits
		}
	}
	full := st.Watermark.IsZero() || o.Options.Full
	if o.Options.Backfill {
		o.Bulk.Off = true
	}
	if p.Bulk, err = ProbeBulk(ctx, c, o.Children, o.Bulk, o.Now, full); err != nil {
		return p, err
	}
	children := p.Bulk.Left(o.Children)
	p.Probes = int(c.Stats().Requests.Load())
	p.Search = extract.SearchPages(p.Changed, o.PageLimit)
	p.FanOut = p.Changed * len(children)
	if reconcile {
		p.Reconcile = extract.SearchPages(p.Total, reconcilePage)
	}
	if n := o.Options.SweepRuns; n > 0 && st.Live > 0 && !st.Watermark.IsZero() {
		p.Sweep = (int(st.Live) + n - 1) / n * len(children)
	}
	p.Setup = 1 // the time zone
	if sc, known := o.Scopes[c.Location()]; !known || slices.Contains(sc, api.ScopeCustomFieldsRO) {
		p.Setup++
	}
	p.Requests = p.Search + p.FanOut + p.Bulk.Requests() + p.Sweep + p.Reconcile + p.Setup

	l := pr.Limits
	if l.PerSecond() == 0 {
		l.Max, l.Interval = int64(o.RateMax), o.RateInterval
	}
	p.PerSecond = l.PerSecond() * (1 - extract.RateMargin)
	p.Duration = time.Duration(float64(p.Requests) / p.PerSecond * float64(time.Second))
	p.DailyLeft = l.DailyRemaining
	daily := l.DailyLimit
	if daily <= 0 {
		daily = extract.DefaultDailyLimit
	}
	p.DailyReserve = o.DailyReserve.Of(daily)
	return p, nil
}

// RunTime is how long the estimated locations take with workers locations
// at once, longest first.
func RunTime(plans []Estimate, workers int) time.Duration {
	if len(plans) == 0 {
		return 0
	}
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

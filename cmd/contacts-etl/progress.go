package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/contacts-etl/contacts-etl/pipeline"
)

// progressDisplay draws one line per location on a terminal: contacts and
// children committed, requests, request rate and, when the location's
// contact count is known, an ETA. A nil display does nothing, so a run
// under cron (stderr not a terminal) prints nothing extra.
type progressDisplay struct {
	p        *mpb.Progress
	mu       sync.Mutex // update and close, one at a time; held while calling the bars
	stats    sync.Mutex // the counters below; never held while calling a bar (its decorator takes it)
	locs     map[string]*locationProgress
	expected map[string]int64 // contacts expected per location; 0: unknown
	now      func() time.Time
}

type locationProgress struct {
	bar      *mpb.Bar
	start    time.Time
	contacts int64
	children int64
	requests int64
}

// newProgressDisplay returns a display writing to w, or nil when w is not
// a terminal.
func newProgressDisplay(w io.Writer) *progressDisplay {
	if !isTerminal(w) {
		return nil
	}
	return newProgressTo(w)
}

func newProgressTo(w io.Writer, opts ...mpb.ContainerOption) *progressDisplay {
	return &progressDisplay{
		p:        mpb.New(append([]mpb.ContainerOption{mpb.WithOutput(w), mpb.WithWidth(30)}, opts...)...),
		locs:     map[string]*locationProgress{},
		expected: map[string]int64{},
		now:      time.Now,
	}
}

// update is a pipeline.Job's Progress: called after each commit.
func (d *progressDisplay) update(p pipeline.Progress) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.Lock()
	lp := d.locs[p.Location]
	if lp == nil {
		lp = &locationProgress{start: d.now()}
		d.locs[p.Location] = lp
	}
	lp.contacts, lp.children, lp.requests = 0, 0, p.Requests
	for t, n := range p.Committed {
		switch t {
		case "contacts":
			lp.contacts = n
		case "tasks", "notes", "appointments":
			lp.children += n
		}
	}
	total := d.expected[p.Location]
	if total < lp.contacts {
		total = lp.contacts + 1 // unknown (or exceeded): the bar never looks done early
	}
	contacts, bar := lp.contacts, lp.bar
	d.stats.Unlock()
	if bar == nil {
		loc := p.Location
		bar = d.p.AddBar(total,
			mpb.PrependDecorators(decor.Name(loc, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return d.line(loc) })))
		lp.bar = bar // lp.bar is only read under d.mu
	}
	bar.SetTotal(total, false)
	bar.SetCurrent(contacts)
}

// line is the text after a location's bar.
func (d *progressDisplay) line(loc string) string {
	d.stats.Lock()
	defer d.stats.Unlock()
	lp := d.locs[loc]
	if lp == nil {
		return ""
	}
	el := d.now().Sub(lp.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(lp.requests) / el
	}
	eta := "ETA ?"
	if exp := d.expected[loc]; exp > 0 && lp.contacts > 0 && el > 0 {
		left := float64(exp-lp.contacts) / (float64(lp.contacts) / el)
		eta = "ETA " + (time.Duration(max(left, 0)) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("%d contacts  %d children  %d requests  %.1f req/s  %s", lp.contacts, lp.children, lp.requests, rate, eta)
}

// expect sets the contacts a location is expected to have (for its ETA).
func (d *progressDisplay) expect(counts map[string]int64) {
	if d == nil {
		return
	}
	d.stats.Lock()
	maps.Copy(d.expected, counts)
	d.stats.Unlock()
}

// close completes the bars and waits for the last frame.
func (d *progressDisplay) close() {
	if d == nil {
		return
	}
	d.mu.Lock()
	for _, lp := range d.locs {
		lp.bar.SetTotal(-1, true)
	}
	d.mu.Unlock()
	d.p.Wait()
}

// progressFunc is the Job.Progress of the display in ctx (nil: none).
func progressFunc(ctx context.Context) func(pipeline.Progress) {
	d, _ := ctx.Value(progressKey{}).(*progressDisplay)
	if d == nil {
		return nil
	}
	return d.update
}

type progressKey struct{}

func withProgress(ctx context.Context, d *progressDisplay) context.Context {
	if d == nil {
		return ctx
	}
	return context.WithValue(ctx, progressKey{}, d)
}

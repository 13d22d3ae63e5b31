package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"golang.org/x/sync/errgroup"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/load"
	"github.com/contacts-etl/contacts-etl/transform"
)

// Kinds of ledger windows.
const (
	kindRun      = "run"
	kindBackfill = "backfill"
)

// markReconcile is the Mark resource that carries a reconciliation's id
// list from the extract side to the committer.
const markReconcile = "reconcile"

// epoch is where the first window of a location starts.
var epoch = time.Unix(0, 0).UTC()

// job wires extract → transform → load for one run or backfill.
type job struct {
	run        load.Run
	clients    []*extract.Client // one per location
	sink       load.Sink
	stream     extract.StreamOptions
	transform  transform.Config
	workers    int // locations at once
	commitRows int
	log        *slog.Logger
	plan       planOptions

	mu      sync.Mutex // serialises every call to sink, and the counters below
	counts  transform.Counts
	commits int
}

// planOptions say which windows a job reads and what else it does.
type planOptions struct {
	Backfill       bool
	From, To       time.Time     // backfill range
	Window         time.Duration // backfill window size
	Redo           bool          // backfill: re-read windows the ledger has done
	Full           bool          // read unchanged contacts and their children too
	Lookback       time.Duration // incremental: re-read this much before the watermark
	SweepRuns      int           // all children re-read every N runs; 0: no sweep
	ReconcileEvery time.Duration // id-only reconciliation cadence; < 0: never
}

// stateStore is what the incremental logic reads from the warehouse besides
// the ledger. The DuckDB sink implements it; without it every contact seen
// is treated as changed and there is no sweep or reconciliation.
type stateStore interface {
	LiveContacts(ctx context.Context, source, location string) (map[string]int64, error)
	SweepCandidates(ctx context.Context, source, location string, n int, sweptBefore time.Time) ([]string, int, error)
	LastReconcile(ctx context.Context, source, location string) (time.Time, error)
}

// result is what a run did.
type result struct {
	Rows     transform.Counts
	Requests int64
	Retries  int64
	Limited  int64
	Commits  int
	Duration time.Duration
}

// execute runs the job, one pipeline per location, j.workers at once.
// Whatever was extracted and covered by a page mark before a failure is
// still committed, with the cursor that covers it; then the run row records
// the outcome.
func (j *job) execute(ctx context.Context) (res result, err error) {
	start := time.Now()
	st, err := j.sink.Start(ctx, j.run)
	if err != nil {
		return res, fmt.Errorf("start run: %w", err)
	}
	j.counts = transform.Counts{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(j.workers)
	quota := newQuotaStops()
	for _, c := range j.clients {
		g.Go(func() error {
			if err := j.location(gctx, c, st); err != nil {
				return quota.filter(fmt.Errorf("location %s: %w", c.Location(), err), c.Location())
			}
			j.log.Info("location done", "location", c.Location())
			return nil
		})
	}
	err = errors.Join(g.Wait(), quota.err())

	res.Rows = j.counts
	for _, c := range j.clients {
		s := c.Stats()
		res.Requests += s.Requests.Load()
		res.Retries += s.Retries.Load()
		res.Limited += s.RateLimited.Load()
	}
	res.Commits = j.commits
	res.Duration = time.Since(start)
	rr := load.RunResult{
		RunID: j.run.ID, EndedAt: time.Now().UTC(), Outcome: "ok",
		Requests: res.Requests, Retries: res.Retries, RateLimited: res.Limited,
		Rows: map[string]int64{}, Rejects: res.Rows["rejects"],
		Locations: locationStats(j.clients, quota.stopped()),
	}
	for k, v := range res.Rows {
		if k != "rejects" {
			rr.Rows[k] = v
		}
	}
	if err != nil {
		rr.Outcome, rr.Error = "failed", err.Error()
		if quota.only(err) {
			rr.Outcome = "partial"
		}
	}
	// Record the outcome even when ctx was cancelled (an interrupt).
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if ferr := j.sink.Finish(fctx, rr); ferr != nil {
		err = errors.Join(err, fmt.Errorf("finish run: %w", ferr))
	}
	return res, err
}

func (j *job) store() stateStore {
	return j.sink
}

// window is one ledger window being read by a location's pipeline.
type window struct {
	w     load.Window
	after []any // resume after this cursor
}

// windows plans the windows a location reads: for a run, the open window
// an earlier run left (resumed from its cursor), then [watermark −
// lookback, run start); for a backfill, the range split into windows,
// minus those the ledger has done (unless Redo).
func (j *job) windows(loc string, st *load.State) ([]*window, time.Time, error) {
	src, res := j.run.Source, api.ResourceContacts
	var wm time.Time
	for _, w := range st.Watermarks {
		if w.LocationID == loc && w.Resource == res {
			wm = w.Value
		}
	}
	ledger := map[time.Time]load.Window{}
	for _, w := range st.Windows {
		if w.LocationID == loc && w.Resource == res {
			ledger[w.Start] = w
		}
	}
	mk := func(start, end time.Time, kind string) (*window, error) {
		nw := &window{w: load.Window{Source: src, LocationID: loc, Resource: res, Start: start, End: end,
			Status: "open", RunID: j.run.ID, Kind: kind}}
		if old, ok := ledger[start]; ok && old.Status == "open" && old.End.Equal(end) && old.Cursor != "" {
			after, err := decodeCursor(old.Cursor)
			if err != nil {
				return nil, fmt.Errorf("window %s: %w", start.Format(time.RFC3339), err)
			}
			nw.after, nw.w.Cursor = after, old.Cursor
		}
		return nw, nil
	}
	var out []*window
	if j.plan.Backfill {
		for s := j.plan.From; s.Before(j.plan.To); s = s.Add(j.plan.Window) {
			e := minTime(s.Add(j.plan.Window), j.plan.To)
			if old, ok := ledger[s]; ok && old.Status == "done" && old.End.Equal(e) && !j.plan.Redo {
				continue
			}
			w, err := mk(s, e, kindBackfill)
			if err != nil {
				return nil, wm, err
			}
			out = append(out, w)
		}
		return out, wm, nil
	}
	expect := wm
	for _, old := range st.Windows {
		if old.LocationID != loc || old.Resource != res || old.Status != "open" || old.Kind != kindRun {
			continue
		}
		w, err := mk(old.Start, old.End, kindRun)
		if err != nil {
			return nil, wm, err
		}
		out = append(out, w)
		expect = maxTime(expect, old.End.Add(-j.plan.Lookback))
	}
	start := epoch
	if !expect.IsZero() {
		start = maxTime(epoch, expect.Add(-j.plan.Lookback))
	}
	if end := j.run.StartedAt.UTC(); start.Before(end) {
		if _, dup := ledger[start]; !dup || ledger[start].Kind == kindRun {
			w, err := mk(start, end, kindRun)
			if err != nil {
				return nil, wm, err
			}
			if len(out) == 0 || !out[len(out)-1].w.Start.Equal(start) {
				out = append(out, w)
			}
		}
	}
	return out, wm, nil
}

// location reads one location: its windows and, for a run, the
// reconciliation (phase 1), then the rolling sweep (phase 2).
func (j *job) location(ctx context.Context, c *extract.Client, st *load.State) error {
	loc := c.Location()
	wins, wm, err := j.windows(loc, st)
	if err != nil {
		return err
	}
	store := j.store()
	var known map[string]int64
	if store != nil && !j.plan.Full {
		j.mu.Lock()
		known, err = store.LiveContacts(ctx, j.run.Source, loc)
		j.mu.Unlock()
		if err != nil {
			return err
		}
	}
	reconcile := false
	if store != nil && !j.plan.Backfill && j.plan.ReconcileEvery >= 0 {
		j.mu.Lock()
		last, err := store.LastReconcile(ctx, j.run.Source, loc)
		j.mu.Unlock()
		if err != nil {
			return err
		}
		reconcile = last.IsZero() || j.run.StartedAt.Sub(last) >= j.plan.ReconcileEvery
	}
	cm := &committer{j: j, loc: loc, wins: wins, watermark: wm}
	err = j.pipe(ctx, cm, func(ctx context.Context, out chan<- api.Record) error {
		for _, w := range wins {
			opt := j.stream
			opt.Query.UpdatedSince, opt.Query.After = w.w.Start, w.after
			if w.w.Kind != kindRun {
				// A run reads past its window's end: rows a source clock
				// running ahead dated in our future are merged now, not
				// after our clock catches up.
				opt.Query.UpdatedUntil = w.w.End
			}
			opt.Unchanged = unchanged(known)
			if err := extract.Stream(ctx, c, opt, out); err != nil {
				return fmt.Errorf("window [%s, %s): %w", w.w.Start.Format(time.RFC3339), w.w.End.Format(time.RFC3339), err)
			}
		}
		if !reconcile {
			return nil
		}
		ids, err := c.ContactIDs(ctx)
		if err != nil {
			return err
		}
		return sendRecord(ctx, out, api.Record{Mark: &api.Mark{LocationID: loc, Resource: markReconcile, IDs: ids, Done: true}})
	})
	if err != nil || store == nil || j.plan.Backfill || j.plan.SweepRuns <= 0 || len(j.stream.Children) == 0 {
		return err
	}
	// Phase 2: the children of the least recently swept slice.
	j.mu.Lock()
	_, live, err := store.SweepCandidates(ctx, j.run.Source, loc, 0, j.run.StartedAt)
	var ids []string
	if err == nil {
		n := (live + j.plan.SweepRuns - 1) / j.plan.SweepRuns
		ids, _, err = store.SweepCandidates(ctx, j.run.Source, loc, n, j.run.StartedAt)
	}
	j.mu.Unlock()
	if err != nil || len(ids) == 0 {
		return err
	}
	j.log.Debug("sweep", "location", loc, "contacts", len(ids), "live", live)
	return j.pipe(ctx, &committer{j: j, loc: loc}, func(ctx context.Context, out chan<- api.Record) error {
		return extract.StreamChildren(ctx, c, ids, extract.DefaultSweepChunk, j.stream, out)
	})
}

// unchanged reports a contact whose dateUpdated equals the stored one: it
// and its children are in the warehouse as they are.
func unchanged(known map[string]int64) func(string, json.RawMessage) bool {
	if known == nil {
		return nil
	}
	return func(id string, raw json.RawMessage) bool {
		ms, ok := known[id]
		if !ok {
			return false
		}
		var k struct {
			DateUpdated string `json:"dateUpdated"`
		}
		if json.Unmarshal(raw, &k) != nil {
			return false
		}
		t, err := transform.ParseTime(k.DateUpdated, time.UTC)
		if err != nil || t.IsZero() || t.UnixMilli() != ms {
			return false
		}
		return true
	}
}

// pipe runs produce → transform → committer for one location and commits
// what the marks cover, also after a failure.
func (j *job) pipe(ctx context.Context, cm *committer, produce func(context.Context, chan<- api.Record) error) error {
	records := make(chan api.Record, 1024)
	batches := make(chan transform.Batch, 8)
	exCtx, cancelEx := context.WithCancel(ctx)
	defer cancelEx()
	var exErr error
	exDone := make(chan struct{})
	go func() {
		defer close(exDone)
		defer close(records)
		exErr = produce(exCtx, records)
	}()
	stage := transform.New(j.transform)
	defer stage.Close()
	var tfErr error
	go func() {
		defer close(batches)
		tfErr = stage.Run(exCtx, records, batches)
	}()
	var loadErr error
	for b := range batches {
		if loadErr != nil { // drain so the stages can finish
			releaseBatch(b)
			continue
		}
		if loadErr = cm.add(ctx, b); loadErr != nil {
			cancelEx()
		}
	}
	cancelEx()
	<-exDone
	if loadErr == nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		loadErr = cm.flush(fctx)
		cancel()
	}
	cm.release()
	j.mu.Lock()
	for k, v := range stage.Counts() {
		j.counts[k] += v
	}
	j.mu.Unlock()
	if errors.Is(tfErr, context.Canceled) && (exErr != nil || loadErr != nil) {
		tfErr = nil
	}
	if errors.Is(exErr, context.Canceled) && loadErr != nil {
		exErr = nil
	}
	return errors.Join(exErr, tfErr, loadErr)
}

// committer gathers one location's batches and commits them, with the
// state that covers them, on marks: only rows before the latest mark are
// ever committed, so a committed cursor never skips a row and a committed
// contact always has its children. It commits once at least limit rows are
// covered, at the end of each window, and at a reconciliation.
type committer struct {
	j         *job
	loc       string
	wins      []*window
	idx       int // current window
	watermark time.Time

	pend, cov         map[string][]arrow.RecordBatch // after / before the latest mark
	pendRows, covRows int
	swept             []string
	state             []load.Window
	marks             []load.Watermark
}

func (c *committer) add(ctx context.Context, b transform.Batch) error {
	if b.Mark == nil {
		if c.pend == nil {
			c.pend = map[string][]arrow.RecordBatch{}
		}
		c.pend[b.Table] = append(c.pend[b.Table], b.Rec)
		c.pendRows += int(b.Rec.NumRows())
		return nil
	}
	m := b.Mark
	if c.cov == nil {
		c.cov = map[string][]arrow.RecordBatch{}
	}
	for t, recs := range c.pend {
		c.cov[t] = append(c.cov[t], recs...)
	}
	c.covRows += c.pendRows
	c.pend, c.pendRows = nil, 0
	if m.Resource != markReconcile {
		c.swept = append(c.swept, m.IDs...)
	}
	switch {
	case m.Resource == markReconcile:
		if err := c.flush(ctx); err != nil {
			return err
		}
		return c.reconcile(ctx, m.IDs)
	case m.Resource == api.ResourceContacts && c.idx < len(c.wins):
		w := c.wins[c.idx]
		if m.Done {
			w.w.Status, w.w.Cursor = "done", ""
			c.state = append(c.state, w.w)
			if w.w.Kind == kindRun {
				if v := w.w.End.Add(-c.j.plan.Lookback); v.After(c.watermark) {
					c.watermark = v
					c.marks = append(c.marks, load.Watermark{Source: w.w.Source, LocationID: c.loc, Resource: w.w.Resource, Value: v})
				}
			}
			c.idx++
			return c.flush(ctx)
		}
		if m.Cursor != nil {
			cur, err := json.Marshal(m.Cursor)
			if err != nil {
				return fmt.Errorf("encode cursor: %w", err)
			}
			w.w.Cursor = string(cur)
			c.state = append(c.state, w.w)
		}
	}
	if c.covRows >= c.j.commitRows {
		return c.flush(ctx)
	}
	return nil
}

// flush commits the covered rows with the state changes since the last
// commit. Rows after the latest mark stay pending.
func (c *committer) flush(ctx context.Context) error {
	if c.covRows == 0 && len(c.state) == 0 && len(c.marks) == 0 && len(c.swept) == 0 {
		return nil
	}
	cm := &load.Commit{RunID: c.j.run.ID, Records: c.cov, Watermarks: c.marks, Windows: dedupWindows(c.state)}
	if len(c.swept) > 0 {
		cm.Swept = []load.Swept{{Source: c.j.run.Source, LocationID: c.loc, ContactIDs: c.swept, At: time.Now().UTC(), RunID: c.j.run.ID}}
	}
	start := time.Now()
	c.j.mu.Lock()
	c.j.log.Debug("commit start", "location", c.loc, "rows", c.covRows)
	err := c.j.sink.Commit(ctx, cm)
	if err == nil {
		c.j.commits++
	}
	c.j.mu.Unlock()
	c.j.log.Debug("commit", "location", c.loc, "rows", c.covRows, "took", time.Since(start), "err", err)
	releaseRecs(c.cov)
	c.cov, c.covRows, c.swept, c.state, c.marks = nil, 0, nil, nil, nil
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// reconcile soft-deletes the location's stored contacts that are not in
// listed (the live ids upstream), and their children.
func (c *committer) reconcile(ctx context.Context, listed []string) error {
	store := c.j.store()
	c.j.mu.Lock()
	live, err := store.LiveContacts(ctx, c.j.run.Source, c.loc)
	c.j.mu.Unlock()
	if err != nil {
		return err
	}
	for _, id := range listed {
		delete(live, id)
	}
	gone := make([]string, 0, len(live))
	for id := range live {
		gone = append(gone, id)
	}
	slices.Sort(gone)
	now := time.Now().UTC()
	src := c.j.run.Source
	cm := &load.Commit{RunID: c.j.run.ID, Reconciled: []load.Reconcile{{Source: src, LocationID: c.loc, At: c.j.run.StartedAt,
		RunID: c.j.run.ID, Listed: len(listed), Deleted: len(gone)}}}
	if len(gone) > 0 {
		cm.Deletes = []load.Delete{{Table: api.ResourceContacts, Source: src, IDs: gone, At: now}}
		for _, t := range extract.ChildResources {
			cm.Deletes = append(cm.Deletes, load.Delete{Table: t, Source: src, IDs: gone, At: now, ByContact: true})
		}
	}
	c.j.mu.Lock()
	err = c.j.sink.Commit(ctx, cm)
	if err == nil {
		c.j.commits++
	}
	c.j.mu.Unlock()
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	c.j.log.Info("reconciled", "location", c.loc, "listed", len(listed), "deleted", len(gone))
	return nil
}

func (c *committer) release() {
	releaseRecs(c.pend)
	releaseRecs(c.cov)
	c.pend, c.cov, c.pendRows, c.covRows = nil, nil, 0, 0
}

// dedupWindows keeps the last state of each window.
func dedupWindows(ws []load.Window) []load.Window {
	var out []load.Window
	for i := len(ws) - 1; i >= 0; i-- {
		if !slices.ContainsFunc(out, func(o load.Window) bool { return o.Start.Equal(ws[i].Start) }) {
			out = append(out, ws[i])
		}
	}
	slices.Reverse(out)
	return out
}

func releaseRecs(m map[string][]arrow.RecordBatch) {
	for _, recs := range m {
		for _, r := range recs {
			r.Release()
		}
	}
}

func releaseBatch(b transform.Batch) {
	if b.Rec != nil {
		b.Rec.Release()
	}
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

func sendRecord(ctx context.Context, out chan<- api.Record, r api.Record) error {
	select {
	case out <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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

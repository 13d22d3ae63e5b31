// Package pipeline owns a run of the exporter: it plans the windows each
// location reads from the warehouse's ledger, drives extract → transform →
// load per location (bounded by an errgroup), commits rows together with the
// state that covers them, sweeps children, reconciles deletes and stops a
// location at its daily quota reserve. The CLI's run, backfill and demo
// commands, and the package's own tests, call Run.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory/mallocator"
	"golang.org/x/sync/errgroup"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/load"
	whsql "github.com/contacts-etl/contacts-etl/sql"
	"github.com/contacts-etl/contacts-etl/transform"
)

// Kinds of ledger windows.
const (
	KindRun      = "run"
	KindBackfill = "backfill"
)

// markReconcile is the Mark resource that carries a reconciliation's id
// list from the extract side to the committer.
const markReconcile = "reconcile"

// markFirstLoad tells the committer that a location's first full load
// listed every id with its search: the reconciliation is recorded as done
// without an id listing.
const markFirstLoad = "first-load"

// Defaults of Job.
const (
	DefaultWorkers    = 4
	DefaultCommitRows = 100_000
	// DefaultCommitBytes bounds the Arrow bytes a location gathers before
	// it commits. One commit runs while the next chunk is gathered, so a
	// location holds about twice this much (plus the rows after the
	// latest mark): memory stays flat however large the account.
	DefaultCommitBytes = 16 << 20
)

// Job is one run or backfill over a set of locations.
type Job struct {
	Run       load.Run
	Locations []Location
	// Sink is the warehouse; Run calls Start, Commit and Finish on it but
	// does not close it.
	Sink   load.Sink
	Stream extract.StreamOptions
	// Bulk says whether tasks and appointments are read with the bulk
	// endpoints where the token may (the zero value: yes).
	Bulk      BulkOptions
	Transform transform.Config // NaiveZone is replaced by each Location's Zone
	Options   Options
	// Workers is how many locations are read at once (DefaultWorkers if 0).
	Workers int
	// CommitRows: a location commits once this many rows are covered by
	// page marks (DefaultCommitRows if 0), and at the end of each window.
	CommitRows int
	// CommitBytes: a location also commits once the covered rows hold this
	// many bytes of Arrow buffers (DefaultCommitBytes if 0).
	CommitBytes int64
	Log         *slog.Logger // nil: discard
	// Progress, if set, is called after every commit (from the committing
	// location's goroutine, one call at a time).
	Progress func(Progress)
	// Archive, if set, keeps the raw records the run reads (see Archive);
	// each location's lines are fsynced before the commits they cover.
	Archive *Archive
}

// Location is one location's client and how its data is read.
type Location struct {
	Client *extract.Client
	// Zone is the location's time zone from the configuration, used when
	// the API does not tell it (no scope locations.readonly). Zone-less
	// appointment times are read in the location's zone.
	Zone *time.Location
	// Unusable, when set, says the location's credentials cannot work
	// (with the fix): the location is not read and the run ends partial.
	Unusable error
	// Scopes are the scopes the location's token was granted, when known
	// (an OAuth token store records them); nil: unknown, probe.
	Scopes []string
	// TokenID is a non-secret identity of the location's token (see
	// TokenID); when set, bulk probes the token was refused are
	// remembered in the warehouse for ProbeMemory, so later runs with the
	// same token don't pay them. "": probe every run.
	TokenID string
	// Targets are contacts to read by id with their children (and to
	// soft-delete, with their children, when the API answers 404), before
	// the windows; with Options.TargetsOnly, instead of them.
	Targets []string
}

// Zone sources, as logged and reported in Result.Zones.
const (
	ZoneFromAPI     = "api"
	ZoneFromConfig  = "config"
	ZoneFromDefault = "default"
)

// ZoneInfo says which zone a location's zone-less times were read in.
type ZoneInfo struct {
	Name   string
	Source string // ZoneFromAPI, ZoneFromConfig or ZoneFromDefault
}

// Progress is reported after each commit.
type Progress struct {
	Location  string
	Committed transform.Counts // rows committed so far for the location
	Requests  int64            // requests the location's client made so far
}

// Result is what a run did. Rows counts committed rows only.
type Result struct {
	Rows     transform.Counts
	Requests int64
	Retries  int64
	Limited  int64
	Commits  int
	Duration time.Duration
	// Stopped are the locations that stopped early without failing the
	// run (see ErrPartial), with the reason.
	Stopped map[string]error
	// Zones are the time zones the locations' zone-less times were read in.
	Zones map[string]ZoneInfo
}

// runner is the state of one Run.
type runner struct {
	Job
	ownMem   *mallocator.Mallocator // the run's Arrow allocator, unless the job brought one
	mu       sync.Mutex             // serialises every call to Sink, and the counters below
	counts   transform.Counts
	commits  int
	zones    map[string]ZoneInfo
	zoneOf   map[string]*time.Location
	fieldsOf map[string][]json.RawMessage // custom field definitions per location, asked once a run
	progress sync.Mutex                   // one Progress call at a time
	// now is the committer's clock (deletes, sweeps, retries); a remap
	// replays the archive's times.
	now func() time.Time
}

// Run executes the job: one pipeline per location, Workers at once.
// Whatever was extracted and covered by a page mark before a failure is
// still committed, with the cursor that covers it; then the run row records
// the outcome. A location that stops at its daily reserve does not cancel
// the others: the run ends with an error wrapping extract.ErrQuotaReserve
// (outcome "partial").
func Run(ctx context.Context, j Job) (Result, error) {
	if j.Log == nil {
		j.Log = slog.New(slog.DiscardHandler)
	}
	if j.Workers <= 0 {
		j.Workers = DefaultWorkers
	}
	if j.CommitRows <= 0 {
		j.CommitRows = DefaultCommitRows
	}
	if j.CommitBytes <= 0 {
		j.CommitBytes = DefaultCommitBytes
	}
	if j.Run.StartedAt.IsZero() {
		j.Run.StartedAt = time.Now()
	}
	j.Run.StartedAt = j.Run.StartedAt.UTC()
	r := newRunner(j)
	defer r.checkMemory()
	return r.execute(ctx)
}

func newRunner(j Job) *runner {
	r := &runner{Job: j, counts: transform.Counts{}, zones: map[string]ZoneInfo{}, zoneOf: map[string]*time.Location{},
		fieldsOf: map[string][]json.RawMessage{}, now: func() time.Time { return time.Now().UTC() }}
	if r.Transform.Mem == nil {
		// Arrow buffers from C malloc, freed when released: the Go heap
		// then holds only the run's own objects, and its collector, whose
		// pace follows the heap's size, no longer marks ~90 MB of live
		// heap each time the commit buffers fill (contacts only, 100k:
		// CPU 20.2 -> 16.0 s). Every record is released exactly once
		// (checkMemory says so in the log, tests assert it).
		r.ownMem = mallocator.NewMallocator()
		r.Transform.Mem = r.ownMem
	}
	return r
}

// checkMemory logs Arrow memory the run did not release (a leak: with C
// malloc nothing else would ever free it).
func (j *runner) checkMemory() {
	if j.ownMem == nil {
		return
	}
	if n := j.ownMem.AllocatedBytes(); n != 0 {
		j.Log.Error("arrow memory not released at the end of the run (a bug; please report it)", "bytes", n)
	}
}

func (j *runner) execute(ctx context.Context) (res Result, err error) {
	start := time.Now()
	if j.Archive != nil {
		if err := j.Archive.begin(j.Run, j.Options, j.Transform.BatchRows); err != nil {
			return res, err
		}
	}
	st, err := j.Sink.Start(ctx, j.Run)
	if err != nil {
		if j.Archive != nil {
			j.Archive.abandon() // nothing was read
		}
		return res, fmt.Errorf("start run: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(j.Workers)
	quota := newStops()
	for _, l := range j.Locations {
		g.Go(func() error {
			loc := l.Client.Location()
			if err := j.location(gctx, l, st); err != nil {
				return quota.filter(&LocationError{Location: loc, Err: err}, loc)
			}
			j.Log.Info("location done", "location", loc)
			return nil
		})
	}
	err = errors.Join(g.Wait(), quota.err())

	res.Rows = j.counts
	for _, l := range j.Locations {
		s := l.Client.Stats()
		res.Requests += s.Requests.Load()
		res.Retries += s.Retries.Load()
		res.Limited += s.RateLimited.Load()
	}
	res.Commits = j.commits
	res.Duration = time.Since(start)
	res.Stopped = quota.stopped()
	j.mu.Lock()
	res.Zones = maps.Clone(j.zones)
	j.mu.Unlock()
	rr := load.RunResult{
		RunID: j.Run.ID, EndedAt: time.Now().UTC(), Outcome: "ok",
		Requests: res.Requests, Retries: res.Retries, RateLimited: res.Limited,
		Rows: map[string]int64{}, Rejects: res.Rows["rejects"],
		Locations: locationStats(j.Locations, res.Stopped),
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
			err = fmt.Errorf("%w: %w", ErrPartial, err)
		}
	}
	if j.Archive != nil {
		if aerr := j.Archive.end(rr); aerr != nil {
			err = errors.Join(err, aerr)
			rr.Outcome, rr.Error = "failed", err.Error()
		}
	}
	// Record the outcome even when ctx was cancelled (an interrupt).
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if ferr := j.Sink.Finish(fctx, rr); ferr != nil {
		err = errors.Join(err, fmt.Errorf("finish run: %w", ferr))
	}
	return res, err
}

// location reads one location: its windows and, for a run, the
// reconciliation (phase 1), then the rolling sweep (phase 2).
func (j *runner) location(ctx context.Context, l Location, st *load.State) error {
	c := l.Client
	loc := c.Location()
	if l.Unusable != nil {
		return fmt.Errorf("%w: %w", ErrUnusable, l.Unusable)
	}
	if j.Options.TargetsOnly {
		return j.targets(ctx, l)
	}
	wins, wm, err := PlanWindows(st, j.Run, loc, j.Options)
	if err != nil {
		return err
	}
	store := j.Sink
	// The location's state, read in one opening of the warehouse.
	var (
		known *knownSet
		last  time.Time
		rs    []load.Retry
	)
	readReconcile := !j.Options.Backfill && j.Options.ReconcileEvery >= 0
	// The reject itself was the first attempt.
	readRetries := j.Options.RetryAttempts > 0 && !j.Options.Backfill
	j.mu.Lock()
	err = load.Batch(ctx, store, func(ctx context.Context) error {
		var err error
		if known, err = readKnown(ctx, store, j.Run.Source, loc); err != nil {
			return err
		}
		if readReconcile {
			if last, err = store.LastReconcile(ctx, j.Run.Source, loc); err != nil {
				return err
			}
		}
		if readRetries {
			rs, err = store.PendingRetries(ctx, j.Run.Source, loc, j.Options.RetryAttempts+1)
		}
		return err
	})
	j.mu.Unlock()
	if err != nil {
		return err
	}
	// A first load lists every id with its search: no reconciliation.
	firstLoad := !j.Options.Backfill && wm.IsZero() && known.len() == 0
	if j.Options.Full {
		known = nil
	}
	bulk, err := j.probeBulk(ctx, l, firstLoad || j.Options.Full)
	if err != nil {
		return err
	}
	stream := j.Stream
	stream.Children = bulk.children(j.Stream.Children)
	reconcile := readReconcile && (last.IsZero() || j.Run.StartedAt.Sub(last) >= j.Options.ReconcileEvery)
	retry := slices.Clone(l.Targets)
	pending := map[string]bool{}
	for _, r := range rs {
		if !pending[r.ContactID] {
			pending[r.ContactID] = true
			if !slices.Contains(l.Targets, r.ContactID) {
				retry = append(retry, r.ContactID)
			}
		}
	}
	cm := &committer{j: j, loc: loc, client: c, wins: wins, watermark: wm, pending: pending, perContact: stream.Children}
	if firstLoad {
		// Only a contact updated since the run began can have been read,
		// and committed, earlier in a first load (its second read is at
		// the search's end): the others have nothing stored to compare.
		cm.recentSince = j.Run.StartedAt.Add(-max(j.Options.Lookback, DefaultLookback))
	}
	if len(wins) == 0 && len(retry) == 0 && !reconcile {
		return nil // nothing to read: a finished backfill, a watermark ahead of us
	}
	err = j.pipe(ctx, l, cm, func(ctx context.Context, out chan<- api.Record) error {
		// The bulk listings go first: when they fail, no window is done
		// and the next run reads them again with the same range.
		if err := j.streamBulk(ctx, c, bulk, out); err != nil {
			return err
		}
		if len(retry) > 0 {
			// Contacts rejected (whole or in part) by earlier runs: read
			// again by id, whatever the watermark.
			j.Log.Info("reading rejected contacts again", "location", loc, "contacts", len(retry))
			opt := j.Stream
			opt.BatchTasks = bulk.tasks
			if err := extract.StreamContacts(ctx, c, retry, extract.DefaultSweepChunk, opt, out); err != nil {
				return err
			}
		}
		for _, w := range wins {
			opt := stream
			opt.Query = windowQuery(opt.Query, w)
			opt.Unchanged = unchanged(known)
			if err := extract.Stream(ctx, c, opt, out); err != nil {
				return fmt.Errorf("window [%s, %s): %w", w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339), err)
			}
		}
		known = nil // read: not held through the id listing
		if !reconcile {
			return nil
		}
		if firstLoad {
			return sendRecord(ctx, out, api.Record{Mark: &api.Mark{LocationID: loc, Resource: markFirstLoad, Done: true}})
		}
		ids, err := c.ContactIDs(ctx)
		if err != nil {
			return err
		}
		return sendRecord(ctx, out, api.Record{Mark: &api.Mark{LocationID: loc, Resource: markReconcile, IDs: ids, Done: true}})
	})
	if err != nil || j.Options.Backfill || j.Options.SweepRuns <= 0 || len(stream.Children) == 0 {
		return err
	}
	// Phase 2: the children of the least recently swept slice.
	j.mu.Lock()
	_, live, err := store.SweepCandidates(ctx, j.Run.Source, loc, 0, j.Run.StartedAt)
	var ids []string
	if err == nil {
		n := (live + j.Options.SweepRuns - 1) / j.Options.SweepRuns
		ids, _, err = store.SweepCandidates(ctx, j.Run.Source, loc, n, j.Run.StartedAt)
	}
	j.mu.Unlock()
	if err != nil || len(ids) == 0 {
		return err
	}
	j.Log.Debug("sweep", "location", loc, "contacts", len(ids), "live", live)
	return j.pipe(ctx, l, &committer{j: j, loc: loc, client: c, perContact: stream.Children}, func(ctx context.Context, out chan<- api.Record) error {
		return extract.StreamChildren(ctx, c, ids, extract.DefaultSweepChunk, stream, out)
	})
}

// targets reads only the location's Targets (TargetsOnly): no windows,
// no watermark, no sweep, no reconciliation.
func (j *runner) targets(ctx context.Context, l Location) error {
	c := l.Client
	opt := j.Stream
	opt.BatchTasks = j.batchTasks(ctx, l)
	// Every child list of a target is read in full (tasks in batches).
	cm := &committer{j: j, loc: c.Location(), client: c, perContact: opt.Children}
	return j.pipe(ctx, l, cm, func(ctx context.Context, out chan<- api.Record) error {
		return extract.StreamContacts(ctx, c, l.Targets, extract.DefaultSweepChunk, opt, out)
	})
}

// zone decides the zone of a location's zone-less times: the API's
// location.timezone when the token may read it, else the configured zone,
// else the job's default (UTC unless set) with a warning. Any other failure
// to ask stops the location: times read in a guessed zone would overwrite
// right ones.
func (j *runner) zone(ctx context.Context, l Location) (*time.Location, error) {
	loc := l.Client.Location()
	j.mu.Lock()
	known, ok := j.zoneOf[loc]
	j.mu.Unlock()
	if ok {
		return known, nil
	}
	info := ZoneInfo{}
	var zone *time.Location
	name, err := l.Client.LocationTimeZone(ctx)
	switch {
	case err == nil:
		zone, err = time.LoadLocation(name)
		if err != nil {
			return nil, fmt.Errorf("time zone %q: %w", name, err)
		}
		info = ZoneInfo{Name: name, Source: ZoneFromAPI}
		if l.Zone != nil && l.Zone.String() != name {
			j.Log.Warn("configured time zone differs from the API's; using the API's", "location", loc, "configured", l.Zone.String(), "api", name)
		}
	case errors.Is(err, extract.ErrNoLocationScope) || errors.Is(err, extract.ErrNoTimeZone):
		if l.Zone != nil {
			zone, info = l.Zone, ZoneInfo{Name: l.Zone.String(), Source: ZoneFromConfig}
			break
		}
		zone = j.Transform.NaiveZone
		if zone == nil {
			zone = time.UTC
		}
		info = ZoneInfo{Name: zone.String(), Source: ZoneFromDefault}
		j.Log.Warn("location time zone unknown: appointment times without a zone are read in the default zone; grant locations.readonly or set time_zones in the config",
			"location", loc, "zone", info.Name, "reason", err)
	default:
		return nil, fmt.Errorf("location time zone: %w", err)
	}
	j.Log.Info("location time zone", "location", loc, "zone", info.Name, "from", info.Source)
	j.mu.Lock()
	j.zones[loc], j.zoneOf[loc] = info, zone
	j.mu.Unlock()
	return zone, nil
}

// customFields returns the location's custom field definitions, asked
// once per run (one request). Without the optional scope (known from the
// token, or a 401/403 answer), or on any other failure, it logs one line
// and returns none: custom field values then land with their ids only.
func (j *runner) customFields(ctx context.Context, l Location) []json.RawMessage {
	loc := l.Client.Location()
	j.mu.Lock()
	defs, ok := j.fieldsOf[loc]
	j.mu.Unlock()
	if ok {
		return defs
	}
	switch {
	case l.Scopes != nil && !slices.Contains(l.Scopes, api.ScopeCustomFieldsRO):
		j.Log.Info("custom field names unknown: the token was not granted "+api.ScopeCustomFieldsRO+"; values land by field id", "location", loc)
	default:
		var err error
		defs, err = l.Client.CustomFields(ctx)
		switch {
		case err == nil:
			j.Log.Info("custom field definitions", "location", loc, "fields", len(defs))
		case errors.Is(err, extract.ErrNoCustomFieldsScope):
			j.Log.Info("custom field names unknown: the token may not read "+api.ScopeCustomFieldsRO+"; values land by field id", "location", loc)
		case ctx.Err() != nil:
			return nil
		default:
			j.Log.Warn("custom field definitions could not be read; values land by field id", "location", loc, "err", err)
		}
	}
	if defs == nil {
		defs = []json.RawMessage{}
	}
	j.mu.Lock()
	j.fieldsOf[loc] = defs
	j.mu.Unlock()
	return defs
}

// unchanged reports a contact whose dateUpdated equals the stored one: it
// and its children are in the warehouse as they are. The search page was
// decoded once, by extract: the record is not parsed again here. A stored
// time of 0 is unknown (the row has no updated_at), never equal.
func unchanged(known *knownSet) func(string, string) bool {
	if known == nil {
		return nil
	}
	return func(id, dateUpdated string) bool {
		ms, ok := known.get(id)
		if !ok || ms == 0 {
			return false
		}
		t, err := transform.ParseTime(dateUpdated, time.UTC)
		if err != nil || t.IsZero() || t.UnixMilli() != ms {
			return false
		}
		return true
	}
}

// pipe runs produce → transform → committer for one location and commits
// what the marks cover, also after a failure.
func (j *runner) pipe(ctx context.Context, l Location, cm *committer, produce func(context.Context, chan<- api.Record) error) error {
	zone, err := j.zone(ctx, l) // asked once per location, when it reads
	if err != nil {
		return err
	}
	// The custom field definitions go first: the stage names and types
	// the values of the contacts after them, and commits them with them;
	// as records they are archived and replayed like any other.
	if defs := j.customFields(ctx, l); len(defs) > 0 {
		inner, loc := produce, l.Client.Location()
		produce = func(ctx context.Context, out chan<- api.Record) error {
			for _, raw := range defs {
				if err := sendRecord(ctx, out, api.Record{Resource: api.ResourceCustomFields, LocationID: loc, Raw: raw}); err != nil {
					return err
				}
			}
			return inner(ctx, out)
		}
	}
	if a := j.Archive; a != nil {
		kind := "windows"
		if cm.wins == nil {
			kind = "records"
		}
		a.pipe(cm.loc, kind, cm.wins, cm.watermark, cm.pending, zone)
		inner := produce
		produce = func(ctx context.Context, out chan<- api.Record) error {
			tee := make(chan api.Record, 64)
			errc := make(chan error, 1)
			go func() {
				defer close(tee)
				errc <- inner(ctx, tee)
			}()
			var sendErr error
			for r := range tee {
				if sendErr != nil {
					continue // drain
				}
				a.record(cm.loc, r) // before transform sees it: a commit never covers an unarchived record
				sendErr = sendRecord(ctx, out, r)
			}
			return errors.Join(<-errc, sendErr)
		}
	}
	return j.flow(ctx, zone, cm, produce)
}

// flow runs produce → transform → committer, with zone-less times read in
// zone.
func (j *runner) flow(ctx context.Context, zone *time.Location, cm *committer, produce func(context.Context, chan<- api.Record) error) error {
	tc := j.Transform
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
	tc.NaiveZone = zone
	stage := transform.New(tc)
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
		if loadErr == nil {
			loadErr = cm.wait()
		}
		cancel()
	}
	if err := cm.wait(); loadErr == nil {
		loadErr = err
	}
	cm.release()
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
// contact always has its children. It commits once CommitRows rows or
// CommitBytes bytes are covered, at the end of each window, and at a
// reconciliation. A commit runs in the background while the next chunk is
// gathered (one at a time, in order); the next commit, a reconciliation
// and the end of the pipe wait for it.
type committer struct {
	j         *runner
	loc       string
	wins      []*Window
	idx       int // current window
	watermark time.Time

	pend, cov           map[string][]arrow.RecordBatch // after / before the latest mark
	pendRows, covRows   int
	pendBytes, covBytes int64
	inflight            chan error // the running commit's outcome; nil: none
	swept               []string
	state               []load.Window
	marks               []load.Watermark
	committed           transform.Counts // rows this committer committed
	client              *extract.Client
	pending             map[string]bool // contacts with a pending retry
	retries             []load.Retry
	retried             []load.RetryKey
	deletes             []load.Delete
	// perContact are the child tables read per contact, in full, before
	// the page, sweep and read-again marks that name the contacts (nil:
	// none); lists are, per table, the contacts so read since the last
	// commit whose live rows the commit did not hold are soft-deleted
	// (deleted upstream). With recentSince set (a first load), a search
	// page's contacts are listed only if their dateUpdated is at or after
	// it. window holds the contacts the marks since the last commit named:
	// a mark naming one again commits those first, so that the rows of
	// its first read are stored when the second read's list is compared.
	perContact  []string
	lists       map[string][]string
	recentSince time.Time
	window      map[string]struct{}
}

func (c *committer) requests() int64 {
	if c.client == nil {
		return 0
	}
	return c.client.Stats().Requests.Load()
}

func (c *committer) add(ctx context.Context, b transform.Batch) error {
	if b.Mark == nil {
		if c.pend == nil {
			c.pend = map[string][]arrow.RecordBatch{}
		}
		c.pend[b.Table] = append(c.pend[b.Table], b.Rec)
		c.pendRows += int(b.Rec.NumRows())
		c.pendBytes += recordBytes(b.Rec)
		return nil
	}
	m := b.Mark
	lists := len(c.perContact) > 0 && len(m.IDs) > 0 && (m.Resource == api.ResourceContacts || m.Resource == extract.MarkSweep || m.Resource == extract.MarkRetry)
	if lists && c.readAgain(m.IDs) {
		if err := c.flush(ctx); err != nil {
			return err
		}
	}
	c.rejected(m, b.Rejected)
	if lists {
		if c.window == nil {
			c.window = map[string]struct{}{}
		}
		for _, id := range m.IDs {
			c.window[id] = struct{}{}
		}
		ids := m.IDs
		if !c.recentSince.IsZero() && m.Updated != nil {
			ids = updatedSince(m.IDs, m.Updated, c.recentSince)
		}
		c.listed(ids, b.Rejected)
	}
	if len(m.Gone) > 0 {
		c.deletes = append(c.deletes, goneDeletes(c.j.Run.Source, m.Gone, c.j.now())...)
	}
	if m.Listing != nil {
		if err := c.unlisted(ctx, m.Listing); err != nil {
			return err
		}
	}
	if c.cov == nil {
		c.cov = map[string][]arrow.RecordBatch{}
	}
	for t, recs := range c.pend {
		c.cov[t] = append(c.cov[t], recs...)
	}
	c.covRows += c.pendRows
	c.covBytes += c.pendBytes
	c.pend, c.pendRows, c.pendBytes = nil, 0, 0
	if m.Resource != markReconcile {
		c.swept = append(c.swept, m.IDs...)
	}
	switch {
	case m.Resource == markFirstLoad:
		if err := c.flushWait(ctx); err != nil {
			return err
		}
		return c.firstLoad(ctx)
	case m.Resource == markReconcile:
		if err := c.flushWait(ctx); err != nil {
			return err
		}
		return c.reconcile(ctx, m.IDs)
	case m.Resource == api.ResourceContacts && c.idx < len(c.wins):
		w := c.wins[c.idx]
		if m.Done {
			w.Status, w.Cursor = "done", ""
			c.state = append(c.state, w.Window)
			if w.Kind == KindRun {
				if v := w.End.Add(-c.j.Options.Lookback); v.After(c.watermark) {
					c.watermark = v
					c.marks = append(c.marks, load.Watermark{Source: w.Source, LocationID: c.loc, Resource: w.Resource, Value: v})
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
			w.Cursor = string(cur)
			c.state = append(c.state, w.Window)
		}
	}
	if c.covRows >= c.j.CommitRows || c.covBytes >= c.j.CommitBytes {
		return c.flush(ctx)
	}
	return nil
}

// flush starts the commit of the covered rows with the state changes since
// the last commit, once the previous commit has ended (and returns that
// one's error, if it failed: then nothing more is committed). Rows after
// the latest mark stay pending.
func (c *committer) flush(ctx context.Context) error {
	if c.covRows == 0 && len(c.state) == 0 && len(c.marks) == 0 && len(c.swept) == 0 && len(c.retries)+len(c.retried)+len(c.deletes) == 0 {
		return nil
	}
	cm := &load.Commit{RunID: c.j.Run.ID, Records: c.cov, Watermarks: c.marks, Windows: dedupWindows(c.state),
		Retries: c.retries, RetriesDone: c.retried, Deletes: c.deletes}
	if len(c.swept) > 0 {
		cm.Swept = []load.Swept{{Source: c.j.Run.Source, LocationID: c.loc, ContactIDs: c.swept, At: c.j.now(), RunID: c.j.Run.ID}}
	}
	rows, bytes, lists := c.covRows, c.covBytes, c.lists
	c.cov, c.covRows, c.covBytes, c.swept, c.state, c.marks, c.retries, c.retried, c.deletes = nil, 0, 0, nil, nil, nil, nil, nil, nil
	c.lists, c.window = nil, nil
	if err := c.wait(); err != nil {
		releaseRecs(cm.Records)
		return err
	}
	done := make(chan error, 1)
	c.inflight = done
	go func() {
		start := time.Now()
		c.j.Log.Debug("commit start", "location", c.loc, "rows", rows, "bytes", bytes)
		err := c.j.commitWith(ctx, c, func(ctx context.Context) (*load.Commit, error) {
			return cm, c.unlistedChildren(ctx, cm, lists)
		})
		c.j.Log.Debug("commit", "location", c.loc, "rows", rows, "took", time.Since(start), "err", err)
		releaseRecs(cm.Records)
		if err != nil {
			err = fmt.Errorf("commit: %w", err)
		}
		done <- err
	}()
	return nil
}

// wait waits for the running commit, if any, and returns its error.
func (c *committer) wait() error {
	if c.inflight == nil {
		return nil
	}
	err := <-c.inflight
	c.inflight = nil
	return err
}

// flushWait commits what is covered and waits until it is committed.
func (c *committer) flushWait(ctx context.Context) error {
	if err := c.flush(ctx); err != nil {
		return err
	}
	return c.wait()
}

// reconcile soft-deletes the location's stored contacts that are not in
// listed (the live ids upstream, sorted here in place), and their
// children. The stored ids stream past listed, read in the commit's
// opening of the warehouse: only the gone ones are kept.
func (c *committer) reconcile(ctx context.Context, listed []string) error {
	src := c.j.Run.Source
	var gone []string
	err := c.j.commitWith(ctx, c, func(ctx context.Context) (*load.Commit, error) {
		var err error
		gone, err = unlisted(listed, func(fn func(string) error) error {
			return c.j.Sink.EachLiveContact(ctx, src, c.loc, func(id string, _ int64) error { return fn(id) })
		})
		if err != nil {
			return nil, err
		}
		cm := &load.Commit{RunID: c.j.Run.ID, Reconciled: []load.Reconcile{{Source: src, LocationID: c.loc, At: c.j.Run.StartedAt,
			RunID: c.j.Run.ID, Listed: len(listed), Deleted: len(gone)}}}
		cm.Deletes = goneDeletes(src, gone, c.j.now())
		return cm, nil
	})
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	c.j.Log.Info("reconciled", "location", c.loc, "listed", len(listed), "deleted", len(gone))
	return nil
}

// firstLoad records the reconciliation of a location's first full load as
// done: its search listed every live id, and nothing was stored before.
func (c *committer) firstLoad(ctx context.Context) error {
	var live int
	// The count and the commit share one opening of the warehouse.
	err := c.j.commitWith(ctx, c, func(ctx context.Context) (*load.Commit, error) {
		// Only the count: no map of every live id.
		var err error
		if _, live, err = c.j.Sink.SweepCandidates(ctx, c.j.Run.Source, c.loc, 0, c.j.Run.StartedAt); err != nil {
			return nil, err
		}
		return &load.Commit{RunID: c.j.Run.ID, Reconciled: []load.Reconcile{{Source: c.j.Run.Source, LocationID: c.loc,
			At: c.j.Run.StartedAt, RunID: c.j.Run.ID, Listed: live}}}, nil
	})
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	c.j.Log.Info("reconciled by the first load", "location", c.loc, "listed", live)
	return nil
}

// listed notes that the children of ids, per table read per contact,
// were read in full: the commit soft-deletes their other live rows. A
// contact with a rejected record (or list) of a table is left out for that
// table: what the API holds of it is not known.
func (c *committer) listed(ids []string, rs []transform.Rejected) {
	bad := map[string]bool{}
	for _, r := range rs {
		bad[r.Resource+"|"+r.ContactID] = true
	}
	if c.lists == nil {
		c.lists = map[string][]string{}
	}
	for _, t := range c.perContact {
		for _, id := range ids {
			if !bad[t+"|"+id] {
				c.lists[t] = append(c.lists[t], id)
			}
		}
	}
}

// readAgain reports whether a mark since the last commit named one of ids.
func (c *committer) readAgain(ids []string) bool {
	for _, id := range ids {
		if _, ok := c.window[id]; ok {
			return true
		}
	}
	return false
}

// updatedSince returns the ids whose dateUpdated (updated[i], as the search
// gave it) is at or after since, or is missing or unreadable.
func updatedSince(ids, updated []string, since time.Time) []string {
	var out []string
	for i, id := range ids {
		var u string
		if i < len(updated) {
			u = updated[i]
		}
		t, err := transform.ParseTime(u, time.UTC)
		if err != nil || t.IsZero() || !t.Before(since) {
			out = append(out, id)
		}
	}
	return out
}

// unlistedChildren adds to cm the soft-deletes of the live rows of the
// listed contacts (per table) that cm does not hold: the contact's list
// no longer names them. It runs when cm is committed, in the same batch,
// so it sees every earlier commit.
func (c *committer) unlistedChildren(ctx context.Context, cm *load.Commit, lists map[string][]string) error {
	for _, table := range slices.Sorted(maps.Keys(lists)) {
		live, err := c.j.Sink.LiveChildren(ctx, c.j.Run.Source, c.loc, table, lists[table])
		if err != nil {
			return err
		}
		t, _ := whsql.ByName(table)
		held := map[string]bool{}
		for _, r := range cm.Records[table] {
			if col, ok := r.Column(r.Schema().FieldIndices(t.Key[1])[0]).(*array.String); ok {
				for i := range col.Len() {
					held[col.Value(i)] = true
				}
			}
		}
		if d, ok := c.unlistedDelete(table, live, held); ok {
			cm.Deletes = append(cm.Deletes, d)
		}
	}
	return nil
}

// rejected turns the records a mark's page rejected (whole or in part)
// into retries of their contacts, and the pending retries among the
// contacts the mark read in full without a reject into done ones.
func (c *committer) rejected(m *api.Mark, rs []transform.Rejected) {
	if c.j.Options.RetryAttempts <= 0 || m.Resource == markReconcile || m.Resource == markFirstLoad {
		return
	}
	now := c.j.now()
	again := map[string]bool{}
	for _, r := range rs {
		if r.ContactID == "" {
			continue // no usable id: nothing to read again by
		}
		again[r.ContactID] = true
		reason := r.Reason
		if !r.Whole {
			reason = "fields not mapped: " + strings.Join(r.Fields, ", ")
		}
		c.retries = append(c.retries, load.Retry{Source: c.j.Run.Source, LocationID: c.loc, ContactID: r.ContactID,
			Resource: r.Resource, RecordID: r.RecordID, Reason: reason, RunID: c.j.Run.ID, At: now})
	}
	for _, id := range m.IDs {
		if c.pending[id] && !again[id] {
			delete(c.pending, id)
			c.retried = append(c.retried, load.RetryKey{Source: c.j.Run.Source, LocationID: c.loc, ContactID: id})
		}
	}
}

// commit hands cm to the sink (one commit at a time across locations) and,
// when it succeeded, counts its rows as committed.
func (j *runner) commit(ctx context.Context, cm *load.Commit, c *committer) error {
	return j.commitWith(ctx, c, func(context.Context) (*load.Commit, error) { return cm, nil })
}

// commitWith commits what build returns; build runs under the sink's lock
// in the same batch (one opening of a DuckDB file) as the commit, and may
// read the sink with the context it is given.
func (j *runner) commitWith(ctx context.Context, c *committer, build func(context.Context) (*load.Commit, error)) error {
	if j.Archive != nil {
		if err := j.Archive.sync(c.loc); err != nil {
			return err
		}
	}
	j.mu.Lock()
	var cm *load.Commit
	err := load.Batch(ctx, j.Sink, func(ctx context.Context) error {
		var err error
		if cm, err = build(ctx); err != nil {
			return err
		}
		return j.Sink.Commit(ctx, cm)
	})
	if err == nil {
		j.commits++
		if c.committed == nil {
			c.committed = transform.Counts{}
		}
		for t, recs := range cm.Records {
			for _, r := range recs {
				j.counts[t] += r.NumRows()
				c.committed[t] += r.NumRows()
			}
		}
	}
	j.mu.Unlock()
	if err == nil && j.Progress != nil {
		j.progress.Lock()
		j.Progress(Progress{Location: c.loc, Committed: maps.Clone(c.committed), Requests: c.requests()})
		j.progress.Unlock()
	}
	return err
}

// release drops what was not committed. The running commit, if any, must
// have been waited for.
func (c *committer) release() {
	releaseRecs(c.pend)
	releaseRecs(c.cov)
	c.pend, c.cov, c.pendRows, c.covRows, c.pendBytes, c.covBytes = nil, nil, 0, 0, 0, 0
}

// goneDeletes soft-deletes contacts deleted upstream and their children.
func goneDeletes(source string, ids []string, at time.Time) []load.Delete {
	if len(ids) == 0 {
		return nil
	}
	out := []load.Delete{{Table: api.ResourceContacts, Source: source, IDs: ids, At: at}}
	for _, t := range append(slices.Clone(extract.ChildResources), whsql.ContactCustomFields.Name) {
		out = append(out, load.Delete{Table: t, Source: source, IDs: ids, At: at, ByContact: true})
	}
	return out
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

// recordBytes is the size of a record's Arrow buffers.
func recordBytes(r arrow.RecordBatch) int64 {
	var n int64
	for _, col := range r.Columns() {
		n += dataBytes(col.Data())
	}
	return n
}

func dataBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, ch := range d.Children() {
		n += dataBytes(ch)
	}
	return n
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

func sendRecord(ctx context.Context, out chan<- api.Record, r api.Record) error {
	select {
	case out <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

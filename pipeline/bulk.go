package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/load"
)

// Defaults of BulkOptions: the time range of the calendar events a run
// reads when the bulk appointments path is used.
//
// A full run (the location's first load, or --full) reads every calendar
// from DefaultEventsHistory before the run's start to DefaultEventsAhead
// after it: the earliest appointment it can know of is the earliest it
// asks for. An incremental run reads [start - DefaultEventsBack, start +
// DefaultEventsAhead), one 366-day window per calendar: appointments added
// or changed there arrive in the next run, whatever the contact's
// dateUpdated. Changes to appointments starting outside that range arrive
// with the next full run.
const (
	DefaultEventsHistory = 10 * 366 * 24 * time.Hour
	DefaultEventsBack    = 31 * 24 * time.Hour
	DefaultEventsAhead   = 335 * 24 * time.Hour
)

// BulkOptions say whether and how a run reads tasks and appointments with
// the bulk endpoints. The zero value uses them where the token may, with
// the default ranges.
type BulkOptions struct {
	// Off reads tasks and appointments per contact, as without the scopes.
	Off bool
	// EventsFrom is where a full run's appointments start (zero: the run's
	// start minus DefaultEventsHistory).
	EventsFrom time.Time
	// EventsBack and EventsAhead bound an incremental run's appointments
	// around the run's start (DefaultEventsBack, DefaultEventsAhead if 0).
	EventsBack, EventsAhead time.Duration
}

// Read paths of a location's tasks and appointments, as logged.
const (
	PathBulk       = "bulk"
	PathPerContact = "per-contact"
)

// bulkPlan is what the probes at a location's start decided.
type bulkPlan struct {
	tasks      bool
	firstTasks []json.RawMessage
	events     bool
	probe      extract.EventsProbe
}

// children are the per-contact resources left once the bulk paths are
// taken out.
func (b bulkPlan) children(all []string) []string {
	return slices.DeleteFunc(slices.Clone(all), func(r string) bool {
		return (b.tasks && r == api.ResourceTasks) || (b.events && r == api.ResourceAppointments)
	})
}

// eventsRange is the range of appointments a run reads in bulk.
func (j *runner) eventsRange(full bool) (time.Time, time.Time) {
	return j.Bulk.eventsRange(j.Run.StartedAt, full)
}

// eventsRange is the range of appointments a run starting at start reads
// in bulk (a full run's or an incremental run's).
func (o BulkOptions) eventsRange(start time.Time, full bool) (time.Time, time.Time) {
	ahead := o.EventsAhead
	if ahead <= 0 {
		ahead = DefaultEventsAhead
	}
	if full {
		from := o.EventsFrom
		if from.IsZero() {
			from = start.Add(-DefaultEventsHistory)
		}
		return from, start.Add(ahead)
	}
	back := o.EventsBack
	if back <= 0 {
		back = DefaultEventsBack
	}
	return start.Add(-back), start.Add(ahead)
}

// probeBulk decides, once at a location's start, which bulk paths the run
// uses: each only when the stream wants the resource, the token has the
// scope and the endpoint answers in a usable shape. Anything else falls
// back to per-contact requests, with one log line per resource. The probe
// pages are the first pages of the listings (no request is spent twice).
func (j *runner) probeBulk(ctx context.Context, l Location, full bool) (bulkPlan, error) {
	var b bulkPlan
	if j.Bulk.Off || j.Options.Backfill {
		return b, nil
	}
	c := l.Client
	loc := c.Location()
	// With the granted scopes known, a path whose scope is missing costs no
	// probe: the run then spends exactly today's per-contact requests.
	lacks := func(scopes ...string) error {
		if l.Scopes == nil {
			return nil
		}
		for _, sc := range scopes {
			if !slices.Contains(l.Scopes, sc) {
				return fmt.Errorf("the token was not granted %s", sc)
			}
		}
		return nil
	}
	refused, err := j.refusedProbes(ctx, l)
	if err != nil {
		return b, err
	}
	var remember []load.Probe
	probed := func(res string, err error) error {
		if err != nil && ctx.Err() == nil && l.TokenID != "" && (errors.Is(err, extract.ErrNoBulkScope) || errors.Is(err, extract.ErrUnusableBulk)) {
			remember = append(remember, load.Probe{Source: j.Run.Source, LocationID: loc, TokenID: l.TokenID, Resource: res,
				Reason: err.Error(), At: j.Run.StartedAt})
		}
		return err
	}
	say := func(res string, err error) error {
		if err == nil {
			j.Log.Info("reading "+res+" in bulk", "location", loc, "path", PathBulk)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		j.Log.Info("reading "+res+" per contact", "location", loc, "path", PathPerContact, "reason", err)
		return nil
	}
	if slices.Contains(j.Stream.Children, api.ResourceTasks) {
		var first []json.RawMessage
		err := lacks(api.ScopeTasksRO)
		if err == nil {
			err = refused[api.ResourceTasks]
		}
		if err == nil {
			first, err = c.ProbeTasks(ctx)
			err = probed(api.ResourceTasks, err)
		}
		if err := say(api.ResourceTasks, err); err != nil {
			return b, err
		}
		b.tasks, b.firstTasks = err == nil, first
	}
	if slices.Contains(j.Stream.Children, api.ResourceAppointments) {
		from, to := j.eventsRange(full)
		var p extract.EventsProbe
		err := lacks(api.ScopeCalendarsRO, api.ScopeEventsRO)
		if err == nil {
			err = refused[api.ResourceAppointments]
		}
		if err == nil {
			p, err = c.ProbeEvents(ctx, from, to)
			err = probed(api.ResourceAppointments, err)
		}
		if err := say(api.ResourceAppointments, err); err != nil {
			return b, err
		}
		b.events, b.probe = err == nil, p
	}
	if len(remember) > 0 {
		cm := &committer{j: j, loc: loc, client: c}
		if err := j.commit(ctx, &load.Commit{RunID: j.Run.ID, Probes: remember}, cm); err != nil {
			return b, fmt.Errorf("remember probes: %w", err)
		}
	}
	return b, nil
}

// ProbeMemory is how long a bulk probe a token was refused is remembered
// (Location.TokenID): later runs with the same token read the resource
// per contact without asking; after it, or with another token, they probe
// again. `check` always probes.
const ProbeMemory = 24 * time.Hour

// refusedProbes returns, by resource, why the location's token was
// refused a bulk probe less than ProbeMemory before the run's start.
func (j *runner) refusedProbes(ctx context.Context, l Location) (map[string]error, error) {
	out := map[string]error{}
	if l.TokenID == "" {
		return out, nil
	}
	j.mu.Lock()
	ps, err := j.Sink.Probes(ctx, j.Run.Source, l.Client.Location())
	j.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.TokenID == l.TokenID && j.Run.StartedAt.Sub(p.At) < ProbeMemory && !p.At.After(j.Run.StartedAt) {
			out[p.Resource] = fmt.Errorf("refused at %s, not asked again before %s: %s", p.At.Format(time.RFC3339),
				p.At.Add(ProbeMemory).Format(time.RFC3339), p.Reason)
		}
	}
	return out, nil
}

// TokenID is the identity under which a token's probe outcomes are
// remembered: kind (e.g. "static", "oauth") and a salted SHA-256 prefix of
// what identifies the token (a static token, an OAuth client id). It is
// not secret and cannot be turned back into the token.
func TokenID(kind, secret string) string {
	h := sha256.Sum256([]byte("contacts-etl probe identity\x00" + kind + "\x00" + secret))
	return kind + ":" + hex.EncodeToString(h[:8])
}

// batchTasks says whether contacts read by id (Targets) get their tasks in
// batches with tasks/search's contactId filter: when the bulk paths are
// on and the token may have the scope (a refusal costs one request, then
// the tasks are read per contact).
func (j *runner) batchTasks(ctx context.Context, l Location) bool {
	if j.Bulk.Off || j.Options.Backfill || (l.Scopes != nil && !slices.Contains(l.Scopes, api.ScopeTasksRO)) {
		return false
	}
	refused, err := j.refusedProbes(ctx, l)
	return err != nil || refused[api.ResourceTasks] == nil
}

// streamBulk sends the bulk listings the plan took.
func (j *runner) streamBulk(ctx context.Context, c *extract.Client, b bulkPlan, out chan<- api.Record) error {
	if b.tasks {
		if err := extract.StreamTasks(ctx, c, b.firstTasks, out); err != nil {
			return err
		}
	}
	if b.events {
		return extract.StreamEvents(ctx, c, b.probe, j.Stream.Concurrency, out)
	}
	return nil
}

// unlisted soft-deletes, with the next commit, the location's live rows of
// a complete bulk listing's resource (within its time range) that the
// listing did not name: they were deleted upstream, whether or not their
// contact changed. Only a listing that completed carries a Listing.
func (c *committer) unlisted(ctx context.Context, l *api.Listing) error {
	c.j.mu.Lock()
	live, err := c.j.Sink.LiveIDs(ctx, c.j.Run.Source, c.loc, l.Resource, l.From, l.To)
	c.j.mu.Unlock()
	if err != nil {
		return err
	}
	listed := make(map[string]bool, len(l.IDs))
	for _, id := range l.IDs {
		listed[id] = true
	}
	if d, ok := c.unlistedDelete(l.Resource, live, listed); ok {
		c.deletes = append(c.deletes, d)
	}
	return nil
}

// unlistedDelete is the soft-delete, logged, of the ids of live rows of
// table that a complete listing did not name (ok false: none).
func (c *committer) unlistedDelete(table string, live []string, named map[string]bool) (d load.Delete, ok bool) {
	var gone []string
	for _, id := range live {
		if !named[id] {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return d, false
	}
	slices.Sort(gone)
	c.j.Log.Info("deleted upstream", "location", c.loc, "resource", table, "records", len(gone))
	return load.Delete{Table: table, Source: c.j.Run.Source, IDs: gone, At: c.j.now()}, true
}

package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// ApplyFunc reads the named contacts (by location) and commits them: the
// warehouse's merge must be idempotent, since after a crash between the
// commit and MarkApplied the same events are applied again. It returns
// the run id (for LastApply) or an error, in which case nothing is marked.
type ApplyFunc func(ctx context.Context, targets map[string][]string) (runID string, err error)

// Applier turns unapplied events into one targeted read. One Once at a
// time; safe for concurrent use.
type Applier struct {
	Inbox *Inbox
	Apply ApplyFunc
	// Locations, if set, are the locations this exporter serves; events of
	// others are counted as ignored.
	Locations []string
	// MaxEvents bounds the events of one apply (0: all).
	MaxEvents int
	Log       *slog.Logger
	Now       func() time.Time
	mu        sync.Mutex
}

// Dirty groups events into the contacts to read per location (sorted,
// unique). Events without a contact (TaskCreate without contactId: the API
// has no way to read a task without its contact) are counted unresolved
// and left to the scheduled run, which sees the contact's dateUpdated
// bump; unknown types and locations are counted ignored.
func Dirty(evs []Event, locations []string) (targets map[string][]string, unresolved, ignored int) {
	targets = map[string][]string{}
	for _, ev := range evs {
		switch {
		case !Known(ev.Type) || ev.LocationID == "" || (locations != nil && !slices.Contains(locations, ev.LocationID)):
			ignored++
		case ev.ContactID == "":
			unresolved++
		default:
			targets[ev.LocationID] = append(targets[ev.LocationID], ev.ContactID)
		}
	}
	for l, ids := range targets {
		slices.Sort(ids)
		targets[l] = slices.Compact(ids)
	}
	return targets, unresolved, ignored
}

// Once applies every unapplied event (up to MaxEvents): one ApplyFunc
// call, then MarkApplied. With no events it does nothing.
func (a *Applier) Once(ctx context.Context) (LastApply, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	log := a.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b, err := a.Inbox.Unapplied(a.MaxEvents)
	if err != nil || len(b.Records) == 0 {
		return LastApply{}, err
	}
	evs := make([]Event, 0, len(b.Records))
	bad := 0
	for _, r := range b.Records {
		ev, err := ParseEvent(r.Body)
		if err != nil {
			bad++ // verified but unreadable now: nothing to apply
			continue
		}
		evs = append(evs, ev)
	}
	targets, unresolved, ignored := Dirty(evs, a.Locations)
	last := LastApply{Events: len(b.Records), Unresolved: unresolved, Ignored: ignored + bad}
	for _, ids := range targets {
		last.Contacts += len(ids)
	}
	if len(targets) > 0 {
		id, err := a.Apply(ctx, targets)
		if err != nil {
			return last, fmt.Errorf("webhook apply of %d events: %w", len(b.Records), err)
		}
		last.RunID = id
	}
	last.At = now().UTC()
	if err := a.Inbox.MarkApplied(b, last); err != nil {
		return last, err
	}
	log.Info("webhook apply", "events", last.Events, "contacts", last.Contacts, "unresolved", last.Unresolved, "ignored", last.Ignored, "run_id", last.RunID)
	return last, nil
}

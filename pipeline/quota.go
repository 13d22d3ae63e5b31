package pipeline

import (
	"errors"
	"sync"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/auth"
	"github.com/contacts-etl/contacts-etl/load"
)

// ErrPartial wraps the error of a run in which some locations stopped early
// for a reason that the next run resolves or that needs the user (daily
// quota reserve, a cursor the API does not advance, a malformed search page,
// credentials refused or missing) while everything fetched was committed and
// the other locations went on. The CLI exits 3.
var ErrPartial = errors.New("run partial")

// ErrUnusable marks a location whose credentials were found unusable
// before the run, so it was not read.
var ErrUnusable = errors.New("no usable credentials")

// LocationError is the error of one location of a run.
type LocationError struct {
	Location string
	Err      error
}

func (e *LocationError) Error() string { return "location " + e.Location + ": " + e.Err.Error() }
func (e *LocationError) Unwrap() error { return e.Err }

// stopsLocation says whether err stops one location without failing the
// run: the location's data so far is committed and the next run goes on.
func stopsLocation(err error) bool {
	return errors.Is(err, extract.ErrQuotaReserve) || errors.Is(err, extract.ErrCursorStuck) ||
		errors.Is(err, extract.ErrBadPage) || errors.Is(err, auth.ErrCredentials) || errors.Is(err, ErrUnusable)
}

// stops collects the locations that stopped early (see stopsLocation).
// Locations are independent, so one location's stop must not cancel the
// others: filter swallows the error (returning nil to the errgroup) and
// keeps it for err.
type stops struct {
	mu   sync.Mutex
	errs []error
	locs map[string]error
}

func newStops() *stops { return &stops{locs: map[string]error{}} }

func (q *stops) filter(err error, location string) error {
	if !stopsLocation(err) {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.locs[location] = err
	q.errs = append(q.errs, err)
	return nil
}

func (q *stops) err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return errors.Join(q.errs...)
}

// only says whether err is nothing but stops: the run is then partial
// (everything fetched is committed, the next run carries on), not failed.
func (q *stops) only(err error) bool {
	switch e := err.(type) {
	case *LocationError:
		return stopsLocation(e.Err)
	case interface{ Unwrap() []error }: // the join of the locations' errors
		for _, p := range e.Unwrap() {
			if !q.only(p) {
				return false
			}
		}
		return len(e.Unwrap()) > 0
	}
	return stopsLocation(err)
}

func (q *stops) stopped() map[string]error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.locs
}

// stopReason names why a location stopped, for the runs table.
func stopReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, extract.ErrQuotaReserve):
		return "quota"
	case errors.Is(err, extract.ErrCursorStuck):
		return "cursor"
	case errors.Is(err, extract.ErrBadPage):
		return "bad-page"
	case errors.Is(err, auth.ErrCredentials), errors.Is(err, ErrUnusable):
		return "credentials"
	}
	return "error"
}

// locationStats reads each client's counters for the runs table.
func locationStats(locs []Location, stopped map[string]error) map[string]load.LocationStats {
	out := make(map[string]load.LocationStats, len(locs))
	for _, l := range locs {
		c := l.Client
		s := c.Stats()
		rem, _, used := s.Quota()
		out[c.Location()] = load.LocationStats{
			Requests: s.Requests.Load(), Retries: s.Retries.Load(), RateLimited: s.RateLimited.Load(),
			Failures: s.Failures.Load(), WaitMs: s.WaitNanos.Load() / 1e6, QuotaUsed: used, DailyRemaining: rem,
			Stopped: stopReason(stopped[c.Location()]),
		}
	}
	return out
}

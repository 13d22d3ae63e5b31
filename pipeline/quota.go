package pipeline

import (
	"errors"
	"sync"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/load"
)

// quotaStops collects the locations that stopped at their daily reserve.
// Locations have independent quotas, so one location's stop must not cancel
// the others: filter swallows the error (returning nil to the errgroup) and
// keeps it for err.
type quotaStops struct {
	mu   sync.Mutex
	errs []error
	locs map[string]error
}

func newQuotaStops() *quotaStops { return &quotaStops{locs: map[string]error{}} }

func (q *quotaStops) filter(err error, location string) error {
	if !errors.Is(err, extract.ErrQuotaReserve) {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.locs[location] = err
	q.errs = append(q.errs, err)
	return nil
}

func (q *quotaStops) err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return errors.Join(q.errs...)
}

// only says whether err is nothing but quota stops: the run is then partial
// (everything fetched is committed, the next run carries on), not failed.
func (q *quotaStops) only(err error) bool {
	var multi interface{ Unwrap() []error }
	if errors.As(err, &multi) {
		for _, e := range multi.Unwrap() {
			if !q.only(e) {
				return false
			}
		}
		return len(multi.Unwrap()) > 0
	}
	return errors.Is(err, extract.ErrQuotaReserve)
}

func (q *quotaStops) stopped() map[string]error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.locs
}

// locationStats reads each client's counters for the runs table.
func locationStats(locs []Location, stopped map[string]error) map[string]load.LocationStats {
	out := make(map[string]load.LocationStats, len(locs))
	for _, l := range locs {
		c := l.Client
		s := c.Stats()
		rem, _, used := s.Quota()
		ls := load.LocationStats{
			Requests: s.Requests.Load(), Retries: s.Retries.Load(), RateLimited: s.RateLimited.Load(),
			Failures: s.Failures.Load(), WaitMs: s.WaitNanos.Load() / 1e6, QuotaUsed: used, DailyRemaining: rem,
		}
		if stopped[c.Location()] != nil {
			ls.Stopped = "quota"
		}
		out[c.Location()] = ls
	}
	return out
}

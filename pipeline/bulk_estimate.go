package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
)

// BulkForecast is what the bulk probes of one location say: the path each
// of tasks and appointments would take and what the bulk listings cost.
type BulkForecast struct {
	// Tasks and Appointments are PathBulk or PathPerContact ("" when the
	// run does not read the resource).
	Tasks, Appointments string
	// TasksWhy and AppointmentsWhy say why a path is per-contact.
	TasksWhy, AppointmentsWhy string
	// TaskPages is the number of tasks/search requests a run spends
	// listing every task (0 per-contact).
	TaskPages int
	// EventRequests is the calendar list plus one events request per
	// calendar and window (0 per-contact).
	EventRequests int
	// Calendars and Windows make EventRequests - 1.
	Calendars, Windows int
	// Probes is the number of requests the probes spent.
	Probes int
}

// Requests is what the bulk listings cost a run.
func (b BulkForecast) Requests() int { return b.TaskPages + b.EventRequests }

// Left are the children still read per contact.
func (b BulkForecast) Left(children []string) []string {
	return slices.DeleteFunc(slices.Clone(children), func(r string) bool {
		return (b.Tasks == PathBulk && r == api.ResourceTasks) || (b.Appointments == PathBulk && r == api.ResourceAppointments)
	})
}

// ProbeBulk probes the bulk paths of c's location the way a run does
// (the first task page; the calendar list and the first events window of
// the range a full or an incremental run starting at now reads) and counts
// the requests the listings would take: task pages by probing with one-task
// pages at doubling, then halving offsets (about 2 log2(pages) requests),
// event windows from the range. Anything a run would fall back on is
// reported per-contact with its reason; only a cancelled ctx is an error.
func ProbeBulk(ctx context.Context, c *extract.Client, children []string, o BulkOptions, now time.Time, full bool) (b BulkForecast, _ error) {
	if o.Off {
		return b, nil
	}
	before := c.Stats().Requests.Load()
	defer func() { b.Probes = int(c.Stats().Requests.Load() - before) }()
	if slices.Contains(children, api.ResourceTasks) {
		first, err := c.ProbeTasks(ctx)
		if err == nil {
			b.TaskPages, err = taskPages(ctx, c, first)
		}
		if ctx.Err() != nil {
			return b, ctx.Err()
		}
		b.Tasks = PathBulk
		if err != nil {
			b.Tasks, b.TasksWhy, b.TaskPages = PathPerContact, why(err), 0
		}
	}
	if slices.Contains(children, api.ResourceAppointments) {
		from, to := o.eventsRange(now, full)
		p, err := c.ProbeEvents(ctx, from, to)
		if ctx.Err() != nil {
			return b, ctx.Err()
		}
		b.Appointments = PathBulk
		if err != nil {
			b.Appointments, b.AppointmentsWhy = PathPerContact, why(err)
		} else {
			b.Calendars, b.Windows = len(p.Calendars), len(extract.EventWindows(from, to, 0))
			b.EventRequests = 1 + b.Calendars*b.Windows
		}
	}
	return b, nil
}

// taskPages is the number of pages StreamTasks reads after first: it
// pages until a short page, so a listing whose last page is full reads one
// empty page more.
func taskPages(ctx context.Context, c *extract.Client, first []json.RawMessage) (int, error) {
	const L = extract.TaskPageLimit
	if len(first) < L {
		return 1, nil
	}
	has := func(skip int) (bool, error) {
		page, err := c.TasksPage(ctx, skip, 1)
		return len(page) > 0, err
	}
	lo, hi := 0, 1 // page lo has tasks; page hi is to be tried
	for {
		ok, err := has(hi * L)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		lo, hi = hi, 2*hi
	}
	for hi-lo > 1 {
		m := (lo + hi) / 2
		ok, err := has(m * L)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = m
		} else {
			hi = m
		}
	}
	full, err := has(lo*L + L - 1)
	if err != nil {
		return 0, err
	}
	if full {
		return lo + 2, nil
	}
	return lo + 1, nil
}

// why is the short reason of a fallback: the missing scope, or the error.
func why(err error) string {
	if errors.Is(err, extract.ErrNoBulkScope) {
		return "the token lacks the scope"
	}
	return err.Error()
}

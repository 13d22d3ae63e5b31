package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/auth"
)

// Bulk endpoints (api.md): every task of a location through
// POST /locations/{locationId}/tasks/search, paged by limit and skip, and
// every appointment through GET /calendars/ then GET /calendars/events per
// calendar over time windows. Each needs an optional scope; a run uses them
// only when the probe (ProbeTasks, ProbeEvents) says they answer.

// TaskPageLimit is the limit asked of tasks/search. The vendor spec states a
// default of 25 and no maximum; 100 is the largest the simulator accepts.
const TaskPageLimit = 100

// MaxEventsRange is the longest time range one calendar events request
// asks for; longer ranges are split into windows. The vendor spec states no
// maximum; the simulator refuses more than 366 days.
const MaxEventsRange = 366 * 24 * time.Hour

// MarkBulk marks the end of a bulk listing: the records before it are
// complete. It carries no ids and no cursor.
const MarkBulk = "bulk"

// ErrNoBulkScope is returned by the probes when the token lacks the
// endpoint's optional scope (a 401 "not authorized for this scope"); the
// HTTP error is wrapped too.
var ErrNoBulkScope = errors.New("the token lacks the bulk endpoint's scope")

// ErrUnusableBulk is returned when a bulk endpoint answers in a shape the
// exporter cannot use (no tasks, events or calendars field, or no body).
var ErrUnusableBulk = errors.New("bulk endpoint answer cannot be used")

// versionFor is the Version header of a path: the calendar API has its own.
func versionFor(path string) string {
	if strings.HasPrefix(path, "/calendars/") {
		return api.VersionCalendars
	}
	return api.VersionContacts
}

func bulkErr(what string, err error) error {
	var he *api.HTTPError
	if errors.As(err, &he) && he.Status == http.StatusUnauthorized && strings.EqualFold(strings.TrimSpace(he.Message), auth.MsgScope) {
		return fmt.Errorf("%s: %w: %w", what, ErrNoBulkScope, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// TaskBatchContacts is how many contact ids one tasks/search request
// filters on (its contactId array). The vendor spec states no maximum;
// 100 keeps a request body near 2.5 kB.
const TaskBatchContacts = 100

// TasksPage reads one page of the location's tasks (skip, limit). An
// answer without a tasks array fails with ErrUnusableBulk.
func (c *Client) TasksPage(ctx context.Context, skip, limit int) ([]json.RawMessage, error) {
	return c.tasksPage(ctx, nil, skip, limit)
}

// tasksPage is TasksPage, only for the tasks of contacts (all when empty).
func (c *Client) tasksPage(ctx context.Context, contacts []string, skip, limit int) ([]json.RawMessage, error) {
	b, err := c.do(ctx, http.MethodPost, "/locations/"+pathEscape(c.location)+"/tasks/search", nil,
		api.TaskSearchRequest{Limit: limit, Skip: skip, ContactID: contacts})
	if err != nil {
		return nil, bulkErr(fmt.Sprintf("tasks search skip %d", skip), err)
	}
	items, ok := splitBulk(b, "tasks", limit)
	if !ok {
		return nil, fmt.Errorf("tasks search skip %d: %w: no tasks array", skip, ErrUnusableBulk)
	}
	return items, nil
}

// ProbeTasks reads the first page of the location's tasks: it says whether
// the bulk path works (ErrNoBulkScope, ErrUnusableBulk or another error
// when not), and its page is the first of StreamTasks. One request.
func (c *Client) ProbeTasks(ctx context.Context) ([]json.RawMessage, error) {
	return c.TasksPage(ctx, 0, TaskPageLimit)
}

// StreamTasks sends every task of the location, starting with first (the
// page ProbeTasks read) and paging with skip until a short page, then a
// Mark (Resource MarkBulk). Each task's contactId is its parent
// (Record.ContactID). The Mark's Listing names every task listed. One
// request per page; it never closes out.
func StreamTasks(ctx context.Context, c *Client, first []json.RawMessage, out chan<- api.Record) error {
	page, skip := first, 0
	var ids []string
	for {
		for _, it := range page {
			r, id := bulkRecord(c, api.ResourceTasks, it)
			if id != "" {
				ids = append(ids, id)
			}
			if err := send(ctx, out, r); err != nil {
				return err
			}
		}
		if len(page) < TaskPageLimit {
			break
		}
		skip += len(page)
		var err error
		if page, err = c.TasksPage(ctx, skip, TaskPageLimit); err != nil {
			return err
		}
	}
	return send(ctx, out, api.Record{Mark: &api.Mark{LocationID: c.location, Resource: MarkBulk,
		Listing: &api.Listing{Resource: api.ResourceTasks, IDs: ids}}})
}

// bulkRecord is the Record of one listed item, and the item's id ("" when
// it has none that reads as a string).
// StreamContactTasks sends the tasks of the contacts ids, read with
// tasks/search's contactId filter: TaskBatchContacts ids per request body,
// each batch paged with skip until a short page. It sends no Mark. It
// fails with ErrNoBulkScope or ErrUnusableBulk (wrapped) when the endpoint
// cannot be used: the caller then reads the tasks per contact.
func StreamContactTasks(ctx context.Context, c *Client, ids []string, out chan<- api.Record) error {
	for batch := range slices.Chunk(ids, TaskBatchContacts) {
		for skip := 0; ; {
			page, err := c.tasksPage(ctx, batch, skip, TaskPageLimit)
			if err != nil {
				return err
			}
			for _, it := range page {
				r, _ := bulkRecord(c, api.ResourceTasks, it)
				if err := send(ctx, out, r); err != nil {
					return err
				}
			}
			if len(page) < TaskPageLimit {
				break
			}
			skip += len(page)
		}
	}
	return nil
}

func bulkRecord(c *Client, res string, raw json.RawMessage) (api.Record, string) {
	id, contact := bulkKeys(raw) // a record that does not decode is rejected by transform
	return api.Record{Resource: res, LocationID: c.location, ContactID: contact, Raw: raw}, id
}

// bulkKeysJSON is bulkKeys with encoding/json, as bulkRecord read them.
func bulkKeysJSON(raw []byte) (id, contact string) {
	var k map[string]json.RawMessage
	_ = json.Unmarshal(raw, &k)
	_ = json.Unmarshal(k["id"], &id)
	_ = json.Unmarshal(k["contactId"], &contact)
	return id, contact
}

// splitBulk returns the records of a bulk listing's array field name (one
// pass, see splitter), false when the answer has no such array. When the
// splitter refuses the body, encoding/json has the last word.
func splitBulk(b []byte, name string, hint int) ([]json.RawMessage, bool) {
	sp := splitter{list: name, hint: hint}
	if sp.split(b) {
		return sp.items, sp.items != nil
	}
	return splitBulkJSON(b, name)
}

// splitBulkJSON is splitBulk with encoding/json.
func splitBulkJSON(b []byte, name string) ([]json.RawMessage, bool) {
	var items *[]json.RawMessage
	var err error
	switch name {
	case "tasks":
		var r struct {
			Tasks *[]json.RawMessage `json:"tasks"`
		}
		err = json.Unmarshal(b, &r)
		items = r.Tasks
	case "events":
		var r struct {
			Events *[]json.RawMessage `json:"events"`
		}
		err = json.Unmarshal(b, &r)
		items = r.Events
	default:
		return nil, false
	}
	if err != nil || items == nil {
		return nil, false
	}
	return *items, true
}

// Calendars lists the ids of the location's calendars. An answer without a
// calendars array fails with ErrUnusableBulk; calendars without an id are
// left out. One request.
func (c *Client) Calendars(ctx context.Context) ([]string, error) {
	q := url.Values{"locationId": {c.location}}
	b, err := c.do(ctx, http.MethodGet, "/calendars/", q, nil)
	if err != nil {
		return nil, bulkErr("list calendars", err)
	}
	var r struct {
		Calendars *[]json.RawMessage `json:"calendars"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Calendars == nil {
		return nil, fmt.Errorf("list calendars: %w: no calendars array", ErrUnusableBulk)
	}
	var ids []string
	for _, raw := range *r.Calendars {
		var cal api.Calendar
		if json.Unmarshal(raw, &cal) == nil && cal.ID != "" {
			ids = append(ids, cal.ID)
		}
	}
	return ids, nil
}

// Events reads the appointments of one calendar starting in [from, to)
// (at most MaxEventsRange long). One request.
func (c *Client) Events(ctx context.Context, calendarID string, from, to time.Time) ([]json.RawMessage, error) {
	q := url.Values{"locationId": {c.location}, "calendarId": {calendarID},
		"startTime": {strconv.FormatInt(from.UnixMilli(), 10)}, "endTime": {strconv.FormatInt(to.UnixMilli(), 10)}}
	b, err := c.do(ctx, http.MethodGet, "/calendars/events", q, nil)
	if err != nil {
		return nil, bulkErr("calendar "+calendarID+" events", err)
	}
	items, ok := splitBulk(b, "events", 0)
	if !ok {
		return nil, fmt.Errorf("calendar %s events: %w: no events array", calendarID, ErrUnusableBulk)
	}
	return items, nil
}

// EventWindows splits [from, to) into consecutive windows of at most max
// (MaxEventsRange if max <= 0), on whole milliseconds.
func EventWindows(from, to time.Time, max time.Duration) [][2]time.Time {
	if max <= 0 || max > MaxEventsRange {
		max = MaxEventsRange
	}
	// The API speaks epoch milliseconds: a window shorter than one would
	// be empty on the wire.
	from, to = from.Truncate(time.Millisecond), to.Truncate(time.Millisecond)
	var out [][2]time.Time
	for s := from; s.Before(to); s = s.Add(max) {
		out = append(out, [2]time.Time{s, minTime(s.Add(max), to)})
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// EventsProbe is a probe of the bulk appointments path: the calendars and
// the first window's events of the first calendar, which StreamEvents
// does not read again.
type EventsProbe struct {
	Calendars []string
	From, To  time.Time
	First     []json.RawMessage
}

// ProbeEvents lists the calendars and reads the first calendar's events
// over the first window of [from, to). It fails with ErrNoBulkScope when
// either scope is missing, with ErrUnusableBulk on a shape it cannot use or
// when the location has no calendar (nothing shows that events can be
// read). Two requests.
func (c *Client) ProbeEvents(ctx context.Context, from, to time.Time) (EventsProbe, error) {
	cals, err := c.Calendars(ctx)
	if err != nil {
		return EventsProbe{}, err
	}
	if len(cals) == 0 {
		return EventsProbe{}, fmt.Errorf("list calendars: %w: no calendars", ErrUnusableBulk)
	}
	p := EventsProbe{Calendars: cals, From: from, To: to}
	if w := EventWindows(from, to, 0); len(w) > 0 {
		if p.First, err = c.Events(ctx, cals[0], w[0][0], w[0][1]); err != nil {
			return EventsProbe{}, err
		}
	}
	return p, nil
}

// StreamEvents sends the appointments of every calendar of p starting in
// [p.From, p.To), window by window (at most MaxEventsRange each,
// concurrency requests in flight), then a Mark (Resource MarkBulk). Each
// event's contactId is its parent; the Mark's Listing names every event
// listed and the range. It never closes out.
func StreamEvents(ctx context.Context, c *Client, p EventsProbe, concurrency int, out chan<- api.Record) error {
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	wins := EventWindows(p.From, p.To, 0)
	var mu sync.Mutex
	var ids []string
	g, gctx := errgroupWithLimit(ctx, concurrency)
	for ci, cal := range p.Calendars {
		for wi, w := range wins {
			g.Go(func() error {
				items := p.First
				if ci != 0 || wi != 0 {
					var err error
					if items, err = c.Events(gctx, cal, w[0], w[1]); err != nil {
						return err
					}
				}
				for _, it := range items {
					r, id := bulkRecord(c, api.ResourceAppointments, it)
					if id != "" {
						mu.Lock()
						ids = append(ids, id)
						mu.Unlock()
					}
					if err := send(gctx, out, r); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("bulk appointments: %w", err)
	}
	m := &api.Mark{LocationID: c.location, Resource: MarkBulk}
	if len(wins) > 0 { // an empty range lists nothing
		m.Listing = &api.Listing{Resource: api.ResourceAppointments, IDs: ids, From: wins[0][0], To: wins[len(wins)-1][1]}
	}
	return send(ctx, out, api.Record{Mark: m})
}

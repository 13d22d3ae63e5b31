package extract

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Limits are a location's rate limits as the API's headers last told them.
type Limits struct {
	Max            int64 // requests per Interval
	Remaining      int64 // of the current interval
	Interval       time.Duration
	DailyLimit     int64
	DailyRemaining int64 // -1 when no header said
}

// PerSecond is the rate the limits allow.
func (l Limits) PerSecond() float64 {
	if l.Max <= 0 || l.Interval <= 0 {
		return 0
	}
	return float64(l.Max) / l.Interval.Seconds()
}

type limitsBox struct {
	mu  sync.Mutex
	l   Limits
	set bool
}

func (b *limitsBox) observe(h http.Header) {
	var l Limits
	var ok bool
	if l.Max, ok = headerInt(h, hdrMax); !ok {
		return
	}
	l.Remaining, _ = headerInt(h, hdrRemaining)
	ms, _ := headerInt(h, hdrIntervalMs)
	l.Interval = time.Duration(ms) * time.Millisecond
	l.DailyLimit, _ = headerInt(h, hdrLimitDaily)
	if l.DailyRemaining, ok = headerInt(h, hdrDailyRemaining); !ok {
		l.DailyRemaining = -1
	}
	b.mu.Lock()
	b.l, b.set = l, true
	b.mu.Unlock()
}

// LastLimits returns the limits of the latest answer that carried them.
func (c *Client) LastLimits() (Limits, bool) {
	c.limits.mu.Lock()
	defer c.limits.mu.Unlock()
	return c.limits.l, c.limits.set
}

// Probe is what one cheap search says about a location.
type Probe struct {
	Total  int // contacts matching the query
	Limits Limits
}

// Probe asks for one contact of q and returns the total and the limits:
// one request (plus retries), for dry runs.
func (c *Client) Probe(ctx context.Context, q Query) (Probe, error) {
	q.PageLimit, q.After = 1, nil
	req := searchRequest(c.location, q)
	req.PageLimit = 1
	p, err := c.searchPage(ctx, req, 1)
	if err != nil {
		return Probe{}, fmt.Errorf("probe: %w", err)
	}
	l, _ := c.LastLimits()
	return Probe{Total: p.Total, Limits: l}, nil
}

// CheckPageLimit is the page size CheckSearch reads.
const CheckPageLimit = 10

// ErrUnusableSearch is returned by CheckSearch when the search answer
// cannot be used to export the location.
var ErrUnusableSearch = errors.New("search answer cannot be used")

// SearchCheck is what one real search page says about a location, for
// `check` to print.
type SearchCheck struct {
	Total    int  // contacts the API says match
	Contacts int  // contacts on the page read
	WithIDs  int  // of those, with a usable id
	Cursor   bool // results carry searchAfter (cursor mode works)
	PageMode bool // they don't: the run falls back to page mode in windows
	Limits   Limits
	Warnings []string // usable, but worth saying
}

// CheckSearch reads one real search page (CheckPageLimit contacts, in
// cursor mode, as a run does) and says whether the exporter can use it. It
// fails (wrapping ErrBadPage, ErrNoContacts, ErrUnusableSearch or the HTTP
// error) when the answer has no contacts field, does not decode, has a
// cursor that cannot be read, or holds contacts none of which has an id, or
// none while its total says there are some. Results without searchAfter are
// a warning: the run falls back to page mode. One request, plus retries.
func (c *Client) CheckSearch(ctx context.Context) (SearchCheck, error) {
	req := searchRequest(c.location, Query{PageLimit: CheckPageLimit})
	p, err := c.searchPage(ctx, req, 1)
	if err != nil {
		return SearchCheck{}, fmt.Errorf("check search: %w", err)
	}
	r := SearchCheck{Total: p.Total, Contacts: len(p.Contacts), Cursor: p.rawCursor != nil}
	r.Limits, _ = c.LastLimits()
	for _, id := range p.IDs {
		if id != "" {
			r.WithIDs++
		}
	}
	switch {
	case r.Contacts == 0 && r.Total > 0:
		return r, fmt.Errorf("check search: %w: no contacts on the first page while total says %d", ErrUnusableSearch, r.Total)
	case r.Contacts > 0 && r.WithIDs == 0:
		return r, fmt.Errorf("check search: %w: none of %d contacts has an id", ErrUnusableSearch, r.Contacts)
	case r.Contacts == 0:
		r.Warnings = append(r.Warnings, "the location has no contacts: the shape of search results could not be checked")
	case !r.Cursor:
		r.PageMode = true
		r.Warnings = append(r.Warnings, "search results carry no searchAfter cursor: the run will page in page mode inside dateUpdated windows (slower, re-reads ties)")
	}
	if r.WithIDs < r.Contacts {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d of %d contacts on the first page have no id: they will be rejected", r.Contacts-r.WithIDs, r.Contacts))
	}
	return r, nil
}

// SearchPages is the number of search requests paging through total
// contacts takes: full pages, then the short (or empty) page that ends it.
func SearchPages(total, pageLimit int) int {
	if pageLimit <= 0 || pageLimit > MaxPageLimit {
		pageLimit = DefaultPageLimit
	}
	return total/pageLimit + 1
}

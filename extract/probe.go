package extract

import (
	"context"
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
	if l.Max, ok = headerInt(h, "X-RateLimit-Max"); !ok {
		return
	}
	l.Remaining, _ = headerInt(h, "X-RateLimit-Remaining")
	ms, _ := headerInt(h, "X-RateLimit-Interval-Milliseconds")
	l.Interval = time.Duration(ms) * time.Millisecond
	l.DailyLimit, _ = headerInt(h, "X-RateLimit-Limit-Daily")
	if l.DailyRemaining, ok = headerInt(h, "X-RateLimit-Daily-Remaining"); !ok {
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

// SearchPages is the number of search requests paging through total
// contacts takes: full pages, then the short (or empty) page that ends it.
func SearchPages(total, pageLimit int) int {
	if pageLimit <= 0 || pageLimit > MaxPageLimit {
		pageLimit = DefaultPageLimit
	}
	return total/pageLimit + 1
}

package extract

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Governor paces every request to one location. Wait blocks until a request
// may go; Observe sees every answer (status and headers); Success is called
// once per call that finally succeeded. Implementations are safe for
// concurrent use.
type Governor interface {
	Wait(ctx context.Context) error
	Observe(status int, h http.Header)
	Success()
}

// NopGovernor never waits.
type NopGovernor struct{}

func (NopGovernor) Wait(context.Context) error { return nil }
func (NopGovernor) Observe(int, http.Header)   {}
func (NopGovernor) Success()                   {}

// Defaults of the API's documented limits (api.md).
const (
	DefaultRateMax      = 100
	DefaultRateInterval = 10 * time.Second
	DefaultDailyLimit   = 200_000
)

// RateGovernor is a token bucket seeded from configuration and steered by the
// X-RateLimit-* headers: the ceiling follows Max/Interval, a 429 halves the
// allowed rate and pauses everyone for the interval (or Retry-After), and each
// success climbs back a step towards the ceiling.
type RateGovernor struct {
	lim *rate.Limiter

	mu             sync.Mutex
	ceiling        rate.Limit
	floor          rate.Limit
	pauseUntil     time.Time
	interval       time.Duration
	dailyRemaining int64 // -1 until a header says
	dailyLimit     int64
	now            func() time.Time
}

// NewRateGovernor allows max requests per interval (burst max/10, at least 1).
func NewRateGovernor(max int, interval time.Duration) *RateGovernor {
	if max <= 0 {
		max = DefaultRateMax
	}
	if interval <= 0 {
		interval = DefaultRateInterval
	}
	ceil := rate.Limit(float64(max) / interval.Seconds())
	return &RateGovernor{
		lim:            rate.NewLimiter(ceil, burstFor(max)),
		ceiling:        ceil,
		floor:          ceil / 64,
		interval:       interval,
		dailyRemaining: -1,
		now:            time.Now,
	}
}

func burstFor(perInterval int) int { return max(1, perInterval/10) }

// Wait blocks until the bucket and any pause allow a request.
func (g *RateGovernor) Wait(ctx context.Context) error {
	g.mu.Lock()
	pause := g.pauseUntil.Sub(g.now())
	g.mu.Unlock()
	if pause > 0 {
		if err := sleepCtx(ctx, pause); err != nil {
			return err
		}
	}
	return g.lim.Wait(ctx)
}

// Observe steers the bucket by the answer's headers and status.
func (g *RateGovernor) Observe(status int, h http.Header) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m, ok := headerInt(h, "X-RateLimit-Max"); ok && m > 0 {
		iv := g.interval
		if ms, ok := headerInt(h, "X-RateLimit-Interval-Milliseconds"); ok && ms > 0 {
			iv = time.Duration(ms) * time.Millisecond
		}
		if c := rate.Limit(float64(m) / iv.Seconds()); c != g.ceiling || iv != g.interval {
			g.ceiling, g.floor, g.interval = c, c/64, iv
			if g.lim.Limit() > c {
				g.lim.SetLimit(c)
			}
			g.lim.SetBurst(burstFor(int(m)))
		}
	}
	if d, ok := headerInt(h, "X-RateLimit-Daily-Remaining"); ok {
		g.dailyRemaining = d
	}
	if d, ok := headerInt(h, "X-RateLimit-Limit-Daily"); ok {
		g.dailyLimit = d
	}
	if status == http.StatusTooManyRequests {
		g.lim.SetLimit(max(g.lim.Limit()/2, g.floor))
		wait := parseRetryAfter(h.Get("Retry-After"), g.now())
		if wait == 0 {
			wait = g.interval
		}
		if until := g.now().Add(wait); until.After(g.pauseUntil) {
			g.pauseUntil = until
		}
	}
}

// Success lets the rate climb back towards the ceiling.
func (g *RateGovernor) Success() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if l := g.lim.Limit(); l < g.ceiling {
		g.lim.SetLimit(min(g.ceiling, l+g.ceiling/50))
	}
}

// Limit is the current allowed rate in requests per second.
func (g *RateGovernor) Limit() float64 { return float64(g.lim.Limit()) }

// DailyRemaining is the last X-RateLimit-Daily-Remaining seen, or -1.
func (g *RateGovernor) DailyRemaining() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dailyRemaining
}

func headerInt(h http.Header, k string) (int64, bool) {
	v := h.Get(k)
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// backoff is exponential with full jitter: uniform in [0, min(cap, base·2^n)].
func backoff(attempt int) time.Duration {
	const base, cap = 200 * time.Millisecond, 20 * time.Second
	d := base << min(attempt, 10)
	if d > cap {
		d = cap
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

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
// may go (or fails, e.g. with ErrQuotaReserve); every Wait that returned nil
// is followed by exactly one Observe with the answer's status and headers
// (status 0 and nil headers when no answer came: reset, timeout, truncated
// body). Success is called once per call that finally succeeded.
// Implementations are safe for concurrent use.
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

// Tuning of RateGovernor.
const (
	// RateMargin is the share of the announced rate left unused, so that
	// clock skew and latency jitter never push a window over its limit.
	RateMargin = 0.03
	// floorDivisor bounds how far 429s can slow the governor: ceiling/64.
	floorDivisor = 64
	// climbSteps successes bring a halved rate back to the ceiling.
	climbSteps = 25
	// staleDailyShare: a Daily-Remaining above the lowest seen, on the same
	// UTC day, is a late answer unless it rose by more than this share of
	// the daily limit (a reset at another hour than midnight UTC).
	staleDailyShare = 10
)

// RateGovernor is a token bucket (burst 1) seeded from configuration and
// steered by the X-RateLimit-* headers:
//   - Max and Interval-Milliseconds set the ceiling (less RateMargin): paced
//     evenly, a fixed, sliding or bucket window of the server never sees more
//     than Max requests per Interval from us;
//   - Remaining falling to the requests we have in flight means someone else
//     spends the same quota: the rate drops by a quarter and requests pause
//     for a tenth of the interval;
//   - a 429 the headers explain (Remaining down to our requests in flight,
//     or no Remaining header, or our last interval up to Max) halves the
//     rate and pauses every request for Retry-After (seconds or an HTTP
//     date, capped at MaxRetryAfter) or else the interval;
//   - a 429 they do not explain (Remaining high, we were under the rate) is
//     transient: only the refused request waits (the client obeys its
//     Retry-After, or backs off briefly); the rate is kept and the other
//     requests go on;
//   - each success climbs back a step towards the ceiling;
//   - Daily-Remaining is tracked as the lowest value of the day (late
//     answers carry higher ones), and a request that got no answer counts as
//     spent; once what is left, less the requests in flight, would dip into
//     the reserve, Wait fails with ErrQuotaReserve, so that requests sent
//     concurrently never overrun it.
//
// One RateGovernor serves one (source, location): every request to that
// location, paging and fan-out alike, must go through it.
type RateGovernor struct {
	lim *rate.Limiter

	mu         sync.Mutex
	ceiling    rate.Limit
	floor      rate.Limit
	max        int64
	interval   time.Duration
	pauseUntil time.Time
	inflight   int64
	daily      int64 // X-RateLimit-Daily-Remaining as tracked; -1 until a header says
	dailyDay   int   // UTC day of daily, as yyyymmdd; 0 until a header says
	dailyLimit int64
	reserve    Reserve
	recent     []time.Time // when our requests of the last interval went
	stats      GovernorStats

	now   func() time.Time
	sleep func(context.Context, time.Duration) error
}

// GovernorStats counts what a governor did.
type GovernorStats struct {
	Limited   int64 // 429s observed
	Transient int64 // of those, 429s the headers did not explain (rate kept)
	Brakes    int64 // times Remaining ran out without a 429
	Paused    time.Duration
	Throttled time.Duration // time requests spent waiting for a token
}

// GovernorOption configures a RateGovernor.
type GovernorOption func(*RateGovernor)

// WithDailyReserve keeps r of the daily quota unspent (see ErrQuotaReserve).
func WithDailyReserve(r Reserve) GovernorOption { return func(g *RateGovernor) { g.reserve = r } }

// WithClock replaces the governor's clock and sleep (tests).
func WithClock(now func() time.Time, sleep func(context.Context, time.Duration) error) GovernorOption {
	return func(g *RateGovernor) { g.now, g.sleep = now, sleep }
}

// NewRateGovernor allows max requests per interval until the API's headers
// say otherwise.
func NewRateGovernor(max int, interval time.Duration, opts ...GovernorOption) *RateGovernor {
	if max <= 0 {
		max = DefaultRateMax
	}
	if interval <= 0 {
		interval = DefaultRateInterval
	}
	g := &RateGovernor{daily: -1, now: time.Now, sleep: sleepCtx}
	for _, o := range opts {
		o(g)
	}
	g.setCeiling(int64(max), interval)
	g.lim = rate.NewLimiter(g.ceiling, 1)
	return g
}

func (g *RateGovernor) setCeiling(max int64, interval time.Duration) {
	g.max, g.interval = max, interval
	g.ceiling = rate.Limit(float64(max) * (1 - RateMargin) / interval.Seconds())
	g.floor = g.ceiling / floorDivisor
}

// Wait blocks until any pause is over and the bucket has a token, or fails
// with ErrQuotaReserve when the day's quota is down to the reserve.
func (g *RateGovernor) Wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		if err := g.quotaLocked(); err != nil {
			g.mu.Unlock()
			return err
		}
		now := g.now()
		if d := g.pauseUntil.Sub(now); d > 0 {
			g.stats.Paused += d
			g.mu.Unlock()
			if err := g.sleep(ctx, d); err != nil {
				return err
			}
			continue
		}
		r := g.lim.ReserveN(now, 1)
		d := r.DelayFrom(now)
		g.inflight++
		g.stats.Throttled += d
		g.sentSince(now.Add(-g.interval))
		g.recent = append(g.recent, now.Add(d))
		g.mu.Unlock()
		if d <= 0 {
			return nil
		}
		if err := g.sleep(ctx, d); err != nil {
			g.mu.Lock()
			g.inflight--
			r.CancelAt(g.now())
			g.mu.Unlock()
			return err
		}
		// A 429 seen while this request waited for its token pauses it too.
		g.mu.Lock()
		d = g.pauseUntil.Sub(g.now())
		g.mu.Unlock()
		if d > 0 {
			if err := g.sleep(ctx, d); err != nil {
				g.mu.Lock()
				g.inflight-- // never sent
				g.mu.Unlock()
				return err
			}
		}
		return nil
	}
}

// quotaLocked fails when the requests in flight plus one more would eat into
// the reserve.
func (g *RateGovernor) quotaLocked() error {
	if g.daily < 0 {
		return nil
	}
	limit := g.dailyLimit
	if limit <= 0 {
		limit = DefaultDailyLimit
	}
	if left := g.daily - g.inflight; left <= g.reserve.Of(limit) {
		return &QuotaError{Remaining: g.daily, Reserve: g.reserve.Of(limit)}
	}
	return nil
}

// Observe steers the governor by one answer; see RateGovernor.
func (g *RateGovernor) Observe(status int, h http.Header) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inflight > 0 {
		g.inflight--
	}
	if h == nil {
		// No answer: the server may have counted the request all the
		// same, so it stays spent.
		if g.daily > 0 {
			g.daily--
		}
		return
	}
	now := g.now()
	if m, ok := headerInt(h, hdrMax); ok && m > 0 {
		iv := g.interval
		if ms, ok := headerInt(h, hdrIntervalMs); ok && ms > 0 {
			iv = time.Duration(ms) * time.Millisecond
		}
		if m != g.max || iv != g.interval {
			// Keep how far below the ceiling we are (after 429s) and
			// move to the announced limits.
			frac := float64(g.lim.Limit() / g.ceiling)
			g.setCeiling(m, iv)
			g.lim.SetLimitAt(now, rate.Limit(min(frac, 1))*g.ceiling)
		}
	}
	if d, ok := headerInt(h, hdrLimitDaily); ok {
		g.dailyLimit = d
	}
	if d, ok := headerInt(h, hdrDailyRemaining); ok {
		// Answers arrive out of order: keep the lowest. A higher value
		// is a late answer unless the day changed (or it rose by more
		// than any reordering could explain).
		y, m, dd := now.UTC().Date()
		day := y*10000 + int(m)*100 + dd
		limit := g.dailyLimit
		if limit <= 0 {
			limit = DefaultDailyLimit
		}
		if g.daily < 0 || d < g.daily || (d > g.daily && (day != g.dailyDay || d-g.daily > limit/staleDailyShare)) {
			g.daily, g.dailyDay = d, day
		}
	}
	if status == http.StatusTooManyRequests {
		g.stats.Limited++
		wait := parseRetryAfter(h.Get("Retry-After"), now)
		if !g.overranLocked(h, now) {
			// The headers do not explain it: a transient refusal. The
			// refused request waits (Retry-After, or a short backoff: the
			// client's); the others go on, at the same rate.
			g.stats.Transient++
			return
		}
		g.lim.SetLimitAt(now, max(g.lim.Limit()/2, g.floor))
		if wait == 0 {
			wait = g.interval
		}
		g.pauseAt(now, wait)
		return
	}
	if r, ok := headerInt(h, hdrRemaining); ok && status/100 == 2 && r <= g.inflight && g.max-r > g.sentSince(now.Add(-g.interval))+1 {
		// The window is nearly spent and not by us alone: someone else
		// uses this location's quota.
		g.stats.Brakes++
		g.lim.SetLimitAt(now, max(g.lim.Limit()*3/4, g.floor))
		g.pauseAt(now, g.interval/10)
	}
}

// overranLocked says whether a 429's headers show that the window was spent:
// Remaining down to what we have in flight, or our own requests of the last
// interval up to Max. Without a Remaining header we cannot tell, and assume
// we did.
func (g *RateGovernor) overranLocked(h http.Header, now time.Time) bool {
	r, ok := headerInt(h, hdrRemaining)
	if !ok || r <= g.inflight {
		return true
	}
	return g.sentSince(now.Add(-g.interval)) >= g.max
}

// sentSince counts our requests that went at or after t, forgetting older ones.
func (g *RateGovernor) sentSince(t time.Time) int64 {
	i := 0
	for i < len(g.recent) && g.recent[i].Before(t) {
		i++
	}
	g.recent = g.recent[i:]
	return int64(len(g.recent))
}

func (g *RateGovernor) pauseAt(now time.Time, d time.Duration) {
	if until := now.Add(d); until.After(g.pauseUntil) {
		g.pauseUntil = until
	}
}

// Success lets the rate climb back towards the ceiling.
func (g *RateGovernor) Success() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if l := g.lim.Limit(); l < g.ceiling {
		g.lim.SetLimitAt(g.now(), min(g.ceiling, l+g.ceiling/(2*climbSteps)))
	}
}

// Limit is the current allowed rate in requests per second.
func (g *RateGovernor) Limit() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return float64(g.lim.Limit())
}

// Ceiling is the rate the announced limits allow (less RateMargin), in
// requests per second.
func (g *RateGovernor) Ceiling() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return float64(g.ceiling)
}

// PausedUntil is the end of the current pause (zero time if none was set).
func (g *RateGovernor) PausedUntil() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pauseUntil
}

// DailyRemaining is the tracked X-RateLimit-Daily-Remaining, or -1.
func (g *RateGovernor) DailyRemaining() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.daily
}

// Stats returns a copy of the governor's counters.
func (g *RateGovernor) Stats() GovernorStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}

// The rate limit headers, spelled as net/http keeps them (canonical): a
// Get with another spelling allocates the canonical key every time.
const (
	hdrMax            = "X-Ratelimit-Max"
	hdrIntervalMs     = "X-Ratelimit-Interval-Milliseconds"
	hdrRemaining      = "X-Ratelimit-Remaining"
	hdrLimitDaily     = "X-Ratelimit-Limit-Daily"
	hdrDailyRemaining = "X-Ratelimit-Daily-Remaining"
)

// headerInt reads an integer header; k must be canonical (see hdrMax).
func headerInt(h http.Header, k string) (int64, bool) {
	v := h.Get(k)
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// Backoff bounds of retries.
const (
	BackoffBase = 200 * time.Millisecond
	BackoffCap  = 20 * time.Second
)

// backoff is exponential with full jitter: uniform in [0, min(cap, base·2^n)].
func backoff(attempt int) time.Duration {
	return time.Duration(rand.Int64N(int64(backoffCeil(attempt)) + 1))
}

func backoffCeil(attempt int) time.Duration {
	d := BackoffBase << min(attempt, 10)
	return min(d, BackoffCap)
}

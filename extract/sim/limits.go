package sim

import (
	"hash/fnv"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// limiter is a fixed window per location plus a daily quota (UTC days).
type limiter struct {
	mu sync.Mutex
	m  map[string]*window
}

type window struct {
	start time.Time
	n     int
	day   string
	dayN  int
}

// quota is what the rate-limit headers say.
type quota struct {
	max, remaining, daily, dailyRemaining int
	intervalMs                            int64
}

func (q quota) set(h http.Header) {
	h.Set("X-RateLimit-Max", strconv.Itoa(q.max))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(q.remaining, 0)))
	h.Set("X-RateLimit-Interval-Milliseconds", strconv.FormatInt(q.intervalMs, 10))
	h.Set("X-RateLimit-Limit-Daily", strconv.Itoa(q.daily))
	h.Set("X-RateLimit-Daily-Remaining", strconv.Itoa(max(q.dailyRemaining, 0)))
}

func (s *Server) fullQuota() quota {
	rl := s.cfg.RateLimit
	q := quota{max: rl.Max, remaining: rl.Max, daily: rl.Daily, dailyRemaining: rl.Daily, intervalMs: rl.Interval.Milliseconds()}
	if rl.Max <= 0 {
		q.max, q.remaining = unlimitedRateHeader, unlimitedRateHeader
	}
	if rl.Daily <= 0 {
		q.daily, q.dailyRemaining = unlimitedDailyHeader, unlimitedDailyHeader
	}
	return q
}

// take counts one request of key. When over a limit it counts nothing and
// returns ok false and how long until the window that blocks reopens.
func (s *Server) take(key string) (q quota, ok bool, wait time.Duration) {
	rl := s.cfg.RateLimit
	now := s.cfg.Now()
	q = s.fullQuota()
	l := &s.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.m[key]
	if w == nil {
		w = &window{start: now}
		l.m[key] = w
	}
	if now.Sub(w.start) >= rl.Interval || now.Before(w.start) {
		w.start, w.n = now, 0
	}
	if d := now.UTC().Format("2006-01-02"); d != w.day {
		w.day, w.dayN = d, 0
	}
	if rl.Max > 0 && w.n >= rl.Max {
		q.remaining = 0
		if rl.Daily > 0 {
			q.dailyRemaining = rl.Daily - w.dayN
		}
		return q, false, w.start.Add(rl.Interval).Sub(now)
	}
	if rl.Daily > 0 && w.dayN >= rl.Daily {
		q.dailyRemaining = 0
		if rl.Max > 0 {
			q.remaining = rl.Max - w.n
		}
		y, m, d := now.UTC().Date()
		return q, false, time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC).Sub(now)
	}
	w.n++
	w.dayN++
	if rl.Max > 0 {
		q.remaining = rl.Max - w.n
	}
	if rl.Daily > 0 {
		q.dailyRemaining = rl.Daily - w.dayN
	}
	return q, true, 0
}

// Fault kinds (Stats.Faults keys).
const (
	Fault5xx      = "5xx"
	FaultReset    = "reset"
	FaultTruncate = "truncate"
	FaultSlow     = "slow"
	Fault429      = "429"
)

type faulter struct {
	mu    sync.Mutex
	seen  map[uint64]keyState
	burst map[string]int // location → 429s left in the current burst
}

type keyState struct{ attempts, faults uint32 }

func (f *faulter) init() {
	f.mu.Lock()
	f.seen, f.burst = map[uint64]keyState{}, map[string]int{}
	f.mu.Unlock()
}

// plan is the misbehaviour chosen for one request.
type plan struct {
	kind   string // "" (none), Fault429, Fault5xx, FaultReset, FaultTruncate
	status int    // for Fault5xx
	html   bool   // for Fault5xx
	slow   bool
}

// decide draws the faults of one request; key identifies the request,
// bucket is where a 429 burst applies (the location).
func (s *Server) decide(key, bucket string) plan {
	fc := s.cfg.Faults
	if fc.Rate5xx <= 0 && fc.RateReset <= 0 && fc.RateTruncate <= 0 && fc.RateSlow <= 0 && fc.Burst429 <= 0 {
		return plan{}
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	kh := h.Sum64()
	f := &s.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.seen[kh]
	st.attempts++
	defer func() { f.seen[kh] = st }()
	if left := f.burst[bucket]; left > 0 {
		f.burst[bucket] = left - 1
		return plan{kind: Fault429}
	}
	if int(st.faults) >= fc.MaxPerRequest {
		return plan{}
	}
	draw := func(salt uint64) float64 {
		return unit(hash(uint64(s.cfg.Seed), saltFault, kh, uint64(st.attempts), salt))
	}
	var p plan
	switch {
	case draw(1) < fc.Burst429:
		p.kind = Fault429
		f.burst[bucket] = fc.BurstLen - 1
	case draw(2) < fc.Rate5xx:
		p.kind = Fault5xx
		v := hash(uint64(s.cfg.Seed), saltFault, kh, uint64(st.attempts), 6)
		p.status = []int{500, 502, 503}[v%3]
		p.html = v>>8%2 == 0
	case draw(3) < fc.RateReset:
		p.kind = FaultReset
	case draw(4) < fc.RateTruncate:
		p.kind = FaultTruncate
	}
	p.slow = draw(5) < fc.RateSlow
	if p.kind != "" || p.slow {
		st.faults++
	}
	return p
}

// Stats counts what the server saw since New or ResetStats.
type Stats struct {
	Requests     int64            // every request, OAuth included
	ByKind       map[string]int64 // search, list, contact, tasks, notes, note, appointments, token, authorize, revoke, locationToken, other
	ByLocation   map[string]int64 // API requests by the token's location
	ByStatus     map[int]int64    // answers by status; resets and truncations count as 0
	RateLimited  int64            // 429s sent, bursts included
	Faults       map[string]int64 // Fault5xx, FaultReset, FaultTruncate, FaultSlow, Fault429
	Refreshes    int64            // successful refresh_token grants
	GraceReplays int64            // refreshes that replayed a used token within RefreshGrace
	CodeGrants   int64            // successful authorization_code grants
	Reconnects   int64            // codes issued by POST /oauth/reconnect
}

type statsBox struct {
	mu sync.Mutex
	s  Stats
}

func (b *statsBox) reset() {
	b.mu.Lock()
	b.s = Stats{ByKind: map[string]int64{}, ByLocation: map[string]int64{}, ByStatus: map[int]int64{}, Faults: map[string]int64{}}
	b.mu.Unlock()
}

func (b *statsBox) update(fn func(*Stats)) {
	b.mu.Lock()
	fn(&b.s)
	b.mu.Unlock()
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	b := &s.stats
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.s
	out.ByKind, out.ByLocation = maps.Clone(b.s.ByKind), maps.Clone(b.s.ByLocation)
	out.ByStatus, out.Faults = maps.Clone(b.s.ByStatus), maps.Clone(b.s.Faults)
	return out
}

// ResetStats zeroes the counters (not the rate-limit windows).
func (s *Server) ResetStats() { s.stats.reset() }

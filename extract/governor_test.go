package extract

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// fakeClock is a clock whose sleeps advance it: governor tests never wait
// and never race the wall clock.
type fakeClock struct {
	t      time.Time
	slept  []time.Duration
	onWake func()
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.slept = append(c.slept, d)
	c.t = c.t.Add(d)
	return nil
}

func limitHeaders(max, remaining int, interval time.Duration, daily, dailyRemaining int) http.Header {
	h := http.Header{}
	h.Set("X-RateLimit-Max", strconv.Itoa(max))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Interval-Milliseconds", strconv.FormatInt(interval.Milliseconds(), 10))
	h.Set("X-RateLimit-Limit-Daily", strconv.Itoa(daily))
	h.Set("X-RateLimit-Daily-Remaining", strconv.Itoa(dailyRemaining))
	return h
}

func newTestGovernor(max int, iv time.Duration, opts ...GovernorOption) (*RateGovernor, *fakeClock) {
	clk := newFakeClock()
	g := NewRateGovernor(max, iv, append([]GovernorOption{WithClock(clk.now, clk.sleep)}, opts...)...)
	return g, clk
}

func near(a, b float64) bool { return a > b*0.999 && a < b*1.001 }

// A paced governor never puts more than Max requests in any window of one
// Interval, and keeps close to Max per Interval over time.
func TestGovernorPacesUnderFixedWindow(t *testing.T) {
	const max, n = 50, 500
	g, clk := newTestGovernor(max, time.Second)
	ctx := context.Background()
	var sent []time.Time
	for i := range n {
		if err := g.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, clk.now())
		g.Observe(200, limitHeaders(max, max-1-i%max, time.Second, 200000, 200000-i-1))
		g.Success()
	}
	for i := range sent {
		j := i
		for j < len(sent) && sent[j].Sub(sent[i]) < time.Second {
			j++
		}
		if j-i > max {
			t.Fatalf("%d requests within one second from request %d", j-i, i)
		}
	}
	took := sent[n-1].Sub(sent[0]).Seconds()
	ideal := float64(n-1) / max
	if took < ideal || took > ideal*1.05 {
		t.Errorf("%d requests took %.2fs, want about %.2fs", n, took, ideal)
	}
	if st := g.Stats(); st.Limited != 0 || st.Brakes != 0 {
		t.Errorf("stats %+v: no 429 or brake expected", st)
	}
}

func TestGovernorSteeredByHeaders(t *testing.T) {
	g, _ := newTestGovernor(100, 10*time.Second)
	if want := 10 * (1 - RateMargin); !near(g.Ceiling(), want) || !near(g.Limit(), want) {
		t.Fatalf("seeded ceiling %v limit %v, want %v", g.Ceiling(), g.Limit(), want)
	}
	ctx := context.Background()
	_ = g.Wait(ctx)
	g.Observe(200, limitHeaders(50, 49, time.Second, 1000, 999))
	if want := 50 * (1 - RateMargin); !near(g.Ceiling(), want) || !near(g.Limit(), want) {
		t.Errorf("after headers: ceiling %v limit %v, want %v", g.Ceiling(), g.Limit(), want)
	}
	if g.DailyRemaining() != 999 {
		t.Errorf("daily remaining %d", g.DailyRemaining())
	}
	// Halved, then the limits change: the governor stays half way down.
	_ = g.Wait(ctx)
	g.Observe(429, limitHeaders(50, 0, time.Second, 1000, 999))
	_ = g.Wait(ctx)
	g.Observe(200, limitHeaders(20, 19, time.Second, 1000, 998))
	if want := 20 * (1 - RateMargin) / 2; !near(g.Limit(), want) {
		t.Errorf("limit %v, want %v", g.Limit(), want)
	}
}

func TestGovernorBrakesWhenOthersSpendTheWindow(t *testing.T) {
	g, clk := newTestGovernor(100, 10*time.Second)
	ctx := context.Background()
	// Our first request in this window, and the server says 1 left: 98
	// went to someone else.
	for range 2 {
		if err := g.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	g.Observe(200, limitHeaders(100, 1, 10*time.Second, 200000, 150000))
	if st := g.Stats(); st.Brakes != 1 {
		t.Fatalf("brakes %d, want 1", st.Brakes)
	}
	if got, want := g.PausedUntil().Sub(clk.now()), time.Second; got != want {
		t.Errorf("pause %v, want %v", got, want)
	}
	if want := 10 * (1 - RateMargin) * 3 / 4; !near(g.Limit(), want) {
		t.Errorf("limit %v, want %v", g.Limit(), want)
	}
	// Our own requests leaving 1 of the window is no reason to brake.
	g2, _ := newTestGovernor(10, time.Second)
	for i := range 10 {
		_ = g2.Wait(ctx)
		_ = g2.Wait(ctx)
		g2.Observe(200, limitHeaders(10, 10-1-i, time.Second, 200000, 150000))
		g2.Observe(0, nil)
	}
	if st := g2.Stats(); st.Brakes != 0 {
		t.Errorf("braked on our own requests: %+v", st)
	}
}

func Test429HalvesAndPauses(t *testing.T) {
	cases := []struct {
		name       string
		retryAfter func(now time.Time) string
		wantPause  time.Duration
	}{
		{"no header: the interval", func(time.Time) string { return "" }, 10 * time.Second},
		{"seconds", func(time.Time) string { return "3" }, 3 * time.Second},
		{"http date", func(now time.Time) string { return now.Add(7 * time.Second).Format(http.TimeFormat) }, 7 * time.Second},
		{"date in the past: the interval", func(now time.Time) string { return now.Add(-time.Hour).Format(http.TimeFormat) }, 10 * time.Second},
		{"capped", func(time.Time) string { return "86400" }, MaxRetryAfter},
		{"garbage: the interval", func(time.Time) string { return "soon" }, 10 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, clk := newTestGovernor(100, 10*time.Second)
			ceil := g.Ceiling()
			ctx := context.Background()
			_ = g.Wait(ctx)
			h := limitHeaders(100, 0, 10*time.Second, 200000, 100000)
			if v := c.retryAfter(clk.now()); v != "" {
				h.Set("Retry-After", v)
			}
			g.Observe(http.StatusTooManyRequests, h)
			if !near(g.Limit(), ceil/2) {
				t.Errorf("limit %v, want %v", g.Limit(), ceil/2)
			}
			if got := g.PausedUntil().Sub(clk.now()); got != c.wantPause {
				t.Errorf("pause %v, want %v", got, c.wantPause)
			}
			// The next request waits out the pause.
			start := clk.now()
			if err := g.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if got := clk.now().Sub(start); got < c.wantPause {
				t.Errorf("next request went after %v, want >= %v", got, c.wantPause)
			}
		})
	}
}

func TestGovernorRecoversAfter429s(t *testing.T) {
	g, _ := newTestGovernor(100, time.Second)
	ceil := g.Ceiling()
	ctx := context.Background()
	for range 3 {
		_ = g.Wait(ctx)
		g.Observe(429, nil) // no headers at all: still counted in flight
		g.Observe(429, http.Header{})
	}
	if !near(g.Limit(), ceil/8) {
		t.Fatalf("after three 429s limit %v, want %v", g.Limit(), ceil/8)
	}
	for range 1000 {
		_ = g.Wait(ctx)
		g.Observe(0, nil) // (not counting headers here)
	}
	if !near(g.Limit(), ceil/8) {
		t.Fatalf("answers alone must not restore the rate: %v", g.Limit())
	}
	steps := 0
	for g.Limit() < ceil && steps < 1000 {
		g.Success()
		steps++
	}
	if steps > 2*climbSteps {
		t.Errorf("took %d successes to recover from 1/8, want <= %d", steps, 2*climbSteps)
	}
	if !near(g.Limit(), ceil) {
		t.Errorf("limit %v, want the ceiling %v", g.Limit(), ceil)
	}
	// Many 429s never stop it altogether.
	for range 100 {
		g.Observe(429, http.Header{"Retry-After": {"0"}})
	}
	if !near(g.Limit(), ceil/floorDivisor) {
		t.Errorf("limit %v, want the floor %v", g.Limit(), ceil/floorDivisor)
	}
}

func TestGovernorDailyReserve(t *testing.T) {
	g, _ := newTestGovernor(1000, time.Second, WithDailyReserve(Reserve{Percent: 10}))
	ctx := context.Background()
	if err := g.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	g.Observe(200, limitHeaders(1000, 999, time.Second, 1000, 105))
	// 105 left, 100 in reserve: five more may go, even all at once.
	for i := range 5 {
		if err := g.Wait(ctx); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	err := g.Wait(ctx)
	var qe *QuotaError
	if !errors.Is(err, ErrQuotaReserve) || !errors.As(err, &qe) || qe.Reserve != 100 {
		t.Fatalf("err = %v, want a QuotaError with reserve 100", err)
	}
	// Answers out of order do not raise the count; a new day does.
	g.Observe(200, limitHeaders(1000, 990, time.Second, 1000, 101))
	g.Observe(200, limitHeaders(1000, 990, time.Second, 1000, 103))
	if g.DailyRemaining() != 101 {
		t.Errorf("daily remaining %d, want 101", g.DailyRemaining())
	}
	g.Observe(200, limitHeaders(1000, 999, time.Second, 1000, 999))
	if g.DailyRemaining() != 999 {
		t.Errorf("daily remaining %d after a reset, want 999", g.DailyRemaining())
	}
	if err := g.Wait(ctx); err != nil {
		t.Errorf("after the reset: %v", err)
	}
}

func TestGovernorWaitHonoursContext(t *testing.T) {
	g, _ := newTestGovernor(100, time.Second)
	g.Observe(429, http.Header{"Retry-After": {"5"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                                 0,
		"0":                                0,
		"5":                                5 * time.Second,
		" 12 ":                             12 * time.Second,
		"-3":                               0,
		"1.5":                              1500 * time.Millisecond,
		"99999":                            MaxRetryAfter,
		"Sat, 01 Mar 2025 12:00:30 GMT":    30 * time.Second,
		"Saturday, 01-Mar-25 12:01:00 GMT": time.Minute,
		"Sat, 01 Mar 2025 11:00:00 GMT":    0,
		"Sat, 01 Mar 2025 13:00:00 GMT":    MaxRetryAfter,
		"tomorrow":                         0,
		"5m":                               0,
	}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestParseReserve(t *testing.T) {
	for in, want := range map[string]Reserve{"10%": {Percent: 10}, "0": {}, "5000": {Requests: 5000}, " 2.5 % ": {Percent: 2.5}} {
		got, err := ParseReserve(in)
		if err != nil || got != want {
			t.Errorf("ParseReserve(%q) = %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "-1", "101%", "ten", "5%%"} {
		if _, err := ParseReserve(in); err == nil {
			t.Errorf("ParseReserve(%q) accepted", in)
		}
	}
	if got := (Reserve{Percent: 10}).Of(200000); got != 20000 {
		t.Errorf("10%% of 200000 = %d", got)
	}
}

func TestBackoffFullJitter(t *testing.T) {
	for attempt := range 15 {
		ceil := backoffCeil(attempt)
		if ceil > BackoffCap || (attempt < 5 && ceil != BackoffBase<<attempt) {
			t.Errorf("ceiling of attempt %d = %v", attempt, ceil)
		}
		for range 50 {
			if d := backoff(attempt); d < 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v outside [0, %v]", attempt, d, ceil)
			}
		}
	}
}

// Concurrent requests whose answers come back out of order never spend the
// reserve: the server's own count is the ground truth. The first request of
// each batch is answered last, carrying the highest Daily-Remaining of the
// batch (the pattern that once let a run send 1,084 requests against a
// budget of 1,080).
func TestGovernorDailyReserveCountsInFlight(t *testing.T) {
	const daily, reserve, conc = 1200, 120, 9
	for _, lose := range []bool{false, true} {
		g, _ := newTestGovernor(1_000_000, time.Second, WithDailyReserve(Reserve{Requests: reserve}))
		ctx := context.Background()
		served := 0 // the server's count
		var stop error
		for stop == nil {
			var answers []int
			for range conc {
				if stop = g.Wait(ctx); stop != nil {
					break
				}
				served++
				answers = append(answers, daily-served)
			}
			// Late first answer: the others come back before it.
			for i := len(answers) - 1; i >= 0; i-- {
				j := (i + 1) % len(answers)
				if lose && j == 1 {
					g.Observe(0, nil) // counted by the server, no answer
					continue
				}
				g.Observe(200, limitHeaders(1_000_000, 999_999, time.Second, daily, answers[j]))
			}
		}
		if !errors.Is(stop, ErrQuotaReserve) {
			t.Fatalf("lose %v: stopped with %v", lose, stop)
		}
		if served > daily-reserve {
			t.Errorf("lose %v: server counted %d requests, budget %d", lose, served, daily-reserve)
		}
		if served < daily-reserve-conc {
			t.Errorf("lose %v: stopped at %d, far below the budget %d", lose, served, daily-reserve)
		}
	}
}

// A rise of Daily-Remaining within the same UTC day is a late answer; on a
// new day it is the reset quota.
func TestGovernorDailyNewDay(t *testing.T) {
	g, clk := newTestGovernor(100, time.Second)
	ctx := context.Background()
	obs := func(rem int) {
		_ = g.Wait(ctx)
		g.Observe(200, limitHeaders(100, 99, time.Second, 1000, rem))
	}
	obs(500)
	obs(520)
	if g.DailyRemaining() != 500 {
		t.Fatalf("late answer taken: %d", g.DailyRemaining())
	}
	clk.t = clk.t.Add(24 * time.Hour)
	obs(999)
	if g.DailyRemaining() != 999 {
		t.Fatalf("new day not taken: %d", g.DailyRemaining())
	}
}

// A 429 that the rate-limit headers do not explain (Remaining high, we were
// under the rate) keeps the rate and pauses nobody (the refused request
// waits on its own, in the client); one they explain halves the rate and
// pauses every request.
func TestUnexplained429KeepsRate(t *testing.T) {
	cases := []struct {
		name       string
		remaining  int
		retryAfter string
		wantHalve  bool
		wantPause  time.Duration
	}{
		{"remaining high, no Retry-After", 80, "", false, 0},
		{"remaining high, Retry-After", 80, "4", false, 0},
		{"remaining 0", 0, "", true, 10 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, clk := newTestGovernor(100, 10*time.Second)
			ceil := g.Ceiling()
			_ = g.Wait(context.Background())
			h := limitHeaders(100, c.remaining, 10*time.Second, 200000, 100000)
			if c.retryAfter != "" {
				h.Set("Retry-After", c.retryAfter)
			}
			g.Observe(http.StatusTooManyRequests, h)
			want := ceil
			if c.wantHalve {
				want = ceil / 2
			}
			if !near(g.Limit(), want) {
				t.Errorf("limit %v, want %v", g.Limit(), want)
			}
			if got := max(0, g.PausedUntil().Sub(clk.now())); got != c.wantPause {
				t.Errorf("pause %v, want %v", got, c.wantPause)
			}
			if st := g.Stats(); st.Limited != 1 || (st.Transient == 1) == c.wantHalve {
				t.Errorf("stats %+v", st)
			}
		})
	}
	// Our own requests filling the window explain a 429 whatever Remaining says.
	g, _ := newTestGovernor(10, 10*time.Second)
	for range 10 {
		_ = g.Wait(context.Background())
		g.Observe(200, limitHeaders(10, 9, 10*time.Second, 200000, 100000))
	}
	_ = g.Wait(context.Background())
	ceil := g.Ceiling()
	g.Observe(http.StatusTooManyRequests, limitHeaders(10, 9, 10*time.Second, 200000, 100000))
	if !near(g.Limit(), ceil/2) {
		t.Errorf("after our own overrun: limit %v, want %v", g.Limit(), ceil/2)
	}
}

// The rate limit header keys are canonical, so reading them allocates
// nothing.
func TestRateLimitHeaderKeysAreCanonical(t *testing.T) {
	for _, k := range []string{hdrMax, hdrIntervalMs, hdrRemaining, hdrLimitDaily, hdrDailyRemaining} {
		if c := http.CanonicalHeaderKey(k); c != k {
			t.Errorf("%q is %q in net/http", k, c)
		}
	}
	h := http.Header{}
	h.Set("X-RateLimit-Daily-Remaining", "7")
	if n := testing.AllocsPerRun(100, func() { headerInt(h, hdrDailyRemaining) }); n != 0 {
		t.Errorf("headerInt allocates %v times", n)
	}
	if v, ok := headerInt(h, hdrDailyRemaining); !ok || v != 7 {
		t.Errorf("headerInt = %d, %v", v, ok)
	}
}

package extract

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// simEnv is a simulator on loopback and a client of its first location
// whose token is testToken with the given scopes.
type simEnv struct {
	srv *sim.Server
	c   *Client
	clk *clientClock
}

// clientClock is a fake clock for a Client: sleeps advance it.
type clientClock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func (k *clientClock) now() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.t
}

func (k *clientClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k.mu.Lock()
	k.t = k.t.Add(d)
	k.slept = append(k.slept, d)
	k.mu.Unlock()
	return nil
}

func startSim(t testing.TB, cfg sim.Config, scopes []string, opts ...Option) *simEnv {
	t.Helper()
	if scopes == nil {
		scopes = []string{api.ScopeContactsRO}
	}
	cfg.StaticTokens = map[string]sim.StaticToken{testToken: {LocationID: "loc-0001", Scopes: scopes}}
	srv := sim.New(cfg)
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	hc := &http.Client{Transport: authTransport{http.DefaultTransport}, Timeout: 10 * time.Second}
	c, err := NewClient(base, "loc-0001", hc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clientClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	c.sleep, c.now = clk.sleep, clk.now
	return &simEnv{srv: srv, c: c, clk: clk}
}

// A burst of 429s longer than the retry cap does not fail the call: waiting
// out a rate limit is not a failed attempt.
func TestClient429BurstDoesNotSpendRetries(t *testing.T) {
	e := startSim(t, sim.Config{Seed: 3, Contacts: 5,
		Faults: sim.Faults{Burst429: 1, BurstLen: 10, MaxPerRequest: 3}}, nil, WithRetries(2, nil))
	id := e.srv.Truth("loc-0001")[0].Contact.ID
	want := len(e.srv.Truth("loc-0001")[0].Tasks)
	items, _, problem, err := e.c.Children(context.Background(), id, api.ResourceTasks)
	if err != nil || problem != "" || len(items) != want {
		t.Fatalf("items %d (want %d) problem %q err %v", len(items), want, problem, err)
	}
	if got := e.srv.Stats().RateLimited; got != 30 || e.c.Stats().RateLimited.Load() != 30 {
		t.Errorf("server sent %d 429s, client saw %d; want 30", got, e.c.Stats().RateLimited.Load())
	}
}

// An endless 429 storm still ends: by the patience, or by the run's budget.
func TestClient429StormIsBounded(t *testing.T) {
	storm := sim.Config{Seed: 3, Contacts: 5, RetryAfter: true,
		Faults: sim.Faults{Burst429: 1, BurstLen: 1 << 30, MaxPerRequest: 1 << 30}}
	e := startSim(t, storm, nil, WithRetries(2, nil), WithRateLimitPatience(time.Minute))
	id := e.srv.Truth("loc-0001")[0].Contact.ID
	_, _, _, err := e.c.Children(context.Background(), id, api.ResourceTasks)
	var he *api.HTTPError
	if !errors.Is(err, ErrRateLimitPatience) || !errors.As(err, &he) || he.Status != 429 {
		t.Fatalf("err = %v, want ErrRateLimitPatience with the 429", err)
	}
	// Retry-After is 1s on every 429: a minute of patience is 61 requests.
	if got := e.srv.Stats().Requests; got != 61 {
		t.Errorf("server saw %d requests, want 61", got)
	}

	budget := NewRetryBudget(5)
	e = startSim(t, storm, nil, WithRetries(2, budget))
	_, _, _, err = e.c.Children(context.Background(), id, api.ResourceTasks)
	if !errors.As(err, &he) || he.Status != 429 {
		t.Fatalf("err = %v, want the 429", err)
	}
	if got := e.srv.Stats().Requests; got != 6 || budget.Left() != 0 {
		t.Errorf("server saw %d requests (want 6), budget left %d", got, budget.Left())
	}
}

// The governor keeps its rate through 429s the headers do not explain and
// halves it on those they do.
func TestGovernorUnexplained429sFromSim(t *testing.T) {
	for _, unexplained := range []bool{true, false} {
		clk := newFakeClock()
		g := NewRateGovernor(100, time.Second, WithClock(clk.now, clk.sleep))
		e := startSim(t, sim.Config{Seed: 3, Contacts: 5, RateLimit: sim.RateLimit{Max: 100, Interval: time.Hour},
			Faults: sim.Faults{Burst429: 1, BurstLen: 3, MaxPerRequest: 1, Unexplained429: unexplained}}, nil, WithGovernor(g))
		id := e.srv.Truth("loc-0001")[0].Contact.ID
		if _, _, _, err := e.c.Children(context.Background(), id, api.ResourceTasks); err != nil {
			t.Fatal(err)
		}
		ceil := g.Ceiling() // as the sim's headers set it
		st := g.Stats()
		if st.Limited != 3 {
			t.Fatalf("unexplained %v: %d 429s, want 3", unexplained, st.Limited)
		}
		if unexplained && (st.Transient != 3 || g.Limit() < ceil) {
			t.Errorf("unexplained 429s: transient %d, limit %v, want 3 and the ceiling %v", st.Transient, g.Limit(), ceil)
		}
		if !unexplained && (st.Transient != 0 || g.Limit() > ceil/4) {
			t.Errorf("explained 429s: transient %d, limit %v, want 0 and at most %v", st.Transient, g.Limit(), ceil/4)
		}
	}
}

package extract

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// stallServer is a server whose every request stops at a point and stays
// there until the test ends: before the headers ("no headers"), or after
// the headers and half the body ("body stalls"). arrived gets a value each
// time a request reaches that point.
func stallServer(t *testing.T, afterHeaders bool) (url string, arrived chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	arrived = make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if afterHeaders {
			body := `{"tasks":[{"id":"t1"},{"id":"t2"}]}`
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, body[:len(body)/2])
			w.(http.Flusher).Flush()
		}
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets srv.Close finish
	return srv.URL, arrived
}

// checkTimeout asserts that err is the client's timeout of a call to
// path: ErrTimeout, retryable, naming the call, no token.
func checkTimeout(t *testing.T, err error, phase string) {
	t.Helper()
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v, want ErrTimeout", err)
	}
	if !retryable(err) {
		t.Errorf("a timeout must be retryable: %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "GET /contacts/c1/tasks") || !strings.Contains(msg, phase) {
		t.Errorf("error %q does not say the call and %q", msg, phase)
	}
	if strings.Contains(msg, testToken) {
		t.Errorf("error leaks the token: %q", msg)
	}
}

// TestClientTimeoutEndsStalledRequests: a server that never sends headers
// and one that stalls in the body both end in ErrTimeout from the client's
// own bound (a tiny WithTimeout here), whatever the phase the timeout
// finds the request in. The servers block on an event, not on a clock;
// no duration is asserted.
func TestClientTimeoutEndsStalledRequests(t *testing.T) {
	for _, tc := range []struct {
		name         string
		afterHeaders bool
		hcTimeout    bool // the bound set as http.Client.Timeout, taken over by NewClient
	}{
		{"no headers", false, false},
		{"body stalls", true, false},
		{"no headers, hc.Timeout", false, true},
		{"body stalls, hc.Timeout", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, _ := stallServer(t, tc.afterHeaders)
			hc := &http.Client{Transport: authTransport{http.DefaultTransport}}
			opts := []Option{WithRetries(0, nil)}
			if tc.hcTimeout {
				hc.Timeout = 20 * time.Millisecond
			} else {
				opts = append(opts, WithTimeout(20*time.Millisecond))
			}
			c, err := NewClient(base, "loc1", hc, opts...)
			if err != nil {
				t.Fatal(err)
			}
			_, _, _, err = c.Children(context.Background(), "c1", api.ResourceTasks)
			checkTimeout(t, err, "timed out")
			if c.Stats().Failures.Load() != 1 {
				t.Errorf("failures %d, want 1", c.Stats().Failures.Load())
			}
		})
	}
}

// eventGov is a governor that reports each answer's headers.
type eventGov struct {
	NopGovernor
	headers chan int
}

func (g eventGov) Observe(status int, _ http.Header) {
	if status != 0 {
		g.headers <- status
	}
}

// TestClientTimeoutPhases fires the timeout on an event instead of a
// clock: while the request waits for headers, and after the headers came
// while the body is read. Each attempt ends in ErrTimeout saying which
// phase it was in, is retried, and the last one is the call's error.
func TestClientTimeoutPhases(t *testing.T) {
	for _, tc := range []struct {
		name         string
		afterHeaders bool
		phase        string
	}{
		{"no headers", false, "no answer within 1m0s"},
		{"body stalls", true, "read body: request timed out: body not read within 1m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, arrived := stallServer(t, tc.afterHeaders)
			gov := eventGov{headers: make(chan int, 16)}
			c, err := NewClient(base, "loc1", &http.Client{Transport: authTransport{http.DefaultTransport}},
				WithRetries(2, nil), WithGovernor(gov), WithTimeout(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			c.sleep = func(context.Context, time.Duration) error { return nil }
			var bounds atomic.Int64
			c.withTimeout = func(ctx context.Context, d time.Duration, cause error) (context.Context, context.CancelFunc) {
				if d != time.Minute {
					t.Errorf("timeout %v, want the configured 1m", d)
				}
				bounds.Add(1)
				rctx, cancel := context.WithCancelCause(ctx)
				go func() {
					// The server holds the request (and, with headers, the
					// client has them): now the timeout strikes.
					select {
					case <-arrived:
					case <-rctx.Done():
						return
					}
					if tc.afterHeaders {
						select {
						case <-gov.headers:
						case <-rctx.Done():
							return
						}
					}
					cancel(cause)
				}()
				return rctx, func() { cancel(context.Canceled) }
			}
			_, _, _, err = c.Children(context.Background(), "c1", api.ResourceTasks)
			checkTimeout(t, err, tc.phase)
			st := c.Stats()
			if bounds.Load() != 3 || st.Requests.Load() != 3 || st.Retries.Load() != 2 || st.Failures.Load() != 3 {
				t.Errorf("bounds %d requests %d retries %d failures %d, want 3 3 2 3",
					bounds.Load(), st.Requests.Load(), st.Retries.Load(), st.Failures.Load())
			}
		})
	}
}

// TestClientTimeoutLeavesCallerDeadline: a caller whose context ends
// sooner than the timeout gets its own context error, not ErrTimeout, and
// no retry; the client adds no bound of its own then.
func TestClientTimeoutLeavesCallerDeadline(t *testing.T) {
	base, arrived := stallServer(t, true)
	c, err := NewClient(base, "loc1", &http.Client{Transport: authTransport{http.DefaultTransport}}, WithTimeout(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c.withTimeout = func(context.Context, time.Duration, error) (context.Context, context.CancelFunc) {
		t.Error("a bound added under a sooner deadline")
		return context.WithCancel(context.Background())
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(time.Minute))
	go func() { <-arrived; cancel() }()
	defer cancel()
	_, _, _, err = c.Children(ctx, "c1", api.ResourceTasks)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v, want the caller's context.Canceled", err)
	}
	if c.Stats().Requests.Load() != 1 {
		t.Errorf("requests %d, want 1", c.Stats().Requests.Load())
	}
}

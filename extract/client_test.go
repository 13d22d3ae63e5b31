package extract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

const testToken = "secret-token-do-not-print"

type authTransport struct{ base http.RoundTripper }

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+testToken)
	return a.base.RoundTrip(r)
}

// scripted serves the answers of script in turn (the last one repeats).
func scripted(t *testing.T, script ...func(w http.ResponseWriter)) (*Client, *atomic.Int64, *[]time.Duration) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			t.Errorf("no token")
		}
		i := int(n.Add(1)) - 1
		script[min(i, len(script)-1)](w)
	}))
	t.Cleanup(srv.Close)
	hc := &http.Client{Transport: authTransport{http.DefaultTransport}, Timeout: 2 * time.Second}
	c, err := NewClient(srv.URL, "loc1", hc, WithRetries(4, nil))
	if err != nil {
		t.Fatal(err)
	}
	var slept []time.Duration
	c.sleep = func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }
	return c, &n, &slept
}

func status(code int, body string, hdr ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

var ok = status(200, `{"tasks":[{"id":"t1"}]}`)

func reset(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	conn.(*net.TCPConn).SetLinger(0)
	conn.Close()
}

func truncated(w http.ResponseWriter) {
	body := `{"tasks":[{"id":"t1"},{"id":"t2"}]}`
	conn, bw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body[:len(body)/2])
	bw.Flush()
	conn.Close()
}

func TestClientRetriesTransientFailures(t *testing.T) {
	cases := map[string]func(http.ResponseWriter){
		"500":            status(500, `{"statusCode":500,"message":"Internal server error"}`),
		"502 html":       status(502, `<html>bad gateway</html>`),
		"503":            status(503, ``),
		"408":            status(408, `{"statusCode":408}`),
		"429":            status(429, `{"statusCode":429,"message":"Too many requests"}`),
		"reset":          reset,
		"truncated body": truncated,
	}
	for name, fail := range cases {
		t.Run(name, func(t *testing.T) {
			c, n, _ := scripted(t, fail, fail, ok)
			items, _, problem, err := c.Children(context.Background(), "c1", api.ResourceTasks)
			if err != nil || problem != "" || len(items) != 1 {
				t.Fatalf("items %d problem %q err %v", len(items), problem, err)
			}
			st := c.Stats()
			if n.Load() != 3 || st.Requests.Load() != 3 || st.Retries.Load() != 2 {
				t.Errorf("server saw %d, client sent %d with %d retries; want 3 and 2", n.Load(), st.Requests.Load(), st.Retries.Load())
			}
		})
	}
}

func TestClientDoesNotRetryFinal4xx(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 422} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			c, n, _ := scripted(t, status(code, `{"statusCode":`+fmt.Sprint(code)+`,"message":"The token is not authorized for this scope.","error":"x","traceId":"trace-123"}`), ok)
			_, _, _, err := c.Children(context.Background(), "c1", api.ResourceTasks)
			var he *api.HTTPError
			if !errors.As(err, &he) || he.Status != code {
				t.Fatalf("err = %v, want HTTP %d", err, code)
			}
			if n.Load() != 1 {
				t.Errorf("sent %d times, want once", n.Load())
			}
			msg := err.Error()
			if !strings.Contains(msg, "not authorized for this scope") || !strings.Contains(msg, "traceId trace-123") {
				t.Errorf("error lacks the API's message or traceId: %s", msg)
			}
			if strings.Contains(msg, testToken) {
				t.Errorf("error carries the token: %s", msg)
			}
		})
	}
	// 422 carries its message as an array.
	c, _, _ := scripted(t, status(422, `{"statusCode":422,"message":["locationId should not be empty","pageLimit must be a number"],"traceId":"tr-9"}`))
	err := c.SearchContacts(context.Background(), Query{}, func(Page) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "locationId should not be empty") || !strings.Contains(err.Error(), "tr-9") {
		t.Errorf("422: %v", err)
	}
}

func TestClientRetryCaps(t *testing.T) {
	fail := status(500, `{}`)
	c, n, slept := scripted(t, fail)
	_, _, _, err := c.Children(context.Background(), "c1", api.ResourceTasks)
	var he *api.HTTPError
	if !errors.As(err, &he) || he.Status != 500 {
		t.Fatalf("err = %v", err)
	}
	if n.Load() != 5 {
		t.Errorf("per-request cap 4: sent %d, want 5", n.Load())
	}
	for i, d := range *slept {
		if d > backoffCeil(i) {
			t.Errorf("backoff %d = %v over %v", i, d, backoffCeil(i))
		}
	}
	// A run budget of 3 is shared by the calls of every client.
	c2, n2, _ := scripted(t, fail)
	budget := NewRetryBudget(3)
	c2.retryBudget = budget
	c2.maxRetries = 2
	_, _, _, _ = c2.Children(context.Background(), "c1", api.ResourceTasks)
	_, _, _, _ = c2.Children(context.Background(), "c2", api.ResourceTasks)
	_, _, _, _ = c2.Children(context.Background(), "c3", api.ResourceTasks)
	if n2.Load() != 3+3 {
		t.Errorf("with a run budget of 3: sent %d, want 6", n2.Load())
	}
	if budget.Left() != 0 {
		t.Errorf("budget left %d", budget.Left())
	}
}

func TestClientObeysRetryAfter(t *testing.T) {
	c, _, slept := scripted(t, status(429, `{}`, "Retry-After", "3"), ok)
	if _, _, _, err := c.Children(context.Background(), "c1", api.ResourceTasks); err != nil {
		t.Fatal(err)
	}
	if len(*slept) != 1 || (*slept)[0] != 3*time.Second {
		t.Errorf("slept %v, want [3s]", *slept)
	}
	if c.Stats().RateLimited.Load() != 1 {
		t.Errorf("429s %d", c.Stats().RateLimited.Load())
	}
}

// quotaGov refuses every request, as a governor whose day is spent.
type quotaGov struct{ NopGovernor }

func (quotaGov) Wait(context.Context) error { return &QuotaError{Remaining: 10, Reserve: 10} }

func TestClientStopsAtQuotaReserve(t *testing.T) {
	c, n, _ := scripted(t, ok)
	c.gov = quotaGov{}
	_, _, _, err := c.Children(context.Background(), "c1", api.ResourceTasks)
	if !errors.Is(err, ErrQuotaReserve) {
		t.Fatalf("err = %v", err)
	}
	if n.Load() != 0 || c.Stats().Retries.Load() != 0 {
		t.Errorf("sent %d, retried %d: want none", n.Load(), c.Stats().Retries.Load())
	}
}

// countingGov checks the contract: one Observe per Wait.
type countingGov struct{ waits, observes, successes atomic.Int64 }

func (g *countingGov) Wait(context.Context) error { g.waits.Add(1); return nil }
func (g *countingGov) Observe(int, http.Header)   { g.observes.Add(1) }
func (g *countingGov) Success()                   { g.successes.Add(1) }

func TestClientObservesEveryRequest(t *testing.T) {
	c, _, _ := scripted(t, reset, truncated, status(503, ``), status(429, `{}`), ok)
	g := new(countingGov)
	c.gov = g
	if _, _, _, err := c.Children(context.Background(), "c1", api.ResourceTasks); err != nil {
		t.Fatal(err)
	}
	if g.waits.Load() != 5 || g.observes.Load() != 5 || g.successes.Load() != 1 {
		t.Errorf("waits %d observes %d successes %d, want 5 5 1", g.waits.Load(), g.observes.Load(), g.successes.Load())
	}
	if f := c.Stats().Failures.Load(); f != 3 {
		t.Errorf("failures %d, want 3", f)
	}
}

func TestCountersQuota(t *testing.T) {
	var s Counters
	if rem, _, _ := s.Quota(); rem != -1 {
		t.Errorf("no answers: remaining %d", rem)
	}
	for _, v := range []string{"990", "992", "991", "980"} {
		s.observeDaily(http.Header{"X-Ratelimit-Daily-Remaining": {v}, "X-Ratelimit-Limit-Daily": {"1000"}})
	}
	if rem, lim, used := s.Quota(); rem != 980 || lim != 1000 || used != 13 {
		t.Errorf("quota %d %d %d, want 980 1000 13", rem, lim, used)
	}
}

// newRequest puts on the wire what http.NewRequestWithContext of the
// printed URL did: the same request line, host and URL.
func TestNewRequestAsParsed(t *testing.T) {
	bases := []string{"https://services.example.com", "http://127.0.0.1:8080", "https://h.example.com:", "https://h.example.com/v2", "http://[::1]:80/x/", "https://u:p%40@h.example.com", "https://h.example.com/#f", "https://h.example.com/?a=b"}
	paths := []string{"/contacts/search", "/contacts/" + pathEscape("a/b c%ü?#") + "/tasks", "/calendars/", "/contacts/x?y=1", "/a%2Fb"}
	queries := []url.Values{nil, {"locationId": {"loc 1&x"}, "calendarId": {"c/1"}}}
	for _, base := range bases {
		c, err := NewClient(base, "loc", http.DefaultClient)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			for _, q := range queries {
				u, err := c.url(p)
				if err != nil {
					t.Fatal(err)
				}
				u.RawQuery = q.Encode()
				want, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u.String(), nil)
				if err != nil {
					t.Fatal(err)
				}
				got, err := newRequest(context.Background(), http.MethodGet, &u, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got.URL.RequestURI() != want.URL.RequestURI() || got.Host != want.Host || got.URL.String() != want.URL.String() ||
					got.URL.Scheme != want.URL.Scheme || got.URL.Host != want.URL.Host {
					t.Errorf("%s %s %v: %s %s %s, want %s %s %s", base, p, q, got.URL.RequestURI(), got.Host, got.URL,
						want.URL.RequestURI(), want.Host, want.URL)
				}
			}
		}
	}
	got, err := newRequest(context.Background(), http.MethodPost, &url.URL{Scheme: "http", Host: "h", Path: "/s"}, []byte(`{"a":1}`))
	if err != nil || got.ContentLength != 7 || got.GetBody == nil {
		t.Fatalf("body: length %d, GetBody %v, err %v", got.ContentLength, got.GetBody != nil, err)
	}
}

// readBody reads bodies of known and unknown length whole, and one byte
// past the cap at most, whatever the declared length.
func TestReadBody(t *testing.T) {
	body := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		declared, limit int64
		want            int
	}{
		{5000, 10_000, 5000}, {-1, 10_000, 5000}, {4000, 10_000, 5000}, {9000, 10_000, 5000},
		{5000, 4999, 5000}, {-1, 4999, 5000}, {5000, 100, 101}, {-1, 100, 101}, {0, 10_000, 5000},
		{maxBodyPrealloc + 1, 10_000, 5000},
	} {
		b, err := readBody(iotest.OneByteReader(strings.NewReader(body)), tc.declared, tc.limit)
		if err != nil || len(b) != tc.want || string(b) != body[:tc.want] {
			t.Errorf("declared %d limit %d: %d bytes, err %v; want %d", tc.declared, tc.limit, len(b), err, tc.want)
		}
	}
	if _, err := readBody(iotest.ErrReader(io.ErrUnexpectedEOF), 10, 100); err != io.ErrUnexpectedEOF {
		t.Errorf("err %v", err)
	}
	if _, err := readBody(iotest.ErrReader(io.ErrUnexpectedEOF), -1, 100); err != io.ErrUnexpectedEOF {
		t.Errorf("err %v", err)
	}

	// Bodies of unknown length go through pooled scratch buffers, and
	// never share memory with them: a body read later leaves earlier
	// ones as they were.
	var kept [][]byte
	for i, n := range []int{10, minPooledBody + 1, 3 * minPooledBody, maxPooledBody + 1, 7, 2 * minPooledBody} {
		body := bytes.Repeat([]byte{byte('a' + i)}, n)
		b, err := readBody(bytes.NewReader(body), -1, 64<<20)
		if err != nil || !bytes.Equal(b, body) || cap(b) != len(b) {
			t.Fatalf("body %d: %d bytes (cap %d), err %v; want %d", i, len(b), cap(b), err, n)
		}
		kept = append(kept, b)
	}
	for i, b := range kept {
		if bytes.Count(b, []byte{byte('a' + i)}) != len(b) {
			t.Errorf("body %d changed after later reads", i)
		}
	}
}

// WithRetryDelayScale scales backoff and Retry-After alike (the benchmark's
// zero-delay faulted run); the default waits what the server asks.
func TestRetryDelayScale(t *testing.T) {
	for _, tc := range []struct {
		scale float64
		want  []time.Duration
	}{{-1, []time.Duration{7 * time.Second}}, {0.5, []time.Duration{3500 * time.Millisecond}}, {0, []time.Duration{0, 0}}} {
		c, n, slept := scripted(t, status(429, `{"statusCode":429}`, "Retry-After", "7"), status(503, ``), ok)
		if tc.scale >= 0 {
			WithRetryDelayScale(tc.scale)(c)
		}
		if _, _, _, err := c.Children(context.Background(), "c1", api.ResourceTasks); err != nil {
			t.Fatal(err)
		}
		if n.Load() != 3 || len(*slept) != 2 {
			t.Fatalf("scale %v: %d requests, slept %v", tc.scale, n.Load(), *slept)
		}
		if (*slept)[0] != tc.want[0] || (tc.scale == 0 && (*slept)[1] != 0) {
			t.Errorf("scale %v: slept %v, want Retry-After wait %v (then a scaled backoff)", tc.scale, *slept, tc.want[0])
		}
	}
}

// Package extract reads the Contacts API: an HTTP client with auth, rate
// governing and retries, the contacts paginator, the per-contact fan-out to
// tasks, notes and appointments, and the stream that hands raw records to the
// transform stage. It knows nothing of Arrow or of the warehouse.
package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/auth"
)

// Defaults of a Client.
const (
	DefaultMaxBody    = 64 << 20 // a 10 MB note must pass; an endless body must not
	DefaultMaxRetries = 6
	// DefaultTimeout bounds one request, from sending it to the last byte
	// of its answer (WithTimeout).
	DefaultTimeout = 60 * time.Second
	// DefaultRateLimitPatience bounds how long one call waits out 429s.
	DefaultRateLimitPatience = 15 * time.Minute
)

// ErrBodyTooLarge is returned when a response exceeds the body cap.
var ErrBodyTooLarge = errors.New("response body too large")

// ErrTimeout is returned (in a retryable transport error) when a request
// got no complete answer, headers and body, within the client's timeout.
var ErrTimeout = errors.New("request timed out")

// Counters are a client's request statistics; safe for concurrent use.
type Counters struct {
	Requests    atomic.Int64 // HTTP requests sent, retries included
	Retries     atomic.Int64
	RateLimited atomic.Int64 // 429 answers
	WaitNanos   atomic.Int64 // time spent waiting on the governor and backoff
	Failures    atomic.Int64 // 5xx answers and transport failures (reset, timeout, truncated body)

	mu                 sync.Mutex
	dailyLo, dailyHi   int64 // X-RateLimit-Daily-Remaining seen: lowest and highest
	dailyLimit, dailyN int64
}

// observeDaily notes the daily quota headers of one answer.
func (s *Counters) observeDaily(h http.Header) {
	rem, ok := headerInt(h, hdrDailyRemaining)
	if !ok {
		return
	}
	lim, _ := headerInt(h, hdrLimitDaily)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dailyN == 0 || rem < s.dailyLo {
		s.dailyLo = rem
	}
	if s.dailyN == 0 || rem > s.dailyHi {
		s.dailyHi = rem
	}
	s.dailyN++
	s.dailyLimit = lim
}

// Quota reports the day's quota as the answers told it: the lowest
// remaining seen (-1 if no answer said), the daily limit, and the quota used
// while this client counted (highest minus lowest remaining, plus the first
// request). Requests of other apps in the same time are included; a quota
// reset during the run makes it an underestimate.
func (s *Counters) Quota() (remaining, limit, used int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dailyN == 0 {
		return -1, 0, 0
	}
	return s.dailyLo, s.dailyLimit, s.dailyHi - s.dailyLo + 1
}

// Client talks to one location of the API. Its HTTP client must add the
// Authorization header (an oauth2.Transport does). Safe for concurrent use.
type Client struct {
	base        *url.URL
	location    string
	hc          *http.Client
	gov         Governor
	maxBody     int64
	maxRetries  int
	retryBudget *RetryBudget
	stats       *Counters
	limits      limitsBox
	patience    time.Duration
	timeout     time.Duration
	sleep       func(context.Context, time.Duration) error
	// withTimeout bounds one request (context.WithTimeoutCause; tests
	// replace it to fire the timeout on an event).
	withTimeout func(context.Context, time.Duration, error) (context.Context, context.CancelFunc)
	delayScale  float64 // WithRetryDelayScale
	now         func() time.Time
	observe     func(Exchange)
}

// Exchange describes one API call as it ended (after its retries): what
// was asked and how it was answered. It never holds a request header, so
// no token.
type Exchange struct {
	Method, Path, Query string
	Body                []byte // the request body (search filters), nil for a GET
	Status              int    // the last answer's HTTP status; 0 when none came
	At                  time.Time
	Took                time.Duration
	Attempts            int
}

// WithObserver makes the client call fn after every call it makes (from
// the calling goroutine; fn must be safe for concurrent use).
func WithObserver(fn func(Exchange)) Option { return func(c *Client) { c.observe = fn } }

// Option configures a Client.
type Option func(*Client)

// WithGovernor sets the rate governor shared by every request to the location.
func WithGovernor(g Governor) Option { return func(c *Client) { c.gov = g } }

// WithMaxBody caps response bodies.
func WithMaxBody(n int64) Option { return func(c *Client) { c.maxBody = n } }

// WithRetries sets the per-request retry cap (failures: 408, 5xx, transport
// errors; 429s are not failures, see WithRateLimitPatience) and an optional
// per-run budget shared by every client of the run (nil: unlimited).
func WithRetries(perRequest int, runBudget *RetryBudget) Option {
	return func(c *Client) { c.maxRetries, c.retryBudget = perRequest, runBudget }
}

// WithRateLimitPatience bounds the time one call spends waiting out 429s
// (default DefaultRateLimitPatience). 429s do not count against the
// per-request retry cap, but each one spends a retry of the run's budget.
func WithRateLimitPatience(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.patience = d
		}
	}
}

// WithTimeout bounds each request, from sending it to reading the last
// byte of its answer (default DefaultTimeout; a retry has its own). A
// request that runs out answers ErrTimeout and is retried like a reset.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithCounters makes the client count into s (e.g. one Counters per location).
func WithCounters(s *Counters) Option { return func(c *Client) { c.stats = s } }

// WithRetryDelayScale multiplies every wait before a retry (backoff and
// Retry-After) by f (0: retry at once). For measurements only: it lets a
// benchmark tell the exporter's own cost of faults from the waits the API
// asks for (see BENCHMARKS.md); a run against the real API must wait.
func WithRetryDelayScale(f float64) Option {
	return func(c *Client) {
		if f >= 0 {
			c.delayScale = f
		}
	}
}

// NewClient returns a client for one location. baseURL is e.g.
// https://services.leadconnectorhq.com; hc must authenticate requests.
//
// hc needs no Timeout: the client bounds every request itself (WithTimeout)
// with one context deadline, cheaper than the timer, goroutine and body
// wrapper http.Client.Timeout costs per request. A Timeout set on hc is
// taken as the client's timeout (unless WithTimeout says otherwise) and
// enforced that way; hc itself is not changed.
func NewClient(baseURL, locationID string, hc *http.Client, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("invalid base URL %q", baseURL)
	}
	timeout := DefaultTimeout
	if hc != nil && hc.Timeout > 0 {
		timeout = hc.Timeout
		own := *hc
		own.Timeout = 0
		hc = &own
	}
	c := &Client{
		base: u, location: locationID, hc: hc,
		gov:         NopGovernor{},
		maxBody:     DefaultMaxBody,
		maxRetries:  DefaultMaxRetries,
		stats:       new(Counters),
		patience:    DefaultRateLimitPatience,
		timeout:     timeout,
		sleep:       sleepCtx,
		withTimeout: context.WithTimeoutCause,
		delayScale:  1,
		now:         time.Now,
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Location is the location this client reads.
func (c *Client) Location() string { return c.location }

// Stats returns the client's counters.
func (c *Client) Stats() *Counters { return c.stats }

// do sends one API call with retries and returns the body of a 2xx answer.
// path is the path as it goes on the wire: each segment escaped once
// (pathEscape), as the server unescapes it once. GETs and the read-only
// search are safe to repeat.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any) (_ []byte, err error) {
	var payload []byte
	if body != nil {
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("encode %s body: %w", path, err)
		}
	}
	u, err := c.url(path)
	if err != nil {
		return nil, err
	}
	u.RawQuery = query.Encode()
	attempt, limited := 0, 0 // failed attempts; 429s waited out
	var limitedSince time.Time
	if c.observe != nil {
		began := time.Now()
		defer func() {
			x := Exchange{Method: method, Path: path, Query: u.RawQuery, Body: payload, At: began.UTC(),
				Took: time.Since(began), Attempts: attempt + limited + 1}
			var herr *api.HTTPError
			switch {
			case errors.As(err, &herr):
				x.Status = herr.Status
			case err == nil:
				x.Status = http.StatusOK
			}
			c.observe(x)
		}()
	}
	for {
		var b []byte
		var retryAfter time.Duration
		b, retryAfter, err = c.once(ctx, method, &u, path, payload)
		if err == nil {
			c.gov.Success()
			return b, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !retryable(err) {
			return nil, err
		}
		var wait time.Duration
		if isRateLimited(err) {
			// Waiting out a rate limit is not a failed attempt; it is
			// bounded by the patience and the run's retry budget.
			if limited == 0 {
				limitedSince = c.now()
			}
			if waited := c.now().Sub(limitedSince); waited >= c.patience {
				return nil, fmt.Errorf("%w (%v): %w", ErrRateLimitPatience, waited.Round(time.Second), err)
			}
			if !c.takeRetry() {
				return nil, err
			}
			wait = backoff(limited)
			limited++
		} else {
			if attempt >= c.maxRetries || !c.takeRetry() {
				return nil, err
			}
			wait = backoff(attempt)
			attempt++
		}
		c.stats.Retries.Add(1)
		if retryAfter > 0 {
			wait = retryAfter
		}
		wait = time.Duration(float64(wait) * c.delayScale)
		start := time.Now()
		if err := c.sleep(ctx, wait); err != nil {
			return nil, err
		}
		c.stats.WaitNanos.Add(int64(time.Since(start)))
	}
}

// url is the base URL joined with path, an escaped path. url.URL keeps a
// path unescaped in Path and sends its escaped form RawPath when that is a
// valid escaping of Path; appending an escaped path to Path alone would
// escape each '%' again on the wire. A path without '%' escapes to itself.
func (c *Client) url(path string) (url.URL, error) {
	u := *c.base
	if strings.IndexByte(path, '%') < 0 {
		u.Path += path
		return u, nil
	}
	p, err := url.PathUnescape(path)
	if err != nil {
		return u, fmt.Errorf("request path %s: %w", path, err)
	}
	u.RawPath = c.base.EscapedPath() + path
	u.Path += p
	return u, nil
}

// ErrRateLimitPatience is returned (with the last 429) when one call was
// refused by the rate limit for longer than its patience
// (WithRateLimitPatience).
var ErrRateLimitPatience = errors.New("rate limited for longer than the patience allows")

func isRateLimited(err error) bool {
	var he *api.HTTPError
	return errors.As(err, &he) && he.Status == http.StatusTooManyRequests
}

func (c *Client) takeRetry() bool { return c.retryBudget.Take() }

// once sends one HTTP request. It returns the Retry-After wait a 429 asked for.
func (c *Client) once(ctx context.Context, method string, u *url.URL, path string, payload []byte) ([]byte, time.Duration, error) {
	start := time.Now()
	if err := c.gov.Wait(ctx); err != nil {
		return nil, 0, err
	}
	c.stats.WaitNanos.Add(int64(time.Since(start)))
	rctx := ctx
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.timeout {
		var cancel context.CancelFunc
		rctx, cancel = c.withTimeout(ctx, c.timeout, errRequestTimeout)
		defer cancel() // after the body is closed: defers run last in, first out
	}
	req, err := newRequest(rctx, method, u, payload)
	if err != nil {
		c.gov.Observe(0, nil)
		return nil, 0, err
	}
	req.Header["Accept"] = hdrJSON
	if versionFor(path) == api.VersionCalendars {
		req.Header["Version"] = hdrVersionCalendars
	} else {
		req.Header["Version"] = hdrVersionContacts
	}
	if payload != nil {
		req.Header["Content-Type"] = hdrJSON
	}
	c.stats.Requests.Add(1)
	resp, err := c.hc.Do(req)
	if err != nil {
		c.gov.Observe(0, nil)
		if ctx.Err() == nil {
			c.stats.Failures.Add(1)
		}
		if c.timedOut(ctx, rctx) {
			err = fmt.Errorf("%w: no answer within %v", ErrTimeout, c.timeout)
		}
		return nil, 0, &transportError{method: method, path: path, err: scrubURLError(err)}
	}
	defer resp.Body.Close()
	c.gov.Observe(resp.StatusCode, resp.Header)
	c.stats.observeDaily(resp.Header)
	c.limits.observe(resp.Header)
	b, err := readBody(resp.Body, resp.ContentLength, c.maxBody)
	if err != nil {
		if ctx.Err() == nil {
			c.stats.Failures.Add(1)
		}
		if c.timedOut(ctx, rctx) {
			err = fmt.Errorf("%w: body not read within %v", ErrTimeout, c.timeout)
		}
		return nil, 0, &transportError{method: method, path: path, err: fmt.Errorf("read body: %w", err)}
	}
	if int64(len(b)) > c.maxBody {
		return nil, 0, fmt.Errorf("%s %s: %w (over %d bytes)", method, path, ErrBodyTooLarge, c.maxBody)
	}
	if resp.StatusCode/100 == 2 {
		return b, 0, nil
	}
	herr := &api.HTTPError{Method: method, Path: path, Status: resp.StatusCode}
	var eb api.ErrorBody
	if json.Unmarshal(b, &eb) == nil {
		herr.Message, herr.TraceID = eb.Text(), eb.TraceID
		if herr.Message == "" {
			herr.Message = eb.Error
		}
	}
	var ra time.Duration
	if resp.StatusCode >= 500 {
		c.stats.Failures.Add(1)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		c.stats.RateLimited.Add(1)
		ra = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return nil, ra, herr
}

// errRequestTimeout is the cause of a request context the client's
// timeout ended.
var errRequestTimeout = errors.New("request timeout")

// timedOut says whether the request context rctx, derived from the call's
// ctx, was ended by the client's timeout rather than by the caller.
func (c *Client) timedOut(ctx, rctx context.Context) bool {
	return ctx.Err() == nil && errors.Is(context.Cause(rctx), errRequestTimeout)
}

// Request header values, shared by every request (net/http and
// auth.Transport copy a header before they change it, and nothing writes
// into a value): Header.Set would allocate each one on every request.
var (
	hdrJSON             = []string{"application/json"}
	hdrVersionContacts  = []string{api.VersionContacts}
	hdrVersionCalendars = []string{api.VersionCalendars}
)

// newRequest is http.NewRequestWithContext for a URL already built: it
// spares printing the URL and parsing it back on every request.
func newRequest(ctx context.Context, method string, u *url.URL, payload []byte) (*http.Request, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	if strings.HasSuffix(u.Host, ":") {
		// An empty port: let the parser settle it as it always did.
		return http.NewRequestWithContext(ctx, method, u.String(), rd)
	}
	req, err := http.NewRequestWithContext(ctx, method, "", rd)
	if err != nil {
		return nil, err
	}
	uc := *u
	req.URL, req.Host = &uc, uc.Host
	return req, nil
}

// maxBodyPrealloc bounds the buffer sized by a Content-Length: a larger
// declared length grows as it arrives, so a lying header cannot make us
// allocate up to the body cap for nothing.
const maxBodyPrealloc = 8 << 20

// readBody reads a response body of at most limit bytes (one more when it
// is longer, which the caller refuses). A body of known length (n >= 0) is
// read into one buffer of that size; one of unknown length into a pooled
// scratch buffer, then copied out at its size. The result never shares
// memory with the pool: records are subslices of it.
func readBody(r io.Reader, n, limit int64) ([]byte, error) {
	lr := io.LimitReader(r, limit+1)
	if n < 0 || n > maxBodyPrealloc {
		return readUnsized(lr)
	}
	// n+1: room to see the end without growing.
	b := make([]byte, 0, min(n, limit)+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		m, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// Scratch buffers of readUnsized. One that grew past maxPooledBody is
// dropped after use, so the pool holds a few MiB at most per P.
var bodyPool = sync.Pool{New: func() any { return new([]byte) }}

const (
	minPooledBody = 32 << 10
	maxPooledBody = 4 << 20
)

func readUnsized(r io.Reader) ([]byte, error) {
	bp := bodyPool.Get().(*[]byte)
	buf := (*bp)[:0]
	if cap(buf) < minPooledBody {
		buf = make([]byte, 0, minPooledBody)
	}
	var err error
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		var m int
		m, err = r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			break
		}
	}
	out := append(make([]byte, 0, len(buf)), buf...)
	if cap(buf) <= maxPooledBody {
		*bp = buf[:0]
		bodyPool.Put(bp)
	}
	if err == io.EOF {
		err = nil
	}
	return out, err
}

// transportError is a failure below HTTP: reset, timeout, truncated body.
type transportError struct {
	method, path string
	err          error
}

func (e *transportError) Error() string { return fmt.Sprintf("%s %s: %v", e.method, e.path, e.err) }
func (e *transportError) Unwrap() error { return e.err }

// scrubURLError drops the URL from a *url.Error: queries may carry ids, and
// we never want a request line in an error.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// retryable says whether an error is worth another attempt: 408, 429, 5xx,
// and transport failures. Other 4xx are final.
func retryable(err error) bool {
	if errors.Is(err, auth.ErrCredentials) {
		return false // a refused token or refresh: retrying cannot help
	}
	var he *api.HTTPError
	if errors.As(err, &he) {
		return he.Status == 408 || he.Status == 429 || he.Status >= 500
	}
	var te *transportError
	return errors.As(err, &te)
}

// MaxRetryAfter caps a server's Retry-After. parseRetryAfter reads
// delay-seconds (a decimal fraction is tolerated) or an HTTP date; anything
// else, or a time in the past, is 0.
const MaxRetryAfter = 2 * time.Minute

func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
		if math.IsNaN(secs) || math.IsInf(secs, 0) {
			return 0
		}
		d = time.Duration(min(secs, MaxRetryAfter.Seconds()) * float64(time.Second))
	} else if t, err := http.ParseTime(strings.TrimSpace(v)); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		return 0
	}
	return min(d, MaxRetryAfter)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// WriteRequest is one write to the API: a method, a path below the base URL
// and a JSON body (nil for none). Path is as it goes on the wire: an id in
// it escaped once (url.PathEscape), as the server unescapes it once.
type WriteRequest struct {
	Method string
	Path   string
	Body   any
}

// String renders the request as "METHOD /path {json}" for a dry run.
func (w WriteRequest) String() string {
	s := w.Method + " " + w.Path
	if w.Body != nil {
		if b, err := json.Marshal(w.Body); err == nil {
			s += " " + string(b)
		}
	}
	return s
}

// Write sends w once through the location's governor and returns the body
// of a 2xx answer. Unlike reads it is never repeated on a 5xx, a timeout or
// a broken connection: the API may have applied it, and only the caller
// can tell (by reading back) whether a repeat is safe. A 429 is waited out
// and repeated (the API refused it before doing anything), within the
// client's rate-limit patience.
func (c *Client) Write(ctx context.Context, w WriteRequest) ([]byte, error) {
	var payload []byte
	if w.Body != nil {
		var err error
		if payload, err = json.Marshal(w.Body); err != nil {
			return nil, fmt.Errorf("encode %s body: %w", w.Path, err)
		}
	}
	u, err := c.url(w.Path)
	if err != nil {
		return nil, err
	}
	var since time.Time
	for n := 0; ; n++ {
		b, retryAfter, err := c.once(ctx, w.Method, &u, w.Path, payload)
		if err == nil {
			c.gov.Success()
			return b, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !isRateLimited(err) {
			return nil, err
		}
		if n == 0 {
			since = c.now()
		}
		if c.now().Sub(since) >= c.patience || !c.takeRetry() {
			return nil, fmt.Errorf("%w: %w", ErrRateLimitPatience, err)
		}
		c.stats.Retries.Add(1)
		wait := backoff(n)
		if retryAfter > 0 {
			wait = retryAfter
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// Uncertain reports whether a failed write may still have been applied: a
// 5xx, a 408, a broken connection or a timeout (and, for creates, a 422,
// which the API has been seen to answer after creating).
func Uncertain(err error) bool {
	if err == nil {
		return false
	}
	var he *api.HTTPError
	if errors.As(err, &he) {
		return he.Status >= 500 || he.Status == http.StatusRequestTimeout || he.Status == http.StatusUnprocessableEntity
	}
	var te *transportError
	return errors.As(err, &te) || errors.Is(err, context.DeadlineExceeded)
}

package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// Invalidator is a token source that can be told a token was rejected.
type Invalidator interface {
	Invalidate(accessToken string)
}

type contextSource interface {
	TokenContext(ctx context.Context) (*oauth2.Token, error)
}

// Transport adds the bearer token to each request. A 401 on a token that
// refreshes (an OAuth or agency Source), whatever its message, invalidates
// the token and, for a replay-safe request (GET, HEAD and the read-only
// POST .../search), replays it once with a fresh one; a second 401 for the
// same request is returned as an *AuthError (with the diagnosis and fix)
// instead of the response. A 401 on a token that cannot refresh (static) is
// an *AuthError at once. Both match ErrCredentials: do not retry them. A
// request that is not replay-safe gets its 401 response back, and the next
// request uses a fresh token. Safe for concurrent use.
type Transport struct {
	Source oauth2.TokenSource
	Base   http.RoundTripper // default http.DefaultTransport
}

// NewTransport returns a Transport over base.
func NewTransport(src oauth2.TokenSource, base http.RoundTripper) *Transport {
	return &Transport{Source: src, Base: base}
}

// maxErrorPeek is how much of a 401 body is read for its message.
const maxErrorPeek = 64 << 10

// diagnoser turns a final 401 into an AuthError naming the fix.
type diagnoser interface {
	diagnose(status int, msg, trace string) *AuthError
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		req.Body, _ = req.GetBody()
	}
	tok, resp, err := t.send(req, req.Body)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if scopeRefusal(resp) {
		// The token is fine but lacks the endpoint's scope: a refresh
		// would not change that, and the caller may fall back.
		return resp, nil
	}
	inv, ok := t.Source.(Invalidator)
	if !ok {
		return nil, t.refused(resp)
	}
	inv.Invalidate(tok.AccessToken)
	if !replayable(req) {
		return resp, nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorPeek))
	resp.Body.Close()
	var body io.ReadCloser
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	tok, resp, err = t.send(req, body)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	inv.Invalidate(tok.AccessToken)
	return nil, t.refused(resp)
}

// refused reads and closes a final 401 and makes it an *AuthError.
func (t *Transport) refused(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorPeek))
	resp.Body.Close()
	var eb api.ErrorBody
	_ = json.Unmarshal(b, &eb)
	msg := eb.Text()
	if d, ok := t.Source.(diagnoser); ok {
		return d.diagnose(resp.StatusCode, msg, eb.TraceID)
	}
	return &AuthError{Status: resp.StatusCode, Message: msg, TraceID: eb.TraceID, Static: true,
		Fix: "give a valid static (Private Integration) token with the scopes the export needs, or use --auth oauth"}
}

func (t *Transport) send(req *http.Request, body io.ReadCloser) (*oauth2.Token, *http.Response, error) {
	var tok *oauth2.Token
	var err error
	if cs, ok := t.Source.(contextSource); ok {
		tok, err = cs.TokenContext(req.Context())
	} else {
		tok, err = t.Source.Token()
	}
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, nil, err
	}
	r2 := withAuthorization(req, tok)
	r2.Body = body
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(r2)
	return tok, resp, err
}

// withAuthorization is req with the token's Authorization header, req left
// as it is (a RoundTripper must not change its request). Only the header
// map is new: the rest of a request is never written to on its way
// through net/http, so a shallow copy does, as http.Request.WithContext
// makes one. The header's values are shared the same way.
func withAuthorization(req *http.Request, tok *oauth2.Token) *http.Request {
	r2 := new(http.Request)
	*r2 = *req
	r2.Header = make(http.Header, len(req.Header)+1)
	for k, v := range req.Header {
		r2.Header[k] = v
	}
	tok.SetAuthHeader(r2)
	return r2
}

func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		return true
	case http.MethodPost:
		return strings.HasSuffix(req.URL.Path, "/search")
	}
	return false
}

// MsgScope is the API's message on a 401 for a token that lacks the
// endpoint's scope (api.md), as opposed to an invalid or expired token.
const MsgScope = "The token is not authorized for this scope."

// scopeRefusal says whether a 401 answer is the API's scope refusal. It
// reads the body and puts it back, so the response stays whole.
func scopeRefusal(resp *http.Response) bool {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorPeek))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return false
	}
	var eb api.ErrorBody
	if json.Unmarshal(b, &eb) != nil {
		return false
	}
	return strings.EqualFold(strings.TrimSpace(eb.Text()), MsgScope)
}

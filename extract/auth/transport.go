package auth

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"

	"golang.org/x/oauth2"
)

// Invalidator is a token source that can be told a token was rejected.
type Invalidator interface {
	Invalidate(accessToken string)
}

type contextSource interface {
	TokenContext(ctx context.Context) (*oauth2.Token, error)
}

// Transport adds the bearer token to each request and, once per request,
// answers a 401 whose body says the token expired by invalidating the token
// and replaying the request with a fresh one. Only replay-safe requests are
// replayed: GET, HEAD and the read-only POST .../search. Safe for
// concurrent use.
type Transport struct {
	Source oauth2.TokenSource
	Base   http.RoundTripper // default http.DefaultTransport
}

// NewTransport returns a Transport over base.
func NewTransport(src oauth2.TokenSource, base http.RoundTripper) *Transport {
	return &Transport{Source: src, Base: base}
}

// maxErrorPeek is how much of a 401 body is read to look for "expired".
const maxErrorPeek = 64 << 10

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
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !replayable(req) {
		return resp, err
	}
	inv, ok := t.Source.(Invalidator)
	if !ok {
		return resp, nil
	}
	peek, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorPeek))
	if !strings.Contains(strings.ToLower(string(peek)), "expired") {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(peek), resp.Body), resp.Body}
		return resp, nil
	}
	resp.Body.Close()
	inv.Invalidate(tok.AccessToken)
	var body io.ReadCloser
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	_, resp, err = t.send(req, body)
	return resp, err
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
	r2 := req.Clone(req.Context())
	r2.Body = body
	tok.SetAuthHeader(r2)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(r2)
	return tok, resp, err
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

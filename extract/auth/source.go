package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// DefaultSkew is how long before expiry a token is refreshed; a token with
// a short life is refreshed once a third of it is left.
const DefaultSkew = 2 * time.Minute

// ErrReauth means the refresh token is expired, revoked or already used:
// only `contacts-etl auth login` brings access back.
var ErrReauth = errors.New("refresh token is expired, revoked or already used")

// RefreshError is a failed refresh or exchange. Its message never carries a
// token or the server's raw body.
type RefreshError struct {
	Key         string // location id or CompanyKey
	Status      int    // HTTP status of the token endpoint, 0 if none
	Code        string // OAuth error code, e.g. invalid_grant
	Description string
	// Interrupted: an earlier refresh of this token was cut off (the process
	// died) after the request may have reached the server.
	Interrupted bool
	Err         error
}

func (e *RefreshError) Error() string {
	msg := "refresh token for " + e.Key
	if e.Code != "" {
		msg += ": " + e.Code
		if e.Description != "" {
			msg += " (" + e.Description + ")"
		}
	} else if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Interrupted {
		msg += "; an earlier refresh was interrupted before its new token was saved"
	}
	return msg
}

// Unwrap lets errors.Is(err, ErrReauth) find a dead refresh token.
func (e *RefreshError) Unwrap() []error {
	out := []error{}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	if e.Code == "invalid_grant" {
		out = append(out, ErrReauth)
	}
	return out
}

// Options configure a Source.
type Options struct {
	OAuth      *oauth2.Config // client id, secret and token URL
	HTTPClient *http.Client   // used for the token endpoint (default http.DefaultClient)
	Skew       time.Duration  // default DefaultSkew
}

// Source is an oauth2.TokenSource backed by a Store entry. Refreshes are
// single-flight within the process (per Source: keep one per key) and, via
// the store's file lock, across processes: a process that finds a fresher
// token in the store after waiting for the lock uses it instead of
// refreshing. A refreshed pair is written durably before Token returns it.
// Safe for concurrent use.
type Source struct {
	store *Store
	key   string
	opt   Options

	// exchange, for agency locations: trade the company token for one of
	// this location. company is that company's Source.
	company   *Source
	companyID string

	mu      sync.Mutex
	cur     *Token
	invalid string // access token a server called expired
}

var _ oauth2.TokenSource = (*Source)(nil)

// NewSource returns the token source of the stored token under key.
func NewSource(store *Store, key string, opt Options) *Source {
	if opt.Skew <= 0 {
		opt.Skew = DefaultSkew
	}
	return &Source{store: store, key: key, opt: opt}
}

// NewAgencySource returns the source of a location's token obtained by
// exchanging the agency's Company token (company) at /oauth/locationToken
// (exchangeURL). The location token is stored under the location id and
// exchanged again when it nears expiry.
func NewAgencySource(store *Store, company *Source, companyID, location, exchangeURL string, opt Options) *Source {
	s := NewSource(store, location, opt)
	s.company, s.companyID = company, companyID
	s.opt.OAuth = &oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: exchangeURL}}
	return s
}

// Key is the store key of the source's token.
func (s *Source) Key() string { return s.key }

// Token returns a valid access token, refreshing if needed.
func (s *Source) Token() (*oauth2.Token, error) { return s.TokenContext(context.Background()) }

// Invalidate marks an access token as rejected by the server (401 expired):
// the next Token call refreshes unless the store already holds another.
func (s *Source) Invalidate(accessToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalid = accessToken
	if s.cur != nil && s.cur.AccessToken == accessToken {
		s.cur = nil
	}
}

// Current returns the token the source holds or the store has, without
// refreshing.
func (s *Source) Current() (*Token, error) {
	s.mu.Lock()
	cur := s.cur
	s.mu.Unlock()
	if cur != nil {
		return cur, nil
	}
	return s.store.Get(s.key)
}

func (s *Source) usable(t *Token) bool {
	if t == nil || t.AccessToken == "" || t.AccessToken == s.invalid {
		return false
	}
	if t.Expiry.IsZero() {
		return true
	}
	skew := s.opt.Skew
	if !t.SavedAt.IsZero() {
		skew = min(skew, t.Expiry.Sub(t.SavedAt)/3)
	}
	return time.Until(t.Expiry) > skew
}

// TokenContext is Token with a context for the refresh and the lock wait.
func (s *Source) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.usable(s.cur) {
		return s.cur.oauth(), nil
	}
	t, err := s.store.Get(s.key)
	if err == nil && s.usable(t) {
		s.cur = t
		return t.oauth(), nil
	}
	if err != nil && (s.company == nil || !errors.Is(err, ErrNoToken)) {
		return nil, err
	}
	var company *oauth2.Token
	if s.company != nil {
		// Outside the store lock: the company source may refresh under it.
		if company, err = s.company.TokenContext(ctx); err != nil {
			return nil, fmt.Errorf("agency token: %w", err)
		}
	}
	err = s.store.Locked(ctx, func() error {
		f, err := s.store.Load()
		if err != nil {
			return err
		}
		t := f.Tokens[s.key]
		if s.usable(t) { // another process refreshed while we waited
			s.cur = t
			return nil
		}
		var nt *Token
		if s.company != nil {
			crashPoint(PointBeforeRequest)
			if nt, err = s.exchange(ctx, company); err != nil {
				return err
			}
		} else {
			if t == nil {
				return fmt.Errorf("%w for %s in %s", ErrNoToken, s.key, s.store.path)
			}
			if t.RefreshToken == "" {
				return &RefreshError{Key: s.key, Code: "invalid_grant", Description: "no refresh token stored"}
			}
			interrupted := !t.RefreshingSince.IsZero()
			t.RefreshingSince = time.Now().UTC()
			if err := s.store.write(f, false); err != nil {
				return err
			}
			crashPoint(PointBeforeRequest)
			if nt, err = s.refresh(ctx, t); err != nil {
				var re *RefreshError
				if errors.As(err, &re) {
					re.Interrupted = interrupted
				}
				return err
			}
		}
		crashPoint(PointAfterResponse)
		nt.SavedAt = time.Now().UTC()
		f.Tokens[s.key] = nt
		if err := s.store.write(f, true); err != nil {
			return fmt.Errorf("save refreshed token (the old one is spent): %w", err)
		}
		s.cur = nt
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.cur.oauth(), nil
}

func (s *Source) httpCtx(ctx context.Context) context.Context {
	if s.opt.HTTPClient != nil {
		return context.WithValue(ctx, oauth2.HTTPClient, s.opt.HTTPClient)
	}
	return ctx
}

// refresh redeems t's refresh token through x/oauth2.
func (s *Source) refresh(ctx context.Context, t *Token) (*Token, error) {
	ot, err := s.opt.OAuth.TokenSource(s.httpCtx(ctx), &oauth2.Token{RefreshToken: t.RefreshToken}).Token()
	if err != nil {
		re := &RefreshError{Key: s.key}
		var rerr *oauth2.RetrieveError
		if errors.As(err, &rerr) {
			re.Code, re.Description = rerr.ErrorCode, rerr.ErrorDescription
			if rerr.Response != nil {
				re.Status = rerr.Response.StatusCode
			}
			if re.Code == "" {
				re.Err = fmt.Errorf("token endpoint answered %d", re.Status)
			}
		} else {
			re.Err = scrub(err)
		}
		return nil, re
	}
	nt := fromOAuth(ot)
	nt.UserType, nt.LocationID, nt.CompanyID = or(nt.UserType, t.UserType), or(nt.LocationID, t.LocationID), or(nt.CompanyID, t.CompanyID)
	if len(nt.Scopes) == 0 {
		nt.Scopes = t.Scopes
	}
	return nt, nil
}

// exchange trades the company's access token for this location's token.
func (s *Source) exchange(ctx context.Context, company *oauth2.Token) (*Token, error) {
	form := url.Values{"companyId": {s.companyID}, "locationId": {s.key}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opt.OAuth.Endpoint.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Version", "2021-07-28")
	company.SetAuthHeader(req)
	hc := s.opt.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &RefreshError{Key: s.key, Err: fmt.Errorf("location token exchange: %w", scrub(err))}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tr struct {
		AccessToken  string          `json:"access_token"`
		RefreshToken string          `json:"refresh_token"`
		TokenType    string          `json:"token_type"`
		ExpiresIn    int             `json:"expires_in"`
		Scope        string          `json:"scope"`
		UserType     string          `json:"userType"`
		LocationID   string          `json:"locationId"`
		CompanyID    string          `json:"companyId"`
		Message      json.RawMessage `json:"message"`
	}
	_ = json.Unmarshal(b, &tr)
	if resp.StatusCode/100 != 2 || tr.AccessToken == "" {
		var msg string
		if json.Unmarshal(tr.Message, &msg) != nil {
			msg = string(tr.Message)
		}
		return nil, &RefreshError{Key: s.key, Status: resp.StatusCode, Err: fmt.Errorf("location token exchange answered %d: %s", resp.StatusCode, msg)}
	}
	nt := &Token{AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, TokenType: or(tr.TokenType, "Bearer"),
		Scopes: strings.Fields(tr.Scope), UserType: or(tr.UserType, "Location"), LocationID: or(tr.LocationID, s.key), CompanyID: or(tr.CompanyID, s.companyID)}
	if tr.ExpiresIn > 0 {
		nt.Expiry = time.Now().Add(time.Duration(tr.ExpiresIn) * time.Second).UTC()
	}
	return nt, nil
}

// FromOAuth converts a token from the token endpoint, reading the API's
// extra fields (scope, userType, locationId, companyId).
func FromOAuth(ot *oauth2.Token) *Token { return fromOAuth(ot) }

func fromOAuth(ot *oauth2.Token) *Token {
	t := &Token{AccessToken: ot.AccessToken, RefreshToken: ot.RefreshToken, TokenType: or(ot.TokenType, "Bearer"), Expiry: ot.Expiry.UTC()}
	str := func(k string) string { v, _ := ot.Extra(k).(string); return v }
	t.Scopes = strings.Fields(str("scope"))
	t.UserType, t.LocationID, t.CompanyID = str("userType"), str("locationId"), str("companyId")
	return t
}

func (t *Token) oauth() *oauth2.Token {
	return &oauth2.Token{AccessToken: t.AccessToken, TokenType: or(t.TokenType, "Bearer"), Expiry: t.Expiry}
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// scrub drops the URL of a *url.Error.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Static returns a source of a fixed bearer token (a Private Integration
// token or API key) read from the environment variable env or, failing
// that, from file. It never refreshes.
func Static(env, file string) (oauth2.TokenSource, error) {
	v, err := ReadSecret(env, file)
	if err != nil {
		return nil, err
	}
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: v, TokenType: "Bearer"}), nil
}

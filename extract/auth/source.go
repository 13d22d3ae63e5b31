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
	Fix         string // what restores access, e.g. "run `contacts-etl auth login ...`"
	Err         error
	stop        bool // final without an answer: nothing stored to refresh
}

// final says the token endpoint answered and refused: retrying the same
// refresh cannot succeed.
func (e *RefreshError) final() bool {
	return e.stop || e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests && e.Status != http.StatusRequestTimeout
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
	if e.Fix != "" {
		msg += "; fix: " + e.Fix
	}
	return msg
}

// Unwrap lets errors.Is(err, ErrReauth) find a dead refresh token, and
// errors.Is(err, ErrCredentials) any refusal that retrying cannot cure.
func (e *RefreshError) Unwrap() []error {
	out := []error{}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	if e.Code == "invalid_grant" {
		out = append(out, ErrReauth)
	}
	if e.final() {
		out = append(out, ErrCredentials)
	}
	return out
}

// Options configure a Source.
type Options struct {
	OAuth      *oauth2.Config // client id, secret and token URL
	HTTPClient *http.Client   // used for the token endpoint (default http.DefaultClient)
	Skew       time.Duration  // default DefaultSkew
	// ReconnectURL is the vendor's Reconnect API (POST /oauth/reconnect).
	// Default: the token URL with /oauth/token replaced by /oauth/reconnect.
	// Reconnecting needs OAuth.ClientSecret.
	ReconnectURL string
	// CompanyID is the agency's company, for reconnecting the CompanyKey
	// token when the stored token does not name it.
	CompanyID string
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
	invalid string // access token a server refused
	// refused: a refresh token the server refused with invalid_client, and
	// that error; not retried in this process while the store holds it.
	refused    string
	refusedErr error
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

// Invalidate marks an access token as refused by the server (a 401,
// whatever its message): the next Token call refreshes unless the store
// already holds another.
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
//
// A refresh that the token endpoint answers with a 4xx (invalid_grant,
// invalid_client, ...) is not retried: it returns a *RefreshError matching
// ErrCredentials with the command that fixes it, and the refresh intent
// marker is cleared, because an answer means the token was refused, not
// rotated in flight. A refresh that got no answer (or a 5xx, which a
// gateway may send after the token was rotated) keeps the marker. When a
// refresh is refused with invalid_grant while the marker of an earlier one
// is present, the earlier one was cut off after the server rotated the
// token: the source recovers through the Reconnect API if it has the
// client secret.
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
	if s.company != nil && (err == nil || errors.Is(err, ErrNoToken)) {
		return s.exchangeLocked(ctx)
	}
	if errors.Is(err, ErrNoToken) {
		return nil, &RefreshError{Key: s.key, Err: err, Fix: s.loginFix(), stop: true}
	}
	if err != nil {
		return nil, err
	}
	if e := s.knownRefused(t); e != nil {
		return nil, e
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
		if t == nil {
			return &RefreshError{Key: s.key, Err: fmt.Errorf("%w for %s in %s", ErrNoToken, s.key, s.store.path), Fix: s.loginFix(), stop: true}
		}
		if e := s.knownRefused(t); e != nil {
			return e
		}
		if t.RefreshToken == "" {
			return &RefreshError{Key: s.key, Code: "invalid_grant", Description: "no refresh token stored", Fix: s.reconnectFix(), stop: true}
		}
		interrupted := !t.RefreshingSince.IsZero()
		t.RefreshingSince = time.Now().UTC()
		if err := s.store.write(f, false); err != nil {
			return err
		}
		crashPoint(PointBeforeRequest)
		nt, err := s.refresh(ctx, t)
		if err != nil {
			var re *RefreshError
			if !errors.As(err, &re) || !re.final() {
				return err // no answer: the token may be spent; keep the marker
			}
			re.Interrupted = interrupted
			if re.Code == "invalid_grant" && interrupted && s.canReconnect() {
				if nt, err = s.reconnect(ctx, t); err != nil {
					if errors.As(err, &re) && re.final() { // the refresh token is dead too
						t.Rejected, t.RejectedAt = "invalid_grant", time.Now().UTC()
					}
					return s.settleRefused(f, t, err)
				}
			} else {
				return s.settleRefused(f, t, re)
			}
		}
		return s.save(f, nt)
	})
	if err != nil {
		return nil, err
	}
	return s.cur.oauth(), nil
}

// knownRefused returns the error of a refresh token already refused: by
// invalid_grant (recorded in the store) or, in this process, by
// invalid_client.
func (s *Source) knownRefused(t *Token) error {
	if t.RefreshToken != "" && t.RefreshToken == s.refused {
		return s.refusedErr
	}
	if t.Rejected != "" && t.RefreshingSince.IsZero() {
		return &RefreshError{Key: s.key, Code: t.Rejected, stop: true,
			Description: "refused at " + t.RejectedAt.Format(time.RFC3339), Fix: s.reconnectFix()}
	}
	return nil
}

// settleRefused records the token endpoint's final answer err for t: the
// marker is cleared (the server answered), an invalid_grant is remembered
// in the store so later runs do not ask again, and the error says what
// fixes it. An err that is not a final answer (a reconnect cut off) keeps
// the marker, so the next run reconnects again.
func (s *Source) settleRefused(f *File, t *Token, err error) error {
	var re *RefreshError
	if !errors.As(err, &re) || !re.final() {
		return err
	}
	t.RefreshingSince = time.Time{}
	switch re.Code {
	case "invalid_grant":
		t.Rejected, t.RejectedAt = re.Code, time.Now().UTC()
		if re.Fix == "" {
			re.Fix = s.reconnectFix()
		}
	case "invalid_client", "unauthorized_client":
		re.Fix = s.clientFix()
		s.refused, s.refusedErr = t.RefreshToken, re
	default:
		if re.Fix == "" {
			re.Fix = s.reconnectFix()
		}
	}
	if werr := s.store.write(f, false); werr != nil {
		return errors.Join(re, werr)
	}
	return re
}

// save stores nt durably, then makes it the current token. Call with the
// store lock held; f is the file as loaded under it.
func (s *Source) save(f *File, nt *Token) error {
	crashPoint(PointAfterResponse)
	nt.SavedAt = time.Now().UTC()
	f.Tokens[s.key] = nt
	if err := s.store.write(f, true); err != nil {
		return fmt.Errorf("save refreshed token (the old one is spent): %w", err)
	}
	s.cur = nt
	return nil
}

// exchangeLocked gets this agency location's token from the company's.
// A company access token the exchange refuses (401) is invalidated and the
// exchange tried once more with a fresh one. Call with s.mu held.
func (s *Source) exchangeLocked(ctx context.Context) (*oauth2.Token, error) {
	for attempt := 0; ; attempt++ {
		// Outside the store lock: the company source may refresh under it.
		company, err := s.company.TokenContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("agency token: %w", err)
		}
		err = s.store.Locked(ctx, func() error {
			f, err := s.store.Load()
			if err != nil {
				return err
			}
			if t := f.Tokens[s.key]; s.usable(t) { // another process exchanged while we waited
				s.cur = t
				return nil
			}
			crashPoint(PointBeforeRequest)
			nt, err := s.exchange(ctx, company)
			if err != nil {
				return err
			}
			return s.save(f, nt)
		})
		var re *RefreshError
		if attempt == 0 && errors.As(err, &re) && re.Status == http.StatusUnauthorized {
			s.company.Invalidate(company.AccessToken)
			continue
		}
		if err != nil {
			if errors.As(err, &re) && re.final() && re.Fix == "" {
				re.Fix = s.loginFix()
			}
			return nil, err
		}
		return s.cur.oauth(), nil
	}
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
	if tr.LocationID != "" && tr.LocationID != s.key {
		return nil, &RefreshError{Key: s.key, stop: true, Err: fmt.Errorf("location token exchange answered a token of location %s, not %s", tr.LocationID, s.key)}
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

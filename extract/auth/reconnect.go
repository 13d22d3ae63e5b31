package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// reconnectURL is where the Reconnect API is, "" if unknown.
func (s *Source) reconnectURL() string {
	if s.opt.ReconnectURL != "" {
		return s.opt.ReconnectURL
	}
	if s.opt.OAuth == nil {
		return ""
	}
	if base, ok := strings.CutSuffix(s.opt.OAuth.Endpoint.TokenURL, "/oauth/token"); ok {
		return base + "/oauth/reconnect"
	}
	return ""
}

// canReconnect: the source has what the Reconnect API needs (client
// credentials, its URL) and is not an exchanged agency location (those are
// re-exchanged from the company token instead).
func (s *Source) canReconnect() bool {
	return s.company == nil && s.opt.OAuth != nil && s.opt.OAuth.ClientID != "" && s.opt.OAuth.ClientSecret != "" && s.reconnectURL() != ""
}

// Reconnect replaces the stored token of the source's key with a new pair
// obtained, with no user, through the vendor's Reconnect API (POST
// /oauth/reconnect with the client credentials → an authorization code →
// the authorization-code grant). The server invalidates the chain it
// replaces. It needs Options.OAuth with the client secret; for CompanyKey
// the company id comes from the stored token or Options.CompanyID. The
// refresh marker is set while it runs, so a kill before the new pair is
// saved makes the next refresh reconnect again.
func (s *Source) Reconnect(ctx context.Context) (*Token, error) {
	if !s.canReconnect() {
		return nil, &RefreshError{Key: s.key, Err: errors.New("reconnect needs the client id and secret and the token URL"), Fix: s.loginFix()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.store.Locked(ctx, func() error {
		f, err := s.store.Load()
		if err != nil {
			return err
		}
		t := f.Tokens[s.key]
		if t == nil {
			t = &Token{}
		} else {
			t.RefreshingSince = time.Now().UTC()
			if err := s.store.write(f, false); err != nil {
				return err
			}
		}
		nt, err := s.reconnect(ctx, t)
		if err != nil {
			if f.Tokens[s.key] == nil {
				return err
			}
			return s.settleRefused(f, t, err)
		}
		return s.save(f, nt)
	})
	if err != nil {
		return nil, err
	}
	return s.cur, nil
}

// reconnect asks the Reconnect API for a code for the source's key and
// redeems it. old is the stored token (for its company id and scopes).
func (s *Source) reconnect(ctx context.Context, old *Token) (*Token, error) {
	body := map[string]string{"clientKey": s.opt.OAuth.ClientID, "clientSecret": s.opt.OAuth.ClientSecret}
	userType := "Location"
	if s.key == CompanyKey {
		userType = "Company"
		body["companyId"] = or(old.CompanyID, s.opt.CompanyID)
		if body["companyId"] == "" {
			return nil, &RefreshError{Key: s.key, Err: errors.New("reconnect: no company id known"), Fix: s.loginFix()}
		}
	} else {
		body["locationId"] = s.key
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.reconnectURL(), bytes.NewReader(b))
	if err != nil {
		return nil, &RefreshError{Key: s.key, Err: errors.New("reconnect: bad URL")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Version", api.VersionContacts)
	hc := s.opt.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &RefreshError{Key: s.key, Err: fmt.Errorf("reconnect: %w", scrub(err))}
	}
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	var rr struct {
		AuthorizationCode string `json:"authorizationCode"`
	}
	_ = json.Unmarshal(rb, &rr)
	if resp.StatusCode/100 != 2 || rr.AuthorizationCode == "" {
		var eb api.ErrorBody
		_ = json.Unmarshal(rb, &eb)
		re := &RefreshError{Key: s.key, Status: resp.StatusCode, Err: fmt.Errorf("reconnect answered %d: %s (trace %s)", resp.StatusCode, eb.Text(), eb.TraceID)}
		if resp.StatusCode == http.StatusUnauthorized {
			re.Fix = s.clientFix()
		} else {
			re.Fix = s.loginFix()
		}
		return nil, re
	}
	ot, err := s.opt.OAuth.Exchange(s.httpCtx(ctx), rr.AuthorizationCode, oauth2.SetAuthURLParam("user_type", userType))
	if err != nil {
		re := &RefreshError{Key: s.key, Err: errors.New("reconnect: code exchange failed")}
		var rerr *oauth2.RetrieveError
		if errors.As(err, &rerr) {
			re.Code, re.Description = rerr.ErrorCode, rerr.ErrorDescription
			if rerr.Response != nil {
				re.Status = rerr.Response.StatusCode
			}
		} else {
			re.Err = fmt.Errorf("reconnect: code exchange: %w", scrub(err))
		}
		re.Fix = s.loginFix()
		return nil, re
	}
	nt := fromOAuth(ot)
	if s.key != CompanyKey && nt.LocationID != "" && nt.LocationID != s.key {
		return nil, &RefreshError{Key: s.key, stop: true, Err: fmt.Errorf("reconnect granted location %s, not %s", nt.LocationID, s.key), Fix: s.loginFix()}
	}
	nt.UserType, nt.LocationID, nt.CompanyID = or(nt.UserType, userType), or(nt.LocationID, old.LocationID), or(nt.CompanyID, or(old.CompanyID, s.opt.CompanyID))
	if s.key != CompanyKey {
		nt.LocationID = or(nt.LocationID, s.key)
	}
	if len(nt.Scopes) == 0 {
		nt.Scopes = old.Scopes
	}
	return nt, nil
}

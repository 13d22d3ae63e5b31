package sim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

type oauthErr struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func decodeOAuthErr(t *testing.T, b []byte) oauthErr {
	t.Helper()
	var e oauthErr
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("oauth error %q: %v", b, err)
	}
	return e
}

func refreshForm(rt string) url.Values {
	return url.Values{"client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
		"grant_type": {"refresh_token"}, "refresh_token": {rt}, "user_type": {"Location"}}
}

func TestOAuthGrantRotationExpiry(t *testing.T) {
	clk := newClock()
	e := start(t, Config{Seed: 1, Contacts: 5, Locations: 2, Now: clk.Now, AccessTTL: 30 * time.Second})
	code := e.s.AuthorizeCode(e.loc, api.ScopeContactsRO)
	tr := e.grant(code)
	if tr.ExpiresIn != 30 || tr.TokenType != "Bearer" || tr.LocationID != e.loc || tr.UserType != "Location" ||
		tr.Scope != api.ScopeContactsRO || tr.RefreshToken == "" || tr.CompanyID == "" || len(tr.AccessToken) < 40 {
		t.Fatalf("token response %+v", tr)
	}
	// A code is single-use.
	status, b := e.form("/oauth/token", url.Values{"client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
		"grant_type": {"authorization_code"}, "code": {code}})
	if status != 400 || decodeOAuthErr(t, b).Error != "invalid_grant" {
		t.Errorf("code reuse: %d %s", status, b)
	}
	// Wrong secret.
	bad := refreshForm(tr.RefreshToken)
	bad.Set("client_secret", "nope")
	if status, b := e.form("/oauth/token", bad); status != 401 || decodeOAuthErr(t, b).Error != "invalid_client" {
		t.Errorf("wrong secret: %d %s", status, b)
	}
	// Refresh rotates; the old refresh token is dead.
	status, b = e.form("/oauth/token", refreshForm(tr.RefreshToken))
	var tr2 api.TokenResponse
	if status != 200 || json.Unmarshal(b, &tr2) != nil || tr2.RefreshToken == tr.RefreshToken || tr2.AccessToken == tr.AccessToken {
		t.Fatalf("refresh: %d %s", status, b)
	}
	status, b = e.form("/oauth/token", refreshForm(tr.RefreshToken))
	if oe := decodeOAuthErr(t, b); status != 400 || oe.Error != "invalid_grant" || oe.Description != DescRefreshInvalid {
		t.Errorf("refresh reuse: %d %s", status, b)
	}
	// HTTP Basic client authentication works too (x/oauth2 tries it first).
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr2.RefreshToken}}
	req, _ := http.NewRequest("POST", e.base+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(DefaultClientID, DefaultClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var tr3 api.TokenResponse
	if resp.StatusCode != 200 || json.Unmarshal(b, &tr3) != nil {
		t.Fatalf("basic auth refresh: %d %s", resp.StatusCode, b)
	}
	// Access token expiry.
	if resp, b := e.call("GET", "/contacts/?locationId="+e.loc, nil, tr3.AccessToken); resp.StatusCode != 200 {
		t.Fatalf("fresh token: %d %s", resp.StatusCode, b)
	}
	clk.Add(31 * time.Second)
	resp, b = e.call("GET", "/contacts/?locationId="+e.loc, nil, tr3.AccessToken)
	// The real API does not say "expired": exactly {"message":"Invalid JWT"}.
	if resp.StatusCode != 401 || errMsg(t, b).Text() != MsgInvalidJWT || bytes.Contains(bytes.ToLower(b), []byte("expired")) {
		t.Errorf("expired token: %d %s", resp.StatusCode, b)
	}
	if st := e.s.Stats(); st.Refreshes != 2 || st.CodeGrants != 2 {
		t.Errorf("stats: refreshes %d code grants %d", st.Refreshes, st.CodeGrants)
	}
	// Revoke a refresh token: it and its access token die.
	tr4 := e.grant(e.s.AuthorizeCode(e.loc, api.ScopeContactsRO))
	if status, b := e.form("/oauth/revoke", url.Values{"client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret}, "token": {tr4.RefreshToken}}); status != 200 {
		t.Fatalf("revoke: %d %s", status, b)
	}
	if status, _ := e.form("/oauth/token", refreshForm(tr4.RefreshToken)); status != 400 {
		t.Errorf("revoked refresh token: %d", status)
	}
	if resp, b := e.call("GET", "/contacts/?locationId="+e.loc, nil, tr4.AccessToken); resp.StatusCode != 401 || errMsg(t, b).Text() != MsgInvalidJWT {
		t.Errorf("revoked access token: %d %s", resp.StatusCode, b)
	}
}

func TestAuthorizeRedirectAndCompanyToken(t *testing.T) {
	e := start(t, Config{Seed: 1, Contacts: 4, Locations: 2})
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"response_type": {"code"}, "client_id": {DefaultClientID}, "redirect_uri": {"http://127.0.0.1:9/cb"},
		"scope": {"contacts.readonly locations.readonly"}, "state": {"xyz"}, "location_id": {"loc-0002"}}
	resp, err := c.Get(e.base + "/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || err != nil || loc.Query().Get("state") != "xyz" || loc.Query().Get("code") == "" || loc.Host != "127.0.0.1:9" {
		t.Fatalf("authorize: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	status, b := e.form("/oauth/token", url.Values{"client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
		"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {"http://127.0.0.1:9/cb"}, "user_type": {"Location"}})
	var tr api.TokenResponse
	if status != 200 || json.Unmarshal(b, &tr) != nil || tr.LocationID != "loc-0002" || tr.Scope != "contacts.readonly locations.readonly" {
		t.Fatalf("token from authorize: %d %s", status, b)
	}
	// Company token → location token.
	ct := e.grant2(e.s.AuthorizeCompanyCode(api.ScopeContactsRO), "Company")
	if resp, _ := e.call("GET", "/contacts/?locationId="+e.loc, nil, ct.AccessToken); resp.StatusCode != 403 {
		t.Errorf("company token on a location endpoint: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", e.base+"/oauth/locationToken", strings.NewReader(url.Values{"companyId": {e.s.CompanyID()}, "locationId": {"loc-0002"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+ct.AccessToken)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(r2.Body)
	r2.Body.Close()
	var lt api.TokenResponse
	if r2.StatusCode != 200 || json.Unmarshal(b, &lt) != nil || lt.LocationID != "loc-0002" {
		t.Fatalf("locationToken: %d %s", r2.StatusCode, b)
	}
	if resp, b := e.call("GET", "/contacts/?locationId=loc-0002", nil, lt.AccessToken); resp.StatusCode != 200 {
		t.Errorf("location token: %d %s", resp.StatusCode, b)
	}
}

func (e *env) grant2(code, userType string) api.TokenResponse {
	e.t.Helper()
	status, b := e.form("/oauth/token", url.Values{"client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
		"grant_type": {"authorization_code"}, "code": {code}, "user_type": {userType}})
	var tr api.TokenResponse
	if status != 200 || json.Unmarshal(b, &tr) != nil {
		e.t.Fatalf("grant: %d %s", status, b)
	}
	return tr
}

func TestAccessChecks(t *testing.T) {
	e := start(t, Config{Seed: 2, Contacts: 10, Locations: 2, StaticTokens: map[string]StaticToken{
		"pit-read":  {LocationID: "loc-0001", Scopes: []string{api.ScopeContactsRO}},
		"pit-write": {LocationID: "loc-0001", Scopes: []string{"contacts.write"}},
	}})
	other := e.s.Truth("loc-0002")[0].Contact.ID
	mine := e.s.Truth("loc-0001")[0].Contact.ID
	search := map[string]any{"locationId": "loc-0001", "pageLimit": 5}
	for _, tc := range []struct {
		name, method, path string
		body               any
		token              string
		noVersion          bool
		status             int
		msg                string
	}{
		{"no token", "POST", "/contacts/search", search, "", false, 401, MsgInvalidJWT},
		{"unknown token", "POST", "/contacts/search", search, "nope", false, 401, MsgInvalidJWT},
		{"no version", "POST", "/contacts/search", search, "pit-read", true, 400, MsgBadVersion},
		{"scope", "POST", "/contacts/search", search, "pit-write", false, 401, MsgScope},
		{"pit ok", "POST", "/contacts/search", search, "pit-read", false, 200, ""},
		{"other location search", "POST", "/contacts/search", map[string]any{"locationId": "loc-0002", "pageLimit": 5}, "pit-read", false, 403, MsgLocation},
		{"other location list", "GET", "/contacts/?locationId=loc-0002", nil, "pit-read", false, 403, MsgLocation},
		{"other location contact", "GET", "/contacts/" + other, nil, "pit-read", false, 403, MsgLocation},
		{"other location notes", "GET", "/contacts/" + other + "/notes", nil, "pit-read", false, 403, MsgLocation},
		{"other location tasks", "GET", "/contacts/" + other + "/tasks", nil, "pit-read", false, 403, MsgLocation},
		{"other location appointments", "GET", "/contacts/" + other + "/appointments", nil, "pit-read", false, 403, MsgLocation},
		{"mine", "GET", "/contacts/" + mine + "/appointments", nil, "pit-read", false, 200, ""},
		{"unknown path", "GET", "/nothing", nil, "pit-read", false, 404, MsgNotFound},
	} {
		var rd io.Reader
		if tc.body != nil {
			rd = strings.NewReader(string(mustJSON(tc.body)))
		}
		req, _ := http.NewRequest(tc.method, e.base+tc.path, rd)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		if !tc.noVersion {
			req.Header.Set("Version", api.VersionContacts)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, b)
			continue
		}
		if tc.msg != "" {
			eb := errMsg(t, b)
			if eb.Text() != tc.msg || eb.StatusCode != tc.status || eb.Error == "" {
				t.Errorf("%s: body %s", tc.name, b)
			}
		}
		if tc.path != "/nothing" && resp.Header.Get("X-RateLimit-Max") == "" {
			t.Errorf("%s: no rate-limit headers", tc.name)
		}
	}
}

func TestRateLimit(t *testing.T) {
	clk := newClock()
	e := start(t, Config{Seed: 1, Contacts: 3, Locations: 2, Now: clk.Now, RetryAfter: true,
		RateLimit: RateLimit{Max: 5, Interval: 10 * time.Second, Daily: 8}})
	get := func(tok string) *http.Response {
		resp, _ := e.call("GET", "/contacts/?locationId="+e.loc, nil, tok)
		return resp
	}
	for i := range 5 {
		resp := get(e.token)
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("X-RateLimit-Max") != "5" || h.Get("X-RateLimit-Remaining") != strconv.Itoa(4-i) ||
			h.Get("X-RateLimit-Interval-Milliseconds") != "10000" || h.Get("X-RateLimit-Limit-Daily") != "8" ||
			h.Get("X-RateLimit-Daily-Remaining") != strconv.Itoa(7-i) {
			t.Fatalf("request %d: %d %v", i, resp.StatusCode, h)
		}
	}
	resp, b := e.call("GET", "/contacts/?locationId="+e.loc, nil)
	if resp.StatusCode != 429 || errMsg(t, b).Text() != MsgTooMany || resp.Header.Get("Retry-After") != "10" || resp.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("6th: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	// Another location has its own window.
	other := e.grant(e.s.AuthorizeCode("loc-0002", api.ScopeContactsRO)).AccessToken
	if r := get(other); r.StatusCode != 403 || r.Header.Get("X-RateLimit-Remaining") != "4" {
		t.Errorf("other location: %d %v", r.StatusCode, r.Header)
	}
	clk.Add(10 * time.Second)
	for range 3 {
		if r := get(e.token); r.StatusCode != 200 {
			t.Fatalf("after window: %d", r.StatusCode)
		}
	}
	if r := get(e.token); r.StatusCode != 429 || r.Header.Get("X-RateLimit-Daily-Remaining") != "0" {
		t.Errorf("daily: %d %v", r.StatusCode, r.Header)
	}
	if st := e.s.Stats(); st.RateLimited != 2 || st.ByStatus[429] != 2 {
		t.Errorf("stats %+v", st)
	}
	// Unlimited: headers still there with high numbers.
	u := start(t, Config{Seed: 1, Contacts: 1})
	r, _ := u.call("GET", "/contacts/?locationId="+u.loc, nil)
	if r.Header.Get("X-RateLimit-Max") != "1000000" || r.Header.Get("X-RateLimit-Limit-Daily") != "200000" {
		t.Errorf("unlimited headers %v", r.Header)
	}
}

func TestRefreshGrace(t *testing.T) {
	clk := newClock()
	e := start(t, Config{Seed: 1, Contacts: 1, Now: clk.Now, RefreshGrace: time.Minute})
	tr := e.grant(e.s.AuthorizeCode(e.loc, api.ScopeContactsRO))
	refresh := func(rt string) (int, api.TokenResponse) {
		status, b := e.form("/oauth/token", refreshForm(rt))
		var out api.TokenResponse
		json.Unmarshal(b, &out)
		return status, out
	}
	status, tr2 := refresh(tr.RefreshToken)
	if status != 200 {
		t.Fatal(status)
	}
	// Replay within the grace period while the successor is unused: a new
	// pair, and the successor is retired.
	status, tr3 := refresh(tr.RefreshToken)
	if status != 200 || tr3.RefreshToken == tr2.RefreshToken {
		t.Fatalf("grace replay: %d", status)
	}
	if status, _ := refresh(tr2.RefreshToken); status != 400 {
		t.Errorf("retired successor: %d", status)
	}
	clk.Add(2 * time.Minute)
	if status, _ := refresh(tr.RefreshToken); status != 400 {
		t.Errorf("replay after grace: %d", status)
	}
	if st := e.s.Stats(); st.GraceReplays != 1 {
		t.Errorf("GraceReplays %d", st.GraceReplays)
	}
}

// POST /oauth/reconnect checks the client credentials, issues a code bound
// to the installed location (its scopes) and kills the chain it replaces.
func TestReconnect(t *testing.T) {
	e := start(t, Config{Seed: 1, Contacts: 4, Locations: 2})
	other := e.s.Locations()[1]
	tr := e.grant(e.s.AuthorizeCode(e.loc, api.ScopeContactsRO))
	keep := e.grant(e.s.AuthorizeCode(other, api.ScopeContactsRO))
	post := func(body map[string]string) (int, []byte) {
		b, _ := json.Marshal(body)
		resp, err := http.Post(e.base+"/oauth/reconnect", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, rb
	}
	if status, b := post(map[string]string{"clientKey": DefaultClientID, "clientSecret": "wrong", "locationId": e.loc}); status != 401 || errMsg(t, b).Text() != MsgReconnectClient {
		t.Errorf("bad secret: %d %s", status, b)
	}
	if status, _ := post(map[string]string{"clientKey": DefaultClientID, "clientSecret": DefaultClientSecret}); status != 422 {
		t.Errorf("no location: %d", status)
	}
	if status, _ := post(map[string]string{"clientKey": DefaultClientID, "clientSecret": DefaultClientSecret, "companyId": e.s.CompanyID()}); status != 400 {
		t.Errorf("company never installed: %d", status)
	}
	status, b := post(map[string]string{"clientKey": DefaultClientID, "clientSecret": DefaultClientSecret, "locationId": e.loc})
	var rr struct{ AuthorizationCode, ExpiresAt, TraceID string }
	if status != 200 || json.Unmarshal(b, &rr) != nil || rr.AuthorizationCode == "" || rr.ExpiresAt == "" || rr.TraceID == "" {
		t.Fatalf("reconnect: %d %s", status, b)
	}
	// The old chain is dead, the other location's is not.
	if status, _ := e.form("/oauth/token", refreshForm(tr.RefreshToken)); status != 400 {
		t.Errorf("old refresh token after reconnect: %d", status)
	}
	if resp, _ := e.call("GET", "/contacts/?locationId="+e.loc, nil, tr.AccessToken); resp.StatusCode != 401 {
		t.Errorf("old access token after reconnect: %d", resp.StatusCode)
	}
	if resp, _ := e.call("GET", "/contacts/?locationId="+other, nil, keep.AccessToken); resp.StatusCode != 200 {
		t.Errorf("other location's token after reconnect: %d", resp.StatusCode)
	}
	nt := e.grant(rr.AuthorizationCode)
	if nt.LocationID != e.loc || nt.Scope != api.ScopeContactsRO {
		t.Errorf("reconnected grant: %+v", nt.LocationID)
	}
	if resp, b := e.call("GET", "/contacts/?locationId="+e.loc, nil, nt.AccessToken); resp.StatusCode != 200 {
		t.Errorf("reconnected token: %d %s", resp.StatusCode, b)
	}
	if e.s.Stats().Reconnects != 1 {
		t.Errorf("reconnects %d", e.s.Stats().Reconnects)
	}
	// InvalidateAccessTokens: access refused, refresh still works.
	if n := e.s.InvalidateAccessTokens(e.loc); n != 1 {
		t.Errorf("invalidated %d", n)
	}
	if resp, b := e.call("GET", "/contacts/?locationId="+e.loc, nil, nt.AccessToken); resp.StatusCode != 401 || errMsg(t, b).Text() != MsgInvalidJWT {
		t.Errorf("invalidated token: %d %s", resp.StatusCode, b)
	}
	if status, b := e.form("/oauth/token", refreshForm(nt.RefreshToken)); status != 200 {
		t.Errorf("refresh after invalidation: %d %s", status, b)
	}
}

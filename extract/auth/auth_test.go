package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

func startSim(t *testing.T, cfg sim.Config) (*sim.Server, string) {
	t.Helper()
	srv := sim.New(cfg)
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv, base
}

func oauthConf(base string) *oauth2.Config {
	return &oauth2.Config{ClientID: sim.DefaultClientID, ClientSecret: sim.DefaultClientSecret,
		Endpoint: oauth2.Endpoint{TokenURL: base + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
}

// login stores a fresh token pair for loc, as `auth login` would.
func login(t *testing.T, srv *sim.Server, base string, st *Store, loc string) *Token {
	t.Helper()
	ot, err := oauthConf(base).Exchange(context.Background(), srv.AuthorizeCode(loc, api.ScopeContactsRO))
	if err != nil {
		t.Fatal(err)
	}
	tok := FromOAuth(ot)
	if err := st.Put(context.Background(), loc, tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

// expire makes the stored token of key look expired to the client.
func expire(t *testing.T, st *Store, key string) {
	t.Helper()
	err := st.Update(context.Background(), func(f *File) error {
		f.Tokens[key].Expiry = time.Now().Add(-time.Minute)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// works says whether an access token is accepted by the API.
func works(t *testing.T, base, access string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/contacts/nope", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	req.Header.Set("Version", api.VersionContacts)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusUnauthorized
}

func TestStoreFileIsPrivateAndAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.tokens.json")
	st := NewStore(path)
	if err := st.Put(context.Background(), "loc-1", &Token{AccessToken: "a", RefreshToken: "r"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := st.Get("loc-1")
	if err != nil || got.RefreshToken != "r" {
		t.Fatalf("get: %v %v", got, err)
	}
	if _, err := st.Get("loc-2"); !errors.Is(err, ErrNoToken) {
		t.Errorf("missing key: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range ents {
		if e.Name() != "x.tokens.json" && e.Name() != "x.tokens.json.lock" {
			t.Errorf("stray file %s", e.Name())
		}
	}
	if s := fmt.Sprintf("%v %+v %#v %s", got, got, got, got); strings.Contains(s, `"a"`) || strings.Contains(s, " r ") || strings.Contains(s, "AccessToken") {
		t.Errorf("token formatting shows secrets: %s", s)
	}
}

func TestSingleFlightRefresh(t *testing.T) {
	srv, base := startSim(t, sim.Config{Contacts: 1})
	st := NewStore(filepath.Join(t.TempDir(), "t.json"))
	loc := srv.Locations()[0]
	old := login(t, srv, base, st, loc)
	expire(t, st, loc)
	src := NewSource(st, loc, Options{OAuth: oauthConf(base)})
	var wg sync.WaitGroup
	toks := make([]string, 20)
	for i := range toks {
		wg.Go(func() {
			tok, err := src.Token()
			if err != nil {
				t.Error(err)
				return
			}
			toks[i] = tok.AccessToken
		})
	}
	wg.Wait()
	if n := srv.Stats().Refreshes; n != 1 {
		t.Fatalf("refreshes %d, want 1", n)
	}
	saved, _ := st.Get(loc)
	for _, a := range toks {
		if a != saved.AccessToken {
			t.Fatal("a goroutine got a token other than the saved one")
		}
	}
	if saved.RefreshToken == old.RefreshToken || !saved.RefreshingSince.IsZero() {
		t.Errorf("store not rotated or intent not cleared: %v", saved)
	}
	if !works(t, base, saved.AccessToken) {
		t.Error("refreshed token rejected")
	}
}

func TestProactiveRefreshWithShortTTL(t *testing.T) {
	srv, base := startSim(t, sim.Config{Contacts: 1, AccessTTL: time.Second})
	st := NewStore(filepath.Join(t.TempDir(), "t.json"))
	loc := srv.Locations()[0]
	login(t, srv, base, st, loc)
	hc := &http.Client{Transport: NewTransport(NewSource(st, loc, Options{OAuth: oauthConf(base)}), nil)}
	deadline := time.Now().Add(2500 * time.Millisecond)
	n := 0
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, base+"/contacts/nope", nil)
		req.Header.Set("Version", api.VersionContacts)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			t.Fatalf("request %d: 401", n)
		}
		n++
		time.Sleep(20 * time.Millisecond)
	}
	if srv.Stats().Refreshes < 2 {
		t.Errorf("refreshes %d, want >= 2 over 2.5 s of 1 s tokens", srv.Stats().Refreshes)
	}
}

// The real API answers a stale access token with 401 "Invalid JWT" (no
// word "expired"): any 401 on an OAuth token refreshes once and replays the
// request, body and all.
func TestTransportRefreshesOnAny401(t *testing.T) {
	srv, base := startSim(t, sim.Config{Contacts: 5})
	st := NewStore(filepath.Join(t.TempDir(), "t.json"))
	loc := srv.Locations()[0]
	login(t, srv, base, st, loc)
	// The client believes the stored access token valid; the server does not.
	err := st.Update(context.Background(), func(f *File) error {
		f.Tokens[loc].AccessToken = "not-a-token"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: NewTransport(NewSource(st, loc, Options{OAuth: oauthConf(base)}), nil)}
	body := `{"locationId":"` + loc + `","pageLimit":2}`
	req, _ := http.NewRequest(http.MethodPost, base+"/contacts/search", strings.NewReader(body))
	req.Header.Set("Version", api.VersionContacts)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"contacts"`)) {
		t.Fatalf("status %d body %.200s", resp.StatusCode, b)
	}
	if st := srv.Stats(); st.Refreshes != 1 || st.ByStatus[401] != 1 {
		t.Errorf("refreshes %d, 401s %d; want 1 and 1", st.Refreshes, st.ByStatus[401])
	}

	get := func(hc *http.Client) error {
		req, _ := http.NewRequest(http.MethodGet, base+"/contacts/x", nil)
		req.Header.Set("Version", api.VersionContacts)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	// A static token's 401 is an error at once, naming the fix.
	srv.ResetStats()
	err = get(&http.Client{Transport: NewTransport(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "bogus"}), nil)})
	var ae *AuthError
	if !errors.As(err, &ae) || !ae.Static || ae.Message != sim.MsgInvalidJWT || !errors.Is(err, ErrCredentials) || ae.Fix == "" {
		t.Errorf("static 401: %v", err)
	}
	if st := srv.Stats(); st.Requests != 1 {
		t.Errorf("static 401: %d requests, want 1", st.Requests)
	}
	// A token without the scope: the API's scope answer comes back as it
	// is (the caller may fall back), with no refresh, which cannot help.
	login(t, srv, base, st, loc) // fresh pair...
	err = st.Update(context.Background(), func(f *File) error {
		ot, err := oauthConf(base).Exchange(context.Background(), srv.AuthorizeCode(loc)) // ...with no scope
		if err == nil {
			f.Tokens[loc] = FromOAuth(ot)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.ResetStats()
	hc = &http.Client{Transport: NewTransport(NewSource(st, loc, Options{OAuth: oauthConf(base)}), nil)}
	sreq, _ := http.NewRequest(http.MethodGet, base+"/contacts/x", nil)
	sreq.Header.Set("Version", api.VersionContacts)
	resp, err = hc.Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), MsgScope) {
		t.Errorf("scope 401: %d %s", resp.StatusCode, b)
	}
	if st := srv.Stats(); st.Refreshes != 0 || st.ByStatus[401] != 1 {
		t.Errorf("scope 401: refreshes %d, 401s %d; want 0 and 1", st.Refreshes, st.ByStatus[401])
	}
}

// Access tokens invalidated server-side in the middle of a burst of
// concurrent requests: every request succeeds, with one refresh per
// invalidation.
func TestInvalidatedAccessTokensMidRun(t *testing.T) {
	srv, base := startSim(t, sim.Config{Contacts: 20})
	st := NewStore(filepath.Join(t.TempDir(), "t.json"))
	loc := srv.Locations()[0]
	login(t, srv, base, st, loc)
	var ids []string
	for _, c := range srv.Truth(loc) {
		ids = append(ids, c.Contact.ID)
	}
	hc := &http.Client{Transport: NewTransport(NewSource(st, loc, Options{OAuth: oauthConf(base)}), nil)}
	const rounds, perRound, workers = 4, 40, 8
	for round := range rounds {
		// The first half completes, then the tokens are invalidated while
		// the third quarter is in flight; the last quarter waits for it.
		var firstHalf sync.WaitGroup
		firstHalf.Add(perRound / 2)
		mid := make(chan struct{})
		go func() { firstHalf.Wait(); srv.InvalidateAccessTokens(loc); close(mid) }()
		jobs := make(chan int)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := range jobs {
					req, _ := http.NewRequest(http.MethodGet, base+"/contacts/"+ids[i%len(ids)]+"/tasks", nil)
					req.Header.Set("Version", api.VersionContacts)
					resp, err := hc.Do(req)
					if err != nil {
						t.Errorf("round %d request %d: %v", round, i, err)
					} else {
						resp.Body.Close()
						if resp.StatusCode != 200 {
							t.Errorf("round %d request %d: %d", round, i, resp.StatusCode)
						}
					}
					if i < perRound/2 {
						firstHalf.Done()
					}
				}
			})
		}
		for i := range perRound {
			if i == perRound*3/4 {
				<-mid
			}
			jobs <- i
		}
		close(jobs)
		wg.Wait()
	}
	if st := srv.Stats(); st.ByStatus[401] == 0 {
		t.Error("no request saw a 401: the test proves nothing")
	}
	if st := srv.Stats(); st.Refreshes != rounds {
		t.Errorf("refreshes %d, want %d (one per invalidation)", st.Refreshes, rounds)
	}
}

func TestAgencyExchange(t *testing.T) {
	srv, base := startSim(t, sim.Config{Contacts: 4, Locations: 2})
	st := NewStore(filepath.Join(t.TempDir(), "t.json"))
	ot, err := oauthConf(base).Exchange(context.Background(), srv.AuthorizeCompanyCode(api.ScopeContactsRO))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), CompanyKey, FromOAuth(ot)); err != nil {
		t.Fatal(err)
	}
	company := NewSource(st, CompanyKey, Options{OAuth: oauthConf(base)})
	for _, loc := range srv.Locations() {
		src := NewAgencySource(st, company, srv.CompanyID(), loc, base+"/oauth/locationToken", Options{})
		tok, err := src.Token()
		if err != nil {
			t.Fatal(err)
		}
		if !works(t, base, tok.AccessToken) {
			t.Errorf("%s: exchanged token rejected", loc)
		}
		if saved, err := st.Get(loc); err != nil || saved.AccessToken != tok.AccessToken || saved.LocationID != loc {
			t.Errorf("%s: not stored: %v %v", loc, saved, err)
		}
	}
	// A location outside the company is refused with a clear error.
	src := NewAgencySource(st, company, srv.CompanyID(), "loc-9999", base+"/oauth/locationToken", Options{})
	if _, err := src.Token(); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("foreign location: %v", err)
	}
}

func TestStaticFromEnvOrFile(t *testing.T) {
	t.Setenv("CETL_TEST_PIT", "")
	f := filepath.Join(t.TempDir(), "pit")
	os.WriteFile(f, []byte("pit-from-file\n"), 0o600)
	src, err := Static("CETL_TEST_PIT", f)
	if err != nil {
		t.Fatal(err)
	}
	if tok, _ := src.Token(); tok.AccessToken != "pit-from-file" {
		t.Errorf("file token %q", tok.AccessToken)
	}
	t.Setenv("CETL_TEST_PIT", "pit-from-env")
	src, _ = Static("CETL_TEST_PIT", f)
	if tok, _ := src.Token(); tok.AccessToken != "pit-from-env" {
		t.Errorf("env token %q", tok.AccessToken)
	}
	t.Setenv("CETL_TEST_PIT", "")
	if _, err := Static("CETL_TEST_PIT", ""); err == nil || strings.Contains(err.Error(), "pit-") {
		t.Errorf("unset: %v", err)
	}
}

// A refresh the server refuses (invalid_grant, invalid_client) is not
// retried, clears the refresh marker (the server answered: nothing was lost
// in flight), is not blamed on an interrupted refresh, and names its fix.
// invalid_grant is remembered in the store: no later run asks again until
// `auth reconnect` (or login) replaces the token.
func TestRefusedRefreshIsFinal(t *testing.T) {
	srv, base := startSim(t, sim.Config{Contacts: 1, Locations: 2})
	st := NewStore(filepath.Join(t.TempDir(), "t.json"))
	loc, other := srv.Locations()[0], srv.Locations()[1]
	tok := login(t, srv, base, st, loc)
	login(t, srv, base, st, other)
	http.PostForm(base+"/oauth/revoke", url.Values{"client_id": {sim.DefaultClientID}, "client_secret": {sim.DefaultClientSecret}, "token": {tok.RefreshToken}})
	expire(t, st, loc)
	srv.ResetStats()
	src := NewSource(st, loc, Options{OAuth: oauthConf(base)})
	for i := range 3 {
		_, err := src.Token()
		var re *RefreshError
		if !errors.As(err, &re) || re.Code != "invalid_grant" || re.Interrupted || !errors.Is(err, ErrCredentials) || !errors.Is(err, ErrReauth) {
			t.Fatalf("call %d: %v", i, err)
		}
		if !strings.Contains(err.Error(), "auth reconnect --auth oauth --locations "+loc) || strings.Contains(err.Error(), "interrupted") {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if n := srv.Stats().ByKind["token"]; n != 1 {
		t.Errorf("token requests %d, want 1 (no retry of a refused refresh)", n)
	}
	saved, _ := st.Get(loc)
	if !saved.RefreshingSince.IsZero() || saved.Rejected != "invalid_grant" {
		t.Errorf("marker %v rejected %q", saved.RefreshingSince, saved.Rejected)
	}
	// A later process does not ask either, and the run's pre-check names it.
	if _, err := NewSource(st, loc, Options{OAuth: oauthConf(base)}).Token(); !errors.Is(err, ErrCredentials) {
		t.Errorf("new source: %v", err)
	}
	un := CheckUsable(map[string]oauth2.TokenSource{
		loc:   NewSource(st, loc, Options{OAuth: oauthConf(base)}),
		other: NewSource(st, other, Options{OAuth: oauthConf(base)}),
		"x":   NewSource(st, "loc-none", Options{OAuth: oauthConf(base)}),
	})
	if len(un) != 2 || un[0].Location != loc || !strings.Contains(un[0].Fix, "auth reconnect") || un[1].Location != "x" || !strings.Contains(un[1].Fix, "auth login --auth oauth --locations loc-none") {
		t.Errorf("CheckUsable: %+v", un)
	}
	if n := srv.Stats().ByKind["token"]; n != 1 {
		t.Errorf("token requests %d after later calls, want 1", n)
	}
	// auth reconnect brings it back with no user.
	if _, err := src.Reconnect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tk, err := src.Token(); err != nil || !works(t, base, tk.AccessToken) {
		t.Fatalf("after reconnect: %v", err)
	}
	if un := CheckUsable(map[string]oauth2.TokenSource{loc: src}); len(un) != 0 {
		t.Errorf("still unusable: %+v", un)
	}

	// invalid_client: a wrong secret. Not retried, marker cleared, the fix
	// is the client credentials, and the stored token is not condemned.
	expire(t, st, other)
	srv.ResetStats()
	bad := oauthConf(base)
	bad.ClientSecret = "wrong"
	src = NewSource(st, other, Options{OAuth: bad})
	for i := range 2 {
		_, err := src.Token()
		var re *RefreshError
		if !errors.As(err, &re) || re.Code != "invalid_client" || !errors.Is(err, ErrCredentials) || !strings.Contains(re.Fix, "client secret") || strings.Contains(err.Error(), "wrong") {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := srv.Stats().ByKind["token"]; n != 1 {
		t.Errorf("token requests %d, want 1", n)
	}
	saved, _ = st.Get(other)
	if !saved.RefreshingSince.IsZero() || saved.Rejected != "" {
		t.Errorf("invalid_client: marker %v rejected %q", saved.RefreshingSince, saved.Rejected)
	}
	if _, err := NewSource(st, other, Options{OAuth: oauthConf(base)}).Token(); err != nil {
		t.Errorf("the right secret: %v", err)
	}
}

// A refresh answered 502 by a gateway after the server rotated the token
// keeps the marker (the new pair is lost in flight, as with a kill), so the
// next attempt's invalid_grant is recognised as an interrupted refresh and
// recovered through the Reconnect API.
func TestRefresh5xxKeepsMarker(t *testing.T) {
	srv := sim.New(sim.Config{Contacts: 1})
	var failed atomic.Bool
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		form, _ := url.ParseQuery(string(b))
		if r.URL.Path == "/oauth/token" && form.Get("grant_type") == "refresh_token" && failed.CompareAndSwap(false, true) {
			srv.ServeHTTP(httptest.NewRecorder(), r)            // the server rotates the token...
			http.Error(w, "bad gateway", http.StatusBadGateway) // ...the answer is lost
			return
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(gw.Close)
	base := gw.URL
	st := NewStore(filepath.Join(t.TempDir(), "t.json"))
	loc := srv.Locations()[0]
	login(t, srv, base, st, loc)
	expire(t, st, loc)
	src := NewSource(st, loc, Options{OAuth: oauthConf(base)})
	if _, err := src.Token(); err == nil || errors.Is(err, ErrCredentials) {
		t.Fatalf("502 refresh: %v", err)
	}
	if saved, _ := st.Get(loc); saved.RefreshingSince.IsZero() {
		t.Error("marker cleared after a 502")
	}
	tok, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Refreshes != 1 || st.Reconnects != 1 || !works(t, base, tok.AccessToken) {
		t.Errorf("refreshes %d reconnects %d", st.Refreshes, st.Reconnects)
	}
	if saved, _ := st.Get(loc); !saved.RefreshingSince.IsZero() {
		t.Error("marker left after recovery")
	}
}

// The transport sends the token on a copy of the request: the caller's
// request and its header stay as they were.
func TestTransportLeavesTheRequestAlone(t *testing.T) {
	_, base := startSim(t, sim.Config{Seed: 1, Contacts: 3,
		StaticTokens: map[string]sim.StaticToken{"pit-a": {LocationID: "loc-0001", Scopes: []string{api.ScopeContactsRO}}}})
	tr := NewTransport(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "pit-a"}), http.DefaultTransport)
	req, err := http.NewRequest(http.MethodPost, base+"/contacts/search", strings.NewReader(`{"locationId":"loc-0001","pageLimit":2}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Version", api.VersionContacts)
	req.Header.Set("Accept", "application/json")
	before := req.Header.Clone()
	url0 := *req.URL
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"contacts"`)) {
		t.Fatalf("status %d body %.200s", resp.StatusCode, b)
	}
	if fmt.Sprint(req.Header) != fmt.Sprint(before) || req.Header.Get("Authorization") != "" || *req.URL != url0 {
		t.Errorf("request changed: header %v, URL %v", req.Header, req.URL)
	}
}

package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// An access token the server calls expired (clock skew, revocation of the
// access token) is refreshed once and the request, body and all, replayed.
func TestTransportRetriesOnceOnExpired401(t *testing.T) {
	srv, base := startSim(t, sim.Config{Contacts: 5})
	st := NewStore(filepath.Join(t.TempDir(), "t.json"))
	loc := srv.Locations()[0]
	login(t, srv, base, st, loc)
	// The client believes the stored access token valid; the server does not.
	err := st.Update(context.Background(), func(f *File) error {
		f.Tokens[loc].AccessToken = "not-a-token-expired"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The simulator says "Invalid JWT" for unknown tokens: not "expired", so
	// no replay; a wrapped base that rewrites the first 401 says expired.
	base401 := &expiredOnce{base: http.DefaultTransport}
	hc := &http.Client{Transport: NewTransport(NewSource(st, loc, Options{OAuth: oauthConf(base)}), base401)}
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
	if srv.Stats().Refreshes != 1 || base401.n != 2 {
		t.Errorf("refreshes %d, attempts %d; want 1 and 2", srv.Stats().Refreshes, base401.n)
	}
	// A 401 that is not about expiry is returned as is, body intact.
	hc2 := &http.Client{Transport: NewTransport(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "bogus"}), nil)}
	req, _ = http.NewRequest(http.MethodGet, base+"/contacts/x", nil)
	req.Header.Set("Version", api.VersionContacts)
	resp, err = hc2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !bytes.Contains(b, []byte(sim.MsgInvalidJWT)) {
		t.Errorf("non-expiry 401: %d %s", resp.StatusCode, b)
	}
}

// expiredOnce turns the first 401 into the server's "token expired" 401.
type expiredOnce struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    int
}

func (e *expiredOnce) RoundTrip(r *http.Request) (*http.Response, error) {
	e.mu.Lock()
	e.n++
	first := e.n == 1
	e.mu.Unlock()
	resp, err := e.base.RoundTrip(r)
	if err == nil && first && resp.StatusCode == 401 {
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(`{"statusCode":401,"message":"` + sim.MsgTokenExpired + `"}`))
	}
	return resp, err
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

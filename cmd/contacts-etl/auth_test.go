package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/internal/truth"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/auth"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

const testSecret = "cs-Very-Secret-9f8e7d"

// recorder serves the simulator and remembers every token it hands out.
type recorder struct {
	srv    *sim.Server
	mu     sync.Mutex
	tokens []string
}

var tokenRE = regexp.MustCompile(`"(access_token|refresh_token)":"([^"]+)"`)

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if !strings.HasPrefix(req.URL.Path, "/oauth/") {
		r.srv.ServeHTTP(w, req)
		return
	}
	rec := httptest.NewRecorder()
	r.srv.ServeHTTP(rec, req)
	r.mu.Lock()
	for _, m := range tokenRE.FindAllStringSubmatch(rec.Body.String(), -1) {
		r.tokens = append(r.tokens, m[2])
	}
	r.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

func (r *recorder) secrets() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string{testSecret}, r.tokens...)
}

func startRecordedSim(t *testing.T, cfg sim.Config) (*sim.Server, *recorder, string) {
	t.Helper()
	cfg.ClientSecret = testSecret
	srv := sim.New(cfg)
	rec := &recorder{srv: srv}
	hs := httptest.NewServer(rec)
	t.Cleanup(hs.Close)
	t.Setenv("CONTACTS_ETL_CLIENT_SECRET", testSecret)
	return srv, rec, hs.URL
}

// loginStore stores a token for each location as `auth login` would.
func loginStore(t *testing.T, srv *sim.Server, base, path string, scopes ...string) {
	t.Helper()
	conf := &oauth2.Config{ClientID: sim.DefaultClientID, ClientSecret: testSecret,
		Endpoint: oauth2.Endpoint{TokenURL: base + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
	st := auth.NewStore(path)
	for _, loc := range srv.Locations() {
		ot, err := conf.Exchange(context.Background(), srv.AuthorizeCode(loc, scopes...))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Put(context.Background(), loc, auth.FromOAuth(ot)); err != nil {
			t.Fatal(err)
		}
	}
}

func assertNoSecrets(t *testing.T, what string, b []byte, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("%s contains a secret (%d chars, starts %q)", what, len(s), s[:4])
		}
	}
}

// A run whose access tokens live 1 s and which takes longer than that
// completes with no failed request and no lost record; nothing it prints
// (debug level) or writes holds a token or the client secret.
func TestRunWithShortLivedTokens(t *testing.T) {
	srv, rec, base := startRecordedSim(t, sim.Config{Contacts: 400, Locations: 2, Seed: 3, AccessTTL: time.Second,
		RateLimit: sim.RateLimit{Max: 100, Interval: time.Second}})
	dir := t.TempDir()
	tokens := filepath.Join(dir, "sim.tokens.json")
	loginStore(t, srv, base, tokens, api.ScopeContactsRO, api.ScopeLocationsRO, api.ScopeTasksRO, api.ScopeCalendarsRO, api.ScopeEventsRO) // every read scope: no 401 is expected
	wh := filepath.Join(dir, "w.duckdb")
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := dispatch(context.Background(), []string{"run", "--source", "sim", "--base-url", base,
		"--locations", strings.Join(srv.Locations(), ","), "--warehouse", wh, "--auth", "oauth",
		"--client-id", sim.DefaultClientID, "--token-file", tokens, "--log-level", "debug",
		"--concurrency", "2", "--location-concurrency", "2", "--page-limit", "50",
		"--rate-max", "150", "--rate-interval", "1s"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	took := time.Since(start)
	st := srv.Stats()
	if st.ByStatus[http.StatusUnauthorized] != 0 {
		t.Errorf("%d requests answered 401", st.ByStatus[http.StatusUnauthorized])
	}
	// 200 contacts per location need over 200 requests (a notes list each),
	// which the simulator's limit of 100 per second per location spreads
	// over more than 2 s: beyond a 1 s token, whatever the machine.
	if st.Refreshes < 2 {
		t.Errorf("run took %v with 1 s tokens but refreshed %d times", took, st.Refreshes)
	}
	t.Logf("run took %v, %d refreshes", took, st.Refreshes)
	truth.CompareWarehouse(t, srv, wh, "sim", srv.Locations())

	secrets := rec.secrets()
	if len(secrets) < 3 {
		t.Fatalf("recorded only %d secrets", len(secrets))
	}
	assertNoSecrets(t, "stdout", stdout.Bytes(), secrets)
	assertNoSecrets(t, "stderr (debug log)", stderr.Bytes(), secrets)
	for _, f := range []string{wh, wh + ".wal"} {
		if b, err := os.ReadFile(f); err == nil {
			assertNoSecrets(t, filepath.Base(f), b, secrets)
		}
	}
	// The store itself holds the live pair, and only the live pair.
	b, _ := os.ReadFile(tokens)
	assertNoSecrets(t, "token file", b, []string{testSecret})
}

func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := dispatch(context.Background(), args, &out, &out)
	return code, out.String()
}

// syncBuf is a bytes.Buffer safe for a writer and a polling reader.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

var authURLRE = regexp.MustCompile(`http://\S+/oauth/authorize\?\S+`)

func waitURL(t *testing.T, out *syncBuf) string { t.Helper(); return waitNthURL(t, out, 1) }

// waitNthURL waits for the n-th authorize URL printed (1-based).
func waitNthURL(t *testing.T, out *syncBuf, n int) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := authURLRE.FindAllString(out.String(), -1); len(m) >= n {
			return m[n-1]
		}
	}
	t.Fatalf("no authorize URL printed:\n%s", out.String())
	return ""
}

func TestAuthLogin(t *testing.T) {
	for _, noBrowser := range []bool{false, true} {
		t.Run(map[bool]string{false: "callback", true: "no-browser"}[noBrowser], func(t *testing.T) {
			srv, rec, base := startRecordedSim(t, sim.Config{Contacts: 3, Locations: 2})
			tokens := filepath.Join(t.TempDir(), "t.json")
			loc := srv.Locations()[1]
			args := []string{"auth", "login", "--base-url", base, "--client-id", sim.DefaultClientID, "--token-file", tokens,
				"--authorize-url", base + "/oauth/authorize", "--location", loc, "--timeout", "20s"}
			pr, pw := io.Pipe()
			defer pw.Close()
			if noBrowser {
				args = append(args, "--no-browser")
				old := stdin
				stdin = pr
				defer func() { stdin = old }()
			} else {
				// A loopback port of our own choosing via config would race; use :0.
				cfgFile := filepath.Join(t.TempDir(), "c.yaml")
				os.WriteFile(cfgFile, []byte("auth:\n  redirect_url: http://127.0.0.1:0/callback\n"), 0o600)
				args = append(args, "--config", cfgFile)
			}
			out := &syncBuf{}
			done := make(chan int, 1)
			go func() { done <- dispatch(context.Background(), args, out, out) }()
			u := waitURL(t, out)
			if !strings.Contains(u, "scope=contacts.readonly") || !strings.Contains(u, "state=") {
				t.Errorf("authorize URL lacks scope or state: %s", u)
			}
			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := noFollow.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			redirect := resp.Header.Get("Location")
			if noBrowser {
				io.WriteString(pw, redirect+"\n")
			} else {
				// A forged callback with the wrong state is refused.
				bad, _ := url.Parse(redirect)
				q := bad.Query()
				q.Set("state", "forged")
				bad.RawQuery = q.Encode()
				if r, err := http.Get(bad.String()); err != nil || r.StatusCode != http.StatusBadRequest {
					t.Errorf("forged state: %v %v", r, err)
				}
				r, err := http.Get(redirect)
				if err != nil {
					t.Fatal(err)
				}
				r.Body.Close()
			}
			if code := <-done; code != 0 {
				t.Fatalf("exit %d\n%s", code, out.String())
			}
			tok, err := auth.NewStore(tokens).Get(loc)
			if err != nil || tok.LocationID != loc || tok.RefreshToken == "" {
				t.Fatalf("stored %v, %v", tok, err)
			}
			fi, _ := os.Stat(tokens)
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("token file mode %v", fi.Mode().Perm())
			}
			assertNoSecrets(t, "login output", []byte(out.String()), rec.secrets())
			// The stored login works for check.
			code, o := runCLI(t, "check", "--base-url", base, "--locations", loc, "--auth", "oauth", "--client-id", sim.DefaultClientID, "--token-file", tokens)
			if code != 0 {
				t.Errorf("check after login: exit %d\n%s", code, o)
			}
		})
	}
}

func TestCheckDiagnoses(t *testing.T) {
	srv, rec, base := startRecordedSim(t, sim.Config{Contacts: 6, Locations: 2,
		StaticTokens: map[string]sim.StaticToken{"pit-good": {LocationID: "loc-0001", Scopes: []string{api.ScopeContactsRO}}}})
	locs := srv.Locations()
	oauthArgs := func(tokens string, extra ...string) []string {
		return append([]string{"check", "--base-url", base, "--locations", locs[0], "--auth", "oauth", "--client-id", sim.DefaultClientID, "--token-file", tokens}, extra...)
	}
	good := filepath.Join(t.TempDir(), "good.json")
	loginStore(t, srv, base, good, api.ScopeContactsRO)

	t.Run("good", func(t *testing.T) {
		code, out := runCLI(t, oauthArgs(good)...)
		if code != 0 || !strings.Contains(out, "valid until") || !strings.Contains(out, "rate limit") || !strings.Contains(out, "all checks passed") {
			t.Errorf("exit %d\n%s", code, out)
		}
		assertNoSecrets(t, "check output", []byte(out), rec.secrets())
	})
	t.Run("static good", func(t *testing.T) {
		t.Setenv("CONTACTS_ETL_TOKEN", "pit-good")
		code, out := runCLI(t, "check", "--base-url", base, "--locations", locs[0], "--auth", "static")
		if code != 0 {
			t.Errorf("exit %d\n%s", code, out)
		}
		if strings.Contains(out, "pit-good") {
			t.Error("check printed the static token")
		}
	})
	cases := []struct {
		name, want string
		args       func(t *testing.T) []string
	}{
		{"revoked refresh token", "auth reconnect --auth oauth --locations " + locs[0], func(t *testing.T) []string {
			p := filepath.Join(t.TempDir(), "t.json")
			loginStore(t, srv, base, p, api.ScopeContactsRO)
			tok, _ := auth.NewStore(p).Get(locs[0])
			http.PostForm(base+"/oauth/revoke", url.Values{"client_id": {sim.DefaultClientID}, "client_secret": {testSecret}, "token": {tok.RefreshToken}})
			auth.NewStore(p).Update(context.Background(), func(f *auth.File) error { f.Tokens[locs[0]].Expiry = time.Now().Add(-time.Hour); return nil })
			return oauthArgs(p)
		}},
		{"static token refused", "static token refused (Invalid JWT)", func(t *testing.T) []string {
			t.Setenv("CONTACTS_ETL_TOKEN", "pit-bad")
			return []string{"check", "--base-url", base, "--locations", locs[0], "--auth", "static"}
		}},
		{"no token stored", "no token stored", func(t *testing.T) []string {
			return oauthArgs(filepath.Join(t.TempDir(), "none.json"))
		}},
		{"missing scope", "missing", func(t *testing.T) []string {
			p := filepath.Join(t.TempDir(), "t.json")
			loginStore(t, srv, base, p) // no scopes granted
			return oauthArgs(p)
		}},
		{"no access to location", "no access to location " + locs[1], func(t *testing.T) []string {
			t.Setenv("CONTACTS_ETL_TOKEN", "pit-good") // a token of loc-0001
			return []string{"check", "--base-url", base, "--locations", locs[1], "--auth", "static"}
		}},
		{"wrong Version", "wrong Version header", func(t *testing.T) []string {
			return oauthArgs(good, "--api-version", "2099-01-01")
		}},
		{"unreachable host", "cannot reach 127.0.0.1:1", func(t *testing.T) []string {
			t.Setenv("CONTACTS_ETL_TOKEN", "pit-good")
			return []string{"check", "--base-url", "http://127.0.0.1:1", "--locations", locs[0], "--auth", "static"}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := runCLI(t, c.args(t)...)
			if code == 0 || !strings.Contains(out, c.want) || !strings.Contains(out, "FAIL") {
				t.Errorf("exit %d, want non-zero and %q in:\n%s", code, c.want, out)
			}
			assertNoSecrets(t, "check output", []byte(out), append(rec.secrets(), "pit-good"))
		})
	}
}

// consentAs follows an authorize URL as a user who picks location pick
// ("" = as offered), then delivers the redirect to the callback.
func consentAs(t *testing.T, u, pick string) {
	t.Helper()
	if pick != "" {
		pu, _ := url.Parse(u)
		q := pu.Query()
		q.Set("location_id", pick)
		pu.RawQuery = q.Encode()
		u = pu.String()
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r, err := http.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
}

func loginArgs(t *testing.T, base, tokens string, extra ...string) []string {
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte("auth:\n  redirect_url: http://127.0.0.1:0/callback\n"), 0o600)
	return append([]string{"auth", "login", "--base-url", base, "--client-id", sim.DefaultClientID, "--token-file", tokens,
		"--authorize-url", base + "/oauth/authorize", "--timeout", "20s", "--config", cfgFile}, extra...)
}

// auth login --locations a,b,c asks one consent per location, in turn, and
// stores each under the location asked for; a consent given for another
// location is refused and stores nothing under either. auth reconnect then
// restores a location whose refresh token is gone, with no consent.
func TestAuthLoginSeveralLocations(t *testing.T) {
	srv, rec, base := startRecordedSim(t, sim.Config{Contacts: 6, Locations: 3})
	locs := srv.Locations()
	tokens := filepath.Join(t.TempDir(), "t.json")
	out := &syncBuf{}
	done := make(chan int, 1)
	go func() {
		done <- dispatch(context.Background(), loginArgs(t, base, tokens, "--locations", strings.Join(locs, ",")), out, out)
	}()
	consentAs(t, waitNthURL(t, out, 1), "")
	consentAs(t, waitNthURL(t, out, 2), locs[0]) // the user picks the wrong location
	consentAs(t, waitNthURL(t, out, 3), "")
	if code := <-done; code == 0 || !strings.Contains(out.String(), "consent was given for location "+locs[0]+", not "+locs[1]) {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	f, err := auth.NewStore(tokens).Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tokens) != 2 || f.Tokens[locs[0]] == nil || f.Tokens[locs[2]] == nil || f.Tokens[locs[0]].LocationID != locs[0] || f.Tokens[locs[2]].LocationID != locs[2] {
		t.Fatalf("stored %v", f.Tokens)
	}
	assertNoSecrets(t, "login output", []byte(out.String()), rec.secrets())

	// The run's pre-check names the location with no token, and its fix.
	cfg := defaultConfig()
	cfg.BaseURL, cfg.Locations, cfg.Auth.Type, cfg.Auth.ClientID, cfg.Auth.TokenFile = base, locs, "oauth", sim.DefaultClientID, tokens
	sources, err := tokenSources(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	un := auth.CheckUsable(sources)
	if len(un) != 1 || un[0].Location != locs[1] || !strings.Contains(un[0].Fix, "auth login --auth oauth --locations "+locs[1]) {
		t.Errorf("CheckUsable: %+v", un)
	}

	// Log the missing one in alone.
	out = &syncBuf{}
	go func() {
		done <- dispatch(context.Background(), loginArgs(t, base, tokens, "--locations", locs[1]), out, out)
	}()
	consentAs(t, waitNthURL(t, out, 1), "")
	if code := <-done; code != 0 {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	if un := auth.CheckUsable(sources); len(un) != 0 {
		t.Errorf("CheckUsable after login: %+v", un)
	}

	// The refresh token of locs[0] is lost: auth reconnect brings it back.
	auth.NewStore(tokens).Update(context.Background(), func(f *auth.File) error {
		f.Tokens[locs[0]].RefreshToken = "lost"
		f.Tokens[locs[0]].Expiry = time.Now().Add(-time.Hour)
		return nil
	})
	code, o := runCLI(t, "check", "--base-url", base, "--locations", locs[0], "--auth", "oauth", "--client-id", sim.DefaultClientID, "--token-file", tokens)
	if code == 0 || !strings.Contains(o, "auth reconnect --auth oauth --locations "+locs[0]) {
		t.Errorf("check of a lost token: exit %d\n%s", code, o)
	}
	code, o = runCLI(t, "auth", "reconnect", "--base-url", base, "--locations", locs[0], "--auth", "oauth", "--client-id", sim.DefaultClientID, "--token-file", tokens)
	if code != 0 || srv.Stats().Reconnects != 1 {
		t.Fatalf("auth reconnect: exit %d\n%s", code, o)
	}
	assertNoSecrets(t, "reconnect output", []byte(o), rec.secrets())
	code, o = runCLI(t, "check", "--base-url", base, "--locations", strings.Join(locs, ","), "--auth", "oauth", "--client-id", sim.DefaultClientID, "--token-file", tokens)
	if code != 0 {
		t.Errorf("check after reconnect: exit %d\n%s", code, o)
	}
}

// auth login --auth agency asks one company consent and exchanges it for
// each location's token.
func TestAuthLoginAgency(t *testing.T) {
	srv, _, base := startRecordedSim(t, sim.Config{Contacts: 4, Locations: 2})
	locs := srv.Locations()
	tokens := filepath.Join(t.TempDir(), "t.json")
	out := &syncBuf{}
	done := make(chan int, 1)
	go func() {
		done <- dispatch(context.Background(), loginArgs(t, base, tokens, "--auth", "agency", "--company-id", srv.CompanyID(), "--locations", strings.Join(locs, ",")), out, out)
	}()
	u := waitNthURL(t, out, 1)
	if !strings.Contains(u, "user_type=Company") {
		t.Errorf("agency consent URL: %s", u)
	}
	consentAs(t, u, "")
	if code := <-done; code != 0 {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	if n := len(authURLRE.FindAllString(out.String(), -1)); n != 1 {
		t.Errorf("%d consents asked, want 1", n)
	}
	f, _ := auth.NewStore(tokens).Load()
	if f.Tokens[auth.CompanyKey] == nil || f.Tokens[locs[0]] == nil || f.Tokens[locs[1]] == nil || f.Tokens[locs[1]].LocationID != locs[1] {
		t.Fatalf("stored %v", f.Tokens)
	}
}

// A location without usable credentials is named with the command that
// fixes it and skipped; the others are exported and the run ends partial
// (exit 3).
func TestRunSkipsLocationWithoutCredentials(t *testing.T) {
	srv, _, base := startRecordedSim(t, sim.Config{Contacts: 200, Locations: 2, Seed: 4})
	dir := t.TempDir()
	tokens := filepath.Join(dir, "sim.tokens.json")
	loginStore(t, srv, base, tokens, api.ScopeContactsRO, api.ScopeLocationsRO)
	locs := srv.Locations()
	if err := auth.NewStore(tokens).Update(context.Background(), func(f *auth.File) error {
		delete(f.Tokens, locs[1]) // never logged in
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wh := filepath.Join(dir, "w.duckdb")
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), []string{"run", "--source", "sim", "--base-url", base,
		"--locations", strings.Join(locs, ","), "--warehouse", wh, "--auth", "oauth",
		"--client-id", sim.DefaultClientID, "--token-file", tokens}, &stdout, &stderr)
	if code != exitPartial {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitPartial, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), locs[1]) || !strings.Contains(stderr.String(), "auth login") {
		t.Errorf("the skipped location and its fix are not named:\n%s", stderr.String())
	}
	truth.CompareWarehouse(t, srv, wh, "sim", locs[:1])
}

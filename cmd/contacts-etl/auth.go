package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/auth"
)

// stdin is where `auth login --no-browser` reads the pasted URL or code.
var stdin io.Reader = os.Stdin

// authStore opens the source's token store and the options of its sources.
func authStore(cfg Config) (*auth.Store, auth.Options, error) {
	path, err := cfg.tokenFile()
	if err != nil {
		return nil, auth.Options{}, err
	}
	conf, err := oauthConfig(cfg)
	if err != nil {
		return nil, auth.Options{}, err
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	return auth.NewStore(path), auth.Options{OAuth: conf, HTTPClient: hc, CompanyID: cfg.Auth.CompanyID,
		ReconnectURL: strings.TrimRight(cfg.BaseURL, "/") + "/oauth/reconnect"}, nil
}

// oauthConfig is the x/oauth2 client of the config; the secret is read from
// the environment or a file.
func oauthConfig(cfg Config) (*oauth2.Config, error) {
	if cfg.Auth.ClientID == "" {
		return nil, usageError{errors.New("oauth needs client_id (config auth.client_id or --client-id)")}
	}
	sec, err := auth.ReadSecret(cfg.Auth.ClientSecretEnv, cfg.Auth.ClientSecretFile)
	if err != nil {
		return nil, usageError{fmt.Errorf("client secret: %w", err)}
	}
	authURL := cfg.Auth.AuthorizeURL
	if authURL == "" {
		authURL = defaultAuthorizeURL
	}
	return &oauth2.Config{
		ClientID: cfg.Auth.ClientID, ClientSecret: sec,
		Endpoint:    oauth2.Endpoint{AuthURL: authURL, TokenURL: cfg.Auth.tokenURL(cfg.BaseURL), AuthStyle: oauth2.AuthStyleInParams},
		Scopes:      neededScopes(cfg),
		RedirectURL: cfg.Auth.RedirectURL,
	}, nil
}

// neededScopes is contacts.readonly plus the optional scopes configured.
func neededScopes(cfg Config) []string {
	out := []string{api.ScopeContactsRO}
	for _, s := range cfg.Auth.Scopes {
		if s != api.ScopeContactsRO {
			out = append(out, s)
		}
	}
	return out
}

func cmdAuth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "login":
			return cmdAuthLogin(ctx, args[1:], stdout, stderr)
		case "reconnect":
			return cmdAuthReconnect(ctx, args[1:], stdout, stderr)
		}
	}
	return usageError{errors.New("usage: contacts-etl auth login|reconnect [flags]")}
}

// cmdAuthReconnect gets a new token pair for each location (or, with
// --auth agency, for the company) through the vendor's Reconnect API: no
// person needed, only the client secret the app was installed with.
func cmdAuthReconnect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseRunFlags("auth reconnect", args, stderr, nil)
	if err != nil {
		return err
	}
	if cfg, err = cfg.single("auth reconnect"); err != nil {
		return err
	}
	st, opt, err := authStore(cfg)
	if err != nil {
		return err
	}
	keys := cfg.Locations
	if cfg.Auth.Type == "agency" {
		keys = []string{auth.CompanyKey}
	}
	if len(keys) == 0 {
		return usageError{errors.New("auth reconnect: give --locations (or --auth agency)")}
	}
	var failed []string
	for _, key := range keys {
		tok, err := auth.NewSource(st, key, opt).Reconnect(ctx)
		if err != nil {
			fmt.Fprintf(stdout, "FAIL %s: %v\n", key, err)
			failed = append(failed, key)
			continue
		}
		fmt.Fprintf(stdout, "Reconnected %s: scopes %s, valid until %s.\n", key, strings.Join(tok.Scopes, " "), tok.Expiry.Local().Format(time.RFC3339))
	}
	if len(failed) > 0 {
		return fmt.Errorf("auth reconnect failed for %s", strings.Join(failed, ", "))
	}
	fmt.Fprintf(stdout, "Tokens stored in %s\n", st.Path())
	return nil
}

// cmdAuthLogin logs each requested location in, one consent after another,
// and stores each token under the location asked for; a consent given for
// another location is refused. With --auth agency (or --user-type Company)
// one company consent is stored and exchanged for each location's token.
func cmdAuthLogin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var noBrowser bool
	var location, userType string
	timeout := 5 * time.Minute
	cfg, err := parseRunFlags("auth login", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&noBrowser, "no-browser", false, "do not listen for the callback: paste the redirected URL (or the code) on stdin")
		fs.StringVar(&location, "location", "", "one location to log in to (same as --locations with one id)")
		fs.StringVar(&userType, "user-type", "", "Location, or Company for an agency token (default: Company with --auth agency)")
		fs.DurationVar(&timeout, "timeout", timeout, "how long to wait for each callback")
	})
	if err != nil {
		return err
	}
	if cfg, err = cfg.single("auth login"); err != nil {
		return err
	}
	if userType == "" {
		userType = "Location"
		if cfg.Auth.Type == "agency" {
			userType = "Company"
		}
	}
	if userType != "Location" && userType != "Company" {
		return usageError{fmt.Errorf("user type %q: want Location or Company", userType)}
	}
	locations := cfg.Locations
	if location != "" && !slices.Contains(locations, location) {
		locations = append([]string{location}, locations...)
	}
	st, opt, err := authStore(cfg)
	if err != nil {
		return err
	}
	conf := opt.OAuth
	if conf.RedirectURL == "" {
		conf.RedirectURL = defaultRedirectURL
	}
	var cb *callbackServer
	if !noBrowser {
		ru, err := url.Parse(conf.RedirectURL)
		if err != nil || ru.Scheme != "http" {
			return usageError{fmt.Errorf("redirect URL %q: want http://127.0.0.1:<port>/<path>", conf.RedirectURL)}
		}
		ln, err := net.Listen("tcp", ru.Host)
		if err != nil {
			return fmt.Errorf("listen for the callback: %w", err)
		}
		cb = startCallbackServer(ln)
		defer cb.close()
		ru.Host = ln.Addr().String() // a :0 port becomes the real one
		conf.RedirectURL = ru.String()
	}
	l := &loginFlow{conf: conf, cb: cb, stdout: stdout, timeout: timeout}

	if userType == "Company" {
		tok, err := l.consent(ctx, "Company", "", "the agency (company)")
		if err != nil {
			return err
		}
		if err := st.Put(ctx, auth.CompanyKey, tok); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Logged in: Company %s, scopes %s.\n", tok.CompanyID, strings.Join(tok.Scopes, " "))
		companyID := firstNonEmpty(cfg.Auth.CompanyID, tok.CompanyID)
		company := auth.NewSource(st, auth.CompanyKey, opt)
		var failed []string
		for _, loc := range locations {
			src := auth.NewAgencySource(st, company, companyID, loc, strings.TrimRight(cfg.BaseURL, "/")+"/oauth/locationToken", auth.Options{HTTPClient: opt.HTTPClient})
			if _, err := src.TokenContext(ctx); err != nil {
				fmt.Fprintf(stdout, "FAIL %s: %v\n", loc, err)
				failed = append(failed, loc)
				continue
			}
			fmt.Fprintf(stdout, "Location %s: token exchanged from the agency token.\n", loc)
		}
		fmt.Fprintf(stdout, "Tokens stored in %s\n", st.Path())
		if len(failed) > 0 {
			return fmt.Errorf("no location token for %s", strings.Join(failed, ", "))
		}
		return nil
	}

	if len(locations) == 0 { // the consent page picks the location
		tok, err := l.consent(ctx, "Location", "", "a location")
		if err != nil {
			return err
		}
		if tok.LocationID == "" {
			return errors.New("the token names no location: give --locations")
		}
		return l.store(ctx, st, tok.LocationID, tok)
	}
	var failed []string
	for i, loc := range locations {
		tok, err := l.consent(ctx, "Location", loc, fmt.Sprintf("location %s (%d of %d)", loc, i+1, len(locations)))
		if err == nil && tok.LocationID != "" && tok.LocationID != loc {
			err = fmt.Errorf("the consent was given for location %s, not %s: nothing stored; log in again and pick %s on the consent page", tok.LocationID, loc, loc)
		}
		if err == nil {
			err = l.store(ctx, st, loc, tok)
		}
		if err != nil {
			fmt.Fprintf(stdout, "FAIL %s: %v\n", loc, err)
			failed = append(failed, loc)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("login failed for %s", strings.Join(failed, ", "))
	}
	return nil
}

// loginFlow runs consents one after another.
type loginFlow struct {
	conf    *oauth2.Config
	cb      *callbackServer // nil: --no-browser
	stdout  io.Writer
	timeout time.Duration
}

// consent prints the authorize URL for one consent, waits for its code and
// exchanges it.
func (l *loginFlow) consent(ctx context.Context, userType, location, what string) (*auth.Token, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	state := hex.EncodeToString(b[:])
	opts := []oauth2.AuthCodeOption{}
	if userType == "Company" {
		opts = append(opts, oauth2.SetAuthURLParam("user_type", "Company"))
	}
	if location != "" {
		opts = append(opts, oauth2.SetAuthURLParam("location_id", location))
	}
	fmt.Fprintf(l.stdout, "Log in %s: open this URL in a browser and approve access:\n\n  %s\n\n", what, l.conf.AuthCodeURL(state, opts...))
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	var code string
	var err error
	if l.cb == nil {
		fmt.Fprintln(l.stdout, "Then paste the URL you were redirected to (or just the code) here:")
		code, err = readPastedCode(ctx, state)
	} else {
		fmt.Fprintf(l.stdout, "Waiting for the callback on %s ...\n", l.conf.RedirectURL)
		code, err = l.cb.await(ctx, state)
	}
	if err != nil {
		return nil, err
	}
	ot, err := l.conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: 30 * time.Second}), code,
		oauth2.SetAuthURLParam("user_type", userType))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("exchange the code: %s %s", re.ErrorCode, re.ErrorDescription)
		}
		return nil, fmt.Errorf("exchange the code: %w", err)
	}
	return auth.FromOAuth(ot), nil
}

func (l *loginFlow) store(ctx context.Context, st *auth.Store, key string, tok *auth.Token) error {
	tok.LocationID = firstNonEmpty(tok.LocationID, key)
	if err := st.Put(ctx, key, tok); err != nil {
		return err
	}
	fmt.Fprintf(l.stdout, "Logged in: Location %s, scopes %s, valid until %s.\nTokens stored in %s\n",
		key, strings.Join(tok.Scopes, " "), tok.Expiry.Local().Format(time.RFC3339), st.Path())
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// callbackServer serves the loopback redirect of every consent of one
// login; each await takes the first callback with its state.
type callbackServer struct {
	srv   *http.Server
	mu    sync.Mutex
	state string
	ch    chan callbackResult
}

type callbackResult struct {
	code string
	err  error
}

func startCallbackServer(ln net.Listener) *callbackServer {
	c := &callbackServer{}
	c.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(c.serve)}
	go c.srv.Serve(ln)
	return c
}

func (c *callbackServer) close() { c.srv.Close() }

func (c *callbackServer) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c.mu.Lock()
	state, ch := c.state, c.ch
	c.mu.Unlock()
	var res callbackResult
	switch {
	case ch == nil || q.Get("state") != state:
		http.Error(w, "state does not match: start the login again", http.StatusBadRequest)
		return // keep waiting for the genuine callback
	case q.Get("error") != "":
		res.err = fmt.Errorf("authorization refused: %s", q.Get("error"))
	case q.Get("code") == "":
		http.Error(w, "no code in the callback", http.StatusBadRequest)
		return
	default:
		res.code = q.Get("code")
	}
	fmt.Fprintln(w, "contacts-etl: done, you can close this tab.")
	select {
	case ch <- res:
	default:
	}
}

// await waits for the callback carrying state.
func (c *callbackServer) await(ctx context.Context, state string) (string, error) {
	ch := make(chan callbackResult, 1)
	c.mu.Lock()
	c.state, c.ch = state, ch
	c.mu.Unlock()
	defer func() { c.mu.Lock(); c.state, c.ch = "", nil; c.mu.Unlock() }()
	select {
	case r := <-ch:
		return r.code, r.err
	case <-ctx.Done():
		return "", fmt.Errorf("no callback: %w", ctx.Err())
	}
}

// readPastedCode reads a redirected URL or a bare code from stdin.
func readPastedCode(ctx context.Context, state string) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		ch <- result{strings.TrimSpace(line), err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		return "", fmt.Errorf("no code pasted: %w", ctx.Err())
	}
	if r.line == "" {
		return "", fmt.Errorf("no code pasted: %w", r.err)
	}
	if !strings.Contains(r.line, "code=") {
		return r.line, nil
	}
	u, err := url.Parse(r.line)
	if err != nil {
		return "", errors.New("the pasted URL does not parse")
	}
	q := u.Query()
	if q.Get("state") != state {
		return "", errors.New("the pasted URL's state does not match this login: start again")
	}
	return q.Get("code"), nil
}

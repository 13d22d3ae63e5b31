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
	"strings"
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
	return auth.NewStore(path), auth.Options{OAuth: conf, HTTPClient: hc}, nil
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
	if len(args) == 0 || args[0] != "login" {
		return usageError{errors.New("usage: contacts-etl auth login [flags]")}
	}
	var noBrowser bool
	var location, userType string
	timeout := 5 * time.Minute
	cfg, err := parseRunFlags("auth login", args[1:], stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&noBrowser, "no-browser", false, "do not listen for the callback: paste the redirected URL (or the code) on stdin")
		fs.StringVar(&location, "location", "", "location to log in to (the authorize page may also let the user pick)")
		fs.StringVar(&userType, "user-type", "Location", "Location, or Company for an agency token")
		fs.DurationVar(&timeout, "timeout", timeout, "how long to wait for the callback")
	})
	if err != nil {
		return err
	}
	if userType != "Location" && userType != "Company" {
		return usageError{fmt.Errorf("user type %q: want Location or Company", userType)}
	}
	conf, err := oauthConfig(cfg)
	if err != nil {
		return err
	}
	path, err := cfg.tokenFile()
	if err != nil {
		return err
	}
	if conf.RedirectURL == "" {
		conf.RedirectURL = defaultRedirectURL
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	state := hex.EncodeToString(b[:])

	var ln net.Listener
	if !noBrowser {
		ru, err := url.Parse(conf.RedirectURL)
		if err != nil || ru.Scheme != "http" {
			return usageError{fmt.Errorf("redirect URL %q: want http://127.0.0.1:<port>/<path>", conf.RedirectURL)}
		}
		if ln, err = net.Listen("tcp", ru.Host); err != nil {
			return fmt.Errorf("listen for the callback: %w", err)
		}
		defer ln.Close()
		ru.Host = ln.Addr().String() // a :0 port becomes the real one
		conf.RedirectURL = ru.String()
	}
	opts := []oauth2.AuthCodeOption{}
	if userType == "Company" {
		opts = append(opts, oauth2.SetAuthURLParam("user_type", "Company"))
	}
	if location != "" {
		opts = append(opts, oauth2.SetAuthURLParam("location_id", location))
	}
	fmt.Fprintf(stdout, "Open this URL in a browser and approve access:\n\n  %s\n\n", conf.AuthCodeURL(state, opts...))

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var code string
	if noBrowser {
		fmt.Fprintln(stdout, "Then paste the URL you were redirected to (or just the code) here:")
		code, err = readPastedCode(ctx, state)
	} else {
		fmt.Fprintf(stdout, "Waiting for the callback on %s ...\n", conf.RedirectURL)
		code, err = awaitCallback(ctx, ln, state)
	}
	if err != nil {
		return err
	}
	ot, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: 30 * time.Second}), code,
		oauth2.SetAuthURLParam("user_type", userType))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return fmt.Errorf("exchange the code: %s %s", re.ErrorCode, re.ErrorDescription)
		}
		return fmt.Errorf("exchange the code: %w", err)
	}
	tok := auth.FromOAuth(ot)
	key := auth.CompanyKey
	if userType == "Location" {
		key = firstNonEmpty(tok.LocationID, location)
		if key == "" {
			return errors.New("the token names no location: give --location")
		}
	}
	if err := auth.NewStore(path).Put(ctx, key, tok); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Logged in: %s %s, scopes %s, valid until %s.\nTokens stored in %s\n",
		userType, key, strings.Join(tok.Scopes, " "), tok.Expiry.Local().Format(time.RFC3339), path)
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// awaitCallback serves the loopback redirect until it brings a code with
// our state.
func awaitCallback(ctx context.Context, ln net.Listener, state string) (string, error) {
	type result struct {
		code string
		err  error
	}
	done := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var res result
		switch {
		case q.Get("error") != "":
			res.err = fmt.Errorf("authorization refused: %s", q.Get("error"))
		case q.Get("state") != state:
			http.Error(w, "state does not match: start the login again", http.StatusBadRequest)
			return // keep waiting for the genuine callback
		case q.Get("code") == "":
			http.Error(w, "no code in the callback", http.StatusBadRequest)
			return
		default:
			res.code = q.Get("code")
		}
		fmt.Fprintln(w, "contacts-etl: done, you can close this tab.")
		select {
		case done <- res:
		default:
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	select {
	case r := <-done:
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

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/auth"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

// errCheckFailed is returned by check when the run would miss something.
var errCheckFailed = errors.New("check failed: the run would not get everything it needs")

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	version := api.VersionContacts
	cfg, err := parseRunFlags("check", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&version, "api-version", version, "Version header to send (the exporter pins 2021-07-28)")
	})
	if err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return usageError{err}
	}
	ok := true
	for _, sc := range cfg.sourceConfigs() {
		if len(cfg.Sources) > 0 {
			fmt.Fprintf(stdout, "source %s (%s)\n", sc.Source, sc.BaseURL)
		}
		sources, err := tokenSources(ctx, sc)
		if err != nil {
			return err
		}
		base := strings.TrimRight(sc.BaseURL, "/")
		for _, loc := range sc.Locations {
			c := &checker{ctx: ctx, w: stdout, cfg: sc, loc: loc, base: base, version: version, src: sources[loc]}
			ok = c.run() && ok
		}
	}
	if !ok {
		return errCheckFailed
	}
	fmt.Fprintln(stdout, "all checks passed")
	return nil
}

type checker struct {
	ctx                context.Context
	w                  io.Writer
	cfg                Config
	loc, base, version string
	src                oauth2.TokenSource
}

func (c *checker) say(ok bool, what, format string, a ...any) bool {
	mark := "ok  "
	if !ok {
		mark = "FAIL"
	}
	fmt.Fprintf(c.w, "%s %-9s %-12s %s\n", mark, c.loc, what, fmt.Sprintf(format, a...))
	return ok
}

func (c *checker) login() string {
	if c.cfg.Auth.Type == "agency" {
		return "contacts-etl auth login --auth agency --locations " + c.loc
	}
	return "contacts-etl auth login --auth oauth --locations " + c.loc
}

// fix is the fix an auth error names, else "run `<login>`".
func (c *checker) fix(err error) string {
	if f := auth.FixOf(err); f != "" {
		return f
	}
	return "run `" + c.login() + "`"
}

func (c *checker) run() bool {
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	var tok *oauth2.Token
	var err error
	if cs, ok := c.src.(interface {
		TokenContext(context.Context) (*oauth2.Token, error)
	}); ok {
		tok, err = cs.TokenContext(ctx)
	} else {
		tok, err = c.src.Token()
	}
	if err != nil {
		switch {
		case errors.Is(err, auth.ErrNoToken):
			return c.say(false, "token", "no token stored: %s", c.fix(err))
		case errors.Is(err, auth.ErrReauth):
			return c.say(false, "token", "the refresh token is expired, revoked or already used: %s", c.fix(err))
		case errors.Is(err, auth.ErrCredentials):
			return c.say(false, "token", "%v", err)
		default:
			return c.say(false, "token", "cannot get a token: %v (is the token endpoint reachable?)", err)
		}
	}
	ok := true
	var granted []string
	if as, isAuth := c.src.(*auth.Source); isAuth {
		if t, err := as.Current(); err == nil {
			granted = t.Scopes
		}
	}
	if tok.Expiry.IsZero() {
		c.say(true, "token", "static token, does not expire")
	} else {
		c.say(true, "token", "valid until %s", tok.Expiry.Local().Format(time.RFC3339))
	}
	needed := neededScopes(c.cfg)
	if granted != nil {
		var missing []string
		for _, s := range needed {
			if !slices.Contains(granted, s) {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			ok = c.say(false, "scopes", "granted %v, needed %v: missing %v; run `%s --scopes %s`", granted, needed, missing, c.login(), strings.Join(needed[1:], ","))
		} else {
			c.say(true, "scopes", "granted %v, needed %v", granted, needed)
		}
	}
	hc := &http.Client{Transport: auth.NewTransport(c.src, newTransport(2)), Timeout: 30 * time.Second}
	body, _ := json.Marshal(map[string]any{"locationId": c.loc, "pageLimit": 1})
	b, pass := c.probe(ctx, hc, "contacts", http.MethodPost, "/contacts/search", body)
	ok = ok && pass
	if !pass {
		return false
	}
	var sr struct {
		Contacts []struct {
			ID string `json:"id"`
		} `json:"contacts"`
	}
	_ = json.Unmarshal(b, &sr)
	cl, err := extract.NewClient(c.base, c.loc, hc, extract.WithRetries(2, nil))
	if err != nil {
		return c.say(false, "search", "%v", err)
	}
	sc, err := cl.CheckSearch(ctx)
	total := -1
	if err == nil {
		total = sc.Total
	}
	defer func() { c.paths(ctx, cl, total) }()
	if err != nil {
		ok = c.say(false, "search", "a search page the run could not use: %v", err)
	} else {
		mode := "cursor mode"
		if sc.PageMode {
			mode = "no searchAfter: page mode in dateUpdated windows"
		}
		c.say(true, "search", "%d contacts; a page of %d read, %d with ids; %s", sc.Total, sc.Contacts, sc.WithIDs, mode)
		for _, w := range sc.Warnings {
			c.say(true, "search", "note: %s", w)
		}
	}
	zone, how := c.zone(ctx, cl)
	c.say(true, "time zone", "%s (%s): appointment times without a zone are read in it", zone, how)
	for _, child := range c.cfg.Children {
		if len(sr.Contacts) == 0 {
			c.say(true, child, "not probed: the location has no contacts")
			continue
		}
		_, pass := c.probe(ctx, hc, child, http.MethodGet, "/contacts/"+url.PathEscape(sr.Contacts[0].ID)+"/"+child, nil)
		ok = ok && pass
	}
	return ok
}

// paths says, on one line, which path the location's tasks and
// appointments take and what the bulk paths save a full run of total
// contacts (-1: unknown). It never fails the check: per-contact is today's
// path.
func (c *checker) paths(ctx context.Context, cl *extract.Client, total int) {
	b, err := pipeline.ProbeBulk(ctx, cl, c.cfg.Children, pipeline.BulkOptions{}, time.Now(), true)
	if err != nil {
		c.say(true, "paths", "not probed: %v", err)
		return
	}
	if b.Tasks == "" && b.Appointments == "" {
		c.say(true, "paths", "neither tasks nor appointments are read: nothing to save")
		return
	}
	var parts []string
	bulk := 0
	for _, r := range []struct{ res, path, why string }{
		{api.ResourceTasks, b.Tasks, b.TasksWhy}, {api.ResourceAppointments, b.Appointments, b.AppointmentsWhy},
	} {
		switch r.path {
		case pipeline.PathBulk:
			parts = append(parts, r.res+" bulk")
			bulk++
		case pipeline.PathPerContact:
			parts = append(parts, fmt.Sprintf("%s per-contact (%s)", r.res, r.why))
		}
	}
	what := strings.Join(parts, ", ")
	switch {
	case bulk == 0:
		c.say(true, "paths", "%s: saves nothing; grant %s with `%s --scopes ...` to read them in bulk", what,
			strings.Join([]string{api.ScopeTasksRO, api.ScopeCalendarsRO, api.ScopeEventsRO}, ","), c.login())
	case total < 0:
		c.say(true, "paths", "%s: a full run lists them in %d requests", what, b.Requests())
	default:
		per := total * bulk
		c.say(true, "paths", "%s: a full run lists them in %d requests instead of %d per contact, saving %d requests (%d%% of %d)",
			what, b.Requests(), per, per-b.Requests(), 100*(per-b.Requests())/max(1, total*len(c.cfg.Children)), total*len(c.cfg.Children))
	}
}

// zone says which zone a run would read the location's zone-less times
// in, and where it comes from (see pipeline's zone rule).
func (c *checker) zone(ctx context.Context, cl *extract.Client) (name, how string) {
	name, err := cl.LocationTimeZone(ctx)
	switch {
	case err == nil:
		return name, "from the API"
	case errors.Is(err, extract.ErrNoLocationScope) || errors.Is(err, extract.ErrNoTimeZone):
		if z := c.cfg.TimeZones[c.loc]; z != "" {
			return z, "from the config; the API did not tell: " + err.Error()
		}
		return c.cfg.NaiveTimeZone, "the default, WARNING: grant locations.readonly or set time_zones; " + err.Error()
	}
	return "unknown", "the run would stop this location: " + err.Error()
}

// probe makes one authorized request and reports it on one line.
func (c *checker) probe(ctx context.Context, hc *http.Client, what, method, path string, body []byte) ([]byte, bool) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, c.say(false, what, "%v", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Version", c.version)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var ae *auth.AuthError
		switch {
		case errors.As(err, &ae) && ae.Scope:
			return nil, c.say(false, what, "missing scope: the token may not read %s (%s), even after a refresh; %s", what, ae.Message, ae.Fix)
		case errors.As(err, &ae) && ae.Static:
			return nil, c.say(false, what, "static token refused (%s): %s", ae.Message, ae.Fix)
		case errors.As(err, &ae):
			return nil, c.say(false, what, "token rejected (%s): %s", ae.Message, ae.Fix)
		case errors.Is(err, auth.ErrReauth):
			return nil, c.say(false, what, "the refresh token is expired, revoked or already used: %s", c.fix(err))
		case errors.Is(err, auth.ErrCredentials):
			return nil, c.say(false, what, "%v", err)
		}
		return nil, c.say(false, what, "cannot reach %s: %v", hostOf(c.base), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var eb api.ErrorBody
	_ = json.Unmarshal(b, &eb)
	msg := eb.Text()
	switch {
	case resp.StatusCode/100 == 2:
		return b, c.say(true, what, "%s %s: %d; %s", method, path, resp.StatusCode, headroom(resp.Header))
	case resp.StatusCode == http.StatusUnauthorized && strings.Contains(strings.ToLower(msg), "scope"):
		return nil, c.say(false, what, "missing scope: the token may not read %s (%s); run `%s --scopes ...` with the scopes it needs", what, msg, c.login())
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, c.say(false, what, "token rejected (%s): run `%s`", msg, c.login())
	case resp.StatusCode == http.StatusForbidden:
		return nil, c.say(false, what, "no access to location %s (%s): log in to it, or remove it from the config", c.loc, msg)
	case strings.Contains(strings.ToLower(msg), "version") || (resp.StatusCode == http.StatusNotFound && c.version != api.VersionContacts):
		return nil, c.say(false, what, "wrong Version header %q (%s): the exporter speaks %s", c.version, msg, api.VersionContacts)
	}
	return nil, c.say(false, what, "%s %s: %d %s (trace %s)", method, path, resp.StatusCode, msg, eb.TraceID)
}

func headroom(h http.Header) string {
	if h.Get("X-RateLimit-Max") == "" {
		return "no rate-limit headers"
	}
	return fmt.Sprintf("rate limit %s/%s left per %s ms, daily %s/%s left",
		h.Get("X-RateLimit-Remaining"), h.Get("X-RateLimit-Max"), h.Get("X-RateLimit-Interval-Milliseconds"),
		h.Get("X-RateLimit-Daily-Remaining"), h.Get("X-RateLimit-Limit-Daily"))
}

func hostOf(base string) string {
	if u, err := url.Parse(base); err == nil {
		return u.Host
	}
	return base
}

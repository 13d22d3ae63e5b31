package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/auth"
	"github.com/contacts-etl/contacts-etl/load"
	"github.com/contacts-etl/contacts-etl/pipeline"
	"github.com/contacts-etl/contacts-etl/transform"
	"github.com/contacts-etl/contacts-etl/webhook"
)

// parseRunFlags reads --config first (so flags override the file), then
// every other flag, into a validated Config.
func parseRunFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (Config, error) {
	cfg := defaultConfig()
	for i, a := range args {
		v, ok := strings.CutPrefix(strings.TrimLeft(a, "-"), "config")
		if !ok || !strings.HasPrefix(a, "-") {
			continue
		}
		path := strings.TrimPrefix(v, "=")
		if path == "" && i+1 < len(args) {
			path = args[i+1]
		}
		if err := loadConfigFile(path, &cfg); err != nil {
			return cfg, usageError{err}
		}
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "YAML config file (flags given on the command line override it)")
	registerRunFlags(fs, &cfg)
	if extra != nil {
		extra(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: contacts-etl %s [flags]\n\n", name)
		fmt.Fprintln(stderr, "Secrets come from the environment, never from flags:")
		fmt.Fprintln(stderr, "  CONTACTS_ETL_TOKEN          a Private Integration token or access token (auth type static)")
		fmt.Fprintln(stderr, "  CONTACTS_ETL_CLIENT_SECRET  the OAuth client secret (auth type oauth)")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return cfg, flag.ErrHelp
		}
		return cfg, usageError{err}
	}
	if fs.NArg() > 0 {
		return cfg, usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	return cfg, nil
}

// parseValidConfig is parseRunFlags followed by validation.
func parseValidConfig(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (Config, error) {
	cfg, err := parseRunFlags(name, args, stderr, extra)
	if err != nil {
		return cfg, err
	}
	if err := cfg.validate(); err != nil {
		return cfg, usageError{err}
	}
	return cfg, nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var rf reportFlags
	cfg, err := parseValidConfig("run", args, stderr, rf.register)
	if err != nil {
		return err
	}
	return exportReported(ctx, cfg, "run", rf, stdout, stderr)
}

// tokenSources returns a token source per configured location.
func tokenSources(ctx context.Context, cfg Config) (map[string]oauth2.TokenSource, error) {
	out := map[string]oauth2.TokenSource{}
	switch cfg.Auth.Type {
	case "static":
		src, err := auth.Static(cfg.Auth.StaticTokenEnv, cfg.Auth.StaticTokenFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("static token: %w", err)}
		}
		for _, l := range cfg.Locations {
			out[l] = src
		}
		return out, nil
	case "oauth", "agency":
		st, opt, err := authStore(cfg)
		if err != nil {
			return nil, err
		}
		var company *auth.Source
		if cfg.Auth.Type == "agency" {
			if cfg.Auth.CompanyID == "" {
				return nil, usageError{errors.New("auth agency needs company_id")}
			}
			company = auth.NewSource(st, auth.CompanyKey, opt)
		}
		for _, l := range cfg.Locations {
			if company != nil {
				out[l] = auth.NewAgencySource(st, company, cfg.Auth.CompanyID, l, strings.TrimRight(cfg.BaseURL, "/")+"/oauth/locationToken", auth.Options{HTTPClient: opt.HTTPClient})
			} else {
				out[l] = auth.NewSource(st, l, opt)
			}
		}
		return out, nil
	}
	return nil, usageError{fmt.Errorf("auth type %q is not supported (want oauth, agency or static)", cfg.Auth.Type)}
}

// sourceRun is one source of a run: its config (see Config.sourceConfigs)
// and a token source per location.
type sourceRun struct {
	cfg    Config
	tokens map[string]oauth2.TokenSource
}

// export runs one job over the configured locations of one source.
func export(ctx context.Context, cfg Config, command string, sources map[string]oauth2.TokenSource, log *slog.Logger) (pipeline.Result, error) {
	return exportSources(ctx, cfg, command, []sourceRun{{cfg, sources}}, log)
}

// exportSources runs one job per source into cfg's warehouse, one source
// after the other under one run lock, each source's locations read with
// their own clients and governors. Everything is checked before the lock is
// taken, so a refused run leaves nothing. With several sources, a source
// that fails makes the run partial (ErrPartial); the others' commits stay.
func exportSources(ctx context.Context, cfg Config, command string, srcs []sourceRun, log *slog.Logger) (pipeline.Result, error) {
	zone, err := time.LoadLocation(cfg.NaiveTimeZone)
	if err != nil {
		return pipeline.Result{}, usageError{fmt.Errorf("naive time zone: %w", err)}
	}
	var archive *pipeline.Archive
	if cfg.Archive != "" {
		archive = pipeline.NewArchive(cfg.Archive)
	}
	clients := make([][]*extract.Client, len(srcs))
	for i, s := range srcs {
		co := s.cfg.clientOptions()
		if archive != nil {
			co.Observe = archive.Observer
		}
		if clients[i], err = pipeline.Clients(s.cfg.Locations, s.tokens, co); err != nil {
			return pipeline.Result{}, usageError{fmt.Errorf("source %s: %w", s.cfg.Source, err)}
		}
	}
	sink, err := pipeline.OpenSink(cfg.Warehouse.Type, cfg.Warehouse.Path, load.WithLogger(log))
	if err != nil {
		return pipeline.Result{}, usageError{err}
	}
	defer sink.Close(context.WithoutCancel(ctx))
	unlock, err := pipeline.Lock(ctx, cfg.Warehouse.Type, cfg.Warehouse.Path, cfg.Incremental.Wait, log)
	if err != nil {
		return pipeline.Result{}, err
	}
	defer unlock()
	if len(srcs) == 1 {
		return exportSource(ctx, srcs[0], clients[0], command, zone, sink, archive, log)
	}
	total := pipeline.Result{Rows: transform.Counts{}, Stopped: map[string]error{}, Zones: map[string]pipeline.ZoneInfo{}}
	var errs []error
	for i, s := range srcs {
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("source %s: %w", s.cfg.Source, ctx.Err()))
			break
		}
		res, err := exportSource(ctx, s, clients[i], command, zone, sink, archive, log.With("source", s.cfg.Source))
		addResult(&total, res, s.cfg.Source)
		if err != nil {
			log.Error("source failed; the other sources go on", "source", s.cfg.Source, "err", err)
			errs = append(errs, fmt.Errorf("source %s: %v", s.cfg.Source, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		if len(errs) < len(srcs) || errors.Is(err, pipeline.ErrPartial) {
			return total, fmt.Errorf("%w: %w", pipeline.ErrPartial, err)
		}
		return total, err
	}
	return total, nil
}

// addResult adds a source's result to total; stopped locations and zones
// are named source/location.
func addResult(total *pipeline.Result, res pipeline.Result, source string) {
	for t, n := range res.Rows {
		total.Rows[t] += n
	}
	total.Requests += res.Requests
	total.Retries += res.Retries
	total.Limited += res.Limited
	total.Commits += res.Commits
	total.Duration += res.Duration
	for l, e := range res.Stopped {
		total.Stopped[source+"/"+l] = e
	}
	for l, z := range res.Zones {
		total.Zones[source+"/"+l] = z
	}
}

// exportSource runs one source's job; the caller holds the run lock.
func exportSource(ctx context.Context, s sourceRun, clients []*extract.Client, command string, zone *time.Location,
	sink load.Sink, archive *pipeline.Archive, log *slog.Logger) (pipeline.Result, error) {
	cfg, sources := s.cfg, s.tokens
	j := pipeline.NewJob(cfg.settings(command, zone), nil, sink, log)
	j.Progress = progressFunc(ctx) // the terminal's progress display, if any
	j.Archive = archive
	unusable := map[string]auth.Unusable{}
	for _, u := range auth.CheckUsable(sources) {
		unusable[u.Location] = u
	}
	for _, c := range clients {
		l := pipeline.Location{Client: c}
		if as, ok := sources[c.Location()].(*auth.Source); ok {
			if t, err := as.Current(); err == nil && len(t.Scopes) > 0 {
				l.Scopes = t.Scopes // known: no probe for a path whose scope is missing
			}
		} else if cfg.Auth.Type == "static" {
			// Scopes unknown: remember refused probes under the token's identity.
			if t, err := sources[c.Location()].Token(); err == nil {
				l.TokenID = pipeline.TokenID("static", t.AccessToken)
			}
		}
		if z := cfg.TimeZones[c.Location()]; z != "" {
			l.Zone, _ = time.LoadLocation(z) // validated
		}
		if u, bad := unusable[c.Location()]; bad {
			l.Unusable = fmt.Errorf("%v; fix: %s", u.Err, u.Fix)
			log.Error("location skipped: no usable credentials", "location", u.Location, "fix", u.Fix)
		}
		j.Locations = append(j.Locations, l)
	}
	drainInbox(ctx, cfg, command, &webhook.PipelineApply{Kind: cfg.Warehouse.Type, Path: cfg.Warehouse.Path,
		Settings: cfg.settings("webhook", zone), Clients: clients, Locked: true, Log: log, Archive: archive}, log)
	log.Info("run started", "run_id", j.Run.ID, "source", cfg.Source, "locations", len(cfg.Locations), "warehouse", cfg.Warehouse.Path)
	res, err := pipeline.Run(ctx, j)
	log.Info("run finished", "run_id", j.Run.ID, "requests", res.Requests, "duration", res.Duration.Round(time.Millisecond), "ok", err == nil)
	return res, err
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func printSummary(w io.Writer, cfg Config, res pipeline.Result) {
	fmt.Fprintf(w, "warehouse  %s (%s)\n", cfg.Warehouse.Path, cfg.Warehouse.Type)
	fmt.Fprintln(w, "committed")
	for _, t := range []string{"contacts", "tasks", "notes", "appointments", "rejects", "field_rejects"} {
		fmt.Fprintf(w, "  %-13s %9d rows\n", t, res.Rows[t])
	}
	secs := res.Duration.Seconds()
	var total int64
	for t, v := range res.Rows {
		if t != "rejects" && t != "field_rejects" {
			total += v
		}
	}
	rate := 0.0
	if secs > 0 {
		rate = float64(total) / secs
	}
	fmt.Fprintf(w, "requests   %d (retries %d, 429s %d)\n", res.Requests, res.Retries, res.Limited)
	fmt.Fprintf(w, "commits    %d\n", res.Commits)
	fmt.Fprintf(w, "duration   %s (%.0f records/s)\n", res.Duration.Round(time.Millisecond), rate)
	locs := make([]string, 0, len(res.Zones))
	for l := range res.Zones {
		locs = append(locs, l)
	}
	slices.Sort(locs)
	for _, l := range locs {
		z := res.Zones[l]
		fmt.Fprintf(w, "time zone  %s: %s (%s)\n", l, z.Name, z.Source)
	}
	locs = locs[:0]
	for l := range res.Stopped {
		locs = append(locs, l)
	}
	slices.Sort(locs)
	for _, l := range locs {
		fmt.Fprintf(w, "stopped    %s: %v\n", l, res.Stopped[l])
	}
}

func newTransport(conns int) *http.Transport { return pipeline.NewTransport(conns) }

// drainInbox applies the webhook events a `serve` left unapplied in the
// warehouse's inbox before the run (which holds the run lock). The run is
// the safety net either way, so a failure here is logged, not fatal.
func drainInbox(ctx context.Context, cfg Config, command string, apply *webhook.PipelineApply, log *slog.Logger) {
	if command == "backfill" {
		return
	}
	if st, err := os.Stat(webhook.InboxDir(cfg.Warehouse.Path)); err != nil || !st.IsDir() {
		return // no serve ever ran here
	}
	apply.Zones = map[string]*time.Location{}
	for loc, z := range cfg.TimeZones {
		apply.Zones[loc], _ = time.LoadLocation(z) // validated
	}
	last, err := webhook.Drain(ctx, cfg.Warehouse.Path, cfg.Locations, apply.Apply, log)
	switch {
	case errors.Is(err, webhook.ErrBusy):
		log.Info("webhook inbox held by a running serve: it applies its own events")
	case err != nil:
		log.Warn("webhook inbox not drained; this run reads the changes anyway", "err", err)
	default:
		log.Info("webhook inbox drained", "events", last.Events, "contacts", last.Contacts)
	}
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/auth"
	"github.com/contacts-etl/contacts-etl/pipeline"
	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// Config is everything a run needs, from the config file, then flags, then
// the environment (secrets only ever come from the environment or files).
type Config struct {
	Source    string   `yaml:"source"`
	BaseURL   string   `yaml:"base_url"`
	Locations []string `yaml:"locations"`
	Auth      Auth     `yaml:"auth"`
	// Sources, when set, replace source, base_url, locations and auth:
	// every source is exported into the one warehouse by each run.
	Sources   []SourceConfig `yaml:"sources"`
	Warehouse struct {
		Type string `yaml:"type"` // duckdb | parquet
		Path string `yaml:"path"`
	} `yaml:"warehouse"`
	// Archive is the folder of the raw archive (see `remap`); "" keeps none.
	Archive         string `yaml:"archive"`
	Concurrency     int    `yaml:"concurrency"`          // child requests in flight per location
	LocationWorkers int    `yaml:"location_concurrency"` // locations read at once
	PageLimit       int    `yaml:"page_limit"`
	BatchRows       int    `yaml:"batch_rows"`
	CommitRows      int    `yaml:"commit_rows"`
	NaiveTimeZone   string `yaml:"naive_time_zone"` // default zone of zone-less times
	// TimeZones are locations' zones (IANA names), used when the token may
	// not read them from the API (scope locations.readonly).
	TimeZones    map[string]string `yaml:"time_zones"`
	RateMax      int               `yaml:"rate_max"`
	RateInterval time.Duration     `yaml:"rate_interval"`
	Children     []string          `yaml:"children"`
	LogLevel     string            `yaml:"log_level"`
	Incremental  Incremental       `yaml:"incremental"`

	// Retries per request and per run (0: no run limit), and the part of
	// each location's daily quota a run leaves unspent ("10%" or a count).
	MaxRetries   int             `yaml:"max_retries"`
	RetryBudget  int64           `yaml:"retry_budget"`
	DailyReserve extract.Reserve `yaml:"daily_reserve"`

	// Mapping is a YAML mapping file merged over the built-in one
	// (sql/mapping.yaml): renamed, added and custom-field columns.
	Mapping string `yaml:"mapping"`
}

// SourceConfig is one account or API host of a warehouse with several
// sources. Its auth is the top-level auth with the fields set here
// replacing it (give each source its own token_file or token env); zero
// rate settings take the top-level ones.
type SourceConfig struct {
	Name         string            `yaml:"name"`
	BaseURL      string            `yaml:"base_url"`
	Auth         Auth              `yaml:"auth"`
	Locations    []string          `yaml:"locations"`
	TimeZones    map[string]string `yaml:"time_zones"`
	RateMax      int               `yaml:"rate_max"`
	RateInterval time.Duration     `yaml:"rate_interval"`
	Concurrency  int               `yaml:"concurrency"`
}

// sourceConfigs returns one Config per source: c itself when no sources
// are listed (the single-source form), else c with each source's settings.
func (c Config) sourceConfigs() []Config {
	if len(c.Sources) == 0 {
		return []Config{c}
	}
	out := make([]Config, 0, len(c.Sources))
	for _, s := range c.Sources {
		sc := c
		sc.Sources = nil
		sc.Source, sc.Locations, sc.TimeZones = s.Name, s.Locations, s.TimeZones
		if s.BaseURL != "" {
			sc.BaseURL = s.BaseURL
		}
		sc.Auth = mergeAuth(c.Auth, s.Auth)
		if s.RateMax > 0 {
			sc.RateMax = s.RateMax
		}
		if s.RateInterval > 0 {
			sc.RateInterval = s.RateInterval
		}
		if s.Concurrency > 0 {
			sc.Concurrency = s.Concurrency
		}
		out = append(out, sc)
	}
	return out
}

// mergeAuth is base with every field over sets.
func mergeAuth(base, over Auth) Auth {
	str := func(b *string, o string) {
		if o != "" {
			*b = o
		}
	}
	str(&base.Type, over.Type)
	str(&base.ClientID, over.ClientID)
	str(&base.ClientSecretEnv, over.ClientSecretEnv)
	str(&base.ClientSecretFile, over.ClientSecretFile)
	str(&base.TokenFile, over.TokenFile)
	str(&base.RefreshTokenEnv, over.RefreshTokenEnv)
	str(&base.StaticTokenEnv, over.StaticTokenEnv)
	str(&base.StaticTokenFile, over.StaticTokenFile)
	str(&base.AuthorizeURL, over.AuthorizeURL)
	str(&base.TokenURL, over.TokenURL)
	str(&base.RedirectURL, over.RedirectURL)
	str(&base.CompanyID, over.CompanyID)
	if over.Scopes != nil {
		base.Scopes = over.Scopes
	}
	return base
}

// Auth says how requests are authorised. Secrets are read from the named
// environment variables or files, never from the config file itself.
type Auth struct {
	Type             string   `yaml:"type"` // oauth | agency | static
	ClientID         string   `yaml:"client_id"`
	ClientSecretEnv  string   `yaml:"client_secret_env"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	TokenFile        string   `yaml:"token_file"`        // oauth, agency: token store (default under the user config dir)
	RefreshTokenEnv  string   `yaml:"refresh_token_env"` // oauth: bootstrap refresh token
	StaticTokenEnv   string   `yaml:"static_token_env"`  // static: Private Integration token
	StaticTokenFile  string   `yaml:"static_token_file"`
	AuthorizeURL     string   `yaml:"authorize_url"` // default: the marketplace's chooselocation page
	TokenURL         string   `yaml:"token_url"`     // default: <base_url>/oauth/token
	RedirectURL      string   `yaml:"redirect_url"`  // login callback; default http://127.0.0.1:<port>/callback
	Scopes           []string `yaml:"scopes"`        // optional scopes on top of contacts.readonly
	CompanyID        string   `yaml:"company_id"`    // agency: the company whose token is exchanged
}

// Defaults of Auth.
const (
	defaultAuthorizeURL = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation"
	defaultRedirectURL  = "http://127.0.0.1:8765/callback"
)

func (a Auth) tokenURL(base string) string {
	if a.TokenURL != "" {
		return a.TokenURL
	}
	return strings.TrimRight(base, "/") + "/oauth/token"
}

// tokenFile is the token store path of the source.
func (c Config) tokenFile() (string, error) {
	if c.Auth.TokenFile != "" {
		return c.Auth.TokenFile, nil
	}
	return auth.DefaultPath(c.Source)
}

// registerAuthFlags binds the auth flags (never secrets) to a.
func registerAuthFlags(fs *flag.FlagSet, a *Auth) {
	fs.StringVar(&a.Type, "auth", a.Type, "auth type: oauth (token store from `auth login`), agency (company token exchanged per location) or static (Private Integration token from $CONTACTS_ETL_TOKEN)")
	fs.StringVar(&a.ClientID, "client-id", a.ClientID, "OAuth client id (the secret comes from $CONTACTS_ETL_CLIENT_SECRET or client_secret_file)")
	fs.StringVar(&a.TokenFile, "token-file", a.TokenFile, "token store file (default <user config dir>/contacts-etl/<source>.tokens.json)")
	fs.StringVar(&a.StaticTokenFile, "static-token-file", a.StaticTokenFile, "file holding a Private Integration token (auth static)")
	fs.StringVar(&a.AuthorizeURL, "authorize-url", a.AuthorizeURL, "OAuth authorize page (default the marketplace's)")
	fs.StringVar(&a.TokenURL, "token-url", a.TokenURL, "OAuth token endpoint (default <base-url>/oauth/token)")
	fs.StringVar(&a.CompanyID, "company-id", a.CompanyID, "agency company id (auth agency)")
	fs.Var(listFlag{&a.Scopes}, "scopes", "optional scopes requested on top of contacts.readonly, comma-separated")
}

func defaultConfig() Config {
	var c Config
	c.Source = "highlevel"
	c.BaseURL = "https://services.leadconnectorhq.com"
	c.Auth.Type = "static"
	c.Auth.ClientSecretEnv = "CONTACTS_ETL_CLIENT_SECRET"
	c.Auth.RefreshTokenEnv = "CONTACTS_ETL_REFRESH_TOKEN"
	c.Auth.StaticTokenEnv = "CONTACTS_ETL_TOKEN"
	c.Warehouse.Type = "duckdb"
	c.Warehouse.Path = "warehouse.duckdb"
	c.Concurrency = extract.DefaultConcurrency
	c.LocationWorkers = 4
	c.PageLimit = extract.DefaultPageLimit
	c.BatchRows = 10_000
	c.CommitRows = 100_000
	c.NaiveTimeZone = "UTC"
	c.RateMax = extract.DefaultRateMax
	c.RateInterval = extract.DefaultRateInterval
	c.MaxRetries = extract.DefaultMaxRetries
	c.RetryBudget = extract.DefaultRetryBudget
	c.DailyReserve = extract.DefaultReserve
	c.Children = append([]string(nil), extract.ChildResources...)
	c.LogLevel = "info"
	c.Incremental = defaultIncremental()
	return c
}

// loadConfigFile reads a YAML config over c. Unknown keys are an error, so
// a typo is not silently ignored.
func loadConfigFile(path string, c *Config) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// listFlag is a comma-separated list flag.
type listFlag struct{ p *[]string }

func (l listFlag) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}
func (l listFlag) Set(s string) error {
	*l.p = nil
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l.p = append(*l.p, v)
		}
	}
	return nil
}

// mapFlag is a comma-separated key=value flag.
type mapFlag struct{ p *map[string]string }

func (m mapFlag) String() string {
	if m.p == nil {
		return ""
	}
	var kv []string
	for k, v := range *m.p {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

func (m mapFlag) Set(s string) error {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("%q: want key=value", kv)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	*m.p = out
	return nil
}

// registerRunFlags binds the flags shared by run and demo to c. Flags set on
// the command line win over the config file: parse the file first.
func registerRunFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Source, "source", c.Source, "source name stored in every row's _source column and in the state")
	fs.StringVar(&c.BaseURL, "base-url", c.BaseURL, "API base URL")
	fs.Var(listFlag{&c.Locations}, "locations", "comma-separated location ids to export")
	fs.StringVar(&c.Warehouse.Type, "warehouse-type", c.Warehouse.Type, "warehouse kind: duckdb or parquet")
	fs.StringVar(&c.Warehouse.Path, "warehouse", c.Warehouse.Path, "DuckDB file (duckdb) or output directory (parquet)")
	fs.StringVar(&c.Archive, "archive", c.Archive, "keep the raw records each run reads, compressed, in this folder (e.g. warehouse.archive) so `remap` can rebuild the tables without the API")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "child requests (tasks, notes, appointments) in flight per location")
	fs.IntVar(&c.LocationWorkers, "location-concurrency", c.LocationWorkers, "locations exported at once")
	fs.IntVar(&c.PageLimit, "page-limit", c.PageLimit, "contacts per search page (max 500)")
	fs.IntVar(&c.BatchRows, "batch-rows", c.BatchRows, "rows per Arrow record batch")
	fs.IntVar(&c.CommitRows, "commit-rows", c.CommitRows, "rows per warehouse commit (commits happen on page boundaries)")
	fs.StringVar(&c.NaiveTimeZone, "naive-time-zone", c.NaiveTimeZone, "IANA zone for appointment times sent without a zone, for locations whose zone neither the API (scope locations.readonly) nor --time-zones tells")
	fs.Var(mapFlag{&c.TimeZones}, "time-zones", "locations' time zones when the API does not tell them: loc=Area/City,loc2=Area/City")
	fs.IntVar(&c.RateMax, "rate-max", c.RateMax, "requests allowed per rate interval per location (the API's X-RateLimit-Max steers it)")
	fs.DurationVar(&c.RateInterval, "rate-interval", c.RateInterval, "rate limit interval")
	fs.IntVar(&c.MaxRetries, "max-retries", c.MaxRetries, "retries per request (429, 5xx, resets, timeouts, truncated bodies)")
	fs.Int64Var(&c.RetryBudget, "retry-budget", c.RetryBudget, "retries per run, all locations together (0 = no limit)")
	fs.Var(&c.DailyReserve, "daily-reserve", "part of each location's daily quota left unspent: a count or a percentage of the daily limit; a run stops (exit 3, partial) before it")
	fs.Var(listFlag{&c.Children}, "children", "child resources to fetch per contact: tasks,notes,appointments (empty for none)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.Mapping, "mapping", c.Mapping, "YAML mapping file merged over the built-in mapping (see contacts-etl schema)")
	registerIncrementalFlags(fs, &c.Incremental)
	registerAuthFlags(fs, &c.Auth)
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// settings are the run's settings for the pipeline.
func (c Config) settings(command string, zone *time.Location) pipeline.Settings {
	return pipeline.Settings{Source: c.Source, Command: command, PageLimit: c.PageLimit, Concurrency: c.Concurrency,
		Children: c.Children, BatchRows: c.BatchRows, CommitRows: c.CommitRows, Workers: c.LocationWorkers,
		NaiveZone: zone, Options: c.Incremental.options()}
}

// clientOptions are the API client settings of a run.
func (c Config) clientOptions() pipeline.ClientOptions {
	return pipeline.ClientOptions{BaseURL: c.BaseURL, Concurrency: c.Concurrency, RateMax: c.RateMax, RateInterval: c.RateInterval,
		DailyReserve: c.DailyReserve, MaxRetries: c.MaxRetries, RetryBudget: c.RetryBudget, RetryDelayScale: retryDelayScale()}
}

// envRetryDelayScale scales every wait before a retry (0: none). It is the
// benchmark's (cmd/etlbench) way to measure what faults cost the exporter
// apart from the waits the API asks for; not a setting for real runs.
const envRetryDelayScale = "CONTACTS_ETL_RETRY_DELAY_SCALE"

func retryDelayScale() *float64 {
	v, ok := os.LookupEnv(envRetryDelayScale)
	if !ok {
		return nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return nil
	}
	return &f
}

func (c *Config) validate() error {
	if len(c.Sources) > 0 {
		return c.validateSources()
	}
	var errs []error
	if c.MaxRetries < 0 || c.RetryBudget < 0 {
		errs = append(errs, errors.New("max retries and retry budget must not be negative"))
	}
	if c.Source == "" {
		errs = append(errs, errors.New("source must not be empty"))
	}
	if len(c.Locations) == 0 {
		errs = append(errs, errors.New("no locations: set locations in the config or --locations"))
	}
	if c.Warehouse.Type != "duckdb" && c.Warehouse.Type != "parquet" {
		errs = append(errs, fmt.Errorf("warehouse type %q: want duckdb or parquet", c.Warehouse.Type))
	}
	if c.Warehouse.Path == "" {
		errs = append(errs, errors.New("warehouse path must not be empty"))
	} else if dir := filepath.Dir(filepath.Clean(c.Warehouse.Path)); !isDir(dir) {
		errs = append(errs, fmt.Errorf("warehouse folder %s does not exist (create it first)", dir))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("log level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.PageLimit < 1 || c.PageLimit > extract.MaxPageLimit {
		errs = append(errs, fmt.Errorf("page limit %d: want 1..%d", c.PageLimit, extract.MaxPageLimit))
	}
	if c.Concurrency < 1 || c.LocationWorkers < 1 {
		errs = append(errs, errors.New("concurrency values must be at least 1"))
	}
	for _, r := range c.Children {
		switch r {
		case "tasks", "notes", "appointments":
		default:
			errs = append(errs, fmt.Errorf("unknown child resource %q", r))
		}
	}
	if _, err := time.LoadLocation(c.NaiveTimeZone); err != nil {
		errs = append(errs, fmt.Errorf("naive time zone: %w", err))
	}
	for loc, z := range c.TimeZones {
		if _, err := time.LoadLocation(z); err != nil || z == "" {
			errs = append(errs, fmt.Errorf("time zone of location %s: %q is not an IANA zone name", loc, z))
		}
	}
	if err := c.Incremental.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := useMapping(c.Mapping); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validateSources checks a config with sources: each source as a
// single-source config, and names unique.
func (c *Config) validateSources() error {
	var errs []error
	if len(c.Locations) > 0 {
		errs = append(errs, errors.New("locations and sources are both set: list each source's locations under it"))
	}
	seen := map[string]bool{}
	for i, sc := range c.sourceConfigs() {
		name := sc.Source
		if name == "" {
			errs = append(errs, fmt.Errorf("source %d has no name", i+1))
			continue
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("source %q is listed twice", name))
		}
		seen[name] = true
		if err := sc.validate(); err != nil {
			errs = append(errs, fmt.Errorf("source %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// single returns the config of the one source a command works on: c
// itself, or with sources the one --source names.
func (c Config) single(command string) (Config, error) {
	if len(c.Sources) == 0 {
		return c, nil
	}
	var names []string
	for _, sc := range c.sourceConfigs() {
		if sc.Source == c.Source {
			return sc, nil
		}
		names = append(names, sc.Source)
	}
	return c, usageError{fmt.Errorf("%s works on one source: the config lists %s; pick one with --source", command, strings.Join(names, ", "))}
}

// useMapping makes the mapping file path (merged over the built-in one), or
// the built-in one when path is empty, the mapping of the warehouse tables.
func useMapping(path string) error {
	m := whsql.DefaultMapping()
	if path != "" {
		var err error
		if m, err = whsql.LoadMapping(path); err != nil {
			return err
		}
	}
	return whsql.Use(m)
}

package main

import (
	"context"
	dsql "database/sql"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the analyst query of the demo
	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/load"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

// demoQuery is the analyst query the demo prints: the most used tags, with
// how many of their contacts have open tasks.
const demoQuery = `
SELECT tag, count(DISTINCT c.contact_id) AS contacts,
       count(DISTINCT t.contact_id) AS with_open_tasks
FROM (SELECT contact_id, _source, unnest(tags) AS tag FROM contacts WHERE _deleted_at IS NULL) c
LEFT JOIN tasks t ON t._source = c._source AND t.contact_id = c.contact_id AND NOT t.completed
GROUP BY tag ORDER BY contacts DESC, tag LIMIT 5`

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	simCfg := sim.Config{Contacts: 3000, Locations: 2, Seed: 1}
	addr := "127.0.0.1:0"
	cfg, err := parseRunFlags("demo", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&addr, "sim-addr", addr, "address the simulator listens on (keep it on loopback; port 0 picks a free one)")
		fs.IntVar(&simCfg.Contacts, "contacts", simCfg.Contacts, "contacts the simulator generates (spread over its locations)")
		fs.IntVar(&simCfg.Locations, "sim-locations", simCfg.Locations, "locations the simulator serves")
		fs.Int64Var(&simCfg.Seed, "seed", simCfg.Seed, "seed of the simulated data")
	})
	if err != nil {
		return err
	}
	srv := sim.New(simCfg)
	base, err := srv.Start(addr)
	if err != nil {
		return fmt.Errorf("start simulator: %w", err)
	}
	defer srv.Close()
	cfg.BaseURL = base
	if len(cfg.Locations) == 0 {
		cfg.Locations = srv.Locations()
	}
	if err := cfg.validate(); err != nil {
		return usageError{err}
	}
	log := newLogger(stderr, cfg.LogLevel)
	fmt.Fprintf(stdout, "simulator  %s: %d contacts in %d locations (seed %d)\n", base, simCfg.Contacts, simCfg.Locations, simCfg.Seed)

	sources, err := simTokenSources(ctx, srv, base, cfg.Locations)
	if err != nil {
		return err
	}
	res, err := export(ctx, cfg, "demo", sources, log)
	printSummary(stdout, cfg, res)
	if err != nil {
		return err
	}
	return printQuery(ctx, stdout, cfg, demoQuery)
}

// simTokenSources logs in to each location through the simulator's OAuth
// endpoint (authorization code grant) and returns refreshing token sources.
func simTokenSources(ctx context.Context, srv *sim.Server, base string, locations []string) (map[string]oauth2.TokenSource, error) {
	conf := &oauth2.Config{
		ClientID:     sim.DefaultClientID,
		ClientSecret: sim.DefaultClientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: base + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
		Scopes:       []string{api.ScopeContactsRO, api.ScopeLocationsRO},
	}
	out := map[string]oauth2.TokenSource{}
	for _, loc := range locations {
		code := srv.AuthorizeCode(loc, api.ScopeContactsRO, api.ScopeLocationsRO)
		tok, err := conf.Exchange(ctx, code, oauth2.SetAuthURLParam("user_type", "Location"))
		if err != nil {
			return nil, fmt.Errorf("log in to location %s: %w", loc, err)
		}
		out[loc] = conf.TokenSource(context.WithoutCancel(ctx), tok)
	}
	return out, nil
}

// printQuery opens the warehouse read-only, as an analyst would, and prints
// a query's result as a table.
func printQuery(ctx context.Context, w io.Writer, cfg Config, query string) error {
	db, err := openWarehouse(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("analyst query: %w", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	fmt.Fprintf(w, "\nanalyst query:%s\n\n", strings.ReplaceAll(query, "\n", "\n  "))
	for _, c := range cols {
		fmt.Fprintf(w, "%-18s", c)
	}
	fmt.Fprintln(w)
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for _, v := range vals {
			fmt.Fprintf(w, "%-18v", v)
		}
		fmt.Fprintln(w)
	}
	return rows.Err()
}

func cmdSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg sim.Config
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8089", "address to listen on (keep it on loopback)")
	scopes := []string{api.ScopeContactsRO}
	fs.Func("scopes", "extra scopes the printed authorization codes grant, comma-separated (contacts.readonly always)", func(v string) error {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" && !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
		return nil
	})
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err == flag.ErrHelp {
		return nil
	} else if err != nil {
		return usageError{err}
	}
	srv := sim.New(cfg)
	base, err := srv.Start(*addr)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(stdout, "simulator listening on %s\nlocations: %s\nclient id: %s\n", base, strings.Join(srv.Locations(), ","), sim.DefaultClientID)
	fmt.Fprintf(stdout, "client secret: the simulator's development default %q (for `auth login`: export CONTACTS_ETL_CLIENT_SECRET=%s)\n",
		sim.DefaultClientSecret, sim.DefaultClientSecret)
	for _, loc := range srv.Locations() {
		fmt.Fprintf(stdout, "authorization code for %s: %s\n", loc, srv.AuthorizeCode(loc, scopes...))
	}
	<-ctx.Done()
	return nil
}

// openExisting opens, for reading, the warehouse of kind at path, which
// must exist (query and report never create one).
func openExisting(ctx context.Context, kind, path string) (*dsql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("warehouse: %w", err)
	}
	cfg := defaultConfig()
	cfg.Warehouse.Type, cfg.Warehouse.Path = kind, path
	db, err := openWarehouse(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open warehouse: %w", err)
	}
	return db, nil
}

// openWarehouse opens a warehouse for reading, as an analyst would: a
// DuckDB file read-only, or a Parquet tree through the views the sink
// writes beside it, in an in-memory DuckDB.
func openWarehouse(ctx context.Context, cfg Config) (*dsql.DB, error) {
	if cfg.Warehouse.Type != pipeline.WarehouseParquet {
		return dsql.Open("duckdb", cfg.Warehouse.Path+"?access_mode=read_only")
	}
	views, err := os.ReadFile(filepath.Join(cfg.Warehouse.Path, load.ParquetViewsFile))
	if err != nil {
		return nil, err
	}
	db, err := dsql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1) // file_search_path is a setting of the connection
	abs, err := filepath.Abs(cfg.Warehouse.Path)
	if err != nil {
		db.Close()
		return nil, err
	}
	// views.sql names the files relative to the warehouse folder.
	if _, err := db.ExecContext(ctx, "SET file_search_path = "+sqlQuote(abs)+";\n"+string(views)); err != nil {
		db.Close()
		return nil, fmt.Errorf("parquet views: %w", err)
	}
	return db, nil
}

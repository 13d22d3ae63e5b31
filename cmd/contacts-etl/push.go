package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract/auth"
	"github.com/contacts-etl/contacts-etl/pipeline"
	"github.com/contacts-etl/contacts-etl/push"
)

// cmdPush applies an action to every row of a query over the warehouse
// (see package push): `push --action A --sql "SELECT …" | --sql-file F [--dry-run]`.
func cmdPush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var action, query, file string
	var dry bool
	cfg, err := parseValidConfig("push", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&action, "action", "", "the action applied to each row of the query: "+fmt.Sprint(push.Actions()))
		fs.StringVar(&query, "sql", "", "the query over the warehouse; its columns are the action's arguments")
		fs.StringVar(&file, "sql-file", "", "a file holding the query")
		fs.BoolVar(&dry, "dry-run", false, "print the requests, their count and today's quota left after them; send no write")
	})
	if err != nil {
		return err
	}
	if cfg, err = cfg.single("push"); err != nil {
		return err
	}
	if (query == "") == (file == "") {
		return usageError{fmt.Errorf("give the query with exactly one of --sql and --sql-file")}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return usageError{err}
		}
		query = string(b)
	}
	if action == "" {
		return usageError{fmt.Errorf("--action is required (one of %v)", push.Actions())}
	}
	log := newLogger(stderr, cfg.LogLevel)
	sources, err := tokenSources(ctx, cfg)
	if err != nil {
		return err
	}
	clients, err := pipeline.Clients(cfg.Locations, sources, cfg.clientOptions())
	if err != nil {
		return usageError{err}
	}
	zone, err := time.LoadLocation(cfg.NaiveTimeZone)
	if err != nil {
		return usageError{fmt.Errorf("naive time zone: %w", err)}
	}
	res, err := push.Run(ctx, push.Config{Source: cfg.Source, Action: action, Query: query,
		Kind: cfg.Warehouse.Type, Path: cfg.Warehouse.Path, Clients: clients, Granted: grantedScopes(sources),
		DryRun: dry, Out: stdout, Log: log, ReadBack: cfg.settings("push", zone)})
	switch {
	case errors.Is(err, push.ErrInvalid):
		return usageError{err}
	case err != nil:
		return err
	case res.Failed > 0 || res.Pending > 0:
		// Exit 3: what the API refused is recorded with its message in the
		// actions table; pending actions are checked by the next push.
		return fmt.Errorf("%w: %d of %d actions failed, %d pending (see the actions table)",
			pipeline.ErrPartial, res.Failed, res.Actions, res.Pending)
	}
	return nil
}

// grantedScopes returns the scopes the token store records for each
// location logged in with OAuth; locations with a static token (or an
// agency token) are left out, and push checks them with one request.
func grantedScopes(sources map[string]oauth2.TokenSource) map[string][]string {
	out := map[string][]string{}
	for loc, src := range sources {
		as, ok := src.(*auth.Source)
		if !ok {
			continue
		}
		if t, err := as.Current(); err == nil && len(t.Scopes) > 0 {
			out[loc] = t.Scopes
		}
	}
	return out
}

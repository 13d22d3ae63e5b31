package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

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
	_, err = push.Run(ctx, push.Config{Source: cfg.Source, Action: action, Query: query,
		Kind: cfg.Warehouse.Type, Path: cfg.Warehouse.Path, Clients: clients, DryRun: dry, Out: stdout, Log: log,
		ReadBack: cfg.settings("push", zone)})
	return err
}

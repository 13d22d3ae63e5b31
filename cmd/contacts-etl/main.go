// Command contacts-etl exports a CRM's contacts, tasks, notes and
// appointments from the Contacts API into DuckDB or Parquet.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitPartial = 3 // some locations stopped early (quota, stuck cursor, credentials); what was fetched is committed
	exitLocked  = 4 // another run holds the warehouse
	exitRejects = 5 // the run completed, but some records were rejected whole (see the rejects table and status)
)

// errRejects is returned by a run that completed but committed whole-record
// rejects: exit code 5, so a scheduler notices data that did not land.
var errRejects = errors.New("some records were rejected whole and are not in the warehouse (see the rejects table; `status` lists them)")

// usageError marks a bad command line or config: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"run":      {"export contacts and their children into the warehouse", cmdRun},
	"push":     {"apply an action to each row of a SQL query, exactly once (--dry-run to see it)", cmdPush},
	"demo":     {"start the built-in simulator and export from it into ./warehouse.duckdb", cmdDemo},
	"simulate": {"serve the Contacts API simulator on a loopback address", cmdSimulate},
	"plan":     {"dry run: per location the windows, estimated requests and time, and whether today's quota covers them", cmdPlan},
	"backfill": {"fill a range of dateUpdated from the command line, window by window", cmdBackfill},
	"status":   {"show the watermark, windows, gaps, rejects and sweep progress per location", cmdStatus},
	"auth":     {"log in with OAuth (auth login) or recover lost tokens (auth reconnect), and store them", cmdAuth},
	"check":    {"test the connection: tokens, scopes, location access, rate-limit headroom", cmdCheck},
	"serve":    {"receive signed webhooks into an inbox and apply them as targeted runs", cmdServe},
	"query":    {"run a SELECT over the warehouse, read-only (table, csv, json or parquet)", cmdQuery},
	"remap":    {"rebuild the warehouse's tables from the raw archive (--archive) with no API request, e.g. after a mapping change", cmdRemap},
	"schema":   {"print the warehouse tables and columns with their types and descriptions (--mapping, --format markdown)", cmdSchema},
	"report":   {"write a self-contained HTML page of the last runs (requests, rows, waits, 429s)", cmdReport},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfiles := startProfiles(os.Stderr)
	limitMemory(os.Args[1:])
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfiles()
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "contacts-etl: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "contacts-etl %s: %v\n", args[0], err)
	return exitCode(err)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: contacts-etl <command> [flags]   (contacts-etl <command> --help for its flags)")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
}

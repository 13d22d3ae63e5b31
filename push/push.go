package push

import (
	"context"
	dsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // reads the warehouse
	"golang.org/x/sync/errgroup"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/load"
	"github.com/contacts-etl/contacts-etl/pipeline"
	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// Defaults of a push.
const (
	DefaultBatch       = 50 // actions per commit of "sent", then of their outcomes
	DefaultConcurrency = 4  // writes in flight
	maxSends           = 3  // sends of one action in one push
)

// ErrScope is returned when a location's token lacks the action's scope.
var ErrScope = errors.New("missing scope")

// ErrInvalid wraps what is refused before any request because the push
// itself is wrong: an unknown action, a column that is not an argument (or
// outside update-contact's whitelist), a missing argument, a bad value, a
// query that fails.
var ErrInvalid = errors.New("invalid push")

// Config is one push. Clients are the locations' API clients (built with
// pipeline.Clients: the same governor and daily reserve as a run).
type Config struct {
	Source, Action, Query string
	Kind, Path            string // the warehouse (pipeline.WarehouseDuckDB or WarehouseParquet)
	Clients               []*extract.Client
	// Granted are the scopes of each location's token when known (OAuth
	// tokens); a location missing here is checked with one request that
	// cannot apply anything (a write with an invalid body).
	Granted     map[string][]string
	DryRun      bool
	Out         io.Writer // dry-run listing and summary; nil: discard
	Log         *slog.Logger
	Batch       int
	Concurrency int
	// ReadBack configures the read-back run (Source, Children, ...);
	// Options.TargetsOnly is set by Run. NoReadBack skips it.
	ReadBack   pipeline.Settings
	NoReadBack bool
	// Hook, if set, is called after each commit of the actions table
	// ("commit:<status>") and after each write answered ("write"); tests
	// crash the process there.
	Hook func(point string)
}

// Result counts a push's actions.
type Result struct {
	Actions   int // rows of the query
	Skipped   int // already confirmed or failed by an earlier push
	Confirmed int
	Failed    int
	Pending   int   // still sent with the outcome unknown: the next push checks them
	Writes    int   // write requests (dry run: that it would send)
	Requests  int64 // every request (dry run: the estimate of reads too)
	DailyLeft int64 // today's quota left after the push (-1: unknown)
	ReadBack  pipeline.Result
}

type item struct {
	row  *row
	args Args
	req  extract.WriteRequest
	c    *extract.Client
}

// Run executes a push: it takes the warehouse's run lock, reads the query
// and the recorded actions, checks columns and scopes before any request,
// then (unless DryRun) sends each pending action exactly once and reads the
// confirmed changes back into the warehouse.
func Run(ctx context.Context, cfg Config) (Result, error) {
	res := Result{DailyLeft: -1}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	sp, ok := specs[cfg.Action]
	if !ok {
		return res, fmt.Errorf("%w: unknown action %q (known: %s)", ErrInvalid, cfg.Action, strings.Join(Actions(), ", "))
	}
	unlock, err := pipeline.Lock(ctx, cfg.Kind, cfg.Path, false, cfg.Log)
	if err != nil {
		return res, err
	}
	defer unlock()
	rd, err := readWarehouse(ctx, cfg)
	if err != nil {
		return res, err
	}
	clients := map[string]*extract.Client{}
	for _, c := range cfg.Clients {
		clients[c.Location()] = c
	}
	var todo, unread []*item
	seen := map[string]bool{}
	for i, a := range rd.args {
		key := Key(cfg.Action, a)
		if seen[key] {
			continue // the same action twice in one query is one action
		}
		seen[key] = true
		res.Actions++
		loc := rd.locs[a["contact_id"]]
		if loc == "" && len(cfg.Clients) == 1 {
			loc = cfg.Clients[0].Location()
		}
		c := clients[loc]
		if c == nil {
			return res, fmt.Errorf("row %d: contact %s: its location %q is not one this push may write (pass it in --locations)", i+1, a["contact_id"], loc)
		}
		req, err := sp.request(a, loc)
		if err != nil {
			return res, fmt.Errorf("%w: row %d: %s: %w", ErrInvalid, i+1, cfg.Action, err)
		}
		r := rd.prior[key]
		if r != nil && (r.Status == whsql.ActionConfirmed || r.Status == whsql.ActionFailed) {
			res.Skipped++
			if r.Status == whsql.ActionConfirmed && r.ConfirmedAt.After(rd.read[r.ContactID]) {
				unread = append(unread, &item{row: r, c: c}) // confirmed by a push that stopped before its read-back
			}
			continue
		}
		if r == nil {
			argsJSON, _ := json.Marshal(a)
			r = &row{Key: key, Action: cfg.Action, ContactID: a["contact_id"], Args: string(argsJSON),
				Status: whsql.ActionPlanned, Baseline: -1, Location: loc}
		}
		todo = append(todo, &item{row: r, args: a, req: req, c: c})
	}
	if err := checkScopes(ctx, cfg, sp.scope, todo); err != nil {
		return res, err
	}
	if cfg.DryRun {
		return dryRun(ctx, cfg, sp, todo, res)
	}
	return execute(ctx, cfg, sp, todo, unread, res)
}

// checkScopes fails when a location that has work lacks the scope.
func checkScopes(ctx context.Context, cfg Config, scope string, todo []*item) error {
	probed := map[string]bool{}
	for _, it := range todo {
		loc := it.c.Location()
		if probed[loc] {
			continue
		}
		probed[loc] = true
		if g, ok := cfg.Granted[loc]; ok {
			if !slices.Contains(g, scope) {
				return fmt.Errorf("%w: location %s: the token is granted %s, %s needs %s; run `contacts-etl auth login --scopes %s` (then push again)",
					ErrScope, loc, strings.Join(g, " "), cfg.Action, scope, scope)
			}
			continue
		}
		if cfg.DryRun {
			continue // a probe is a write request: a dry run sends none
		}
		// A write with an empty body: refused for the scope (401) before
		// the body is looked at, else refused as invalid (422/404).
		probe := extract.WriteRequest{Method: http.MethodPut,
			Path: contactPath(it.args, "/tasks/scope-check/completed"), Body: struct{}{}}
		if scope == api.ScopeEventsWrite {
			probe = extract.WriteRequest{Method: http.MethodPost, Path: "/calendars/events/appointments", Body: struct{}{}}
		}
		_, err := it.c.Write(ctx, probe)
		var he *api.HTTPError
		if errors.As(err, &he) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden) {
			return fmt.Errorf("%w: location %s: %s needs %s (the API answered %d %s, traceId %s); run `contacts-etl auth login --scopes %s`",
				ErrScope, loc, cfg.Action, scope, he.Status, he.Message, he.TraceID, scope)
		}
		if err != nil && !errors.As(err, &he) {
			return fmt.Errorf("location %s: scope check: %w", loc, err)
		}
	}
	return nil
}

func dryRun(ctx context.Context, cfg Config, sp spec, todo []*item, res Result) (Result, error) {
	contacts := map[string]bool{}
	for _, it := range todo {
		fmt.Fprintln(cfg.Out, it.req.String())
		contacts[it.row.ContactID] = true
		res.Writes++
		if sp.create != "" {
			res.Requests++ // the baseline read
		}
	}
	res.Requests += int64(res.Writes)
	if !cfg.NoReadBack {
		res.Requests += int64(len(contacts)) * int64(1+len(readChildren(cfg)))
	}
	// Today's quota: one read per location tells it.
	left := int64(-1)
	for _, c := range cfg.Clients {
		if _, err := c.LocationTimeZone(ctx); err != nil {
			var he *api.HTTPError
			if !errors.As(err, &he) {
				continue
			}
		}
		if rem, _, _ := c.Stats().Quota(); rem >= 0 {
			if left < 0 || rem < left {
				left = rem
			}
		}
	}
	if left >= 0 {
		res.DailyLeft = max(0, left-res.Requests)
	}
	fmt.Fprintf(cfg.Out, "dry run: %d write requests (%d requests with reads), %d actions already done; today's quota left after them: %s\n",
		res.Writes, res.Requests, res.Skipped, quotaText(res.DailyLeft))
	return res, nil
}

func quotaText(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return strconv.FormatInt(n, 10)
}

func readChildren(cfg Config) []string {
	if cfg.ReadBack.Children != nil {
		return cfg.ReadBack.Children
	}
	return extract.ChildResources
}

// pusher is the state of one push's execution.
type pusher struct {
	cfg   Config
	sp    spec
	sink  load.Sink
	runID string
}

func (p *pusher) commit(ctx context.Context, rows []*row, status string) error {
	if len(rows) == 0 {
		return nil
	}
	rec := record(rows, p.cfg.Source, p.runID)
	defer rec.Release()
	err := p.sink.Commit(ctx, &load.Commit{RunID: p.runID, Records: map[string][]arrow.RecordBatch{whsql.Actions.Name: {rec}}})
	if err != nil {
		return fmt.Errorf("commit actions (%s): %w", status, err)
	}
	if p.cfg.Hook != nil {
		p.cfg.Hook("commit:" + status)
	}
	return nil
}

func execute(ctx context.Context, cfg Config, sp spec, todo, unread []*item, res Result) (Result, error) {
	sink, err := pipeline.OpenSink(cfg.Kind, cfg.Path)
	if err != nil {
		return res, err
	}
	defer sink.Close(context.Background())
	p := &pusher{cfg: cfg, sp: sp, sink: sink, runID: pipeline.NewRunID()}
	started := time.Now().UTC()
	if _, err := sink.Start(ctx, load.Run{ID: p.runID, Source: cfg.Source, Command: "push", StartedAt: started}); err != nil {
		return res, fmt.Errorf("start push: %w", err)
	}
	var fresh []*row
	for _, it := range todo {
		if it.row.Status == whsql.ActionPlanned && it.row.PlannedAt.IsZero() {
			it.row.PlannedAt = started
			fresh = append(fresh, it.row)
		}
	}
	runErr := p.commit(ctx, fresh, whsql.ActionPlanned)
	targets := map[string]map[string]bool{} // location → contacts
	for _, it := range unread {
		if targets[it.c.Location()] == nil {
			targets[it.c.Location()] = map[string]bool{}
		}
		targets[it.c.Location()][it.row.ContactID] = true
	}
	for i := 0; runErr == nil && i < len(todo); i += cfg.Batch {
		batch := todo[i:min(i+cfg.Batch, len(todo))]
		runErr = p.batch(ctx, batch)
		for _, it := range batch {
			if it.row.Status == whsql.ActionConfirmed {
				loc := it.c.Location()
				if targets[loc] == nil {
					targets[loc] = map[string]bool{}
				}
				targets[loc][it.row.ContactID] = true
			}
		}
	}
	var reqs, retries, limited int64
	for _, c := range cfg.Clients {
		reqs += c.Stats().Requests.Load()
		retries += c.Stats().Retries.Load()
		limited += c.Stats().RateLimited.Load()
	}
	for _, it := range todo {
		switch it.row.Status {
		case whsql.ActionConfirmed:
			res.Confirmed++
		case whsql.ActionFailed:
			res.Failed++
		default:
			res.Pending++
		}
		if it.row.Attempts > 0 {
			res.Writes += int(it.row.Attempts)
		}
	}
	outcome, msg := "ok", ""
	if runErr != nil {
		outcome, msg = "failed", runErr.Error()
	} else if res.Failed > 0 || res.Pending > 0 {
		outcome = "partial"
	}
	if err := sink.Finish(context.Background(), load.RunResult{RunID: p.runID, EndedAt: time.Now().UTC(), Outcome: outcome,
		Error: msg, Requests: reqs, Retries: retries, RateLimited: limited}); err != nil && runErr == nil {
		runErr = fmt.Errorf("finish push: %w", err)
	}
	sink.Close(context.Background())
	if runErr == nil && !cfg.NoReadBack && len(targets) > 0 {
		rb, err := readBack(ctx, cfg, targets)
		res.ReadBack = rb
		if err != nil {
			runErr = fmt.Errorf("read back: %w", err)
		}
	}
	res.Requests = 0
	for _, c := range cfg.Clients {
		res.Requests += c.Stats().Requests.Load()
		if rem, _, _ := c.Stats().Quota(); rem >= 0 && (res.DailyLeft < 0 || rem < res.DailyLeft) {
			res.DailyLeft = rem
		}
	}
	fmt.Fprintf(cfg.Out, "push %s: %d actions: %d confirmed, %d failed, %d pending, %d done before; %d write requests, %d requests; today's quota left: %s\n",
		cfg.Action, res.Actions, res.Confirmed, res.Failed, res.Pending, res.Skipped, res.Writes, res.Requests, quotaText(res.DailyLeft))
	return res, runErr
}

// batch takes one batch through: baselines and checks of uncertain
// actions (reads), the commit of "sent", the sends, the commit of outcomes.
func (p *pusher) batch(ctx context.Context, batch []*item) error {
	// 1. Reads: a create needs its baseline before its first send; an
	// action left "sent" by an earlier push is checked before a repeat.
	send := make([]bool, len(batch))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.cfg.Concurrency)
	for i, it := range batch {
		g.Go(func() error {
			r := it.row
			if p.sp.create == "" {
				send[i] = true // updates set a state: repeating one is harmless
				return nil
			}
			if r.Status == whsql.ActionSent && r.Baseline >= 0 {
				n, id, err := p.count(gctx, it)
				if err != nil {
					return err
				}
				if n > int(r.Baseline) {
					r.Status, r.TargetID, r.ConfirmedAt, r.Message = whsql.ActionConfirmed, id, time.Now().UTC(), "confirmed by reading back"
					return nil
				}
			}
			if r.Baseline < 0 {
				n, _, err := p.count(gctx, it)
				if err != nil {
					return err
				}
				r.Baseline = int64(n)
			}
			send[i] = true
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var sent, checked []*row
	now := time.Now().UTC()
	for i, it := range batch {
		if send[i] {
			it.row.Status, it.row.SentAt = whsql.ActionSent, now
			it.row.Attempts++
			sent = append(sent, it.row)
		} else {
			checked = append(checked, it.row)
		}
	}
	if err := p.commit(ctx, append(checked, sent...), whsql.ActionSent); err != nil {
		return err
	}
	// 2. Sends.
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(p.cfg.Concurrency)
	for i, it := range batch {
		if !send[i] {
			continue
		}
		g.Go(func() error { return p.send(gctx, it) })
	}
	gerr := g.Wait()
	var done []*row
	for i, it := range batch {
		if send[i] {
			done = append(done, it.row)
		}
	}
	// Outcomes known so far are committed even when the batch stopped.
	if err := p.commit(context.WithoutCancel(ctx), done, whsql.ActionConfirmed); err != nil {
		return errors.Join(gerr, err)
	}
	return gerr
}

// send sends one action until its outcome is known or maxSends is spent.
func (p *pusher) send(ctx context.Context, it *item) error {
	r := it.row
	for n := 1; ; n++ {
		b, err := it.c.Write(ctx, it.req)
		if p.cfg.Hook != nil {
			p.cfg.Hook("write")
		}
		if err == nil {
			r.Status, r.ConfirmedAt, r.Message, r.TraceID, r.HTTPStatus = whsql.ActionConfirmed, time.Now().UTC(), "", "", 0
			r.TargetID = targetOf(p.sp, it.args, b)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var he *api.HTTPError
		if errors.As(err, &he) {
			r.Message, r.TraceID, r.HTTPStatus = he.Message, he.TraceID, int64(he.Status)
		} else {
			r.Message, r.HTTPStatus = err.Error(), 0
		}
		if p.sp.create != "" && extract.Uncertain(err) {
			// The API may have created it: read back before any repeat.
			cnt, id, rerr := p.count(ctx, it)
			if rerr != nil {
				return nil // outcome unknown: stays sent, the next push checks
			}
			if cnt > int(r.Baseline) {
				r.Status, r.TargetID, r.ConfirmedAt = whsql.ActionConfirmed, id, time.Now().UTC()
				r.Message = "confirmed by reading back after: " + r.Message
				return nil
			}
		}
		retry := extract.Uncertain(err) && !(he != nil && he.Status == http.StatusUnprocessableEntity)
		if !retry {
			if he != nil && he.Status < 500 {
				r.Status = whsql.ActionFailed
			}
			return nil // a transport failure on an update stays sent
		}
		if n >= maxSends {
			return nil
		}
		r.Attempts++
	}
}

// count reads the contact's records of the created kind and counts those
// whose match field equals the action's argument; id is the newest match.
func (p *pusher) count(ctx context.Context, it *item) (int, string, error) {
	items, _, problem, err := it.c.Children(ctx, it.row.ContactID, p.sp.create)
	if err != nil {
		return 0, "", fmt.Errorf("read back %s of %s: %w", p.sp.create, it.row.ContactID, err)
	}
	if problem != "" {
		return 0, "", fmt.Errorf("read back %s of %s: %s", p.sp.create, it.row.ContactID, problem)
	}
	n, id := 0, ""
	for _, raw := range items {
		var m map[string]any
		if json.Unmarshal(raw, &m) != nil {
			continue
		}
		if matches(m, p.sp.match, it.args) {
			n++
			id, _ = m["id"].(string)
		}
	}
	return n, id, nil
}

// matches says whether record m has the arguments' values in the match
// fields (an argument not given is not compared; times given with an
// offset are compared as instants).
func matches(m map[string]any, match map[string]string, a Args) bool {
	for arg, field := range match {
		want, ok := a[arg]
		if !ok {
			continue
		}
		got, _ := m[field].(string)
		if got == want {
			continue
		}
		if !sameInstant(got, want) {
			return false
		}
	}
	return true
}

// sameInstant compares two times given as text. The appointments of a
// contact are served zone-less (in the location's zone, which a push may
// not be allowed to read): such a time matches an instant when it is that
// instant's wall clock in some zone (a whole number of quarter hours from
// UTC, within ±14 h).
func sameInstant(got, want string) bool {
	tw, err := time.Parse(time.RFC3339, want)
	if err != nil {
		return false
	}
	if tg, err := time.Parse(time.RFC3339, got); err == nil {
		return tg.Equal(tw)
	}
	tg, err := time.Parse("2006-01-02 15:04:05", got)
	if err != nil {
		if tg, err = time.Parse("2006-01-02T15:04:05", got); err != nil {
			return false
		}
	}
	d := tg.Sub(tw.UTC().Truncate(time.Second)) // the zone's offset if got is tw's wall clock there
	if d < 0 {
		d = -d
	}
	return tw.Nanosecond() == 0 && d <= 14*time.Hour && d%(15*time.Minute) == 0
}

func targetOf(sp spec, a Args, body []byte) string {
	switch sp.create {
	case api.ResourceNotes:
		var r api.CreatedNote
		if json.Unmarshal(body, &r) == nil && r.Note != nil {
			return r.Note.ID
		}
		return ""
	case api.ResourceAppointments:
		var r api.CreatedAppointment
		if json.Unmarshal(body, &r) == nil {
			return r.ID
		}
		return ""
	case api.ResourceTasks:
		var r api.TaskResponse
		if json.Unmarshal(body, &r) == nil && r.Task != nil {
			return r.Task.ID
		}
		return ""
	}
	return a["task_id"]
}

// readBack merges the contacts (with their children) of confirmed actions
// into the warehouse with a targets-only run.
func readBack(ctx context.Context, cfg Config, targets map[string]map[string]bool) (pipeline.Result, error) {
	sink, err := pipeline.OpenSink(cfg.Kind, cfg.Path)
	if err != nil {
		return pipeline.Result{}, err
	}
	defer sink.Close(context.Background())
	var locs []pipeline.Location
	for _, c := range cfg.Clients {
		ids := targets[c.Location()]
		if len(ids) == 0 {
			continue
		}
		l := pipeline.Location{Client: c}
		for id := range ids {
			l.Targets = append(l.Targets, id)
		}
		sort.Strings(l.Targets)
		locs = append(locs, l)
	}
	s := cfg.ReadBack
	if s.Source == "" {
		s.Source = cfg.Source
	}
	s.Command = "push-readback"
	if s.Children == nil {
		s.Children = extract.ChildResources
	}
	s.Options.TargetsOnly = true
	j := pipeline.NewJob(s, locs, sink, cfg.Log)
	return pipeline.Run(ctx, j)
}

// read is what a push reads of the warehouse before any request.
type read struct {
	args  []Args
	locs  map[string]string    // contact id → location
	read  map[string]time.Time // contact id → when last read (_extracted_at)
	prior map[string]*row      // recorded actions by key
}

// openRO opens the warehouse for reading: the DuckDB file read-only, or
// the Parquet tree through its views.
func openRO(kind, path string) (*dsql.DB, error) {
	switch kind {
	case pipeline.WarehouseDuckDB:
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("warehouse %s: %w", path, err)
		}
		return dsql.Open("duckdb", path+"?access_mode=read_only")
	case pipeline.WarehouseParquet:
		views, err := os.ReadFile(filepath.Join(path, load.ParquetViewsFile))
		if err != nil {
			return nil, fmt.Errorf("warehouse %s: %w", path, err)
		}
		db, err := dsql.Open("duckdb", "")
		if err != nil {
			return nil, err
		}
		if _, err := db.Exec(string(views)); err != nil {
			db.Close()
			return nil, fmt.Errorf("warehouse views: %w", err)
		}
		return db, nil
	}
	return nil, fmt.Errorf("warehouse type %q not supported", kind)
}

func readWarehouse(ctx context.Context, cfg Config) (*read, error) {
	db, err := openRO(cfg.Kind, cfg.Path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rd := &read{locs: map[string]string{}, read: map[string]time.Time{}, prior: map[string]*row{}}
	rows, err := db.QueryContext(ctx, cfg.Query)
	if err != nil {
		return nil, fmt.Errorf("%w: query: %w", ErrInvalid, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	if err := checkColumns(cfg.Action, cols); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		a := Args{}
		for i, c := range cols {
			if s, ok := text(vals[i]); ok {
				a[c] = s
			}
		}
		if a["contact_id"] == "" {
			return nil, fmt.Errorf("%w: query row %d: contact_id is NULL or empty", ErrInvalid, len(rd.args)+1)
		}
		rd.args = append(rd.args, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	rows.Close()
	lr, err := db.QueryContext(ctx, `SELECT contact_id, _location_id, _extracted_at FROM contacts WHERE _source = ?`, cfg.Source)
	if err != nil {
		return nil, fmt.Errorf("read contacts: %w", err)
	}
	for lr.Next() {
		var id, loc string
		var at time.Time
		if err := lr.Scan(&id, &loc, &at); err != nil {
			lr.Close()
			return nil, fmt.Errorf("read contacts: %w", err)
		}
		rd.locs[id], rd.read[id] = loc, at
	}
	lr.Close()
	var has int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name = 'actions'`).Scan(&has); err != nil {
		return nil, fmt.Errorf("read actions: %w", err)
	}
	if has == 0 {
		return rd, nil
	}
	ar, err := db.QueryContext(ctx, `SELECT action_key, action, coalesce(contact_id, ''), coalesce(target_id, ''), coalesce(args, ''),
		status, coalesce(message, ''), coalesce(trace_id, ''), coalesce(http_status, 0), attempts, coalesce(baseline, -1),
		planned_at, confirmed_at, _location_id FROM actions WHERE _source = ?`, cfg.Source)
	if err != nil {
		return nil, fmt.Errorf("read actions: %w", err)
	}
	defer ar.Close()
	for ar.Next() {
		r := &row{}
		var planned, confirmed dsql.NullTime
		if err := ar.Scan(&r.Key, &r.Action, &r.ContactID, &r.TargetID, &r.Args, &r.Status, &r.Message, &r.TraceID,
			&r.HTTPStatus, &r.Attempts, &r.Baseline, &planned, &confirmed, &r.Location); err != nil {
			return nil, fmt.Errorf("read actions: %w", err)
		}
		r.PlannedAt, r.ConfirmedAt = planned.Time, confirmed.Time
		rd.prior[r.Key] = r
	}
	return rd, ar.Err()
}

// text renders a query value as an argument; false for NULL.
func text(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", false
	case string:
		return v, true
	case []byte:
		return string(v), true
	case bool:
		return strconv.FormatBool(v), true
	case time.Time:
		return v.UTC().Format(time.RFC3339), true
	case []any:
		parts := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := text(x); ok {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ","), true
	}
	return fmt.Sprint(v), true
}

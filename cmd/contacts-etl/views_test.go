package main

import (
	"context"
	dsql "database/sql"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// viewsAsOf is the instant the *_at macros are asked about: inside the
// simulator's generated history (the three years before 2025-01-01), so
// tasks are overdue and pending and appointments past and upcoming.
var viewsAsOf = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)

// truthView is what the analyst views must say, computed from the
// simulator's ground truth at one instant.
type truthView struct {
	c360      map[string]c360Row // by location/contact
	overdue   []string           // task ids
	open      int
	upcoming  []string // appointment ids
	timeline  map[string]int
	perLoc    map[string][4]int // contacts, open, overdue, upcoming
	upZones   map[string]bool   // zones of the locations with upcoming appointments
	fieldRej  map[string]int    // per location
	recordRej map[string]int
}

type c360Row struct {
	Email, Phone, LastNote, NextAppt string
	Tags, Open, Overdue              int
}

func parseSimTime(t *testing.T, s string) (time.Time, bool) {
	t.Helper()
	if s == "" {
		return time.Time{}, false
	}
	v, err := time.Parse("2006-01-02T15:04:05.000Z", s)
	if err != nil {
		t.Fatalf("sim time %q: %v", s, err)
	}
	return v, true
}

func upcomingStatus(s string) bool { return s != "cancelled" && s != "invalid" }

func truthAt(t *testing.T, srv *sim.Server, at time.Time) truthView {
	tv := truthView{c360: map[string]c360Row{}, timeline: map[string]int{}, perLoc: map[string][4]int{},
		upZones: map[string]bool{}, fieldRej: map[string]int{}, recordRej: map[string]int{}}
	// Records served without an id are rejected whole: not in the views.
	missing := map[string]bool{}
	for _, b := range srv.ExpectedRejects() {
		if b.Kind == sim.KindMissingID {
			missing[b.ID] = true
		}
	}
	for _, loc := range srv.Locations() {
		pl := tv.perLoc[loc]
		for _, ct := range srv.Truth(loc) {
			if ct.Deleted || missing[ct.Contact.ID] {
				continue
			}
			c := ct.Contact
			row := c360Row{Email: c.Email, Phone: c.Phone, Tags: distinctTags(c.Tags)}
			pl[0]++
			if _, ok := parseSimTime(t, c.DateAdded); ok {
				tv.timeline["contact_created"]++
			}
			for _, tk := range ct.Tasks {
				due, hasDue := parseSimTime(t, tk.DueDate)
				if hasDue {
					tv.timeline["task_due"]++
				}
				if tk.Completed {
					continue
				}
				row.Open++
				tv.open++
				pl[1]++
				if hasDue && due.Before(at) {
					row.Overdue++
					pl[2]++
					tv.overdue = append(tv.overdue, tk.ID)
				}
			}
			var lastAt time.Time
			lastID := ""
			for _, n := range ct.Notes {
				if missing[n.ID] {
					continue
				}
				na, _ := parseSimTime(t, n.DateAdded)
				tv.timeline["note"]++
				if lastID == "" || na.After(lastAt) || (na.Equal(lastAt) && n.ID > lastID) {
					lastAt, lastID, row.LastNote = na, n.ID, n.Body
				}
			}
			var nextAt time.Time
			for j, e := range ct.Events {
				if missing[e.ID] {
					continue
				}
				tv.timeline["appointment"]++
				st := ct.EventTimes[j].Start
				if st.Before(at) || !upcomingStatus(e.Status) {
					continue
				}
				tv.upcoming = append(tv.upcoming, e.ID)
				pl[3]++
				if ct.EventTimes[j].Zone != "" {
					tv.upZones[ct.EventTimes[j].Zone] = true
				}
				if row.NextAppt == "" || st.Before(nextAt) || (st.Equal(nextAt) && e.ID < row.NextAppt) {
					nextAt, row.NextAppt = st, e.ID
				}
			}
			tv.c360[loc+"/"+c.ID] = row
		}
		tv.perLoc[loc] = pl
	}
	for _, f := range srv.ExpectedFieldRejects() {
		tv.fieldRej[f.LocationID] += len(f.Fields)
	}
	for _, b := range srv.ExpectedRejects() {
		if b.Kind == sim.KindMissingID {
			tv.recordRej[b.LocationID]++
		}
	}
	slices.Sort(tv.overdue)
	slices.Sort(tv.upcoming)
	return tv
}

func queryStrings(t *testing.T, q interface {
	QueryContext(context.Context, string, ...any) (*dsql.Rows, error)
}, query string, args ...any) []string {
	t.Helper()
	rows, err := q.QueryContext(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAnalystViewsMatchTruth exports a simulator with three locations in
// three zones, bad records and odd fields into each sink, and checks every
// analyst view against the same answers computed from the simulator's
// ground truth: at a fixed instant through the *_at macros, and at the
// query's now() through the plain views.
func TestAnalystViewsMatchTruth(t *testing.T) {
	srv, base := startSim(t, sim.Config{Seed: 15, Contacts: 150, Locations: 3,
		Bad: sim.BadData{MissingID: 2, OddFields: 3}})
	tv := truthAt(t, srv, viewsAsOf)
	if len(tv.overdue) == 0 || len(tv.overdue) == tv.open || len(tv.upcoming) == 0 || len(tv.upZones) < 2 {
		t.Fatalf("dataset does not exercise the views: overdue %d of %d open, upcoming %d, zones %v",
			len(tv.overdue), tv.open, len(tv.upcoming), tv.upZones)
	}
	for _, kind := range []string{"duckdb", "parquet"} {
		t.Run(kind, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "wh")
			if kind == "duckdb" {
				path += ".duckdb"
			}
			cfg := viewsExport(t, srv, base, path, kind, "backfill")
			viewsExport(t, srv, base, path, kind, "run")
			db, err := openWarehouse(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			checkViews(t, db, srv, tv)
		})
	}
}

func viewsExport(t *testing.T, srv *sim.Server, base, path, kind, command string) Config {
	t.Helper()
	cfg := defaultConfig()
	cfg.Source = "sim"
	cfg.BaseURL = base
	cfg.Locations = srv.Locations()
	cfg.Warehouse.Type = kind
	cfg.Warehouse.Path = path
	cfg.CommitRows = 5000
	cfg.BatchRows = 2000
	cfg.PageLimit = 100
	cfg.RateMax = 1_000_000
	cfg.RateInterval = time.Second
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sources, err := simTokenSources(ctx, srv, base, cfg.Locations)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := export(ctx, cfg, command, sources, newLogger(io.Discard, "error")); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func checkViews(t *testing.T, db *dsql.DB, srv *sim.Server, tv truthView) {
	ctx := context.Background()
	at := viewsAsOf

	if got := queryStrings(t, db, `SELECT task_id FROM overdue_tasks_at(?) ORDER BY task_id`, at); !slices.Equal(got, tv.overdue) {
		t.Errorf("overdue_tasks_at: %d tasks, truth %d", len(got), len(tv.overdue))
	}
	var open int
	if err := db.QueryRow(`SELECT count(*) FROM open_tasks_at(?)`, at).Scan(&open); err != nil || open != tv.open {
		t.Errorf("open_tasks_at: %d (%v), truth %d", open, err, tv.open)
	}
	if got := queryStrings(t, db, `SELECT appointment_id FROM upcoming_appointments_at(?) ORDER BY appointment_id`, at); !slices.Equal(got, tv.upcoming) {
		t.Errorf("upcoming_appointments_at: %d, truth %d", len(got), len(tv.upcoming))
	}

	// contact_360 row by row.
	rows, err := db.Query(`SELECT _location_id, contact_id, coalesce(email, ''), coalesce(phone, ''), len(coalesce(tags, [])),
		tasks_open, tasks_overdue, coalesce(last_note, ''), coalesce(next_appointment_id, '') FROM contact_360_at(?)`, at)
	if err != nil {
		t.Fatal(err)
	}
	odd := map[string]bool{}
	for _, f := range srv.ExpectedFieldRejects() {
		odd[f.LocationID+"/"+f.ContactID] = true
	}
	n := 0
	for rows.Next() {
		var loc, id string
		var r c360Row
		if err := rows.Scan(&loc, &id, &r.Email, &r.Phone, &r.Tags, &r.Open, &r.Overdue, &r.LastNote, &r.NextAppt); err != nil {
			t.Fatal(err)
		}
		n++
		want, ok := tv.c360[loc+"/"+id]
		if !ok {
			t.Errorf("contact_360: %s/%s not in truth", loc, id)
			continue
		}
		if odd[loc+"/"+id] { // odd fields land NULL (see field_rejects)
			r.Email, r.Phone, r.Tags = want.Email, want.Phone, want.Tags
		}
		if r != want {
			t.Errorf("contact_360 %s/%s:\n got %+v\nwant %+v", loc, id, r, want)
		}
	}
	rows.Close()
	if n != len(tv.c360) {
		t.Errorf("contact_360: %d rows, truth %d live contacts", n, len(tv.c360))
	}

	// activity_timeline by kind.
	rows, err = db.Query(`SELECT kind, count(*) FROM activity_timeline GROUP BY kind`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for rows.Next() {
		var k string
		var c int
		if err := rows.Scan(&k, &c); err != nil {
			t.Fatal(err)
		}
		got[k] = c
	}
	rows.Close()
	for k, w := range tv.timeline {
		if got[k] != w {
			t.Errorf("activity_timeline %s: %d, truth %d", k, got[k], w)
		}
	}

	// location_summary_at per location, rejects_summary per location.
	for _, loc := range srv.Locations() {
		var pl [4]int
		if err := db.QueryRow(`SELECT contacts, tasks_open, tasks_overdue, appointments_upcoming
			FROM location_summary_at(?) WHERE _source = 'sim' AND _location_id = ?`, at, loc).Scan(&pl[0], &pl[1], &pl[2], &pl[3]); err != nil {
			t.Fatalf("location_summary_at %s: %v", loc, err)
		}
		if pl != tv.perLoc[loc] {
			t.Errorf("location_summary_at %s: %v, truth %v", loc, pl, tv.perLoc[loc])
		}
		var rec, fld int
		if err := db.QueryRow(`SELECT coalesce(sum(rejects) FILTER (WHERE kind = 'record'), 0), coalesce(sum(rejects) FILTER (WHERE kind = 'field'), 0)
			FROM rejects_summary WHERE _location_id = ?`, loc).Scan(&rec, &fld); err != nil {
			t.Fatal(err)
		}
		if rec != tv.recordRej[loc] || fld != tv.fieldRej[loc] {
			t.Errorf("rejects_summary %s: record %d field %d, truth %d %d", loc, rec, fld, tv.recordRej[loc], tv.fieldRej[loc])
		}
	}

	// runs_latest: one row per source, the last run whatever its command.
	var runs int
	var command string
	if err := db.QueryRow(`SELECT count(*), any_value(command) FROM runs_latest`).Scan(&runs, &command); err != nil || runs != 1 || command != "run" {
		t.Errorf("runs_latest: %d rows, command %q, %v", runs, command, err)
	}

	// The plain views at the query's now(), read in one transaction so
	// that now() is one instant, compared with the truth at that instant.
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, "ROLLBACK")
	var now time.Time
	if err := conn.QueryRowContext(ctx, `SELECT now()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	tn := truthAt(t, srv, now)
	var ov, op, up, actOverdue, srcOverdue int
	if err := conn.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM overdue_tasks), (SELECT count(*) FROM open_tasks),
		(SELECT count(*) FROM upcoming_appointments), (SELECT sum(tasks_overdue) FROM contact_activity),
		(SELECT tasks_overdue FROM source_summary WHERE _source = 'sim')`).Scan(&ov, &op, &up, &actOverdue, &srcOverdue); err != nil {
		t.Fatal(err)
	}
	if ov != len(tn.overdue) || op != tn.open || up != len(tn.upcoming) || actOverdue != len(tn.overdue) || srcOverdue != len(tn.overdue) {
		t.Errorf("views at now %s: overdue %d open %d upcoming %d contact_activity.overdue %d source_summary.overdue %d; truth %d %d %d",
			now, ov, op, up, actOverdue, srcOverdue, len(tn.overdue), tn.open, len(tn.upcoming))
	}
}

// distinctTags counts the tags a contact lands with: trimmed, empty and
// repeated ones dropped.
func distinctTags(tags []string) int {
	seen := map[string]bool{}
	for _, t := range tags {
		if t = strings.TrimSpace(t); t != "" {
			seen[t] = true
		}
	}
	return len(seen)
}

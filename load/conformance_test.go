package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	execpkg "os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// target adapts one sink to the conformance suite.
type target struct {
	name string
	// open returns a sink on the warehouse in dir (the same dir, the same
	// warehouse).
	open func(t *testing.T, dir string) Sink
	// db returns a DuckDB connection (closed by the test's cleanup) on
	// which the committed tables read by their names.
	db func(t *testing.T, dir string) *roDB
	// run returns the recorded outcome of a run and whether it has ended.
	run func(t *testing.T, dir, runID string) (outcome string, ended bool)
	// hook makes s call fn after each table's records are merged.
	hook func(s Sink, fn func(table string) error)
	// helperEnv is the environment that makes TestHelperProcess read the
	// warehouse in dir from another process.
	helperEnv func(dir string) []string
}

var (
	t0  = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	t1  = t0.Add(time.Hour)
	t2  = t0.Add(2 * time.Hour)
	cet = time.FixedZone("CET", 3600)
)

// runConformance runs the suite every Sink must pass.
func runConformance(t *testing.T, tg target) {
	ctx := context.Background()
	newMem := func(t *testing.T) *memory.CheckedAllocator {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		t.Cleanup(func() { mem.AssertSize(t, 0) })
		return mem
	}
	commit := func(t *testing.T, s Sink, c *Commit) {
		t.Helper()
		if err := s.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
		for _, recs := range c.Records {
			for _, r := range recs {
				r.Release()
			}
		}
	}
	recs := func(rs ...arrow.RecordBatch) []arrow.RecordBatch { return rs }
	start := func(t *testing.T, s Sink, id string) *State {
		t.Helper()
		st, err := s.Start(ctx, Run{ID: id, Source: "src", Command: "run", StartedAt: t0})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	contact := func(id, name string, tags []string, at time.Time) row {
		return sys(row{"contact_id": id, "name": name, "tags": tags}, "src", at)
	}

	t.Run("WriteTwiceNewestWins", func(t *testing.T) {
		mem, dir := newMem(t), t.TempDir()
		s := tg.open(t, dir)
		start(t, s, "r1")
		commit(t, s, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{
			"contacts": recs(build(t, mem, whsql.Contacts,
				contact("c1", "Ann", []string{"a"}, t0), contact("c2", "Bob", nil, t0))),
			"tasks": recs(build(t, mem, whsql.Tasks, sys(row{"task_id": "k1", "title": "call"}, "src", t0))),
		}})
		commit(t, s, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{
			"contacts": recs(
				build(t, mem, whsql.Contacts, contact("c1", "Ann B", []string{"b", "c"}, t2), contact("c1", "stale dup", nil, t1)),
				build(t, mem, whsql.Contacts, contact("c3", "Cy", []string{}, t1)),
			),
			"tasks": recs(build(t, mem, whsql.Tasks, sys(row{"task_id": "k1", "title": "call back"}, "src", t1))),
		}})
		// A replay older than what is stored changes nothing.
		commit(t, s, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{
			"contacts": recs(build(t, mem, whsql.Contacts, contact("c1", "older", nil, t1))),
		}})
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		db := tg.db(t, dir)
		got := queryRows(t, db, `SELECT contact_id, name, tags FROM contacts ORDER BY contact_id`)
		want := [][]any{{"c1", "Ann B", []any{"b", "c"}}, {"c2", "Bob", nil}, {"c3", "Cy", []any{}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("contacts = %v, want %v", got, want)
		}
		got = queryRows(t, db, `SELECT task_id, title FROM tasks`)
		if want := [][]any{{"k1", "call back"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("tasks = %v, want %v", got, want)
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		mem, dir := newMem(t), t.TempDir()
		s := tg.open(t, dir)
		start(t, s, "r1")
		big := strings.Repeat("ü€𝄞x", 10<<20/10) // 10 MB of mixed-width UTF-8
		created := time.Date(2023, 12, 31, 23, 59, 59, 123456000, cet)
		commit(t, s, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{
			"contacts": recs(build(t, mem, whsql.Contacts, sys(row{
				"contact_id": "c1", "name": "Zoë 山田 🦊", "tags": []string{"vip", "", "日本"},
				"dnd": true, "date_of_birth": time.Date(1990, 2, 3, 0, 0, 0, 0, time.UTC),
				"created_at": created, "custom_fields": `{"k":"v"}`,
			}, "src", t0), sys(row{"contact_id": "c2"}, "src", t0))),
			"notes": recs(build(t, mem, whsql.Notes, sys(row{"note_id": "n1", "content": big, "pinned": false}, "src", t0))),
			"rejects": recs(build(t, mem, whsql.Rejects, row{"resource": "contacts", "reason": "bad email",
				"raw_json": `{"id":"x"}`, "raw_bytes": int64(10), "_source": "src", "_location_id": "loc1",
				"_run_id": "r1", "_extracted_at": t0})),
		}})
		db := tg.db(t, dir)
		got := queryRows(t, db, `SELECT name, tags, dnd, date_of_birth, created_at, custom_fields, email, _extracted_at
			FROM contacts WHERE contact_id = 'c1'`)
		if len(got) != 1 {
			t.Fatalf("got %d rows", len(got))
		}
		r := got[0]
		if r[0] != "Zoë 山田 🦊" || !reflect.DeepEqual(r[1], []any{"vip", "", "日本"}) || r[2] != true || r[5] != `{"k":"v"}` || r[6] != nil {
			t.Errorf("row = %v", r)
		}
		if dob, ok := r[3].(time.Time); !ok || !dob.Equal(time.Date(1990, 2, 3, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("date_of_birth = %v", r[3])
		}
		if ts, ok := r[4].(time.Time); !ok || !ts.Equal(created) || ts.Location() != time.UTC {
			t.Errorf("created_at = %v, want %v in UTC", r[4], created.UTC())
		}
		got = queryRows(t, db, `SELECT tags, name, dnd, created_at FROM contacts WHERE contact_id = 'c2'`)
		if want := [][]any{{nil, nil, nil, nil}}; !reflect.DeepEqual(got, want) {
			t.Errorf("nulls = %v", got)
		}
		got = queryRows(t, db, `SELECT content = ?, length(content) FROM notes`, big)
		if len(got) != 1 || got[0][0] != true {
			t.Errorf("10 MB note did not round-trip: %v", got)
		}
		got = queryRows(t, db, `SELECT resource, reason, raw_bytes FROM rejects`)
		if want := [][]any{{"contacts", "bad email", int64(10)}}; !reflect.DeepEqual(got, want) {
			t.Errorf("rejects = %v", got)
		}
	})

	t.Run("FailedCommitLeavesNothing", func(t *testing.T) {
		mem, dir := newMem(t), t.TempDir()
		s := tg.open(t, dir)
		start(t, s, "r1")
		wm := Watermark{Source: "src", LocationID: "loc1", Resource: "contacts", Value: t0}
		commit(t, s, &Commit{RunID: "r1", Watermarks: []Watermark{wm},
			Records: map[string][]arrow.RecordBatch{"contacts": recs(build(t, mem, whsql.Contacts, contact("c1", "Ann", nil, t0)))}})

		failing := func() *Commit {
			return &Commit{RunID: "r1",
				Records: map[string][]arrow.RecordBatch{
					"contacts": recs(build(t, mem, whsql.Contacts, contact("c1", "changed", nil, t1), contact("c9", "new", nil, t1))),
					"tasks":    recs(build(t, mem, whsql.Tasks, sys(row{"task_id": "k1"}, "src", t1))),
				},
				Watermarks: []Watermark{{Source: "src", LocationID: "loc1", Resource: "contacts", Value: t2}},
				Windows:    []Window{{Source: "src", LocationID: "loc1", Resource: "contacts", Start: t0, End: t2, Status: "done", RunID: "r1"}},
			}
		}
		release := func(c *Commit) {
			for _, rs := range c.Records {
				for _, r := range rs {
					r.Release()
				}
			}
		}
		boom := errors.New("boom")
		cctx, cancel := context.WithCancel(ctx)
		for _, tc := range []struct {
			name string
			ctx  context.Context
			hook func(string) error
			edit func(*Commit)
		}{
			{name: "error after first table", ctx: ctx, hook: func(string) error { return boom }},
			{name: "cancelled after first table", ctx: cctx, hook: func(string) error { cancel(); return nil }},
			{name: "wrong schema", ctx: ctx, edit: func(c *Commit) {
				c.Records["notes"] = recs(build(t, mem, whsql.Tasks, sys(row{"task_id": "x"}, "src", t1)))
			}},
			{name: "null key", ctx: ctx, edit: func(c *Commit) {
				c.Records["notes"] = recs(build(t, mem, whsql.Notes, sys(row{"note_id": nil}, "src", t1)))
			}},
			{name: "bad window", ctx: ctx, edit: func(c *Commit) { c.Windows[0].Status = "bogus" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tg.hook(s, tc.hook)
				defer tg.hook(s, nil)
				c := failing()
				if tc.edit != nil {
					tc.edit(c)
				}
				err := s.Commit(tc.ctx, c)
				release(c)
				if err == nil {
					t.Fatal("commit succeeded")
				}
				db := tg.db(t, dir)
				got := queryRows(t, db, `SELECT contact_id, name FROM contacts`)
				if want := [][]any{{"c1", "Ann"}}; !reflect.DeepEqual(got, want) {
					t.Errorf("contacts after failed commit (%v) = %v", err, got)
				}
				if n := queryRows(t, db, `SELECT count(*) FROM tasks`)[0][0]; n != int64(0) {
					t.Errorf("tasks after failed commit = %v", n)
				}
				db.Close()
				st := start(t, tg.open(t, dir), "probe-"+strings.ReplaceAll(tc.name, " ", "-"))
				if len(st.Windows) != 0 || len(st.Watermarks) != 1 || !st.Watermarks[0].Value.Equal(t0) {
					t.Errorf("state after failed commit = %+v", st)
				}
			})
		}
		cancel()
	})

	t.Run("StateCommittedWithData", func(t *testing.T) {
		mem, dir := newMem(t), t.TempDir()
		s := tg.open(t, dir)
		if st := start(t, s, "r1"); len(st.Watermarks)+len(st.Windows) != 0 {
			t.Fatalf("fresh state = %+v", st)
		}
		win := Window{Source: "src", LocationID: "loc1", Resource: "contacts", Start: t0.In(cet), End: t1, Status: "open", Cursor: `{"after":"x"}`, RunID: "r1"}
		commit(t, s, &Commit{RunID: "r1", Windows: []Window{win},
			Watermarks: []Watermark{{Source: "src", LocationID: "loc1", Resource: "contacts", Value: t0}},
			Records:    map[string][]arrow.RecordBatch{"contacts": recs(build(t, mem, whsql.Contacts, contact("c1", "Ann", nil, t0)))}})
		win.Status, win.Cursor = "done", ""
		commit(t, s, &Commit{RunID: "r1", Windows: []Window{win, {Source: "src", LocationID: "loc1", Resource: "contacts", Start: t1, End: t2, Status: "open", RunID: "r1"}},
			Watermarks: []Watermark{{Source: "src", LocationID: "loc1", Resource: "contacts", Value: t1}}})
		st := start(t, tg.open(t, dir), "r2")
		wantWins := []Window{
			{Source: "src", LocationID: "loc1", Resource: "contacts", Start: t0, End: t1, Status: "done", RunID: "r1"},
			{Source: "src", LocationID: "loc1", Resource: "contacts", Start: t1, End: t2, Status: "open", RunID: "r1"},
		}
		if !reflect.DeepEqual(st.Windows, wantWins) {
			t.Errorf("windows = %+v\nwant %+v", st.Windows, wantWins)
		}
		if want := []Watermark{{Source: "src", LocationID: "loc1", Resource: "contacts", Value: t1}}; !reflect.DeepEqual(st.Watermarks, want) {
			t.Errorf("watermarks = %+v", st.Watermarks)
		}
		if st, err := tg.open(t, dir).Start(ctx, Run{ID: "r3", Source: "other"}); err != nil || len(st.Watermarks)+len(st.Windows) != 0 {
			t.Errorf("other source's state = %+v, %v", st, err)
		}
	})

	t.Run("RunsRecorded", func(t *testing.T) {
		dir := t.TempDir()
		s := tg.open(t, dir)
		start(t, s, "r1")
		if o, ended := tg.run(t, dir, "r1"); o != "running" || ended {
			t.Errorf("after Start: %q ended=%v", o, ended)
		}
		if err := s.Finish(ctx, RunResult{RunID: "r1", EndedAt: t1, Outcome: "ok", Requests: 7, RateLimited: 1,
			Rows: map[string]int64{"contacts": 3}}); err != nil {
			t.Fatal(err)
		}
		if o, ended := tg.run(t, dir, "r1"); o != "ok" || !ended {
			t.Errorf("after Finish: %q ended=%v", o, ended)
		}
		if err := s.Finish(ctx, RunResult{RunID: "nope", Outcome: "ok"}); err == nil {
			t.Error("Finish of an unknown run succeeded")
		}
	})

	t.Run("SoftDelete", func(t *testing.T) {
		mem, dir := newMem(t), t.TempDir()
		s := tg.open(t, dir)
		start(t, s, "r1")
		commit(t, s, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{"contacts": recs(build(t, mem, whsql.Contacts,
			contact("c1", "Ann", nil, t0), contact("c2", "Bob", nil, t0)))}})
		commit(t, s, &Commit{RunID: "r1", Deletes: []Delete{{Table: "contacts", Source: "src", IDs: []string{"c1", "zz"}, At: t1.In(cet)}}})
		db := tg.db(t, dir)
		got := queryRows(t, db, `SELECT contact_id, _deleted_at FROM contacts ORDER BY contact_id`)
		if want := [][]any{{"c1", t1}, {"c2", nil}}; !reflect.DeepEqual(got, want) {
			t.Errorf("after delete = %v", got)
		}
		if got := queryRows(t, db, `SELECT count(*) FROM contacts_live`); got[0][0] != int64(1) {
			t.Errorf("contacts_live = %v", got)
		}
		db.Close()
		// A newer version replaces the row entirely, _deleted_at included.
		commit(t, s, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{"contacts": recs(build(t, mem, whsql.Contacts,
			contact("c1", "Ann again", nil, t2)))}})
		got = queryRows(t, tg.db(t, dir), `SELECT contact_id, name, _deleted_at FROM contacts ORDER BY contact_id`)
		if want := [][]any{{"c1", "Ann again", nil}, {"c2", "Bob", nil}}; !reflect.DeepEqual(got, want) {
			t.Errorf("after re-insert = %v", got)
		}
	})

	t.Run("ReadableByAnotherProcess", func(t *testing.T) {
		mem, dir := newMem(t), t.TempDir()
		s := tg.open(t, dir)
		start(t, s, "r1")
		commit(t, s, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{
			"contacts":     recs(build(t, mem, whsql.Contacts, contact("c1", "Ann", []string{"x"}, t0))),
			"tasks":        recs(build(t, mem, whsql.Tasks, sys(row{"task_id": "k1"}, "src", t0))),
			"notes":        recs(build(t, mem, whsql.Notes, sys(row{"note_id": "n1"}, "src", t0))),
			"appointments": recs(build(t, mem, whsql.Appointments, sys(row{"appointment_id": "a1"}, "src", t0))),
		}})
		out := helper(t, tg.helperEnv(dir), "count")
		want := "contacts=1 tasks=1 notes=1 appointments=1 rejects=0 contact_tags=1 contact_activity=1"
		if out != want {
			t.Errorf("other process saw %q, want %q", out, want)
		}
	})
}

// helper re-runs the test binary as another process (TestHelperProcess).
func helper(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := execpkg.Command(os.Args[0], append([]string{"-test.run=^TestHelperProcess$", "--"}, args...)...)
	cmd.Env = append(append(os.Environ(), "LOAD_HELPER=1"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	s := string(out)
	if i := strings.Index(s, "RESULT:"); i >= 0 {
		s = s[i+len("RESULT:"):]
		if j := strings.Index(s, "\n"); j >= 0 {
			s = s[:j]
		}
	}
	return strings.TrimSpace(s)
}

// TestHelperProcess is not a test: it is the other process of the tests
// above, selected by LOAD_HELPER. It opens the warehouse read-only and
// counts the rows of each table, or holds the file for a while ("hold").
func TestHelperProcess(t *testing.T) {
	if os.Getenv("LOAD_HELPER") != "1" {
		t.Skip("helper process only")
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	db, err := helperOpen()
	if err != nil {
		fmt.Println("RESULT: open:", err)
		os.Exit(2)
	}
	defer db.Close()
	switch args[0] {
	case "hold":
		d, _ := time.ParseDuration(args[1])
		fmt.Println("RESULT: holding")
		time.Sleep(d)
	case "count":
		var parts []string
		for _, tbl := range []string{"contacts", "tasks", "notes", "appointments", "rejects", "contact_tags", "contact_activity"} {
			var n int64
			if err := db.QueryRow("SELECT count(*) FROM " + tbl).Scan(&n); err != nil {
				fmt.Println("RESULT:", tbl, err)
				os.Exit(2)
			}
			parts = append(parts, fmt.Sprintf("%s=%d", tbl, n))
		}
		fmt.Println("RESULT: " + strings.Join(parts, " "))
	}
	os.Exit(0)
}

func helperOpen() (*sql.DB, error) {
	if p := os.Getenv("LOAD_HELPER_DUCKDB"); p != "" {
		mode := "read_only"
		if os.Getenv("LOAD_HELPER_RW") == "1" {
			mode = "read_write"
		}
		db, err := sql.Open("duckdb", p+"?access_mode="+mode)
		if err != nil {
			return nil, err
		}
		return db, db.Ping()
	}
	if p := os.Getenv("LOAD_HELPER_PARQUET"); p != "" {
		db, err := sql.Open("duckdb", "")
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		views, err := os.ReadFile(filepath.Join(p, "views.sql"))
		if err != nil {
			return nil, err
		}
		if _, err := db.Exec(string(views)); err != nil {
			return nil, err
		}
		return db, nil
	}
	return nil, errors.New("no warehouse given")
}

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
	"slices"
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

	// A first load takes the sinks' fast paths (no stored key): a key
	// staged twice in it must still come out once, newest first.
	t.Run("FirstLoadDuplicateKeys", func(t *testing.T) {
		mem, dir := newMem(t), t.TempDir()
		s := tg.open(t, dir)
		start(t, s, "r1")
		commit(t, s, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{
			"contacts": recs(
				build(t, mem, whsql.Contacts, contact("c1", "Ann new", nil, t2), contact("c1", "Ann old", nil, t1)),
				build(t, mem, whsql.Contacts, contact("c2", "Bob", nil, t1), contact("c1", "Ann older", nil, t0)),
			),
		}})
		commit(t, s, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{
			"contacts": recs(build(t, mem, whsql.Contacts, contact("c3", "Cy", nil, t1), contact("c4", "Di", nil, t1))),
		}})
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		db := tg.db(t, dir)
		got := queryRows(t, db, `SELECT contact_id, name, _first_seen_at = _extracted_at AND _changed_at = _extracted_at FROM contacts ORDER BY contact_id`)
		want := [][]any{{"c1", "Ann new", true}, {"c2", "Bob", true}, {"c3", "Cy", true}, {"c4", "Di", true}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("contacts = %v, want %v", got, want)
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

	t.Run("ChangeColumns", func(t *testing.T) {
		mem, dir := newMem(t), t.TempDir()
		s := tg.open(t, dir)
		start(t, s, "r1")
		t3, t4 := t0.Add(3*time.Hour), t0.Add(4*time.Hour)
		task := func(status string, at time.Time) row {
			return sys(row{"task_id": "k1", "contact_id": "c1", "title": "call", "status": status}, "src", at)
		}
		write := func(at time.Time, cs []row, ts ...row) {
			t.Helper()
			rs := map[string][]arrow.RecordBatch{}
			if len(cs) > 0 {
				rs["contacts"] = recs(build(t, mem, whsql.Contacts, cs...))
			}
			if len(ts) > 0 {
				rs["tasks"] = recs(build(t, mem, whsql.Tasks, ts...))
			}
			commit(t, s, &Commit{RunID: "r1", Records: rs})
		}
		check := func(step string, want [][]any) {
			t.Helper()
			db := tg.db(t, dir)
			defer db.Close()
			got := queryRows(t, db, `SELECT id, _first_seen_at, _changed_at, _extracted_at, _deleted_at FROM (
				SELECT contact_id AS id, * FROM contacts UNION ALL BY NAME SELECT task_id AS id, * FROM tasks) ORDER BY id`)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: (id, first seen, changed, extracted, deleted) = %v, want %v", step, got, want)
			}
		}
		write(t0, []row{contact("c1", "Ann", []string{"a", "b"}, t0), contact("c2", "Bob", []string{"x"}, t0)}, task("pending", t0))
		check("first write", [][]any{{"c1", t0, t0, t0, nil}, {"c2", t0, t0, t0, nil}, {"k1", t0, t0, t0, nil}})
		// Re-read: c1 and the task unchanged (status is derived from the
		// clock and not compared), c2's tags (a LIST) changed.
		write(t1, []row{contact("c1", "Ann", []string{"a", "b"}, t1), contact("c2", "Bob", []string{"x", "y"}, t1)}, task("overdue", t1))
		check("re-read", [][]any{{"c1", t0, t0, t1, nil}, {"c2", t0, t1, t1, nil}, {"k1", t0, t0, t1, nil}})
		write(t2, []row{contact("c1", "Ann B", []string{"a", "b"}, t2)})
		// An older replay changes nothing.
		write(t1, []row{contact("c1", "stale", nil, t1)})
		commit(t, s, &Commit{RunID: "r1", Deletes: []Delete{{Table: "contacts", Source: "src", IDs: []string{"c2"}, At: t3}}})
		check("changed and deleted", [][]any{{"c1", t0, t2, t2, nil}, {"c2", t0, t3, t1, t3}, {"k1", t0, t0, t1, nil}})
		db := tg.db(t, dir)
		got := queryRows(t, db, `SELECT table_name, id, contact_id, kind, changed_at, run_id FROM changes ORDER BY table_name, id`)
		want := [][]any{
			{"contacts", "c1", "c1", "changed", t2, "run-test"},
			{"contacts", "c2", "c2", "deleted", t3, nil},
			{"tasks", "k1", "c1", "new", t0, nil},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("changes = %v, want %v", got, want)
		}
		got = queryRows(t, db, `SELECT id FROM changes_since(?::TIMESTAMPTZ)`, t2)
		if want := [][]any{{"c1"}, {"c2"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("changes_since(t2) = %v, want %v", got, want)
		}
		db.Close()
		// The same values again undelete the key: a change.
		write(t4, []row{contact("c2", "Bob", []string{"x", "y"}, t4)})
		check("undeleted", [][]any{{"c1", t0, t2, t2, nil}, {"c2", t0, t4, t4, nil}, {"k1", t0, t0, t1, nil}})
	})

	t.Run("Store", func(t *testing.T) {
		mem, dir := newMem(t), t.TempDir()
		s := tg.open(t, dir)
		if _, err := s.Start(ctx, Run{ID: "r1", Source: "src", Command: "run", StartedAt: t0}); err != nil {
			t.Fatal(err)
		}
		// A contact in loc (loc1 unless given), updated upstream at upd.
		kc := func(id string, upd any, at time.Time, loc ...string) row {
			r := sys(row{"contact_id": id, "updated_at": upd}, "src", at)
			if len(loc) > 0 {
				r[whsql.ColLocationID] = loc[0]
			}
			return r
		}
		u := func(min int) time.Time { return t0.Add(-time.Duration(min) * time.Minute) }
		win1 := Window{Source: "src", LocationID: "loc1", Resource: "contacts", Start: t0, End: t1, Status: "done", RunID: "r1", Kind: "run"}
		win2 := Window{Source: "src", LocationID: "loc1", Resource: "contacts", Start: t1, End: t2, Status: "open", Cursor: `{"after":"c4"}`, RunID: "r1", Kind: "run"}
		commit(t, s, &Commit{RunID: "r1",
			Records: map[string][]arrow.RecordBatch{
				"contacts": recs(build(t, mem, whsql.Contacts, kc("c1", u(50), t0), kc("c2", u(40), t0), kc("c3", u(30), t0),
					kc("c4", u(20), t0), kc("c6", nil, t0), kc("d1", u(10), t0, "loc2"))),
				"tasks": recs(build(t, mem, whsql.Tasks, sys(row{"task_id": "k3", "contact_id": "c3"}, "src", t0),
					sys(row{"task_id": "k4", "contact_id": "c4"}, "src", t0))),
				"rejects": recs(build(t, mem, whsql.Rejects,
					row{"resource": "contacts", "reason": "bad", "raw_bytes": int64(1), "_source": "src", "_location_id": "loc1", "_run_id": "r1", "_extracted_at": t0},
					row{"resource": "contacts", "reason": "bad", "raw_bytes": int64(1), "_source": "src", "_location_id": "loc2", "_run_id": "r1", "_extracted_at": t0},
					row{"resource": "contacts", "reason": "bad", "raw_bytes": int64(1), "_source": "other", "_location_id": "loc1", "_run_id": "r1", "_extracted_at": t0})),
			},
			Watermarks: []Watermark{{Source: "src", LocationID: "loc1", Resource: "contacts", Value: t0}},
			Windows:    []Window{win1},
			Swept:      []Swept{{Source: "src", LocationID: "loc1", ContactIDs: []string{"c1", "c2", "c3"}, At: t0, RunID: "r1"}},
		})
		commit(t, s, &Commit{RunID: "r1",
			Records: map[string][]arrow.RecordBatch{"contacts": recs(build(t, mem, whsql.Contacts,
				kc("c1", u(5), t1),                     // updated
				kc("c2", u(1), t0.Add(-time.Minute)))), // older than stored: dropped
			},
			Deletes: []Delete{{Table: "contacts", Source: "src", IDs: []string{"c3"}, At: t1},
				{Table: "tasks", Source: "src", IDs: []string{"c3"}, At: t1, ByContact: true}},
			Watermarks: []Watermark{{Source: "src", LocationID: "loc1", Resource: "contacts", Value: t1}},
			Windows:    []Window{win2},
			Swept: []Swept{{Source: "src", LocationID: "loc1", ContactIDs: []string{"c1"}, At: t1, RunID: "r1"},
				{Source: "src", LocationID: "loc1", ContactIDs: []string{"c4", "c4"}, At: t0.Add(30 * time.Minute), RunID: "r1"}},
			Reconciled: []Reconcile{{Source: "src", LocationID: "loc1", At: t1, RunID: "r1", Listed: 5, Deleted: 1},
				{Source: "other", LocationID: "loc9", At: t2, RunID: "r1", Listed: 1}},
		})
		commit(t, s, &Commit{RunID: "r1",
			// A contact written and deleted by one commit is deleted.
			Records: map[string][]arrow.RecordBatch{"contacts": recs(build(t, mem, whsql.Contacts, kc("c5", u(2), t1)))},
			Deletes: []Delete{{Table: "contacts", Source: "src", IDs: []string{"c5"}, At: t1}},
			// A sweep replaces the contact's last one, even with an earlier time.
			Swept: []Swept{{Source: "src", LocationID: "loc1", ContactIDs: []string{"c2"}, At: u(60), RunID: "r1"}},
			// An older reconcile does not hide the latest.
			Reconciled: []Reconcile{{Source: "src", LocationID: "loc1", At: t0, RunID: "r1", Listed: 5}},
		})
		if err := s.Finish(ctx, RunResult{RunID: "r1", EndedAt: t1, Outcome: "ok", Requests: 5}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Start(ctx, Run{ID: "r2", Source: "src", Command: "backfill", StartedAt: t2}); err != nil {
			t.Fatal(err)
		}

		want := storeAnswers{
			Live: map[string]map[string]int64{
				"loc1": {"c1": u(5).UnixMilli(), "c2": u(40).UnixMilli(), "c4": u(20).UnixMilli(), "c6": 0},
				"loc2": {"d1": u(10).UnixMilli()},
				"loc3": {},
			},
			Candidates: map[string]candidates{
				"all":          {IDs: []string{"c6", "c2", "c4", "c1"}, Live: 4},
				"first 2":      {IDs: []string{"c6", "c2"}, Live: 4},
				"count only":   {Live: 4},
				"before t0":    {IDs: []string{"c6", "c2"}, Live: 4},
				"loc2":         {IDs: []string{"d1"}, Live: 1},
				"other source": {},
			},
			LastReconcile: map[string]time.Time{"loc1": t1, "loc2": {}},
			Status: &Status{
				LastRun: &RunInfo{ID: "r2", Command: "backfill", Outcome: "running", StartedAt: t2},
				Locations: []LocationStatus{
					{LocationID: "loc1", Watermark: t1, Windows: []Window{win1, win2}, Rejects: 1,
						Live: 4, Deleted: 2, Swept: 3, OldestSweep: u(60), LastReconcile: t1},
					{LocationID: "loc2", Rejects: 1, Live: 1},
				},
			},
		}
		if got := readStore(t, s); !reflect.DeepEqual(got, want) {
			t.Errorf("store answers:\n got %v\nwant %v", got, want)
		}
		// The children of a contact deleted by contact_id are deleted too.
		db := tg.db(t, dir)
		got := queryRows(t, db, `SELECT task_id, _deleted_at FROM tasks ORDER BY task_id`)
		if w := [][]any{{"k3", t1}, {"k4", nil}}; !reflect.DeepEqual(got, w) {
			t.Errorf("tasks = %v, want %v", got, w)
		}
		db.Close()
		// The live children of given contacts: k3 is deleted; other
		// locations and sources have none; no contacts, no rows.
		for _, lc := range []struct {
			source, loc string
			contacts    []string
			want        []string
		}{
			{"src", "loc1", []string{"c3", "c4", "c9"}, []string{"k4"}},
			{"src", "loc1", []string{"c3"}, nil},
			{"src", "loc2", []string{"c4"}, nil},
			{"other", "loc1", []string{"c4"}, nil},
			{"src", "loc1", nil, nil},
		} {
			got, err := s.LiveChildren(ctx, lc.source, lc.loc, "tasks", lc.contacts)
			if err != nil || !reflect.DeepEqual(got, lc.want) {
				t.Errorf("LiveChildren(%s, %s, tasks, %v) = %v, %v; want %v", lc.source, lc.loc, lc.contacts, got, err, lc.want)
			}
		}
		if _, err := s.LiveChildren(ctx, "src", "loc1", "contacts", []string{"c1"}); err == nil {
			t.Error("LiveChildren of contacts: no error")
		}

		// A failed commit changes none of the answers.
		tg.hook(s, func(string) error { return errors.New("boom") })
		c := &Commit{RunID: "r2",
			Records: map[string][]arrow.RecordBatch{"contacts": recs(build(t, mem, whsql.Contacts, kc("c7", u(1), t2), kc("c1", u(1), t2)))},
			Deletes: []Delete{{Table: "contacts", Source: "src", IDs: []string{"c2"}, At: t2}},
			Swept:   []Swept{{Source: "src", LocationID: "loc1", ContactIDs: []string{"c6"}, At: t2, RunID: "r2"}},
			Reconciled: []Reconcile{{Source: "src", LocationID: "loc1", At: t2, RunID: "r2"},
				{Source: "src", LocationID: "loc2", At: t2, RunID: "r2"}},
			Watermarks: []Watermark{{Source: "src", LocationID: "loc1", Resource: "contacts", Value: t2}},
		}
		err := s.Commit(ctx, c)
		for _, r := range c.Records["contacts"] {
			r.Release()
		}
		tg.hook(s, nil)
		if err == nil {
			t.Fatal("commit succeeded")
		}
		if got := readStore(t, s); !reflect.DeepEqual(got, want) {
			t.Errorf("store answers after a failed commit:\n got %v\nwant %v", got, want)
		}
		// The state survives reopening the warehouse.
		if got := readStore(t, tg.open(t, dir)); !reflect.DeepEqual(got, want) {
			t.Errorf("store answers after reopening:\n got %v\nwant %v", got, want)
		}
	})

	// EachLiveContact yields the live contacts of one location and source,
	// each once, whatever the ids hold (their byte order is not a case- or
	// accent-aware one, and a prefix sorts before its extensions);
	// soft-deleted contacts, other locations and other sources are left
	// out; fn's error stops it.
	t.Run("EachLiveContact", func(t *testing.T) {
		mem, dir := newMem(t), t.TempDir()
		s := tg.open(t, dir)
		start(t, s, "r1")
		upd := t0.Add(-time.Hour)
		kc := func(id, source, loc string) row {
			r := sys(row{"contact_id": id, "updated_at": upd}, source, t0)
			r[whsql.ColLocationID] = loc
			return r
		}
		ids := []string{"z", "a", "Z", "é", "e", "ab", "a/b", "a%2F", "50%", "x y", "q?r", "é✓", "~", "A", "0", "a b", "ñ", "中", "😀", "-"}
		var rows []row
		for _, id := range ids {
			rows = append(rows, kc(id, "src", "loc1"))
		}
		rows = append(rows, kc("gone", "src", "loc1"), kc("other-loc", "src", "loc2"), kc("other-src", "other", "loc1"))
		noUpdate := kc("no-update", "src", "loc1")
		noUpdate["updated_at"] = nil
		rows = append(rows, noUpdate)
		commit(t, s, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{"contacts": recs(build(t, mem, whsql.Contacts, rows...))},
			Deletes: []Delete{{Table: "contacts", Source: "src", IDs: []string{"gone"}, At: t0}}})
		type live struct {
			ID string
			Ms int64
		}
		each := func(source, loc string) []live {
			t.Helper()
			var got []live
			if err := s.EachLiveContact(ctx, source, loc, func(id string, ms int64) error {
				got = append(got, live{id, ms})
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(got, func(a, b live) int { return strings.Compare(a.ID, b.ID) })
			return got
		}
		var want []live
		for _, id := range append(slices.Clone(ids), "no-update") {
			ms := upd.UnixMilli()
			if id == "no-update" {
				ms = 0
			}
			want = append(want, live{id, ms})
		}
		slices.SortFunc(want, func(a, b live) int { return strings.Compare(a.ID, b.ID) })
		if got := each("src", "loc1"); !reflect.DeepEqual(got, want) {
			t.Errorf("loc1 = %v\nwant %v", got, want)
		}
		if got, want := each("src", "loc2"), []live{{"other-loc", upd.UnixMilli()}}; !reflect.DeepEqual(got, want) {
			t.Errorf("loc2 = %v, want %v", got, want)
		}
		if got, want := each("other", "loc1"), []live{{"other-src", upd.UnixMilli()}}; !reflect.DeepEqual(got, want) {
			t.Errorf("other source = %v, want %v", got, want)
		}
		if got := each("src", "loc3"); got != nil {
			t.Errorf("loc3 = %v, want none", got)
		}
		stop := errors.New("stop")
		n := 0
		err := s.EachLiveContact(ctx, "src", "loc1", func(string, int64) error {
			n++
			if n == 3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || n != 3 {
			t.Errorf("fn's error after %d calls: %v, want stop after 3", n, err)
		}
	})

	t.Run("StoreManySweeps", func(t *testing.T) {
		mem, dir := newMem(t), t.TempDir()
		s := tg.open(t, dir)
		start(t, s, "r1")
		var ids []string
		for i := range 40 {
			ids = append(ids, fmt.Sprintf("c%02d", i))
		}
		var rows []row
		for _, id := range ids {
			rows = append(rows, contact(id, id, nil, t0))
		}
		commit(t, s, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{"contacts": recs(build(t, mem, whsql.Contacts, rows...))}})
		// One sweep per commit, each of the next contact, each later than
		// the last; then the first 5 again, latest of all.
		for i := range 35 {
			commit(t, s, &Commit{RunID: "r1", Swept: []Swept{{Source: "src", LocationID: "loc1", ContactIDs: ids[i : i+1], At: t0.Add(time.Duration(i) * time.Second), RunID: "r1"}}})
		}
		commit(t, s, &Commit{RunID: "r1", Swept: []Swept{{Source: "src", LocationID: "loc1", ContactIDs: ids[:5], At: t1, RunID: "r1"}}})
		for _, s := range []Sink{s, tg.open(t, dir)} {
			got, live, err := s.SweepCandidates(ctx, "src", "loc1", 8, t2)
			if want := append(slices.Clone(ids[35:]), ids[5:8]...); err != nil || live != 40 || !reflect.DeepEqual(got, want) {
				t.Errorf("candidates = %v, %d, %v; want %v, 40", got, live, err, want)
			}
			st, err := s.Status(ctx, "src")
			if err != nil {
				t.Fatal(err)
			}
			if l := st.Locations[0]; l.Swept != 35 || !l.OldestSweep.Equal(t0.Add(5*time.Second)) {
				t.Errorf("status: swept %d, oldest %v", l.Swept, l.OldestSweep)
			}
		}
	})

	t.Run("Retries", func(t *testing.T) {
		mem, dir := newMem(t), t.TempDir()
		s := tg.open(t, dir)
		start(t, s, "r1")
		rt := func(loc, id, res, rec, reason, run string, at time.Time) Retry {
			return Retry{Source: "src", LocationID: loc, ContactID: id, Resource: res, RecordID: rec, Reason: reason, RunID: run, At: at,
				Attempts: 99, FirstAt: t2, LastAt: t2} // read-back fields are ignored
		}
		us := t0.Add(time.Microsecond)
		other := rt("loc1", "c1", "contacts", "c1", "other source", "r1", t0)
		other.Source = "other"
		commit(t, s, &Commit{RunID: "r1", Retries: []Retry{
			rt("loc1", "c2", "contacts", "c2", "bad email", "r1", us.Add(500*time.Nanosecond).In(cet)),
			rt("loc1", "c1", "contacts", "c1", "first of two", "r1", t0),
			rt("loc1", "c1", "contacts", "", "bad phone", "r1", t0.In(cet)), // same key, same commit: one attempt
			rt("loc2", "d1", "notes", "n1", "", "r1", t0),
			other,
		}})
		commit(t, s, &Commit{RunID: "r2", Retries: []Retry{
			rt("loc1", "c1", "tasks", "k1", "bad due date", "r2", t1),
			rt("loc1", "c3", "contacts", "c3", "bad email", "r2", t1),
			rt("loc1", "c0", "contacts", "c0", "bad email", "r2", t1),
		}})
		commit(t, s, &Commit{RunID: "r3",
			// Done before Retries: c3 starts over.
			RetriesDone: []RetryKey{{"src", "loc1", "c0"}, {"src", "loc1", "c3"}, {"src", "loc1", "zz"}, {"src", "loc9", "c2"}},
			Retries: []Retry{
				rt("loc1", "c1", "appointments", "a1", "bad time", "r3", t2),
				rt("loc1", "c3", "notes", "n3", "", "r3", t2),
			}})
		want := map[string][]Retry{
			"loc1 max 3": {
				{Source: "src", LocationID: "loc1", ContactID: "c2", Resource: "contacts", RecordID: "c2", Reason: "bad email", RunID: "r1", Attempts: 1, FirstAt: us, LastAt: us},
				{Source: "src", LocationID: "loc1", ContactID: "c3", Resource: "notes", RecordID: "n3", RunID: "r3", Attempts: 1, FirstAt: t2, LastAt: t2},
			},
			"loc1 max 4": {
				{Source: "src", LocationID: "loc1", ContactID: "c1", Resource: "appointments", RecordID: "a1", Reason: "bad time", RunID: "r3", Attempts: 3, FirstAt: t0, LastAt: t2},
				{Source: "src", LocationID: "loc1", ContactID: "c2", Resource: "contacts", RecordID: "c2", Reason: "bad email", RunID: "r1", Attempts: 1, FirstAt: us, LastAt: us},
				{Source: "src", LocationID: "loc1", ContactID: "c3", Resource: "notes", RecordID: "n3", RunID: "r3", Attempts: 1, FirstAt: t2, LastAt: t2},
			},
			"loc1 max 0": nil,
			"loc2 max 3": {{Source: "src", LocationID: "loc2", ContactID: "d1", Resource: "notes", RecordID: "n1", RunID: "r1", Attempts: 1, FirstAt: t0, LastAt: t0}},
			"loc9 max 3": nil,
			"other loc1 max 3": {{Source: "other", LocationID: "loc1", ContactID: "c1", Resource: "contacts", RecordID: "c1", Reason: "other source", RunID: "r1",
				Attempts: 1, FirstAt: t0, LastAt: t0}},
		}
		want["status loc1"] = want["loc1 max 4"]
		want["status loc2"] = want["loc2 max 3"]
		if got := retryAnswers(t, s); !reflect.DeepEqual(got, want) {
			t.Errorf("retries:\n got %v\nwant %v", got, want)
		}

		// A failed commit changes nothing.
		tg.hook(s, func(string) error { return errors.New("boom") })
		c := &Commit{RunID: "r4",
			Records:     map[string][]arrow.RecordBatch{"contacts": recs(build(t, mem, whsql.Contacts, contact("c9", "x", nil, t2)))},
			RetriesDone: []RetryKey{{"src", "loc1", "c2"}},
			Retries:     []Retry{rt("loc1", "c1", "contacts", "c1", "again", "r4", t2), rt("loc1", "c5", "contacts", "c5", "new", "r4", t2)},
		}
		err := s.Commit(ctx, c)
		for _, r := range c.Records["contacts"] {
			r.Release()
		}
		tg.hook(s, nil)
		if err == nil {
			t.Fatal("commit succeeded")
		}
		if got := retryAnswers(t, s); !reflect.DeepEqual(got, want) {
			t.Errorf("retries after a failed commit:\n got %v\nwant %v", got, want)
		}
		if err := s.Commit(ctx, &Commit{RunID: "r4", Retries: []Retry{{Source: "src", LocationID: "loc1", ContactID: "c7"}}}); err == nil {
			t.Error("a retry without At was committed")
		}
		s = tg.open(t, dir)
		if got := retryAnswers(t, s); !reflect.DeepEqual(got, want) {
			t.Errorf("retries after reopening:\n got %v\nwant %v", got, want)
		}
		// Analysts read them as a table.
		db := tg.db(t, dir)
		rows := queryRows(t, db, `SELECT source, location_id, contact_id, resource, record_id, reason, run_id, attempts, first_at, last_at
			FROM retries ORDER BY source DESC, location_id, first_at, contact_id`)
		wantRows := [][]any{
			{"src", "loc1", "c1", "appointments", "a1", "bad time", "r3", int32(3), t0, t2},
			{"src", "loc1", "c2", "contacts", "c2", "bad email", "r1", int32(1), us, us},
			{"src", "loc1", "c3", "notes", "n3", nil, "r3", int32(1), t2, t2},
			{"src", "loc2", "d1", "notes", "n1", nil, "r1", int32(1), t0, t0},
			{"other", "loc1", "c1", "contacts", "c1", "other source", "r1", int32(1), t0, t0},
		}
		if !reflect.DeepEqual(rows, wantRows) {
			t.Errorf("retries table:\n got %v\nwant %v", rows, wantRows)
		}
		db.Close()

		// Over the cap, the rows with the most attempts go first, then the
		// least recently attempted; other locations keep theirs.
		defer func(n int) { retryCap = n }(retryCap)
		retryCap = 3
		t3 := t2.Add(time.Hour)
		commit(t, s, &Commit{RunID: "r5", Retries: []Retry{rt("loc1", "c5", "contacts", "c5", "", "r5", t3), rt("loc1", "c4", "contacts", "c4", "", "r5", t3)}})
		got, err := s.PendingRetries(ctx, "src", "loc1", 10)
		var ids []string
		for _, r := range got {
			ids = append(ids, r.ContactID)
		}
		if want := []string{"c3", "c4", "c5"}; err != nil || !reflect.DeepEqual(ids, want) {
			t.Errorf("after the cap: %v, %v; want %v", ids, err, want)
		}
		if got, err := s.PendingRetries(ctx, "src", "loc2", 10); err != nil || len(got) != 1 {
			t.Errorf("loc2 after loc1's cap: %v, %v", got, err)
		}
	})

	t.Run("MappingChangeMigratesInPlace", func(t *testing.T) {
		mem, dir := newMem(t), t.TempDir()
		s := tg.open(t, dir)
		start(t, s, "r1")
		commit(t, s, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{
			"contacts": recs(build(t, mem, whsql.Contacts,
				sys(row{"contact_id": "c1", "website": "acme.example"}, "src", t0),
				sys(row{"contact_id": "c2", "website": "beta.example"}, "src", t0))),
		}})
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		// A user mapping renames a column and adds two typed ones.
		m, err := whsql.DefaultMapping().Merge(&whsql.Mapping{Tables: map[string]*whsql.TableMap{"contacts": {Columns: []whsql.Column{
			{Name: "homepage", Was: "website"},
			{Name: "tier", CustomField: "cfTier", Type: whsql.TypeString},
			{Name: "score", CustomField: "cfScore", Type: whsql.TypeFloat},
		}}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := whsql.Use(m); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { whsql.Use(whsql.DefaultMapping()) })
		s = tg.open(t, dir)
		start(t, s, "r2")
		commit(t, s, &Commit{RunID: "r2", Records: map[string][]arrow.RecordBatch{
			"contacts": recs(build(t, mem, whsql.Contacts,
				sys(row{"contact_id": "c3", "homepage": "gamma.example", "tier": "gold", "score": 9.5}, "src", t1))),
		}})
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		got := queryRows(t, tg.db(t, dir), `SELECT contact_id, homepage, tier, score, email_normalized FROM contacts ORDER BY contact_id`)
		want := [][]any{{"c1", "acme.example", nil, nil, nil}, {"c2", "beta.example", nil, nil, nil}, {"c3", "gamma.example", "gold", 9.5, nil}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("after the mapping change: %v, want %v", got, want)
		}
	})

	t.Run("CustomFieldsReplacedByContact", func(t *testing.T) {
		cf := func(contact, field, v string, at time.Time) row {
			return sys(row{"contact_id": contact, "field_id": field, "value_text": v, "value_json": `"` + v + `"`}, "src", at)
		}
		// Each case commits c1 and c2 with values, then c1 (and an older
		// c2) again with the values given; c1's values are replaced as a
		// whole, c2's stay.
		for _, c := range []struct {
			name  string
			again []row
			want  [][]any
		}{
			{"one removed", []row{cf("c1", "f1", "a2", t1)}, [][]any{{"c1", "f1", "a2"}, {"c2", "f1", "x"}}},
			{"all removed", nil, [][]any{{"c2", "f1", "x"}}},
		} {
			t.Run(c.name, func(t *testing.T) {
				mem, dir := newMem(t), t.TempDir()
				s := tg.open(t, dir)
				start(t, s, "r1")
				commit(t, s, &Commit{RunID: "r1", Records: map[string][]arrow.RecordBatch{
					"contacts": recs(build(t, mem, whsql.Contacts, contact("c1", "Ann", nil, t0), contact("c2", "Bob", nil, t0))),
					"contact_custom_fields": recs(build(t, mem, whsql.ContactCustomFields,
						cf("c1", "f1", "a", t0), cf("c1", "f2", "b", t0), cf("c2", "f1", "x", t0))),
				}})
				again := map[string][]arrow.RecordBatch{
					"contacts": recs(build(t, mem, whsql.Contacts, contact("c1", "Ann", nil, t1), contact("c2", "Bob", nil, t0.Add(-time.Hour)))),
				}
				if c.again != nil {
					again["contact_custom_fields"] = recs(build(t, mem, whsql.ContactCustomFields, c.again...))
				}
				commit(t, s, &Commit{RunID: "r1", Records: again})
				if err := s.Close(ctx); err != nil {
					t.Fatal(err)
				}
				got := queryRows(t, tg.db(t, dir), `SELECT contact_id, field_id, value_text FROM contact_custom_fields ORDER BY ALL`)
				if !reflect.DeepEqual(got, c.want) {
					t.Errorf("custom field values %v, want %v", got, c.want)
				}
			})
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

// storeAnswers is what a Store answers about the warehouse of the Store
// test, all times in UTC.
type storeAnswers struct {
	Live          map[string]map[string]int64 // by location of source src
	Candidates    map[string]candidates
	LastReconcile map[string]time.Time
	Status        *Status
}

func (a storeAnswers) String() string {
	return fmt.Sprintf("live %v\ncandidates %+v\nlast reconcile %v\nstatus %+v %+v", a.Live, a.Candidates, a.LastReconcile, a.Status.LastRun, a.Status.Locations)
}

type candidates struct {
	IDs  []string
	Live int
}

func readStore(t *testing.T, s Store) storeAnswers {
	t.Helper()
	ctx := context.Background()
	a := storeAnswers{Live: map[string]map[string]int64{}, Candidates: map[string]candidates{}, LastReconcile: map[string]time.Time{}}
	for _, loc := range []string{"loc1", "loc2", "loc3"} {
		m, err := liveContacts(ctx, s, "src", loc)
		if err != nil {
			t.Fatal(err)
		}
		a.Live[loc] = m
	}
	for name, q := range map[string]struct {
		source, loc string
		n           int
		before      time.Time
	}{
		"all": {"src", "loc1", 10, t2}, "first 2": {"src", "loc1", 2, t2}, "count only": {"src", "loc1", 0, t2},
		"before t0": {"src", "loc1", 10, t0}, "loc2": {"src", "loc2", 10, t2}, "other source": {"other", "loc1", 10, t2},
	} {
		ids, live, err := s.SweepCandidates(ctx, q.source, q.loc, q.n, q.before)
		if err != nil {
			t.Fatal(err)
		}
		a.Candidates[name] = candidates{ids, live}
	}
	for _, loc := range []string{"loc1", "loc2"} {
		at, err := s.LastReconcile(ctx, "src", loc)
		if err != nil {
			t.Fatal(err)
		}
		a.LastReconcile[loc] = at.UTC()
	}
	st, err := s.Status(ctx, "src")
	if err != nil {
		t.Fatal(err)
	}
	if r := st.LastRun; r != nil {
		r.StartedAt, r.EndedAt = r.StartedAt.UTC(), r.EndedAt.UTC()
	}
	for i := range st.Locations {
		l := &st.Locations[i]
		l.Watermark, l.OldestSweep, l.LastReconcile = l.Watermark.UTC(), l.OldestSweep.UTC(), l.LastReconcile.UTC()
		for j := range l.Windows {
			l.Windows[j].Start, l.Windows[j].End = l.Windows[j].Start.UTC(), l.Windows[j].End.UTC()
		}
	}
	a.Status = st
	return a
}

// retryAnswers is what s answers about retries in the Retries test: its
// pending retries by query and its Status's retries by location.
func retryAnswers(t *testing.T, s Store) map[string][]Retry {
	t.Helper()
	ctx := context.Background()
	out := map[string][]Retry{}
	for _, q := range []struct {
		source, loc string
		max         int
	}{{"src", "loc1", 3}, {"src", "loc1", 4}, {"src", "loc1", 0}, {"src", "loc2", 3}, {"src", "loc9", 3}, {"other", "loc1", 3}} {
		rs, err := s.PendingRetries(ctx, q.source, q.loc, q.max)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("%s max %d", q.loc, q.max)
		if q.source != "src" {
			name = q.source + " " + name
		}
		out[name] = rs
	}
	st, err := s.Status(ctx, "src")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range st.Locations {
		out["status "+l.LocationID] = l.Retries
	}
	return out
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
		if _, err := db.Exec("SET file_search_path = " + sqlString(p) + ";\n" + string(views)); err != nil {
			return nil, err
		}
		return db, nil
	}
	return nil, errors.New("no warehouse given")
}

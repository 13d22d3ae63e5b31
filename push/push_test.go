package push

import (
	"bytes"
	"context"
	dsql "database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/pipeline"
	whsql "github.com/contacts-etl/contacts-etl/sql"
)

const testToken = "pit-push-test"

// env is a simulator of one location and a DuckDB warehouse filled by a run.
type env struct {
	t    *testing.T
	srv  *sim.Server
	base string
	path string
	loc  string
}

func newEnv(t *testing.T, contacts int, scopes ...string) *env {
	t.Helper()
	if scopes == nil {
		scopes = []string{api.ScopeContactsRO, api.ScopeContactsWrite}
	}
	probe := sim.New(sim.Config{Locations: 1})
	loc := probe.Locations()[0]
	// The first contacts have ids a URL path must escape (/, %, space, ?, #, …).
	srv := sim.New(sim.Config{Seed: 7, Contacts: contacts, Locations: 1, OddIDs: min(contacts, 8),
		StaticTokens: map[string]sim.StaticToken{testToken: {LocationID: loc, Scopes: scopes}}})
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e := &env{t: t, srv: srv, base: base, path: filepath.Join(t.TempDir(), "w.duckdb"), loc: loc}
	sink, err := pipeline.OpenSink(pipeline.WarehouseDuckDB, e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(context.Background())
	j := pipeline.NewJob(settings(), e.locations(), sink, nil)
	j.Options.Full = true
	if _, err := pipeline.Run(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	return e
}

func settings() pipeline.Settings {
	return pipeline.Settings{Source: "sim", Command: "run", PageLimit: 100, Concurrency: 4, Children: nil,
		BatchRows: 500, CommitRows: 1000, Workers: 1, Options: pipeline.DefaultOptions()}
}

func (e *env) locations() []pipeline.Location {
	var out []pipeline.Location
	for _, c := range e.clients() {
		out = append(out, pipeline.Location{Client: c})
	}
	return out
}

func (e *env) clients() []*extract.Client {
	cs, err := pipeline.Clients([]string{e.loc}, map[string]oauth2.TokenSource{e.loc: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: testToken})},
		pipeline.ClientOptions{BaseURL: e.base, Concurrency: 4, RateMax: 1_000_000, RateInterval: time.Second, MaxRetries: 3})
	if err != nil {
		e.t.Fatal(err)
	}
	return cs
}

func (e *env) config(action, query string) Config {
	s := settings()
	s.Command = "push"
	return Config{Source: "sim", Action: action, Query: query, Kind: pipeline.WarehouseDuckDB, Path: e.path,
		Clients: e.clients(), Batch: 20, ReadBack: s}
}

func (e *env) push(action, query string) Result {
	e.t.Helper()
	res, err := Run(context.Background(), e.config(action, query))
	if err != nil {
		e.t.Fatalf("push %s: %v", action, err)
	}
	return res
}

func (e *env) db() *dsql.DB {
	db, err := dsql.Open("duckdb", e.path+"?access_mode=read_only")
	if err != nil {
		e.t.Fatal(err)
	}
	return db
}

func (e *env) strings(q string, args ...any) []string {
	e.t.Helper()
	db := e.db()
	defer db.Close()
	rows, err := db.Query(q, args...)
	if err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func (e *env) truth() map[string]sim.ContactTruth {
	m := map[string]sim.ContactTruth{}
	for _, c := range e.srv.Truth(e.loc) {
		m[c.Contact.ID] = c
	}
	return m
}

// firstContacts returns n live contact ids of the warehouse, sorted.
func (e *env) firstContacts(n int) []string {
	return e.strings(fmt.Sprintf(`SELECT contact_id FROM contacts WHERE _deleted_at IS NULL ORDER BY contact_id LIMIT %d`, n))
}

func inList(ids []string) string { return "('" + strings.Join(ids, "','") + "')" }

func (e *env) confirmed(action string) int {
	return len(e.strings(`SELECT action_key FROM actions WHERE action = ? AND status = 'confirmed'`, action))
}

func TestActionsApplyOnceAndReadBack(t *testing.T) {
	e := newEnv(t, 40)
	ids := e.firstContacts(5)
	in := inList(ids)

	t.Run("add-note", func(t *testing.T) {
		q := `SELECT contact_id, 'Follow-up: call back ' || contact_id AS body FROM contacts WHERE contact_id IN ` + in
		res := e.push(AddNote, q)
		if res.Confirmed != 5 {
			t.Fatalf("confirmed %d, want 5 (%+v)", res.Confirmed, res)
		}
		tr := e.truth()
		for _, id := range ids {
			n := 0
			for _, nt := range tr[id].Notes {
				if nt.Body == "Follow-up: call back "+id {
					n++
				}
			}
			if n != 1 {
				t.Errorf("contact %s has %d such notes, want 1", id, n)
			}
		}
		if got := e.strings(`SELECT note_id FROM notes WHERE content LIKE 'Follow-up: call back %'`); len(got) != 5 {
			t.Errorf("warehouse has %d pushed notes after the read-back, want 5", len(got))
		}
		if e.confirmed(AddNote) != 5 {
			t.Errorf("actions table: %d confirmed", e.confirmed(AddNote))
		}
		before := e.srv.Writes().Applied
		again := e.push(AddNote, q)
		if again.Skipped != 5 || e.srv.Writes().Applied != before {
			t.Errorf("repeat push: %+v, applied %d → %d", again, before, e.srv.Writes().Applied)
		}
	})

	t.Run("add-tags and remove-tags", func(t *testing.T) {
		e.push(AddTags, `SELECT contact_id, ['VIP-Pushed', 'booked-twice'] AS tags FROM contacts WHERE contact_id IN `+in)
		tr := e.truth()
		for _, id := range ids {
			if !slices.Contains(tr[id].Contact.Tags, "vip-pushed") || !slices.Contains(tr[id].Contact.Tags, "booked-twice") {
				t.Errorf("contact %s tags %v", id, tr[id].Contact.Tags)
			}
		}
		got := e.strings(`SELECT contact_id FROM contacts WHERE list_contains(tags, 'vip-pushed') ORDER BY 1`)
		if !slices.Equal(got, ids) {
			t.Errorf("warehouse vip contacts %v, want %v", got, ids)
		}
		e.push(RemoveTags, `SELECT contact_id, 'vip-pushed' AS tags FROM contacts WHERE contact_id IN `+in)
		tr = e.truth()
		for _, id := range ids {
			if slices.Contains(tr[id].Contact.Tags, "vip-pushed") || !slices.Contains(tr[id].Contact.Tags, "booked-twice") {
				t.Errorf("after remove: contact %s tags %v", id, tr[id].Contact.Tags)
			}
		}
		if got := e.strings(`SELECT contact_id FROM contacts WHERE list_contains(tags, 'vip-pushed')`); len(got) != 0 {
			t.Errorf("warehouse still has vip on %v", got)
		}
	})

}

func TestTaskAndContactActions(t *testing.T) {
	e := newEnv(t, 40)
	ids := e.firstContacts(5)
	in := inList(ids)

	t.Run("complete-task and reopen-task", func(t *testing.T) {
		open := e.strings(`SELECT task_id FROM tasks WHERE NOT completed AND _deleted_at IS NULL ORDER BY task_id LIMIT 4`)
		if len(open) == 0 {
			t.Skip("no open task in the seed")
		}
		res := e.push(CompleteTask, `SELECT contact_id, task_id FROM tasks WHERE task_id IN `+inList(open))
		if res.Confirmed != len(open) {
			t.Fatalf("%+v", res)
		}
		done := map[string]bool{}
		for _, c := range e.truth() {
			for _, tk := range c.Tasks {
				done[tk.ID] = tk.Completed
			}
		}
		for _, id := range open {
			if !done[id] {
				t.Errorf("task %s not completed in the truth", id)
			}
		}
		if got := e.strings(`SELECT task_id FROM tasks WHERE completed AND task_id IN ` + inList(open)); len(got) != len(open) {
			t.Errorf("warehouse shows %d of %d completed", len(got), len(open))
		}
		e.push(ReopenTask, `SELECT contact_id, task_id FROM tasks WHERE task_id IN `+inList(open))
		if got := e.strings(`SELECT task_id FROM tasks WHERE NOT completed AND task_id IN ` + inList(open)); len(got) != len(open) {
			t.Errorf("warehouse shows %d of %d reopened", len(got), len(open))
		}
	})

	t.Run("update-contact", func(t *testing.T) {
		e.push(UpdateContact, `SELECT contact_id, 'Lyon' AS city, 'FR' AS country FROM contacts WHERE contact_id IN `+in)
		tr := e.truth()
		for _, id := range ids {
			if tr[id].Contact.City != "Lyon" || tr[id].Contact.Country != "FR" {
				t.Errorf("contact %s: %q %q", id, tr[id].Contact.City, tr[id].Contact.Country)
			}
		}
		if got := e.strings(`SELECT contact_id FROM contacts WHERE city = 'Lyon' ORDER BY 1`); !slices.Equal(got, ids) {
			t.Errorf("warehouse Lyon contacts %v", got)
		}
	})

	t.Run("create-task", func(t *testing.T) {
		e.push(CreateTask, `SELECT contact_id, 'Renewal call' AS title, '2026-03-01T09:00:00Z' AS due_date FROM contacts WHERE contact_id IN `+in)
		tr := e.truth()
		for _, id := range ids {
			n := 0
			for _, tk := range tr[id].Tasks {
				if tk.Title == "Renewal call" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("contact %s has %d renewal tasks", id, n)
			}
		}
		got := e.strings(`SELECT a.target_id FROM actions a JOIN tasks t ON t.task_id = a.target_id WHERE a.action = 'create-task' AND a.status = 'confirmed'`)
		if len(got) != 5 {
			t.Errorf("warehouse joins %d created tasks to their actions, want 5", len(got))
		}
	})
}

func TestDryRunWritesNothing(t *testing.T) {
	e := newEnv(t, 20)
	var out bytes.Buffer
	cfg := e.config(AddNote, `SELECT contact_id, 'hello' AS body FROM contacts`)
	cfg.DryRun, cfg.Out = true, &out
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if w := e.srv.Writes(); w.Requests != 0 {
		t.Fatalf("dry run sent %d writes", w.Requests)
	}
	if res.Writes != 20 || strings.Count(out.String(), "POST /contacts/") != 20 || !strings.Contains(out.String(), "quota left after them: ") {
		t.Fatalf("dry run output:\n%s", out.String())
	}
	if res.DailyLeft < 0 {
		t.Errorf("quota left unknown")
	}
	if n := e.strings(`SELECT count(*)::VARCHAR FROM actions`); n[0] != "0" {
		t.Errorf("dry run recorded %s actions", n[0])
	}
}

func TestRefusedBeforeAnyRequest(t *testing.T) {
	e := newEnv(t, 10)
	cases := []struct {
		name, action, q string
	}{
		{"column outside the whitelist", UpdateContact, `SELECT contact_id, 'Acme' AS company_name FROM contacts`},
		{"tags through update-contact", UpdateContact, `SELECT contact_id, 'x' AS tags FROM contacts`},
		{"SQL error", AddNote, `SELECT contact_id, body FROM no_such_table`},
		{"missing argument", AddNote, `SELECT contact_id FROM contacts`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Run(context.Background(), e.config(c.action, c.q))
			if err == nil {
				t.Fatal("no error")
			}
			if w := e.srv.Writes(); w.Requests != 0 {
				t.Fatalf("%d write requests before the refusal", w.Requests)
			}
		})
	}
	t.Run("missing scope", func(t *testing.T) {
		ro := newEnv(t, 10, api.ScopeContactsRO)
		_, err := Run(context.Background(), ro.config(AddNote, `SELECT contact_id, 'x' AS body FROM contacts`))
		if !errors.Is(err, ErrScope) {
			t.Fatalf("err = %v, want ErrScope", err)
		}
		if w := ro.srv.Writes(); w.Applied != 0 || w.Requests > 1 {
			t.Fatalf("writes %+v: only the scope check may be sent", w)
		}
		// The scope check's probe names the first contact: one whose id holds
		// a '/' must still reach the route the scope is checked on.
		before := ro.srv.Writes().Requests
		_, err = Run(context.Background(), ro.config(AddNote, `SELECT contact_id, 'x' AS body FROM contacts WHERE contact_id LIKE '%/%'`))
		if !errors.Is(err, ErrScope) {
			t.Fatalf("contact id with '/': err = %v, want ErrScope", err)
		}
		if w := ro.srv.Writes(); w.Applied != 0 || w.Requests > before+1 {
			t.Fatalf("contact id with '/': writes %+v: only the scope check may be sent", w)
		}
		cfg := ro.config(AddNote, `SELECT contact_id, 'x' AS body FROM contacts`)
		cfg.Granted = map[string][]string{ro.loc: {api.ScopeContactsRO}}
		before = ro.srv.Writes().Requests
		if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrScope) || ro.srv.Writes().Requests != before {
			t.Fatalf("known scopes: err %v, writes %d → %d", err, before, ro.srv.Writes().Requests)
		}
	})
}

// TestCreateErrorsReadBack: creates that answer 502/422 after creating are
// read back, never repeated blindly.
func TestCreateErrorsReadBack(t *testing.T) {
	e := newEnv(t, 60)
	e.srv.SetWriteQuirks(sim.WriteQuirks{ErrorAfterCreate: 0.4})
	res := e.push(AddNote, `SELECT contact_id, 'Quirk note ' || contact_id AS body FROM contacts WHERE _deleted_at IS NULL`)
	if e.srv.Writes().ErrorCreates == 0 {
		t.Fatal("the quirk never fired")
	}
	if res.Confirmed != res.Actions {
		t.Fatalf("%+v", res)
	}
	assertOnce(t, e, "Quirk note ", res.Actions)
}

func assertOnce(t *testing.T, e *env, prefix string, want int) {
	t.Helper()
	total := 0
	for id, c := range e.truth() {
		n := 0
		for _, nt := range c.Notes {
			if nt.Body == prefix+id {
				n++
			}
		}
		if n > 1 {
			t.Errorf("contact %s has the note %d times", id, n)
		}
		total += n
	}
	if total != want {
		t.Errorf("%d notes applied, want %d", total, want)
	}
}

// TestCrashChild is the child process of TestCrashExactlyOnce.
func TestCrashChild(t *testing.T) {
	if os.Getenv("PUSH_CRASH_BASE") == "" {
		t.Skip("child of TestCrashExactlyOnce")
	}
	killAt, _ := strconv.Atoi(os.Getenv("PUSH_CRASH_AT"))
	e := &env{t: t, base: os.Getenv("PUSH_CRASH_BASE"), path: os.Getenv("PUSH_CRASH_PATH"), loc: os.Getenv("PUSH_CRASH_LOC")}
	cfg := e.config(AddNote, crashQuery())
	n := 0
	cfg.Hook = func(string) {
		n++
		if n == killAt {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

// crashActions is the size of the crash test's push: 200, and the issue's
// 500 under SOAK=1 (make soak).
func crashActions() int {
	if os.Getenv("SOAK") != "" {
		return 500
	}
	return 200
}

func crashQuery() string {
	return fmt.Sprintf(`SELECT contact_id, 'Crash note ' || contact_id AS body FROM contacts WHERE _deleted_at IS NULL ORDER BY contact_id LIMIT %d`, crashActions())
}

func TestCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	n := crashActions()
	e := newEnv(t, n)
	e.srv.SetWriteQuirks(sim.WriteQuirks{ErrorAfterCreate: 0.1})
	r := rand.New(rand.NewPCG(uint64(n), 1))
	kills := 0
	for round := 0; round < 5; round++ {
		at := 1 + r.IntN(60)
		if round == 4 {
			at = 0 // the last push runs to the end
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "PUSH_CRASH_BASE="+e.base, "PUSH_CRASH_PATH="+e.path, "PUSH_CRASH_LOC="+e.loc,
			"PUSH_CRASH_AT="+strconv.Itoa(at))
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
			kills++
			continue
		}
		if err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, out)
		}
	}
	if kills == 0 {
		t.Log("no kill landed (every push finished first)")
	}
	assertOnce(t, e, "Crash note ", n)
	if got := e.strings(`SELECT count(*)::VARCHAR FROM actions WHERE status = 'confirmed'`); got[0] != strconv.Itoa(n) {
		t.Errorf("actions confirmed: %s", got[0])
	}
	if got := e.strings(`SELECT count(*)::VARCHAR FROM notes WHERE content LIKE 'Crash note %'`); got[0] != strconv.Itoa(n) {
		t.Errorf("warehouse notes after read-back: %s", got[0])
	}
	t.Logf("%d of 5 pushes killed; sim writes %+v", kills, e.srv.Writes())
}

var _ = whsql.ActionConfirmed

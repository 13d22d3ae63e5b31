package main

import (
	dsql "database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// TestPushCLI drives `contacts-etl push` through dispatch against the
// simulator: a real push, a dry run, refusals before any request (exit 2)
// and a push with failed actions (exit 3).
func TestPushCLI(t *testing.T) {
	srv, base := startSim(t, sim.Config{Seed: 11, Contacts: 30, Locations: 1,
		StaticTokens: map[string]sim.StaticToken{"pit-push": {LocationID: "loc-0001",
			Scopes: []string{api.ScopeContactsRO, api.ScopeContactsWrite}}}})
	t.Setenv("CONTACTS_ETL_TOKEN", "pit-push")
	wh := filepath.Join(t.TempDir(), "w.duckdb")
	common := []string{"--source", "sim", "--base-url", base, "--locations", srv.Locations()[0], "--warehouse", wh,
		"--auth", "static", "--rate-max", "1000000", "--rate-interval", "1s", "--log-level", "error"}
	cli := func(args ...string) (int, string) {
		return runCLI(t, append(args, common...)...)
	}
	if code, out := cli("run"); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, out)
	}
	count := func(q string) int {
		db, err := dsql.Open("duckdb", wh+"?access_mode=read_only")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow(q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	notes := `SELECT contact_id, 'CLI note' AS body FROM contacts WHERE _deleted_at IS NULL ORDER BY contact_id LIMIT 4`

	t.Run("dry run", func(t *testing.T) {
		code, out := cli("push", "--action", "add-note", "--sql", notes, "--dry-run")
		if code != 0 || strings.Count(out, "POST /contacts/") != 4 || !strings.Contains(out, "dry run: 4 write requests") {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if w := srv.Writes(); w.Requests != 0 {
			t.Fatalf("a dry run sent %d writes", w.Requests)
		}
	})
	t.Run("push", func(t *testing.T) {
		code, out := cli("push", "--action", "add-note", "--sql", notes)
		if code != 0 || !strings.Contains(out, "4 confirmed") {
			t.Fatalf("exit %d\n%s", code, out)
		}
		n := 0
		for _, c := range srv.Truth(srv.Locations()[0]) {
			for _, nt := range c.Notes {
				if nt.Body == "CLI note" {
					n++
				}
			}
		}
		if n != 4 || count(`SELECT count(*) FROM notes WHERE content = 'CLI note'`) != 4 ||
			count(`SELECT count(*) FROM actions WHERE action = 'add-note' AND status = 'confirmed'`) != 4 {
			t.Fatalf("truth has %d notes; warehouse %d; actions %d", n,
				count(`SELECT count(*) FROM notes WHERE content = 'CLI note'`),
				count(`SELECT count(*) FROM actions WHERE status = 'confirmed'`))
		}
	})
	refusals := []struct{ name, action, sql string }{
		{"column outside the whitelist", "update-contact", `SELECT contact_id, 'Acme' AS company_name FROM contacts`},
		{"SQL error", "add-note", `SELECT contact_id, body FROM no_such_table`},
		{"unknown action", "delete-everything", `SELECT contact_id FROM contacts`},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			before := srv.Writes().Requests
			code, out := cli("push", "--action", r.action, "--sql", r.sql)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d\n%s", code, exitUsage, out)
			}
			if srv.Writes().Requests != before {
				t.Fatalf("%d writes before the refusal", srv.Writes().Requests-before)
			}
		})
	}
	t.Run("partial failure", func(t *testing.T) {
		q := `SELECT contact_id, 'no-such-task-' || contact_id AS task_id FROM contacts WHERE _deleted_at IS NULL ORDER BY contact_id LIMIT 2`
		code, out := cli("push", "--action", "complete-task", "--sql", q)
		if code != exitPartial || !strings.Contains(out, "2 failed") {
			t.Fatalf("exit %d, want %d\n%s", code, exitPartial, out)
		}
		if n := count(`SELECT count(*) FROM actions WHERE action = 'complete-task' AND status = 'failed' AND http_status = 404`); n != 2 {
			t.Errorf("actions table records %d failures with their 404", n)
		}
	})
}

// TestPushCLIGrantedScopes: with OAuth, the scopes the token store records
// are checked before the first request, and the message names the login.
func TestPushCLIGrantedScopes(t *testing.T) {
	srv, _, base := startRecordedSim(t, sim.Config{Seed: 12, Contacts: 6, Locations: 1})
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	loginStore(t, srv, base, tokens, api.ScopeContactsRO)
	wh := filepath.Join(t.TempDir(), "w.duckdb")
	common := []string{"--source", "sim", "--base-url", base, "--locations", srv.Locations()[0], "--warehouse", wh,
		"--auth", "oauth", "--client-id", sim.DefaultClientID, "--token-file", tokens, "--log-level", "error"}
	if code, out := runCLI(t, append([]string{"run"}, common...)...); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, out)
	}
	code, out := runCLI(t, append([]string{"push", "--action", "add-note", "--sql", `SELECT contact_id, 'x' AS body FROM contacts`}, common...)...)
	if code == 0 || !strings.Contains(out, "auth login --scopes "+api.ScopeContactsWrite) {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if w := srv.Writes(); w.Requests != 0 {
		t.Fatalf("%d write requests: the granted scopes are known, no probe is needed", w.Requests)
	}
}

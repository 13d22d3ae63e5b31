package main

import (
	dsql "database/sql"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// TestIncrementalChangesView: after a full run, a few contacts and tasks
// change in the simulator; the incremental run re-reads them with their
// children, and the changes view lists exactly the mutated keys since the
// run's start (the re-read unchanged children keep their _changed_at).
func TestIncrementalChangesView(t *testing.T) {
	srv, base := startSim(t, sim.Config{Seed: 5, Contacts: 60, Locations: 1})
	path := filepath.Join(t.TempDir(), "w.duckdb")
	tweak := incTweak(1, nil)
	if _, err := testExport(t, srv, base, path, tweak); err != nil {
		t.Fatal(err)
	}
	// Contacts with tasks and notes, in id order.
	var withKids []sim.ContactTruth
	for _, ct := range srv.Truth(srv.Locations()[0]) {
		if !ct.Deleted && len(ct.Tasks) > 0 && len(ct.Notes) > 0 {
			withKids = append(withKids, ct)
		}
	}
	slices.SortFunc(withKids, func(a, b sim.ContactTruth) int { return strings.Compare(a.Contact.ID, b.Contact.ID) })
	if len(withKids) < 3 {
		t.Fatalf("only %d contacts with tasks and notes", len(withKids))
	}
	// The mutations, and the keys they change: the contact of each (a task
	// change bumps its dateUpdated) and the task changed or added.
	want := map[[2]string]string{}
	c0, c1, c2 := withKids[0], withKids[1], withKids[2]
	if err := srv.UpdateContact(c0.Contact.ID, func(c *api.Contact) { c.Tags = append(c.Tags, "changed") }); err != nil {
		t.Fatal(err)
	}
	want[[2]string{"contacts", c0.Contact.ID}] = "changed"
	if err := srv.UpdateTask(c1.Contact.ID, c1.Tasks[0].ID, func(k *api.Task) { k.Title += " (edited)" }); err != nil {
		t.Fatal(err)
	}
	want[[2]string{"contacts", c1.Contact.ID}] = "changed"
	want[[2]string{"tasks", c1.Tasks[0].ID}] = "changed"
	added := srv.AddTask(c2.Contact.ID)
	want[[2]string{"contacts", c2.Contact.ID}] = "changed"
	want[[2]string{"tasks", added}] = "new"

	if _, err := testExport(t, srv, base, path, tweak); err != nil {
		t.Fatal(err)
	}
	db, err := dsql.Open("duckdb", path+"?access_mode=read_only")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT table_name, id, kind FROM changes_since((SELECT max(started_at) FROM runs WHERE outcome = 'ok'))`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[[2]string]string{}
	for rows.Next() {
		var tbl, id, kind string
		if err := rows.Scan(&tbl, &id, &kind); err != nil {
			t.Fatal(err)
		}
		got[[2]string{tbl, id}] = kind
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes of the incremental run = %v, want %v", got, want)
	}
	// The mutated contacts' other children were re-read (a newer
	// _extracted_at) but are not changes.
	var reread, kids int
	ids := []any{c0.Contact.ID, c1.Contact.ID, c2.Contact.ID}
	if err := db.QueryRow(`SELECT count(*) FILTER (WHERE _extracted_at > _changed_at), count(*) FROM (
			SELECT contact_id, _extracted_at, _changed_at FROM tasks WHERE task_id NOT IN (?, ?)
			UNION ALL SELECT contact_id, _extracted_at, _changed_at FROM notes)
		WHERE contact_id IN (?, ?, ?)`, append([]any{c1.Tasks[0].ID, added}, ids...)...).Scan(&reread, &kids); err != nil {
		t.Fatal(err)
	}
	if reread == 0 || reread != kids {
		t.Errorf("%d of the %d unchanged children of the mutated contacts were re-read unchanged", reread, kids)
	}
}

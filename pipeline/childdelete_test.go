package pipeline

import (
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// Children deleted upstream, read on the per-contact path: a task deleted
// (which bumps its contact's dateUpdated) and a note deleted from a contact
// that then changed are soft-deleted by the next run, and so is a note
// deleted quietly from an unchanged contact, by the sweep that reads its
// children again, and one deleted from a contact a targeted run reads; on
// both sinks, and the contacts' other children stay live (the truth checks
// every row).
func TestChildDeletesPerContact(t *testing.T) {
	for _, kind := range sinkKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind, sim.Config{Seed: 16, Contacts: 120})
			opt := Options{Lookback: time.Minute, ReconcileEvery: 0, SweepRuns: 1}
			if _, err := e.run(opt, nil); err != nil {
				t.Fatal(err)
			}
			e.compare()
			var tasks, notes, quiet int
			for _, ct := range e.srv.Truth(e.srv.Locations()[0]) {
				switch {
				case ct.Deleted:
				case len(ct.Tasks) > 1 && tasks < 3:
					if err := e.srv.DeleteTask(ct.Contact.ID, ct.Tasks[0].ID); err != nil {
						t.Fatal(err)
					}
					tasks++
				case len(ct.Notes) > 1 && notes < 3:
					if err := e.srv.DeleteNote(ct.Contact.ID, ct.Notes[0].ID); err != nil {
						t.Fatal(err)
					}
					if err := e.srv.UpdateContact(ct.Contact.ID, func(c *api.Contact) { c.LastName += " v2" }); err != nil {
						t.Fatal(err)
					}
					notes++
				case len(ct.Notes) > 1 && quiet < 1:
					if err := e.srv.DeleteNote(ct.Contact.ID, ct.Notes[0].ID); err != nil { // dateUpdated untouched
						t.Fatal(err)
					}
					quiet++
				}
			}
			if tasks != 3 || notes != 3 || quiet != 1 {
				t.Fatalf("deleted %d tasks and %d notes, want 3 each", tasks, notes)
			}
			if _, err := e.run(opt, nil); err != nil {
				t.Fatal(err)
			}
			counts := e.compare()
			if counts["tasks_deleted"] != 3 || counts["notes_deleted"] != 4 {
				t.Errorf("soft-deleted %d tasks and %d notes, want 3 and 4", counts["tasks_deleted"], counts["notes_deleted"])
			}

			// A targeted run (a webhook's apply) reads the named contacts
			// and all their children: a note deleted quietly from one of
			// them is soft-deleted by it, without a sweep.
			var target string
			for _, ct := range e.srv.Truth(e.srv.Locations()[0]) {
				if !ct.Deleted && len(ct.Notes) > 1 {
					target = ct.Contact.ID
					if err := e.srv.DeleteNote(target, ct.Notes[0].ID); err != nil {
						t.Fatal(err)
					}
					break
				}
			}
			if _, err := e.run(Options{TargetsOnly: true, ReconcileEvery: -1}, func(j *Job) {
				j.Locations[0].Targets = []string{target}
			}); err != nil {
				t.Fatal(err)
			}
			if counts := e.compare(); counts["notes_deleted"] != 5 {
				t.Errorf("after a targeted run: %d notes soft-deleted, want 5", counts["notes_deleted"])
			}
		})
	}
}

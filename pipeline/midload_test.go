package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/transform"
)

// A contact's note is deleted during a location's first load, after the
// contact's children were read, and the contact changes: the search reads
// it again at its end, and the note must end soft-deleted, on both sinks,
// whether the two reads fall in one commit (commits of a million rows) or
// in two (a commit at every mark). Before, a first load never compared a
// contact's list with what was stored, and within one commit the first
// read's note was held: the note stayed live.
func TestChildDeletedDuringFirstLoad(t *testing.T) {
	for _, kind := range sinkKinds {
		for _, commitRows := range []int{1, 1_000_000} {
			t.Run(fmt.Sprintf("%s/commit-rows-%d", kind, commitRows), func(t *testing.T) {
				var (
					srv     *sim.Server
					target  string
					notes   atomic.Int64
					mutated sync.Once
					errs    = make(chan error, 1)
				)
				// 560 contacts: six search pages of 100. The notes request
				// that starts the second page's children comes after every
				// child of the first page was read (a page's children are
				// read before the next page's), and the search, a page or
				// two ahead, is not at its end yet.
				e := newEnv(t, kind, sim.Config{Seed: 18, Contacts: 560, OnRequest: func(kind string) {
					if kind != "notes" || notes.Add(1) != 101 {
						return
					}
					mutated.Do(func() {
						errs <- mutate(srv, target)
					})
				}})
				srv = e.srv
				target = oldestWithNotes(t, srv)
				_, err := e.run(Options{Lookback: time.Minute, ReconcileEvery: 0}, func(j *Job) { j.CommitRows = commitRows })
				if err != nil {
					t.Fatal(err)
				}
				select {
				case err := <-errs:
					if err != nil {
						t.Fatal(err)
					}
				default:
					t.Fatalf("the run made fewer than 101 notes requests (%d)", notes.Load())
				}
				counts := e.compare()
				if counts["notes_deleted"] != 1 {
					t.Errorf("%d notes soft-deleted, want 1", counts["notes_deleted"])
				}
			})
		}
	}
}

// oldestWithNotes is a live contact with two notes or more among the 50
// the search gives first (by dateUpdated): on the first page.
func oldestWithNotes(t *testing.T, srv *sim.Server) string {
	t.Helper()
	cts := srv.Truth(srv.Locations()[0])
	updated := func(ct sim.ContactTruth) time.Time {
		u, err := transform.ParseTime(ct.Contact.DateUpdated, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	slices.SortFunc(cts, func(a, b sim.ContactTruth) int {
		if c := updated(a).Compare(updated(b)); c != 0 {
			return c
		}
		return strings.Compare(a.Contact.ID, b.Contact.ID)
	})
	for _, ct := range cts[:50] {
		if !ct.Deleted && len(ct.Notes) > 1 {
			return ct.Contact.ID
		}
	}
	t.Fatal("no contact with two notes among the first 50")
	return ""
}

// mutate deletes the contact's first note and changes the contact (its
// dateUpdated moves to now: the search gives it again at its end).
func mutate(srv *sim.Server, id string) error {
	for _, ct := range srv.Truth(srv.Locations()[0]) {
		if ct.Contact.ID != id {
			continue
		}
		if err := srv.DeleteNote(id, ct.Notes[0].ID); err != nil {
			return err
		}
		return srv.UpdateContact(id, func(c *api.Contact) { c.LastName += " v2" })
	}
	return fmt.Errorf("contact %s not found", id)
}

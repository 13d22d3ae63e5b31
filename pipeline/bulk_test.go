package pipeline

import (
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

var bulkScopes = []string{api.ScopeContactsRO, api.ScopeLocationsRO, api.ScopeTasksRO, api.ScopeCalendarsRO, api.ScopeEventsRO}

// bulkMinimum is the fewest requests a full run with the bulk paths can
// make: search pages, one notes request per contact, task pages, calendar
// lists and event windows.
func bulkMinimum(st sim.Stats) int64 {
	return st.ByKind["search"] + st.ByKind["notes"] + st.ByKind["tasks_search"] + st.ByKind["calendars"] + st.ByKind["events"]
}

// With the bulk scopes a full run reads tasks with tasks/search and
// appointments with the calendar events, not per contact, lists no ids
// (first load), equals the truth and spends at most 1.05 × the minimum.
// Tasks and appointments added or changed on contacts whose dateUpdated
// did not change arrive in the next incremental run, with contacts
// updated, added and deleted at the same time.
func TestBulkPaths(t *testing.T) {
	const contacts, locs = 300, 3
	e := newEnvScopes(t, WarehouseDuckDB, sim.Config{Seed: 31, Contacts: contacts, Locations: locs}, bulkScopes...)
	opt := Options{Lookback: time.Minute, SweepRuns: 24, ReconcileEvery: 0}
	res, err := e.run(opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	counts := e.compare()
	if counts["contacts"] != contacts {
		t.Fatalf("warehouse has %d contacts", counts["contacts"])
	}
	st := e.srv.Stats()
	if st.ByKind["tasks"] != 0 || st.ByKind["appointments"] != 0 || st.ByKind["notes"] != contacts {
		t.Errorf("per-contact requests %v: want notes only, one per contact", st.ByKind)
	}
	if want := int64(locs * extract.SearchPages(contacts/locs, 100)); st.ByKind["search"] != want {
		t.Errorf("%d search requests, want %d (no id listing on a first load)", st.ByKind["search"], want)
	}
	minimum := bulkMinimum(st)
	if float64(res.Requests) > 1.05*float64(minimum) {
		t.Errorf("full run spent %d requests, minimum %d (%v)", res.Requests, minimum, st.ByKind)
	}
	t.Logf("full run: %d requests (minimum %d), %.3f of today's 3 per contact; %v", res.Requests, minimum,
		float64(res.Requests)/float64(3*contacts), st.ByKind)

	// Quiet changes on unchanged contacts, and ordinary ones.
	truth := e.srv.Truth("loc-0001")
	var quiet []string
	for _, ct := range truth[:40] {
		quiet = append(quiet, ct.Contact.ID)
	}
	for i, id := range quiet[:20] {
		switch i % 3 {
		case 0:
			if e.srv.AddTaskQuiet(id) == "" {
				t.Fatal("AddTaskQuiet")
			}
		case 1:
			if e.srv.AddEvent(id) == "" {
				t.Fatal("AddEvent")
			}
		case 2:
			e.srv.AddTaskQuiet(id)
			e.srv.AddEvent(id)
		}
	}
	changedTasks := 0
	for _, ct := range truth[20:40] {
		if len(ct.Tasks) > 0 {
			if err := e.srv.UpdateTaskQuiet(ct.Contact.ID, ct.Tasks[0].ID, func(k *api.Task) { k.Completed = !k.Completed; k.Title += " (edited)" }); err != nil {
				t.Fatal(err)
			}
			changedTasks++
		}
	}
	if changedTasks == 0 {
		t.Fatal("no tasks to change")
	}
	for _, ct := range truth[40:46] {
		e.srv.UpdateContact(ct.Contact.ID, func(c *api.Contact) { c.LastName += " v2" })
	}
	for _, ct := range truth[46:49] {
		e.srv.DeleteContact(ct.Contact.ID)
	}
	e.srv.AddContact("loc-0002")
	e.srv.ResetStats()
	res, err = e.run(opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	counts = e.compare()
	if counts["contacts_deleted"] != 3 {
		t.Errorf("soft-deleted %d contacts, want 3", counts["contacts_deleted"])
	}
	st = e.srv.Stats()
	if st.ByKind["tasks"] != 0 || st.ByKind["appointments"] != 0 {
		t.Errorf("incremental run read children per contact: %v", st.ByKind)
	}
	t.Logf("incremental run: %d requests; %v", res.Requests, st.ByKind)
}

// Without the bulk scopes every location falls back to per-contact
// requests: three per contact, as before, and the same data. With the
// tasks scope only, tasks come in bulk and appointments per contact.
func TestBulkFallback(t *testing.T) {
	const contacts, locs = 300, 3
	for _, tc := range []struct {
		name          string
		scopes        []string
		tasks, events int64 // per-contact requests expected
	}{
		{"no bulk scopes", []string{api.ScopeContactsRO, api.ScopeLocationsRO}, contacts, contacts},
		{"tasks scope only", []string{api.ScopeContactsRO, api.ScopeLocationsRO, api.ScopeTasksRO, api.ScopeCalendarsRO}, 0, contacts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvScopes(t, WarehouseDuckDB, sim.Config{Seed: 32, Contacts: contacts, Locations: locs}, tc.scopes...)
			opt := Options{Lookback: time.Minute, SweepRuns: 24, ReconcileEvery: 0}
			res, err := e.run(opt, nil)
			if err != nil {
				t.Fatal(err)
			}
			e.compare()
			st := e.srv.Stats()
			if st.ByKind["tasks"] != tc.tasks || st.ByKind["appointments"] != tc.events || st.ByKind["notes"] != contacts {
				t.Errorf("per-contact requests %v", st.ByKind)
			}
			t.Logf("%d requests for %d contacts: %v", res.Requests, contacts, st.ByKind)
		})
	}
}

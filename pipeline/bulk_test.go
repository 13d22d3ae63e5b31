package pipeline

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/load"
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

// forecast runs Forecast against e's locations as plan does, with the
// warehouse's state (nil before the first run).
func (e *env) forecast(opt Options, st *load.Status) []Estimate {
	e.t.Helper()
	clients, err := Clients(e.srv.Locations(), e.srcTS, ClientOptions{BaseURL: e.base, Concurrency: 4,
		RateMax: 1_000_000, RateInterval: time.Second, MaxRetries: 3})
	if err != nil {
		e.t.Fatal(err)
	}
	plans, err := Forecast(context.Background(), clients, st, EstimateOptions{Options: opt, Source: "sim", PageLimit: 100,
		Children: extract.ChildResources, RateMax: 1_000_000, RateInterval: time.Second, Now: time.Now().UTC()})
	if err != nil {
		e.t.Fatal(err)
	}
	return plans
}

func (e *env) status() *load.Status {
	e.t.Helper()
	sink, err := OpenSink(e.kind, e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer sink.Close(context.Background())
	st, err := sink.Status(context.Background(), "sim")
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func sumPlans(ps []Estimate, f func(Estimate) int) int {
	n := 0
	for _, p := range ps {
		n += f(p)
	}
	return n
}

// incrementalMinimum is the fewest requests an incremental run with the
// bulk paths can make, from the simulator's truth after the change:
// search pages of the changed contacts, one notes request per changed
// contact, every task page, the calendar list and one events window per
// calendar, the sweep's notes slice and the id reconciliation when due.
func incrementalMinimum(srv *sim.Server, changed map[string]int, sweepRuns int, reconcile bool) int {
	n := 0
	for _, loc := range srv.Locations() {
		tasks, live := 0, 0
		for _, ct := range srv.Truth(loc) {
			if !ct.Deleted {
				tasks += len(ct.Tasks)
				live++
			}
		}
		n += extract.SearchPages(changed[loc], 100) + changed[loc]
		n += tasks/extract.TaskPageLimit + 1
		n += 1 + len(sim.Calendars)
		n += (live + sweepRuns - 1) / sweepRuns
		if reconcile {
			n += extract.SearchPages(live, extract.MaxPageLimit)
		}
	}
	return n
}

// The plan forecasts the bulk paths as the run takes them: on a first
// load exactly the run's requests; after a 1% change (contacts updated,
// added and deleted; tasks and appointments added and changed on
// unchanged contacts, which keep their dateUpdated) one incremental run
// brings every task and appointment change, spends at most 1.05 × the
// minimum computed from the truth, and the plan is within 5% of it. Notes
// added to unchanged contacts arrive within the sweep period.
func TestBulkIncrementalMinimum(t *testing.T) {
	const contacts, locs, sweepRuns = 800, 2, 2
	e := newEnvScopes(t, WarehouseDuckDB, sim.Config{Seed: 33, Contacts: contacts, Locations: locs}, bulkScopes...)
	opt := Options{Lookback: time.Minute, SweepRuns: sweepRuns, ReconcileEvery: 0}

	plans := e.forecast(opt, nil)
	e.srv.ResetStats()
	res, err := e.run(opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.compare()
	st := e.srv.Stats()
	for _, p := range plans {
		if p.Bulk.Tasks != PathBulk || p.Bulk.Appointments != PathBulk {
			t.Errorf("%s: paths %+v", p.Location, p.Bulk)
		}
	}
	if got := sumPlans(plans, func(p Estimate) int { return p.Bulk.TaskPages }); int64(got) != st.ByKind["tasks_search"] {
		t.Errorf("plan: %d task pages, the run read %d", got, st.ByKind["tasks_search"])
	}
	if got := sumPlans(plans, func(p Estimate) int { return p.Bulk.EventRequests }); int64(got) != st.ByKind["calendars"]+st.ByKind["events"] {
		t.Errorf("plan: %d calendar and events requests, the run sent %d", got, st.ByKind["calendars"]+st.ByKind["events"])
	}
	// Every request of the run, the time zones and custom field
	// definitions included (one each per location).
	if setup := sumPlans(plans, func(p Estimate) int { return p.Setup }); int64(setup) != st.ByKind["location"]+st.ByKind["custom_fields"] {
		t.Errorf("plan: %d time zone and custom field requests, the run sent %d", setup, st.ByKind["location"]+st.ByKind["custom_fields"])
	}
	if got := sumPlans(plans, func(p Estimate) int { return p.Requests }); int64(got) != res.Requests {
		t.Errorf("plan: %d requests for the first load, the run spent %d (%v)", got, res.Requests, st.ByKind)
	}
	t.Logf("full run: %d requests (%.3f of 3 per contact), plan probes %d; %v", res.Requests,
		float64(res.Requests)/(3*contacts), sumPlans(plans, func(p Estimate) int { return p.Probes }), st.ByKind)

	// About a 1% change: 5 contacts per location and 8 quiet changes.
	changed := map[string]int{}
	var unchanged []sim.ContactTruth
	for _, loc := range e.srv.Locations() {
		tr := e.srv.Truth(loc)
		for _, ct := range tr[:3] {
			e.srv.UpdateContact(ct.Contact.ID, func(c *api.Contact) { c.LastName += " v2" })
			changed[loc]++
		}
		for _, ct := range tr[3:4] {
			e.srv.DeleteContact(ct.Contact.ID)
		}
		e.srv.AddContact(loc)
		changed[loc]++
		unchanged = append(unchanged, tr[10:]...)
	}
	quiet := 0
	for _, ct := range unchanged[:8] {
		switch quiet++; quiet % 3 {
		case 0:
			e.srv.AddTaskQuiet(ct.Contact.ID)
		case 1:
			e.srv.AddEvent(ct.Contact.ID)
		default:
			if len(ct.Tasks) > 0 {
				if err := e.srv.UpdateTaskQuiet(ct.Contact.ID, ct.Tasks[0].ID, func(k *api.Task) { k.Title += " (edited)" }); err != nil {
					t.Fatal(err)
				}
			} else {
				e.srv.AddTaskQuiet(ct.Contact.ID)
			}
		}
	}
	plans = e.forecast(opt, e.status())
	e.srv.ResetStats()
	res, err = e.run(opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	counts := e.compare() // every task and appointment change is in
	if counts["contacts_deleted"] != locs {
		t.Errorf("soft-deleted %d contacts, want %d", counts["contacts_deleted"], locs)
	}
	st = e.srv.Stats()
	minimum := incrementalMinimum(e.srv, changed, sweepRuns, true)
	planned := sumPlans(plans, func(p Estimate) int { return p.Requests - p.Setup }) // the minimum leaves them out
	if float64(res.Requests) > 1.05*float64(minimum) {
		t.Errorf("incremental run spent %d requests, minimum %d (%v)", res.Requests, minimum, st.ByKind)
	}
	if d := float64(planned-minimum) / float64(minimum); d < -0.05 || d > 0.05 {
		t.Errorf("plan %d requests, minimum %d", planned, minimum)
	}
	t.Logf("incremental run after a 1%% change: %d requests, minimum %d, plan %d; %v", res.Requests, minimum, planned, st.ByKind)

	// Notes on unchanged contacts come with the sweep, within its period.
	for _, ct := range unchanged[20:30] {
		if e.srv.AddNote(ct.Contact.ID) == "" {
			t.Fatal("AddNote")
		}
	}
	for range sweepRuns {
		if _, err := e.run(opt, nil); err != nil {
			t.Fatal(err)
		}
	}
	e.compare()
}

// Tasks and appointments deleted upstream on contacts that did not change
// are soft-deleted by the next run on the bulk paths, on both sinks: a
// complete listing names every live one. An appointment outside the
// incremental run's events range is left as it is.
func TestBulkQuietDeletes(t *testing.T) {
	for _, kind := range []string{WarehouseDuckDB, WarehouseParquet} {
		t.Run(kind, func(t *testing.T) {
			e := newEnvScopes(t, kind, sim.Config{Seed: 33, Contacts: 120, Locations: 2, Epoch: time.Now().UTC().Truncate(24 * time.Hour)}, bulkScopes...)
			opt := Options{Lookback: time.Minute, SweepRuns: 24, ReconcileEvery: 0}
			if _, err := e.run(opt, nil); err != nil {
				t.Fatal(err)
			}
			e.compare()
			from, to := BulkOptions{}.eventsRange(time.Now(), false)
			day := 24 * time.Hour // runs start later than now: keep clear of the edges
			tasks, events, outside := 0, 0, 0
			for _, loc := range e.srv.Locations() {
				for _, ct := range e.srv.Truth(loc) {
					if len(ct.Tasks) > 0 && tasks < 8 {
						if err := e.srv.DeleteTaskQuiet(ct.Contact.ID, ct.Tasks[0].ID); err != nil {
							t.Fatal(err)
						}
						tasks++
					}
					for _, et := range ct.EventTimes {
						in := et.Start.After(from.Add(day)) && et.Start.Before(to.Add(-day))
						out := et.Start.Before(from) || et.Start.After(to.Add(day))
						if (in && events < 6) || (out && outside < 2) {
							if err := e.srv.DeleteEventQuiet(ct.Contact.ID, et.ID); err != nil {
								t.Fatal(err)
							}
							if in {
								events++
							} else {
								outside++
							}
							break
						}
					}
				}
			}
			if tasks == 0 || events == 0 || outside == 0 {
				t.Fatalf("deleted %d tasks, %d appointments in range, %d outside", tasks, events, outside)
			}
			if _, err := e.run(opt, nil); err != nil {
				t.Fatal(err)
			}
			db := e.db()
			// The ones outside the range are still live: the truth accepts
			// a deleted record only soft-deleted, so they are checked apart.
			var liveOutside int
			if err := db.QueryRow(`SELECT count(*) FROM appointments WHERE _deleted_at IS NULL AND (start_time < ? OR start_time >= ?)
				AND appointment_id IN (SELECT unnest(?::VARCHAR[]))`, from, to, goneIDs(e, api.ResourceAppointments)).Scan(&liveOutside); err != nil {
				t.Fatal(err)
			}
			if liveOutside != outside {
				t.Errorf("%d deleted appointments outside the range still live, want %d (not listed: not deleted)", liveOutside, outside)
			}
			var deletedTasks, deletedEvents int
			db.QueryRow(`SELECT count(*) FROM tasks WHERE _deleted_at IS NOT NULL`).Scan(&deletedTasks)
			db.QueryRow(`SELECT count(*) FROM appointments WHERE _deleted_at IS NOT NULL`).Scan(&deletedEvents)
			db.Close()
			if deletedTasks != tasks || deletedEvents != events {
				t.Errorf("soft-deleted %d tasks and %d appointments, want %d and %d", deletedTasks, deletedEvents, tasks, events)
			}
			// A full run lists the whole history: the rest go too, and the
			// warehouse equals the truth.
			if _, err := e.run(Options{Lookback: time.Minute, SweepRuns: 24, ReconcileEvery: 0, Full: true}, nil); err != nil {
				t.Fatal(err)
			}
			counts := e.compare()
			if counts["tasks_deleted"] != tasks || counts["appointments_deleted"] != events+outside {
				t.Errorf("soft-deleted %d tasks and %d appointments, want %d and %d", counts["tasks_deleted"], counts["appointments_deleted"], tasks, events+outside)
			}
		})
	}
}

// goneIDs are the ids of resource's records deleted from live contacts.
func goneIDs(e *env, resource string) []string {
	var ids []string
	for _, loc := range e.srv.Locations() {
		for _, ct := range e.srv.Truth(loc) {
			ids = append(ids, ct.Gone[resource]...)
		}
	}
	return ids
}

// A targeted read (webhook apply, push read-back) of N contacts reads
// their tasks with tasks/search's contactId filter: ceil(N/100) batches,
// not N requests, and the changes land as the truth has them.
func TestTargetsBatchTasks(t *testing.T) {
	e := newEnvScopes(t, WarehouseDuckDB, sim.Config{Seed: 34, Contacts: 300}, bulkScopes...)
	if _, err := e.run(Options{ReconcileEvery: -1}, nil); err != nil {
		t.Fatal(err)
	}
	truth := e.srv.Truth(e.srv.Locations()[0])
	var targets []string
	pages, tasks := int64(0), 0
	for i, ct := range truth[:250] {
		if ct.Deleted {
			continue
		}
		targets = append(targets, ct.Contact.ID)
		if len(ct.Tasks) > 0 {
			if err := e.srv.UpdateTaskQuiet(ct.Contact.ID, ct.Tasks[0].ID, func(k *api.Task) { k.Title += " (quiet)" }); err != nil {
				t.Fatal(err)
			}
		}
		tasks += len(ct.Tasks)
		if len(targets)%extract.TaskBatchContacts == 0 || i == 249 {
			pages += int64(tasks/extract.TaskPageLimit + 1)
			tasks = 0
		}
	}
	e.srv.ResetStats()
	if _, err := e.run(Options{TargetsOnly: true, ReconcileEvery: -1}, func(j *Job) {
		j.Locations[0].Targets = targets
	}); err != nil {
		t.Fatal(err)
	}
	st := e.srv.Stats()
	if st.ByKind["tasks"] != 0 || st.ByKind["tasks_search"] != pages || st.ByKind["contact"] != int64(len(targets)) {
		t.Errorf("requests %v for %d targets, want %d tasks/search and no per-contact tasks", st.ByKind, len(targets), pages)
	}
	e.compare()
	t.Logf("%d targets: %d task requests instead of %d", len(targets), st.ByKind["tasks_search"], len(targets))
}

// A static token refused the bulk probes has them remembered in the
// warehouse under its identity (never the token): the next run with the
// same token asks no probe and reads per contact; another token probes
// again. Both sinks.
func TestBulkProbesRemembered(t *testing.T) {
	for _, kind := range []string{WarehouseDuckDB, WarehouseParquet} {
		t.Run(kind, func(t *testing.T) {
			e := newEnvScopes(t, kind, sim.Config{Seed: 35, Contacts: 40, Locations: 2}, api.ScopeContactsRO, api.ScopeLocationsRO)
			opt := Options{Lookback: time.Minute, SweepRuns: 24, ReconcileEvery: 0}
			withID := func(id string) func(*Job) {
				return func(j *Job) {
					for i := range j.Locations {
						j.Locations[i].TokenID = TokenID("static", id+j.Locations[i].Client.Location())
					}
				}
			}
			probes := func() int64 { st := e.srv.Stats(); return st.ByKind["tasks_search"] + st.ByKind["calendars"] }
			for i, tc := range []struct {
				token  string
				probes int64
			}{{"pit-a", 4}, {"pit-a", 0}, {"pit-b", 4}} {
				e.srv.ResetStats()
				if _, err := e.run(opt, withID(tc.token)); err != nil {
					t.Fatal(err)
				}
				if got := probes(); got != tc.probes {
					t.Errorf("run %d (%s): %d probes, want %d", i, tc.token, got, tc.probes)
				}
			}
			e.compare()
			sink, err := OpenSink(kind, e.path)
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close(context.Background())
			ps, err := sink.Probes(context.Background(), "sim", e.srv.Locations()[0])
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != 4 {
				t.Errorf("%d probes remembered, want 2 tokens × 2 resources: %+v", len(ps), ps)
			}
			for _, p := range ps {
				if strings.Contains(p.TokenID, "pit-") || strings.Contains(p.Reason, "pit-") {
					t.Errorf("a token in the state: %+v", p)
				}
			}
		})
	}
}

// The plan counts the custom field definitions' request only where the
// token may read them: known scopes without it leave it out, as the run does.
func TestPlanSetupFollowsScopes(t *testing.T) {
	e := newEnv(t, WarehouseDuckDB, sim.Config{Seed: 36, Contacts: 20, Locations: 2})
	clients, err := Clients(e.srv.Locations(), e.srcTS, ClientOptions{BaseURL: e.base, Concurrency: 4,
		RateMax: 1_000_000, RateInterval: time.Second, MaxRetries: 3})
	if err != nil {
		t.Fatal(err)
	}
	locs := e.srv.Locations()
	scopes := map[string][]string{
		locs[0]: {api.ScopeContactsRO, api.ScopeLocationsRO},
		locs[1]: {api.ScopeContactsRO, api.ScopeLocationsRO, api.ScopeCustomFieldsRO},
	}
	plans, err := Forecast(context.Background(), clients, nil, EstimateOptions{Source: "sim", PageLimit: 100,
		RateMax: 1_000_000, RateInterval: time.Second, Now: time.Now().UTC(), Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{locs[0]: 1, locs[1]: 2}
	for _, p := range plans {
		if p.Setup != want[p.Location] {
			t.Errorf("%s: setup %d requests, want %d (scopes %v)", p.Location, p.Setup, want[p.Location], scopes[p.Location])
		}
		if p.Requests != p.Search+p.FanOut+p.Bulk.Requests()+p.Sweep+p.Reconcile+p.Setup {
			t.Errorf("%s: %d requests do not add up: %+v", p.Location, p.Requests, p)
		}
	}
}

package extract

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

func bulkClient(t *testing.T, scopes ...string) (*sim.Server, *Client) {
	t.Helper()
	srv := sim.New(sim.Config{Seed: 5, Contacts: 120, StaticTokens: map[string]sim.StaticToken{"pit-bulk": {LocationID: "loc-0001", Scopes: scopes}}})
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	hc := oauth2.NewClient(context.Background(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "pit-bulk"}))
	c, err := NewClient(base, "loc-0001", hc, WithRetries(1, nil))
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

// The bulk reads against the simulator: every task and every appointment
// of the truth, each with its contact as parent; the simulator's limits
// (limit cap, required calendar and range, longest range) answer 422; a
// token without the scopes gets ErrNoBulkScope.
func TestBulkReads(t *testing.T) {
	ctx := context.Background()
	srv, c := bulkClient(t, api.ScopeContactsRO, api.ScopeTasksRO, api.ScopeCalendarsRO, api.ScopeEventsRO)
	wantTasks, wantEvents := map[string]string{}, map[string]string{}
	for _, ct := range srv.Truth("loc-0001") {
		for _, k := range ct.Tasks {
			wantTasks[k.ID] = ct.Contact.ID
		}
		for _, e := range ct.Events {
			wantEvents[e.ID] = ct.Contact.ID
		}
	}
	out := make(chan api.Record, 100_000)
	first, err := c.ProbeTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := StreamTasks(ctx, c, first, out); err != nil {
		t.Fatal(err)
	}
	p, err := c.ProbeEvents(ctx, time.Now().Add(-10*366*24*time.Hour), time.Now().Add(366*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := StreamEvents(ctx, c, p, 4, out); err != nil {
		t.Fatal(err)
	}
	close(out)
	gotTasks, gotEvents := map[string]string{}, map[string]string{}
	for r := range out {
		if r.Mark != nil {
			continue
		}
		var id struct{ ID string }
		if err := jsonUnmarshal(r.Raw, &id); err != nil {
			t.Fatal(err)
		}
		if r.Resource == api.ResourceTasks {
			gotTasks[id.ID] = r.ContactID
		} else {
			gotEvents[id.ID] = r.ContactID
		}
	}
	if len(gotTasks) != len(wantTasks) || len(gotEvents) != len(wantEvents) || len(wantTasks) < TaskPageLimit {
		t.Fatalf("read %d tasks, %d events; truth %d, %d", len(gotTasks), len(gotEvents), len(wantTasks), len(wantEvents))
	}
	for id, cid := range wantTasks {
		if gotTasks[id] != cid {
			t.Errorf("task %s: parent %q, want %q", id, gotTasks[id], cid)
		}
	}
	for id, cid := range wantEvents {
		if gotEvents[id] != cid {
			t.Errorf("event %s: parent %q, want %q", id, gotEvents[id], cid)
		}
	}
	// Bad input answers 422.
	is422 := func(err error) bool {
		var he *api.HTTPError
		return errors.As(err, &he) && he.Status == http.StatusUnprocessableEntity
	}
	if _, err := c.TasksPage(ctx, 0, sim.MaxTaskLimit+1); !is422(err) {
		t.Errorf("limit over the cap: %v", err)
	}
	now := time.Now()
	if _, err := c.Events(ctx, p.Calendars[0], now, now.Add(sim.MaxEventsRange+time.Hour)); !is422(err) {
		t.Errorf("range over the maximum: %v", err)
	}
	if _, err := c.Events(ctx, "", now, now.Add(time.Hour)); !is422(err) {
		t.Errorf("no calendar: %v", err)
	}
	if _, err := c.Events(ctx, p.Calendars[0], now, now); !is422(err) {
		t.Errorf("empty range: %v", err)
	}
	// Without the scopes.
	_, c2 := bulkClient(t, api.ScopeContactsRO, api.ScopeCalendarsRO)
	if _, err := c2.ProbeTasks(ctx); !errors.Is(err, ErrNoBulkScope) {
		t.Errorf("tasks without scope: %v", err)
	}
	if _, err := c2.ProbeEvents(ctx, now, now.Add(time.Hour)); !errors.Is(err, ErrNoBulkScope) {
		t.Errorf("events without scope: %v", err)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// StreamContactTasks reads exactly the tasks of the named contacts, in
// ceil(n/TaskBatchContacts) batches of one request per page each (the
// simulator, as the vendor spec, caps no contactId array); StreamContacts
// with BatchTasks reads no task per contact, and without the scope falls
// back to them after one refused request.
func TestContactTasksBatches(t *testing.T) {
	ctx := context.Background()
	srv, c := bulkClient(t, api.ScopeContactsRO, api.ScopeTasksRO)
	truth := srv.Truth("loc-0001")
	var ids []string
	want := map[string]string{}
	for i, ct := range truth {
		if i%5 == 4 || ct.Deleted {
			continue // leave some out: they must not be listed
		}
		ids = append(ids, ct.Contact.ID)
		for _, k := range ct.Tasks {
			want[k.ID] = ct.Contact.ID
		}
	}
	var pages int64
	for b := 0; b < len(ids); b += TaskBatchContacts {
		n := 0
		for _, id := range ids[b:min(b+TaskBatchContacts, len(ids))] {
			for _, ct := range truth {
				if ct.Contact.ID == id {
					n += len(ct.Tasks)
				}
			}
		}
		pages += int64(n/TaskPageLimit + 1)
	}
	out := make(chan api.Record, 100_000)
	srv.ResetStats()
	if err := StreamContactTasks(ctx, c, ids, out); err != nil {
		t.Fatal(err)
	}
	close(out)
	got := map[string]string{}
	for r := range out {
		var k struct{ ID string }
		json.Unmarshal(r.Raw, &k)
		if _, dup := got[k.ID]; dup {
			t.Errorf("task %s twice", k.ID)
		}
		got[k.ID] = r.ContactID
	}
	if len(got) != len(want) {
		t.Errorf("%d tasks, want %d", len(got), len(want))
	}
	for id, cid := range want {
		if got[id] != cid {
			t.Errorf("task %s: parent %q, want %q", id, got[id], cid)
		}
	}
	if st := srv.Stats(); st.ByKind["tasks_search"] != pages || st.Requests != pages {
		t.Errorf("%d tasks/search requests (%d in all) for %d contacts, want %d", st.ByKind["tasks_search"], st.Requests, len(ids), pages)
	}

	// Through StreamContacts, with and without the scope.
	for _, tc := range []struct {
		name   string
		scopes []string
		search int64 // tasks/search requests
	}{
		{"scope", []string{api.ScopeContactsRO, api.ScopeTasksRO}, pages},
		{"no scope", []string{api.ScopeContactsRO}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, c := bulkClient(t, tc.scopes...)
			out := make(chan api.Record, 100_000)
			opt := StreamOptions{Children: []string{api.ResourceTasks, api.ResourceNotes}, BatchTasks: true}
			if err := StreamContacts(ctx, c, ids, DefaultSweepChunk, opt, out); err != nil {
				t.Fatal(err)
			}
			close(out)
			tasks := map[string]bool{}
			for r := range out {
				if r.Resource == api.ResourceTasks && r.Problem == "" {
					var k struct{ ID string }
					json.Unmarshal(r.Raw, &k)
					tasks[k.ID] = true
				}
			}
			for id := range want {
				if !tasks[id] {
					t.Errorf("task %s not read", id)
				}
			}
			st := srv.Stats()
			perContact := int64(0)
			if tc.search == 1 {
				perContact = int64(len(ids))
			}
			if st.ByKind["tasks_search"] != tc.search || st.ByKind["tasks"] != perContact || st.ByKind["contact"] != int64(len(ids)) {
				t.Errorf("requests %v, want %d tasks/search and %d per contact", st.ByKind, tc.search, perContact)
			}
		})
	}
}

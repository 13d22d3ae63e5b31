package extract

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// oddLocation is a location id holding what a path must escape.
const oddLocation = "loc/1 ?#%é+"

// parents is what a stream sent, by resource: record id -> parent contact
// id (the contact's own id for contacts).
type parents map[string]map[string]string

func drainParents(t *testing.T, out chan api.Record) (parents, []*api.Mark) {
	t.Helper()
	close(out)
	g := parents{}
	var marks []*api.Mark
	for r := range out {
		if r.Mark != nil {
			marks = append(marks, r.Mark)
			continue
		}
		if r.Problem != "" {
			t.Errorf("%s of %q: %s", r.Resource, r.ContactID, r.Problem)
			continue
		}
		var k struct{ ID string }
		if err := json.Unmarshal(r.Raw, &k); err != nil || k.ID == "" {
			t.Fatalf("%s without id: %s", r.Resource, r.Raw)
		}
		parent := r.ContactID
		if r.Resource == api.ResourceContacts {
			parent = k.ID
		}
		if g[r.Resource] == nil {
			g[r.Resource] = map[string]string{}
		}
		if old, dup := g[r.Resource][k.ID]; dup && old != parent {
			t.Errorf("%s %s under %q and %q", r.Resource, k.ID, old, parent)
		}
		g[r.Resource][k.ID] = parent
	}
	return g, marks
}

// truthParents is the truth in the shape of parents, and the odd contact
// ids.
func truthParents(truth []sim.ContactTruth) (parents, []string) {
	w := parents{api.ResourceContacts: {}, api.ResourceTasks: {}, api.ResourceNotes: {}, api.ResourceAppointments: {}}
	var odd []string
	for _, ct := range truth {
		id := ct.Contact.ID
		if ct.Deleted {
			continue
		}
		if strings.ContainsAny(id, "/% ?#") || strings.ContainsFunc(id, func(r rune) bool { return r > 127 }) {
			odd = append(odd, id)
		}
		w[api.ResourceContacts][id] = id
		for _, k := range ct.Tasks {
			w[api.ResourceTasks][k.ID] = id
		}
		for _, n := range ct.Notes {
			w[api.ResourceNotes][n.ID] = id
		}
		for _, e := range ct.Events {
			w[api.ResourceAppointments][e.ID] = id
		}
	}
	return w, odd
}

// sameParents reports every record of w that g lacks or files under
// another parent, and a count of g that is not w's.
func sameParents(t *testing.T, what string, g, w parents, resources ...string) {
	t.Helper()
	for _, res := range resources {
		missing := 0
		for id, parent := range w[res] {
			if g[res][id] != parent {
				missing++
				if missing <= 3 {
					t.Errorf("%s: %s %s of contact %q: got under %q", what, res, id, parent, g[res][id])
				}
			}
		}
		if missing > 0 || len(g[res]) != len(w[res]) {
			t.Errorf("%s: %s: %d of %d missing or misfiled, %d read", what, res, missing, len(w[res]), len(g[res]))
		}
	}
}

// TestOddIDsExportEveryRecord runs the extract package's full reads against
// a simulator whose location id and some contact ids hold '/', '%', ' ',
// '?', '#', '+' and non-ASCII, and checks them against its truth: the
// search with the per-contact fan-out, the id listing and the read-again
// by id (GET /contacts/{id}, batched tasks through the location's bulk
// path), the location's zone and custom fields, and the bulk appointments
// (the location in a query string), and a write to each odd contact.
// Every path segment must be escaped exactly once for every record to be
// found.
func TestOddIDsExportEveryRecord(t *testing.T) {
	ctx := context.Background()
	const tok = "pit-odd"
	srv := sim.New(sim.Config{Seed: 8, Contacts: 40, OddIDs: 3 * len(sim.OddIDPieces), LocationIDs: []string{oddLocation},
		StaticTokens: map[string]sim.StaticToken{tok: {LocationID: oddLocation, Scopes: []string{api.ScopeContactsRO,
			api.ScopeLocationsRO, api.ScopeCustomFieldsRO, api.ScopeTasksRO, api.ScopeCalendarsRO, api.ScopeEventsRO,
			api.ScopeContactsWrite}}}})
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := NewClient(base, oddLocation, &http.Client{Transport: bearer(tok)}, WithRetries(1, nil))
	if err != nil {
		t.Fatal(err)
	}
	w, odd := truthParents(srv.Truth(oddLocation))
	if len(odd) != 3*len(sim.OddIDPieces) || len(w[api.ResourceTasks]) == 0 || len(w[api.ResourceNotes]) == 0 || len(w[api.ResourceAppointments]) == 0 {
		t.Fatalf("truth: %d odd ids, %d tasks, %d notes, %d appointments", len(odd),
			len(w[api.ResourceTasks]), len(w[api.ResourceNotes]), len(w[api.ResourceAppointments]))
	}
	all := []string{api.ResourceContacts, api.ResourceTasks, api.ResourceNotes, api.ResourceAppointments}

	// The search, each page's contacts' children one request each.
	out := make(chan api.Record, 100_000)
	if err := Stream(ctx, c, StreamOptions{Query: Query{PageLimit: 7}, Children: ChildResources}, out); err != nil {
		t.Fatalf("stream: %v", err)
	}
	g, _ := drainParents(t, out)
	sameParents(t, "stream", g, w, all...)

	// The id listing, then every contact read again by id, its tasks in
	// batches through POST /locations/{locationId}/tasks/search.
	ids, err := c.ContactIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if wantIDs := slices.Sorted(func(yield func(string) bool) {
		for id := range w[api.ResourceContacts] {
			if !yield(id) {
				return
			}
		}
	}); !slices.Equal(ids, wantIDs) {
		t.Errorf("contact ids %q, want %q", ids, wantIDs)
	}
	srv.ResetStats()
	out = make(chan api.Record, 100_000)
	if err := StreamContacts(ctx, c, ids, 9, StreamOptions{Children: ChildResources, BatchTasks: true}, out); err != nil {
		t.Fatalf("read again: %v", err)
	}
	g, marks := drainParents(t, out)
	sameParents(t, "read again", g, w, all...)
	read := 0
	for _, m := range marks {
		read += len(m.IDs)
		if len(m.Gone) > 0 {
			t.Errorf("read again: contacts %q gone", m.Gone)
		}
	}
	if read != len(ids) {
		t.Errorf("read again: marks name %d contacts, want %d", read, len(ids))
	}
	if st := srv.Stats(); st.ByKind["tasks_search"] == 0 || st.ByKind["tasks"] != 0 || st.ByKind["contact"] != int64(len(ids)) {
		t.Errorf("read again: requests %v, want tasks through tasks/search only and one GET per contact", st.ByKind)
	}

	// The location's own paths.
	if zone, err := c.LocationTimeZone(ctx); err != nil || zone != srv.TimeZone(oddLocation) {
		t.Errorf("time zone %q, %v; want %q", zone, err, srv.TimeZone(oddLocation))
	}
	defs, err := c.CustomFields(ctx)
	if err != nil || len(defs) == 0 {
		t.Fatalf("custom fields: %d, %v", len(defs), err)
	}
	for _, d := range defs {
		var def api.CustomFieldDef
		if err := json.Unmarshal(d, &def); err != nil || def.LocationID != oddLocation {
			t.Errorf("custom field %s: location %q, %v", d, def.LocationID, err)
		}
	}

	// Bulk appointments: the location goes in query strings.
	p, err := c.ProbeEvents(ctx, time.Now().Add(-10*366*24*time.Hour), time.Now().Add(366*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	out = make(chan api.Record, 100_000)
	if err := StreamEvents(ctx, c, p, 4, out); err != nil {
		t.Fatal(err)
	}
	g, _ = drainParents(t, out)
	sameParents(t, "bulk appointments", g, w, api.ResourceAppointments)

	// Writes take the path escaped once too: a note written to each odd
	// contact lands under it.
	for _, id := range odd {
		wr := WriteRequest{Method: http.MethodPost, Path: "/contacts/" + pathEscape(id) + "/notes",
			Body: api.CreateNoteRequest{Body: "escaped once"}}
		if _, err := c.Write(ctx, wr); err != nil {
			t.Errorf("write %s: %v", wr, err)
		}
	}
	for _, ct := range srv.Truth(oddLocation) {
		if slices.Contains(odd, ct.Contact.ID) && !slices.ContainsFunc(ct.Notes, func(n api.Note) bool { return n.Body == "escaped once" }) {
			t.Errorf("contact %q: the written note is not there", ct.Contact.ID)
		}
	}
}

// A path segment goes on the wire escaped once, below any base path, with
// the query as encoded; a path without escapes is sent as it is.
func TestRequestPathEscapedOnce(t *testing.T) {
	for _, tc := range []struct{ base, path, want string }{
		{"https://h.example.com", "/contacts/" + pathEscape("a/b c%ü?#+") + "/tasks", "/contacts/a%2Fb%20c%25%C3%BC%3F%23+/tasks?q=1+%2F"},
		{"https://h.example.com/v2", "/locations/" + pathEscape("%2F") + "/customFields", "/v2/locations/%252F/customFields?q=1+%2F"},
		{"https://h.example.com/a%20b", "/contacts/" + pathEscape("x/y"), "/a%20b/contacts/x%2Fy?q=1+%2F"},
		{"https://h.example.com/a%20b", "/contacts/search", "/a%20b/contacts/search?q=1+%2F"},
		{"https://h.example.com", "/contacts/search", "/contacts/search?q=1+%2F"},
	} {
		c, err := NewClient(tc.base, "loc", http.DefaultClient)
		if err != nil {
			t.Fatal(err)
		}
		u, err := c.url(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		u.RawQuery = "q=1+%2F"
		req, err := newRequest(context.Background(), http.MethodGet, &u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := req.URL.RequestURI(); got != tc.want {
			t.Errorf("%s + %s: %s, want %s", tc.base, tc.path, got, tc.want)
		}
	}
	c, _ := NewClient("https://h.example.com", "loc", http.DefaultClient)
	if _, err := c.url("/contacts/%zz"); err == nil {
		t.Error("a path that is not a valid escaping was taken")
	}
}

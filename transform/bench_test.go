package transform

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// simRecords reads from the simulator (seed 7, n contacts) the location's
// custom field definitions, a search page of contacts (realistic shapes:
// tags, custom fields, DND settings, attribution) and, when children is
// set, every contact's tasks, notes and appointments.
func simRecords(b *testing.B, n int, children bool) (defs, recs []api.Record) {
	b.Helper()
	loc := sim.New(sim.Config{}).Locations()[0]
	srv := sim.New(sim.Config{Seed: 7, Contacts: n,
		StaticTokens: map[string]sim.StaticToken{"pit-odd": {LocationID: loc, Scopes: []string{api.ScopeContactsRO, api.ScopeCustomFieldsRO}}}})
	t := &testing.T{}
	var cf struct{ CustomFields []json.RawMessage }
	if err := json.Unmarshal(simGet(t, srv, "GET", "/locations/"+loc+"/customFields", ""), &cf); err != nil {
		b.Fatal(err)
	}
	for _, raw := range cf.CustomFields {
		defs = append(defs, api.Record{Resource: api.ResourceCustomFields, LocationID: loc, Raw: raw})
	}
	var page api.SearchResponse
	if err := json.Unmarshal(simGet(t, srv, "POST", "/contacts/search", `{"locationId":"`+loc+`","pageLimit":500}`), &page); err != nil {
		b.Fatal(err)
	}
	for _, raw := range page.Contacts {
		recs = append(recs, api.Record{Resource: api.ResourceContacts, LocationID: loc, Raw: raw})
	}
	if !children {
		return defs, recs
	}
	for _, raw := range page.Contacts {
		id := recordID(raw)
		for _, rk := range [][2]string{{api.ResourceTasks, "tasks"}, {api.ResourceNotes, "notes"}, {api.ResourceAppointments, "events"}} {
			var list map[string][]json.RawMessage
			if err := json.Unmarshal(simGet(t, srv, "GET", "/contacts/"+id+"/"+rk[0], ""), &list); err != nil {
				b.Fatal(err)
			}
			for _, raw := range list[rk[1]] {
				recs = append(recs, api.Record{Resource: rk[0], LocationID: loc, ContactID: id, Raw: raw})
			}
		}
	}
	return defs, recs
}

// benchStage maps one record per iteration (cycling through recs after
// defs), so ns/op, B/op and allocs/op are per record; batches are flushed
// as in a run (every 10,000 rows of a table) and released by a consumer.
func benchStage(b *testing.B, defs, recs []api.Record) {
	ctx := context.Background()
	out := make(chan Batch, 64)
	done := make(chan struct{})
	go func() {
		for bt := range out {
			if bt.Rec != nil {
				bt.Rec.Release()
			}
		}
		close(done)
	}()
	s := New(Config{Source: "bench", RunID: "r", ExtractedAt: time.Unix(1.7e9, 0), BatchRows: 10_000})
	defer s.Close()
	for _, r := range defs {
		if err := s.Add(ctx, r, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := s.Add(ctx, recs[i%len(recs)], out); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.flushAll(ctx, out); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	close(out)
	<-done
	if c := s.Counts(); c.Rejects() != 0 || c.FieldRejects() != 0 {
		b.Fatalf("simulator records rejected: %v", c)
	}
}

// BenchmarkStage maps simulator contacts (with the location's custom
// field definitions known); one op is one contact.
func BenchmarkStage(b *testing.B) {
	defs, recs := simRecords(b, 500, false)
	benchStage(b, defs, recs)
}

// BenchmarkStageChildren maps simulator contacts followed by their tasks,
// notes and appointments, as an export with children does; one op is one
// record of any of the four resources.
func BenchmarkStageChildren(b *testing.B) {
	defs, recs := simRecords(b, 500, true)
	benchStage(b, defs, recs)
}

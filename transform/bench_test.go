package transform

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// BenchmarkStage maps a search page of simulator contacts (realistic
// shapes: tags, custom fields, DND settings, attribution) per iteration and
// reports the cost per contact.
func BenchmarkStage(b *testing.B) {
	loc := sim.New(sim.Config{}).Locations()[0]
	srv := sim.New(sim.Config{Seed: 7, Contacts: 500,
		StaticTokens: map[string]sim.StaticToken{"pit-odd": {LocationID: loc, Scopes: []string{api.ScopeContactsRO}}}})
	var page api.SearchResponse
	t := &testing.T{}
	if err := json.Unmarshal(simGet(t, srv, "POST", "/contacts/search", `{"locationId":"`+loc+`","pageLimit":500}`), &page); err != nil {
		b.Fatal(err)
	}
	recs := make([]api.Record, len(page.Contacts))
	for i, raw := range page.Contacts {
		recs[i] = api.Record{Resource: api.ResourceContacts, LocationID: loc, Raw: raw}
	}
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
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for _, r := range recs {
			if err := s.Add(ctx, r, out); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.flushAll(ctx, out); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	close(out)
	<-done
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/contact")
	b.ReportMetric(0, "ns/op")
}

package webhook_test

import (
	"cmp"
	"context"
	dsql "database/sql"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/webhook"
)

// BenchmarkMutationToCommit measures the latency from a change in the
// simulator to its row committed in the warehouse, as serve runs with
// --apply-every 5s: the Service in-process (receiver on loopback, applier
// on its timer, targeted runs through the pipeline into a DuckDB file),
// the simulator sending one signed ContactUpdate per change. Each round
// changes 200 distinct contacts, spread evenly over 15 s (three apply
// periods); a contact's latency ends when the apply whose targets hold it
// has committed. It reports p50 and p99 over all rounds, and checks every
// changed row against the simulator's truth.
func BenchmarkMutationToCommit(b *testing.B) {
	const (
		events = 200
		spread = 15 * time.Second
		every  = 5 * time.Second
	)
	var lat []time.Duration
	var applies int
	for i := 0; i < b.N; i++ {
		l, n := latencyRound(b, events, spread, every, int64(i))
		lat = append(lat, l...)
		applies += n
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Milliseconds()) }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
	b.ReportMetric(float64(applies)/float64(b.N), "applies/op")
}

func latencyRound(b *testing.B, events int, spread, every time.Duration, seed int64) ([]time.Duration, int) {
	w := newWorld(b, 300)
	w.run(false)
	in, err := webhook.OpenInbox(webhook.InboxDir(w.path), webhook.InboxOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()

	// The apply, wrapped: when a targeted run has returned, its rows are
	// committed; the first commit naming a contact ends its latency.
	var (
		mu        sync.Mutex
		committed = map[string]time.Time{}
		applies   int
	)
	progress := make(chan struct{}, 1)
	pa := w.apply()
	apply := func(ctx context.Context, targets map[string][]string) (string, error) {
		id, err := pa.Apply(ctx, targets)
		if err != nil {
			return id, err
		}
		at := time.Now()
		mu.Lock()
		applies++
		for _, ids := range targets {
			for _, c := range ids {
				if _, ok := committed[c]; !ok {
					committed[c] = at
				}
			}
		}
		mu.Unlock()
		select {
		case progress <- struct{}{}:
		default:
		}
		return id, nil
	}
	svc := &webhook.Service{
		Receiver:   webhook.NewReceiver(in, webhook.ReceiverOptions{Keys: w.keys}),
		Applier:    &webhook.Applier{Inbox: in, Apply: apply, Locations: w.srv.Locations()},
		ApplyEvery: every,
	}
	ln, err := listen()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- svc.Serve(ctx, ln) }()
	stop := func() {
		cancel()
		if err := <-served; err != nil {
			b.Error(err)
		}
	}
	snd := sim.NewWebhooks(w.srv, sim.WebhookConfig{URL: "http://" + ln.Addr().String(), Key: w.priv, Seed: seed})

	type target struct{ id, loc string }
	var all []target
	for _, loc := range w.srv.Locations() {
		for _, ct := range w.srv.Truth(loc) {
			if !ct.Deleted {
				all = append(all, target{ct.Contact.ID, loc})
			}
		}
	}
	slices.SortFunc(all, func(x, y target) int { return cmp.Compare(x.id, y.id) })
	if len(all) < events {
		b.Fatalf("%d contacts, want %d", len(all), events)
	}
	mutated := map[string]time.Time{}
	pace := time.NewTicker(spread / time.Duration(events))
	for i, c := range all[:events] {
		<-pace.C
		t0 := time.Now()
		if err := w.srv.UpdateContact(c.id, func(ct *api.Contact) {
			ct.LastName = fmt.Sprintf("%s b%d", ct.LastName, i)
			ct.Name = ct.FirstName + " " + ct.LastName
		}); err != nil {
			b.Fatal(err)
		}
		snd.Emit("ContactUpdate", c.loc, c.id, c.id)
		if rep := snd.Flush(ctx); rep.Status[200] != 1 {
			b.Fatalf("event %d answered %v", i, rep.Status)
		}
		mutated[c.id] = t0
	}
	pace.Stop()

	// Wait for the applies to commit every changed contact (bounded).
	deadline := time.NewTimer(spread + 20*every + time.Minute)
	defer deadline.Stop()
	for {
		mu.Lock()
		n := 0
		for id := range mutated {
			if _, ok := committed[id]; ok {
				n++
			}
		}
		mu.Unlock()
		if n == len(mutated) {
			break
		}
		select {
		case <-progress:
		case <-deadline.C:
			stop()
			b.Fatalf("only %d of %d changes committed", n, len(mutated))
		}
	}
	stop()

	// The committed rows are the simulator's.
	want := map[string]string{}
	for _, loc := range w.srv.Locations() {
		for _, ct := range w.srv.Truth(loc) {
			if _, ok := mutated[ct.Contact.ID]; ok {
				want[ct.Contact.ID] = ct.Contact.LastName
			}
		}
	}
	db, err := dsql.Open("duckdb", w.path+"?access_mode=read_only")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT contact_id, last_name FROM contacts WHERE _source = ?", source)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var id string
		var last dsql.NullString
		if err := rows.Scan(&id, &last); err != nil {
			b.Fatal(err)
		}
		got[id] = last.String
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	for id, ln := range want {
		if got[id] != ln {
			b.Fatalf("contact %s: last_name %q committed, want %q", id, got[id], ln)
		}
	}
	lat := make([]time.Duration, 0, len(mutated))
	for id, t0 := range mutated {
		lat = append(lat, committed[id].Sub(t0))
	}
	return lat, applies
}

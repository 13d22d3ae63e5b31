package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/load"
	"github.com/contacts-etl/contacts-etl/transform"
)

// benchWorld is a simulator and a DuckDB warehouse for the request
// benchmark (the test env wants a *testing.T).
type benchWorld struct {
	b    *testing.B
	srv  *sim.Server
	base string
	ts   map[string]oauth2.TokenSource
	path string
	runs int
}

func newBenchWorld(b *testing.B, cfg sim.Config, scopes ...string) *benchWorld {
	w := &benchWorld{b: b, ts: map[string]oauth2.TokenSource{}, path: filepath.Join(b.TempDir(), "w.duckdb")}
	cfg.StaticTokens = map[string]sim.StaticToken{}
	for i, loc := range sim.New(sim.Config{Locations: cfg.Locations}).Locations() {
		tok := fmt.Sprintf("pit-bench-%d", i)
		cfg.StaticTokens[tok] = sim.StaticToken{LocationID: loc, Scopes: scopes}
		w.ts[loc] = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok})
	}
	w.srv = sim.New(cfg)
	var err error
	if w.base, err = w.srv.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.srv.Close() })
	return w
}

func (w *benchWorld) run(opt Options) int64 {
	w.runs++
	clients, err := Clients(w.srv.Locations(), w.ts, ClientOptions{BaseURL: w.base, Concurrency: 4,
		RateMax: 1_000_000, RateInterval: time.Second, MaxRetries: 3})
	if err != nil {
		w.b.Fatal(err)
	}
	sink, err := OpenSink(WarehouseDuckDB, w.path)
	if err != nil {
		w.b.Fatal(err)
	}
	defer sink.Close(context.Background())
	id := fmt.Sprintf("run-%02d", w.runs)
	j := Job{
		Run:        load.Run{ID: id, Source: "sim", Command: "run", StartedAt: time.Now().UTC()},
		Sink:       sink,
		Options:    opt,
		CommitRows: 500,
		Stream:     extract.StreamOptions{Query: extract.Query{PageLimit: 100}, Concurrency: 4, Children: extract.ChildResources},
	}
	j.Transform = transform.Config{Source: "sim", RunID: id, ExtractedAt: j.Run.StartedAt, BatchRows: 300, NaiveZone: time.UTC}
	for _, c := range clients {
		// As the CLI does for static tokens: refused probes are remembered.
		tok, _ := w.ts[c.Location()].Token()
		j.Locations = append(j.Locations, Location{Client: c, TokenID: TokenID("static", tok.AccessToken)})
	}
	res, err := Run(context.Background(), j)
	if err != nil {
		w.b.Fatal(err)
	}
	return res.Requests
}

// BenchmarkRequests measures the requests of a full run per contact (no
// bulk scopes) and with the bulk paths, and of one incremental run after
// a 1% change (contacts updated, added, deleted; tasks and appointments
// added on unchanged contacts) against the minimum from the truth. The
// counts do not depend on b.N; one iteration takes about a minute on two
// busy cores. BENCHMARKS.md holds the results.
func BenchmarkRequests(b *testing.B) {
	const contacts, locs, sweepRuns = 1000, 2, 24
	opt := Options{Lookback: time.Minute, SweepRuns: sweepRuns, ReconcileEvery: 0}
	cfg := sim.Config{Seed: 41, Contacts: contacts, Locations: locs}
	for range b.N {
		per := newBenchWorld(b, cfg, api.ScopeContactsRO, api.ScopeLocationsRO)
		perFull := per.run(opt)
		// The next full run with the same tokens: the refused probes are
		// remembered, not paid again.
		full := opt
		full.Full = true
		probes1 := per.srv.Stats().ByKind["tasks_search"] + per.srv.Stats().ByKind["calendars"]
		per.srv.ResetStats()
		perFull2 := per.run(full)
		again := per.srv.Stats().ByKind

		bulk := newBenchWorld(b, cfg, bulkScopes...)
		bulkFull := bulk.run(opt)
		st := bulk.srv.Stats()
		fullMin := bulkMinimum(st)

		// A 1% change: 10 contacts, and 6 quiet child changes.
		changed := map[string]int{}
		var quiet []string
		for _, loc := range bulk.srv.Locations() {
			tr := bulk.srv.Truth(loc)
			for _, ct := range tr[:3] {
				bulk.srv.UpdateContact(ct.Contact.ID, func(c *api.Contact) { c.LastName += " v2" })
				changed[loc]++
			}
			bulk.srv.DeleteContact(tr[3].Contact.ID)
			bulk.srv.AddContact(loc)
			changed[loc]++
			for _, ct := range tr[10:13] {
				quiet = append(quiet, ct.Contact.ID)
			}
		}
		for i, id := range quiet {
			if i%2 == 0 {
				bulk.srv.AddTaskQuiet(id)
			} else {
				bulk.srv.AddEvent(id)
			}
		}
		bulk.srv.ResetStats()
		incr := bulk.run(opt)
		incrMin := incrementalMinimum(bulk.srv, changed, sweepRuns, true)

		b.ReportMetric(float64(perFull), "full-per-contact-req")
		b.ReportMetric(float64(perFull2), "full-per-contact-again-req")
		b.ReportMetric(float64(perFull2)/float64(3*contacts), "full-per-contact-again/3n")
		b.ReportMetric(float64(bulkFull), "full-bulk-req")
		b.ReportMetric(float64(fullMin), "full-bulk-min")
		b.ReportMetric(float64(bulkFull)/float64(3*contacts), "full-bulk/3n")
		b.ReportMetric(float64(incr), "incr-req")
		b.ReportMetric(float64(incrMin), "incr-min")
		b.ReportMetric(float64(incr)/float64(incrMin), "incr/min")
		b.ReportMetric(float64(again["tasks_search"]+again["calendars"]), "full-per-contact-again-probes")
		b.Logf("full per-contact: first %d (%d probes), %.4f of 3/contact; again with the probes remembered %d (%d probes, %d id-listing pages), %.4f; %v",
			perFull, probes1, float64(perFull)/float64(3*contacts), perFull2, again["tasks_search"]+again["calendars"], again["search"]-int64(2*extract.SearchPages(contacts/locs, 100)),
			float64(perFull2)/float64(3*contacts), again)
		b.Logf("%d contacts, %d locations, %s/%s %d CPUs: full per-contact %d, full bulk %d (minimum %d, %.3f of 3/contact), incremental %d (minimum %d, %.3f); %v",
			contacts, locs, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), perFull, bulkFull, fullMin,
			float64(bulkFull)/float64(3*contacts), incr, incrMin, float64(incr)/float64(incrMin), bulk.srv.Stats().ByKind)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/errgroup"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

// BenchmarkExport100k exports 100,000 contacts (about 700k records) from the
// simulator on loopback into a fresh DuckDB file, and side by side fetches
// the same requests at the same concurrency with the bodies thrown away.
// It prints records/s for both, their ratio and the peak heap of each.
// BENCH_CONTACTS overrides the size.
func BenchmarkExport100k(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("BENCH_CONTACTS")); err == nil && v > 0 {
		n = v
	}
	t := &testing.T{}
	srv := sim.New(sim.Config{Seed: 42, Contacts: n, Locations: 2})
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	var records int64
	for _, loc := range srv.Locations() {
		for _, ct := range srv.Truth(loc) {
			records += 1 + int64(len(ct.Tasks)+len(ct.Notes)+len(ct.Events))
		}
	}
	const concurrency = 8
	for i := 0; i < b.N; i++ {
		rawDur, rawReq, rawPeak := measure(func() (int64, error) { return rawFetch(srv, base, concurrency) })
		path := filepath.Join(b.TempDir(), "bench.duckdb")
		var res pipeline.Result
		etlDur, _, etlPeak := measure(func() (int64, error) {
			var err error
			res, err = testExport(t, srv, base, path, func(c *Config) {
				c.Concurrency, c.PageLimit, c.BatchRows, c.CommitRows = concurrency, 500, 10_000, 100_000
			})
			return res.Requests, err
		})
		if t.Failed() {
			b.Fatal("export failed")
		}
		etlRate := float64(records) / etlDur.Seconds()
		rawRate := float64(records) / rawDur.Seconds()
		fmt.Printf("\n%d contacts, %d records, %d requests, concurrency %d per location, 2 locations\n", n, records, res.Requests, concurrency)
		fmt.Printf("%-22s %10s %12s %14s\n", "", "seconds", "records/s", "peak heap MiB")
		fmt.Printf("%-22s %10.2f %12.0f %14.1f\n", "raw fetch (discard)", rawDur.Seconds(), rawRate, float64(rawPeak)/(1<<20))
		fmt.Printf("%-22s %10.2f %12.0f %14.1f\n", "export to DuckDB", etlDur.Seconds(), etlRate, float64(etlPeak)/(1<<20))
		fmt.Printf("export / raw throughput: %.2f (raw requests %d, export requests %d, commits %d)\n", etlRate/rawRate, rawReq, res.Requests, res.Commits)
		b.ReportMetric(etlRate, "records/s")
		b.ReportMetric(etlRate/rawRate, "ratio")
		b.ReportMetric(float64(etlPeak)/(1<<20), "peakMiB")
	}
}

// measure runs fn and samples the heap in use above the level before it.
func measure(fn func() (int64, error)) (time.Duration, int64, uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > baseline && m.HeapInuse-baseline > peak.Load() {
					peak.Store(m.HeapInuse - baseline)
				}
			}
		}
	}()
	start := time.Now()
	n, err := fn()
	d := time.Since(start)
	close(done)
	if err != nil {
		panic(err)
	}
	return d, n, peak.Load()
}

// rawFetch sends the requests an export sends, bodies read and discarded:
// search pages in cursor mode and three child lists per contact.
func rawFetch(srv *sim.Server, base string, concurrency int) (int64, error) {
	ctx := context.Background()
	sources, err := simTokenSources(ctx, srv, base, srv.Locations())
	if err != nil {
		return 0, err
	}
	var reqs atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for _, loc := range srv.Locations() {
		hc := &http.Client{Transport: &oauth2.Transport{Source: sources[loc], Base: newTransport(concurrency)}}
		get := func(method, path string, body []byte) ([]byte, error) {
			req, _ := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
			req.Header.Set("Version", api.VersionContacts)
			req.Header.Set("Content-Type", "application/json")
			reqs.Add(1)
			resp, err := hc.Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			if method == http.MethodPost {
				return io.ReadAll(resp.Body)
			}
			_, err = io.Copy(io.Discard, resp.Body)
			return nil, err
		}
		g.Go(func() error {
			fan, fctx := errgroup.WithContext(ctx)
			fan.SetLimit(concurrency)
			sr := api.SearchRequest{LocationID: loc, PageLimit: 500, Sort: []api.Sort{{Field: "dateUpdated", Direction: "asc"}}}
			for {
				body, _ := json.Marshal(sr)
				page, err := get(http.MethodPost, "/contacts/search", body)
				if err != nil {
					return err
				}
				var resp struct {
					Contacts []struct {
						ID          string `json:"id"`
						SearchAfter []any  `json:"searchAfter"`
					} `json:"contacts"`
				}
				if err := json.Unmarshal(page, &resp); err != nil {
					return err
				}
				for _, c := range resp.Contacts {
					for _, res := range extract.ChildResources {
						fan.Go(func() error {
							if fctx.Err() != nil {
								return fctx.Err()
							}
							_, err := get(http.MethodGet, "/contacts/"+c.ID+"/"+res, nil)
							return err
						})
					}
				}
				if len(resp.Contacts) < sr.PageLimit {
					break
				}
				sr.SearchAfter = resp.Contacts[len(resp.Contacts)-1].SearchAfter
			}
			return fan.Wait()
		})
	}
	err = g.Wait()
	return reqs.Load(), err
}

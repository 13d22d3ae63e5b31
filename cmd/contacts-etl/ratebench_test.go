package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// BenchmarkRateLimited exports from a simulator that allows only benchRate
// requests per second per location (a fixed window, as the real API, scaled
// down from 100 per 10 s), over several locations at once. The exporter is
// seeded with the API's documented defaults and must learn the real limits
// from the X-RateLimit-* headers. It reports the wall time against the
// shortest time the limits allow (the busiest location's requests ÷ the
// allowed rate: locations are independent), and 429s as a share of requests.
// Targets: ratio within 1.10, 429s under 1%.
func BenchmarkRateLimited(b *testing.B) {
	const (
		benchRate      = 50 // per interval per location
		benchInterval  = time.Second
		benchLocations = 4
		benchContacts  = 4 * 500 // ~1,500 requests per location: ~30 s
	)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		srv := sim.New(sim.Config{Seed: 61, Contacts: benchContacts, Locations: benchLocations,
			RateLimit: sim.RateLimit{Max: benchRate, Interval: benchInterval}})
		base, err := srv.Start("127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		cfg := defaultConfig()
		cfg.Source, cfg.BaseURL, cfg.Locations = "sim", base, srv.Locations()
		cfg.Warehouse.Path = filepath.Join(b.TempDir(), "w.duckdb")
		cfg.LocationWorkers = benchLocations
		cfg.PageLimit = 100
		ctx := context.Background()
		sources, err := simTokenSources(ctx, srv, base, cfg.Locations)
		if err != nil {
			b.Fatal(err)
		}
		srv.ResetStats()
		b.StartTimer()
		start := time.Now()
		res, err := export(ctx, cfg, "run", sources, newLogger(io.Discard, "error"))
		wall := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		st := srv.Stats()
		_ = srv.Close()

		var total int64
		per := make([]int64, 0, len(st.ByLocation))
		for _, n := range st.ByLocation {
			total += n
			per = append(per, n)
		}
		busiest := slices.Max(per)
		rate := float64(benchRate) / benchInterval.Seconds()
		ideal := time.Duration(float64(busiest) / rate * float64(time.Second))
		ratio := wall.Seconds() / ideal.Seconds()
		share := 100 * float64(st.RateLimited) / float64(total)
		fmt.Printf("\nrate-limited export: %d locations, %d per %s each, %d contacts\n", benchLocations, benchRate, benchInterval, benchContacts)
		fmt.Printf("  requests            %d (busiest location %d; per location %v)\n", total, busiest, per)
		fmt.Printf("  wall time           %s\n", wall.Round(time.Millisecond))
		fmt.Printf("  requests / rate     %s (busiest location ÷ %.0f/s)\n", ideal.Round(time.Millisecond), rate)
		fmt.Printf("  ratio               %.3f (target <= 1.10)\n", ratio)
		fmt.Printf("  429s                %d = %.2f%% of requests (target < 1%%)\n", st.RateLimited, share)
		fmt.Printf("  client counted      %d requests, %d retries, %d 429s\n", res.Requests, res.Retries, res.Limited)
		b.ReportMetric(ratio, "wall/ideal")
		b.ReportMetric(share, "%429")
		if ratio > 1.10 || share >= 1 {
			b.Errorf("targets missed: ratio %.3f, 429s %.2f%%", ratio, share)
		}
	}
}

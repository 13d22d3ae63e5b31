package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/pipeline"
	"github.com/contacts-etl/contacts-etl/transform"
)

// TestProgressSilentOffTerminal: with stderr a plain file (as under cron)
// there is no display, and a run writes its JSON log lines and nothing
// else there.
func TestProgressSilentOffTerminal(t *testing.T) {
	const token = "pit-progress-test"
	_, base := startSim(t, sim.Config{Seed: 36, Contacts: 30, Locations: 1,
		StaticTokens: map[string]sim.StaticToken{token: {LocationID: "loc-0001", Scopes: []string{api.ScopeContactsRO}}}})
	dir := t.TempDir()
	errf, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	if d := newProgressDisplay(errf); d != nil {
		t.Fatal("a display on a file")
	}
	t.Setenv("CONTACTS_ETL_TOKEN", token)
	var out bytes.Buffer
	code := dispatch(context.Background(), []string{"run", "--auth", "static", "--source", "sim", "--base-url", base,
		"--locations", "loc-0001", "--warehouse", filepath.Join(dir, "w.duckdb"), "--rate-max", "1000000",
		"--rate-interval", "1s"}, &out, errf)
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	b, err := os.ReadFile(errf.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("stderr line is not a JSON log line: %q", l)
		}
	}
	if bytes.ContainsAny(b, "\r\x1b") {
		t.Error("terminal control characters on a file")
	}
}

// TestProgressDisplayLine: the display's line per location shows the
// committed contacts and children, requests, rate and the ETA when the
// location's size is known.
func TestProgressDisplayLine(t *testing.T) {
	var buf bytes.Buffer
	d := newProgressTo(&buf)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	d.now = func() time.Time { return now }
	d.expect(map[string]int64{"loc-1": 100})
	d.update(pipeline.Progress{Location: "loc-1", Committed: transform.Counts{"contacts": 10, "tasks": 3, "notes": 4}, Requests: 20})
	d.update(pipeline.Progress{Location: "loc-2", Committed: transform.Counts{"contacts": 5}, Requests: 6})
	now = start.Add(10 * time.Second)
	d.update(pipeline.Progress{Location: "loc-1", Committed: transform.Counts{"contacts": 50, "tasks": 30, "appointments": 10}, Requests: 200})
	if got, want := d.line("loc-1"), "50 contacts  40 children  200 requests  20.0 req/s  ETA 10s"; got != want {
		t.Errorf("loc-1: %q, want %q", got, want)
	}
	if got, want := d.line("loc-2"), "5 contacts  0 children  6 requests  0.6 req/s  ETA ?"; got != want {
		t.Errorf("loc-2: %q, want %q", got, want)
	}
	d.close() // completes the bars and returns (mpb draws only on a real terminal)
	var nilDisplay *progressDisplay
	nilDisplay.update(pipeline.Progress{Location: "x"}) // no panic, nothing drawn
	nilDisplay.close()
	if progressFunc(withProgress(context.Background(), nil)) != nil {
		t.Error("a Progress func without a display")
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

// TestRunExitCodes: each documented exit code of `run`, through dispatch
// against the simulator, and the outcome the runs table records for it.
func TestRunExitCodes(t *testing.T) {
	const token = "pit-exit-test"
	grant := map[string]sim.StaticToken{token: {LocationID: "loc-0001", Scopes: []string{api.ScopeContactsRO}}}
	cases := []struct {
		name    string
		sim     sim.Config
		args    []string
		lock    bool   // another run holds the warehouse
		want    int    // exit code
		outcome string // runs table's outcome of the run; "" = no run recorded
		says    string // on stderr
	}{
		{name: "ok", sim: sim.Config{Seed: 40, Contacts: 30, Locations: 1, StaticTokens: grant},
			want: exitOK, outcome: "ok"},
		{name: "failed", sim: sim.Config{Seed: 41, Contacts: 30, Locations: 1, StaticTokens: grant,
			Faults: sim.Faults{Rate5xx: 1, MaxPerRequest: 1000}},
			args: []string{"--max-retries", "0"}, want: exitFailed, outcome: "failed", says: "HTTP 50"}, // 5xx past the retries,
		{name: "usage", sim: sim.Config{Seed: 42, Contacts: 30, Locations: 1, StaticTokens: grant},
			args: []string{"--log-format", "xml"}, want: exitUsage, says: "log format"},
		{name: "partial", sim: sim.Config{Seed: 43, Contacts: 300, Locations: 1, StaticTokens: grant,
			RateLimit: sim.RateLimit{Daily: 20}},
			args: []string{"--daily-reserve", "10%", "--page-limit", "100"}, want: exitPartial, outcome: "partial", says: "daily quota"},
		{name: "locked", sim: sim.Config{Seed: 44, Contacts: 30, Locations: 1, StaticTokens: grant},
			lock: true, want: exitLocked, says: "another run holds the warehouse"},
		{name: "rejects", sim: sim.Config{Seed: 45, Contacts: 30, Locations: 1, StaticTokens: grant,
			Bad: sim.BadData{MissingID: 1}},
			want: exitRejects, outcome: "ok", says: "rejected whole"},
	}
	t.Setenv("CONTACTS_ETL_TOKEN", token)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, base := startSim(t, tc.sim)
			path := filepath.Join(t.TempDir(), "w.duckdb")
			if tc.lock {
				unlock, err := pipeline.Lock(context.Background(), pipeline.WarehouseDuckDB, path, false, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer unlock()
			}
			args := append([]string{"run", "--auth", "static", "--source", "sim", "--base-url", base,
				"--locations", "loc-0001", "--warehouse", path, "--rate-max", "1000000", "--rate-interval", "1s",
				"--log-format", "text", "--log-level", "error"}, tc.args...)
			var out, errb bytes.Buffer
			code := dispatch(context.Background(), args, &out, &errb)
			if code != tc.want {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.want, out.String(), errb.String())
			}
			if tc.says != "" && !strings.Contains(errb.String(), tc.says) {
				t.Errorf("stderr does not say %q: %s", tc.says, errb.String())
			}
			if strings.Contains(out.String()+errb.String(), token) {
				t.Error("the token was printed")
			}
			if tc.outcome == "" {
				if tc.want == exitUsage {
					if _, err := os.Stat(path); err == nil {
						t.Error("a usage error created the warehouse")
					}
				}
				return
			}
			_, outcome, _ := lastRun(t, path)
			if outcome != tc.outcome {
				t.Errorf("runs table outcome %q, want %q", outcome, tc.outcome)
			}
		})
	}
}

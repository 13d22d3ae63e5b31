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

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

func parseMetrics(t *testing.T, path string) map[string]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("metrics file does not parse: %v", err)
	}
	out := map[string]float64{}
	for name, mf := range fams {
		for _, m := range mf.Metric {
			key := name
			for _, l := range m.Label {
				if l.GetName() != "source" {
					key += "/" + l.GetValue()
				}
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestRunReportsItself runs `run` with --log-format json and
// --metrics-file: every log line is JSON, the summary line says the
// outcome, and the metrics file parses as Prometheus text with the rows
// the simulator's truth has and the requests the runs table recorded.
func TestRunReportsItself(t *testing.T) {
	const token = "pit-report-test"
	srv, base := startSim(t, sim.Config{Seed: 33, Contacts: 60, Locations: 1,
		StaticTokens: map[string]sim.StaticToken{token: {LocationID: "loc-0001", Scopes: []string{api.ScopeContactsRO}}}})
	dir := t.TempDir()
	path, metrics := filepath.Join(dir, "w.duckdb"), filepath.Join(dir, "contacts_etl.prom")
	t.Setenv("CONTACTS_ETL_TOKEN", token)
	var out, errb bytes.Buffer
	code := dispatch(context.Background(), []string{"run", "--auth", "static", "--source", "sim", "--base-url", base,
		"--locations", "loc-0001", "--warehouse", path, "--rate-max", "1000000", "--rate-interval", "1s",
		"--log-format", "json", "--metrics-file", metrics}, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if strings.Contains(out.String()+errb.String(), token) {
		t.Error("the token was printed")
	}
	summaries := 0
	for _, l := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if rec["msg"] == "summary" {
			summaries++
			if rec["outcome"] != "ok" || rec["exit"] != float64(0) {
				t.Errorf("summary %v", rec)
			}
		}
	}
	if summaries != 1 {
		t.Errorf("%d summary lines", summaries)
	}

	var contacts, tasks, notes, events int
	for _, c := range srv.Truth("loc-0001") {
		contacts++
		tasks += len(c.Tasks)
		notes += len(c.Notes)
		events += len(c.Events)
	}
	m := parseMetrics(t, metrics)
	for table, want := range map[string]int{"contacts": contacts, "tasks": tasks, "notes": notes, "appointments": events} {
		if m["contacts_etl_last_run_rows/"+table] != float64(want) {
			t.Errorf("rows %s: %v, truth %d", table, m["contacts_etl_last_run_rows/"+table], want)
		}
	}
	cfg := defaultConfig()
	cfg.Warehouse.Path = path
	db, err := openWarehouse(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var requests, retries, limited int64
	if err := db.QueryRow(`SELECT requests, retries, rate_limited FROM runs_latest`).Scan(&requests, &retries, &limited); err != nil {
		t.Fatal(err)
	}
	if m["contacts_etl_last_run_requests"] != float64(requests) || requests == 0 ||
		m["contacts_etl_last_run_retries"] != float64(retries) || m["contacts_etl_last_run_rate_limited"] != float64(limited) {
		t.Errorf("metrics %v; runs table requests %d retries %d 429s %d", m, requests, retries, limited)
	}
	if m["contacts_etl_last_run_outcome/run/ok"] != 1 || m["contacts_etl_last_success_timestamp_seconds"] <= 0 ||
		m["contacts_etl_last_run_duration_seconds"] <= 0 {
		t.Errorf("metrics %v", m)
	}
}

// TestMetricsKeepLastSuccess: a failed run replaces the file but keeps the
// time of the last success it replaces, and names its stopped locations.
func TestMetricsKeepLastSuccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.prom")
	ok := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	res := pipeline.Result{Rows: map[string]int64{"contacts": 7}, Requests: 9, Duration: 2 * time.Second}
	if err := writeMetrics(path, "s", "run", res, "ok", ok); err != nil {
		t.Fatal(err)
	}
	res.Stopped = map[string]error{"loc-2": os.ErrDeadlineExceeded}
	if err := writeMetrics(path, "s", "run", res, "failed", ok.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	m := parseMetrics(t, path)
	if m["contacts_etl_last_success_timestamp_seconds"] != float64(ok.Unix()) ||
		m["contacts_etl_last_run_timestamp_seconds"] != float64(ok.Add(time.Hour).Unix()) ||
		m["contacts_etl_last_run_outcome/run/failed"] != 1 || m["contacts_etl_last_run_location_stopped/loc-2"] != 1 ||
		m["contacts_etl_last_run_rows/contacts"] != 7 {
		t.Errorf("metrics %v", m)
	}
}

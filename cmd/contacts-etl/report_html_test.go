package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// parsedReport is what the report page shows: per run id its request
// count, and the ids of its SVG charts.
type parsedReport struct {
	requests map[string]int64
	svgs     []string
	scripts  int
}

func parseReport(t *testing.T, path string) parsedReport {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := html.Parse(f)
	if err != nil {
		t.Fatalf("report does not parse: %v", err)
	}
	attr := func(n *html.Node, k string) string {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val
			}
		}
		return ""
	}
	text := func(n *html.Node) string {
		var b strings.Builder
		for c := range n.Descendants() {
			if c.Type == html.TextNode {
				b.WriteString(c.Data)
			}
		}
		return b.String()
	}
	out := parsedReport{requests: map[string]int64{}}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		switch n.Data {
		case "script":
			out.scripts++
		case "svg":
			out.svgs = append(out.svgs, attr(n, "id"))
		case "tr":
			id := attr(n, "data-run")
			if id == "" {
				continue
			}
			for c := range n.Descendants() {
				if c.Type == html.ElementNode && c.Data == "td" && attr(c, "class") == "requests" {
					v, err := strconv.ParseInt(strings.TrimSpace(text(c)), 10, 64)
					if err != nil {
						t.Fatalf("run %s requests %q", id, text(c))
					}
					out.requests[id] = v
				}
			}
		}
	}
	return out
}

// TestReportHTML runs two exports against the simulator (DuckDB file and
// Parquet tree), writes the report and reads it back: every run's id and
// request count as the runs table has them, one SVG per chart, no script.
func TestReportHTML(t *testing.T) {
	const token = "pit-report-html"
	_, base := startSim(t, sim.Config{Seed: 35, Contacts: 40, Locations: 2,
		StaticTokens: map[string]sim.StaticToken{token: {LocationID: "loc-0001", Scopes: []string{api.ScopeContactsRO}},
			token + "-2": {LocationID: "loc-0002", Scopes: []string{api.ScopeContactsRO}}}})
	t.Setenv("CONTACTS_ETL_TOKEN", token)
	for _, kind := range []string{"duckdb", "parquet"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "w.duckdb")
			if kind == "parquet" {
				path = filepath.Join(dir, "pq")
			}
			for i := 0; i < 2; i++ {
				var out, errb bytes.Buffer
				code := dispatch(context.Background(), []string{"run", "--auth", "static", "--source", "sim", "--base-url", base,
					"--locations", "loc-0001", "--warehouse", path, "--warehouse-type", kind, "--rate-max", "1000000",
					"--rate-interval", "1s", "--log-format", "json"}, &out, &errb)
				if code != exitOK {
					t.Fatalf("run %d: exit %d: %s", i, code, errb.String())
				}
			}
			page := filepath.Join(dir, "runs.html")
			var out, errb bytes.Buffer
			if code := dispatch(context.Background(), []string{"report", "--warehouse", path, "--out", page}, &out, &errb); code != exitOK {
				t.Fatalf("report: exit %d: %s", code, errb.String())
			}
			cfg := defaultConfig()
			cfg.Warehouse.Type, cfg.Warehouse.Path = kind, path
			db, err := openWarehouse(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			want := map[string]int64{}
			rows, err := db.Query(`SELECT run_id, requests FROM runs`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id string
				var n int64
				if err := rows.Scan(&id, &n); err != nil {
					t.Fatal(err)
				}
				want[id] = n
			}
			rows.Close()
			if len(want) != 2 {
				t.Fatalf("runs table has %d runs", len(want))
			}
			got := parseReport(t, page)
			for id, n := range want {
				if g, ok := got.requests[id]; !ok || g != n || n == 0 {
					t.Errorf("run %s: report shows %d requests (listed %v), runs table %d", id, g, ok, n)
				}
			}
			if len(got.requests) != len(want) {
				t.Errorf("report lists %d runs, want %d", len(got.requests), len(want))
			}
			wantSVG := []string{"chart-requests", "chart-rows", "chart-waits", "chart-429"}
			if strings.Join(got.svgs, ",") != strings.Join(wantSVG, ",") {
				t.Errorf("svgs %v, want %v", got.svgs, wantSVG)
			}
			if got.scripts != 0 {
				t.Errorf("%d script elements", got.scripts)
			}
			b, _ := os.ReadFile(page)
			if bytes.Contains(b, []byte("http://")) && !bytes.Contains(b, []byte(`xmlns="http://www.w3.org/2000/svg"`)) {
				t.Error("the page refers to the network")
			}
			if !bytes.Contains(b, []byte(">loc-0001<")) {
				t.Error("no per-location series in the charts")
			}
		})
	}
}

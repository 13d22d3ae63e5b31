package main

import (
	"context"
	dsql "database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"github.com/contacts-etl/contacts-etl/load"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

// reportRun is one row of the runs table as the HTML report reads it.
type reportRun struct {
	ID, Source, Command, Outcome string
	Started                      time.Time
	DurationMs                   int64
	Requests, Retries, Limited   int64
	Rejects                      int64
	Rows                         map[string]int64
	Locations                    map[string]load.LocationStats // nil when the warehouse does not record them
}

// cmdReport writes a self-contained HTML page of the last runs: a table
// and inline SVG charts (no script, nothing fetched from the network).
func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("warehouse", "./warehouse.duckdb", "DuckDB file or Parquet folder to read")
	kind := fs.String("warehouse-type", "", "duckdb or parquet (default: parquet for a folder, duckdb for a file)")
	out := fs.String("out", "runs.html", "HTML file to write (replaced atomically)")
	last := fs.Int("runs", 30, "how many of the latest runs to show")
	source := fs.String("source", "", "only the runs of this source (default: all)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *last < 1 {
		return usageError{errors.New("--runs must be at least 1")}
	}
	if *kind == "" {
		*kind = pipeline.WarehouseDuckDB
		if st, err := os.Stat(*path); err == nil && st.IsDir() {
			*kind = pipeline.WarehouseParquet
		}
	}
	if *kind != pipeline.WarehouseDuckDB && *kind != pipeline.WarehouseParquet {
		return usageError{fmt.Errorf("warehouse type %q: want duckdb or parquet", *kind)}
	}
	db, err := openExisting(ctx, *kind, *path)
	if err != nil {
		return err
	}
	defer db.Close()
	runs, err := readReportRuns(ctx, db, *source, *last)
	if err != nil {
		return err
	}
	page := renderReport(runs, *path, time.Now())
	if err := renameio.WriteFile(*out, []byte(page), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d runs)\n", *out, len(runs))
	return nil
}

// readReportRuns reads the last n runs, oldest first. Columns the
// warehouse's runs view lacks (a Parquet tree written before its view had
// rows, locations and duration_ms) read as NULL.
func readReportRuns(ctx context.Context, db *dsql.DB, source string, n int) ([]reportRun, error) {
	cols := map[string]bool{}
	rs, err := db.QueryContext(ctx, "SELECT column_name FROM (DESCRIBE runs)")
	if err != nil {
		return nil, fmt.Errorf("runs: %w", err)
	}
	for rs.Next() {
		var c string
		if err := rs.Scan(&c); err != nil {
			rs.Close()
			return nil, err
		}
		cols[c] = true
	}
	rs.Close()
	opt := func(col, expr string) string {
		if cols[col] {
			return expr
		}
		return "NULL"
	}
	q := fmt.Sprintf(`SELECT run_id, source, command, started_at, coalesce(outcome, ''),
		coalesce(%s, CAST(epoch_ms(ended_at) - epoch_ms(started_at) AS BIGINT), 0),
		coalesce(requests, 0), coalesce(retries, 0), coalesce(rate_limited, 0), coalesce(rejects, 0),
		CAST(%s AS VARCHAR), CAST(%s AS VARCHAR)
		FROM runs WHERE ? = '' OR source = ? ORDER BY started_at DESC, run_id DESC LIMIT ?`,
		opt("duration_ms", "duration_ms"), opt("rows", "rows"), opt("locations", "locations"))
	rows, err := db.QueryContext(ctx, q, source, source, n)
	if err != nil {
		return nil, fmt.Errorf("runs: %w", err)
	}
	defer rows.Close()
	var out []reportRun
	for rows.Next() {
		var r reportRun
		var rowsJS, locsJS dsql.NullString
		if err := rows.Scan(&r.ID, &r.Source, &r.Command, &r.Started, &r.Outcome, &r.DurationMs,
			&r.Requests, &r.Retries, &r.Limited, &r.Rejects, &rowsJS, &locsJS); err != nil {
			return nil, fmt.Errorf("runs: %w", err)
		}
		if rowsJS.Valid {
			if err := json.Unmarshal([]byte(rowsJS.String), &r.Rows); err != nil {
				return nil, fmt.Errorf("runs %s rows: %w", r.ID, err)
			}
		}
		if locsJS.Valid {
			if err := json.Unmarshal([]byte(locsJS.String), &r.Locations); err != nil {
				return nil, fmt.Errorf("runs %s locations: %w", r.ID, err)
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

// chartSeries is one line of a chart: a value per run (x).
type chartSeries struct {
	Name   string
	Values []float64
}

var chartColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// svgLineChart draws series over the runs as an inline SVG line chart
// with its axes, a tooltip (<title>) per point and a legend.
func svgLineChart(id, title, unit string, xLabels []string, series []chartSeries) string {
	const w, h, left, right, top, bottom = 720, 260, 60, 150, 30, 50
	pw, ph := float64(w-left-right), float64(h-top-bottom)
	maxV := 0.0
	for _, s := range series {
		for _, v := range s.Values {
			maxV = max(maxV, v)
		}
	}
	if maxV == 0 {
		maxV = 1
	}
	x := func(i int) float64 {
		if len(xLabels) < 2 {
			return float64(left) + pw/2
		}
		return float64(left) + pw*float64(i)/float64(len(xLabels)-1)
	}
	y := func(v float64) float64 { return float64(top) + ph*(1-v/maxV) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="%s" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		html.EscapeString(id), w, h, w, h, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="18" font-weight="bold">%s</text>`, left, html.EscapeString(title))
	for i := 0; i <= 4; i++ {
		v := maxV * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, left, w-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" font-size="11">%s</text>`, left-4, y(v)+4, fmtNum(v))
	}
	fmt.Fprintf(&b, `<text x="12" y="%d" font-size="11" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`,
		top+int(ph/2), top+int(ph/2), html.EscapeString(unit))
	step := max(1, len(xLabels)/8)
	for i, l := range xLabels {
		if i%step == 0 || i == len(xLabels)-1 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="10" text-anchor="middle">%s</text>`, x(i), h-bottom+16, html.EscapeString(l))
		}
	}
	for si, s := range series {
		color := chartColors[si%len(chartColors)]
		var pts []string
		for i, v := range s.Values {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, color, strings.Join(pts, " "))
		for i, v := range s.Values {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s · %s: %s</title></circle>`,
				x(i), y(v), color, html.EscapeString(s.Name), html.EscapeString(xLabels[i]), fmtNum(v))
		}
		ly := top + 14*si
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="11">%s</text>`,
			w-right+10, ly, color, w-right+24, ly+9, html.EscapeString(s.Name))
	}
	if len(series) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#888">no data</text>`, left+20, top+int(ph/2))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func fmtNum(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprint(int64(v))
	}
	return fmt.Sprintf("%.1f", v)
}

// perLocation builds one series per location from f (a run without
// location detail counts as 0); without any location detail, one series
// "all locations" from whole.
func perLocation(runs []reportRun, f func(load.LocationStats) float64, whole func(reportRun) float64) []chartSeries {
	locs := map[string]bool{}
	for _, r := range runs {
		for l := range r.Locations {
			locs[l] = true
		}
	}
	if len(locs) == 0 {
		if whole == nil || len(runs) == 0 {
			return nil
		}
		s := chartSeries{Name: "all locations"}
		for _, r := range runs {
			s.Values = append(s.Values, whole(r))
		}
		return []chartSeries{s}
	}
	var out []chartSeries
	for _, l := range slices.Sorted(maps.Keys(locs)) {
		s := chartSeries{Name: l}
		for _, r := range runs {
			s.Values = append(s.Values, f(r.Locations[l]))
		}
		out = append(out, s)
	}
	return out
}

// renderReport is the whole page.
func renderReport(runs []reportRun, warehouse string, now time.Time) string {
	labels := make([]string, len(runs))
	tables := map[string]bool{}
	detail := false
	for i, r := range runs {
		labels[i] = r.Started.UTC().Format("01-02 15:04")
		for t := range r.Rows {
			tables[t] = true
		}
		detail = detail || r.Locations != nil
	}
	var rowSeries []chartSeries
	for _, t := range slices.Sorted(maps.Keys(tables)) {
		s := chartSeries{Name: t}
		for _, r := range runs {
			s.Values = append(s.Values, float64(r.Rows[t]))
		}
		rowSeries = append(rowSeries, s)
	}
	if len(tables) == 0 && len(runs) > 0 {
		// No per-table rows (the Parquet runs view): rejects only.
		s := chartSeries{Name: "rejects"}
		for _, r := range runs {
			s.Values = append(s.Values, float64(r.Rejects))
		}
		rowSeries = append(rowSeries, s)
	}
	charts := []string{
		svgLineChart("chart-requests", "Requests per run, per location", "requests", labels,
			perLocation(runs, func(s load.LocationStats) float64 { return float64(s.Requests) }, func(r reportRun) float64 { return float64(r.Requests) })),
		svgLineChart("chart-rows", "Rows committed per run, per table", "rows", labels, rowSeries),
		svgLineChart("chart-waits", "Time waiting on the rate governor and backoff, per location", "seconds", labels,
			perLocation(runs, func(s load.LocationStats) float64 { return float64(s.WaitMs) / 1000 }, nil)),
		svgLineChart("chart-429", "429 answers per run, per location", "429s", labels,
			perLocation(runs, func(s load.LocationStats) float64 { return float64(s.RateLimited) }, func(r reportRun) float64 { return float64(r.Limited) })),
	}
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>contacts-etl runs</title>\n<style>")
	b.WriteString(`body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:13px}` +
		`td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td.t,th.t{text-align:left}` +
		`.failed,.aborted{color:#b00}.partial,.rejects{color:#a60}svg.chart{display:block;margin:1.5em 0}`)
	b.WriteString("</style></head><body>\n")
	fmt.Fprintf(&b, "<h1>contacts-etl: the last %d runs</h1>\n<p>Warehouse <code>%s</code>, written %s.",
		len(runs), html.EscapeString(warehouse), now.UTC().Format(time.RFC3339))
	if !detail && len(runs) > 0 {
		b.WriteString(" This warehouse's runs view records no per-location counters: the charts show whole runs.")
	}
	b.WriteString("</p>\n")
	for _, c := range charts {
		b.WriteString(c)
		b.WriteString("\n")
	}
	b.WriteString("<table id=\"runs\"><thead><tr><th class=\"t\">run</th><th class=\"t\">source</th><th class=\"t\">command</th>" +
		"<th class=\"t\">started (UTC)</th><th>duration</th><th class=\"t\">outcome</th><th>requests</th><th>429s</th><th>retries</th>" +
		"<th>rows</th><th>rejects</th></tr></thead><tbody>\n")
	for _, r := range slices.Backward(runs) {
		var total int64
		for t, v := range r.Rows {
			if t != "rejects" && t != "field_rejects" {
				total += v
			}
		}
		fmt.Fprintf(&b, `<tr data-run="%s"><td class="t">%s</td><td class="t">%s</td><td class="t">%s</td><td class="t">%s</td>`+
			`<td>%s</td><td class="t %s">%s</td><td class="requests">%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td></tr>`+"\n",
			html.EscapeString(r.ID), html.EscapeString(r.ID), html.EscapeString(r.Source), html.EscapeString(r.Command),
			r.Started.UTC().Format("2006-01-02 15:04:05"), (time.Duration(r.DurationMs) * time.Millisecond).String(),
			html.EscapeString(r.Outcome), html.EscapeString(r.Outcome), r.Requests, r.Limited, r.Retries, total, r.Rejects)
	}
	b.WriteString("</tbody></table>\n</body></html>\n")
	return b.String()
}

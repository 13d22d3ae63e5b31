package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/renameio/v2"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/term"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/pipeline"
)

// reportFlags are how a run reports itself: its log format and an optional
// Prometheus textfile.
type reportFlags struct {
	LogFormat   string // text, json or "" (text on a terminal, JSON otherwise)
	MetricsFile string // node_exporter textfile; "" writes none
}

func (r *reportFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.LogFormat, "log-format", "", "text or json (default: text on a terminal, json otherwise)")
	fs.StringVar(&r.MetricsFile, "metrics-file", "", "write the run's metrics here in Prometheus text format, atomically (for node_exporter's textfile collector)")
}

func (r reportFlags) validate() error {
	switch r.LogFormat {
	case "", "text", "json":
		return nil
	}
	return usageError{fmt.Errorf("log format %q: want text or json", r.LogFormat)}
}

// isTerminal tells whether w is a terminal (not a pipe, file or cron's mail).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newReportLogger is newLogger in the chosen format.
func newReportLogger(w io.Writer, level, format string) *slog.Logger {
	if format == "" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	if format == "text" {
		return newLogger(w, level)
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// exportReported authenticates, exports and prints the summary (the body
// of run and backfill), and reports the run: the log format, a one-line
// summary in the log, and the metrics file.
func exportReported(ctx context.Context, cfg Config, command string, rf reportFlags, stdout, stderr io.Writer) error {
	if err := rf.validate(); err != nil {
		return err
	}
	log := newReportLogger(stderr, cfg.LogLevel, rf.LogFormat)
	var srcs []sourceRun
	var names []string // the metrics' and the summary's source label
	for _, sc := range cfg.sourceConfigs() {
		names = append(names, sc.Source)
		tokens, err := tokenSources(ctx, sc)
		if err != nil {
			if len(cfg.Sources) > 0 {
				return fmt.Errorf("source %s: %w", sc.Source, err)
			}
			return err
		}
		srcs = append(srcs, sourceRun{sc, tokens})
	}
	pd := newProgressDisplay(stderr) // nil (silent) unless stderr is a terminal
	res, err := exportSources(withProgress(ctx, pd), cfg, command, srcs, log)
	pd.close()
	printSummary(stdout, cfg, res)
	if err == nil && res.Rows["rejects"] > 0 {
		err = errRejects
	}
	outcome := runOutcome(err)
	log.Info("summary", "command", command, "source", strings.Join(names, ","), "outcome", outcome, "exit", exitCode(err),
		"rows", rowTotal(res), "rejects", res.Rows["rejects"], "requests", res.Requests, "retries", res.Retries,
		"rate_limited", res.Limited, "duration", res.Duration.Round(time.Millisecond), "stopped", len(res.Stopped))
	if rf.MetricsFile != "" {
		if merr := writeMetrics(rf.MetricsFile, strings.Join(names, ","), command, res, outcome, time.Now()); merr != nil {
			log.Error("metrics file not written", "path", rf.MetricsFile, "err", merr)
			if err == nil {
				err = merr
			}
		}
	}
	return err
}

func rowTotal(res pipeline.Result) int64 {
	var n int64
	for t, v := range res.Rows {
		if t != "rejects" && t != "field_rejects" {
			n += v
		}
	}
	return n
}

// runOutcome names the outcome of a run's error as the runs table does.
func runOutcome(err error) string {
	switch exitCode(err) {
	case exitOK:
		return "ok"
	case exitPartial:
		return "partial"
	case exitRejects:
		return "rejects"
	case exitLocked:
		return "locked"
	}
	return "failed"
}

// exitCode is the exit code dispatch gives err.
// exitCode is the documented exit code of a command's error.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, pipeline.ErrPartial), errors.Is(err, extract.ErrQuotaReserve):
		return exitPartial
	case errors.Is(err, pipeline.ErrLocked):
		return exitLocked
	case errors.Is(err, errRejects):
		return exitRejects
	}
	return exitFailed
}

// writeMetrics replaces path with the run's metrics in the Prometheus text
// format. The last success time is carried over from the file it replaces
// when this run did not succeed, so an alert on its age keeps working.
func writeMetrics(path, source, command string, res pipeline.Result, outcome string, now time.Time) error {
	lastOK := 0.0
	if outcome == "ok" || outcome == "partial" || outcome == "rejects" {
		lastOK = float64(now.UnixMilli()) / 1000
	} else if f, err := os.Open(path); err == nil {
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, perr := p.TextToMetricFamilies(f)
		f.Close()
		if perr == nil {
			if mf := fams["contacts_etl_last_success_timestamp_seconds"]; mf != nil && len(mf.Metric) > 0 {
				lastOK = mf.Metric[0].GetGauge().GetValue()
			}
		}
	}
	src := fmt.Sprintf("source=%q", source)
	var b strings.Builder
	gauge := func(name, help string, samples ...string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		for _, s := range samples {
			fmt.Fprintf(&b, "%s%s\n", name, s)
		}
	}
	one := func(v float64) string { return fmt.Sprintf("{%s} %g", src, v) }
	tables := make([]string, 0, len(res.Rows))
	for t := range res.Rows {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	var rows []string
	for _, t := range tables {
		rows = append(rows, fmt.Sprintf("{%s,table=%q} %d", src, t, res.Rows[t]))
	}
	if len(rows) == 0 {
		rows = append(rows, fmt.Sprintf("{%s,table=\"contacts\"} 0", src))
	}
	gauge("contacts_etl_last_run_rows", "Rows committed by the last run, per table.", rows...)
	gauge("contacts_etl_last_run_requests", "API requests made by the last run.", one(float64(res.Requests)))
	gauge("contacts_etl_last_run_rate_limited", "429 answers received by the last run.", one(float64(res.Limited)))
	gauge("contacts_etl_last_run_retries", "Requests retried by the last run.", one(float64(res.Retries)))
	gauge("contacts_etl_last_run_duration_seconds", "Duration of the last run.", one(res.Duration.Seconds()))
	gauge("contacts_etl_last_run_timestamp_seconds", "When the last run ended (Unix time).", one(float64(now.UnixMilli())/1000))
	gauge("contacts_etl_last_run_outcome", "1 for the last run's outcome (ok, partial, rejects, failed, locked).",
		fmt.Sprintf("{%s,command=%q,outcome=%q} 1", src, command, outcome))
	gauge("contacts_etl_last_success_timestamp_seconds", "When a run last completed (Unix time; 0: never seen).", one(lastOK))
	locs := make([]string, 0, len(res.Stopped))
	for l := range res.Stopped {
		locs = append(locs, l)
	}
	slices.Sort(locs)
	var stopped []string
	for _, l := range locs {
		stopped = append(stopped, fmt.Sprintf("{%s,location=%q} 1", src, l))
	}
	if len(stopped) > 0 {
		gauge("contacts_etl_last_run_location_stopped", "1 for each location the last run stopped early (quota, cursor, credentials).", stopped...)
	}
	return renameio.WriteFile(path, []byte(b.String()), 0o644)
}

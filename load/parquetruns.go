package load

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// The manifest keeps the latest runs only: the one `status` shows and the
// running ones. Once it holds more than ParquetManifestRuns +
// parquetRunsBatch runs, Start moves the oldest finished ones beyond
// ParquetManifestRuns into a Parquet file of <dir>/_runs/ (written and
// fsynced before the manifest that names it and drops them is published),
// so the manifest stays small however many runs there were (a run's
// per-location counters make it a few kB with many locations). When
// parquetRunsFiles files are listed, the next archive rewrites them all
// into one; files the manifest no longer names go at the next Start. The
// runs view reads the manifest's runs and the files.
const (
	ParquetManifestRuns = 10
	parquetRunsBatch    = 10
	parquetRunsFiles    = 8
	parquetRunsDir      = "_runs"
)

var runsCols = []string{"run_id", "source", "command", "started_at", "ended_at", "outcome", "error",
	"requests", "retries", "rate_limited", "rejects", "rows", "locations", "duration_ms"}

var runsTypes = []string{"VARCHAR", "VARCHAR", "VARCHAR", "TIMESTAMPTZ", "TIMESTAMPTZ", "VARCHAR", "VARCHAR",
	"BIGINT", "BIGINT", "BIGINT", "BIGINT", "JSON", "JSON", "BIGINT"}

// runsSelect is runs as rows of the runs table (as DuckDB's, columns
// runsCols).
func runsSelect(runs []ledgerRun) string {
	var rows [][]string
	for _, r := range runs {
		row := []string{lit(r.ID), lit(r.Source), lit(r.Command), tlit(r.StartedAt), "NULL", "'running'", "NULL",
			"NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"}
		if res := r.Result; res != nil {
			row[4], row[5], row[6] = tlit(res.EndedAt), lit(res.Outcome), lit(res.Error)
			row[7], row[8], row[9], row[10] = fmt.Sprint(res.Requests), fmt.Sprint(res.Retries), fmt.Sprint(res.RateLimited), fmt.Sprint(res.Rejects)
			row[11], row[12] = jsonLit(res.Rows), jsonLit(res.Locations)
			if !res.EndedAt.IsZero() {
				row[13] = fmt.Sprint(res.EndedAt.Sub(r.StartedAt).Milliseconds())
			}
		}
		rows = append(rows, row)
	}
	return valuesView(runsCols, runsTypes, rows)
}

func jsonLit[M ~map[string]V, V any](m M) string {
	if len(m) == 0 {
		return "NULL"
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "NULL"
	}
	return sqlString(string(b))
}

// runsView is the runs view of views.sql: the manifest's runs and the
// archived ones (relative paths).
func runsView(l *ledger) string {
	sel := runsSelect(l.Runs)
	if len(l.RunArchives) > 0 {
		sel = fmt.Sprintf("%s\nUNION ALL BY NAME\nSELECT %s FROM read_parquet(%s)", sel, strings.Join(runsCols, ", "),
			(&Parquet{}).fileList(l.RunArchives, true))
	}
	return fmt.Sprintf("CREATE OR REPLACE VIEW runs AS\n%s;\n\n", sel)
}

// archiveRuns moves next's oldest finished runs beyond ParquetManifestRuns
// into a new file of _runs when there are more than
// ParquetManifestRuns + parquetRunsBatch; the caller publishes next.
func (p *Parquet) archiveRuns(ctx context.Context, next *ledger) error {
	if len(next.Runs) <= ParquetManifestRuns+parquetRunsBatch {
		return nil
	}
	var old, keep []ledgerRun
	for i, r := range next.Runs {
		if i < len(next.Runs)-ParquetManifestRuns && r.Result != nil {
			old = append(old, r)
		} else {
			keep = append(keep, r)
		}
	}
	if len(old) == 0 {
		return nil
	}
	last := old[len(old)-1]
	rel := path.Join(parquetRunsDir, fmt.Sprintf("runs-%d-%d.parquet", last.StartedAt.UnixMicro(), len(old)))
	name := filepath.Join(p.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	sel := runsSelect(old)
	files := next.RunArchives
	if len(files) >= parquetRunsFiles {
		sel = fmt.Sprintf("SELECT %s FROM read_parquet(%s)\nUNION ALL BY NAME\n%s", strings.Join(runsCols, ", "), p.fileList(files), sel)
		files = nil
	}
	err := p.query(ctx, func(c *sql.Conn) error {
		_, err := c.ExecContext(ctx, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION zstd)", sel, sqlString(name)))
		return err
	})
	if err != nil {
		return fmt.Errorf("archive runs: %w", err)
	}
	if err := syncPaths([]string{name, filepath.Dir(name)}); err != nil {
		return err
	}
	next.Runs = keep
	next.RunArchives = append(slices.Clone(files), rel)
	return nil
}

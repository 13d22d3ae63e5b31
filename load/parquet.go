package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/google/renameio/v2"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// Files the Parquet sink keeps in its directory besides the data files.
const (
	ParquetLedgerFile = "ledger.json"
	ParquetViewsFile  = "views.sql"
)

// Parquet is a Sink that writes Parquet files to a directory:
//
//	<dir>/<table>/<seq>.parquet          rows of one commit (zstd, bounded row groups)
//	<dir>/<table>/<seq>.deletes.parquet  soft deletes of one commit (_source, id, _deleted_at, _seq)
//	<dir>/<table>/<seq>.cdeletes.parquet soft deletes by contact_id of one commit (same columns)
//	<dir>/sweeps/<seq>[.c].parquet       when contacts' children were read in full (.c: compacted)
//	<dir>/ledger.json                    published files, state (retries too) and runs (the commit point)
//	<dir>/views.sql                      DuckDB views over the published files
//
// A commit writes its files under temporary names, syncs and renames them,
// then atomically replaces ledger.json: files not listed there are not part
// of the warehouse (a failed commit removes its own; Start removes leftovers).
// Merge by key happens at read time: views.sql defines one view per table
// that keeps, per key, the row with the newest _extracted_at (ties: the later
// commit, then the later row), with _deleted_at set by a later delete, plus
// the analyst views of sql/views.sql and runs, watermarks, windows, sweeps,
// reconciles and retries views of the ledger. The Store reads through the same rule. Analysts run it in any DuckDB: `duckdb -c ".read views.sql"`.
// The views name the files by absolute path.
//
// One Parquet sink per directory at a time; it is not safe for concurrent use.
type Parquet struct {
	dir    string
	cfg    config
	ledger *ledger
	last   CommitStats
	hook   func(table string) error
}

var _ Sink = (*Parquet)(nil)

type ledger struct {
	Version    int                 `json:"version"`
	Seq        int64               `json:"seq"`
	Files      map[string][]string `json:"files"`   // table → data files, relative to the directory
	Deletes    map[string][]string `json:"deletes"` // table → tombstone files
	Watermarks []Watermark         `json:"watermarks"`
	Windows    []Window            `json:"windows"`
	Runs       []ledgerRun         `json:"runs"`
	// Fields added after the first release: a ledger without them loads.
	ContactDeletes map[string][]string `json:"contact_deletes,omitempty"` // table → tombstone files by contact_id
	Sweeps         []string            `json:"sweeps,omitempty"`          // sweep files, oldest first
	Reconciles     []Reconcile         `json:"reconciles,omitempty"`      // the latest per (source, location)
	Retries        []Retry             `json:"retries,omitempty"`         // by source, location, FirstAt, ContactID
}

type ledgerRun struct {
	Run
	Result *RunResult `json:"result,omitempty"`
}

// NewParquet returns a sink writing to dir, which is created if needed.
func NewParquet(dir string, opts ...Option) (*Parquet, error) {
	d, err := absPath(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, fmt.Errorf("parquet warehouse: %w", err)
	}
	return &Parquet{dir: d, cfg: newConfig(opts)}, nil
}

// Dir is the sink's absolute directory.
func (p *Parquet) Dir() string { return p.dir }

// LastCommit returns the counters of the latest successful Commit.
func (p *Parquet) LastCommit() CommitStats { return p.last }

func (p *Parquet) load() (*ledger, error) {
	if p.ledger != nil {
		return p.ledger, nil
	}
	l := &ledger{Version: whsql.SchemaVersion, Files: map[string][]string{}, Deletes: map[string][]string{}}
	b, err := os.ReadFile(filepath.Join(p.dir, ParquetLedgerFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read ledger: %w", err)
	default:
		if err := json.Unmarshal(b, l); err != nil {
			return nil, fmt.Errorf("read ledger %s: %w", filepath.Join(p.dir, ParquetLedgerFile), err)
		}
		if l.Version > whsql.SchemaVersion {
			return nil, fmt.Errorf("%w: ledger version %d", ErrSchemaNewer, l.Version)
		}
	}
	p.ledger = l
	return l, nil
}

// publish replaces the ledger and the views file with next.
func (p *Parquet) publish(next *ledger) error {
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return err
	}
	if err := renameio.WriteFile(filepath.Join(p.dir, ParquetLedgerFile), b, 0o644); err != nil {
		return fmt.Errorf("write ledger: %w", err)
	}
	p.ledger = next
	views, err := p.views(next)
	if err != nil {
		return err
	}
	// The ledger is the commit point; the views are derived from it and
	// rewritten by the next publish if this write fails.
	if err := renameio.WriteFile(filepath.Join(p.dir, ParquetViewsFile), []byte(views), 0o644); err != nil {
		return fmt.Errorf("write views: %w", err)
	}
	return nil
}

// Start implements Sink. It also removes files left by a failed commit.
func (p *Parquet) Start(ctx context.Context, run Run) (*State, error) {
	if run.ID == "" || run.Source == "" {
		return nil, errors.New("start run: ID and Source are required")
	}
	if run.StartedAt.IsZero() {
		run.StartedAt = time.Now()
	}
	run.StartedAt = run.StartedAt.UTC()
	p.ledger = nil
	l, err := p.load()
	if err != nil {
		return nil, err
	}
	p.collect(l)
	next := l.clone()
	for i, r := range next.Runs {
		if r.Source == run.Source && r.Result == nil {
			next.Runs[i].Result = &RunResult{RunID: r.ID, EndedAt: time.Now().UTC(), Outcome: "aborted",
				Error: "the process ended before the run finished (killed or crashed); the next run resumed from the committed state"}
		}
	}
	next.Runs = append(next.Runs, ledgerRun{Run: run})
	if err := p.publish(next); err != nil {
		return nil, fmt.Errorf("start run %s: %w", run.ID, err)
	}
	st := &State{}
	for _, w := range next.Watermarks {
		if w.Source == run.Source {
			st.Watermarks = append(st.Watermarks, w)
		}
	}
	for _, w := range next.Windows {
		if w.Source == run.Source {
			st.Windows = append(st.Windows, w)
		}
	}
	return st, nil
}

// collect removes the data files that the ledger does not list.
func (p *Parquet) collect(l *ledger) {
	listed := map[string]bool{}
	for _, fs := range []map[string][]string{l.Files, l.Deletes, l.ContactDeletes, {parquetSweepsDir: l.Sweeps}} {
		for _, names := range fs {
			for _, n := range names {
				listed[n] = true
			}
		}
	}
	dirs := []string{parquetSweepsDir}
	for _, t := range whsql.Tables {
		dirs = append(dirs, t.Name)
	}
	for _, d := range dirs {
		ents, _ := os.ReadDir(filepath.Join(p.dir, d))
		for _, e := range ents {
			rel := filepath.Join(d, e.Name())
			if !listed[rel] {
				os.Remove(filepath.Join(p.dir, rel))
			}
		}
	}
}

// Finish implements Sink.
func (p *Parquet) Finish(ctx context.Context, res RunResult) error {
	l, err := p.load()
	if err != nil {
		return err
	}
	if res.EndedAt.IsZero() {
		res.EndedAt = time.Now()
	}
	res.EndedAt = res.EndedAt.UTC()
	next := l.clone()
	i := slices.IndexFunc(next.Runs, func(r ledgerRun) bool { return r.ID == res.RunID })
	if i < 0 {
		return fmt.Errorf("finish run %s: no such run (Start was not called)", res.RunID)
	}
	next.Runs[i].Result = &res
	if err := p.publish(next); err != nil {
		return fmt.Errorf("finish run %s: %w", res.RunID, err)
	}
	return nil
}

// Close implements Sink.
func (p *Parquet) Close(context.Context) error { return nil }

// Commit implements Sink: one file per table with rows (and per table with
// deletes), then the ledger. On error the files written are removed.
func (p *Parquet) Commit(ctx context.Context, c *Commit) (err error) {
	if err := validate(c); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := validateRetries(c); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	for _, w := range c.Windows {
		if w.Status != "open" && w.Status != "done" {
			return fmt.Errorf("commit: window status %q is not open or done", w.Status)
		}
	}
	l, err := p.load()
	if err != nil {
		return err
	}
	began := time.Now()
	next := l.clone()
	next.Seq++
	var written []string
	defer func() {
		if err != nil {
			for _, f := range written {
				os.Remove(filepath.Join(p.dir, f))
			}
			err = fmt.Errorf("commit run %s to %s: %w", c.RunID, p.dir, err)
		}
	}()
	stats := CommitStats{Tables: map[string]TableStats{}}
	for _, t := range whsql.Tables {
		recs := c.Records[t.Name]
		if rowCount(recs) == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel := filepath.Join(t.Name, fmt.Sprintf("%012d.parquet", next.Seq))
		if err := p.writeFile(rel, t.Schema, recs); err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
		written = append(written, rel)
		next.Files[t.Name] = append(next.Files[t.Name], rel)
		stats.Tables[t.Name] = TableStats{Staged: rowCount(recs), Written: rowCount(recs)}
		if p.hook != nil {
			if err := p.hook(t.Name); err != nil {
				return err
			}
		}
	}
	if err := p.writeDeletes(c.Deletes, next, &written, stats); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.writeSweeps(ctx, c.Swept, next, &written); err != nil {
		return fmt.Errorf("sweeps: %w", err)
	}
	next.Reconciles = addReconciles(next.Reconciles, c.Reconciled)
	next.Retries = applyRetries(next.Retries, c)
	next.Watermarks = upsert(next.Watermarks, c.Watermarks, func(a, b Watermark) bool {
		return a.Source == b.Source && a.LocationID == b.LocationID && a.Resource == b.Resource
	}, func(w Watermark) Watermark { w.Value = w.Value.UTC(); return w })
	next.Windows = upsert(next.Windows, c.Windows, func(a, b Window) bool {
		return a.Source == b.Source && a.LocationID == b.LocationID && a.Resource == b.Resource && a.Start.Equal(b.Start)
	}, func(w Window) Window { w.Start, w.End = w.Start.UTC(), w.End.UTC(); return w })
	slices.SortStableFunc(next.Windows, func(a, b Window) int {
		return cmpAll(strings.Compare(a.Source, b.Source), strings.Compare(a.LocationID, b.LocationID),
			strings.Compare(a.Resource, b.Resource), a.Start.Compare(b.Start))
	})
	if err := syncDirs(p.dir, written); err != nil {
		return err
	}
	if err := p.publish(next); err != nil {
		return err
	}
	stats.Duration = time.Since(began)
	p.last = stats
	return nil
}

// SetDeleted soft-deletes rows by key in a commit of its own.
func (p *Parquet) SetDeleted(ctx context.Context, table, source string, ids []string, at time.Time) error {
	return p.Commit(ctx, &Commit{Deletes: []Delete{{Table: table, Source: source, IDs: ids, At: at}}})
}

var tombstoneSchema = arrow.NewSchema([]arrow.Field{
	{Name: whsql.ColSource, Type: arrow.BinaryTypes.String},
	{Name: "id", Type: arrow.BinaryTypes.String},
	{Name: whsql.ColDeletedAt, Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
	{Name: "_seq", Type: arrow.PrimitiveTypes.Int64},
}, nil)

func (p *Parquet) writeDeletes(dels []Delete, next *ledger, written *[]string, stats CommitStats) error {
	type kind struct {
		table     string
		byContact bool
	}
	byKind := map[kind][]Delete{}
	for _, d := range dels {
		k := kind{d.Table, d.ByContact}
		byKind[k] = append(byKind[k], d)
	}
	for k, ds := range byKind {
		table := k.table
		b := array.NewRecordBuilder(p.cfg.mem, tombstoneSchema)
		var n int64
		for _, d := range ds {
			for _, id := range d.IDs {
				b.Field(0).(*array.StringBuilder).Append(d.Source)
				b.Field(1).(*array.StringBuilder).Append(id)
				b.Field(2).(*array.TimestampBuilder).AppendTime(d.At.UTC())
				b.Field(3).(*array.Int64Builder).Append(next.Seq)
				n++
			}
		}
		rec := b.NewRecordBatch()
		b.Release()
		suffix, list := "deletes", next.Deletes
		if k.byContact {
			suffix, list = "cdeletes", next.ContactDeletes
		}
		rel := filepath.Join(table, fmt.Sprintf("%012d.%s.parquet", next.Seq, suffix))
		err := p.writeFile(rel, tombstoneSchema, []arrowRecord{rec})
		rec.Release()
		if err != nil {
			return fmt.Errorf("%s deletes: %w", table, err)
		}
		*written = append(*written, rel)
		list[table] = append(list[table], rel)
		ts := stats.Tables[table]
		ts.Deleted += n // keys asked for; matches are resolved at read time
		stats.Tables[table] = ts
	}
	return nil
}

// writeFile writes recs to rel under a temporary name, syncs it and renames
// it into place.
func (p *Parquet) writeFile(rel string, schema *arrow.Schema, recs []arrowRecord) error {
	final := filepath.Join(p.dir, rel)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(final), "."+filepath.Base(rel)+".*.tmp")
	if err != nil {
		return err
	}
	if err := writeParquet(f, schema, recs, p.cfg); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), final); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// syncDirs makes the renames of the files durable before the ledger names them.
func syncDirs(root string, rels []string) error {
	seen := map[string]bool{}
	for _, r := range rels {
		d := filepath.Join(root, filepath.Dir(r))
		if seen[d] {
			continue
		}
		seen[d] = true
		f, err := os.Open(d)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("sync %s: %w", d, err)
		}
	}
	return nil
}

func (l *ledger) clone() *ledger {
	n := *l
	n.Files, n.Deletes, n.ContactDeletes = map[string][]string{}, map[string][]string{}, map[string][]string{}
	for k, v := range l.Files {
		n.Files[k] = slices.Clone(v)
	}
	for k, v := range l.Deletes {
		n.Deletes[k] = slices.Clone(v)
	}
	for k, v := range l.ContactDeletes {
		n.ContactDeletes[k] = slices.Clone(v)
	}
	n.Sweeps = slices.Clone(l.Sweeps)
	n.Reconciles = slices.Clone(l.Reconciles)
	n.Retries = slices.Clone(l.Retries)
	n.Watermarks = slices.Clone(l.Watermarks)
	n.Windows = slices.Clone(l.Windows)
	n.Runs = slices.Clone(l.Runs)
	return &n
}

func upsert[T any](have, add []T, same func(a, b T) bool, norm func(T) T) []T {
	for _, a := range add {
		a = norm(a)
		if i := slices.IndexFunc(have, func(h T) bool { return same(h, a) }); i >= 0 {
			have[i] = a
		} else {
			have = append(have, a)
		}
	}
	return have
}

func cmpAll(cs ...int) int {
	for _, c := range cs {
		if c != 0 {
			return c
		}
	}
	return 0
}

package load

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/google/renameio/v2"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// Files the Parquet sink keeps in its directory besides the data files.
const (
	// ParquetManifestFile lists the published files and holds the state:
	// writing it is the commit point.
	ParquetManifestFile = "_manifest.json"
	// ParquetLedgerFile is the manifest of the first layout (per-commit
	// files merged by views.sql); a warehouse without data files in it
	// is taken over, one with data files must be exported again.
	ParquetLedgerFile = "ledger.json"
	ParquetViewsFile  = "views.sql"
)

// Parquet is a Sink that writes Parquet files to a directory:
//
//	<dir>/<table>/location_id=<id>/b<bucket>.parquet  the current row of each key (zstd)
//	<dir>/sweeps/<seq>[.c].parquet  when contacts' children were read in full (.c: compacted)
//	<dir>/_runs/runs-<seq>.parquet  runs older than the manifest's latest (see ParquetManifestRuns)
//	<dir>/_manifest.json            published files (relative paths, row counts), schema version,
//	                                windows, watermarks, runs, retries, reconciles (the commit point)
//	<dir>/views.sql                 DuckDB views over the folders, relative paths (run from <dir>)
//	<dir>/_staging/<seq>/           a commit's files before they are published
//
// Every published file holds one row per key, with its latest values and
// its soft delete: read_parquet('<dir>/contacts/**/*.parquet',
// hive_partitioning = true) is the table, no views needed. The folder's
// location_id always equals the file's _location_id column.
//
// A commit merges its rows into copies of the (location, bucket) files it
// touches (see mergeTable), written and fsynced under _staging, then
// publishes the manifest naming the new files and the state that covers
// them (temp file, fsync, rename, fsync of the directory), then renames
// each new file over the old one of the same name: rename(2) replaces it
// atomically, so a glob reader sees every key in exactly one file, old or
// new, at any instant, also after a crash. A crash before the manifest is
// written leaves the old version (Start removes the staging area); after
// it, the next Start finishes the renames the manifest records as pending
// (a commit that touched several buckets rolls forward; until then a glob
// reader sees some buckets new, some old, each key once). Start also
// removes any file in the table folders that the manifest does not name.
// Files of the first naming (b<bucket>-<seq>.parquet) are replaced by the
// commit that next touches their bucket: only then, between the rename
// and the removal, can a glob reader see a key twice.
//
// One Parquet sink per directory at a time; it is not safe for concurrent use.
type Parquet struct {
	dir    string
	cfg    config
	ledger *ledger
	last   CommitStats
	hook   func(table string) error
	// publishHook, when set, is called at each step of a publish
	// ("staged", "manifest", "moved"); an error stops the commit there,
	// as a crash would (tests).
	publishHook func(step string) error

	dbMu sync.Mutex
	db   *sql.DB // in-memory, for merges and reads (see query)
}

var _ Sink = (*Parquet)(nil)

// ledger is the manifest.
type ledger struct {
	Version int   `json:"version"` // schema version of the files
	Layout  int   `json:"layout"`  // 2: partitioned, one row per key
	Seq     int64 `json:"seq"`
	// Tables lists, per table, the published data files.
	Tables map[string][]parquetFile `json:"tables"`
	// Pending is what the latest publish still had to do on disk.
	Pending    pendingMoves `json:"pending"`
	Watermarks []Watermark  `json:"watermarks"`
	Windows    []Window     `json:"windows"`
	Runs       []ledgerRun  `json:"runs"` // the latest (see ParquetManifestRuns)
	// Buckets is the bucket count of each partition (table, then
	// location) whose count grew past DefaultParquetBuckets.
	Buckets map[string]map[string]int `json:"buckets,omitempty"`
	Probes  []Probe                   `json:"probes,omitempty"` // remembered bulk probe refusals
	// RunArchives are the Parquet files of older runs, oldest first.
	RunArchives []string    `json:"run_archives,omitempty"`
	Sweeps      []string    `json:"sweeps,omitempty"`     // sweep files, oldest first
	Reconciles  []Reconcile `json:"reconciles,omitempty"` // the latest per (source, location)
	Retries     []Retry     `json:"retries,omitempty"`    // by source, location, FirstAt, ContactID
	// Data files of the first layout (ledger.json); read to refuse them.
	Files          map[string][]string `json:"files,omitempty"`
	Deletes        map[string][]string `json:"deletes,omitempty"`
	ContactDeletes map[string][]string `json:"contact_deletes,omitempty"`
}

// parquetFile is one published data file.
type parquetFile struct {
	Path     string `json:"path"` // relative to the directory, slash-separated
	Location string `json:"location_id"`
	Bucket   int    `json:"bucket"`
	Rows     int64  `json:"rows"`
	Bytes    int64  `json:"bytes"`
	Seq      int64  `json:"seq"` // the commit that wrote it
}

// pendingMoves: files of commit Seq to move from _staging/<Seq>/ into place
// (Add) and superseded files to remove (Remove).
type pendingMoves struct {
	Seq    int64    `json:"seq,omitempty"`
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

type ledgerRun struct {
	Run
	Result *RunResult `json:"result,omitempty"`
}

// ErrParquetOldLayout: the directory holds data files of the first layout.
var ErrParquetOldLayout = errors.New("parquet warehouse written by an older version (per-commit files): export again with --full into an empty directory")

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
	l := &ledger{Version: whsql.SchemaVersion, Layout: 2, Tables: map[string][]parquetFile{}}
	name := filepath.Join(p.dir, ParquetManifestFile)
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		name = filepath.Join(p.dir, ParquetLedgerFile)
		b, err = os.ReadFile(name)
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read manifest: %w", err)
	default:
		if err := json.Unmarshal(b, l); err != nil {
			return nil, fmt.Errorf("read manifest %s: %w", name, err)
		}
		if l.Version > whsql.SchemaVersion {
			return nil, fmt.Errorf("%w: manifest version %d", ErrSchemaNewer, l.Version)
		}
		for _, m := range []map[string][]string{l.Files, l.Deletes, l.ContactDeletes} {
			for _, fs := range m {
				if len(fs) > 0 {
					return nil, fmt.Errorf("%s: %w", p.dir, ErrParquetOldLayout)
				}
			}
		}
		l.Files, l.Deletes, l.ContactDeletes = nil, nil, nil
		l.Layout = 2
		if l.Tables == nil {
			l.Tables = map[string][]parquetFile{}
		}
	}
	p.ledger = l
	return l, nil
}

func (p *Parquet) step(name string) error {
	if p.publishHook != nil {
		return p.publishHook(name)
	}
	return nil
}

// publish replaces the manifest and the views file with next.
func (p *Parquet) publish(next *ledger) error {
	next.Version = whsql.SchemaVersion
	b, err := json.MarshalIndent(next, "", " ")
	if err != nil {
		return err
	}
	if err := renameio.WriteFile(filepath.Join(p.dir, ParquetManifestFile), b, 0o644); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := syncDir(p.dir); err != nil {
		return err
	}
	p.ledger = next
	os.Remove(filepath.Join(p.dir, ParquetLedgerFile))
	// The manifest is the commit point; the views are derived from it and
	// rewritten by the next publish if this write fails.
	views, err := p.views(next)
	if err != nil {
		return err
	}
	// No fsync: a torn views file after a crash is rewritten by the next
	// Start's publish.
	tmp := filepath.Join(p.dir, "."+ParquetViewsFile+".tmp")
	if err := os.WriteFile(tmp, []byte(views), 0o644); err != nil {
		return fmt.Errorf("write views: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, ParquetViewsFile)); err != nil {
		return fmt.Errorf("write views: %w", err)
	}
	return nil
}

// apply moves the files of l.Pending into place and removes the ones they
// replace. It is idempotent: Start runs it again after a crash.
func (p *Parquet) apply(l *ledger) error {
	pm := l.Pending
	stage := filepath.Join(p.dir, parquetStagingDir, fmt.Sprintf("%012d", pm.Seq))
	var dirs []string
	for _, rel := range pm.Add {
		src, dst := filepath.Join(stage, filepath.FromSlash(rel)), filepath.Join(p.dir, filepath.FromSlash(rel))
		if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
			if _, err := os.Stat(dst); err != nil {
				return fmt.Errorf("published file %s is missing: %w", rel, err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Rename(src, dst); err != nil {
			return err
		}
		dirs = append(dirs, rel)
	}
	if err := syncDirs(p.dir, dirs); err != nil {
		return err
	}
	if err := p.step("moved"); err != nil {
		return err
	}
	for _, rel := range pm.Remove {
		if err := os.Remove(filepath.Join(p.dir, filepath.FromSlash(rel))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return os.RemoveAll(filepath.Join(p.dir, parquetStagingDir))
}

func syncDir(d string) error {
	f, err := os.Open(d)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("sync %s: %w", d, err)
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
	if err := p.apply(l); err != nil {
		return nil, fmt.Errorf("start run %s: finish the last publish: %w", run.ID, err)
	}
	p.collect(l)
	next := l.clone()
	next.Pending = pendingMoves{}
	for i, r := range next.Runs {
		if r.Source == run.Source && r.Result == nil {
			next.Runs[i].Result = &RunResult{RunID: r.ID, EndedAt: time.Now().UTC(), Outcome: "aborted",
				Error: "the process ended before the run finished (killed or crashed); the next run resumed from the committed state"}
		}
	}
	next.Runs = append(next.Runs, ledgerRun{Run: run})
	if err := p.archiveRuns(ctx, next); err != nil {
		return nil, fmt.Errorf("start run %s: %w", run.ID, err)
	}
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

// collect removes the files of the table folders and of the sweeps folder
// that l does not name, empty partition folders, and the staging area.
func (p *Parquet) collect(l *ledger) {
	listed := map[string]bool{}
	for _, fs := range l.Tables {
		for _, f := range fs {
			listed[filepath.FromSlash(f.Path)] = true
		}
	}
	for _, n := range l.Sweeps {
		listed[filepath.FromSlash(n)] = true
	}
	for _, n := range l.RunArchives {
		listed[filepath.FromSlash(n)] = true
	}
	os.RemoveAll(filepath.Join(p.dir, parquetStagingDir))
	dirs := []string{parquetSweepsDir, parquetRunsDir}
	for _, t := range whsql.Tables {
		dirs = append(dirs, t.Name)
	}
	for _, d := range dirs {
		filepath.WalkDir(filepath.Join(p.dir, d), func(name string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return nil
			}
			if rel, _ := filepath.Rel(p.dir, name); !listed[rel] {
				os.Remove(name)
			}
			return nil
		})
		ents, _ := os.ReadDir(filepath.Join(p.dir, d))
		for _, e := range ents {
			if e.IsDir() {
				os.Remove(filepath.Join(p.dir, d, e.Name())) // only if empty
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

// Close implements Sink: it closes the in-memory DuckDB of the merges.
func (p *Parquet) Close(context.Context) error {
	p.dbMu.Lock()
	defer p.dbMu.Unlock()
	if p.db == nil {
		return nil
	}
	err := p.db.Close()
	p.db = nil
	return err
}

// Commit implements Sink: the touched partitions rewritten with the
// commit's rows and deletes under the staging area, then the manifest,
// then the moves. On error before the manifest nothing is published.
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
	next.Pending = pendingMoves{Seq: next.Seq}
	stage := filepath.Join(p.dir, parquetStagingDir, fmt.Sprintf("%012d", next.Seq))
	var written []string
	published := false
	defer func() {
		if err != nil {
			if !published {
				os.RemoveAll(stage)
				for _, f := range written {
					os.Remove(filepath.Join(p.dir, f))
				}
			} else {
				p.ledger = nil // the next Start finishes the publish
			}
			err = fmt.Errorf("commit run %s to %s: %w", c.RunID, p.dir, err)
		}
	}()
	stats := CommitStats{Tables: map[string]TableStats{}}
	dels := map[string][]Delete{}
	for _, d := range c.Deletes {
		dels[d.Table] = append(dels[d.Table], d)
	}
	contacts := recordKeys(c.Records[whsql.Contacts.Name], "contact_id")
	err = p.query(ctx, func(conn *sql.Conn) error {
		for _, t := range whsql.Tables {
			recs := c.Records[t.Name]
			if rowCount(recs) == 0 && len(dels[t.Name]) == 0 && !(t.ReplaceByContact && len(contacts) > 0) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			ts, err := p.mergeTable(ctx, conn, t, recs, dels[t.Name], contacts, next, stage)
			if err != nil {
				return fmt.Errorf("%s: %w", t.Name, err)
			}
			stats.Tables[t.Name] = ts
			if p.hook != nil {
				if err := p.hook(t.Name); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.writeSweeps(ctx, c.Swept, next, &written); err != nil {
		return fmt.Errorf("sweeps: %w", err)
	}
	next.Reconciles = addReconciles(next.Reconciles, c.Reconciled)
	next.Probes = upsert(next.Probes, c.Probes, func(a, b Probe) bool {
		return a.Source == b.Source && a.LocationID == b.LocationID && a.TokenID == b.TokenID && a.Resource == b.Resource
	}, func(p Probe) Probe { p.At = p.At.UTC().Truncate(time.Microsecond); return p })
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
	staged := slices.Clone(written)
	var files []string
	for _, rel := range next.Pending.Add {
		r := filepath.Join(parquetStagingDir, fmt.Sprintf("%012d", next.Seq), filepath.FromSlash(rel))
		staged = append(staged, r)
		files = append(files, filepath.Join(p.dir, r))
	}
	// The new files' data, then their folders, each as one batch of
	// concurrent fsyncs (the file system commits them together).
	if err := syncPaths(files); err != nil {
		return err
	}
	if err := syncDirs(p.dir, staged); err != nil {
		return err
	}
	if err := p.step("staged"); err != nil {
		return err
	}
	if err := p.publish(next); err != nil {
		return err
	}
	published = true
	if err := p.step("manifest"); err != nil {
		return err
	}
	if err := p.apply(next); err != nil {
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
	var dirs []string
	for _, r := range rels {
		d := filepath.Join(root, filepath.Dir(r))
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	return syncPaths(dirs)
}

// syncPaths fsyncs files or folders concurrently: one fsync after another
// waits for one journal commit each, concurrent ones share them.
func syncPaths(names []string) error {
	if len(names) == 1 {
		return syncPath(names[0])
	}
	errs := make([]error, len(names))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = syncPath(n)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func syncPath(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("sync %s: %w", name, err)
	}
	return nil
}

func (l *ledger) clone() *ledger {
	n := *l
	n.Tables = map[string][]parquetFile{}
	for k, v := range l.Tables {
		n.Tables[k] = slices.Clone(v)
	}
	n.Pending.Add, n.Pending.Remove = slices.Clone(l.Pending.Add), slices.Clone(l.Pending.Remove)
	n.Sweeps = slices.Clone(l.Sweeps)
	n.Reconciles = slices.Clone(l.Reconciles)
	n.Retries = slices.Clone(l.Retries)
	n.Watermarks = slices.Clone(l.Watermarks)
	n.Windows = slices.Clone(l.Windows)
	n.Runs = slices.Clone(l.Runs)
	n.RunArchives = slices.Clone(l.RunArchives)
	n.Probes = slices.Clone(l.Probes)
	n.Buckets = map[string]map[string]int{}
	for t, m := range l.Buckets {
		n.Buckets[t] = maps.Clone(m)
	}
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

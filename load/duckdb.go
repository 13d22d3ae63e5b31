package load

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// ErrSchemaNewer reports a warehouse written by a newer version of the
// exporter (its schema_version is above sql.SchemaVersion).
var ErrSchemaNewer = errors.New("warehouse schema is newer than this exporter")

// DuckDB is a Sink that writes to one DuckDB database file.
//
// The file is open only inside Start, Commit, Finish and SetDeleted, and is
// closed (checkpointed) before they return, so another process (an
// analyst's DuckDB) can open it between calls. If another process holds the
// file, those calls retry with backoff for the lock timeout and then fail
// with ErrLocked. Within one process, sinks on the same file take turns.
//
// A DuckDB is not safe for concurrent use.
type DuckDB struct {
	path     string
	cfg      config
	migrated bool
	last     CommitStats
	opens    atomic.Int64 // sessions opened (the file attached), for tests

	// hook, when set by a test, runs after each table is merged inside the
	// commit's transaction; an error aborts the commit.
	hook func(table string) error
}

var _ Sink = (*DuckDB)(nil)

// NewDuckDB returns a sink for the DuckDB file at path, created with the
// warehouse schema on first use. It does not open the file.
func NewDuckDB(path string, opts ...Option) (*DuckDB, error) {
	p, err := absPath(path)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(filepath.Dir(p)); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("warehouse directory %s does not exist", filepath.Dir(p))
	}
	return &DuckDB{path: p, cfg: newConfig(opts)}, nil
}

// Path is the absolute path of the warehouse file.
func (d *DuckDB) Path() string { return d.path }

// LastCommit returns the counters of the latest successful Commit.
func (d *DuckDB) LastCommit() CommitStats { return d.last }

// Start implements Sink.
func (d *DuckDB) Start(ctx context.Context, run Run) (*State, error) {
	if run.ID == "" || run.Source == "" {
		return nil, errors.New("start run: ID and Source are required")
	}
	if run.StartedAt.IsZero() {
		run.StartedAt = time.Now()
	}
	var st *State
	err := d.session(ctx, func(c *sql.Conn) error {
		return inTx(ctx, c, func() error {
			if err := exec(ctx, c, `UPDATE runs SET outcome = 'aborted', ended_at = ?,
				error = 'the process ended before the run finished (killed or crashed); the next run resumed from the committed state'
				WHERE source = ? AND outcome = 'running'`, time.Now().UTC(), run.Source); err != nil {
				return fmt.Errorf("close aborted runs: %w", err)
			}
			if err := exec(ctx, c, `INSERT INTO runs (run_id, source, command, started_at, outcome)
				VALUES (?, ?, ?, ?, 'running')`, run.ID, run.Source, run.Command, run.StartedAt.UTC()); err != nil {
				return fmt.Errorf("insert run: %w", err)
			}
			var err error
			st, err = readState(ctx, c, run.Source)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("start run %s: %w", run.ID, err)
	}
	return st, nil
}

// Finish implements Sink.
func (d *DuckDB) Finish(ctx context.Context, res RunResult) error {
	if res.EndedAt.IsZero() {
		res.EndedAt = time.Now()
	}
	rows, err := json.Marshal(res.Rows)
	if err != nil {
		return fmt.Errorf("finish run %s: %w", res.RunID, err)
	}
	var locs any // NULL when there are none
	if len(res.Locations) > 0 {
		b, err := json.Marshal(res.Locations)
		if err != nil {
			return fmt.Errorf("finish run %s: %w", res.RunID, err)
		}
		locs = string(b)
	}
	err = d.session(ctx, func(c *sql.Conn) error {
		return inTx(ctx, c, func() error {
			var started time.Time
			if err := c.QueryRowContext(ctx, `SELECT started_at FROM runs WHERE run_id = ?`, res.RunID).Scan(&started); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					return errors.New("no such run (Start was not called)")
				}
				return err
			}
			return exec(ctx, c, `UPDATE runs SET ended_at = ?, outcome = ?, error = ?, requests = ?, retries = ?,
				rate_limited = ?, rows = ?::JSON, rejects = ?, duration_ms = ?, locations = ?::JSON WHERE run_id = ?`,
				res.EndedAt.UTC(), res.Outcome, nullString(res.Error), res.Requests, res.Retries,
				res.RateLimited, string(rows), res.Rejects, res.EndedAt.Sub(started).Milliseconds(), locs, res.RunID)
		})
	})
	if err != nil {
		return fmt.Errorf("finish run %s: %w", res.RunID, err)
	}
	return nil
}

// Close implements Sink. The file is not held between calls, so there is
// nothing to release.
func (d *DuckDB) Close(context.Context) error { return nil }

// Commit implements Sink: in one transaction it stages each table's
// records, merges them by key (newest _extracted_at wins; a row older than
// the stored one is dropped), appends rejects, applies c.Deletes and
// replaces the given watermarks and windows.
func (d *DuckDB) Commit(ctx context.Context, c *Commit) error {
	if err := validate(c); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	began := time.Now()
	stats := CommitStats{Tables: map[string]TableStats{}}
	err := d.session(ctx, func(conn *sql.Conn) error {
		return inTx(ctx, conn, func() error {
			if err := exec(ctx, conn, fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE %s (%s VARCHAR, contact_id VARCHAR, %s TIMESTAMPTZ)`,
				writtenContacts, quote(whsql.ColSource), quote(whsql.ColExtractedAt))); err != nil {
				return err
			}
			for _, t := range whsql.Tables {
				recs := c.Records[t.Name]
				if rowCount(recs) == 0 && !(t.ReplaceByContact && rowCount(c.Records[whsql.Contacts.Name]) > 0) {
					continue
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				ts, err := d.load(ctx, conn, t, recs)
				if err != nil {
					return fmt.Errorf("%s: %w", t.Name, err)
				}
				stats.Tables[t.Name] = ts
				if d.hook != nil {
					if err := d.hook(t.Name); err != nil {
						return err
					}
				}
			}
			for _, del := range c.Deletes {
				n, err := softDelete(ctx, conn, del)
				if err != nil {
					return fmt.Errorf("delete from %s: %w", del.Table, err)
				}
				ts := stats.Tables[del.Table]
				ts.Deleted += n
				stats.Tables[del.Table] = ts
			}
			if err := exec(ctx, conn, `DROP TABLE `+writtenContacts); err != nil {
				return err
			}
			return writeState(ctx, conn, c)
		})
	})
	if err != nil {
		return fmt.Errorf("commit run %s to %s: %w", c.RunID, d.path, err)
	}
	stats.Duration = time.Since(began)
	d.last = stats
	return nil
}

// SetDeleted soft-deletes rows of table (a data table) by key in a commit of
// its own; see Commit.Deletes.
func (d *DuckDB) SetDeleted(ctx context.Context, table, source string, ids []string, at time.Time) error {
	return d.Commit(ctx, &Commit{Deletes: []Delete{{Table: table, Source: source, IDs: ids, At: at}}})
}

// session opens the file (waiting for other holders), migrates it, runs fn
// on one connection and closes the file again.
//
// The file is attached to an in-memory database with a row group size of
// rowGroupRows and made the default catalog (USE), so every statement names
// its tables as before. Closing checkpoints the file, and a checkpoint
// rewrites the last, partly filled row group of each table a commit
// appended to: with DuckDB's default of 122,880 rows per group, a table
// growing by 15k rows a commit had its last group rewritten eight times
// over, and that cost grew with the table (250k contacts in 20 commits:
// 11.2 s of checkpoints; with 16,384-row groups 3.6 s).
func (d *DuckDB) session(ctx context.Context, fn func(*sql.Conn) error) (err error) {
	if c, ok := ctx.Value(heldSession{d}).(*sql.Conn); ok {
		return fn(c) // inside Batch: its session
	}
	release, err := acquireFile(ctx, d.path)
	if err != nil {
		return err
	}
	defer release()
	d.opens.Add(1)
	connector, err := duckdb.NewConnector("", d.initConn)
	if err != nil {
		return fmt.Errorf("open DuckDB: %w", err)
	}
	db := sql.OpenDB(connector) // closing db closes the in-memory database and detaches (checkpoints) the file
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", d.path, cerr)
		}
	}()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect %s: %w", d.path, err)
	}
	defer conn.Close()
	err = retryLocked(ctx, d.path, d.cfg.lockTimeout, d.cfg.log, func() error {
		return exec(ctx, conn, fmt.Sprintf(`ATTACH %s AS %s (ROW_GROUP_SIZE %d)`, sqlString(d.path), warehouseCatalog, rowGroupRows))
	})
	if err != nil {
		return err
	}
	defer func() {
		// Detach before the connection goes back: the checkpoint's error
		// is the close's error.
		if derr := exec(context.WithoutCancel(ctx), conn, `USE memory; DETACH `+warehouseCatalog); derr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", d.path, derr)
		}
	}()
	if err := exec(ctx, conn, `USE `+warehouseCatalog); err != nil {
		return fmt.Errorf("use %s: %w", d.path, err)
	}
	if err := d.migrate(ctx, conn); err != nil {
		return fmt.Errorf("migrate %s: %w", d.path, err)
	}
	return fn(conn)
}

// Batch runs fn with one session of the file: the sink's calls that fn
// makes with the context it is given share it (one open, attach and
// checkpoint instead of one per call). The file is held, and other calls
// on this sink wait, until fn returns: fn must not wait on the network.
func (d *DuckDB) Batch(ctx context.Context, fn func(context.Context) error) error {
	if _, ok := ctx.Value(heldSession{d}).(*sql.Conn); ok {
		return fn(ctx)
	}
	return d.session(ctx, func(c *sql.Conn) error {
		return fn(context.WithValue(ctx, heldSession{d}, c))
	})
}

// heldSession keys a Batch's connection in its context, per sink.
type heldSession struct{ d *DuckDB }

// warehouseCatalog is the name the warehouse file is attached under in a
// session (the default catalog while it lasts).
const warehouseCatalog = "warehouse"

// rowGroupRows is the row group size of the tables a session writes. A
// commit of 16 MiB holds about 15k contacts; groups near that size are
// rewritten once or twice by the checkpoints after them, not eight times.
// Scans and zone maps work per group as with the default.
const rowGroupRows = 16_384

// initConn applies the sink's DuckDB settings to a new connection.
func (d *DuckDB) initConn(ex driver.ExecerContext) error {
	var set []string
	if d.cfg.duckThreads > 0 {
		set = append(set, fmt.Sprintf("SET threads = %d", d.cfg.duckThreads))
	}
	if d.cfg.duckMemory != "" {
		set = append(set, "SET memory_limit = "+sqlString(d.cfg.duckMemory))
	}
	// Spill beside the file, as a file-backed database does by default (an
	// in-memory one would spill to .tmp in the working directory).
	set = append(set, "SET temp_directory = "+sqlString(d.path+".tmp"))
	for _, q := range set {
		if _, err := ex.ExecContext(context.Background(), q, nil); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// migrate creates the tables if needed, checks the schema version and, on
// this sink's first session, (re)creates the views.
func (d *DuckDB) migrate(ctx context.Context, c *sql.Conn) error {
	if d.migrated {
		// This sink created or migrated the tables in an earlier session:
		// unless another exporter changed the schema since, that holds.
		var v int
		if err := c.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&v); err == nil && v == whsql.SchemaVersion {
			return nil
		}
	}
	return inTx(ctx, c, func() error {
		if !d.migrated {
			if err := renameColumns(ctx, c); err != nil {
				return err
			}
		}
		for _, name := range whsql.DDL {
			ddl, err := whsql.Read(name)
			if err != nil {
				return err
			}
			if err := exec(ctx, c, ddl); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		if !d.migrated {
			if err := backfillChanges(ctx, c); err != nil {
				return err
			}
		}
		var v int
		if err := c.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&v); err != nil {
			return fmt.Errorf("read schema_version: %w", err)
		}
		if v > whsql.SchemaVersion {
			return fmt.Errorf("%w: version %d, this exporter knows %d", ErrSchemaNewer, v, whsql.SchemaVersion)
		}
		if v < whsql.SchemaVersion {
			// Future migrations from v to SchemaVersion go here, step by step.
			if err := exec(ctx, c, `INSERT INTO schema_version VALUES (?, ?)`, whsql.SchemaVersion, time.Now().UTC()); err != nil {
				return fmt.Errorf("record schema_version: %w", err)
			}
		}
		if d.migrated && v == whsql.SchemaVersion {
			return nil
		}
		views, err := whsql.Read(whsql.Views)
		if err != nil {
			return err
		}
		if err := exec(ctx, c, views); err != nil {
			return fmt.Errorf("%s: %w", whsql.Views, err)
		}
		if err := exec(ctx, c, whsql.CommentsDDL()); err != nil {
			return fmt.Errorf("column comments: %w", err)
		}
		d.migrated = true
		return nil
	})
}

// backfillChanges sets _first_seen_at and _changed_at of rows written
// before those columns existed (ALTER TABLE added them as NULL): first
// seen and changed when last read, or changed when soft-deleted.
func backfillChanges(ctx context.Context, c *sql.Conn) error {
	for _, t := range whsql.Data {
		if !t.TracksChanges() {
			continue
		}
		if err := exec(ctx, c, fmt.Sprintf(`UPDATE %[1]s SET %[2]s = coalesce(%[2]s, %[4]s), %[3]s = coalesce(%[3]s, %[5]s, %[4]s)
			WHERE %[2]s IS NULL OR %[3]s IS NULL`, quote(t.Name), quote(whsql.ColFirstSeenAt), quote(whsql.ColChangedAt),
			quote(whsql.ColExtractedAt), quote(whsql.ColDeletedAt))); err != nil {
			return fmt.Errorf("backfill %s change columns: %w", t.Name, err)
		}
	}
	return nil
}

// renameColumns renames the columns of the mapping's renames (was → name)
// in tables that have the old name and not the new one.
func renameColumns(ctx context.Context, c *sql.Conn) error {
	for _, t := range whsql.Tables {
		for _, rn := range t.Renames() {
			var old, cur int
			if err := c.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE column_name = ?), count(*) FILTER (WHERE column_name = ?)
				FROM information_schema.columns WHERE table_name = ?`, rn[0], rn[1], t.Name).Scan(&old, &cur); err != nil {
				return fmt.Errorf("rename %s.%s: %w", t.Name, rn[0], err)
			}
			if old == 1 && cur == 0 {
				if err := exec(ctx, c, fmt.Sprintf(`ALTER TABLE %s RENAME COLUMN %s TO %s`, quote(t.Name), quote(rn[0]), quote(rn[1]))); err != nil {
					return fmt.Errorf("rename %s.%s to %s: %w", t.Name, rn[0], rn[1], err)
				}
			}
		}
	}
	return nil
}

// writtenContacts is the temp table of the keys of a commit's contacts,
// kept for the ReplaceByContact tables merged after them.
const writtenContacts = "written_contacts"

// load stages recs of t and merges them into t (appends, for rejects).
// A ReplaceByContact table first loses the rows of the contacts the commit
// wrote (unless newer), so a value removed upstream disappears.
func (d *DuckDB) load(ctx context.Context, c *sql.Conn, t whsql.Table, recs []arrowRecord) (TableStats, error) {
	var ts TableStats
	if t.ReplaceByContact {
		n, err := execN(ctx, c, fmt.Sprintf(`DELETE FROM %[1]s USING %[2]s w WHERE %[1]s.%[3]s = w.%[3]s AND %[1]s.contact_id = w.contact_id
			AND %[1]s.%[4]s <= w.%[4]s`, quote(t.Name), writtenContacts, quote(whsql.ColSource), quote(t.Version)))
		if err != nil {
			return ts, fmt.Errorf("replace by contact: %w", err)
		}
		ts.Replaced = n
		if rowCount(recs) == 0 {
			return ts, nil
		}
	}
	ls, err := d.merge(ctx, c, t, recs)
	ls.Replaced += ts.Replaced
	return ls, err
}

// merge stages recs of t and merges them into t.
//
// A keyed table first stages only its keys and versions, and looks at them
// (overlap): when no staged key is stored nor staged twice, as in a first
// load, the records are inserted straight from their Arrow view, without a
// staging copy and without the statements that read the whole table.
func (d *DuckDB) merge(ctx context.Context, c *sql.Conn, t whsql.Table, recs []arrowRecord) (TableStats, error) {
	stg := "stg_" + t.Name
	ts := TableStats{Staged: rowCount(recs)}
	cols := quoteList(t.Columns())
	if len(t.Key) == 0 {
		if err := d.stage(ctx, c, t, recs, stg); err != nil {
			return ts, err
		}
		n, err := execN(ctx, c, fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM %s`, t.Name, cols, cols, stg))
		if err != nil {
			return ts, fmt.Errorf("append: %w", err)
		}
		ts.Written = n
		return ts, dropTable(ctx, c, stg)
	}
	keys := stg + "_keys"
	if err := stageKeys(ctx, c, t, recs, keys); err != nil {
		return ts, fmt.Errorf("stage keys: %w", err)
	}
	ov, err := overlap(ctx, c, t, keys)
	if err != nil {
		return ts, fmt.Errorf("merge overlap: %w", err)
	}
	if ov.stored == 0 && !ov.dupKeys && d.cfg.ingest == IngestArrow {
		ts.Written, err = insertArrow(ctx, c, t, recs)
		if err != nil {
			return ts, fmt.Errorf("insert: %w", err)
		}
	} else if ts.Replaced, ts.Written, err = d.mergeStaged(ctx, c, t, recs, stg, ov); err != nil {
		return ts, err
	}
	if t.Name == whsql.Contacts.Name {
		if err := exec(ctx, c, fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE %s AS SELECT %s, contact_id, %s FROM %s`,
			writtenContacts, quote(whsql.ColSource), quote(t.Version), keys)); err != nil {
			return ts, fmt.Errorf("keep contact keys: %w", err)
		}
	}
	return ts, dropTable(ctx, c, keys)
}

// mergeStaged stages recs of t whole and merges them by key: the newest
// staged row of a key (by version) replaces the stored row unless that is
// newer.
//
// Not one MERGE INTO (DuckDB 1.4+; it needs the same QUALIFY on the
// source): on 1.5.6, stage + merge of 100k rows (half updates) into 1M with
// a LIST column took 1.2-1.9 s, against 0.8-0.9 s for this delete + insert
// (BenchmarkMergeStatements), with the same outcome.
func (d *DuckDB) mergeStaged(ctx context.Context, c *sql.Conn, t whsql.Table, recs []arrowRecord, stg string, ov stageOverlap) (replaced, written int64, err error) {
	if err := d.stage(ctx, c, t, recs, stg); err != nil {
		return 0, 0, err
	}
	cols := quoteList(t.Columns())
	from := stg
	if ov.dupKeys {
		from = fmt.Sprintf(`(SELECT * FROM %s QUALIFY row_number() OVER (PARTITION BY %s ORDER BY %s DESC, rowid DESC) = 1)`,
			stg, quoteList(t.Key), quote(t.Version))
	}
	if ov.stored == 0 {
		written, err = execN(ctx, c, fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM %s s`, t.Name, cols, insertList(t), from))
		if err != nil {
			return 0, 0, fmt.Errorf("merge insert: %w", err)
		}
		return 0, written, dropTable(ctx, c, stg)
	}
	match := keyMatch(t.Key, t.Name, "s")
	if t.TracksChanges() {
		if err := exec(ctx, c, keepChangesSQL(t, stg)); err != nil {
			return 0, 0, fmt.Errorf("merge change columns: %w", err)
		}
	}
	replaced, err = execN(ctx, c, fmt.Sprintf(`DELETE FROM %s USING %s s WHERE %s AND %s.%s <= s.%s`,
		t.Name, stg, match, t.Name, quote(t.Version), quote(t.Version)))
	if err != nil {
		return 0, 0, fmt.Errorf("merge delete: %w", err)
	}
	written, err = execN(ctx, c, fmt.Sprintf(`INSERT INTO %[1]s (%[2]s) SELECT %[3]s FROM %[4]s s
		WHERE NOT EXISTS (SELECT 1 FROM %[1]s WHERE %[5]s)`, t.Name, cols, insertList(t), from, match))
	if err != nil {
		return 0, 0, fmt.Errorf("merge insert: %w", err)
	}
	return replaced, written, dropTable(ctx, c, stg)
}

// stage copies recs of t into the temp table stg by the sink's ingest path.
func (d *DuckDB) stage(ctx context.Context, c *sql.Conn, t whsql.Table, recs []arrowRecord, stg string) error {
	var err error
	switch d.cfg.ingest {
	case IngestArrow:
		err = stageArrow(ctx, c, t, recs, stg)
	case IngestAppender:
		err = stageAppender(ctx, c, t, recs, stg)
	case IngestParquet:
		err = stageParquet(ctx, c, t, recs, stg, d.cfg)
	default:
		err = fmt.Errorf("unknown ingest %v", d.cfg.ingest)
	}
	if err != nil {
		return fmt.Errorf("stage (%s): %w", d.cfg.ingest, err)
	}
	return nil
}

func dropTable(ctx context.Context, c *sql.Conn, name string) error {
	if err := exec(ctx, c, `DROP TABLE `+name); err != nil {
		return fmt.Errorf("drop %s: %w", name, err)
	}
	return nil
}

// keepChangesSQL updates the staged rows of t (in stg) of keys already
// stored, not older than the stored row: they keep its _first_seen_at, and
// its _changed_at when their compared values (CompareCols) equal its
// values; else they changed when read. Rows whose change columns are still
// NULL (new keys, from a writer that left them unset) get _extracted_at as
// they are inserted (insertList).
func keepChangesSQL(t whsql.Table, stg string) string {
	cmp := t.CompareCols()
	sv, tv := make([]string, len(cmp)), make([]string, len(cmp))
	for i, c := range cmp {
		sv[i], tv[i] = "s."+quote(c), "t."+quote(c)
	}
	fs, ch, ex := quote(whsql.ColFirstSeenAt), quote(whsql.ColChangedAt), quote(whsql.ColExtractedAt)
	return fmt.Sprintf(`UPDATE %[1]s s SET %[2]s = coalesce(t.%[2]s, t.%[4]s),
			%[3]s = CASE WHEN row(%[5]s) IS NOT DISTINCT FROM row(%[6]s) THEN coalesce(t.%[3]s, t.%[4]s) ELSE s.%[4]s END
		FROM %[7]s t WHERE %[8]s AND t.%[9]s <= s.%[9]s`,
		stg, fs, ch, ex, strings.Join(sv, ", "), strings.Join(tv, ", "), quote(t.Name), keyMatch(t.Key, "t", "s"), quote(t.Version))
}

// insertList is the select list that inserts t's columns from a staged row
// s: as staged, except NULL change columns, which become _extracted_at.
func insertList(t whsql.Table) string {
	cols := t.Columns()
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = "s." + quote(c)
		if t.TracksChanges() && (c == whsql.ColFirstSeenAt || c == whsql.ColChangedAt) {
			out[i] = fmt.Sprintf("coalesce(s.%s, s.%s)", quote(c), quote(whsql.ColExtractedAt))
		}
	}
	return strings.Join(out, ", ")
}

// stageOverlap is what a merge needs to know of its staged rows first.
type stageOverlap struct {
	stored  int64 // staged rows whose key is stored
	dupKeys bool  // a key is staged more than once
}

// overlap reads the target's key columns once, and the staged keys (keys,
// from stageKeys).
func overlap(ctx context.Context, c *sql.Conn, t whsql.Table, stg string) (stageOverlap, error) {
	var ov stageOverlap
	keys := quoteList(t.Key)
	err := c.QueryRowContext(ctx, fmt.Sprintf(`SELECT
			(SELECT count(*) FROM %[1]s s WHERE EXISTS (SELECT 1 FROM %[2]s WHERE %[3]s)),
			(SELECT count(*) FROM %[1]s) > (SELECT count(*) FROM (SELECT DISTINCT %[4]s FROM %[1]s))`,
		stg, quote(t.Name), keyMatch(t.Key, quote(t.Name), "s"), keys)).Scan(&ov.stored, &ov.dupKeys)
	return ov, err
}

// inTx runs fn between BEGIN and COMMIT on c, rolling back if fn fails.
// Every statement inside must have its error checked: after a failed
// statement DuckDB aborts the transaction, and COMMIT would not say so.
func inTx(ctx context.Context, c *sql.Conn, fn func() error) error {
	if err := exec(ctx, c, `BEGIN TRANSACTION`); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(); err != nil {
		if rerr := exec(context.WithoutCancel(ctx), c, `ROLLBACK`); rerr != nil {
			return errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}
		return err
	}
	if err := exec(ctx, c, `COMMIT`); err != nil {
		_ = exec(context.WithoutCancel(ctx), c, `ROLLBACK`)
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func exec(ctx context.Context, c *sql.Conn, q string, args ...any) error {
	_, err := c.ExecContext(ctx, q, args...)
	return err
}

func execN(ctx context.Context, c *sql.Conn, q string, args ...any) (int64, error) {
	res, err := c.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// quote makes an identifier safe to splice into SQL.
func quote(id string) string { return `"` + strings.ReplaceAll(id, `"`, `""`) + `"` }

func quoteList(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = quote(id)
	}
	return strings.Join(q, ", ")
}

// keyMatch is "a.k1 = b.k1 AND a.k2 = b.k2".
func keyMatch(key []string, a, b string) string {
	m := make([]string, len(key))
	for i, k := range key {
		m[i] = fmt.Sprintf("%s.%s = %s.%s", a, quote(k), b, quote(k))
	}
	return strings.Join(m, " AND ")
}

// sqlString quotes a string literal (for file paths, which cannot be bound).
func sqlString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

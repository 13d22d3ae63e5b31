package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// The Parquet sink's state besides the ledger's watermarks, windows and
// runs: sweeps are Parquet files under parquetSweepsDir listed in the
// ledger (one per commit with Swept, merged into one when there are more
// than sweepCompactFiles); reconciles live in the ledger, the latest per
// (source, location), and so do retries (few: at most
// MaxRetriesPerLocation per location). All are published by the commit's
// ledger write, with
// the data they cover. The Store's reads run in an in-memory DuckDB over
// the files the ledger lists, merged by the rule of the views.
const (
	parquetSweepsDir  = "sweeps"
	sweepCompactFiles = 32
)

var sweepSchema = arrow.NewSchema([]arrow.Field{
	{Name: "source", Type: arrow.BinaryTypes.String},
	{Name: "location_id", Type: arrow.BinaryTypes.String},
	{Name: "contact_id", Type: arrow.BinaryTypes.String},
	{Name: "swept_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
	{Name: "run_id", Type: arrow.BinaryTypes.String},
	{Name: "_seq", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// writeSweeps writes the commit's sweeps as one file listed in next, and
// compacts the listed files into one when there are too many.
func (p *Parquet) writeSweeps(ctx context.Context, sw []Swept, next *ledger, written *[]string) error {
	b := array.NewRecordBuilder(p.cfg.mem, sweepSchema)
	defer b.Release()
	for _, s := range sw {
		for _, id := range s.ContactIDs {
			b.Field(0).(*array.StringBuilder).Append(s.Source)
			b.Field(1).(*array.StringBuilder).Append(s.LocationID)
			b.Field(2).(*array.StringBuilder).Append(id)
			b.Field(3).(*array.TimestampBuilder).AppendTime(s.At.UTC())
			b.Field(4).(*array.StringBuilder).Append(s.RunID)
			b.Field(5).(*array.Int64Builder).Append(next.Seq)
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	if rec.NumRows() == 0 {
		return nil
	}
	rel := filepath.Join(parquetSweepsDir, fmt.Sprintf("%012d.parquet", next.Seq))
	if err := p.writeFile(rel, sweepSchema, []arrowRecord{rec}); err != nil {
		return err
	}
	*written = append(*written, rel)
	next.Sweeps = append(next.Sweeps, rel)
	if len(next.Sweeps) <= sweepCompactFiles {
		return nil
	}
	// Keep the latest row per contact of every listed file in one file.
	// The commit's own file stays unlisted; Start removes it.
	crel := filepath.Join(parquetSweepsDir, fmt.Sprintf("%012d.c.parquet", next.Seq))
	final := filepath.Join(p.dir, crel)
	tmp := filepath.Join(p.dir, parquetSweepsDir, fmt.Sprintf(".%012d.c.parquet.tmp", next.Seq))
	err := p.query(ctx, func(c *sql.Conn) error {
		_, err := c.ExecContext(ctx, fmt.Sprintf(`COPY (SELECT source, location_id, contact_id, swept_at, run_id, _seq
			FROM (%s) ORDER BY source, location_id, contact_id) TO %s (FORMAT parquet, COMPRESSION zstd)`,
			p.sweepsSelect(next.Sweeps, true), sqlString(tmp)))
		return err
	})
	if err == nil {
		err = syncFile(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compact: %w", err)
	}
	*written = append(*written, crel)
	next.Sweeps = []string{crel}
	return nil
}

func syncFile(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// sweepsSelect is the latest sweep per (source, location, contact) of
// files: the later commit wins, then the later row (as in DuckDB, where a
// sweep replaces the contact's row).
func (p *Parquet) sweepsSelect(files []string, withSeq bool) string {
	cols := "source, location_id, contact_id, swept_at, run_id"
	if withSeq {
		cols += ", _seq"
	}
	if len(files) == 0 {
		return fmt.Sprintf(`SELECT %s FROM (SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS location_id, NULL::VARCHAR AS contact_id,
    NULL::TIMESTAMPTZ AS swept_at, NULL::VARCHAR AS run_id, NULL::BIGINT AS _seq) WHERE false`, cols)
	}
	return fmt.Sprintf(`SELECT %s FROM read_parquet(%s, file_row_number = true)
    QUALIFY row_number() OVER (PARTITION BY source, location_id, contact_id ORDER BY _seq DESC, file_row_number DESC) = 1`,
		cols, p.fileList(files))
}

// sweepsSelectRel is sweepsSelect naming the files by relative path.
func (p *Parquet) sweepsSelectRel(files []string) string {
	if len(files) == 0 {
		return p.sweepsSelect(nil, false)
	}
	return fmt.Sprintf(`SELECT source, location_id, contact_id, swept_at, run_id FROM read_parquet(%s, file_row_number = true)
    QUALIFY row_number() OVER (PARTITION BY source, location_id, contact_id ORDER BY _seq DESC, file_row_number DESC) = 1`,
		p.fileList(files, true))
}

// addReconciles keeps, per (source, location), the reconcile with the
// latest At (what LastReconcile and Status read).
func addReconciles(have, add []Reconcile) []Reconcile {
	for _, r := range add {
		r.At = r.At.UTC().Truncate(time.Microsecond)
		i := slices.IndexFunc(have, func(h Reconcile) bool { return h.Source == r.Source && h.LocationID == r.LocationID })
		switch {
		case i < 0:
			have = append(have, r)
		case !have[i].At.After(r.At):
			have[i] = r
		}
	}
	return have
}

// query runs fn on a connection to the sink's in-memory DuckDB, opened at
// the first query and kept until Close (opening one per commit cost more
// than a small commit's merge). It holds no data: every query reads the
// files, and temporary tables live and die with fn's connection.
func (p *Parquet) query(ctx context.Context, fn func(*sql.Conn) error) error {
	p.dbMu.Lock()
	if p.db == nil {
		db, err := sql.Open("duckdb", "")
		if err != nil {
			p.dbMu.Unlock()
			return err
		}
		// No idle connections: each fn gets a new one, so the temporary
		// tables of one query (merged, live, …) never meet the next.
		db.SetMaxIdleConns(0)
		// A bucket's file keeps its name from commit to commit: no cache
		// keyed by path may answer with an older version.
		if _, err := db.ExecContext(ctx, "SET GLOBAL enable_external_file_cache = false"); err != nil {
			db.Close()
			p.dbMu.Unlock()
			return err
		}
		p.db = db
	}
	db := p.db
	p.dbMu.Unlock()
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

// locationContacts is the contacts (columns cols, which include
// _location_id) of one location.
func (p *Parquet) locationContacts(l *ledger, source, location string, cols []string) string {
	return p.locationTable(l, whsql.Contacts, source, location, cols)
}

// locationTable is table t (columns cols, which include _location_id) of
// one location.
func (p *Parquet) locationTable(l *ledger, t whsql.Table, source, location string, cols []string) string {
	files := l.paths(t.Name, location)
	if len(files) == 0 {
		return emptySelect(t.Schema, cols)
	}
	return fmt.Sprintf("SELECT %s FROM read_parquet(%s, union_by_name = true) WHERE %s = %s AND %s = %s", quoteList(cols), p.fileList(files),
		quote(whsql.ColSource), sqlString(source), quote(whsql.ColLocationID), sqlString(location))
}

// EachLiveContact implements Store.
func (p *Parquet) EachLiveContact(ctx context.Context, source, location string, fn func(id string, updatedMs int64) error) error {
	l, err := p.load()
	if err != nil {
		return err
	}
	err = p.query(ctx, func(c *sql.Conn) error {
		return eachIDMillis(ctx, c, fmt.Sprintf(`SELECT contact_id, coalesce(epoch_ms(updated_at), 0) FROM (%s)
			WHERE _deleted_at IS NULL`, p.locationContacts(l, source, location,
			[]string{"contact_id", "updated_at", whsql.ColLocationID, whsql.ColDeletedAt})), fn)
	})
	if err != nil {
		return fmt.Errorf("live contacts of %s: %w", location, err)
	}
	return nil
}

// LiveIDs implements Store.
func (p *Parquet) LiveIDs(ctx context.Context, source, location, table string, from, to time.Time) ([]string, error) {
	t, ok := whsql.ByName(table)
	if !ok || len(t.Key) != 2 {
		return nil, fmt.Errorf("live ids: no data table %q", table)
	}
	l, err := p.load()
	if err != nil {
		return nil, err
	}
	cols := []string{whsql.ColSource, t.Key[1], whsql.ColLocationID, whsql.ColDeletedAt}
	if !from.IsZero() || !to.IsZero() {
		cols = append(cols, "start_time")
	}
	q, args, err := liveIDsQuery(table, "("+p.locationTable(l, t, source, location, cols)+")", from, to)
	if err != nil {
		return nil, err
	}
	var ids []string
	err = p.query(ctx, func(c *sql.Conn) (err error) {
		ids, err = idList(ctx, c, q, append([]any{source, location}, args...)...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("live %s of %s: %w", table, location, err)
	}
	return ids, nil
}

// LiveChildren implements Store.
func (p *Parquet) LiveChildren(ctx context.Context, source, location, table string, contactIDs []string) ([]string, error) {
	t, ok := whsql.ByName(table)
	if !ok || len(t.Key) != 2 || t.Name == whsql.Contacts.Name {
		return nil, fmt.Errorf("live children: no child table %q", table)
	}
	if len(contactIDs) == 0 {
		return nil, nil
	}
	l, err := p.load()
	if err != nil {
		return nil, err
	}
	from := "(" + p.locationTable(l, t, source, location, []string{whsql.ColSource, t.Key[1], whsql.ColLocationID, whsql.ColDeletedAt, "contact_id"}) + ")"
	var ids []string
	err = p.query(ctx, func(c *sql.Conn) (err error) {
		ids, err = liveChildren(ctx, c, table, from, source, location, contactIDs)
		return err
	})
	return ids, err
}

// SweepCandidates implements Store.
func (p *Parquet) SweepCandidates(ctx context.Context, source, location string, n int, sweptBefore time.Time) (ids []string, live int, err error) {
	l, err := p.load()
	if err != nil {
		return nil, 0, err
	}
	err = p.query(ctx, func(c *sql.Conn) error {
		if _, err := c.ExecContext(ctx, fmt.Sprintf(`CREATE TEMP TABLE live AS SELECT contact_id FROM (%s) WHERE _deleted_at IS NULL`,
			p.locationContacts(l, source, location, []string{"contact_id", whsql.ColLocationID, whsql.ColDeletedAt}))); err != nil {
			return err
		}
		if err := c.QueryRowContext(ctx, `SELECT count(*) FROM live`).Scan(&live); err != nil {
			return err
		}
		// Ordered by an expression, as on DuckDB: see (*DuckDB).SweepCandidates.
		ids, err = idList(ctx, c, fmt.Sprintf(`SELECT k.contact_id FROM live k
			LEFT JOIN (SELECT * FROM (%s) WHERE source = ? AND location_id = ?) s ON s.contact_id = k.contact_id
			WHERE s.swept_at IS NULL OR epoch_ms(s.swept_at) < ?
			ORDER BY coalesce(epoch_us(s.swept_at), -1), k.contact_id LIMIT ?`, p.sweepsSelect(l.Sweeps, false)),
			source, location, sweptBefore.UnixMilli(), n)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("sweep candidates of %s: %w", location, err)
	}
	return ids, live, nil
}

// LastReconcile implements Store.
func (p *Parquet) LastReconcile(ctx context.Context, source, location string) (time.Time, error) {
	l, err := p.load()
	if err != nil {
		return time.Time{}, err
	}
	for _, r := range l.Reconciles {
		if r.Source == source && r.LocationID == location {
			return r.At.UTC(), nil
		}
	}
	return time.Time{}, nil
}

// Status implements Store.
func (p *Parquet) Status(ctx context.Context, source string) (*Status, error) {
	l, err := p.load()
	if err != nil {
		return nil, err
	}
	us := func(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
	out := &Status{}
	for _, r := range l.Runs {
		if r.Source != source || (out.LastRun != nil && r.StartedAt.Before(out.LastRun.StartedAt)) {
			continue
		}
		ri := RunInfo{ID: r.ID, Command: r.Command, Outcome: "running", StartedAt: us(r.StartedAt)}
		if res := r.Result; res != nil {
			ri.Outcome, ri.EndedAt, ri.Requests = res.Outcome, us(res.EndedAt), res.Requests
		}
		out.LastRun = &ri
	}
	locs := map[string]*LocationStatus{}
	get := func(id string) *LocationStatus {
		if locs[id] == nil {
			locs[id] = &LocationStatus{LocationID: id}
		}
		return locs[id]
	}
	for _, w := range l.Watermarks {
		if w.Source == source && w.Resource == "contacts" {
			get(w.LocationID).Watermark = us(w.Value)
		}
	}
	for _, w := range l.Windows {
		if w.Source == source {
			w.Start, w.End = us(w.Start), us(w.End)
			g := get(w.LocationID)
			g.Windows = append(g.Windows, w)
		}
	}
	for _, r := range l.Reconciles {
		if r.Source == source {
			get(r.LocationID).LastReconcile = us(r.At)
		}
	}
	for _, r := range l.Retries {
		if r.Source == source {
			g := get(r.LocationID)
			g.Retries = append(g.Retries, r)
		}
	}
	err = p.query(ctx, func(c *sql.Conn) error {
		q := func(query string, scan func(*sql.Rows) error) error {
			rows, err := c.QueryContext(ctx, query, source)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				if err := scan(rows); err != nil {
					return err
				}
			}
			return rows.Err()
		}
		if files := l.paths(whsql.Rejects.Name, ""); len(files) > 0 {
			if err := q(fmt.Sprintf(`SELECT _location_id, count(*) FROM read_parquet(%s) WHERE _source = ? GROUP BY ALL`, p.fileList(files)),
				func(r *sql.Rows) error {
					var id string
					var n int64
					err := r.Scan(&id, &n)
					get(id).Rejects = n
					return err
				}); err != nil {
				return fmt.Errorf("rejects: %w", err)
			}
		}
		if len(l.Tables[whsql.Contacts.Name]) == 0 {
			return nil
		}
		contacts := p.mergedSelect(whsql.Contacts, l, []string{whsql.ColSource, whsql.ColLocationID, "contact_id", whsql.ColDeletedAt},
			fmt.Sprintf("%s = %s", quote(whsql.ColSource), sqlString(source)))
		return q(fmt.Sprintf(`SELECT k._location_id, count(*) FILTER (WHERE k._deleted_at IS NULL), count(*) FILTER (WHERE k._deleted_at IS NOT NULL),
				count(s.swept_at) FILTER (WHERE k._deleted_at IS NULL), min(s.swept_at) FILTER (WHERE k._deleted_at IS NULL)
			FROM (%s) k LEFT JOIN (%s) s ON s.source = k._source AND s.location_id = k._location_id AND s.contact_id = k.contact_id
			WHERE k._source = ? GROUP BY ALL`, contacts, p.sweepsSelect(l.Sweeps, false)), func(r *sql.Rows) error {
			var id string
			var oldest sql.NullTime
			var ls LocationStatus
			if err := r.Scan(&id, &ls.Live, &ls.Deleted, &ls.Swept, &oldest); err != nil {
				return err
			}
			g := get(id)
			g.Live, g.Deleted, g.Swept, g.OldestSweep = ls.Live, ls.Deleted, ls.Swept, oldest.Time.UTC()
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", p.dir, err)
	}
	for _, l := range locs {
		out.Locations = append(out.Locations, *l)
	}
	sort.Slice(out.Locations, func(i, j int) bool { return out.Locations[i].LocationID < out.Locations[j].LocationID })
	return out, nil
}

// sweepViews are the sweeps and reconciles views of the ledger.
func (p *Parquet) sweepViews(l *ledger) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE OR REPLACE VIEW sweeps AS\n%s;\n\n", p.sweepsSelectRel(l.Sweeps))
	var rows [][]string
	for _, r := range l.Reconciles {
		rows = append(rows, []string{lit(r.Source), lit(r.LocationID), tlit(r.At), lit(r.RunID), fmt.Sprint(r.Listed), fmt.Sprint(r.Deleted)})
	}
	fmt.Fprintf(&b, "CREATE OR REPLACE VIEW reconciles AS\n%s;\n\n", valuesView(
		[]string{"source", "location_id", "reconciled_at", "run_id", "listed", "deleted"},
		[]string{"VARCHAR", "VARCHAR", "TIMESTAMPTZ", "VARCHAR", "BIGINT", "BIGINT"}, rows))
	return b.String()
}

// Probes implements Store.
func (p *Parquet) Probes(ctx context.Context, source, location string) ([]Probe, error) {
	l, err := p.load()
	if err != nil {
		return nil, err
	}
	var out []Probe
	for _, pr := range l.Probes {
		if pr.Source == source && pr.LocationID == location {
			out = append(out, pr)
		}
	}
	slices.SortFunc(out, func(a, b Probe) int {
		return cmpAll(strings.Compare(a.TokenID, b.TokenID), strings.Compare(a.Resource, b.Resource))
	})
	return out, nil
}

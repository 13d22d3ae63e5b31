package load

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	duckdb "github.com/duckdb/duckdb-go/v2"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

type arrowRecord = arrow.RecordBatch

// validate checks a commit before anything is opened: known tables, records
// of exactly their table's schema, deletes of data tables, sane state.
func validate(c *Commit) error {
	for name, recs := range c.Records {
		t, ok := whsql.ByName(name)
		if !ok {
			return fmt.Errorf("unknown table %q", name)
		}
		for i, r := range recs {
			if r == nil {
				return fmt.Errorf("%s: record %d is nil", name, i)
			}
			if !r.Schema().Equal(t.Schema) {
				return fmt.Errorf("%s: record %d: schema %s does not match the table's %s", name, i, r.Schema(), t.Schema)
			}
			// Arrow does not enforce nullability, and Parquet would write a
			// null of a required column as a zero value.
			for j, f := range t.Schema.Fields() {
				if !f.Nullable && r.Column(j).NullN() > 0 {
					return fmt.Errorf("%s: record %d: %d nulls in non-nullable column %s", name, i, r.Column(j).NullN(), f.Name)
				}
			}
		}
	}
	for _, d := range c.Deletes {
		t, ok := whsql.ByName(d.Table)
		if !ok || len(t.Key) == 0 {
			return fmt.Errorf("delete: %q is not a data table", d.Table)
		}
		if d.Source == "" || d.At.IsZero() {
			return fmt.Errorf("delete from %s: Source and At are required", d.Table)
		}
	}
	for _, w := range c.Windows {
		if !w.Start.Before(w.End) {
			return fmt.Errorf("window %s/%s/%s: start %s is not before end %s", w.Source, w.LocationID, w.Resource, w.Start, w.End)
		}
	}
	return nil
}

func rowCount(recs []arrowRecord) int64 {
	var n int64
	for _, r := range recs {
		n += r.NumRows()
	}
	return n
}

// driverExec runs q on the raw driver connection (inside sql.Conn.Raw, where
// the sql.Conn itself must not be used).
func driverExec(ctx context.Context, dc any, q string) error {
	ex, ok := dc.(driver.ExecerContext)
	if !ok {
		return errors.New("driver connection cannot exec")
	}
	_, err := ex.ExecContext(ctx, q, nil)
	return err
}

// stageArrow exposes recs to DuckDB as an Arrow view (zero copy) and
// materialises it into the temp table stg.
func stageArrow(ctx context.Context, c *sql.Conn, t whsql.Table, recs []arrowRecord, stg string) error {
	return materialize(ctx, c, t.Schema, recs, stg)
}

// materialize copies recs (of schema) into the new temp table name.
func materialize(ctx context.Context, c *sql.Conn, schema *arrow.Schema, recs []arrowRecord, name string) error {
	_, err := scanArrow(ctx, c, schema, recs, func(view string) string {
		return fmt.Sprintf(`CREATE TEMP TABLE %s AS SELECT * FROM %s`, name, view)
	})
	return err
}

// insertArrow inserts recs of t into t straight from their Arrow view
// (insertList fills NULL change columns).
func insertArrow(ctx context.Context, c *sql.Conn, t whsql.Table, recs []arrowRecord) (int64, error) {
	return scanArrow(ctx, c, t.Schema, recs, func(view string) string {
		return fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM %s s`, quote(t.Name), quoteList(t.Columns()), insertList(t), view)
	})
}

// stageKeys stages the key and version columns of recs of t into the temp
// table stg (for overlap and the written contacts).
func stageKeys(ctx context.Context, c *sql.Conn, t whsql.Table, recs []arrowRecord, stg string) error {
	names := append(slices.Clone(t.Key), t.Version)
	idx := make([]int, len(names))
	fields := make([]arrow.Field, len(names))
	for i, n := range names {
		is := t.Schema.FieldIndices(n)
		if len(is) != 1 {
			return fmt.Errorf("%s: no column %s", t.Name, n)
		}
		idx[i], fields[i] = is[0], t.Schema.Field(is[0])
	}
	schema := arrow.NewSchema(fields, nil)
	proj := make([]arrowRecord, len(recs))
	for i, r := range recs {
		cols := make([]arrow.Array, len(idx))
		for j, k := range idx {
			cols[j] = r.Column(k)
		}
		proj[i] = array.NewRecordBatch(schema, cols, r.NumRows())
	}
	defer func() {
		for _, r := range proj {
			r.Release()
		}
	}()
	return materialize(ctx, c, schema, proj, stg)
}

// stageStrings creates the temp table name with one VARCHAR column, id,
// holding ids.
func stageStrings(ctx context.Context, c *sql.Conn, name string, ids []string) error {
	b := array.NewStringBuilder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(ids, nil)
	col := b.NewArray()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(len(ids)))
	defer rec.Release()
	return materialize(ctx, c, schema, []arrowRecord{rec}, name)
}

// arrowViews numbers the Arrow views of this process, so that no two have
// one name.
var arrowViews atomic.Int64

// scanArrow exposes recs (of schema) to DuckDB as an Arrow view (zero copy)
// and runs the statement q(view) over it, returning the rows it affected.
// The view can be scanned only once, and its stream must stay allocated
// until the scan is over: the view is dropped before the stream is
// released.
func scanArrow(ctx context.Context, c *sql.Conn, schema *arrow.Schema, recs []arrowRecord, q func(view string) string) (int64, error) {
	var n int64
	err := c.Raw(func(dc any) error {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return errors.New("not a driver connection")
		}
		ar, err := duckdb.NewArrowFromConn(dconn)
		if err != nil {
			return err
		}
		rr := &scanOnce{schema: schema, recs: recs}
		defer rr.forget()
		view := fmt.Sprintf("arrow_scan_%d", arrowViews.Add(1))
		release, err := ar.RegisterView(rr, view)
		if err != nil {
			return fmt.Errorf("register arrow view: %w", err)
		}
		defer release()
		ex, ok := dc.(driver.ExecerContext)
		if !ok {
			return errors.New("driver connection cannot exec")
		}
		res, cerr := ex.ExecContext(ctx, q(view), nil)
		if cerr == nil {
			n, cerr = res.RowsAffected()
		}
		derr := driverExec(context.WithoutCancel(ctx), dc, `DROP VIEW IF EXISTS `+view)
		return errors.Join(cerr, derr)
	})
	return n, err
}

// scanOnce is the RecordReader handed to DuckDB's Arrow scan. DuckDB never
// calls the exported stream's release callback, so a reader that retained
// the records would pin them (and their memory) for the life of the
// process. scanOnce retains nothing: the records stay owned by the caller,
// who keeps them alive until the scan is over, and forget drops every
// reference so that only this small struct stays behind in the cgo handle.
type scanOnce struct {
	mu     sync.Mutex
	schema *arrow.Schema
	recs   []arrowRecord
	cur    arrowRecord
}

func (r *scanOnce) Retain()               {}
func (r *scanOnce) Release()              {}
func (r *scanOnce) Schema() *arrow.Schema { return r.schema }
func (r *scanOnce) Err() error            { return nil }

func (r *scanOnce) Next() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.recs) == 0 {
		r.cur = nil
		return false
	}
	r.cur, r.recs = r.recs[0], r.recs[1:]
	return true
}

func (r *scanOnce) RecordBatch() arrowRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// Record is the deprecated name of RecordBatch.
func (r *scanOnce) Record() arrowRecord { return r.RecordBatch() }

func (r *scanOnce) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs, r.cur = nil, nil
}

// stageParquet writes recs to a temporary Parquet file and reads it into the
// temp table stg; the file is removed before returning.
func stageParquet(ctx context.Context, c *sql.Conn, t whsql.Table, recs []arrowRecord, stg string, cfg config) error {
	f, err := os.CreateTemp(cfg.tempDir, "contacts-etl-"+t.Name+"-*.parquet")
	if err != nil {
		return err
	}
	name := f.Name()
	defer os.Remove(name)
	if err := writeParquet(f, t.Schema, recs, cfg); err != nil { // closes f
		return err
	}
	return exec(ctx, c, fmt.Sprintf(`CREATE TEMP TABLE %s AS SELECT * FROM read_parquet(%s)`, stg, sqlString(name)))
}

// stageAppender creates the temp table stg like t and appends recs row by
// row through DuckDB's Appender, flushing every appenderFlushRows rows.
func stageAppender(ctx context.Context, c *sql.Conn, t whsql.Table, recs []arrowRecord, stg string) error {
	// The schema's column order (the appender's), which a migrated
	// warehouse's table need not have (ALTER TABLE ADD COLUMN appends).
	if err := exec(ctx, c, fmt.Sprintf(`CREATE TEMP TABLE %s AS SELECT %s FROM %s LIMIT 0`, stg, quoteList(t.Columns()), t.Name)); err != nil {
		return err
	}
	return c.Raw(func(dc any) error {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return errors.New("not a driver connection")
		}
		app, err := duckdb.NewAppenderFromConn(dconn, "", stg)
		if err != nil {
			return fmt.Errorf("appender: %w", err)
		}
		err = appendRecords(ctx, app, recs)
		if cerr := app.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("appender close: %w", cerr)
		}
		return err
	})
}

const appenderFlushRows = 100_000

func appendRecords(ctx context.Context, app *duckdb.Appender, recs []arrowRecord) error {
	var pending int
	for _, r := range recs {
		getters := make([]func(int) driver.Value, r.NumCols())
		for j, col := range r.Columns() {
			g, err := valueGetter(col)
			if err != nil {
				return fmt.Errorf("column %s: %w", r.ColumnName(j), err)
			}
			getters[j] = g
		}
		row := make([]driver.Value, len(getters))
		for i := range int(r.NumRows()) {
			for j, g := range getters {
				row[j] = g(i)
			}
			if err := app.AppendRow(row...); err != nil {
				return fmt.Errorf("append row: %w", err)
			}
			if pending++; pending == appenderFlushRows {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := app.Flush(); err != nil {
					return fmt.Errorf("appender flush: %w", err)
				}
				pending = 0
			}
		}
	}
	return nil
}

// valueGetter returns the Go value the Appender takes for row i of col.
func valueGetter(col arrow.Array) (func(int) driver.Value, error) {
	nullable := func(f func(int) driver.Value) func(int) driver.Value {
		return func(i int) driver.Value {
			if col.IsNull(i) {
				return nil
			}
			return f(i)
		}
	}
	switch a := col.(type) {
	case *array.String:
		return nullable(func(i int) driver.Value { return a.Value(i) }), nil
	case *array.Boolean:
		return nullable(func(i int) driver.Value { return a.Value(i) }), nil
	case *array.Int64:
		return nullable(func(i int) driver.Value { return a.Value(i) }), nil
	case *array.Float64:
		return nullable(func(i int) driver.Value { return a.Value(i) }), nil
	case *array.Date32:
		return nullable(func(i int) driver.Value { return a.Value(i).ToTime() }), nil
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return nullable(func(i int) driver.Value { return a.Value(i).ToTime(unit).UTC() }), nil
	case *array.List:
		elem, err := valueGetter(a.ListValues())
		if err != nil {
			return nil, err
		}
		return nullable(func(i int) driver.Value {
			start, end := a.ValueOffsets(i)
			l := make([]any, 0, end-start)
			for k := start; k < end; k++ {
				l = append(l, elem(int(k)))
			}
			return l
		}), nil
	}
	return nil, fmt.Errorf("no appender conversion for %s", col.DataType())
}

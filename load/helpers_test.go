package load

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// row is one test row: column name → string, []string, time.Time, bool,
// int64 or nil. Columns left out are null.
type row map[string]any

// build makes a record of tbl's schema from rows. The caller releases it.
func build(t testing.TB, mem memory.Allocator, tbl whsql.Table, rows ...row) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(mem, tbl.Schema)
	defer b.Release()
	for _, r := range rows {
		for i, f := range tbl.Schema.Fields() {
			if err := appendValue(b.Field(i), r[f.Name]); err != nil {
				t.Fatalf("%s.%s: %v", tbl.Name, f.Name, err)
			}
		}
	}
	return b.NewRecordBatch()
}

func appendValue(b array.Builder, v any) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	switch b := b.(type) {
	case *array.StringBuilder:
		b.Append(v.(string))
	case *array.BooleanBuilder:
		b.Append(v.(bool))
	case *array.Int64Builder:
		b.Append(v.(int64))
	case *array.Float64Builder:
		b.Append(v.(float64))
	case *array.TimestampBuilder:
		b.AppendTime(v.(time.Time))
	case *array.Date32Builder:
		b.Append(arrow.Date32FromTime(v.(time.Time)))
	case *array.ListBuilder:
		l := v.([]string)
		if l == nil {
			b.AppendNull()
			return nil
		}
		b.Append(true)
		vb := b.ValueBuilder().(*array.StringBuilder)
		for _, s := range l {
			vb.Append(s)
		}
	default:
		return fmt.Errorf("no test builder for %T", b)
	}
	return nil
}

// sys fills the system columns of a data row.
func sys(r row, source string, at time.Time) row {
	r[whsql.ColSource] = source
	r[whsql.ColLocationID] = "loc1"
	r[whsql.ColRunID] = "run-test"
	r[whsql.ColExtractedAt] = at
	return r
}

// queryRows runs q on c and returns every row as []any.
func queryRows(t testing.TB, c interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, q string, args ...any) [][]any {
	t.Helper()
	rows, err := c.QueryContext(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

package transform

import (
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// day is a calendar date for a DATE column; the zero day is NULL.
type day struct {
	t  time.Time
	ok bool
}

// rows builds the Arrow records of one table. Values are appended in schema
// order; "" strings, zero times, nil lists and nil pointers become NULL.
type rows struct {
	schema *arrow.Schema
	b      *array.RecordBuilder
	n      int
	data   []int // bytes of each string column (or list's strings) of the last batch
	elems  []int // strings of each list column of the last batch
}

func newRows(mem memory.Allocator, schema *arrow.Schema) *rows {
	return &rows{schema: schema, b: array.NewRecordBuilder(mem, schema)}
}

// add appends one row. It panics on a value of the wrong type for its
// column: that is a bug in a mapping, not bad input.
func (r *rows) add(vals ...any) {
	if len(vals) != r.schema.NumFields() {
		panic(fmt.Sprintf("transform: %d values for %d columns", len(vals), r.schema.NumFields()))
	}
	for i, v := range vals {
		appendValue(r.b.Field(i), v)
	}
	r.n++
}

// flush hands over the built record (nil when empty); the caller releases
// it. The builders are then sized for a batch like this one, so that they
// do not grow (and copy) value by value.
func (r *rows) flush() arrow.RecordBatch {
	if r.n == 0 {
		return nil
	}
	n := r.n
	r.n = 0
	nf := r.schema.NumFields()
	if r.data == nil {
		r.data, r.elems = make([]int, nf), make([]int, nf)
	}
	for i := range nf {
		switch fb := r.b.Field(i).(type) {
		case *array.StringBuilder:
			r.data[i] = fb.DataLen()
		case *array.ListBuilder:
			if vb, ok := fb.ValueBuilder().(*array.StringBuilder); ok {
				r.elems[i], r.data[i] = vb.Len(), vb.DataLen()
			}
		}
	}
	rec := r.b.NewRecordBatch()
	r.b.Reserve(n)
	for i := range nf {
		switch fb := r.b.Field(i).(type) {
		case *array.StringBuilder:
			fb.ReserveData(r.data[i])
		case *array.ListBuilder:
			if vb, ok := fb.ValueBuilder().(*array.StringBuilder); ok {
				vb.Reserve(r.elems[i])
				vb.ReserveData(r.data[i])
			}
		}
	}
	return rec
}

func (r *rows) release() { r.b.Release() }

func appendValue(b array.Builder, v any) {
	switch b := b.(type) {
	case *array.StringBuilder:
		switch v := v.(type) {
		case string:
			if v == "" {
				b.AppendNull()
			} else {
				b.Append(v)
			}
		case *string:
			if v == nil {
				b.AppendNull()
			} else {
				b.Append(*v)
			}
		default:
			panic(fmt.Sprintf("transform: %T for a string column", v))
		}
	case *array.BooleanBuilder:
		switch v := v.(type) {
		case bool:
			b.Append(v)
		case *bool:
			if v == nil {
				b.AppendNull()
			} else {
				b.Append(*v)
			}
		default:
			panic(fmt.Sprintf("transform: %T for a bool column", v))
		}
	case *array.Int64Builder:
		b.Append(v.(int64))
	case *array.Float64Builder:
		if f := v.(*float64); f == nil {
			b.AppendNull()
		} else {
			b.Append(*f)
		}
	case *array.TimestampBuilder:
		t := v.(time.Time)
		if t.IsZero() {
			b.AppendNull()
		} else {
			b.Append(arrow.Timestamp(t.UTC().UnixMicro()))
		}
	case *array.Date32Builder:
		d := v.(day)
		if !d.ok {
			b.AppendNull()
		} else {
			b.Append(arrow.Date32FromTime(d.t))
		}
	case *array.ListBuilder:
		ss := v.([]string)
		if ss == nil {
			b.AppendNull()
			return
		}
		b.Append(true)
		vb := b.ValueBuilder().(*array.StringBuilder)
		for _, s := range ss {
			vb.Append(s)
		}
	default:
		panic(fmt.Sprintf("transform: no appender for %T", b))
	}
}

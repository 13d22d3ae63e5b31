package push

import (
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// row is one actions row (see whsql.Actions).
type row struct {
	Key, Action, ContactID, TargetID, Args string
	Status, Message, TraceID               string
	HTTPStatus                             int64 // 0: none
	Attempts                               int64
	Baseline                               int64 // -1: unknown
	PlannedAt, SentAt, ConfirmedAt         time.Time
	Location                               string
}

// clock hands out strictly increasing row versions, so a later commit of
// a key always replaces the earlier one.
var clock struct {
	sync.Mutex
	last time.Time
}

func version() time.Time {
	clock.Lock()
	defer clock.Unlock()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if !now.After(clock.last) {
		now = clock.last.Add(time.Microsecond)
	}
	clock.last = now
	return now
}

// record builds the Arrow batch of rows; the caller releases it.
func record(rows []*row, source, runID string) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, whsql.Actions.Schema)
	defer b.Release()
	at := version()
	str := func(i int, v string, null bool) {
		fb := b.Field(i).(*array.StringBuilder)
		if null && v == "" {
			fb.AppendNull()
		} else {
			fb.Append(v)
		}
	}
	tsv := func(i int, t time.Time) {
		fb := b.Field(i).(*array.TimestampBuilder)
		if t.IsZero() {
			fb.AppendNull()
			return
		}
		fb.Append(arrow.Timestamp(t.UTC().UnixMicro()))
	}
	i64 := func(i int, v int64, null bool) {
		fb := b.Field(i).(*array.Int64Builder)
		if null {
			fb.AppendNull()
		} else {
			fb.Append(v)
		}
	}
	for _, r := range rows {
		str(0, r.Key, false)
		str(1, r.Action, false)
		str(2, r.ContactID, true)
		str(3, r.TargetID, true)
		str(4, r.Args, true)
		str(5, r.Status, false)
		str(6, r.Message, true)
		str(7, r.TraceID, true)
		i64(8, r.HTTPStatus, r.HTTPStatus == 0)
		i64(9, r.Attempts, false)
		i64(10, r.Baseline, r.Baseline < 0)
		tsv(11, r.PlannedAt)
		tsv(12, r.SentAt)
		tsv(13, r.ConfirmedAt)
		str(14, source, false)
		str(15, r.Location, false)
		str(16, runID, false)
		tsv(17, at)
	}
	return b.NewRecordBatch()
}

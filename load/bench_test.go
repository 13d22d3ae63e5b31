package load

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// benchContacts builds n contacts (ids from first) in batches of 50k rows,
// each with a 3-element tags list.
func benchContacts(mem memory.Allocator, first, n int, at time.Time) []arrow.RecordBatch {
	const batch = 50_000
	var recs []arrow.RecordBatch
	fields := whsql.Contacts.Schema.Fields()
	idx := func(name string) int {
		for i, f := range fields {
			if f.Name == name {
				return i
			}
		}
		panic(name)
	}
	iID, iName, iEmail, iTags, iCreated := idx("contact_id"), idx("name"), idx("email"), idx("tags"), idx("created_at")
	iSrc, iLoc, iRun, iAt := idx(whsql.ColSource), idx(whsql.ColLocationID), idx(whsql.ColRunID), idx(whsql.ColExtractedAt)
	for off := 0; off < n; off += batch {
		b := array.NewRecordBuilder(mem, whsql.Contacts.Schema)
		for i := off; i < min(off+batch, n); i++ {
			id := first + i
			for j := range fields {
				fb := b.Field(j)
				switch j {
				case iID:
					fb.(*array.StringBuilder).Append(fmt.Sprintf("c%08d", id))
				case iName:
					fb.(*array.StringBuilder).Append(fmt.Sprintf("Contact %d", id))
				case iEmail:
					fb.(*array.StringBuilder).Append(fmt.Sprintf("c%d@example.com", id))
				case iTags:
					lb := fb.(*array.ListBuilder)
					lb.Append(true)
					vb := lb.ValueBuilder().(*array.StringBuilder)
					vb.Append("customer")
					vb.Append(fmt.Sprintf("t%d", id%17))
					vb.Append("newsletter")
				case iCreated:
					fb.(*array.TimestampBuilder).AppendTime(at.Add(-time.Duration(id) * time.Second))
				case iSrc:
					fb.(*array.StringBuilder).Append("src")
				case iLoc:
					fb.(*array.StringBuilder).Append("loc1")
				case iRun:
					fb.(*array.StringBuilder).Append("run-bench")
				case iAt:
					fb.(*array.TimestampBuilder).AppendTime(at)
				default:
					fb.AppendNull()
				}
			}
		}
		recs = append(recs, b.NewRecordBatch())
		b.Release()
	}
	return recs
}

func releaseAll(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

// BenchmarkIngest compares the staging paths: Arrow records of contacts
// (with a LIST column) into a DuckDB temp table.
func BenchmarkIngest(b *testing.B) {
	ctx := context.Background()
	mem := memory.NewGoAllocator()
	for _, n := range []int{100_000, 1_000_000} {
		recs := benchContacts(mem, 0, n, time.Now())
		for _, in := range []Ingest{IngestArrow, IngestParquet, IngestAppender} {
			b.Run(fmt.Sprintf("%s/%dk", in, n/1000), func(b *testing.B) {
				c := memConn(b)
				if err := exec(ctx, c, mustRead(b, "schema.sql")); err != nil {
					b.Fatal(err)
				}
				cfg := newConfig([]Option{WithTempDir(b.TempDir())})
				var cpu time.Duration
				b.ResetTimer()
				for i := range b.N {
					stg := fmt.Sprintf("stg_%d", i)
					cpu0 := processCPU()
					var err error
					switch in {
					case IngestArrow:
						err = stageArrow(ctx, c, whsql.Contacts, recs, stg)
					case IngestParquet:
						err = stageParquet(ctx, c, whsql.Contacts, recs, stg, cfg)
					case IngestAppender:
						err = stageAppender(ctx, c, whsql.Contacts, recs, stg)
					}
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					cpu += processCPU() - cpu0
					if err := exec(ctx, c, "DROP TABLE "+stg); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
				reportCPU(b, cpu)
			})
		}
		releaseAll(recs)
	}
}

// BenchmarkMerge commits 100k contacts (half updates of existing keys, half
// new) into a warehouse file holding 1M, through the DuckDB sink: open,
// stage, merge, commit, close.
func BenchmarkMerge(b *testing.B) {
	ctx := context.Background()
	mem := memory.NewGoAllocator()
	for _, in := range []Ingest{IngestArrow, IngestParquet} {
		b.Run(in.String()+"/100k-into-1M", func(b *testing.B) {
			var cpu time.Duration
			for range b.N {
				b.StopTimer()
				s, err := NewDuckDB(filepath.Join(b.TempDir(), "w.duckdb"), WithIngest(in), WithTempDir(b.TempDir()))
				if err != nil {
					b.Fatal(err)
				}
				at := time.Now()
				base := benchContacts(mem, 0, 1_000_000, at)
				if err := s.Commit(ctx, &Commit{Records: map[string][]arrow.RecordBatch{"contacts": base}}); err != nil {
					b.Fatal(err)
				}
				releaseAll(base)
				upd := benchContacts(mem, 950_000, 100_000, at.Add(time.Second))
				b.StartTimer()
				cpu0 := processCPU()
				if err := s.Commit(ctx, &Commit{Records: map[string][]arrow.RecordBatch{"contacts": upd}}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += processCPU() - cpu0
				releaseAll(upd)
				st := s.LastCommit().Tables["contacts"]
				if st.Written != 100_000 || st.Replaced != 50_000 {
					b.Fatalf("merge stats %+v", st)
				}
				b.StartTimer()
			}
			reportCPU(b, cpu)
		})
	}
}

// processCPU is the CPU time (user + system) of this process so far, all
// threads (DuckDB's included), from /proc/self/stat; 0 where there is none.
// On a machine shared with other work it varies less than wall time.
func processCPU() time.Duration {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// Fields after the command (which may hold spaces) start at state (3);
	// utime and stime are fields 14 and 15, in clock ticks (USER_HZ = 100).
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func reportCPU(b *testing.B, cpu time.Duration) {
	if cpu > 0 {
		b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	}
}

func mustRead(b testing.TB, name string) string {
	s, err := whsql.Read(name)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkMergeStatements times one table's stage and merge alone (no
// file open, checkpoint or close): 100k contacts, half updates, into an
// in-memory table of 1M, inside a transaction that is rolled back.
func BenchmarkMergeStatements(b *testing.B) {
	ctx := context.Background()
	mem := memory.NewGoAllocator()
	c := memConn(b)
	if err := exec(ctx, c, mustRead(b, "schema.sql")); err != nil {
		b.Fatal(err)
	}
	at := time.Now()
	base := benchContacts(mem, 0, 1_000_000, at)
	if err := stageArrow(ctx, c, whsql.Contacts, base, "base"); err != nil {
		b.Fatal(err)
	}
	releaseAll(base)
	if err := exec(ctx, c, `INSERT INTO contacts SELECT * FROM base; DROP TABLE base`); err != nil {
		b.Fatal(err)
	}
	upd := benchContacts(mem, 950_000, 100_000, at.Add(time.Second))
	defer releaseAll(upd)
	d := &DuckDB{cfg: newConfig([]Option{WithIngest(IngestArrow)})}
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		if err := exec(ctx, c, `BEGIN TRANSACTION`); err != nil {
			b.Fatal(err)
		}
		cpu0 := processCPU()
		ts, err := d.load(ctx, c, whsql.Contacts, upd)
		cpu += processCPU() - cpu0
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := exec(ctx, c, `ROLLBACK`); err != nil {
			b.Fatal(err)
		}
		if ts.Written != 100_000 || ts.Replaced != 50_000 {
			b.Fatalf("merge stats %+v", ts)
		}
		b.StartTimer()
	}
	reportCPU(b, cpu)
}

package transform

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

var at = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func run(t *testing.T, batchRows int, recs ...api.Record) ([]Batch, Counts) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	s := New(Config{Source: "hl", RunID: "r1", ExtractedAt: at, BatchRows: batchRows, Mem: mem})
	in := make(chan api.Record, len(recs))
	for _, r := range recs {
		in <- r
	}
	close(in)
	out := make(chan Batch, 1000)
	if err := s.Run(context.Background(), in, out); err != nil {
		t.Fatal(err)
	}
	close(out)
	s.Close()
	var bs []Batch
	for b := range out {
		bs = append(bs, b)
	}
	t.Cleanup(func() {
		for _, b := range bs {
			if b.Rec != nil {
				b.Rec.Release()
			}
		}
		mem.AssertSize(t, 0)
	})
	return bs, s.Counts()
}

func rec(res, raw string) api.Record {
	return api.Record{Resource: res, LocationID: "L1", ContactID: "c1", Raw: []byte(raw)}
}

func col(t *testing.T, r arrow.RecordBatch, name string) arrow.Array {
	t.Helper()
	idx := r.Schema().FieldIndices(name)
	if len(idx) != 1 {
		t.Fatalf("no column %s", name)
	}
	return r.Column(idx[0])
}

func TestContactMapping(t *testing.T) {
	bs, counts := run(t, 100, rec(api.ResourceContacts, `{"id":"c1","locationId":"L1","contactName":"Zoë 山田","email":" A@B.Com ",
		"tags":["vip","x"],"dateUpdated":"2025-01-02T03:04:05.123Z","dateOfBirth":"1990-05-01","unknownField":{"a":1},
		"customFields":[{"id":"f1","value":3.5},{"id":"f2","value":["a","b"]}],"dndSettings":{"SMS":{"status":"active"}}}`))
	if counts["contacts"] != 1 || len(bs) != 1 {
		t.Fatalf("counts %v batches %d", counts, len(bs))
	}
	r := bs[0].Rec
	if got := col(t, r, "name").(*array.String).Value(0); got != "Zoë 山田" {
		t.Errorf("name %q", got)
	}
	if got := col(t, r, "email").(*array.String).Value(0); got != "a@b.com" {
		t.Errorf("email %q", got)
	}
	if !col(t, r, "phone").IsNull(0) {
		t.Error("missing phone should be NULL")
	}
	up := col(t, r, "updated_at").(*array.Timestamp).Value(0)
	if want := time.Date(2025, 1, 2, 3, 4, 5, 123e6, time.UTC).UnixMicro(); int64(up) != want {
		t.Errorf("updated_at %d want %d", up, want)
	}
	if got := col(t, r, "custom_fields").(*array.String).Value(0); got != `[{"id":"f1","value":3.5},{"id":"f2","value":["a","b"]}]` {
		t.Errorf("custom_fields %s", got)
	}
	tags := col(t, r, "tags").(*array.List)
	if s, e := tags.ValueOffsets(0); e-s != 2 {
		t.Errorf("tags len %d", e-s)
	}
}

func TestRejects(t *testing.T) {
	bad := []api.Record{
		rec(api.ResourceContacts, `{"id":"c2","firstName":123}`),
		rec(api.ResourceContacts, "{\"id\":\"c3\",\"firstName\":\"a\xff\xfeb\"}"),
		rec(api.ResourceContacts, `{"firstName":"no id"}`),
		rec(api.ResourceNotes, `{"id":"n1","dateAdded":"yesterday"}`),
		rec(api.ResourceTasks, `not json`),
		{Resource: api.ResourceNotes, LocationID: "L1", ContactID: "c9", Raw: []byte(`{"notes":[`), Problem: "malformed notes list"},
	}
	good := rec(api.ResourceNotes, `{"id":"n2","body":"`+strings.Repeat("x", 10<<20)+`"}`)
	bs, counts := run(t, 100, append(bad, good)...)
	if counts["rejects"] != int64(len(bad)) || counts["notes"] != 1 {
		t.Fatalf("counts %v", counts)
	}
	var rj arrow.RecordBatch
	for _, b := range bs {
		if b.Table == "rejects" {
			rj = b.Rec
		}
	}
	reasons := col(t, rj, "reason").(*array.String)
	ids := col(t, rj, "record_id").(*array.String)
	wantReason := []string{"cannot unmarshal number", "invalid UTF-8", "missing id", "field dateAdded", "decode", "malformed notes list"}
	wantID := []string{"c2", "c3", "", "n1", "", ""}
	for i := range bad {
		if !strings.Contains(reasons.Value(i), wantReason[i]) {
			t.Errorf("reject %d reason %q, want %q", i, reasons.Value(i), wantReason[i])
		}
		if ids.Value(i) != wantID[i] {
			t.Errorf("reject %d id %q want %q", i, ids.Value(i), wantID[i])
		}
	}
}

func TestBatchingAndMarks(t *testing.T) {
	var recs []api.Record
	for i := 0; i < 25; i++ {
		recs = append(recs, rec(api.ResourceTasks, `{"id":"t`+string(rune('a'+i))+`","completed":false,"dueDate":"2021-07-16 11:00:00"}`))
	}
	recs = append(recs, api.Record{Mark: &api.Mark{LocationID: "L1", Contacts: 25}})
	recs = append(recs, rec(api.ResourceTasks, `{"id":"tz","completed":true}`))
	bs, _ := run(t, 10, recs...)
	var sizes []int64
	markAt := -1
	for i, b := range bs {
		if b.Mark != nil {
			markAt = i
			continue
		}
		sizes = append(sizes, b.Rec.NumRows())
	}
	if want := []int64{10, 10, 5, 1}; len(sizes) != 4 || sizes[0] != 10 || sizes[2] != 5 || sizes[3] != 1 {
		t.Fatalf("batch sizes %v want %v", sizes, want)
	}
	if markAt != 3 {
		t.Fatalf("mark at %d, want after the flushed 5", markAt)
	}
	st := col(t, bs[0].Rec, "status").(*array.String).Value(0)
	if st != "overdue" {
		t.Errorf("status %q", st)
	}
}

func TestParseTime(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	cases := []struct {
		in   string
		loc  *time.Location
		want time.Time
	}{
		{"2021-07-16 11:00:00", time.UTC, time.Date(2021, 7, 16, 11, 0, 0, 0, time.UTC)},
		{"2021-07-16 11:00:00", ny, time.Date(2021, 7, 16, 15, 0, 0, 0, time.UTC)},
		{"2021-07-16T11:00:00+02:00", ny, time.Date(2021, 7, 16, 9, 0, 0, 0, time.UTC)},
		{"2021-07-16T11:00:00.5Z", ny, time.Date(2021, 7, 16, 11, 0, 0, 5e8, time.UTC)},
		{"1764003536678", time.UTC, time.UnixMilli(1764003536678).UTC()},
		{"", time.UTC, time.Time{}},
	}
	for _, c := range cases {
		got, err := ParseTime(c.in, c.loc)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	if _, err := ParseTime("31/12/2020", time.UTC); err == nil {
		t.Error("want error")
	}
}

func FuzzContact(f *testing.F) {
	f.Add([]byte(`{"id":"c1","tags":["a"],"dateUpdated":"2025-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"id":1}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		s := New(Config{Source: "hl", RunID: "r", ExtractedAt: at, Mem: mem})
		out := make(chan Batch, 10)
		if err := s.Add(context.Background(), rec(api.ResourceContacts, string(raw)), out); err != nil {
			t.Fatal(err)
		}
		if err := s.flushAll(context.Background(), out); err != nil {
			t.Fatal(err)
		}
		close(out)
		n := 0
		for b := range out {
			n += int(b.Rec.NumRows())
			b.Rec.Release()
		}
		s.Close()
		if n != 1 {
			t.Fatalf("%d rows for one record", n)
		}
		mem.AssertSize(t, 0)
	})
}

package transform

import (
	"context"
	"fmt"
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
	if counts["contacts"] != 1 || counts["contact_custom_fields"] != 2 || len(bs) != 2 {
		t.Fatalf("counts %v batches %d", counts, len(bs))
	}
	r := table(bs, "contacts")
	if got := col(t, r, "name").(*array.String).Value(0); got != "Zoë 山田" {
		t.Errorf("name %q", got)
	}
	if got := col(t, r, "email").(*array.String).Value(0); got != " A@B.Com " {
		t.Errorf("email %q, want it as sent", got)
	}
	if got := col(t, r, "email_normalized").(*array.String).Value(0); got != "A@b.com" {
		t.Errorf("email_normalized %q", got)
	}
	if got := col(t, r, "_extra").(*array.String).Value(0); got != `{"unknownField":{"a":1}}` {
		t.Errorf("_extra %s", got)
	}
	cf := table(bs, "contact_custom_fields")
	if got := col(t, cf, "value_number").(*array.Float64).Value(0); got != 3.5 || col(t, cf, "field_id").(*array.String).Value(1) != "f2" {
		t.Errorf("custom field rows: %v", cf)
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

func table(bs []Batch, name string) arrow.RecordBatch {
	for _, b := range bs {
		if b.Table == name {
			return b.Rec
		}
	}
	return nil
}

// TestWholeRejects: only a record without a usable id (or a body the
// extractor could not split) is rejected whole; the rest land.
func TestWholeRejects(t *testing.T) {
	bad := []api.Record{
		rec(api.ResourceContacts, `{"firstName":"no id"}`),
		rec(api.ResourceContacts, `{"id":"  ","firstName":"blank id"}`),
		rec(api.ResourceContacts, `{"id":17}`),
		rec(api.ResourceContacts, "{\"id\":\"c\xff\"}"),
		rec(api.ResourceTasks, `not json`),
		rec(api.ResourceNotes, `["id","n1"]`),
		rec(api.ResourceNotes, `null`),
		{Resource: api.ResourceNotes, LocationID: "L1", ContactID: "c9", Raw: []byte(`{"notes":[`), Problem: "malformed notes list"},
	}
	good := rec(api.ResourceNotes, `{"id":"n2","body":"`+strings.Repeat("x", 10<<20)+`"}`)
	bs, counts := run(t, 100, append(bad, good)...)
	if counts.Rejects() != int64(len(bad)) || counts["notes"] != 1 || counts.Rows() != 1 || counts.FieldRejects() != 0 {
		t.Fatalf("counts %v", counts)
	}
	rj := table(bs, "rejects")
	reasons := col(t, rj, "reason").(*array.String)
	ids := col(t, rj, "record_id").(*array.String)
	keys := col(t, rj, "reject_key").(*array.String)
	wantReason := []string{"missing id", "missing id", "unusable id: want string, got number", "unusable id: invalid UTF-8",
		"decode", "decode", "not a JSON object", "malformed notes list"}
	wantID := []string{"", "  ", "17", "c\uFFFD", "", "", "", ""}
	seen := map[string]bool{}
	for i := range bad {
		if !strings.Contains(reasons.Value(i), wantReason[i]) {
			t.Errorf("reject %d reason %q, want %q", i, reasons.Value(i), wantReason[i])
		}
		if ids.Value(i) != wantID[i] {
			t.Errorf("reject %d id %q want %q", i, ids.Value(i), wantID[i])
		}
		if k := keys.Value(i); len(k) != 32 || seen[k] {
			t.Errorf("reject %d key %q (empty or duplicate)", i, k)
		} else {
			seen[k] = true
		}
	}
	// The same records read again give the same keys: the keyed merge
	// replaces their rows instead of appending them.
	again, _ := run(t, 100, bad...)
	k2 := col(t, table(again, "rejects"), "reject_key").(*array.String)
	for i := range bad {
		if k := k2.Value(i); k != keys.Value(i) {
			t.Errorf("reject %d: key %s on re-read, was %s", i, k, keys.Value(i))
		}
	}
}

// fieldRow is one expected field reject.
type fieldRow struct {
	field, column, raw, reason string
	landed                     bool
}

// TestOddFields: each wrongly typed field becomes NULL and one field reject
// with its raw value; the other fields of the record land as they were.
func TestOddFields(t *testing.T) {
	const good = `"id":"c1","lastName":"Okafor","email":"a@b.c","tags":["vip"],"dnd":true,"dateOfBirth":"1990-05-01","customFields":[{"id":"f","value":1}]`
	cases := []struct {
		name string
		odd  string // JSON members spliced into the good contact (replacing a good one of the same name)
		col  string
		want any // the column's value: nil for NULL
		rej  []fieldRow
	}{
		{"dnd as a string", `"dnd":"yes"`, "dnd", nil, []fieldRow{{"dnd", "dnd", `"yes"`, "want boolean, got string", false}}},
		{"customFields as an object", `"customFields":{"f":1}`, "custom_fields", nil,
			[]fieldRow{{"customFields", "custom_fields", `{"f":1}`, "want array, got object", false}}},
		{"dateOfBirth as a number", `"dateOfBirth":19900501`, "date_of_birth", nil,
			[]fieldRow{{"dateOfBirth", "date_of_birth", `19900501`, `unrecognised time "19900501"`, false}}},
		{"dateOfBirth placeholder", `"dateOfBirth":"Date format YYYY-MM-DD"`, "date_of_birth", nil,
			[]fieldRow{{"dateOfBirth", "date_of_birth", `"Date format YYYY-MM-DD"`, `unrecognised time "Date format YYYY-MM-DD"`, false}}},
		{"dateOfBirth as epoch ms", `"dateOfBirth":631152000000`, "date_of_birth", "1990-01-01", nil},
		{"tags as a string", `"tags":"vip"`, "tags", nil, []fieldRow{{"tags", "tags", `"vip"`, "want array of strings, got string", false}}},
		{"tags with a number", `"tags":["a",1]`, "tags", nil, []fieldRow{{"tags", "tags", `["a",1]`, "want array of strings, got array", false}}},
		{"name as a number", `"firstName":123`, "first_name", nil, []fieldRow{{"firstName", "first_name", `123`, "want string, got number", false}}},
		{"phone as a number", `"phone":5551234`, "phone", nil, []fieldRow{{"phone", "phone", `5551234`, "want string, got number", false}}},
		{"invalid UTF-8 in a name", "\"firstName\":\"Jos\xe9 \xff\xfeA\"", "first_name", "Jos\uFFFD \uFFFDA",
			[]fieldRow{{"firstName", "first_name", `"Jos\xe9 \xff\xfeA"`, ReasonUTF8Replaced, true}}},
		{"dateUpdated unreadable", `"dateUpdated":"yesterday"`, "updated_at", nil,
			[]fieldRow{{"dateUpdated", "updated_at", `"yesterday"`, `unrecognised time "yesterday"`, false}}},
		{"dateUpdated as epoch ms number", `"dateUpdated":1764003536678`, "updated_at", time.UnixMilli(1764003536678).UTC(), nil},
		{"dndSettings as an array", `"dndSettings":["SMS"]`, "dnd_settings", nil,
			[]fieldRow{{"dndSettings", "dnd_settings", `["SMS"]`, "want array→object", false}}},
		{"null is NULL, no reject", `"firstName":null`, "first_name", nil, nil},
		{"several odd fields", `"dnd":1,"tags":{},"email":false`, "email", nil, []fieldRow{
			{"email", "email", `false`, "want string, got boolean", false},
			{"tags", "tags", `{}`, "want array of strings, got object", false},
			{"dnd", "dnd", `1`, "want boolean, got number", false}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := "{" + good + "," + c.odd + "}" // a later member wins in encoding/json
			bs, counts := run(t, 100, rec(api.ResourceContacts, raw))
			if counts["contacts"] != 1 || counts.Rejects() != 0 || counts.FieldRejects() != int64(len(c.rej)) {
				t.Fatalf("counts %v", counts)
			}
			r := table(bs, "contacts")
			if got := value(t, col(t, r, c.col), 0); !same(got, c.want) {
				t.Errorf("%s = %#v, want %#v", c.col, got, c.want)
			}
			// The good fields land whatever the odd ones are.
			if c.col != "email" && value(t, col(t, r, "email"), 0) != "a@b.c" || value(t, col(t, r, "last_name"), 0) != "Okafor" ||
				value(t, col(t, r, "contact_id"), 0) != "c1" {
				t.Errorf("good fields lost: %v %v", value(t, col(t, r, "email"), 0), value(t, col(t, r, "last_name"), 0))
			}
			fr := table(bs, "field_rejects")
			var got []fieldRow
			for i := 0; fr != nil && i < int(fr.NumRows()); i++ {
				got = append(got, fieldRow{value(t, col(t, fr, "field"), i).(string), value(t, col(t, fr, "column_name"), i).(string),
					value(t, col(t, fr, "raw_value"), i).(string), value(t, col(t, fr, "reason"), i).(string),
					value(t, col(t, fr, "value_landed"), i).(bool)})
				if value(t, col(t, fr, "record_id"), i) != "c1" || value(t, col(t, fr, "resource"), i) != "contacts" ||
					value(t, col(t, fr, "contact_id"), i) != "c1" || value(t, col(t, fr, "_location_id"), i) != "L1" ||
					value(t, col(t, fr, "_run_id"), i) != "r1" || value(t, col(t, fr, "_source"), i) != "hl" {
					t.Errorf("field reject %d keys wrong", i)
				}
			}
			if !sameRejects(got, c.rej) {
				t.Errorf("field rejects\n got %v\nwant %v", got, c.rej)
			}
		})
	}
}

// sameRejects compares ignoring order; a want reason "want x→y" matches
// any reason naming y (JSON shape names are the contract, not the wording).
func sameRejects(got, want []fieldRow) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		ok := false
		for _, g := range got {
			r := w.reason
			if i := strings.Index(r, "→"); i >= 0 {
				r = "want " + r[i+len("→"):]
			}
			if g.field == w.field && g.column == w.column && g.raw == w.raw && g.landed == w.landed && strings.Contains(g.reason, r) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// value reads row i of a column as a plain Go value (nil for NULL; dates
// as "YYYY-MM-DD", timestamps as UTC times, lists as []string).
func value(t *testing.T, a arrow.Array, i int) any {
	t.Helper()
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.String:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.Int64:
		return a.Value(i)
	case *array.Date32:
		return a.Value(i).ToTime().Format("2006-01-02")
	case *array.Timestamp:
		return time.UnixMicro(int64(a.Value(i))).UTC()
	case *array.List:
		s, e := a.ValueOffsets(i)
		vs := a.ListValues().(*array.String)
		out := []string{}
		for k := s; k < e; k++ {
			out = append(out, vs.Value(int(k)))
		}
		return out
	}
	t.Fatalf("no reader for %T", a)
	return nil
}

func same(a, b any) bool {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	return fmt.Sprint(a) == fmt.Sprint(b) && (a == nil) == (b == nil)
}

// TestChildrenOddFieldsAndParent: children follow the same rule, and
// belong to the contact of the request path whatever their body says.
func TestChildrenOddFieldsAndParent(t *testing.T) {
	recs := []api.Record{
		rec(api.ResourceTasks, `{"id":"t1","title":"call","completed":"yes","contactId":"other","dueDate":"2020-01-01T00:00:00Z"}`),
		rec(api.ResourceNotes, "{\"id\":\"n1\",\"body\":\"Caf\xe9\",\"pinned\":\"no\",\"dateAdded\":\"2020-01-01T00:00:00Z\"}"),
		rec(api.ResourceAppointments, `{"id":"a1","contactId":"c1","users":"u1","startTime":"2021-07-16 11:00:00","title":"Demo"}`),
		{Resource: api.ResourceNotes, LocationID: "L1", Raw: []byte(`{"id":"n2","contactId":"only-body"}`)},
	}
	bs, counts := run(t, 100, recs...)
	if counts.Rows() != 4 || counts.Rejects() != 0 || counts.FieldRejects() != 4 {
		t.Fatalf("counts %v", counts)
	}
	tk := table(bs, "tasks")
	for c, want := range map[string]any{"contact_id": "c1", "body_contact_id": "other", "completed": nil, "status": nil, "title": "call"} {
		if got := value(t, col(t, tk, c), 0); !same(got, want) {
			t.Errorf("tasks.%s = %v, want %v", c, got, want)
		}
	}
	nt := table(bs, "notes")
	for c, want := range map[string]any{"contact_id": "c1", "body_contact_id": nil, "content": "Caf\uFFFD", "pinned": nil} {
		if got := value(t, col(t, nt, c), 0); !same(got, want) {
			t.Errorf("notes.%s = %v, want %v", c, got, want)
		}
	}
	if got := value(t, col(t, nt, "contact_id"), 1); got != "only-body" {
		t.Errorf("a note without a path parent: contact_id %v", got)
	}
	ap := table(bs, "appointments")
	for c, want := range map[string]any{"contact_id": "c1", "body_contact_id": "c1", "attendees": nil, "title": "Demo",
		"start_time": time.Date(2021, 7, 16, 11, 0, 0, 0, time.UTC), "time_zone": "UTC"} {
		if got := value(t, col(t, ap, c), 0); !same(got, want) {
			t.Errorf("appointments.%s = %v, want %v", c, got, want)
		}
	}
	fr := table(bs, "field_rejects")
	var got []string
	for i := 0; i < int(fr.NumRows()); i++ {
		got = append(got, fmt.Sprint(value(t, col(t, fr, "resource"), i), "/", value(t, col(t, fr, "record_id"), i), "/",
			value(t, col(t, fr, "contact_id"), i), "/", value(t, col(t, fr, "field"), i), "/", value(t, col(t, fr, "value_landed"), i)))
	}
	want := []string{"tasks/t1/c1/completed/false", "notes/n1/c1/body/true", "notes/n1/c1/pinned/false", "appointments/a1/c1/users/false"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("field rejects\n got %v\nwant %v", got, want)
	}
}

// TestRejectedReported: the Mark after a page carries the records that did
// not land in full, so the run can read them again.
func TestRejectedReported(t *testing.T) {
	recs := []api.Record{
		rec(api.ResourceContacts, `{"id":"c1","dnd":"yes","tags":"x"}`),
		rec(api.ResourceContacts, "{\"id\":\"c2\",\"firstName\":\"\xff\"}"), // mended only: landed in full
		rec(api.ResourceContacts, `{"firstName":"no id"}`),
		{Resource: api.ResourceTasks, LocationID: "L1", ContactID: "c7", Raw: []byte(`{"tasks":[`), Problem: "malformed tasks list"},
		{Mark: &api.Mark{LocationID: "L1"}},
		rec(api.ResourceNotes, `{"id":"n1","pinned":3}`),
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := New(Config{Source: "hl", RunID: "r1", ExtractedAt: at, Mem: mem})
	defer s.Close()
	out := make(chan Batch, 100)
	for _, r := range recs {
		if err := s.Add(context.Background(), r, out); err != nil {
			t.Fatal(err)
		}
	}
	close(out)
	var mark []Rejected
	for b := range out {
		if b.Mark != nil {
			mark = b.Rejected
		} else {
			b.Rec.Release()
		}
	}
	want := []Rejected{
		{Resource: "contacts", LocationID: "L1", RecordID: "c1", ContactID: "c1", Fields: []string{"tags", "dnd"}},
		{Resource: "contacts", LocationID: "L1", Whole: true, Reason: "missing id"},
		{Resource: "tasks", LocationID: "L1", ContactID: "c7", Whole: true, Reason: "malformed tasks list"},
	}
	if fmt.Sprint(mark) != fmt.Sprint(want) {
		t.Errorf("with the mark\n got %+v\nwant %+v", mark, want)
	}
	rest := s.Rejected()
	if len(rest) != 1 || rest[0].RecordID != "n1" || rest[0].ContactID != "c1" || rest[0].Whole {
		t.Errorf("after the mark: %+v", rest)
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

// TestInZoneDST pins the rule for wall times at a change of offset, in
// three zones: a time in the spring gap is read with the offset before the
// gap, a time in the autumn overlap is the earlier instant.
func TestInZoneDST(t *testing.T) {
	zone := func(name string) *time.Location {
		l, err := time.LoadLocation(name)
		if err != nil {
			t.Skipf("no zone data: %v", err)
		}
		return l
	}
	ny, berlin, kolkata := zone("America/New_York"), zone("Europe/Berlin"), zone("Asia/Kolkata")
	utc := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, time.UTC) }
	cases := []struct {
		name string
		in   string
		loc  *time.Location
		want time.Time
	}{
		{"NY winter", "2021-01-10 09:00:00", ny, utc(2021, 1, 10, 14, 0)},
		{"NY summer", "2021-07-16 11:00:00", ny, utc(2021, 7, 16, 15, 0)},
		{"NY spring gap", "2021-03-14 02:30:00", ny, utc(2021, 3, 14, 7, 30)},
		{"NY just after the gap", "2021-03-14 03:00:00", ny, utc(2021, 3, 14, 7, 0)},
		{"NY autumn overlap: earlier", "2021-11-07 01:30:00", ny, utc(2021, 11, 7, 5, 30)},
		{"NY after the overlap", "2021-11-07 02:00:00", ny, utc(2021, 11, 7, 7, 0)},
		{"Berlin spring gap", "2024-03-31 02:15:00", berlin, utc(2024, 3, 31, 1, 15)},
		{"Berlin autumn overlap: earlier", "2024-10-27 02:30:00", berlin, utc(2024, 10, 27, 0, 30)},
		{"Berlin summer", "2024-07-01 12:00:00", berlin, utc(2024, 7, 1, 10, 0)},
		{"Kolkata (no DST, +05:30)", "2024-03-31 02:15:00", kolkata, utc(2024, 3, 30, 20, 45)},
		{"offset wins over the zone", "2021-03-14T02:30:00-05:00", berlin, utc(2021, 3, 14, 7, 30)},
		{"date only: midnight in the zone", "2024-10-27", berlin, utc(2024, 10, 26, 22, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseTime(c.in, c.loc)
			if err != nil || !got.Equal(c.want) || got.Location() != time.UTC {
				t.Errorf("ParseTime(%q, %s) = %v, %v; want %v", c.in, c.loc, got, err, c.want)
			}
		})
	}
}

// TestAppointmentZone: zone-less times are read in the stage's zone and
// time_zone records it; times with offsets record "offset".
func TestAppointmentZone(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := New(Config{Source: "hl", RunID: "r1", ExtractedAt: at, Mem: mem, NaiveZone: berlin})
	defer s.Close()
	out := make(chan Batch, 10)
	for _, raw := range []string{
		`{"id":"a1","startTime":"2024-10-27 02:30:00","endTime":"2024-10-27 03:30:00"}`,
		`{"id":"a2","startTime":"2024-10-27T02:30:00+02:00","endTime":"2024-10-27T03:30:00Z"}`,
		`{"id":"a3","title":"no times"}`,
	} {
		if err := s.Add(context.Background(), rec(api.ResourceAppointments, raw), out); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.flushAll(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	close(out)
	b := <-out
	defer b.Rec.Release()
	want := []struct {
		start, end time.Time
		zone       any
	}{
		{time.Date(2024, 10, 27, 0, 30, 0, 0, time.UTC), time.Date(2024, 10, 27, 2, 30, 0, 0, time.UTC), "Europe/Berlin"},
		{time.Date(2024, 10, 27, 0, 30, 0, 0, time.UTC), time.Date(2024, 10, 27, 3, 30, 0, 0, time.UTC), "offset"},
		{time.Time{}, time.Time{}, nil},
	}
	for i, w := range want {
		st, en := value(t, col(t, b.Rec, "start_time"), i), value(t, col(t, b.Rec, "end_time"), i)
		if w.start.IsZero() {
			if st != nil || en != nil {
				t.Errorf("row %d: times %v %v, want NULL", i, st, en)
			}
		} else if !same(st, w.start) || !same(en, w.end) {
			t.Errorf("row %d: %v–%v, want %v–%v", i, st, en, w.start, w.end)
		}
		if z := value(t, col(t, b.Rec, "time_zone"), i); !same(z, w.zone) {
			t.Errorf("row %d: time_zone %v, want %v", i, z, w.zone)
		}
	}
}

// FuzzContact: any input gives exactly one contact row (and its field
// rejects, each naming a field of it) or one whole-record reject; never a
// panic, never a leak.
func FuzzContact(f *testing.F) {
	f.Add([]byte(`{"id":"c1","tags":["a"],"dateUpdated":"2025-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"id":1}`))
	f.Add([]byte(`{"id":"c1","dnd":"yes","customFields":{"a":1},"dateOfBirth":"Date format YYYY-MM-DD","tags":"x"}`))
	f.Add([]byte("{\"id\":\"c1\",\"firstName\":\"Jos\xe9\",\"phone\":5551234,\"dateOfBirth\":19900501}"))
	f.Add([]byte(`{"id":"c1","tags":[null],"additionalEmails":[1],"dndSettings":[],"attributionSource":"x"}`))
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
		rows := map[string]int64{}
		for b := range out {
			rows[b.Table] += b.Rec.NumRows()
			if b.Table == "field_rejects" {
				for i := 0; i < int(b.Rec.NumRows()); i++ {
					if col(t, b.Rec, "field").IsNull(i) || col(t, b.Rec, "reason").IsNull(i) || col(t, b.Rec, "record_id").IsNull(i) {
						t.Errorf("field reject %d lacks field, reason or record id", i)
					}
				}
			}
			b.Rec.Release()
		}
		s.Close()
		c := s.Counts()
		if rows["contacts"]+rows["rejects"] != 1 || (rows["rejects"] == 1 && rows["field_rejects"] != 0) {
			t.Fatalf("rows %v for one record", rows)
		}
		if c.Rows() != rows["contacts"] || c.Rejects() != rows["rejects"] || c.FieldRejects() != rows["field_rejects"] {
			t.Fatalf("counts %v, rows %v", c, rows)
		}
		mem.AssertSize(t, 0)
	})
}

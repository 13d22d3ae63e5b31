package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unsafe"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// splitSeeds are bodies the splitter must judge as encoding/json does.
var splitSeeds = []string{
	``,
	` `,
	`null`,
	` null `,
	`nul`,
	`nullx`,
	`{}`,
	`[]`,
	`"x"`,
	`1`,
	`true`,
	`{"contacts":null}`,
	`{"contacts":[]}`,
	`{"contacts":[],"total":0}`,
	`{"contacts":[{}]}`,
	`{"contacts":[null,1,"s",[],{}],"total":5}`,
	`{"contacts":{}}`,
	`{"contacts":"x"}`,
	`{"contacts":1}`,
	`{"contacts":true}`,
	`{"contacts":[1,]}`,
	`{"contacts":[1 2]}`,
	`{"contacts":[1],}`,
	`{"contacts":[1]`,
	`{"contacts":[{"id":"a"`,
	`{"contacts":[{"id":"a","dateUpdated":"2024-01-02T03:04:05.678Z","searchAfter":[1704164645678,"a"]}],"total":1}`,
	` { "contacts" : [ { "id" : "a" , "dateUpdated" : "d" , "searchAfter" : [ 1 , "a" ] } , { } ] , "total" : 2 } `,
	"\t\n\r{\t\"contacts\"\n:\r[\n]\t}\n",
	`{"contacts":[{"id":"a"}]} x`,
	`{"contacts":[{"id":"a"}]}{}`,
	`{"contacts":[{"id":"a"}]}]`,
	`{"contacts":[{"id":"a"}]}` + "\x00",
	"\xef\xbb\xbf{\"contacts\":[]}",
	// Escapes in keys and values.
	`{"\u0063ontacts":[{"\u0069d":"\u0061\n\"\\\/\b\f\r\t","date\u0055pdated":"x\u00e9"}]}`,
	`{"contacts":[{"id":"\ud83d\ude00","dateUpdated":"\ud83d","searchAfter":"\ude00\ud83d"}]}`,
	`{"contacts":[{"id":"\ud83dx","dateUpdated":"\ud83d\u0041"}]}`,
	`{"contacts":[{"id":"\x"}]}`,
	`{"contacts":[{"id":"\u12"}]}`,
	`{"contacts":[{"id":"\u12g4"}]}`,
	`{"contacts":[{"id":"\'"}]}`,
	"{\"contacts\":[{\"id\":\"a\tb\"}]}",
	"{\"contacts\":[{\"id\":\"a\x1fb\"}]}",
	"{\"contacts\":[{\"id\":\"a\x7fb\"}]}",
	// Case folding of keys, as encoding/json matches struct fields.
	`{"CONTACTS":[{"ID":"a","DATEUPDATED":"b","SEARCHAFTER":[1]}],"Total":3}`,
	`{"contacts":[{"İd":"a","ıd":"b"}]}`,
	`{"contacts":[{"\u0130d":"a","dateUpdated":"x"}]}`,
	`{"ſearchAfter":1,"contacts":[{"ſearchAfter":[2],"tas\u212As":1}]}`,
	`{"tas\u212As":[1],"notes":[2],"events":[3]}`,
	`{"Tasks":[1],"NOTES":[2],"eVeNtS":[3]}`,
	`{"contacts":[{"i":"a","idd":"b","d":"c"}]}`,
	// Invalid UTF-8.
	"{\"contacts\":[{\"id\":\"a\xffb\",\"dateUpdated\":\"\xc3\"}]}",
	"{\"contacts\":[{\"id\":\"\xed\xa0\x80\",\"dateUpdated\":\"\xf4\x90\x80\x80\"}]}",
	"{\"contacts\":[{\"i\xffd\":\"a\",\"\xff\":1}]}",
	"{\"contacts\":[\"\xff\xfe\"]}",
	"{\"c\xc3\xb3ntacts\":[]}",
	// Duplicate keys: the last one wins.
	`{"contacts":[1],"contacts":[2,3]}`,
	`{"contacts":[1],"contacts":null}`,
	`{"contacts":null,"contacts":[]}`,
	`{"contacts":[{"id":"a","id":"b","ID":"c"}]}`,
	`{"contacts":[{"id":"a","id":5}]}`,
	`{"contacts":[{"id":"a","id":null}]}`,
	`{"contacts":[{"id":"a","id":{"x":1}}]}`,
	`{"contacts":[{"id":"a","id":[1]}]}`,
	`{"contacts":[{"searchAfter":[1],"searchAfter":null}]}`,
	`{"contacts":[{"searchAfter":[1],"searchAfter":"x"}]}`,
	`{"contacts":[{"searchAfter":[1,2,3]},{"id":"b"}]}`,
	`{"total":1,"total":2,"contacts":[]}`,
	`{"total":1,"total":null,"contacts":[]}`,
	// Numbers.
	`{"contacts":[],"total":1.5}`,
	`{"contacts":[],"total":1e3}`,
	`{"contacts":[],"total":-0}`,
	`{"contacts":[],"total":-9223372036854775808}`,
	`{"contacts":[],"total":9223372036854775808}`,
	`{"contacts":[],"total":99999999999999999999999999999}`,
	`{"contacts":[],"total":"3"}`,
	`{"contacts":[],"total":true}`,
	`{"contacts":[],"total":[]}`,
	`{"contacts":[],"total":01}`,
	`{"contacts":[],"total":-}`,
	`{"contacts":[],"total":1.}`,
	`{"contacts":[],"total":.5}`,
	`{"contacts":[],"total":1e}`,
	`{"contacts":[],"total":1e+}`,
	`{"contacts":[],"total":+1}`,
	`{"contacts":[1e400,-1.5E-7,123456789012345678901234567890,0.0,-0]}`,
	`{"contacts":[{"searchAfter":[1e400,"x"]}],"x":1E+2}`,
	// Nested values.
	`{"contacts":[{"id":"a","x":{"y":[{"z":{}},[[]]],"id":"inner"},"dateUpdated":"d"}],"meta":{"contacts":[9]}}`,
	`{"other":{"contacts":[1]},"contacts":[[{"id":"a"}]]}`,
	`{"contacts":[{"a":tru}]}`,
	`{"contacts":[{"a":nulL}]}`,
	`{"contacts":[{"a" 1}]}`,
	`{"contacts":[{1:1}]}`,
	`{"contacts":[{"a":1,}]}`,
	`{"contacts":[{"a":1}}]}`,
	`{"contacts" "x"}`,
	`{contacts:[]}`,
	`{'contacts':[]}`,
}

// deep is n nested arrays around 1, inside a contact (nesting 3 deep).
func deep(n int) string {
	return `{"contacts":[{"x":` + strings.Repeat("[", n) + "1" + strings.Repeat("]", n) + `}]}`
}

// FuzzSplitter holds the one-pass splitter to encoding/json: for any body,
// the search page, each child list and each bulk listing split iff
// json.Unmarshal into the envelope type succeeds, into the same records
// (the same bytes, aliasing the body), with each contact's id, dateUpdated
// and the last searchAfter as json.Unmarshal into pageKey reads them; and
// bulkKeys reads a listed record's id and contactId as bulkRecord did with
// encoding/json.
func FuzzSplitter(f *testing.F) {
	for _, s := range append(splitSeeds, bulkSeeds...) {
		f.Add([]byte(s))
	}
	// encoding/json stops at 10000 levels of nesting.
	f.Add([]byte(deep(maxJSONDepth - 3)))
	f.Add([]byte(deep(maxJSONDepth - 2)))
	f.Add([]byte(`{"x":` + strings.Repeat("[", maxJSONDepth-1) + strings.Repeat("]", maxJSONDepth-1) + `,"contacts":[]}`))
	f.Add([]byte(`{"x":` + strings.Repeat(`{"a":`, maxJSONDepth) + "1" + strings.Repeat("}", maxJSONDepth) + `,"contacts":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSplit(t, b)
	})
}

func checkSplit(t *testing.T, b []byte) {
	t.Helper()
	orig := bytes.Clone(b)
	// The search page.
	got, gotOK := splitPageFast(b)
	var want api.SearchResponse
	werr := json.Unmarshal(b, &want)
	if gotOK != (werr == nil) {
		t.Fatalf("splitter ok %v, encoding/json error %v, on %q", gotOK, werr, b)
	}
	if gotOK {
		ref, err := decodePage(b)
		if err != nil {
			t.Fatal(err)
		}
		if (got.items == nil) != (want.Contacts == nil) || got.n != want.Total {
			t.Fatalf("contacts nil %v total %d, want nil %v total %d, on %q", got.items == nil, got.n, want.Contacts == nil, want.Total, b)
		}
		sameRecords(t, b, got.items, want.Contacts)
		for i := range ref.ids {
			if got.ids[i] != ref.ids[i] || got.updated[i] != ref.updated[i] {
				t.Fatalf("record %d: id %q updated %q, want %q %q, on %q", i, got.ids[i], got.updated[i], ref.ids[i], ref.updated[i], b)
			}
		}
		if len(got.ids) != len(ref.ids) || len(got.updated) != len(ref.updated) || !bytes.Equal(got.after, ref.after) ||
			(got.after == nil) != (ref.after == nil) {
			t.Fatalf("%d ids %d dates searchAfter %q, want %d %d %q, on %q", len(got.ids), len(got.updated), got.after,
				len(ref.ids), len(ref.updated), ref.after, b)
		}
	}
	// The child lists.
	for _, res := range ChildResources {
		items, ok := splitList(b, childList(res))
		want, werr := decodeChildren(b, res)
		if ok != (werr == nil) {
			t.Fatalf("%s: splitter ok %v, encoding/json error %v, on %q", res, ok, werr, b)
		}
		if ok {
			if (items == nil) != (want == nil) {
				t.Fatalf("%s: nil %v, want %v, on %q", res, items == nil, want == nil, b)
			}
			sameRecords(t, b, items, want)
		}
	}
	// The bulk listings (their acceptance is the child lists'), and the
	// keys of a listed record.
	for _, name := range []string{"tasks", "events"} {
		sp := splitter{list: name}
		if !sp.split(b) {
			continue
		}
		want, wantUsable := splitBulkJSON(b, name)
		if usable := sp.items != nil; usable != wantUsable {
			t.Fatalf("%s: usable %v, want %v, on %q", name, usable, wantUsable, b)
		}
		sameRecords(t, b, sp.items, want)
	}
	id, contact := bulkKeys(b)
	wid, wcontact := bulkKeysJSON(b)
	if id != wid || contact != wcontact {
		t.Fatalf("bulk keys %q %q, want %q %q, on %q", id, contact, wid, wcontact, b)
	}
	if !bytes.Equal(b, orig) {
		t.Fatal("the body changed")
	}
}

// splitPageFast is the splitter alone, without readPage's fallback.
func splitPageFast(b []byte) (splitter, bool) {
	sp := splitter{list: "contacts", total: "total", keys: true}
	return sp, sp.split(b)
}

// sameRecords checks that got are want's bytes, as subslices of body that
// cannot be appended into.
func sameRecords(t *testing.T, body []byte, got, want []json.RawMessage) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d, on %q", len(got), len(want), body)
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(body)))
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d is %q, want %q", i, got[i], want[i])
		}
		if cap(got[i]) != len(got[i]) {
			t.Fatalf("record %d: cap %d > len %d", i, cap(got[i]), len(got[i]))
		}
		if p := uintptr(unsafe.Pointer(unsafe.SliceData(got[i]))); p < lo || p+uintptr(len(got[i])) > lo+uintptr(len(body)) {
			t.Fatalf("record %d is not a subslice of the body", i)
		}
	}
}

// Real pages of the simulator split as encoding/json splits them.
func TestSplitterOnSimPages(t *testing.T) {
	e := startSim(t, sim.Config{Seed: 11, Contacts: 300}, nil)
	ctx := context.Background()
	body, err := e.c.do(ctx, http.MethodPost, "/contacts/search", nil, searchRequest("loc-0001", Query{PageLimit: 100}))
	if err != nil {
		t.Fatal(err)
	}
	sp, ok := splitPageFast(body)
	if !ok || len(sp.items) != 100 || sp.n != 300 || sp.ids[99] == "" || len(sp.after) == 0 {
		t.Fatalf("ok %v, %d contacts, total %d, last id %q, searchAfter %q", ok, len(sp.items), sp.n, sp.ids[len(sp.ids)-1], sp.after)
	}
	checkSplit(t, body)
	children := 0
	for _, id := range sp.ids[:20] {
		for _, res := range ChildResources {
			b, err := e.c.do(ctx, http.MethodGet, "/contacts/"+id+"/"+res, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			items, _ := splitList(b, childList(res))
			children += len(items)
			checkSplit(t, b)
		}
	}
	if children == 0 {
		t.Fatal("no children read")
	}
}

// A record is cut to its length: appending to it never writes into the
// body (the next record).
func TestSplitRecordsDoNotShareCapacity(t *testing.T) {
	b := []byte(`{"tasks":[{"id":"a"},{"id":"b"}]}`)
	items, ok := splitList(b, "tasks")
	if !ok || len(items) != 2 {
		t.Fatalf("ok %v items %q", ok, items)
	}
	_ = append(items[0], 'X')
	if string(items[1]) != `{"id":"b"}` || string(b) != `{"tasks":[{"id":"a"},{"id":"b"}]}` {
		t.Fatalf("body now %q", b)
	}
}

// bulkSeeds are listed records for bulkKeys.
var bulkSeeds = []string{
	`{"id":"t1","contactId":"c1"}`,
	` {"contactId":"c1","id":"t1"} `,
	`{"id":"a","id":"b","contactId":null}`,
	`{"id":"a","id":5}`,
	`{"ID":"a","contactid":"c"}`,
	`{"\u0069d":"\u0061","contact\u0049d":"\ud83d"}`,
	"{\"id\":\"a\xffb\",\"contactId\":\"\\ud800x\"}",
	`{"id":"a"`,
	`{"id":"a"} x`,
	`["id","a"]`,
	`null`,
	`{"x":{"id":"inner"},"id":["a"],"contactId":{"id":"c"}}`,
}

// An empty page has ids and dates, empty, as decodePage gives them.
func TestReadPageEmpty(t *testing.T) {
	sp, err := readPage([]byte(`{"contacts":[],"total":0}`), 100)
	if err != nil || sp.items == nil || sp.ids == nil || sp.updated == nil || len(sp.ids) != 0 {
		t.Fatalf("%+v, %v", sp, err)
	}
}

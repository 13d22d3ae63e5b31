package transform

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

var fuzzResources = []string{api.ResourceContacts, api.ResourceTasks, api.ResourceNotes, api.ResourceAppointments, api.ResourceCustomFields}

// FuzzPage decodes a page body as the client does (a search page's
// "contacts" list; a body that is not one becomes one problem record) and
// maps every record: no panic, no leak, and every record ends as exactly
// one row of its table (plus field rejects) or one whole-record reject.
// The first byte picks the resource. make fuzz runs it longer.
func FuzzPage(f *testing.F) {
	f.Add([]byte("\x00" + `{"contacts":[{"id":"c1","tags":[" a","a"],"email":" X@Bücher.DE","phone":"(415) 555-2671 x9","country":"US"},{"id":2}],"total":2}`))
	f.Add([]byte("\x00" + `{"contacts":[{"id":"c1","customFields":[{"id":"f","value":[1,"x"]},{"id":"f","value":null},{"value":1}],"businessId":"b","lastAttributionSource":{"a":1}}]}`))
	f.Add([]byte("\x01" + `{"contacts":[{"id":"t1","dueDate":"2021-03-14 02:30:00","completed":"yes","extra":[1]}]}`))
	f.Add([]byte("\x03" + `{"contacts":[{"id":"a1","startTime":"2024-02-29 10:00:00","endTime":1700000000000,"users":["u",null]}]}`))
	f.Add([]byte("\x04" + `{"contacts":[{"id":"cf1","name":"N","dataType":"NUMERICAL","position":"x"},{"id":""}]}`))
	f.Add([]byte("\x00" + `{"contacts":[{"id":"c1","firstName":"Jos\xe9","dnd":"yes","dateOfBirth":19900501}, null, [], "x"]}`))
	f.Add([]byte("\x00" + `{"contacts":{"id":"c1"}}`))
	f.Add([]byte("\x02" + `{"contacts":[{"id":"n1","body":"a\u0000b","pinned":1,"\u0069d":"dup"}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		res := fuzzResources[int(in[0])%len(fuzzResources)]
		body := in[1:]
		var recs []api.Record
		var page struct {
			Contacts []json.RawMessage `json:"contacts"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			recs = append(recs, api.Record{Resource: res, LocationID: "L1", ContactID: "c0", Raw: body, Problem: "malformed page: " + err.Error()})
		} else {
			for _, raw := range page.Contacts {
				recs = append(recs, api.Record{Resource: res, LocationID: "L1", ContactID: "c0", Raw: raw})
			}
		}
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		s := New(Config{Source: "hl", RunID: "r", ExtractedAt: at, Mem: mem, BatchRows: 3})
		defer s.Close()
		table := res
		if res == api.ResourceCustomFields {
			table = "custom_field_definitions"
		}
		ctx := context.Background()
		for i, r := range recs {
			out := make(chan Batch, 100)
			if err := s.Add(ctx, r, out); err != nil {
				t.Fatal(err)
			}
			if err := s.flushAll(ctx, out); err != nil {
				t.Fatal(err)
			}
			close(out)
			rows := map[string]int64{}
			for b := range out {
				rows[b.Table] += b.Rec.NumRows()
				b.Rec.Release()
			}
			if rows[table]+rows["rejects"] != 1 || (rows["rejects"] == 1 && rows["field_rejects"]+rows["contact_custom_fields"] != 0) {
				t.Fatalf("record %d (%s) gave rows %v", i, r.Raw, rows)
			}
		}
	})
}

package transform

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// simGet asks the simulator (in process, no network) for path.
func simGet(t *testing.T, s *sim.Server, method, path, body string) []byte {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer pit-odd")
	req.Header.Set("Version", api.VersionContacts)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body.Bytes())
	}
	return w.Body.Bytes()
}

// TestSimOddContacts decodes a search page of the simulator serving odd
// field shapes and compares the rows with its ground truth: every odd
// contact landed, its odd fields NULL (or mended), its good fields as
// served, one field reject per odd field with the raw value; children
// served with a foreign body contactId stay with the path's contact.
func TestSimOddContacts(t *testing.T) {
	loc := sim.New(sim.Config{}).Locations()[0] // the location's id, to grant the token
	srv := sim.New(sim.Config{Seed: 3, Contacts: 80, Bad: sim.BadData{OddFields: 12, WrongTypes: 2, InvalidUTF8: 2, BodyContactIDs: 3},
		StaticTokens: map[string]sim.StaticToken{"pit-odd": {LocationID: loc, Scopes: []string{api.ScopeContactsRO}}}})
	var page api.SearchResponse
	if err := json.Unmarshal(simGet(t, srv, "POST", "/contacts/search", `{"locationId":"`+loc+`","pageLimit":100}`), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Contacts) != 80 {
		t.Fatalf("page of %d contacts", len(page.Contacts))
	}
	recs := make([]api.Record, 0, 100)
	for _, raw := range page.Contacts {
		recs = append(recs, api.Record{Resource: api.ResourceContacts, LocationID: loc, Raw: raw})
	}
	foreign := srv.BodyContactIDs()
	kids := map[string]string{} // child id -> path contact
	for _, ct := range srv.Truth(loc) {
		if !strings.Contains(foreign[firstKid(ct)], "vendorExample") {
			continue
		}
		for res, key := range map[string]string{api.ResourceTasks: "tasks", api.ResourceNotes: "notes", api.ResourceAppointments: "events"} {
			var list map[string][]json.RawMessage
			if err := json.Unmarshal(simGet(t, srv, "GET", "/contacts/"+ct.Contact.ID+"/"+res, ""), &list); err != nil {
				t.Fatal(err)
			}
			for _, raw := range list[key] {
				recs = append(recs, api.Record{Resource: res, LocationID: loc, ContactID: ct.Contact.ID, Raw: raw})
				kids[recordID(raw)] = ct.Contact.ID
			}
		}
	}
	bs, counts := run(t, 1000, recs...)
	if counts.Rejects() != 0 || counts["contacts"] != 80 {
		t.Fatalf("counts %v", counts)
	}
	rows := func(table, key string) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, b := range bs {
			if b.Table != table {
				continue
			}
			for i := 0; i < int(b.Rec.NumRows()); i++ {
				r := map[string]any{}
				for j, f := range b.Rec.Schema().Fields() {
					r[f.Name] = value(t, b.Rec.Column(j), i)
				}
				var k string
				if table == "field_rejects" {
					k = r["record_id"].(string) + "/" + r["field"].(string)
				} else {
					k = r[key].(string)
				}
				out[k] = r
			}
		}
		return out
	}
	contacts, freject := rows("contacts", "contact_id"), rows("field_rejects", "")
	truth := map[string]api.Contact{}
	for _, ct := range srv.Truth(loc) {
		truth[ct.Contact.ID] = ct.Contact
	}
	want := srv.ExpectedFieldRejects()
	if len(want) < 14 {
		t.Fatalf("simulator served only %d odd records", len(want))
	}
	nFields := 0
	for _, fr := range want {
		if fr.Resource != api.ResourceContacts {
			nFields += len(fr.Fields) // a task or note of a contact whose children were not read here
			continue
		}
		got, ok := contacts[fr.ID]
		if !ok {
			t.Errorf("odd contact %s did not land", fr.ID)
			continue
		}
		odd := map[string]bool{}
		for _, f := range fr.Fields {
			odd[f.Column] = true
			var wantV any
			if f.Landed {
				wantV = f.Value
			}
			if !same(got[f.Column], wantV) {
				t.Errorf("%s.%s = %#v, want %#v", fr.ID, f.Column, got[f.Column], wantV)
			}
			rj, ok := freject[fr.ID+"/"+f.Field]
			if !ok {
				t.Errorf("%s: no field reject for %s", fr.ID, f.Field)
				continue
			}
			if rj["raw_value"] != rawText([]byte(f.Raw)) || rj["value_landed"] != f.Landed || rj["column_name"] != f.Column ||
				rj["contact_id"] != fr.ID || rj["resource"] != "contacts" || rj["_location_id"] != loc {
				t.Errorf("%s: field reject %v, want raw %q landed %v", fr.ID, rj, f.Raw, f.Landed)
			}
		}
		c := truth[fr.ID]
		for col, v := range map[string]any{"first_name": c.FirstName, "last_name": c.LastName, "city": c.City,
			"email": c.Email, "phone": c.Phone, "timezone": c.Timezone, "lead_source": c.Source,
			"tags": uniqueTrimmed(c.Tags), "dnd": c.DND, "updated_at": mustTime(t, c.DateUpdated)} {
			if odd[col] {
				continue
			}
			if s, ok := v.(string); ok && s == "" {
				v = nil
			}
			if tg, ok := v.([]string); ok && len(tg) == 0 {
				v = nil
			}
			if !same(got[col], v) {
				t.Errorf("%s: good field %s = %#v, want %#v", fr.ID, col, got[col], v)
			}
		}
	}
	if int(counts.FieldRejects()) != len(freject) || len(freject) < 20 {
		t.Errorf("field rejects: %d rows, %d keys", counts.FieldRejects(), len(freject))
	}
	for _, table := range []struct{ name, key string }{{"tasks", "task_id"}, {"notes", "note_id"}, {"appointments", "appointment_id"}} {
		for id, r := range rows(table.name, table.key) {
			if r["contact_id"] != kids[id] || r["body_contact_id"] != foreign[id] || foreign[id] == "" {
				t.Errorf("%s %s: contact_id %v body_contact_id %v; want %s, %s", table.name, id, r["contact_id"], r["body_contact_id"], kids[id], foreign[id])
			}
		}
	}
	if len(kids) == 0 {
		t.Error("no children with a foreign contactId served")
	}
	t.Logf("counts %v; %d odd records (%d child fields not read here), %d children with a foreign contactId", counts, len(want), nFields, len(kids))
}

func firstKid(ct sim.ContactTruth) string {
	switch {
	case len(ct.Tasks) > 0:
		return ct.Tasks[0].ID
	case len(ct.Notes) > 0:
		return ct.Notes[0].ID
	case len(ct.Events) > 0:
		return ct.Events[0].ID
	}
	return ""
}

func mustTime(t *testing.T, s string) any {
	tm, err := ParseTime(s, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if tm.IsZero() {
		return nil
	}
	return tm
}

// uniqueTrimmed is what tags land as: trimmed, without empty or repeated
// ones, in order.
func uniqueTrimmed(tags []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range tags {
		t = strings.TrimSpace(t)
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

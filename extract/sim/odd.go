package sim

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"strings"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// KindOddFields marks a contact served with fields of the wrong shape
// (BadData.OddFields): it must land, those fields NULL.
const KindOddFields = "odd_fields"

// OddField is one field served with a shape the warehouse cannot hold
// as such, and what the exporter must make of it.
type OddField struct {
	Field  string // the JSON field
	Column string // the warehouse column
	Raw    string // the JSON text served (may hold invalid UTF-8)
	// Landed: the value still lands, mended (invalid UTF-8 replaced by
	// U+FFFD); Value is then what the column holds. Otherwise the column
	// is NULL.
	Landed bool
	Value  string
}

// FieldReject is the ground truth of one record served with odd fields:
// the record lands, each of Fields gives one field reject, and every
// other field is as Truth has it.
type FieldReject struct {
	Resource   string
	LocationID string
	ID         string
	ContactID  string // the contact of the request path (the contact itself for contacts)
	Fields     []OddField
}

// oddKinds are the odd shapes seen in real accounts, served in turn.
var oddKinds = []OddField{
	{Field: "dnd", Column: "dnd", Raw: `"yes"`},
	{Field: "customFields", Column: "custom_fields", Raw: `{"cfA1":"x","cfB2":3}`},
	{Field: "dateOfBirth", Column: "date_of_birth", Raw: `19900501`},
	{Field: "dateOfBirth", Column: "date_of_birth", Raw: `"Date format YYYY-MM-DD"`},
	{Field: "tags", Column: "tags", Raw: `"vip"`},
	{Field: "phone", Column: "phone", Raw: `5551234567`},
	{Field: "lastName", Column: "last_name", Raw: "\"M\xfcller \xff\xfe\"", Landed: true, Value: "M\uFFFDller \uFFFD"},
	{Field: "email", Column: "email", Raw: `["a@example.com"]`},
}

// oddFor returns the odd fields of the i-th odd contact: two kinds, never
// the same field twice.
func oddFor(i int) []OddField {
	return []OddField{oddKinds[i%len(oddKinds)], oddKinds[(i+3)%len(oddKinds)]}
}

// injectOdd applies BadData.OddFields and BadData.BodyContactIDs; take is
// injectBad's picker of unused contacts.
func (s *Server) injectOdd(take func(func(*contact) bool) *contact) {
	for i := range s.cfg.Bad.OddFields {
		if c := take(nil); c != nil {
			c.bad.contact, c.bad.oddAt = KindOddFields, i+1
		}
	}
	hasKids := func(c *contact) bool { k := c.kids.get(); return len(k.tasks)+len(k.notes)+len(k.events) > 0 }
	for range s.cfg.Bad.BodyContactIDs {
		if c := take(hasKids); c != nil {
			c.bad.bodyContact = "vendorExample" + c.c.ID[:7]
		}
	}
}

// oddContact rewrites the encoded contact b with the odd fields: an object
// with sorted keys, the odd fields' raw values in place of the good ones.
func oddContact(b []byte, odd []OddField) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		panic("sim: odd contact: " + err.Error())
	}
	for _, f := range odd {
		m[f.Field] = json.RawMessage(f.Raw)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, rawString(k)...)
		out = append(out, ':')
		out = append(out, m[k]...)
	}
	return append(out, '}')
}

// withBodyContact replaces a child's own contactId by another (the
// vendor's examples do this); the child still belongs to the path's contact.
func withBodyContact(b []byte, contactID string, bad *badSpec) []byte {
	if bad == nil || bad.bodyContact == "" {
		return b
	}
	return bytes.Replace(b, []byte(`"contactId":"`+contactID+`"`), []byte(`"contactId":"`+bad.bodyContact+`"`), 1)
}

// ExpectedFieldRejects lists the records served right now with fields of
// the wrong shape (BadData.OddFields, WrongTypes, InvalidUTF8), sorted by
// location, contact, resource and id. Each must land with one field reject
// per listed field. The records of BadData.WrongTypes and InvalidUTF8 are
// in ExpectedRejects too (as spoilt records) but are not whole rejects:
// see BadRecord.Whole.
func (s *Server) ExpectedFieldRejects() []FieldReject {
	s.mu.RLock()
	cs := make([]*contact, 0, len(s.badIDs))
	for _, id := range s.badIDs {
		cs = append(cs, s.byID[id])
	}
	s.mu.RUnlock()
	var out []FieldReject
	for _, c := range cs {
		if c.deleted {
			continue
		}
		b, k := c.bad, c.kids.get()
		add := func(res, id, cid string, fs ...OddField) {
			out = append(out, FieldReject{Resource: res, LocationID: c.c.LocationID, ID: id, ContactID: cid, Fields: fs})
		}
		switch b.contact {
		case KindOddFields:
			add(api.ResourceContacts, c.c.ID, c.c.ID, oddFor(b.oddAt-1)...)
		case KindWrongType:
			add(api.ResourceContacts, c.c.ID, c.c.ID, OddField{Field: "firstName", Column: "first_name", Raw: "123"},
				OddField{Field: "tags", Column: "tags", Raw: `"x"`})
		case KindInvalidUTF8:
			if fn := c.c.FirstName; !strings.HasPrefix(fn, "Jos") || fn != strings.ToValidUTF8(fn, "\uFFFD") {
				add(api.ResourceContacts, c.c.ID, c.c.ID, OddField{Field: "firstName", Column: "first_name",
					Raw: string(rawString(fn)), Landed: true, Value: strings.ToValidUTF8(fn, "\uFFFD")})
			}
		}
		if b.taskID != "" && !b.tasksList && slices.ContainsFunc(k.tasks, func(t api.Task) bool { return t.ID == b.taskID }) {
			add(api.ResourceTasks, b.taskID, c.c.ID, OddField{Field: "completed", Column: "completed", Raw: `"yes"`})
		}
		if b.noteKind == KindInvalidUTF8 && !b.notesList {
			if i := slices.IndexFunc(k.notes, func(n api.Note) bool { return n.ID == b.noteID }); i >= 0 {
				if body := k.notes[i].Body; body != strings.ToValidUTF8(body, "\uFFFD") {
					add(api.ResourceNotes, b.noteID, c.c.ID, OddField{Field: "body", Column: "content",
						Raw: string(rawString(body)), Landed: true, Value: strings.ToValidUTF8(body, "\uFFFD")})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b FieldReject) int {
		return cmp.Or(strings.Compare(a.LocationID, b.LocationID), strings.Compare(a.ContactID, b.ContactID),
			strings.Compare(a.Resource, b.Resource), strings.Compare(a.ID, b.ID))
	})
	return out
}

// BodyContactIDs maps the id of every child served with a body contactId
// other than its contact's (BadData.BodyContactIDs) to that contactId.
// Truth keeps the real parent in ContactID.
func (s *Server) BodyContactIDs() map[string]string {
	s.mu.RLock()
	cs := make([]*contact, 0, len(s.badIDs))
	for _, id := range s.badIDs {
		cs = append(cs, s.byID[id])
	}
	s.mu.RUnlock()
	out := map[string]string{}
	for _, c := range cs {
		if c.deleted || c.bad.bodyContact == "" {
			continue
		}
		k := c.kids.get()
		for _, t := range k.tasks {
			out[t.ID] = c.bad.bodyContact
		}
		for _, n := range k.notes {
			out[n.ID] = c.bad.bodyContact
		}
		for _, e := range k.events {
			out[e.ID] = c.bad.bodyContact
		}
	}
	return out
}

// Whole says whether the exporter must reject this record whole (it has
// no usable id, or its list cannot be read); the others land with field
// rejects (ExpectedFieldRejects).
func (b BadRecord) Whole() bool { return b.Kind == KindMissingID || b.Kind == KindMalformedList }

package sim

import (
	"bytes"
	"cmp"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// Kinds of injected bad records (BadRecord.Kind).
const (
	KindWrongType     = "wrong_type"
	KindInvalidUTF8   = "invalid_utf8"
	KindMissingID     = "missing_id"
	KindMalformedList = "malformed_list"
)

// contact is one version of a contact. A version is immutable once
// published: a mutation publishes a new version and readers holding the old
// one keep a consistent view. The contact's JSON forms are cached per
// version.
type contact struct {
	c       api.Contact // GET /contacts/{id} form
	loc     *location
	pos     int // index in loc.list
	addMs   int64
	updMs   int64
	deleted bool
	bad     *badSpec // nil for clean contacts; shared between versions
	kids    *kids
	enc     *encodings
}

// kids are the children of a contact. Generated contacts keep only gen and
// rebuild their children on each use, so memory stays flat however many
// children are served; edited ones hold their own copies.
type kids struct {
	gen    func() *kids // non-nil: generate on use
	tasks  []api.Task
	notes  []api.Note
	events []api.Event
	times  map[string]EventTime // by event id: the true instants
	// gone are the ids of children deleted from a live contact, by
	// resource: the warehouse may keep them only soft-deleted.
	gone map[string][]string
}

// EventTime is the truth of an appointment's times: the instants, in UTC,
// and the zone its zone-less times were written in ("" when they were
// written with an offset).
type EventTime struct {
	ID         string
	Start, End time.Time
	Zone       string
}

func (k *kids) get() *kids {
	if k.gen != nil {
		return k.gen()
	}
	return k
}

// clone returns stored, unshared copies of the children.
func (k *kids) clone() *kids {
	g := k.get()
	gone := map[string][]string{}
	for r, ids := range g.gone {
		gone[r] = slices.Clone(ids)
	}
	return &kids{tasks: slices.Clone(g.tasks), notes: slices.Clone(g.notes), events: slices.Clone(g.events), times: maps.Clone(g.times), gone: gone}
}

// encodings caches the two forms of a contact; child lists are encoded on
// each request.
type encodings struct {
	getOnce, searchOnce sync.Once
	get, search         []byte
}

// badSpec says which of a contact's records are spoilt and how.
type badSpec struct {
	contact     string // kind
	taskID      string // KindWrongType
	noteID      string
	noteKind    string // KindInvalidUTF8 or KindMissingID
	eventID     string // KindMissingID
	tasksList   bool   // malformed
	notesList   bool   // malformed
	oddAt       int    // KindOddFields: 1 + the argument of oddFor (odd.go)
	bodyContact string // children's body contactId (odd.go)
}

type location struct {
	id       string
	zoneName string
	zone     *time.Location
	list     []*contact // current versions, deleted ones included
	snap     *snapshot  // nil when stale
}

type snapshot struct {
	byUpd, byAdd []*contact // live contacts only
}

func cmpUpd(a, b *contact) int {
	return cmp.Or(cmp.Compare(a.updMs, b.updMs), strings.Compare(a.c.ID, b.c.ID))
}

func cmpAdd(a, b *contact) int {
	return cmp.Or(cmp.Compare(a.addMs, b.addMs), strings.Compare(a.c.ID, b.c.ID))
}

// snapshot returns the sorted live contacts of l, rebuilding them if a
// mutation made them stale.
func (s *Server) snapshot(l *location) *snapshot {
	s.mu.RLock()
	sn := l.snap
	s.mu.RUnlock()
	if sn != nil {
		return sn
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.snap == nil {
		sn := &snapshot{byUpd: make([]*contact, 0, len(l.list))}
		for _, c := range l.list {
			if !c.deleted {
				sn.byUpd = append(sn.byUpd, c)
			}
		}
		sn.byAdd = slices.Clone(sn.byUpd)
		slices.SortFunc(sn.byUpd, cmpUpd)
		slices.SortFunc(sn.byAdd, cmpAdd)
		l.snap = sn
	}
	return l.snap
}

// marshal encodes v like the API does (no HTML escaping).
func marshal(v any) []byte {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		panic("sim: encode: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// Markers are replaced after encoding to write what encoding/json cannot.
const (
	markRaw  = "@@SIM-RAW@@"
	markInt  = "@@SIM-INT@@"
	markTags = "@@SIM-TAGS@@"
)

// rawString quotes s for JSON but keeps invalid UTF-8 bytes as they are.
func rawString(s string) []byte {
	b := []byte{'"'}
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '"' || ch == '\\':
			b = append(b, '\\', ch)
		case ch < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[ch>>4], "0123456789abcdef"[ch&15])
		default:
			b = append(b, ch)
		}
	}
	return append(b, '"')
}

func dropID(b []byte, id string) []byte {
	return bytes.Replace(b, []byte(`"id":"`+id+`",`), nil, 1)
}

func (s *Server) encodeContact(c *contact, search bool) []byte {
	v := c.c
	if search {
		v.ContactName = strings.ToLower(strings.ToValidUTF8(strings.TrimSpace(v.FirstName+" "+v.LastName), ""))
		v.BusinessName = v.CompanyName
		if s.cfg.SearchOmitsDND {
			v.DNDSettings = nil
		}
	}
	kind := ""
	if c.bad != nil {
		kind = c.bad.contact
	}
	switch kind {
	case KindWrongType:
		v.FirstName = markInt
		v.Tags = []string{markTags}
	case KindInvalidUTF8:
		v.FirstName = markRaw
	}
	b := marshal(v)
	switch kind {
	case KindWrongType:
		b = bytes.Replace(b, []byte(`"`+markInt+`"`), []byte("123"), 1)
		b = bytes.Replace(b, []byte(`["`+markTags+`"]`), []byte(`"x"`), 1)
	case KindInvalidUTF8:
		b = bytes.Replace(b, []byte(`"`+markRaw+`"`), rawString(c.c.FirstName), 1)
	case KindMissingID:
		b = dropID(b, v.ID)
	case KindOddFields:
		b = oddContact(b, oddFor(c.bad.oddAt-1))
	}
	return b
}

func (c *contact) getJSON(s *Server) []byte {
	c.enc.getOnce.Do(func() { c.enc.get = s.encodeContact(c, false) })
	return c.enc.get
}

func (c *contact) searchJSON(s *Server) []byte {
	c.enc.searchOnce.Do(func() { c.enc.search = s.encodeContact(c, true) })
	return c.enc.search
}

// appendSearch appends the search form of c, with its searchAfter when
// cursor is set.
func (s *Server) appendSearch(b []byte, c *contact, sortMs int64, cursor bool) []byte {
	j := c.searchJSON(s)
	if !cursor {
		return append(b, j...)
	}
	b = append(b, j[:len(j)-1]...)
	b = append(b, `,"searchAfter":[`...)
	b = strconv.AppendInt(b, sortMs, 10)
	b = append(b, ',')
	b = append(b, rawString(c.c.ID)...)
	return append(b, "]}"...)
}

func list(key string, items [][]byte, malformed bool) []byte {
	b := append([]byte(`{"`+key+`":[`), bytes.Join(items, []byte(","))...)
	if malformed {
		b = append(b, ',')
	}
	return append(b, "]}"...)
}

func encodeTask(t api.Task, bad *badSpec) []byte {
	b := withBodyContact(marshal(t), t.ContactID, bad)
	if bad != nil && bad.taskID == t.ID {
		b = bytes.Replace(b, []byte(`"completed":`+strconv.FormatBool(t.Completed)), []byte(`"completed":"yes"`), 1)
	}
	return b
}

func encodeNote(n api.Note, bad *badSpec) []byte {
	if bad == nil || bad.noteID != n.ID {
		return withBodyContact(marshal(n), n.ContactID, bad)
	}
	switch bad.noteKind {
	case KindInvalidUTF8:
		body := n.Body
		n.Body = markRaw
		return bytes.Replace(marshal(n), []byte(`"`+markRaw+`"`), rawString(body), 1)
	case KindMissingID:
		return dropID(marshal(n), n.ID)
	}
	return marshal(n)
}

func encodeEvent(e api.Event, bad *badSpec) []byte {
	b := withBodyContact(marshal(e), e.ContactID, bad)
	if bad != nil && bad.eventID == e.ID {
		b = dropID(b, e.ID)
	}
	return b
}

func (c *contact) tasksJSON() []byte {
	k := c.kids.get()
	items := make([][]byte, len(k.tasks))
	for i, t := range k.tasks {
		items[i] = encodeTask(t, c.bad)
	}
	return list("tasks", items, c.bad != nil && c.bad.tasksList)
}

func (c *contact) notesJSON() []byte {
	k := c.kids.get()
	items := make([][]byte, len(k.notes))
	for i, n := range k.notes {
		items[i] = encodeNote(n, c.bad)
	}
	return list("notes", items, c.bad != nil && c.bad.notesList)
}

// noteJSON renders {"note":...}, or nil when the contact has no such note.
func (c *contact) noteJSON(id string) []byte {
	k := c.kids.get()
	i := slices.IndexFunc(k.notes, func(n api.Note) bool { return n.ID == id })
	if i < 0 {
		return nil
	}
	return append(append([]byte(`{"note":`), encodeNote(k.notes[i], c.bad)...), '}')
}

func (c *contact) eventsJSON() []byte {
	k := c.kids.get()
	items := make([][]byte, len(k.events))
	for i, e := range k.events {
		items[i] = encodeEvent(e, c.bad)
	}
	return list("events", items, false)
}

// ContactTruth is what the server serves for one contact right now. The
// children are those served under the contact's path: Contact.ID is their
// parent, whatever contactId their bodies carry (see
// Config.ChildContactMismatch; Tasks[i].ContactID and the like are the body
// values as served).
type ContactTruth struct {
	Contact api.Contact // the GET /contacts/{id} form
	Tasks   []api.Task
	Notes   []api.Note
	Events  []api.Event // StartTime and EndTime as served
	// EventTimes[i] is the truth of Events[i]'s times: the instants, and
	// the location's zone where the served times carry none.
	EventTimes []EventTime
	Deleted    bool // deleted contacts are listed with the children they had
	// Gone are the ids of children deleted from the contact (by
	// DeleteTask, DeleteTaskQuiet, DeleteNote, DeleteEventQuiet), by
	// resource.
	Gone map[string][]string
}

// BadRecord is one injected bad record. ID is empty for a malformed list;
// ContactID is empty for contacts.
type BadRecord struct {
	Resource   string // api.ResourceContacts, ...
	LocationID string
	ID         string
	ContactID  string
	Kind       string // KindWrongType, KindInvalidUTF8, KindMissingID, KindMalformedList
}

// Truth returns every contact of the location, deleted ones included,
// sorted by id, with deep copies of what the server serves. Records listed
// by ExpectedRejects are served spoilt; Truth holds their typed values
// (for KindInvalidUTF8, the string with the invalid bytes).
func (s *Server) Truth(locationID string) []ContactTruth {
	s.mu.RLock()
	l := s.locByID[locationID]
	var cs []*contact
	if l != nil {
		cs = slices.Clone(l.list)
	}
	s.mu.RUnlock()
	slices.SortFunc(cs, func(a, b *contact) int { return strings.Compare(a.c.ID, b.c.ID) })
	out := make([]ContactTruth, len(cs))
	for i, c := range cs {
		k := c.kids.get()
		out[i] = ContactTruth{Contact: cloneContact(c.c), Deleted: c.deleted,
			Tasks: slices.Clone(k.tasks), Notes: slices.Clone(k.notes), Events: slices.Clone(k.events), Gone: map[string][]string{}}
		for r, ids := range k.gone {
			out[i].Gone[r] = slices.Clone(ids)
		}
		for j := range out[i].Events {
			out[i].Events[j].Users = slices.Clone(out[i].Events[j].Users)
		}
		out[i].EventTimes = make([]EventTime, len(k.events))
		for j, e := range k.events {
			out[i].EventTimes[j] = k.times[e.ID]
		}
	}
	return out
}

func cloneContact(c api.Contact) api.Contact {
	c.Tags = slices.Clone(c.Tags)
	c.CustomFields = slices.Clone(c.CustomFields)
	for i := range c.CustomFields {
		c.CustomFields[i].Value = slices.Clone(c.CustomFields[i].Value)
	}
	if c.DNDSettings != nil {
		m := make(map[string]api.DNDChannel, len(c.DNDSettings))
		for k, v := range c.DNDSettings {
			m[k] = v
		}
		c.DNDSettings = m
	}
	c.AttributionSource = slices.Clone(c.AttributionSource)
	c.AdditionalEmails = slices.Clone(c.AdditionalEmails)
	c.AdditionalPhones = slices.Clone(c.AdditionalPhones)
	c.Followers = slices.Clone(c.Followers)
	c.SearchAfter = slices.Clone(c.SearchAfter)
	return c
}

// ExpectedRejects lists the injected bad records that are served right now
// (records of deleted contacts, deleted records and records mended by a
// mutation are left out), sorted by location, contact and resource. The
// HugeNote is valid data and is not listed (see HugeNote).
func (s *Server) ExpectedRejects() []BadRecord {
	s.mu.RLock()
	cs := make([]*contact, 0, len(s.badIDs))
	for _, id := range s.badIDs {
		cs = append(cs, s.byID[id])
	}
	s.mu.RUnlock()
	var out []BadRecord
	for _, c := range cs {
		if c.deleted {
			continue
		}
		b, loc, k := c.bad, c.c.LocationID, c.kids.get()
		add := func(res, id, cid, kind string) {
			out = append(out, BadRecord{Resource: res, LocationID: loc, ID: id, ContactID: cid, Kind: kind})
		}
		switch b.contact {
		case KindWrongType, KindMissingID:
			add(api.ResourceContacts, c.c.ID, "", b.contact)
		case KindInvalidUTF8:
			if !utf8.ValidString(c.c.FirstName) {
				add(api.ResourceContacts, c.c.ID, "", b.contact)
			}
		}
		if b.tasksList {
			add(api.ResourceTasks, "", c.c.ID, KindMalformedList)
		} else if b.taskID != "" && slices.ContainsFunc(k.tasks, func(t api.Task) bool { return t.ID == b.taskID }) {
			add(api.ResourceTasks, b.taskID, c.c.ID, KindWrongType)
		}
		if b.notesList {
			add(api.ResourceNotes, "", c.c.ID, KindMalformedList)
		} else if i := slices.IndexFunc(k.notes, func(n api.Note) bool { return n.ID == b.noteID }); i >= 0 {
			if b.noteKind != KindInvalidUTF8 || !utf8.ValidString(k.notes[i].Body) {
				add(api.ResourceNotes, b.noteID, c.c.ID, b.noteKind)
			}
		}
		if b.eventID != "" && slices.ContainsFunc(k.events, func(e api.Event) bool { return e.ID == b.eventID }) {
			add(api.ResourceAppointments, b.eventID, c.c.ID, KindMissingID)
		}
	}
	slices.SortFunc(out, func(a, b BadRecord) int {
		return cmp.Or(strings.Compare(a.LocationID, b.LocationID), strings.Compare(a.ContactID+a.ID, b.ContactID+b.ID),
			strings.Compare(a.Resource, b.Resource))
	})
	return out
}

package sim

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// Write endpoints (scope contacts.write), checked like the reads (token,
// rate limit, faults, Version, scope), then validated (422 with a message
// array, as the API does):
//
//	PUT    /contacts/{id}                          whitelisted fields only (api.UpdateContactFields + tags, customFields, dndSettings, dnd)
//	POST   /contacts/{id}/tags                     {"tags":[...]} adds
//	DELETE /contacts/{id}/tags                     {"tags":[...]} removes
//	PUT    /contacts/{id}/tasks/{taskId}/completed {"completed":bool}
//	PUT    /contacts/{id}/tasks/{taskId}           title, body, dueDate, completed, assignedTo
//	POST   /contacts/{id}/tasks                    create; title, dueDate, completed required
//	POST   /contacts/{id}/notes                    create; body required
//	POST   /calendars/events/appointments          create (scope calendars/events.write, Version 2021-04-15);
//	                                               calendarId, locationId, contactId, startTime required
//
// The appointment create follows calendars.json (AppointmentCreateSchema):
// unknown properties, a missing required field, a calendar the location does
// not have, a time without an offset or an endTime not after startTime are
// answered 422; a locationId other than the token's 403; without endTime the
// appointment lasts DefaultSlot. It answers 200 (not 201) with the flat
// appointment; GET /contacts/{id}/appointments then serves its times
// zone-less in the location's zone, like the generated ones.
//
// Quirk (WriteQuirks.ErrorAfterCreate): a create can answer 502 or 422
// after the record was created, as the real API does.

// WriteQuirks configure the write endpoints' misbehaviour.
type WriteQuirks struct {
	// ErrorAfterCreate is the share of creates that create the record and
	// then answer an error (alternately 502 and 422), decided by a hash of
	// the seed and the new record's id.
	ErrorAfterCreate float64
}

// WriteStats count the write requests the server received.
type WriteStats struct {
	Requests     int            // write requests received, refused ones included
	Applied      int            // writes that changed the truth (a create that answered an error included)
	ByKind       map[string]int // requests by endpoint kind
	ErrorCreates int            // creates that created and answered an error
}

type writeState struct {
	mu     sync.Mutex
	quirks WriteQuirks
	st     WriteStats
}

// SetWriteQuirks sets the write endpoints' misbehaviour.
func (s *Server) SetWriteQuirks(q WriteQuirks) {
	s.writes.mu.Lock()
	defer s.writes.mu.Unlock()
	s.writes.quirks = q
}

// Writes returns a copy of the write counters.
func (s *Server) Writes() WriteStats {
	s.writes.mu.Lock()
	defer s.writes.mu.Unlock()
	st := s.writes.st
	st.ByKind = map[string]int{}
	for k, v := range s.writes.st.ByKind {
		st.ByKind[k] = v
	}
	return st
}

func (s *Server) countWrite(fn func(*WriteStats)) {
	s.writes.mu.Lock()
	defer s.writes.mu.Unlock()
	if s.writes.st.ByKind == nil {
		s.writes.st.ByKind = map[string]int{}
	}
	fn(&s.writes.st)
}

// writeRoutes registers the write endpoints on m.
func (s *Server) writeRoutes(m *http.ServeMux) {
	reg := func(pattern, kind string, h apiHandler) {
		inner := s.apiScope(kind, api.ScopeContactsWrite, h)
		m.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			s.countWrite(func(st *WriteStats) { st.Requests++; st.ByKind[kind]++ })
			inner(w, r)
		})
	}
	reg("PUT /contacts/{id}", "update-contact", s.putContact)
	reg("POST /contacts/{id}/tags", "add-tags", s.tags(true))
	reg("DELETE /contacts/{id}/tags", "remove-tags", s.tags(false))
	reg("PUT /contacts/{id}/tasks/{taskId}/completed", "task-completed", s.taskCompleted)
	reg("PUT /contacts/{id}/tasks/{taskId}", "update-task", s.putTask)
	reg("POST /contacts/{id}/tasks", "create-task", s.createTask)
	reg("POST /contacts/{id}/notes", "create-note", s.createNote)
	inner := s.apiScope("create-appointment", api.ScopeEventsWrite, s.createAppointment)
	m.HandleFunc("POST /calendars/events/appointments", func(w http.ResponseWriter, r *http.Request) {
		s.countWrite(func(st *WriteStats) { st.Requests++; st.ByKind["create-appointment"]++ })
		inner(w, r)
	})
}

// DefaultSlot is the length of an appointment booked without endTime.
const DefaultSlot = 30 * time.Minute

var appointmentFields = []string{"title", "meetingLocationType", "meetingLocationId", "overrideLocationConfig",
	"appointmentStatus", "assignedUserId", "description", "address", "ignoreDateRange", "toNotify",
	"ignoreFreeSlotValidation", "rrule", "calendarId", "locationId", "contactId", "startTime", "endTime"}

var appointmentStatuses = []string{"new", "confirmed", "cancelled", "showed", "noshow", "invalid"}

func (s *Server) createAppointment(r *http.Request, body []byte, g *grant) reply {
	m, bad := s.decodeObject(body, appointmentFields)
	if bad != nil {
		return *bad
	}
	var req api.CreateAppointmentRequest
	if json.Unmarshal(body, &req) != nil {
		return str422(s, "body", "an appointment")
	}
	var miss []string
	for _, k := range []string{"calendarId", "locationId", "contactId", "startTime"} {
		if v, ok := m[k]; !ok || string(v) == `""` || string(v) == "null" {
			miss = append(miss, k+" should not be empty")
		}
	}
	if len(miss) > 0 {
		return s.errReply(http.StatusUnprocessableEntity, miss)
	}
	if req.LocationID != g.locationID {
		return s.errReply(http.StatusForbidden, MsgLocation)
	}
	c, badc := s.contactFor(req.ContactID, g)
	if badc != nil {
		return *badc
	}
	if !slices.Contains(Calendars, req.CalendarID) {
		return s.errReply(http.StatusUnprocessableEntity, []string{"Calendar not found"})
	}
	start, err := time.Parse(time.RFC3339, req.StartTime)
	if err != nil {
		return str422(s, "startTime", "a valid ISO 8601 date string with an offset")
	}
	end := start.Add(DefaultSlot)
	if req.EndTime != "" {
		if end, err = time.Parse(time.RFC3339, req.EndTime); err != nil {
			return str422(s, "endTime", "a valid ISO 8601 date string with an offset")
		}
		if !end.After(start) {
			return s.errReply(http.StatusUnprocessableEntity, []string{"endTime must be after startTime"})
		}
	}
	status := req.AppointmentStatus
	if status == "" {
		status = "confirmed"
	}
	if !slices.Contains(appointmentStatuses, status) {
		return str422(s, "appointmentStatus", "one of "+strings.Join(appointmentStatuses, ", "))
	}
	z := c.loc.zone
	var e api.Event
	err = s.edit(req.ContactID, false, func(c *contact) error {
		now := s.nowMs()
		e = api.Event{ID: s.childID(saltEvent), CalendarID: req.CalendarID, Title: req.Title, Status: "booked",
			AppointmentStatus: status, AssignedUserID: req.AssignedUserID, Address: req.Address, Notes: req.Description,
			StartTime: start.In(z).Format(naiveLayout), EndTime: end.In(z).Format(naiveLayout),
			LocationID: req.LocationID, ContactID: req.ContactID, DateAdded: fmtMs(now), DateUpdated: fmtMs(now)}
		if e.AssignedUserID != "" {
			e.Users = []string{e.AssignedUserID}
		}
		c.kids.events = append(c.kids.events, e)
		if c.kids.times == nil {
			c.kids.times = map[string]EventTime{}
		}
		c.kids.times[e.ID] = EventTime{ID: e.ID, Start: start.UTC(), End: end.UTC(), Zone: z.String()}
		return nil
	})
	if err != nil {
		return s.errReply(http.StatusNotFound, MsgContactNotFound)
	}
	rp := s.created(e.ID, marshal(api.CreatedAppointment{ID: e.ID, CalendarID: e.CalendarID, LocationID: e.LocationID,
		ContactID: e.ContactID, StartTime: start.Format(time.RFC3339), EndTime: end.Format(time.RFC3339), Title: e.Title,
		AppointmentStatus: status, AssignedUserID: e.AssignedUserID, Address: e.Address}))
	if rp.status == http.StatusCreated {
		rp.status = http.StatusOK // this endpoint answers 200
	}
	return rp
}

// decodeObject decodes a JSON object body and refuses properties outside
// allowed with the API's 422.
func (s *Server) decodeObject(body []byte, allowed []string) (map[string]json.RawMessage, *reply) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		rp := s.errReply(http.StatusUnprocessableEntity, []string{"body must be a JSON object"})
		return nil, &rp
	}
	var bad []string
	for k := range m {
		if !slices.Contains(allowed, k) {
			bad = append(bad, "property "+k+" should not exist")
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		rp := s.errReply(http.StatusUnprocessableEntity, bad)
		return nil, &rp
	}
	return m, nil
}

func str422(s *Server, field, want string) reply {
	return s.errReply(http.StatusUnprocessableEntity, []string{field + " must be " + want})
}

func (s *Server) writable(r *http.Request, g *grant) (*contact, *reply) {
	return s.contactFor(r.PathValue("id"), g)
}

func (s *Server) applied() { s.countWrite(func(st *WriteStats) { st.Applied++ }) }

func (s *Server) putContact(r *http.Request, body []byte, g *grant) reply {
	if _, bad := s.writable(r, g); bad != nil {
		return *bad
	}
	allowed := append(slices.Clone(api.UpdateContactFields), "tags", "customFields", "dndSettings", "dnd")
	m, bad := s.decodeObject(body, allowed)
	if bad != nil {
		return *bad
	}
	strs := map[string]string{}
	for k, v := range m {
		if k == "tags" || k == "customFields" || k == "dndSettings" || k == "dnd" {
			continue
		}
		var sv *string
		if json.Unmarshal(v, &sv) != nil {
			return str422(s, k, "a string")
		}
		if sv != nil {
			strs[k] = *sv
		} else {
			strs[k] = ""
		}
	}
	var tags []string
	_, hasTags := m["tags"]
	if hasTags && json.Unmarshal(m["tags"], &tags) != nil {
		return str422(s, "tags", "an array of strings")
	}
	var out api.Contact
	err := s.edit(r.PathValue("id"), true, func(c *contact) error {
		for k, v := range strs {
			setContactField(&c.c, k, v)
		}
		if hasTags {
			c.c.Tags = normTags(tags)
		}
		out = cloneContact(c.c)
		return nil
	})
	if err != nil {
		return s.errReply(http.StatusNotFound, MsgContactNotFound)
	}
	s.applied()
	return jsonReply(http.StatusOK, marshal(api.UpdatedContact{Succeeded: true, Contact: &out}))
}

func setContactField(c *api.Contact, k, v string) {
	switch k {
	case "firstName":
		c.FirstName = v
	case "lastName":
		c.LastName = v
	case "name":
		c.Name = v
	case "email":
		c.Email = v
	case "phone":
		c.Phone = v
	case "address1":
		c.Address1 = v
	case "city":
		c.City = v
	case "state":
		c.State = v
	case "postalCode":
		c.PostalCode = v
	case "website":
		c.Website = v
	case "timezone":
		c.Timezone = v
	case "source":
		c.Source = v
	case "dateOfBirth":
		c.DateOfBirth = v
	case "country":
		c.Country = v
	case "assignedTo":
		c.AssignedTo = v
	}
}

// normTags lowercases and trims tags, as the API stores them, dropping
// empty ones and repeats.
func normTags(in []string) []string {
	var out []string
	for _, t := range in {
		t = strings.ToLower(strings.TrimSpace(t))
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func (s *Server) tags(add bool) apiHandler {
	return func(r *http.Request, body []byte, g *grant) reply {
		if _, bad := s.writable(r, g); bad != nil {
			return *bad
		}
		m, bad := s.decodeObject(body, []string{"tags"})
		if bad != nil {
			return *bad
		}
		var tags []string
		if json.Unmarshal(m["tags"], &tags) != nil || len(normTags(tags)) == 0 {
			return str422(s, "tags", "a non-empty array of strings")
		}
		tags = normTags(tags)
		var out []string
		err := s.edit(r.PathValue("id"), true, func(c *contact) error {
			cur := normTags(c.c.Tags)
			for _, t := range tags {
				has := slices.Contains(cur, t)
				if add && !has {
					cur = append(cur, t)
				} else if !add && has {
					cur = slices.DeleteFunc(cur, func(x string) bool { return x == t })
				}
			}
			c.c.Tags = cur
			out = slices.Clone(cur)
			return nil
		})
		if err != nil {
			return s.errReply(http.StatusNotFound, MsgContactNotFound)
		}
		s.applied()
		if out == nil {
			out = []string{}
		}
		return jsonReply(http.StatusOK, marshal(api.TagsResponse{Tags: out}))
	}
}

func (s *Server) editTask(r *http.Request, g *grant, fn func(*api.Task)) reply {
	if _, bad := s.writable(r, g); bad != nil {
		return *bad
	}
	var out api.Task
	err := s.UpdateTask(r.PathValue("id"), r.PathValue("taskId"), func(t *api.Task) { fn(t); out = *t })
	if err != nil {
		return s.errReply(http.StatusNotFound, "Task not found")
	}
	s.applied()
	return jsonReply(http.StatusOK, marshal(api.TaskResponse{Task: &out}))
}

func (s *Server) taskCompleted(r *http.Request, body []byte, g *grant) reply {
	m, bad := s.decodeObject(body, []string{"completed"})
	if bad != nil {
		return *bad
	}
	var done *bool
	if json.Unmarshal(m["completed"], &done) != nil || done == nil {
		return str422(s, "completed", "a boolean value")
	}
	return s.editTask(r, g, func(t *api.Task) { t.Completed = *done })
}

var taskFields = []string{"title", "body", "dueDate", "completed", "assignedTo"}

func (s *Server) putTask(r *http.Request, body []byte, g *grant) reply {
	m, bad := s.decodeObject(body, taskFields)
	if bad != nil {
		return *bad
	}
	var req struct {
		Title, Body, DueDate, AssignedTo *string
		Completed                        *bool
	}
	if json.Unmarshal(body, &req) != nil {
		return str422(s, "body", "a task")
	}
	_ = m
	return s.editTask(r, g, func(t *api.Task) {
		set := func(dst *string, v *string) {
			if v != nil {
				*dst = *v
			}
		}
		set(&t.Title, req.Title)
		set(&t.Body, req.Body)
		set(&t.DueDate, req.DueDate)
		set(&t.AssignedTo, req.AssignedTo)
		if req.Completed != nil {
			t.Completed = *req.Completed
		}
	})
}

// createFails says whether the create of id answers an error after
// creating, and which.
func (s *Server) createFails(id string) (int, bool) {
	s.writes.mu.Lock()
	frac := s.writes.quirks.ErrorAfterCreate
	s.writes.mu.Unlock()
	if frac <= 0 {
		return 0, false
	}
	h := hash(uint64(s.cfg.Seed), saltAdded, hashString(id))
	if float64(h%1_000_000)/1_000_000 >= frac {
		return 0, false
	}
	if h>>40%2 == 0 {
		return http.StatusBadGateway, true
	}
	return http.StatusUnprocessableEntity, true
}

func hashString(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// created answers a create of id with ok, or with the quirk's error.
func (s *Server) created(id string, ok []byte) reply {
	s.applied()
	if st, bad := s.createFails(id); bad {
		s.countWrite(func(w *WriteStats) { w.ErrorCreates++ })
		if st == http.StatusBadGateway {
			return s.serverError(plan{status: st})
		}
		return s.errReply(st, []string{"The request could not be processed"})
	}
	return jsonReply(http.StatusCreated, ok)
}

func (s *Server) createNote(r *http.Request, body []byte, g *grant) reply {
	if _, bad := s.writable(r, g); bad != nil {
		return *bad
	}
	m, bad := s.decodeObject(body, []string{"body", "userId"})
	if bad != nil {
		return *bad
	}
	var req api.CreateNoteRequest
	if json.Unmarshal(body, &req) != nil || strings.TrimSpace(req.Body) == "" {
		return str422(s, "body", "a non-empty string")
	}
	_ = m
	cid := r.PathValue("id")
	var n api.Note
	err := s.edit(cid, false, func(c *contact) error {
		n = api.Note{ID: s.childID(saltNote), Body: req.Body, UserID: req.UserID, DateAdded: fmtMs(s.nowMs()), ContactID: cid}
		c.kids.notes = append(c.kids.notes, n)
		return nil
	})
	if err != nil {
		return s.errReply(http.StatusNotFound, MsgContactNotFound)
	}
	return s.created(n.ID, marshal(api.CreatedNote{Note: &n}))
}

func (s *Server) createTask(r *http.Request, body []byte, g *grant) reply {
	if _, bad := s.writable(r, g); bad != nil {
		return *bad
	}
	m, bad := s.decodeObject(body, taskFields)
	if bad != nil {
		return *bad
	}
	var req api.CreateTaskRequest
	if json.Unmarshal(body, &req) != nil {
		return str422(s, "body", "a task")
	}
	var miss []string
	for _, k := range []string{"title", "dueDate", "completed"} {
		if _, ok := m[k]; !ok {
			miss = append(miss, k+" should not be empty")
		}
	}
	if len(miss) > 0 {
		return s.errReply(http.StatusUnprocessableEntity, miss)
	}
	cid := r.PathValue("id")
	var t api.Task
	err := s.edit(cid, true, func(c *contact) error {
		t = api.Task{ID: s.childID(saltTask), Title: req.Title, Body: req.Body, DueDate: req.DueDate,
			Completed: req.Completed, AssignedTo: req.AssignedTo, ContactID: cid}
		c.kids.tasks = append(c.kids.tasks, t)
		return nil
	})
	if err != nil {
		return s.errReply(http.StatusNotFound, MsgContactNotFound)
	}
	return s.created(t.ID, marshal(api.TaskResponse{Task: &t}))
}

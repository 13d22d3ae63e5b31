package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// Limits of the bulk endpoints.
//
// The vendor spec (locations.json, TaskSearchParamsDto) gives tasks/search a
// default limit of 25 and states no maximum; the simulator caps it at
// MaxTaskLimit and answers 422 above it, so a client that asks for more is
// caught. The calendar events endpoint (calendars.json) requires startTime,
// endTime (epoch ms) and one of calendarId, userId or groupId, and states no
// maximum range; the simulator refuses ranges longer than MaxEventsRange with
// a 422, so a client must split long ranges into windows.
const (
	DefaultTaskLimit = 25
	MaxTaskLimit     = 100
	MaxEventsRange   = 366 * 24 * time.Hour
)

// Calendars are the ids of every location's calendars; generated and added
// appointments use them.
var Calendars = []string{"cal0Pq8Rs7Tu6Vw5Xy4Za", "cal1Pq8Rs7Tu6Vw5Xy4Za", "cal2Pq8Rs7Tu6Vw5Xy4Za"}

// liveContacts returns the location's live contacts in dateAdded order.
func (s *Server) liveContacts(l *location) []*contact { return s.snapshot(l).byAdd }

type taskSearchBody struct {
	Limit     *float64 `json:"limit"`
	Skip      *float64 `json:"skip"`
	Completed *bool    `json:"completed"`
	ContactID []string `json:"contactId"`
}

// tasksSearch serves POST /locations/{locationId}/tasks/search: the tasks of
// every live contact of the location (in contact dateAdded order, then task
// order), each with its contact's id as contactId, filtered by completed and
// contactId, paged by limit and skip. As the vendor spec
// (TaskSearchParamsDto) has it, contactId is an array of strings with no
// stated maximum length: any length is served, an empty array filters
// nothing, and an element that is not a string answers 422.
func (s *Server) tasksSearch(r *http.Request, body []byte, g *grant) reply {
	l := s.location(r.PathValue("locationId"))
	if l == nil || l.id != g.locationID {
		return s.errReply(http.StatusForbidden, MsgLocation)
	}
	var req taskSearchBody
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&req); err != nil {
		return s.errReply(http.StatusUnprocessableEntity, []string{"body must be a valid JSON object"})
	}
	limit, skip := DefaultTaskLimit, 0
	var errs []string
	if req.Limit != nil {
		switch v := *req.Limit; {
		case v != float64(int(v)) || v < 1:
			errs = append(errs, "limit must be a positive integer")
		case v > MaxTaskLimit:
			errs = append(errs, "limit must not be greater than "+strconv.Itoa(MaxTaskLimit))
		default:
			limit = int(v)
		}
	}
	if req.Skip != nil {
		if v := *req.Skip; v != float64(int(v)) || v < 0 {
			errs = append(errs, "skip must not be less than 0")
		} else {
			skip = int(v)
		}
	}
	if len(errs) > 0 {
		return s.errReply(http.StatusUnprocessableEntity, errs)
	}
	var items [][]byte
	n := 0
	for _, c := range s.liveContacts(l) {
		if len(req.ContactID) > 0 && !slices.Contains(req.ContactID, c.c.ID) {
			continue
		}
		for _, t := range c.kids.get().tasks {
			if req.Completed != nil && t.Completed != *req.Completed {
				continue
			}
			if n >= skip && len(items) < limit {
				t.ContactID = c.c.ID // the parent: there is no path here
				items = append(items, encodeTask(t, c.bad))
			}
			n++
		}
		if len(items) >= limit {
			break
		}
	}
	return jsonReply(http.StatusOK, list("tasks", items, false))
}

// calendars serves GET /calendars/?locationId=.
func (s *Server) calendars(r *http.Request, _ []byte, g *grant) reply {
	id := r.URL.Query().Get("locationId")
	if id == "" {
		return s.errReply(http.StatusUnprocessableEntity, []string{"locationId should not be empty"})
	}
	if l := s.location(id); l == nil || id != g.locationID {
		return s.errReply(http.StatusForbidden, MsgLocation)
	}
	cs := make([]api.Calendar, len(Calendars))
	for i, c := range Calendars {
		cs[i] = api.Calendar{ID: c, LocationID: id, Name: "Calendar " + strconv.Itoa(i)}
	}
	return jsonReply(http.StatusOK, marshal(struct {
		Calendars []api.Calendar `json:"calendars"`
	}{cs}))
}

// events serves GET /calendars/events: the appointments of the location's
// live contacts in one calendar (or of one assigned user, or one group)
// whose start instant is in [startTime, endTime), each with its contact's id
// as contactId. startTime and endTime are required, endTime after
// startTime and at most MaxEventsRange later.
func (s *Server) events(r *http.Request, _ []byte, g *grant) reply {
	q := r.URL.Query()
	id := q.Get("locationId")
	var errs []string
	if id == "" {
		errs = append(errs, "locationId should not be empty")
	}
	cal, user, group := q.Get("calendarId"), q.Get("userId"), q.Get("groupId")
	if cal == "" && user == "" && group == "" {
		errs = append(errs, "Either of calendarId, userId or groupId is required")
	}
	start, err1 := strconv.ParseInt(q.Get("startTime"), 10, 64)
	end, err2 := strconv.ParseInt(q.Get("endTime"), 10, 64)
	switch {
	case err1 != nil || err2 != nil:
		errs = append(errs, "startTime and endTime must be epoch milliseconds")
	case end <= start:
		errs = append(errs, "endTime must be after startTime")
	case time.Duration(end-start)*time.Millisecond > MaxEventsRange:
		errs = append(errs, "the range between startTime and endTime must not exceed "+strconv.Itoa(int(MaxEventsRange/(24*time.Hour)))+" days")
	}
	if len(errs) > 0 {
		return s.errReply(http.StatusUnprocessableEntity, errs)
	}
	l := s.location(id)
	if l == nil || id != g.locationID {
		return s.errReply(http.StatusForbidden, MsgLocation)
	}
	items := [][]byte{}
	for _, c := range s.liveContacts(l) {
		k := c.kids.get()
		for _, e := range k.events {
			if (cal != "" && e.CalendarID != cal) || (user != "" && e.AssignedUserID != user) || (group != "" && e.GroupID != group) {
				continue
			}
			ms := k.times[e.ID].Start.UnixMilli()
			if ms < start || ms >= end {
				continue
			}
			e.ContactID = c.c.ID // the parent: there is no path here
			items = append(items, encodeEvent(e, c.bad))
		}
	}
	return jsonReply(http.StatusOK, list("events", items, false))
}

// AddTaskQuiet adds an open task to a contact without touching its
// dateUpdated (as a task created by an automation may), and returns its
// id ("" when the contact is unknown or deleted).
func (s *Server) AddTaskQuiet(contactID string) string {
	return s.addTask(contactID, false, "Quiet follow up", "Added task, contact untouched", 3)
}

// UpdateTaskQuiet applies fn to a task without touching the contact's
// dateUpdated.
func (s *Server) UpdateTaskQuiet(contactID, taskID string, fn func(*api.Task)) error {
	return s.updateTask(contactID, taskID, false, fn)
}

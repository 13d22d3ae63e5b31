// Package push applies changes decided in SQL over the warehouse back to
// the API, exactly once: each row of the user's query is one action whose
// idempotency key (the action and its arguments) is recorded in the
// warehouse's actions table before its request is sent and after its
// answer, so a crashed or repeated push never applies an action twice.
// Confirmed changes are read back into the warehouse in the same push.
package push

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/contacts-etl/contacts-etl/extract"
	"github.com/contacts-etl/contacts-etl/extract/api"
)

// Action names.
const (
	CompleteTask  = "complete-task"
	ReopenTask    = "reopen-task"
	AddNote       = "add-note"
	AddTags       = "add-tags"
	RemoveTags    = "remove-tags"
	UpdateContact = "update-contact"
	CreateTask    = "create-task"
	UpdateTask    = "update-task"
	// ScheduleAppointment books an appointment (POST
	// /calendars/events/appointments, scope calendars/events.write).
	ScheduleAppointment = "schedule-appointment"
)

// Args are one action's arguments: the query's columns by name, as text
// (lists joined by commas).
type Args map[string]string

// spec describes an action: its columns, scope and request.
type spec struct {
	required, optional []string
	scope              string
	// create: the request makes a record; a failed answer is checked by
	// counting the contact's records that match (createMatch).
	create string // child resource created ("" for an update)
	// request builds the write of one row; loc is the contact's location.
	request func(a Args, loc string) (extract.WriteRequest, error)
	// match maps the arguments a created record must equal to its JSON
	// fields (times are compared as instants when both parse).
	match map[string]string
}

// contactFields maps update-contact's columns (warehouse names) to the
// fields of the endpoint's whitelist.
var contactFields = map[string]string{
	"first_name": "firstName", "last_name": "lastName", "name": "name", "email": "email", "phone": "phone",
	"address1": "address1", "city": "city", "state": "state", "postal_code": "postalCode", "website": "website",
	"timezone": "timezone", "lead_source": "source", "date_of_birth": "dateOfBirth", "country": "country",
	"assigned_to": "assignedTo",
}

func contactPath(a Args, tail string) string {
	return "/contacts/" + url.PathEscape(a["contact_id"]) + tail
}

func taskCompleted(done bool) func(Args, string) (extract.WriteRequest, error) {
	return func(a Args, _ string) (extract.WriteRequest, error) {
		return extract.WriteRequest{Method: http.MethodPut,
			Path: contactPath(a, "/tasks/"+url.PathEscape(a["task_id"])+"/completed"),
			Body: api.TaskCompletedRequest{Completed: done}}, nil
	}
}

func tagsReq(method string) func(Args, string) (extract.WriteRequest, error) {
	return func(a Args, _ string) (extract.WriteRequest, error) {
		tags := splitList(a["tags"])
		if len(tags) == 0 {
			return extract.WriteRequest{}, fmt.Errorf("tags is empty")
		}
		return extract.WriteRequest{Method: method, Path: contactPath(a, "/tags"), Body: api.TagsRequest{Tags: tags}}, nil
	}
}

var specs = map[string]spec{
	CompleteTask: {required: []string{"contact_id", "task_id"}, scope: api.ScopeContactsWrite, request: taskCompleted(true)},
	ReopenTask:   {required: []string{"contact_id", "task_id"}, scope: api.ScopeContactsWrite, request: taskCompleted(false)},
	AddNote: {required: []string{"contact_id", "body"}, optional: []string{"user_id"}, scope: api.ScopeContactsWrite,
		create: api.ResourceNotes, match: map[string]string{"body": "body"},
		request: func(a Args, _ string) (extract.WriteRequest, error) {
			if strings.TrimSpace(a["body"]) == "" {
				return extract.WriteRequest{}, fmt.Errorf("body is empty")
			}
			return extract.WriteRequest{Method: http.MethodPost, Path: contactPath(a, "/notes"),
				Body: api.CreateNoteRequest{Body: a["body"], UserID: a["user_id"]}}, nil
		}},
	AddTags:    {required: []string{"contact_id", "tags"}, scope: api.ScopeContactsWrite, request: tagsReq(http.MethodPost)},
	RemoveTags: {required: []string{"contact_id", "tags"}, scope: api.ScopeContactsWrite, request: tagsReq(http.MethodDelete)},
	UpdateContact: {required: []string{"contact_id"}, optional: sortedKeys(contactFields), scope: api.ScopeContactsWrite,
		request: func(a Args, _ string) (extract.WriteRequest, error) {
			body := map[string]string{}
			for col, v := range a {
				if f, ok := contactFields[col]; ok {
					body[f] = v
				}
			}
			if len(body) == 0 {
				return extract.WriteRequest{}, fmt.Errorf("no field to update")
			}
			return extract.WriteRequest{Method: http.MethodPut, Path: contactPath(a, ""), Body: body}, nil
		}},
	CreateTask: {required: []string{"contact_id", "title", "due_date"}, optional: []string{"body", "assigned_to", "completed"},
		scope: api.ScopeContactsWrite, create: api.ResourceTasks, match: map[string]string{"title": "title"},
		request: func(a Args, _ string) (extract.WriteRequest, error) {
			done := false
			if v := a["completed"]; v != "" {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return extract.WriteRequest{}, fmt.Errorf("completed %q is not a boolean", v)
				}
				done = b
			}
			if strings.TrimSpace(a["title"]) == "" || a["due_date"] == "" {
				return extract.WriteRequest{}, fmt.Errorf("title and due_date are required")
			}
			return extract.WriteRequest{Method: http.MethodPost, Path: contactPath(a, "/tasks"),
				Body: api.CreateTaskRequest{Title: a["title"], Body: a["body"], DueDate: a["due_date"], Completed: done, AssignedTo: a["assigned_to"]}}, nil
		}},
	UpdateTask: {required: []string{"contact_id", "task_id"}, optional: []string{"title", "body", "due_date", "completed", "assigned_to"},
		scope: api.ScopeContactsWrite, request: updateTask},
	ScheduleAppointment: {required: []string{"contact_id", "calendar_id", "start_time"},
		optional: []string{"end_time", "title", "appointment_status", "assigned_user_id", "address", "description"},
		scope:    api.ScopeEventsWrite, create: api.ResourceAppointments,
		match:   map[string]string{"calendar_id": "calendarId", "start_time": "startTime", "title": "title"},
		request: scheduleAppointment},
}

// updateTask changes the fields given (non-NULL columns) of one task.
func updateTask(a Args, _ string) (extract.WriteRequest, error) {
	var body api.UpdateTaskRequest
	opt := func(k string) *string {
		if v, ok := a[k]; ok {
			return &v
		}
		return nil
	}
	body.Title, body.Body, body.DueDate, body.AssignedTo = opt("title"), opt("body"), opt("due_date"), opt("assigned_to")
	if v, ok := a["completed"]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return extract.WriteRequest{}, fmt.Errorf("completed %q is not a boolean", v)
		}
		body.Completed = &b
	}
	if body == (api.UpdateTaskRequest{}) {
		return extract.WriteRequest{}, fmt.Errorf("no field to update (give title, body, due_date, completed or assigned_to)")
	}
	return extract.WriteRequest{Method: http.MethodPut,
		Path: contactPath(a, "/tasks/"+url.PathEscape(a["task_id"])), Body: body}, nil
}

// scheduleAppointment books one appointment in the contact's location.
// Times must carry their offset (RFC 3339): a zone-less time would be read
// in the calendar's zone, which the warehouse may not know.
func scheduleAppointment(a Args, loc string) (extract.WriteRequest, error) {
	start, err := time.Parse(time.RFC3339, a["start_time"])
	if err != nil {
		return extract.WriteRequest{}, fmt.Errorf("start_time %q is not an RFC 3339 time with an offset", a["start_time"])
	}
	if v := a["end_time"]; v != "" {
		end, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return extract.WriteRequest{}, fmt.Errorf("end_time %q is not an RFC 3339 time with an offset", v)
		}
		if !end.After(start) {
			return extract.WriteRequest{}, fmt.Errorf("end_time %s is not after start_time %s", v, a["start_time"])
		}
	}
	if strings.TrimSpace(a["calendar_id"]) == "" {
		return extract.WriteRequest{}, fmt.Errorf("calendar_id is empty")
	}
	return extract.WriteRequest{Method: http.MethodPost, Path: "/calendars/events/appointments",
		Body: api.CreateAppointmentRequest{CalendarID: a["calendar_id"], LocationID: loc, ContactID: a["contact_id"],
			StartTime: a["start_time"], EndTime: a["end_time"], Title: a["title"], AppointmentStatus: a["appointment_status"],
			AssignedUserID: a["assigned_user_id"], Address: a["address"], Description: a["description"],
			IgnoreFreeSlotValidation: true}}, nil
}

// Actions lists the action names push knows.
func Actions() []string {
	out := make([]string, 0, len(specs))
	for k := range specs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Scope returns the scope an action needs ("" for an unknown action).
func Scope(action string) string { return specs[action].scope }

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkColumns refuses a query whose columns are not the action's arguments.
func checkColumns(action string, cols []string) error {
	sp, ok := specs[action]
	if !ok {
		return fmt.Errorf("unknown action %q (known: %s)", action, strings.Join(Actions(), ", "))
	}
	for _, c := range cols {
		if !slices.Contains(sp.required, c) && !slices.Contains(sp.optional, c) {
			if action == UpdateContact {
				return fmt.Errorf("column %q is not a field %s may change (allowed: %s)", c, action, strings.Join(sp.optional, ", "))
			}
			return fmt.Errorf("column %q is not an argument of %s (arguments: %s)", c, action, strings.Join(append(slices.Clone(sp.required), sp.optional...), ", "))
		}
	}
	for _, r := range sp.required {
		if !slices.Contains(cols, r) {
			return fmt.Errorf("%s needs a column %q", action, r)
		}
	}
	return nil
}

// Key is the idempotency key of an action: the hex of the first 16 bytes of
// SHA-256 over the action and its arguments (canonical JSON, keys sorted,
// tag lists normalised).
func Key(action string, a Args) string {
	canon := map[string]string{}
	for k, v := range a {
		if k == "tags" {
			v = strings.Join(splitList(v), ",")
		}
		canon[k] = v
	}
	b, _ := json.Marshal(canon) // map keys are sorted
	h := sha256.Sum256(append([]byte(action+"\x00"), b...))
	return hex.EncodeToString(h[:16])
}

// splitList splits a comma-separated list, trimmed and lowercased (tags are
// stored lowercase), sorted, without empties or repeats.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

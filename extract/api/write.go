package api

// Scopes of the write endpoints (api.md "Writes").
const (
	ScopeContactsWrite = "contacts.write"
	ScopeEventsWrite   = "calendars/events.write"
)

// UpdateContactFields is the whitelist of PUT /contacts/{id} that the
// exporter may send: any other property is answered 422. tags (which
// replaces every tag), customFields and dndSettings are left out on
// purpose: use the tag endpoints.
var UpdateContactFields = []string{"firstName", "lastName", "name", "email", "phone", "address1", "city",
	"state", "postalCode", "website", "timezone", "source", "dateOfBirth", "country", "assignedTo"}

// TagsRequest is the body of POST and DELETE /contacts/{id}/tags.
type TagsRequest struct {
	Tags []string `json:"tags"`
}

// TagsResponse answers POST and DELETE /contacts/{id}/tags.
type TagsResponse struct {
	Tags []string `json:"tags"`
}

// TaskCompletedRequest is the body of PUT /contacts/{id}/tasks/{taskId}/completed.
type TaskCompletedRequest struct {
	Completed bool `json:"completed"`
}

// CreateTaskRequest is the body of POST /contacts/{id}/tasks.
type CreateTaskRequest struct {
	Title      string `json:"title"`
	Body       string `json:"body,omitempty"`
	DueDate    string `json:"dueDate"`
	Completed  bool   `json:"completed"`
	AssignedTo string `json:"assignedTo,omitempty"`
}

// TaskResponse answers the task writes.
type TaskResponse struct {
	Task *Task `json:"task"`
}

// CreateNoteRequest is the body of POST /contacts/{id}/notes.
type CreateNoteRequest struct {
	Body   string `json:"body"`
	UserID string `json:"userId,omitempty"`
}

// CreatedNote answers POST /contacts/{id}/notes.
type CreatedNote struct {
	Note *Note `json:"note"`
}

// UpdatedContact answers PUT /contacts/{id}.
type UpdatedContact struct {
	Succeeded bool     `json:"succeded"` // sic: the API's spelling
	Contact   *Contact `json:"contact"`
}

// UpdateTaskRequest is the body of PUT /contacts/{id}/tasks/{taskId}: only
// the fields set are sent (and changed).
type UpdateTaskRequest struct {
	Title      *string `json:"title,omitempty"`
	Body       *string `json:"body,omitempty"`
	DueDate    *string `json:"dueDate,omitempty"`
	Completed  *bool   `json:"completed,omitempty"`
	AssignedTo *string `json:"assignedTo,omitempty"`
}

// CreateAppointmentRequest is the body of POST /calendars/events/appointments
// (calendars.json AppointmentCreateSchema; Version 2021-04-15, scope
// calendars/events.write). calendarId, locationId, contactId and startTime
// are required.
type CreateAppointmentRequest struct {
	CalendarID        string `json:"calendarId"`
	LocationID        string `json:"locationId"`
	ContactID         string `json:"contactId"`
	StartTime         string `json:"startTime"`
	EndTime           string `json:"endTime,omitempty"`
	Title             string `json:"title,omitempty"`
	AppointmentStatus string `json:"appointmentStatus,omitempty"`
	AssignedUserID    string `json:"assignedUserId,omitempty"`
	Address           string `json:"address,omitempty"`
	Description       string `json:"description,omitempty"`
	// IgnoreFreeSlotValidation books outside the calendar's free slots
	// (a push schedules what the user decided, not what the widget offers).
	IgnoreFreeSlotValidation bool  `json:"ignoreFreeSlotValidation,omitempty"`
	ToNotify                 *bool `json:"toNotify,omitempty"`
}

// CreatedAppointment answers POST /calendars/events/appointments: the
// appointment itself, not wrapped (AppointmentSchemaResponse).
type CreatedAppointment struct {
	ID                string `json:"id"`
	CalendarID        string `json:"calendarId"`
	LocationID        string `json:"locationId"`
	ContactID         string `json:"contactId"`
	StartTime         string `json:"startTime,omitempty"`
	EndTime           string `json:"endTime,omitempty"`
	Title             string `json:"title,omitempty"`
	AppointmentStatus string `json:"appointmentStatus,omitempty"`
	AssignedUserID    string `json:"assignedUserId,omitempty"`
	Address           string `json:"address,omitempty"`
}

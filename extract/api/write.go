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

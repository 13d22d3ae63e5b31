package api

import "encoding/json"

// Optional scopes of the bulk endpoints (api.md). Without them the exporter
// reads tasks and appointments per contact.
const (
	ScopeTasksRO     = "locations/tasks.readonly"
	ScopeCalendarsRO = "calendars.readonly"
	ScopeEventsRO    = "calendars/events.readonly"
)

// TaskSearchRequest is the body of POST /locations/{locationId}/tasks/search.
// Limit defaults to 25 at the API; Skip is an offset.
type TaskSearchRequest struct {
	Limit     int      `json:"limit,omitempty"`
	Skip      int      `json:"skip"`
	Completed *bool    `json:"completed,omitempty"`
	ContactID []string `json:"contactId,omitempty"`
}

// Calendar is one calendar of GET /calendars/; only its id is used.
type Calendar struct {
	ID         string `json:"id"`
	LocationID string `json:"locationId,omitempty"`
	Name       string `json:"name,omitempty"`
}

// CalendarsResponse is the body of GET /calendars/?locationId=.
type CalendarsResponse struct {
	Calendars []json.RawMessage `json:"calendars"`
}

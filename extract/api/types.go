// Package api holds the wire types of the Contacts API (HighLevel API v2
// shape): request and response envelopes, records, and the error body. It has
// no I/O; the client (package extract), the simulator and the transform stage
// share it as the contract for JSON field names.
package api

import (
	"encoding/json"
	"fmt"
)

// Version headers pinned by the exporter (api.md).
const (
	VersionContacts  = "2021-07-28"
	VersionCalendars = "2021-04-15"
	ScopeContactsRO  = "contacts.readonly"
	// ScopeLocationsRO lets GET /locations/{id} tell the location's time
	// zone; it is optional.
	ScopeLocationsRO = "locations.readonly"
)

// Resource names, used in paths, tables, state and rejects.
const (
	ResourceContacts     = "contacts"
	ResourceTasks        = "tasks"
	ResourceNotes        = "notes"
	ResourceAppointments = "appointments"
	// ResourceCustomFields are a location's custom field definitions
	// (GET /locations/{locationId}/customFields, scope
	// ScopeCustomFieldsRO, optional): one Record per definition, sent
	// before the location's contacts so the transform can name and type
	// their custom field values.
	ResourceCustomFields = "custom_fields"
)

// ScopeCustomFieldsRO lets GET /locations/{id}/customFields list the
// location's custom field definitions; it is optional.
const ScopeCustomFieldsRO = "locations/customFields.readonly"

// CustomFieldDef is one custom field definition of a location.
type CustomFieldDef struct {
	ID              string   `json:"id"`
	Name            string   `json:"name,omitempty"`
	FieldKey        string   `json:"fieldKey,omitempty"`
	Placeholder     string   `json:"placeholder,omitempty"`
	DataType        string   `json:"dataType,omitempty"`
	Position        int      `json:"position"`
	PicklistOptions []string `json:"picklistOptions,omitempty"`
	LocationID      string   `json:"locationId,omitempty"`
	Model           string   `json:"model,omitempty"`
}

// CustomFieldsResponse is the body of GET /locations/{id}/customFields.
type CustomFieldsResponse struct {
	CustomFields []json.RawMessage `json:"customFields"`
}

// Contact is a contact as returned by GET /contacts/{id} and by search.
// Unknown fields are ignored by encoding/json.
type Contact struct {
	ID                string                `json:"id"`
	LocationID        string                `json:"locationId,omitempty"`
	FirstName         string                `json:"firstName,omitempty"`
	LastName          string                `json:"lastName,omitempty"`
	Name              string                `json:"name,omitempty"`
	ContactName       string                `json:"contactName,omitempty"`
	Email             string                `json:"email,omitempty"`
	Phone             string                `json:"phone,omitempty"`
	CompanyName       string                `json:"companyName,omitempty"`
	BusinessName      string                `json:"businessName,omitempty"`
	Tags              []string              `json:"tags,omitempty"`
	Source            string                `json:"source,omitempty"`
	Type              string                `json:"type,omitempty"`
	AssignedTo        string                `json:"assignedTo,omitempty"`
	Address1          string                `json:"address1,omitempty"`
	City              string                `json:"city,omitempty"`
	State             string                `json:"state,omitempty"`
	PostalCode        string                `json:"postalCode,omitempty"`
	Country           string                `json:"country,omitempty"`
	Website           string                `json:"website,omitempty"`
	Timezone          string                `json:"timezone,omitempty"`
	DND               bool                  `json:"dnd,omitempty"`
	DNDSettings       map[string]DNDChannel `json:"dndSettings,omitempty"`
	DateOfBirth       string                `json:"dateOfBirth,omitempty"`
	DateAdded         string                `json:"dateAdded,omitempty"`
	DateUpdated       string                `json:"dateUpdated,omitempty"`
	LastActivity      string                `json:"lastActivity,omitempty"`
	CustomFields      []CustomField         `json:"customFields,omitempty"`
	AttributionSource json.RawMessage       `json:"attributionSource,omitempty"`
	AdditionalEmails  []string              `json:"additionalEmails,omitempty"`
	AdditionalPhones  []string              `json:"additionalPhones,omitempty"`
	Followers         []string              `json:"followers,omitempty"`
	// SearchAfter is present on search results only: the sort value
	// (epoch ms of dateUpdated) then the id.
	SearchAfter []any `json:"searchAfter,omitempty"`
}

// DNDChannel is one channel of dndSettings (a map keyed by channel name).
type DNDChannel struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Code    string `json:"code,omitempty"`
}

// CustomField value can be a string, number, array or object.
type CustomField struct {
	ID    string          `json:"id"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Task of a contact. Status is derived from Completed and DueDate.
type Task struct {
	ID         string `json:"id"`
	Title      string `json:"title,omitempty"`
	Body       string `json:"body,omitempty"`
	AssignedTo string `json:"assignedTo,omitempty"`
	DueDate    string `json:"dueDate,omitempty"`
	Completed  bool   `json:"completed"`
	ContactID  string `json:"contactId,omitempty"`
}

// Note of a contact.
type Note struct {
	ID        string `json:"id"`
	Body      string `json:"body,omitempty"`
	UserID    string `json:"userId,omitempty"`
	DateAdded string `json:"dateAdded,omitempty"`
	ContactID string `json:"contactId,omitempty"`
	Title     string `json:"title,omitempty"`
	Color     string `json:"color,omitempty"`
	Pinned    bool   `json:"pinned,omitempty"`
}

// Event is an appointment of a contact. StartTime and EndTime have been
// seen without a zone ("2021-07-16 11:00:00") and with an offset.
type Event struct {
	ID                string   `json:"id"`
	CalendarID        string   `json:"calendarId,omitempty"`
	Title             string   `json:"title,omitempty"`
	Status            string   `json:"status,omitempty"`
	AppointmentStatus string   `json:"appointmentStatus,omitempty"`
	AssignedUserID    string   `json:"assignedUserId,omitempty"`
	Users             []string `json:"users,omitempty"`
	Notes             string   `json:"notes,omitempty"`
	StartTime         string   `json:"startTime,omitempty"`
	EndTime           string   `json:"endTime,omitempty"`
	Address           string   `json:"address,omitempty"`
	LocationID        string   `json:"locationId,omitempty"`
	ContactID         string   `json:"contactId,omitempty"`
	GroupID           string   `json:"groupId,omitempty"`
	DateAdded         string   `json:"dateAdded,omitempty"`
	DateUpdated       string   `json:"dateUpdated,omitempty"`
}

// SearchRequest is the body of POST /contacts/search.
type SearchRequest struct {
	LocationID  string   `json:"locationId"`
	PageLimit   int      `json:"pageLimit"`
	Page        int      `json:"page,omitempty"`
	SearchAfter []any    `json:"searchAfter,omitempty"`
	Sort        []Sort   `json:"sort,omitempty"`
	Filters     []Filter `json:"filters,omitempty"`
}

// Sort orders search results.
type Sort struct {
	Field     string `json:"field"`
	Direction string `json:"direction"`
}

// Filter is a search filter; for the updated-since filter Field is
// "dateUpdated", Operator "range" and Value a Range.
type Filter struct {
	Field    string `json:"field"`
	Operator string `json:"operator"`
	Value    any    `json:"value"`
}

// Range is the value of a range filter (ISO 8601 times).
type Range struct {
	GTE string `json:"gte,omitempty"`
	LT  string `json:"lt,omitempty"`
	LTE string `json:"lte,omitempty"`
}

// SearchResponse keeps contacts raw so that one bad record does not spoil the
// page: the transform stage decodes each one and rejects what it can't map.
type SearchResponse struct {
	Contacts []json.RawMessage `json:"contacts"`
	Total    int               `json:"total"`
}

// ListMeta is the paging block of the deprecated GET /contacts/.
type ListMeta struct {
	Total        int    `json:"total"`
	NextPageURL  string `json:"nextPageUrl,omitempty"`
	StartAfterID string `json:"startAfterId,omitempty"`
	StartAfter   int64  `json:"startAfter,omitempty"`
	CurrentPage  int    `json:"currentPage,omitempty"`
	NextPage     *int   `json:"nextPage,omitempty"`
	PrevPage     *int   `json:"prevPage,omitempty"`
}

// ListResponse is the body of the deprecated GET /contacts/.
type ListResponse struct {
	Contacts []json.RawMessage `json:"contacts"`
	Meta     ListMeta          `json:"meta"`
}

// TasksResponse, NotesResponse and EventsResponse are the child lists.
type TasksResponse struct {
	Tasks []json.RawMessage `json:"tasks"`
}
type NotesResponse struct {
	Notes []json.RawMessage `json:"notes"`
}
type EventsResponse struct {
	Events []json.RawMessage `json:"events"`
}

// Location is a location (sub-account) as GET /locations/{locationId}
// returns it; the exporter needs its Timezone (IANA name), the zone of the
// zone-less appointment times of its contacts.
type Location struct {
	ID        string `json:"id"`
	CompanyID string `json:"companyId,omitempty"`
	Name      string `json:"name,omitempty"`
	Timezone  string `json:"timezone,omitempty"`
	Country   string `json:"country,omitempty"`
}

// LocationResponse wraps GET /locations/{locationId}.
type LocationResponse struct {
	Location *Location `json:"location"`
}

// ContactResponse wraps GET /contacts/{id}; NoteResponse GET .../notes/{id}.
type ContactResponse struct {
	Contact json.RawMessage `json:"contact"`
}
type NoteResponse struct {
	Note json.RawMessage `json:"note"`
}

// TokenResponse is the body of POST /oauth/token and /oauth/locationToken.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	UserType     string `json:"userType,omitempty"`
	LocationID   string `json:"locationId,omitempty"`
	CompanyID    string `json:"companyId,omitempty"`
}

// ErrorBody is the API's error envelope. On 422 Message is an array of
// strings; it is kept raw and rendered by Messages.
type ErrorBody struct {
	StatusCode int             `json:"statusCode"`
	Message    json.RawMessage `json:"message,omitempty"`
	Error      string          `json:"error,omitempty"`
	TraceID    string          `json:"traceId,omitempty"`
}

// Text renders Message whether it is a string or an array of strings.
func (b ErrorBody) Text() string {
	var s string
	if json.Unmarshal(b.Message, &s) == nil {
		return s
	}
	var ss []string
	if json.Unmarshal(b.Message, &ss) == nil {
		out := ""
		for i, m := range ss {
			if i > 0 {
				out += "; "
			}
			out += m
		}
		return out
	}
	return string(b.Message)
}

// HTTPError is a non-2xx answer of the API. It never carries request
// headers, so it cannot leak a token.
type HTTPError struct {
	Method  string
	Path    string // path only, no query
	Status  int
	Message string
	TraceID string
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.Path, e.Status)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.TraceID != "" {
		s += " (traceId " + e.TraceID + ")"
	}
	return s
}

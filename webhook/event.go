package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Event types of the Contacts API's webhooks that change what the
// warehouse holds (api.md, "Webhooks").
var contactTypes = map[string]bool{
	"ContactCreate": true, "ContactUpdate": true, "ContactDelete": true,
	"ContactTagUpdate": true, "ContactDndUpdate": true,
}

var childTypes = map[string]bool{
	"TaskCreate": true, "TaskUpdate": true, "TaskComplete": true, "TaskDelete": true,
	"NoteCreate": true, "NoteUpdate": true, "NoteDelete": true,
}

var appointmentTypes = map[string]bool{
	"AppointmentCreate": true, "AppointmentUpdate": true, "AppointmentDelete": true,
}

// Known reports whether the type is one the apply acts on.
func Known(typ string) bool {
	return contactTypes[typ] || childTypes[typ] || appointmentTypes[typ]
}

// Event is what the apply needs of a webhook payload.
type Event struct {
	Type       string
	LocationID string
	ID         string // the object's id (the appointment's, for appointment events)
	// ContactID is the contact the event changes: the id of contact events,
	// contactId of task and note events, appointment.contactId of
	// appointment events. Empty when the payload does not say (TaskCreate
	// has been seen without contactId).
	ContactID string
	WebhookID string
	Timestamp time.Time // zero when the payload has none
}

// ErrMalformed: the body is not a webhook payload.
var ErrMalformed = errors.New("webhook: malformed payload")

type wireEvent struct {
	Type        string          `json:"type"`
	LocationID  string          `json:"locationId"`
	ID          string          `json:"id"`
	ContactID   string          `json:"contactId"`
	WebhookID   string          `json:"webhookId"`
	Timestamp   json.RawMessage `json:"timestamp"`
	Appointment *struct {
		ID         string `json:"id"`
		ContactID  string `json:"contactId"`
		LocationID string `json:"locationId"`
	} `json:"appointment"`
}

// ParseEvent reads a webhook body. The timestamp may be an RFC 3339 string
// or epoch milliseconds.
func ParseEvent(body []byte) (Event, error) {
	var w wireEvent
	if err := json.Unmarshal(body, &w); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if w.Type == "" {
		return Event{}, fmt.Errorf("%w: no type", ErrMalformed)
	}
	ev := Event{Type: w.Type, LocationID: w.LocationID, ID: w.ID, ContactID: w.ContactID, WebhookID: w.WebhookID}
	switch {
	case contactTypes[w.Type]:
		if ev.ContactID == "" {
			ev.ContactID = w.ID
		}
	case appointmentTypes[w.Type] && w.Appointment != nil:
		ev.ID, ev.ContactID = w.Appointment.ID, w.Appointment.ContactID
		if ev.LocationID == "" {
			ev.LocationID = w.Appointment.LocationID
		}
	}
	if ts := bytes.TrimSpace(w.Timestamp); len(ts) > 0 && string(ts) != "null" {
		t, err := parseTime(ts)
		if err != nil {
			return Event{}, fmt.Errorf("%w: timestamp: %v", ErrMalformed, err)
		}
		ev.Timestamp = t
	}
	return ev, nil
}

func parseTime(raw []byte) (time.Time, error) {
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, err
		}
	} else {
		s = string(raw)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("neither RFC 3339 nor epoch ms: %q", s)
	}
	return time.UnixMilli(ms), nil
}

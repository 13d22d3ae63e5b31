package transform

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	whsql "github.com/contacts-etl/contacts-etl/sql"
)

// Every mapping below reads one record field by field (see object): a
// record with a usable id always yields one row, a field it cannot map is
// NULL in that row and a field reject. It returns the record's id and its
// field rejects, or an error when the record has no usable id.

func (s *Stage) contact(raw []byte) (string, []fieldReject, error) {
	o, id, err := parseObject(raw)
	if err != nil {
		return "", nil, err
	}
	name := o.str("name", "name")
	if name == "" {
		name = o.str("contactName", "name")
	}
	created, _ := o.time("dateAdded", "created_at", time.UTC)
	updated, _ := o.time("dateUpdated", "updated_at", time.UTC)
	activity, _ := o.time("lastActivity", "last_activity", time.UTC)
	s.out[whsql.Contacts.Name].add(
		id, o.str("locationId", "location_id"), o.str("firstName", "first_name"), o.str("lastName", "last_name"), name,
		NormEmail(o.str("email", "email")), strings.TrimSpace(o.str("phone", "phone")),
		o.str("companyName", "company_name"), o.strs("tags", "tags"), o.str("source", "lead_source"),
		o.str("type", "type"), o.str("assignedTo", "assigned_to"), o.str("address1", "address1"),
		o.str("city", "city"), o.str("state", "state"), o.str("postalCode", "postal_code"),
		o.str("country", "country"), o.str("website", "website"), o.str("timezone", "timezone"),
		o.boolean("dnd", "dnd", false), o.json("dndSettings", "dnd_settings", '{', true),
		o.date("dateOfBirth", "date_of_birth"), created, updated, activity,
		o.json("customFields", "custom_fields", '[', true), o.json("attributionSource", "attribution_source", '{', false),
		o.strs("additionalEmails", "additional_emails"), o.strs("additionalPhones", "additional_phones"),
		o.strs("followers", "followers"),
		s.cfg.Source, s.loc, s.cfg.RunID, s.cfg.ExtractedAt, time.Time{},
	)
	return id, o.rej, nil
}

// TaskStatus derives a task's status: completed, overdue (due before at) or pending.
func TaskStatus(completed bool, due, at time.Time) string {
	switch {
	case completed:
		return "completed"
	case !due.IsZero() && due.Before(at):
		return "overdue"
	}
	return "pending"
}

// parent is the contact a child belongs to: the one in the request path.
// The record's own contactId is kept apart (body_contact_id) and is used
// only when the path named none.
func parent(path, body string) string {
	if path != "" {
		return path
	}
	return body
}

func (s *Stage) task(raw []byte, contactID string) (string, []fieldReject, error) {
	o, id, err := parseObject(raw)
	if err != nil {
		return "", nil, err
	}
	body := o.str("contactId", whsql.ColBodyContactID)
	due, _ := o.time("dueDate", "due_date", s.cfg.NaiveZone)
	completed := o.boolean("completed", "completed", false)
	var status string // NULL when completed is unknown
	if completed != nil {
		status = TaskStatus(*completed, due, s.cfg.ExtractedAt)
	}
	s.out[whsql.Tasks.Name].add(
		id, parent(contactID, body), o.str("title", "title"), o.str("body", "body"), o.str("assignedTo", "assigned_to"),
		due, completed, status,
		s.cfg.Source, s.loc, s.cfg.RunID, s.cfg.ExtractedAt, time.Time{}, body,
	)
	return id, o.rej, nil
}

func (s *Stage) note(raw []byte, contactID string) (string, []fieldReject, error) {
	o, id, err := parseObject(raw)
	if err != nil {
		return "", nil, err
	}
	body := o.str("contactId", whsql.ColBodyContactID)
	added, _ := o.time("dateAdded", "created_at", time.UTC)
	s.out[whsql.Notes.Name].add(
		id, parent(contactID, body), o.str("body", "content"), o.str("userId", "user_id"), o.str("title", "title"),
		o.str("color", "color"), o.boolean("pinned", "pinned", false), added,
		s.cfg.Source, s.loc, s.cfg.RunID, s.cfg.ExtractedAt, time.Time{}, body,
	)
	return id, o.rej, nil
}

func (s *Stage) appointment(raw []byte, contactID string) (string, []fieldReject, error) {
	o, id, err := parseObject(raw)
	if err != nil {
		return "", nil, err
	}
	body := o.str("contactId", whsql.ColBodyContactID)
	var ts [4]time.Time
	zone := ""
	for i, f := range [...]struct{ field, column string }{
		{"startTime", "start_time"}, {"endTime", "end_time"}, {"dateAdded", "created_at"}, {"dateUpdated", "updated_at"},
	} {
		t, naive := o.time(f.field, f.column, s.cfg.NaiveZone)
		ts[i] = t
		switch {
		case naive:
			zone = s.cfg.NaiveZone.String()
		case !t.IsZero() && zone == "":
			zone = whsql.ZoneOffset
		}
	}
	s.out[whsql.Appointments.Name].add(
		id, parent(contactID, body), o.str("calendarId", "calendar_id"), o.str("title", "title"),
		o.str("status", "status"), o.str("appointmentStatus", "appointment_status"),
		o.str("assignedUserId", "assigned_user_id"), o.strs("users", "attendees"), o.str("notes", "notes"),
		o.str("address", "address"), o.str("groupId", "group_id"), ts[0], ts[1], ts[2], ts[3],
		s.cfg.Source, s.loc, s.cfg.RunID, s.cfg.ExtractedAt, time.Time{}, body, zone,
	)
	return id, o.rej, nil
}

// recordID digs the id out of a record rejected whole, if it can.
func recordID(raw []byte) string {
	var k struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(raw, &k) != nil || k.ID == nil {
		return ""
	}
	return strings.ToValidUTF8(fmt.Sprint(k.ID), "\uFFFD")
}

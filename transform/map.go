package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// errMissingID rejects a record without an id: it has no key.
var errMissingID = errors.New("missing id")

// decode reads raw into v after checking that it is valid UTF-8 (the JSON
// decoder would silently replace bad bytes) and has an id.
func decode(raw []byte, v any, id func() string) error {
	if !utf8.Valid(raw) {
		return fmt.Errorf("invalid UTF-8 at byte %d", invalidAt(raw))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if strings.TrimSpace(id()) == "" {
		return errMissingID
	}
	return nil
}

func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// timeField parses one timestamp field, naming it in the error.
func timeField(name, s string, loc *time.Location) (time.Time, error) {
	t, err := ParseTime(s, loc)
	if err != nil {
		return t, fmt.Errorf("field %s: %w", name, err)
	}
	return t, nil
}

// NormEmail trims and lower-cases an address.
func NormEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// jsonText renders v as compact JSON text, or "" for nothing.
func jsonText(v any) (string, error) {
	switch v := v.(type) {
	case json.RawMessage:
		if len(bytes.TrimSpace(v)) == 0 || string(v) == "null" {
			return "", nil
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, v); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

func (s *Stage) contact(raw []byte) error {
	var c api.Contact
	if err := decode(raw, &c, func() string { return c.ID }); err != nil {
		return err
	}
	var ts [3]time.Time
	for i, f := range []struct{ name, v string }{{"dateAdded", c.DateAdded}, {"dateUpdated", c.DateUpdated}, {"lastActivity", c.LastActivity}} {
		t, err := timeField(f.name, f.v, time.UTC)
		if err != nil {
			return err
		}
		ts[i] = t
	}
	dob, err := parseDay(c.DateOfBirth)
	if err != nil {
		return fmt.Errorf("field dateOfBirth: %w", err)
	}
	name := c.Name
	if name == "" {
		name = c.ContactName
	}
	var dnd, custom, attribution string
	if len(c.DNDSettings) > 0 {
		if dnd, err = jsonText(c.DNDSettings); err != nil {
			return err
		}
	}
	if len(c.CustomFields) > 0 {
		if custom, err = jsonText(c.CustomFields); err != nil {
			return err
		}
	}
	if attribution, err = jsonText(c.AttributionSource); err != nil {
		return fmt.Errorf("field attributionSource: %w", err)
	}
	s.out[api.ResourceContacts].add(
		c.ID, c.LocationID, c.FirstName, c.LastName, name, NormEmail(c.Email), strings.TrimSpace(c.Phone),
		c.CompanyName, c.Tags, c.Source, c.Type, c.AssignedTo, c.Address1, c.City, c.State, c.PostalCode,
		c.Country, c.Website, c.Timezone, c.DND, dnd, dob, ts[0], ts[1], ts[2], custom, attribution,
		c.AdditionalEmails, c.AdditionalPhones, c.Followers,
		s.cfg.Source, s.loc, s.cfg.RunID, s.cfg.ExtractedAt, time.Time{},
	)
	return nil
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

func (s *Stage) task(raw []byte, contactID string) error {
	var t api.Task
	if err := decode(raw, &t, func() string { return t.ID }); err != nil {
		return err
	}
	due, err := timeField("dueDate", t.DueDate, s.cfg.NaiveZone)
	if err != nil {
		return err
	}
	s.out[api.ResourceTasks].add(
		t.ID, firstNonEmpty(t.ContactID, contactID), t.Title, t.Body, t.AssignedTo, due, t.Completed,
		TaskStatus(t.Completed, due, s.cfg.ExtractedAt),
		s.cfg.Source, s.loc, s.cfg.RunID, s.cfg.ExtractedAt, time.Time{},
	)
	return nil
}

func (s *Stage) note(raw []byte, contactID string) error {
	var n api.Note
	if err := decode(raw, &n, func() string { return n.ID }); err != nil {
		return err
	}
	added, err := timeField("dateAdded", n.DateAdded, time.UTC)
	if err != nil {
		return err
	}
	s.out[api.ResourceNotes].add(
		n.ID, firstNonEmpty(n.ContactID, contactID), n.Body, n.UserID, n.Title, n.Color, n.Pinned, added,
		s.cfg.Source, s.loc, s.cfg.RunID, s.cfg.ExtractedAt, time.Time{},
	)
	return nil
}

func (s *Stage) appointment(raw []byte, contactID string) error {
	var e api.Event
	if err := decode(raw, &e, func() string { return e.ID }); err != nil {
		return err
	}
	var ts [4]time.Time
	for i, f := range []struct{ name, v string }{{"startTime", e.StartTime}, {"endTime", e.EndTime}, {"dateAdded", e.DateAdded}, {"dateUpdated", e.DateUpdated}} {
		t, err := timeField(f.name, f.v, s.cfg.NaiveZone)
		if err != nil {
			return err
		}
		ts[i] = t
	}
	s.out[api.ResourceAppointments].add(
		e.ID, firstNonEmpty(e.ContactID, contactID), e.CalendarID, e.Title, e.Status, e.AppointmentStatus,
		e.AssignedUserID, e.Users, e.Notes, e.Address, e.GroupID, ts[0], ts[1], ts[2], ts[3],
		s.cfg.Source, s.loc, s.cfg.RunID, s.cfg.ExtractedAt, time.Time{},
	)
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// recordID digs the id out of a record that failed to map, if it can.
func recordID(raw []byte) string {
	var k struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(raw, &k) != nil || k.ID == nil {
		return ""
	}
	return strings.ToValidUTF8(fmt.Sprint(k.ID), "\uFFFD")
}

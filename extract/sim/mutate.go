package sim

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
)

// ErrNotFound is returned by mutations of unknown or deleted records.
var ErrNotFound = errors.New("sim: not found")

func (s *Server) nowMs() int64 { return s.cfg.Now().UnixMilli() }

// edit publishes a new version of contact id made by fn, under the write
// lock. bump sets dateUpdated to now. fn may edit the copy's contact and
// its (unshared) children.
func (s *Server) edit(id string, bump bool, fn func(c *contact) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.byID[id]
	if old == nil || old.deleted {
		return ErrNotFound
	}
	nc := *old
	nc.c = cloneContact(old.c)
	nc.kids = old.kids.clone()
	nc.enc = &encodings{}
	if err := fn(&nc); err != nil {
		return err
	}
	nc.c.ID, nc.c.LocationID = old.c.ID, old.c.LocationID
	if bump {
		nc.updMs = max(s.nowMs(), nc.addMs)
		nc.c.DateUpdated = fmtMs(nc.updMs)
	}
	s.byID[id] = &nc
	nc.loc.list[nc.pos] = &nc
	nc.loc.snap = nil
	return nil
}

// UpdateContact applies fn to a copy of the contact and publishes it with
// dateUpdated = Now(). fn must not change the id or the location.
func (s *Server) UpdateContact(id string, fn func(*api.Contact)) error {
	return s.edit(id, true, func(c *contact) error { fn(&c.c); return nil })
}

// DeleteContact deletes a contact: it disappears from search and the list,
// and GET answers 404. Truth keeps it with Deleted set.
func (s *Server) DeleteContact(id string) error {
	return s.edit(id, false, func(c *contact) error { c.deleted = true; return nil })
}

// AddContact creates a contact in the location with dateAdded =
// dateUpdated = Now() and no children; it returns the id, or "" when the
// location is unknown.
func (s *Server) AddContact(locationID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.locByID[locationID]
	if l == nil {
		return ""
	}
	s.added++
	idx := s.added
	now := s.nowMs()
	c := api.Contact{ID: makeID(uint64(s.cfg.Seed), saltAdded, uint64(idx)), LocationID: l.id}
	fillContact(newRand(s.cfg.Seed, saltAdded, uint64(idx)), &c, now, now, 1_000_000_000+idx)
	k := &kids{}
	ct := &contact{c: c, loc: l, pos: len(l.list), addMs: now, updMs: now, kids: k, enc: &encodings{}}
	l.list = append(l.list, ct)
	l.snap = nil
	s.byID[c.ID] = ct
	return c.ID
}

// childID makes the id of a child added at run time.
func (s *Server) childID(salt uint64) string {
	s.added++
	return makeID(uint64(s.cfg.Seed), saltAdded, salt, uint64(s.added))
}

// AddNote adds a note to a contact and returns its id ("" when the contact
// is unknown or deleted). Like the real API, it does not touch the
// contact's dateUpdated.
func (s *Server) AddNote(contactID string) string {
	var id string
	s.edit(contactID, false, func(c *contact) error {
		id = s.childID(saltNote)
		c.kids.notes = append(c.kids.notes, api.Note{ID: id, Body: "Added note " + id + " — suivi ✓", UserID: users[1],
			DateAdded: fmtMs(s.nowMs()), ContactID: contactID})
		return nil
	})
	return id
}

// DeleteNote deletes a note; the contact's dateUpdated is not touched.
func (s *Server) DeleteNote(contactID, noteID string) error {
	return s.edit(contactID, false, func(c *contact) error {
		n := len(c.kids.notes)
		c.kids.notes = slices.DeleteFunc(c.kids.notes, func(x api.Note) bool { return x.ID == noteID })
		if len(c.kids.notes) == n {
			return ErrNotFound
		}
		c.kids.forget(api.ResourceNotes, noteID)
		return nil
	})
}

// forget records id as a child of resource deleted from the contact.
func (k *kids) forget(resource, id string) {
	if k.gone == nil {
		k.gone = map[string][]string{}
	}
	k.gone[resource] = append(k.gone[resource], id)
}

// AddTask adds an open task to a contact and returns its id ("" when the
// contact is unknown or deleted). Task changes bump the contact's
// dateUpdated.
func (s *Server) AddTask(contactID string) string {
	return s.addTask(contactID, true, "Follow up", "Added task", 7)
}

// addTask adds an open task due in dueDays, bumping the contact's
// dateUpdated or not.
func (s *Server) addTask(contactID string, bump bool, title, body string, dueDays int64) string {
	var id string
	s.edit(contactID, bump, func(c *contact) error {
		id = s.childID(saltTask)
		c.kids.tasks = append(c.kids.tasks, api.Task{ID: id, Title: title, Body: body,
			AssignedTo: users[2], DueDate: fmtMs(s.nowMs() + dueDays*dayMs), ContactID: contactID})
		return nil
	})
	return id
}

// UpdateTask applies fn to a task and bumps the contact's dateUpdated.
func (s *Server) UpdateTask(contactID, taskID string, fn func(*api.Task)) error {
	return s.updateTask(contactID, taskID, true, fn)
}

func (s *Server) updateTask(contactID, taskID string, bump bool, fn func(*api.Task)) error {
	return s.edit(contactID, bump, func(c *contact) error {
		i := slices.IndexFunc(c.kids.tasks, func(t api.Task) bool { return t.ID == taskID })
		if i < 0 {
			return ErrNotFound
		}
		fn(&c.kids.tasks[i])
		c.kids.tasks[i].ID, c.kids.tasks[i].ContactID = taskID, contactID
		return nil
	})
}

// DeleteTask deletes a task and bumps the contact's dateUpdated.
func (s *Server) DeleteTask(contactID, taskID string) error {
	return s.deleteTask(contactID, taskID, true)
}

// DeleteTaskQuiet deletes a task without touching the contact's
// dateUpdated (as an automation may).
func (s *Server) DeleteTaskQuiet(contactID, taskID string) error {
	return s.deleteTask(contactID, taskID, false)
}

func (s *Server) deleteTask(contactID, taskID string, bump bool) error {
	return s.edit(contactID, bump, func(c *contact) error {
		n := len(c.kids.tasks)
		c.kids.tasks = slices.DeleteFunc(c.kids.tasks, func(t api.Task) bool { return t.ID == taskID })
		if len(c.kids.tasks) == n {
			return ErrNotFound
		}
		c.kids.forget(api.ResourceTasks, taskID)
		return nil
	})
}

// DeleteEventQuiet deletes an appointment; the contact's dateUpdated is
// not touched (appointment changes never bump it here).
func (s *Server) DeleteEventQuiet(contactID, eventID string) error {
	return s.edit(contactID, false, func(c *contact) error {
		n := len(c.kids.events)
		c.kids.events = slices.DeleteFunc(c.kids.events, func(e api.Event) bool { return e.ID == eventID })
		if len(c.kids.events) == n {
			return ErrNotFound
		}
		delete(c.kids.times, eventID)
		c.kids.forget(api.ResourceAppointments, eventID)
		return nil
	})
}

// AddEvent adds an appointment to a contact and returns its id; the
// contact's dateUpdated is not touched.
func (s *Server) AddEvent(contactID string) string {
	var id string
	s.edit(contactID, false, func(c *contact) error {
		id = s.childID(saltEvent)
		now := s.nowMs()
		start := time.UnixMilli(now + dayMs).UTC().Truncate(time.Hour)
		z := c.loc.zone
		c.kids.events = append(c.kids.events, api.Event{ID: id, CalendarID: "cal0Pq8Rs7Tu6Vw5Xy4Za", Title: "Added call",
			Status: "booked", AppointmentStatus: "booked", AssignedUserID: users[0], Users: []string{users[0]},
			StartTime: start.In(z).Format(naiveLayout), EndTime: start.Add(time.Hour).In(z).Format(naiveLayout),
			LocationID: c.c.LocationID, ContactID: contactID, DateAdded: fmtMs(now), DateUpdated: fmtMs(now)})
		if c.kids.times == nil {
			c.kids.times = map[string]EventTime{}
		}
		c.kids.times[id] = EventTime{ID: id, Start: start, End: start.Add(time.Hour), Zone: z.String()}
		return nil
	})
	return id
}

// MutationSummary lists what Mutate changed, by contact id.
type MutationSummary struct {
	Updated    []string // dateUpdated bumped (some got a new task too)
	NotesAdded []string // a note added, dateUpdated untouched
	Deleted    []string
	Added      []string // new contacts
}

// Mutate changes about frac of the live contacts, chosen by seed: 55% are
// updated (a third of those also get a task), 30% get a note without a
// dateUpdated bump, 15% are deleted; and frac/10 of the live count is
// added as new contacts, round-robin over the locations.
func (s *Server) Mutate(frac float64, seed int64) MutationSummary {
	s.mu.RLock()
	ids := make([]string, 0, len(s.byID))
	for id, c := range s.byID {
		if !c.deleted {
			ids = append(ids, id)
		}
	}
	s.mu.RUnlock()
	slices.Sort(ids)
	r := rand.New(rand.NewPCG(uint64(seed), saltMutate))
	n := int(frac*float64(len(ids)) + 0.5)
	var sum MutationSummary
	for _, i := range r.Perm(len(ids))[:min(n, len(ids))] {
		id := ids[i]
		switch p := r.Float64(); {
		case p < 0.55:
			rev := r.IntN(1000)
			addTask := r.Float64() < 1.0/3
			s.UpdateContact(id, func(c *api.Contact) {
				c.LastName = strings.TrimSpace(c.LastName + " v" + strconv.Itoa(rev))
				c.Name = strings.TrimSpace(c.FirstName + " " + c.LastName)
				c.Tags = append(c.Tags, "updated")
			})
			if addTask {
				s.AddTask(id)
			}
			sum.Updated = append(sum.Updated, id)
		case p < 0.85:
			s.AddNote(id)
			sum.NotesAdded = append(sum.NotesAdded, id)
		default:
			s.DeleteContact(id)
			sum.Deleted = append(sum.Deleted, id)
		}
	}
	locs := s.Locations()
	for i := range int(frac*float64(len(ids))/10 + 0.5) {
		sum.Added = append(sum.Added, s.AddContact(locs[i%len(locs)]))
	}
	return sum
}

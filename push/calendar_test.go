package push

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/api"
	"github.com/contacts-etl/contacts-etl/extract/sim"
)

func TestUpdateTask(t *testing.T) {
	e := newEnv(t, 30)
	tasks := e.strings(`SELECT task_id FROM tasks WHERE _deleted_at IS NULL ORDER BY task_id LIMIT 3`)
	if len(tasks) == 0 {
		t.Skip("no task in the seed")
	}
	res := e.push(UpdateTask, `SELECT contact_id, task_id, 'Renamed ' || task_id AS title, '2026-04-01T10:00:00Z' AS due_date
		FROM tasks WHERE task_id IN `+inList(tasks))
	if res.Confirmed != len(tasks) {
		t.Fatalf("%+v", res)
	}
	byID := map[string]api.Task{}
	for _, c := range e.truth() {
		for _, tk := range c.Tasks {
			byID[tk.ID] = tk
		}
	}
	for _, id := range tasks {
		if tk := byID[id]; tk.Title != "Renamed "+id || !strings.HasPrefix(tk.DueDate, "2026-04-01T10:00:00") {
			t.Errorf("task %s in the truth: %q %q", id, tk.Title, tk.DueDate)
		}
	}
	got := e.strings(`SELECT task_id FROM tasks WHERE title = 'Renamed ' || task_id AND due_date = TIMESTAMPTZ '2026-04-01 10:00:00+00' ORDER BY 1`)
	if len(got) != len(tasks) {
		t.Errorf("warehouse shows %d of %d updated tasks", len(got), len(tasks))
	}
	if got := e.strings(`SELECT target_id FROM actions WHERE action = 'update-task' AND status = 'confirmed' ORDER BY 1`); strings.Join(got, ",") != strings.Join(tasks, ",") {
		t.Errorf("actions targets %v, want %v", got, tasks)
	}
	if _, err := Run(context.Background(), e.config(UpdateTask, `SELECT contact_id, task_id FROM tasks`)); err == nil {
		t.Error("update-task without a field to change was accepted")
	}
}

func TestScheduleAppointment(t *testing.T) {
	e := newEnv(t, 40, api.ScopeContactsRO, api.ScopeContactsWrite, api.ScopeEventsWrite, api.ScopeLocationsRO)
	e.srv.SetWriteQuirks(sim.WriteQuirks{ErrorAfterCreate: 0.4})
	ids := e.firstContacts(8)
	start := "2026-05-04T15:30:00+02:00"
	q := `SELECT contact_id, '` + sim.Calendars[1] + `' AS calendar_id, '` + start + `' AS start_time, 'Pushed demo' AS title
		FROM contacts WHERE contact_id IN ` + inList(ids)
	res := e.push(ScheduleAppointment, q)
	if res.Confirmed != len(ids) {
		t.Fatalf("%+v", res)
	}
	want, _ := time.Parse(time.RFC3339, start)
	tr := e.truth()
	for _, id := range ids {
		n := 0
		for i, ev := range tr[id].Events {
			if ev.Title == "Pushed demo" {
				n++
				if et := tr[id].EventTimes[i]; !et.Start.Equal(want) || !et.End.Equal(want.Add(sim.DefaultSlot)) || ev.CalendarID != sim.Calendars[1] {
					t.Errorf("contact %s: appointment %+v %+v", id, ev, et)
				}
			}
		}
		if n != 1 {
			t.Errorf("contact %s has %d pushed appointments, want 1", id, n)
		}
	}
	got := e.strings(`SELECT a.appointment_id FROM actions x JOIN appointments a ON a.appointment_id = x.target_id
		WHERE x.action = 'schedule-appointment' AND x.status = 'confirmed' AND a.title = 'Pushed demo'
		AND a.start_time = TIMESTAMPTZ '` + start + `'`)
	if len(got) != len(ids) {
		t.Errorf("warehouse joins %d pushed appointments at %s to their actions, want %d", len(got), start, len(ids))
	}
	before := e.srv.Writes().Applied
	if again := e.push(ScheduleAppointment, q); again.Skipped != len(ids) || e.srv.Writes().Applied != before {
		t.Errorf("repeat push: %+v, applied %d → %d", again, before, e.srv.Writes().Applied)
	}
}

func TestScheduleAppointmentRefused(t *testing.T) {
	e := newEnv(t, 10) // contacts.write only
	q := `SELECT contact_id, '` + sim.Calendars[0] + `' AS calendar_id, '2026-05-04T15:30:00Z' AS start_time FROM contacts`
	_, err := Run(context.Background(), e.config(ScheduleAppointment, q))
	if !errors.Is(err, ErrScope) || !strings.Contains(err.Error(), "auth login --scopes "+api.ScopeEventsWrite) {
		t.Fatalf("err = %v, want ErrScope naming auth login --scopes", err)
	}
	if w := e.srv.Writes(); w.Applied != 0 || w.Requests > 1 {
		t.Fatalf("writes %+v: only the scope check may be sent", w)
	}
	cfg := e.config(ScheduleAppointment, q)
	cfg.Granted = map[string][]string{e.loc: {api.ScopeContactsRO, api.ScopeContactsWrite}}
	before := e.srv.Writes().Requests
	if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrScope) || e.srv.Writes().Requests != before {
		t.Fatalf("known scopes: err %v, writes %d → %d", err, before, e.srv.Writes().Requests)
	}
	full := newEnv(t, 10, api.ScopeContactsRO, api.ScopeContactsWrite, api.ScopeEventsWrite)
	for name, q := range map[string]string{
		"zone-less start": `SELECT contact_id, 'c' AS calendar_id, '2026-05-04 15:30:00' AS start_time FROM contacts`,
		"end before start": `SELECT contact_id, 'c' AS calendar_id, '2026-05-04T15:30:00Z' AS start_time,
			'2026-05-04T15:00:00Z' AS end_time FROM contacts`,
		"unknown column": `SELECT contact_id, 'c' AS calendar_id, '2026-05-04T15:30:00Z' AS start_time, 'x' AS color FROM contacts`,
	} {
		if _, err := Run(context.Background(), full.config(ScheduleAppointment, q)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if w := full.srv.Writes(); w.Requests != 0 {
		t.Errorf("%d writes before the refusals", w.Requests)
	}
}
